"""Static baselines on the same footing as the DFS accelerator: one pipelined FINN network per precision.

``compose_static(build, bits)`` is the graph a FINN user builds for a static network: stem, every block at
``bits`` (a gated block's path core of that width; an ungated block its one path), the global pooling sum and
the head, all running at once, each on its own image. Its weights are the DFS network's with every gate forced to
one width (so its Verilator accuracy is ``fracskip eval --bits B``'s); its shapes, and so its folding, cycles and
resources, are those of a static network of the same architecture trained on its own, whose accuracy the bench
pairs it with (``compare.json``, ``fracskip compare``; on the default, the higher of the two at every width). It
is composed from the same build's cores as the accelerator (``hls/accelerator.py``), so that both are folded by
the same allocator (``hls/pipeline_folding.py``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FracskipError
from ..runtime.manifest import Manifest
from .accelerator import INPUT, GraphBuilder, load_core


def compose_static(build_dir: str | Path, bits: int, iface_pe: int = 1):
    """stem -> every block at ``bits`` -> GlobalSum_rtl -> head, as one FINN graph (HW nodes, no FIFOs)."""
    from . import ops  # noqa: F401  registers the RTL ops

    build_dir = Path(build_dir)
    m = Manifest.load(build_dir / "export")
    g = GraphBuilder()
    c0, h0, w0 = m.data["input"]["shape"][1:]
    stem = load_core(build_dir, "stem")
    x = g.add_core(stem, "stem", g.tensor(INPUT, (1, h0, w0, c0), m.data["input"]["datatype"]))
    for blk in m.blocks:
        if blk["gated"]:
            core = m.path_core(blk["index"], bits)
            if core is None or bits == 0:
                raise FracskipError(f"block {blk['index']} has no {bits}-bit path: the bit menu is {m.bit_menu}")
        else:
            core = next(iter(blk["paths"].values()))["core"]
        x = g.add_core(load_core(build_dir, core), core, x)
    _, cl, hl, wl = m.blocks[-1]["out"]["shape"]
    pooled = g.tensor("pooled", (1, cl), m.data["head"]["in"]["datatype"])
    g.node("GlobalSum_rtl", [x], [pooled], "global_sum", NumChannels=cl, PE=iface_pe, inputDataType="UINT8",
           outputDataType=m.data["head"]["in"]["datatype"], numInputVectors=[1, hl, wl])
    y = g.add_core(load_core(build_dir, "head"), "head", pooled)
    return g.model([INPUT], [y], stem)

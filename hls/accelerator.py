"""The whole network as one FINN dataflow graph (DESIGN.md, "The hardware mapping (version 2)").

One image stream in (NHWC uint8 pixels), two streams out: the head's integer logits (the host applies the head's
float scale and bias, as FINN leaves a classifier tail on the host) and one word of per-image decisions
``[d_0, ..., d_{G-1}]`` (INT16 each), both in input order. Every block works on a different image at once.

    image ─ stem ─ block0 ─┬─ DuplicateStreams ─ DFSGate ─ TokenFork ─┬─ [h, c] ─► next gate's in1
                           │                                          ├─ [d] ───► datapath mode
                           │                                          └─ [d] ───► TokenJoin ─► decisions
                           └─ frame buffer (StreamingFIFO, ≥ one frame) ─► datapath ─► next block … 
    … last block ─ GlobalSum ─ head ─► logits

The **datapath** of a gated block is pluggable: any function ``datapath(g, block, x, mode) -> y`` that adds to the
``GraphBuilder`` ``g`` the nodes between the frame-buffered block input ``x`` and the block output ``y``, reading one
mode word per frame from ``mode`` (a (1, 1) INT16 stream: the decision, an index into the bit menu). The default,
``routed_paths``, is a ``StreamRoute`` to the block's K path cores (the per-path FINN graphs of the build; skip of an
identity block is a wire, of a downsampling block its 1x1 shortcut core ``block<i>_b0``) and a ``StreamMerge`` that
restores input order. ``hls.modal.bitserial_datapath`` replaces it without touching the rest: the block's computing
paths merged into one runtime-precision graph (MVAU_bitserial, ModalActivation; mode per frame from the decision),
skip routed past it as here (``compose(build, datapath=bitserial_datapath)``).

FIFOs: FINN's InsertFIFO gives every output of a node the shape of output 0 (FINN-NOTES §4d), which a TokenFork
breaks; ``InsertStreamFIFOs`` puts a FIFO on every stream between two nodes with the shape of that stream. Depths
start at FINN's minimum (2) and the frame buffers at one frame; ``size_fifos`` sizes them by Verilator simulation
on real images (peak occupancy at unbounded depths, then verified with FINN's fifo.sv); ``hls/fifo_model.py`` then
trims the ones that buy nothing and deepens the frame buffers by the frame-sequence model on 200 images' decisions.

The build (``build_accelerator``, run by ``fracskip build`` after the cores' HDL): design
``dfs`` is the bit-serial datapath in every gated block, every node folded by ``hls.pipeline_folding`` (the slowest
node's expected cycles per image minimized within the board budget: ``cycles_per_image_model``); FIFOs sized on
real images of the calibration split; then the HDL as emitted (FINN's fifo.sv at those depths) run on the same
images in Verilator and checked against the sizing run, its simulator cached for ``rtlsim``. ``rtlsim`` (``fracskip
simulate BUILD --backend rtlsim``) streams test images through it against the numpy controller and the torch model.

Python execution (``run_python``): FINN's ``execute_onnx`` of the graph with every ``*_rtl`` node as its abstract
op, image by image; ``StreamRoute`` sends a frame to its path and zeros to the others, ``StreamMerge`` takes it from
its path, so the result is the hardware's. ``run_rtlsim`` streams images back to back through the stitched graph.

Measured at 03814c3 (the tiny routed test network, Pynq-Z2 build at --target-fps 2000, interface PE 1; Verilator
5.48 with the sizing FIFOs at the chosen depths, 8 synthetic test images whose decisions use all four paths of both
gated blocks):
336 nodes (177 FIFOs); head integers and decisions equal FINN's python execution for 8/8 images, which equals the
numpy controller (decisions, pooled sums); 37,631 cycles per image in steady state (FINN's estimate of the slowest
node, the stem's MVAU, 37,632), 104,389 cycles to the first result; frame buffers peak at 12,577 and 6,272 words
(one frame each: 12,544 and 6,272). The peak-occupancy rule sizes FIFOs before the bottleneck for an input that
floods them (1.04 Mbit of FIFO in all): an upper bound, not a minimum.

Measured on the default network before the folding kept stream widths dividing one another
(``hls/pipeline_folding.py``, "Stream widths"; ``fracskip build --board Pynq-Z2 --until hdl``, design dfs; Verilator
5.48, -O1): 493 nodes; 64 Fashion-MNIST test images back to back through the emitted HDL (FIFOs sized on 24 training
images): logits equal to the numpy controller's float for float and decisions to the controller's and the torch
model's for 64/64 images. Steady state 56,448 cycles per image against the folding's 37,632: FINN's width converter
between block 0's sliding windows (SIMD 4, 32 bits) and its MVAUs (SIMD 3, 24 bits), a ratio of 4:3, passes 2 words
in 3 cycles (56,448 cycles for a frame's 37,632 words, measured alone), and FINN estimates it at 0 cycles, so
neither its estimate nor the folding counts it (the figures before this fix; since, the folding allows only
parallelisms whose converters have integer ratios: at 9e1906a FINN's InsertDWC put 94 converters into the default's
folded DFS graph, none at a non-integer ratio, and the folding's model was 38,874 cycles per image, an estimate; the
shipped default as the bench at 13a9de2 built it: 28,224 by the folding, 28,355 measured in Verilator on 200 test
images). Verilator: about 9,800 cycles per CPU second (0.16 images per CPU second); each of the two compiles
(sizing, emitted) about 13 minutes here on a loaded machine.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FracskipError, reported
from ..runtime.intgate import IntGateParams, split_decisions
from ..runtime.manifest import Manifest
from ..validate import load_json

log = logging.getLogger(__name__)

RTL = "finn.custom_op.fpgadataflow.rtl"
CORE_MODEL = "step_fracskip_requant_outputs.onnx"  # a core's folded, specialized graph before FIFOs, DWCs and HDL
INPUT, LOGITS, DECISIONS = "image", "logits", "decisions"


# ---------------------------------------------------------------------------------------------- graph building
class GraphBuilder:
    """Nodes, tensors (shape, FINN datatype) and initializers of the graph being composed."""

    def __init__(self) -> None:
        from onnx import TensorProto

        self.nodes: list = []
        self.value_info: dict[str, tuple[tuple, str]] = {}
        self.initializers: list = []
        self.extra_annotations: dict[str, str] = {}
        self.float = TensorProto.FLOAT

    def tensor(self, name: str, shape, dtype: str) -> str:
        self.value_info[name] = (tuple(int(s) for s in shape), str(dtype))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], name: str, domain: str = RTL, **attrs):
        from onnx import helper

        n = helper.make_node(op_type, inputs, outputs, name=name, domain=domain, backend="fpgadataflow", **attrs)
        self.nodes.append(n)
        return n

    def add_core(self, model, prefix: str, x: str) -> str:
        """Copy a core's dataflow graph in, its nodes and tensors renamed ``<prefix>__…``, its input wired to ``x``;
        returns its output tensor."""
        from onnx import helper

        gin, gout = model.graph.input[0].name, model.graph.output[0].name
        ren = {gin: x}

        def r(t: str) -> str:
            return ren.setdefault(t, f"{prefix}__{t}") if t else t

        for n in model.graph.node:
            m = copy.deepcopy(n)
            m.name = f"{prefix}__{n.name}"
            m.input[:] = [r(t) for t in n.input]
            m.output[:] = [r(t) for t in n.output]
            self.nodes.append(m)
        for init in model.graph.initializer:
            i = copy.deepcopy(init)
            i.name = r(init.name)
            self.initializers.append(i)
            dt = model.get_tensor_datatype(init.name)
            self.extra_annotations[i.name] = dt.name
        for vi in list(model.graph.value_info) + list(model.graph.output):
            if vi.name == gin:
                continue
            shape = model.get_tensor_shape(vi.name)
            self.tensor(r(vi.name), shape, model.get_tensor_datatype(vi.name).name)
        del helper
        return r(gout)

    def model(self, inputs: list[str], outputs: list[str], opset_from=None):
        from onnx import helper
        from qonnx.core.datatype import DataType
        from qonnx.core.modelwrapper import ModelWrapper

        vi = {n: helper.make_tensor_value_info(n, self.float, list(s)) for n, (s, _) in self.value_info.items()}
        graph = helper.make_graph(self.nodes, "fracskip_accelerator", [vi[i] for i in inputs], [vi[o] for o in outputs],
                                  initializer=self.initializers,
                                  value_info=[v for n, v in vi.items() if n not in inputs and n not in outputs])
        if opset_from is None:
            proto = helper.make_model(graph, producer_name="fracskip")
        else:
            proto = helper.make_model(graph, producer_name="fracskip",
                                      opset_imports=list(opset_from.model.opset_import))
            proto.ir_version = opset_from.model.ir_version
        m = ModelWrapper(proto)
        for n, (_, dt) in self.value_info.items():
            m.set_tensor_datatype(n, DataType[dt])
        for n, dt in self.extra_annotations.items():
            m.set_tensor_datatype(n, DataType[dt])
        return m


@dataclass
class BlockSpec:
    """What a datapath needs to know about its block."""

    index: int
    gate: int | None
    channels: int  # block input channels
    hw: tuple[int, int]  # block input height, width
    out_channels: int
    out_hw: tuple[int, int]
    pe: int  # words of the block interface carry pe channels
    paths: dict[int, object | None] = field(default_factory=dict)  # bits -> core model (None: identity skip)
    channel_paths: object | None = None  # hls.modal.ChannelPaths of a channel-skipping block (mode [d, keep])


Datapath = Callable[[GraphBuilder, BlockSpec, str, str], str]


def routed_paths(g: GraphBuilder, blk: BlockSpec, x: str, mode: str) -> str:
    """The datapath of K separate path cores: StreamRoute -> path k -> StreamMerge (input order kept)."""
    K = len(blk.paths)
    p = f"block{blk.index}"
    ishape = (1, *blk.hw, blk.channels)
    oshape = (1, *blk.out_hw, blk.out_channels)
    t_route, t_merge = g.tensor(f"{p}_mode_route", (1, 1), "INT16"), g.tensor(f"{p}_mode_merge", (1, 1), "INT16")
    g.node("TokenFork_rtl", [mode], [t_route, t_merge], f"{p}_modefork", TokenLen=1, OutLens=[1, 1])
    routed = [g.tensor(f"{p}_route{k}", ishape, "UINT8") for k in range(K)]
    g.node("StreamRoute_rtl", [x, t_route], routed, f"{p}_route", NumChannels=blk.channels, PE=blk.pe,
           dataType="UINT8", numInputVectors=[1, *blk.hw], K=K, TokenLen=1)
    outs = []
    for k, (bits, core) in enumerate(sorted(blk.paths.items())):
        if core is None:  # identity skip: a wire (a FIFO after InsertStreamFIFOs)
            if ishape != oshape:
                raise FracskipError(f"block {blk.index}: skip without a shortcut core, but its shape changes")
            outs.append(routed[k])
        else:
            outs.append(g.add_core(core, f"{p}_b{bits}", routed[k]))
    y = g.tensor(f"{p}_out", oshape, "UINT8")
    g.node("StreamMerge_rtl", outs + [t_merge], [y], f"{p}_merge", NumChannels=blk.out_channels, PE=blk.pe,
           dataType="UINT8", numInputVectors=[1, *blk.out_hw], K=K, TokenLen=1)
    return y


# ---------------------------------------------------------------------------------------------- composition
def load_core(build_dir: Path, core: str):
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(build_dir) / "cores" / core / "intermediate_models" / CORE_MODEL
    if not path.is_file():
        raise FracskipError(f"{path} missing: the accelerator is composed from a `fracskip build` (--until hdl)")
    return ModelWrapper(str(path))


def compose(build_dir: str | Path, datapath: Datapath = routed_paths, iface_pe: int = 1,
            frame_buffer_frames: float = 1.0):
    """The accelerator's FINN graph (HW nodes, no FIFOs or width converters yet) from a build's cores."""
    from . import ops  # noqa: F401  registers the RTL ops
    from .ops.gate_rtl import gate_params

    build_dir = Path(build_dir)
    m = Manifest.load(build_dir / "export")
    params = IntGateParams.from_json(m.data["gates"])
    keep_word = int(params.chan_w is not None)  # LC-Net's channel head: tokens carry the keep bits after d
    menu = m.bit_menu
    g = GraphBuilder()
    c0, h0, w0 = m.data["input"]["shape"][1:]
    x = g.tensor(INPUT, (1, h0, w0, c0), m.data["input"]["datatype"])
    stem = load_core(build_dir, "stem")
    x = g.add_core(stem, "stem", x)
    gated = [b for b in m.blocks if b["gated"]]
    state: str | None = None
    decisions: list[str] = []
    for blk in m.blocks:
        _, ci, hi, wi = blk["in"]["shape"]
        _, co, ho, wo = blk["out"]["shape"]
        if not blk["gated"]:
            core = next(iter(blk["paths"].values()))["core"]
            x = g.add_core(load_core(build_dir, core), core, x)
            continue
        gi = blk["gate"]
        p = f"block{blk['index']}"
        last = gi == gated[-1]["gate"]
        spec = BlockSpec(index=blk["index"], gate=gi, channels=ci, hw=(hi, wi), out_channels=co, out_hw=(ho, wo),
                         pe=iface_pe)
        for bits in menu:
            core = m.path_core(blk["index"], bits)
            spec.paths[bits] = None if core is None else load_core(build_dir, core)
        kept = {int(b): p["channels"] for b, p in blk["paths"].items() if "channels" in p}
        if kept:
            from .modal import ChannelPaths

            spec.channel_paths = ChannelPaths(m.channel_group, next(iter(kept.values()))["groups"], {
                b: {int(k): load_core(build_dir, c["core"]) for k, c in ch["kept"].items()} for b, ch in kept.items()})
        xg, xd = g.tensor(f"{p}_to_gate", (1, hi, wi, ci), "UINT8"), g.tensor(f"{p}_to_buffer", (1, hi, wi, ci), "UINT8")
        g.node("DuplicateStreams_rtl", [x], [xg, xd], f"{p}_fork", NumChannels=ci, PE=iface_pe, NumOutputStreams=2,
               inputDataType="UINT8", numInputVectors=[1, hi, wi])
        D = 1 + keep_word  # the decision: [d] or [d, keep]
        L = D + 2 * params.hidden
        tok = g.tensor(f"gate{gi}_token", (1, D if last else L), "INT16")
        g.node("DFSGate_rtl", [xg] + ([state] if state else []), [tok], f"gate{gi}", NumChannels=ci, PE=iface_pe,
               ImgDim=[hi, wi], gate_index=gi, params=json.dumps(gate_params(params, gi).to_json()),
               StateIn=int(state is not None), StateOut=int(not last), KeepIn=int(keep_word and state is not None),
               inputDataType="UINT8")
        outs, lens = [], []
        if not last:
            state = g.tensor(f"gate{gi}_state", (1, L), "INT16")
            outs.append(state), lens.append(L)
        mode = g.tensor(f"{p}_mode", (1, D), "INT16")
        dec = g.tensor(f"gate{gi}_decision", (1, D), "INT16")
        outs += [mode, dec]
        lens += [D, D]
        g.node("TokenFork_rtl", [tok], outs, f"gate{gi}_fork", TokenLen=D if last else L, OutLens=lens)
        decisions.append(dec)
        xb = g.tensor(f"{p}_buffered", (1, hi, wi, ci), "UINT8")
        words = hi * wi * ci // iface_pe
        g.node("StreamingFIFO_rtl", [xd], [xb], f"{p}{FRAME_BUFFER}",
               depth=max(2, int(np.ceil(frame_buffer_frames * words))),
               folded_shape=[1, hi, wi, ci // iface_pe, iface_pe], normal_shape=[1, hi, wi, ci], dataType="UINT8",
               ram_style="auto")
        x = datapath(g, spec, xb, mode)
    # global pooling sum on chip, then the head
    _, cl, hl, wl = m.blocks[-1]["out"]["shape"]
    pooled = g.tensor("pooled", (1, cl), m.data["head"]["in"]["datatype"])
    g.node("GlobalSum_rtl", [x], [pooled], "global_sum", NumChannels=cl, PE=iface_pe, inputDataType="UINT8",
           outputDataType=m.data["head"]["in"]["datatype"], numInputVectors=[1, hl, wl])
    head = load_core(build_dir, "head")
    y = g.add_core(head, "head", pooled)
    outputs = [y]
    if decisions:
        d = g.tensor(DECISIONS, (1, len(decisions) * (1 + keep_word)), "INT16")
        g.node("TokenJoin_rtl", decisions, [d], "decision_join", InLens=[1 + keep_word] * len(decisions))
        outputs.append(d)
    model = g.model([INPUT], outputs, stem)
    return model


class InsertStreamFIFOs:
    """A StreamingFIFO_rtl on every stream between two HW nodes that are not FIFOs themselves, of that stream's own
    folded shape and datatype (output ``j`` of its producer: unlike FINN's InsertFIFO, right for nodes whose outputs
    differ in shape). Depth ``depths.get(name, 2)``; the FIFO is named ``<producer>_o<j>_fifo``."""

    def __init__(self, depths: dict[str, int] | None = None):
        self.depths = depths or {}

    def apply(self, model):
        from onnx import helper
        from qonnx.custom_op.registry import getCustomOp

        new_nodes = []
        for n in list(model.graph.node):
            new_nodes.append(n)
            if n.op_type.startswith("StreamingFIFO"):
                continue
            inst = getCustomOp(n)
            for j, t in enumerate(list(n.output)):
                cons = model.find_consumers(t)
                if len(cons) != 1 or cons[0].op_type.startswith("StreamingFIFO"):
                    continue
                name = f"{n.name}_o{j}_fifo"
                t2 = f"{t}_fifo"
                model.set_tensor_shape(t2, list(model.get_tensor_shape(t)))
                model.set_tensor_datatype(t2, model.get_tensor_datatype(t))
                folded = [int(s) for s in inst.get_folded_output_shape(j)]
                fifo = helper.make_node("StreamingFIFO_rtl", [t], [t2], name=name, domain=RTL, backend="fpgadataflow",
                                        depth=int(self.depths.get(name, 2)), folded_shape=folded,
                                        normal_shape=[int(s) for s in inst.get_normal_output_shape(j)],
                                        dataType=inst.get_output_datatype(j).name, ram_style="auto")
                c = cons[0]
                c.input[:] = [t2 if i == t else i for i in c.input]
                new_nodes.append(fifo)
        model.graph.ClearField("node")
        model.graph.node.extend(new_nodes)
        return model, False


def _name_unnamed(model) -> None:
    seen: dict[str, int] = {}
    for n in model.graph.node:
        if not n.name:
            k = seen.get(n.op_type, 0)
            seen[n.op_type] = k + 1
            n.name = f"acc_{n.op_type}_{k}"


def insert_streams(model, part: str, depths: dict[str, int] | None = None):
    """FINN's width converters (InsertDWC, RTL) and a FIFO on every stream (``InsertStreamFIFOs``), the composed
    nodes keeping their names."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from onnx import helper

    from . import ops  # noqa: F401
    from .transforms import integer_eltwise_rtl

    names = {n.output[0]: n.name for n in model.graph.node}
    with integer_eltwise_rtl():
        model = model.transform(InsertDWC())
        for n in model.graph.node:
            if n.op_type == "StreamingDataWidthConverter":
                n.attribute.append(helper.make_attribute("preferred_impl_style", "rtl"))
        model = model.transform(SpecializeLayers(part))
    for n in model.graph.node:  # SpecializeLayers renames every node <op>_<i>: keep the composed names
        n.name = names.get(n.output[0], "")
    _name_unnamed(model)
    model, _ = InsertStreamFIFOs(depths).apply(model)
    return model


def to_hw(model, part: str, clk_ns: float, depths: dict[str, int] | None = None):
    """Width converters, FIFOs (``insert_streams``) and HDL for every node (FINN's PrepareIP)."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    return insert_streams(model, part, depths).transform(PrepareIP(part, clk_ns))


# ---------------------------------------------------------------------------------------------- execution
def python_model(model):
    """The graph with every ``*_rtl`` node (and MVAU_lut) as its abstract FINN op: FINN's python execution."""
    from . import ops  # noqa: F401  registers the abstract ops too
    m = copy.deepcopy(model)
    for n in m.graph.node:
        op, _, impl = n.op_type.rpartition("_")
        if impl in ("rtl", "lut"):
            n.op_type, n.domain = op, "finn.custom_op.fpgadataflow"
    return m


def run_python(model, images_nhwc: np.ndarray, trace: list[str] | None = None) -> dict[str, np.ndarray]:
    """FINN's execute_onnx of ``python_model(model)``, image by image; {output (and traced) tensor: (N, ...)}."""
    from finn.core.onnx_exec import execute_onnx

    pm = python_model(model)
    outs = [o.name for o in pm.graph.output] + list(trace or [])
    res: dict[str, list] = {o: [] for o in outs}
    for i in range(len(images_nhwc)):
        ctx = execute_onnx(pm, {pm.graph.input[0].name: images_nhwc[i:i + 1].astype(np.float32)},
                           return_full_exec_context=bool(trace))
        for o in outs:
            res[o].append(np.asarray(ctx[o]))
    return {o: np.concatenate(v) for o, v in res.items()}


# ---------------------------------------------------------------------------------------------- Verilator
@dataclass
class AcceleratorSizing:
    depths: dict[str, int]  # per StreamingFIFO_rtl
    peak_occupancy: dict[str, int]  # at the chosen depths (the sized run)
    unbounded_cycles: float  # cycles per image, every FIFO at two frames
    sized_cycles: float  # cycles per image at the chosen depths (sizing FIFOs)
    estimate_cycles: int  # FINN's max_cycles (slowest node)
    total_bits: int
    frames: int
    sized_run: object = None  # the SimResult at the chosen depths (outputs, cycles); not in to_dict
    unbounded_bits: int = 0  # FINN's rule alone: the bits of every FIFO at its peak with every FIFO at two frames
    frame_bound: float = 1.0  # the depths bounded at this many frames of each stream (0: the peaks alone)
    trimmed: list = field(default_factory=list)  # FIFOs the sequence model found idle, taken down (fifo_model.trim)
    model_cycles: dict = field(default_factory=dict)  # the sequence model's cycles per image: peaks, trimmed
    window_cap: int = 0  # the depth the FIFOs behind the sliding windows were held to while measured (0: none)
    window_cap_cycles: float = 0.0  # cycles per image at that cap, every other FIFO at two frames

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {k: v for k, v in asdict(self).items() if k != "sized_run"}


# the depths tried for the FIFOs fed by sliding windows, doubling while that buys more than WINDOW_CAP_GAIN of the
# throughput (one SRL32 per bit is enough for most units; at 32 words static W8A8's window generators starved the
# MVAUs behind them, 1.65 % slower than its folding; at 64 as fast as with every FIFO at two frames)
WINDOW_FIFO_DEPTHS = (32, 64, 128, 256)
WINDOW_CAP_GAIN = 0.002
FRAME_FIFO_MIN = 64  # the bound's floor: a token stream's frame is a word (a gate's state, 21), several in flight
FRAME_BUFFER = "_framebuf"  # a gated block's input held for its decision: a whole frame, or the gate never sees it
FRAME_BOUNDS = (0.5, 1.0)  # the depth bounds tried, in frames of each stream, the least memory first
BRAM_DEPTH_FLOOR = 0.85  # a FIFO goes this far below its depth for a cheaper block-RAM geometry


def block_ram_depth(depth: int, width: int, part: str) -> int:
    """The largest depth in [``BRAM_DEPTH_FLOOR`` * depth, depth] whose fifo.sv memory takes fewer BRAM18 than
    ``depth`` (FINN's fitted cost), else ``depth``; only for a FIFO that fifo.sv builds in block RAM (or UltraRAM,
    which a part without it gets in block RAM). fifo.sv builds a power-of-two memory plus at most one power-of-two
    part beside it: a frame of 12,544 words plus one takes a 16k-deep memory (8 BRAM18 at 8 bits), 12,289 words
    8k + 4k (6)."""
    from finn.custom_op.fpgadataflow.streamingfifo import _resolve
    from finn.util.basic import is_versal
    from finn.util.resource_models import _fifo_cost

    def bram(d: int) -> int:
        return _fifo_cost(d, width, "block", is_versal(part)).bram

    if _resolve(depth, width, "auto") not in ("block", "ultra"):
        return depth

    lo, hi, need = int(np.ceil(BRAM_DEPTH_FLOOR * depth)), depth, bram(depth)
    if lo >= depth or bram(lo) >= need:
        return depth
    while hi - lo > 1:  # the cost grows with the depth: bisect for the last depth below it
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if bram(mid) < need else (lo, mid)
    return lo


def window_fifos(model) -> set[str]:
    """The FIFOs fed by a sliding-window generator (through width converters and FIFOs): they carry the image
    unfolded into windows, k*k times its size, and buffering there costs k*k times the bits it costs in front of
    the generator, which stalls when they are full."""
    from .pipeline_folding import upstream_node

    return {node.name for node in model.get_nodes_by_op_type("StreamingFIFO_rtl")
            if (src := upstream_node(model, node)) is not None
            and src.op_type.startswith("ConvolutionInputGenerator")}


def cap_windows(fifos, caps: list[int], windows: set[str], cap: int) -> list[int]:
    """``caps`` with the FIFOs behind the sliding windows at most ``cap`` (0: as they are)."""
    return [min(c, cap) if cap and s.node in windows else c for s, c in zip(fifos, caps)]


def window_capped(core, x: list, caps: list[int], windows: set[str], best):
    """The run and depth (0: none) of the FIFOs behind the sliding windows: the first of ``WINDOW_FIFO_DEPTHS``
    that doubling (or, at the last, their capacities, ``best``) speeds up by at most ``WINDOW_CAP_GAIN``. A cap
    that stalls the accelerator is passed over like one that slows it."""
    def at(cap: int):
        capped = cap_windows(core.fifos, caps, windows, cap)
        if capped == caps:
            return best
        return core.run(x, fifo_depths=capped, reset=True, check=False)

    def slower(run, than) -> bool:
        return run.stalled or run.cycles_per_frame > than.cycles_per_frame * (1 + WINDOW_CAP_GAIN)

    run = at(WINDOW_FIFO_DEPTHS[0])
    for cap, more in zip(WINDOW_FIFO_DEPTHS, WINDOW_FIFO_DEPTHS[1:] + (0,)):
        deeper = at(more) if more else best
        if run is best or not slower(run, deeper):
            return run, (0 if run is best else cap)
        run = deeper
    return best, 0


def size_fifos(model, images_nhwc: np.ndarray, part: str, clk_ns: float, cache_dir: Path | None = None,
               tolerance: float = 0.03, progress: bool = False, sequence=None):
    """FIFO depths by Verilator simulation on real images (their decisions vary frame to frame), FINN's simulation-
    based rule (depth = peak occupancy + 1) with the buffering moved to where it is cheapest: every FIFO at a capacity
    of two frames of its stream while measured, those behind a sliding window (``window_fifos``) at the least of
    ``WINDOW_FIFO_DEPTHS`` past which more buys no throughput (``window_capped``), so that frames wait in front of
    the window generators, unexpanded; then the peak occupancy of each, bounded at the least of ``FRAME_BOUNDS``
    (frames of each stream, at least ``FRAME_FIFO_MIN`` words; a gated block's frame buffer always holds a whole
    frame, or its gate never sees the frame end) and taken down to a cheaper block-RAM geometry (``block_ram_depth``),
    that runs the same images at the same throughput (within ``tolerance``) as the run it was measured on, else the
    peaks alone (``frame_bound`` 0), checked likewise. Fed back to back, the FIFOs in front of a slower node fill with images that wait for it; where more buys no throughput, the
    images wait in the host's buffer instead (the default as folded at b638e54, 77,748 cycles per image by the
    folding: 1.86 Mbit and 122 BRAM18 at one frame, 104,176 cycles per image; 1.23 Mbit and 83 BRAM18 at half a
    frame, 106,601, against 103,727 measured; the shipped default as the bench at 13a9de2 built it, 28,224 by the
    folding: 1.35 Mbit in all; the tiny test network's variation needs its peaks; bounding the FIFOs while
    measuring only moves the waiting images upstream). What holding the window FIFOs short costs in throughput
    (against every FIFO at two frames) is in the figures, ``unbounded_cycles`` beside ``window_cap_cycles`` and
    ``sized_cycles``. ``sequence``: the frame-sequence model of these FIFOs on a long run of decisions
    (``fifo_model.SequenceModel``, its first ones these images'), which trims the FIFOs that buy no throughput in
    the steady state (``fifo_model.trim``), kept where the simulation still runs as fast. Returns the model with the
    depths written and its HDL regenerated, and the figures."""
    from . import fifo_model
    from . import ops  # noqa: F401
    from .rtlsim import RTLSimCore, set_fifo_depths

    x = [np.asarray(images_nhwc, np.float32)]
    windows = window_fifos(model)
    with RTLSimCore(model, cache_dir=cache_dir, sizing_fifos=True, progress=progress) as core:
        caps = [s.max_depth + 1 for s in core.fifos]
        best = core.run(x, fifo_depths=caps, reset=True)
        moved, window_cap = window_capped(core, x, caps, windows, best)
        caps = cap_windows(core.fifos, caps, windows, window_cap)

        def holds(run) -> bool:
            return not run.stalled and run.cycles_per_frame <= moved.cycles_per_frame * (1 + tolerance)

        # a run slower than the tolerance is refused anyway: stop it there, not at the stall limit
        enough = int(moved.cycles * (1 + 2 * tolerance)) + 10_000

        def bounded(frames: float) -> list[int]:
            """The peaks, each at most ``frames`` frames of its stream (a frame buffer: a whole frame) and taken down
            to a cheaper block-RAM geometry."""
            out = []
            for s, m, c in zip(core.fifos, moved.fifo_maxcount, caps):
                whole = s.node.endswith(FRAME_BUFFER)
                f = max(int((1 if whole else frames) * s.words_per_frame) + 1, FRAME_FIFO_MIN)
                d = max(2, min(m + 1, c, f))
                out.append(d if whole else block_ram_depth(d, s.width, part))
            return out

        frame_bound = 0.0
        for frames in FRAME_BOUNDS:
            depths = bounded(frames)
            sized = core.run(x, cycle_limit=enough, fifo_depths=depths, reset=True, check=False)
            if holds(sized):
                frame_bound = frames
                break
        else:  # this pipeline's frame-to-frame variation needs more than a frame somewhere
            depths = [max(2, min(m + 1, c)) for m, c in zip(moved.fifo_maxcount, caps)]
            sized = core.run(x, fifo_depths=depths, reset=True, check=False)
        if not holds(sized):
            raise FracskipError(f"peak-occupancy FIFO depths do not reproduce the run they were measured on "
                                f"({sized.stalled=}, {sized.cycles_per_frame:.0f} vs {moved.cycles_per_frame:.0f} "
                                "cycles per image"
                                + (f"; {sized.stall_diagnosis})" if sized.stalled else ")"))
        trimmed, model_cycles = [], {}
        if sequence is not None:
            peaks = {s.node: d for s, d in zip(core.fifos, depths)}
            model_cycles["peaks"] = sequence.cycles(peaks)
            # what a FIFO holds of an image passing alone (a residual's shortcut: what the convolutions take in
            # before their first output) is no image waiting: the model sees frames, not words, and no trim goes
            # below it. One image of each mode of each gated block, alone
            floor: dict[str, int] = {}
            for i in fifo_model.covering(sequence.decisions[:len(images_nhwc)]):
                alone = core.run([x[0][i:i + 1]], fifo_depths=caps, reset=True, check=False)
                for s, m in zip(core.fifos, alone.fifo_maxcount):
                    floor[s.node] = max(floor.get(s.node, 2), m + 1)
            small, trimmed = fifo_model.trim(sequence, peaks, spare=windows, floor=floor)
            if trimmed:
                run = core.run(x, cycle_limit=enough, fifo_depths=[small[s.node] for s in core.fifos], reset=True,
                               check=False)
                if holds(run):
                    depths, sized = [small[s.node] for s in core.fifos], run
                    model_cycles["trimmed"] = sequence.cycles(small)
                else:  # the model sees frames, not words: a FIFO it found idle absorbed a burst within a frame
                    log.info("trimming %d FIFOs slowed the sizing run (%s): kept at their peaks", len(trimmed),
                             "stalled" if run.stalled else f"{run.cycles_per_frame:.0f} cycles per image")
                    trimmed = []
        slots = core.fifos
        est = int(core.estimate["max_cycles"])
    chosen = {s.node: d for s, d in zip(slots, depths)}
    report = AcceleratorSizing(depths=chosen, peak_occupancy={s.node: m for s, m in zip(slots, sized.fifo_maxcount)},
                               unbounded_cycles=best.cycles_per_frame, sized_cycles=sized.cycles_per_frame,
                               estimate_cycles=est, total_bits=sum(d * s.width for s, d in zip(slots, depths)),
                               frames=len(images_nhwc), sized_run=sized,
                               unbounded_bits=sum(m * s.width for s, m in zip(slots, best.fifo_maxcount)),
                               frame_bound=frame_bound, trimmed=trimmed, model_cycles=model_cycles,
                               window_cap=window_cap, window_cap_cycles=moved.cycles_per_frame)
    return set_fifo_depths(model, chosen, part, clk_ns), report


# ---------------------------------------------------------------------------------------------- host side, build
class Host:
    """What stays on the host, from the build's cores (FINN's parent graphs, as the board driver runs them): the
    stem's input transpose (NCHW pixels -> the NHWC stream) and the head's float scale and bias."""

    def __init__(self, build_dir: str | Path):
        from .host_ops import core_io

        self.stem, self.head = core_io(build_dir, "stem"), core_io(build_dir, "head")

    def stream(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 pixels -> (N, H, W, C) float32, the accelerator's input stream."""
        return np.asarray(self.stem.pre(self.stem.check_input(images)), np.float32)

    def logits(self, head_out: np.ndarray) -> np.ndarray:
        """The head's integer output -> logits (the head's float tail)."""
        return np.asarray(self.head.post(np.asarray(head_out)), np.float32)


@dataclass
class AcceleratorRun:
    """One batch through the accelerator: integer head outputs, decisions, and (Verilator) cycles."""

    head_out: np.ndarray  # (N, classes) integers
    decisions: np.ndarray  # (N, gated blocks) menu indices
    cycles_per_image: float | None = None  # steady state, images streamed back to back
    latency: int | None = None  # cycles to the first image's results
    cycles: int | None = None
    keep: np.ndarray | None = None  # (N, gated blocks) keep bits of a channel-skipping network's gates


def _run(out: dict[str, np.ndarray], n: int, per_block: int, **cycles) -> AcceleratorRun:
    """The head's integers and the decision output, [d] or [d, keep] per gated block, of ``n`` images."""
    head = next(v for k, v in out.items() if k != DECISIONS)
    dec, keep = split_decisions(out.get(DECISIONS, np.zeros((n, 0))).reshape(n, -1), per_block)
    return AcceleratorRun(head.reshape(n, -1), dec, keep=keep, **cycles)


def decision_words(model) -> int:
    """Words per gated block on the decision output: 1, or 2 with channel heads ([d, keep])."""
    join = model.get_node_from_name("decision_join")
    if join is None:
        return 1
    from qonnx.custom_op.registry import getCustomOp

    return int(getCustomOp(join).get_nodeattr("InLens")[0])


def run_rtlsim(sim, stream: np.ndarray, per_block: int = 1,
               on_images: Callable[[int], None] | None = None) -> AcceleratorRun:
    """Stream images (NHWC, ``Host.stream``) back to back through an ``RTLSimCore`` of the accelerator;
    ``on_images``: called with the images done so far, now and then (``RTLSimCore.run``'s ``on_frames``)."""
    res = sim.run([np.asarray(stream, np.float32)], on_frames=on_images)
    out = dict(zip([s.tensor for s in sim.outputs], res.outputs))
    return _run(out, len(stream), per_block, cycles_per_image=res.cycles_per_frame, latency=res.latency,
                cycles=res.cycles)


def chunks(n: int, jobs: int) -> list[slice]:
    """``n`` images in at most ``jobs`` contiguous shares of two or more (a share's steady state is the spacing of
    its results: one image has none)."""
    k = max(1, min(int(jobs), n // 2))
    bounds = np.linspace(0, n, k + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def pooled_spacing(per_share: list[float], shares: list[slice]) -> float:
    """The steady-state cycles per image of several streams: each share's spacing weighted by its gaps."""
    gaps = [max(s.stop - s.start - 1, 0) for s in shares]
    if sum(gaps) == 0:
        return float(per_share[0])
    return float(sum(c * g for c, g in zip(per_share, gaps)) / sum(gaps))


def run_rtlsim_shares(sims, stream: np.ndarray, per_block: int = 1,
                      advance: Callable[[int], None] | None = None) -> tuple[AcceleratorRun, list[slice]]:
    """``run_rtlsim`` with the images in contiguous shares, one Verilator model (its own process) per share, all
    at once: the results in input order, the steady state pooled over the shares, the latency of the first.
    ``advance``: called with the number of images each share has newly done (a progress bar's ``update``)."""
    from concurrent.futures import ThreadPoolExecutor

    shares = chunks(len(stream), len(sims))

    def one_share(sim, share: slice) -> AcceleratorRun:
        done = 0

        def on_images(n: int) -> None:
            nonlocal done
            advance(n - done)
            done = n

        return run_rtlsim(sim, stream[share], per_block, on_images if advance else None)

    with ThreadPoolExecutor(len(shares)) as pool:  # each model runs in its own process: the threads only wait
        runs = list(pool.map(one_share, sims, shares))
    run = AcceleratorRun(np.concatenate([r.head_out for r in runs]), np.concatenate([r.decisions for r in runs]),
                         cycles_per_image=pooled_spacing([r.cycles_per_image for r in runs], shares),
                         latency=runs[0].latency, cycles=sum(r.cycles for r in runs),
                         keep=None if runs[0].keep is None else np.concatenate([r.keep for r in runs]))
    return run, shares


def run_python_batch(model, stream: np.ndarray) -> AcceleratorRun:
    return _run(run_python(model, stream), len(stream), decision_words(model))


ACC_DIR = "accelerator"
BASELINES_DIR = "baselines"  # BUILD/baselines/<design>/: a static pipeline emitted as the accelerator is
MODELS = ("step_accelerator_compose.onnx", "step_accelerator_hw.onnx", "step_accelerator_size_fifos.onnx")
STATIC = ("static_W2A2", "static_W4A4", "static_W8A8")  # hls.baselines: every block at one width, one pipeline
# dfs: bit-serial datapaths folded by the pipeline allocator; routed: K path cores each (a debugging aid);
# STATIC: the baselines, folded by the same allocator on the same budget
DESIGNS = ("dfs", "routed", *STATIC)
# the units of the MVAU layers outside the gated blocks: folded_dfs builds these (not the fixed-precision
# bit-serial unit, whose accumulator type would need its consumers re-typed)
FOLDED_UNITS = ("MVAU_rtl", "MVAU_lut")
SIZING_IMAGES = 24  # real images the build sizes the FIFOs on (their decisions vary frame to frame)
SEQUENCE_IMAGES = 200  # the images whose decisions the frame-sequence model trims and deepens the FIFOs on
EMITTED_FIT_ROUNDS = 5  # foldings tried, each with what the emitted design took beyond the one before kept out
# of its budget (static W4A4 of the default at e0eced3, the excess alone as the step: 55,720 LUT by Yosys, 53,996
# after three foldings, 53,787 after five, the device 53,200: its estimates fell ten times faster than Yosys's
# figure; with the step scaled by that, 50,691 after four)
SYNTH_GAIN_FLOOR = 0.1  # the least synthesized LUT per estimated LUT a folding is taken to save


def design_dir(build_dir: str | Path, design: str = "dfs") -> Path:
    """Where a design's accelerator goes: ``BUILD/accelerator/`` (dfs, routed), ``BUILD/baselines/<design>/``."""
    if design not in DESIGNS:
        raise FracskipError(f"unknown accelerator design {design!r}; choose one of {', '.join(DESIGNS)}")
    return Path(build_dir) / (BASELINES_DIR + "/" + design if design in STATIC else ACC_DIR)


def static_bits(design: str) -> int:
    """static_W4A4 -> 4."""
    return int(design.split("W")[1].split("A")[0])


def compose_design(build_dir: str | Path, design: str = "dfs", progress: bool = False,
                   reserve: dict[str, float] | None = None) -> tuple[object, dict]:
    """The accelerator graph of ``design`` and what the folding says of it. ``dfs``: every gated block's bit-serial
    datapath (``hls.modal.bitserial_datapath``), every node folded by ``hls.pipeline_folding`` (the slowest node's
    expected cycles per image minimized within the build's budget, less ``reserve`` where the device would not
    hold both); a static design (``STATIC``): ``hls.baselines.compose_static`` folded the same way on the same
    budget, its row of the same table; ``routed``: the path cores of the build as they were folded, a
    StreamRoute/StreamMerge per gated block (a debugging aid)."""
    if design == "routed":
        return compose(build_dir), {"design": design}
    design_dir(build_dir, design)  # refuses an unknown design
    from .pipeline_folding import _designs, folded_design, throughput_table

    # the design's own row (the bench's table takes the DFS row from the report, and folds the others itself)
    ctx = _designs(Path(build_dir), (design,))
    table = throughput_table(build_dir, units=FOLDED_UNITS, progress=progress, designs=ctx,
                             reserve={design: reserve or {}})
    row = table[design]
    # folded_design refuses a node put on the fixed-precision bit-serial unit: FOLDED_UNITS have none
    model = folded_design(build_dir, design, row["folding"], None if design == "dfs" else ctx["designs"][design][0])
    info = {"design": design, "units": list(FOLDED_UNITS), "cycles_per_image_model": row["cycles_per_image_model"],
            "cycles_per_image_model_stagewise": row["cycles_per_image_model_stagewise"],
            "bottleneck_model": row["bottleneck"], "bitops_per_image": row["bitops_per_image"],
            "resources_estimate": row["resources_estimate"], "budget": row["budget"], "fits_estimate": row["fits"],
            "resources_estimate_inserted": row["resources_estimate_inserted"], "fit_rounds": row["fit_rounds"],
            "folding": row["folding"], "fit_reserve": reserve or {},
            "throughput_table": {k: {kk: vv for kk, vv in v.items() if kk != "folding"}
                                 if isinstance(v, dict) and "folding" in v else v for k, v in table.items()}}
    return model, info


def refuse_unfitted(info: dict, summary: dict) -> None:
    """Stop a design no folding of which fits the build's budget, before its FIFOs are sized: the folding found
    (the slowest, for a budget far too small: millions of cycles per image) would take hours of Verilator."""
    if info.get("fits_estimate", True):
        return
    # the fit counts FINN's width converters and FIFOs beside the nodes: the nodes alone may be within the budget
    device = summary["board"]["resources"]
    total = info.get("resources_estimate_inserted") or info["resources_estimate"]
    over = {r: v for r, v in total.items() if v > info["budget"].get(r, 0.0)}
    need = max((v / device[r] if device.get(r) else math.inf for r, v in over.items()), default=math.inf)
    what = ", ".join(f"{r} {v:,.0f} of the budget's {info['budget'].get(r, 0.0):,.0f}" for r, v in over.items())
    fix = (f"pass --budget {math.ceil(need * 100) / 100:.2f} or more (of the {summary['board']['name']})"
           if need <= 1 else f"the {summary['board']['name']} cannot hold it: choose a larger board")
    raise FracskipError(f"{info['design']}: no folding fits the budget; the one found needs, FINN's width "
                        f"converters and FIFOs included, {what} ({info['cycles_per_image_model']:,.0f} cycles per "
                        f"image); {fix}")


def sequence_decisions(build_dir: str | Path, n: int = SEQUENCE_IMAGES) -> tuple:
    """(manifest, decisions, keep bits or None) the checkpoint takes on the first ``n`` images of the calibration
    split (the sizing images among them), what ``fifo_model.SequenceModel`` takes: the torch model's, which the
    accelerator's equal bit for bit."""
    from ..backends.torch_backend import TorchBackend

    man = Manifest.load(Path(build_dir) / "export")
    torch = TorchBackend(str(man.file(man.data["source_checkpoint"]["file"])), exact=True)
    _, choices, keep = torch.reference_trace(sizing_images(build_dir, n))
    return man, choices, keep


def sizing_images(build_dir: str | Path, n: int = SIZING_IMAGES) -> np.ndarray:
    """The first ``n`` images of the split the build calibrated on (training images: the test set stays unseen)."""
    return calibration_data(build_dir, "train", n).images.numpy()


def calibration_data(build_dir: str | Path, split: str, n: int):
    """``n`` images of ``split`` of the dataset the build calibrated on, from where it read them (``--data``)."""
    from ..training import data as D

    calib = json.loads((Path(build_dir) / "calibration.json").read_text())
    return D.load(calib["dataset"], split, calib.get("data_dir"), n)


def build_accelerator(build_dir: str | Path, images: np.ndarray | None = None, design: str = "dfs",
                      iface_pe: int = 1, cache_dir: Path | None = None, progress: bool = False,
                      synth: bool = False, jobs: int = 1) -> dict:
    """``BUILD/accelerator/`` (a static baseline: ``BUILD/baselines/<design>/``), FINN's layout:
    ``intermediate_models/`` (the composed graph, with FIFOs and HDL, and with the FIFOs sized on ``images`` by
    Verilator), ``report/accelerator.json``. ``images``: (N, C, H, W) uint8
    pixels, real ones (the sizing depends on their decisions); without them the FIFOs stay unsized. ``synth``:
    Yosys of the emitted HDL (``synth.hdl``, ``jobs`` processes), ``report/synth.json``, and the fit judged on it.
    Sized FIFOs that put the design over the device in block RAM or LUTs are moved to the other memory where that
    makes it fit (``fifo_memory``; ``fifo_memory`` in the report). Where the emitted design still does not fit the
    device (by Yosys with ``synth``, else by FINN's estimates of the sized FIFOs beside the folded nodes), it is
    folded again with what it took beyond the folding's figures kept out of its budget (``synth_extra``,
    ``sized_extra``; up to ``EMITTED_FIT_ROUNDS`` foldings; ``fit_reserve`` in the report)."""
    from ..outdir import replacing

    out = design_dir(Path(build_dir), design)
    if images is not None and len(images) < 2:  # as BuildConfig refuses --sizing-images
        raise FracskipError(f"{len(images)} sizing image(s): the FIFOs are sized for the steady state, the spacing "
                            "of results back to back: 2 images or more")
    if iface_pe != 1 and design != "routed":  # compose_design takes every other design's from its folding
        raise FracskipError(f"design {design} takes its interface PE from the folding: iface_pe must be 1")
    im, rep = out / "intermediate_models", out / "report"
    # a graph or report of an earlier run must not pass for this one's, nor be lost when this one fails
    with replacing(*(im / name for name in MODELS), rep / "accelerator.json", rep / "synth.json"):
        return _build_accelerator(Path(build_dir), images, design, iface_pe, cache_dir, progress, synth, jobs)


def _build_accelerator(build_dir: Path, images: np.ndarray | None, design: str, iface_pe: int,
                       cache_dir: Path | None, progress: bool, synth: bool, jobs: int) -> dict:
    import time

    from . import fifo_memory
    from .fifo_model import SequenceModel
    from .rtlsim import finn_estimate, setup_finn

    out = design_dir(build_dir, design)
    im, rep = out / "intermediate_models", out / "report"
    im.mkdir(parents=True, exist_ok=True)
    rep.mkdir(parents=True, exist_ok=True)
    summary = json.loads((build_dir / "summary.json").read_text())
    part, clk = summary["board"]["part"], summary["board"]["clk_ns"]
    setup_finn(out / "finn_tmp", cache_dir)
    stream = None if images is None else Host(build_dir).stream(images)
    reserve: dict[str, float] = {}
    decided = None  # the decisions the sequence model runs on
    last = None  # the previous folding's estimate and Yosys figures
    for attempt in range(1, EMITTED_FIT_ROUNDS + 1):
        t0 = time.time()
        if design == "routed":
            model, info = compose(build_dir, iface_pe=iface_pe), {"design": design}
        else:
            model, info = compose_design(build_dir, design, progress, reserve)
        if not reserve:
            refuse_unfitted(info, summary)
        elif not info.get("fits_estimate", True):
            # no folding fits beside the reserve: the one found would be sized in Verilator (hours, for the slowest)
            # and, no smaller, be over the device again, round after round
            raise FracskipError(
                f"the emitted {design} does not fit the {summary['board']['name']} (by "
                f"{'Yosys' if synth else 'FINN estimates'} after {attempt - 1} folding(s)), and no folding fits "
                f"beside what it takes beyond the folding ({', '.join(f'{r} {v:.0f}' for r, v in reserve.items())}): "
                "it cannot be folded to fit this device; choose a larger board (--board)")
        model.save(str(im / MODELS[0]))
        t_compose = time.time() - t0
        model = to_hw(model, part, clk)
        model.save(str(im / MODELS[1]))
        est = finn_estimate(model)
        report = {"nodes": len(model.graph.node), **info, "iface_pe": iface_pe,
                  "estimate": {k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in est.items()},
                  "inputs": [i.name for i in model.graph.input], "outputs": [o.name for o in model.graph.output],
                  "seconds": {"compose": round(t_compose, 1), "hdl": round(time.time() - t0 - t_compose, 1)},
                  "fit_attempts": attempt}
        sized_run = None
        if stream is not None:
            t1 = time.time()
            decided = decided or sequence_decisions(build_dir)
            log.info("%s: sizing its %d FIFOs in Verilator on %d images (a few runs)", design,
                     len(model.get_nodes_by_op_type("StreamingFIFO_rtl")), len(stream))
            model, sizing = size_fifos(model, stream, part, clk, cache_dir=cache_dir, progress=progress,
                                       sequence=SequenceModel(model, *decided))
            log.info("%s: FIFOs sized, %.2f Mbit, %.0f cycles per image in the sizing run", design,
                     sizing.total_bits / 1e6, sizing.sized_cycles)
            report["fifo_sizing"] = sizing.to_dict()
            model, report["fifo_deepened"] = deepen_frame_buffers(SequenceModel(model, *decided), summary["board"])
            model, report["fifo_memory"] = fifo_memory.place(model, part, clk, summary["board"]["resources"])
            sized_run = sizing.sized_run
            report["seconds"]["size_fifos"] = round(time.time() - t1, 1)
        report.update(emitted_fit(model, summary["board"]))
        if synth:
            from .synth.hdl import synth_report

            t1 = time.time()
            syn = synth_report(model, summary["board"], design, rep / "synth.json", cache_dir, jobs, progress)
            report.update(resources_synth=syn["total"], fits_device_synth=syn["fits"])
            if syn["fits"] and decided is not None and design != "routed":
                model, report = deepen_by_synth(model, report, decided, summary["board"], design,
                                                rep / "synth.json", cache_dir, jobs, progress)
            report["seconds"]["synth"] = round(time.time() - t1, 1)
        if design == "routed" or (stream is None and not synth):
            break
        more = (synth_extra(report, summary["board"], reserve, last) if synth
                else sized_extra(report, summary["board"]))
        if not more or attempt == EMITTED_FIT_ROUNDS:
            break
        if synth:
            last = {"folded": dict(report["resources_estimate_inserted"]), "synth": dict(report["resources_synth"])}
        # the emitted design does not fit: fold again with what it took beyond the folding kept out of its budget
        reserve = {r: max(reserve.get(r, 0.0), v) for r, v in more.items()}
        empty = [r for r, v in reserve.items() if v >= summary["board"]["resources"].get(r, 0)]
        if empty:
            raise FracskipError(
                f"the emitted {design} does not fit the {summary['board']['name']} ({', '.join(more)} over by "
                f"{'Yosys' if synth else 'FINN estimates'} after {attempt} folding(s)), and what it takes beyond "
                f"the folding ({', '.join(f'{r} {reserve[r]:.0f}' for r in empty)}) leaves no {', '.join(empty)} "
                "for the nodes: it cannot be folded to fit this device; choose a larger board (--board)")
        log.info("the emitted %s does not fit the device (%s over, by %s); folding again with %s reserved", design,
                 ", ".join(more), "Yosys" if synth else "FINN's estimates",
                 ", ".join(f"{r} {v:.0f}" for r, v in reserve.items()))
    if sized_run is not None:
        model.save(str(im / MODELS[2]))
        t2 = time.time()
        log.info("%s: the emitted HDL in Verilator on the same images", design)
        report["verified"] = verify_emitted(model, stream, sized_run, cache_dir, progress)
        report["seconds"]["verify"] = round(time.time() - t2, 1)
        # the sizing's total_bits is before the frame buffers were deepened (by the estimates, then by Yosys)
        report["fifo_bits_emitted"] = fifo_bits(model)
    (rep / "accelerator.json").write_text(json.dumps(report, indent=1, default=str))
    return {**report, "sizing_run": sized_run} if sized_run is not None else report


def deepen_frame_buffers(seq, board: dict) -> tuple[object, dict]:
    """``seq.model`` (a ``fifo_model.SequenceModel``) with its frame buffers holding as many frames more as the
    frame-sequence model finds worth it (``fifo_model.deepen``) while the emitted design fits the device by FINN's
    estimates (its FIFOs moved between block RAM and LUT RAM as ``fifo_memory`` would; ``board``'s resources may
    be widened by what Yosys found the estimates to miss, ``with_slack``), and what was done."""
    from . import fifo_memory, fifo_model
    from .rtlsim.fifo_sizing import set_fifo_depths

    model, uram, device = seq.model, board["resources"].get("URAM", 0) > 0, board["resources"]

    def fits(depths: dict[str, int]) -> bool:
        with fifo_model.depths_set(model, depths):
            return emitted_fit(model, board)["fits_device_estimate_emitted"] or bool(
                fifo_memory.plan(model, board["part"], device, uram))

    now = {k: int(i.get_nodeattr("depth")) for k, i in seq.fifos.items()}
    deeper, steps = fifo_model.deepen(seq, now, fits)
    changed = {k: d for k, d in deeper.items() if d != now[k]}
    out = {"frames_more": steps[-1][0], "images": len(seq.decisions), "buffers": sorted(changed),
           "steps": [{"frames_more": m, "cycles_per_image_model": c, "fifo_bits": b} for m, c, b in steps]}
    if not changed:
        return model, out
    log.info("frame buffers deepened by %d frames: %.0f -> %.0f cycles per image by the sequence model",
             steps[-1][0], steps[0][1], steps[-1][1])
    return set_fifo_depths(model, changed, board["part"], board["clk_ns"]), out


def with_slack(board: dict, estimated: dict[str, float], synthesized: dict[str, float]) -> dict:
    """``board`` with each resource widened by what FINN's estimates of an emitted design count above Yosys's
    figures of its HDL (``estimated``, ``synthesized``): the device as the estimates see it, so that a design judged
    by them is judged as Yosys would."""
    res = dict(board["resources"])
    for r, v in synthesized.items():
        if r in res and estimated.get(r, 0.0) > v:
            res[r] = res[r] + estimated[r] - v
    return {**board, "resources": res}


def deepen_by_synth(model, report: dict, decided: tuple, board: dict, design: str, path: Path,
                    cache_dir: Path | None, jobs: int, progress: bool):
    """After Yosys found the emitted ``model`` within the device: its frame buffers deepened further where the
    estimates refused a frame that Yosys has room for (``deepen_frame_buffers`` on the device widened by the
    estimates' misses, ``with_slack``), taken only if Yosys of the deeper design fits too; ``path`` (synth.json)
    then holds its figures. Returns the model and ``report`` updated (``fifo_deepened_synth``)."""
    from . import fifo_memory
    from .fifo_model import SequenceModel
    from .synth.hdl import synthesize_graph, write_report

    wide = with_slack(board, report["resources_estimate_emitted"]["total"], report["resources_synth"])
    deeper, steps = deepen_frame_buffers(SequenceModel(model, *decided), wide)
    if not steps["buffers"]:
        return model, report
    # Yosys first as it is: the estimates' FIFO moves into LUT RAM are priced at FINN's figures, far below Yosys's
    # (a frame buffer of 25,089 bytes: 6,149 LUTs by FINN's, 9,015 by Yosys)
    moves: list = []
    syn = synthesize_graph(deeper, board["resources"], cache_dir, jobs, progress)
    if not syn["fits"]:
        deeper, moves = fifo_memory.place(deeper, board["part"], board["clk_ns"], wide["resources"])
        if moves:
            syn = synthesize_graph(deeper, board["resources"], cache_dir, jobs, progress)
    steps.update(fifo_memory=moves, resources_synth=syn["total"], fits_device_synth=syn["fits"])
    if not syn["fits"]:  # synth.json stays the emitted design's
        log.info("frame buffers a frame deeper do not fit the device by Yosys either: kept as they were")
        return model, {**report, "fifo_deepened_synth": steps}
    write_report(syn, board, design, path)
    log.info("frame buffers deepened to %d frames more, within the device by Yosys", steps["frames_more"])
    report = {**report, **emitted_fit(deeper, board), "fifo_deepened_synth": steps, "resources_synth": syn["total"],
              "fits_device_synth": syn["fits"], "fifo_memory": report.get("fifo_memory", []) + moves}
    return deeper, report


def sized_extra(report: dict, board: dict) -> dict[str, float]:
    """Per resource over the device in an emitted design: what it takes beyond the folding's own figure (nodes,
    depth-2 FIFOs, width converters), the FIFO depths sizing gave; {} when it fits."""
    total = report["resources_estimate_emitted"]["total"]
    folded = report.get("resources_estimate_inserted") or {}
    return {r: v - folded.get(r, 0.0) for r, v in total.items()
            if v > board["resources"].get(r, 0) and v > folded.get(r, 0.0)}


def synth_extra(report: dict, board: dict, reserve: dict[str, float], last: dict | None = None) -> dict[str, float]:
    """Per budgeted resource over the device by Yosys in an emitted design: what it takes beyond the folding's
    estimate (the estimates' misses, the sized FIFOs), and at least the reserve so far plus the excess, so that
    each folding again is smaller; {} when it fits. The excess counts in estimated units: divided by what the
    ``last`` folding (its ``folded`` estimate and ``synth`` figures) saved in synthesized per estimated unit, when
    it saved less than one (a folding whose estimate falls faster than what Yosys finds needs a larger step); only
    for a resource that folding had a reserve of (another one's estimate moves for other reasons: a LUT reserve
    moves memories into block RAM)."""
    total, device = report["resources_synth"], board["resources"]
    folded = report.get("resources_estimate_inserted") or {}
    out = {}
    for r in folded:
        if r not in total or total[r] <= device.get(r, 0):
            continue
        gain = 1.0
        if last and r in reserve and last["folded"].get(r, 0.0) > folded[r]:
            saved = (last["synth"][r] - total[r]) / (last["folded"][r] - folded[r])
            gain = min(1.0, max(SYNTH_GAIN_FLOOR, saved))
        out[r] = max(total[r] - folded[r], reserve.get(r, 0.0) + (total[r] - device[r]) / gain)
    return out


def emitted_fit(model, board: dict) -> dict:
    """The emitted graph by FINN's estimates against the whole device: the folded nodes and the width converters
    and FIFOs FINN inserted (which the folding's budget leaves out)."""
    from .pipeline_folding import emitted_resources

    res = emitted_resources(model, board["part"], uram=board["resources"].get("URAM", 0) > 0)
    over = {r: v for r, v in res["total"].items() if v > board["resources"].get(r, 0)}
    return {"resources_estimate_emitted": res, "fits_device_estimate_emitted": not over}


def fifo_bits(model) -> int:
    """Bits of the FIFOs of ``model`` at their depths, each its stream's padded width (as ``size_fifos`` counts)."""
    from qonnx.custom_op.registry import getCustomOp

    return sum(int(i.get_nodeattr("depth")) * int(i.get_instream_width_padded())
               for i in map(getCustomOp, model.get_nodes_by_op_type("StreamingFIFO_rtl")))


def verify_emitted(model, stream: np.ndarray, sized_run, cache_dir: Path | None = None,
                   progress: bool = False) -> dict:
    """The HDL as emitted (FINN's fifo.sv at the chosen depths, not the sizing FIFOs) on the sizing images: it must
    not stall and must give the sizing run's outputs. Its Verilator model is cached, for ``rtlsim`` to reuse."""
    from .rtlsim import RTLSimCore

    with RTLSimCore(model, cache_dir=cache_dir, progress=progress) as sim:
        res = sim.run([np.asarray(stream, np.float32)])  # a stall raises, naming the stage that stopped
    for name, a, b in zip([o.name for o in model.graph.output], res.outputs, sized_run.outputs):
        if not np.array_equal(a, b):
            raise FracskipError(f"the emitted accelerator's {name} differs from the sizing run's on the same images")
    return {"images": len(stream), "cycles_per_image": res.cycles_per_frame, "latency_cycles": res.latency}


def accelerator_model(build_dir: str | Path, design: str = "dfs"):
    """The newest accelerator graph of a build (sized if it was)."""
    from qonnx.core.modelwrapper import ModelWrapper

    im = design_dir(build_dir, design) / "intermediate_models"
    if not (im / MODELS[2]).is_file() and has_accelerator(build_dir, design) \
            and accelerator_report(build_dir, design).get("fifo_sizing"):
        raise FracskipError(f"{im / MODELS[2]} is missing, though the build sized its FIFOs (its report says so): the "
                            "graph before sizing has depth-2 FIFOs, which deadlock. Rebuild: `python -m "
                            f"fracskip.hls.accelerator {build_dir}` or `fracskip build` again")
    for name in reversed(MODELS[1:]):
        if (im / name).is_file():
            return ModelWrapper(str(im / name))
    raise FracskipError(f"{im} has no accelerator graph: build one with `fracskip build` (--until hdl) or "
                        "`python -m fracskip.hls.accelerator BUILD`")


def accelerator_report(build_dir: str | Path, design: str = "dfs") -> dict:
    path = design_dir(build_dir, design) / "report" / "accelerator.json"
    if not path.is_file():
        hint = ("`fracskip build --baselines` emits the static pipelines" if design in STATIC else
                "build one with `fracskip build` (--until hdl)")
        raise FracskipError(f"{path} missing: the build has no {design} accelerator; {hint}")
    return load_json(path, f"rebuild the accelerator (`python -m fracskip.hls.accelerator {build_dir}`)")


def has_accelerator(build_dir: str | Path, design: str = "dfs") -> bool:
    return (design_dir(build_dir, design) / "report" / "accelerator.json").is_file()


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rtlsim(build_dir: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
           cache_dir: Path | None = None, progress: bool = False, python_images: int = 0, design: str = "dfs") -> dict:
    """``rtlsim_run``'s figures alone: what ``fracskip simulate BUILD --backend rtlsim --json`` prints and the bench
    records."""
    return rtlsim_run(build_dir, images, labels, cache_dir, progress, python_images, design)[0]


def model_on_images(build_dir: str | Path, images: np.ndarray, batch: int = 500, progress: bool = False) -> dict:
    """The DFS accelerator of the build on more images than Verilator runs in reasonable time: its frame-sequence
    model (``frame_sequence_cycles`` with the emitted FIFOs' capacities, the figure ``rtlsim_run`` holds the measured
    spacing to as ``measured_vs_model_these_images``) on the decisions the torch model (float64: the hardware's,
    bit for bit) takes on ``images`` streamed back to back, and their BitOPs per image."""
    from ..backends.torch_backend import TorchBackend
    from ..runtime.controller import Controller
    from .pipeline_folding import frame_sequence_cycles
    from .rtlsim import setup_finn

    build_dir = Path(build_dir)
    setup_finn(design_dir(build_dir) / "finn_tmp")
    from . import ops  # noqa: F401  the accelerator's own nodes

    model, man = accelerator_model(build_dir), Manifest.load(build_dir / "export")
    torch = TorchBackend(str(man.file(man.data["source_checkpoint"]["file"])), exact=True)
    _, choices, keep = torch.reference_trace(images, batch, progress)
    cycles, latency = frame_sequence_cycles(model, choices, man, capacities=True, keep=keep)
    return {"n": len(images), "cycles_per_image_model": cycles, "latency_cycles_model": latency,
            "bitops_per_image": float(Controller(man, None).bitops(choices, keep).mean()),
            "what": "the frame-sequence model of the emitted DFS accelerator (its FIFOs' capacities) on these images' "
                    "decisions (torch float64, the hardware's), back to back from an empty pipeline"}


def rtlsim_run(build_dir: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
               cache_dir: Path | None = None, progress: bool = False, python_images: int = 0,
               design: str = "dfs", threads: int = 1, jobs: int = 1) -> tuple[dict, AcceleratorRun]:
    """The accelerator of a build in Verilator as one model, ``images`` ((N, C, H, W) uint8) streamed back to
    back, against goldens independent of the RTL: the numpy controller on the exported graphs (decisions and
    logits, float32 for float32), the PyTorch model (decisions, float64) and, on the first ``python_images``
    images, FINN's python execution of the same accelerator graph (head integers and decisions). A static baseline
    (``design`` in ``STATIC``, ``BUILD/baselines/<design>/``) has no decisions: its goldens are the controller and
    the torch model with every gated block forced to its width.

    Returns ``n``, ``bit_exact_pct`` (images whose logits and decisions equal the controller's, bit for bit),
    ``decisions_match_pct`` (vs the controller), ``decisions_match_torch_pct``, ``accuracy`` (with ``labels``),
    ``cycles_per_image_measured`` (steady state: spacing of result completions), ``cycles_per_image_model``
    (``hls.pipeline_folding``'s expected cycles of the slowest node, paths weighed as on the calibration images)
    and ``cycles_per_image_model_these_images`` (``frame_sequence_cycles``: these images' own modes frame by
    frame through every node, its FIFOs holding what their depths say; ``..._fifos_unbounded``: holding
    anything; ``..._mean_these_images``: the mean bound on their path frequencies),
    ``sim_images_per_s`` (the Verilator run alone, its model on ``threads`` threads; ``verilate_s`` is the compile,
    cached by content; ``sim_cxx_opt`` its C++ optimisation, -O2 for a run long enough to repay it). ``jobs`` > 1:
    that many models side by side, each streaming a contiguous share of the images back to back
    (``run_rtlsim_shares``); the measured and modelled steady states are then both pooled over the shares, each
    share starting from an empty pipeline."""
    import time
    from contextlib import ExitStack

    from tqdm import tqdm

    from ..runtime.controller import Controller
    from ..backends.qonnx_backend import QONNXBackend
    from ..backends.torch_backend import TorchBackend
    from .rtlsim import RTLSimCore, setup_finn
    from .rtlsim.verilator import cxx_opt_for

    build_dir = Path(build_dir)
    info = accelerator_report(build_dir, design)
    setup_finn(design_dir(build_dir, design) / "finn_tmp", cache_dir)
    from . import ops  # noqa: F401

    model = accelerator_model(build_dir, design)
    host = Host(build_dir)
    x = host.stream(images)
    model_cycles = info.get("cycles_per_image_model")
    parts = chunks(len(x), jobs)
    opt = cxx_opt_for((model_cycles or 0) * max(s.stop - s.start for s in parts))  # the longest share's cycles
    t0 = time.time()
    with ExitStack() as stack:
        first = stack.enter_context(RTLSimCore(model, cache_dir=cache_dir, progress=progress, threads=threads,
                                               opt=opt))
        sims = [first] + [stack.enter_context(first.sibling()) for _ in parts[1:]]
        t_build = time.time() - t0  # the model compiled, or found in the cache
        cpu0 = _children_cpu()  # the verilation's processes have ended: from here on, the simulators'
        t1 = time.time()
        with tqdm(total=len(x), desc=f"rtlsim ({len(parts)} model{'s' if len(parts) > 1 else ''})", unit="img",
                  disable=None if progress else True) as bar:
            rtl, shares = run_rtlsim_shares(sims, x, decision_words(model), bar.update)
        t_sim = time.time() - t1
        compiled, est, sim_model = first.compiled, first.estimate, first.sim_dir.name
    cpu_sim = _children_cpu() - cpu0  # its whole life (model construction included), counted once it has ended
    man = Manifest.load(build_dir / "export")
    bits = static_bits(design) if design in STATIC else None
    ctl_logits, trace = Controller(man, QONNXBackend(man, progress=False)).run(images, bits=bits)
    torch = TorchBackend(str(man.file(man.data["source_checkpoint"]["file"])), exact=True)
    torch_keep = None
    if bits is None:
        torch_logits, torch_choices, torch_keep = torch.reference_trace(images)
    else:
        torch_logits, torch_trace = Controller(man, torch).run(images, bits=bits)
        torch_choices = torch_trace.choices
    logits = host.logits(rtl.head_out)
    n = len(images)
    # a static pipeline decides nothing (it has no decision output): its logits alone are held to the golden
    dec_ok = (rtl.decisions == trace.choices).all(axis=1) if bits is None else np.ones(n, bool)
    torch_ok = (rtl.decisions == torch_choices).all(axis=1) if bits is None else None
    keep_ok = None
    if rtl.keep is not None and bits is None:  # a channel network: the keep bits are decisions too
        keep_ok = (rtl.keep == trace.keep).all(axis=1)
        dec_ok &= keep_ok
        torch_ok &= (rtl.keep == torch_keep).all(axis=1)
    exact = dec_ok & (logits.astype(np.float32) == ctl_logits.astype(np.float32)).all(axis=1)
    from .pipeline_folding import decision_frequencies, frame_sequence_cycles, pipeline_cycles

    # the model on these images: the folding's figure is a mean over the calibration images' paths; the frame
    # sequence of these images' own modes through every node is what the measured spacing is to be held to
    keep = trace.keep if bits is None else None
    these, these_node = pipeline_cycles(model, decision_frequencies(trace.choices, man, keep), list(man.bit_menu))

    def share(s: slice, **kw) -> tuple[float, int]:  # each share as its model streamed it, from an empty pipeline
        return frame_sequence_cycles(model, trace.choices[s], man, keep=None if keep is None else keep[s], **kw)

    seqs = [share(s, capacities=True) for s in shares]
    sequence, sequence_latency = pooled_spacing([c for c, _ in seqs], shares), seqs[0][1]
    unbounded = pooled_spacing([share(s)[0] for s in shares], shares)
    res = {
        "backend": "rtlsim", "design": design,
        "what": f"the {info.get('design', 'routed')} accelerator, "
                + ("one Verilator model" if len(shares) == 1 else
                   f"{len(shares)} Verilator models side by side, a contiguous share of the images each")
                + ", images back to back",
        "golden": "numpy controller on the exported graphs (logits, decisions); torch float64 (decisions)"
                  + ("" if bits is None else f"; every gated block forced to {bits} bits"),
        "n": n,
        "bit_exact_pct": 100.0 * float(exact.mean()),
        "decisions_match_pct": 100.0 * float(dec_ok.mean()) if bits is None else None,
        "decisions_match_torch_pct": 100.0 * float(torch_ok.mean()) if bits is None else None,
        "logits_max_abs_diff": float(np.abs(logits - ctl_logits).max()),
        "accuracy": None if labels is None else float((logits.argmax(1) == np.asarray(labels)).mean()),
        "torch_accuracy": None if labels is None else float((torch_logits.argmax(1) == np.asarray(labels)).mean()),
        "argmax_agreement_pct": 100.0 * float((logits.argmax(1) == torch_logits.argmax(1)).mean()),
        "cycles_per_image_measured": rtl.cycles_per_image,
        "cycles_per_image_model": model_cycles,
        "measured_vs_model": None if not model_cycles else rtl.cycles_per_image / model_cycles,
        "cycles_per_image_model_mean_these_images": these, "bottleneck_model_these_images": these_node,
        "cycles_per_image_model_these_images": sequence, "latency_cycles_model_these_images": sequence_latency,
        "cycles_per_image_model_these_images_fifos_unbounded": unbounded,
        "measured_vs_model_these_images": rtl.cycles_per_image / sequence if sequence else None,
        "cycles_per_image_finn_estimate": int(est["max_cycles"]), "finn_estimate_bottleneck": est["max_cycles_node_name"],
        "latency_cycles": rtl.latency, "cycles": rtl.cycles,
        "sim_images_per_s": n / t_sim, "sim_cycles_per_s": rtl.cycles / t_sim, "sim_s": round(t_sim, 2),
        "sim_threads": threads, "sim_jobs": len(shares), "sim_cxx_opt": opt,
        # the simulator's own CPU time: its speed on a machine shared with other work
        "sim_cpu_s": round(cpu_sim, 2), "sim_images_per_cpu_s": n / cpu_sim if cpu_sim > 0 else None,
        "verilate_s": round(t_build, 1), "rtlsim_build_s": round(t_build, 1), "verilated_now": bool(compiled),
        "sim_model": sim_model,  # the compiled model's key in the Verilator cache
        "path_use": {f"gate{g}": np.bincount(rtl.decisions[:, g], minlength=len(man.bit_menu)).tolist()
                     for g in range(rtl.decisions.shape[1])},
    }
    if keep_ok is not None:  # a channel network's keep bits (in decisions_match_pct too)
        res["keep_decisions_match_pct"] = 100.0 * float(keep_ok.mean())
    if python_images:
        k = min(int(python_images), n)
        py = run_python_batch(model, x[:k])
        res["python_images"] = k
        same = [np.array_equal(rtl.head_out[i], py.head_out[i]) and np.array_equal(rtl.decisions[i], py.decisions[i])
                and (py.keep is None or np.array_equal(rtl.keep[i], py.keep[i])) for i in range(k)]
        res["python_bit_exact_pct"] = 100.0 * float(np.mean(same))
    return res, rtl


def main(argv: list[str] | None = None) -> None:
    """``python -m fracskip.hls.accelerator BUILD [--images N] [--simulate M]``: BUILD/accelerator/ from an HDL
    build (``--design dfs``: the bit-serial datapaths folded by the pipeline allocator), FIFOs sized on N images of
    the build's calibration split; ``--simulate M``: M test images through its Verilator model against the goldens
    (JSON; ``--no-build`` uses the accelerator the build has). ``--throughput``: only the folding table of the DFS
    accelerator and the static pipelines (any build, estimates; ``python -m fracskip.hls.pipeline_folding``)."""
    import argparse

    def count(least: int):
        def parse(text: str) -> int:  # a negative --python ran all images but the last and reported nan
            if not text.strip().isdigit() or int(text) < least:
                raise argparse.ArgumentTypeError(f"a whole number of images, {least} or more, not {text!r}")
            return int(text)
        return parse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("build")
    ap.add_argument("--design", choices=DESIGNS, default="dfs")
    ap.add_argument("--images", type=count(2), default=SIZING_IMAGES,
                    help="images the FIFOs are sized on (2 or more: the steady state is the spacing of results)")
    ap.add_argument("--simulate", type=count(0), default=0, metavar="M", help="test images to simulate (0: none)")
    ap.add_argument("--python", type=count(0), default=0, metavar="K",
                    help="also check the first K against FINN's python execution of the graph (slow)")
    ap.add_argument("--no-build", action="store_true", help="simulate the accelerator the build already has")
    ap.add_argument("--throughput", action="store_true")
    args = ap.parse_args(argv)
    if args.throughput:
        from .pipeline_folding import main as throughput

        return throughput([args.build])
    if not (Path(args.build) / "summary.json").is_file():
        ap.error(f"{args.build} is not a build of `fracskip build` (it has no summary.json)")
    if args.no_build and not args.simulate:
        ap.error("--no-build simulates the accelerator the build has: give --simulate M")
    logging.basicConfig(level=logging.INFO)
    with reported():
        _main(args)


def _main(args) -> None:
    build_dir = Path(args.build)
    if not args.no_build:
        from .build import record_design

        rep = build_accelerator(build_dir, sizing_images(build_dir, args.images), design=args.design, progress=True)
        record_design(build_dir, args.design, rep)
        rep.pop("sizing_run", None)
        print(json.dumps({k: v for k, v in rep.items() if k not in ("fifo_sizing", "folding", "throughput_table")},
                         indent=1, default=str))
    if args.simulate:
        test = calibration_data(build_dir, "test", args.simulate)
        print(json.dumps(rtlsim(build_dir, test.images.numpy(), test.labels.numpy(), python_images=args.python,
                                design=args.design), indent=1, default=str))


if __name__ == "__main__":
    main()

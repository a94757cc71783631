"""One runtime-precision datapath per DFS block: the block's path cores merged into one mode-indexed FINN graph.

A build makes one FINN core per (block, bit-width) path. Their graphs share one skeleton, the nodes that move
or combine data (DuplicateStreams, FMPadding, ConvolutionInputGenerator, MVAU, ElementwiseAdd), and differ in
the elementwise stages on the edges between them (Thresholding, IntRequant, Clip; some paths lack a stage: the
8-bit path needs no input quantizer). ``modal_block`` writes one graph for every computing path at once:

- each MVAU becomes ``MVAU_bitserial`` holding every path's weights (the path's own weight and input widths per
  mode; accumulator out, as the paths' MVAUs have no activation either), and where the first stage after it is a
  threshold table in every path (relu1 once the menu has no 8-bit mode), that activation too, per mode, as FINN's
  MVAU with ``noActivation`` 0: the accumulator never leaves the unit, so no width converter narrows it and no
  FIFO holds it (see ``fusable_activation``);
- on each edge, stage j of the paths' chains becomes one ``ModalActivation`` (the path's threshold table,
  requantizer or clip per mode; bypass where the path has no stage j), or stays the paths' node where it is the
  same in every path (the residual Clip);
- skeleton nodes other than MVAUs are the widest path's, in the widest mode's datatype (its folding too);
- one ``ModeFork`` turns the frame's decision into the mode token of every mode-aware node.

Nodes are matched across paths by their place in the skeleton (op, geometry, and the places of their inputs),
not by name or order, so paths whose FINN graphs list nodes differently merge all the same.

    mode k of the graph == the path core of the k-th computing bit-width, frame by frame, integer for integer

``bitserial_datapath`` is the accelerator's datapath (``hls/accelerator.py``) built on it. Skip is not a mode of
the modal graph: a ``StreamRoute`` sends skipped frames past it (a wire, or a downsampling block's 1x1 shortcut
core) and a ``StreamMerge`` restores input order. ``MVAU_bitserial``'s menu holds only precisions that compute,
a skipped frame then costs the bit-serial units no cycles, and the downsampling skip (an 8-bit shortcut with
its own weights and no branch) has a skeleton of its own, which one merged graph cannot hold.

Measured (the tiny test network, Pynq-Z2 build at --target-fps 2000; the bit-serial units at the 8-bit path's PE
and SIMD): per gated block 16 nodes (ModeFork, 4 ModalActivation, 3 MVAU_bitserial, fork, 2 paddings, 3 sliding
windows, add, clip) in place of three cores of 14-15. FINN's python execution of each block's graph equals its
2-, 4- and 8-bit cores on real and random block inputs of mixed modes; the whole accelerator with
``bitserial_datapath`` equals the numpy controller on 4 images taking every path (skip included), and so does its
Verilator run with FIFOs sized on them (2,269,785 cycles for the 4 images at 2 weight planes per cycle). Cycles per
frame of the slowest bit-serial unit at 2 / 4 / 8 bits, 2 weight planes: 50,176 / 200,704 / 802,816 (block 1),
56,448 / 225,792 / 903,168 (block 2), against 25,088 and 28,224 for every path core (unfolded); the folding by
the gates' path frequencies is ``hls/pipeline_folding.py``'s (``folded_dfs`` builds with it). Block 2's graph alone in
Verilator, frames of 2, 4, 8, 2 bits back to back: 1,408,922 cycles against 1,241,856 for its slowest unit
(fill and drain of two units in series). Yosys ``synth_xilinx`` of the default's block 2 ModalActivations (PE
1, each threshold mode at its own width): input quantizer (3 / 15 thresholds / bypass, 16 channels) 55 LUT; middle
activation (3 / 15 thresholds / requant, 32 channels) 612 LUT, 4 DSP; add operands (requant x 3) 301 LUT, 4 DSP
and 248 LUT, 2 DSP.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import FracskipError
from .accelerator import BlockSpec, GraphBuilder
from .bitserial.core import MAX_MODES, MODE_TOKEN_BITS, mode_token_bits

log = logging.getLogger(__name__)

ELEMENTWISE = ("Thresholding", "IntRequant", "Clip")
# what makes two skeleton nodes the same place of the network (beyond op, shapes and inputs)
GEOMETRY = {
    "DuplicateStreams": ("NumOutputStreams",),
    "FMPadding": ("Padding", "ImgDim"),
    "ConvolutionInputGenerator": ("ConvKernelDim", "Stride", "Dilation", "IFMDim", "OFMDim", "depthwise"),
    "MVAU": ("MW", "MH"),
    "ElementwiseAdd": (),
}
COMMUTATIVE = ("ElementwiseAdd",)
INPUT = ("input",)
DTYPE_ATTRS = ("inputDataType", "outputDataType")


def base_op(op_type: str) -> str:
    """FINN's op without its backend suffix: MVAU_rtl, MVAU_lut -> MVAU."""
    op, _, impl = op_type.rpartition("_")
    return op if impl in ("rtl", "hls", "lut", "bitserial") else op_type


@dataclass
class Edge:
    """A data input of a skeleton node (or the graph output): where it comes from and the elementwise stages on
    the way."""

    source: tuple  # key of the producing skeleton node, or INPUT
    chain: list = field(default_factory=list)  # NodeProtos, in stream order


@dataclass
class Skeleton:
    model: object
    nodes: dict[tuple, object]  # key -> NodeProto
    inputs: dict[tuple, list[Edge]]  # key -> its data inputs, in the node's input order
    output: Edge
    order: list[tuple]  # keys, topological


def skeleton(model) -> Skeleton:
    """The skeleton of a path core's dataflow graph (one input, one output)."""
    from qonnx.custom_op.registry import getCustomOp

    from . import ops  # noqa: F401  registers fracskip's ops (DuplicateStreams_rtl, IntRequant_rtl, ...)

    keys: dict[str, tuple] = {}
    sk = Skeleton(model, {}, {}, Edge(INPUT), [])

    def data_inputs(n) -> list[str]:
        return [t for t in n.input if t and model.get_initializer(t) is None]

    def edge(tensor: str) -> Edge:
        p = model.find_producer(tensor)
        if p is None:
            if tensor != model.graph.input[0].name:
                raise FracskipError(f"{tensor}: neither produced nor the graph input")
            return Edge(INPUT)
        if base_op(p.op_type) in ELEMENTWISE:
            e = edge(p.input[0])
            e.chain.append(p)
            return e
        return Edge(key(p))

    def key(n) -> tuple:
        if n.name in keys:
            return keys[n.name]
        op = base_op(n.op_type)
        if op not in GEOMETRY:
            raise FracskipError(f"{n.name}: no rule to merge {n.op_type} across paths")
        ins = [edge(t) for t in data_inputs(n)]
        sources = [e.source for e in ins]
        inst = getCustomOp(n)
        geo = tuple((a, str(inst.get_nodeattr(a))) for a in GEOMETRY[op])
        k = (op, geo, tuple(sorted(sources) if op in COMMUTATIVE else sources),
             tuple(model.get_tensor_shape(n.output[0])))
        keys[n.name] = k
        sk.nodes[k] = n
        sk.inputs[k] = ins
        return k

    sk.output = edge(model.graph.output[0].name)
    for n in model.graph.node:  # FINN keeps its graphs topologically sorted
        if base_op(n.op_type) not in ELEMENTWISE:
            sk.order.append(key(n))
    if len(set(sk.order)) != len(sk.order):
        raise FracskipError("two nodes of one path take the same place in its skeleton: cannot match them")
    return sk


# ---------------------------------------------------------------------------------------------- mode functions
def mode_function(model, node):
    """The per-element function of one path's elementwise node (``None``: the path has no such stage)."""
    from qonnx.custom_op.registry import getCustomOp

    from .ops.modal_act_rtl import ModeFunction

    if node is None:
        return ModeFunction.bypass()
    inst, op = getCustomOp(node), base_op(node.op_type)
    if op == "Thresholding":
        idt = model.get_tensor_datatype(node.input[0])
        return ModeFunction.from_thresholds(model.get_initializer(node.input[1]), idt, inst.get_nodeattr("ActVal"))
    if op == "IntRequant":
        return ModeFunction.requant(inst.get_nodeattr("mul"), inst.get_nodeattr("bias"), inst.get_nodeattr("shift"),
                                    inst.get_nodeattr("lo"), inst.get_nodeattr("hi"))
    channels = inst.get_nodeattr("NumChannels")  # Clip
    return ModeFunction.requant([1] * channels, [0] * channels, 0, inst.get_nodeattr("lo"), inst.get_nodeattr("hi"))


# ---------------------------------------------------------------------------------------------- the merge
@dataclass
class ChannelPaths:
    """A channel-skipping block's cores (docs/channel-skipping.md): per bit-width, the core of each number of
    groups kept (1..groups), ``group`` channels of conv1's outputs per group. They differ only in relu1's
    thresholds (the mode's scale); which channels a frame keeps is its token's keep bits."""

    group: int
    groups: int
    by_kept: dict[int, dict[int, object]]  # bits -> groups kept -> the core's dataflow graph


class _Merge:
    """Writes one block's modal graph into a GraphBuilder (state of one ``modal_block`` call)."""

    def __init__(self, g: GraphBuilder, paths: dict[int, object], prefix: str, wbp: int,
                 folding: dict[str, dict] | None, channels: ChannelPaths | None = None):
        self.g, self.prefix, self.wbp, self.folding = g, prefix, wbp, folding or {}
        self.bits = sorted(paths)  # mode k = the k-th computing bit-width
        self.models = [paths[b] for b in self.bits]
        self.sks = [skeleton(m) for m in self.models]
        self.ref = self.sks[-1]  # the widest path: skeleton nodes, shapes, folding
        self.channels = channels
        # with channel groups, per bit-width the skeleton of each number of groups kept (1..groups)
        self.ksks = [[skeleton(channels.by_kept[b][k]) for k in range(1, channels.groups + 1)] for b in self.bits] \
            if channels else None
        keys = [set(s.order) for s in self.sks + [s for row in self.ksks or [] for s in row]]
        if any(k != keys[-1] for k in keys):
            raise FracskipError(f"{prefix}: the paths {self.bits} differ in structure beyond their elementwise "
                                "stages; they cannot share one datapath")
        self.mode_tokens: list[str] = []
        self.keep_out: list[int] = []  # per mode token: 1 when it carries the keep bits
        self.fused: set[tuple] = set()  # (consumer, MVAU) edges whose first stage the unit computes
        self.counts: dict[str, int] = {}
        self.skip_units: dict[tuple, str] = self._channel_units() if channels else {}

    def name(self, what: str) -> str:
        """A fresh name ``<prefix>_<what><i>``, numbered per ``what``."""
        i = self.counts.get(what, 0)
        self.counts[what] = i + 1
        return f"{self.prefix}_{what}{i}"

    def mode_token(self, keep: bool = False) -> str:
        bits = mode_token_bits(self.channels.groups) if keep else MODE_TOKEN_BITS
        t = self.g.tensor(f"{self.prefix}_mode{len(self.mode_tokens)}", (1, 1), f"UINT{bits}")
        self.mode_tokens.append(t)
        self.keep_out.append(int(keep))
        return t

    # ---- channel groups
    def _kept_chains(self, key, source) -> list[list[Edge]]:
        """Per bit-width, per number of groups kept: the edge of ``key``'s input from ``source`` (or the output)."""
        def find(sk):
            edges = [sk.output] if key is None else sk.inputs[key]
            return next(e for e in edges if e.source == source)
        return [[find(sk) for sk in row] for row in self.ksks]

    def _channel_units(self) -> dict[tuple, str]:
        """conv1, the MVAU whose outputs come in groups, and conv2, which reads them: the one pair of MVAUs with only
        data movers (padding, sliding window) between them. relu1 is the last stage on conv1's output edge."""
        def next_mvau(key):
            while True:
                consumers = [k for k in self.ref.order if any(f.source == key for f in self.ref.inputs[k])]
                if len(consumers) != 1 or consumers[0][0] in ("ElementwiseAdd", "DuplicateStreams"):
                    return None, None
                if consumers[0][0] == "MVAU":
                    return consumers[0], key
                key = consumers[0]

        pairs = [(k, *next_mvau(k)) for k in self.ref.order if k[0] == "MVAU"]
        pairs = [p for p in pairs if p[1] is not None]
        if len(pairs) != 1:
            raise FracskipError(f"{self.prefix}: channel groups need one MVAU feeding another through padding and a "
                                f"sliding window (conv1 into conv2), found {len(pairs)}")
        conv1, conv2, _ = pairs[0]
        self.keep_edge = (next(k for k in self.ref.order if any(f.source == conv1 for f in self.ref.inputs[k])),
                          conv1)  # (the consumer of conv1's output, conv1): relu1's edge
        return {conv1: "out", conv2: "in"}

    def _grouped_stage(self, kedges: list[list[Edge]], relu1: bool) -> int | None:
        """On relu1's edge its last stage (a function per groups kept, the dropped channels 0); any other stage
        must be one function whatever the groups kept."""
        last = max(len(e.chain) for row in kedges for e in row) - 1
        for j in range(last + 1):
            if relu1 and j == last:
                continue
            for b, row in enumerate(kedges):
                fns = [mode_function(self.ksks[b][k].model, e.chain[j] if j < len(e.chain) else None)
                       for k, e in enumerate(row)]
                if any(f != fns[-1] for f in fns):
                    raise FracskipError(f"{self.prefix}: an elementwise stage other than relu1's changes with the "
                                        "groups kept; the channel datapath scales only relu1's thresholds")
        if relu1 and last < 0:
            raise FracskipError(f"{self.prefix}: conv1's output has no activation to zero the dropped channels in")
        return last if relu1 else None

    def dtype(self, t: str) -> str:
        return self.g.value_info[t][1]

    # ---- elementwise chains
    def chain(self, edges: list[Edge], x: str, kedges: list[list[Edge]] | None = None, relu1: bool = False) -> str:
        """The stages of one edge in every path, applied to ``x``. ``kedges``: the edge in every core of a channel
        block (per bit-width, per groups kept); on relu1's edge the activation becomes a ModalActivation of every
        (bit-width, groups kept) that gives the dropped groups' channels 0."""
        from qonnx.core.datatype import DataType
        from qonnx.custom_op.registry import getCustomOp

        from .ops.modal_act_rtl import datatype_for

        grouped = self._grouped_stage(kedges, relu1) if kedges else None
        for j in range(max(len(e.chain) for e in edges)):
            nodes = [e.chain[j] if j < len(e.chain) else None for e in edges]
            fns = [mode_function(m, n) for m, n in zip(self.models, nodes)]
            channel_attrs = {}
            if j == grouped:  # mode m * groups + (kept - 1): ModalActivation's channel-group indexing
                fns = [mode_function(self.ksks[b][k].model, e.chain[j] if j < len(e.chain) else None)
                       for b, row in enumerate(kedges) for k, e in enumerate(row)]
                channel_attrs = {"channelGroup": self.channels.group}
            shape, idt = self.g.value_info[x][0], self.dtype(x)
            ref = nodes[-1]
            if (not channel_attrs
                    and all(f == fns[-1] and n is not None and n.op_type == ref.op_type for f, n in zip(fns, nodes))
                    and len(ref.input) == 1 and getCustomOp(ref).get_nodeattr("inputDataType") == idt):
                # the same stage in every path, on the same input type (the residual clip): the node itself
                y = self.g.tensor(self.name("t"), shape, self.ref_dtype(ref.output[0]))
                n = copy.deepcopy(ref)
                n.name, n.input[:], n.output[:] = self.name(base_op(ref.op_type).lower()), [x], [y]
                self.g.nodes.append(n)
            else:
                ranges = [f.out_range(DataType[idt]) for f in fns]
                odt = datatype_for(min(r[0] for r in ranges), max(r[1] for r in ranges)).name
                y = self.g.tensor(self.name("t"), shape, odt)
                inst = getCustomOp(next(n for n in reversed(nodes) if n is not None))
                self.g.node("ModalActivation_rtl", [x, self.mode_token(bool(channel_attrs))], [y], self.name("act"),
                            NumChannels=inst.get_nodeattr("NumChannels"), PE=inst.get_nodeattr("PE"),
                            inputDataType=idt, outputDataType=odt, numInputVectors=list(shape[:-1]),
                            modes=json.dumps([f.to_json() for f in fns]), **channel_attrs)
            x = y
        return x

    def ref_dtype(self, tensor: str) -> str:
        return self.ref.model.get_tensor_datatype(tensor).name

    # ---- skeleton nodes
    def fusable_activation(self, key: tuple) -> tuple[tuple, list] | None:
        """(consumer, one threshold ModeFunction per mode) when every path's first stage on the MVAU's one output
        edge is a threshold activation: the unit then computes it as FINN's MVAU does (``noActivation`` 0), so the
        accumulator never leaves it. In the default (menu {skip, 2, 4}) that is each block's relu1; an 8-bit mode's
        requantizer, or relu1 of a channel block (a function per groups kept), stays a ModalActivation."""
        if self.channels or len(self.bits) > MAX_MODES or self.ref.output.source == key:
            return None
        consumers = [(k, f) for k in self.ref.order for f in self.ref.inputs[k] if f.source == key]
        if len(consumers) != 1 or not consumers[0][1].chain:
            return None
        consumer = consumers[0][0]
        firsts = []
        for sk in self.sks:
            (edge,) = [f for f in sk.inputs[consumer] if f.source == key]
            firsts.append(edge.chain[0] if edge.chain else None)
        if any(n is None or base_op(n.op_type) != "Thresholding" for n in firsts):
            return None
        return consumer, [mode_function(m, n) for m, n in zip(self.models, firsts)]

    def mvau(self, key: tuple, x: str) -> str:
        from onnx import numpy_helper
        from qonnx.custom_op.registry import getCustomOp

        from .bitserial.core import BitSerialParams, Precision

        nodes = [s.nodes[key] for s in self.sks]
        insts = [getCustomOp(n) for n in nodes]
        ref = insts[-1]
        if any(i.get_nodeattr("noActivation") != 1 for i in insts):
            raise FracskipError(f"{nodes[-1].name}: an MVAU with embedded thresholds (the cores have standalone ones)")
        wdts = [i.get_input_datatype(1) for i in insts]
        adts = [i.get_input_datatype(0) for i in insts]
        if any(dt.signed() for dt in adts) or not all(dt.signed() for dt in wdts):
            raise FracskipError(f"{nodes[-1].name}: signed weights and unsigned inputs expected, have "
                                f"{[d.name for d in wdts]} x {[d.name for d in adts]}")
        vecs = [int(v) for v in ref.get_nodeattr("numInputVectors")]
        consumer, act_fns = self.fusable_activation(key) or (None, [])
        acts = [(max(1, f.steps.bit_length()), f.act_val) for f in act_fns] or [(0, 0)] * len(insts)
        name = self.name("mvau")
        fold = {"PE": ref.get_nodeattr("PE"), "SIMD": ref.get_nodeattr("SIMD"), "WBP": self.wbp,
                **self.folding.get(name, {})}
        skip = self.skip_units.get(key, "")
        groups = {"channel_skip": skip, "channel_group": self.channels.group} if skip else {}
        if skip == "in":  # a sliding window's vector: kernel positions x the grouped channels, conv1's outputs
            conv1 = next(k for k, v in self.skip_units.items() if v == "out")
            groups["in_channels"] = getCustomOp(self.ref.nodes[conv1]).get_nodeattr("MH")
        try:
            params = BitSerialParams(mw=ref.get_nodeattr("MW"), mh=ref.get_nodeattr("MH"), pe=fold["PE"],
                                     simd=fold["SIMD"], wbp=fold["WBP"],
                                     modes=tuple(Precision(w.bitwidth(), a.bitwidth(), *act)
                                                 for w, a, act in zip(wdts, adts, acts)),
                                     n_vectors=int(np.prod(vecs)), **groups)
        except FracskipError as exc:
            raise FracskipError(f"{name} (from {nodes[-1].name}, folded {fold}): {exc}; give it a folding of its "
                                "own (modal_block's `folding`)") from exc
        weights = []
        for m, n, b, wdt in zip(self.models, nodes, self.bits, wdts):
            w = self.g.tensor(self.name(f"W{b}_"), m.get_tensor_shape(n.input[1]), wdt.name)
            self.g.initializers.append(numpy_helper.from_array(m.get_initializer(n.input[1]).astype(np.float32), w))
            self.g.extra_annotations[w] = wdt.name
            weights.append(w)
        for b, f in zip(self.bits, act_fns):  # integers (ceiled, clipped): FINN's >= on them
            t = self.g.tensor(self.name(f"T{b}_"), (len(f.thresholds), f.steps), f"INT{params.acc_bits + 1}")
            self.g.initializers.append(numpy_helper.from_array(np.asarray(f.thresholds, np.float32), t))
            self.g.extra_annotations[t] = f"INT{params.acc_bits + 1}"
            weights.append(t)
        if act_fns:
            self.fused.add((consumer, key))
        # the unit's output type: the activation's codes, or without one its accumulator (INT<acc_bits>)
        odt = f"{'INT' if params.out_signed else 'UINT'}{params.out_bits_per_element}"
        y = self.g.tensor(self.name("t" if act_fns else "acc"), self.ref.model.get_tensor_shape(nodes[-1].output[0]),
                          odt)
        self.g.node("MVAU_bitserial", [x, self.mode_token(bool(skip))] + weights, [y], name,
                    MW=params.mw, MH=params.mh, PE=params.pe, SIMD=params.simd, WBP=params.wbp,
                    weightBits=[m.wbits for m in params.modes], inputBits=[m.abits for m in params.modes],
                    outputBits=[m.out_bits for m in params.modes], ActVals=[m.act_val for m in params.modes],
                    weightSigned=1, inputSigned=0, numInputVectors=vecs, modeStream=1,
                    channelSkip=params.channel_skip, channelGroup=params.channel_group, inChannels=params.in_channels)
        return y

    def copy_ref(self, key: tuple, xs: list[str]) -> list[str]:
        """The widest path's node on the modal inputs ``xs``, its datatype attributes those of the inputs."""
        from qonnx.custom_op.registry import getCustomOp

        node = self.ref.nodes[key]
        n = copy.deepcopy(node)
        n.name = self.name(base_op(node.op_type).lower())
        op = base_op(node.op_type)
        if op == "ElementwiseAdd":
            inst = getCustomOp(node)
            if [self.dtype(x) for x in xs] != [inst.get_nodeattr("lhs_dtype"), inst.get_nodeattr("rhs_dtype")]:
                raise FracskipError(f"{node.name}: the add's operands differ in type between paths")
            odt = inst.get_nodeattr("out_dtype")
        else:
            odt = self.dtype(xs[0])
            for a in n.attribute:
                if a.name in DTYPE_ATTRS:
                    a.s = odt.encode()
        n.input[:len(xs)] = xs
        ys = [self.g.tensor(self.name("t"), self.ref.model.get_tensor_shape(o), odt) for o in node.output]
        n.output[:] = ys
        self.g.nodes.append(n)
        return ys

    def run(self, x: str, decision: str, mode_of: list[int]) -> str:
        start = len(self.g.nodes)
        outputs: dict[tuple, list[str]] = {INPUT: [x]}
        used: dict[tuple, int] = {}

        def take(source: tuple) -> str:  # a fork's outputs are copies: each consumer takes the next one
            i = used.get(source, 0)
            used[source] = i + 1
            return outputs[source][i if source != INPUT else 0]

        def inputs_of(key: tuple) -> list[str]:
            # the same input in every path, found by its source (an add's operands may come in either order)
            pending = [list(s.inputs[key]) for s in self.sks]
            xs = []
            for e in self.ref.inputs[key]:
                edges = [p.pop(next(i for i, f in enumerate(p) if f.source == e.source)) for p in pending]
                if (key, e.source) in self.fused:  # its first stage is in the unit
                    edges = [Edge(f.source, f.chain[1:]) for f in edges]
                kedges = self._kept_chains(key, e.source) if self.channels else None
                relu1 = self.channels is not None and (key, e.source) == self.keep_edge
                xs.append(self.chain(edges, take(e.source), kedges, relu1))
            return xs

        for key in self.ref.order:
            xs = inputs_of(key)
            outputs[key] = [self.mvau(key, xs[0])] if key[0] == "MVAU" else self.copy_ref(key, xs)
        y = self.chain([s.output for s in self.sks], take(self.ref.output.source),
                       self._kept_chains(None, self.ref.output.source) if self.channels else None)
        groups = {"TokenLen": 2, "Groups": self.channels.groups, "KeepOut": self.keep_out} if self.channels else {}
        self.g.node("ModeFork_rtl", [decision], self.mode_tokens, f"{self.prefix}_modefork", ModeOf=list(mode_of),
                    **groups)
        self.g.nodes.insert(start, self.g.nodes.pop())  # before its consumers: FINN executes in list order
        # debug: every folding the allocator tries composes the blocks again, and the build log repeated it
        log.debug("%s: %d modes %s, %d mode-aware nodes", self.prefix, len(self.bits), self.bits, len(self.mode_tokens))
        return y


def modal_block(g: GraphBuilder, paths: dict[int, object], x: str, decision: str, prefix: str,
                mode_of: list[int] | None = None, wbp: int = 1, folding: dict[str, dict] | None = None,
                channels: ChannelPaths | None = None) -> str:
    """Add to ``g`` one datapath for the computing paths ``paths`` ({bits: path core's dataflow graph}) between
    ``x`` (the block input) and the returned block output. ``decision``: a (1, 1) INT16 stream, one word per frame;
    ``mode_of[d]`` the mode of decision ``d`` (mode k: the k-th smallest bit-width; -1: the frame does not come
    here), by default the decision is the mode. The bit-serial MVAUs take the widest path's PE and SIMD and ``wbp``
    weight bit-planes per cycle, unless ``folding`` (FINN's folding config: node name -> {"PE", "SIMD", "WBP"}; the
    units are ``<prefix>_mvau<i>`` in the order of the skeleton) says otherwise. ``channels``: a channel block's
    cores; ``paths`` then holds each bit-width's core of every group kept, and ``decision`` is the gate's
    ``[d, keep]`` ((1, 2) INT16, one 32-bit word per frame): conv1's unit skips its dropped output groups, conv2's
    its dropped input groups, and relu1's activation has a mode per (bit-width, groups kept)."""
    m = _Merge(g, paths, prefix, wbp, folding, channels)
    return m.run(x, decision, list(range(len(paths))) if mode_of is None else mode_of)


def modal_graph(paths: dict[int, object], wbp: int = 1, folding: dict[str, dict] | None = None,
                channels: ChannelPaths | None = None):
    """The modal datapath of one block as a FINN graph: inputs the block input and the (1, 1) INT16 mode of each
    frame (with ``channels``: (1, 2), the mode and the keep bits), output the block output."""
    ref = paths[max(paths)]
    g = GraphBuilder()
    x = g.tensor("block_in", ref.get_tensor_shape(ref.graph.input[0].name),
                 ref.get_tensor_datatype(ref.graph.input[0].name).name)
    mode = g.tensor("mode", (1, 2 if channels else 1), "INT16")
    y = modal_block(g, paths, x, mode, "modal", wbp=wbp, folding=folding, channels=channels)
    return g.model([x, mode], [y], opset_from=ref)


def bitserial_datapath(g: GraphBuilder, blk: BlockSpec, x: str, mode: str, wbp: int = 1,
                       folding: dict[str, dict] | None = None) -> str:
    """The accelerator's datapath of one gated block (``hls/accelerator.py``'s ``Datapath``): the block's
    computing paths as one modal datapath; with skip in the menu, a StreamRoute sends skipped frames past it (a
    wire, or the 1x1 shortcut core ``block<i>_b0``) and a StreamMerge restores their order."""
    menu = sorted(blk.paths)  # decision d is menu[d]
    computing = {b: c for b, c in blk.paths.items() if b != 0}
    p = f"block{blk.index}"
    if 0 not in blk.paths:
        return modal_block(g, computing, x, mode, f"{p}_modal", wbp=wbp, folding=folding, channels=blk.channel_paths)
    if menu[0] != 0:
        raise FracskipError(f"block {blk.index}: skip must be the menu's first entry, menu {menu}")
    ishape, oshape = (1, *blk.hw, blk.channels), (1, *blk.out_hw, blk.out_channels)
    D = 2 if blk.channel_paths else 1  # [d, keep] to the datapath, d to the router and the merge
    t_route, t_merge = (g.tensor(f"{p}_mode_{s}", (1, 1), "INT16") for s in ("route", "merge"))
    t_modal = g.tensor(f"{p}_mode_modal", (1, D), "INT16")
    g.node("TokenFork_rtl", [mode], [t_route, t_merge, t_modal], f"{p}_modefork3", TokenLen=D, OutLens=[1, 1, D])
    skip_in, modal_in = (g.tensor(f"{p}_route{k}", ishape, "UINT8") for k in range(2))
    # K = 2: the router clamps the decision to 0..1, so skip (0) goes to output 0 and every precision to 1
    g.node("StreamRoute_rtl", [x, t_route], [skip_in, modal_in], f"{p}_route", NumChannels=blk.channels,
           PE=blk.pe, dataType="UINT8", numInputVectors=[1, *blk.hw], K=2, TokenLen=1)
    if blk.paths[0] is None:
        if ishape != oshape:
            raise FracskipError(f"block {blk.index}: skip without a shortcut core, but its shape changes")
        skip_out = skip_in
    else:
        skip_out = g.add_core(blk.paths[0], f"{p}_b0", skip_in)
    bits = sorted(computing)
    mode_of = [-1 if b == 0 else bits.index(b) for b in menu]
    modal_out = modal_block(g, computing, modal_in, t_modal, f"{p}_modal", mode_of=mode_of, wbp=wbp,
                            folding=folding, channels=blk.channel_paths)
    y = g.tensor(f"{p}_out", oshape, "UINT8")
    g.node("StreamMerge_rtl", [skip_out, modal_out, t_merge], [y], f"{p}_merge", NumChannels=blk.out_channels,
           PE=blk.pe, dataType="UINT8", numInputVectors=[1, *blk.out_hw], K=2, TokenLen=1)
    return y


"""Folding of the one-pipeline accelerator: the slowest node's expected cycles per image, minimized within the
board budget (DESIGN.md, "The hardware mapping (version 2)"), and the static baselines folded the same way.

FINN runs every node of a dataflow graph at once, each on its own image, so a pipeline takes one image every
max_n(cycles_n) cycles. In the DFS accelerator the nodes do not all see every image alike: a gated block's
bit-serial unit takes b_a*ceil(b_w/WBP) cycles per fold for a frame of its mode, the other nodes of the block's modal
datapath see only the frames that compute, a downsampling block's shortcut only the skipped ones. With FIFOs that
absorb the frame-to-frame variation of the modes, node n's share of the pipeline is its expected cycles

    E[c_n] = sum_m p(m) * c_n(m)      m: the menu entries n serves; p(m): the gates' path frequencies on
                                      the build's calibration images (``calibration.json``), at
                                      least 1/N for N images (``path_frequencies``)

and the pipeline's throughput bound would be max_n E[c_n]. But inside a gated block the FIFOs hold a fraction of
a frame (those behind a sliding window 32 words), so the block's nodes take each frame together: a frame of mode m
keeps the block max_n c_n(m) cycles, a node of every frame (a sliding window, a padding, an add) bounding every
mode. So the bound is T = max(max_n E[c_n], max_b sum_m p(m) * max_{n in b} c_n(m)) (``cycles_per_image_model``;
the stage-wise term alone: ``cycles_per_image_model_stagewise``). For a static network p = 1 and the two are one
figure. Measured on the default (200 test images in Verilator) when the folding bounded max_n E[c_n] alone: 38,573
by the folding, 44,852 stage-wise, 46,586 cycles per image measured: block 1's sliding windows (28,476 cycles a
frame) were slower than its bit-serial units on a 2-bit frame (18,816) and idled through their 4-bit frames.

Ladders (``node_ladder``): every candidate folding of a node, its cycles per mode and its resources.
- MVAU layers: SIMD | MW and PE | MH as "Stream widths" below allows, weight words of at most 1,024 bits
  (``word_max``; the builder's SetFolding bound; a bit-serial unit's word is PE*SIMD*WBP bits, as it reads WBP
  planes per cycle), the weights in block or LUT RAM (MVAU_rtl: block RAM only, as FINN estimates no LUTs for it),
  and, among ``units``, the unit: FINN's MVAU_rtl (DSP), fracskip's MVAU_lut, or the bit-serial unit at fixed
  precision; a gated block's MVAU_bitserial: SIMD, PE and WBP. A bit-serial unit's WBP divides the (gcd of the
  modes') weight bits or is a power of two up to the widest mode's: WBP 4 halves a 4-bit frame's cycles against
  WBP 2 and leaves a 2-bit frame's as they were (``BitSerialParams.stored_wbits``); its weights and its
  activation buffer (two banks of bit-planes, 2*SF*8 words of SIMD bits at 8-bit activations) each in LUT or
  block RAM (Yosys, four of the default's shapes: block RAM saves 73 to 418 LUTs of a unit for 2 to 4 RAMB18).
- streaming nodes: PE over the channels as below (thresholds, requantizers, clips, modal activations, forks, adds,
  routers, gates, the global sum); padding and sliding windows: SIMD likewise, the RTL sliding window also with
  FINN's parallel_window at SIMD = channels (as FINN's SetFolding does), its line buffer in LUT RAM (FINN's
  default) or block RAM (FINN's ram_style).
- frame buffers (one frame whatever the folding): block RAM, LUT RAM or UltraRAM; token nodes: as they are.
Cycles: each node's own ``get_exp_cycles`` (the bit-serial unit's cycle model per mode); resources: FINN's
``node_res_estimation`` (fracskip's units: their models fitted to Yosys), except MVAU_rtl's DSPs, counted as
its RTL packs them (``mvau_rtl_dsp``: on the Pynq-Z2's DSP48E1, 2 lanes per slice at 8 bits, where FINN's
estimate takes 4 whatever the widths), plus the depth-2 FIFO FINN inserts on each of the node's output streams
(``stream_fifo_lut``: fifo.sv's shift registers cost a LUT per bit of width, so a 512-bit stream costs 520 LUTs
before it holds anything; on the default the FIFOs and converters FINN inserted cost more LUTs than the nodes).
Estimates, all of them. Rungs that another rung beats in expected cycles, in each mode's and in every resource
are dropped.

Stream widths (``parallel``, ``input_parallel``). Where a node's output word carries p elements and its
consumer's input word q, FINN's InsertDWC puts a StreamingDataWidthConverter between them. At a ratio that is not
an integer (4:3, say: a sliding window at SIMD 4 into an MVAU at SIMD 3) that converter is not full rate (4:3
passes 2 words in 3 cycles), and FINN estimates it at 0 cycles, so neither FINN's estimate nor this model would
count it: on the default network before this rule, block 0's 4:3 converters made the pipeline 56,448 cycles per
image in Verilator against the model's 37,632. So the ladders offer only parallelisms that make every such pair
divide one another:
- over C channels (every PE; the SIMD of padding and sliding windows): the powers of two dividing C, and C;
- a matrix-vector unit's SIMD over MW, fed by a node folding over C channels (``fold_channels``: a sliding
  window's input channels, with MW = K*K*C, or the producer's own channels, MW = C): the powers of two dividing
  both C and MW, and the multiples C*m that divide MW; a bit-serial unit's SIMD and PE by the same rule, and its
  input word (``inputSIMD``) SIMD or any narrower value over C that divides SIMD: the unit gathers the words
  itself, where FINN would put a width converter and a FIFO as wide as SIMD 8-bit activations before it.
Guarantee, whatever the channel counts (powers of two or not): the values over C form a chain (each divides the
next, as the powers of two dividing C divide C), and a matrix-vector unit's SIMD either is a power of two dividing
C (so it divides or is a multiple of each of them) or a multiple of C (so a multiple of each), and divides MW (a
sliding window's parallel_window word, K*K*C). Every stream between two folded nodes has one of p, q dividing the
other, so every converter FINN inserts has an integer ratio and runs at full rate, as the model assumes (nodes the
folding leaves as they are carry 1 element per word, or tokens of their own fixed width: the frame buffers at the
interface's PE 1). The same rule folds the DFS design and the static baselines. It is a rule per node, so it also
drops pairs that would have an integer ratio (a sliding window at SIMD 1 into an MVAU at SIMD 3 over C = 16); a
constraint between adjacent ladders in the 0-1 program could keep those.
Measured on the default network when the rule came in (its cost models and units of then; today's foldings are
in the README: DFS 28,224, W2A2 18,816, W4A4 37,632, W8A8 56,448) (``fracskip build --board Pynq-Z2 --until
estimates``, 80 % budget; FINN's InsertDWC on the graphs folded with the build's units, MVAU_rtl and MVAU_lut;
this module's estimates):
before the rule, the DFS folding had 2 converters of 92 at 4:3 (block 0), static W4A4 3 of 72 (4:3, 2:3) and
static W8A8 7 of 65 (4:3), none of them counted; with it, none of 94, 64, 69 and 68 converters (DFS, W2A2, W4A4,
W8A8) is at a non-integer ratio, and the models' cycles per image (all units) are DFS 38,874 (was 37,632), W2A2
14,112, W4A4 18,816 (both as before) and W8A8 56,448 (was 37,632, which left out its seven 4:3 converters).

Allocation (``allocate``): the smallest T for which every node has a rung with E[c] <= T, every gated block's
stage-wise bound is at most T, and the chosen rungs fit the budget. For a given T the choice is a multiple-choice
knapsack: one rung per node among those meeting T, the sums within the budget in every resource, least priced use
sum_r use_r / budget_r (of equal price, the least sum of the nodes' E[c]); solved exactly as a 0-1 program
(scipy's HiGHS, ``_choose_exact``), the stage-wise bound as rows y_bm >= c_n(m) for each node n of block b and
sum_m p(m) y_bm <= T. Feasibility only grows with T, so bisection over the rungs' expected cycles finds the
optimum, and a stage-wise bound between two of them is bisected to ``STAGEWISE_TOLERANCE``. (The earlier pricing
heuristic, ``_choose``: prices doubled on a resource over budget; exact only when every ladder gets dearer in every
resource as it gets faster. ``Levers`` and ``lever_table`` measure what each of these choices is worth, on every
design alike.)

What FINN inserts between the nodes is in the budget, every design alike. A FIFO of depth 2 on every stream is
in each rung (above). A width converter where neighbouring streams differ, and the FIFO behind it, depend on two
nodes' choices: the 0-1 program holds them as one term per stream and consumer width w, m >= [consumer takes w] -
[producer gives w], at the cheapest converter into w, and one per pair of widths a -> b whose converter costs
more (narrowing), m >= [gives a] + [takes b] - 1, at the rest (``converter_lut``, fitted to Yosys: FINN's estimate
of a 544-to-17-bit converter is 22 LUT, its synthesis 4,557; ``graph_edges``), so the allocator trades a converter
against the parallelism it buys. Pareto pruning keeps a rung that another of other stream widths dominates.
Then FINN's own InsertDWC and FIFOs on the folded graph (``inserted_resources``, its converters by the same fit)
check the whole against the budget (``fits``); what they find beyond the model is reserved and the nodes
allocated again (``allocate_inserted``). Measured on the default (Pynq-Z2, 80 %), before the converters' fit:
FINN's inserted nodes beyond the model 0 LUT for DFS, 41 for static W4A4, 29 for W8A8; before this, FINN's
converters and FIFOs were outside the budget (the DFS accelerator as emitted needed LUT 102,493 of 53,200).
The FIFOs deeper than 2 that sizing by simulation gives are not in these figures (the build checks the sized graph
against the device: ``accelerator.emitted_fit``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import FracskipError
from .folding import RESOURCES

log = logging.getLogger(__name__)

RTL = "finn.custom_op.fpgadataflow.rtl"
UNITS = ("MVAU_rtl", "MVAU_lut", "MVAU_bitserial")  # the matrix-vector units a layer may take
MVAU_OPS = ("MVAU_rtl", "MVAU_lut", "MVAU_hls")
# a modal unit's attributes set by name after composing: its memories, its input word
UNIT_ATTRS = ("ram_style", "ram_style_activations", "inputSIMD")
WEIGHT_WORD_MAX = 1024  # bits per weight word: the builder's SetFolding(mvau_wwidth_max=1024)
PE_OPS = ("Thresholding_rtl", "IntRequant_rtl", "Clip_rtl", "ModalActivation_rtl", "DuplicateStreams_rtl",
          "ElementwiseAdd_rtl", "StreamRoute_rtl", "StreamMerge_rtl", "GlobalSum_rtl", "DFSGate_rtl")
SIMD_OPS = ("FMPadding_rtl", "ConvolutionInputGenerator_rtl")
ALL = "all"  # the one mode of a node outside the gated blocks
SKIPPED = "skipped"  # a gated block's frames that no node of some modes takes (``frame_stages``)
PRICE_ROUNDS = 8
LUT_RAM_DEPTH = 64  # words of a LUT-RAM primitive (RAM64X1D)
MILP_SECONDS = 60  # per throughput bound tried by the exact allocator
TIE_PRICE = 1e-4  # choices within this share of the least price are tied (HiGHS's own mip_rel_gap: it stops at any)
_OUT_OF_TIME = [0]  # 0-1 programs of this process that hit MILP_SECONDS (cached_allocate keeps none)
PARETO_BLOCK = 256  # rungs held at once against those before them
STAGEWISE_TOLERANCE = 0.005  # the allocator's stage-wise bound: within this share of the optimum (each halving
# of the gap is a 0-1 program near the optimum, the hardest kind: on the tiny channel network 2 to 12 s each)
REDUCING_OPS = ("DFSGate_rtl", "GlobalSum_rtl")  # emit a frame's result only when the whole frame is in
INSERTED_OPS = ("StreamingFIFO", "StreamingDataWidthConverter")  # what FINN inserts between the folded nodes
SEQUENCE_SWEEPS = 2000  # frame_sequence_cycles with FIFO capacities: at most (89 for 200 images of the default)


@dataclass(frozen=True)
class Levers:
    """Hardware choices and figures the folding can be told to leave out, to measure what each one is worth
    (``python -m fracskip.hls.pipeline_folding BUILD --levers``); every design of a table gets the same."""

    exact: bool = True  # the allocator solves each bound exactly (a 0-1 program), else the pricing heuristic
    dsp_lanes: bool = True  # MVAU_rtl's DSPs by its RTL's lane packing (``mvau_rtl_dsp``), else FINN's estimate
    swg_block_ram: bool = True  # a sliding window's line buffer may be block RAM, else LUT RAM only (FINN's default)
    word_max: int = WEIGHT_WORD_MAX  # widest weight word of a matrix-vector unit, bits


@dataclass
class Rung:
    """One folding of one node: FINN's folding-config entry (``op_type`` when the unit changes), cycles per
    frame of each mode it serves, resources (estimates), and E[c] under the node's mode probabilities."""

    folding: dict
    cycles: dict  # mode -> cycles per frame of that mode
    resources: dict[str, float]  # the node's, and the depth-2 FIFOs on its outputs (``stream_fifo_lut``)
    expected: float = 0.0
    stream_lut: float = 0.0  # of which the FIFOs on its outputs, LUTs
    in_widths: tuple = ()  # bits per word of each input stream (None: not a stream, e.g. weights)
    out_widths: tuple = ()  # bits per word of each output stream


@dataclass
class NodeLadder:
    node: str
    op_type: str
    stage: str
    probs: dict  # mode -> probability per image that a frame of this mode comes to the node
    rungs: list[Rung] = field(default_factory=list)  # ascending expected cycles, dominated rungs dropped


@dataclass(frozen=True)
class Edge:
    """A stream between two nodes: output ``out`` of ``src`` into input ``inp`` of ``dst``."""

    src: str
    out: int
    dst: str
    inp: int


@dataclass
class Allocation:
    rungs: dict[str, int]  # node -> index into its ladder
    cycles: float  # the throughput bound: max over nodes of E[c] and over gated blocks of the stage-wise bound
    bottleneck: str
    resources: dict[str, float]  # the rungs' and the width converters' (``converter_lut``)
    fits: bool
    converter_lut: float = 0.0  # LUTs of the width converters the choice makes, each with the FIFO after it


# ---------------------------------------------------------------------------------------------- ladders
def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def parallel(n: int) -> list[int]:
    """The parallelisms a node may take over ``n`` channels: the powers of two dividing n, and n itself (see the
    module's docstring, "Stream widths"). Any two of them divide one another."""
    return sorted({1 << a for a in range(n.bit_length()) if n % (1 << a) == 0} | {n})


def input_parallel(mw: int, c: int | None = None) -> list[int]:
    """The SIMDs a matrix-vector unit of ``mw`` inputs may take when the node feeding it folds over ``c``
    channels (a sliding window: its input channels, mw = K*K*c; a layer without one: mw = c): the powers of two
    dividing both, and the multiples c*m dividing mw. Each divides or is a multiple of every value of
    ``parallel(c)``, and divides mw (a sliding window's parallel_window word). ``c`` None: ``parallel(mw)``."""
    c = mw if c is None else c
    g = math.gcd(c, mw)
    twos = {1 << a for a in range(g.bit_length()) if g % (1 << a) == 0}
    return sorted(twos | ({c * m for m in divisors(mw // c)} if mw % c == 0 else set()))


def as_unit(node, unit: str):
    """A copy of an MVAU node as ``unit`` (MVAU_lut as fracskip's conversion makes it; MVAU_rtl with FINN's
    decoupled weight memory)."""
    from qonnx.custom_op.registry import getCustomOp

    from .lutmvu.convert import _lut_node

    if unit == "MVAU_lut":
        return _lut_node(node)
    new = copy.deepcopy(node)
    if new.op_type != unit:
        new.op_type, new.domain = unit, RTL
        inst = getCustomOp(new)
        inst.set_nodeattr("mem_mode", "internal_decoupled")
        inst.set_nodeattr("resType", "dsp")  # an MVAU_lut says "lut", which FINN's MVAU_rtl refuses to generate
    return new


def mvau_rtl_dsp(inst, part: str, narrow_weights: bool) -> int:
    """DSP slices of FINN's MVAU_rtl as its RTL builds it (finn-rtllib mvu/mvu.sv): on DSP48E1/E2, SIMD cascaded
    slices per group of ``lanes`` PEs, lanes = 1 + (A - !narrow - W) // (W + X - 1) with A = 25 (E1) or 27 (E2)
    bits of the A port, W and X the weight and input bits. FINN's ``dsp_estimation`` takes 4 lanes whatever the
    widths: on a 7-series part 2x too few slices at 8 bits (2 lanes), 4/3 too few at 4 bits unless the weights are
    narrow (3 lanes; 4 when narrow). DSP58 (Versal): FINN's own figure."""
    from finn.util.basic import get_dsp_block

    block = get_dsp_block(part)
    if block == "DSP58":
        return int(inst.dsp_estimation(part))
    a = 25 if block == "DSP48E1" else 27
    w, x = inst.get_input_datatype(1).bitwidth(), inst.get_input_datatype(0).bitwidth()
    lanes = 1 if a == w else 1 + (a - (0 if narrow_weights else 1) - w) // (w + x - 1)
    return math.ceil(inst.get_nodeattr("PE") / lanes) * inst.get_nodeattr("SIMD")


# FINN's MVAU_rtl on a 7-series part by Yosys (the report's flow, ``synth.hdl``): LUT = a L + b L w + c PE acc + d,
# L = PE * SIMD lanes, w the weight bits, acc the accumulator's. Fitted on 11 foldings of the default's 8-, 4- and
# 2-bit layers (PE 1-4, SIMD 3-48, 244 to 10,893 LUT): within 15 %, but up to 180 LUT above the smallest. FINN's
# estimate counts none of them (its pipeline and replay registers, and a shallow weight memory in LUT RAM).
MVAU_RTL_LUT_DSP48E1 = (2.74, 6.33, 7.28, 110.0)


def mvau_rtl_lut(inst, part: str) -> float:
    """LUTs of FINN's MVAU_rtl: ``MVAU_RTL_LUT_DSP48E1`` on a 7-series part (where FINN's figure is far below
    synthesis), FINN's own figure elsewhere (not measured)."""
    from finn.util.basic import get_dsp_block

    finn = float(inst.lut_estimation(part))
    if get_dsp_block(part) != "DSP48E1":
        return finn
    a, b, c, d = MVAU_RTL_LUT_DSP48E1
    pe = inst.get_nodeattr("PE")
    lanes, w, acc = pe * inst.get_nodeattr("SIMD"), inst.get_input_datatype(1).bitwidth(), \
        inst.get_output_datatype().bitwidth()
    return max(finn, a * lanes + b * lanes * w + c * pe * acc + d)


def _res(inst, part: str, narrow_weights: bool | None = False) -> dict[str, float]:
    """FINN's node_res_estimation without its efficiency figures (which re-derive the memory estimate); MVAU_rtl's
    DSPs by its RTL's lane packing (``mvau_rtl_dsp``) and LUTs by Yosys (``mvau_rtl_lut``) unless
    ``narrow_weights`` is None."""
    rtl = inst.onnx_node.op_type == "MVAU_rtl" and narrow_weights is not None
    dsp = mvau_rtl_dsp(inst, part, narrow_weights) if rtl else inst.dsp_estimation(part)
    lut = mvau_rtl_lut(inst, part) if rtl else inst.lut_estimation(part)
    return {"LUT": float(lut), "BRAM_18K": float(inst.bram_estimation(part)),
            "URAM": float(inst.uram_estimation(part)), "DSP": float(dsp)}


def emitted_resources(model, part: str, uram: bool = True) -> dict[str, dict[str, float]]:
    """FINN's estimates of every node of an emitted accelerator graph (the folding's own figures per node), by
    kind: ``"folded"`` (the nodes the folding budgets), each of ``INSERTED_OPS`` (what FINN inserted between them,
    outside the folding's budget) and ``"total"``. ``uram=False``: the device has none, and a FIFO fifo.sv asks
    UltraRAM for is counted in block RAM, where Vivado puts it (FINN's estimate reports what the RTL asks for)."""
    out = {k: dict.fromkeys(("LUT", "BRAM_18K", "URAM", "DSP"), 0.0) for k in ("folded", *INSERTED_OPS, "total")}
    for node in model.graph.node:
        kind = next((k for k in INSERTED_OPS if node.op_type.startswith(k)), "folded")
        for r, v in _emitted_res(model, node, part, uram).items():
            out[kind][r] += v
            out["total"][r] += v
    return out


def _emitted_res(model, node, part: str, uram: bool) -> dict[str, float]:
    """One node of an emitted graph by the folding's figures (``_res``; a width converter by ``dwc_lut``), a FIFO
    that asks for UltraRAM on a part without any counted in block RAM."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    res = _res(inst, part, narrow_weights(model, node) if node.op_type == "MVAU_rtl" else False)
    if node.op_type.startswith("StreamingDataWidthConverter"):
        res["LUT"] = dwc_lut(inst.get_instream_width(), inst.get_outstream_width())
    return _fifo_in_block_ram(inst, part) if res["URAM"] and not uram else res


def stream_fifo_lut(widths) -> float:
    """LUTs of the depth-2 FIFOs FINN inserts on a node's output streams (``widths``, bits, each padded to whole
    bytes as the FIFO's AXI stream is; fifo.sv's SRL style, FINN's fitted cost): the least every stream costs
    whatever its consumer, in proportion to its width."""
    from finn.util.resource_models import _fifo_cost
    from qonnx.util.basic import roundup_to_integer_multiple

    return float(sum(_fifo_cost(2, roundup_to_integer_multiple(int(w), 8), "srl").lut for w in widths))


def _fifo_in_block_ram(inst, part: str) -> dict[str, float]:
    from finn.util.basic import is_versal
    from finn.util.resource_models import _fifo_cost

    if not inst.onnx_node.op_type.startswith("StreamingFIFO"):
        raise FracskipError(f"{inst.onnx_node.name}: UltraRAM asked for by a {inst.onnx_node.op_type} on a part "
                            "without UltraRAM")
    cost = _fifo_cost(inst.get_nodeattr("depth"), inst.get_instream_width_padded(), "block", is_versal(part))
    return {"LUT": float(cost.lut), "BRAM_18K": float(cost.bram), "URAM": 0.0, "DSP": 0.0}


def narrow_weights(model, node) -> bool:
    """FINN's NARROW_WEIGHTS of an MVAU_rtl (its generate_hdl): the weights never take their type's minimum."""
    from qonnx.custom_op.registry import getCustomOp

    w = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    return w is not None and float(np.min(w)) != getCustomOp(node).get_input_datatype(1).min()


def _finn_rungs(node, part: str, choices: list[dict], modes: list, op_type: str | None = None,
                cache: dict | None = None, narrow: bool | None = False) -> list[Rung]:
    """Rungs of a FINN node by its own estimates, one per attribute assignment in ``choices``. ``cache``: the
    figures of nodes that differ only in name and tensors (the same core's layer in several designs)."""
    from qonnx.custom_op.registry import getCustomOp

    key = None
    if cache is not None:
        bare = copy.deepcopy(node)
        bare.name = ""  # tensors by position: some estimates count a node's inputs or outputs
        bare.input[:] = [f"i{k}" for k in range(len(bare.input))]
        bare.output[:] = [f"o{k}" for k in range(len(bare.output))]
        key = (bare.SerializeToString(), part, json.dumps(choices), op_type, narrow)
    if key not in (cache or {}):
        inst = getCustomOp(as_unit(node, op_type) if op_type else copy.deepcopy(node))
        if op_type == "MVAU_lut":
            from .lutmvu.op import unsupported_reasons

            if unsupported_reasons(inst):  # by types: no folding helps (the choices divide MW and MH)
                choices = []
        figures = []
        for attrs in choices:
            try:
                for k, v in attrs.items():
                    inst.set_nodeattr(k, v)
                res = _res(inst, part, narrow)
                outs = tuple(int(inst.get_outstream_width(j)) for j in range(len(node.output)))
                fifo = stream_fifo_lut(outs)
                res["LUT"] += fifo
                figures.append((attrs, int(inst.get_exp_cycles()), res, fifo, _in_widths(inst, node), outs))
            except (AssertionError, ValueError, FracskipError) as exc:  # a folding the node refuses: not a rung
                log.debug("%s %s: %s", node.name, attrs, exc)
        if cache is None:
            cache = {}
        cache[key] = figures
    unit = {"op_type": op_type} if op_type and op_type != node.op_type else {}
    return [Rung(dict(attrs, **unit), dict.fromkeys(modes, c), dict(res), stream_lut=fifo, in_widths=ins,
                 out_widths=outs) for attrs, c, res, fifo, ins, outs in cache[key]]


def _in_widths(inst, node) -> tuple:
    """Bits per word of each input of a node (None where the op has no stream width for it; only inputs fed by
    another node are read, ``graph_edges``)."""
    out = []
    for k in range(len(node.input)):
        try:
            out.append(int(inst.get_instream_width(k)))
        except Exception:  # noqa: BLE001  an input the op has no stream for
            out.append(None)
    return tuple(out)


def expected_frame_cycles(params, k: int, kept: float | None = None) -> float:
    """A bit-serial unit's cycles per frame in mode k, with channel groups at ``kept`` groups kept on average
    (the unit's model is affine in the groups kept: interpolated between one group and all)."""
    full = params.frame_cycles(k)
    if not params.n_groups or kept is None or params.n_groups == 1:
        return full
    one = params.frame_cycles(k, 1)
    return one + (full - one) * (kept - 1) / (params.n_groups - 1)


def _bitserial_rungs(params, modes: list, op_type: str | None, word_max: int = WEIGHT_WORD_MAX,
                     in_channels: int | None = None, kept: dict | None = None) -> list[Rung]:
    """Rungs of a bit-serial unit (``params``: its BitSerialParams) over PE (``parallel``), SIMD
    (``input_parallel`` with ``in_channels``), its input word (SIMD, or a narrower width of its producer's,
    ``parallel``), WBP and its memories; ``modes[k]`` is the menu entry of the unit's mode k.
    Cycles: the unit's per-mode model (a unit with channel groups at ``kept[mode]`` groups kept on average);
    resources: its fitted Yosys model. Foldings the unit refuses (a channel group not whole folds) are left out."""
    from .bitserial.estimate import act_buffer_depth, estimate_resources

    widest = max(m.wbits for m in params.modes)
    wbps = sorted(set(divisors(math.gcd(*[m.wbits for m in params.modes]))) | {w for w in (2, 4, 8) if w <= widest})
    producer = parallel(in_channels or params.mw)  # the widths the node feeding the unit may give
    out = []
    for simd in input_parallel(params.mw, in_channels):
        # input words: SIMD wide, or as narrow as the producer's, gathered in the unit (no width converter)
        words = sorted({w for w in producer if w < simd and simd % w == 0} | {simd})
        for pe, ins in itertools.product(parallel(params.mh), words):
            for wbp, ram, act_ram in itertools.product(wbps, ("block", "distributed"), ("distributed", "block")):
                if pe * simd * wbp > word_max:
                    continue
                try:
                    p = replace(params, pe=pe, simd=simd, in_simd=ins, wbp=wbp, ram_style=ram,
                                act_ram_style=act_ram)
                except FracskipError:
                    continue
                if act_ram == "block" and act_buffer_depth(p) <= LUT_RAM_DEPTH:
                    continue  # a column of it is one LUT-RAM primitive: a RAMB18 saves at most ~2 LUTs per lane
                r = estimate_resources(p)
                fold = {"PE": pe, "SIMD": simd, "inputSIMD": ins, "WBP": wbp, "ram_style": ram,
                        "ram_style_activations": act_ram, **({"op_type": op_type} if op_type else {})}
                fifo = stream_fifo_lut([p.out_width])
                out.append(Rung(fold, {m: expected_frame_cycles(p, k, (kept or {}).get(m))
                                       for k, m in enumerate(modes)},
                                {"LUT": r.lut + fifo, "BRAM_18K": float(r.bram18), "URAM": 0.0, "DSP": 0.0},
                                stream_lut=fifo, in_widths=(p.in_width, None), out_widths=(p.out_width,)))
    return out


def _fixed_bitserial(inst):
    """The bit-serial unit at the fixed precision of an MVAU node (None where it cannot take the layer)."""
    from .bitserial.core import BitSerialParams, Precision

    if inst.get_nodeattr("noActivation") != 1:
        return None
    wdt, idt = inst.get_input_datatype(1), inst.get_input_datatype(0)
    try:
        return BitSerialParams(mw=inst.get_nodeattr("MW"), mh=inst.get_nodeattr("MH"), pe=1, simd=1, wbp=1,
                               modes=(Precision(wdt.bitwidth(), idt.bitwidth()),), weight_signed=wdt.signed(),
                               act_signed=idt.signed(), n_vectors=int(np.prod(inst.get_nodeattr("numInputVectors"))),
                               mode_stream=False)
    except FracskipError:
        return None


def node_ladder(node, part: str, probs: dict, stage: str, units: tuple[str, ...] = UNITS,
                budget: dict[str, float] | None = None, word_max: int = WEIGHT_WORD_MAX,
                cache: dict | None = None, narrow: bool | None = False, swg_rams=("distributed", "block"),
                in_channels: int | None = None, kept: dict | None = None) -> NodeLadder:
    """Every candidate folding of ``node`` with cycles per mode (the modes of ``probs``) and resources, minus
    the dominated ones, in ascending expected cycles. ``budget``: rungs needing a resource it lacks are dropped;
    ``word_max``: the widest weight word (bits) of a matrix-vector unit; ``cache``: see ``_finn_rungs``;
    ``narrow``: an MVAU's weights never take their type's minimum (``narrow_weights``; None: MVAU_rtl's DSPs
    by FINN's estimate); ``swg_rams``: the memories a sliding window's line buffer may take; ``in_channels``:
    the channels the node feeding a matrix-vector unit folds over (``fold_channels``; None: its MW), which its
    SIMD must agree with (``input_parallel``; the module's docstring, "Stream widths")."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    op = node.op_type
    modes = list(probs)
    if op == "MVAU_bitserial":
        p = inst.bs_params()
        menu_modes = sorted(m for m in modes)  # the unit's mode k is the k-th smallest computing width
        rungs = _bitserial_rungs(p, menu_modes, None, word_max, in_channels, kept)
    elif op in MVAU_OPS:
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        wbits = inst.get_input_datatype(1).bitwidth()
        rungs = []
        for unit in units:
            # FINN estimates 0 LUT for MVAU_rtl: its weights in LUT RAM would be free in the figures, so block RAM
            rams = ("block",) if unit == "MVAU_rtl" else ("block", "distributed")
            # finn-rtllib's mvu_vvu_axi (MVAU_rtl) at SIMD = MW gives an output every cycle, and its output queue,
            # which holds the core's pipeline depth, then overflows when the consumer's ready toggles (its RTL
            # asserts "Overflowing output queue": measured on a downsampling shortcut, SIMD 16 = MW, into a merge)
            sf_min = 2 if unit == "MVAU_rtl" and mw > 1 else 1
            choices = [{"SIMD": s, "PE": pe, "ram_style": ram} for s in input_parallel(mw, in_channels)
                       for pe in parallel(mh) for ram in rams if s * pe * wbits <= word_max and mw // s >= sf_min]
            if unit == "MVAU_bitserial":
                fixed = _fixed_bitserial(inst)
                if fixed is not None:
                    rungs += _bitserial_rungs(fixed, modes, unit, word_max, in_channels)
            else:
                rungs += _finn_rungs(node, part, choices, modes, unit, cache, narrow)
    elif op in PE_OPS:
        ch = _channels(inst)
        rungs = _finn_rungs(node, part, [{"PE": pe} for pe in parallel(ch)], modes, cache=cache)
    elif op in SIMD_OPS:
        ch = _channels(inst)
        choices = [{"SIMD": s} for s in parallel(ch)]
        if op == "ConvolutionInputGenerator_rtl":
            choices = [dict(c, parallel_window=0) for c in choices]
            if not inst.get_nodeattr("depthwise"):
                choices.append({"SIMD": ch, "parallel_window": 1})
            # the line buffer in LUT RAM (FINN's default) or block RAM
            choices = [dict(c, ram_style=m) for c in choices for m in swg_rams]
        rungs = _finn_rungs(node, part, choices, modes, cache=cache)
    elif op.startswith("StreamingFIFO"):  # a frame buffer: the memory it is built of (FINN's "auto" counts URAM)
        rungs = _finn_rungs(node, part, [{"ram_style": s} for s in ("block", "distributed", "ultra")], modes,
                            cache=cache)
    else:  # token ops: as they are
        rungs = _finn_rungs(node, part, [{}], modes, cache=cache)
    if budget is not None:
        rungs = [r for r in rungs if all(r.resources[k] <= 0 or budget.get(k, 0) > 0 for k in RESOURCES)]
    if not rungs:
        raise FracskipError(f"{node.name} ({op}): no folding it accepts; it cannot be placed")
    for r in rungs:
        r.expected = sum(probs[m] * r.cycles[m] for m in modes)
    return NodeLadder(node.name, op, stage, dict(probs), pareto(rungs))


def _channels(inst) -> int:
    types = inst.get_nodeattr_types()
    for a in ("NumChannels", "IFMChannels"):
        if a in types and inst.get_nodeattr(a):
            return int(inst.get_nodeattr(a))
    return int(inst.get_normal_output_shape()[-1])


def upstream_node(model, node):
    """The node feeding ``node``'s data input, past the FIFOs and width converters FINN inserted; None for the
    graph's input."""
    src = model.find_producer(node.input[0]) if node.input else None
    while src is not None and src.op_type.startswith(INSERTED_OPS):
        src = model.find_producer(src.input[0])
    return src


def fold_channels(model, node) -> int | None:
    """The channels over which the node feeding ``node``'s data input (through FIFOs) folds its output: a
    matrix-vector unit's MH, a streaming node's or sliding window's channels (``parallel``); None for the graph's
    input or a node the folding leaves as it is."""
    from qonnx.custom_op.registry import getCustomOp

    src = upstream_node(model, node)
    if src is None:
        return None
    if src.op_type in (*MVAU_OPS, "MVAU_bitserial"):
        return int(getCustomOp(src).get_nodeattr("MH"))
    if src.op_type in PE_OPS or src.op_type in SIMD_OPS:
        return _channels(getCustomOp(src))
    return None


def pareto(rungs: list[Rung]) -> list[Rung]:
    """The rungs no other rung of the same stream widths beats in expected cycles, the cycles of every mode and
    every resource, ascending in expected cycles (a rung of other widths may cost width converters its neighbours'
    choices decide; a rung slower on average but faster in one mode can set a gated block's stage-wise bound)."""
    rungs = sorted(rungs, key=lambda r: (r.expected, sum(r.resources.values())))
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rungs):
        groups.setdefault((r.in_widths, r.out_widths), []).append(i)
    modes = sorted({m for r in rungs for m in r.cycles}, key=str)
    dropped = np.zeros(len(rungs), bool)
    for idx in groups.values():
        # in this order a rung is dominated by a kept one exactly when it is by any before it (dominance is
        # transitive; cycles no more in every mode make expected cycles no more), so each block of rungs is held
        # against all before it at once
        use = np.array([[rungs[i].resources[x] for x in RESOURCES]
                        + [rungs[i].cycles.get(m, rungs[i].expected) for m in modes] for i in idx])
        for a in range(0, len(idx), PARETO_BLOCK):
            blk = use[a:a + PARETO_BLOCK]
            below = (use[None, :a + len(blk)] <= blk[:, None]).all(-1)  # below[j, i]: rung i <= rung a+j
            below &= np.arange(a + len(blk))[None, :] < np.arange(a, a + len(blk))[:, None]
            dropped[[idx[a + j] for j in np.flatnonzero(below.any(1))]] = True
    return [r for r, d in zip(rungs, dropped) if not d]


def graph_edges(model) -> tuple[Edge, ...]:
    """Every stream between two nodes of ``model``."""
    out = []
    for v in model.graph.node:
        for k, t in enumerate(v.input):
            u = model.find_producer(t)
            if u is not None:
                out.append(Edge(u.name, list(u.output).index(t), v.name, k))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- allocation
def frame_stages(ladders: list[NodeLadder]) -> dict[str, dict]:
    """The stages whose nodes serve some modes only (a gated block): {stage: {"p": {mode: p}, "nodes": [ladder
    indices]}}. Inside a gated block the FIFOs hold a fraction of a frame (those behind a sliding window 32 words), so
    its nodes take each frame together: a frame of mode m keeps the stage max_n c_n(m) cycles, and a node of every
    frame (a sliding window, a padding, an add) bounds every mode. Stages of one mode are left out (their bound is
    their nodes')."""
    out: dict[str, dict] = {}
    for k, lad in enumerate(ladders):
        out.setdefault(lad.stage, {"p": {}, "nodes": []})["nodes"].append(k)
        out[lad.stage]["p"].update({m: p for m, p in lad.probs.items() if m != ALL})
    out = {s: v for s, v in out.items() if v["p"]}
    for v in out.values():  # the frames no node of some modes sees (a skip without shortcut) pass the others
        rest = 1.0 - sum(v["p"].values())
        if rest > 1e-9:
            v["p"][SKIPPED] = rest
    return out


def mode_cycles(rung: Rung, m) -> float:
    """A rung's cycles on a frame of mode ``m`` of its stage: its own for that mode, a node of every frame's for
    any, 0 for a mode it does not serve."""
    return float(rung.cycles.get(m, rung.cycles.get(ALL, 0.0)))


def stagewise_cycles(ladders: list[NodeLadder], choice: dict[str, int], stages: dict | None = None
                     ) -> tuple[float, str]:
    """(max over ``frame_stages`` of sum_m p(m) * max_n c_n(m), that stage) for the chosen rungs (0, "" if none)."""
    bounds = stage_bounds(ladders, choice, stages)
    return max(((v, s) for s, v in bounds.items()), default=(0.0, ""))


def stage_bounds(ladders: list[NodeLadder], choice: dict[str, int], stages: dict | None = None) -> dict[str, float]:
    """Per stage of ``frame_stages``, sum_m p(m) * max_n c_n(m) for the chosen rungs."""
    out = {}
    for stage, st in (frame_stages(ladders) if stages is None else stages).items():
        per = {}
        for k in st["nodes"]:
            rung = ladders[k].rungs[choice[ladders[k].node]]
            for m in st["p"]:
                per[m] = max(per.get(m, 0.0), mode_cycles(rung, m))
        out[stage] = sum(p * per[m] for m, p in st["p"].items())
    return out


def _usage(total: dict[str, float], budget: dict[str, float]) -> bool:
    return all(total[r] <= budget.get(r, 0) + 1e-9 for r in RESOURCES)


def _choose(ladders: list[NodeLadder], t: float, budget: dict[str, float], edges: tuple = ()):
    """Per node the least-priced rung with E[c] <= t, prices raised on any resource over budget; None if a
    node has no rung meeting t."""
    scale = {r: 1.0 / budget[r] for r in RESOURCES if budget.get(r, 0) > 0}
    price = dict.fromkeys(scale, 1.0)
    choice: dict[str, int] = {}
    total: dict[str, float] = {}
    for _ in range(PRICE_ROUNDS):
        choice = {}
        for lad in ladders:
            best, best_cost = None, math.inf
            for i, r in enumerate(lad.rungs):
                if r.expected > t:
                    break
                cost = sum(price[k] * scale[k] * r.resources[k] for k in scale)
                if cost <= best_cost:  # ties: the later (slower) rung of equal cost
                    best, best_cost = i, cost
            if best is None:
                return None
            choice[lad.node] = best
        total = _totals(ladders, choice, edges)
        over = [r for r in scale if total[r] > budget[r]]
        if not over:
            break
        for r in over:
            price[r] *= 2.0
    return choice, total


def _totals(ladders: list[NodeLadder], choice: dict[str, int], edges: tuple = ()) -> dict[str, float]:
    total = dict.fromkeys(RESOURCES, 0.0)
    for lad in ladders:
        for r in RESOURCES:
            total[r] += lad.rungs[choice[lad.node]].resources[r]
    total["LUT"] += sum(converter_lut(a, b) for _, a, b in _mismatch(ladders, edges, choice))
    return total


# LUTs per input bit of dwc_axi narrowing by 2, 4, 8, 16, 32 and 64 (Yosys synth_xilinx of finn-rtllib's dwc_axi.sv,
# input widths 16 to 2,176): its buffer is the wide word, and the output is picked from it through log2(ratio) levels
DWC_NARROW_LUT_PER_BIT = (2.0, 4.5, 5.7, 7.8, 8.5, 13.7)


def dwc_lut(w_in: int, w_out: int) -> float:
    """LUTs of the width converter InsertDWC puts between a ``w_in``-bit producer and a ``w_out``-bit consumer
    (finn-rtllib's dwc_axi at an integer ratio). An estimate fitted to Yosys's synthesis of dwc_axi, not FINN's
    (which counts a shift register of the narrower side): widening by r costs little (10 + 0.95 w_in + 2.1 r),
    narrowing by r about ``DWC_NARROW_LUT_PER_BIT[log2 r - 1]`` LUTs per input bit (544 to 17 bits: 4,557 LUT
    synthesized, 22 by FINN's estimate). On 45 converters of 8 to 2,176 bits, ratios 2 to 128: within 25 % of
    Yosys narrowing, 9 % widening. Equal widths need no converter: 0."""
    if w_in == w_out:
        return 0.0
    if w_in < w_out:
        return 10 + 0.95 * w_in + 2.1 * w_out / w_in
    steps = DWC_NARROW_LUT_PER_BIT
    levels = math.log2(w_in / w_out)
    k = min(max(levels, 1.0), len(steps)) - 1
    lo = min(int(k), len(steps) - 2)
    per_bit = steps[lo] + (k - lo) * (steps[lo + 1] - steps[lo])
    per_bit += max(0.0, levels - len(steps)) * (steps[-1] - steps[-2])  # beyond the table: its last step per level
    return per_bit * w_in * min(1.0, levels)  # a ratio below 2 (the folding makes none) at most one level


def converter_lut(w_in: int, w_out: int) -> float:
    """``dwc_lut`` and the depth-2 FIFO FINN puts behind the converter."""
    return dwc_lut(w_in, w_out) + (stream_fifo_lut([w_out]) if w_in != w_out else 0.0)


def _mismatch(ladders, edges, choice_of) -> list[tuple[Edge, int, int]]:
    """The edges whose producer's and consumer's chosen rungs differ in stream width: (edge, producer's width,
    consumer's width)."""
    by = {lad.node: lad for lad in ladders}
    out = []
    for e in edges:
        a = by[e.src].rungs[choice_of[e.src]].out_widths[e.out]
        b = by[e.dst].rungs[choice_of[e.dst]].in_widths[e.inp]
        if a is not None and b is not None and a != b:
            out.append((e, a, b))
    return out


def _choose_exact(ladders: list[NodeLadder], t: float, budget: dict[str, float], edges: tuple = (),
                  cheapest: bool = True):
    """Per node one rung with E[c] <= t such that the sum fits ``budget``, of least priced use
    sum_r use_r / budget_r, and of those the fastest (``cheapest``; else any that fits, which HiGHS finds much
    sooner): a multiple-choice knapsack, solved exactly as a 0-1 program (scipy's HiGHS), the width converters
    included (``converter_lut``): per edge and consumer width w, m >= [consumer takes w] - [producer gives w] (m is
    1 exactly where the widths differ and the consumer's is w) at the cheapest converter into w, and per pair of
    widths a -> b whose converter costs more, m >= [gives a] + [takes b] - 1 at the rest. None if no such choice
    exists (or a node has no rung meeting t)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    cols = [(k, i) for k, lad in enumerate(ladders) for i, r in enumerate(lad.rungs) if r.expected <= t]
    if len({k for k, _ in cols}) < len(ladders):
        return None
    at = {lad.node: k for k, lad in enumerate(ladders)}
    by_node: dict[int, list[int]] = {}
    for j, (k, i) in enumerate(cols):
        by_node.setdefault(k, []).append(j)
    # converter terms, each a continuous m in [0, 1] forced up by a row  m + sum(+-columns) >= lower:
    # per edge and consumer width w, m >= [consumer takes w] - [producer gives w], at the cheapest converter into w;
    # per pair of widths a -> b whose converter costs more (narrowing), m >= [gives a] + [takes b] - 1, at the rest
    conv = []  # (LUT, {column: coefficient}, lower)
    for e in edges:
        ku, kv = at[e.src], at[e.dst]
        outs = {j: ladders[ku].rungs[cols[j][1]].out_widths[e.out] for j in by_node[ku]}
        ins = {j: ladders[kv].rungs[cols[j][1]].in_widths[e.inp] for j in by_node[kv]}
        if None in outs.values() or None in ins.values() or len(set(outs.values()) | set(ins.values())) == 1:
            continue
        give = {a: [j for j, x in outs.items() if x == a] for a in set(outs.values())}
        take = {b: [j for j, x in ins.items() if x == b] for b in set(ins.values())}
        for b, takers in sorted(take.items()):
            into = [converter_lut(a, b) for a in give if a != b]
            if not into:
                continue
            conv.append((min(into), {**{j: -1 for j in takers}, **{j: 1 for j in give.get(b, [])}}, 0))
            for a, givers in sorted(give.items()):
                extra = converter_lut(a, b) - min(into) if a != b else 0.0
                # every dearer pair, however little: a choice the program prices within the budget must be within
                # it (pairs under a LUT left out once made a bound look infeasible, and the search then settled on
                # 80,683 cycles per image where 22,858 fitted)
                if extra > 0.0:
                    conv.append((extra, {**{j: -1 for j in givers}, **{j: -1 for j in takers}}, -1))
    n, nm = len(cols), len(conv)
    # the stage-wise bound (``frame_stages``): per stage and mode a continuous y >= c_n(m) of each of its nodes'
    # chosen rung, and sum_m p(m) * y_m <= t
    stages = frame_stages(ladders)
    ys = [(stage, m) for stage, st in stages.items() for m in st["p"]]
    ny, wide = len(ys), n + nm + len(ys)
    res = [r for r in RESOURCES if any(ladders[k].rungs[i].resources[r] > 0 for k, i in cols) or (r == "LUT" and nm)]
    one, use, link = _Sparse((len(ladders), wide)), _Sparse((len(res), wide)), _Sparse((nm, wide))
    cost = np.zeros(wide)
    for j, (k, i) in enumerate(cols):
        one.add(k, j, 1)
        rr = ladders[k].rungs[i].resources
        for q, r in enumerate(res):
            use.add(q, j, rr[r])
        cost[j] = sum(rr[r] / budget[r] for r in res if budget.get(r, 0) > 0)
    lut = res.index("LUT") if nm else None
    for q, (lut_m, coef, _) in enumerate(conv):
        m = n + q
        link.add(q, m, 1)
        for j, c in coef.items():
            link.add(q, j, c)
        use.add(lut, m, lut_m)
        cost[m] = lut_m / budget["LUT"] if budget.get("LUT", 0) > 0 else 0.0
    cap = np.array([budget.get(r, 0.0) for r in res])
    cons = [LinearConstraint(one.csr(), 1, 1)] + ([LinearConstraint(use.csr(), -np.inf, cap)] if res else [])
    if nm:
        cons.append(LinearConstraint(link.csr(), np.array([lo for _, _, lo in conv], dtype=float), np.inf))
    if ny:
        above = _Sparse((sum(len(stages[s]["nodes"]) for s, _ in ys), wide))
        bound = _Sparse((len(stages), wide))
        row = 0
        for q, (stage, m) in enumerate(ys):
            y = n + nm + q
            bound.add(list(stages).index(stage), y, stages[stage]["p"][m])
            for k in stages[stage]["nodes"]:
                above.add(row, y, 1)
                for j in by_node[k]:
                    above.add(row, j, -mode_cycles(ladders[k].rungs[cols[j][1]], m))
                row += 1
        cons += [LinearConstraint(above.csr(), 0, np.inf), LinearConstraint(bound.csr(), -np.inf, t)]

    def solve(objective, rows):
        with _solver_output_to_stderr():
            sol = milp(objective, constraints=rows, integrality=np.r_[np.ones(n), np.zeros(nm + ny)],
                       bounds=Bounds(np.zeros(wide), np.r_[np.ones(n + nm), np.full(ny, np.inf)]),
                       options={"time_limit": MILP_SECONDS})
        if sol.status == 1:  # out of time: the answer depends on the machine's load, not only on the inputs
            _OUT_OF_TIME[0] += 1
        return sol

    sol = solve(cost if cheapest else np.zeros_like(cost), cons)
    if sol.x is None:
        if sol.status == 1:  # out of time without a feasible point, and said so
            log.warning("allocation at T=%.0f: no solution within %d s; %s", t, MILP_SECONDS,
                        "the feasible choice found before is kept" if cheapest else "taken as infeasible")
        return None
    if cheapest:
        # among the choices of that price, the one whose nodes are fastest (least sum of E[c] / T): the price
        # alone leaves ties, such as a window generator at SIMD 1 or 2 priced alike, that HiGHS settles either
        # way, and the slower of such designs measured 0.3 % slower in Verilator (the nodes' slack absorbs the
        # frames' variation)
        slack = np.zeros(wide)
        slack[:n] = [ladders[k].rungs[i].expected / t for k, i in cols]
        price = LinearConstraint(cost[None, :], -np.inf, float(cost @ sol.x) * (1 + TIE_PRICE) + 1e-12)
        tied = solve(slack, cons + [price])
        if tied.x is not None:
            sol = tied
    choice = {ladders[k].node: i for (k, i), v in zip(cols, sol.x[:n]) if v > 0.5}
    return choice, _totals(ladders, choice, edges)


class _Sparse:
    """A constraint matrix gathered as (row, column, value) triplets: scipy's lil_array took a tenth of the
    allocation's time in its item assignments."""

    def __init__(self, shape: tuple[int, int]):
        self.shape, self.rows, self.cols, self.vals = shape, [], [], []

    def add(self, i: int, j: int, v: float) -> None:
        self.rows.append(i), self.cols.append(j), self.vals.append(v)

    def csr(self):
        from scipy.sparse import coo_array

        return coo_array((self.vals, (self.rows, self.cols)), shape=self.shape).tocsr()


@contextlib.contextmanager
def _solver_output_to_stderr():
    """HiGHS prints some diagnostics straight to the process's stdout (seen: "HighsMipSolverData::transformNew
    IntegerFeasibleSolution tmpSolver.run();" before `fracskip bench --json`'s JSON), which carries the commands'
    JSON: file descriptor 1 goes to stderr while it solves."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def allocate(ladders: list[NodeLadder], budget: dict[str, float], exact: bool = True,
             edges: tuple = (), at_least: float = 0.0) -> Allocation:
    """The smallest throughput bound T (max over nodes of E[c] and over gated blocks of the stage-wise bound,
    ``stagewise_cycles``) whose rungs, and the width converters on
    ``edges`` (``graph_edges``) their widths make, fit ``budget`` (see the module's docstring); if none fits, the
    cheapest choice at the largest T, with ``fits`` False. ``exact``: each T's choice by ``_choose_exact`` (then T
    is the optimum: feasibility only grows with T), else by the pricing heuristic ``_choose`` (which counts the
    converters of its choice but does not steer by them). The exact search asks only whether a T is feasible (the
    heuristic first, the 0-1 program where it finds nothing); the cheapest choice is solved for once, at the T
    found. ``at_least``: a T known to be no more than the optimum (that of a larger budget), where the search
    starts."""
    floor = max(lad.rungs[0].expected for lad in ladders)
    stages = frame_stages(ladders)
    # every stage-wise bound is met at the largest of its nodes' per-mode cycles
    top = max((sum(p * max(mode_cycles(r, m) for k in st["nodes"] for r in ladders[k].rungs)
                   for m, p in st["p"].items()) for st in stages.values()), default=0.0)
    ts = sorted({r.expected for lad in ladders for r in lad.rungs if r.expected >= floor} | ({top} if top > floor
                                                                                            else set()))
    if at_least > floor:  # no T below it is feasible: the search starts there
        floor = at_least
        ts = sorted({t for t in ts if t > at_least} | {at_least})
    heuristic = functools.partial(_choose, edges=edges)
    # where the pricing heuristic finds a choice that meets T, T is feasible without a 0-1 program. Measured on the
    # default: the static designs then solve 1-5 programs instead of 5-7; the DFS design still 12 (the heuristic does
    # not steer by the stage-wise bound, so its choices miss it)
    chooses = (heuristic, functools.partial(_choose_exact, edges=edges, cheapest=False)) if exact else (heuristic,)

    def feasible(t: float):
        for choose in chooses:
            got = choose(ladders, t, budget)
            if (got is not None and _usage(got[1], budget)
                    and stagewise_cycles(ladders, got[0], stages)[0] <= t * (1 + 1e-9)):
                return got
        return None

    lo, hi = 0, len(ts) - 1
    best, best_t = None, None
    while lo <= hi:
        mid = (lo + hi) // 2
        got = feasible(ts[mid])
        if got is not None:
            best, best_t, hi = got, ts[mid], mid - 1
        else:
            lo = mid + 1
    if exact and best is not None and stages:
        # a stage-wise bound lies between the rungs' figures: bisect the gap below the least feasible one
        below = ts[lo - 1] if lo > 0 else floor
        while best_t - below > STAGEWISE_TOLERANCE * best_t:
            mid = (below + best_t) / 2
            got = feasible(mid)
            if got is not None:
                best, best_t = got, mid
            else:
                below = mid
    if exact and best is not None:
        best = _choose_exact(ladders, best_t, budget, edges) or best
    fits = best is not None
    if best is None:
        best = _choose(ladders, ts[-1], budget, edges)
    choice, total = best
    worst = max(ladders, key=lambda lad: lad.rungs[choice[lad.node]].expected)
    cycles, bottleneck = worst.rungs[choice[worst.node]].expected, worst.node
    framewise, stage = stagewise_cycles(ladders, choice, stages)
    if framewise > cycles:
        cycles, bottleneck = framewise, f"{stage}, frame by frame"
    conv = sum(converter_lut(a, b) for _, a, b in _mismatch(ladders, edges, choice))
    return Allocation(choice, cycles, bottleneck, total, fits, conv)


# ---------------------------------------------------------------------------------------------- the designs
def node_activity(name: str, freq: dict[int, dict], menu: list[int], floor: bool = True) -> tuple[str, dict]:
    """(stage, {mode: p}) of an accelerator node by its name (``hls/accelerator.py``'s and ``hls/modal.py``'s
    naming): ``freq[block][bits]`` the path frequencies of gated blocks. Modal nodes serve the computing widths
    (the bit-serial units one mode each), a downsampling skip's shortcut core the skipped frames, every other node
    every frame."""
    import re

    if name.startswith(("stem__",)):
        return "stem", {ALL: 1.0}
    if name.startswith(("global_sum", "head__", "decision_join")):
        return "head", {ALL: 1.0}
    m = re.match(r"gate(\d+)", name)
    if m:
        g = int(m.group(1))
        block = next(b for b, f in freq.items() if f["gate"] == g)
        return f"block{block}", {ALL: 1.0}
    m = re.match(r"block(\d+)_(modal_|b0__)?", name)
    if not m:
        raise FracskipError(f"{name}: not a node of a composed accelerator (stem__, block<i>…, gate<g>…, head__)")
    b = int(m.group(1))
    stage = f"block{b}"
    if b not in freq:
        return stage, {ALL: 1.0}
    f = {k: max(v, freq[b]["floor"]) if floor else v for k, v in freq[b]["p"].items()}
    computing = {bits: f.get(bits, 0.0) for bits in menu if bits}
    if m.group(2) == "modal_":
        return stage, computing
    if m.group(2) == "b0__":
        return stage, {0: f.get(0, 0.0)}
    return stage, {ALL: 1.0}


def path_frequencies(build_dir: Path, man) -> dict[int, dict]:
    """{gated block: {"gate": g, "p": {bits: p}, "floor": 1/N}} from the build's calibration (N images,
    ``hls.build.calibrate``). The folding weighs each path by at least the floor: a path no calibration image took
    must not be left at its slowest folding (one frame of it would stall the pipeline for millions of cycles)."""
    calib = json.loads((build_dir / "calibration.json").read_text())
    out = {b["index"]: {"gate": b["gate"], "floor": 1.0 / max(1, int(calib["images"])),
                        "p": {int(k): float(v) for k, v in calib["frequencies"][b["gate"]].items()}}
           for b in man.blocks if b["gated"]}
    if "kept" in calib:  # a channel network's: mean groups kept per width (None where no image ran it: all)
        for f in out.values():
            f["kept"] = {int(bits): (sum(int(c) * p for c, p in dist.items()) / sum(dist.values())
                                     if sum(dist.values()) else None)
                         for bits, dist in calib["kept"][f["gate"]].items()}
    return out


def ladders_of(model, part: str, freq: dict, menu: list[int], budget: dict[str, float],
               units: tuple[str, ...] = UNITS, progress: bool = False, word_max: int | None = None,
               cache: dict | None = None, levers: Levers = Levers()) -> list[NodeLadder]:
    """Every node's ladder (``node_ladder``) with the choices ``levers`` allows (``word_max``, if given, in place
    of its word bound)."""
    from tqdm import tqdm

    word_max = levers.word_max if word_max is None else word_max
    swg_rams = ("distributed", "block") if levers.swg_block_ram else ("distributed",)
    out = []
    for node in tqdm(list(model.graph.node), desc="ladders", unit="node", disable=None if progress else True):
        stage, probs = node_activity(node.name, freq, menu)
        # a node that serves a mode never taken still gets a ladder: it must not stall the other modes
        c = fold_channels(model, node) if node.op_type in (*MVAU_OPS, "MVAU_bitserial") else None
        if node.op_type == "MVAU_bitserial":  # no DSP, no SWG
            out.append(node_ladder(node, part, probs, stage, units, budget, word_max, cache, in_channels=c,
                                   kept=_kept(freq, stage)))
        else:
            merged = {"frames": sum(probs.values())}  # one figure: the node's cycles do not depend on the mode
            narrow = (node.op_type in MVAU_OPS and narrow_weights(model, node)) if levers.dsp_lanes else None
            lad = node_ladder(node, part, merged, stage, units, budget, word_max, cache, narrow, swg_rams, c)
            for r in lad.rungs:
                r.cycles = {m: r.cycles["frames"] for m in probs}
            lad.probs = probs
            out.append(lad)
    return out


def bitops(model, freq: dict, menu: list[int]) -> float:
    """Expected BitOPs per image: every MVAU's MACs x weight bits x input bits, weighted by how often its frames
    (of each mode) come to it; counted as qonnx-inference-cost counts them (no sparsity discount)."""
    from qonnx.custom_op.registry import getCustomOp

    total = 0.0
    for node in model.graph.node:
        if node.op_type not in (*MVAU_OPS, "MVAU_bitserial"):
            continue
        inst = getCustomOp(node)
        macs = inst.get_nodeattr("MW") * inst.get_nodeattr("MH") * int(np.prod(inst.get_nodeattr("numInputVectors")))
        stage, probs = node_activity(node.name, freq, menu, floor=False)
        if node.op_type == "MVAU_bitserial":
            p, kept = inst.bs_params(), _kept(freq, stage) or {}
            for k, bits in enumerate(sorted(probs)):
                # a unit with channel groups computes the kept groups' MACs only
                share = kept[bits] / p.n_groups if p.n_groups and kept.get(bits) is not None else 1.0
                total += probs[bits] * macs * share * p.modes[k].wbits * p.modes[k].abits
        else:
            bw = inst.get_input_datatype(0).bitwidth() * inst.get_input_datatype(1).bitwidth()
            total += sum(probs.values()) * macs * bw
    return total


def decision_frequencies(decisions: np.ndarray, man, keep: np.ndarray | None = None) -> dict[int, dict]:
    """``path_frequencies``'s form for a given set of images: {gated block: {"gate", "p", "floor": 0}} from their
    decisions ((images, gates) menu indices; ``keep``: their keep bits), so that the model can be evaluated on
    exactly those images."""
    from ..runtime.controller import popcount

    decisions = np.asarray(decisions)
    menu = list(man.bit_menu)
    out = {b["index"]: {"gate": b["gate"], "floor": 0.0,
                        "p": {bits: float((decisions[:, b["gate"]] == k).mean()) for k, bits in enumerate(menu)}}
           for b in man.blocks if b["gated"]}
    if keep is not None:
        kept = popcount(keep)
        for f in out.values():
            g = f["gate"]
            f["kept"] = {bits: float(kept[decisions[:, g] == k, g].mean()) if (decisions[:, g] == k).any() else None
                         for k, bits in enumerate(menu)}
    return out


def pipeline_cycles(model, freq: dict, menu: list[int], floor: bool = False) -> tuple[float, str]:
    """(max_n E[c_n], n): the throughput bound of a folded accelerator graph under path frequencies ``freq``, each
    node's cycles per mode from the node itself (a bit-serial unit's per-mode model, FINN's figure otherwise).
    FIFOs and the width converters FINN inserts are left out, as in the folding: the folding keeps converters at
    integer ratios, where they run at the rate of the wider side. ``floor``: as the folding weighs paths
    (``node_activity``)."""
    from qonnx.custom_op.registry import getCustomOp

    worst, name = 0.0, ""
    for node in model.graph.node:
        if node.op_type.startswith(INSERTED_OPS):
            continue
        stage, probs = node_activity(node.name, freq, menu, floor=floor)
        cycles = _cycles_per_mode(getCustomOp(node), probs, _kept(freq, stage))
        e = sum(probs[m] * cycles[m] for m in probs)
        if e > worst:
            worst, name = e, node.name
    return worst, name


def _cycles_per_mode(inst, probs: dict, kept: dict | None = None) -> dict:
    """A folded node's cycles per frame for each mode it serves (the modes of ``probs``): a bit-serial unit's
    per-mode model (its mode k is the k-th smallest computing width; with channel groups at ``kept[mode]`` groups
    kept on average), FINN's one figure for any other node."""
    if inst.onnx_node.op_type == "MVAU_bitserial":
        p = inst.bs_params()
        return {m: expected_frame_cycles(p, k, (kept or {}).get(m)) for k, m in enumerate(sorted(probs))}
    return dict.fromkeys(probs, int(inst.get_exp_cycles()))


def _kept(freq: dict, stage: str) -> dict | None:
    """The mean channel groups kept per width of a stage's gated block (``path_frequencies``' "kept"), if any."""
    b = int(stage[len("block"):]) if stage.startswith("block") else None
    return freq.get(b, {}).get("kept") if b is not None else None


def frame_sequence_cycles(model, decisions: np.ndarray, man, capacities: bool = False,
                          keep: np.ndarray | None = None, sweeps: int = SEQUENCE_SWEEPS) -> tuple[float, float]:
    """(cycles per image, latency) of a folded accelerator graph on a given sequence of images, by their decisions
    ((images, gates) menu indices): each node takes its own cycles for each frame's mode (0 for frames it does not
    see), starts a frame when every producer has started it and it has finished the previous one, and finishes it
    no sooner than its producers. Cycles per image as the Verilator runs measure them: the spacing of result
    completions. ``pipeline_cycles`` is its limit for long random sequences; on a finite one, blocks whose modes
    vary frame by frame hold each other up (a frame slow in one block and another slow in the next), which the
    mean misses.

    ``capacities``: the FIFOs hold what their depths say (the emitted graph's, in frames of their stream, summed
    along a chain of FIFOs and width converters) instead of anything: a producer finishes a frame only once its
    consumer has taken all of the stream but what the FIFOs between them hold, the consumer taking each frame's
    words evenly from its start until it has them all. Solved by sweeps until no time moves (the constraints only push
    times later); where they push without end (a cycle of waits: a fork whose FIFOs cannot hold what one branch
    must see before the other moves, as a gated block's frame buffer must hold the frame its gate decides on),
    the graph deadlocks and the cycles are infinite. A reduction (the gate, the pooling sum) takes its input
    until it has the frame, then passes its result on; a streaming node takes its input until its last output
    has left. ``keep``: the images' keep bits (a channel network's): a unit with channel groups takes its cycles
    for each frame's mode and groups kept. ``sweeps``: at most, past which the waits count as a cycle too."""
    from qonnx.custom_op.registry import getCustomOp

    decisions = np.asarray(decisions)
    menu = list(man.bit_menu)
    n = len(decisions)
    nodes = list(model.graph.node)
    producer = {t: node.name for node in nodes for t in node.output}
    consumers: dict[str, list] = {}
    for node in nodes:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    gated = {b["index"]: b["gate"] for b in man.blocks if b["gated"]}
    modes_only = {b: {"gate": g, "floor": 0.0, "p": {}} for b, g in gated.items()}  # which modes, not how often
    work: dict[str, np.ndarray] = {}
    moded: set[str] = set()  # the nodes that see only some modes' frames
    for node in nodes:
        if node.op_type.startswith(INSERTED_OPS):
            work[node.name] = np.zeros(n)
            continue
        stage, probs = node_activity(node.name, modes_only, menu, floor=False)
        inst = getCustomOp(node)
        cycles = _cycles_per_mode(inst, probs)
        if ALL in probs:
            work[node.name] = np.full(n, float(cycles[ALL]))
        else:
            g = gated[int(stage[len("block"):])]
            bits = np.asarray(menu)[decisions[:, g]]
            if keep is not None and node.op_type == "MVAU_bitserial" and inst.bs_params().n_groups:
                p, modes = inst.bs_params(), sorted(probs)  # each frame at its own groups kept
                work[node.name] = np.array([p.frame_cycles(modes.index(int(b)), int(k)) if int(b) in modes else 0.0
                                            for b, k in zip(bits, keep[:, g])], float)
            else:
                work[node.name] = np.array([cycles.get(int(b), 0.0) for b in bits], float)
            moded.add(node.name)
    out_edges = _fifo_edges(nodes, consumers, work, moded) if capacities else {}

    done: dict[str, np.ndarray] = {}  # per node, when it finished each frame
    first: dict[str, np.ndarray] = {}  # per node, when each frame's first output left it
    began: dict[str, np.ndarray] = {}
    took: dict[str, np.ndarray] = {}  # per node, when it had taken each frame's input

    def update(node) -> float:
        """The node's frames from its producers' times and its consumers' (blocking); how far its ends moved."""
        preds = [producer[t] for t in node.input if t in producer and producer[t] in done]
        lim = _blocking(out_edges.get(node.name, ()), began, took, n)
        own = work[node.name]
        fed = np.maximum.reduce([first[p] for p in preds] + [np.zeros(n)])  # every producer has started the frame
        had = np.maximum.reduce([done[p] for p in preds] + [np.zeros(n)])  # and has finished it
        # end[i] = max(end[i-1] + own[i], b[i]) (its input all taken: started and worked, every producer done; its
        # output all taken), solved at once: end = C + running max of (b - C), C the running sum of its work
        b = np.maximum(np.maximum(fed + own, had), lim)
        c = np.cumsum(own)
        end = c + np.maximum.accumulate(b - c)
        start = np.maximum(fed, np.concatenate(([0.0], end[:-1])))  # np.r_ took a sixth of the model's time
        ready = np.maximum(start + own, had)
        moved = float(np.abs(end - done[node.name]).max()) if node.name in done else np.inf
        began[node.name], done[node.name] = start, end
        # streaming nodes pass a frame on as it comes and take it in until their last output leaves; a reduction
        # (the gate, the pooling sum) takes the whole frame in, then passes its result on
        reducing = node.op_type in REDUCING_OPS
        first[node.name], took[node.name] = (ready, ready) if reducing else (start, end)
        return moved

    for node in nodes:
        update(node)
    # a producer waits for its consumers and a consumer for its producers: sweeps against and along the stream,
    # each carrying a delay the whole way, until nothing moves. No schedule that moves takes longer than every
    # node's work one after the other: past that, the waits go round in a cycle (a deadlock)
    if out_edges:
        serial = sum(float(w.sum()) for w in work.values())
        for sweep in range(sweeps):
            order = nodes[::-1] if sweep % 2 == 0 else nodes
            if max(update(node) for node in order) < 0.5:
                break
            if max(float(done[node.name][-1]) for node in nodes) > serial:
                return float("inf"), float("inf")
        else:
            return float("inf"), float("inf")
    ends = np.maximum.reduce([done[producer[o.name]] for o in model.graph.output])
    return (float((ends[-1] - ends[0]) / (n - 1)) if n > 1 else float(ends[0])), float(ends[0])


def _fifo_edges(nodes, consumers: dict[str, list], work: dict[str, np.ndarray],
                moded: set[str]) -> dict[str, list[tuple]]:
    """Per folded node, (consumer, capacity in frames, the frames the stream carries) of each stream to another
    folded node, through the FIFOs and width converters FINN inserted (a FIFO holds its depth in words of its
    stream; a converter a word either side). A stream carries the frames both ends work on, but a router's
    output to a node of every frame (a skip straight to the merge) only the frames its outputs to the nodes of
    some modes (``moded``) do not take."""
    from qonnx.custom_op.registry import getCustomOp

    edges: dict[str, list[tuple]] = {}
    for u in nodes:
        if u.op_type.startswith(INSERTED_OPS):
            continue
        ends = []  # (output, consumer, capacity)
        for k, t in enumerate(u.output):
            todo = [(c, 0.0) for c in consumers.get(t, [])]
            while todo:
                v, cap = todo.pop()
                if not v.op_type.startswith(INSERTED_OPS):
                    ends.append((k, v.name, cap))
                    continue
                inst = getCustomOp(v)
                words = float(np.prod(inst.get_folded_output_shape()[:-1]))
                held = inst.get_nodeattr("depth") if v.op_type.startswith("StreamingFIFO") else 2
                todo += [(c, cap + held / words) for c in consumers.get(v.output[0], [])]
        carried = {(k, v): (work[u.name] > 0) & (work[v] > 0) for k, v, _ in ends}
        if u.op_type.startswith("StreamRoute"):
            taken = np.zeros(len(work[u.name]), bool)
            for (_, v), c in carried.items():
                if v in moded:
                    taken |= c
            carried = {(k, v): (c if v in moded else c & ~taken) for (k, v), c in carried.items()}
        for k, v, cap in ends:
            frames = np.flatnonzero(carried[(k, v)])
            if len(frames):
                edges.setdefault(u.name, []).append((v, cap, frames))
    return edges


def _blocking(edges, began: dict, took: dict, n: int) -> np.ndarray:
    """The earliest a producer can finish each frame: once each consumer (``_fifo_edges``, at its current times)
    has taken the stream up to what the FIFOs between them hold, taking each frame evenly from its start until it
    has it all."""
    lim = np.zeros(n)
    for v, cap, frames in edges:
        if v not in took:
            continue
        s, e = began[v][frames], took[v][frames]
        m = np.arange(len(frames))
        pos = m + 1 - cap  # the consumer must have taken this much of the stream (in frames)
        ok = pos > 0
        k = np.minimum(np.ceil(pos[ok]).astype(int) - 1, m[ok])
        t = s[k] + (pos[ok] - k) * (e[k] - s[k])
        np.maximum.at(lim, frames[ok], t)
    return lim


def report(model, ladders: list[NodeLadder], alloc: Allocation, budget: dict[str, float], freq: dict,
           menu: list[int], what: str) -> dict:
    """One design's figures: model cycles per image, BitOPs, resources (estimates), fit, folding, stages."""
    chosen = {lad.node: lad.rungs[alloc.rungs[lad.node]] for lad in ladders}
    stages: dict[str, dict] = {}
    for lad in ladders:
        r = chosen[lad.node]
        s = stages.setdefault(lad.stage, {"expected_cycles": 0.0, "bottleneck": None, "cycles_per_mode": {},
                                          "probabilities": {}, "resources_estimate": dict.fromkeys(RESOURCES, 0.0)})
        if r.expected >= s["expected_cycles"]:
            s["expected_cycles"], s["bottleneck"] = r.expected, lad.node
        for m, c in r.cycles.items():
            key = str(m)
            s["cycles_per_mode"][key] = max(s["cycles_per_mode"].get(key, 0), c)
            s["probabilities"][key] = lad.probs[m]
        for k in RESOURCES:
            s["resources_estimate"][k] += r.resources[k]
    framewise = stage_bounds(ladders, alloc.rungs)
    for name, s in stages.items():
        pm = s["cycles_per_mode"]
        if ALL in pm:  # a node of every frame bounds every mode of its stage
            pm.update({k: max(v, pm[ALL]) for k, v in pm.items()})
        s["expected_cycles_stagewise"] = framewise.get(name, pm.get(ALL, 0.0))
    folding = {"Defaults": {}}
    for lad in ladders:
        folding[lad.node] = dict(chosen[lad.node].folding)
    return {
        "what": what,
        "cycles_per_image_model": alloc.cycles,
        "bottleneck": alloc.bottleneck,
        "cycles_per_image_model_stagewise": max(s["expected_cycles_stagewise"] for s in stages.values()),
        "bitops_per_image": bitops(model, freq, menu),
        "resources_estimate": alloc.resources,
        "resources_est": alloc.resources,
        "budget": budget,
        "fits": alloc.fits,
        "folding": folding,
        "stages": stages,
    }


DESIGNS = ("dfs", "static_W2A2", "static_W4A4", "static_W8A8")


def _designs(build_dir: Path, names: tuple[str, ...] | None = None) -> dict:
    """The build's board, budget, menu, path frequencies, and the four designs' graphs (unfolded; only ``names``
    if given)."""
    from .. import bitstreams
    from ..runtime.manifest import Manifest
    from . import ops  # noqa: F401
    from .accelerator import compose
    from .baselines import compose_static
    from .modal import bitserial_datapath

    summary = json.loads((build_dir / "summary.json").read_text())
    board = bitstreams.load(summary["board"]["name"])
    budget = board.budget(summary["budget_fraction"])
    budget = {k: float(budget[k]) for k in RESOURCES}
    man = Manifest.load(build_dir / "export")
    menu = list(man.bit_menu)
    freq = path_frequencies(build_dir, man)
    designs = {}
    if names is None or "dfs" in names:
        dfs = compose(build_dir, datapath=functools.partial(bitserial_datapath, folding=modal_start(build_dir, man)))
        designs["dfs"] = (dfs, freq, "one pipeline: stem, blocks (gated ones: gate, frame buffer, bit-serial "
                                     "datapath, skip routed past), global sum, head; E[cycles] under the gates' "
                                     "path frequencies")
    for bits in (2, 4, 8):  # the widths the export has paths for: the menu's and any beyond it
        if bits in man.routes and (names is None or f"static_W{bits}A{bits}" in names):
            designs[f"static_W{bits}A{bits}"] = (compose_static(build_dir, bits), {},
                                                 f"one pipeline: stem, every block at {bits} bits, global sum, head")
    return {"board": board, "budget_fraction": summary["budget_fraction"], "budget": budget, "menu": menu,
            "freq": freq, "designs": designs}


def budget_with_reserve(budget: dict[str, float], device: dict[str, float],
                        reserve: dict[str, float] | None) -> dict[str, float]:
    """The budget, each resource at most what the device leaves beside ``reserve`` (what FIFO sizing added to an
    emitted design beyond the folding's figures)."""
    if not reserve:
        return dict(budget)
    return {r: min(v, float(device.get(r, 0)) - float(reserve.get(r, 0.0))) for r, v in budget.items()}


def throughput_table(build_dir: str | Path, units: tuple[str, ...] = UNITS, progress: bool = False,
                     word_max: int | None = None, levers: Levers = Levers(), cache: dict | None = None,
                     designs: dict | None = None, ladders_out: dict | None = None,
                     reserve: dict[str, dict[str, float]] | None = None, rows: dict | None = None) -> dict:
    """The DFS accelerator and the static W2A2, W4A4 and W8A8 pipelines of a build (``fracskip build``, any
    ``--until``), each folded by ``allocate`` on the build's board and budget with the same ``levers`` (every
    matrix-vector unit's weight word at most ``word_max`` bits, if given). FINN must be set up
    (``hls.finn_env.setup``). Keys ``DESIGNS``, each with ``cycles_per_image_model``, ``bitops_per_image``,
    ``resources_est`` and ``fits``; figures are FINN's and fracskip's estimates. ``cache``: FINN's figures of
    nodes, shared between calls; ``designs``: ``_designs(build_dir)``, if already made; ``ladders_out``: gets
    each design's ladders; ``reserve``: per design, resources kept out of its budget (``budget_with_reserve``);
    ``rows``: rows folded before (a build's accelerator's), taken as they are for the designs ``designs`` leaves
    out. Each row names its units."""
    from .rtlsim.rtllib import default_cache_dir

    build_dir = Path(build_dir)
    if word_max is not None:
        levers = replace(levers, word_max=word_max)
    ctx = designs or _designs(build_dir)
    board, menu, freq = ctx["board"], ctx["menu"], ctx["freq"]
    out = {"board": board.name, "budget_fraction": ctx["budget_fraction"], "units": list(units),
           "weight_word_max": levers.word_max, "levers": levers.__dict__,
           "calibration": {f"block{b}": f["p"] for b, f in freq.items()},
           "note": "cycles and resources are estimates: FINN's per node (MVAU_rtl's DSPs by its RTL's lane packing; "
                   "MVAU_lut, MVAU_bitserial, the gates: fracskip's models fitted to Yosys); resources_estimate: the "
                   "nodes and a depth-2 FIFO on each of their outputs; inserted_estimate: FINN's width converters "
                   "and the FIFOs after them; fits: both within the budget; FIFOs deeper than 2 come from sizing by "
                   "simulation and are not included"}
    cache = {} if cache is None else cache  # stem, ungated blocks and head recur in every design
    uram = board.resources.get("URAM", 0) > 0
    out.update({k: v for k, v in (rows or {}).items() if k in DESIGNS and k not in ctx["designs"]})
    for name, (model, fr, what) in ctx["designs"].items():
        budget = budget_with_reserve(ctx["budget"], board.resources, (reserve or {}).get(name))
        lads = ladders_of(model, board.part, fr, menu, budget, units, progress, None, cache, levers)

        def inserted(alloc, name=name, model=model, lads=lads):
            folding = {lad.node: dict(lad.rungs[alloc.rungs[lad.node]].folding) for lad in lads}
            folded = folded_design(build_dir, name, folding, None if name == "dfs" else model, widths_only=True)
            return inserted_resources(folded, board.part, uram)

        alloc, extra, rounds = allocate_inserted(lads, budget, inserted, levers.exact, graph_edges(model),
                                                 default_cache_dir())
        out[name] = report(model, lads, alloc, budget, fr, menu, what)
        out[name].update(units=list(units), inserted_estimate=extra, fit_rounds=rounds,
                         resources_estimate_inserted={r: alloc.resources[r] + extra[r] for r in RESOURCES})
        if ladders_out is not None:
            ladders_out[name] = lads
        log.info("%s: %.0f cycles per image (%s), fits %s", name, alloc.cycles, alloc.bottleneck, alloc.fits)
    return out


def parse_budget(spec: str, default: float) -> dict[str, float]:
    """A budget as fractions of the device per resource: ``0.9`` (every resource), or ``LUT=0.8,BRAM_18K=1`` (the
    resources not named at ``default``)."""
    try:
        pairs = [(k.strip(), float(v)) for k, v in (kv.split("=") for kv in spec.split(","))] if "=" in spec else \
            [(r, float(spec)) for r in RESOURCES]
        given = dict(pairs)
    except ValueError:
        raise FracskipError(f"budget {spec!r}: give a fraction of the device (0.9) or fractions per resource "
                            f"(LUT=0.8,BRAM_18K=1; resources {', '.join(RESOURCES)})") from None
    if len(given) < len(pairs):
        raise FracskipError(f"budget {spec!r}: a resource named twice")
    if set(given) - set(RESOURCES):
        raise FracskipError(f"budget {spec!r}: unknown resource {sorted(set(given) - set(RESOURCES))}; "
                            f"resources are {', '.join(RESOURCES)}")
    fr = {r: given.get(r, default) for r in RESOURCES}
    if not all(0 < v <= 1 for v in fr.values()):
        raise FracskipError(f"budget {spec!r}: fractions of the device lie in (0, 1]")
    return fr


def budget_sweep(build_dir: str | Path, budgets: list[str], units: tuple[str, ...] = UNITS,
                 progress: bool = False) -> dict:
    """Every design of ``throughput_table`` folded again at each budget of ``budgets`` (``parse_budget``; the
    build's own fraction for resources a budget does not name): whether DFS's lead over the static pipelines holds
    at budgets around the build's or comes from where the ladders' rungs happen to fall. FINN must be set up.
    Estimates, like the table: cycles per image of each folding, its resources with what FINN inserts."""
    build_dir = Path(build_dir)
    ctx = _designs(build_dir)
    device = ctx["board"].resources
    cache: dict = {}
    rows = []
    for spec in budgets:
        fr = parse_budget(spec, ctx["budget_fraction"])
        budget = {r: float(device.get(r, 0)) * fr[r] for r in RESOURCES}
        t = throughput_table(build_dir, units, progress, designs=dict(ctx, budget=budget), cache=cache)
        row = {"budget": spec, "fractions": fr}
        for d in DESIGNS:
            if d in t:
                row[d] = {"cycles_per_image_model": t[d]["cycles_per_image_model"], "bottleneck": t[d]["bottleneck"],
                          "resources_est_inserted": t[d]["resources_estimate_inserted"], "fits": t[d]["fits"]}
        row["dfs_speedup_model"] = {d: row[d]["cycles_per_image_model"] / row["dfs"]["cycles_per_image_model"]
                                    for d in DESIGNS[1:] if d in row and "dfs" in row}
        rows.append(row)
        if progress:
            log.info("budget %s: %s", spec, ", ".join(f"{d} {row[d]['cycles_per_image_model']:,.0f}"
                                                      for d in DESIGNS if d in row))
    return {"board": ctx["board"].name, "build_budget_fraction": ctx["budget_fraction"], "units": list(units),
            "note": "estimates: each design folded by the allocator at each budget, as in the throughput table, "
                    "every layer with the best of units (the emitted designs take MVAU_rtl or MVAU_lut outside the "
                    "gated blocks: at the build's budget their cycles may differ); fits false: no folding fits, the "
                    "cheapest shown",
            "rows": rows}


# each lever on top of the ones before it: what the table was before this work, then one change at a time
LEVER_STEPS = (
    ("before: pricing heuristic, FINN's MVAU_rtl DSPs, LUT-RAM line buffers",
     Levers(exact=False, dsp_lanes=False, swg_block_ram=False)),
    ("+ MVAU_rtl DSPs by its RTL's lanes (7-series: 2 per slice at 8 bits)",
     Levers(exact=False, dsp_lanes=True, swg_block_ram=False)),
    ("+ exact allocator (0-1 program per bound)", Levers(exact=True, dsp_lanes=True, swg_block_ram=False)),
    ("+ sliding-window line buffers in block RAM where cheaper", Levers()),
    ("+ weight words up to 4,096 bits (every unit)", Levers(word_max=4096)),
)


# what-if bounds of the DFS design (not hardware): its nodes of these kinds at no cost
FREE_KINDS = (("ModalActivation_rtl",), ("DFSGate_rtl",), ("ModalActivation_rtl", "DFSGate_rtl"),
              ("ModalActivation_rtl", "DFSGate_rtl", "ConvolutionInputGenerator_rtl"), "all but MVAU_bitserial")


def free_bound(ladders: list[NodeLadder], budget: dict[str, float], free, edges: tuple = ()) -> Allocation:
    """The allocation if the nodes of the op types ``free`` (or all but the bit-serial units) cost nothing (the
    FIFOs on their outputs too; width converters still count): an upper bound on what making them cheaper can
    buy, not a design."""
    if free == "all but MVAU_bitserial":
        free = {lad.op_type for lad in ladders} - {"MVAU_bitserial"}
    out = []
    for lad in ladders:
        if lad.op_type in free:
            lad = replace(lad, rungs=[replace(r, resources=dict.fromkeys(RESOURCES, 0.0)) for r in lad.rungs])
        out.append(lad)
    return allocate(out, budget, edges=edges)


def lever_table(build_dir: str | Path, units: tuple[str, ...] = UNITS, steps=LEVER_STEPS,
                progress: bool = False) -> dict:
    """Cycles per image (model), fit and resources of every design after each lever of ``steps`` (cumulative):
    one row per step, the designs folded alike in each; and, after the last step, the DFS design's bound with
    the nodes of ``FREE_KINDS`` at no cost (``free_bound``)."""
    build_dir = Path(build_dir)
    ctx, cache, rows, lads = _designs(build_dir), {}, [], {}
    for what, levers in steps:
        t = throughput_table(build_dir, units, progress, levers=levers, cache=cache, designs=ctx, ladders_out=lads)
        row = {"lever": what, "levers": levers.__dict__}
        for d in DESIGNS:
            if d in t:
                row[d] = {k: t[d][k] for k in ("cycles_per_image_model", "bottleneck", "bitops_per_image",
                                              "resources_est", "fits")}
        rows.append(row)
    bounds, edges = [], graph_edges(ctx["designs"]["dfs"][0])
    for free in FREE_KINDS:
        a = free_bound(lads["dfs"], ctx["budget"], free, edges)
        bounds.append({"free": free if isinstance(free, str) else list(free), "cycles_per_image_model": a.cycles,
                       "bottleneck": a.bottleneck, "fits": a.fits})
    return {"steps": rows, "dfs_if_free": bounds}


def modal_start(build_dir: Path, man) -> dict[str, dict]:
    """A folding every modal unit accepts (PE 1, SIMD = MW: a shallow weight memory), to compose the graph whose
    nodes the ladders enumerate; the 8-bit path's own folding can exceed the unit's memory (PE 1 x SIMD 1)."""
    from qonnx.custom_op.registry import getCustomOp

    from .accelerator import load_core
    from .modal import skeleton

    fold = {}
    for b in man.blocks:
        if b["gated"]:
            sk = skeleton(load_core(build_dir, man.path_core(b["index"], max(man.bit_menu))))
            mvaus = [sk.nodes[k] for k in sk.order if k[0] == "MVAU"]  # modal.py names them in this order
            grouped = any("channels" in p for p in b["paths"].values())
            for j, n in enumerate(mvaus):
                # a channel block's units fold a group at a time (conv2 may not read across groups in a word)
                fold[f"block{b['index']}_modal_mvau{j}"] = {"PE": man.channel_group, "SIMD": man.channel_group} \
                    if grouped else {"PE": 1, "SIMD": getCustomOp(n).get_nodeattr("MW")}
    return fold


def apply_folding(model, folding: dict):
    """A folding (``report``'s ``folding``, FINN's folding-config shape) applied by node name, as FINN's ApplyConfig
    does, and the unit changed where the rung says so between MVAU_rtl and MVAU_lut. Returns the model and the
    nodes left as they were because their rung is the bit-serial unit at fixed precision (its accumulator type
    differs from the MVAU's, so its consumers would need re-typing: not done here)."""
    from qonnx.custom_op.registry import getCustomOp

    skipped = []
    for idx, node in enumerate(list(model.graph.node)):
        f = folding.get(node.name)
        if not f:
            continue
        unit = f.get("op_type", node.op_type)
        if unit != node.op_type:
            if unit == "MVAU_bitserial":
                skipped.append(node.name)
                continue
            new = as_unit(node, unit)
            model.graph.node.remove(node)
            model.graph.node.insert(idx, new)
            node = model.graph.node[idx]  # protobuf inserts a copy
        inst = getCustomOp(node)
        for k, v in f.items():
            if k != "op_type":
                inst.set_nodeattr(k, v)
    return model, skipped


def folded_dfs(build_dir: str | Path, folding: dict):
    """The DFS accelerator graph (``hls.accelerator.compose`` with ``hls.modal.bitserial_datapath``) built with a
    folding of ``throughput_table``'s "dfs" entry: the modal units get theirs through the datapath (and their
    weight memory by name), every other node by name (``apply_folding``). Returns the model and the nodes
    ``apply_folding`` left as they were."""
    from .accelerator import compose
    from .modal import bitserial_datapath

    units = {n: {k: v for k, v in f.items() if k in ("PE", "SIMD", "WBP")} for n, f in folding.items()
             if "_modal_mvau" in n}
    model = compose(Path(build_dir), datapath=functools.partial(bitserial_datapath, folding=units))
    named = {n: {k: f[k] for k in UNIT_ATTRS if k in f} for n, f in folding.items() if "_modal_mvau" in n}
    return apply_folding(model, {**{n: f for n, f in folding.items() if "_modal_mvau" not in n}, **named})


def folded_design(build_dir: str | Path, design: str, folding: dict, model=None, widths_only: bool = False):
    """The graph of ``design`` (one of ``DESIGNS``) with ``folding`` applied; ``model``: the design's unfolded
    graph, if at hand (static designs). A node the folding puts on the fixed-precision bit-serial unit
    (``apply_folding`` does not build it) is refused, or with ``widths_only`` gets the rung's PE and SIMD on the
    MVAU it stands for: the graph then has the folded design's stream widths, not its units."""
    from qonnx.custom_op.registry import getCustomOp

    from .accelerator import static_bits
    from .baselines import compose_static

    if design == "dfs":
        model, skipped = folded_dfs(build_dir, folding)
    else:
        model = compose_static(Path(build_dir), static_bits(design)) if model is None \
            else copy.deepcopy(model)
        model, skipped = apply_folding(model, folding)
    if skipped and not widths_only:
        raise FracskipError(f"{design}: the folding puts {skipped} on the fixed-precision bit-serial unit, which "
                            "apply_folding does not build; fold with --units MVAU_rtl,MVAU_lut")
    for name in skipped:
        inst = getCustomOp(model.get_node_from_name(name))
        for k in ("PE", "SIMD"):
            inst.set_nodeattr(k, folding[name][k])
    return model


def inserted_resources(model, part: str, uram: bool = True) -> dict[str, float]:
    """FINN's estimates of what FINN inserts between the nodes of a folded graph: its width converters (InsertDWC)
    and a FIFO of depth 2 on every stream (``accelerator.insert_streams``). Deeper FIFOs come from sizing."""
    from .accelerator import insert_streams

    names = {n.name for n in model.graph.node}
    emitted = insert_streams(copy.deepcopy(model), part)
    out = dict.fromkeys(RESOURCES, 0.0)
    for node in emitted.graph.node:
        if node.name not in names:
            for r, v in _emitted_res(emitted, node, part, uram).items():
                out[r] += v
    return out


FIT_ROUNDS = 6  # allocations per design at most after the first, each with a different reserve for FINN's nodes


def cached_allocate(cache_dir: Path, ladders: list[NodeLadder], budget: dict[str, float], exact: bool = True,
                    edges: tuple = (), at_least: float = 0.0) -> Allocation:
    """``allocate``, its result kept in ``cache_dir/folding/`` under a hash of everything it depends on (the
    ladders, the budget, the edges, this module's source, scipy's HiGHS): the same design folded again, by another
    command or test on the same build, costs no 0-1 programs (the default's four designs: 84 s cold, 11 s warm)."""
    import hashlib

    import scipy

    from .synth.nodes import cached

    h = hashlib.sha256(Path(__file__).read_bytes() + scipy.__version__.encode())
    h.update(repr((sorted(budget.items()), exact, edges, float(at_least))).encode())
    for lad in ladders:
        h.update(repr((lad.node, lad.op_type, lad.stage, sorted(lad.probs.items(), key=str))).encode())
        for r in lad.rungs:
            h.update(repr((sorted(r.folding.items()), sorted(r.cycles.items(), key=str), sorted(r.resources.items()),
                           r.expected, r.stream_lut, r.in_widths, r.out_widths)).encode())
    path = Path(cache_dir) / "folding" / f"{h.hexdigest()[:24]}.json"
    if path.is_file():
        return Allocation(**cached(path, None))
    before = _OUT_OF_TIME[0]
    alloc = allocate(ladders, budget, exact, edges, at_least)
    if _OUT_OF_TIME[0] == before:
        cached(path, lambda: alloc.__dict__)
    else:  # a busy machine's answer (a bound taken as infeasible) must not be every later build's
        log.warning("this folding is not cached: a 0-1 program ran out of time (%d s)", MILP_SECONDS)
    return alloc


def allocate_inserted(ladders: list[NodeLadder], budget: dict[str, float], inserted, exact: bool = True,
                      edges: tuple = (), cache_dir: Path | None = None):
    """``allocate`` with FINN's inserted nodes inside ``budget``. The allocation counts each node, the depth-2 FIFOs
    on its outputs and the width converters of its choice (``converter_lut``); ``inserted(alloc)`` gives FINN's
    estimates of every converter and FIFO the folding makes (``inserted_resources``), and what the allocation
    did not count (E) must fit beside it. If it does not, the nodes are allocated within the budget less a
    reserve s*E0 (E0: E of the allocation without reserve), s found by doubling and then bisection: the fastest
    allocation found whose nodes and E fit (``fits``), in at most ``FIT_ROUNDS`` further allocations, and no more
    once one fits as fast as the allocation at the largest reserve that did not. Returns the allocation, its E,
    and the allocations made. ``cache_dir``: allocations kept there (``cached_allocate``)."""
    def attempt(s: float, e0: dict[str, float], at_least: float = 0.0):
        within = {r: budget.get(r, 0.0) - s * e0[r] for r in RESOURCES}
        alloc = (allocate(ladders, within, exact, edges, at_least) if cache_dir is None
                 else cached_allocate(cache_dir, ladders, within, exact, edges, at_least))
        if not alloc.fits and s > 0:  # the nodes alone do not fit beside this reserve: no allocation to judge
            return alloc, None
        charged = sum(lad.rungs[alloc.rungs[lad.node]].stream_lut for lad in ladders) + alloc.converter_lut
        ins = inserted(alloc)
        extra = {r: max(0.0, ins[r] - (charged if r == "LUT" else 0.0)) for r in RESOURCES}
        alloc.fits = _usage({r: alloc.resources[r] + extra[r] for r in RESOURCES}, budget)
        return alloc, extra

    first, e0 = attempt(0.0, dict.fromkeys(RESOURCES, 0.0))
    made = 1
    if first.fits or not _usage(first.resources, budget):  # fits, or the nodes alone do not
        return first, e0, made
    # s too small: the whole is over budget; too large: the nodes alone no longer fit beside the reserve
    best, lo, hi = None, 0.0, None
    below = first.cycles  # the optimum at the reserve lo: none at a larger reserve is faster
    while made <= FIT_ROUNDS:
        s = 2 * lo if hi is None else (lo + hi) / 2  # doubling from 1 until bounded, then bisection
        s = s or 1.0
        alloc, extra = attempt(s, e0, below)
        made += 1
        if alloc.fits and (best is None or alloc.cycles <= best[0].cycles):
            best = (alloc, extra)
        if alloc.fits and alloc.cycles <= below * (1 + 1e-9):  # no reserve gives less: the search is over
            break
        if alloc.fits or extra is None:
            hi = s
        else:
            lo, below = s, alloc.cycles
    return (best[0], best[1], made) if best is not None else (first, e0, made)


def main(argv: list[str] | None = None) -> None:
    """``python -m fracskip.hls.pipeline_folding BUILD [--units U,...] [--weight-word-max BITS] [--folding]
    [--levers | --budgets B ... [--plot PNG]]``: the throughput table of a build (the DFS accelerator and the static
    pipelines, estimates) as JSON; with ``--levers``, each design's figures after each lever of ``LEVER_STEPS``
    instead; with ``--budgets``, every design folded at each of those budgets (``budget_sweep``)."""
    import argparse

    from . import finn_env

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("build")
    ap.add_argument("--units", default=",".join(UNITS), help=f"matrix-vector units a layer may take ({UNITS})")
    ap.add_argument("--weight-word-max", type=int, default=WEIGHT_WORD_MAX,
                    help="widest weight word of a matrix-vector unit, bits (default: the builder's SetFolding bound)")
    ap.add_argument("--folding", action="store_true", help="print every node's folding too")
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--levers", action="store_true", help="the table after each lever (LEVER_STEPS), cumulative")
    what.add_argument("--budgets", nargs="+", metavar="B",
                    help="fold every design at each budget: a fraction of the device (0.9) or fractions per resource "
                         "(LUT=0.8,BRAM_18K=1; the others at the build's --budget)")
    ap.add_argument("--plot", metavar="PNG", help="with --budgets: cycles per image against the budget, as a plot")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    units = tuple(args.units.split(","))
    if args.plot and not args.budgets:
        ap.error("--plot draws the --budgets sweep: give --budgets")
    try:
        for b in args.budgets or ():  # before minutes of folding
            parse_budget(b, 1.0)
    except FracskipError as exc:
        ap.error(str(exc))
    with finn_env.scratch("fracskip_folding_"):  # the caller's FINN set-up (a test's) comes back afterwards
        if args.budgets:
            sweep = budget_sweep(args.build, args.budgets, units, progress=True)
            if args.plot:
                from ..report import budget_sweep_plot

                budget_sweep_plot(sweep, Path(args.plot))
            print(json.dumps(sweep, indent=1, default=str))
            return
        if args.levers:
            print(json.dumps(lever_table(args.build, units, progress=True), indent=1, default=str))
            return
        table = throughput_table(args.build, units, progress=True, word_max=args.weight_word_max)
    if not args.folding:
        for d in DESIGNS:
            if d in table:
                table[d].pop("folding")
    print(json.dumps(table, indent=1, default=str))


if __name__ == "__main__":
    main()

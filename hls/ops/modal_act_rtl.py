"""ModalActivation and ModalActivation_rtl: one per-element function per mode, the mode chosen per frame.

The elementwise stages of a DFS block differ from path to path: the 2- and 4-bit paths quantize the block input
with a threshold table and the 8-bit path does not; the middle activation is a 3- or 15-step table at 2 and 4 bits
and an exact requantizer (``IntRequant``) at 8. In the block's one runtime-precision datapath (``hls/modal.py``)
each such stage is one node of this op, holding every mode's function:

- ``bypass``: out = in (the mode's path has no such stage);
- ``thresholds``: out = act_val + #{j : in >= T[c, j]} (FINN's MultiThreshold on integers; T ceiled), the input
  taken at the mode's own width ``in_bits`` (a mode's path feeds it a narrower type than the stream's, which holds
  every mode's: a 4-bit path's accumulator needs 18 bits where the 8-bit path's needs 26);
- ``requant``: out = clip((in * mul[c] + bias[c]) >> shift, lo, hi) (``IntRequant``; ``>>`` floors).

Streams: ``in0_V`` the data, FINN's Thresholding layout (``NumChannels`` with ``PE`` per word, ``numInputVectors``
words of NumChannels/PE per frame), ``in1_V`` one mode token per frame (8 bits, the mode in the low bits, as
``MVAU_bitserial`` reads it), ``out0_V`` the data in ``outputDataType``, which holds every mode's outputs. The
functions are the JSON attribute ``modes`` (a list, one ``ModeFunction.to_json()`` per mode).

The RTL (generated per node, plain Verilog-2005) takes a frame's token in a cycle of its own, then the frame's
words at one per cycle through two pipeline stages: compare and multiply; then select the mode's result into the
output register. Both stages advance when the output register is free, as in ``IntRequant_rtl``. Each threshold
mode has its own comparators and its own constant table indexed by channel, exactly its steps wide at its own
width (one table padded to the widest mode's steps and the stream's width stored the 2-bit mode's 3 thresholds
and the requant mode's none as 15 of 26 bits). Yosys on the default's 17 nodes: 6,729 LUT against 6,991 for the
padded table; per node from 0.6x to 1.35x of it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from ...errors import FracskipError
from .requant_rtl import signed_bits
from .single_file import SingleFileRTL
from .stream_op import PerChannelStreamOp, verilog_literal

KINDS = ("bypass", "thresholds", "requant")
MODE_TOKEN_BITS = 8  # as MVAU_bitserial's in1_V
MAX_MODES = 4


@dataclass(frozen=True)
class ModeFunction:
    """One mode's per-element function of an integer stream, channels on the last axis."""

    kind: str
    thresholds: tuple[tuple[int, ...], ...] = ()  # (C or 1, N) integer thresholds, rows sorted
    act_val: int = 0
    mul: tuple[int, ...] = ()  # (C,), >= 0
    bias: tuple[int, ...] = ()  # (C,)
    shift: int = 0
    lo: int = 0
    hi: int = 0
    in_bits: int = 0  # thresholds: the input as a signed operand of this width (0: the stream's)

    @classmethod
    def bypass(cls) -> ModeFunction:
        return cls("bypass")

    @classmethod
    def from_thresholds(cls, table: np.ndarray, idt: DataType, act_val: int = 0) -> ModeFunction:
        """A FINN threshold table on integers of ``idt``: ``x >= t`` <=> ``x >= ceil(t)``, and a threshold beyond
        the type's range is clipped to min (always reached) or max + 1 (never), which keeps the RTL's compare
        width that of the input. ``idt`` is the mode's input type: the RTL compares at its width."""
        t = np.clip(np.ceil(np.asarray(table, dtype=np.float64)), idt.min(), idt.max() + 1).astype(np.int64)
        return cls("thresholds", thresholds=tuple(tuple(int(v) for v in row) for row in np.sort(t, axis=1)),
                   act_val=int(act_val), in_bits=operand_bits(idt))

    @classmethod
    def requant(cls, mul, bias, shift: int, lo: int, hi: int) -> ModeFunction:
        return cls("requant", mul=tuple(int(v) for v in mul), bias=tuple(int(v) for v in bias), shift=int(shift),
                   lo=int(lo), hi=int(hi))

    @property
    def steps(self) -> int:
        return len(self.thresholds[0]) if self.thresholds else 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).astype(np.int64)
        if self.kind == "bypass":
            return x
        if self.kind == "thresholds":
            if self.in_bits:  # as the RTL: the low in_bits bits, signed (the value itself if it is in the mode's type)
                h = 1 << (self.in_bits - 1)
                x = ((x + h) & (2 * h - 1)) - h
            t = np.asarray(self.thresholds, dtype=np.int64)  # (C or 1, N): broadcasts over the channel axis
            return (x[..., None] >= t).sum(axis=-1) + self.act_val
        mul, bias = np.asarray(self.mul, dtype=np.int64), np.asarray(self.bias, dtype=np.int64)
        return np.clip((x * mul + bias) >> self.shift, self.lo, self.hi)

    def out_range(self, idt: DataType) -> tuple[int, int]:
        if self.kind == "bypass":
            return int(idt.min()), int(idt.max())
        if self.kind == "thresholds":
            return self.act_val, self.act_val + self.steps
        return self.lo, self.hi

    def problems(self, channels: int) -> list[str]:
        if self.kind not in KINDS:
            return [f"kind {self.kind!r} is not one of {KINDS}"]
        if self.kind == "thresholds":
            rows = {len(r) for r in self.thresholds}
            if len(self.thresholds) not in (1, channels) or len(rows) != 1 or not self.steps:
                return [f"thresholds need (1 or {channels}, N >= 1) entries"]
            if any(list(r) != sorted(r) for r in self.thresholds):
                return ["threshold rows must be sorted"]
            h = 1 << (self.in_bits - 1) if self.in_bits else None
            if h and not -h <= min(map(min, self.thresholds)) <= max(map(max, self.thresholds)) <= h:
                return [f"thresholds beyond the range of {self.in_bits}-bit inputs: clip them to it (from_thresholds)"]
        if self.kind == "requant":
            if len(self.mul) != channels or len(self.bias) != channels:
                return [f"requant needs {channels} multipliers and biases"]
            if min(self.mul) < 0 or self.shift < 0 or self.lo > self.hi:
                return ["requant needs multipliers >= 0, shift >= 0 and lo <= hi"]
        return []

    def to_json(self) -> dict:
        if self.kind == "bypass":
            return {"kind": "bypass"}
        if self.kind == "thresholds":
            return {"kind": "thresholds", "thresholds": [list(r) for r in self.thresholds], "act_val": self.act_val,
                    "in_bits": self.in_bits}
        return {"kind": "requant", "mul": list(self.mul), "bias": list(self.bias), "shift": self.shift,
                "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_json(cls, d: dict) -> ModeFunction:
        d = dict(d)
        if "thresholds" in d:
            d["thresholds"] = tuple(tuple(int(v) for v in r) for r in d["thresholds"])
        for k in ("mul", "bias"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        return cls(**d)


def operand_bits(dt: DataType) -> int:
    """Bits of ``dt``'s values as a signed operand."""
    return dt.bitwidth() + (0 if dt.signed() else 1)


def datatype_for(lo: int, hi: int) -> DataType:
    """The narrowest FINN integer type holding [lo, hi]."""
    return DataType[f"INT{signed_bits([lo, hi])}"] if lo < 0 else DataType[f"UINT{max(1, int(hi).bit_length())}"]


@register_hw_op
class ModalActivation(PerChannelStreamOp):
    """Per-frame choice of a per-element function (abstract HW layer; python execution)."""

    def get_nodeattr_types(self):
        return {**super().get_nodeattr_types(), "modes": ("s", True, "[]")}

    def mode_functions(self) -> list[ModeFunction]:
        return [ModeFunction.from_json(d) for d in json.loads(self.get_nodeattr("modes"))]

    def verify_node(self):
        try:
            fns = self.mode_functions()
        except (TypeError, ValueError) as exc:
            return [f"modes is not a list of mode functions: {exc}"]
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        info = []
        if not 1 <= len(fns) <= MAX_MODES:
            info.append(f"{len(fns)} modes: 1 to {MAX_MODES}")
        if not (idt.is_integer() and odt.is_integer()) or DataType["BIPOLAR"] in (idt, odt):
            info.append(f"integer input and output types needed, has {idt.name} -> {odt.name}")
        for k, f in enumerate(fns):
            info += [f"mode {k}: {p}" for p in f.problems(self.get_nodeattr("NumChannels"))]
            if f.in_bits > operand_bits(idt):
                info.append(f"mode {k}: {f.in_bits}-bit inputs exceed the stream's {idt.name}")
            lo, hi = f.out_range(idt)
            if not info and not (odt.allowed(lo) and odt.allowed(hi)):
                info.append(f"mode {k}: outputs [{lo}, {hi}] exceed {odt.name}")
        return info + self.fold_reasons()

    # ------------------------------------------------------------------ streams: in1 is the mode token
    def get_normal_input_shape(self, ind=0):
        return super().get_normal_input_shape() if ind == 0 else (1, 1)

    def get_folded_input_shape(self, ind=0):
        return super().get_folded_input_shape() if ind == 0 else (1, 1, 1)

    def get_input_datatype(self, ind=0):
        return super().get_input_datatype() if ind == 0 else DataType[f"UINT{MODE_TOKEN_BITS}"]

    def get_instream_width(self, ind=0):
        return super().get_instream_width() if ind == 0 else MODE_TOKEN_BITS

    def get_exp_cycles(self):
        return super().get_exp_cycles() + 1  # the token takes a cycle of its own

    # ------------------------------------------------------------------ estimates
    def widths(self) -> dict[str, int]:
        """Datapath bits: signed input operand, count; requant multiplier, bias, sum."""
        idt, fns = self.get_input_datatype(), self.mode_functions()
        xw = operand_bits(idt)
        rq = [f for f in fns if f.kind == "requant"]
        mw = max((signed_bits(f.mul) for f in rq), default=1)
        bw = max((signed_bits(f.bias) for f in rq), default=1)
        sw = max([xw + mw, bw] + [signed_bits([f.lo, f.hi]) for f in rq]) + 1
        nt = max((f.steps for f in fns), default=0)
        return {"xw": xw, "ctw": max(1, nt.bit_length()), "mw": mw, "bw": bw, "sw": sw}

    def compare_bits(self, f: ModeFunction) -> int:
        """A threshold mode's compare width: its inputs as signed operands, and one bit for max + 1."""
        return (f.in_bits or operand_bits(self.get_input_datatype())) + 1

    def _kinds(self) -> set[str]:
        return {f.kind for f in self.mode_functions()}

    def dsp_estimation(self, fpgapart=None):
        """When a mode requantizes: per lane, the signed multiplier tiled from 25 x 18 DSP48s as
        ``IntRequant_rtl.dsp_estimation`` counts them."""
        if "requant" not in self._kinds():
            return 0
        w = self.widths()

        def tiles(a, b):  # a on the 25-bit port, b on the 18-bit port
            return (1 + math.ceil(max(0, a - 25) / 24)) * (1 + math.ceil(max(0, b - 18) / 17))

        return self.get_nodeattr("PE") * min(tiles(w["xw"], w["mw"]), tiles(w["mw"], w["xw"]))

    def lut_estimation(self, fpgapart=None):
        """Per lane, fitted to Yosys ``synth_xilinx`` of the default's 17 nodes at PE 1 (``hls/synth/nodes.py``:
        the sum within 5 %, single nodes from 0.5x to 2x): per threshold mode, a comparator per threshold (half a
        LUT per bit on the carry chain; a LUT per 6 bits against a constant), a counter bit each, and its table's
        ROM, counted in the bits that vary from channel to channel (the others are constants): a LUT6 per 64
        channels and varying bit, plus their multiplexers. A requant mode: its multiplier and bias tables
        likewise (per 64 (mode, channel) entries), the sum and the clip. The output multiplexer over the modes;
        the counters."""
        w, pe, fns = self.widths(), self.get_nodeattr("PE"), self.mode_functions()
        per_lane = self.get_nodeattr("NumChannels") // pe

        def rom(entries: int) -> float:  # LUTs per bit of a LUT6 ROM
            n = math.ceil(entries / 64)
            return n + (n - 1) / 2

        lane = self.get_output_datatype().bitwidth() * max(1, len(fns) - 1)
        for f in (f for f in fns if f.kind == "thresholds"):
            tw = self.compare_bits(f)
            if len(f.thresholds) == 1:  # constants: the compares fold into the input's bits
                lane += f.steps * math.ceil(tw / 6)
                continue
            t = np.asarray(f.thresholds, dtype=np.int64) & ((1 << tw) - 1)
            varying = sum(len(np.unique((t[:, j] >> b) & 1)) > 1 for j in range(f.steps) for b in range(tw))
            lane += f.steps * (math.ceil(tw / 2) + 1) + varying * rom(per_lane)
        if "requant" in self._kinds():
            lane += (w["mw"] + w["bw"]) * rom(len(fns) * per_lane) + 2 * w["sw"]
        frame = int(np.prod(self.get_folded_input_shape()[:-1]))
        return int(pe * lane + 2 * max(1, frame.bit_length()) + 4)

    def bram_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self, fpgapart=None):
        return 0

    # ------------------------------------------------------------------ execution
    def frame_modes(self, context) -> list[int]:
        node = self.onnx_node
        n = context[node.input[0]].shape[0]
        modes = [int(v) for v in np.asarray(context[node.input[1]]).reshape(-1)]
        if len(modes) != n or any(not 0 <= m < len(self.mode_functions()) for m in modes):
            raise FracskipError(f"{node.name}: modes {modes} for {n} frames, each must be in the menu")
        return modes

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        fns = self.mode_functions()
        y = np.concatenate([fns[m](x[f:f + 1]) for f, m in enumerate(self.frame_modes(context))])
        context[node.output[0]] = y.astype(np.float32)


_V = """// fracskip ModalActivation_rtl: {channels} channels, {pe} per word, {idt} -> {odt}; per frame, one mode token:
{summary}// The token takes a cycle; then per word: compare and multiply | select the mode's result -> output register.
module {top} (
  input ap_clk,
  input ap_rst_n,
  input  [{iw_pad}-1:0] in0_V_TDATA,
  input  in0_V_TVALID,
  output in0_V_TREADY,
  input  [{tok_bits}-1:0] in1_V_TDATA,
  input  in1_V_TVALID,
  output in1_V_TREADY,
  output [{ow_pad}-1:0] out0_V_TDATA,
  output out0_V_TVALID,
  input  out0_V_TREADY
);
  localparam PE = {pe};
  localparam C = {channels};
  localparam MB = {mb};  // mode index bits
  localparam FW = {fw};  // word-in-pixel counter bits (lane i of word f is channel f*PE + i)
  localparam NW = {nw};  // word-in-frame counter bits
  localparam IW = {iw};  // input element bits
  localparam XW = {xw};  // input as a signed operand
  localparam OW = {ow};  // output element bits
  localparam CTW = {ctw};  // count bits
  localparam MW = {mw};  // requant multiplier (signed, all >= 0)
  localparam BW = {bw};  // requant bias
  localparam PW = XW + MW;
  localparam SW = {sw};  // requant sum
{tables}
  reg have;  // the current frame's token has been taken
  reg [MB-1:0] mode, p_mode;
  reg [FW-1:0] fold;
  reg [NW-1:0] word;
  reg p_valid, y_valid;
  wire advance = !y_valid || out0_V_TREADY;
  wire take = have && in0_V_TVALID && advance;
  assign in0_V_TREADY = have && advance;
  assign in1_V_TREADY = !have;
  assign out0_V_TVALID = y_valid;

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      have <= 1'b0;
      mode <= 0;
      fold <= 0;
      word <= 0;
      p_valid <= 1'b0;
      y_valid <= 1'b0;
    end else begin
      if (!have && in1_V_TVALID) begin
        have <= 1'b1;
        mode <= in1_V_TDATA[MB-1:0];
      end
      if (take) begin
        fold <= (fold == {fw}'d{last_fold}) ? {{FW{{1'b0}}}} : fold + 1'b1;
        word <= (word == {nw}'d{last_word}) ? {{NW{{1'b0}}}} : word + 1'b1;
        if (word == {nw}'d{last_word}) have <= 1'b0;
      end
      if (advance) begin
        p_valid <= take;
        y_valid <= p_valid;
        p_mode <= mode;
      end
    end
  end

  genvar i;
  generate
    for (i = 0; i < PE; i = i + 1) begin : g_pe
      wire [IW-1:0] x = in0_V_TDATA[i*IW +: IW];
      wire signed [XW-1:0] xs = {xs};
      wire [{ew}-1:0] e = mode * C + fold * PE + i;  // (mode, channel): a requant table's entry
      reg signed [XW-1:0] x1;
{lane_decl}      reg [OW-1:0] y;
      always @(posedge ap_clk) begin
        if (advance) begin
          x1 <= xs;
{lane_stage1}        end
      end
{lane_stage2}      always @(posedge ap_clk) begin
        if (advance) begin
          case (p_mode)
{cases}            default: y <= {{OW{{1'b0}}}};
          endcase
        end
      end
      assign out0_V_TDATA[i*OW +: OW] = y;
    end
  endgenerate
{pad}endmodule
"""


def _twos(value: int, width: int) -> str:
    return f"{width}'d{value & ((1 << width) - 1)}"


def _resize(signal: str, width: int, out: int) -> str:
    """A signed ``width``-bit signal as ``out`` bits, sign-extended or truncated (every mode's results lie in
    the output type, so either keeps the value)."""
    if width >= out:
        return f"{signal}[{out - 1}:0]"
    return f"{{{{{out - width}{{{signal}[{width - 1}]}}}}, {signal}}}"


def _word(values: list[int], width: int) -> int:
    """Fields of ``width`` bits (two's complement), value 0 in the lowest bits."""
    return sum((v & ((1 << width) - 1)) << (i * width) for i, v in enumerate(values))


def _rom(name: str, width: int, values: list[int], ew: int) -> str:
    """A constant table as a function of the (mode, channel) entry: a case statement, which synthesis maps to LUT
    ROMs (a dynamic part-select of one wide constant would be a shifter as wide as the table)."""
    mask = (1 << width) - 1
    body = "".join(f"      {e}: {name} = {width}'h{v & mask:x};\n" for e, v in enumerate(values))
    return (f"  function [{width}-1:0] {name};\n    input [{ew}-1:0] e;\n    case (e)\n{body}"
            f"      default: {name} = {width}'h0;\n    endcase\n  endfunction")


class ModalActivation_rtl(SingleFileRTL, ModalActivation, RTLBackend):
    """ModalActivation as a pipelined Verilog module (see the module docstring)."""

    def get_nodeattr_types(self):
        attrs = dict(ModalActivation.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0)), ("in1_V", MODE_TOKEN_BITS)]
        return intf

    def verilog(self, top: str | None = None) -> str:
        """The module's Verilog (plain Verilog-2005: Verilator and Yosys read it)."""
        problems = self.verify_node()
        if problems:
            raise FracskipError(f"{self.onnx_node.name}: " + "; ".join(problems))
        fns = self.mode_functions()
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        C, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        w, ow, iw = self.widths(), odt.bitwidth(), idt.bitwidth()
        cf = C // pe
        words = int(np.prod(self.get_folded_input_shape()[:-1]))
        K = len(fns)
        kinds = {f.kind for f in fns}
        ew = max(1, (K * C - 1).bit_length())  # (mode, channel) entry index bits
        cw = max(1, (C - 1).bit_length())  # channel index bits
        tables, decl, stage1, stage2, cases, summary = [], "", "", "", "", ""
        for k, f in enumerate(fns):
            summary += f"//   mode {k}: {f.kind}" + (
                f", {f.steps} thresholds, act_val {f.act_val}" if f.kind == "thresholds" else
                f", >> {f.shift}, clip [{f.lo}, {f.hi}]" if f.kind == "requant" else "") + "\n"
        if "thresholds" in kinds:
            decl += "      reg [CTW-1:0] cnt1;\n"
            select = ""
            for k, f in enumerate(fns):
                if f.kind != "thresholds":
                    continue
                tw, n = self.compare_bits(f), f.steps
                row = f"{n * tw}'h{_word(list(f.thresholds[0]), tw):x}"
                if len(f.thresholds) > 1:
                    tables.append(_rom(f"thr{k}", n * tw, [_word(list(r), tw) for r in f.thresholds], cw))
                    row = f"thr{k}(fold * PE + i)"  # the channel inline: a wire of it cost Yosys up to 1.8x the LUTs
                xm = f"{{xs[{tw - 2}], xs[{tw - 2}:0]}}"  # the input at the mode's width
                decl += (f"      wire [{n * tw}-1:0] trm{k} = {row};\n      wire signed [{tw}-1:0] xm{k} = {xm};\n"
                         f"      reg [{max(1, n.bit_length())}-1:0] cm{k};\n      integer jm{k};\n")
                stage2 += (f"      always @* begin\n        cm{k} = 0;\n"
                           f"        for (jm{k} = 0; jm{k} < {n}; jm{k} = jm{k} + 1)\n"
                           f"          cm{k} = cm{k} + (xm{k} >= $signed(trm{k}[jm{k}*{tw} +: {tw}]));\n"
                           "      end\n")
                select += f"            {k}: cnt1 <= cm{k};\n"
            stage1 += (f"          case (mode)\n{select}"
                       "            default: cnt1 <= {CTW{1'b0}};\n          endcase\n")
        if "requant" in kinds:
            tables.append(_rom("mul_of", w["mw"], [v for f in fns for v in (f.mul if f.kind == "requant" else [0] * C)],
                               ew))
            tables.append(_rom("bias_of", w["bw"],
                               [v for f in fns for v in (f.bias if f.kind == "requant" else [0] * C)], ew))
            decl += "      reg signed [PW-1:0] p1;\n      reg signed [BW-1:0] b1;\n"
            stage1 += "          p1 <= xs * $signed(mul_of(e));\n          b1 <= bias_of(e);\n"
            stage2 += ("      wire signed [SW-1:0] sum = {{(SW-PW){p1[PW-1]}}, p1} + {{(SW-BW){b1[BW-1]}}, b1};\n")
        for k, f in enumerate(fns):
            if f.kind == "bypass":
                cases += f"            {k}: y <= {_resize('x1', w['xw'], ow)};\n"
            elif f.kind == "thresholds":
                aw = max(w["ctw"] + 1, signed_bits([f.act_val])) + 1
                stage2 += (f"      wire signed [{aw}-1:0] t{k} = $signed({{1'b0, cnt1}}) + "
                           f"{verilog_literal(aw, f.act_val)};\n")
                cases += f"            {k}: y <= {_resize(f't{k}', aw, ow)};\n"
            else:
                lo, hi = verilog_literal(w["sw"], f.lo), verilog_literal(w["sw"], f.hi)
                stage2 += (f"      wire signed [SW-1:0] q{k} = sum >>> {f.shift};\n"
                           f"      wire signed [SW-1:0] r{k} = (q{k} < {lo}) ? {lo} : ((q{k} > {hi}) ? {hi} : q{k});\n")
                cases += f"            {k}: y <= {_resize(f'r{k}', w['sw'], ow)};\n"
        ow_pad, ow_raw = self.get_outstream_width_padded(), ow * pe
        pad = (f"  assign out0_V_TDATA[{ow_pad}-1:{ow_raw}] = {{{ow_pad - ow_raw}{{1'b0}}}};\n"
               if ow_pad > ow_raw else "")
        return _V.format(
            top=top or self.get_verilog_top_module_name(), channels=C, pe=pe, idt=idt.name, odt=odt.name,
            summary=summary, iw_pad=self.get_instream_width_padded(0), tok_bits=MODE_TOKEN_BITS, ow_pad=ow_pad,
            mb=max(1, (K - 1).bit_length()), fw=max(1, (cf - 1).bit_length()), nw=max(1, (words - 1).bit_length()),
            iw=iw, ow=ow, tables="\n".join(tables), last_fold=cf - 1, last_word=words - 1,
            xs="x" if idt.signed() else "{1'b0, x}", ew=ew, cw=cw,
            lane_decl=decl, lane_stage1=stage1, lane_stage2=stage2, cases=cases, pad=pad,
            **w)

    def execute_node(self, context, graph):
        ModalActivation.execute_node(self, context, graph)


_rtl.register_custom_op(ModalActivation_rtl)
_rtl.ModalActivation_rtl = ModalActivation_rtl

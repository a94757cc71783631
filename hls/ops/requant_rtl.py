"""IntRequant and IntRequant_rtl: ``out = clip((in * mul[c] + bias[c]) >> shift, lo, hi)`` on channel c of an
integer stream, as a FINN HW layer.

It replaces a threshold table that ``fracskip.hls.requant.ThresholdsToRequant`` has proved to be this
function (a BatchNorm folded into an 8-bit quantizer: 255 thresholds per channel, ~20-80 LUT per channel in
FINN's estimate) by one multiply-add per element: one or two DSP48s and a few dozen LUT per PE. ``>>`` is an
arithmetic shift (floor division by 2^shift). FINN 1.6.1 has its own Requant/Requant_rtl, a float
``clip(round(x * scale + bias))`` without an exactness guarantee; this op is a different one, so it has its
own name and leaves FINN's registered as it is.

Stream layout, registration and folding as ``Clip``/``Clip_rtl`` (``clip_rtl.py``): NumChannels channels,
PE of them per word (lane i of word f is channel f * PE + i, as in FINN's Thresholding), numInputVectors
words of NumChannels/PE each. ThresholdsToRequant runs after folding and carries PE over; a folding config
sets it by node name like any other node's.

The RTL is a two-stage pipeline, product, then sum, shift and clip into the output register; both stages
advance together whenever the output register is empty or being read (TREADY may therefore depend on the
downstream TREADY, which AXI-stream allows). Per lane, mul and bias are constants indexed by the channel:
a small LUT ROM, or wires when PE = NumChannels.
"""

from __future__ import annotations

import math

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .single_file import SingleFileRTL
from .stream_op import PerChannelStreamOp, verilog_literal

_V = """// fracskip IntRequant_rtl: out = clip((in * MUL[c] + BIAS[c]) >>> {shift}, {lo}, {hi}) on channel c,
// {channels} channels, {pe} per word, {idt} -> {odt}.
// Pipeline: product | sum, shift, clip -> output register; both stages advance when the output is free.
module {top} (
  input ap_clk,
  input ap_rst_n,
  input  [{iw_pad}-1:0] in0_V_TDATA,
  input  in0_V_TVALID,
  output in0_V_TREADY,
  output [{ow_pad}-1:0] out0_V_TDATA,
  output out0_V_TVALID,
  input  out0_V_TREADY
);
  localparam PE = {pe};
  localparam CF = {cf};  // words per pixel: lane i of word f is channel f*PE + i
  localparam FW = {fw};  // word counter bits
  localparam CW = {cw};  // channel index bits
  localparam IW = {iw};  // input element bits
  localparam XW = {xw};  // input as a signed operand
  localparam MW = {mw};  // multiplier, signed (all >= 0)
  localparam BW = {bw};  // bias, signed
  localparam PW = XW + MW;  // product
  localparam SW = {sw};  // sum: holds product + bias and both bounds
  localparam OW = {ow};  // output element bits
  localparam SHIFT = {shift};
  localparam signed [SW-1:0] LO = {lo_lit};
  localparam signed [SW-1:0] HI = {hi_lit};
  // per channel, channel 0 in the lowest bits
  localparam [{channels}*MW-1:0] MUL = {{{mul}}};
  localparam [{channels}*BW-1:0] BIAS = {{{bias}}};

  localparam [FW-1:0] LAST = {fw}'d{last};  // CF - 1
  reg [FW-1:0] fold;  // word of the pixel at the input
  reg p_valid, y_valid;  // a word in the product stage, in the output register
  wire advance = !y_valid || out0_V_TREADY;
  assign in0_V_TREADY = advance;
  assign out0_V_TVALID = y_valid;

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      fold <= 0;
      p_valid <= 1'b0;
      y_valid <= 1'b0;
    end else if (advance) begin
      p_valid <= in0_V_TVALID;
      y_valid <= p_valid;
      if (in0_V_TVALID) fold <= (fold == LAST) ? {{FW{{1'b0}}}} : fold + 1'b1;
    end
  end

  genvar i;
  generate
    for (i = 0; i < PE; i = i + 1) begin : g_pe
      wire [IW-1:0] x = in0_V_TDATA[i*IW +: IW];
      wire signed [XW-1:0] xs = {xs};
      wire [CW-1:0] ch = fold * PE + i;
      wire signed [MW-1:0] m = MUL[ch*MW +: MW];
      wire signed [BW-1:0] b = BIAS[ch*BW +: BW];
      reg signed [PW-1:0] p;
      reg signed [BW-1:0] pb;
      reg [OW-1:0] y;
      wire signed [SW-1:0] sum = {{{{(SW-PW){{p[PW-1]}}}}, p}} + {{{{(SW-BW){{pb[BW-1]}}}}, pb}};
      wire signed [SW-1:0] q = sum >>> SHIFT;
      wire signed [SW-1:0] qc = (q < LO) ? LO : ((q > HI) ? HI : q);
      always @(posedge ap_clk) begin
        if (advance) begin
          p <= xs * m;
          pb <= b;
          y <= qc[OW-1:0];
        end
      end
      assign out0_V_TDATA[i*OW +: OW] = y;
    end
  endgenerate
{pad}endmodule
"""


def signed_bits(values) -> int:
    """Bits of the narrowest two's-complement type holding every value."""
    return max(1 + (int(v) if v >= 0 else -int(v) - 1).bit_length() for v in np.ravel(values))


def _twos(value: int, width: int) -> str:
    """``value`` as an unsigned literal of its ``width``-bit two's complement (an element of a packed table)."""
    return f"{width}'d{value & ((1 << width) - 1)}"


@register_hw_op
class IntRequant(PerChannelStreamOp):
    """Exact integer requantizer of an integer stream (abstract HW layer; python execution)."""

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "mul": ("ints", True, []),  # per channel, >= 0
            "bias": ("ints", True, []),  # per channel
            "shift": ("i", True, 0),
            "lo": ("i", True, 0),
            "hi": ("i", True, 0),
        }

    def verify_node(self):
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        lo, hi = self.get_nodeattr("lo"), self.get_nodeattr("hi")
        mul, bias = self.get_nodeattr("mul"), self.get_nodeattr("bias")
        channels = self.get_nodeattr("NumChannels")
        info = []
        if not (idt.is_integer() and odt.is_integer()) or DataType["BIPOLAR"] in (idt, odt):
            info.append(f"IntRequant needs integer input and output types, has {idt.name} -> {odt.name}")
        if lo > hi or not (odt.allowed(lo) and odt.allowed(hi)):
            info.append(f"IntRequant bounds [{lo}, {hi}] are not a range of {odt.name}")
        if len(mul) != channels or len(bias) != channels:
            info.append(f"mul and bias need {channels} entries, have {len(mul)} and {len(bias)}")
        elif min(mul) < 0:
            info.append("a negative multiplier (the requantizer must be monotone)")
        if self.get_nodeattr("shift") < 0:
            info.append("a negative shift")
        return info + self.fold_reasons()

    # ------------------------------------------------------------------ datapath widths and estimates
    def widths(self) -> dict[str, int]:
        """Bits of the datapath: signed input operand, multiplier, bias, product and sum."""
        idt = self.get_input_datatype()
        xw = idt.bitwidth() + (0 if idt.signed() else 1)
        mw = signed_bits(self.get_nodeattr("mul"))
        bw = signed_bits(self.get_nodeattr("bias"))
        sw = max(xw + mw, bw, signed_bits([self.get_nodeattr("lo"), self.get_nodeattr("hi")])) + 1
        return dict(xw=xw, mw=mw, bw=bw, pw=xw + mw, sw=sw)

    def dsp_estimation(self, fpgapart=None):
        """DSP48s per lane times PE: a signed 25 x 18 multiplier each; a wider product is tiled from them as
        Vivado does (17 resp. 24 more bits per extra tile on the cascade), the narrow operand on the 18-bit
        port. The bias add uses the DSP's post-adder."""
        w = self.widths()

        def tiles(a, b):  # a on the 25-bit port, b on the 18-bit port
            return (1 + math.ceil(max(0, a - 25) / 24)) * (1 + math.ceil(max(0, b - 18) / 17))

        return self.get_nodeattr("PE") * min(tiles(w["xw"], w["mw"]), tiles(w["mw"], w["xw"]))

    def lut_estimation(self, fpgapart=None):
        """Per lane: the mul/bias ROM (a LUT6 is a 64 x 1 ROM; constants when PE = NumChannels) and the clip's
        two comparators (about one LUT per 4 bits on the carry chain) and output multiplexer. Plus the word
        counter. The multiply-add is in DSPs (``dsp_estimation``)."""
        w, pe = self.widths(), self.get_nodeattr("PE")
        cf = self.get_nodeattr("NumChannels") // pe
        rom = (w["mw"] + w["bw"]) * math.ceil(cf / 64) if cf > 1 else 0
        # the shifted sum's bits; none past a shift of the whole sum (verify_node allows any shift)
        clip = 2 * math.ceil(max(0, w["sw"] - self.get_nodeattr("shift")) / 4) + self.get_output_datatype().bitwidth()
        return pe * (rom + clip) + max(1, cf.bit_length())

    def bram_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self, fpgapart=None):
        return 0

    # ------------------------------------------------------------------ execution
    def execute_node(self, context, graph):
        node = self.onnx_node
        acc = context[node.input[0]].astype(np.int64)  # channels last, as every FINN HW layer
        mul = np.asarray(self.get_nodeattr("mul"), dtype=np.int64)
        bias = np.asarray(self.get_nodeattr("bias"), dtype=np.int64)
        y = np.clip((acc * mul + bias) >> self.get_nodeattr("shift"), self.get_nodeattr("lo"), self.get_nodeattr("hi"))
        context[node.output[0]] = y.astype(np.float32)


class IntRequant_rtl(SingleFileRTL, IntRequant, RTLBackend):  # noqa: N801 (FINN's naming: <op>_<backend>)
    """IntRequant as a pipelined Verilog module (see the module docstring)."""

    def get_nodeattr_types(self):
        attrs = dict(IntRequant.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def verilog(self, top: str | None = None) -> str:
        """The module's Verilog (plain Verilog-2005: Verilator and Yosys read it)."""
        self.require_valid()
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        channels, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        lo, hi = self.get_nodeattr("lo"), self.get_nodeattr("hi")
        w, ow = self.widths(), odt.bitwidth()
        cf = channels // pe
        ow_pad, ow_raw = self.get_outstream_width_padded(), ow * pe
        pad = (f"  assign out0_V_TDATA[{ow_pad}-1:{ow_raw}] = {{{ow_pad - ow_raw}{{1'b0}}}};\n"
               if ow_pad > ow_raw else "")

        def table(values, width):  # channel 0 last in the concatenation, i.e. in the lowest bits
            return ", ".join(_twos(int(v), width) for v in reversed(values))

        return _V.format(top=top or self.get_verilog_top_module_name(), channels=channels, pe=pe, cf=cf,
                         fw=max(1, (cf - 1).bit_length()), last=cf - 1, cw=max(1, (channels - 1).bit_length()),
                         idt=idt.name, odt=odt.name, iw=idt.bitwidth(), ow=ow, shift=self.get_nodeattr("shift"),
                         lo=lo, hi=hi, lo_lit=verilog_literal(w["sw"], lo), hi_lit=verilog_literal(w["sw"], hi),
                         mul=table(self.get_nodeattr("mul"), w["mw"]), bias=table(self.get_nodeattr("bias"), w["bw"]),
                         xs="x" if idt.signed() else "{1'b0, x}", iw_pad=self.get_instream_width_padded(),
                         ow_pad=ow_pad, pad=pad, **w)

    def execute_node(self, context, graph):
        IntRequant.execute_node(self, context, graph)


_rtl.register_custom_op(IntRequant_rtl)
_rtl.IntRequant_rtl = IntRequant_rtl

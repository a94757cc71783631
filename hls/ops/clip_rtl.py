"""Clip and Clip_rtl: ``out = clamp(in, lo, hi)`` per element of an integer stream, as a FINN HW layer.

Each residual core ends with ``ReLU(branch + skip)`` requantized to the 8-bit block interface. Both operands
of the add have the same scale, so FINN's Thresholding there is ``min(sum, 255)`` written as a 255-step
table (about 40 LUT per channel in FINN's estimate); a clamp is a comparator or two and a multiplexer per
element. ``fracskip.hls.clip.ThresholdsToClip`` puts this op in place of such tables.

Stream layout as FINN's Thresholding: NumChannels channels, PE of them per word, numInputVectors words of
NumChannels/PE each. Importing this module registers ``Clip`` in ``finn.custom_op.fpgadataflow`` and
``Clip_rtl`` in ``finn.custom_op.fpgadataflow.rtl`` (FINN's registries; the installed package is not
changed), so SpecializeLayers turns Clip into Clip_rtl, and InsertFIFO/InsertDWC, the estimates,
ApplyConfig, PrepareIP and fracskip's Verilator stitching treat it like FINN's own layers.

Folding: FINN's SetFolding folds only the op types it lists and leaves others as they are (it logs
"doesn't know how to handle op_type Clip_rtl"). PE therefore keeps the value ThresholdsToClip carried over
from the thresholds it replaced, and a folding config (``extract_model_config_to_json`` / ApplyConfig,
which work by node name and attribute) can set it like any other node's PE.

The RTL is combinational: data, valid and ready pass straight through, with the clamp on the data lines.
That is AXI-stream legal (TVALID still does not depend on TREADY; a handshake here is the upstream's
handshake), keeps every backpressure property of the neighbours, and costs no registers. The added logic
depth is one comparator and one multiplexer level on the data path; FINN places a FIFO or the consumer's
input register behind it.
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
from .wrapped_rtl import LogicOnly

_V = """// fracskip Clip_rtl: out = clamp(in, {lo}, {hi}) on {pe} element(s) per word, {idt} -> {odt}.
// Combinational AXI-stream pass-through: valid and ready are wires, the clamp is on the data lines.
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
  localparam IW = {iw};  // input element bits
  localparam OW = {ow};  // output element bits
  localparam CW = {cw};  // signed compare width: holds every input value and both bounds
  localparam signed [CW-1:0] LO = {lo_lit};
  localparam signed [CW-1:0] HI = {hi_lit};

  assign out0_V_TVALID = in0_V_TVALID;
  assign in0_V_TREADY = out0_V_TREADY;

  genvar i;
  generate
    for (i = 0; i < PE; i = i + 1) begin : g_pe
      wire [IW-1:0] x = in0_V_TDATA[i*IW +: IW];
      wire signed [CW-1:0] xs = {{{{(CW-IW){{{sign_bit}}}}}, x}};
      wire signed [CW-1:0] y = (xs < LO) ? LO : ((xs > HI) ? HI : xs);
      assign out0_V_TDATA[i*OW +: OW] = y[OW-1:0];
    end
  endgenerate
{pad}endmodule
"""


@register_hw_op
class Clip(LogicOnly, PerChannelStreamOp):
    """Per-element clamp of an integer stream to [lo, hi] (abstract HW layer; python execution)."""

    def get_nodeattr_types(self):
        return {**super().get_nodeattr_types(), "lo": ("i", True, 0), "hi": ("i", True, 0)}

    def verify_node(self):
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        lo, hi = self.get_nodeattr("lo"), self.get_nodeattr("hi")
        info = []
        # BIPOLAR's stream bits 0/1 stand for -1/+1, not the two's complement the RTL reads
        if not (idt.is_integer() and odt.is_integer()) or DataType["BIPOLAR"] in (idt, odt):
            info.append(f"Clip needs integer input and output types, has {idt.name} -> {odt.name}")
        if lo > hi or not (odt.allowed(lo) and odt.allowed(hi)):
            info.append(f"Clip bounds [{lo}, {hi}] are not a range of {odt.name}")
        return info + self.fold_reasons()

    # ------------------------------------------------------------------ estimates
    def _compares(self) -> int:
        """Bounds that need a comparator (a bound at the input type's own limit never clamps)."""
        idt = self.get_input_datatype()
        return int(self.get_nodeattr("lo") > idt.min()) + int(self.get_nodeattr("hi") < idt.max())

    def lut_estimation(self, fpgapart=None):
        """Per element, one LUT per output bit (the multiplexer) and a constant comparator per active bound,
        on the carry chain about one LUT per 4 input bits."""
        per_element = self.get_output_datatype().bitwidth() + self._compares() * math.ceil(
            self.get_input_datatype().bitwidth() / 4)
        return self.get_nodeattr("PE") * per_element

    # ------------------------------------------------------------------ execution
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        context[node.output[0]] = np.clip(x, self.get_nodeattr("lo"), self.get_nodeattr("hi")).astype(np.float32)


class Clip_rtl(SingleFileRTL, Clip, RTLBackend):  # noqa: N801 (FINN's naming: <op>_<backend>)
    """Clip as a combinational Verilog module (see the module docstring)."""

    def get_nodeattr_types(self):
        attrs = dict(Clip.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def verilog(self, top: str | None = None) -> str:
        """The module's Verilog (plain Verilog-2005: Verilator and Yosys read it)."""
        self.require_valid()
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        lo, hi = self.get_nodeattr("lo"), self.get_nodeattr("hi")
        iw, ow, pe = idt.bitwidth(), odt.bitwidth(), self.get_nodeattr("PE")
        cw = max(iw, ow) + 1  # sign bit on top of the wider type
        ow_pad, ow_raw = self.get_outstream_width_padded(), ow * pe
        pad = (f"  assign out0_V_TDATA[{ow_pad}-1:{ow_raw}] = {{{ow_pad - ow_raw}{{1'b0}}}};\n"
               if ow_pad > ow_raw else "")
        return _V.format(top=top or self.get_verilog_top_module_name(), lo=lo, hi=hi, pe=pe, idt=idt.name,
                         odt=odt.name, iw=iw, ow=ow, cw=cw, iw_pad=self.get_instream_width_padded(),
                         ow_pad=ow_pad, lo_lit=verilog_literal(cw, lo), hi_lit=verilog_literal(cw, hi),
                         sign_bit="x[IW-1]" if idt.signed() else "1'b0", pad=pad)

    def execute_node(self, context, graph):
        Clip.execute_node(self, context, graph)


_rtl.register_custom_op(Clip_rtl)
_rtl.Clip_rtl = Clip_rtl

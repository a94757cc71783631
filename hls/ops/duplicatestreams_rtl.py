"""DuplicateStreams_rtl: the fork of a residual block's input, in RTL.

finn-plus 1.6.1 has DuplicateStreams only as HLS, which needs Vitis and cannot be simulated with
Verilator. The hardware is an AXI-stream broadcast ("eager fork"): each output takes the current word
when it is ready, and the input advances once every output has taken it. Cost: one flip-flop per output
and a few LUTs; the data lines are wires. The skip branch needs a FIFO deep enough to hold the words the
conv branch has not yet consumed (about two feature-map rows), which FIFO sizing sets.
"""

from __future__ import annotations


from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from .single_file import SingleFileRTL

_SV = """// fracskip DuplicateStreams_rtl: AXI-stream eager fork, {n} outputs
module {top} (
  input ap_clk, input ap_rst_n,
  input  [{w}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
{outports}
);
  reg  [{n}-1:0] taken;  // output i has already taken the current input word
  wire [{n}-1:0] ready = {{{ready}}};
  wire [{n}-1:0] valid = {{{n}{{in0_V_TVALID}}}} & ~taken;
  wire [{n}-1:0] now = valid & ready;
  wire all_taken = &(taken | now);
  assign in0_V_TREADY = all_taken;
{assigns}
  always @(posedge ap_clk) begin
    if (!ap_rst_n) taken <= 0;
    else if (in0_V_TVALID && all_taken) taken <= 0;
    else taken <= taken | now;
  end
endmodule
"""


class DuplicateStreams_rtl(SingleFileRTL, DuplicateStreams, RTLBackend):
    def get_nodeattr_types(self):
        attrs = dict(DuplicateStreams.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def generate_hdl(self, model, fpgapart, clk):
        n = self.get_num_output_streams()
        w = self.get_instream_width_padded(0)
        top = self.name_top()
        outports = ",\n".join(f"  output [{w}-1:0] out{i}_V_TDATA, output out{i}_V_TVALID, input out{i}_V_TREADY"
                              for i in range(n))
        ready = ", ".join(f"out{i}_V_TREADY" for i in reversed(range(n)))
        assigns = "\n".join(f"  assign out{i}_V_TDATA = in0_V_TDATA; assign out{i}_V_TVALID = valid[{i}];"
                            for i in range(n))
        self.write_top(_SV.format(top=top, n=n, w=w, outports=outports, ready=ready, assigns=assigns))

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["m_axis"] = [(f"out{i}_V", self.get_outstream_width_padded(i)) for i in range(self.get_num_output_streams())]
        return intf

    def lut_estimation(self, fpgapart=None):
        return 2 * self.get_num_output_streams() + 2

    def bram_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self, fpgapart=None):
        return 0

    def execute_node(self, context, graph):
        DuplicateStreams.execute_node(self, context, graph)


_rtl.custom_op["DuplicateStreams_rtl"] = DuplicateStreams_rtl
_rtl.DuplicateStreams_rtl = DuplicateStreams_rtl

"""ModeFork and ModeFork_rtl: a gate's decision to the mode tokens of a block's runtime-precision datapath.

The gate's decision is an index into the bit menu (an INT16 token, one per frame, element 0; ``TokenFork``'s
format). The mode-aware nodes of a block's datapath (``MVAU_bitserial``, ``ModalActivation``) each read one 8-bit
mode token per frame that they process. ``ModeOf[d]`` is the mode of decision ``d`` (clamped to the table, as
``StreamRoute`` clamps), or -1 when decision ``d`` does not reach the datapath (skip: the block's router sends
that frame elsewhere). Every output gets the mode; a decision of mode -1 is consumed without a token.

Python twin (FINN's python execution of a static graph runs every path on every frame, see ``StreamRoute``):
a frame the datapath does not see gets mode 0 there, and its result is dropped by the block's merge.
Core: ``rtl/fracskip_stream_fork.v`` (the eager fork of ``TokenFork_rtl``); the wrapper maps the decision.
"""

from __future__ import annotations

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .modal_act_rtl import MODE_TOKEN_BITS
from .wrapped_rtl import WrappedRTL, decisions, port, wrapper


@register_hw_op
class ModeFork(HWCustomOp):
    def get_nodeattr_types(self):
        return {"ModeOf": ("ints", True, [0]), **super().get_nodeattr_types()}

    def mode_of(self) -> list[int]:
        return [int(v) for v in self.get_nodeattr("ModeOf")]

    def get_normal_input_shape(self, ind=0):
        return (1, 1)

    def get_folded_input_shape(self, ind=0):
        return (1, 1, 1)

    def get_normal_output_shape(self, ind=0):
        return (1, 1)

    def get_folded_output_shape(self, ind=0):
        return (1, 1, 1)

    def get_input_datatype(self, ind=0):
        return DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return DataType[f"UINT{MODE_TOKEN_BITS}"]

    def get_instream_width(self, ind=0):
        return 16

    def get_outstream_width(self, ind=0):
        return MODE_TOKEN_BITS

    def get_number_output_values(self):
        return {f"out{j}": 1 for j in range(len(self.onnx_node.output))}

    def get_exp_cycles(self):
        return 1

    def infer_node_datatype(self, model):
        for t in self.onnx_node.output:
            model.set_tensor_datatype(t, self.get_output_datatype())

    def make_shape_compatible_op(self, model):
        ret = super().make_shape_compatible_op(model)
        ret.output[:] = self.onnx_node.output
        return ret

    def verify_node(self):
        m = self.mode_of()
        if not m or any(not -1 <= v < 1 << MODE_TOKEN_BITS for v in m):
            return [f"ModeOf {m}: one entry per decision, each a mode 0..{(1 << MODE_TOKEN_BITS) - 1} or -1"]
        return []

    def execute_node(self, context, graph):
        node = self.onnx_node
        tok = np.asarray(context[node.input[0]])
        d = decisions(tok.reshape(tok.shape[0], -1), len(self.mode_of()))
        modes = np.maximum(np.asarray(self.mode_of())[d], 0).reshape(-1, 1).astype(np.float32)
        for out in node.output:
            context[out] = modes.copy()


class ModeFork_rtl(WrappedRTL, ModeFork, RTLBackend):
    CORE = "fracskip_stream_fork"

    def get_nodeattr_types(self):
        return {**ModeFork.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        n, table = len(self.onnx_node.output), self.mode_of()
        ports = [port("in", "in0_V", 16)] + [port("out", f"out{j}_V", MODE_TOKEN_BITS) for j in range(n)]
        last = len(table) - 1
        body = ("  wire signed [15:0] d = in0_V_TDATA;\n"
                f"  wire [15:0] dc = (d < 0) ? 16'd0 : ((d > {last}) ? 16'd{last} : d);  // clamped decision\n"
                f"  reg [{MODE_TOKEN_BITS - 1}:0] mode; reg drop;\n  always @* begin\n    case (dc)\n")
        for i, m in enumerate(table):
            body += f"      {i}: begin mode = {MODE_TOKEN_BITS}'d{max(m, 0)}; drop = 1'b{int(m < 0)}; end\n"
        body += (f"      default: begin mode = {MODE_TOKEN_BITS}'d0; drop = 1'b1; end\n    endcase\n  end\n"
                 f"  wire [{MODE_TOKEN_BITS - 1}:0] o_d; wire [{n - 1}:0] o_v, o_r; wire f_ready;\n"
                 "  assign in0_V_TREADY = drop || f_ready;  // a dropped decision is consumed, no token\n")
        for j in range(n):
            body += (f"  assign out{j}_V_TDATA = o_d; assign out{j}_V_TVALID = o_v[{j}];"
                     f" assign o_r[{j}] = out{j}_V_TREADY;\n")
        conns = [".in0_TDATA(mode)", ".in0_TVALID(in0_V_TVALID && !drop)", ".in0_TREADY(f_ready)",
                 ".out_TDATA(o_d)", ".out_TVALID(o_v)", ".out_TREADY(o_r)"]
        return wrapper(top, self.CORE, {"W": MODE_TOKEN_BITS, "N": n}, ports, body, conns,
                       f"ModeFork_rtl, decision -> mode {table} (-1: no token), {n} outputs")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", 16)]
        intf["m_axis"] = [(f"out{j}_V", MODE_TOKEN_BITS) for j in range(len(self.onnx_node.output))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: the decision map (a few LUTs) and two LUTs per output (not synthesised)."""
        return 2 * len(self.onnx_node.output) + 2 + MODE_TOKEN_BITS

    def execute_node(self, context, graph):
        ModeFork.execute_node(self, context, graph)


_rtl.register_custom_op(ModeFork_rtl)
_rtl.ModeFork_rtl = ModeFork_rtl

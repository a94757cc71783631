"""ModeFork and ModeFork_rtl: a gate's decision to the mode tokens of a block's runtime-precision datapath.

The gate's decision is an index into the bit menu (an INT16 token, one per frame, element 0; ``TokenFork``'s
format). The mode-aware nodes of a block's datapath (``MVAU_bitserial``, ``ModalActivation``) each read one 8-bit
mode token per frame that they process. ``ModeOf[d]`` is the mode of decision ``d`` (clamped to the table, as
``StreamRoute`` clamps), or -1 when decision ``d`` does not reach the datapath (skip: the block's router sends
that frame elsewhere). Every output gets the mode; a decision of mode -1 is consumed without a token.

Two axes (LC-Net's channel groups, docs/channel-skipping.md): with ``Groups`` G > 0 the token is the gate's
``[d, keep]`` (``TokenLen`` 2: one 32-bit word, keep bits in the high half), and each output whose ``KeepOut``
entry is 1 carries the keep bits after the mode byte (``MVAU_bitserial``'s ``mode_token``: 8 + ceil(G/8)*8
bits), the others the mode byte alone.

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

from ..bitserial.core import MODE_TOKEN_BITS, mode_token_bits
from .wrapped_rtl import LogicOnly, WrappedRTL, decisions, port, wrapper


@register_hw_op
class ModeFork(HWCustomOp):
    def get_nodeattr_types(self):
        return {"ModeOf": ("ints", True, [0]), "TokenLen": ("i", False, 1), "Groups": ("i", False, 0),
                "KeepOut": ("ints", False, []), **super().get_nodeattr_types()}

    def mode_of(self) -> list[int]:
        return [int(v) for v in self.get_nodeattr("ModeOf")]

    def keep_out(self) -> list[int]:
        """Per output: 1 when its token carries the keep bits."""
        k = [int(v) for v in self.get_nodeattr("KeepOut")]
        return k or [0] * len(self.onnx_node.output)

    def keep_bits(self) -> int:
        """Bits of the keep field after the mode byte (whole bytes, as MVAU_bitserial's token)."""
        return mode_token_bits(self.get_nodeattr("Groups")) - MODE_TOKEN_BITS

    def out_width(self, ind: int = 0) -> int:
        return mode_token_bits(self.get_nodeattr("Groups")) if self.keep_out()[ind] else MODE_TOKEN_BITS

    def get_normal_input_shape(self, ind=0):
        return (1, self.get_nodeattr("TokenLen"))

    def get_folded_input_shape(self, ind=0):
        return (1, 1, self.get_nodeattr("TokenLen"))

    def get_normal_output_shape(self, ind=0):
        return (1, 1)

    def get_folded_output_shape(self, ind=0):
        return (1, 1, 1)

    def get_input_datatype(self, ind=0):
        return DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return DataType[f"UINT{self.out_width(ind)}"]

    def get_instream_width(self, ind=0):
        return 16 * self.get_nodeattr("TokenLen")

    def get_outstream_width(self, ind=0):
        return self.out_width(ind)

    def get_number_output_values(self):
        return {f"out{j}": 1 for j in range(len(self.onnx_node.output))}

    def get_exp_cycles(self):
        return 1

    def infer_node_datatype(self, model):
        for j, t in enumerate(self.onnx_node.output):
            model.set_tensor_datatype(t, self.get_output_datatype(j))

    def make_shape_compatible_op(self, model):
        ret = super().make_shape_compatible_op(model)
        ret.output[:] = self.onnx_node.output
        return ret

    def verify_node(self):
        m = self.mode_of()
        if not m or any(not -1 <= v < 1 << MODE_TOKEN_BITS for v in m):
            return [f"ModeOf {m}: one entry per decision, each a mode 0..{(1 << MODE_TOKEN_BITS) - 1} or -1"]
        g, n, keep = self.get_nodeattr("Groups"), self.get_nodeattr("TokenLen"), self.keep_out()
        if not 0 <= g <= 16 or (g and n < 2) or n < 1:
            return [f"Groups={g}, TokenLen={n}: 0 to 16 groups, whose keep bits are the token's second element"]
        if len(keep) != len(self.onnx_node.output) or (any(keep) and not g):
            return [f"KeepOut {keep}: one 0/1 per output, 1 only with Groups"]
        return []

    def execute_node(self, context, graph):
        node = self.onnx_node
        tok = np.asarray(context[node.input[0]])
        tok = tok.reshape(tok.shape[0], -1).astype(np.int64)
        d = decisions(tok, len(self.mode_of()))
        modes = np.maximum(np.asarray(self.mode_of())[d], 0).reshape(-1, 1)
        g = self.get_nodeattr("Groups")
        keep = (tok[:, 1:2] & ((1 << g) - 1)) if g else 0  # an INT16 element: 16 groups set its sign bit
        for out, k in zip(node.output, self.keep_out()):
            context[out] = (modes | (keep << MODE_TOKEN_BITS) if k else modes).astype(np.float32)


class ModeFork_rtl(WrappedRTL, LogicOnly, ModeFork, RTLBackend):
    CORE = "fracskip_stream_fork"

    def get_nodeattr_types(self):
        return {**ModeFork.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        n, table = len(self.onnx_node.output), self.mode_of()
        g, kb, keep_out = self.get_nodeattr("Groups"), self.keep_bits(), self.keep_out()
        w = MODE_TOKEN_BITS + (kb if any(keep_out) else 0)  # the fork's word: the widest output's token
        ports = [port("in", "in0_V", self.get_instream_width())]
        ports += [port("out", f"out{j}_V", self.out_width(j)) for j in range(n)]
        last = len(table) - 1
        token = f"{{{kb - g}'b0, in0_V_TDATA[16 +: {g}], mode}}" if w > MODE_TOKEN_BITS and kb > g else \
            f"{{in0_V_TDATA[16 +: {g}], mode}}" if w > MODE_TOKEN_BITS else "mode"
        body = ("  wire signed [15:0] d = in0_V_TDATA[15:0];\n"
                f"  wire [15:0] dc = (d < 0) ? 16'd0 : ((d > {last}) ? 16'd{last} : d);  // clamped decision\n"
                f"  reg [{MODE_TOKEN_BITS - 1}:0] mode; reg drop;\n  always @* begin\n    case (dc)\n")
        for i, m in enumerate(table):
            body += f"      {i}: begin mode = {MODE_TOKEN_BITS}'d{max(m, 0)}; drop = 1'b{int(m < 0)}; end\n"
        body += (f"      default: begin mode = {MODE_TOKEN_BITS}'d0; drop = 1'b1; end\n    endcase\n  end\n"
                 f"  wire [{w - 1}:0] o_d; wire [{n - 1}:0] o_v, o_r; wire f_ready;\n"
                 "  assign in0_V_TREADY = drop || f_ready;  // a dropped decision is consumed, no token\n")
        for j in range(n):
            body += (f"  assign out{j}_V_TDATA = o_d[{self.out_width(j) - 1}:0]; assign out{j}_V_TVALID = o_v[{j}];"
                     f" assign o_r[{j}] = out{j}_V_TREADY;\n")
        conns = [f".in0_TDATA({token})", ".in0_TVALID(in0_V_TVALID && !drop)", ".in0_TREADY(f_ready)",
                 ".out_TDATA(o_d)", ".out_TVALID(o_v)", ".out_TREADY(o_r)"]
        return wrapper(top, self.CORE, {"W": w, "N": n}, ports, body, conns,
                       f"ModeFork_rtl, decision -> mode {table} (-1: no token), {n} outputs"
                       + (f", keep bits of {g} groups to outputs {keep_out}" if g else ""))

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width())]
        intf["m_axis"] = [(f"out{j}_V", self.out_width(j)) for j in range(len(self.onnx_node.output))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: the decision map (a few LUTs) and two LUTs per output (not synthesised)."""
        return 2 * len(self.onnx_node.output) + 2 + MODE_TOKEN_BITS + self.get_nodeattr("Groups")

    def execute_node(self, context, graph):
        ModeFork.execute_node(self, context, graph)


_rtl.register_custom_op(ModeFork_rtl)
_rtl.ModeFork_rtl = ModeFork_rtl

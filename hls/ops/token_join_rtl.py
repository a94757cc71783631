"""TokenJoin and TokenJoin_rtl: one word from each of several token streams becomes one word (their concatenation).

The accelerator's decision output: the ``[d]`` of every gate, one INT16 each, joined per frame into
``[d_0, ..., d_{G-1}]`` (input 0 in the low bits). Frames are in order on every input (each gate sees the frames in
order), so the joined word is one image's decisions. Input ``i`` has ``InLens[i]`` INT16 elements.
Core: ``rtl/fracskip_stream_join.v`` (combinational: valid is the AND of the inputs' valids).
"""

from __future__ import annotations

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .wrapped_rtl import LogicOnly, WrappedRTL, port, wrapper


@register_hw_op
class TokenJoin(HWCustomOp):
    def get_nodeattr_types(self):
        return {"InLens": ("ints", True, [1]), **super().get_nodeattr_types()}

    def in_lens(self) -> list[int]:
        return [int(v) for v in self.get_nodeattr("InLens")]

    def get_normal_input_shape(self, ind=0):
        return (1, self.in_lens()[ind])

    def get_folded_input_shape(self, ind=0):
        return (1, 1, self.in_lens()[ind])

    def get_normal_output_shape(self, ind=0):
        return (1, sum(self.in_lens()))

    def get_folded_output_shape(self, ind=0):
        return (1, 1, sum(self.in_lens()))

    def get_input_datatype(self, ind=0):
        return DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return DataType["INT16"]

    def get_instream_width(self, ind=0):
        return 16 * self.in_lens()[ind]

    def get_outstream_width(self, ind=0):
        return 16 * sum(self.in_lens())

    def get_number_output_values(self):
        return 1

    def get_exp_cycles(self):
        return 1

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["INT16"])

    def verify_node(self):
        if len(self.in_lens()) != len(self.onnx_node.input):
            return [f"InLens has {len(self.in_lens())} entries for {len(self.onnx_node.input)} inputs"]
        return []

    def execute_node(self, context, graph):
        node = self.onnx_node
        parts = [context[t].reshape(-1, n) for t, n in zip(node.input, self.in_lens())]
        context[node.output[0]] = np.concatenate(parts, axis=1).astype(np.float32)


class TokenJoin_rtl(WrappedRTL, LogicOnly, TokenJoin, RTLBackend):  # noqa: N801 (FINN's naming)
    CORE = "fracskip_stream_join"

    def get_nodeattr_types(self):
        return {**TokenJoin.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        lens = self.in_lens()
        n, w = len(lens), 16 * sum(lens)
        ports = [port("in", f"in{i}_V", self.get_instream_width_padded(i)) for i in range(n)]
        ports.append(port("out", "out0_V", self.get_outstream_width_padded(0)))
        pad = self.get_outstream_width_padded(0) - w
        body = f"  wire [{w - 1}:0] i_d, o_d; wire [{n - 1}:0] i_v, i_r;\n"
        lo = 0
        for i, m in enumerate(lens):
            body += (f"  assign i_d[{lo} +: {16 * m}] = in{i}_V_TDATA[{16 * m - 1}:0]; assign i_v[{i}] = in{i}_V_TVALID;"
                     f" assign in{i}_V_TREADY = i_r[{i}];\n")
            lo += 16 * m
        body += f"  assign out0_V_TDATA = {{{f'{pad}{chr(39)}d0, ' if pad else ''}o_d}};\n"
        conns = [".in_TDATA(i_d)", ".in_TVALID(i_v)", ".in_TREADY(i_r)",
                 ".out0_TDATA(o_d)", ".out0_TVALID(out0_V_TVALID)", ".out0_TREADY(out0_V_TREADY)"]
        return wrapper(top, self.CORE, {"W": w, "N": n}, ports, body, conns, f"TokenJoin_rtl, inputs of {lens} INT16")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [(f"in{i}_V", self.get_instream_width_padded(i)) for i in range(len(self.in_lens()))]
        intf["m_axis"] = [("out0_V", self.get_outstream_width_padded(0))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: the AND of the valids and the ready fan-out (not synthesised)."""
        return len(self.in_lens()) + 1

    def execute_node(self, context, graph):
        TokenJoin.execute_node(self, context, graph)


_rtl.register_custom_op(TokenJoin_rtl)
_rtl.TokenJoin_rtl = TokenJoin_rtl

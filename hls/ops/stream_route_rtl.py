"""StreamRoute and StreamRoute_rtl: per frame, a token sends the frame to one of K outputs (a block's router).

Streams (FINN's names): ``in0_V`` the data (``numInputVectors`` words of ``PE`` elements per frame), ``in1_V`` the
token (one word of ``TokenLen`` INT16 elements per frame; the decision is element 0, clamped to 0..K-1);
``out<k>_V``, k < K, the data again. A frame goes whole to output ``d``; the other outputs see nothing of it, so
each path behind the router runs only on the frames routed to it. All outputs have one shape (FINN's InsertFIFO
can treat the node; fracskip's accelerator inserts its FIFOs itself, see ``hls/accelerator.py``).

Python twin (FINN's python execution of a static graph runs every path on every frame): output ``k`` is the frame
where ``d == k`` and zeros elsewhere, batch by batch; ``StreamMerge`` then takes each frame from its own path, so
the graph's result is the hardware's. Cycles: ``words + 1`` per frame (the token is read in a cycle of its own).
Core: ``rtl/fracskip_stream_route.v`` (a few LUTs: a counter, the select register, K valid gates).
"""

from __future__ import annotations

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .wrapped_rtl import FrameStreamAttrs, LogicOnly, WrappedRTL, decisions, port, wrapper


@register_hw_op
class StreamRoute(FrameStreamAttrs, HWCustomOp):
    def get_nodeattr_types(self):
        return {**self.frame_attrs(), **super().get_nodeattr_types()}

    def data_outputs(self) -> list[str]:
        return list(self.onnx_node.output)

    def get_normal_input_shape(self, ind=0):
        return self.data_normal_shape() if ind == 0 else self.token_normal_shape()

    def get_folded_input_shape(self, ind=0):
        return self.data_folded_shape() if ind == 0 else self.token_folded_shape()

    def get_normal_output_shape(self, ind=0):
        return self.data_normal_shape()

    def get_folded_output_shape(self, ind=0):
        return self.data_folded_shape()

    def get_input_datatype(self, ind=0):
        return self.data_datatype() if ind == 0 else DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return self.data_datatype()

    def get_instream_width(self, ind=0):
        return self.data_width() if ind == 0 else self.token_width()

    def get_outstream_width(self, ind=0):
        return self.data_width()

    def get_number_output_values(self):
        return {f"out{k}": self.words_per_frame() for k in range(len(self.onnx_node.output))}

    def get_exp_cycles(self):
        return self.words_per_frame() + 1

    def make_shape_compatible_op(self, model):
        ret = super().make_shape_compatible_op(model)
        ret.output[:] = self.onnx_node.output
        return ret

    def verify_node(self):
        info = self.frame_problems()
        if len(self.onnx_node.output) != self.get_nodeattr("K"):
            info.append(f"{len(self.onnx_node.output)} outputs for K={self.get_nodeattr('K')}")
        return info

    def execute_node(self, context, graph):
        node = self.onnx_node
        tok = context[node.input[1]]
        n = tok.reshape(-1, self.get_nodeattr("TokenLen")).shape[0]
        x = context[node.input[0]].reshape((n,) + self.data_normal_shape()[1:])
        d = decisions(tok.reshape(n, -1), self.get_nodeattr("K"))
        for k, out in enumerate(node.output):
            mask = (d == k).reshape((n,) + (1,) * (x.ndim - 1))
            context[out] = np.where(mask, x, 0).astype(np.float32)


class StreamRoute_rtl(WrappedRTL, LogicOnly, StreamRoute, RTLBackend):  # noqa: N801 (FINN's naming)
    CORE = "fracskip_stream_route"

    def get_nodeattr_types(self):
        return {**StreamRoute.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        K, w, tw = self.get_nodeattr("K"), self.get_instream_width_padded(0), self.get_instream_width_padded(1)
        ports = [port("in", "in0_V", w), port("in", "in1_V", tw)] + [port("out", f"out{k}_V", w) for k in range(K)]
        body = f"  wire [{K * w - 1}:0] o_d; wire [{K - 1}:0] o_v, o_r;\n"
        for k in range(K):
            body += (f"  assign out{k}_V_TDATA = o_d[{k * w} +: {w}]; assign out{k}_V_TVALID = o_v[{k}];"
                     f" assign o_r[{k}] = out{k}_V_TREADY;\n")
        conns = [".in0_TDATA(in0_V_TDATA)", ".in0_TVALID(in0_V_TVALID)", ".in0_TREADY(in0_V_TREADY)",
                 ".tok_TDATA(in1_V_TDATA)", ".tok_TVALID(in1_V_TVALID)", ".tok_TREADY(in1_V_TREADY)",
                 ".out_TDATA(o_d)", ".out_TVALID(o_v)", ".out_TREADY(o_r)"]
        return wrapper(top, self.CORE, {"W": w, "K": K, "WORDS": self.words_per_frame(), "TW": tw}, ports, body,
                       conns, f"StreamRoute_rtl, {K} outputs, {self.words_per_frame()} words of {w} bits per frame")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0)), ("in1_V", self.get_instream_width_padded(1))]
        intf["m_axis"] = [(f"out{k}_V", self.get_outstream_width_padded(k)) for k in range(self.get_nodeattr("K"))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: the frame counter and a valid gate per output (not synthesised)."""
        return int(2 * np.ceil(np.log2(max(self.words_per_frame(), 2)))) + 2 * self.get_nodeattr("K") + 4

    def execute_node(self, context, graph):
        StreamRoute.execute_node(self, context, graph)


_rtl.register_custom_op(StreamRoute_rtl)
_rtl.StreamRoute_rtl = StreamRoute_rtl

"""StreamMerge and StreamMerge_rtl: per frame, a token picks the input a whole frame is taken from (a block's merger).

Streams (FINN's names): ``in<k>_V``, k < K, the data of K paths (same layout); ``in<K>_V`` the token (one word of
``TokenLen`` INT16 elements per frame, decision = element 0 clamped to 0..K-1); ``out0_V`` the data. The tokens come
in frame order, so the frames leave in input order whatever each path's latency: a frame that takes a fast path
waits behind an earlier frame on a slow one (its path's FIFOs hold it).

Python twin: frame ``i`` of the output is frame ``i`` of input ``d_i`` (the other inputs' frames are ignored).
Cycles: ``words + 1`` per frame. Core: ``rtl/fracskip_stream_merge.v`` (a K-to-1 multiplexer and a counter).
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
class StreamMerge(FrameStreamAttrs, HWCustomOp):
    def get_nodeattr_types(self):
        return {**self.frame_attrs(), **super().get_nodeattr_types()}

    def data_outputs(self) -> list[str]:
        return [self.onnx_node.output[0]]

    def _is_token(self, ind: int) -> bool:
        return ind == self.get_nodeattr("K")

    def get_normal_input_shape(self, ind=0):
        return self.token_normal_shape() if self._is_token(ind) else self.data_normal_shape()

    def get_folded_input_shape(self, ind=0):
        return self.token_folded_shape() if self._is_token(ind) else self.data_folded_shape()

    def get_normal_output_shape(self, ind=0):
        return self.data_normal_shape()

    def get_folded_output_shape(self, ind=0):
        return self.data_folded_shape()

    def get_input_datatype(self, ind=0):
        return DataType["INT16"] if self._is_token(ind) else self.data_datatype()

    def get_output_datatype(self, ind=0):
        return self.data_datatype()

    def get_instream_width(self, ind=0):
        return self.token_width() if self._is_token(ind) else self.data_width()

    def get_outstream_width(self, ind=0):
        return self.data_width()

    def get_number_output_values(self):
        return self.words_per_frame()

    def get_exp_cycles(self):
        return self.words_per_frame() + 1

    def verify_node(self):
        info = self.frame_problems()
        if len(self.onnx_node.input) != self.get_nodeattr("K") + 1:
            info.append(f"{len(self.onnx_node.input)} inputs for K={self.get_nodeattr('K')} paths and a token")
        return info

    def execute_node(self, context, graph):
        node = self.onnx_node
        K = self.get_nodeattr("K")
        tok = context[node.input[K]]
        n = tok.reshape(-1, self.get_nodeattr("TokenLen")).shape[0]
        d = decisions(tok.reshape(n, -1), K)
        xs = np.stack([context[node.input[k]].reshape((n,) + self.data_normal_shape()[1:]) for k in range(K)])
        context[node.output[0]] = xs[d, np.arange(n)].astype(np.float32)


class StreamMerge_rtl(WrappedRTL, LogicOnly, StreamMerge, RTLBackend):  # noqa: N801 (FINN's naming)
    CORE = "fracskip_stream_merge"

    def get_nodeattr_types(self):
        return {**StreamMerge.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        K = self.get_nodeattr("K")
        w, tw = self.get_instream_width_padded(0), self.get_instream_width_padded(K)
        ports = [port("in", f"in{k}_V", w) for k in range(K)] + [port("in", f"in{K}_V", tw), port("out", "out0_V", w)]
        body = f"  wire [{K * w - 1}:0] i_d; wire [{K - 1}:0] i_v, i_r;\n"
        for k in range(K):
            body += (f"  assign i_d[{k * w} +: {w}] = in{k}_V_TDATA; assign i_v[{k}] = in{k}_V_TVALID;"
                     f" assign in{k}_V_TREADY = i_r[{k}];\n")
        conns = [".in_TDATA(i_d)", ".in_TVALID(i_v)", ".in_TREADY(i_r)",
                 f".tok_TDATA(in{K}_V_TDATA)", f".tok_TVALID(in{K}_V_TVALID)", f".tok_TREADY(in{K}_V_TREADY)",
                 ".out0_TDATA(out0_V_TDATA)", ".out0_TVALID(out0_V_TVALID)", ".out0_TREADY(out0_V_TREADY)"]
        return wrapper(top, self.CORE, {"W": w, "K": K, "WORDS": self.words_per_frame(), "TW": tw}, ports, body,
                       conns, f"StreamMerge_rtl, {K} inputs, {self.words_per_frame()} words of {w} bits per frame")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        K = self.get_nodeattr("K")
        intf["s_axis"] = [(f"in{k}_V", self.get_instream_width_padded(k)) for k in range(K + 1)]
        intf["m_axis"] = [("out0_V", self.get_outstream_width_padded(0))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: a K-to-1 multiplexer per data bit (one LUT6 per 4 inputs) plus the counter (not synthesised)."""
        K = self.get_nodeattr("K")
        return int(self.data_width() * np.ceil(K / 4) + 2 * np.ceil(np.log2(max(self.words_per_frame(), 2))) + 4)

    def execute_node(self, context, graph):
        StreamMerge.execute_node(self, context, graph)


_rtl.register_custom_op(StreamMerge_rtl)
_rtl.StreamMerge_rtl = StreamMerge_rtl

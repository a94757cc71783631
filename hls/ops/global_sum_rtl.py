"""GlobalSum and GlobalSum_rtl: the global pooling sum before the head, on chip.

FINN's GlobalAccPool exists only as HLS. The head of a fracskip network takes the exact integer sum over H and W
of the last block's output codes (``manifest["head"]["pool"] == "sum"``; the 1/(H*W) is folded into the head), so
this op is that sum: input NHWC unsigned codes (``numInputVectors`` = [1, H, W], ``NumChannels`` with ``PE`` per
word), output (1, C) sums of ``outputDataType`` (unsigned, at least input bits + ceil(log2(H*W))), ``PE`` per word.

Cycles per frame: H*W*C/PE words in, then C/PE words out (the input waits meanwhile): ``get_exp_cycles``.
Core: ``rtl/fracskip_global_sum.v`` (a C/PE-deep memory of PE sums, PE adders).
"""

from __future__ import annotations

import math

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .wrapped_rtl import LogicOnly, WrappedRTL, port, wrapper


@register_hw_op
class GlobalSum(HWCustomOp):
    def get_nodeattr_types(self):
        return {"NumChannels": ("i", True, 0), "PE": ("i", False, 1), "inputDataType": ("s", True, ""),
                "outputDataType": ("s", True, ""), "numInputVectors": ("ints", True, [1, 1, 1]),
                **super().get_nodeattr_types()}

    def pixels(self) -> int:
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def fold(self) -> int:
        return self.get_nodeattr("NumChannels") // self.get_nodeattr("PE")

    def get_normal_input_shape(self, ind=0):
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("NumChannels"),)

    def get_folded_input_shape(self, ind=0):
        return tuple(self.get_nodeattr("numInputVectors")) + (self.fold(), self.get_nodeattr("PE"))

    def get_normal_output_shape(self, ind=0):
        return (1, self.get_nodeattr("NumChannels"))

    def get_folded_output_shape(self, ind=0):
        return (1, self.fold(), self.get_nodeattr("PE"))

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def get_instream_width(self, ind=0):
        return self.get_input_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_outstream_width(self, ind=0):
        return self.get_output_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_number_output_values(self):
        return self.fold()

    def get_exp_cycles(self):
        return self.pixels() * self.fold() + self.fold()

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        info = []
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        if idt.signed() or odt.signed() or not idt.is_integer() or not odt.is_integer():
            info.append(f"GlobalSum sums unsigned integers: {idt.name} -> {odt.name}")
        elif odt.bitwidth() < idt.bitwidth() + math.ceil(math.log2(max(self.pixels(), 2))):
            info.append(f"{odt.name} cannot hold the sum of {self.pixels()} {idt.name} values")
        if self.get_nodeattr("NumChannels") % self.get_nodeattr("PE"):
            info.append("NumChannels is not a multiple of PE")
        return info

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        x = x.reshape((-1, self.pixels(), self.get_nodeattr("NumChannels")))
        context[node.output[0]] = x.astype(np.float64).sum(axis=1).astype(np.float32)


class GlobalSum_rtl(WrappedRTL, LogicOnly, GlobalSum, RTLBackend):  # noqa: N801 (FINN's naming)
    CORE = "fracskip_global_sum"

    def get_nodeattr_types(self):
        return {**GlobalSum.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        pe = self.get_nodeattr("PE")
        iw, ow = self.get_input_datatype().bitwidth(), self.get_output_datatype().bitwidth()
        wi, wo = self.get_instream_width_padded(0), self.get_outstream_width_padded(0)
        ports = [port("in", "in0_V", wi), port("out", "out0_V", wo)]
        body = f"  wire [{pe * ow - 1}:0] o_d;\n  assign out0_V_TDATA = " + (
            f"{{{wo - pe * ow}'d0, o_d}};\n" if wo > pe * ow else "o_d;\n")
        conns = [f".in0_V_TDATA(in0_V_TDATA[{pe * iw - 1}:0])", ".in0_V_TVALID(in0_V_TVALID)",
                 ".in0_V_TREADY(in0_V_TREADY)", ".out0_V_TDATA(o_d)", ".out0_V_TVALID(out0_V_TVALID)",
                 ".out0_V_TREADY(out0_V_TREADY)"]
        params = {"PE": pe, "IW": iw, "OW": ow, "FOLD": self.fold(), "PIX": self.pixels()}
        return wrapper(top, self.CORE, params, ports, body, conns, f"GlobalSum_rtl {params}")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        intf["m_axis"] = [("out0_V", self.get_outstream_width_padded(0))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: PE adders of the output width and the LUT-RAM of C sums (not synthesised)."""
        ow = self.get_output_datatype().bitwidth()
        return int(self.get_nodeattr("PE") * ow * (1 + math.ceil(self.fold() / 64)) + 10)

    def execute_node(self, context, graph):
        GlobalSum.execute_node(self, context, graph)


_rtl.register_custom_op(GlobalSum_rtl)
_rtl.GlobalSum_rtl = GlobalSum_rtl

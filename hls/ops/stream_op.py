"""What the project's per-element integer stream ops (Clip, IntRequant) share: FINN's Thresholding stream layout
(``NumChannels`` split into ``PE`` lanes per word, ``numInputVectors`` words per frame) and one word per cycle."""

from __future__ import annotations

import numpy as np
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from qonnx.core.datatype import DataType


def verilog_literal(width: int, value: int) -> str:
    """A signed Verilog literal of ``width`` bits (negative values as a negated positive literal)."""
    return f"-{width}'sd{-value}" if value < 0 else f"{width}'sd{value}"


class PerChannelStreamOp(HWCustomOp):
    """Abstract base: node attributes, types, shapes, stream widths and cycles of a per-element op."""

    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),  # channels per stream word
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "numInputVectors": ("ints", False, [1]),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def infer_node_datatype(self, model):
        node = self.onnx_node
        self.set_nodeattr("inputDataType", model.get_tensor_datatype(node.input[0]).name)
        model.set_tensor_datatype(node.output[0], self.get_output_datatype())

    def fold_reasons(self) -> list[str]:
        """verify_node's message when PE does not divide the channels (empty list otherwise)."""
        return ["NumChannels is not a multiple of PE"] if self.get_nodeattr("NumChannels") % self.get_nodeattr("PE") else []

    def get_normal_input_shape(self, ind=0):
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("NumChannels"),)

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape()

    def get_folded_input_shape(self, ind=0):
        pe = self.get_nodeattr("PE")
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("NumChannels") // pe, pe)

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape()

    def get_instream_width(self, ind=0):
        return self.get_input_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_outstream_width(self, ind=0):
        return self.get_output_datatype().bitwidth() * self.get_nodeattr("PE")

    def get_number_output_values(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def get_exp_cycles(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))  # one word per cycle, as Thresholding_rtl

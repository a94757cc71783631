"""Turn MVAU nodes of a specialised FINN graph into MVAU_lut, the LUT-based RTL unit.

The builder calls this after folding (SetFolding knows only MVAU_hls/MVAU_rtl by name) and before
code generation, for the paths that should compute in LUTs (below 8 bits; FINN's RTL MVU is DSP-only).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection

from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from ...errors import FracskipError
from .op import OP_TYPE, RTL_DOMAIN, unsupported_reasons

log = logging.getLogger(__name__)

MVAU_TYPES = ("MVAU", "MVAU_hls", "MVAU_rtl")
# Artefacts of an earlier code generation or simulation of the node being replaced.
_STALE_ATTRS = {
    "code_gen_dir_ipgen", "code_gen_dir_cppsim", "ipgen_path", "ip_path", "executable_path", "rtlsim_so",
    "gen_top_module", "res_estimate", "cycles_estimate", "cycles_rtlsim", "res_hls", "res_synth",
}


def operand_bits(node: NodeProto) -> int:
    """The wider of the node's weight and input bit-widths."""
    op = getCustomOp(node)
    return max(op.get_input_datatype(0).bitwidth(), op.get_input_datatype(1).bitwidth())


class ConvertMVAUToLut(Transformation):
    """Replace MVAU / MVAU_hls / MVAU_rtl nodes by MVAU_lut with the same attributes (folding, types, name).

    ``node_names``: only these nodes; ``max_bits``: only nodes whose weights and inputs have at most this
    many bits. A selected node that the unit cannot implement raises FracskipError (``strict``) or is left
    as it is with a warning.
    """

    def __init__(self, node_names: Collection[str] | None = None, max_bits: int | None = None,
                 strict: bool = True):
        super().__init__()
        self.node_names = None if node_names is None else set(node_names)
        self.max_bits = max_bits
        self.strict = strict

    def _selected(self, node: NodeProto) -> bool:
        if node.op_type not in MVAU_TYPES:
            return False
        if self.node_names is not None and node.name not in self.node_names:
            return False
        return self.max_bits is None or operand_bits(node) <= self.max_bits

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for idx, node in enumerate(list(graph.node)):
            if not self._selected(node):
                continue
            new = _lut_node(node)
            reasons = unsupported_reasons(getCustomOp(new), model)
            if reasons:
                msg = f"{node.name} ({node.op_type}) cannot become {OP_TYPE}: " + "; ".join(reasons)
                if self.strict:
                    raise FracskipError(msg)
                log.warning("%s; left as %s", msg, node.op_type)
                continue
            graph.node.remove(node)
            graph.node.insert(idx, new)
            log.debug("%s: %s -> %s", node.name, node.op_type, OP_TYPE)
        return model, False


def lut_reasons(node: NodeProto, model: ModelWrapper) -> list[str]:
    """Why an MVAU-family ``node`` of ``model`` cannot become MVAU_lut (empty list: it can)."""
    return unsupported_reasons(getCustomOp(_lut_node(node)), model)


def _lut_node(node: NodeProto) -> NodeProto:
    new = helper.make_node(OP_TYPE, list(node.input), list(node.output), name=node.name, domain=RTL_DOMAIN)
    known = getCustomOp(new).get_nodeattr_types()
    new.attribute.extend(copy.deepcopy(a) for a in node.attribute if a.name in known and a.name not in _STALE_ATTRS)
    inst = getCustomOp(new)
    inst.set_nodeattr("backend", "fpgadataflow")
    inst.set_nodeattr("mem_mode", "internal_embedded")  # the weights live in the unit's ROM
    inst.set_nodeattr("resType", "lut")
    return new


def convert_to_lut(model: ModelWrapper, node_names: Collection[str] | None = None, max_bits: int | None = None,
                   strict: bool = True) -> ModelWrapper:
    """Functional form of ConvertMVAUToLut (returns the transformed model)."""
    return model.transform(ConvertMVAUToLut(node_names, max_bits, strict))

"""Threshold tables that are only a clip become a Clip layer (``fracskip.hls.ops.clip_rtl``).

The output requant of every residual path, ``ReLU(branch + skip)`` to the 8-bit interface, reaches FINN as a
Thresholding on the UINT9 sum whose 255 thresholds are 1, 2, ..., 255: ``min(sum, 255)``. FINN estimates such
a table at ~40 LUT per channel; the clamp costs about one LUT per output bit.

    model = model.transform(ThresholdsToClip())            # or, in a build: step_fracskip_clip_outputs
"""

from __future__ import annotations

import logging

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_datatypes import InferDataTypes

from . import ops  # noqa: F401  registers Clip / Clip_rtl

log = logging.getLogger(__name__)

THRESHOLDING = {"Thresholding": "Clip", "Thresholding_rtl": "Clip_rtl", "Thresholding_hls": "Clip_rtl"}
MAX_WINDOW = 1 << 16  # input values the check evaluates at most


def clip_bounds(thresholds: np.ndarray, idt, out_bias: int = 0) -> tuple[int, int] | None:
    """(lo, hi) when ``out(x) = out_bias + #{t : x >= t}`` equals ``clamp(x, lo, hi)`` for every value x of the
    integer type ``idt`` and every channel (row) of ``thresholds``; None otherwise.

    Checked value by value, like RemoveIdentityThresholds, on the input values from just below the smallest
    threshold to just above the largest: outside that window both sides are constant (the table at its
    first and last level, the clamp at lo and hi once the window's ends are clamped), so the window decides.
    This keeps the check exact on wide placeholder types such as INT32 before bit-width minimization."""
    if not idt.is_integer() or thresholds.ndim != 2 or thresholds.size == 0:
        return None
    t = np.asarray(thresholds, dtype=np.float64)
    first = max(int(idt.min()), int(np.floor(t.min())) - 1)
    last = min(int(idt.max()), int(np.ceil(t.max())) + 1)
    if last - first >= MAX_WINDOW:
        return None
    x = np.arange(first, last + 1, dtype=np.float64)
    out = np.stack([np.searchsorted(np.sort(row), x, side="right") for row in t]) + out_bias  # #{t <= x}
    lo, hi = int(out[:, 0].min()), int(out[:, -1].max())
    if lo > hi or not np.array_equal(out, np.broadcast_to(np.clip(x, lo, hi), out.shape)):
        return None
    return lo, hi


class ThresholdsToClip(Transformation):
    """Replace each Thresholding (abstract, _rtl or _hls) that is exactly ``clamp(x, lo, hi)`` on its integer
    input type by a Clip (abstract) or Clip_rtl (specialized) node: same input and output tensors, PE and
    shapes carried over, the threshold initializer dropped. ``min_out_bits``: only tables with at least
    this many output bits are worth replacing (a 1-threshold table is already one comparator)."""

    def __init__(self, min_out_bits: int = 2):
        super().__init__()
        self.min_out_bits = min_out_bits

    def apply(self, model: ModelWrapper):
        modified = False
        for n in list(model.graph.node):
            if n.op_type not in THRESHOLDING or not n.domain.startswith("finn.custom_op.fpgadataflow"):
                continue
            inst = getCustomOp(n)
            thr = model.get_initializer(n.input[1])
            odt = inst.get_output_datatype()
            if thr is None or inst.get_nodeattr("runtime_writeable_weights") or not odt.is_integer():
                continue
            if odt.bitwidth() < self.min_out_bits or odt.name == "BIPOLAR":
                continue
            idt = model.get_tensor_datatype(n.input[0])
            bounds = clip_bounds(thr, idt, inst.get_nodeattr("ActVal"))
            if bounds is None or not (odt.allowed(bounds[0]) and odt.allowed(bounds[1])):
                continue
            op_type = THRESHOLDING[n.op_type]
            domain = "finn.custom_op.fpgadataflow" + (".rtl" if op_type.endswith("_rtl") else "")
            name = op_type + n.name[len(n.op_type):] if n.name.startswith(n.op_type) else n.name + "_clip"
            attrs = dict(NumChannels=inst.get_nodeattr("NumChannels"), PE=inst.get_nodeattr("PE"),
                         inputDataType=idt.name, outputDataType=odt.name,
                         numInputVectors=list(inst.get_nodeattr("numInputVectors")), lo=bounds[0], hi=bounds[1],
                         backend="fpgadataflow")
            if op_type == "Clip":
                attrs["preferred_impl_style"] = "rtl"
            clip = helper.make_node(op_type, [n.input[0]], [n.output[0]], name=name, domain=domain, **attrs)
            log.info("%s: %d-step table -> %s(lo=%d, hi=%d)", n.name, thr.shape[1], op_type, *bounds)
            model.graph.node.insert(list(model.graph.node).index(n), clip)
            model.graph.node.remove(n)
            modified = True
        if modified:
            model = model.transform(RemoveUnusedTensors()).transform(InferDataTypes())
        return model, False


def step_fracskip_clip_outputs(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Threshold tables that are a clip (the residual paths' output requant ``min(sum, 255)``) become Clip
    layers. Place it after ``step_fracskip_convert_to_hw`` (abstract Clip, which SpecializeLayers turns into
    Clip_rtl) or after specialization (Clip_rtl directly)."""
    return model.transform(ThresholdsToClip())

"""fracskip's FINN build steps: ``step_x(model, cfg) -> model``, like FINN's own, usable in any
``DataflowBuildConfig.steps`` list beside FINN's.

They differ from FINN's defaults where a DFS core needs it: the residual block's fork and join, keeping
every layer in RTL (so that Verilator can simulate the core), and HDL generation without Vivado.
"""

from __future__ import annotations

import finn.transformation.streamline.absorb as absorb
import finn.transformation.streamline.reorder as reorder
from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import step_qonnx_to_finn, step_tidy_up
from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import InferDuplicateStreamsLayer
from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
    InferElementwiseBinaryOperation,
)
from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
    InferQuantizedMatrixVectorActivation,
)
from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.transformation.streamline import Streamline
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames, RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

from . import ops  # noqa: F401  registers the project's RTL custom ops
from .clip import step_fracskip_clip_outputs
from .transforms import (
    CeilIntegerThresholds,
    HoistInputTranspose,
    InsertInputTransposePair,
    RemoveIdentityThresholds,
    SetFloatPrecision,
    float64_activation_thresholds,
    integer_eltwise_rtl,
    residual_join_detection,
)


def step_fracskip_qonnx_to_finn(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's step_qonnx_to_finn on the graph in float64, so that the thresholds it derives from the Quant
    nodes and those streamlining folds them into are exact (see ``SetFloatPrecision``)."""
    model = model.transform(SetFloatPrecision(64))
    with float64_activation_thresholds():
        return step_qonnx_to_finn(model, cfg)


def step_fracskip_streamline(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Streamline a core with a residual add (cf. finn-examples' ResNet-50 steps): move the scales past
    the input fork and the join, lower convolutions, and bring the NHWC transposes to the graph input.
    The arithmetic is float64, so that every threshold is the trained model's exactly (``SetFloatPrecision``)."""
    model = model.transform(SetFloatPrecision(64))
    with residual_join_detection():
        model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
        for _ in range(3):
            model = model.transform(reorder.MoveLinearPastFork())
            model = model.transform(reorder.MoveLinearPastEltwiseAdd())
            model = model.transform(Streamline())
        model = model.transform(RemoveIdentityThresholds())
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(InsertInputTransposePair())
        for _ in range(3):
            model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
            model = model.transform(reorder.MoveTransposePastFork())
            model = model.transform(reorder.MoveTransposePastJoinAdd())
            model = model.transform(absorb.AbsorbConsecutiveTransposes())
            model = model.transform(reorder.MoveLinearPastFork())
            model = model.transform(reorder.MoveLinearPastEltwiseAdd())
            model = model.transform(Streamline())
        model = model.transform(HoistInputTranspose())
    model = model.transform(CeilIntegerThresholds()).transform(SetFloatPrecision(32))
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())


def _is_residual_join(model: ModelWrapper, node) -> bool:
    """Only the residual add of two streams becomes hardware; scalar scales stay with the host."""
    return node.op_type == "Add" and all(model.get_initializer(i) is None for i in node.input)


def step_fracskip_convert_to_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """HW layers with standalone thresholds (FINN's RTL MVU has none embedded), the residual add as an
    integer ElementwiseAdd and the input fork as DuplicateStreams. Float tails (the head's scale and bias)
    stay outside: the stock step would make them float32 HLS layers."""
    model = model.transform(InferThresholdingLayer())
    model = model.transform(InferQuantizedMatrixVectorActivation())
    model = model.transform(InferConvInpGen())
    model = model.transform(InferElementwiseBinaryOperation(_is_residual_join))
    model = model.transform(InferDuplicateStreamsLayer())
    model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(GiveUniqueNodeNames()).transform(InferShapes()).transform(InferDataTypes())
    return model


def step_fracskip_specialize_layers(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Prefer the RTL variant of every layer (all-RTL cores are what Verilator can simulate here)."""
    for n in model.graph.node:
        inst = getCustomOp(n)
        if "preferred_impl_style" in inst.get_nodeattr_types():
            inst.set_nodeattr("preferred_impl_style", "rtl")
    with integer_eltwise_rtl():
        model = model.transform(SpecializeLayers(cfg._resolve_fpga_part()))
    return model.transform(GiveUniqueNodeNames()).transform(InferShapes()).transform(InferDataTypes())


def step_fracskip_hdl(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Width converters and FIFOs (as step_set_fifo_depths inserts them), then HDL for every layer.
    Without Vivado this is as far as a build goes; the FIFO depths are sized later by simulation."""
    part = cfg._resolve_fpga_part()
    with integer_eltwise_rtl():
        model = model.transform(InsertDWC()).transform(SpecializeLayers(part))
        model = model.transform(InsertFIFO(create_shallow_fifos=True)).transform(SpecializeLayers(part))
    model = model.transform(GiveUniqueNodeNames())
    return model.transform(PrepareIP(part, cfg._resolve_hls_clk_period()))


def frontend_steps() -> list:
    """QONNX -> streamlined FINN-ONNX: what the export is verified with."""
    return [step_fracskip_qonnx_to_finn, step_tidy_up, step_fracskip_streamline]


def estimate_steps() -> list:
    return [*frontend_steps(), step_fracskip_convert_to_hw, step_fracskip_clip_outputs,
            "step_minimize_bit_width_initial", "step_create_dataflow_partition", step_fracskip_specialize_layers,
            "step_target_fps_parallelization", "step_apply_folding_config", "step_minimize_bit_width",
            "step_generate_estimate_reports"]


def hdl_steps() -> list:
    return [*estimate_steps(), step_fracskip_hdl]

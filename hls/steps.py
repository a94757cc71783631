"""fracskip's FINN build steps: ``step_x(model, cfg) -> model``, like FINN's own, usable in any
``DataflowBuildConfig.steps`` list beside FINN's.

They differ from FINN's defaults where a DFS core needs it: the residual block's fork and join, keeping
every layer in RTL (so that Verilator can simulate the core), computing sub-8-bit MVAUs in LUTs
(``fracskip build --mvau``), threshold tables that are a clip or an affine requantizer as such
(``clip.py``, ``requant.py``), and HDL generation without Vivado.
"""

from __future__ import annotations

import functools
import json

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
from finn.transformation.fpgadataflow.hlssynth_ip import HLSSynthIP
from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.transformation.streamline import Streamline
from finn.util.fpgadataflow import is_hls_node
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames, RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

from . import ops  # noqa: F401  registers the project's RTL custom ops
from .clip import step_fracskip_clip_outputs
from .lutmvu.convert import MVAU_TYPES, ConvertMVAUToLut, lut_reasons, operand_bits
from .lutmvu.op import OP_TYPE as MVAU_LUT
from .requant import step_fracskip_requant_outputs
from .transforms import (
    CeilIntegerThresholds,
    HoistInputTranspose,
    InsertInputTransposePair,
    MoveScaleMulPastMaskMul,
    RemoveIdentityThresholds,
    RemoveKeepMask,
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
        model = _until_settled(model, MoveScaleMulPastMaskMul, reorder.MoveLinearPastFork,
                               reorder.MoveLinearPastEltwiseAdd, Streamline)
        model = model.transform(RemoveIdentityThresholds())
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(InsertInputTransposePair())
        model = _until_settled(model, absorb.AbsorbTransposeIntoMultiThreshold, reorder.MoveTransposePastFork,
                               reorder.MoveTransposePastJoinAdd, absorb.AbsorbConsecutiveTransposes,
                               MoveScaleMulPastMaskMul, reorder.MoveLinearPastFork,
                               reorder.MoveLinearPastEltwiseAdd, Streamline)
        model = model.transform(HoistInputTranspose())
    model = model.transform(CeilIntegerThresholds()).transform(SetFloatPrecision(32))
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())


def _until_settled(model: ModelWrapper, *transforms, rounds: int = 3) -> ModelWrapper:
    """The ``transforms`` (classes, made afresh each round) in turn, again while a round changes the graph (at
    most ``rounds``): a round that changes nothing would change nothing after it either. On the tiny channel
    network's 23 cores the first sequence above changes nothing after its first round, the second nothing after its
    second (its first on 4 cores): 5 rounds of streamlining instead of 6, the same graphs."""
    before = model.model.SerializeToString()
    for _ in range(rounds):
        for t in transforms:
            model = model.transform(t())
        after = model.model.SerializeToString()
        if after == before:
            break
        before = after
    return model


def _is_residual_join(model: ModelWrapper, node) -> bool:
    """Only the residual add of two streams becomes hardware; scalar scales stay with the host."""
    return node.op_type == "Add" and all(model.get_initializer(i) is None for i in node.input)


def step_fracskip_convert_to_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """HW layers with standalone thresholds (FINN's RTL MVU has none embedded), the residual add as an
    integer ElementwiseAdd and the input fork as DuplicateStreams. Float tails (the head's scale and bias)
    stay outside: the stock step would make them float32 HLS layers. A channel path's keep mask (a second
    graph input) is taken out: its hardware gets the keep bits in the mode token."""
    model = model.transform(RemoveKeepMask())
    for _ in range(2):  # the transposes that stood around the mask meet
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
    model = model.transform(InferThresholdingLayer())
    model = model.transform(InferQuantizedMatrixVectorActivation())
    model = model.transform(InferConvInpGen())
    model = model.transform(InferElementwiseBinaryOperation(_is_residual_join))
    model = model.transform(InferDuplicateStreamsLayer())
    model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(GiveUniqueNodeNames()).transform(InferShapes()).transform(InferDataTypes())
    return model


def step_fracskip_specialize_layers(model: ModelWrapper, cfg: DataflowBuildConfig, mvau: str = "lut") -> ModelWrapper:
    """Prefer the RTL variant of every layer (all-RTL cores are what Verilator can simulate here), except
    the MVAUs with ``mvau="hls"``: FINN's LUT-based HLS MVAU."""
    for n in model.graph.node:
        inst = getCustomOp(n)
        if mvau == "hls" and n.op_type == "MVAU":
            inst.set_nodeattr("preferred_impl_style", "hls")
            inst.set_nodeattr("resType", "lut")
        elif "preferred_impl_style" in inst.get_nodeattr_types():
            inst.set_nodeattr("preferred_impl_style", "rtl")
    with integer_eltwise_rtl():
        model = model.transform(SpecializeLayers(cfg._resolve_fpga_part()))
    return model.transform(GiveUniqueNodeNames()).transform(InferShapes()).transform(InferDataTypes())


LUT_MAX_BITS = 7  # --mvau lut: MVAUs whose weights and inputs both have at most this many bits compute in LUTs
MVAU_REPORT = "mvau_layers.json"  # in FINN's report/ folder of each core


def place_mvaus(model: ModelWrapper, mvau: str) -> tuple[ModelWrapper, dict]:
    """With ``mvau="lut"``, every MVAU_rtl below 8 bits becomes fracskip's MVAU_lut: FINN's RTL MVU computes
    in DSPs whatever the width, so only a LUT-based unit makes narrow layers cheaper. A layer the unit cannot
    implement stays MVAU_rtl, with the reasons. The nodes are renamed (MVAU_lut_<i>), so that FINN's reports
    name each layer by the op it is. Returns the model and {MVAU layer: {op_type, bits[, unsupported_reasons]}}.
    """
    if mvau == "lut":
        model = model.transform(ConvertMVAUToLut(max_bits=LUT_MAX_BITS, strict=False))
        model = model.transform(GiveUniqueNodeNames())
    layers = {}
    for n in model.graph.node:
        if n.op_type in (*MVAU_TYPES, MVAU_LUT):
            layers[n.name] = {"op_type": n.op_type, "bits": operand_bits(n)}
            if mvau == "lut" and n.op_type != MVAU_LUT and operand_bits(n) <= LUT_MAX_BITS:
                layers[n.name]["unsupported_reasons"] = lut_reasons(n, model)
    return model, layers


def step_fracskip_lut_mvau(model: ModelWrapper, cfg: DataflowBuildConfig, mvau: str = "lut") -> ModelWrapper:
    """``place_mvaus`` once FINN has applied the folding (SetFolding does not know MVAU_lut; the conversion
    keeps PE and SIMD) and before bit-width minimisation, estimates and HDL, so that FINN's reports and HDL
    are the LUT unit's. Writes ``report/mvau_layers.json``: which MVAU each layer is, and why not MVAU_lut."""
    model, layers = place_mvaus(model, mvau)
    report = {"mvau": mvau, "layers": layers}
    (cfg.get_report_directory() / MVAU_REPORT).write_text(json.dumps(report, indent=1))
    return model


def step_fracskip_hdl(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Width converters and FIFOs (as step_set_fifo_depths inserts them), then HDL for every layer.
    Without Vivado this is as far as a core's build goes; its FIFOs keep their depths (the accelerator's are
    sized by simulation, ``hls.accelerator``).
    HLS layers (``--mvau hls`` only) are synthesised to HDL with Vitis HLS, which the builder requires then."""
    part = cfg._resolve_fpga_part()
    with integer_eltwise_rtl():
        model = model.transform(InsertDWC()).transform(SpecializeLayers(part))
        model = model.transform(InsertFIFO(create_shallow_fifos=True)).transform(SpecializeLayers(part))
    model = model.transform(GiveUniqueNodeNames())
    model = model.transform(PrepareIP(part, cfg._resolve_hls_clk_period()))
    if any(is_hls_node(n) for n in model.graph.node):
        model = model.transform(HLSSynthIP())
    return model


def frontend_steps() -> list:
    """QONNX -> streamlined FINN-ONNX: what the export is verified with."""
    return [step_fracskip_qonnx_to_finn, step_tidy_up, step_fracskip_streamline]


def _with_mvau(step, mvau: str):
    """``step`` with the build's ``--mvau`` mode bound. FINN calls steps as ``step(model, cfg)`` and its
    DataflowBuildConfig takes no keys of ours, so the mode travels in the step list; ``functools.wraps``
    keeps the name, by which FINN finds a step (start_step, stop_step, intermediate model files)."""
    @functools.wraps(step)
    def bound(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
        return step(model, cfg, mvau)
    return bound


def estimate_steps(mvau: str = "lut") -> list:
    return [*frontend_steps(), step_fracskip_convert_to_hw, step_fracskip_clip_outputs,
            "step_minimize_bit_width_initial", "step_create_dataflow_partition",
            _with_mvau(step_fracskip_specialize_layers, mvau), "step_target_fps_parallelization",
            "step_apply_folding_config", _with_mvau(step_fracskip_lut_mvau, mvau), "step_minimize_bit_width",
            step_fracskip_requant_outputs, "step_generate_estimate_reports"]


def hdl_steps(mvau: str = "lut") -> list:
    return [*estimate_steps(mvau), step_fracskip_hdl]

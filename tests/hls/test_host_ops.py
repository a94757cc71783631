"""fracskip.hls.host_ops: the host nodes of FINN's parent graphs as the board driver's ``HostProgram`` ops, against
onnxruntime's execution of the same node, one image at a time (the graph's batch), while the driver runs batches.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from fracskip.errors import FracskipError
from fracskip.hls.host_ops import host_programs
from fracskip.runtime import host as drv

SHAPE = [1, 3, 4, 5]


def _node(op: str, opset: int, axes: list[int] | None, as_input: bool, **attrs):
    """One reduction of an input of SHAPE, its axes as the attribute, as a constant input, or not given (None)."""
    from onnx import numpy_helper

    inputs, inits = ["x"], []
    if axes is not None and as_input:
        inputs.append("axes")
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    elif axes is not None:
        attrs["axes"] = axes
    return helper.make_node(op, inputs, ["y"], name="reduce", **attrs), inits, opset


def _parent(node, inits, opset):
    """The node before a dataflow partition, as FINN's parent graph holds the head's host ops."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    sdp = helper.make_node("StreamingDataflowPartition", ["y"], ["z"], domain="finn.custom_op.fpgadataflow")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)
    graph = helper.make_graph([node, sdp], "parent", [x], [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                              initializer=inits)
    return ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _onnx(node, inits, opset, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the node alone, an image at a time."""
    import onnxruntime as ort

    graph = helper.make_graph([node], "reduce", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0].reshape((1, -1)) for i in range(len(x))])


CASES = {  # ONNX's defaults first: no axes (every axis), an empty list (every axis, or none with noop_with_empty_axes)
    "mean-13-no-axes": ("ReduceMean", 13, None, False, {}),
    "mean-18-no-axes-input": ("ReduceMean", 18, None, True, {}),
    "mean-18-empty-axes-input": ("ReduceMean", 18, [], True, {}),
    "sum-13-no-axes": ("ReduceSum", 13, None, True, {}),
    "sum-13-empty-axes-noop": ("ReduceSum", 13, [], True, {"noop_with_empty_axes": 1}),
    "mean-18-noop-no-axes": ("ReduceMean", 18, None, True, {"noop_with_empty_axes": 1}),
    "mean-13-spatial": ("ReduceMean", 13, [2, 3], False, {}),
    "mean-13-negative-no-keepdims": ("ReduceMean", 13, [-1, -2], False, {"keepdims": 0}),
    "sum-13-batch-and-channels": ("ReduceSum", 13, [0, 1], True, {}),
    "mean-18-batch-only": ("ReduceMean", 18, [-4], True, {"keepdims": 1}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reductions_equal_onnx_on_each_image_of_a_batch(case):
    """Without axes, ONNX reduces every axis: the host ops reduce each image's (a traceback before, for a missing
    attribute; an empty axes input reduced none). The batch axis, of one image in the graph, is never reduced
    across a batch's images."""
    op, opset, axes, as_input, attrs = CASES[case]
    node, inits, opset = _node(op, opset, axes, as_input, **attrs)
    pre, post = host_programs(_parent(node, inits, opset), "head", {})
    assert post == [] and len(pre) == 1 and (pre[0]["op"] == "Identity" or 0 not in pre[0]["axes"])
    x = np.random.default_rng(0).integers(-50, 50, [6] + SHAPE[1:]).astype(np.float32)
    got = drv.HostProgram(pre)(x)
    np.testing.assert_allclose(got.reshape(6, -1), _onnx(node, inits, opset, x), rtol=1e-6)
    if "noop" not in case and "batch" not in case:
        assert got.size < x.size  # a reduction, not the input passed on


def test_reductions_the_driver_cannot_run_are_refused_when_packaging():
    """Reducing the batch axis away (keepdims=0 over every axis) would leave a batch without its images' axis."""
    node, inits, opset = _node("ReduceMean", 13, None, False, keepdims=0)
    with pytest.raises(FracskipError, match="reduces away the batch axis"):
        host_programs(_parent(node, inits, opset), "head", {})
    node, inits, opset = _node("ReduceSum", 13, [4], True)
    with pytest.raises(FracskipError, match=r"axes \[4\] beyond its rank 4"):
        host_programs(_parent(node, inits, opset), "head", {})


def test_the_driver_refuses_reductions_over_no_axis_or_the_batch():
    """A package's ``axes`` of [] (every axis to ONNX, none to numpy) or naming the batch axis (its images mixed)."""
    for axes in ([], [0, 1], [-4]):
        with pytest.raises(FracskipError, match="image's axes|axes of an image"):
            drv.HostProgram([{"op": "ReduceMean", "axes": axes}])(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(FracskipError, match="distinct axes"):
        drv.HostProgram([{"op": "ReduceSum", "axes": [1, -3]}])(np.zeros((2, 3, 4, 5), np.float32))


# ---------------------------------------------------------------- a core's files in a build


def _core_files(build, stream=(1, 4, 4, 1), partition=(1, 4, 4, 1)):
    """A stem core's two files as a build leaves them: FINN's parent graph (NCHW -> NHWC transpose, then the
    partition of input ``stream``) and the partition itself (a FIFO of ``partition``, UINT8)."""
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))  # noqa: E731
    folder = build / "cores" / "stem" / "intermediate_models"
    folder.mkdir(parents=True)
    n, c, h, w = stream[0], stream[3], stream[1], stream[2]
    parent = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
         helper.make_node("StreamingDataflowPartition", ["t"], ["y"], domain="finn.custom_op.fpgadataflow")],
        "parent", [vi("x", (n, c, h, w))], [vi("y", stream)], value_info=[vi("t", stream)])
    ModelWrapper(qonnx_make_model(parent)).save(str(folder / "dataflow_parent.onnx"))
    fifo = helper.make_node("StreamingFIFO_rtl", ["x"], ["y"], name="fifo", domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", depth=2, folded_shape=list(partition) + [1],
                            normal_shape=list(partition), dataType="UINT8")
    model = ModelWrapper(qonnx_make_model(helper.make_graph([fifo], "core", [vi("x", partition)],
                                                            [vi("y", partition)])))
    model.set_tensor_datatype("x", DataType["UINT8"])
    model.set_tensor_datatype("y", DataType["UINT8"])
    model.save(str(folder / "step_fracskip_hdl.onnx"))
    return folder


def test_a_cores_files_read_whole_or_refused_by_name(tmp_path):
    """``core_io`` on a build's core: its two ONNX files missing, damaged or empty (an interrupted build, a cache
    cleaner) are named with what to do; before, an AssertionError (qonnx's "File not found") or protobuf's
    DecodeError."""
    from fracskip.hls.host_ops import core_io

    folder = _core_files(tmp_path)
    io = core_io(tmp_path, "stem")
    assert io.host_input_shape == (1, 1, 4, 4) and io.ishape_folded == (1, 4, 4, 1, 1)
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    np.testing.assert_array_equal(io.pre(io.check_input(x)), x.transpose(0, 2, 3, 1))
    for name in ("dataflow_parent.onnx", "step_fracskip_hdl.onnx"):
        good = (folder / name).read_bytes()
        for bad, why in ((None, "is missing"), (b"\x0a\xff\xff\x00garbage", "is not a readable ONNX model"),
                         (b"", "holds no graph")):
            if bad is None:
                (folder / name).unlink()
            else:
                (folder / name).write_bytes(bad)
            with pytest.raises(FracskipError, match=rf"{name} {why}.*build again"):
                core_io(tmp_path, "stem")
        (folder / name).write_bytes(good)
    core_io(tmp_path, "stem")


def test_a_parent_graph_of_another_build_is_refused(tmp_path):
    """The parent graph hands its partition another shape than the partition file takes: the host would pack
    images into the wrong stream (before: read without a word)."""
    from fracskip.hls.host_ops import core_io

    _core_files(tmp_path, stream=(1, 4, 4, 1), partition=(1, 4, 4, 2))
    with pytest.raises(FracskipError, match=r"dataflow_parent.onnx gives its partition the input shape \[1, 4, 4, 1\]"
                                            r", .*step_fracskip_hdl.onnx has \[1, 4, 4, 2\].*different builds"):
        core_io(tmp_path, "stem")

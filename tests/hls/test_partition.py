"""``PartitionFromLambdaOnce``: qonnx's partitions, with a legality check that visits each node once."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.create_generic_partitions import PartitionFromLambda
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from fracskip.hls.transforms import PartitionFromLambdaOnce


def _diamonds(n: int) -> ModelWrapper:
    """x -> n diamonds (a fork into two Relus, joined by an Add) -> y: 2^n paths from y back to x."""
    nodes, t = [], "x"
    for i in range(n):
        nodes += [helper.make_node("Relu", [t], [f"a{i}"], name=f"left{i}"),
                  helper.make_node("Relu", [t], [f"b{i}"], name=f"right{i}"),
                  helper.make_node("Add", [f"a{i}", f"b{i}"], [f"s{i}"], name=f"join{i}")]
        t = f"s{i}"
    nodes.append(helper.make_node("Relu", [t], ["y"], name="last"))
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])  # noqa: E731
    graph = helper.make_graph(nodes, "diamonds", [vi("x")], [vi("y")])
    return ModelWrapper(qonnx_make_model(graph)).transform(InferShapes())


def _split(model: ModelWrapper, cls, partitioning, tmp_path):
    out = model.transform(cls(partitioning, str(tmp_path)), make_deepcopy=True, cleanup=False)
    parts = {f.name: ModelWrapper(str(f)).graph for f in sorted(tmp_path.glob("partition_*.onnx"))}
    for g in parts.values():
        g.ClearField("name")
    return out.graph, parts


def test_same_partitions_as_qonnx(tmp_path):
    model = _diamonds(3)
    part = lambda n: {"left1": 0, "right1": 0, "join1": 0, "last": 1}.get(n.name, -1)  # noqa: E731
    ours = _split(model, PartitionFromLambdaOnce, part, tmp_path / "ours")
    qonnx = _split(model, PartitionFromLambda, part, tmp_path / "qonnx")
    for parts in (ours[1], qonnx[1]):  # the model attribute names each partition's own folder
        assert sorted(parts) == ["partition_0.onnx", "partition_1.onnx"]
    for n in ours[0].node:
        for a in n.attribute:
            a.s = a.s.replace(b"/ours/", b"/qonnx/")
    assert ours[0] == qonnx[0] and ours[1] == qonnx[1]
    assert [n.op_type for n in ours[0].node].count("GenericPartition") == 2


def test_many_diamonds_and_a_cycle(tmp_path):
    model = _diamonds(60)  # qonnx's check would walk 2^60 paths back from "last"
    graph, parts = _split(model, PartitionFromLambdaOnce, lambda n: 0 if n.name == "last" else -1, tmp_path / "a")
    assert [n.name for n in graph.node][-1] == "GenericPartition_0" and len(graph.node) == 3 * 60 + 1
    # a partition around the middle of the graph depends on itself through the nodes left outside it
    cyclic = lambda n: 0 if n.name in ("left0", "join59") else -1  # noqa: E731
    with pytest.raises(AssertionError, match="cycle-free graph violated"):
        _split(model, PartitionFromLambdaOnce, cyclic, tmp_path / "b")

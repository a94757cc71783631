"""Graph rewrites the DFS cores need beyond FINN's own, one qonnx ``Transformation`` each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.create_generic_partitions import PartitionFromLambda
from qonnx.transformation.general import GiveUniqueNodeNames, SortGraph
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name


class SetFloatPrecision(Transformation):
    """Retype every float tensor (initializers, inputs, outputs, value infos) to float64 or float32.

    Streamlining folds each BatchNorm and scale into MultiThreshold thresholds by float arithmetic in the
    initializers' type. In float32 about one threshold in 10^5 lands on the wrong side of an integer, so
    that the hardware rounds a value differently from the trained model (measured on the default's cores);
    fracskip streamlines in float64 and returns to float32 once the thresholds are integers
    (``CeilIntegerThresholds``)."""

    def __init__(self, bits: int):
        super().__init__()
        self.src, self.dst, self.np = ((TensorProto.FLOAT, TensorProto.DOUBLE, np.float64) if bits == 64
                                       else (TensorProto.DOUBLE, TensorProto.FLOAT, np.float32))

    def apply(self, model: ModelWrapper):
        g = model.graph
        for init in g.initializer:
            if init.data_type == self.src:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(self.np), init.name))
        for vi in [*g.input, *g.output, *g.value_info]:
            if vi.type.tensor_type.elem_type == self.src:
                vi.type.tensor_type.elem_type = self.dst
        return model, False


class CeilIntegerThresholds(Transformation):
    """A threshold on an integer input is equivalent to its ceiling (x >= t iff x >= ceil(t)); the ceiling is
    exact in float32 where t itself is not. FINN's RoundAndClipThresholds rounds the same way later in the
    flow, but only after the thresholds have been cast to float32."""

    def apply(self, model: ModelWrapper):
        for n in model.graph.node:
            if n.op_type == "MultiThreshold" and model.get_tensor_datatype(n.input[0]).is_integer():
                t = model.get_initializer(n.input[1])
                if t is not None:
                    model.set_initializer(n.input[1], np.ceil(t))
        return model, False


class RemoveIdentityThresholds(Transformation):
    """Drop a MultiThreshold that maps every value of its integer input type onto itself.

    Each core starts with the interface format as a Quant node (so that QONNX tools see the UINT8 type);
    on interface integers it is an identity, and in hardware a 255-level threshold table for nothing.
    """

    def apply(self, model: ModelWrapper):
        for n in model.graph.node:
            if n.op_type != "MultiThreshold":
                continue
            idt = model.get_tensor_datatype(n.input[0])
            thr = model.get_initializer(n.input[1])
            inst = getCustomOp(n)
            if thr is None or not idt.is_integer() or idt.bitwidth() > 12:
                continue
            if inst.get_nodeattr("out_scale") != 1.0:
                continue
            vals = np.arange(idt.min(), idt.max() + 1, dtype=np.float64)
            out = (vals[None, None, :] >= thr[:, :, None]).sum(axis=1) + inst.get_nodeattr("out_bias")
            if not np.array_equal(out, np.broadcast_to(vals, out.shape)):
                continue
            src, dst = n.input[0], n.output[0]
            for c in model.find_consumers(dst):
                for i, t in enumerate(c.input):
                    if t == dst:
                        c.input[i] = src
            if dst in [o.name for o in model.graph.output]:
                continue  # a graph output cannot be renamed away here; keep the node
            model.graph.node.remove(n)
            return model, True
        return model, False


class MoveScaleMulPastMaskMul(Transformation):
    """A Mul by a constant followed by a Mul by a graph input (a channel path's keep mask, export/cores.py):
    swap them, so that streamlining carries the constant on into the next MatMul's thresholds and the mask
    multiplies relu1's integer codes. Left in front of the mask the scale would stop there, and conv2 would
    multiply scaled floats, which float32 rounds (the lcnet export's logits differed by 0.06)."""

    def apply(self, model: ModelWrapper):
        for a in model.graph.node:
            if a.op_type != "Mul" or model.get_initializer(a.input[1]) is None:
                continue
            b = model.find_consumer(a.output[0])
            if b is None or b.op_type != "Mul" or len(model.find_consumers(a.output[0])) != 1 \
                    or any(model.get_initializer(t) is not None for t in b.input):
                continue
            mask = b.input[1] if b.input[0] == a.output[0] else b.input[0]
            x, mid, y = a.input[0], a.output[0], b.output[0]
            b.input[:], b.output[:] = [x, mask], [mid]
            a.input[0], a.output[0] = mid, y
            model.graph.node.remove(a)  # keep the list topologically sorted: a now follows b
            model.graph.node.insert(list(model.graph.node).index(b) + 1, a)
            return model, True
        return model, False


class RemoveKeepMask(Transformation):
    """A channel path's graph (export/cores.py ``ChannelPathCore``) without its keep mask: the Mul by the second
    graph input taken out, with the shape ops that bring the mask to it, and that input removed. What is left
    is the path with every channel kept; in hardware the mask travels in the mode token instead
    (``MVAU_bitserial`` and ``ModalActivation`` take its keep bits)."""

    def apply(self, model: ModelWrapper):
        if len([i for i in model.graph.input if model.get_initializer(i.name) is None]) < 2:
            return model, False
        keep = model.graph.input[1].name
        chain, node = [], None
        while node is None or node.op_type != "Mul":  # the mask reaches its Mul through shape ops
            node = model.find_consumer(keep if not chain else chain[-1].output[0])
            if node is None:
                raise ValueError(f"graph input {keep} reaches no Mul: not a channel path's keep mask")
            chain.append(node)
        mask = chain[-2].output[0] if len(chain) > 1 else keep
        data = next(t for t in node.input if t != mask)
        for consumer in model.find_consumers(node.output[0]):
            consumer.input[list(consumer.input).index(node.output[0])] = data
        if model.graph.output[0].name == node.output[0]:
            raise ValueError("the keep mask multiplies the graph output: not a channel path")
        for n in chain:
            model.graph.node.remove(n)
        model.graph.input.remove(model.graph.input[1])
        return model, False


class InsertInputTransposePair(Transformation):
    """x(NCHW) -> Transpose(NHWC) -> Transpose(NCHW) -> consumers.

    FINN's streamlining moves the inner transpose into every branch of the input fork, where it cancels
    against the NHWC transposes of the lowered convolutions and moves past the residual add; the outer
    one is left at the graph input, outside the dataflow partition (the host hands NHWC data to the core).
    """

    def apply(self, model: ModelWrapper):
        gi = model.graph.input[0].name
        if len(model.get_tensor_shape(gi)) != 4:
            return model, False  # no NCHW feature map (the head takes the pooled (N, C) sums)
        cons = model.find_consumers(gi)
        if cons and cons[0].op_type == "Transpose" and len(cons) == 1:
            return model, False
        t1, t2 = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
        for n in model.graph.node:
            for i, x in enumerate(n.input):
                if x == gi:
                    n.input[i] = t2
        model.graph.node.insert(0, helper.make_node("Transpose", [t1], [t2], perm=[0, 3, 1, 2]))
        model.graph.node.insert(0, helper.make_node("Transpose", [gi], [t1], perm=[0, 2, 3, 1]))
        model = model.transform(InferShapes())
        dt = model.get_tensor_datatype(gi)
        model.set_tensor_datatype(t1, dt)
        model.set_tensor_datatype(t2, dt)
        return model.transform(GiveUniqueNodeNames()), False


def _is_to_nhwc(n) -> bool:
    return n is not None and n.op_type == "Transpose" and list(get_by_name(n.attribute, "perm").ints) == [0, 2, 3, 1]


class HoistInputTranspose(Transformation):
    """After streamlining, the graph input forks into [MultiThreshold(NCHW) -> Transpose] (the requant of
    a low-bit path) and [Transpose] (the skip): make that one Transpose at the input followed by the fork
    in NHWC, so that the whole fork is inside the dataflow partition."""

    def apply(self, model: ModelWrapper):
        gi = model.graph.input[0].name
        for mt in [c for c in model.find_consumers(gi) if c.op_type == "MultiThreshold"]:
            nxt = model.find_consumers(mt.output[0])
            if len(nxt) == 1 and _is_to_nhwc(nxt[0]):
                t = nxt[0]
                mt_out = t.output[0]
                t.input[0], t.output[0] = gi, mt.output[0]
                mt.input[0], mt.output[0] = t.output[0], mt_out
                getCustomOp(mt).set_nodeattr("data_layout", "NHWC")
                model.graph.node.remove(t)
                model.graph.node.insert(0, t)
                model.set_tensor_shape(t.output[0], model.get_tensor_shape(mt_out))
        ts = [c for c in model.find_consumers(gi) if _is_to_nhwc(c)]
        for t in ts[1:]:
            for c in model.find_consumers(t.output[0]):
                for i, x in enumerate(c.input):
                    if x == t.output[0]:
                        c.input[i] = ts[0].output[0]
            model.graph.node.remove(t)
        model = model.transform(SortGraph()).transform(InferShapes()).transform(InferDataTypes())
        return model, False


@contextlib.contextmanager
def residual_join_detection() -> Iterator[None]:
    """qonnx's ``is_join_node`` only looks for a graph input on input 0; once the residual add takes the
    block input on input 1, FINN's streamlining would treat it as a scalar add. Count every dynamic input."""

    original = ModelWrapper.is_join_node

    def is_join_node(self, node):
        gin = {x.name for x in self.graph.input}
        dyn = [i for i in node.input if self.get_initializer(i) is None and (i in gin or self.find_producer(i))]
        return len(dyn) > 1

    ModelWrapper.is_join_node = is_join_node
    try:
        yield
    finally:
        ModelWrapper.is_join_node = original


class PartitionFromLambdaOnce(PartitionFromLambda):
    """qonnx 1.0.0's ``PartitionFromLambda`` (same partitions, same files, same ``GenericPartition`` nodes) whose
    legality check walks each upstream node once. qonnx's own follows every upstream path of a partition's inputs
    without remembering what it has seen: its work is exponential in the number of fork/join diamonds in front of
    the partition, and on the default's accelerator FINN's CreateDataflowPartition did not finish in 18 CPU-minutes.
    ``partition_check_once()`` has FINN use this one."""

    def apply(self, model):
        import copy
        import pathlib
        import tempfile

        ids = {self.partitioning(n) for n in model.graph.node} - {-1}
        if self.partition_dir is None:
            self.partition_dir = tempfile.mkdtemp(prefix="partitioning_")
        pathlib.Path(self.partition_dir).mkdir(parents=True, exist_ok=True)
        outputs = {t.name for t in model.graph.output}
        for pid in ids:
            all_nodes = list(model.graph.node)
            inside = [self.partitioning(n) == pid for n in all_nodes]
            p_model = copy.deepcopy(model)
            for node, keep in zip(list(p_model.graph.node), inside):
                if not keep:
                    p_model.graph.node.remove(node)
            inits = {t.name for t in p_model.graph.initializer}
            p_in, p_out, start = [], [], 0
            for node in p_model.graph.node:
                for t in node.input:
                    if t not in inits and p_model.find_producer(t) is None:
                        if t not in p_in:
                            p_in.append(t)
                        start = start or next(i for i, n in enumerate(all_nodes) if n.name == node.name)
                for t in node.output:
                    leaves = t in outputs or any(self.partitioning(c) != pid for c in model.find_consumers(t))
                    if leaves and t not in p_out:
                        p_out.append(t)
            in_vi = [p_model.get_tensor_valueinfo(t) for t in p_in]
            out_vi = [p_model.get_tensor_valueinfo(t) for t in p_out]
            seen, todo = set(), [model.find_producer(t) for t in p_in]
            while todo:
                node = todo.pop()
                if node is None or node.name in seen:
                    continue
                seen.add(node.name)
                assert self.partitioning(node) != pid, "cycle-free graph violated: partition depends on itself"
                todo.extend(model.find_direct_predecessors(node) or [])
            for field, vis in ((p_model.graph.input, in_vi), (p_model.graph.output, out_vi)):
                del field[:]
                field.extend(vis)
            for vi in in_vi + out_vi:
                if vi in p_model.graph.value_info:
                    p_model.graph.value_info.remove(vi)
            filename = f"{self.partition_dir}/partition_{pid}.onnx"
            p_model.cleanup()
            p_model.save(filename)
            model.graph.node.insert(start, helper.make_node(
                "GenericPartition", p_in, p_out, name=f"GenericPartition_{pid}", model=filename,
                domain="qonnx.custom_op.general"))
            for node, keep in zip(all_nodes, inside):
                if keep:
                    model.graph.node.remove(node)
        return model, False


@contextlib.contextmanager
def partition_check_once() -> Iterator[None]:
    """FINN's CreateDataflowPartition (and so ZynqBuild and VitisBuild) with ``PartitionFromLambdaOnce``."""
    import finn.transformation.fpgadataflow.create_dataflow_partition as cdp

    original = cdp.PartitionFromLambda
    cdp.PartitionFromLambda = PartitionFromLambdaOnce
    try:
        yield
    finally:
        cdp.PartitionFromLambda = original


@contextlib.contextmanager
def integer_eltwise_rtl() -> Iterator[None]:
    """Let SpecializeLayers pick ElementwiseAdd_rtl for an integer add whose operands have the same width
    and signedness: finn-rtllib's eltwise integer add is plain fabric logic, exact in that case, but
    finn-plus 1.6.1 allows the RTL variant only for float operands on Versal."""
    import finn.transformation.fpgadataflow.specialize_layers as spl

    original = spl._elementwise_rtl_possible

    def possible(n, fpgapart):
        inst = getCustomOp(n)
        a, b = inst.get_input_datatype(0), inst.get_input_datatype(1)
        if n.op_type == "ElementwiseAdd" and a.is_integer() and b.is_integer():
            return a.bitwidth() == b.bitwidth() and a.signed() == b.signed()
        return original(n, fpgapart)

    spl._elementwise_rtl_possible = possible
    try:
        yield
    finally:
        spl._elementwise_rtl_possible = original


@contextlib.contextmanager
def float64_activation_thresholds() -> Iterator[None]:
    """FINN's QONNX activation handlers compute the thresholds of a Quant node in float64 and then narrow them
    to ``np_default_dtype`` (float32); keep float64 while the graph is float64 (see ``SetFloatPrecision``)."""
    import finn.transformation.qonnx.qonnx_activation_handlers as handlers

    original = handlers.np_default_dtype
    handlers.np_default_dtype = np.float64
    try:
        yield
    finally:
        handlers.np_default_dtype = original


class MinimizeWeightBitWidthMemo(Transformation):
    """FINN's ``MinimizeWeightBitWidth`` for a ladder of foldings of one graph: a threshold table's minimal type
    depends on the table and its input type, not on the folding, and FINN checks every threshold of it one by
    one in Python (most of the ladder's time on a 64-channel core). ``memo`` (one dict per graph) keeps each
    table's result for the next rung; every other layer is minimized by FINN as usual."""

    def __init__(self, memo: dict):
        super().__init__()
        self.memo = memo

    def apply(self, model: ModelWrapper):
        from finn.util.basic import getHWCustomOp
        from finn.util.fpgadataflow import is_fpgadataflow_node
        from qonnx.core.datatype import DataType

        for n in model.graph.node:
            if not is_fpgadataflow_node(n):
                continue
            inst = getHWCustomOp(n)
            if not hasattr(inst, "minimize_weight_bit_width"):
                continue
            if not n.op_type.startswith("Thresholding") or inst.get_nodeattr("runtime_writeable_weights"):
                inst.minimize_weight_bit_width(model)
                continue
            thr = model.get_initializer(n.input[1])
            key = (n.op_type, thr.tobytes(), thr.shape, str(inst.get_input_datatype(0)),
                   str(inst.get_input_datatype(1)), inst.get_nodeattr("mlo_max_iter"))
            if key not in self.memo:
                self.memo[key] = inst.minimize_weight_bit_width(model).name
            inst.set_nodeattr("weightDataType", self.memo[key])
            model.set_tensor_datatype(n.input[1], DataType[self.memo[key]])
        return model, False

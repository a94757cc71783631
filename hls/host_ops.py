"""The host side of a build, from FINN's parent graphs: the nodes FINN leaves outside a core's dataflow partition
(``dataflow_parent.onnx``: the stem's NCHW -> NHWC transpose, the head's float scale and bias) as the board
driver's numpy ``HostProgram`` ops, and FINN's ``io_shape_dict`` of a partition. The accelerator's stream packing
(``hls.accelerator.Host``) and its deployment package (``hls.deploy_package``) take them from the stem and head
cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FracskipError
from ..runtime import host as drv

PARENT_FILE = "dataflow_parent.onnx"
MODEL_FILE = "step_fracskip_hdl.onnx"


REBUILD = "build again with `fracskip build EXPORT --board B -o BUILD --force`"


def core_model_path(build_dir: Path, core: str, name: str = MODEL_FILE) -> Path:
    """The dataflow partition of ``core``, as the build generated its HDL (or another of its ``name``)."""
    path = Path(build_dir) / "cores" / core / "intermediate_models" / name
    if not path.is_file():
        raise FracskipError(f"{path} is missing: {REBUILD}")
    return path


def read_model(path: Path):
    """A build's ONNX file; a damaged or empty one (an interrupted build, a cache cleaner) named, not protobuf's
    DecodeError or an empty graph's later mismatch."""
    from qonnx.core.modelwrapper import ModelWrapper

    try:
        model = ModelWrapper(str(path))
    except Exception as e:  # noqa: BLE001 - DecodeError, OSError ...
        raise FracskipError(f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]}): "
                            f"{REBUILD}") from e
    if not model.graph.node:
        raise FracskipError(f"{path} holds no graph (an empty or truncated file): {REBUILD}")
    return model


def _host_op(model, node, core: str, params: dict[str, np.ndarray]) -> dict:
    from qonnx.util.basic import get_by_name

    dyn = [i for i in node.input if i and model.get_initializer(i) is None]
    if len(dyn) != 1 or len(node.output) != 1:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) is not a single-input op")
    op = {"op": node.op_type}
    if node.op_type == "Transpose":
        op["perm"] = [int(p) for p in get_by_name(node.attribute, "perm").ints]
    elif node.op_type in ("Mul", "Add", "Sub", "Div"):
        const = node.input[0] if node.input[1] == dyn[0] else node.input[1]
        op["param"] = f"{core}/{node.name}"
        op["const_first"] = node.input[0] == const
        params[op["param"]] = np.asarray(model.get_initializer(const), dtype=np.float32)
    elif node.op_type == "Reshape":
        op["shape"] = [int(s) for s in model.get_initializer(node.input[1])]
    elif node.op_type == "Flatten":
        if (get_by_name(node.attribute, "axis").i if get_by_name(node.attribute, "axis") else 1) != 1:
            raise FracskipError(f"{core}: Flatten {node.name} with axis != 1 on the host")
    elif node.op_type in ("ReduceMean", "ReduceSum"):
        return _reduce_op(model, node, core)
    elif node.op_type not in drv.HOST_OPS:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) is not one the board driver runs "
                            f"({', '.join(drv.HOST_OPS)})")
    return op


def _reduce_op(model, node, core: str) -> dict:
    """A ReduceMean/ReduceSum as ONNX reads it, with its axes spelled out for the driver: the attribute (ReduceSum
    before opset 13, ReduceMean before 18) or the constant second input; none or an empty list reduce every axis
    (or pass the input on, with ``noop_with_empty_axes``). The graph's batch axis, of one image, is left out: the
    driver reduces each image of a batch alone."""
    from qonnx.util.basic import get_by_name

    def attr(name: str, default: int) -> int:
        a = get_by_name(node.attribute, name)
        return int(a.i) if a else default

    given = get_by_name(node.attribute, "axes")
    if given:
        axes = [int(a) for a in given.ints]
    else:  # an opset-18 input, a constant (a computed one was refused as a second dynamic input)
        axes = [int(a) for a in model.get_initializer(node.input[1])] if node.input[1:] and node.input[1] else []
    if not axes and attr("noop_with_empty_axes", 0):
        return {"op": "Identity"}
    shape = model.get_tensor_shape(node.input[0])
    if not shape or shape[0] != 1:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) has input shape {shape}, not a batch of "
                            "one image's")
    rank, keepdims = len(shape), attr("keepdims", 1)
    if any(not -rank <= a < rank for a in axes):
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) has axes {axes} beyond its rank {rank}")
    axes = sorted({a % rank for a in axes} if axes else range(rank))
    if 0 in axes and not keepdims:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) reduces away the batch axis "
                            "(keepdims=0), which the board driver, running batches of images, cannot")
    axes = [a for a in axes if a]
    return {"op": node.op_type, "axes": axes, "keepdims": keepdims} if axes else {"op": "Identity"}


def host_programs(parent, core: str, params: dict[str, np.ndarray]) -> tuple[list[dict], list[dict]]:
    """The parent graph's nodes before and after its one StreamingDataflowPartition, as host-op lists."""
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if len(sdp) != 1:
        raise FracskipError(f"{core}: the parent graph has {len(sdp)} dataflow partitions, the driver expects one")
    pre, post, seen = [], [], False
    for node in parent.graph.node:  # topologically sorted by FINN
        if node.op_type == "StreamingDataflowPartition":
            seen = True
            continue
        (post if seen else pre).append(_host_op(parent, node, core, params))
    return pre, post


def io_shape_dict(model, core: str) -> dict:
    """FINN's ``io_shape_dict`` (``finn.util.basic.get_driver_shapes``) of a core's dataflow partition: the stream
    types and shapes at its ends (its DMA names, ``idma_<core>`` / ``odma_<core>``, name no real DMA: the cores are
    the accelerator's parts, never deployed alone)."""
    from qonnx.custom_op.registry import getCustomOp

    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise FracskipError(f"{core}: the driver handles cores with one input and one output stream")
    t_in, t_out = model.graph.input[0].name, model.graph.output[0].name
    first, last = getCustomOp(model.find_consumer(t_in)), getCustomOp(model.find_producer(t_out))
    d: dict = {}
    for side, tensor, inst, folded in (("i", t_in, first, first.get_folded_input_shape()),
                                       ("o", t_out, last, last.get_folded_output_shape())):
        dt = model.get_tensor_datatype(tensor)
        folded = [int(s) for s in folded]
        d[f"{side}dt"] = [f"DataType['{dt.name}']"]
        d[f"{side}shape_normal"] = [[int(s) for s in model.get_tensor_shape(tensor)]]
        d[f"{side}shape_folded"] = [folded]
        d[f"{side}shape_packed"] = [folded[:-1] + [(folded[-1] * dt.bitwidth() + 7) // 8]]
    d.update(idma_names=[f"idma_{core}"], odma_names=[f"odma_{core}"], num_inputs=1, num_outputs=1)
    return d


def core_io(build_dir: str | Path, core: str) -> drv.CoreIO:
    """One core of an HDL build as the driver's ``CoreIO``: its partition's stream types and shapes, and its
    parent graph's host ops on either side."""
    parent_path, model_path = core_model_path(build_dir, core, PARENT_FILE), core_model_path(build_dir, core)
    parent, io = read_model(parent_path), io_shape_dict(read_model(model_path), core)
    params: dict[str, np.ndarray] = {}
    pre, post = host_programs(parent, core, params)
    # the partition FINN's parent graph calls is this one: files of two builds would pack the wrong stream
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")[0]
    for end, tensor, stream in (("input", sdp.input[0], io["ishape_normal"][0]),
                                ("output", sdp.output[0], io["oshape_normal"][0])):
        if parent.get_tensor_shape(tensor) != stream:
            raise FracskipError(f"{parent_path} gives its partition the {end} shape "
                                f"{parent.get_tensor_shape(tensor)}, {model_path} has {stream}: the files are of "
                                f"different builds; {REBUILD}")
    shape = tuple(int(s) for s in parent.get_tensor_shape(parent.graph.input[0].name))
    return drv.CoreIO(core, io, drv.HostProgram(pre, params), drv.HostProgram(post, params), shape)

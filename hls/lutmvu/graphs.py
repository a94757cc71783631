"""One-node FINN graphs of an MVAU layer: for the tests, the benchmark and quick experiments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

from .core import LutMvuParams

_DOMAINS = {"": "finn.custom_op.fpgadataflow", "hls": "finn.custom_op.fpgadataflow.hls",
            "rtl": "finn.custom_op.fpgadataflow.rtl", "lut": "finn.custom_op.fpgadataflow.rtl"}


def int_type(bits: int, signed: bool) -> DataType:
    return DataType[f"INT{bits}" if signed else f"UINT{bits}"]  # UINT1 is FINN's BINARY


def mvau_model(params: LutMvuParams, weights: np.ndarray, n_vectors: Sequence[int] = (1,), op_type: str = "MVAU",
               name: str = "MVAU_0", successor: bool = False, thresholds: np.ndarray | None = None,
               **attrs) -> ModelWrapper:
    """A graph ``inp -> op_type -> outp`` with ``weights`` (MW, MH) (and ``thresholds``) as initializers.

    Without thresholds the node has noActivation=1 and outputs the accumulator (``params.acc_bits``); with
    thresholds (MH or 1, N) it outputs ``params.out_bits``-bit activations offset by ``params.act_val``.
    ``successor``: append an Identity, so that MinimizeAccumulatorWidth does not round the output type up to
    whole bytes as it does for a graph's last node. ``attrs`` override node attributes (e.g. mem_mode).
    """
    backend = op_type.rpartition("_")[2] if "_" in op_type else ""
    vecs = [int(v) for v in n_vectors]
    idt = int_type(params.act_bits, params.act_signed)
    wdt = int_type(params.weight_bits, params.weight_signed)
    adt = int_type(params.acc_bits, params.acc_signed)
    odt = adt if thresholds is None else int_type(params.out_bits, params.act_val < 0)
    node_attrs = dict(
        MW=params.mw, MH=params.mh, PE=params.pe, SIMD=params.simd,
        inputDataType=idt.name, weightDataType=wdt.name, outputDataType=odt.name, accDataType=adt.name,
        noActivation=int(thresholds is None), ActVal=params.act_val, numInputVectors=vecs, backend="fpgadataflow",
        mem_mode="internal_embedded" if backend in ("", "lut") else "internal_decoupled",
        resType="dsp" if backend == "rtl" else "lut",
        ram_style=params.rom_style,
    )
    node_attrs.update(attrs)
    mvau_out = "acc" if successor else "outp"
    inputs = ["inp", "weights"] + ([] if thresholds is None else ["thresholds"])
    nodes = [helper.make_node(op_type, inputs, [mvau_out], name=name, domain=_DOMAINS[backend], **node_attrs)]
    if successor:
        nodes.append(helper.make_node("Identity", [mvau_out], ["outp"], name="Identity_0"))
    graph = helper.make_graph(
        nodes, "lutmvu_layer",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, vecs + [params.mw])],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, vecs + [params.mh])],
        value_info=[helper.make_tensor_value_info("acc", TensorProto.FLOAT, vecs + [params.mh])] if successor else [],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="fracskip.hls.lutmvu"))
    model.set_initializer("weights", np.asarray(weights, dtype=np.float32))
    model.set_tensor_datatype("inp", idt)
    model.set_tensor_datatype("weights", wdt)
    if thresholds is not None:
        model.set_initializer("thresholds", np.asarray(thresholds, dtype=np.float32))
        integral = np.array_equal(np.asarray(thresholds), np.round(thresholds))
        tdt = int_type(params.acc_bits + 1, True) if integral else DataType["FLOAT32"]
        model.set_tensor_datatype("thresholds", tdt)
    model.set_tensor_datatype(mvau_out, odt)
    if successor:
        model.set_tensor_datatype("outp", odt)
    return model

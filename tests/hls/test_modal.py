"""A DFS block's runtime-precision datapath (hls/modal.py) and its mode-aware ops.

1. ModalActivation_rtl and ModeFork_rtl in Verilator, bit for bit against their python twins: random functions
   per mode (bypass, threshold tables, requantizers; narrow and accumulator-wide, signed and unsigned inputs), mode
   switches between back-to-back frames, random stalls.
2. The modal graph of each gated block of the tiny network (its b2/b4/b8 path cores merged into one graph of
   MVAU_bitserial and ModalActivation nodes): FINN's python execution equals, frame by frame, the path core of the
   frame's mode, for a batch of frames of mixed modes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fracskip.errors import FracskipError

# ---------------------------------------------------------------------------------------------- single nodes
FRAMES = 9


def _node_model(op_type: str, inputs: list[tuple[str, tuple, str]], outputs: list[tuple[str, tuple, str]], **attrs):
    """A graph of one fracskip RTL node; tensors given as (name, shape, FINN datatype)."""
    from fracskip.hls.accelerator import GraphBuilder

    g = GraphBuilder()
    for name, shape, dt in inputs + outputs:
        g.tensor(name, shape, dt)
    g.node(op_type, [i[0] for i in inputs], [o[0] for o in outputs], f"{op_type}_0", **attrs)
    return g.model([i[0] for i in inputs], [o[0] for o in outputs])


def random_activation(rng: np.random.Generator, name: str):
    """A ModalActivation_rtl node of random shape, folding, input type and 1-4 mode functions."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction, datatype_for
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    C = int(rng.choice([2, 4, 6, 8]))
    pe = int(rng.choice([p for p in (1, 2, C) if C % p == 0]))
    idt = DataType[str(rng.choice(["UINT8", "UINT4", "INT10", "INT22", "UINT9"]))]
    lo_in, hi_in = int(idt.min()), int(idt.max())
    fns = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["bypass", "thresholds", "requant"], p=[0.2, 0.4, 0.4])
        if kind == "bypass":
            fns.append(ModeFunction.bypass())
        elif kind == "thresholds":
            n = int(rng.choice([1, 3, 15]))
            rows = 1 if rng.random() < 0.4 else C
            span = hi_in - lo_in
            t = rng.uniform(lo_in - span / 8, hi_in + span / 8, (rows, n))  # some beyond the type: clipped
            ob = max(1, n.bit_length())
            fns.append(ModeFunction.from_thresholds(t, idt, -(1 << (ob - 1)) if rng.random() < 0.3 else 0))
        else:
            shift = int(rng.integers(0, 14))
            out_lo, out_hi = sorted(int(v) for v in rng.integers(-300, 300, 2))
            if rng.random() < 0.5:
                out_lo, out_hi = 0, 255
            fns.append(ModeFunction.requant(rng.integers(0, 1 << 12, C), rng.integers(-(1 << 16), 1 << 16, C),
                                            shift, out_lo, out_hi))
    ranges = [f.out_range(idt) for f in fns]
    odt = datatype_for(min(r[0] for r in ranges), max(r[1] for r in ranges))
    h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    model = _node_model("ModalActivation_rtl", [("x", (1, h, w, C), idt.name), ("m", (1, 1), "UINT8")],
                        [("y", (1, h, w, C), odt.name)], NumChannels=C, PE=pe, inputDataType=idt.name,
                        outputDataType=odt.name, numInputVectors=[1, h, w],
                        modes=json.dumps([f.to_json() for f in fns]))
    model.graph.node[0].name = name
    return model, getCustomOp(model.graph.node[0])


def _pack(values: np.ndarray, bits: int, lanes: int) -> list[int]:
    v = np.asarray(values, dtype=np.int64).reshape(-1, lanes) & ((1 << bits) - 1)
    return [sum(int(e) << (i * bits) for i, e in enumerate(row)) for row in v]


def _unpack(words: list[int], bits: int, lanes: int, signed: bool) -> np.ndarray:
    v = np.array([[(w >> (i * bits)) & ((1 << bits) - 1) for i in range(lanes)] for w in words], dtype=np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v) if signed else v


def _python(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FINN's python execution of the one-node model, frame by frame."""
    from finn.core.onnx_exec import execute_onnx
    from fracskip.hls.accelerator import python_model

    pm = python_model(model)
    n = len(next(iter(inputs.values())))
    outs = [execute_onnx(pm, {k: v[f:f + 1].astype(np.float32) for k, v in inputs.items()}) for f in range(n)]
    return {o.name: np.concatenate([r[o.name] for r in outs]) for o in pm.graph.output}


def test_modal_activation_python_twin():
    """The python twin is each frame's mode function: thresholds count, requant's floor shift and clip, bypass."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction
    from qonnx.core.datatype import DataType

    idt = DataType["INT10"]
    fns = [ModeFunction.bypass(), ModeFunction.from_thresholds(np.array([[-3.5, 0.2, 600.0]]), idt, -2),
           ModeFunction.requant([3, 5], [-7, 4], 2, -4, 9)]
    assert fns[1].thresholds == ((-3, 1, 512),)  # ceiled, 600 beyond INT10 -> max + 1: never reached
    model = _node_model("ModalActivation_rtl", [("x", (1, 1, 2), "INT10"), ("m", (1, 1), "UINT8")],
                        [("y", (1, 1, 2), "INT10")], NumChannels=2, PE=1, inputDataType="INT10",
                        outputDataType="INT10", numInputVectors=[1, 1], modes=json.dumps([f.to_json() for f in fns]))
    x = np.array([[[-4, 1]], [[-4, 1]], [[-4, 1]], [[511, -512]]], dtype=np.float32)
    m = np.array([[0], [1], [2], [2]], dtype=np.float32)
    y = _python(model, {"x": x, "m": m})["y"].reshape(4, 2)
    np.testing.assert_array_equal(y, [[-4, 1], [-2, 0], [-4, 2], [9, -4]])  # (-12-7)>>2 = -5 -> -4; (5+4)>>2 = 2
    with pytest.raises(FracskipError, match="modes"):
        _python(model, {"x": x, "m": np.array([[0], [3], [1], [1]], dtype=np.float32)})


@pytest.mark.rtlsim
def test_modal_activation_rtl_bit_exact(tmp_path, finn_rtlsim):
    """Random nodes in one Verilator model, several runs each (new data and mode sequences, with and without
    stalls): every output word equals the python twin's."""
    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness

    rng = np.random.default_rng(13)
    nodes = [random_activation(rng, f"modal_act_{i}") for i in range(8)]
    duts, sources = [], []
    for i, (model, op) in enumerate(nodes):
        top = f"modal_act_{i}"
        path = tmp_path / f"{top}.v"
        path.write_text(op.verilog(top))
        sources.append(path)
        words = int(np.prod(op.get_folded_input_shape(0)[:-1]))
        duts.append(StreamDut(top, op.get_instream_width_padded(0), op.get_outstream_width_padded(0),
                              n_in=FRAMES * words, n_out=FRAMES * words, n_modes=FRAMES,
                              exp_cycles=FRAMES * op.get_exp_cycles()))
    harness = StreamHarness(duts, sources, tmp_path / "runs")
    kinds_seen = set()
    for run in range(3):
        inputs, modes, want = [], [], []
        for model, op in nodes:
            idt, k = op.get_input_datatype(0), len(op.mode_functions())
            shape = (FRAMES,) + tuple(op.get_normal_input_shape(0))[1:]
            x = rng.integers(int(idt.min()), int(idt.max()) + 1, shape)
            x.reshape(-1)[:2] = [idt.min(), idt.max()]  # the type's extremes
            m = rng.integers(0, k, FRAMES)
            m[1:3] = [0, k - 1]  # back-to-back switch
            kinds_seen |= {op.mode_functions()[j].kind for j in m}
            y = _python(model, {"x": x, "m": m.reshape(-1, 1)})["y"]
            inputs.append(_pack(x, idt.bitwidth(), op.get_nodeattr("PE")))
            modes.append([int(v) for v in m])
            want.append(y.astype(np.int64).reshape(-1))
        for stall in (False, True):
            results = harness.run(inputs, modes, stall=stall, seed=run + 1)
            for (model, op), res, w in zip(nodes, results, want):
                assert res.finished, (op.onnx_node.name, len(res.outputs), res.n_expected)
                odt = op.get_output_datatype()
                got = _unpack(res.outputs, odt.bitwidth(), op.get_nodeattr("PE"), odt.signed())
                np.testing.assert_array_equal(got.reshape(-1), w, err_msg=f"{op.onnx_node.name}, stall={stall}")
            if not stall:  # at full rate: one word per cycle and the token's cycle per frame, plus the pipeline
                for (model, op), res in zip(nodes, results):
                    assert res.cycles <= FRAMES * op.get_exp_cycles() + 4, (op.onnx_node.name, res.cycles)
    assert kinds_seen == {"bypass", "thresholds", "requant"}


@pytest.mark.rtlsim
def test_mode_fork_rtl_drops_skips(tmp_path, finn_rtlsim):
    """ModeFork_rtl maps each decision (clamped to its table) to a mode token and gives none for -1 entries; the
    python twin gives the same modes for the frames that get one (and 0 for the others)."""
    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness
    from qonnx.custom_op.registry import getCustomOp

    table = [-1, 2, 0, 1]
    model = _node_model("ModeFork_rtl", [("d", (1, 1), "INT16")], [("m", (1, 1), "UINT8")], ModeOf=table)
    op = getCustomOp(model.graph.node[0])
    d = np.array([0, 1, 2, 3, 0, 0, 3, 1, -5, 9, 2, 0, 1])  # skips back to back, out-of-range decisions
    dc = np.clip(d, 0, 3)
    want = [table[v] for v in dc if table[v] >= 0]
    py = _python(model, {"d": d.reshape(-1, 1)})["m"].reshape(-1)
    np.testing.assert_array_equal(py, [max(table[v], 0) for v in dc])
    path = tmp_path / "mode_fork.v"
    path.write_text(op.wrapper_verilog("mode_fork"))
    dut = StreamDut("mode_fork", 16, 8, n_in=len(d), n_out=len(want))
    harness = StreamHarness([dut], [path, op.core_source()], tmp_path / "runs")
    for stall in (False, True):
        (res,) = harness.run([[int(v) & 0xFFFF for v in d]], stall=stall)
        assert res.outputs == want, (stall, res.outputs)

"""A DFS block's runtime-precision datapath (hls/modal.py) and its mode-aware ops.

1. ModalActivation_rtl and ModeFork_rtl in Verilator, bit for bit against their python twins: random functions
   per mode (bypass, threshold tables, requantizers; narrow and accumulator-wide, signed and unsigned inputs), mode
   switches between back-to-back frames, random stalls.
2. The modal graph of each gated block of the tiny network (its b2/b4/b8 path cores merged into one graph of
   MVAU_bitserial and ModalActivation nodes): FINN's python execution equals, frame by frame, the path core of the
   frame's mode, for a batch of frames of mixed modes; a folding of its own per bit-serial unit. Slow: the last
   gated block's graph stitched and verilated equals its python execution, cycles following the frames' modes.
The whole network with these datapaths (design dfs, what ``fracskip build`` emits) is tests/hls/test_accelerator.py's:
FINN's python execution equals the numpy controller, Verilator equals the python execution.
"""

from __future__ import annotations

import json

import hil  # tests/hil.py: the shared tiny HDL build
import numpy as np
import pytest

from fracskip.errors import FracskipError

# ---------------------------------------------------------------------------------------------- single nodes
FRAMES = 9


def _node_model(op_type: str, inputs: list[tuple[str, tuple, str]], outputs: list[tuple[str, tuple, str]], **attrs):
    """A graph of one fracskip RTL node; tensors given as (name, shape, FINN datatype)."""
    from fracskip.hls import ops  # noqa: F401  registers the node's op
    from fracskip.hls.accelerator import GraphBuilder

    g = GraphBuilder()
    for name, shape, dt in inputs + outputs:
        g.tensor(name, shape, dt)
    g.node(op_type, [i[0] for i in inputs], [o[0] for o in outputs], f"{op_type}_0", **attrs)
    return g.model([i[0] for i in inputs], [o[0] for o in outputs])


def _narrow(idt):
    """A lower-precision path's input type within the stream's ``idt`` (its accumulator)."""
    from qonnx.core.datatype import DataType

    return DataType[f"{'INT' if idt.signed() else 'UINT'}{max(2, idt.bitwidth() // 2)}"]


def _random_function(rng: np.random.Generator, C: int, idt, kind: str | None = None, n: int | None = None, mdt=None):
    """A random mode function on C channels of ``idt``; its kind, steps and input type drawn unless given."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction

    kind = kind or rng.choice(["bypass", "thresholds", "requant"], p=[0.2, 0.4, 0.4])
    if kind == "bypass":
        return ModeFunction.bypass()
    if kind == "thresholds":
        n = n or int(rng.choice([1, 3, 15]))
        rows = 1 if rng.random() < 0.4 else C
        # the mode's own input type: the stream's, or a narrower one (a lower-precision path's accumulator)
        mdt = mdt or (idt if rng.random() < 0.5 else _narrow(idt))
        span = int(mdt.max()) - int(mdt.min())
        t = rng.uniform(int(mdt.min()) - span / 8, int(mdt.max()) + span / 8, (rows, n))  # some beyond: clipped
        ob = max(1, n.bit_length())
        return ModeFunction.from_thresholds(t, mdt, -(1 << (ob - 1)) if rng.random() < 0.3 else 0)
    shift = int(rng.integers(0, 14))
    out_lo, out_hi = sorted(int(v) for v in rng.integers(-300, 300, 2))
    if rng.random() < 0.5:
        out_lo, out_hi = 0, 255
    return ModeFunction.requant(rng.integers(0, 1 << 12, C), rng.integers(-(1 << 16), 1 << 16, C), shift, out_lo,
                                out_hi)


def _activation(rng: np.random.Generator, name: str, fns: list, C: int, pe: int, idt, **attrs):
    """A ModalActivation_rtl node of ``fns`` on frames of random height and width."""
    from fracskip.hls.ops.modal_act_rtl import datatype_for
    from qonnx.custom_op.registry import getCustomOp

    ranges = [f.out_range(idt) for f in fns]
    odt = datatype_for(min(r[0] for r in ranges), max(r[1] for r in ranges))
    h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    model = _node_model("ModalActivation_rtl", [("x", (1, h, w, C), idt.name), ("m", (1, 1), "UINT8")],
                        [("y", (1, h, w, C), odt.name)], NumChannels=C, PE=pe, inputDataType=idt.name,
                        outputDataType=odt.name, numInputVectors=[1, h, w],
                        modes=json.dumps([f.to_json() for f in fns]), **attrs)
    model.graph.node[0].name = name
    op = getCustomOp(model.graph.node[0])
    model.set_tensor_datatype("m", op.get_input_datatype(1))
    return model, op


def random_activation(rng: np.random.Generator, name: str):
    """A ModalActivation_rtl node of random shape, folding, input type and 1-4 mode functions."""
    from qonnx.core.datatype import DataType

    C = int(rng.choice([2, 4, 6, 8]))
    pe = int(rng.choice([p for p in (1, 2, C) if C % p == 0]))
    idt = DataType[str(rng.choice(["UINT8", "UINT4", "INT10", "INT22", "UINT9"]))]
    fns = [_random_function(rng, C, idt) for _ in range(int(rng.integers(1, 5)))]
    return _activation(rng, name, fns, C, pe, idt)


def random_grouped_activation(rng: np.random.Generator, name: str, big: bool = False):
    """A ModalActivation_rtl node with channel groups (relu1's under channel skipping): 1-16 groups of 1-4
    channels, any PE dividing the channels, 1-3 base modes each with one function per number of groups kept,
    2-48 functions in all. A base mode's functions share kind, steps and input type, as the bit-width's threshold
    sets do, and differ in contents (act_val and requant shift and clip too). ``big``: 16 groups of 4 channels,
    the first base mode of 15 thresholds (a table of block RAM)."""
    from qonnx.core.datatype import DataType

    ng, cg = (16, 4) if big else (int(rng.integers(1, 17)), int(rng.integers(1, 5)))
    C = ng * cg
    pe = int(rng.choice([p for p in range(1, 9) if C % p == 0]))
    idt = DataType[str(rng.choice(["UINT8", "INT10", "INT22", "UINT9"]))]
    n_base = int(rng.integers(2, 13)) if ng == 1 else int(rng.integers(1, min(3, 48 // ng) + 1))
    fns = []
    for b in range(n_base):
        kind = "thresholds" if big and b == 0 else str(rng.choice(["bypass", "thresholds", "requant"], p=[.1, .5, .4]))
        n = 15 if big and b == 0 else int(rng.choice([1, 3, 15]))
        mdt = idt if rng.random() < 0.5 else _narrow(idt)
        fns += [_random_function(rng, C, idt, kind, n, mdt) for _ in range(ng)]
    return _activation(rng, name, fns, C, pe, idt, channelGroup=cg)


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
    narrow = ModeFunction.from_thresholds(np.array([[-3.5, 0.2, 600.0]]), DataType["INT4"])
    assert narrow.thresholds == ((-3, 1, 8),) and narrow.in_bits == 4
    np.testing.assert_array_equal(narrow(np.array([-8, 7, 9, -9])), [0, 2, 0, 2])  # 9 -> -7, -9 -> 7: as the RTL
    model = _node_model("ModalActivation_rtl", [("x", (1, 1, 2), "INT10"), ("m", (1, 1), "UINT8")],
                        [("y", (1, 1, 2), "INT10")], NumChannels=2, PE=1, inputDataType="INT10",
                        outputDataType="INT10", numInputVectors=[1, 1], modes=json.dumps([f.to_json() for f in fns]))
    x = np.array([[[-4, 1]], [[-4, 1]], [[-4, 1]], [[511, -512]]], dtype=np.float32)
    m = np.array([[0], [1], [2], [2]], dtype=np.float32)
    y = _python(model, {"x": x, "m": m})["y"].reshape(4, 2)
    np.testing.assert_array_equal(y, [[-4, 1], [-2, 0], [-4, 2], [9, -4]])  # (-12-7)>>2 = -5 -> -4; (5+4)>>2 = 2
    with pytest.raises(FracskipError, match="modes"):
        _python(model, {"x": x, "m": np.array([[0], [3], [1], [1]], dtype=np.float32)})


def test_modal_activation_channel_groups_python_twin():
    """With channel groups, a token's low byte is the base mode m and bit 8 + g keeps group g: the frame's function
    is modes[m * NG + n_kept - 1] (n_kept 0 as 1), and a dropped group's channels are 0 whatever it computes."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    idt = DataType["INT8"]
    fns = [ModeFunction.from_thresholds(np.array([[0, 10]]), idt),  # m 0, one group kept
           ModeFunction.from_thresholds(np.array([[-5, 5]]), idt, 1),  # m 0, both
           ModeFunction.bypass(),  # m 1, one
           ModeFunction.requant([1, 2, 3, 4], [0, 0, 0, 0], 0, -100, 100)]  # m 1, both
    model = _node_model("ModalActivation_rtl", [("x", (1, 1, 4), "INT8"), ("m", (1, 1), "UINT16")],
                        [("y", (1, 1, 4), "INT8")], NumChannels=4, PE=1, inputDataType="INT8", outputDataType="INT8",
                        numInputVectors=[1, 1], channelGroup=2, modes=json.dumps([f.to_json() for f in fns]))
    op = getCustomOp(model.graph.node[0])
    assert (op.n_groups(), op.get_instream_width(1), op.get_input_datatype(1).name) == (2, 16, "UINT16")
    tokens = [0 | 0b01 << 8, 0 | 0b10 << 8, 0 | 0b11 << 8, 1 | 0b10 << 8, 1 | 0b11 << 8, 1]
    assert [op.token_function(t) for t in tokens] == [(0, 1), (0, 2), (1, 3), (2, 2), (3, 3), (2, 0)]
    x = np.tile(np.array([-3, 4, 7, 20], dtype=np.float32), (len(tokens), 1, 1))
    y = _python(model, {"x": x, "m": np.array(tokens, dtype=np.float32).reshape(-1, 1)})["y"].reshape(-1, 4)
    np.testing.assert_array_equal(y, [[0, 1, 0, 0],  # [0, 10]: 0 1 1 2, group 1 dropped
                                      [0, 0, 1, 2],  # group 0 dropped
                                      [2, 2, 3, 3],  # 1 + #{x >= -5, x >= 5}
                                      [0, 0, 7, 20],  # bypass, group 0 dropped
                                      [-3, 8, 21, 80],  # x * mul
                                      [0, 0, 0, 0]])  # no group kept
    for bad in (2, 0x401):  # base mode 2 of 2; a keep bit beyond the 2 groups
        with pytest.raises(FracskipError, match="modes are 0 to 1"):
            op.token_function(bad)


def test_modal_activation_verify_channel_groups():
    """verify_node on channel groups: they divide the channels (any PE: the RTL picks each lane's keep bit by
    the word), the functions are one per (base mode, groups kept), at most 16 groups (8 + 16 token bits, exact
    in float32) and 64 functions."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction
    from qonnx.custom_op.registry import getCustomOp

    def problems(C, pe, cg, n_fns):
        model = _node_model("ModalActivation_rtl", [("x", (1, 1, C), "UINT4"), ("m", (1, 1), "UINT8")],
                            [("y", (1, 1, C), "UINT4")], NumChannels=C, PE=pe, inputDataType="UINT4",
                            outputDataType="UINT4", numInputVectors=[1, 1], channelGroup=cg,
                            modes=json.dumps([ModeFunction.bypass().to_json()] * n_fns))
        return getCustomOp(model.graph.node[0]).verify_node()

    assert problems(6, 2, 3, 4) == [] and problems(64, 4, 4, 64) == [] and problems(8, 8, 2, 8) == []
    assert problems(8, 1, 3, 3) == ["channelGroup=3 must divide NumChannels=8 (or be 0: no channel groups)"]
    assert problems(8, 1, 2, 6) == ["6 modes: channel groups need one per (mode, groups kept), a multiple of 4"]
    assert problems(34, 1, 2, 17) == [
        "17 channel groups: at most 16 (a token of 8 + 16 bits is the widest FINN's float32 tensors hold exactly)"]
    assert problems(4, 1, 1, 68) == ["68 modes: 1 to 64"]
    assert problems(4, 1, 0, 64) == [] and problems(4, 1, -1, 4)[0].startswith("channelGroup=-1")


def test_modal_activation_verify_thresholds_beyond_the_compare_width():
    """A mode's thresholds are compared at its input's width + 1 bits: beyond [min, max + 1] of that type the RTL
    would read their low bits (20 as -12 at 5 bits). from_thresholds clips them; a table written otherwise (no
    in_bits: the stream's type) is refused by verify_node, as one with in_bits already was."""
    from fracskip.hls.ops.modal_act_rtl import ModeFunction
    from qonnx.custom_op.registry import getCustomOp

    def problems(rows):
        fns = [ModeFunction("thresholds", thresholds=rows, act_val=0).to_json()]
        model = _node_model("ModalActivation_rtl", [("x", (1, 1, 2), "INT4"), ("m", (1, 1), "UINT8")],
                            [("y", (1, 1, 2), "UINT4")], NumChannels=2, PE=1, inputDataType="INT4",
                            outputDataType="UINT4", numInputVectors=[1, 1], modes=json.dumps(fns))
        return getCustomOp(model.graph.node[0]).verify_node()

    assert problems(((-8, 3, 8),)) == []  # -8 always reached, 8 never: the ends of INT4 + 1
    assert problems(((20,),)) == ["mode 0: thresholds beyond the range of INT4 inputs: clip them to it (from_thresholds)"]
    assert problems(((-20, 3),)) == [
        "mode 0: thresholds beyond the range of INT4 inputs: clip them to it (from_thresholds)"]


def _rtl_bit_exact(tmp_path, rng: np.random.Generator, nodes: list, draw_tokens) -> set[tuple[str, int]]:
    """``nodes`` in one Verilator model, several runs each (new data and tokens, with and without stalls): every
    output word equals the python twin's; at full rate, one word per cycle and the token's cycle per frame, plus the
    pipeline. ``draw_tokens(op)``: a run's FRAMES mode tokens. Returns the (node, function) pairs run."""
    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness

    duts, sources = [], []
    for i, (model, op) in enumerate(nodes):
        top = op.onnx_node.name
        path = tmp_path / f"{top}.v"
        path.write_text(op.verilog(top))
        sources.append(path)
        words = int(np.prod(op.get_folded_input_shape(0)[:-1]))
        duts.append(StreamDut(top, op.get_instream_width_padded(0), op.get_outstream_width_padded(0),
                              n_in=FRAMES * words, n_out=FRAMES * words, n_modes=FRAMES,
                              exp_cycles=FRAMES * op.get_exp_cycles(), mode_width=op.get_instream_width(1)))
    harness = StreamHarness(duts, sources, tmp_path / "runs")
    seen = set()
    for run in range(3):
        inputs, tokens, want = [], [], []
        for model, op in nodes:
            idt = op.get_input_datatype(0)
            shape = (FRAMES,) + tuple(op.get_normal_input_shape(0))[1:]
            m = draw_tokens(op)
            x = rng.integers(int(idt.min()), int(idt.max()) + 1, shape)
            for f, token in enumerate(m):  # mostly within the mode's own type, as its path delivers
                k, _ = op.token_function(int(token))
                seen.add((op.onnx_node.name, k))
                h = 1 << max(0, op.mode_functions()[k].in_bits - 2)
                if h > 1 and rng.random() < 0.7:
                    x[f] = rng.integers(-h if idt.signed() else 0, h, x[f].shape)
            x.reshape(-1)[:2] = [idt.min(), idt.max()]  # the type's extremes
            y = _python(model, {"x": x, "m": m.reshape(-1, 1)})["y"]
            inputs.append(_pack(x, idt.bitwidth(), op.get_nodeattr("PE")))
            tokens.append([int(v) for v in m])
            want.append(y.astype(np.int64).reshape(-1))
        for stall in (False, True):
            results = harness.run(inputs, tokens, stall=stall, seed=run + 1)
            for (model, op), res, w in zip(nodes, results, want):
                assert res.finished, (op.onnx_node.name, len(res.outputs), res.n_expected)
                odt = op.get_output_datatype()
                got = _unpack(res.outputs, odt.bitwidth(), op.get_nodeattr("PE"), odt.signed())
                np.testing.assert_array_equal(got.reshape(-1), w, err_msg=f"{op.onnx_node.name}, stall={stall}")
            if not stall:  # at full rate: one word per cycle and the token's cycle per frame, plus the pipeline
                for (model, op), res in zip(nodes, results):
                    assert res.cycles <= FRAMES * op.get_exp_cycles() + 4, (op.onnx_node.name, res.cycles)
    return seen


@pytest.mark.rtlsim
def test_modal_activation_rtl_bit_exact(tmp_path, finn_rtlsim):
    """Random nodes in one Verilator model, several runs each (new data and mode sequences, with and without
    stalls): every output word equals the python twin's."""
    rng = np.random.default_rng(13)
    nodes = [random_activation(rng, f"modal_act_{i}") for i in range(8)]

    def tokens(op):
        k = len(op.mode_functions())
        m = rng.integers(0, k, FRAMES)
        m[1:3] = [0, k - 1]  # back-to-back switch
        return m

    seen = _rtl_bit_exact(tmp_path, rng, nodes, tokens)
    ops = {op.onnx_node.name: op for _, op in nodes}
    assert {ops[name].mode_functions()[k].kind for name, k in seen} == {"bypass", "thresholds", "requant"}


@pytest.mark.rtlsim
def test_modal_activation_channel_groups_rtl_bit_exact(tmp_path, finn_rtlsim):
    """Random nodes with channel groups as the test above: random keep bits per frame (at least one group kept),
    base modes switching back to back; every output word equals the python twin's (a dropped group's channels 0,
    the function of the mode and the number of groups kept). The nodes take the RTL's every way: a table in block
    RAM behind a pipeline stage of its own, comparator banks shared by 16 functions, the output's choice by a
    register set with the token, groups neither a multiple nor a divisor of PE."""
    from fracskip.hls.ops.modal_act_rtl import LABEL_MODES

    rng = np.random.default_rng(18)
    nodes = [random_grouped_activation(rng, f"modal_grp_{i}", big=i == 0) for i in range(8)]

    def tokens(op):
        ng = op.n_groups()
        menu = len(op.mode_functions()) // ng
        m = rng.integers(0, menu, FRAMES)
        m[1:3] = [0, menu - 1]  # back-to-back switch
        keep = rng.integers(1, 1 << ng, FRAMES)
        keep[3:5] = [1 << (ng - 1), (1 << ng) - 1]  # the last group alone; all
        return m | keep << 8

    seen = _rtl_bit_exact(tmp_path, rng, nodes, tokens)
    ops = [op for _, op in nodes]
    for op in ops:  # functions of several numbers of groups kept (of up to 3)
        ng = op.n_groups()
        assert len({k % ng for name, k in seen if name == op.onnx_node.name}) >= min(3, ng), op.onnx_node.name
    assert any(op.deep() for op in ops) and not all(op.deep() for op in ops)
    assert max(len(b.modes) for op in ops for b in op.banks()) >= 16
    assert any(len(op.mode_functions()) > LABEL_MODES and len(op.units()[0]) > 1 for op in ops)
    pe_cg = [(op.get_nodeattr("PE"), op.get_nodeattr("channelGroup")) for op in ops]
    assert any(g % p and p % g for p, g in pe_cg) and any(p > g for p, g in pe_cg), pe_cg


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


@pytest.mark.rtlsim
def test_mode_fork_rtl_keep_bits(tmp_path, finn_rtlsim):
    """With channel groups the decision token is [d, keep] (one 32-bit word): an output with KeepOut 1 gets the
    mode byte and the keep bits after it (16 groups: the keep element's sign bit is a group), one with 0 the mode
    byte alone; python twin and RTL agree, skips dropped, with and without stalls."""
    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness
    from qonnx.custom_op.registry import getCustomOp

    rng = np.random.default_rng(4)
    table = [-1, 1, 0]
    d = rng.integers(-1, 4, 40)
    duts, sources, runs = [], [], []
    for i, (groups, keep_out) in enumerate(((10, 1), (16, 1), (3, 0))):
        keep = rng.integers(1, 1 << groups, len(d))
        width = 8 + (groups + 7) // 8 * 8 * keep_out
        model = _node_model("ModeFork_rtl", [("d", (1, 2), "INT16")], [("m", (1, 1), f"UINT{width}")],
                            ModeOf=table, TokenLen=2, Groups=groups, KeepOut=[keep_out])
        op = getCustomOp(model.graph.node[0])
        assert op.verify_node() == [] and op.get_outstream_width() == width and op.get_instream_width() == 32
        tok = np.stack([d, np.where(keep >= 1 << 15, keep - (1 << 16), keep)], 1)  # INT16 elements
        py = _python(model, {"d": tok})["m"].reshape(-1).astype(np.int64)
        dc = np.clip(d, 0, 2)
        mode = np.array([max(table[v], 0) for v in dc])
        np.testing.assert_array_equal(py, mode | (keep << 8) if keep_out else mode)
        path = tmp_path / f"mode_fork{i}.v"
        path.write_text(op.wrapper_verilog(f"mode_fork{i}"))
        sources.append(path)
        want = [int(v) for v, c in zip(py, dc) if table[c] >= 0]
        duts.append(StreamDut(f"mode_fork{i}", 32, width, n_in=len(d), n_out=len(want)))
        runs.append(([int(a) & 0xFFFF | (int(k) << 16) for a, k in zip(d, keep)], want))
    harness = StreamHarness(duts, sources + [op.core_source()], tmp_path / "runs")
    for stall in (False, True):
        res = harness.run([r[0] for r in runs], stall=stall)
        assert [r.outputs for r in res] == [r[1] for r in runs], stall
    bad = _node_model("ModeFork_rtl", [("d", (1, 1), "INT16")], [("m", (1, 1), "UINT16")], ModeOf=table, Groups=4,
                      KeepOut=[1])
    assert "TokenLen" in getCustomOp(bad.graph.node[0]).verify_node()[0]


# ---------------------------------------------------------------------------------------------- the tiny network
@pytest.fixture(scope="module")
def tiny(tiny_export, tmp_path_factory):
    """The tiny network's HDL build (shared, tests/hil.py), its manifest, and a few synthetic test images whose
    decisions (the torch model's, on 64 images) take every path of every gated block, with the golden controller's
    record of them (every core call with its input)."""
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend
    from fracskip.backends.torch_backend import TorchBackend

    build_dir = hil.tiny_build(tiny_export, tmp_path_factory)
    man = Manifest.load(build_dir / "export")
    images, _ = hil.sample_images(64)
    _, choices = TorchBackend(str(man.file(man.data["source_checkpoint"]["file"]))).reference(images)
    pick: list[int] = []
    for g in range(choices.shape[1]):
        for d in range(len(man.bit_menu)):
            if not any(choices[i, g] == d for i in pick):
                pick.append(int(np.flatnonzero(choices[:, g] == d)[0]))
    logits, trace = Controller(man, QONNXBackend(man, progress=False), record=True).run(images[pick])
    np.testing.assert_array_equal(trace.choices, choices[pick])
    return {"build_dir": build_dir, "man": man, "images": images[pick], "logits": logits, "trace": trace}


def _gated_paths(tiny) -> dict[int, dict[int, object]]:
    from fracskip.hls.accelerator import load_core

    man = tiny["man"]
    return {b["index"]: {bits: load_core(tiny["build_dir"], man.path_core(b["index"], bits))
                         for bits in man.bit_menu if bits} for b in man.blocks if b["gated"]}


def _run(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx

    return execute_onnx(model, feeds)[model.graph.output[0].name]


@pytest.mark.xdist_group(__name__)  # with the module fixtures it shares
@pytest.mark.parametrize("menu", [(2, 4, 8), (2, 4)], ids=["menu248", "menu24"])
def test_modal_graph_equals_each_path_core(tiny, menu):
    """Per gated block, one graph for the 2-, 4- and 8-bit paths: MVAU_bitserial for every MVAU, ModalActivation for
    the stages that differ, no per-path node left. A batch of real block inputs (the controller's, whatever path
    they took) and random ones, each frame in a mode of its own (mixed, back to back): FINN's python execution
    equals the path core of the frame's mode, integer for integer; the modes give different results. With 2 and 4
    bits only (the default's menu), relu1 is a threshold table in every mode and conv1's unit computes it: one
    ModalActivation fewer, and no accumulator leaves conv1."""
    from fracskip.hls.accelerator import python_model
    from fracskip.hls.modal import modal_graph
    from qonnx.custom_op.registry import getCustomOp

    calls = tiny["trace"].calls
    rng = np.random.default_rng(5)
    for index, every in _gated_paths(tiny).items():
        paths = {b: every[b] for b in menu}
        bits = sorted(paths)
        graph = modal_graph(paths)
        ops = [n.op_type for n in graph.graph.node]
        n_mvau = sum(n.op_type.startswith("MVAU") for n in paths[max(bits)].graph.node)
        assert ops.count("MVAU_bitserial") == n_mvau and ops.count("ModeFork_rtl") == 1, ops
        assert not {"MVAU_rtl", "MVAU_lut", "Thresholding_rtl", "IntRequant_rtl"} & set(ops), ops
        units = [getCustomOp(n) for n in graph.get_nodes_by_op_type("MVAU_bitserial")]
        with_act = [u for u in units if u.bs_params().has_act]
        if 8 in bits:  # input quantizer, middle activation (a requantizer at 8 bits), add operands
            assert ops.count("ModalActivation_rtl") >= 3 and not with_act, ops
        else:  # conv1 with relu1: 3 and 15 thresholds, 2 and 4 output bits
            assert ops.count("ModalActivation_rtl") >= 2 and len(with_act) == 1, ops
            assert with_act[0].get_nodeattr("outputBits") == [2, 4]
            assert graph.get_tensor_datatype(with_act[0].onnx_node.output[0]).name == "UINT4"
        pm, cores = python_model(graph), {b: python_model(m) for b, m in paths.items()}
        # block inputs as the network makes them (NCHW in the controller, NHWC in the cores), and random ones
        real = np.concatenate([c["in"] for c in calls if c["core"].startswith(f"block{index}_b")])
        shape = graph.get_tensor_shape("block_in")
        frames = [f.transpose(1, 2, 0)[None] for f in real[rng.permutation(len(real))[:7]]]
        frames += [rng.integers(0, 256, shape), (rng.random(shape) ** 4 * 256).astype(np.int64)]
        modes = np.resize(np.arange(len(bits)), len(frames))
        rng.shuffle(modes)
        for f, (x, k) in enumerate(zip(frames, modes)):
            x = x.astype(np.float32)
            got = _run(pm, {"block_in": x, "mode": np.array([[k]], np.float32)})
            core = cores[bits[k]]
            want = _run(core, {core.graph.input[0].name: x})
            np.testing.assert_array_equal(got, want, err_msg=f"block {index}, frame {f}, {bits[k]}-bit mode")
        x = frames[0].astype(np.float32)
        outs = [_run(pm, {"block_in": x, "mode": np.array([[k]], np.float32)}) for k in range(len(bits))]
        assert all(not np.array_equal(outs[i], outs[j]) for i in range(len(bits)) for j in range(i)), \
            "modes must matter"


@pytest.mark.xdist_group(__name__)
def test_modal_graph_folding(tiny):
    """The bit-serial units take a folding of their own by node name (the default network's 8-bit paths are folded
    to PE 1 x SIMD 1, too deep a weight memory for the unit); a folding the unit cannot take is refused by name."""
    from fracskip.hls.accelerator import python_model
    from fracskip.hls.modal import modal_graph
    from qonnx.custom_op.registry import getCustomOp

    _, paths = min(_gated_paths(tiny).items())
    graph = modal_graph(paths, folding={"modal_mvau1": {"PE": 2, "WBP": 2}})
    unit = getCustomOp(graph.get_node_from_name("modal_mvau1"))
    assert (unit.get_nodeattr("PE"), unit.get_nodeattr("WBP")) == (2, 2)
    mw = unit.get_nodeattr("MW")
    x = np.random.default_rng(1).integers(0, 256, graph.get_tensor_shape("block_in")).astype(np.float32)
    core = python_model(paths[8])
    np.testing.assert_array_equal(_run(python_model(graph), {"block_in": x, "mode": np.array([[2]], np.float32)}),
                                  _run(core, {core.graph.input[0].name: x}))
    with pytest.raises(FracskipError, match="modal_mvau1 .*not a multiple of SIMD"):
        modal_graph(paths, folding={"modal_mvau1": {"SIMD": mw + 1}})


@pytest.mark.slow
@pytest.mark.xdist_group(__name__)
def test_modal_activation_estimate_tracks_yosys(tiny, yosys_synth):
    """Each threshold mode compares at its own path's width (a 2-bit path's accumulator is narrower than the
    stream's type, which holds the 8-bit path's), and the LUT estimate the folding budgets with stays near Yosys's
    synthesis of the emitted Verilog over the tiny network's modal activations."""
    from fracskip.hls.modal import modal_graph
    from fracskip.hls.ops.modal_act_rtl import operand_bits
    from qonnx.custom_op.registry import getCustomOp

    est, synth, narrower = 0, 0, 0
    for paths in _gated_paths(tiny).values():
        graph = modal_graph(paths)
        for node in graph.get_nodes_by_op_type("ModalActivation_rtl"):
            op = getCustomOp(node)
            stream = operand_bits(op.get_input_datatype())
            widths = [f.in_bits for f in op.mode_functions() if f.kind == "thresholds"]
            assert all(0 < b <= stream for b in widths), (node.name, widths, stream)
            narrower += any(b < stream for b in widths)
            est += op.lut_estimation()
            synth += yosys_synth(op.verilog("top"), "top").lut
    assert narrower, "no mode compares at a width of its own"
    assert 0.6 * synth <= est <= 1.6 * synth, (est, synth)


@pytest.mark.slow
@pytest.mark.rtlsim
@pytest.mark.xdist_group(__name__)
@pytest.mark.parametrize("menu", [(2, 4, 8), (2, 4)], ids=["menu248", "menu24"])
def test_modal_block_rtl_equals_python(tiny, finn_rtlsim, menu):
    """The last gated block's modal graph as hardware (width converters, FIFOs at the capacity of the sizing run,
    HDL; bit-serial units at 2 weight planes per cycle), stitched and verilated: real block inputs in the modes 2,
    4, 8 and 2 bits back to back (2, 4, 4, 2 with the default's menu, relu1 in conv1's unit) give FINN's python
    execution's integers; the frames take the cycles of the bit-serial units' modes (the pipeline's slowest stage,
    frame by frame), not those of a fixed precision."""
    import json

    from finn.core.onnx_exec import execute_onnx
    from fracskip.hls import accelerator as A
    from fracskip.hls.modal import modal_graph
    from fracskip.hls.rtlsim import RTLSimCore, setup_finn
    from qonnx.custom_op.registry import getCustomOp

    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")
    index, every = max(_gated_paths(tiny).items())
    paths = {b: every[b] for b in menu}
    summary = json.loads((tiny["build_dir"] / "summary.json").read_text())
    hw = A.to_hw(modal_graph(paths, wbp=2), summary["board"]["part"], summary["board"]["clk_ns"])
    real = np.concatenate([c["in"] for c in tiny["trace"].calls if c["core"].startswith(f"block{index}_b")])
    modes = np.array([0, 1, 2, 0] if len(menu) == 3 else [0, 1, 1, 0])
    x = np.resize(real, (len(modes),) + real.shape[1:]).transpose(0, 2, 3, 1).astype(np.float32)
    pm = A.python_model(hw)
    want = np.concatenate([execute_onnx(pm, {"block_in": x[i:i + 1], "mode": np.array([[m]], np.float32)})[
        pm.graph.output[0].name] for i, m in enumerate(modes)])
    units = [getCustomOp(n) for n in hw.graph.node if n.op_type == "MVAU_bitserial"]
    slowest = max(sum(u.get_exp_cycles_per_mode()[m] for m in modes) for u in units)
    with RTLSimCore(hw, cache_dir=finn_rtlsim / "cache", progress=False, sizing_fifos=True,
                    cycle_limit=4 * slowest) as sim:
        res = sim.run([x, modes.reshape(-1, 1).astype(np.float32)], fifo_depths=[s.max_depth + 1 for s in sim.fifos])
    np.testing.assert_array_equal(res.outputs[0].reshape(want.shape), want)
    # measured (block 2 of the tiny network): 1,408,922 cycles against the slowest unit's 1,241,856 for these modes
    assert slowest <= res.cycles <= 1.25 * slowest, (res.cycles, slowest)
    if len(menu) == 2:  # Yosys reads the unit with its activation: its per-PE threshold images reach the sandbox
        from fracskip.hls.synth import hdl

        fused = next(u for u in units if u.bs_params().has_act)
        assert hdl.synthesize_node(hw, fused.onnx_node)["LUT"] > 0

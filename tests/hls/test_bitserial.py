"""The bit-serial runtime-precision MVU: bit-exact against FINN's MVAU + MultiThreshold of each frame's
mode, its cycle model, its FINN op, and its resource model.

The rtlsim test compiles a few Verilator models (each several differently parameterised units; cached by
content hash) and drives many random configurations through each: every run writes new weights,
thresholds, inputs and mode sequences (memory images are read at each simulation start), so one compiled
unit checks many weight/threshold sets and mode sequences, with random stalls and at full rate.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from fracskip.errors import FracskipError
from fracskip.hls.bitserial.core import (
    BitSerialParams,
    Precision,
    mode_inputs,
    pack_inputs,
    reference,
    rtl_sources,
    unpack_outputs,
    wrapper_verilog,
    write_memory_files,
)
from fracskip.hls.lutmvu.core import LutMvuParams, int_range

MODELS = 4  # Verilator builds
DUTS = 6  # units per build
RUNS = 9  # weight/threshold/input/mode sets per build
FRAMES = 5  # frames per run
MIN_CONFIGS = 200
FPGA_PART = "xc7z020clg400-1"


@pytest.fixture(scope="module")
def finn(tmp_path_factory):
    from fracskip.hls.finn_env import setup

    setup(tmp_path_factory.mktemp("finn_build"))
    import fracskip.hls.bitserial.op  # noqa: F401  (registers MVAU_bitserial)
    from finn.core.onnx_exec import execute_onnx
    from qonnx.custom_op.general.multithreshold import multithreshold
    from qonnx.custom_op.registry import getCustomOp

    from fracskip.hls.lutmvu.graphs import mvau_model

    return SimpleNamespace(execute_onnx=execute_onnx, multithreshold=multithreshold, getCustomOp=getCustomOp,
                           mvau_model=mvau_model)


# ---------------------------------------------------------------------------------------------- configurations
def random_unit(rng: np.random.Generator, no_act: bool = False) -> BitSerialParams:
    """A random unit: shape, folding, bit-parallelism, menu (1-3 modes, sometimes b_w != b_a), signedness."""
    n_modes = int(rng.choice([1, 2, 3, 3]))
    fixed = n_modes == 1 and rng.random() < 0.6
    wsigned = bool(rng.random() < 0.8)
    bits = [int(b) for b in rng.choice([2, 4, 8], size=n_modes, replace=n_modes > 3)]
    modes = []
    act = not no_act and rng.random() < 0.5
    for b in bits:
        ab = b if rng.random() < 0.7 else int(rng.choice([2, 3, 4, 8]))
        ob = int(rng.choice([1, 2, 3, 4, ab])) if act else 0
        av = -(1 << (ob - 1)) if act and ob > 1 and rng.random() < 0.3 else 0
        modes.append(Precision(b, ab, ob, av))
    wbp_choices = [w for w in (1, 2, 4) if w <= max(m.wbits for m in modes)]  # 4 on a 2-bit mode: padded planes
    simd, sf = int(rng.integers(1, 13)), int(rng.integers(1, 5))
    pe, nf = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    in_simd = int(rng.choice([d for d in range(1, simd + 1) if simd % d == 0])) if rng.random() < 0.5 else 0
    return BitSerialParams(
        mw=simd * sf, mh=pe * nf, pe=pe, simd=simd, wbp=int(rng.choice(wbp_choices)), modes=tuple(modes),
        weight_signed=wsigned, act_signed=bool(rng.random() < 0.5), n_vectors=int(rng.integers(1, 4)),
        mode_stream=not fixed, ram_style=str(rng.choice(["auto", "block", "distributed"])),
        act_ram_style=str(rng.choice(["distributed", "block"])), in_simd=in_simd)


@dataclass
class RunData:
    weights: list[np.ndarray]
    thresholds: list[np.ndarray] | None
    modes: list[int]
    x: np.ndarray  # (frames, vectors, MW)
    keeps: list[int] | None = None  # per frame, the channel groups kept (units with channel groups)


def random_data(rng: np.random.Generator, p: BitSerialParams, frames: int, wide: bool = False) -> RunData:
    """``wide``: a frame in three carries values of the stream's widest field, which a narrower mode reads by
    its low bits (the RTL, ``reference`` and the op's twin alike; ``finn_golden`` takes them as the mode does)."""
    kind = rng.choice(["uniform", "uniform", "extreme"])

    def draw(lo, hi, size):
        return rng.choice([lo, hi], size=size) if kind == "extreme" else rng.integers(lo, hi, endpoint=True, size=size)

    weights = [draw(*int_range(m.wbits, p.weight_signed), (p.mw, p.mh)) for m in p.modes]
    thresholds = None
    if p.has_act:
        thresholds = []
        for m, w in zip(p.modes, weights):
            al, ah = int_range(m.abits, p.act_signed)
            lo = np.minimum(w * al, w * ah).sum(axis=0)
            hi = np.maximum(w * al, w * ah).sum(axis=0)
            n = int(rng.integers(1, 1 << m.out_bits))  # fewer thresholds than the output range: allowed
            t = rng.integers(lo[:, None] - 2, hi[:, None] + 3, size=(p.mh, n)).astype(np.float64)
            t += 0.5 * rng.integers(0, 2, size=t.shape)  # non-integer thresholds round up
            if rng.random() < 0.3:
                t = t[:1]  # one row for every channel, as FINN allows
            thresholds.append(np.sort(t, axis=1))
    n = len(p.modes)
    # every mode, back-to-back frames of different modes whenever the menu has more than one
    modes = [int(v) for v in rng.permutation(np.resize(np.arange(n), frames))]
    if n > 1:
        for f in range(1, frames):
            if modes[f] == modes[f - 1]:
                modes[f] = (modes[f] + 1) % n
    widest = max(m.abits for m in p.modes)
    x = np.stack([draw(*int_range(widest if wide and rng.random() < 0.3 else p.modes[k].abits, p.act_signed),
                       (p.n_vectors, p.mw)) for k in modes])
    return RunData(weights, thresholds, modes, x)


def finn_golden(finn, p: BitSerialParams, data: RunData) -> np.ndarray:
    """FINN's python execution of an MVAU node (noActivation) with the frame's mode's weights, then
    FINN's MultiThreshold with that mode's thresholds plus its ActVal."""
    out = []
    for f, k in enumerate(data.modes):
        m = p.modes[k]
        lp = LutMvuParams(p.mw, p.mh, p.pe, p.simd, m.wbits, p.weight_signed, m.abits, p.act_signed,
                          acc_bits=p.acc_bits)
        model = finn.mvau_model(lp, data.weights[k], (1, p.n_vectors), op_type="MVAU")
        xm = mode_inputs(p, k, data.x[f])  # what the mode reads of the stream's field
        acc = finn.execute_onnx(model, {"inp": xm[None].astype(np.float32)})["outp"][0]
        assert np.array_equal(acc, xm @ data.weights[k])  # FINN's MVAU is the matmul
        if p.has_act:
            acc = finn.multithreshold(acc, data.thresholds[k]) + m.act_val  # (vectors, MH): channels on axis 1
        out.append(acc)
    return np.stack(out).astype(np.int64)


def _describe(i: int, p: BitSerialParams, data: RunData) -> str:
    menu = ",".join(f"w{m.wbits}a{m.abits}" + (f"o{m.out_bits}{m.act_val:+d}" if m.out_bits else "") for m in p.modes)
    return (f"DUT {i}: MW={p.mw} MH={p.mh} PE={p.pe} SIMD={p.simd} WBP={p.wbp} menu={menu} "
            f"ws={int(p.weight_signed)} as={int(p.act_signed)} vec={p.n_vectors} stream={int(p.mode_stream)} "
            f"ram={p.resolved_ram_style} abuf={p.act_ram_style} in_simd={p.in_simd} modes={data.modes}")


def build_model(units: list[BitSerialParams], workdir, frames: int = FRAMES):
    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness

    duts, sources = [], []
    for i, p in enumerate(units):
        wrapper = workdir / f"bs_dut{i}.v"
        wrapper.write_text(wrapper_verilog(p, f"bs_dut{i}", f"w{i}.dat", f"t{i}"))
        sources.append(wrapper)
        duts.append(StreamDut(f"bs_dut{i}", (p.in_width + 7) // 8 * 8, (p.out_width + 7) // 8 * 8,
                              n_in=frames * p.n_vectors * p.sf * p.in_words, n_modes=frames if p.mode_stream else 0,
                              n_out=frames * p.n_vectors * p.nf, exp_cycles=frames * max(
                                  p.frame_cycles(k) for k in range(len(p.modes))), mode_width=p.mode_token_bits))
    return StreamHarness(duts, sources + rtl_sources(), workdir / "runs")


def simulate(harness, units, datas, stall: bool, seed: int):
    run_dir = harness.run_dir()
    for i, (p, d) in enumerate(zip(units, datas)):
        write_memory_files(p, d.weights, d.thresholds, run_dir / f"w{i}.dat", run_dir / f"t{i}")
    runs = harness.run([pack_inputs(p, d.x) for p, d in zip(units, datas)],
                       [_tokens(p, d) for p, d in zip(units, datas)], run_dir=run_dir, stall=stall, seed=seed)
    return run_dir, runs


def _tokens(p: BitSerialParams, d: RunData) -> list[int]:
    if not p.mode_stream:
        return []
    return [p.mode_token(k, None if d.keeps is None else d.keeps[f]) for f, k in enumerate(d.modes)]


def _judge(p: BitSerialParams, d: RunData, run, golden: np.ndarray, desc: str, stall: bool,
           ratios: list[float]) -> list[str]:
    """What is wrong with a run: missing words, values that differ, or (at full rate) cycles off the model by more
    than 2 % (each full-rate ratio is appended to ``ratios``)."""
    if not run.finished:
        return [f"{desc}: {len(run.outputs)} of {run.n_expected} words"]
    got = unpack_outputs(p, run.outputs, golden.shape)
    if not np.array_equal(got, golden):
        return [f"{desc}: {int((got != golden).sum())} of {golden.size} values differ"]
    if stall:
        return []
    model = p.cycles(d.modes, d.keeps)
    ratios.append(run.cycles / model)
    # 2 %, or one cycle on the smallest units (a few dozen cycles a run: the mode token's handshake can take one more)
    return [f"{desc}: {run.cycles} cycles, model {model}"] if abs(run.cycles - model) > max(0.02 * model, 1) else []


# ---------------------------------------------------------------------------------------------- RTL vs FINN
@pytest.mark.rtlsim
@pytest.mark.slow
def test_bit_exact_against_finn_mvau_per_mode(finn, tmp_path):
    """>= 200 random configurations (unit x weights/thresholds/inputs/mode sequence), RTL == FINN."""
    rng = np.random.default_rng(12)
    checked, ratios = 0, []
    for b in range(MODELS):
        units = [random_unit(rng, no_act=(i == 0)) for i in range(DUTS)]
        work = tmp_path / f"model{b}"
        work.mkdir()
        harness = build_model(units, work)
        for r in range(RUNS):
            stall = r % 2 == 1
            datas = [random_data(rng, p, FRAMES, wide=True) for p in units]
            _, runs = simulate(harness, units, datas, stall=stall, seed=r + 1)
            bad = []
            for i, (p, d, run) in enumerate(zip(units, datas, runs)):
                golden = finn_golden(finn, p, d)
                assert np.array_equal(golden, reference(p, d.x, d.modes, d.weights, d.thresholds))
                bad += _judge(p, d, run, golden, _describe(i, p, d), stall, ratios)
                checked += run.finished
            assert not bad, f"model {b} run {r} ({'stalls' if stall else 'full rate'}):\n" + "\n".join(bad)

        if b == 0:  # negative control: one flipped weight bit in DUT 0 (no activation) must be caught
            datas = [random_data(rng, p, FRAMES, wide=True) for p in units]
            for p, d in zip(units, datas):
                d.modes = [0] * FRAMES
                d.x = np.full_like(d.x, int_range(p.modes[0].abits, p.act_signed)[1])
            run_dir = harness.run_dir()
            for i, (p, d) in enumerate(zip(units, datas)):
                write_memory_files(p, d.weights, d.thresholds, run_dir / f"w{i}.dat", run_dir / f"t{i}")
            lines = (run_dir / "w0.dat").read_text().splitlines()
            lines[0] = f"{int(lines[0], 16) ^ 1:0{len(lines[0])}x}"  # mode 0, row 0, MSB plane, column 0
            (run_dir / "w0.dat").write_text("\n".join(lines) + "\n")
            runs = harness.run([pack_inputs(p, d.x) for p, d in zip(units, datas)],
                               [d.modes if p.mode_stream else [] for p, d in zip(units, datas)], run_dir=run_dir)
            differs = [not np.array_equal(unpack_outputs(p, r.outputs, (FRAMES, p.n_vectors, p.mh)),
                                          finn_golden(finn, p, d)) for p, d, r in zip(units, datas, runs)]
            assert differs[0] and not any(differs[1:]), differs
    print(f"\nMVAU_bitserial: {checked} random configurations ({MODELS} Verilator builds x {DUTS} units x "
          f"{RUNS} weight/threshold/input/mode sets, {FRAMES} frames each, every mode, back-to-back mode "
          f"changes) bit-exact with FINN's MVAU + MultiThreshold; full-rate cycles / model: "
          f"min {min(ratios):.4f} max {max(ratios):.4f} over {len(ratios)} runs")
    assert checked >= MIN_CONFIGS


BENCH_UNITS = (  # the bench's conv3x3 C16 layer (28x28 vectors per frame): its folding, one with thresholds, and
    # one gathering 2-element input words (a sliding window at SIMD 2 feeding it): its loader the slower in 2 bits
    BitSerialParams(144, 16, 8, 48, 2, (Precision(2, 2), Precision(4, 4), Precision(8, 8)), n_vectors=784),
    BitSerialParams(144, 16, 4, 48, 2, (Precision(2, 2, 2), Precision(4, 4, 4), Precision(8, 8, 8)), n_vectors=784),
    BitSerialParams(144, 16, 8, 48, 2, (Precision(2, 2), Precision(4, 4), Precision(8, 8)), n_vectors=784, in_simd=2),
)


@pytest.mark.rtlsim
@pytest.mark.slow
def test_cycles_per_frame_match_the_model(finn, tmp_path):
    """Frames of one mode at a time, and mixed, through the bench layer: Verilator cycles within 2 % of
    the cycle model in every mode (and the outputs bit-exact)."""
    rng = np.random.default_rng(3)
    frames = 2
    harness = build_model(list(BENCH_UNITS), tmp_path, frames=frames)
    lines = []
    for modes in ([0, 0], [1, 1], [2, 2], [2, 0]):
        datas = []
        for p in BENCH_UNITS:
            d = random_data(rng, p, frames)
            d.modes = list(modes)
            d.x = np.stack([rng.integers(*int_range(p.modes[k].abits, p.act_signed), endpoint=True,
                                         size=(p.n_vectors, p.mw)) for k in modes])
            datas.append(d)
        _, runs = simulate(harness, list(BENCH_UNITS), datas, stall=False, seed=1)
        for p, d, run in zip(BENCH_UNITS, datas, runs):
            assert run.finished
            assert np.array_equal(unpack_outputs(p, run.outputs, d.x.shape[:2] + (p.mh,)),
                                  reference(p, d.x, d.modes, d.weights, d.thresholds))
            ratio = run.cycles / p.cycles(d.modes)
            lines.append(f"PE{p.pe} SIMD{p.simd} in {p.word_simd} WBP{p.wbp} act={int(p.has_act)} "
                         f"modes {modes}: {run.cycles} cycles / {frames} frames, model {p.cycles(d.modes)}, "
                         f"ratio {ratio:.4f}")
            assert abs(ratio - 1) <= 0.02, lines[-1]
    print("\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------- channel groups
def random_grouped_unit(rng: np.random.Generator, skip: str) -> BitSerialParams:
    """A random unit with channel groups (LC-Net's channel skipping): output channel groups (a multiple of
    PE), or the input channel groups of a sliding window's vector (a multiple of SIMD, 1-9 kernel positions)."""
    base = random_unit(rng, no_act=skip == "out")
    menu = base.modes if base.mode_stream else base.modes * 2
    if skip == "out":
        pe = int(rng.integers(1, 4))
        group = pe * int(rng.integers(1, 3))
        mh = group * int(rng.integers(2, 5))
        return BitSerialParams(base.mw, mh, pe, base.simd, base.wbp, menu, base.weight_signed, base.act_signed,
                               base.n_vectors, ram_style=base.ram_style, act_ram_style=base.act_ram_style,
                               in_simd=base.in_simd, channel_skip="out", channel_group=group)
    simd = int(rng.integers(1, 5))
    group = simd * int(rng.integers(1, 3))
    channels = group * int(rng.integers(2, 5))
    positions = int(rng.choice([1, 2, 9]))
    return BitSerialParams(channels * positions, base.mh, base.pe, simd, base.wbp, menu, base.weight_signed,
                           base.act_signed, base.n_vectors, ram_style=base.ram_style, act_ram_style=base.act_ram_style,
                           in_simd=1 if base.in_simd else 0, channel_skip="in", channel_group=group,
                           in_channels=channels)


def random_keeps(rng: np.random.Generator, p: BitSerialParams, frames: int) -> list[int]:
    """Per frame, the groups kept: at least one, all of them in some frames."""
    full = (1 << p.n_groups) - 1
    return [full if rng.random() < 0.2 else int(rng.integers(1, full + 1)) for _ in range(frames)]


def grouped_golden(p: BitSerialParams, d: RunData) -> np.ndarray:
    """Dropped output channels are zeros, dropped input channels read as zeros (the model's semantics), through
    the frame's mode's weights and thresholds."""
    out = []
    for f, k in enumerate(d.modes):
        on = np.repeat([(d.keeps[f] >> g) & 1 for g in range(p.n_groups)], p.channel_group)
        w = np.asarray(d.weights[k], np.int64)
        if p.channel_skip == "in":
            w = w * np.resize(on, p.mw)[:, None]  # the vector is kernel positions x channels
        acc = d.x[f] @ w * (on if p.channel_skip == "out" else 1)
        if p.has_act:
            acc = (acc[..., None] >= np.asarray(d.thresholds[k])).sum(-1) + p.modes[k].act_val
        out.append(acc)
    return np.stack(out)


@pytest.mark.rtlsim
@pytest.mark.slow
def test_channel_groups_bit_exact_and_cycles_follow_the_kept_groups(finn, tmp_path):
    """Units with channel groups (output or input channels), each frame its own mode and keep bits in its
    token: the RTL gives the dropped channels as zeros (output groups) or reads them as zeros (input groups),
    bit for bit, with random stalls and at full rate; at full rate its cycles are the model's within 2 %, which
    counts only the kept groups' dot products. A layer of the default's size: cycles fall with the groups kept."""
    rng = np.random.default_rng(16)
    checked, ratios = 0, []
    for b, skip in enumerate(("out", "in", "in")):
        units = [random_grouped_unit(rng, skip) for _ in range(DUTS)]
        work = tmp_path / f"model{b}"
        work.mkdir()
        harness = build_model(units, work)
        for r in range(RUNS // 2 + 1):
            stall = r % 2 == 1
            datas = [random_data(rng, p, FRAMES) for p in units]
            for p, d in zip(units, datas):
                d.keeps = random_keeps(rng, p, FRAMES)
            _, runs = simulate(harness, units, datas, stall=stall, seed=r + 1)
            bad = []
            for i, (p, d, run) in enumerate(zip(units, datas, runs)):
                golden = grouped_golden(p, d)
                assert np.array_equal(golden, reference(p, d.x, d.modes, d.weights, d.thresholds, d.keeps))
                desc = f"{_describe(i, p, d)} {skip} group={p.channel_group} keeps={[hex(k) for k in d.keeps]}"
                bad += _judge(p, d, run, golden, desc, stall, ratios)
                checked += run.finished
            assert not bad, f"model {b} run {r} ({'stalls' if stall else 'full rate'}):\n" + "\n".join(bad)
    print(f"\nchannel groups: {checked} random configurations bit-exact; full-rate cycles / model: "
          f"min {min(ratios):.4f} max {max(ratios):.4f} over {len(ratios)} runs")
    assert checked >= 80

    # the default's conv2 of a 16-channel block (3x3 window, groups of 4 channels), and its conv1 by output
    # channels: cycles per frame against the groups kept
    menu = (Precision(2, 2), Precision(4, 4), Precision(8, 8))
    layers = (BitSerialParams(144, 16, 4, 4, 2, menu, n_vectors=49, channel_skip="in", channel_group=4,
                              in_channels=16),
              BitSerialParams(144, 16, 4, 4, 2, menu, n_vectors=49, channel_skip="out", channel_group=4))
    harness = build_model(list(layers), tmp_path, frames=4)
    lines = []
    for keeps in ([0xF] * 4, [0x1] * 4, [0x3, 0x7, 0x1, 0xF]):
        datas = []
        for p in layers:
            d = random_data(rng, p, 4)
            d.modes, d.keeps = [1, 1, 1, 1], keeps
            d.x = rng.integers(0, 16, size=(4, p.n_vectors, p.mw))
            datas.append(d)
        _, runs = simulate(harness, list(layers), datas, stall=False, seed=1)
        for p, d, run in zip(layers, datas, runs):
            assert np.array_equal(unpack_outputs(p, run.outputs, (4, p.n_vectors, p.mh)), grouped_golden(p, d))
            ratio = run.cycles / p.cycles(d.modes, d.keeps)
            lines.append(f"{p.channel_skip:>3} keeps {[hex(k) for k in keeps]}: {run.cycles} cycles / 4 frames, "
                         f"model {p.cycles(d.modes, d.keeps)} (all kept: {p.cycles(d.modes)}), ratio {ratio:.4f}")
            assert abs(ratio - 1) <= 0.02, lines[-1]
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------- FINN op
def test_execute_node_is_finns_mvau_and_thresholds(finn):
    """The op's python execution (the RTL's twin) against FINN's MVAU + MultiThreshold, many configs."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        p = random_unit(rng)
        d = random_data(rng, p, 3, wide=True)
        from fracskip.hls.bitserial.op import bitserial_model

        model = bitserial_model(p, d.weights, d.thresholds, n_vectors=(1, p.n_vectors))
        golden = finn_golden(finn, p, d)
        for f, k in enumerate(d.modes):
            inputs = {"inp": d.x[f][None].astype(np.float32)}
            if p.mode_stream:
                inputs["mode"] = np.array([[k]], dtype=np.float32)
            elif k != 0:
                continue
            y = finn.execute_onnx(model, inputs)["outp"]
            assert np.array_equal(y[0], golden[f])


def test_execute_node_is_exact_beyond_float32(finn):
    """Accumulators past 2^24 (MW=576 at 8 bits reaches 2^25, a shape of the fitted model): the python twin counts
    thresholds on the exact integer, as the RTL does, not on a float32 sum, which is off by a few there."""
    from fracskip.hls.bitserial.op import bitserial_model

    rng = np.random.default_rng(11)
    p = BitSerialParams(mw=576, mh=16, pe=1, simd=8, wbp=1, modes=(Precision(8, 8, 1),), mode_stream=False)
    w = rng.integers(120, 128, (p.mw, p.mh))
    x = rng.integers(240, 256, (1, 1, p.mw))
    acc = (x[0] @ w)[0]
    assert acc.min() > 1 << 24
    # even thresholds (exact in float32) just below or at the accumulator (reached), and just above it (not)
    t = np.where(np.arange(p.mh) % 2, (acc | 1) + 1, acc & ~1)[:, None].astype(np.float64)
    f32 = (x[0].astype(np.float32) @ w.astype(np.float32))[0]  # FINN's MVAU: a float32 matmul
    assert ((f32 >= t[:, 0]) != (acc >= t[:, 0])).any()  # which would count some of them wrong
    y = finn.execute_onnx(bitserial_model(p, [w], [t]), {"inp": x[0].astype(np.float32)})["outp"]
    np.testing.assert_array_equal(y, reference(p, x, [0], [w], [t])[0])
    np.testing.assert_array_equal(y.reshape(-1), 1 - np.arange(p.mh) % 2)


def test_execute_node_channel_groups(finn):
    """MVAU_bitserial with channelSkip/channelGroup/inChannels: the token stream widens to the mode byte and
    the keep bits, and the python execution is the channel groups' semantics (grouped_golden), both kinds."""
    from fracskip.hls.bitserial.op import bitserial_model

    rng = np.random.default_rng(9)
    for i in range(24):
        p = random_grouped_unit(rng, ("out", "in")[i % 2])
        d = random_data(rng, p, 4)
        d.keeps = random_keeps(rng, p, 4)
        model = bitserial_model(p, d.weights, d.thresholds, n_vectors=(1, p.n_vectors))
        op = finn.getCustomOp(model.graph.node[0])
        assert op.bs_params() == p and op.get_instream_width(1) == p.mode_token_bits > 8
        golden = grouped_golden(p, d)
        for f, token in enumerate(_tokens(p, d)):
            y = finn.execute_onnx(model, {"inp": d.x[f][None].astype(np.float32),
                                          "mode": np.array([[token]], dtype=np.float32)})["outp"]
            assert np.array_equal(y[0], golden[f]), (i, f)


@pytest.mark.rtlsim
@pytest.mark.slow
def test_op_channel_groups_rtlsim(finn, tmp_path):
    """The op's rtlsim exec mode with channel groups: its generated wrapper takes the wide token (mode byte, keep
    bits) and gives the python execution's outputs, frames of different keeps back to back."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.transformation.general import GiveUniqueNodeNames

    from fracskip.hls.bitserial.op import bitserial_model

    menu = (Precision(2, 2), Precision(4, 4))
    for p in (BitSerialParams(36, 8, 2, 2, 1, menu, n_vectors=4, channel_skip="out", channel_group=2),
              BitSerialParams(36, 8, 2, 2, 1, menu, n_vectors=4, channel_skip="in", channel_group=2,
                              in_channels=4)):
        d = random_data(np.random.default_rng(2), p, 3)  # its inputs fit each frame's mode
        d.keeps = [(1 << p.n_groups) - 1, 1, 2]
        model = bitserial_model(p, d.weights, d.thresholds, n_vectors=(1, 2, 2)).transform(GiveUniqueNodeNames())
        model = model.transform(PrepareIP(FPGA_PART, 10.0))
        op = finn.getCustomOp(model.graph.node[0])
        x = d.x.reshape(3, 2, 2, p.mw).astype(np.float32)
        ctx = {"inp": x, "mode": np.array([[t] for t in _tokens(p, d)], np.float32)}
        op.execute_node(ctx, model.graph)
        want = ctx["outp"]
        op.set_nodeattr("exec_mode", "rtlsim")
        op.execute_node(ctx, model.graph)
        assert np.array_equal(want.reshape(3, 4, p.mh), grouped_golden(p, d)), p.channel_skip
        assert np.array_equal(ctx["outp"], want), p.channel_skip


@pytest.mark.rtlsim
@pytest.mark.slow
def test_op_shapes_streams_and_codegen(finn, tmp_path):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim  # noqa: F401
    from qonnx.transformation.general import GiveUniqueNodeNames

    from fracskip.hls.bitserial.op import bitserial_model

    p = BitSerialParams(24, 8, 2, 6, 2, (Precision(2, 2, 2), Precision(4, 4, 4, -8), Precision(8, 8, 8)),
                        n_vectors=9, act_signed=True)
    rng = np.random.default_rng(1)
    d = random_data(rng, p, 1)
    model = bitserial_model(p, d.weights, d.thresholds, n_vectors=(1, 3, 3)).transform(GiveUniqueNodeNames())
    op = finn.getCustomOp(model.graph.node[0])
    assert op.verify_node() == []
    intf = op.get_verilog_top_module_intf_names()
    assert intf["s_axis"] == [("in0_V", 48), ("in1_V", 8)] and intf["m_axis"] == [("out0_V", 24)]  # 2 x INT9
    assert op.get_folded_input_shape(0) == (1, 3, 3, 4, 6) and op.get_folded_output_shape() == (1, 3, 3, 4, 2)
    assert op.get_exp_cycles_per_mode() == [p.frame_cycles(k) for k in range(3)]
    assert op.get_exp_cycles_per_mode() == [9 * 4 * max(2 * 1 * 4, 2), 9 * 4 * 4 * 2 * 4, 9 * 4 * 8 * 4 * 4]
    assert op.get_output_datatype().name == "INT9"  # -8..255 over the menu
    model = model.transform(PrepareIP(FPGA_PART, 10.0))
    op = finn.getCustomOp(model.graph.node[0])
    files = op.get_rtl_file_list(abspath=True)
    assert all(__import__("os").path.exists(f) for f in files + [str(f) for f in op.memory_files()])
    assert any("create_bd_cell" in c for c in op.code_generation_ipi())
    # rtlsim exec mode: the generated RTL in Verilator, against the python twin, two frames of different modes
    x = np.concatenate([d.x[0][None]] * 2).reshape(2, 3, 3, p.mw).astype(np.float32)
    expected = []
    for k in (2, 1):
        expected.append(finn.execute_onnx(model, {"inp": x[:1], "mode": np.array([[k]], np.float32)})["outp"])
    op.set_nodeattr("exec_mode", "rtlsim")
    ctx = {"inp": x, "mode": np.array([[2], [1]], np.float32)}
    op.execute_node(ctx, model.graph)
    assert np.array_equal(ctx["outp"], np.concatenate(expected))


def test_fixed_precision_unit_and_refusals(finn):
    from fracskip.hls.bitserial.op import bitserial_model

    p = BitSerialParams(16, 4, 1, 8, 2, (Precision(4, 4),), mode_stream=False)
    rng = np.random.default_rng(2)
    d = random_data(rng, p, 1)
    model = bitserial_model(p, d.weights, n_vectors=(1, 1))
    op = finn.getCustomOp(model.graph.node[0])
    assert [n for n, _ in op.get_verilog_top_module_intf_names()["s_axis"]] == ["in0_V"]
    y = finn.execute_onnx(model, {"inp": d.x[0][None].astype(np.float32)})["outp"]
    assert np.array_equal(y[0], finn_golden(finn, p, d)[0])
    with pytest.raises(FracskipError, match="WBP=4 exceeds the widest mode's"):
        BitSerialParams(16, 4, 1, 8, 4, (Precision(2, 2),))
    with pytest.raises(FracskipError, match="without mode stream"):
        BitSerialParams(16, 4, 1, 8, 1, (Precision(2, 2), Precision(4, 4)), mode_stream=False)
    with pytest.raises(FracskipError, match="either every mode"):
        BitSerialParams(16, 4, 1, 8, 1, (Precision(2, 2, 2), Precision(4, 4)))


def test_cycle_model_follows_bitops():
    """Cycles per frame scale with b_a * ceil(b_w / WBP); thresholds bound only when wider than compute."""
    p = BitSerialParams(144, 16, 8, 48, 2, (Precision(2, 2), Precision(4, 4), Precision(8, 8)), n_vectors=784)
    c = [p.frame_cycles(k) for k in range(3)]
    assert c == [784 * 2 * 2 * 1 * 3, 784 * 2 * 4 * 2 * 3, 784 * 2 * 8 * 4 * 3]
    assert c[1] == 4 * c[0] and c[2] == 4 * c[1]
    q = BitSerialParams(8, 8, 8, 8, 1, (Precision(2, 2, 8),))
    assert q.frame_cycles(0) == 8  # one row fold, 255 thresholds: 8 search steps > 4 compute cycles
    # WBP 4: a 2-bit mode's weights padded to one group of 4 planes (as fast as at WBP 2), the others halved
    w = BitSerialParams(144, 16, 8, 48, 4, p.modes, n_vectors=784)
    assert [w.stored_wbits(k) for k in range(3)] == [4, 4, 8]
    assert [w.frame_cycles(k) for k in range(3)] == [c[0], c[1] // 2, c[2] // 2]
    assert BitSerialParams(16, 4, 1, 8, 2, (Precision(3, 3),)).stored_wbits(0) == 4


# ---------------------------------------------------------------------------------------------- resources
def test_fitted_model_error():
    """The stored fit: LUT within 10 % mean on its points and on held-out configurations; block RAM by
    rule within a block or 15 % of Yosys."""
    from fracskip.hls.bitserial.estimate import bram18_count, estimate_resources
    from fracskip.hls.bitserial.fit import params_of
    from fracskip.hls.bitserial.fitted import MODEL

    for points, limit in ((MODEL["points"], 0.10), (MODEL["held_out"], 0.10)):
        errs = []
        for pt in points:
            p = params_of(pt)
            errs.append(abs(estimate_resources(p).lut - pt["lut"]) / pt["lut"])
            assert abs(bram18_count(p) - pt["bram18"]) <= max(1, 0.15 * pt["bram18"]), (pt, bram18_count(p))
            assert pt["dsp"] == 0
        assert np.mean(errs) <= limit, (np.mean(errs), errs)
    assert len(MODEL["held_out"]) >= 3


POPCOUNT_LANES = (1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 18, 32, 36, 48, 64, 72, 144)


@pytest.mark.rtlsim
def test_popcount_tree_equals_countones():
    """The popcount synthesis builds (bsmvu_popcount_tree; Verilator simulates $countones in its place) held to
    $countones in Verilator, lane counts 1 to 144, on random planes of every density and on all ones: its own
    -Wall lint clean, no mismatch, every lane count checked."""
    from fracskip.hls.bitserial.core import rtl_dir
    from fracskip.hls.rtl import ADDTREE, shared_sources
    from fracskip.hls.rtlsim import find_verilator
    from fracskip.hls.rtlsim.harness import compile_testbench

    tool = find_verilator()
    tree = [rtl_dir() / "bsmvu_popcount_tree.v", *shared_sources(ADDTREE)]
    for n in (1, 7, 144):
        proc = subprocess.run([str(tool.binary), "--lint-only", "-Wall", "-Wno-DECLFILENAME", "--top-module",
                               "bsmvu_popcount_tree", *map(str, tree), f"-GN={n}", f"-GOW={n.bit_length()}"],
                              env=tool.env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    cycles = 4000
    duts = "\n".join(f"""
    wire [{n - 1}:0] a{n} = (cyc % 5 == 0) ? {{{n}{{1'b1}}}} : wide[{n - 1}:0] | ((cyc % 5 == 1) ? wide2[{n - 1}:0] : 0);
    wire [{n - 1}:0] b{n} = (cyc % 5 == 0) ? {{{n}{{1'b1}}}} : wide2[{n - 1}:0] & ((cyc % 5 == 2) ? wide[{n - 1}:0] : ~0);
    wire [{n.bit_length() - 1}:0] y{n};
    bsmvu_popcount_tree #(.N({n}), .OW({n.bit_length()})) u{n} (.a(a{n}), .b(b{n}), .y(y{n}));
    always @(posedge clk) begin
        checked[{i}] <= 1'b1;
        if (y{n} != {n.bit_length()}'($countones(a{n} & b{n}))) begin
            bad = bad + 1;
            $display("MISMATCH N={n} a=%h b=%h y=%0d", a{n}, b{n}, y{n});
        end
    end""" for i, n in enumerate(POPCOUNT_LANES))
    tb = f"""module popcount_tb(input clk);
    integer cyc = 0, bad = 0;
    reg [159:0] wide, wide2;
    reg [{len(POPCOUNT_LANES) - 1}:0] checked = 0;
    {duts}
    always @(posedge clk) begin
        cyc <= cyc + 1;
        wide <= {{$urandom, $urandom, $urandom, $urandom, $urandom}};
        wide2 <= {{$urandom, $urandom, $urandom, $urandom, $urandom}};
        if (cyc == {cycles}) begin
            $display("DONE bad=%0d checked=%b", bad, checked);
            $finish;
        end
    end
endmodule
"""
    binary = compile_testbench("popcount_tb", tb, tree, jobs=1)
    out = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120).stdout
    assert f"DONE bad=0 checked={'1' * len(POPCOUNT_LANES)}" in out, out[-3000:]


@pytest.mark.rtlsim
def test_rtl_lints_clean():
    """Verilator -Wall lint of the unit over corner parameterisations, channel groups of both kinds included."""
    from fracskip.hls.rtlsim import find_verilator

    tool = find_verilator()
    exe, env = tool.binary, tool.env()
    for p in (BitSerialParams(1, 1, 1, 1, 1, (Precision(2, 2),), mode_stream=False),
              BitSerialParams(21, 6, 3, 7, 2, (Precision(2, 2, 2), Precision(4, 3, 4, -8)), act_signed=True),
              BitSerialParams(144, 16, 8, 48, 2, (Precision(2, 2), Precision(4, 4), Precision(8, 8)), n_vectors=784),
              BitSerialParams(144, 16, 2, 48, 2, (Precision(2, 2), Precision(8, 8)), act_ram_style="block"),
              BitSerialParams(144, 16, 2, 48, 2, (Precision(2, 2), Precision(8, 8)), in_simd=8),
              BitSerialParams(144, 16, 4, 4, 2, (Precision(2, 2), Precision(4, 4)), channel_skip="in",
                              channel_group=4, in_channels=16, in_simd=2),
              BitSerialParams(144, 16, 4, 4, 2, (Precision(2, 2), Precision(4, 4)), channel_skip="in",
                              channel_group=4, in_channels=16),
              BitSerialParams(144, 16, 4, 4, 2, (Precision(2, 2), Precision(4, 4)), channel_skip="out",
                              channel_group=8)):
        pars = {k: v for k, v in p.verilog_parameters("w.dat", "t").items() if not isinstance(v, str) or "'h" in v}
        cmd = [str(exe), "--lint-only", "-Wall", "-Wno-DECLFILENAME", "-Wno-UNUSEDPARAM", "--top-module", "bsmvu",
               *map(str, rtl_sources()), *(f"-G{k}={v}" for k, v in pars.items())]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.rtlsim
def test_cached_simulator_reads_the_memory_images_of_its_own_folder(finn, rerun_without_the_first_build):
    """The Verilator cache is keyed by content: the same unit generated again in another folder reuses the binary,
    which must read the weights and thresholds copied beside it, not those of the build that first compiled it
    (they had gone in CI, whose cache outlives its temporary folders, and the model was refused at start)."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.transformation.general import GiveUniqueNodeNames

    from fracskip.hls.bitserial.op import bitserial_model

    p = BitSerialParams(16, 8, 2, 4, 2, (Precision(2, 2), Precision(4, 4)), n_vectors=4)
    d = random_data(np.random.default_rng(4), p, 4)
    first, again = (bitserial_model(p, d.weights, d.thresholds, n_vectors=(1, 2, 2)).transform(GiveUniqueNodeNames())
                    .transform(PrepareIP(FPGA_PART, 10.0)) for _ in range(2))
    inputs = [d.x.reshape(4, 2, 2, p.mw).astype(np.float32), np.array([[k] for k in _tokens(p, d)], np.float32)]
    want = reference(p, d.x, d.modes, d.weights, d.thresholds).reshape(4, 2, 2, p.mh)
    for outputs in rerun_without_the_first_build(first, again, inputs):
        np.testing.assert_array_equal(outputs[0], want)

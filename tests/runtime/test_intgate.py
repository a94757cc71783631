"""The integer gate against its specification (docs/integer-gate.md), written here a second time, independently:
plain Python integers, one image and one unit at a time, straight from the page. The numpy reference, the torch
model and the exported manifest must all agree with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fracskip.runtime.intgate import IntGateParams, IntGates
from fracskip.runtime.manifest import Manifest
from fracskip.training import data as D
from fracskip.training.checkpoint import load_model
from fracskip.training.model import DFSNet, ModelConfig


def rsr(x: int, s: int) -> int:
    return (x + (1 << (s - 1))) >> s if s > 0 else x << -s


def clip(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


def spec_tables() -> tuple[list[int], list[int]]:
    sig = [clip(round(256 / (1 + math.exp(-z / 16))), 0, 255) for z in range(-128, 128)]
    tanh = [clip(round(128 * math.tanh(z / 16)), -127, 127) for z in range(-128, 128)]
    return sig, tanh


def spec_gate(p: IntGateParams, g: int, X: np.ndarray, h: list[int], c: list[int]):
    """One image: X (C, H, W) codes -> (logits, decision, h', c'), as docs/integer-gate.md says."""
    SIG, TANH = [int(v) for v in p.sigmoid], [int(v) for v in p.tanh]
    H = p.hidden
    C, hw = X.shape[0], X.shape[1] * X.shape[2]
    assert p.pool_mult[g] == math.floor(2**20 / hw + 0.5)
    S = [int(X[ch].astype(np.int64).sum()) for ch in range(C)]
    pooled = [min(255, rsr(s * p.pool_mult[g], 20)) for s in S]
    we, ex = p.embed_w[g], p.embed_exp[g]
    e = [clip(rsr(sum(int(we[j, ch]) * pooled[ch] for ch in range(C)) + int(p.embed_b[g][j]), ex + 5 - p.x_exp),
              -128, 127) for j in range(H)]
    F = max(p.w_ih_exp + p.x_exp, p.w_hh_exp + 7)
    z = []
    for r in range(4 * H):
        a = (sum(int(p.w_ih[r, j]) * e[j] for j in range(H)) << (F - p.w_ih_exp - p.x_exp)) \
            + (sum(int(p.w_hh[r, j]) * h[j] for j in range(H)) << (F - p.w_hh_exp - 7)) + int(p.lstm_b[r])
        z.append(clip(rsr(a, F - 4), -128, 127))
    h2, c2 = [], []
    for j in range(H):
        i, f, u, o = SIG[z[j] + 128], SIG[z[H + j] + 128], TANH[z[2 * H + j] + 128], SIG[z[3 * H + j] + 128]
        cj = clip(rsr(f * c[j], 8) + rsr(i * u, 7), -32768, 32767)
        t = TANH[clip(rsr(cj, 4), -128, 127) + 128]
        c2.append(cj)
        h2.append(clip(rsr(o * t, 8), -128, 127))
    y = [sum(int(p.proj_w[k, j]) * h2[j] for j in range(H)) + int(p.proj_b[k]) for k in range(p.proj_w.shape[0])]
    d = max(range(len(y)), key=lambda k: (y[k], -k))  # the first maximum
    return y, d, h2, c2


def random_params(rng: np.random.Generator, channels: list[int], hw: list[int], H: int = 10, K: int = 4) -> IntGateParams:
    sig, tanh = spec_tables()
    w = lambda *s: rng.integers(-127, 128, size=s)  # noqa: E731
    return IntGateParams(
        hidden=H, x_exp=int(rng.integers(3, 8)), pool_mult=[math.floor(2**20 / a + 0.5) for a in hw],
        embed_w=[w(H, c) for c in channels], embed_exp=[int(rng.integers(6, 11)) for _ in channels],
        embed_b=[rng.integers(-5000, 5000, size=H) for _ in channels],
        w_ih=w(4 * H, H), w_ih_exp=int(rng.integers(6, 10)), w_hh=w(4 * H, H), w_hh_exp=int(rng.integers(6, 10)),
        lstm_b=rng.integers(-40000, 40000, size=4 * H), proj_w=w(K, H), proj_exp=int(rng.integers(6, 10)),
        proj_b=rng.integers(-9000, 9000, size=K), sigmoid=np.array(sig), tanh=np.array(tanh))


def _chain(p: IntGateParams, maps: list[np.ndarray]):
    """Every gate of a network on a batch, by the numpy reference and by the spec, state passed along."""
    G = IntGates(p)
    st = G.init_state(maps[0].shape[0])
    ref_state = [([0] * p.hidden, [0] * p.hidden) for _ in range(maps[0].shape[0])]
    for g, X in enumerate(maps):
        logits, d, st = G.step(g, X, st)
        for n in range(X.shape[0]):
            y, dn, h, c = spec_gate(p, g, X[n], *ref_state[n])
            ref_state[n] = (h, c)
            assert logits[n].tolist() == y and d[n] == dn
            assert st[0][n].tolist() == h and st[1][n].tolist() == c


def test_tables_are_the_specifications():
    sig, tanh = spec_tables()
    from fracskip.runtime.intgate import sigmoid_table, tanh_table

    assert sigmoid_table().tolist() == sig and tanh_table().tolist() == tanh


def test_numpy_gate_equals_the_specification_on_random_parameters():
    rng = np.random.default_rng(0)
    channels, sizes = [16, 32, 64], [8, 4, 4]
    for trial in range(6):
        p = random_params(rng, channels, [s * s for s in sizes])
        maps = [rng.integers(0, 256, size=(5, c, s, s)) for c, s in zip(channels, sizes)]
        if trial == 0:  # every logit equal: the tie rule decides
            p.proj_w[:] = 0
            p.proj_b[:] = 7
        elif trial == 1:  # the two dearest entries tie above the others
            p.proj_w[:] = 0
            p.proj_b[:] = [1, 2, 5, 5]
        _chain(p, maps)


def test_the_lstm_sum_that_int64_cannot_hold_is_refused_and_its_bound_is_exact():
    """Exponents within -24..24 and alignments of at most 24 bits still let the LSTM's sum, shifted left to z when
    F < Z_EXP, pass int64 for a larger hidden size: numpy wrapped it silently (z = -128 where the RTL, whose
    accumulator is as wide as it needs, saturated at 127). Such a gate is refused; at the bound the numpy gate still
    equals the specification (Python's integers) on the extreme inputs."""
    from fracskip.errors import FracskipError

    rng = np.random.default_rng(1)
    # F = -17 - 24 + ... : the reviewer's case, H = 17, z taken from the sum by a left shift of 21 bits
    for H, refused in ((17, True), (2, False)):
        p = random_params(rng, [4], [4], H=H, K=2)
        p.x_exp, p.w_ih_exp, p.w_hh_exp, p.embed_exp = -17, -24, -24, [-24]
        if refused:
            with pytest.raises(FracskipError, match=rf"LSTM's accumulator needs \d+ bits with hidden size {H}"):
                p.check()
            continue
        p.check()
        p.w_ih[:], p.w_hh[:], p.lstm_b[:] = -127, -127, 0
        p.embed_w[0][:], p.embed_b[0][:] = 0, -2**31  # e = -128 everywhere: the largest product sums
        _chain(p, [np.zeros((1, 4, 2, 2), dtype=np.int64)])


@torch.no_grad()
def test_torch_gate_computes_the_integers_of_the_numpy_gate():
    torch.manual_seed(0)
    cfg = ModelConfig(depth=14, image_size=28)
    net = DFSNet(cfg).eval()
    for m in net.gate.modules():  # weights of a trained gate's size, so that nothing saturates everywhere
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.LSTMCell)):
            for prm in m.parameters():
                prm.data.uniform_(-0.6, 0.6)
    gen = torch.Generator().manual_seed(1)
    shapes = [(16, 28), (16, 28), (32, 14), (32, 14), (64, 7)]
    maps = [torch.randint(0, 256, (32, c, s, s), generator=gen).double() * 2.0**-5 for c, s in shapes]
    net.gate.calibrate(maps)
    p = net.gate.integer_params()
    G = IntGates(p)
    st_np, st_t = G.init_state(32), net.gate.init_state(32, maps[0])
    decisions = []
    for g, x in enumerate(maps):
        logits_np, d_np, st_np = G.step(g, (x * 32).round().long().numpy(), st_np)
        logits_t, st_t = net.gate(g, x, st_t)
        assert np.array_equal((logits_t * 2.0 ** (p.proj_exp + 7)).numpy(), logits_np)
        assert np.array_equal((st_t[0] * 2.0**7).numpy(), st_np[0]) and np.array_equal((st_t[1] * 2.0**8).numpy(), st_np[1])
        assert np.array_equal(logits_t.argmax(1).numpy(), d_np)
        decisions.append(d_np)
    assert len(np.unique(np.concatenate(decisions))) > 1  # not a constant gate: the comparison means something
    _chain(p, [(x * 32).round().long().numpy()[:4] for x in maps])


@pytest.mark.parametrize("where, value", [
    (("hidden",), 3.7), (("hidden",), "10"), (("exponents", "lstm_input"), True), (("embed", 0, "pool_mult"), "inf"),
    (("lstm", "w_hh_exp"), "nan"), (("proj", "weight_exp"), [8]), (("lstm", "bias", 0), "inf")])
def test_manifest_gate_numbers_that_are_not_integers_are_refused(where, value):
    """The manifest's gate holds integers: 3.7, "10", true, Infinity and NaN are refused with the field's name (3.7
    was truncated to 3, "10" taken as 10, Infinity a traceback), not read as some integer; 10.0 is 10."""
    import json

    from fracskip.errors import FracskipError

    d = json.loads(json.dumps(random_params(np.random.default_rng(1), [16, 32], [64, 16]).to_json()))
    d["hidden"] = 10.0
    assert IntGateParams.from_json(d).hidden == 10
    *path, last = where
    node = d
    for k in path:
        node = node[k]
    node[last] = float(value) if value in ("inf", "nan") else value
    with pytest.raises(FracskipError, match=rf"integer gate is malformed .*{where[-1] if isinstance(where[-1], str) else where[-2]}"):
        IntGateParams.from_json(d)


def test_exported_gate_is_the_checkpoints_integer_gate(tiny_run, tiny_export):
    """The manifest's integers are the checkpoint's float weights rounded as the page says, and its tables the
    page's tables."""
    m = Manifest.load(tiny_export)
    p = IntGateParams.from_json(m.data["gates"])
    net, _ = load_model(tiny_run / "model.pt")
    sig, tanh = spec_tables()
    assert p.sigmoid.tolist() == sig and p.tanh.tolist() == tanh
    for name, w, q, e in [("proj", net.gate.proj.weight, p.proj_w, p.proj_exp),
                          ("w_ih", net.gate.lstm.weight_ih, p.w_ih, p.w_ih_exp),
                          ("w_hh", net.gate.lstm.weight_hh, p.w_hh, p.w_hh_exp)]:
        w = w.detach().double().numpy()
        assert e == math.floor(math.log2(127 / np.abs(w).max())), name
        assert np.array_equal(q, np.clip(np.round(w * 2.0**e), -127, 127)), name
    F = max(p.w_ih_exp + p.x_exp, p.w_hh_exp + 7)
    b = (net.gate.lstm.bias_ih + net.gate.lstm.bias_hh).detach().double().numpy()
    assert np.array_equal(p.lstm_b, np.round(b * 2.0**F))
    cfg = net.cfg
    size, sizes = cfg.image_size, []
    for _, _, s in cfg.block_specs():
        size = (size + s - 1) // s
        sizes.append(size * size)
    hw = sizes[:-1]
    assert p.pool_mult == [math.floor(2**20 / a + 0.5) for a in hw]


def test_one_batch_takes_every_path_through_the_golden_controller(tiny_export):
    """Every menu entry, skip included, at every gate, within one batch; the golden controller routes it exactly
    as the torch model does, core outputs integer for integer."""
    from fracskip.runtime.controller import Controller
    from fracskip.backends.qonnx_backend import QONNXBackend
    from fracskip.backends.torch_backend import TorchBackend

    from routing import ROUTED_IMAGES

    m = Manifest.load(tiny_export)
    images = D.load("synthetic", "test", limit=ROUTED_IMAGES).images.numpy()
    torch_be = TorchBackend(str(m.file("source_checkpoint.pt")), exact=True)
    ref_logits, ref_choices = torch_be.reference(images)
    for g in range(ref_choices.shape[1]):
        assert set(ref_choices[:, g].tolist()) == set(range(len(m.bit_menu))), f"gate {g} does not use every path"
    logits, trace = Controller(m, QONNXBackend(m), record=True).run(images)
    assert np.array_equal(trace.choices, ref_choices)
    used = {c["core"] for c in trace.calls}
    assert used >= {p["core"] for b in m.gated_blocks for p in b["paths"].values() if p.get("core")}
    for call in trace.calls:  # every core invocation, integer for integer, against the torch modules
        if call["core"] != "head":
            assert np.array_equal(call["out"], torch_be.run(call["core"], call["in"])), call["core"]
    # the head ends in float logits; a freshly trained tiny net can put a pooled value exactly on a rounding tie of
    # the head's 8-bit input quantizer, where Brevitas rounds half to even and FINN's thresholds round up
    close = np.abs(logits - ref_logits).max(axis=1) <= 1e-4
    assert close.mean() >= 0.95, np.nonzero(~close)


def test_a_channel_group_is_kept_on_a_positive_logit_only():
    """``keep_groups``, as LC-Net's ``decide``: a group whose integer logit is exactly 0 is dropped; with none
    positive, the first of the largest is kept."""
    from fracskip.runtime.intgate import keep_groups

    w, b = np.array([[1], [0], [-1]]), np.array([0, 0, 0])
    assert keep_groups(w, b, np.array([[2], [0], [-2]])).tolist() == [0b001, 0b001, 0b100]

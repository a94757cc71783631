"""The integer DFS gate: the reference of its specification (docs/integer-gate.md), in numpy.

Every value is an integer with a power-of-two scale (its exponent ``f``: real value = integer * 2**-f), every
rescaling is ``rshift_round`` (add half, arithmetic shift right: round half up), every narrowing saturates, and
sigmoid and tanh are 256-entry tables indexed by an int8 code. The torch model trains exactly this arithmetic
(``fracskip.training.intgate``) and the RTL gate computes it (``hls/ops/gate_rtl.py``); all three must produce
the same integers. Standard library and numpy only: it runs on a PYNQ board's ARM core as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FracskipError

SPEC = "fracskip-integer-gate/1"
POOL_SHIFT = 20  # pooled mean code = (sum of codes * round(2**20 / (H*W)) + 2**19) >> 20
IFACE_EXP = 5  # block-interface codes: uint8, real value = code * 2**-5
Z_EXP = 4  # LSTM pre-activations: int8 (the tables' index), real value = z * 2**-4
SIG_EXP = 8  # sigmoid outputs: 0..255, real value = s * 2**-8
TANH_EXP = 7  # tanh outputs: -127..127, real value = t * 2**-7
C_EXP = 8  # cell state: int16, real value = c * 2**-8
H_EXP = 7  # hidden state: int8, real value = h * 2**-7
INT8 = (-128, 127)
INT16 = (-(1 << 15), (1 << 15) - 1)
WEIGHT = (-127, 127)  # narrow-range int8 weights
INT32 = (-(1 << 31), (1 << 31) - 1)
MAX_GROUPS = 16  # channel groups per block: their keep bits are one 16-bit token word
MAX_EXP = 24  # |weight and input exponents|: larger shifts could take the LSTM's accumulations past int64


def keep_groups(w: np.ndarray, b: np.ndarray, h: np.ndarray) -> np.ndarray:
    """LC-Net's channel decision from the hidden state ``h`` (N, H) int8: the keep bits (N,) of the groups whose
    integer logit h @ w.T + b is > 0; when none is, the group of the largest logit (the first on ties)."""
    logits = np.asarray(h, np.int64) @ np.asarray(w, np.int64).T + np.asarray(b, np.int64)
    keep = logits > 0
    none = ~keep.any(axis=1)
    keep[none, logits[none].argmax(axis=1)] = True
    return pack_keep(keep)


def pack_keep(keep: np.ndarray) -> np.ndarray:
    """Per-group keep flags (..., G) -> keep bits (...,), group g at bit g."""
    keep = np.asarray(keep).astype(np.int64)
    return (keep << np.arange(keep.shape[-1])).sum(axis=-1)


def split_decisions(words: np.ndarray, per_block: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An accelerator's decision output (N, gated blocks * per_block) -> (menu indices, keep bits or None): [d] or,
    with channel heads, [d, keep] per gated block. The keep word is INT16: a 16th group's bit comes back as the
    sign."""
    words = np.asarray(words).astype(np.int64)
    return words[:, ::per_block], (words[:, 1::2] & 0xFFFF if per_block == 2 else None)


def keep_mask(bits, groups: int, group: int) -> np.ndarray:
    """Keep bits (...,) -> 0/1 per channel (..., groups * group): the ``group`` channels of group g follow bit g."""
    return ((np.asarray(bits, np.int64)[..., None] >> np.arange(groups)) & 1).repeat(group, axis=-1)


def rshift_round(x: np.ndarray, s: int) -> np.ndarray:
    """x * 2**-s rounded half up (toward +inf); for s <= 0 an exact left shift."""
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    return (x + (1 << (s - 1))) >> s


def sat(x: np.ndarray, lo_hi: tuple[int, int]) -> np.ndarray:
    return np.clip(x, lo_hi[0], lo_hi[1])


def _codes() -> np.ndarray:
    return np.arange(-128, 128, dtype=np.float64) * 2.0**-Z_EXP


def sigmoid_table() -> np.ndarray:
    """SIG[z + 128] = clip(round(256 * sigmoid(z / 16)), 0, 255) for z in -128..127."""
    return np.clip(np.round(256.0 / (1.0 + np.exp(-_codes()))), 0, 255).astype(np.int64)


def tanh_table() -> np.ndarray:
    """TANH[z + 128] = clip(round(128 * tanh(z / 16)), -127, 127) for z in -128..127."""
    return np.clip(np.round(128.0 * np.tanh(_codes())), -127, 127).astype(np.int64)


def pool_multiplier(hw: int) -> int:
    """round(2**20 / (H*W)), ties up: the fixed-point reciprocal of the pooling area."""
    return int((2 * (1 << POOL_SHIFT) + hw) // (2 * hw))


def lstm_exponent(w_ih_exp: int, w_hh_exp: int, x_exp: int) -> int:
    """Exponent of the LSTM accumulator: the finer of its two products' exponents (the other is shifted left)."""
    return max(w_ih_exp + x_exp, w_hh_exp + H_EXP)


@dataclass
class IntGateParams:
    """Every integer of the gates of one network. Shapes: H hidden, K menu entries, C_g channels of gate g."""

    hidden: int
    x_exp: int  # exponent of the LSTM input (the embeddings), shared by every gate
    pool_mult: list[int]  # per gate
    embed_w: list[np.ndarray]  # per gate (H, C_g) int8
    embed_exp: list[int]  # per gate: exponent of embed_w; its bias has exponent embed_exp + IFACE_EXP
    embed_b: list[np.ndarray]  # per gate (H,) int32
    w_ih: np.ndarray  # (4H, H) int8, rows in PyTorch's LSTMCell order: input, forget, cell (g), output
    w_ih_exp: int
    w_hh: np.ndarray  # (4H, H) int8
    w_hh_exp: int
    lstm_b: np.ndarray  # (4H,) int32 at exponent lstm_exponent(...)
    proj_w: np.ndarray  # (K, H) int8
    proj_exp: int  # its bias has exponent proj_exp + H_EXP
    proj_b: np.ndarray  # (K,) int32
    sigmoid: np.ndarray  # (256,) table
    tanh: np.ndarray  # (256,) table
    # LC-Net's channel head (docs/channel-skipping.md), per gate: (G_g, H) int8 weights and (G_g,) int32 biases at
    # their exponent + H_EXP, one logit per channel group of the gate's block; None without channel skipping
    chan_w: list[np.ndarray] | None = None
    chan_b: list[np.ndarray] | None = None

    @property
    def n_gates(self) -> int:
        return len(self.embed_w)

    @property
    def lstm_exp(self) -> int:
        return lstm_exponent(self.w_ih_exp, self.w_hh_exp, self.x_exp)

    # -- manifest form (JSON) ----------------------------------------------------------------------
    def to_json(self) -> dict:
        L = lambda a: np.asarray(a, dtype=np.int64).tolist()  # noqa: E731
        return {
            "spec": SPEC, "hidden": self.hidden, "n_gates": self.n_gates, "n_choices": int(self.proj_w.shape[0]),
            "exponents": {"interface": IFACE_EXP, "lstm_input": self.x_exp, "lstm_acc": self.lstm_exp,
                          "z": Z_EXP, "sigmoid": SIG_EXP, "tanh": TANH_EXP, "c": C_EXP, "h": H_EXP},
            "pool_shift": POOL_SHIFT,
            "embed": [{"pool_mult": int(m), "weight": L(w), "weight_exp": int(e), "bias": L(b)}
                      for m, w, e, b in zip(self.pool_mult, self.embed_w, self.embed_exp, self.embed_b)],
            "lstm": {"w_ih": L(self.w_ih), "w_ih_exp": self.w_ih_exp, "w_hh": L(self.w_hh),
                     "w_hh_exp": self.w_hh_exp, "bias": L(self.lstm_b)},
            "proj": {"weight": L(self.proj_w), "weight_exp": self.proj_exp, "bias": L(self.proj_b)},
            "tables": {"sigmoid": L(self.sigmoid), "tanh": L(self.tanh)},
            **({"channel_head": [{"weight": L(w), "bias": L(b)} for w, b in zip(self.chan_w, self.chan_b)]}
               if self.chan_w is not None else {}),
        }

    @classmethod
    def from_json(cls, d: dict) -> "IntGateParams":
        # integers, as the specification has them: 1.7, "4", true, Infinity and NaN are refused, not truncated or
        # parsed (3.0 is 3)
        def whole(x: np.ndarray) -> bool:
            return x.dtype.kind in "iu" or (x.dtype.kind == "f" and bool(np.isfinite(x).all())
                                            and np.array_equal(x, np.floor(x)))

        def A(name: str, a) -> np.ndarray:
            x = np.asarray(a)
            if not whole(x):
                raise ValueError(f"{name}: expected integers, found {x.dtype} values such as {x.ravel()[:3].tolist()}")
            return x.astype(np.int64)

        def I(name: str, v) -> int:  # noqa: E743
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer)) or not whole(np.asarray(float(v))):
                raise ValueError(f"{name}: expected an integer, found {v!r}")
            return int(v)

        try:
            if d["spec"] != SPEC:
                raise FracskipError(f"gate spec {d['spec']!r} is not {SPEC!r}: re-export with this fracskip")
            emb, lstm, proj = d["embed"], d["lstm"], d["proj"]
            p = cls(hidden=I("hidden", d["hidden"]), x_exp=I("exponents.lstm_input", d["exponents"]["lstm_input"]),
                    pool_mult=[I(f"embed[{g}].pool_mult", e["pool_mult"]) for g, e in enumerate(emb)],
                    embed_w=[A(f"embed[{g}].weight", e["weight"]) for g, e in enumerate(emb)],
                    embed_exp=[I(f"embed[{g}].weight_exp", e["weight_exp"]) for g, e in enumerate(emb)],
                    embed_b=[A(f"embed[{g}].bias", e["bias"]) for g, e in enumerate(emb)],
                    w_ih=A("lstm.w_ih", lstm["w_ih"]), w_ih_exp=I("lstm.w_ih_exp", lstm["w_ih_exp"]),
                    w_hh=A("lstm.w_hh", lstm["w_hh"]), w_hh_exp=I("lstm.w_hh_exp", lstm["w_hh_exp"]),
                    lstm_b=A("lstm.bias", lstm["bias"]), proj_w=A("proj.weight", proj["weight"]),
                    proj_exp=I("proj.weight_exp", proj["weight_exp"]), proj_b=A("proj.bias", proj["bias"]),
                    sigmoid=A("tables.sigmoid", d["tables"]["sigmoid"]), tanh=A("tables.tanh", d["tables"]["tanh"]))
            if "channel_head" in d:
                p.chan_w = [A(f"channel_head[{g}].weight", e["weight"]) for g, e in enumerate(d["channel_head"])]
                p.chan_b = [A(f"channel_head[{g}].bias", e["bias"]) for g, e in enumerate(d["channel_head"])]
        except (KeyError, TypeError, ValueError) as e:
            raise FracskipError(f"the manifest's integer gate is malformed ({type(e).__name__}: {e}); re-export it") from e
        p.check()
        return p

    def check(self) -> None:
        """Shapes, ranges and exponents of the specification; a manifest that breaks them is refused."""
        H = self.hidden

        def within(a: np.ndarray, rng: tuple[int, int]) -> bool:
            return a.size > 0 and rng[0] <= a.min() and a.max() <= rng[1]

        bad = [] if H >= 1 else [f"hidden size {H}"]
        for name, a, shape, rng in [("w_ih", self.w_ih, (4 * H, H), WEIGHT), ("w_hh", self.w_hh, (4 * H, H), WEIGHT),
                                    ("lstm bias", self.lstm_b, (4 * H,), INT32),
                                    ("proj weight", self.proj_w, (self.proj_w.shape[0], H), WEIGHT),
                                    ("sigmoid table", self.sigmoid, (256,), (0, 255)),
                                    ("tanh table", self.tanh, (256,), (-127, 127))]:
            if a.shape != shape or not within(a, rng):
                bad.append(f"{name}: shape {a.shape}, expected {shape} within {rng}")
        for g, (w, b) in enumerate(zip(self.embed_w, self.embed_b)):
            if w.ndim != 2 or w.shape[0] != H or b.shape != (H,) or not within(w, WEIGHT) or not within(b, INT32):
                bad.append(f"embed {g}: weight {w.shape}, bias {b.shape} (int8 weights, int32 biases)")
        if self.proj_b.shape != (self.proj_w.shape[0],) or not within(self.proj_b, INT32):
            bad.append(f"proj bias: shape {self.proj_b.shape}, int32 expected")
        # exponents (floor(log2(127 / max|w|)) of trained weights: negative for weights beyond 127) whose shifts
        # keep every intermediate within int64
        exps = {"lstm_input": self.x_exp, "w_ih": self.w_ih_exp, "w_hh": self.w_hh_exp, "proj": self.proj_exp,
                **{f"embed {g}": e for g, e in enumerate(self.embed_exp)}}
        bad += [f"{name} exponent {e} is outside -{MAX_EXP}..{MAX_EXP}" for name, e in exps.items()
                if not -MAX_EXP <= e <= MAX_EXP]
        F = self.lstm_exp  # the left shifts that align terms: at most MAX_EXP bits
        shifts = {"w_ih alignment": F - self.w_ih_exp - self.x_exp, "w_hh alignment": F - self.w_hh_exp - H_EXP,
                  **{f"embed {g} rounding": self.x_exp - e - IFACE_EXP for g, e in enumerate(self.embed_exp)}}
        bad += [f"{name} shifts left by {n} bits, more than {MAX_EXP}" for name, n in shifts.items() if n > MAX_EXP]
        # the LSTM's sum (two int8 x int8 products over H, each aligned, and an int32 bias) and its left shift to z
        # when F < Z_EXP: within int64 for every input (the RTL's accumulator is as wide as it needs)
        term = (H * 128 * 127).bit_length() + max(0, shifts["w_ih alignment"], shifts["w_hh alignment"])
        acc_bits = max(term + 1, 32) + 1 + max(0, Z_EXP - F)
        if acc_bits > 63:
            bad.append(f"the LSTM's accumulator needs {acc_bits} bits with hidden size {H} and exponent {F}: more "
                       "than int64 holds")
        bad += [f"pool_mult {m} of gate {g} is outside 1..2^{POOL_SHIFT}"  # its feature map's: Manifest's check
                for g, m in enumerate(self.pool_mult) if not 1 <= m <= 1 << POOL_SHIFT]
        if not (len(self.pool_mult) == len(self.embed_w) == len(self.embed_exp) == len(self.embed_b)):
            bad.append("per-gate lists differ in length")
        if (self.chan_w is None) != (self.chan_b is None):
            bad.append("channel head: weights and biases come together")
        elif self.chan_w is not None:
            if not len(self.chan_w) == len(self.chan_b) == len(self.embed_w):
                bad.append("channel head: one per gate")
            for g, (w, b) in enumerate(zip(self.chan_w, self.chan_b)):
                if w.ndim != 2 or w.shape[1] != H or not 1 <= w.shape[0] <= MAX_GROUPS or b.shape != (w.shape[0],) \
                        or w.min() < WEIGHT[0] or w.max() > WEIGHT[1] or b.min() < INT32[0] or b.max() > INT32[1]:
                    bad.append(f"channel head {g}: weight {w.shape}, bias {b.shape} (1..{MAX_GROUPS} groups of H "
                               "int8 weights, int32 biases)")
        if bad:
            raise FracskipError("integer gate parameters break the specification: " + "; ".join(bad))


class IntGates:
    """The gates of one network, run on integer block-interface codes. ``step`` is one gate evaluation."""

    def __init__(self, params: IntGateParams):
        params.check()
        self.p = params

    @property
    def hidden(self) -> int:
        return self.p.hidden

    def init_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((n, self.p.hidden), dtype=np.int64)
        return z, z.copy()

    def keep(self, g: int, h: np.ndarray) -> np.ndarray:
        """Gate ``g``'s channel decision (``keep_groups``) from the hidden state ``step`` returned."""
        if self.p.chan_w is None:
            raise FracskipError("these gates have no channel head (a DFS checkpoint skips no channels)")
        return keep_groups(self.p.chan_w[g], self.p.chan_b[g], h)

    def step(self, g: int, codes: np.ndarray, state: tuple[np.ndarray, np.ndarray], trace: dict | None = None):
        """codes: (N, C, H, W) interface integers -> (logits (N, K) int64, decisions (N,), new state).

        ``trace`` (a dict), when given, receives every intermediate integer (for the RTL's tests)."""
        p = self.p
        codes = np.asarray(codes)
        if codes.ndim != 4 or codes.shape[1] != p.embed_w[g].shape[1]:
            raise FracskipError(f"gate {g} expects (N, {p.embed_w[g].shape[1]}, H, W) codes, got {codes.shape}")
        s = codes.astype(np.int64).sum(axis=(2, 3))  # (N, C)
        pooled = np.minimum(rshift_round(s * p.pool_mult[g], POOL_SHIFT), 255)
        acc_e = pooled @ p.embed_w[g].T + p.embed_b[g]
        e = sat(rshift_round(acc_e, p.embed_exp[g] + IFACE_EXP - p.x_exp), INT8)
        h, c = state
        F = p.lstm_exp
        acc = ((e @ p.w_ih.T) << (F - p.w_ih_exp - p.x_exp)) + ((h @ p.w_hh.T) << (F - p.w_hh_exp - H_EXP)) + p.lstm_b
        z = sat(rshift_round(acc, F - Z_EXP), INT8)
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        i, f, o = p.sigmoid[zi + 128], p.sigmoid[zf + 128], p.sigmoid[zo + 128]
        gg = p.tanh[zg + 128]
        c = sat(rshift_round(f * c, SIG_EXP) + rshift_round(i * gg, SIG_EXP + TANH_EXP - C_EXP), INT16)
        tc = p.tanh[sat(rshift_round(c, C_EXP - Z_EXP), INT8) + 128]
        h = sat(rshift_round(o * tc, SIG_EXP + TANH_EXP - H_EXP), INT8)
        logits = h @ p.proj_w.T + p.proj_b
        decision = logits.argmax(axis=1)  # ties: the lowest index (numpy's argmax returns the first maximum)
        if trace is not None:
            trace.update(sums=s, pooled=pooled, acc_e=acc_e, e=e, acc_z=acc, z=z, c=c, h=h, logits=logits)
        return logits, decision, (h, c)

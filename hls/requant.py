"""Threshold tables that are an affine requantizer become an IntRequant layer (``fracskip.hls.ops.requant_rtl``).

A BatchNorm folded into a b-bit quantizer reaches FINN as a table of N = 2^b - 1 thresholds per channel,
T_k = ceil(t0_c + k * d_c) on the integer accumulator. FINN stores them (~20 bits x 255 x channels per
layer) in LUTRAM or BRAM; with 8-bit outputs these tables are most of a core's LUTs. The same function is

    out = clip((acc * M_c + B_c) >> S, 0, N) + ActVal        (">>": arithmetic shift, i.e. floor division)

one multiply-add per element, with integers M_c >= 0, B_c per channel and one shift S per layer.
``fit_requant`` finds M, B, S for a table and ``requant_is_exact`` proves the result equal to the table on
every value of the input type; a layer is converted only with that proof.

    model = model.transform(ThresholdsToRequant())       # or, in a build: step_fracskip_requant_outputs
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_datatypes import InferDataTypes

from . import ops  # noqa: F401  registers IntRequant / IntRequant_rtl

log = logging.getLogger(__name__)

THRESHOLDING = {"Thresholding": "IntRequant", "Thresholding_rtl": "IntRequant_rtl",
                "Thresholding_hls": "IntRequant_rtl"}
# Tables with more than 15 thresholds (5+ output bits; here the 8-bit ones): 20-80 LUT per channel in FINN's
# estimate, ~72k LUT of the default network on the xc7z020, against ~1-2 DSP48 and ~30-60 LUT per PE here.
# A 4-bit table is ~3 LUT per channel (180 LUT for 64 channels of INT14 at PE 1): it would save ~120 LUT for
# a DSP per PE; a 2-bit one saves nothing.
MIN_STEPS = 16
# M: reproducing all N ceilings of t0 + k*d takes a slope accurate to about 1/(N^2 d) relative, so M grows
# with the accumulator's step d; the default network's 8-bit tables need 11-27 bits (1-2 DSP48s per PE).
MAX_MUL_BITS = 40
INT64_BITS = 62  # |acc * M + B| and |v * 2^S| stay below 2^62: the fit and the proof compute in int64
EXHAUSTIVE = 1 << 16  # input types with at most this many values are checked value by value


@dataclass(frozen=True)
class Requant:
    """out = clip((acc * mul[c] + bias[c]) >> shift, lo, hi) on channel c (ActVal folded into bias, lo, hi)."""

    mul: np.ndarray  # int64 (C,), >= 0
    bias: np.ndarray  # int64 (C,)
    shift: int
    lo: int
    hi: int

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        """Apply to integer values whose last axis is the channel."""
        acc = np.asarray(acc, dtype=np.int64)
        return np.clip((acc * self.mul + self.bias) >> self.shift, self.lo, self.hi)


def threshold_count(thresholds: np.ndarray, acc: np.ndarray, act_val: int = 0) -> np.ndarray:
    """FINN's MultiThreshold on integer values: act_val + #{k : acc >= T[c, k]}, channels on the last axis of
    ``acc`` (C, ...) -> rows of ``thresholds``; returns shape (C, len(acc[c]))."""
    return np.stack([np.searchsorted(np.sort(row), a, side="right") for row, a in zip(thresholds, acc)]) + act_val


def _integer_table(thresholds: np.ndarray, idt) -> tuple[np.ndarray, int, int]:
    """The table as integer thresholds clipped to [min, max + 1] of ``idt`` (acc >= t <=> acc >= ceil(t);
    a threshold at or below min is always reached, one above max never), rows sorted (the count is
    order-free), and the input range."""
    lo, hi = int(idt.min()), int(idt.max())
    t = np.clip(np.ceil(np.asarray(thresholds, dtype=np.float64)), lo, hi + 1).astype(np.int64)
    return np.sort(t, axis=1), lo, hi


def _constraints(t: np.ndarray, lo: int, hi: int):
    """Where the count changes, as constraints on q(acc) = (acc * M + B) >> S (before the clip):
    lower points a = T_k <= hi need q(a) >= k + 1; upper points c = T_k - 1 >= lo need q(c) <= k.
    q is monotone (M >= 0), so these make clip(q, 0, N) equal to the count everywhere in [lo, hi]:
    between consecutive boundaries the count is constant and q is pinned from both ends.
    Returns (a, v, c, w1) as float arrays (C, N) with NaN where a point is outside the range; v = k + 1 and
    w1 = k + 1 (the upper constraint is q(c) < w1)."""
    k1 = np.broadcast_to(np.arange(1, t.shape[1] + 1, dtype=np.float64), t.shape)
    a = np.where(t <= hi, t, np.nan)
    c = np.where(t - 1 >= lo, t - 1, np.nan)
    return a, k1, c, k1


def _slope_bounds(a, v, c, w1, chunk: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel, the open interval of real slopes mu = M / 2^S for which some line mu * acc + beta passes
    on or above every lower point (a, v) and strictly below every upper point (c, w1): the limit of the
    integer problem as S grows. From each pair (lower i, upper j): mu * (c_j - a_i) < w1_j - v_i.
    Returns (lo, hi, ok); ok is False where no such line exists (the table is not affine)."""
    n_ch = a.shape[0]
    lo, hi, ok = np.zeros(n_ch), np.full(n_ch, np.inf), np.ones(n_ch, dtype=bool)
    for s in range(0, n_ch, chunk):  # (chunk, N, N) at a time: a 64 x 255^2 float array is 33 MB
        d = c[s:s + chunk, None, :] - a[s:s + chunk, :, None]
        e = w1[s:s + chunk, None, :] - v[s:s + chunk, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = e / d
        lo[s:s + chunk] = np.maximum(0.0, np.max(np.where(d < 0, r, -np.inf), axis=(1, 2)))
        hi[s:s + chunk] = np.min(np.where(d > 0, r, np.inf), axis=(1, 2))
        ok[s:s + chunk] = ~np.any((d == 0) & (e <= 0), axis=(1, 2))
    return lo, hi, ok & (lo < hi)


def _bias_range(a, v, c, w1, m: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """For integer slopes m (C,) at this shift, the integer biases B that meet every constraint exactly:
    a * m + B >= v * 2^S and c * m + B <= w1 * 2^S - 1. Empty (lo > hi) where m does not work."""
    big = np.iinfo(np.int64).max // 4
    one = np.int64(1) << shift
    ai, ci = np.nan_to_num(a, nan=0).astype(np.int64), np.nan_to_num(c, nan=0).astype(np.int64)
    need = np.where(np.isnan(a), -big, v.astype(np.int64) * one - ai * m[:, None])
    allow = np.where(np.isnan(c), big, w1.astype(np.int64) * one - 1 - ci * m[:, None])
    return need.max(axis=1), allow.min(axis=1)


def _fit(t: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, int] | str:
    a, v, c, w1 = _constraints(t, lo, hi)
    mu_lo, mu_hi, ok = _slope_bounds(a, v, c, w1)
    if not ok.all():
        return f"not affine: no line separates the steps of channel(s) {np.flatnonzero(~ok)[:8].tolist()}"
    # Candidates at each S: the two integers just above mu_lo * 2^S (the exact integer interval starts
    # within 1 above it, so if the interval is not empty, one of them is in it: the least S and the narrowest
    # multiplier), and the middle of the interval, which is inside for S large enough. (A channel bounded
    # below only, e.g. a constant one, always has one of the first two.)
    mid = np.where(np.isfinite(mu_hi), (mu_lo + mu_hi) / 2, mu_lo)
    acc_bits = max(abs(lo), abs(hi)).bit_length()
    big = np.iinfo(np.int64).max // 4
    for shift in range(INT64_BITS - t.shape[1].bit_length()):
        base = np.floor(mu_lo * 2.0 ** shift).astype(np.int64)
        cands = [base + 1, base + 2, np.round(mid * 2.0 ** shift).astype(np.int64)]
        if max(int(m.max()) for m in cands).bit_length() > min(MAX_MUL_BITS, INT64_BITS - 1 - acc_bits):
            break
        m = np.full(t.shape[0], -1, dtype=np.int64)
        b = np.zeros(t.shape[0], dtype=np.int64)
        for cand in cands:
            b_lo, b_hi = _bias_range(a, v, c, w1, cand, shift)
            take = (m < 0) & (b_lo <= b_hi)
            # the least bias that reaches every step (a constant channel has only an upper bound)
            m, b = np.where(take, cand, m), np.where(take, np.where(b_lo > -big, b_lo, np.minimum(b_hi, 0)), b)
        if (m >= 0).all():
            return m, b, shift
    return f"no exact multiplier of at most {MAX_MUL_BITS} bits"


_FITS: dict[tuple, tuple | str] = {}  # folding does not change a table: a build's ladder refits the same ones


def fit_requant(thresholds: np.ndarray, idt, act_val: int = 0) -> Requant | str:
    """The requantizer equal to ``act_val + #{k : acc >= thresholds[c, k]}`` for every value acc of the
    integer type ``idt`` and every channel c, proved with ``requant_is_exact``; else the reason (str).

    S is the smallest shift at which the multiplier in the middle of each channel's feasible slope
    interval has an exact integer bias, so the multiplier stays as narrow as the table allows."""
    if not idt.is_integer() or idt.name == "BIPOLAR":
        return f"input type {idt.name} is not an integer type"
    if idt.bitwidth() > INT64_BITS // 2:
        return f"input type {idt.name} is wider than {INT64_BITS // 2} bits"
    if thresholds.ndim != 2 or thresholds.size == 0:
        return "no threshold table"
    t, lo, hi = _integer_table(thresholds, idt)
    key = (hashlib.sha1(t.tobytes()).hexdigest(), t.shape, lo, hi)
    if key not in _FITS:
        _FITS[key] = _fit(t, lo, hi)
    fit = _FITS[key]
    if isinstance(fit, str):
        return fit
    m, b, shift = fit
    n = t.shape[1]
    rq = Requant(mul=m, bias=b + (np.int64(act_val) << shift), shift=shift, lo=act_val, hi=act_val + n)
    if not requant_is_exact(rq, thresholds, idt, act_val):  # never expected: the fit is exact by construction
        return "internal error: the fitted requantizer differs from the table"
    return rq


def requant_is_exact(rq: Requant, thresholds: np.ndarray, idt, act_val: int = 0) -> bool:
    """True iff ``rq(acc) == act_val + #{k : acc >= thresholds[c, k]}`` for every value acc of ``idt`` and
    every channel c.

    Both sides are non-decreasing step functions of acc (rq because mul >= 0). The count is constant between
    consecutive thresholds, so where rq agrees with it on both sides of every threshold and at the ends of
    the range it agrees everywhere in between. Small types are checked value by value."""
    if (rq.mul < 0).any() or len(rq.mul) != thresholds.shape[0] or len(rq.bias) != thresholds.shape[0]:
        return False
    t, lo, hi = _integer_table(thresholds, idt)
    if hi - lo < EXHAUSTIVE:
        acc = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.int64), (t.shape[0], hi - lo + 1))
    else:
        acc = np.clip(np.concatenate([t, t - 1, np.full((t.shape[0], 2), (lo, hi))], axis=1), lo, hi)
    worst = np.abs(acc).max() * int(rq.mul.max()) + int(np.abs(rq.bias).max())
    if worst >= 1 << INT64_BITS:
        return False
    return np.array_equal(rq(acc.T).T, threshold_count(t, acc, act_val))


class ThresholdsToRequant(Transformation):
    """Replace each Thresholding (abstract, _rtl or _hls) with at least ``min_steps`` thresholds that
    ``fit_requant`` proves to be a requantizer by an IntRequant (abstract) or IntRequant_rtl (specialized):
    same input and output tensors, PE and shapes carried over, the threshold initializer dropped. Tables
    that stay are logged with the reason.

    Apply it after folding and bit-width minimization: PE is then the folding's, and the input type, on
    which exactness is proved and the multiplier is sized, is the final accumulator's."""

    def __init__(self, min_steps: int = MIN_STEPS):
        super().__init__()
        self.min_steps = min_steps

    def apply(self, model: ModelWrapper):
        modified = False
        for n in list(model.graph.node):
            if n.op_type not in THRESHOLDING or not n.domain.startswith("finn.custom_op.fpgadataflow"):
                continue
            thr = model.get_initializer(n.input[1])
            if thr is None or thr.ndim != 2 or thr.shape[1] < self.min_steps:
                continue
            inst = getCustomOp(n)
            odt = inst.get_output_datatype()
            idt = model.get_tensor_datatype(n.input[0])
            if inst.get_nodeattr("runtime_writeable_weights"):
                rq = "runtime-writeable thresholds"
            elif not odt.is_integer() or odt.name == "BIPOLAR":
                rq = f"output type {odt.name}"
            else:
                rq = fit_requant(thr, idt, inst.get_nodeattr("ActVal"))
            if isinstance(rq, str):
                log.info("%s stays a threshold table: %s", n.name, rq)
                continue
            op_type = THRESHOLDING[n.op_type]
            domain = "finn.custom_op.fpgadataflow" + (".rtl" if op_type.endswith("_rtl") else "")
            name = op_type + n.name[len(n.op_type):] if n.name.startswith(n.op_type) else n.name + "_requant"
            channels = inst.get_nodeattr("NumChannels")
            attrs = dict(NumChannels=channels, PE=inst.get_nodeattr("PE"), inputDataType=idt.name,
                         outputDataType=odt.name, numInputVectors=list(inst.get_nodeattr("numInputVectors")),
                         mul=np.broadcast_to(rq.mul, channels).tolist(),
                         bias=np.broadcast_to(rq.bias, channels).tolist(),
                         shift=rq.shift, lo=rq.lo, hi=rq.hi, backend="fpgadataflow")
            if op_type == "IntRequant":
                attrs["preferred_impl_style"] = "rtl"
            node = helper.make_node(op_type, [n.input[0]], [n.output[0]], name=name, domain=domain, **attrs)
            log.info("%s: %d-step table on %s -> %s(shift=%d, mul < 2^%d)", n.name, thr.shape[1], idt.name,
                     op_type, rq.shift, int(rq.mul.max()).bit_length())
            model.graph.node.insert(list(model.graph.node).index(n), node)
            model.graph.node.remove(n)
            modified = True
        if modified:
            model = model.transform(RemoveUnusedTensors()).transform(InferDataTypes())
        return model, False


def step_fracskip_requant_outputs(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Threshold tables that are an affine requantizer (the 8-bit BatchNorm quantizers) become IntRequant_rtl
    layers. Place it after folding and ``step_minimize_bit_width`` (see ``ThresholdsToRequant``)."""
    return model.transform(ThresholdsToRequant())

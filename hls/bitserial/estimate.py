"""Resource model of the bit-serial MVU: linear in a few structural features, fitted to Yosys.

Each feature counts one part of rtl/bsmvu.v, so the coefficients read as LUTs or FFs per unit: per
popcount lane (AND + compressor + adder tree), per accumulator bit (T and A, Horner's rule), per output
bit (output buffer), per plane-select bit (loader), per activation-buffer bit, per LUT-ROM weight bit and
64 words, per threshold comparator bit. Coefficients in ``fitted.py``, written by
``python -m fracskip.hls.bitserial.fit`` (Yosys ``synth_xilinx -family xc7 -nodsp``), with the fit's error
on its own points and on held-out points.
Block RAM is counted by the 7-series RAMB18 rule (simple dual port, UG573), as FINN does for MVAU.
"""

from __future__ import annotations

import math
from functools import lru_cache

from .core import LUT_TMEM_MAX_DEPTH, BitSerialParams
from ..synth.fitting import ResourceEstimate, linear

LUT_FEATURES = ("const", "popcount", "acc", "obuf", "plane_mux", "abuf", "wrom", "thr", "modes")
FF_FEATURES = ("const", "stage", "wreg", "popcount", "acc", "obuf", "thr")


def _clog2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def act_buffer_depth(p: BitSerialParams) -> int:
    """Words of the activation buffer: two banks of SF words per bit-plane (planes rounded up to a power of two)."""
    return 2 * p.sf * (1 << _clog2(p.act_width))


def lut_features(p: BitSerialParams) -> dict[str, float]:
    lanes = p.pe * p.wbp * p.simd
    return {
        "const": 1.0,
        "popcount": lanes,
        "acc": p.pe * p.acc_bits,
        "obuf": p.out_width,
        "plane_mux": p.simd * p.act_width,
        "abuf": p.simd * math.ceil(act_buffer_depth(p) / 64) if p.act_ram_style == "distributed" else 0.0,
        "wrom": p.wmem_width * math.ceil(p.wmem / 64) if p.resolved_ram_style == "distributed" else 0.0,
        "thr": p.pe * (p.acc_bits + 1) if p.has_act else 0.0,
        "modes": len(p.modes) - 1,
    }


def ff_features(p: BitSerialParams) -> dict[str, float]:
    return {
        "const": 1.0,
        # staged input word, activation plane register, and the word being gathered from narrower input words
        "stage": p.simd * p.act_width * (1 if p.in_words == 1 else 2) + p.simd,
        "wreg": p.wmem_width if p.resolved_ram_style == "distributed" else 0.0,
        "popcount": p.pe * p.wbp * math.ceil(math.log2(p.simd + 1)),
        "acc": p.pe * p.acc_bits,
        "obuf": p.out_width,
        "thr": p.pe * (2 * p.acc_bits + 1) if p.has_act else 0.0,
    }


# 7-series block RAM aspect ratios (depth, width) in simple dual port: RAMB18 and RAMB36 (= 2 RAMB18)
_RAMB18 = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
_RAMB36 = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))


@lru_cache(maxsize=None)
def bram18_for(depth: int, width: int) -> int:
    """RAMB18 equivalents of a depth x width simple-dual-port memory: whole blocks of the best aspect
    ratio (UG473), the remaining words again in the best aspect (as Yosys mixes them)."""
    if depth <= 0:
        return 0
    best = None
    for blocks, aspects in ((1, _RAMB18), (2, _RAMB36)):
        for d, w in aspects:
            cols = math.ceil(width / w)
            if depth <= d:
                cost = blocks * cols
            elif depth // d * d == depth:
                cost = blocks * cols * (depth // d)
            else:
                cost = blocks * cols * (depth // d) + bram18_for(depth % d, width)
            best = cost if best is None else min(best, cost)
    return best


def bram18_count(p: BitSerialParams) -> int:
    """Weights in block RAM (if so resolved); thresholds per PE in block RAM once deeper than 64 words; the
    activation buffer, if in block RAM."""
    n = bram18_for(p.wmem, p.wmem_width) if p.resolved_ram_style == "block" else 0
    if p.act_ram_style == "block":
        n += bram18_for(act_buffer_depth(p), p.simd)
    if p.has_act and p.tmem > LUT_TMEM_MAX_DEPTH:
        n += p.pe * bram18_for(p.tmem, p.acc_bits + 1)
    return n


def estimate_resources(p: BitSerialParams, model: dict | None = None) -> ResourceEstimate:
    """LUT/FF from the fitted model (``fitted.MODEL`` unless ``model`` is given), BRAM18 by rule."""
    if model is None:
        from .fitted import MODEL as model
    return ResourceEstimate(lut=linear(model["lut"], lut_features(p)), ff=linear(model["ff"], ff_features(p)),
                            bram18=bram18_count(p))

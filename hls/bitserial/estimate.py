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
from dataclasses import dataclass

from .core import BitSerialParams

LUT_FEATURES = ("const", "popcount", "acc", "obuf", "plane_mux", "abuf", "wrom", "thr", "modes")
FF_FEATURES = ("const", "stage", "wreg", "popcount", "acc", "obuf", "thr")


def _clog2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def _act_depth(p: BitSerialParams) -> int:
    return 2 * p.sf * (1 << _clog2(p.act_width))


def lut_features(p: BitSerialParams) -> dict[str, float]:
    lanes = p.pe * p.wbp * p.simd
    return {
        "const": 1.0,
        "popcount": lanes,
        "acc": p.pe * p.acc_bits,
        "obuf": p.out_width,
        "plane_mux": p.simd * p.act_width,
        "abuf": p.simd * math.ceil(_act_depth(p) / 64),
        "wrom": p.wmem_width * math.ceil(p.wmem / 64) if p.resolved_ram_style == "distributed" else 0.0,
        "thr": p.pe * (p.acc_bits + 1) if p.has_act else 0.0,
        "modes": len(p.modes) - 1,
    }


def ff_features(p: BitSerialParams) -> dict[str, float]:
    return {
        "const": 1.0,
        "stage": p.simd * p.act_width + p.simd,  # staged input word, activation plane register
        "wreg": p.wmem_width if p.resolved_ram_style == "distributed" else 0.0,
        "popcount": p.pe * p.wbp * math.ceil(math.log2(p.simd + 1)),
        "acc": p.pe * p.acc_bits,
        "obuf": p.out_width,
        "thr": p.pe * (2 * p.acc_bits + 1) if p.has_act else 0.0,
    }


def bram18_for(depth: int, width: int) -> int:
    """RAMB18s of a depth x width simple-dual-port memory (UG573 table 1-10; FINN's MVAU rule)."""
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / 9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 18)
    return math.ceil(depth / 512) * math.ceil(width / 36)


def bram18_count(p: BitSerialParams) -> int:
    """Weights in block RAM (if so resolved); thresholds per PE in block RAM once deeper than 64 words."""
    n = bram18_for(p.wmem, p.wmem_width) if p.resolved_ram_style == "block" else 0
    if p.has_act and p.tmem > 64:
        n += p.pe * bram18_for(p.tmem, p.acc_bits + 1)
    return n


@dataclass(frozen=True)
class ResourceEstimate:
    lut: float
    ff: float
    bram18: int


def _dot(coef: dict[str, float], feats: dict[str, float]) -> float:
    return sum(coef[k] * feats[k] for k in coef)


def estimate_resources(p: BitSerialParams, model: dict | None = None) -> ResourceEstimate:
    """LUT/FF from the fitted model (``fitted.MODEL`` unless ``model`` is given), BRAM18 by rule."""
    if model is None:
        from .fitted import MODEL as model
    return ResourceEstimate(lut=_dot(model["lut"], lut_features(p)), ff=_dot(model["ff"], ff_features(p)),
                            bram18=bram18_count(p))

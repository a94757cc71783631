"""Resource model of the LUT-based MVU: linear in a few structural features, fitted to Yosys.

Each feature counts one part of the RTL (see rtl/lutmvu.v), so the coefficients read as LUTs or FFs per
unit: per multiplier bit-product, per adder-tree bit, per accumulator bit, per input-buffer bit, per
64-word column of a LUT ROM, per threshold-comparator bit. The coefficients live in ``fitted.py``, written
by ``python -m fracskip.hls.lutmvu.fit`` (Yosys ``synth_xilinx -family xc7 -nodsp`` over a grid), with the
fit's error on its own points (``MODEL["error"]``).
Block RAM for the weight ROM is counted with FINN's RAMB18 rule (the one FINN's MVAU uses), which is also
what Yosys maps to.
"""

from __future__ import annotations

import math

from .core import LutMvuParams
from ..synth.fitting import ResourceEstimate, linear

LUT_FEATURES = ("const", "mul", "mul_const", "mul_ss", "tree", "acc", "obuf", "ibuf", "rom",
                "thr_cmp", "thr_rom", "thr_count")
FF_FEATURES = ("const", "act", "wreg", "dot", "acc", "obuf", "ibuf", "thr")


def _clog2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def dot_width(p: LutMvuParams) -> int:
    """Width of one PE's adder-tree output (as in the RTL)."""
    return min(p.weight_bits + p.act_bits + _clog2(p.simd), p.acc_bits)


def lut_features(p: LutMvuParams) -> dict[str, float]:
    lanes = p.pe * p.simd
    products = lanes * p.weight_bits * p.act_bits  # partial-product bits
    const_w = p.wmem == 1  # a one-word ROM: the weights are constants folded into the multipliers
    thr_bits = p.pe * p.n_thresholds * (p.acc_bits + 1)  # threshold comparator bits
    return {
        "const": 1.0,
        "mul": 0.0 if const_w else products,
        "mul_const": products if const_w else 0.0,
        "mul_ss": products if p.weight_signed and p.act_signed and not const_w else 0.0,  # signed x signed
        "tree": p.pe * (p.simd - 1) * (p.weight_bits + p.act_bits + _clog2(p.simd)),  # adder-tree bits
        "acc": p.pe * p.acc_bits if p.sf > 1 else 0.0,  # accumulator adders
        "obuf": p.pe * p.out_bits_per_element,  # output buffer
        "ibuf": p.simd * p.act_bits if p.nf > 1 else 0.0,  # replay buffer (LUT-RAM) and its multiplexer
        "rom": p.rom_width * math.ceil(p.wmem / 64) if _lut_rom(p) else 0.0,  # LUT ROM: a LUT6 per 64 words, bit
        "thr_cmp": thr_bits,
        "thr_rom": thr_bits * math.ceil(p.nf / 64) if p.nf > 1 else 0.0,  # constants for NF = 1
        "thr_count": p.pe * p.n_thresholds,  # counting the thresholds reached
    }


def ff_features(p: LutMvuParams) -> dict[str, float]:
    return {
        "const": 1.0,
        "act": p.simd * p.act_bits,  # activation pipeline registers
        "wreg": p.rom_width if _lut_rom(p) else 0.0,  # ROM read register (inside the block RAM otherwise)
        "dot": p.pe * dot_width(p),
        "acc": p.pe * p.acc_bits if p.sf > 1 else 0.0,  # accumulators
        "obuf": p.pe * p.out_bits_per_element,  # output buffer (two entries)
        "ibuf": p.simd * p.act_bits if p.nf > 1 and p.sf == 1 else 0.0,  # a one-word buffer is registers
        "thr": p.pe * p.acc_bits if p.n_thresholds else 0.0,  # threshold stage: accumulator register
    }


def _lut_rom(p: LutMvuParams) -> bool:
    return p.resolved_rom_style == "distributed" and p.wmem > 1


def bram18_count(p: LutMvuParams) -> int:
    """RAMB18s of a block-RAM weight ROM: FINN's MVAU rule (simple dual port, UG573 table 1-10)."""
    if p.resolved_rom_style != "block" or p.wmem == 1:  # a one-word ROM is constants
        return 0
    depth, width = p.wmem, p.rom_width
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


def estimate_resources(p: LutMvuParams, model: dict | None = None) -> ResourceEstimate:
    """LUT/FF from the fitted model (``fitted.MODEL`` unless ``model`` is given), BRAM18 by rule."""
    if model is None:
        from .fitted import MODEL as model
    return ResourceEstimate(
        lut=linear(model["lut"], lut_features(p)),
        ff=linear(model["ff"], ff_features(p)),
        bram18=bram18_count(p),
    )

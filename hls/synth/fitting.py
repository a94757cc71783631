"""What the resource models of fracskip's own units share: linear in structural features, the coefficients
fitted to Yosys measurements of a grid of units (the unit's ``fit.py``), stored in the generated ``fitted.py``
beside it and evaluated by its ``estimate.py``. Estimates, not Vivado figures."""

from __future__ import annotations

import pprint
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ResourceEstimate:
    lut: float
    ff: float
    bram18: int


def linear(coef: dict[str, float], feats: dict[str, float]) -> float:
    return sum(coef[k] * feats[k] for k in coef)


def fit_costs(rows: list[dict[str, float]], target: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """The coefficients of ``names`` fitting ``target``: relative least squares (rows scaled by 1/target), each
    coefficient >= 0, as it is a cost per unit of its feature."""
    from scipy.optimize import nnls

    a = np.array([[r[n] for n in names] for r in rows], dtype=float) / target[:, None]
    coef, _ = nnls(a, np.ones(len(target)))
    return {n: round(float(c), 4) for n, c in zip(names, coef)}


def relative_errors(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred - meas) / meas * 100
    return {"mean_abs_pct": round(float(rel.mean()), 1), "max_abs_pct": round(float(rel.max()), 1)}


def write_fitted(model: dict, path: Path, doc: str, lists: tuple[str, ...] = ("points",)) -> None:
    """Write ``model`` as the module ``path`` (``MODEL = {...}``, under the docstring ``doc``), the measurement
    lists ``lists`` one point per line."""
    head = {k: v for k, v in model.items() if k not in lists}
    body = pprint.pformat(head, width=110, sort_dicts=False)[:-1]  # without the closing brace
    tail = "".join(f" {name!r}: [" + "".join(f"\n    {pt!r}," for pt in model[name]) + "\n ],\n" for name in lists)
    path.write_text(f'"""{doc}"""\n# ruff: noqa: E501\n\nMODEL = {body},\n{tail}}}\n')

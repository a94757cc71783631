"""Accuracy against compute for several checkpoints (DFS at several budgets, static and skip-only baselines),
evaluated on the same test images by one command: ``fracskip compare``."""

from __future__ import annotations

from pathlib import Path

from ..errors import FracskipError
from . import data as D
from .checkpoint import dataset_of, load_model
from .evaluate import evaluate
from .oracle import ORACLES


def kind(ck: dict) -> str:
    menu = tuple(ck["model_config"]["bit_menu"])
    group = ck["model_config"].get("channel_group")
    if group:  # per-input channel skipping (training/channels.py)
        target = ck.get("train_config", {}).get("target")
        widths = ", ".join("skip" if b == 0 else str(b) for b in menu)
        name = "LC channels" if len([b for b in menu if b]) == 1 else "LC bits+channels"
        return f"{name} {{{widths}}} g{group}" + (f" target {target:g}" if target else "")
    if len(menu) == 1:
        return f"static W{menu[0]}A{menu[0]}"
    cut = ck.get("budget", {}).get("menu") is not None  # a DFS menu cut by `fracskip budget --menu`
    if menu == (0, 8) and not cut:
        return "skip-only {skip, 8}"
    tc = ck.get("train_config", {})
    widths = ", ".join("skip" if b == 0 else str(b) for b in menu)
    if set(tc.get("stages", ())) == {"backbone"}:  # its target was never trained for
        name = f"DFS {{{widths}}} backbone (gates untrained)"
    elif tc.get("target"):
        name = f"DFS {{{widths}}} target {tc['target']:g}"
    else:
        name = f"DFS {{{widths}}}"
    if ck.get("budget", {}).get("target") is not None:  # gates priced to another operating point (budget.py)
        name += f", priced to {ck['budget']['target']:g}"
    return name


def compare(checkpoints: list[str], dataset: str | None = None, data_dir: str | None = None,
            limit: int | None = None, progress: bool = True, oracle: str | None = None,
            include: list[list[dict]] = ()) -> list[dict]:
    """One row per checkpoint; with ``oracle`` (a checkpoint holding every path, e.g. the backbone), the oracle
    routings of ``training.oracle`` on it as rows too, and each learned row's share of the oracle's gain.
    ``include``: rows of earlier comparisons on the same test images (``--json`` output), kept as measured.
    ``dataset``: by default the one the checkpoints were trained on."""
    dataset = dataset or dataset_of([*checkpoints, *([oracle] if oracle else [])])
    split = D.load(dataset, "test", data_dir, limit)
    rows = []
    for earlier in include:
        for r in earlier:
            if r["n"] != len(split):
                raise FracskipError(f"an included row ({r['model']}) was measured on {r['n']} test images, this "
                                    f"comparison runs on {len(split)}: compare on the same images")
            rows.append({k: v for k, v in r.items() if k not in ("gain_over_static_front", "oracle_gain_recovered")})
    for ref in checkpoints:
        net, ck = load_model(ref)
        ev = evaluate(net, split, progress=progress)
        rows.append(_row(str(ref), kind(ck), ev))
    if oracle is not None:
        net, _ = load_model(oracle)
        for name, route in ORACLES.items():
            ev = evaluate(net, split, choices=route(net, split, progress=progress), progress=progress)
            rows.append(_row(str(oracle), f"oracle {name}", ev))
    _recovery(rows)
    return rows


def _row(ref: str, model: str, ev: dict) -> dict:
    return {"checkpoint": ref, "model": model, "accuracy": ev["accuracy"], "compute_pct": ev["compute_pct"],
            "bitops_per_input": ev["bitops_per_input"], "n": ev["n"], "choices": ev["choices"]}


def static_front(rows: list[dict], compute_pct: float) -> float | None:
    """Accuracy of the static rows' front at ``compute_pct``: linear between neighbours, flat past the last."""
    pts = sorted((r["compute_pct"], r["accuracy"]) for r in rows if r["model"].startswith("static"))
    if not pts or compute_pct < pts[0][0]:
        return None
    best, front = -1.0, []
    for c, a in pts:  # only the Pareto points, the most accurate of equal compute
        if a > best:
            if front and front[-1][0] == c:
                front[-1] = (c, a)
            else:
                front.append((c, a))
            best = a
    for (c0, a0), (c1, a1) in zip(front, front[1:]):
        if c0 <= compute_pct <= c1:
            return a0 + (a1 - a0) * (compute_pct - c0) / (c1 - c0)
    return front[-1][1]


def _recovery(rows: list[dict]) -> None:
    """Accuracy above the static front at equal compute, and for learned rows the share of the uniform
    oracle's gain that they recover."""
    for r in rows:
        f = static_front(rows, r["compute_pct"])
        r["gain_over_static_front"] = None if f is None else r["accuracy"] - f
    orc = next((r for r in rows if r["model"] == "oracle uniform"), None)
    if orc is None or not orc["gain_over_static_front"]:
        return
    for r in rows:
        if r["model"].startswith(("DFS", "skip-only", "LC")) and r["gain_over_static_front"] is not None:
            r["oracle_gain_recovered"] = r["gain_over_static_front"] / orc["gain_over_static_front"]


def table(rows: list[dict]) -> str:
    lines = [f"{'model':<48} {'accuracy':>9} {'compute %':>10} {'BitOPs/input':>14} {'vs static':>10}", "-" * 95]
    for r in sorted(rows, key=lambda r: r["compute_pct"]):
        g = r.get("gain_over_static_front")
        lines.append(f"{r['model']:<48} {r['accuracy']:>9.4f} {r['compute_pct']:>10.1f} {r['bitops_per_input']:>14.4g}"
                     f" {'' if g is None else f'{100 * g:+.2f} pp':>10}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    groups = {"DFS": ("tab:red", "o"), "static": ("tab:blue", "s"), "skip-only": ("tab:green", "^"),
              "oracle": ("tab:gray", "*"), "LC": ("tab:purple", "D")}
    for name, (color, marker) in groups.items():
        pts = sorted((r["compute_pct"], 100 * r["accuracy"], r["model"]) for r in rows if r["model"].startswith(name))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color, label=name,
                    linestyle="-" if name == "DFS" else "none")
            for x, y, m in pts:
                if name in ("static", "oracle"):
                    ax.annotate(m.split()[-1], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("computation (% of BitOPs of the all-8-bit network)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

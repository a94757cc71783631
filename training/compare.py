"""Accuracy against compute for several checkpoints (DFS at several budgets, static and skip-only baselines),
evaluated on the same test images by one command: ``fracskip compare``."""

from __future__ import annotations

from pathlib import Path

from . import data as D
from .checkpoint import load_model
from .evaluate import evaluate


def kind(ck: dict) -> str:
    menu = tuple(ck["model_config"]["bit_menu"])
    if len(menu) == 1:
        return f"static W{menu[0]}A{menu[0]}"
    if menu == (0, 8):
        return "skip-only {skip, 8}"
    target = ck.get("train_config", {}).get("target")
    return f"DFS {{{', '.join('skip' if b == 0 else str(b) for b in menu)}}} target {target:g}" if target else "DFS"


def compare(checkpoints: list[str], dataset: str = "fashion-mnist", data_dir: str | None = None,
            limit: int | None = None, progress: bool = True) -> list[dict]:
    split = D.load(dataset, "test", data_dir, limit)
    rows = []
    for ref in checkpoints:
        net, ck = load_model(ref)
        ev = evaluate(net, split, progress=progress)
        rows.append({"checkpoint": str(ref), "model": kind(ck), "accuracy": ev["accuracy"],
                     "compute_pct": ev["compute_pct"], "bitops_per_input": ev["bitops_per_input"], "n": ev["n"],
                     "choices": ev["choices"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'model':<34} {'accuracy':>9} {'compute %':>10} {'BitOPs/input':>14}", "-" * 70]
    for r in sorted(rows, key=lambda r: r["compute_pct"]):
        lines.append(f"{r['model']:<34} {r['accuracy']:>9.4f} {r['compute_pct']:>10.1f} {r['bitops_per_input']:>14.4g}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    groups = {"DFS": ("tab:red", "o"), "static": ("tab:blue", "s"), "skip-only": ("tab:green", "^")}
    for name, (color, marker) in groups.items():
        pts = sorted((r["compute_pct"], 100 * r["accuracy"], r["model"]) for r in rows if r["model"].startswith(name))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color, label=name,
                    linestyle="-" if name == "DFS" else "none")
            for x, y, m in pts:
                if name == "static":
                    ax.annotate(m.split()[-1], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("computation (% of BitOPs of the all-8-bit network)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

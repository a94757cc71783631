"""``fracskip demo``: the whole flow on the shipped default, as a new user runs it first.

shipped checkpoint -> eval -> export -> FINN build for a board (to HDL) -> RTL simulation of test images under
the runtime controller -> report folder (HTML page, PNG plots, the same figures as JSON) and a terminal summary.
Each stage writes its own folder below ``out`` and can be run alone with the command named in its comment.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .outdir import fresh

log = logging.getLogger(__name__)
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "training" / "checkpoints" / "default"


def demo(out: Path, checkpoint: str = "default", board: str = "Pynq-Z2", images: int = 100, workers: int = 2,
         backend: str = "rtlsim", force: bool = False) -> dict:
    with fresh(out, force, "demo") as out:  # a failed or interrupted demo leaves no folder behind
        return _demo(out, checkpoint, board, images, workers, backend)


def _demo(out: Path, checkpoint: str, board: str, images: int, workers: int, backend: str) -> dict:
    from . import report as R
    from .export.exporter import export
    from .hls.build import BuildConfig, build, size_build_fifos
    from .runtime.manifest import Manifest
    from .runtime.simulate import cores_for_images, simulate
    from .training import data as D
    from .training.checkpoint import load_model
    from .training.evaluate import evaluate

    times, t = {}, time.time()

    log.info("1/5 eval: fracskip eval %s --json", checkpoint)
    net, ck = load_model(checkpoint)
    test = D.load("fashion-mnist", "test")
    ev = evaluate(net, test)
    times["eval"] = time.time() - t

    log.info("2/5 export: fracskip export %s -o %s", checkpoint, out / "export")
    t = time.time()
    export(checkpoint, out / "export")
    times["export"] = time.time() - t

    log.info("3/5 build: fracskip build %s --board %s --until hdl", out / "export", board)
    t = time.time()
    summary = build(out / "export", out / "build", BuildConfig(board=board, until="hdl", workers=workers))
    times["build"] = time.time() - t
    sub = test.subset(images)
    if backend == "rtlsim":
        # only the cores these images run need their FIFOs sized by simulation (each sizing verilates the core)
        used = cores_for_images(Manifest.load(out / "export"), sub.images.numpy())
        log.info("   FIFO sizing in Verilator: %s", ", ".join(used))
        t = time.time()
        size_build_fifos(out / "build", cores=used, workers=workers)
        times["fifo_sizing"] = time.time() - t

    log.info("4/5 simulate: fracskip simulate %s --backend %s --limit %d", out / "build", backend, images)
    t = time.time()
    sim, _ = simulate(out / "build", backend, sub.images.numpy(), sub.labels.numpy())
    times["simulate"] = time.time() - t

    log.info("5/5 report: %s", out / "report")
    rep = out / "report"
    rep.mkdir()
    figures = {}
    table_file = DEFAULT_DIR / "compare.json"
    if checkpoint == "default" and table_file.exists():
        from .training.compare import plot

        rows = json.loads(table_file.read_text())
        plot(rows, rep / "accuracy_vs_compute.png")
        R.save_json(rep, "accuracy_vs_compute.json", rows)
        figures["Accuracy vs compute: DFS and baselines (full test set, `fracskip compare`, shipped table)"] = \
            "accuracy_vs_compute.png"
        for row in rows:
            if row["model"].startswith("DFS"):
                name = f"decisions_{row['model'].split()[-1]}.png"
                R.decisions_plot(row["choices"], rep / name, f"{row['model']}: {100 * row['accuracy']:.2f} % at "
                                 f"{row['compute_pct']:.1f} % compute")
                figures[f"Per-block decisions, {row['model']}"] = name
    else:
        R.decisions_plot(ev["choices"], rep / "decisions.png", "decisions of this checkpoint")
        figures["Per-block decisions"] = "decisions.png"
    R.cores_plot(summary, rep / "cores.png")
    figures["Per-core resources (FINN estimates) and cycles"] = "cores.png"
    R.expected_cycles_plot(summary, rep / "expected_cycles.png")
    figures["Expected cycles per input: DFS vs static 8-bit"] = "expected_cycles.png"
    t_tot = {k: round(v, 1) for k, v in times.items()}
    figs = {"eval": ev, "build": {k: summary[k] for k in ("totals", "expected_cycles_per_input", "static_8bit",
                                                           "speedup_vs_static_8bit", "folding", "time_s")},
            "simulate": sim, "time_s": t_tot}
    R.save_json(rep, "report.json", figs)
    tot = summary["totals"]
    sections = {
        "Model (full Fashion-MNIST test set)": {"accuracy": f"{ev['accuracy']:.4f}", "compute (% of 8-bit)": f"{ev['compute_pct']:.1f}",
                                                "BitOPs per input": f"{ev['bitops_per_input']:.4g}"},
        f"Build for {summary['board']['name']} ({summary['board']['part']})": {
            **{f"{r} (FINN estimate)": f"{tot['resources'][r]:.0f} / {tot['capacity'][r]}" for r in tot["resources"]},
            "fits the budget": tot["fits"], "expected cycles per input": f"{summary['expected_cycles_per_input']:.0f}",
            "static all-8-bit, same budget": f"{summary['static_8bit']['expected_cycles_per_input']:.0f}",
            "speed-up": f"{summary['speedup_vs_static_8bit']:.2f}x"},
        f"Simulation ({backend}, {images} test images)": {k: v for k, v in sim.items() if not isinstance(v, dict)},
        "Wall time (s)": t_tot,
    }
    page = R.write_html(rep, figures, sections)
    return {"report": str(page), "eval": ev, "summary": summary, "simulate": sim, "time_s": t_tot}

"""``fracskip demo``: the whole flow on the shipped default, as a new user runs it first.

shipped checkpoint -> eval -> export -> FINN build of the accelerator for a board (to HDL, FIFOs sized in
Verilator) -> RTL simulation of test images through it, against the golden controller -> report folder (HTML
page, PNG plots, the same figures as JSON) and a terminal summary.
Each stage writes its own folder below ``out`` and can be run alone with the command named in its comment.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .outdir import fresh

log = logging.getLogger(__name__)
IMAGES = 50  # test images through the RTL simulation: the demo stays under 10 minutes on a 2-core machine


def demo(out: Path, checkpoint: str = "default", board: str = "Pynq-Z2", images: int = IMAGES, workers: int = 2,
         backend: str = "rtlsim", force: bool = False) -> dict:
    with fresh(out, force, "demo") as out:  # a failed or interrupted demo leaves no result behind
        return _demo(out, checkpoint, board, images, workers, backend)


def _demo(out: Path, checkpoint: str, board: str, images: int, workers: int, backend: str) -> dict:
    from . import report as R
    from .export.exporter import export
    from .hls.build import BuildConfig, build
    from .simulate import simulate
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

    log.info("4/5 simulate: fracskip simulate %s --backend %s --limit %d", out / "build", backend, images)
    t = time.time()
    sim, _ = simulate(out / "build", backend, sub.images.numpy(), sub.labels.numpy())
    times["simulate"] = time.time() - t

    log.info("5/5 report: %s", out / "report")
    rep = out / "report"
    rep.mkdir()
    from .training.checkpoint import resolve

    R.decisions_plot(ev["choices"], rep / "decisions.png", f"decisions of this checkpoint, {ev['n']:,} test images")
    figures = {"Per-block decisions of this checkpoint": "decisions.png"}
    table_file = resolve(checkpoint).parent / "compare.json"  # `fracskip compare`'s table, shipped beside the default
    if table_file.is_file():
        from .training.compare import plot

        rows = json.loads(table_file.read_text())
        plot(rows, rep / "accuracy_vs_compute.png")
        R.save_json(rep, "accuracy_vs_compute.json", rows)
        figures["Accuracy vs compute: the networks of the table beside the checkpoint (full test set, "
                "`fracskip compare`)"] = "accuracy_vs_compute.png"
        for row in rows:
            if row["model"].startswith("DFS"):
                name = f"decisions_{row['model'].split()[-1]}.png"
                R.decisions_plot(row["choices"], rep / name, f"{row['model']}: {100 * row['accuracy']:.2f} % at "
                                 f"{row['compute_pct']:.1f} % compute")
                figures[f"Per-block decisions, {row['model']} (compare.json)"] = name
    if sim.get("path_use"):  # what the hardware's gates decided on the simulated images
        use = [dict(zip(map(str, _menu(out)), counts)) for counts in sim["path_use"].values()]
        R.decisions_plot(use, rep / "decisions_simulated.png", f"decisions of the gates in {backend}, "
                         f"{sim['n']} test images")
        figures[f"Per-block decisions on the chip ({backend})"] = "decisions_simulated.png"
    from .bench import throughput

    table = throughput(out / "build", resolve(checkpoint), ev, sim if backend == "rtlsim" else None)
    R.throughput_plot(table, rep / "throughput.png")
    figures = {"Throughput on the same budget: DFS and the static pipelines (`fracskip bench` \"throughput\")":
               "throughput.png", **figures}
    R.cores_plot(summary, rep / "cores.png")
    figures["Per core, as the retired core-per-path design folded them: resources (FINN estimates) and cycles"] = \
        "cores.png"
    t_tot = {k: round(v, 1) for k, v in times.items()}
    figs = {"eval": ev, "build": {k: summary[k] for k in ("totals", "folding", "time_s", "accelerator") if k in summary},
            "simulate": sim, "throughput": table, "time_s": t_tot}
    R.save_json(rep, "report.json", figs)
    sections = {
        "Model (full Fashion-MNIST test set)": {"accuracy": f"{ev['accuracy']:.4f}", "compute (% of 8-bit)": f"{ev['compute_pct']:.1f}",
                                                "BitOPs per input": f"{ev['bitops_per_input']:.4g}"},
        f"Build for {summary['board']['name']} ({summary['board']['part']})": _build_rows(summary),
        f"Throughput, one pipeline each, same {table['board']} budget": R.throughput_rows(table),
        f"Simulation ({backend}, {sim['n']} test images)": _simulation_rows(sim),
        "Wall time (s)": t_tot,
    }
    page = R.write_html(rep, figures, sections)
    return {"report": str(page), "eval": ev, "summary": summary, "simulate": sim, "throughput": table,
            "time_s": t_tot}


# the simulation's figures the report shows, with their units (simulate's JSON, in report.json, has them all)
SIM_ROWS = {"accuracy": "accuracy", "torch_accuracy": "accuracy of the torch model",
            "bit_exact_pct": "logits bit-exact with the golden (%)",
            "decisions_match_pct": "decisions equal to the reference's (%)",  # which one: decisions_against
            "decisions_match_torch_pct": "decisions equal to torch's (%)",
            "argmax_agreement_pct": "predictions equal to torch's (%)",
            "max_logit_abs_diff": "largest logit difference from torch", "compute_pct": "compute (% of 8-bit)",
            "cycles_per_image_measured": "cycles per image, measured (steady state)",
            "cycles_per_image_model_these_images": "cycles per image, the frame-sequence model of these images",
            "latency_cycles": "latency of one image (cycles)",
            "sim_images_per_s": "simulator speed (images per wall-clock second; not the hardware's)"}


def _simulation_rows(sim: dict) -> dict:
    def fmt(k, v):
        return f"{v:,.0f}" if "cycles" in k else f"{v:.4g}" if isinstance(v, float) else v
    labels = {**SIM_ROWS, "decisions_match_pct": decisions_against(sim) + " (%)"}
    return {label: fmt(k, sim[k]) for k, label in labels.items() if sim.get(k) is not None}


def decisions_against(sim: dict) -> str:
    """What ``decisions_match_pct`` compares: rtlsim holds the accelerator to the golden (the numpy controller);
    the qonnx backend is the golden, held to the torch model, as the torch backend is."""
    return "decisions equal to the golden's" if sim["backend"] == "rtlsim" else "decisions equal to torch's"


def _menu(out: Path) -> list[int]:
    from .runtime.manifest import Manifest

    return list(Manifest.load(out / "export").bit_menu)


def _build_rows(summary: dict) -> dict:
    acc = summary["accelerator"]
    budget, device = summary["totals"]["budget"], summary["board"]["resources"]
    rows = {"design": acc["what"], "nodes": acc["nodes"],
            **{f"{r} / budget (estimate, with the width converters and depth-2 FIFOs FINN inserts)":
               f"{v:.0f} / {budget[r]:.0f}"
               for r, v in acc["resources_estimate_inserted"].items()},
            "fits the budget (estimates)": acc["fits_estimate"],
            "cycles per image, folding model": f"{acc['cycles_per_image_model']:.0f} ({acc['bottleneck_model']})",
            "cycles per image, emitted HDL in Verilator (sizing images)": f"{acc['cycles_per_image_emitted']:.0f}",
            "FIFO bits": acc["fifo_bits"]}
    # what FINN inserts between the folded nodes, which the budget leaves out
    emitted = acc["resources_estimate_emitted"]
    rows.update({f"{r} / device as emitted, FIFOs and width converters included (estimate)":
                 f"{emitted['total'][r]:.0f} / {device.get(r, 0)}" for r in ("LUT", "BRAM_18K", "DSP")})
    rows["fits the device as emitted (estimates)"] = acc["fits_device_estimate_emitted"]
    return rows

"""``fracskip bench``: the figures the issues steer by, measured in one run and printed as one JSON object.

On a checkpoint (the shipped default unless told otherwise), each stage timed:

- ``model``: accuracy and compute on the Fashion-MNIST test set (``fracskip eval``);
- ``export``: wall time, cores, BitOPs per path equal to qonnx-inference-cost's (the exporter refuses otherwise);
- ``golden``: the qonnx backend (FINN-streamlined cores) vs the float64 torch model (``fracskip simulate``);
- ``build``: ``fracskip build --until hdl`` per board: wall time, fit, expected cycles per input, the ratio to
  a static all-8-bit network on the same budget;
- ``fifo_sizing``: FIFO depths by Verilator simulation for the cores the RTL images use;
- ``rtlsim``: those images through the controller with every core in Verilator: bit-exactness, decisions,
  accuracy vs torch, cycles vs FINN's estimate, simulation speed.

``quick`` shrinks every count to a CI-sized run (the same stages, fewer images, one board).
The machine is shared: compare the ratios of one run, not wall times across runs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

from .outdir import fresh

log = logging.getLogger(__name__)

FULL = {"eval_images": None, "golden_images": 1000, "rtl_images": 200, "boards": ("Pynq-Z2", "ZCU104"),
        "minimize_fifos": True}
# CI-sized: what only the bench checks is the real network through every stage; the FIFO sizing (most of its
# time) covers just the cores its RTL images take, so one image keeps it to one core per block, and it keeps
# FINN's peak-occupancy depths without searching each FIFO's minimum (the tests of the search use small cores)
QUICK = {"eval_images": 1000, "golden_images": 8, "rtl_images": 1, "boards": ("Pynq-Z2",), "minimize_fifos": False}


def bench(out: str | Path, checkpoint: str = "default", quick: bool = False, workers: int = 1,
          mvau: str | None = None, force: bool = False, progress: bool = True) -> dict:
    """Every figure in one run, into folder ``out`` (``bench.json`` last); a failed or interrupted bench leaves
    no folder behind."""
    with fresh(out, force, "bench") as out:
        return _bench(out, checkpoint, QUICK if quick else FULL, quick, workers, mvau, progress)


def _bench(out: Path, checkpoint: str, plan: dict, quick: bool, workers: int, mvau: str | None,
           progress: bool) -> dict:
    from .export.exporter import export
    from .hls.build import BuildConfig, build, size_build_fifos
    from .runtime.manifest import Manifest
    from .runtime.simulate import cores_for_images, simulate
    from .training import data as D
    from .training.checkpoint import load_model
    from .training.evaluate import evaluate

    t_all = time.time()
    fig: dict = {"quick": quick, "checkpoint": checkpoint,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}

    stage("model", "fracskip eval")
    t = time.time()
    net, _ = load_model(checkpoint)
    test = D.load("fashion-mnist", "test")
    ev = evaluate(net, test.subset(plan["eval_images"]) if plan["eval_images"] else test, progress=progress)
    fig["model"] = {k: ev[k] for k in ("n", "accuracy", "compute_pct", "bitops_per_input")}
    fig["model"]["seconds"] = round(time.time() - t, 1)

    stage("export", "fracskip export")
    t = time.time()
    export(checkpoint, out / "export", progress=progress)
    m = Manifest.load(out / "export")
    fig["export"] = {"cores": len(m.cores()), "seconds": round(time.time() - t, 1),
                     "bitops_equal_qonnx_inference_cost": True,  # checked per core by the exporter, which raises otherwise
                     "qonnx_inference_cost_discount_sparsity": False}

    stage("golden", "fracskip simulate --backend qonnx")
    golden = test.subset(plan["golden_images"])
    res, _ = simulate(out / "export", "qonnx", golden.images.numpy(), golden.labels.numpy(), progress=progress)
    fig["golden"] = _pick(res, "n", "decisions_match_pct", "argmax_agreement_pct", "max_logit_abs_diff", "accuracy",
                          "torch_accuracy", "images_per_s")

    fig["build"] = {}
    for board in plan["boards"]:
        stage(f"build {board}", "fracskip build --until hdl")
        t = time.time()
        kw = {"mvau": mvau} if mvau else {}
        s = build(out / "export", out / f"build-{board}", BuildConfig(board=board, until="hdl", workers=workers, **kw),
                  progress=progress)
        tot = s["totals"]
        fig["build"][board] = {
            "wall_s": round(time.time() - t, 1), "fits": tot["fits"],
            "resources": tot["resources"], "budget": tot["budget"], "utilization": tot["utilization"],
            "expected_cycles_per_input": s["expected_cycles_per_input"],
            "static_8bit_expected_cycles_per_input": s["static_8bit"]["expected_cycles_per_input"],
            "static_8bit_fits": s["static_8bit"]["fits"],
            "speedup_vs_static_8bit": s["speedup_vs_static_8bit"], "folding": s["folding"]}

    board = plan["boards"][0]
    bdir = out / f"build-{board}"
    rtl = test.subset(plan["rtl_images"])
    used = cores_for_images(m, rtl.images.numpy())
    stage("FIFO sizing", f"{len(used)} cores of the {board} build")
    t = time.time()
    sized = size_build_fifos(bdir, cores=used, workers=workers, progress=progress, minimize=plan["minimize_fifos"])
    fig["fifo_sizing"] = {"board": board, "cores": used, "seconds": round(time.time() - t, 1),
                          "minimized": plan["minimize_fifos"],
                          "cycles_vs_estimate": {c: sized["cores"][c]["cycles_vs_estimate"] for c in used},
                          "fifo_bits": {c: sized["cores"][c]["fifo_bits"] for c in used}}

    stage("rtlsim", "fracskip simulate --backend rtlsim")
    res, _ = simulate(bdir, "rtlsim", rtl.images.numpy(), rtl.labels.numpy(), progress=progress)
    fig["rtlsim"] = _pick(res, "n", "bit_exact_pct", "bit_exact_vs_finn_pct", "decisions_match_pct", "argmax_agreement_pct",
                          "accuracy", "torch_accuracy", "mean_cycles_per_input", "cycles_vs_estimate", "images_per_s",
                          "rtlsim_build_s")
    cve = [v for k, v in res["cycles_vs_estimate"].items() if k != "overall" and v is not None]
    fig["rtlsim"]["cycles_vs_estimate_range"] = [min(cve), max(cve)] if cve else None
    fig["wall_s"] = round(time.time() - t_all, 1)
    (out / "bench.json").write_text(json.dumps(fig, indent=1))
    return fig


def stage(name: str, what: str) -> None:
    log.info("bench: %s (%s)", name, what)


def _pick(d: dict, *keys: str) -> dict:
    return {k: d.get(k) for k in keys}

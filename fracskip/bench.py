"""``fracskip bench``: the figures the issues steer by, measured in one run and printed as one JSON object.

On a checkpoint (the shipped default unless told otherwise), each stage timed:

- ``model``: accuracy and compute on the Fashion-MNIST test set (``fracskip eval``);
- ``export``: wall time, cores, BitOPs per path equal to qonnx-inference-cost's (the exporter refuses otherwise);
- ``golden``: the qonnx backend (FINN-streamlined cores) vs the float64 torch model (``fracskip simulate``);
- ``build``: ``fracskip build --until hdl`` on Pynq-Z2: the cores, then the whole network as one pipelined
  accelerator (bit-serial datapaths, folded for the slowest node, FIFOs sized in Verilator on real images);
- ``rtlsim``: test images streamed back to back through the accelerator's Verilator model (``fracskip simulate
  BUILD --backend rtlsim``): logits and decisions against the numpy controller, cycles per image against the
  folding model, simulation speed;
- ``model_every_test_image`` (full bench only): the DFS accelerator's frame-sequence model, which the ``rtlsim``
  images hold it to, on every test image (``hls.accelerator.model_on_images``): a few hundred images are one
  window of the test set, and windows differ by a few per cent; ``throughput.claim.every_test_image`` beside the
  measured speedups;
- ``throughput``: the DFS accelerator and the static W2A2, W4A4 and W8A8 pipelines folded by the same allocator
  on the same budget (``hls.pipeline_folding``), each with its accuracy (the static networks': ``fracskip compare``
  on the 10,000 test images, from the checkpoint's ``compare.json``), BitOPs, modelled cycles and FINN's
  resource estimates; where the build emitted them (the full bench builds with ``--baselines --synth``), every
  design's cycles and images/s as measured in Verilator and its Yosys resources, ``fits`` judged on those;
- ``budget_sweep`` (full bench only): every design folded again at budgets around the build's (``SWEEP``,
  estimates), whether DFS's lead holds there or comes from where the ladders' rungs happen to fall at one budget;
  ``budget_sweep.png`` beside ``bench.json``.

``quick`` is the CI-sized run: fewer images, and the build stops at FINN's estimates (``--until estimates``), so
there is no ``rtlsim`` stage (``"rtlsim": null``, ``"model_every_test_image": null``), no row has measured or
synthesized columns, and there is no sweep (``"budget_sweep": null``). Verilating the shipped network's
accelerator (330 nodes) and sizing its FIFOs takes tens of CPU minutes here; the whole-network
RTL tests of the suite run the same builder on the tiny test network instead (tests/hls/test_accelerator.py,
tests/hls/test_modal.py).
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

BOARD = "Pynq-Z2"
# the budgets every design is folded at again (``budget_sweep``): around the build's 80 %, and the build's LUTs with
# the device's block RAM and DSPs (the room DFS's deepened frame buffers take)
SWEEP = ("0.7", "0.75", "0.8", "0.82", "0.85", "0.9", "1.0", "BRAM_18K=1,URAM=1,DSP=1")
# static_rtl_images: a static pipeline's cycles do not depend on the image; enough to check its logits and spacing
FULL = {"eval_images": None, "golden_images": 1000, "until": "hdl", "rtl_images": 200, "sizing_images": 24,
        "baselines": True, "synth": True, "static_rtl_images": 50, "budgets": SWEEP}
QUICK = {"eval_images": 1000, "golden_images": 8, "until": "estimates", "rtl_images": 0, "sizing_images": 0,
         "baselines": False, "synth": False, "static_rtl_images": 0, "budgets": ()}
STATIC_ROWS = {"static_W2A2": "static W2A2", "static_W4A4": "static W4A4", "static_W8A8": "static W8A8"}


def bench(out: str | Path, checkpoint: str = "default", quick: bool = False, workers: int = 1,
          mvau: str | None = None, force: bool = False, progress: bool = True) -> dict:
    """Every figure in one run, into folder ``out`` (``bench.json`` last); a failed or interrupted bench leaves
    no result behind (``outdir.fresh``)."""
    with fresh(out, force, "bench") as out:
        return _bench(out, checkpoint, QUICK if quick else FULL, quick, workers, mvau, progress)


def _bench(out: Path, checkpoint: str, plan: dict, quick: bool, workers: int, mvau: str | None,
           progress: bool) -> dict:
    from .export.exporter import export
    from .hls.build import BuildConfig, build
    from .runtime.manifest import Manifest
    from .simulate import simulate
    from .training import data as D
    from .training.checkpoint import load_model, resolve
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

    stage(f"build {BOARD}", f"fracskip build --until {plan['until']}")
    t = time.time()
    kw = {"mvau": mvau} if mvau else {}
    if plan["sizing_images"]:
        kw["accelerator_images"] = plan["sizing_images"]
    bdir = out / f"build-{BOARD}"
    s = build(out / "export", bdir, BuildConfig(board=BOARD, until=plan["until"], workers=workers,
                                                baselines=plan["baselines"], synth=plan["synth"], **kw),
              progress=progress)
    fig["build"] = {"board": BOARD, "until": plan["until"], "wall_s": round(time.time() - t, 1),
                    "time_s": s["time_s"], "cores": len(s["cores"]), "accelerator": s.get("accelerator"),
                    "baselines": s.get("baselines")}

    fig["rtlsim"] = None
    if plan["rtl_images"]:
        stage("rtlsim", "fracskip simulate BUILD --backend rtlsim")
        rtl = test.subset(plan["rtl_images"])
        res, _ = simulate(bdir, "rtlsim", rtl.images.numpy(), rtl.labels.numpy(), progress=progress)
        fig["rtlsim"] = _pick(res, "n", "bit_exact_pct", "decisions_match_pct", "decisions_match_torch_pct",
                              "logits_max_abs_diff", "accuracy", "torch_accuracy", "argmax_agreement_pct",
                              "cycles_per_image_measured", "cycles_per_image_model", "measured_vs_model",
                              "cycles_per_image_model_these_images", "measured_vs_model_these_images",
                              "cycles_per_image_model_these_images_fifos_unbounded",
                              "cycles_per_image_model_mean_these_images",
                              "latency_cycles", "bitops_per_input", "sim_images_per_s", "sim_images_per_cpu_s",
                              "sim_cxx_opt", "verilate_s",
                              "path_use")

    fig["rtlsim_static"] = {}
    for name in (s.get("baselines") or {}) if plan["static_rtl_images"] else ():
        stage(f"rtlsim {name}", f"fracskip simulate BUILD --backend rtlsim --design {name}")
        rtl = test.subset(plan["static_rtl_images"])
        res, _ = simulate(bdir, "rtlsim", rtl.images.numpy(), rtl.labels.numpy(), progress=progress, design=name)
        fig["rtlsim_static"][name] = _pick(res, "n", "bit_exact_pct", "logits_max_abs_diff", "accuracy",
                                           "torch_accuracy", "argmax_agreement_pct", "cycles_per_image_measured",
                                           "cycles_per_image_model", "measured_vs_model", "sim_images_per_s")

    fig["model_every_test_image"] = None
    if plan["rtl_images"]:
        # a few hundred images in Verilator are one window of the test set, and windows differ by a few per cent
        # (their decisions do): the model the measurement agrees with, on every test image, says where the set lies
        from .hls.accelerator import model_on_images

        stage("model on every test image", "hls.accelerator.model_on_images")
        t = time.time()
        every = test.subset(plan["eval_images"]) if plan["eval_images"] else test
        fig["model_every_test_image"] = model_on_images(bdir, every.images.numpy(), progress=progress)
        fig["model_every_test_image"]["seconds"] = round(time.time() - t, 1)

    stage("throughput", "hls.pipeline_folding on the build, every design on the same budget")
    fig["throughput"] = throughput(bdir, resolve(checkpoint), fig["model"], fig["rtlsim"], fig["rtlsim_static"],
                                   fig["model_every_test_image"])
    fig["budget_sweep"] = None
    if plan["budgets"]:
        from .hls import finn_env
        from .hls.pipeline_folding import budget_sweep
        from .report import budget_sweep_plot

        stage("budget sweep", "python -m fracskip.hls.pipeline_folding BUILD --budgets ...: every design folded "
                              "again at each budget (estimates)")
        with finn_env.scratch("fracskip-bench-"):
            fig["budget_sweep"] = budget_sweep(bdir, list(plan["budgets"]), progress=progress)
        budget_sweep_plot(fig["budget_sweep"], out / "budget_sweep.png")
    fig["wall_s"] = round(time.time() - t_all, 1)
    (out / "bench.json").write_text(json.dumps(fig, indent=1))
    return fig


def built_row(build_dir: Path) -> dict | None:
    """The DFS row of the throughput table the build's accelerator was folded with (its last folding's), if the
    build emitted one."""
    where = (_json(build_dir / "summary.json", {}).get("accelerator") or {}).get("report")
    return (_json(build_dir / where, {}).get("throughput_table") or {}).get("dfs") if where else None


def throughput(build_dir: Path, checkpoint: Path, model: dict, rtlsim: dict | None,
               rtlsim_static: dict | None = None, every: dict | None = None) -> dict:
    """``pipeline_folding.throughput_table`` of the build, one entry per design with its accuracy and, where the
    build emitted it, its Verilator figures and Yosys resources (``fits``: by them, else by the estimates);
    ``claim``: DFS against every static network at least as accurate, judged only on accuracies of the same test
    images."""
    from .hls import finn_env
    from .hls.pipeline_folding import DESIGNS, _designs, throughput_table

    built = built_row(build_dir)
    with finn_env.scratch("fracskip-bench-"):
        # the DFS row the build's accelerator was folded with, where it has one (its folding is the one emitted and
        # measured): the table folds the static pipelines alone
        table = throughput_table(build_dir, designs=_designs(build_dir, DESIGNS[1:] if built else None),
                                 rows={"dfs": built} if built else None)
    summary = json.loads((build_dir / "summary.json").read_text())
    clk_hz = 1e9 / summary["board"]["clk_ns"]
    side = checkpoint.parent
    rows = {r["model"]: r for r in _json(side / "compare.json", [])}
    # DFS's accuracy: this bench's evaluation, or, when that saw fewer images than the static rows (--quick), the
    # checkpoint's own eval.json on the whole test set
    acc = {"dfs": (model["accuracy"], model["n"], "this bench's evaluation")}
    full = _json(side / "eval.json", {})
    if rows and full.get("n", 0) > model["n"]:
        acc["dfs"] = (full["accuracy"], full["n"], "eval.json beside the checkpoint")
    for name, row in STATIC_ROWS.items():
        r = rows.get(row)
        # a static network of the pipeline's architecture trained on its own; the pipeline measured carries the DFS
        # network's weights at that width (its shapes, and so its speed, are the same: hls/baselines.py)
        acc[name] = ((r["accuracy"], r["n"], f"compare.json beside the checkpoint: {r.get('checkpoint', row)}, "
                      "trained on its own") if r else (None, None, None))
    statics = [n for n in STATIC_ROWS if n in table]  # the widths the export has paths for
    out = {"board": table["board"], "budget_fraction": table["budget_fraction"], "clock_mhz": clk_hz / 1e6,
           "note": "estimates (FINN's per node, MVAU_rtl's DSPs by its RTL's lane packing, fracskip's units by "
                   "models fitted to Yosys): cycles_per_image_model, the folding's; resources_est, the nodes, a "
                   "depth-2 FIFO on each of their outputs and the width converters the allocator charges; "
                   "resources_est_inserted, with FINN's estimates of the width converters and the FIFOs after them "
                   "(FIFOs deeper than 2, from sizing by simulation, in neither); resources_est_emitted, the design "
                   "as emitted, sized FIFOs and frame buffers included. bitops_per_image: DFS's under the gates' "
                   "calibration frequencies (the folding's), the claim's measured ratios under the decisions of the "
                   "images measured. Measured: cycles_per_image_measured in Verilator; images_per_s_measured, those "
                   "cycles at the board's clock (assumed: no timing analysis here); resources_synth, Yosys of the "
                   "emitted HDL. fits: by resources_synth against the device where there are some, else by the "
                   "emitted design's estimates against the device, else by the folding's against the budget "
                   "(fits_from). Every design's nodes are folded within budget_fraction of the device; FIFOs and "
                   "frame buffers come on top, within the device: frame_buffers_frames_more counts the frames DFS's "
                   "buffers hold beyond need, in that room, which the static pipelines have no buffers to use"}
    emitted = {"dfs": summary.get("accelerator") or {}, **(summary.get("baselines") or {})}
    measured_on = {"dfs": rtlsim, **(rtlsim_static or {})}
    for name in ("dfs", *statics):
        d, e, r = table[name], emitted.get(name) or {}, measured_on.get(name)
        # an emitted design was folded with the units the accelerator builds (no fixed-precision bit-serial unit
        # outside the gated blocks): its own folding's figure is the one its measurement is held to
        model_cycles = e.get("cycles_per_image_model", d["cycles_per_image_model"])
        measured = r["cycles_per_image_measured"] if r else None
        synth = e.get("resources_synth")
        fits, fits_from = judged_fit(e, d)
        out[name] = {
            "accuracy": acc[name][0], "accuracy_images": acc[name][1], "accuracy_from": acc[name][2],
            "bitops_per_image": d["bitops_per_image"],
            "cycles_per_image_model": model_cycles,
            "model_from": "the emitted design's folding" if e else "the throughput table's folding (not emitted)",
            "images_per_s_model": clk_hz / model_cycles,
            "cycles_per_image_measured": measured,
            "measured_on_images": r["n"] if r else None,
            "images_per_s_measured": clk_hz / measured if measured else None,
            # an emitted design's own folding's figures, beside its own cycles (the table's folding may differ)
            "resources_est": e.get("resources_estimate", d["resources_est"]),
            "resources_est_inserted": e.get("resources_estimate_inserted", d["resources_estimate_inserted"]),
            "resources_synth": synth, "fits": fits, "fits_from": fits_from,
            "fit_attempts": e.get("fit_attempts"), "fit_reserve": e.get("fit_reserve")}
        if "frame_buffers_frames_more" in e:  # device room beyond the budget that only DFS's frame buffers can use
            out[name]["frame_buffers_frames_more"] = e["frame_buffers_frames_more"]
        if "resources_estimate_emitted" in e:
            out[name]["resources_est_emitted"] = e["resources_estimate_emitted"]["total"]
            out[name]["fits_device_emitted"] = e["fits_device_estimate_emitted"]
    out["claim"] = claim(out, statics, rtlsim, every)
    return out


def judged_fit(emitted: dict, folded: dict) -> tuple[bool, str]:
    """(fits, by what) of a design: ``emitted``, its entry in the build's summary (empty where the build did not
    emit it); ``folded``, its throughput table row. The strongest evidence there is: Yosys of the emitted HDL, else
    the emitted design's estimates (sized FIFOs and frame buffers included), both against the device; else the
    folding's estimates against the budget."""
    if emitted.get("resources_synth"):
        return emitted["fits_device_synth"], "Yosys of the emitted HDL against the device"
    if "fits_device_estimate_emitted" in emitted:
        return emitted["fits_device_estimate_emitted"], "the emitted design's estimates against the device"
    return folded["fits"], "the folding's estimates against the budget"


def claim(rows: dict, statics: list[str], rtlsim: dict | None, every: dict | None = None) -> dict:
    """DFS against each static pipeline: speedups, BitOPs ratios, and whether DFS is faster than every static
    network at least as accurate (``None``, with ``why_none``, where that cannot be judged). ``every``: DFS's
    frame-sequence model on every test image (``hls.accelerator.model_on_images``), its speedups beside the
    measured ones."""
    dfs = rows["dfs"]
    c = {"speedup_model": {n: rows[n]["cycles_per_image_model"] / dfs["cycles_per_image_model"] for n in statics},
         "bitops_ratio": {n: rows[n]["bitops_per_image"] / dfs["bitops_per_image"] for n in statics}}
    absent = {n: f"the export has no {n.rsplit('A', 1)[1]}-bit paths" for n in STATIC_ROWS if n not in statics}
    if absent:
        c["statics_absent"] = absent
    if dfs.get("frame_buffers_frames_more"):
        c["dfs_frame_buffers_frames_more"] = dfs["frame_buffers_frames_more"]
    if statics and all(rows[n]["cycles_per_image_measured"] for n in ("dfs", *statics)):
        sp = {n: rows[n]["cycles_per_image_measured"] / dfs["cycles_per_image_measured"] for n in statics}
        c["speedup_measured"] = sp
        # the bar: at least 85 % of the BitOPs ratio, the limit of a datapath whose cycles follow BitOPs;
        # DFS's BitOPs on the images its speedup was measured on (the statics' do not depend on the image)
        ratio = {n: rows[n]["bitops_per_image"] / rtlsim["bitops_per_input"] for n in statics}
        c["bitops_ratio_measured_images"] = ratio
        c["speedup_measured_over_bitops_ratio"] = {n: sp[n] / ratio[n] for n in statics}
        if every:
            sp = {n: rows[n]["cycles_per_image_measured"] / every["cycles_per_image_model"] for n in statics}
            ratio = {n: rows[n]["bitops_per_image"] / every["bitops_per_image"] for n in statics}
            c["every_test_image"] = {
                "what": f"DFS on all {every['n']} test images by its frame-sequence model (which the measured images "
                        "hold it to), the statics as measured (their spacing does not depend on the image)",
                "n": every["n"], "dfs_cycles_per_image_model": every["cycles_per_image_model"], "speedup": sp,
                "bitops_ratio": ratio, "speedup_over_bitops_ratio": {n: sp[n] / ratio[n] for n in statics}}
    unknown = [STATIC_ROWS[n] for n in statics if rows[n]["accuracy"] is None]
    why = ("no static pipeline was built" if not statics else
           f"no accuracy for {', '.join(unknown)}: compare.json beside the checkpoint has none (`fracskip compare` "
           "writes it)" if unknown else
           "the accuracies are not all on the same test images"
           if any(rows[n]["accuracy_images"] != dfs["accuracy_images"] for n in statics) else None)
    peers = None if why else [n for n in statics if rows[n]["accuracy"] >= dfs["accuracy"]]
    if peers == []:
        why = "no static network here is at least as accurate as DFS: there is none to be faster than"
    c["statics_at_least_as_accurate"] = peers
    measured = "speedup_measured" in c
    if why:
        c["why_none"] = why
        c["dfs_faster_than_every_peer_model"] = None
        if measured:
            c["dfs_faster_than_every_peer_measured"] = None
    else:
        # a DFS that cannot be placed has no throughput at the budget to claim, however fast its model or simulation
        fits = dfs.get("fits") is not False
        if not fits:
            c["why_false"] = f"DFS does not fit ({dfs.get('fits_from', 'estimates')})"
        c["dfs_faster_than_every_peer_model"] = fits and all(
            rows[n]["cycles_per_image_model"] > dfs["cycles_per_image_model"] for n in peers)
        if measured:  # the claim is on measured throughput
            c["dfs_faster_than_every_peer_measured"] = fits and all(c["speedup_measured"][n] > 1 for n in peers)
    return c


def _json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


def stage(name: str, what: str) -> None:
    log.info("bench: %s (%s)", name, what)


def _pick(d: dict, *keys: str) -> dict:
    return {k: d.get(k) for k in keys}

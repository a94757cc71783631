"""The one command-line interface: ``fracskip train | eval | compare | budget | export | build | simulate | bench |
demo | deploy``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .demo import IMAGES as DEMO_IMAGES
from .errors import FracskipError
from .runtime import DEPLOY_TIMEOUT_S, TIMEOUT_IMAGES

log = logging.getLogger("fracskip")


def _menu(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bit menu is a comma-separated list of widths, 0 = skip (got {s!r})")


def _probs(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one relative frequency per bit-menu entry, e.g. 1,2,3.5,3.5; "
                                         f"got {s!r}")


def _epochs(s: str) -> dict[str, float]:
    """'backbone=8,gates=0.5,joint=1'"""
    try:
        return {k: float(v) for k, v in (kv.split("=") for kv in s.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected stage=epochs,... (e.g. backbone=8,gates=0.5,joint=1), got {s!r}")


def cmd_train(a: argparse.Namespace) -> int:
    from .training.train import TrainConfig, train

    cfg = TrainConfig()
    if a.resume:  # the run's own options: `--resume` alone continues it; options given must agree (train checks)
        import dataclasses

        from .training.checkpoint import load_raw

        saved = load_raw(Path(a.output) / "checkpoint.pt")["train_config"]
        cfg = TrainConfig(**{f.name: saved[f.name] for f in dataclasses.fields(TrainConfig) if f.name in saved})
    over = {k: v for k, v in {
        "dataset": a.dataset, "data_dir": a.data, "train_limit": a.limit, "test_limit": a.test_limit,
        "depth": a.depth, "bit_menu": a.bit_menu, "stages": tuple(a.stages.split(",")) if a.stages else None,
        "target": a.target, "alpha": a.alpha, "init": a.init, "distill": a.distill, "seed": a.seed,
        "batch_size": a.batch_size,
        "path_probs": a.path_probs, "mode": a.mode, "channel_group": a.channel_group,
    }.items() if v is not None}
    if a.mode in ("channels", "both") and a.bit_menu is None:  # LC-Net's setting: skip, or 8 bits with channels
        over["bit_menu"] = (0, 8) if a.mode == "channels" else cfg.bit_menu
    if a.epochs:
        over["epochs"] = {**cfg.epochs, **a.epochs}
    if a.lr:
        over["lr"] = {**cfg.lr, **a.lr}
    cfg = TrainConfig(**{**cfg.__dict__, **over})
    ev = train(cfg, Path(a.output), resume=a.resume)
    if ev:
        print(json.dumps({k: ev[k] for k in ("accuracy", "compute_pct", "bitops_per_input")}))
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    import torch

    from .training import data as D
    from .training.checkpoint import load_model, trained_on
    from .training.evaluate import evaluate

    net, ck = load_model(a.checkpoint)
    dataset = a.dataset or trained_on(ck)
    split = D.load(dataset, "test", a.data, a.limit)
    forced = None
    if a.bits is not None:
        if a.bits not in net.cfg.routes:
            raise FracskipError(f"--bits {a.bits}: this model's gated blocks have paths at "
                                f"{', '.join(map(str, net.cfg.routes))} bits (0 = skip)")
        forced = torch.full((len(split), net.n_gated), net.cfg.routes.index(a.bits))
    ev = evaluate(net, split, choices=forced, progress=not a.json)
    if a.bits is not None:
        ev["forced_bits"] = a.bits
    ev["checkpoint"] = a.checkpoint if a.checkpoint in ("default", "lcnet") else ck["path"]
    ev["dataset"] = dataset
    if a.json:
        print(json.dumps(ev))
    else:
        print(f"accuracy {ev['accuracy']:.4f}  compute {ev['compute_pct']:.1f} % of 8-bit  "
              f"BitOPs/input {ev['bitops_per_input']:.3e}  ({ev['n']} images)")
        for g, c in enumerate(ev["choices"]):
            kept = ev.get("kept_channel_fraction")
            print(f"  gated block {g + 1}: " + "  ".join(f"{'skip' if b == '0' else b + '-bit'}={n}" for b, n in c.items())
                  + ("" if not kept or kept[g] is None else f"  channels kept {100 * kept[g]:.1f} %"))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export.exporter import export

    m = export(a.checkpoint, Path(a.output), overwrite=a.force, progress=not a.quiet)
    n = len(m.cores())
    print(f"exported {n} cores ({', '.join(m.cores())}) to {a.output}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from .simulate import simulate
    from .training import data as D

    from .validate import export_dataset

    split = D.load(a.dataset or export_dataset(a.folder), "test", a.data, a.limit)
    res, _ = simulate(a.folder, a.backend, split.images.numpy(), split.labels.numpy(), batch_size=a.batch_size or 64,
                      progress=not a.json, graphs=a.graphs or "finn", design=a.design, threads=a.threads,
                      jobs=a.jobs)
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>28}: {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


def cmd_deploy(a: argparse.Namespace) -> int:
    """The accelerator's package (FINN's layout: driver/settings.json) on a board, or with --simulate its
    Verilator model through the same driver. On a board: numpy, pynq and the standard library, no torch."""
    from .runtime import accelerator_driver as ad
    from .runtime.host import load_array

    images = load_array(a.images)[:a.limit]
    labels = load_array(a.labels)[:a.limit] if a.labels else None
    if a.simulate:
        from .hls import deploy_package as DP

        pkg, sim, overlay = DP.open_simulated(a.package, batch_size=a.batch_size, progress=not a.json,
                                              timeout_s=a.timeout or DEPLOY_TIMEOUT_S)
    else:
        pkg, overlay = ad.open_board(a.package, a.batch_size, a.timeout or DEPLOY_TIMEOUT_S,
                                     finn_driver=a.finn_driver)
    drv = ad.AcceleratorDriver(pkg, overlay)
    try:
        run = drv.run(images, a.batch_size)
    finally:
        if a.simulate:
            sim.close()
    res = drv.report(run, labels)
    if a.simulate:  # the same figures as on a board, then the simulation's own and the golden's
        res["simulated"] = True
        res["images_per_s_note"] = "wall clock of the driver with the Verilator model, not a board's rate"
        res["rtlsim"] = {"fifos": sim.fifos, **sim.cycle_report(),
                         "images_per_s_at_fclk": (1e6 * pkg.info["fclk_mhz"] / sim.cycle_report()["cycles_per_image"]
                                                  if sim.cycle_report()["cycles_per_image"] else None),
                         "verilated_now": bool(sim.sim.compiled)}
        gold = DP.golden(pkg, images, labels)
        res.update(DP.compare(run, gold))
        res.update({k: v for k, v in gold.items() if k.startswith("accuracy")})
    print(json.dumps(res, default=float) if a.json else "\n".join(f"{k:>22}: {v}" for k, v in res.items()))
    return 0


def cmd_build(a: argparse.Namespace) -> int:
    from .hls.build import BuildConfig, build

    cfg = BuildConfig(board=a.board, until=a.until, target_fps=a.target_fps, budget=a.budget, workers=a.workers,
                      calibration_images=a.calibration, data_dir=a.data, mvau=a.mvau, baselines=a.baselines,
                      synth=a.synth, ignore_fit=a.ignore_fit,
                      **({} if a.sizing_images is None else {"accelerator_images": a.sizing_images}))
    s = build(a.export_dir, Path(a.output), cfg, force=a.force, progress=not a.quiet)
    cores, v1 = s["totals"], s["per_path_cores"]
    print(f"{len(s['cores'])} cores for {s['board']['name']} ({s['board']['part']}), {v1['folding']}; "
          f"{s['time_s']['total']:.0f} s")
    if "accelerator" in s:
        r = s["accelerator"]
        print(f"  accelerator ({r['nodes']} nodes): {r['cycles_per_image_model']:.0f} cycles per image expected "
              f"(folding, bottleneck {r['bottleneck_model']}), {r['cycles_per_image_emitted']:.0f} measured in "
              f"Verilator as emitted on {r['sizing_images']} images "
              f"({r['cycles_per_image_fifos_unbounded']:.0f} with every FIFO at two frames)")
        fit = "fits" if r["fits_device_estimate_emitted"] else "DOES NOT FIT"
        t = r["resources_estimate_emitted"]["total"]
        print(f"  as emitted, FIFOs and width converters included: LUT {t['LUT']:.0f}, BRAM_18K {t['BRAM_18K']:.0f}, "
              f"DSP {t['DSP']:.0f} (FINN's estimates) -> {fit} the device")
    for name, r in (("accelerator", s.get("accelerator")), *(s.get("baselines") or {}).items()):
        if name != "accelerator":
            print(f"  {name} ({r['nodes']} nodes): {r['cycles_per_image_model']:.0f} cycles per image expected, "
                  f"{r['cycles_per_image_emitted']:.0f} measured as emitted")
        if r and "resources_synth" in r:
            y = r["resources_synth"]
            print(f"    Yosys of the emitted HDL: LUT {y['LUT']}, FF {y['FF']}, BRAM_18K {y['BRAM_18K']}, "
                  f"DSP {y['DSP']} -> {'fits' if r['fits_device_synth'] else 'DOES NOT FIT'} the device "
                  f"({r['synth_report']})")
            if r["fit_attempts"] > 1:
                kept = ", ".join(f"{k} {v:.0f}" for k, v in r["fit_reserve"].items())
                print(f"    folded {r['fit_attempts']} times to fit: {kept} kept out of the folding's budget")
    if "bitstream" in s:
        print(f"  bitstream: {a.output}/{s['bitstream']['bitfile']}; deployment package: {a.output}/"
              f"{s['bitstream']['package']}")
    # the per-path cores (one FINN core per block and width, run one at a time by the host: the first version's
    # design, kept as a debugging aid): their sums, not the accelerator's
    static = "" if v1["static_8bit"] is None else (
        f" (static all-8-bit cores: {v1['static_8bit']['expected_cycles_per_input']:.0f}, "
        f"{v1['speedup_vs_static_8bit']:.2f}x)")
    print("  per-path cores (one at a time from the host; not the accelerator): "
          + ", ".join(f"{r} {cores['resources'][r]:.0f}/{cores['capacity'][r]} "
                      f"({100 * cores['utilization'][r]:.0f} %)" for r in cores["resources"])
          + f" -> {'fit' if cores['fits'] else 'do not fit'} together; expected cycles per input "
            f"{v1['expected_cycles_per_input']:.0f}{static}")
    return 0


def cmd_budget(a: argparse.Namespace) -> int:
    from .training.budget import calibrate_budget

    info = calibrate_budget(a.checkpoint, a.target, a.output, images=a.images, dataset=a.dataset, data_dir=a.data,
                            menu=a.menu)
    what = [f"menu {','.join(map(str, info['menu']))} ({info['same_decisions_pct']:.2f} % of the images decide "
            "as before)"] if "menu" in info else []
    what += [f"lambda {info['lambda']:.4f}"] if "lambda" in info else []
    print(json.dumps(info) if a.json else f"wrote {a.output}: {', '.join(what)}, "
          f"{100 * info['train_compute']:.1f} % compute on {info['train_images']} training images")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .training.compare import compare, plot, table

    from .validate import compare_rows

    include = [compare_rows(Path(f)) for f in a.include or ()]
    rows = compare(a.checkpoints, a.dataset, a.data, a.limit, progress=not a.json, oracle=a.oracle, include=include)
    if a.plot:
        plot(rows, Path(a.plot))
    print(json.dumps(rows) if a.json else table(rows))
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import bench

    import contextlib

    # FINN's builder and torch.onnx print progress to stdout; with --json, stdout carries the JSON object alone
    with contextlib.redirect_stdout(sys.stderr) if a.json else contextlib.nullcontext():
        fig = bench(Path(a.output), a.checkpoint, a.quick, a.workers, a.mvau, a.force, progress=not a.json)
    if a.json:
        print(json.dumps(fig))
    else:
        print(json.dumps(fig, indent=1))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    import time

    from .bench import STATIC_ROWS
    from .demo import decisions_against, demo

    t = time.time()
    r = demo(Path(a.output), a.checkpoint, a.board, a.images, a.workers, a.backend, a.force)
    ev, s, sim, tp = r["eval"], r["summary"], r["simulate"], r["throughput"]
    print(f"\nfracskip demo: {time.time() - t:.0f} s")
    print(f"  model      accuracy {ev['accuracy']:.4f} at {ev['compute_pct']:.1f} % of the 8-bit compute "
          f"({ev['n']:,} test images)")
    acc = s["accelerator"]
    print(f"  build      one pipelined accelerator for {s['board']['name']} ({acc['nodes']} nodes): "
          f"{'fits' if acc['fits_device_estimate_emitted'] else 'does NOT fit'} the device as emitted (estimates); "
          f"{acc['cycles_per_image_model']:,.0f} cycles/image (model)")
    present = [k for k in ("dfs", *STATIC_ROWS) if k in tp]
    print("  throughput " + ", ".join(f"{k} {tp[k]['images_per_s_model']:,.0f}" for k in present)
          + f" images/s (folding model, {tp['clock_mhz']:.0f} MHz)")
    measured = ""
    if sim.get("cycles_per_image_measured"):
        measured = (f"; {sim['cycles_per_image_measured']:,.0f} cycles/image measured = "
                    f"{tp['dfs']['images_per_s_measured']:,.0f} images/s at {tp['clock_mhz']:.0f} MHz")
    print(f"  simulate   {sim['n']} images on {sim['backend']}: accuracy {sim['accuracy']:.4f}, "
          f"{decisions_against(sim)} {sim['decisions_match_pct']:.0f} %"
          + (f", torch {sim['decisions_match_torch_pct']:.0f} %" if "decisions_match_torch_pct" in sim else "")
          + measured)
    print(f"  report     {r['report']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fracskip", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a DFS network (or a baseline) with Brevitas")
    t.add_argument("-o", "--output", required=True, help="run folder (checkpoint.pt, model.pt, eval.json)")
    t.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "synthetic"))
    t.add_argument("--data", help="dataset folder (default: Debian's Fashion-MNIST location)")
    t.add_argument("--limit", type=int, help="use only the first N training images")
    t.add_argument("--test-limit", type=int, help="evaluate on the first N test images")
    t.add_argument("--depth", type=int, help="ResNet depth 6n+2 (default 14; the paper uses 38 and 74)")
    t.add_argument("--bit-menu", type=_menu, help="e.g. 0,2,4,8 (DFS), 0,8 (skip-only), 4 (static W4A4)")
    t.add_argument("--stages", help="comma-separated subset of backbone,gates,joint")
    t.add_argument("--path-probs", type=_probs, help="stage 1: relative frequency of each bit-menu entry, e.g. 1,2,3.5,3.5 "
                                        "(default: uniform)")
    t.add_argument("--epochs", type=_epochs, help="per stage, e.g. backbone=8,gates=0.5,joint=1")
    t.add_argument("--lr", type=_epochs, help="learning rate per stage, e.g. backbone=1e-3,joint=2e-4")
    t.add_argument("--target", type=float, help="target compute as a fraction of the all-8-bit network")
    t.add_argument("--alpha", type=float, help="weight of the target-cost loss")
    t.add_argument("--init", help="start from this checkpoint's weights (e.g. a trained backbone)")
    t.add_argument("--distill", metavar="CKPT", help="distil this checkpoint's all-8-bit logits into the model being "
                                                     "trained (every stage; KL at temperature 4)")
    t.add_argument("--mode", choices=("bits", "channels", "both"),
                   help="bits: DFS (default); channels: per-input channel groups at one precision, skip allowed "
                        "(LC-Net-style; bit menu 0,8 unless given); both: bit-width and channel groups")
    t.add_argument("--channel-group", type=int, metavar="N",
                   help="channels per skippable group (one PE fold) for --mode channels/both; must divide the widths")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--resume", action="store_true", help="continue the run in --output from its checkpoint")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="accuracy and compute of a checkpoint")
    e.add_argument("checkpoint", help="a checkpoint file, a run folder, 'default' or 'lcnet' (channel skipping)")
    e.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "synthetic"))
    e.add_argument("--data", help="dataset folder")
    e.add_argument("--limit", type=int, help="first N test images")
    e.add_argument("--bits", type=int, help="run every gated block at this width instead of the gates' choice "
                                            "(0 = skip; a width the backbone has beyond the menu too): the backbone "
                                            "at one fixed precision")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("compare", help="accuracy vs compute of several checkpoints on the same test set")
    c.add_argument("checkpoints", nargs="+", help="checkpoint files or run folders")
    c.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "synthetic"),
                   help="default: the dataset the checkpoints were trained on")
    c.add_argument("--data", help="dataset folder")
    c.add_argument("--limit", type=int, help="first N test images (default: all)")
    c.add_argument("--plot", help="write the accuracy-vs-compute plot here (.png, .pdf or .svg)")
    c.add_argument("--oracle", metavar="CKPT", help="also the oracle routings (per image: cheapest correct uniform "
                                                    "precision; per-block greedy) on this checkpoint, e.g. the backbone")
    c.add_argument("--include", action="append", metavar="JSON",
                   help="rows of an earlier `fracskip compare --json` on the same test images, e.g. "
                        "training/checkpoints/default/compare.json (repeatable)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    u = sub.add_parser("budget", help="move a trained DFS model to another compute target without training "
                                      "(a price on compute in the gates' output layer, set on training images), "
                                      "or drop bit-menu entries its gates do not use")
    u.add_argument("checkpoint", help="a DFS checkpoint, a run folder, 'default' or 'lcnet'")
    u.add_argument("--target", type=float, help="mean compute, as a fraction of the all-8-bit network")
    u.add_argument("--menu", type=_menu, metavar="B,B,...",
                   help="keep only these bit-menu entries (e.g. 0,2,4): the others' paths and gate outputs are "
                        "removed, so hardware need not support them; reports how many training images decide "
                        "as before")
    u.add_argument("-o", "--output", required=True, help="the new checkpoint file (must not exist)")
    u.add_argument("--images", type=int, default=2000, help="training images to set the price on (default 2000)")
    u.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "synthetic"),
                   help="default: the dataset the checkpoint was trained on")
    u.add_argument("--data", help="dataset folder")
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=cmd_budget)

    n = sub.add_parser("bench", help="measure the project's figures in one run (model, golden, build, RTL)")
    n.add_argument("-o", "--output", default="bench-out", help="working folder (export, builds, bench.json)")
    n.add_argument("--checkpoint", default="default")
    n.add_argument("--quick", action="store_true", help="CI-sized: fewer images, one board")
    n.add_argument("--workers", type=int, default=1, help="parallel FINN builds and Yosys processes")
    n.add_argument("--mvau", choices=("lut", "dsp", "hls"), help="matrix-vector unit (default: the builder's)")
    n.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    n.add_argument("--json", action="store_true", help="print one JSON object")
    n.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="shipped default -> export -> build -> RTL simulation -> report")
    d.add_argument("-o", "--output", default="demo-out")
    d.add_argument("--checkpoint", default="default")
    d.add_argument("--board", default="Pynq-Z2")
    d.add_argument("--images", type=int, default=DEMO_IMAGES,
                   help=f"test images through the RTL simulation (default {DEMO_IMAGES})")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--backend", default="rtlsim", choices=("rtlsim", "qonnx"))
    d.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    d.set_defaults(func=cmd_demo)

    x = sub.add_parser("export", help="QONNX graphs of every core (stem, each block path, head), gates and manifest")
    x.add_argument("checkpoint", help="a checkpoint file, a run folder, 'default' or 'lcnet' (channel skipping)")
    x.add_argument("-o", "--output", required=True, help="export folder")
    x.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.set_defaults(func=cmd_export)

    s = sub.add_parser("simulate", help="run test images through the network: torch, the numpy controller over the "
                                       "exported cores (qonnx), or the accelerator's Verilator model (rtlsim)")
    s.add_argument("folder", help="an export folder (torch, qonnx) or a build folder (rtlsim)")
    s.add_argument("--backend", default="qonnx", choices=("torch", "qonnx", "rtlsim"))
    s.add_argument("--graphs", choices=("finn", "qonnx"),
                   help="qonnx backend: run each core as FINN's front end leaves it (exact integers, default) "
                        "or the raw QONNX files in float32")
    s.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "synthetic"),
                   help="default: the dataset the exported checkpoint was trained on")
    s.add_argument("--data", help="dataset folder")
    s.add_argument("--limit", type=int, default=1000, help="first N test images (default 1000)")
    s.add_argument("--batch-size", type=int,
                   help="torch, qonnx: images per batch through the controller (default 64; rtlsim streams them all)")
    s.add_argument("--design", default="dfs", choices=("dfs", "static_W2A2", "static_W4A4", "static_W8A8"),
                   help="rtlsim: which accelerator of the build (the static ones: `fracskip build --baselines`)")
    s.add_argument("--threads", type=int, default=1,
                   help="rtlsim: threads of the Verilator model (default 1; 2 on a 2-core machine: about 1.5x)")
    s.add_argument("--jobs", type=int, default=1,
                   help="rtlsim: Verilator models run side by side, each streaming a contiguous share of the images "
                        "(default 1; one per core is the fastest)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_simulate)

    b = sub.add_parser("build", help="the whole network as one pipelined FINN dataflow accelerator for a board "
                                    "(HDL, FIFOs sized in Verilator)")
    b.add_argument("export_dir", help="a folder written by `fracskip export`")
    b.add_argument("--board", required=True, help="Pynq-Z2, ZCU104 or U250 (bitstreams/boards/*.json)")
    b.add_argument("-o", "--output", required=True, help="build folder")
    b.add_argument("--until", default="hdl", choices=("estimates", "hdl", "bitstream"),
                   help="estimates: FINN's reports only; hdl (default): the accelerator's HDL, FIFOs sized by "
                        "simulation; bitstream: then FINN's stitched IP, shell build and driver (Vivado and Vitis "
                        "HLS, v++ for Alveo) and the deployment package in OUTPUT/deploy")
    b.add_argument("--target-fps", type=float,
                   help="fold the per-path cores (BUILD/cores/) uniformly for this rate instead of by their path "
                        "frequencies; the accelerator is always folded for its expected cycles within --budget")
    b.add_argument("--budget", type=float, default=0.8,
                   help="share of the device each design is folded into: the accelerator, each baseline, "
                        "the per-path cores (default 0.8)")
    b.add_argument("--workers", type=int, default=1, help="parallel FINN builds and Yosys processes")
    b.add_argument("--calibration", type=int, default=1000, help="training images to measure path frequencies")
    b.add_argument("--sizing-images", type=int,
                   help="calibration images the accelerator's FIFOs are sized on in Verilator (default 24)")
    b.add_argument("--data", help="dataset folder for calibration")
    b.add_argument("--baselines", action="store_true",
                   help="also emit the static W2A2/W4A4/W8A8 pipelines, folded on the same budget, FIFOs sized in "
                        "Verilator (BUILD/baselines/; `fracskip simulate BUILD --backend rtlsim --design "
                        "static_W4A4` runs one)")
    b.add_argument("--synth", action="store_true",
                   help="Yosys (synth_xilinx, xc7) of the emitted HDL node by node: synthesized LUT/FF/BRAM/DSP "
                        "and fit in summary.json (a few minutes; cached by node)")
    b.add_argument("--mvau", default="lut", choices=("lut", "dsp", "hls"),
                   help="the per-path cores' matrix-vector units (BUILD/cores/): lut = fracskip's LUT-based RTL MVAU "
                        "below 8 bits, FINN's DSP-based MVAU_rtl at 8 (default); dsp = MVAU_rtl everywhere; hls = "
                        "FINN's MVAU_hls (HDL needs Vitis). The accelerator and the baselines take the cheaper unit "
                        "per layer (MVAU_lut or MVAU_rtl; the bit-serial unit in gated blocks) whatever this says")
    b.add_argument("--ignore-fit", action="store_true",
                   help="--until bitstream: run Vivado even where FINN's estimates of the emitted accelerator exceed "
                        "the device (they are estimates; --synth judges the fit by Yosys of the HDL instead)")
    b.add_argument("--force", action="store_true", help="replace a non-empty build folder")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_build)

    y = sub.add_parser("deploy", help="on a PYNQ/Alveo board: run images through the package's overlay "
                                      "(no board code path has been run on a board yet); --simulate: through "
                                      "the accelerator's Verilator model, with the same driver")
    y.add_argument("package", help="the accelerator's deployment package (FINN's layout: bitfile/, driver/; "
                                   "python -m fracskip.hls.deploy_package)")
    y.add_argument("--simulate", action="store_true",
                   help="no board: the driver's DMAs stream through the Verilator model of the accelerator; "
                        "adds the golden's figures (decisions_match_pct, bit_exact_pct)")
    y.add_argument("--finn-driver", action="store_true",
                   help="on a board: FINN's own FINNDMAOverlay (pip install finn-plus-driver) instead of "
                        "fracskip's numpy copy of its DMA sequences")
    y.add_argument("--images", required=True, help="(N, C, H, W) uint8 images: .npy, or an IDX file (.gz)")
    y.add_argument("--labels", help="labels (.npy or IDX) for the accuracy")
    y.add_argument("--limit", type=int, help="first N images")
    y.add_argument("--batch-size", type=int, default=64)
    y.add_argument("--timeout", type=float, help=f"seconds per {TIMEOUT_IMAGES} images of a batch (at least once) "
                   f"before a batch that does not finish is reported stalled (default {DEPLOY_TIMEOUT_S:g}; zynq-iodma "
                   "and --simulate; FINN's driver and XRT wait without one)")
    y.add_argument("--json", action="store_true", help="print one JSON object")
    y.set_defaults(func=cmd_deploy)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 2 refused (a bad argument or input: ``fracskip: error: ...``, no traceback, nothing
    written); 130 interrupted."""
    from . import validate

    try:
        a = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage error (2) or the help (0)
        return int(e.code or 0)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        validate.check(a)  # every argument, before any work starts
        return a.func(a)
    except FracskipError as e:
        print(f"fracskip: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the environment refused a read or write: say which file, no traceback
        where = f" {e.filename}" if e.filename else ""
        print(f"fracskip: error: cannot access{where}: {e.strerror or e}; check the path and its permissions",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fracskip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``fracskip build``: an export -> one FINN dataflow core per (block, bit-width) path, plus stem and head,
folded together for one board, to FINN's estimate reports, HDL, or (where Vivado exists) a bitstream.

BUILD_DIR/
  build_config.json   the options of this build
  export/             a copy of the export it was built from (manifest, QONNX graphs, gates)
  calibration.json    how often each path runs, measured with the trained model
  cores/<core>/       one FINN build each, in FINN's layout: report/*.json, intermediate_models/, folding_config.json;
                      report/mvau_layers.json: which MVAU each matrix layer became (``--mvau``)
  accelerator/        (--until hdl) the whole network as one pipelined FINN graph, composed
                      from the cores' graphs (hls/accelerator.py: bit-serial datapaths, folded by
                      hls/pipeline_folding.py), its HDL and its FIFOs sized by Verilator simulation on real
                      images: intermediate_models/, report/accelerator.json; `fracskip simulate BUILD --backend
                      rtlsim` runs it; with --until bitstream (Vivado, Vitis HLS; v++ for Alveo) FINN's
                      own steps after the HDL add stitched_ip/, bitfile/ and the post-synthesis reports
                      (hls/shell.py)
  baselines/<design>/ (--baselines) the static W2A2/W4A4/W8A8 pipelines (hls/baselines.py), each emitted as the
                      accelerator is: folded by the same allocator on the same budget, FIFOs sized in Verilator;
                      `fracskip simulate BUILD --backend rtlsim --design static_W4A4` runs one
                      (--synth) report/synth.json beside each report/accelerator.json: Yosys of the emitted HDL,
                      node by node (hls/synth/hdl.py), and whether it fits the device by those figures; a
                      design that does not is folded again with what Yosys found beyond the folding's estimates
                      kept out of its budget
  deploy/             (--until bitstream) the deployment package: FINN's bitfile/ and driver/, fracskip's host
                      side (hls/deploy_package.py); `fracskip deploy BUILD/deploy` runs it on the board
  summary.json        written last: per core layers, resources and cycles; totals against the board;
                      expected cycles per input vs a static all-8-bit network on the same budget (the first
                      version's design: a core per path, run one at a time); an "accelerator" section

The cores are the accelerator's input (its datapaths take their layers, weights and thresholds); their own HDL keeps
FINN's minimal FIFOs, on which a residual block's fork deadlocks (FINN-NOTES §3b): only the accelerator, whose
FIFOs are sized by simulation, is meant to run. The first version's host-driven per-core runtime is retired.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import bitstreams
from ..errors import FracskipError, ToolMissingError
from ..outdir import fresh
from ..runtime.manifest import Manifest
from . import core as finn_core
from . import shell
from . import finn_env
from .folding import RESOURCES, allocate, uniform

log = logging.getLogger(__name__)
UNTIL = ("estimates", "hdl", "bitstream")
# lut: fracskip's LUT-based RTL MVAU below 8 bits, FINN's DSP-based MVAU_rtl at 8; dsp: MVAU_rtl everywhere;
# hls: FINN's LUT-based MVAU_hls (HDL needs Vitis HLS)
MVAU = ("lut", "dsp", "hls")
FORMAT = "fracskip-build/2"  # 2: the per-path cores' figures under per_path_cores

# What runs outside the accelerator, and why (reported in summary.json).
HOST_SIDE = [
    {"what": "NCHW -> NHWC transpose of the input images", "where": "host (a DMA buffer layout)",
     "why": "FINN's dataflow streams NHWC"},
    {"what": "the head's final float scale and bias", "where": "host CPU, numpy",
     "why": "the accelerator ends in the classifier's integers; 10 multiply-adds per image"},
]


@dataclass
class BuildConfig:
    board: str = "Pynq-Z2"
    until: str = "hdl"
    target_fps: float | None = None  # uniform folding for this rate; None: probability-aware within the budget
    budget: float = 0.8  # share of the device each design is folded into (accelerator, baselines, cores)
    workers: int = 1
    calibration_images: int = 1000
    data_dir: str | None = None
    mvau: str = "lut"  # the matrix-vector unit of each MVAU layer: see MVAU
    # after the cores' HDL, the whole network as one pipelined accelerator (hls/accelerator.py: bit-serial
    # datapaths, folded by hls/pipeline_folding.py, FIFOs sized in Verilator on real images); False: the cores only
    # (what the accelerator is composed from; the tests compose it themselves)
    accelerator: bool = True
    accelerator_images: int = 24  # calibration-split images the accelerator's FIFOs are sized on
    # the static W2A2/W4A4/W8A8 pipelines (hls/baselines.py) emitted beside the accelerator as it is: folded on
    # the same budget, FIFOs sized in Verilator, into baselines/<design>/ (what the bench measures them on)
    baselines: bool = False
    # Yosys of the emitted HDL, node by node (hls/synth/hdl.py): the accelerator's (and the baselines') synthesized
    # LUT/FF/BRAM/DSP; the fit is judged on them (a design over the device is folded again)
    synth: bool = False
    # --until bitstream: run Vivado even where FINN's estimates of the emitted accelerator exceed the device
    ignore_fit: bool = False

    def __post_init__(self) -> None:
        if self.until not in UNTIL:
            raise FracskipError(f"--until must be one of {', '.join(UNTIL)}, got {self.until!r}")
        if self.mvau not in MVAU:
            raise FracskipError(f"--mvau must be one of {', '.join(MVAU)}, got {self.mvau!r}")
        if not 0 < self.budget <= 1:
            raise FracskipError(f"--budget is a fraction of the device in (0, 1], got {self.budget}")
        if self.workers < 1:
            raise FracskipError("--workers must be at least 1")
        if self.accelerator_images < 2:
            raise FracskipError(f"--sizing-images {self.accelerator_images}: the FIFOs are sized for the steady state, "
                                "the spacing of results back to back: 2 images or more")
        for flag, on in (("--baselines", self.baselines), ("--synth", self.synth)):
            if on and (not self.accelerator or self.until == "estimates"):
                raise FracskipError(f"{flag} works on the emitted accelerator: use it with --until hdl (or "
                                    "bitstream)")


def build(export_dir: str | Path, out: str | Path, cfg: BuildConfig, force: bool = False,
          progress: bool = True) -> dict:
    board = bitstreams.load(cfg.board)
    # Tools are checked before anything is written: without them no build folder is left behind.
    if cfg.mvau == "hls" and cfg.until != "estimates" and not finn_env.vitis_hls_available():
        raise ToolMissingError(
            "vitis_hls not found: --mvau hls uses FINN's MVAU_hls, whose HDL only Vitis HLS generates. Put "
            "vitis_hls on PATH (source Vitis' settings64.sh), or use --until estimates, or --mvau lut (LUT-based "
            "RTL, no Vitis needed). Nothing was written.")
    if cfg.until == "bitstream":
        if not cfg.accelerator:
            raise FracskipError("--until bitstream builds the whole-network accelerator: the cores alone have no "
                                "shell")
        shell.require_tools(board)  # said before any work rather than after an hour of HDL builds
    manifest = Manifest.load(export_dir)
    with fresh(Path(out).resolve(), force, "build") as out:
        summary = _build(manifest, out, cfg, board, progress)
    if cfg.until == "bitstream":  # the HDL build is complete: a failing Vivado run leaves it as it is
        summary["bitstream"] = shell.shell_build(out, ignore_fit=cfg.ignore_fit)
    return summary


def _build(manifest: Manifest, out: Path, cfg: BuildConfig, board: bitstreams.Board, progress: bool) -> dict:
    t0 = time.time()
    (out / "build_config.json").write_text(json.dumps(asdict(cfg), indent=1))  # the options as given
    if cfg.until == "bitstream":  # the HDL build first, complete in itself; the shell steps then make it a bitstream
        cfg = replace(cfg, until="hdl")  # build (summary.json says "hdl" until they have)
    shutil.copytree(manifest.root, out / "export")
    manifest = Manifest.load(out / "export")
    calib = calibrate(manifest, cfg.calibration_images, cfg.data_dir)
    (out / "calibration.json").write_text(json.dumps(calib, indent=1))
    prob = core_probabilities(manifest, calib)
    cores = manifest.cores()
    jobs = {name: dict(onnx=str(manifest.file(c["file"])), out=str(out / "cores" / name), part=board.part,
                       clk_ns=board.clk_ns, finn_build_dir=str(out / "cores" / name / "finn_tmp"), mvau=cfg.mvau)
            for name, c in cores.items()}
    t_an = time.time()
    analysed = _parallel(finn_core.analyse, jobs, cfg.workers, "analyse", progress)
    ladders = {c: analysed[c]["ladder"] for c in cores}
    t_an = time.time() - t_an
    budget = board.budget(cfg.budget)
    if cfg.target_fps:
        target = (1e9 / board.clk_ns) / cfg.target_fps
        rungs, mode = uniform(ladders, target), f"uniform (target {cfg.target_fps:g} FPS = {target:.0f} cycles)"
    else:
        alloc = allocate(ladders, prob, budget)
        rungs, mode = alloc.rungs, "probability-aware (expected cycles per input within the budget)"
    static_cores = ["stem"] + [manifest.path_core(b["index"], 8) if "8" in b["paths"] else None
                               for b in manifest.blocks] + ["head"]
    static = None  # the first version's all-8-bit comparison, where the menu has 8 bits (the accelerator's
    if all(c is not None and c in ladders for c in static_cores):  # baselines are the menu's static pipelines)
        static = allocate({c: ladders[c] for c in static_cores}, {c: 1.0 for c in static_cores}, budget)
    t_fin = time.time()
    finish_jobs = {c: dict(jobs[c], folding=ladders[c][rungs[c]]["folding"], until=cfg.until) for c in cores}
    finished = _parallel(finn_core.finish, finish_jobs, cfg.workers, cfg.until, progress)
    t_fin = time.time() - t_fin
    summary = _summary(manifest, cfg, board, mode, prob, calib, ladders, rungs, finished, static, budget)
    summary["time_s"] = {"analyse": round(t_an, 1), "finish": round(t_fin, 1)}
    if cfg.accelerator and cfg.until != "estimates":
        (out / "summary.json").write_text(json.dumps(summary, indent=1))  # the accelerator reads the board from it
        t_acc = time.time()
        summary["accelerator"] = _accelerator(out, cfg, progress)
        summary["time_s"]["accelerator"] = round(time.time() - t_acc, 1)
    if cfg.baselines:
        t_base = time.time()
        summary["baselines"] = _baselines(out, cfg, progress)
        summary["time_s"]["baselines"] = round(time.time() - t_base, 1)
    summary["time_s"]["total"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _accelerator(out: Path, cfg: BuildConfig, progress: bool) -> dict:
    """``hls.accelerator.build_accelerator`` (design dfs) on the build; its summary.json section."""
    from .accelerator import build_accelerator, sizing_images

    rep = build_accelerator(out, sizing_images(out, cfg.accelerator_images), design="dfs", progress=progress,
                            synth=cfg.synth, jobs=cfg.workers)
    return design_section(out, "dfs", rep)


def design_section(out: Path, design: str, rep: dict) -> dict:
    """The summary.json section of an emitted design from its report (``build_accelerator``'s): the folding's and
    the emitted HDL's figures."""
    from .accelerator import MODELS, design_dir

    where = design_dir(out, design).relative_to(out)
    sizing = rep["fifo_sizing"]
    # design routed is not folded by the allocator: the folding's figures are None (it has its path cores' folding)
    section = {
        "model": f"{where}/intermediate_models/{MODELS[2]}", "report": f"{where}/report/accelerator.json",
        "nodes": rep["nodes"], "cycles_per_image_model": rep.get("cycles_per_image_model"),
        "bottleneck_model": rep.get("bottleneck_model"), "resources_estimate": rep.get("resources_estimate"),
        "resources_estimate_inserted": rep.get("resources_estimate_inserted"),
        "fits_estimate": rep.get("fits_estimate"),
        # the emitted FIFOs (frame buffers deepened after sizing); a report from before it was recorded: the sized
        "fifo_bits": rep.get("fifo_bits_emitted", sizing["total_bits"]), "fifo_bits_sized": sizing["total_bits"],
        "cycles_per_image_emitted": rep["verified"]["cycles_per_image"],
        "resources_estimate_emitted": rep["resources_estimate_emitted"],
        "fits_device_estimate_emitted": rep["fits_device_estimate_emitted"], **_synth_section(rep, where),
        "seconds": rep["seconds"], "sizing_images": sizing["frames"],
        "cycles_per_image_sizing_run": sizing["sized_cycles"],
        "cycles_per_image_fifos_unbounded": sizing["unbounded_cycles"],
        "window_fifo_cap": sizing["window_cap"], "cycles_per_image_window_fifos_capped": sizing["window_cap_cycles"]}
    if design != "dfs":
        return section
    return {"what": "the whole network as one pipelined FINN dataflow graph (bit-serial datapaths, folded for the "
                    "slowest node's expected cycles), FIFOs sized by Verilator simulation on real images",
            **section, "frame_buffers_frames_more": frames_more(rep)}


def record_design(out: Path, design: str, rep: dict) -> None:
    """Put a design emitted again (``python -m fracskip.hls.accelerator BUILD``) into the build's summary.json, so
    that its readers (the bench, the bitstream step, the report) do not see the figures of the HDL it replaced."""
    from ..training.checkpoint import atomic_write_text

    path = Path(out) / "summary.json"
    summary = json.loads(path.read_text())
    if design == "dfs":
        summary["accelerator"] = design_section(out, design, rep)
    elif design == "routed":  # it takes the accelerator's folder
        summary["accelerator"] = {"what": "the path cores of the build behind a StreamRoute per gated block "
                                          "(design routed, a debugging aid)", **design_section(out, design, rep)}
    else:
        summary.setdefault("baselines", {})[design] = design_section(out, design, rep)
    atomic_write_text(path, json.dumps(summary, indent=1))


def frames_more(rep: dict) -> int:
    """Frames the accelerator's frame buffers hold beyond the one each needs, taken because the device had room
    (``accelerator.deepen_frame_buffers`` by the estimates, then ``deepen_by_synth`` by Yosys): beyond the folding's
    budget, which the static pipelines, having no frame buffers, cannot turn into throughput."""
    by_synth = rep.get("fifo_deepened_synth") or {}
    if by_synth.get("buffers") and by_synth.get("fits_device_synth"):
        return int(by_synth["frames_more"])
    return int((rep.get("fifo_deepened") or {}).get("frames_more", 0))


def _synth_section(rep: dict, where) -> dict:
    """A design's Yosys figures for summary.json (``--synth``), and what its fit loop kept out of its budget."""
    if "resources_synth" not in rep:
        return {}
    return {"resources_synth": rep["resources_synth"], "fits_device_synth": rep["fits_device_synth"],
            "synth_report": f"{where}/report/synth.json", "fit_attempts": rep["fit_attempts"],
            "fit_reserve": rep["fit_reserve"]}


def _baselines(out: Path, cfg: BuildConfig, progress: bool) -> dict:
    """Each static pipeline of the export's widths (``Manifest.routes``: the menu's and any beyond it) emitted as
    the accelerator is (``build_accelerator``); its summary.json section: per design, the folding's and the emitted
    HDL's figures."""
    from .accelerator import STATIC, build_accelerator, sizing_images, static_bits

    routes = Manifest.load(out / "export").routes
    images = sizing_images(out, cfg.accelerator_images)
    return {design: design_section(out, design, build_accelerator(out, images, design=design, progress=progress,
                                                                  synth=cfg.synth, jobs=cfg.workers))
            for design in STATIC if static_bits(design) in routes}


def calibrate(manifest: Manifest, n: int, data_dir: str | None) -> dict:
    """How often the trained gates pick each path, on the first ``n`` training images of the checkpoint's dataset."""
    from ..backends.torch_backend import TorchBackend
    from ..training import data as D
    from ..training.checkpoint import trained_on

    tb = TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])))
    dataset = trained_on(tb.checkpoint)
    split = D.load(dataset, "train", data_dir, n)
    _, choices, keep = tb.reference_trace(split.images.numpy(), batch_size=250)
    menu = manifest.bit_menu
    freq = [{str(b): float((choices[:, g] == k).mean()) for k, b in enumerate(menu)} for g in range(choices.shape[1])]
    # data_dir: where the accelerator's sizing reads the same images (CIFAR-10, or a dataset given by --data)
    out = {"dataset": dataset, "data_dir": data_dir and str(Path(data_dir).resolve()), "split": "train",
           "images": int(len(split)), "frequencies": freq}
    if manifest.channel_group:  # per gate and width, how often each number of channel groups is kept (joint)
        from ..runtime.controller import popcount

        kept = popcount(keep)
        out["kept"] = [{str(b): {str(c): float(((choices[:, g] == k) & (kept[:, g] == c)).mean())
                                 for c in range(1, int(kept[:, g].max()) + 1)} for k, b in enumerate(menu)}
                       for g in range(choices.shape[1])]
    return out


def core_probabilities(manifest: Manifest, calib: dict) -> dict[str, float]:
    prob = {"stem": 1.0, "head": 1.0}
    for blk in manifest.blocks:
        for bits, p in blk["paths"].items():
            if p.get("core"):
                # a width beyond the menu (static networks only) is never chosen
                prob[p["core"]] = calib["frequencies"][blk["gate"]].get(bits, 0.0) if blk["gated"] else 1.0
            for k, c in p.get("channels", {}).get("kept", {}).items():  # a channel path: that many groups kept
                prob[c["core"]] = calib["kept"][blk["gate"]].get(bits, {}).get(k, 0.0)
    return prob


def _parallel(fn, jobs: dict[str, dict], workers: int, desc: str, progress: bool) -> dict[str, dict]:
    results = {}
    bar = tqdm(total=len(jobs), desc=desc, unit="core", disable=None if progress else True)
    if workers == 1:
        for name, kw in jobs.items():
            results[name] = fn(**kw)
            bar.update(1)
    else:
        # spawn: every worker initialises finn-plus's global settings for its own build folder
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            futs = {ex.submit(fn, **kw): name for name, kw in jobs.items()}
            for f in as_completed(futs):
                results[futs[f]] = f.result()
                bar.update(1)
    bar.close()
    return results


def _summary(manifest, cfg, board, mode, prob, calib, ladders, rungs, finished, static, budget) -> dict:
    cores, total = {}, {r: 0.0 for r in RESOURCES}
    exceptions = []
    for name, fin in finished.items():
        res = {k: v for k, v in fin["resources"].items() if k != "total"}
        tot = {r: float(sum(v.get(r, 0) for v in res.values())) for r in RESOURCES}
        for r in RESOURCES:
            total[r] += tot[r]
        layers = {k: v for k, v in fin["cycles"].items()}
        for layer in res:
            chosen = cfg.mvau == "hls" and layer.startswith("MVAU_hls")
            if "_hls" in layer and not chosen:  # FINN names specialized layers <Op>_<hls|rtl>_<n>
                exceptions.append({"core": name, "layer": layer, "why": "no RTL variant in finn-plus 1.6.1"})
        for layer, m in fin["mvau_layers"].items():
            if m.get("unsupported_reasons"):  # --mvau lut, but the LUT unit cannot implement this layer
                exceptions.append({"core": name, "layer": layer, "why": f"{m['bits']}-bit layer left as {m['op_type']} "
                                   "(DSP-based): MVAU_lut does not support it",
                                   "unsupported_reasons": m["unsupported_reasons"]})
        perf = fin["performance"]
        cores[name] = {"probability": prob[name], "folding_rung": rungs[name], "rungs": len(ladders[name]),
                       "cycles": int(perf["max_cycles"]), "latency_cycles": int(perf["critical_path_cycles"]),
                       "bottleneck": perf["max_cycles_node_name"], "resources": tot, "layer_cycles": layers,
                       "mvau": {layer: m["op_type"] for layer, m in fin["mvau_layers"].items()},
                       "finn_output_dir": f"cores/{name}"}
    expected = sum(prob[c] * cores[c]["cycles"] for c in cores)
    cap = board.resources
    util = {r: (total[r] / cap[r]) if cap.get(r) else 0.0 for r in RESOURCES}
    fits = all(total[r] <= budget[r] for r in RESOURCES)
    clk_hz = 1e9 / board.clk_ns
    return {
        "format": FORMAT,
        "board": asdict(board),
        "until": cfg.until,
        "mvau": cfg.mvau,
        "budget_fraction": cfg.budget,
        "cores": cores,
        "totals": {"resources": total, "capacity": cap, "budget": budget, "utilization": util, "fits": fits,
                   "note": "FINN's estimates (MVAU_lut: fracskip's model fitted to Yosys); they report 0 LUT for "
                           "MVAU_rtl, FMPadding_rtl and ElementwiseAdd_rtl"},
        # the first version's design, kept as a debugging aid: not the accelerator's figures
        "per_path_cores": {
            "what": "the cores above run one at a time by the host (the first version's design, retired): their "
                    "expected cycles per input and those of the static all-8-bit cores on the same budget, not "
                    "the accelerator's (its section, and the bench's throughput table, have those)",
            "folding": mode,
            "expected_cycles_per_input": expected,
            "expected_inputs_per_s": clk_hz / expected,
            "static_8bit": None if static is None else {
                "expected_cycles_per_input": static.expected_cycles, "resources": static.resources,
                "fits": static.fits, "rungs": static.rungs,
                "what": "stem, every block at 8 bits and head, folded on the same budget"},
            "speedup_vs_static_8bit": None if static is None else static.expected_cycles / expected},
        "calibration": calib,
        "exceptions": exceptions,
        "host_side": HOST_SIDE,
        "export": {"source_checkpoint": manifest.data["source_checkpoint"]["sha256"], "dir": "export"},
    }

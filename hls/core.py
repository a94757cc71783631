"""One FINN build per core, in FINN's own folder layout (``report/*.json``, ``intermediate_models/``).

Two calls per core, as a FINN user would do by hand: ``analyse`` runs FINN's flow up to the specialized
dataflow partition and measures what each candidate folding would cost (FINN's SetFolding at a ladder of
cycle targets, FINN's resource and cycle estimates); ``finish`` continues the same build from there with
the folding the allocator chose (a FINN ``folding_config_file``) to the estimate reports and, with
``until="hdl"``, to generated HDL. Each initialises finn-plus itself, as a worker process of ``--workers`` must.
Both take the build's ``mvau`` mode (``steps.place_mvaus``): with "lut" each rung of the ladder is measured
with the sub-8-bit MVAUs already on the LUT unit, so the allocator sees their LUTs, not FINN's DSPs.

The HDL is generated with the installed finn-rtllib: PrepareIP only reads wrapper templates there, which the
Verilator rewrites do not touch, and the library files themselves are named at stitch time. So only the
processes that stitch (the accelerator's FIFO sizing and its simulation) initialise FINN with the patched copy
(``rtlsim.setup_finn``), and a later Vivado flow sees the stock library.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from .folding import RESOURCES

log = logging.getLogger(__name__)

FOLDING_ATTRS = ["PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType", "mem_mode",
                 "runtime_writeable_weights", "depth_trigger_uram", "depth_trigger_bram"]
SPECIALIZED = "step_fracskip_specialize_layers"


def _config(out: Path, part: str, clk_ns: float, mvau: str, **kw):
    import finn.builder.build_dataflow_config as bc

    from .steps import hdl_steps

    cfg = bc.DataflowBuildConfig(output_dir=str(out), synth_clk_period_ns=clk_ns, fpga_part=part,
                                 steps=hdl_steps(mvau), generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
                                 save_intermediate_models=True, standalone_thresholds=True,
                                 console_log_level=bc.LogLevel.ERROR, **kw)
    return bc.DataflowBuildConfig.construct_from(cfg)


def _run(onnx: Path, cfg) -> None:
    import finn.builder.build_dataflow as build

    from ..errors import FracskipError

    # FINN's builder prints its progress to stdout, which carries the commands' --json output; it also replaces
    # sys.stdout and sys.stderr with loggers for good (its progress then came out as "ERROR" lines on the next build)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr
    try:
        rc = build.build_dataflow_cfg(str(onnx), cfg)
    finally:
        sys.stdout, sys.stderr = saved
    meta = Path(cfg.output_dir) / "report" / "metadata_builder.json"
    status = json.loads(meta.read_text()).get("status") if meta.exists() else None
    if rc != 0 or status != "ok":  # build_dataflow returns, rather than raises, on a failed step
        logf = Path(cfg.output_dir) / "build_dataflow.log"  # FINN's log of this run (written anew each run)
        lines = logf.read_text(errors="replace").splitlines() if logf.is_file() else []
        if any("KeyboardInterrupt detected" in line for line in lines):  # FINN catches Ctrl-C and returns as if
            raise KeyboardInterrupt  # a step had failed: it is an interruption (exit 130), not a failed build
        # the step and FINN's error line in the message itself: `fracskip build` removes its unfinished folder, and
        # the log with it
        step = next((line.split("Running step: ", 1)[1].split(" [")[0] for line in reversed(lines)
                     if "Running step: " in line), "?")
        error = next((line.split("ERROR:", 1)[1].strip() for line in lines if "]ERROR:" in line), f"status {status}")
        raise FracskipError(f"FINN build of {onnx.name} failed in {step}: {error[:500]} (FINN's log: {logf})")


def _name(step) -> str:
    return step if isinstance(step, str) else step.__name__


def analyse(onnx: str, out: str, part: str, clk_ns: float, finn_build_dir: str, mvau: str = "lut",
            max_steps: int = 10) -> dict:
    """FINN flow to the specialized partition, then the (cycles, resources) of a ladder of foldings."""
    from . import finn_env, frontend

    finn_env.setup(Path(finn_build_dir))
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from .requant import ThresholdsToRequant
    from .steps import frontend_steps, hdl_steps, place_mvaus
    from .transforms import MinimizeWeightBitWidthMemo

    t0 = time.time()
    onnx_p, out_p = Path(onnx), Path(out)
    im = out_p / "intermediate_models"
    front = frontend_steps()
    streamlined = im / f"{front[-1].__name__}.onnx"
    if cached := frontend.lookup(onnx_p):  # streamlined already (the export's golden run, another build)
        im.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, streamlined)
        cfg = _config(out_p, part, clk_ns, mvau, target_fps=1, stop_step=SPECIALIZED,
                      start_step=_name(hdl_steps(mvau)[len(front)]))
    else:
        cfg = _config(out_p, part, clk_ns, mvau, target_fps=1, stop_step=SPECIALIZED)
    _run(onnx_p, cfg)
    if not cached:
        frontend.store(onnx_p, streamlined)
    base = ModelWrapper(str(out_p / "intermediate_models" / f"{SPECIALIZED}.onnx"))
    widths: dict = {}  # threshold tables' minimal types, the same on every rung

    def measure(target: int) -> dict:
        m = copy.deepcopy(base).transform(SetFolding(target, mvau_wwidth_max=1024, two_pass_relaxation=True))
        folding = {"Defaults": {}}  # by the names finish's step_apply_folding_config sees: before place_mvaus
        for n in m.graph.node:
            inst = getCustomOp(n)
            folding[n.name] = {a: inst.get_nodeattr(a) for a in FOLDING_ATTRS if a in inst.get_nodeattr_types()}
        m, _ = place_mvaus(m, mvau)  # as finish's step_fracskip_lut_mvau does
        m = m.transform(MinimizeWeightBitWidthMemo(widths)).transform(MinimizeAccumulatorWidth())
        m = m.transform(ThresholdsToRequant())  # as finish's step_fracskip_requant_outputs does
        perf = m.transform(AnnotateCycles()).analysis(dataflow_performance)
        res = m.analysis(lambda mm: res_estimation(mm, part))
        tot = {r: float(sum(v.get(r, 0) for v in res.values())) for r in RESOURCES}
        return {"target_cycles": target, "cycles": int(perf["max_cycles"]), "latency_cycles": int(perf["critical_path_cycles"]),
                "bottleneck": perf["max_cycles_node_name"], "resources": tot, "folding": folding}

    slowest = measure(10**12)
    ladder = [slowest]
    target = slowest["cycles"]
    for _ in range(max_steps):
        target //= 2
        if target < 16:
            break
        c = measure(target)
        if c["cycles"] >= ladder[-1]["cycles"]:
            break  # no more parallelism to be had (layer sizes bound the folding)
        ladder.append(c)
    return {"onnx": onnx, "ladder": ladder, "seconds": round(time.time() - t0, 1)}


def finish(onnx: str, out: str, part: str, clk_ns: float, finn_build_dir: str, folding: dict, until: str,
           mvau: str = "lut") -> dict:
    """Continue the analysed build with the chosen folding, to the estimate reports or to HDL."""
    from . import finn_env

    finn_env.setup(Path(finn_build_dir))
    from .steps import MVAU_REPORT

    t0 = time.time()
    out_p = Path(out)
    fold_file = out_p / "folding_config.json"
    fold_file.write_text(json.dumps(folding, indent=1))
    stop = "step_fracskip_hdl" if until in ("hdl", "bitstream") else "step_generate_estimate_reports"
    cfg = _config(out_p, part, clk_ns, mvau, folding_config_file=fold_file,
                  start_step="step_target_fps_parallelization", stop_step=stop)
    rep = out_p / "report"
    times = rep / "time_per_step.json"
    first = json.loads(times.read_text()) if times.is_file() else {}
    _run(Path(onnx), cfg)
    # FINN writes the file anew each run: keep the analysis run's steps (the front end, the ladder) beside these
    times.write_text(json.dumps({**first, **json.loads(times.read_text())}, indent=2))
    return {
        "performance": json.loads((rep / "estimate_network_performance.json").read_text()),
        "resources": json.loads((rep / "estimate_layer_resources.json").read_text()),
        "cycles": json.loads((rep / "estimate_layer_cycles.json").read_text()),
        "mvau_layers": json.loads((rep / MVAU_REPORT).read_text())["layers"],
        "seconds": round(time.time() - t0, 1),
    }

"""From the accelerator's HDL to a bitstream and a deployment package, by FINN's own steps after the HDL:
``step_create_stitched_ip`` (``BUILD/accelerator/stitched_ip/``), ``step_synthesize_bitfile`` (``ZynqBuild`` for
Pynq-Z2 and ZCU104, ``VitisBuild`` for U250: ``BUILD/accelerator/bitfile/`` and the post-synthesis reports in
``BUILD/accelerator/report/``), then FINN's driver and fracskip's host side in one deployment package
(``hls.deploy_package``: ``BUILD/deploy/``).

``fracskip build EXPORT --board B -o BUILD --until bitstream`` runs this after the HDL; ``python -m
fracskip.hls.shell BUILD`` runs it on a finished HDL build. Every step needs AMD's tools (``SHELL_TOOLS``), which are
checked before anything runs; when one fails, the HDL build stays as it was and the error names the tool's log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .. import bitstreams
from ..errors import FracskipError, reported
from . import finn_env

log = logging.getLogger(__name__)

# the shells' IODMAs are FINN's IODMA_hls: Vitis HLS is needed even when every compute node is RTL
SHELL_TOOLS = {"vivado_zynq": ("vivado", "vitis_hls"), "vitis_alveo": ("vivado", "vitis_hls", "v++")}
DEPLOY_DIR = "deploy"


def require_tools(board: bitstreams.Board) -> None:
    """ToolMissingError naming the first of the board's shell tools that is not installed, or FINN's external
    dependencies that its shell flow reads."""
    for tool in SHELL_TOOLS[board.shell_flow]:
        finn_env.require(tool)
    finn_env.require_deps(board.name)


def dataflow_config(out: Path, board: bitstreams.Board):
    """FINN's build configuration for the steps after the HDL, writing into ``out`` (FINN's output layout)."""
    from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType, ShellFlowType

    flow = {"vivado_zynq": ShellFlowType.VIVADO_ZYNQ, "vitis_alveo": ShellFlowType.VITIS_ALVEO}[board.shell_flow]
    return DataflowBuildConfig(
        output_dir=str(out), synth_clk_period_ns=board.clk_ns, board=board.name, shell_flow_type=flow,
        fpga_part=board.part, vitis_platform=board.platform,
        generate_outputs=[DataflowOutputType.STITCHED_IP, DataflowOutputType.BITFILE])


def shell_build(build_dir: str | Path, force: bool = False, ignore_fit: bool = False) -> dict:
    """Stitched IP, bitstream and deployment package of the build's accelerator (FIFOs sized); returns the
    ``"bitstream"`` section of its summary.json (also written there). ``ignore_fit``: run Vivado even where FINN's
    estimates of the emitted graph exceed the device (they are estimates; Vivado's placement decides)."""
    from ..outdir import replacing, require_complete
    from .accelerator import ACC_DIR, accelerator_report, emitted_fit, has_accelerator
    from .deploy_package import sized_accelerator, write_package
    from .rtlsim import setup_finn
    from .stitch_ip import TCL, stitch_problems

    build_dir = Path(build_dir).resolve()
    require_complete(build_dir)
    summary_path = build_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary.get("until") not in ("hdl", "bitstream"):
        raise FracskipError(f"{build_dir} is not a finished HDL build: run `fracskip build EXPORT --board B -o "
                            f"{build_dir} --until hdl` first")
    board = bitstreams.load(summary["board"]["name"])
    require_tools(board)
    deploy = build_dir / DEPLOY_DIR
    if deploy.exists() and any(deploy.iterdir()) and not force:
        raise FracskipError(f"{deploy} exists: pass --force to replace the bitstream and package")
    sized = sized_accelerator(build_dir)
    fit = emitted_fit(sized, summary["board"])
    # a build with --synth was judged by Yosys of this HDL (its frame buffers may hold what the estimates refused):
    # read from the accelerator's own report, which is this HDL's; summary.json's copy is the build's, which a
    # rebuild of the accelerator (`python -m fracskip.hls.accelerator BUILD`, without Yosys) leaves as it was
    synth_fits = (accelerator_report(build_dir) if has_accelerator(build_dir) else {}).get("fits_device_synth", False)
    if not fit["fits_device_estimate_emitted"] and not synth_fits and not ignore_fit:
        total, cap = fit["resources_estimate_emitted"]["total"], summary["board"]["resources"]
        over = ", ".join(f"{r} {total[r]:.0f} of {cap.get(r, 0)}" for r in total if total[r] > cap.get(r, 0))
        raise FracskipError(f"the accelerator as emitted does not fit the {board.name} by FINN's estimates ({over}; "
                            "FIFOs and width converters included: BUILD/accelerator/report/accelerator.json): Vivado "
                            f"would fail in placement after its synthesis. Build for a larger board, or with a "
                            f"smaller --budget, or with --synth (the fit judged by Yosys of the HDL); or let Vivado try: "
                            f"python -m fracskip.hls.shell {build_dir} --ignore-fit (fracskip build: --ignore-fit)")
    acc = build_dir / ACC_DIR
    setup_finn(acc / "finn_tmp")  # the FINN folder the HDL was generated in
    from finn.builder.build_dataflow_steps import step_create_stitched_ip  # FINN set up first: it reads its settings

    cfg = dataflow_config(acc, board)
    t0 = time.time()
    # an earlier run's results must not pass for this one's, nor be lost when this one fails: kept aside till done
    with replacing(acc / "stitched_ip", acc / "bitfile", deploy):
        try:
            model = step_create_stitched_ip(sized, cfg)
        except Exception as e:
            raise _tool_failed("vivado", "CreateStitchedIP", e) from e
        problems = stitch_problems(model, (acc / "stitched_ip" / TCL).read_text())
        if problems:
            raise FracskipError("FINN's IP-integrator script for the accelerator is incomplete: "
                                + "; ".join(problems[:5]))
        t_ip = time.time() - t0
        try:
            shell = synthesize(model, cfg)
        except Exception as e:
            raise _tool_failed("vivado" if board.shell_flow == "vivado_zynq" else "v++", "the shell build", e) from e
        write_package(build_dir, deploy, sized, bitfile_dir=acc / "bitfile", shell_model=shell, force=True)
    section = {"stitched_ip": f"{ACC_DIR}/stitched_ip", "bitfile": f"{ACC_DIR}/bitfile",
               "reports": f"{ACC_DIR}/report", "package": DEPLOY_DIR,
               "seconds": {"stitched_ip": round(t_ip, 1), "shell": round(time.time() - t0 - t_ip, 1)}}
    summary["until"], summary["bitstream"] = "bitstream", section
    summary_path.write_text(json.dumps(summary, indent=1))
    return section


def synthesize(model, cfg):
    """FINN's step_prepare_synthesis and step_synthesize_bitfile (ZynqBuild, or for Alveo the IODMAs, partitions and
    kernels' XOs that VitisBuild links) on the accelerator, with what fracskip's graph
    needs of it: integer adds on ElementwiseAdd_rtl (``integer_eltwise_rtl``), a partitioning that finishes
    (``partition_check_once``), and FINN's and qonnx's worker pools kept in this process (NUM_DEFAULT_WORKERS=1):
    fracskip's ops are registered in FINN's registry when fracskip is imported, which a worker started by spawn (as
    FINN's own CLI starts them) does not do. The partitions' builds then run one after the other; Vivado's own
    synthesis and implementation, the long part, run in one Vivado process either way."""
    import os

    from finn.builder.build_dataflow_steps import step_prepare_synthesis, step_synthesize_bitfile

    from .transforms import integer_eltwise_rtl, partition_check_once

    before = os.environ.get("NUM_DEFAULT_WORKERS")
    os.environ["NUM_DEFAULT_WORKERS"] = "1"
    try:
        with integer_eltwise_rtl(), partition_check_once():
            return step_synthesize_bitfile(step_prepare_synthesis(model, cfg), cfg)
    finally:
        if before is None:
            os.environ.pop("NUM_DEFAULT_WORKERS")
        else:
            os.environ["NUM_DEFAULT_WORKERS"] = before


def _tool_failed(tool: str, step: str, e: Exception) -> FracskipError:
    import os

    logs = os.environ.get("FINN_BUILD_DIR", "the build's accelerator/finn_tmp")
    return FracskipError(f"{step} failed ({tool} ran, FINN found no result): {str(e).strip()[:300]}. The tools' "
                         f"logs are below {logs}; the HDL build itself is complete and unchanged.")


def main(argv: list[str] | None = None) -> None:
    """``python -m fracskip.hls.shell BUILD [--force] [--ignore-fit]``: bitstream and package of a finished HDL
    build."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("build")
    ap.add_argument("--force", action="store_true", help="replace an earlier bitstream and package")
    ap.add_argument("--ignore-fit", action="store_true",
                    help="run Vivado even where FINN's estimates of the emitted accelerator exceed the device")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with reported():
        print(json.dumps(shell_build(a.build, a.force, a.ignore_fit), indent=1))


if __name__ == "__main__":
    main()

"""``--until bitstream`` (hls/shell.py: FINN's step_create_stitched_ip and step_synthesize_bitfile after the HDL)
without AMD's tools. Clearly named recording stand-ins answer FINN's tool calls; nothing here is a bitstream.

The accelerator is the tiny build's, as ``fracskip build`` emits it (tests/hil.py's ``dfs_accelerator``, FIFOs sized
on the covering images), in a build folder of its own; the module shares test_accelerator's xdist group and its
graph, HDL and sizing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import hil  # tests/hil.py: the shared tiny HDL build

pytestmark = [pytest.mark.rtlsim, pytest.mark.slow, pytest.mark.xdist_group("test_accelerator")]

def _hdl_build(build_dir: Path, sized, root: Path) -> Path:
    """A build folder as ``fracskip build --until hdl`` leaves it: the tiny build's export, cores and summary,
    and the accelerator with its FIFOs sized."""
    from fracskip.hls.accelerator import ACC_DIR, MODELS

    out = root / "build"
    (out / ACC_DIR / "intermediate_models").mkdir(parents=True)
    for name in ("export", "cores", "calibration.json"):
        (out / name).symlink_to(build_dir / name)
    summary = json.loads((build_dir / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps(dict(summary, until="hdl")))
    sized.save(str(out / ACC_DIR / "intermediate_models" / MODELS[2]))
    return out


def test_until_bitstream_runs_finns_steps_to_vivado(tiny_export, tmp_path_factory, finn_rtlsim, tmp_path, monkeypatch):
    import finn.transformation.fpgadataflow.create_stitched_ip as csi

    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A
    from fracskip.hls import shell
    from fracskip.hls.rtlsim import setup_finn
    from fracskip.hls.stitch_ip import TCL, stitch_problems

    hil.tiny_build(tiny_export, tmp_path_factory)
    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")  # the build re-initialised FINN
    acc = hil.dfs_accelerator(tiny_export, tmp_path_factory, finn_rtlsim / "cache")
    sized, _ = hil.sized_dfs_accelerator(acc)
    build = _hdl_build(acc["build_dir"], sized, tmp_path)
    summary = (build / "summary.json").read_text()
    hil.keep_finn_env(monkeypatch)  # shell_build sets FINN up in the build
    monkeypatch.setattr(csi, "wait_for_file", functools.partial(csi.wait_for_file, stable_for=0))

    with pytest.raises(FracskipError, match="vivado not found"):  # without the tools: before any work
        shell.shell_build(build)
    assert not (build / "accelerator" / "finn_tmp").exists()

    calls = hil.recording_stand_ins(tmp_path, monkeypatch)
    with monkeypatch.context() as m:  # the tools, but not FINN's external dependencies: also before any work
        m.setenv("FINN_DEPS", str(tmp_path / "no-finn-deps"))
        with pytest.raises(FracskipError, match=r"FINN's external dependencies are missing: .*finn-hlslib.*"
                                                r"board_files/pynq-z2\. Fetch them once with finn-plus's `finn deps"):
            shell.shell_build(build)
        assert not (build / "accelerator" / "finn_tmp").exists() and not hil.tool_calls(calls)
    # FINN's estimates of the emitted graph, FIFOs and width converters included: the folding budgets what FINN
    # inserts, and the tiny network's accelerator, FIFOs sized, fits the xc7z020
    board = json.loads(summary)["board"]
    fit = A.emitted_fit(sized, board)
    total = fit["resources_estimate_emitted"]["total"]
    assert fit["fits_device_estimate_emitted"], total
    assert total["URAM"] == 0  # no UltraRAM on the part: FIFOs in block RAM
    # on a device with fewer LUTs than it needs, refused before Vivado runs, with the figures
    small = dict(board, resources=dict(board["resources"], LUT=int(total["LUT"]) - 1))
    (build / "summary.json").write_text(json.dumps(dict(json.loads(summary), board=small)))
    with pytest.raises(FracskipError, match=rf"does not fit the Pynq-Z2 by FINN's estimates \(LUT \d+ of {small['resources']['LUT']};"):
        shell.shell_build(build)
    assert not hil.tool_calls(calls)
    with pytest.raises(FracskipError, match=r"CreateStitchedIP failed \(vivado ran, FINN found no result\)"):
        shell.shell_build(build, ignore_fit=True)  # Vivado may try
    (build / "summary.json").write_text(summary)
    (call,) = hil.tool_calls(calls)  # FINN's step_create_stitched_ip called Vivado once, as FINN does
    tool, proj, args, _ = call
    assert tool == "vivado" and proj.name.startswith("vivado_stitch_proj_") and args == f"-mode batch -source {TCL}"
    assert proj.parent == build.resolve() / "accelerator" / "finn_tmp"  # the build's own FINN folder
    tcl = (proj / TCL).read_text()
    assert f"-part {acc['part']}" in tcl and stitch_problems(sized, tcl) == []
    # the HDL build is left as it was: no package, no bitstream section, no stitched_ip copy that looks finished
    assert (build / "summary.json").read_text() == summary
    assert not (build / "deploy").exists() and not (build / "accelerator" / "stitched_ip").exists()

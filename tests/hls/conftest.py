"""Fixtures shared by the FINN-flow tests of tests/hls."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def finn_rtlsim(tmp_path_factory, rtl_cache):
    """FINN set up for Verilator simulation below a fresh folder (its environment restored afterwards)."""
    from fracskip.errors import ToolMissingError
    from fracskip.hls.rtlsim import find_verilator, setup_finn

    try:
        find_verilator()
    except ToolMissingError as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("finn_rtlsim")
    saved = {k: os.environ.get(k) for k in ("FINN_SETTINGS", "FINN_BUILD_DIR", "FINN_RTLLIB", "XILINX_VIVADO")}
    setup_finn(root / "finn_build", cache_dir=rtl_cache)
    (root / "cache").symlink_to(rtl_cache, target_is_directory=True)  # the tests' finn_rtlsim / "cache"
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def yosys_synth():
    """``synth(verilog_text, top) -> SynthResult``: Yosys ``synth_xilinx -family xc7`` of one module, the
    independent reference for "smaller" (rather than the project's own LUT formulas)."""
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    from fracskip.hls.lutmvu.synth import SynthResult, yosys_command

    def synth(verilog: str, top: str):
        with tempfile.TemporaryDirectory(prefix="yosys_") as tmp:
            (Path(tmp) / "top.v").write_text(verilog)
            script = f"read_verilog -sv top.v; synth_xilinx -family xc7 -noiopad -flatten -top {top}; " \
                     "tee -q -o stat.json stat -json"
            cp = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=tmp, capture_output=True, text=True)
            assert cp.returncode == 0, (cp.stderr or cp.stdout)[-1000:]
            stat = json.loads((Path(tmp) / "stat.json").read_text())
        return SynthResult.from_cells(stat["design"]["num_cells_by_type"])

    return synth


@pytest.fixture(scope="session")
def rerun_without_the_first_build(rtl_cache):
    """``run(first, again, inputs) -> (outputs of first, outputs of again)``: two FINN graphs of the same design,
    generated in two folders (PrepareIP), simulated one after the other, the first build's generated folders
    deleted in between. The second finds the first's model in the Verilator cache (keyed by content, not folders),
    which must then read the memory images copied beside it, as when CI's cache outlives its temporary folders."""
    import shutil
    from pathlib import Path

    from qonnx.custom_op.registry import getCustomOp

    from fracskip.hls.rtlsim import RTLSimCore

    def run(first, again, inputs):
        gen = [{Path(getCustomOp(n).get_nodeattr("code_gen_dir_ipgen")) for n in m.graph.node} for m in (first, again)]
        assert not gen[0] & gen[1]
        with RTLSimCore(first, cache_dir=rtl_cache, progress=False) as core:
            out_first, sim_dir = core.run(inputs).outputs, core.sim_dir
        for d in gen[0]:
            shutil.rmtree(d)
        with RTLSimCore(again, cache_dir=rtl_cache, progress=False) as core:
            assert core.sim_dir == sim_dir and core.compiled is False
            return out_first, core.run(inputs).outputs

    return run

"""The docker entry point's logic, run outside docker (no Xilinx tools here)."""

import os
import subprocess
from pathlib import Path

import pytest

ENTRY = Path(__file__).resolve().parents[2] / "docker" / "build-bitstream"


def run(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINN_XILINX", "PLATFORM_REPO"))}
    env.update(env_extra)
    return subprocess.run(["bash", str(ENTRY), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)


def test_usage_error(tmp_path):
    cp = run([], {}, tmp_path)
    assert cp.returncode == 2 and "usage" in cp.stderr


def test_missing_xilinx_path_is_named(tmp_path):
    cp = run(["exp", "Pynq-Z2", "out"], {}, tmp_path)
    assert cp.returncode == 2 and "FINN_XILINX_PATH" in cp.stderr
    assert not (tmp_path / "out").exists()


def test_missing_vivado_is_named(tmp_path):
    cp = run(["exp", "Pynq-Z2", "out"], {"FINN_XILINX_PATH": str(tmp_path / "Xilinx"), "FINN_XILINX_VERSION": "2024.2"}, tmp_path)
    assert cp.returncode == 2 and "vivado not found" in cp.stderr and "settings64.sh" in cp.stderr
    assert not (tmp_path / "out").exists()


def test_alveo_needs_platforms(tmp_path):
    xil = tmp_path / "Xilinx" / "Vivado" / "2024.2"
    xil.mkdir(parents=True)
    (xil / "settings64.sh").write_text("# a settings file that does not provide vivado\n")
    env = {"FINN_XILINX_PATH": str(tmp_path / "Xilinx"), "FINN_XILINX_VERSION": "2024.2"}
    cp = run(["exp", "U250", "out"], env, tmp_path)
    assert cp.returncode == 2 and "PLATFORM_REPO_PATHS" in cp.stderr
    cp = run(["exp", "Pynq-Z2", "out"], env, tmp_path)
    assert cp.returncode == 2 and "vivado not found on PATH" in cp.stderr


def test_build_options_reach_fracskip_and_not_the_xilinx_settings(tmp_path):
    """Xilinx's settings64.sh takes its install's location as $1, and `source` without arguments passes the caller's
    on: `build-bitstream EXP Pynq-Z2 OUT --synth` gave it `--synth`. Stand-ins here: a settings64.sh that records its
    arguments and reads an unset variable, as vendor scripts do, and a `fracskip` that records its own."""
    bin_dir = tmp_path / "stand-in-bin"
    bin_dir.mkdir()
    for tool in ("vivado", "fracskip"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls.txt"\n')
        (bin_dir / tool).chmod(0o755)
    settings = tmp_path / "Xilinx" / "Vivado" / "2024.2" / "settings64.sh"
    settings.parent.mkdir(parents=True)
    settings.write_text(f'if [ $# != 0 ]; then echo "settings64.sh $*" >> "{tmp_path}/calls.txt"; fi\n'
                        f'XIL_LOC="$XILINX_UNSET_IN_THIS_TEST"\nexport PATH="{bin_dir}:$PATH"\n')
    env = {"FINN_XILINX_PATH": str(tmp_path / "Xilinx"), "FINN_XILINX_VERSION": "2024.2"}
    cp = run(["exp", "Pynq-Z2", "out", "--synth", "--budget", "0.7"], env, tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "calls.txt").read_text().splitlines() == [
        "fracskip build exp --board Pynq-Z2 -o out --until bitstream --synth --budget 0.7"]
    (tmp_path / "calls.txt").unlink()
    cp = run(["exp", "Pynq-Z2", "out"], env, tmp_path)  # no options: none invented
    assert cp.returncode == 0 and (tmp_path / "calls.txt").read_text().splitlines() == [
        "fracskip build exp --board Pynq-Z2 -o out --until bitstream"]

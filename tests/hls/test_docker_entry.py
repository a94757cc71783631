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

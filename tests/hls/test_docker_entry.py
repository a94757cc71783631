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


RUN_DOCKER = ENTRY.parent / "run-docker.sh"


def run_docker(args, env_extra, tmp_path):
    """docker/run-docker.sh with a stand-in `docker` that records its arguments (no docker engine here)."""
    bin_dir = tmp_path / "stand-in-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(f'#!/bin/sh\necho "docker $*" >> "{tmp_path}/docker.txt"\n')
    (bin_dir / "docker").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINN_XILINX", "PLATFORM_REPO"))}
    env.update({"PATH": f"{bin_dir}:{env['PATH']}", **env_extra})
    return subprocess.run(["bash", str(RUN_DOCKER), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)


def test_run_docker_refuses_what_docker_would_mount_as_new_empty_folders(tmp_path):
    """`docker run -v HOST:...` creates a missing HOST folder, empty and owned by root: a mistyped export or
    Xilinx path must be named before docker runs, as must missing arguments (not `$2: unbound variable`)."""
    xil = tmp_path / "Xilinx"
    xil.mkdir()
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "manifest.json").write_text("{}\n")
    env = {"FINN_XILINX_PATH": str(xil), "FINN_XILINX_VERSION": "2024.2"}
    cp = run_docker(["exp"], env, tmp_path)
    assert cp.returncode == 2 and "usage" in cp.stderr, cp.stderr
    cp = run_docker(["exp-typo", "Pynq-Z2", "out"], env, tmp_path)
    assert cp.returncode == 2 and "exp-typo is not an export folder" in cp.stderr, cp.stderr
    cp = run_docker(["exp", "Pynq-Z2", "out"], {**env, "FINN_XILINX_PATH": str(tmp_path / "Xilinx-typo")}, tmp_path)
    assert cp.returncode == 2 and "Xilinx-typo is not a folder" in cp.stderr, cp.stderr
    cp = run_docker(["exp", "U250", "out"], {**env, "PLATFORM_REPO_PATHS": str(tmp_path / "platforms")}, tmp_path)
    assert cp.returncode == 2 and "platforms is not a folder" in cp.stderr, cp.stderr
    assert not (tmp_path / "docker.txt").exists() and not (tmp_path / "exp-typo").exists()
    cp = run_docker(["exp", "Pynq-Z2", "out", "--synth"], env, tmp_path)
    assert cp.returncode == 0, cp.stderr
    call = (tmp_path / "docker.txt").read_text().split()
    assert {f"{xil}:{xil}:ro", f"{tmp_path / 'exp'}:/work/export:ro", f"{tmp_path}:/work/out"} <= set(call)
    assert call[-5:] == ["fracskip:latest", "/work/export", "Pynq-Z2", "/work/out/out", "--synth"]

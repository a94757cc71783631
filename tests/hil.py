"""The HDL build of the tiny test network that the hardware-in-the-loop tests share (made once per run).

tests/runtime/test_host.py, tests/hls/test_accelerator.py, tests/hls/test_modal.py, tests/hls/test_pipeline_folding.py,
tests/hls/test_build.py, tests/runtime/test_deploy.py and tests/test_outputs.py import it (``import hil``: tests/ is
on the path).
The build (the cores' HDL, which the accelerator tests compose the accelerator from) is made once for all
pytest-xdist workers, in their common temporary folder under a file lock: the first worker that needs it builds it, the
other waits and reuses it, after checking that its own tiny export is the same network (the tiny run is trained
deterministically in each worker). So the modules that use it need not run in one worker; each keeps its own
module fixtures together with an ``xdist_group`` of its own.
Verilator binaries go to fracskip's cache (``$FRACSKIP_CACHE`` or ``~/.cache/fracskip``): they are keyed by the
content of every RTL source and memory file, so a rerun reuses them and can never pick up a different design.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

# cores ~25k cycles/frame: fast to simulate, small enough to verilate in seconds
TARGET_FPS = 2000.0
N_IMAGES = 12

_builds: dict[str, Path] = {}


def shared_dir(tmp_path_factory) -> Path:
    """The temporary folder common to every pytest-xdist worker of the run (each worker's own is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def _exclusive(lock: Path):
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, also if the worker dies
        yield


def tiny_build(export_dir: Path, tmp_path_factory) -> Path:
    """``fracskip build EXPORT --board Pynq-Z2 --until hdl --target-fps 2000`` of the tiny export, the cores
    only: the tests that need the whole-network accelerator compose it from them themselves."""
    key = str(export_dir)
    if key not in _builds:
        root = shared_dir(tmp_path_factory) / "hil"
        root.mkdir(exist_ok=True)
        with _exclusive(root / "lock"):
            done = root / "done"  # written last: the build is complete
            if not done.exists():
                from fracskip.hls.build import BuildConfig, build

                shutil.rmtree(root / "build", ignore_errors=True)  # left by a worker that died in it
                build(export_dir, root / "build", BuildConfig(board="Pynq-Z2", until="hdl", target_fps=TARGET_FPS,
                                                              calibration_images=64, accelerator=False),
                      progress=False)
                done.touch()
        _same_network(root / "build" / "export", export_dir)
        _builds[key] = root / "build"
    return _builds[key]


def _same_network(built: Path, mine: Path) -> None:
    """The shared build was made from another worker's export: the same network, file for file (the source
    checkpoint's bytes aside: torch.save is not byte-stable)."""
    theirs, ours = (json.loads((d / "manifest.json").read_text())["files"] for d in (built, mine))
    differ = sorted(k for k in set(theirs) | set(ours) if k != "source_checkpoint.pt" and theirs.get(k) != ours.get(k))
    if differ:
        raise AssertionError(f"the pytest workers trained different tiny networks ({differ} differ): the tiny run "
                             "is meant to be deterministic (tests/conftest.py)")


def sample_images(n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    from fracskip.training import data as D

    s = D.load("synthetic", "test", None, n)
    return s.images.numpy(), s.labels.numpy()


def torch_choices(build_dir: Path, images: np.ndarray):
    """The build's manifest and the torch model's per-image decisions (images x gates, menu indices)."""
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.torch_backend import TorchBackend

    m = Manifest.load(build_dir / "export")
    _, choices = TorchBackend(str(m.file(m.data["source_checkpoint"]["file"]))).reference(images)
    return m, np.asarray(choices)


def covering_images(build_dir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` of the routed test images (tests/routing.py) that between them take every path of every gated block
    (by the torch model's decisions), in their original order: the fewest images that exercise every core."""
    from routing import ROUTED_IMAGES

    images, labels = sample_images(ROUTED_IMAGES)
    m, choices = torch_choices(build_dir, images)
    takes = [{(g, int(c)) for g, c in enumerate(row)} for row in choices]
    need = {(g, c) for g in range(choices.shape[1]) for c in range(len(m.bit_menu))}
    picked: list[int] = []
    while need:  # greedy set cover
        i = max((i for i in range(len(images)) if i not in picked), key=lambda i: len(takes[i] & need))
        if not takes[i] & need:
            raise AssertionError(f"the routed images never take {sorted(need)}")
        picked.append(i)
        need -= takes[i]
    if len(picked) > n:
        raise AssertionError(f"{len(picked)} images are needed to take every path, not {n}")
    picked += [i for i in range(len(images)) if i not in picked][:n - len(picked)]
    idx = sorted(picked)
    return images[idx], labels[idx]


# ---------------------------------------------------------------------------------------------- the accelerator
ACCELERATOR_IMAGES = 8  # covering images (every path of every gated block taken) the accelerator tests stream

_accelerators: dict[str, dict] = {}


def dfs_accelerator(export_dir: Path, tmp_path_factory, cache_dir: Path) -> dict:
    """The accelerator ``fracskip build`` emits, of the tiny build: design dfs (``compose_design``: the bit-serial
    datapaths, every node folded by the pipeline allocator), then ``to_hw`` (width converters, FIFOs, HDL), as
    ``hls.accelerator.build_accelerator`` makes it; its figures (``info``), board, host side, and the stream of
    ``ACCELERATOR_IMAGES`` covering images. Made once per process: tests/hls/test_accelerator.py and
    tests/runtime/test_deploy.py, one xdist group, share it. FINN must be set up (``setup_finn``) in a folder that
    lasts the session, as tmp_path_factory's do: the HDL is generated there."""
    from fracskip.hls import accelerator as A

    build_dir = tiny_build(export_dir, tmp_path_factory)
    key = str(build_dir)
    if key not in _accelerators:
        images, labels = covering_images(build_dir, ACCELERATOR_IMAGES)
        board = json.loads((build_dir / "summary.json").read_text())["board"]
        model, info = A.compose_design(build_dir, "dfs")
        hw = A.to_hw(model, board["part"], board["clk_ns"])
        host = A.Host(build_dir)
        _accelerators[key] = dict(build_dir=build_dir, composed=model, info=info, hw=hw, part=board["part"],
                                  clk=board["clk_ns"], host=host, images=images, labels=labels,
                                  x=host.stream(images), cache=Path(cache_dir))
    return _accelerators[key]


def sized_dfs_accelerator(acc: dict):
    """``hls.accelerator.size_fifos`` of ``dfs_accelerator``'s graph on its images (Verilator, the sizing FIFOs;
    the binary cached by content): (the sized model, the ``AcceleratorSizing`` with its sized run), once per
    process, for the bit-exactness test and the deployment package alike."""
    from fracskip.hls import accelerator as A

    if "sizing" not in acc:
        acc["sizing"] = A.size_fifos(acc["hw"], acc["x"], acc["part"], acc["clk"], cache_dir=acc["cache"])
    return acc["sizing"]


# ---------------------------------------------------------------------------------------------- AMD's tools, absent
XILINX_TOOLS = ("vivado", "vitis_hls", "vitis-run", "v++", "xelab")  # every name FINN resolves through the override
FINN_STOPS_AFTER_VIVADO = "no wrapper HDL found"  # CreateStitchedIP's error when Vivado's block design is absent
FINN_STOPS_AFTER_HLS = "Generated IP couldn't be found"  # FINN's error when the IP vitis_hls writes is absent


def recording_stand_ins(root: Path, monkeypatch) -> Path:
    """Clearly named recording stand-ins for every Xilinx tool FINN calls, found by FINN through
    FINN_TOOL_DIR_OVERRIDE: each appends its name, working folder, arguments and the FINN_RTLLIB it was given (the
    IPI script reads $::env(FINN_RTLLIB)) to the returned file, and does nothing else. XILINX_VIVADO names a folder
    where no Vivado is (FINN reads the tool version from it); FINN_DEPS one with the names of FINN's external
    dependencies that the shell step checks, empty stand-ins."""
    shim = root / "recording-stand-ins-not-xilinx-tools"
    shim.mkdir()
    calls = root / "tool_calls.txt"
    for tool in XILINX_TOOLS:
        (shim / tool).write_text(f"#!/bin/sh\n# a recording stand-in for {tool}: it records how it was called, "
                                 f"and does nothing\necho \"{tool}|$PWD|$*|$FINN_RTLLIB\" >> {calls}\n")
        os.chmod(shim / tool, 0o755)
    monkeypatch.setenv("FINN_TOOL_DIR_OVERRIDE", str(shim))
    monkeypatch.setenv("XILINX_VIVADO", str(root / "no-vivado-here" / "Vivado" / "2024.2"))
    # what the shell step checks of FINN's external dependencies (finn-hlslib's headers, PYNQ board files): empty
    deps = root / "stand-in-finn-deps-empty"
    (deps / "finn-hlslib").mkdir(parents=True)
    (deps / "finn-hlslib" / "streamtools.h").write_text("// a stand-in: FINN's HLS code is never compiled here\n")
    (deps / "board_files" / "pynq-z2").mkdir(parents=True)
    monkeypatch.setenv("FINN_DEPS", str(deps))
    return calls


class ToolCall(NamedTuple):
    tool: str
    cwd: Path
    args: str
    rtllib: Path


def tool_calls(calls: Path) -> list[ToolCall]:
    """The calls the stand-ins recorded, in order."""
    if not calls.exists():
        return []
    return [ToolCall(t, Path(cwd), args, Path(lib))
            for t, cwd, args, lib in (ln.split("|") for ln in calls.read_text().splitlines())]


def keep_finn_env(monkeypatch) -> None:
    """Restore FINN's set-up (build folder, settings, library copy) after the test, which sets up FINN anew."""
    import finn.util.settings

    monkeypatch.setattr(finn.util.settings, "_SETTINGS", finn.util.settings._SETTINGS)
    for var in ("FINN_BUILD_DIR", "FINN_SETTINGS", "FINN_RTLLIB"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)

"""The HDL build of the tiny test network that the hardware-in-the-loop tests share (made once per run).

tests/runtime/test_driver.py, tests/hls/test_rtlsim_backend.py, tests/hls/test_accelerator.py, tests/hls/test_modal.py,
tests/hls/test_pipeline_folding.py, tests/hls/test_build.py and tests/runtime/test_deploy.py import it (``import hil``:
tests/ is on the path).
The build (HDL, and the FIFOs of the cores with a fork sized by simulation) is made once for all pytest-xdist
workers, in their common temporary folder under a file lock: the first worker that needs it builds it, the
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

_builds: dict[str, tuple[Path, list[str]]] = {}


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
    """``fracskip build EXPORT --board Pynq-Z2 --until hdl --target-fps 2000`` of the tiny export, with the
    FIFOs of the cores that the sample images use and that fork (a residual block's skip) sized by simulation."""
    return _shared(export_dir, tmp_path_factory)[0]


def sized_tiny_build(export_dir: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    """(the tiny build, the cores the sample images use). Only the used cores with a fork have their FIFOs
    sized, at their peak occupancies (the others run at full speed on FINN's minimal FIFOs); ``fracskip build
    --size-fifos`` sizes all, to each FIFO's minimum."""
    return _shared(export_dir, tmp_path_factory)


def summary_before_sizing(tmp_path_factory) -> dict:
    """The build's summary.json as the build wrote it, before the FIFO sizing added its section."""
    return json.loads((shared_dir(tmp_path_factory) / "hil" / "summary_before_sizing.json").read_text())


def _shared(export_dir: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    key = str(export_dir)
    if key not in _builds:
        root = shared_dir(tmp_path_factory) / "hil"
        root.mkdir(exist_ok=True)
        with _exclusive(root / "lock"):
            done = root / "used_cores.json"  # written last: the build and its sizing are complete
            if not done.exists():
                shutil.rmtree(root / "build", ignore_errors=True)  # left by a worker that died in it
                used = _build_and_size(export_dir, root)
                done.write_text(json.dumps(used))
            used = json.loads(done.read_text())
        _same_network(root / "build" / "export", export_dir)
        _builds[key] = (root / "build", used)
    return _builds[key]


def _build_and_size(export_dir: Path, root: Path) -> list[str]:
    from qonnx.core.modelwrapper import ModelWrapper

    from fracskip.hls.build import BuildConfig, build, size_build_fifos

    out = root / "build"
    # the cores only: the tests that need the whole-network accelerator compose it from them themselves
    build(export_dir, out, BuildConfig(board="Pynq-Z2", until="hdl", target_fps=TARGET_FPS, calibration_images=64,
                                       accelerator=False), progress=False)
    shutil.copyfile(out / "summary.json", root / "summary_before_sizing.json")
    images, _ = sample_images()
    used = used_cores(out, images)
    hdl = "intermediate_models/step_fracskip_hdl.onnx"
    forks = [c for c in used
             if ModelWrapper(str(out / "cores" / c / hdl)).get_nodes_by_op_type("DuplicateStreams_rtl")]
    # FINN's peak-occupancy rule: the search for each FIFO's minimum has its test of its own (tests/hls/test_rtlsim.py)
    size_build_fifos(out, cores=forks, progress=False, minimize=False)
    return used


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
    from fracskip.runtime.torch_backend import TorchBackend

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


def cores_per_image(build_dir: Path, images: np.ndarray) -> list[list[str]]:
    """The cores the torch model's own decisions send each image through."""
    m, choices = torch_choices(build_dir, images)
    per_image = []
    for ch in choices:
        cores = ["stem"]
        for blk in m.blocks:
            bits = m.bit_menu[ch[blk["gate"]]] if blk["gated"] else int(next(iter(blk["paths"])))
            if core := m.path_core(blk["index"], bits):
                cores.append(core)
        per_image.append(cores + ["head"])
    return per_image


def used_cores(build_dir: Path, images: np.ndarray) -> list[str]:
    return sorted({c for cores in cores_per_image(build_dir, images) for c in cores})


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
    where no Vivado is (FINN reads the tool version from it)."""
    shim = root / "recording-stand-ins-not-xilinx-tools"
    shim.mkdir()
    calls = root / "tool_calls.txt"
    for tool in XILINX_TOOLS:
        (shim / tool).write_text(f"#!/bin/sh\n# a recording stand-in for {tool}: it records how it was called, "
                                 f"and does nothing\necho \"{tool}|$PWD|$*|$FINN_RTLLIB\" >> {calls}\n")
        os.chmod(shim / tool, 0o755)
    monkeypatch.setenv("FINN_TOOL_DIR_OVERRIDE", str(shim))
    monkeypatch.setenv("XILINX_VIVADO", str(root / "no-vivado-here" / "Vivado" / "2024.2"))
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
    for var in ("FINN_BUILD_DIR", "FINN_SETTINGS", "FINN_RTLLIB"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)

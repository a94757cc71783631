"""The HDL build of the tiny test network that the hardware-in-the-loop tests share (made once per session).

tests/runtime/test_driver.py, tests/hls/test_rtlsim_backend.py, tests/hls/test_accelerator.py and
tests/hls/test_build.py import it (``import hil``: tests/ is on the path), so that the build, the FIFO sizing and
the verilated simulators are made once per process; under pytest-xdist those tests share the group ``GROUP``, so
one worker makes them.
Verilator binaries go to fracskip's cache (``$FRACSKIP_CACHE`` or ``~/.cache/fracskip``): they are keyed by the
content of every RTL source and memory file, so a rerun reuses them and can never pick up a different design.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GROUP = "tiny_hdl"  # their xdist_group: one worker runs them all, and builds once

# cores ~25k cycles/frame: fast to simulate, small enough to verilate in seconds
TARGET_FPS = 2000.0
N_IMAGES = 12

_builds: dict[str, Path] = {}
_sized: dict[str, list[str]] = {}


def tiny_build(export_dir: Path, root: Path) -> Path:
    """``fracskip build EXPORT --board Pynq-Z2 --until hdl --target-fps 2000`` of the tiny export."""
    from fracskip.hls.build import BuildConfig, build

    key = str(export_dir)
    if key not in _builds:
        out = root / "build"
        build(export_dir, out, BuildConfig(board="Pynq-Z2", until="hdl", target_fps=TARGET_FPS,
                                           calibration_images=64), progress=False)
        _builds[key] = out
    return _builds[key]


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


def sized_tiny_build(export_dir: Path, root: Path) -> tuple[Path, list[str]]:
    """The tiny build with the FIFOs of the used residual cores sized by simulation (the others keep FINN's
    minimal FIFOs, on which they run at full speed: no fork). Sizing every core of the build would take
    minutes more; ``fracskip build --size-fifos`` does that."""
    from qonnx.core.modelwrapper import ModelWrapper

    from fracskip.hls.build import size_build_fifos

    build_dir = tiny_build(export_dir, root)
    key = str(build_dir)
    if key not in _sized:
        images, _ = sample_images()
        used = used_cores(build_dir, images)
        forks = [c for c in used if ModelWrapper(str(build_dir / "cores" / c / "intermediate_models" /
                                                     "step_fracskip_hdl.onnx")).get_nodes_by_op_type(
                                                         "DuplicateStreams_rtl")]
        size_build_fifos(build_dir, cores=forks, progress=False)
        _sized[key] = used
    return build_dir, _sized[key]

"""The CLI's arguments, checked before any work starts: one rule set per command.

Every rule raises ``FracskipError`` with a message that names the option, the value and what to do; the CLI
prints it as ``fracskip: error: ...`` and exits 2, without a traceback and without writing anything. The
rules are plain functions, ``check_<command>(args)``, listed in ``RULES``: a new option gets its check next to
the others. Numbers the Python API takes too (``TrainConfig``, ``BuildConfig``) are checked there as well.

Files are read here only as far as needed to refuse them (a manifest and its hashes, an ONNX file's protobuf,
a settings.json); nothing is imported at module level beyond the standard library, because ``fracskip deploy``
runs on a board without torch.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import FracskipError
from .outdir import require_complete

# ---------------------------------------------------------------- values


def positive_int(value: Any, option: str, what: str = "a count") -> int | None:
    """None (option not given) or a whole number >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FracskipError(f"{option} must be a positive whole number ({what}), got {value!r}")
    return value


def number(value: Any, option: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, what: str = "") -> float | None:
    """None or a finite number in [lo, hi] (``lo_open``: lo excluded)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FracskipError(f"{option} must be a finite number{f' ({what})' if what else ''}, got {value!r}")
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    if too_low or (hi is not None and value > hi):
        rng = f"{'(' if lo_open else '['}{'' if lo is None else f'{lo:g}'}, {'' if hi is None else f'{hi:g}'}]"
        raise FracskipError(f"{option} must be in {rng}{f' ({what})' if what else ''}, got {value!r}")
    return float(value)


def exclusive(args: argparse.Namespace, *options: str) -> None:
    """At most one of ``options`` (attribute names) is set."""
    given = [o for o in options if getattr(args, o, None) not in (None, False)]
    if len(given) > 1:
        names = " and ".join("--" + o.replace("_", "-") for o in given)
        raise FracskipError(f"{names} cannot be used together: pass one of them")


# ---------------------------------------------------------------- paths


def existing_dir(path: str | None, option: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise FracskipError(f"{option} {path}: no such folder; pass {what}")
    if not p.is_dir():
        raise FracskipError(f"{option} {path} is a file, not a folder; pass {what}")
    return p


def existing_file(path: str | None, option: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise FracskipError(f"{option} {path}: no such file; pass {what}")
    if not p.is_file():
        raise FracskipError(f"{option} {path} is not a file; pass {what}")
    return p


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable(path: Path, option: str) -> None:
    """``path`` (a folder, existing or to be created) can be written: probed with a real file, since
    permission bits say nothing for root and nothing about read-only file systems."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise FracskipError(f"{option} {path}: {base} is a file, so the folder cannot be created there; "
                            "choose another output folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fracskip-write-probe.", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FracskipError(f"{option} {path}: cannot write in {base} ({e.strerror or e}); choose a writable "
                            "output folder") from e


def _inside(child: Path, parent: Path) -> bool:
    c, p = child.resolve(), parent.resolve()
    return c == p or p in c.parents


def output_dir(path: str, option: str, force: bool, inputs: tuple[str | Path | None, ...] = (),
               resume: bool | None = None) -> Path:
    """An output folder: not a file, empty (or ``--force``), writable, and not holding any input (``--force``
    would delete it) nor inside one. ``resume``: the command continues a run instead (``--resume``), and has no
    ``--force``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise FracskipError(f"{option} {path} is a file; pass a folder (it is created if missing)")
    for i in inputs:
        if i is None or str(i) in ("default", "lcnet"):
            continue
        if _inside(Path(i), p):
            raise FracskipError(f"{option} {path} holds the input {i}: writing there would "
                                f"{'delete' if force else 'mix with'} it; choose another output folder")
        if Path(i).is_dir() and _inside(p, Path(i)):
            raise FracskipError(f"{option} {path} is inside the input folder {i}; choose an output folder outside it")
    if force and p.is_dir() and any(p.iterdir()) and _inside(Path.cwd(), p):
        raise FracskipError(f"{option} {path} holds the folder you run in ({Path.cwd()}): --force would replace it "
                            "and everything in it; choose another output folder")
    if p.is_dir() and any(p.iterdir()) and not force and not resume:
        what = "--resume to continue the run it holds" if resume is not None else "--force to replace it"
        raise FracskipError(f"{path} is not empty: pass {what}, or choose another -o folder")
    writable(p, option)
    return p


# ---------------------------------------------------------------- file contents


def load_json(path: Path, what: str) -> Any:
    import json

    try:
        return json.loads(Path(path).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FracskipError(f"{path} is not valid JSON ({str(e)[:200]}); {what}") from e
    except OSError as e:
        raise FracskipError(f"cannot read {path} ({e.strerror or e}); {what}") from e


def load_onnx(path: Path):
    """An ONNX file's ModelProto, or a FracskipError naming the file (never a protobuf traceback)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise FracskipError(f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]}); "
                            "re-run `fracskip export`") from e
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise FracskipError(f"{path} is an ONNX file without a graph (no nodes, inputs or outputs); "
                            "re-run `fracskip export`")
    return model


def export_folder(folder: str | Path, onnx: bool = True, checkpoint: bool = True):
    """An export (or the export inside a build): its manifest, every listed file's hash, and the files' contents
    readable (ONNX graphs, gate weights without pickle, the source checkpoint as plain data)."""
    from .runtime.intgate import IntGateParams
    from .runtime.manifest import Manifest

    folder = Path(folder)
    if not (folder / "manifest.json").exists() and (folder / "export" / "manifest.json").is_file():
        raise FracskipError(f"{folder} is a build folder, not an export: pass its export, {folder / 'export'}")
    m = Manifest.load(folder)
    if onnx:
        for c in m.cores().values():
            load_onnx(m.file(c["file"]))
    IntGateParams.from_json(m.data["gates"])  # shapes and ranges of the integer gate's specification
    if checkpoint:
        from .training.checkpoint import load_raw

        src = m.data.get("source_checkpoint")
        if not src:
            raise FracskipError(f"manifest in {m.root} names no source checkpoint; re-run `fracskip export`")
        load_raw(m.file(src["file"]))
    return m


def export_dataset(folder: str | Path) -> str:
    """The dataset the checkpoint of an export (or of a build's export) was trained on: its test images are the
    ones to simulate unless ``--dataset`` says otherwise."""
    from .runtime.manifest import Manifest
    from .training.checkpoint import load_raw, trained_on

    folder = Path(folder)
    m = Manifest.load(folder / "export" if (folder / "export" / "manifest.json").is_file() else folder)
    return trained_on(load_raw(m.file(m.data["source_checkpoint"]["file"])))


def compare_rows(path: Path) -> list[dict]:
    """The rows of a `fracskip compare --json` file, each with the fields a comparison needs."""
    existing_file(str(path), "--include", "a JSON file written by `fracskip compare --json`")
    rows = load_json(path, "pass a file written by `fracskip compare --json`")
    need = {"model": str, "accuracy": (int, float), "compute_pct": (int, float), "bitops_per_input": (int, float),
            "n": int}
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and all(isinstance(r.get(k), t) for k, t in need.items()) for r in rows):
        raise FracskipError(f"--include {path}: not the rows of `fracskip compare --json` (a list of objects with "
                            f"{', '.join(need)})")
    return rows


def checkpoint(ref: str, option: str = "checkpoint") -> dict:
    """'default', a .pt file or a run folder, readable as plain data (nothing in it is run); its dict."""
    from .training.checkpoint import load_raw

    if not isinstance(ref, str) or not ref:
        raise FracskipError(f"{option}: pass a checkpoint file, a run folder, or 'default'")
    return load_raw(ref)


def takes_fashion_mnist(ref: str, option: str, command: str) -> None:
    """A checkpoint the demo and the bench can run: they measure on Fashion-MNIST's test images (1x28x28)."""
    cfg = checkpoint(ref, option).get("model_config") or {}
    takes = (cfg.get("in_channels", 1), cfg.get("image_size", 28))
    if takes != (1, 28):
        raise FracskipError(f"{option} {ref} takes {takes[0]}x{takes[1]}x{takes[1]} images: `fracskip {command}` "
                            "measures on Fashion-MNIST's 1x28x28 test images; pass a Fashion-MNIST checkpoint, or "
                            "run the stages on yours (export, build, simulate with --dataset and --data)")


def board(name: str) -> None:
    from . import bitstreams

    bitstreams.load(name)


def data_dir(a: argparse.Namespace, dataset: str | None, why: str = "--dataset cifar10") -> None:
    """``--data``, if given, is a folder; CIFAR-10 (the ``dataset`` that ``why`` names) needs it."""
    what = "the dataset folder (Fashion-MNIST's four IDX files, or CIFAR-10's python batches)"
    existing_dir(getattr(a, "data", None), "--data", what)
    if dataset == "cifar10" and getattr(a, "data", None) is None:
        raise FracskipError(f"{why} needs --data DIR, the folder of CIFAR-10's python version "
                            "(data_batch_1..5, test_batch); it is on no package registry")


# ---------------------------------------------------------------- the rules, per command


def check_train(a: argparse.Namespace) -> None:
    positive_int(a.limit, "--limit", "training images")
    positive_int(a.test_limit, "--test-limit", "test images")
    positive_int(a.batch_size, "--batch-size", "images per step")
    positive_int(a.depth, "--depth", "6n+2")
    positive_int(a.channel_group, "--channel-group", "channels per group")
    if a.channel_group is not None and a.mode not in ("channels", "both"):
        raise FracskipError("--channel-group needs --mode channels or both (bits-only DFS skips no channels)")
    if a.mode in ("channels", "both") and a.channel_group is None:
        raise FracskipError(f"--mode {a.mode} needs --channel-group N (channels per group, one PE fold, e.g. 4)")
    number(a.target, "--target", 0, 1, lo_open=True, what="a fraction of the all-8-bit compute")
    number(a.alpha, "--alpha", 0, what="weight of the cost term")
    if a.seed is not None and a.seed < 0:
        raise FracskipError(f"--seed must be >= 0, got {a.seed}")
    for opt, d, lo_open in (("--epochs", a.epochs, False), ("--lr", a.lr, True)):
        for stage, v in (d or {}).items():
            if stage not in ("backbone", "gates", "joint"):
                raise FracskipError(f"{opt}: unknown stage {stage!r}; stages are backbone, gates, joint")
            number(v, f"{opt} {stage}", 0, lo_open=lo_open)
    if a.depth is not None or a.bit_menu is not None or a.channel_group is not None:  # the model's own rules
        from .training.model import ModelConfig

        ModelConfig(**{k: v for k, v in (("depth", a.depth), ("bit_menu", a.bit_menu),
                                          ("channel_group", a.channel_group)) if v is not None})
    stages = a.stages.split(",") if a.stages else None
    if a.path_probs is not None and stages is not None and "backbone" not in stages:
        raise FracskipError("--path-probs sets how often stage 1 (backbone) draws each width: it cannot be used "
                            "with --stages without backbone")
    data_dir(a, a.dataset)
    if a.init is not None:
        checkpoint(a.init, "--init")
    if getattr(a, "distill", None) is not None:
        checkpoint(a.distill, "--distill")
    out = Path(a.output)
    if a.resume:
        if not (out / "checkpoint.pt").is_file():
            raise FracskipError(f"--resume: {out} holds no checkpoint.pt to continue from; drop --resume to start "
                                "a new run there")
        checkpoint(str(out / "checkpoint.pt"), "--resume")
    output_dir(a.output, "-o", force=False, inputs=(a.data, a.init), resume=a.resume)


def check_eval(a: argparse.Namespace) -> None:
    positive_int(a.limit, "--limit", "test images")
    data_dir(a, a.dataset)
    checkpoint(a.checkpoint)


def check_compare(a: argparse.Namespace) -> None:
    from .training.checkpoint import dataset_of

    positive_int(a.limit, "--limit", "test images")
    existing_dir(getattr(a, "data", None), "--data", "the dataset folder")
    if len(set(a.checkpoints)) != len(a.checkpoints):
        raise FracskipError("the same checkpoint is listed twice: pass each checkpoint once")
    for c in a.checkpoints:
        checkpoint(c)
    if getattr(a, "oracle", None) is not None:
        checkpoint(a.oracle, "--oracle")
    data_dir(a, a.dataset or dataset_of([*a.checkpoints, *([a.oracle] if getattr(a, "oracle", None) else [])]))
    for f in getattr(a, "include", None) or ():
        compare_rows(Path(f))
    if a.plot is not None:
        p = Path(a.plot)
        if p.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise FracskipError(f"--plot {a.plot}: name a .png, .pdf or .svg file")
        if p.is_dir():
            raise FracskipError(f"--plot {a.plot} is a folder; name a .png file")
        if p.exists():
            raise FracskipError(f"--plot {a.plot} exists; choose another file name (nothing is overwritten)")
        existing_dir(str(p.parent), "--plot", "a file in an existing folder")
        writable(p.parent, "--plot")


def check_export(a: argparse.Namespace) -> None:
    from .training.checkpoint import resolve

    if not isinstance(a.checkpoint, str) or not a.checkpoint:
        raise FracskipError("checkpoint: pass a checkpoint file, a run folder, or 'default'")
    # the export loads the checkpoint first thing, before it makes any folder: loading it here too read it twice
    output_dir(a.output, "-o", a.force, inputs=(resolve(a.checkpoint),))


def check_simulate(a: argparse.Namespace) -> None:
    positive_int(a.limit, "--limit", "test images")
    positive_int(a.batch_size, "--batch-size", "images per batch")
    positive_int(a.threads, "--threads", "threads of the Verilator model")
    positive_int(a.jobs, "--jobs", "Verilator models side by side")
    for flag, n, what in (("--threads", a.threads, "the Verilator model's threads"),
                          ("--jobs", a.jobs, "how many Verilator models run")):
        if n > 1 and a.backend != "rtlsim":
            raise FracskipError(f"{flag} sets {what}: it cannot be used with --backend {a.backend}")
    if a.batch_size is not None and a.backend == "rtlsim":  # it streams the images back to back, unbatched
        raise FracskipError("--batch-size sets the controller's batches: --backend rtlsim streams the images back to "
                            "back and takes none; drop it (--jobs splits the images among Verilator models)")
    if a.graphs is not None and a.backend != "qonnx":
        raise FracskipError(f"--graphs chooses what the qonnx backend executes: it cannot be used with "
                            f"--backend {a.backend}")
    folder = existing_dir(a.folder, "folder", "an export folder (`fracskip export`) or a build folder")
    require_complete(folder)
    is_build = (folder / "summary.json").is_file() and (folder / "export" / "manifest.json").is_file()
    if a.backend == "rtlsim" and a.limit is not None:
        back_to_back(a.limit, "--limit")
    if a.backend == "rtlsim" and not is_build:
        raise FracskipError(f"--backend rtlsim simulates a build's RTL: {a.folder} is not a build folder "
                            "(`fracskip build EXPORT --until hdl -o BUILD`, then pass BUILD)")
    if is_build:
        summary = load_json(folder / "summary.json", "re-run `fracskip build`")
        if not isinstance(summary, dict) or "cores" not in summary:
            raise FracskipError(f"{folder / 'summary.json'} is not a build summary; re-run `fracskip build`")
        from .hls.build import FORMAT

        if summary.get("format") != FORMAT:
            raise FracskipError(f"{a.folder} is a build of format {summary.get('format')!r}; this fracskip reads "
                                f"{FORMAT!r}: build it again with `fracskip build`")
        if a.backend == "rtlsim" and summary.get("until") not in ("hdl", "bitstream"):
            raise FracskipError(f"{a.folder} was built --until {summary.get('until')}: the RTL simulation needs "
                                "--until hdl")
    export_folder(folder / "export" if is_build else folder, onnx=a.backend != "torch")
    if a.dataset is None:  # the export's own test images, as eval's default is the checkpoint's
        dataset = export_dataset(folder)
        data_dir(a, dataset, f"{a.folder} was trained on {dataset}, whose test images it is simulated on: it")
    else:
        data_dir(a, a.dataset)


def check_build(a: argparse.Namespace) -> None:
    board(a.board)
    positive_int(a.workers, "--workers", "parallel FINN builds")
    positive_int(a.calibration, "--calibration", "training images")
    if a.sizing_images is not None and a.until == "estimates":
        raise FracskipError("--sizing-images sizes the emitted accelerator's FIFOs: --until estimates emits none; "
                            "drop it, or build --until hdl")
    if a.ignore_fit and a.until != "bitstream":
        raise FracskipError("--ignore-fit lets Vivado try a design FINN's estimates refuse: it needs --until bitstream")
    number(a.budget, "--budget", 0, 1, lo_open=True, what="a fraction of the device")
    number(a.target_fps, "--target-fps", 0, lo_open=True, what="frames per second")
    existing_dir(a.export_dir, "export_dir", "a folder written by `fracskip export`")
    from .training.checkpoint import trained_on

    m = export_folder(a.export_dir)
    dataset = trained_on(checkpoint(str(m.file(m.data["source_checkpoint"]["file"]))))
    data_dir(a, dataset, f"{a.export_dir} was trained on {dataset}, whose training images calibrate the gates: it")
    output_dir(a.output, "-o", a.force, inputs=(a.export_dir, a.data))


def check_deploy(a: argparse.Namespace) -> None:
    import numpy as np

    from .runtime.host import load_array

    positive_int(a.limit, "--limit", "images")
    positive_int(a.batch_size, "--batch-size", "images per batch")
    number(a.timeout, "--timeout", 0, 3600, lo_open=True, what="seconds")
    if a.finn_driver and a.simulate:
        raise FracskipError("--finn-driver runs FINN's driver on a board; --simulate drives the Verilator model with "
                            "fracskip's: pass one of them")
    if a.finn_driver and a.timeout is not None:
        raise FracskipError("--timeout cannot be kept with --finn-driver: FINN's driver waits for the accelerator "
                            "without a limit; drop --timeout, or --finn-driver for fracskip's driver, which has one")
    pkg = existing_dir(a.package, "package", "a deploy package (FINN's layout: bitfile/, driver/)")
    from .runtime.accelerator_driver import load_package

    package = load_package(pkg)
    exp = package.input_shape[1:]
    existing_file(a.images, "--images", "a .npy or IDX file of uint8 images")
    images = load_array(a.images)
    if images.ndim != 4 or tuple(images.shape[1:]) != exp:
        raise FracskipError(f"--images {a.images}: shape {images.shape}, the network takes (N, "
                            f"{', '.join(map(str, exp))}) raw pixels")
    if not len(images):
        raise FracskipError(f"--images {a.images} holds no images")
    if images.dtype != np.uint8 and not np.array_equal(images, np.clip(np.round(images), 0, 255)):
        raise FracskipError(f"--images {a.images}: values must be raw 8-bit pixels (0..255)")
    if a.labels is not None:
        existing_file(a.labels, "--labels", "a .npy or IDX file of class numbers")
        labels = load_array(a.labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise FracskipError(f"--labels {a.labels}: {labels.shape} labels for {len(images)} images; pass one "
                                "class number per image")
        n = len(package.extra["classes"])
        if labels.dtype.kind not in "iuf" or not np.all(np.mod(labels, 1) == 0) or labels.min() < 0 \
                or labels.max() >= n:
            raise FracskipError(f"--labels {a.labels}: values {labels.min()}..{labels.max()}; pass class numbers "
                                f"0..{n - 1} (the package's {n} classes)")


def back_to_back(n: int, flag: str) -> None:
    if n < 2:
        raise FracskipError(f"--backend rtlsim reports steady-state cycles per image, the spacing of results back to "
                            f"back: {flag} 2 or more (one image gives only its latency)")


def check_demo(a: argparse.Namespace) -> None:
    positive_int(a.images, "--images", "test images through the simulation")
    if a.backend == "rtlsim":
        back_to_back(a.images, "--images")
    positive_int(a.workers, "--workers", "parallel FINN builds")
    board(a.board)
    takes_fashion_mnist(a.checkpoint, "--checkpoint", "demo")
    from .training.checkpoint import resolve

    output_dir(a.output, "-o", a.force, inputs=(resolve(a.checkpoint),))


def check_bench(a: argparse.Namespace) -> None:
    positive_int(a.workers, "--workers", "parallel FINN builds")
    takes_fashion_mnist(a.checkpoint, "--checkpoint", "bench")
    from .training.checkpoint import resolve

    output_dir(a.output, "-o", a.force, inputs=(resolve(a.checkpoint),))


def check_budget(a: argparse.Namespace) -> None:
    if a.target is None and a.menu is None:
        raise FracskipError("give --target (a compute budget to price the gates to) or --menu (entries to keep)")
    if a.target is not None:
        number(a.target, "--target", 0, 1, lo_open=True, what="a fraction of the all-8-bit compute")
    positive_int(a.images, "--images", "training images")
    existing_dir(getattr(a, "data", None), "--data", "the dataset folder")
    from .training.checkpoint import trained_on

    data_dir(a, a.dataset or trained_on(checkpoint(a.checkpoint)))
    out = Path(a.output)
    if out.exists():
        raise FracskipError(f"-o {a.output} exists; choose another output file (nothing is overwritten)")
    existing_dir(str(out.parent) if str(out.parent) else ".", "-o", "a file in an existing folder")
    writable(out.parent, "-o")


RULES: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": check_train, "eval": check_eval, "compare": check_compare, "export": check_export,
    "simulate": check_simulate, "build": check_build, "deploy": check_deploy, "demo": check_demo,
    "bench": check_bench, "budget": check_budget,
}


def check(a: argparse.Namespace) -> None:
    """Run the rules of ``a.command``; raises FracskipError on the first violation."""
    rule = RULES.get(a.command)
    if rule is not None:
        rule(a)

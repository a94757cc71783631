"""Checkpoints: written atomically, loaded with a clear error, and the shipped ``default``.

A checkpoint is plain data: dicts, lists, tuples, strings, numbers and tensors. It is read with
``torch.load(..., weights_only=True)``, so that a crafted ``.pt`` cannot run code, and its structure is checked
before anything is built from it; ``atomic_save`` refuses to write anything else.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
import tempfile
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import FracskipError
from .channels import build
from .model import DFSNet, ModelConfig

FORMAT = "fracskip-checkpoint/1"
DEFAULT_DIR = Path(__file__).parent / "checkpoints" / "default"
DEFAULT_CHECKPOINT = DEFAULT_DIR / "model.pt"
#: shipped checkpoints by alias: the DFS default and the channel-skipping one (docs/channel-skipping.md)
SHIPPED = {"default": DEFAULT_CHECKPOINT, "lcnet": Path(__file__).parent / "checkpoints" / "lcnet" / "model.pt"}


PLAIN = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor)


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with numpy scalars turned into Python numbers (the same object where nothing changes); anything
    else that is not plain data is refused: it would not load with ``weights_only=True``."""
    if isinstance(obj, dict):
        new = {k: plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
        if all(new[k] is v for k, v in obj.items()):
            return obj  # keeps an OrderedDict state_dict's _metadata
        return type(obj)(new) if isinstance(obj, OrderedDict) else new
    if isinstance(obj, (list, tuple)):
        new = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return obj if all(a is b for a, b in zip(new, obj)) else type(obj)(new)
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()  # np.float64 & co., from numpy-computed figures
    if not isinstance(obj, PLAIN):
        raise FracskipError(f"internal error: {where} is a {type(obj).__name__}; checkpoints hold only plain data "
                            "(dict, list, str, numbers, tensors)")
    return obj


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves a half file."""
    obj = plain(obj)
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, written as ``atomic_save`` writes: complete or not at all."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trained_on(ck: dict) -> str:
    """The dataset a checkpoint's network was trained on."""
    return ck.get("train_config", {}).get("dataset", "fashion-mnist")


def dataset_of(refs: list[str | Path]) -> str:
    """The dataset the checkpoints ``refs`` were all trained on (their test or training images are its)."""
    seen = {str(r): trained_on(load_raw(r)) for r in refs}
    if len(set(seen.values())) > 1:
        which = ", ".join(f"{r}: {d}" for r, d in seen.items())
        raise FracskipError(f"the checkpoints were trained on different datasets ({which}): pass --dataset to say "
                            "which one's images to use")
    return next(iter(seen.values()))


def resolve(ref: str | Path) -> Path:
    """'default', a checkpoint file, or a training run folder -> the checkpoint file."""
    if str(ref) in SHIPPED:
        path = SHIPPED[str(ref)]
        if not path.exists():
            raise FracskipError(f"the shipped {ref} checkpoint is missing ({path}); reinstall fracskip")
        return path
    p = Path(ref)
    if p.is_dir():
        for name in ("model.pt", "checkpoint.pt"):
            if (p / name).exists():
                return p / name
        raise FracskipError(f"{p} is a folder without model.pt or checkpoint.pt; pass a checkpoint file or 'default'")
    if not p.exists():
        raise FracskipError(f"checkpoint {p} does not exist; pass a .pt file written by `fracskip train`, or 'default'")
    return p


def _file(ref: str | Path) -> Path:
    path = resolve(ref)
    if not path.is_file():
        raise FracskipError(f"checkpoint {path} is not a file; pass a .pt file written by `fracskip train`")
    return path


def read_bytes(ref: str | Path) -> bytes:
    """The checkpoint file's bytes, for a caller that keeps them as well as loading them (``load_raw``'s
    ``data``): one read, so that what is kept is what was loaded."""
    return _file(ref).read_bytes()


def load_raw(ref: str | Path, data: bytes | None = None) -> dict:
    """The checkpoint's dict, read without running any code from the file, its structure checked; from ``data``
    (its file's bytes, read already) where given."""
    path = resolve(ref) if data is not None else _file(ref)
    try:
        ck = torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = [ln.strip() for ln in str(e).splitlines() if "global" in ln.lower()]
        if not refused:  # not a pickle torch can read at all
            raise FracskipError(f"{path} is not a readable checkpoint ({str(e).strip().splitlines()[-1][:200]}); "
                                "pass a .pt file written by `fracskip train`") from e
        # weights_only refused a global: code, or an object that is not plain data
        raise FracskipError(f"{path} is not a plain-data checkpoint: it asks to build Python objects that "
                            f"fracskip refuses to load ({refused[0][:200]}). Only load checkpoints written by "
                            "`fracskip train`; nothing from the file was run.") from e
    except Exception as e:  # noqa: BLE001 - zip, pickle, storage errors: all mean an unreadable file
        raise FracskipError(f"{path} is not a readable checkpoint ({type(e).__name__}: {str(e)[:300]}); "
                            "pass a .pt file written by `fracskip train`") from e
    check(ck, path)
    ck["path"] = str(path)
    return ck


# what every checkpoint holds, and the type of each entry
SCHEMA = {"format": str, "model_config": dict, "train_config": dict, "state_dict": dict}
OPTIONAL = {"progress": dict, "history": list, "eval": dict, "optimizer": (dict, type(None)), "budget": dict,
            "world": int}


def check(ck: Any, path: Path | str) -> None:
    """Refuse a checkpoint whose structure is not fracskip's, naming what is wrong."""
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise FracskipError(f"{path} is not a fracskip checkpoint (expected format {FORMAT})")
    for key, typ in {**SCHEMA, **OPTIONAL}.items():
        if key not in ck:
            if key in SCHEMA:
                raise FracskipError(f"{path} lacks {key!r}: not a complete fracskip checkpoint; re-run `fracskip train`")
            continue
        if not isinstance(ck[key], typ):
            raise FracskipError(f"{path}: {key!r} is a {type(ck[key]).__name__}, not a "
                                f"{getattr(typ, '__name__', 'dict or None')}; the checkpoint is damaged")
    bad = [k for k, v in ck["state_dict"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise FracskipError(f"{path}: state_dict entries {bad[:3]} are not named tensors; the checkpoint is damaged")
    prog = ck.get("progress")
    if prog is not None and not all(isinstance(prog.get(k), int) and prog[k] >= 0 for k in ("stage", "epoch", "step")):
        raise FracskipError(f"{path}: 'progress' must hold non-negative integers stage, epoch, step; got {prog}")


def model_config(ck: dict) -> ModelConfig:
    """The checkpoint's ModelConfig, with a clear error for unknown or ill-typed fields (each field must have
    the type of its default: an int, a str, or a sequence of ints)."""
    # checkpoints written before the integer gate carry the float gate (training/intgate.py)
    mc, where = {"gate": "float", **ck["model_config"]}, ck.get("path", "checkpoint")
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
                for f in fields(ModelConfig)}
    unknown = sorted(str(k) for k in mc if k not in defaults)
    if unknown:
        raise FracskipError(f"{where}: model_config has unknown fields {unknown}; written by another fracskip version?")
    for k, v in mc.items():
        d = defaults[k]
        if isinstance(d, bool):
            ok = isinstance(v, bool)
        elif isinstance(d, int):
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
        elif isinstance(d, (tuple, list)):
            ok = isinstance(v, (list, tuple)) and all(isinstance(b, int) and not isinstance(b, bool) for b in v)
        else:
            ok = isinstance(v, type(d)) if d is not None else True
        if not ok:
            raise FracskipError(f"{where}: model_config[{k!r}] = {v!r} is not valid; the checkpoint is damaged")
    try:
        return ModelConfig(**mc)
    except (TypeError, ValueError) as e:
        raise FracskipError(f"{where}: model_config {mc} describes no valid network ({e})") from e


# far above any network fracskip trains: a damaged config must not allocate a giant model
LIMITS = {"depth": 1000, "widths": 4096, "in_channels": 64, "image_size": 1024, "num_classes": 10000, "gate_hidden": 1024}


def load_model(ref: str | Path, data: bytes | None = None) -> tuple[DFSNet, dict]:
    ck = load_raw(ref, data)
    cfg = model_config(ck)
    too_big = [k for k, hi in LIMITS.items()
               if any(v > hi for v in (getattr(cfg, k) if isinstance(getattr(cfg, k), tuple) else (getattr(cfg, k),)))]
    if too_big or len(cfg.widths) != 3 or min(cfg.widths) < 1 or cfg.image_size < 4:
        raise FracskipError(f"{ck['path']}: model_config {ck['model_config']} describes no valid network")
    # the convolutions the config describes must be about the weights the file holds: a damaged config must
    # not allocate a network far larger than the checkpoint
    convs = 9 * cfg.in_channels * cfg.widths[0] + cfg.widths[-1] * cfg.num_classes + sum(
        9 * cin * cout + 9 * cout * cout + (cin * cout if stride > 1 else 0) for cin, cout, stride in cfg.block_specs())
    held = sum(v.numel() for v in ck["state_dict"].values())
    if convs > 2 * held + 100_000:
        raise FracskipError(f"{ck['path']}: model_config describes {convs} convolution weights but the file holds "
                            f"{held} values; the checkpoint is damaged")
    net = build(cfg)
    load_state(net, ck["state_dict"], strict=True)
    net.eval()
    return net, ck


def load_state(net: DFSNet, state: dict, strict: bool) -> list[str]:
    """Load weights; with strict=False, a sub-menu model takes the paths it has from a backbone.

    Brevitas adds a learned-scale tensor to an activation quantizer's state once its statistics are
    collected, so a fresh model's own key set is not the checkpoint's: let load_state_dict judge.
    """
    own = net.state_dict()
    if strict:
        try:
            res = net.load_state_dict(state, strict=False)
        except (RuntimeError, ValueError, TypeError) as e:
            raise FracskipError(f"checkpoint does not match its model config: {str(e)[:400]}") from e
        # a quantizer still collecting statistics saves them as a buffer, not as the learned value
        learned = ".scaling_impl.value"
        bad = [k for k in res.missing_keys + res.unexpected_keys if not k.endswith(learned)]
        if bad:
            raise FracskipError(f"checkpoint does not match its model config: {bad[:5]}")
        return []
    take = {k: v for k, v in state.items() if k not in own or own[k].shape == v.shape}
    res = net.load_state_dict(take, strict=False)
    return sorted(res.missing_keys)

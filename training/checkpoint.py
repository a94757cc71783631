"""Checkpoints: written atomically, loaded with a clear error, and the shipped ``default``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FracskipError
from .model import DFSNet, ModelConfig

FORMAT = "fracskip-checkpoint/1"
DEFAULT_DIR = Path(__file__).parent / "checkpoints" / "default"
DEFAULT_CHECKPOINT = DEFAULT_DIR / "model.pt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve(ref: str | Path) -> Path:
    """'default', a checkpoint file, or a training run folder -> the checkpoint file."""
    if str(ref) == "default":
        if not DEFAULT_CHECKPOINT.exists():
            raise FracskipError(f"the shipped default checkpoint is missing ({DEFAULT_CHECKPOINT}); reinstall fracskip")
        return DEFAULT_CHECKPOINT
    p = Path(ref)
    if p.is_dir():
        for name in ("model.pt", "checkpoint.pt"):
            if (p / name).exists():
                return p / name
        raise FracskipError(f"{p} is a folder without model.pt or checkpoint.pt; pass a checkpoint file or 'default'")
    if not p.exists():
        raise FracskipError(f"checkpoint {p} does not exist; pass a .pt file written by `fracskip train`, or 'default'")
    return p


def load_raw(ref: str | Path) -> dict:
    path = resolve(ref)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise FracskipError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise FracskipError(f"{path} is not a fracskip checkpoint (expected format {FORMAT})")
    ck["path"] = str(path)
    return ck


def load_model(ref: str | Path) -> tuple[DFSNet, dict]:
    ck = load_raw(ref)
    net = DFSNet(ModelConfig(**ck["model_config"]))
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
        except RuntimeError as e:
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

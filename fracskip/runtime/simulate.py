"""``fracskip simulate``: run test images through the runtime controller on a backend and compare
with the PyTorch model (decisions, logits, accuracy)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import FracskipError
from .controller import Controller, Trace
from .manifest import Manifest

BACKENDS = ("torch", "qonnx", "rtlsim")


def make_backend(name: str, manifest: Manifest, folder: Path):
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])))
    if name == "qonnx":
        from .qonnx_backend import QONNXBackend

        return QONNXBackend(manifest)
    if name == "rtlsim":
        from ..hls.rtlsim_backend import RTLSimBackend

        return RTLSimBackend(folder)
    raise FracskipError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def simulate(folder: str | Path, backend: str, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64) -> tuple[dict, Trace]:
    """Run ``images`` through the controller on ``backend``; the torch model is the reference."""
    from .torch_backend import TorchBackend

    folder = Path(folder)
    export_dir = folder / "export" if (folder / "export" / "manifest.json").exists() else folder
    m = Manifest.load(export_dir)
    be = make_backend(backend, m, folder)
    ref = TorchBackend(str(m.file(m.data["source_checkpoint"]["file"])))
    ctl = Controller(m, be)
    logits, choices, bitops, cycles = [], [], [], []
    ref_logits, ref_choices = [], []
    dt = 0.0
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        t0 = time.time()
        lo, tr = ctl.run(x)
        dt += time.time() - t0
        logits.append(lo)
        choices.append(tr.choices)
        bitops.append(tr.bitops)
        if tr.cycles is not None:
            cycles.append(tr.cycles)
        rl, rc = ref.reference(x)
        ref_logits.append(rl)
        ref_choices.append(rc)
    lo, ch, rl, rc = (np.concatenate(a) for a in (logits, choices, ref_logits, ref_choices))
    full = m.data["bitops"]["full_8bit"]
    bo = np.concatenate(bitops)
    res = {
        "backend": backend,
        "n": int(len(images)),
        "accuracy": float((lo.argmax(1) == labels).mean()),
        "torch_accuracy": float((rl.argmax(1) == labels).mean()),
        "compute_pct": float(100 * bo.mean() / full),
        "bitops_per_input": float(bo.mean()),
        "decisions_match_pct": float(100 * (ch == rc).all(axis=1).mean()),
        "argmax_agreement_pct": float(100 * (lo.argmax(1) == rl.argmax(1)).mean()),
        "max_logit_abs_diff": float(np.abs(lo - rl).max()),
        "images_per_s": float(len(images) / dt),
    }
    trace = Trace(ch, np.asarray(m.bit_menu)[ch] if ch.size else ch, bo, np.concatenate(cycles) if cycles else None)
    return res, trace

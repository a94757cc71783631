"""``fracskip simulate``: run test images through the runtime controller on a backend and compare
with the PyTorch model (decisions, logits, accuracy).

On the ``rtlsim`` backend (a build folder) every core call is also checked, after the timed run, against
FINN's Python execution of the same dataflow partition on the same input (``bit_exact_pct``: share of path
invocations, i.e. (input, core) pairs, whose integer output is identical) and against the exported QONNX core
graph (``bit_exact_vs_qonnx_pct``, integer cores; QONNX executes in float32 and may round a tie differently,
see export/verify.py), and the cycles the cores spent are compared with FINN's estimates.
"""

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
             batch_size: int = 64, progress: bool = True) -> tuple[dict, Trace]:
    """Run ``images`` through the controller on ``backend``; the torch model is the reference."""
    from tqdm import tqdm

    from .torch_backend import TorchBackend

    folder = Path(folder)
    export_dir = folder / "export" if (folder / "export" / "manifest.json").exists() else folder
    m = Manifest.load(export_dir)
    be = make_backend(backend, m, folder)
    checked = CheckedBackend(be, m) if backend == "rtlsim" else None
    ref = TorchBackend(str(m.file(m.data["source_checkpoint"]["file"])))
    ctl = Controller(m, checked or be)
    logits, choices, bitops, cycles = [], [], [], []
    ref_logits, ref_choices = [], []
    dt = 0.0
    bar = tqdm(total=len(images), desc=f"simulate ({backend})", unit="img", disable=None if progress else True)
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            t0 = time.time()
            lo, tr = ctl.run(x)
            dt += time.time() - t0
            if checked is not None:
                checked.check()  # outside the timing: FINN's Python execution is far slower than the simulation
            logits.append(lo)
            choices.append(tr.choices)
            bitops.append(tr.bitops)
            if tr.cycles is not None:
                cycles.append(tr.cycles)
            rl, rc = ref.reference(x)
            ref_logits.append(rl)
            ref_choices.append(rc)
            bar.update(len(x))
    finally:
        bar.close()
        if hasattr(be, "close"):
            be.close()
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
    if checked is not None:
        res.update(checked.report(len(images), dt, trace.cycles))
    return res, trace


class CheckedBackend:
    """The rtlsim backend, each call remembered (input, integer output, result) and checked by ``check()``
    against FINN's Python execution of the same partition and against the QONNX core graph."""

    def __init__(self, backend, manifest: Manifest):
        from .qonnx_backend import QONNXBackend

        self.be, self.name = backend, backend.name
        self.qonnx = QONNXBackend(manifest)
        self.pending: list[tuple] = []
        self.stats: dict[str, dict] = {}

    @property
    def last_cycles(self):
        return self.be.last_cycles

    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        y = self.be.run(core, x)
        self.pending.append((core, np.array(x), self.be.last_outputs, y))
        return y

    def check(self) -> None:
        for core, x, ints, y in self.pending:
            n = len(x)
            st = self.stats.setdefault(core, {"invocations": 0, "bit_exact": 0, "bit_exact_vs_qonnx": 0,
                                              "max_abs_diff_vs_qonnx": 0.0})
            st["invocations"] += n
            finn = self.be.reference(core, x).reshape(n, -1)
            st["bit_exact"] += int((finn == ints.reshape(n, -1)).all(axis=1).sum())
            q = self.qonnx.run(core, x).reshape(n, -1)
            st["bit_exact_vs_qonnx"] += int((q == y.reshape(n, -1)).all(axis=1).sum())
            st["max_abs_diff_vs_qonnx"] = max(st["max_abs_diff_vs_qonnx"], float(np.abs(q - y.reshape(n, -1)).max()))
        self.pending.clear()

    def report(self, n_images: int, seconds: float, cycles: np.ndarray | None) -> dict:
        """The hardware figures of ``simulate``'s result (see the module docstring)."""
        inv = sum(s["invocations"] for s in self.stats.values())
        ints = {c: s for c, s in self.stats.items() if c != "head"}  # the head ends in float logits
        inv_int = sum(s["invocations"] for s in ints.values())
        cyc = self.be.cycle_report()
        per_core = {c: {**self.stats[c], **cyc["cores"].get(c, {})} for c in self.stats}
        if "head" in per_core:
            per_core["head"]["bit_exact_vs_qonnx"] = None  # float logits: see head_max_abs_diff_vs_qonnx
        sim_s = seconds - self.be.build_seconds
        return {
            "bit_exact_pct": 100 * sum(s["bit_exact"] for s in self.stats.values()) / inv,
            "bit_exact_vs_qonnx_pct": 100 * sum(s["bit_exact_vs_qonnx"] for s in ints.values()) / inv_int,
            "head_max_abs_diff_vs_qonnx": self.stats.get("head", {}).get("max_abs_diff_vs_qonnx"),
            "path_invocations": inv,
            "mean_cycles_per_input": float(cycles.mean()) if cycles is not None else None,
            "cycles_vs_estimate": {"overall": cyc["overall_vs_estimate"],
                                   **{c: v["cycles_vs_estimate"] for c, v in cyc["cores"].items()}},
            # simulation speed: controller + host ops + Verilator, without verilating (cached on later runs)
            "images_per_s": n_images / sim_s if sim_s > 0 else None,
            "rtlsim_build_s": self.be.build_seconds,
            "cores": per_core,
        }

"""``fracskip simulate``: run test images through the runtime controller on a backend and compare
with the PyTorch model (decisions, logits, accuracy).

The reference is the PyTorch model evaluated in float64, whose quantizers round exactly as integer hardware
does (float32 rounds values within its precision of a rounding boundary either way; see export/verify.py).

On the ``rtlsim`` backend, the build's accelerator runs as one Verilator model, images streamed back to back,
against the numpy controller and the torch model (``simulate_accelerator``, ``hls.accelerator.rtlsim``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import FracskipError
from .runtime.controller import Controller, Trace
from .runtime.manifest import Manifest

BACKENDS = ("torch", "qonnx", "rtlsim")


def make_backend(name: str, manifest: Manifest, graphs: str = "finn", progress: bool = True):
    if name == "torch":
        from .backends.torch_backend import TorchBackend

        # float64 with the float32 scales: the cores' integers are then exactly the hardware's (see TorchBackend)
        return TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])), exact=True)
    if name == "qonnx":
        from .backends.qonnx_backend import QONNXBackend

        return QONNXBackend(manifest, graphs, progress)
    raise FracskipError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def simulate(folder: str | Path, backend: str, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64, progress: bool = True, graphs: str = "finn",
             design: str = "dfs", threads: int = 1, jobs: int = 1) -> tuple[dict, Trace]:
    """Run ``images`` through the controller on ``backend``; the torch model (float64) is the reference.
    ``graphs`` is the form the qonnx backend executes (see qonnx_backend). ``design``: on ``rtlsim``, which
    accelerator of the build (a static baseline of ``fracskip build --baselines``: ``static_W4A4``...);
    ``threads``: the Verilator model's; ``jobs``: Verilator models side by side, each on a share of the images."""
    from tqdm import tqdm

    from .backends.torch_backend import TorchBackend

    folder = Path(folder)
    if backend == "rtlsim":
        from .hls import accelerator as A

        if not A.has_accelerator(folder, design):
            raise FracskipError(f"{folder} has no {'accelerator' if design == 'dfs' else design} to simulate: "
                                "build one with `fracskip build EXPORT --board B -o BUILD` (--until hdl, the "
                                f"default{'' if design == 'dfs' else '; --baselines for the static ones'})")
        return simulate_accelerator(folder, images, labels, progress, design, threads, jobs)
    if design != "dfs":
        raise FracskipError(f"--design {design} runs an accelerator of a build: use --backend rtlsim")
    export_dir = folder / "export" if (folder / "export" / "manifest.json").exists() else folder
    m = Manifest.load(export_dir)
    be = make_backend(backend, m, graphs, progress)
    ref = TorchBackend(str(m.file(m.data["source_checkpoint"]["file"])), exact=True)
    ctl = Controller(m, be)
    logits, choices, bitops, keeps = [], [], [], []
    ref_logits, ref_choices, ref_keeps = [], [], []
    dt = 0.0
    bar = tqdm(total=len(images), desc=f"simulate ({backend})", unit="img", disable=None if progress else True)
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            t0 = time.time()
            lo, tr = ctl.run(x)
            dt += time.time() - t0
            logits.append(lo)
            choices.append(tr.choices)
            bitops.append(tr.bitops)
            rl, rc, rk = ref.reference_trace(x)
            ref_logits.append(rl)
            ref_choices.append(rc)
            if tr.keep is not None:
                keeps.append(tr.keep)
                ref_keeps.append(rk)
            bar.update(len(x))
    finally:
        bar.close()
        if hasattr(be, "close"):
            be.close()
    lo, ch, rl, rc = (np.concatenate(a) for a in (logits, choices, ref_logits, ref_choices))
    full = m.data["bitops"]["full_8bit"]
    bo = np.concatenate(bitops)
    keep = np.concatenate(keeps) if keeps else None
    dec_ok = (ch == rc).all(axis=1)
    if keep is not None:  # a channel network's keep bits are decisions too, as rtlsim's and deploy's figures count
        dec_ok &= (keep == np.concatenate(ref_keeps)).all(axis=1)
    res = {
        "backend": backend,
        **({"graphs": graphs} if backend == "qonnx" else {}),
        "reference": "torch float64",
        "n": int(len(images)),
        "accuracy": float((lo.argmax(1) == labels).mean()),
        "torch_accuracy": float((rl.argmax(1) == labels).mean()),
        "compute_pct": float(100 * bo.mean() / full),
        "bitops_per_input": float(bo.mean()),
        "decisions_match_pct": float(100 * dec_ok.mean()),
        "argmax_agreement_pct": float(100 * (lo.argmax(1) == rl.argmax(1)).mean()),
        "max_logit_abs_diff": float(np.abs(lo - rl).max()),
        "images_per_s": float(len(images) / dt),
    }
    if keep is not None:
        res.update(_channel_figures(m, ch, keep, np.concatenate(ref_keeps)))
    trace = Trace(ch, np.asarray(m.bit_menu)[ch] if ch.size else ch, bo, None, keep=keep)
    return res, trace


def _channel_figures(m: Manifest, choices: np.ndarray, keep: np.ndarray, ref_keep: np.ndarray) -> dict:
    """A channel-skipping export's keep decisions against the reference's, and the fraction of channels kept."""
    return {"keep_decisions_match_pct": float(100 * (keep == ref_keep).all(axis=1).mean()),
            "kept_channel_fraction": kept_fraction(m, choices, keep)}


def kept_fraction(m: Manifest, choices: np.ndarray, keep: np.ndarray) -> list[float | None]:
    """Per gated block, the fraction of its channel groups kept, over the inputs that ran a path with groups."""
    from .runtime import controller

    grouped = [[k for k, b in enumerate(m.bit_menu) if "channels" in blk["paths"][str(b)]] for blk in m.gated_blocks]
    return controller.kept_fraction(choices, keep, m.channel_groups, grouped)


def simulate_accelerator(build_dir: Path, images: np.ndarray, labels: np.ndarray,
                         progress: bool = True, design: str = "dfs", threads: int = 1,
                         jobs: int = 1) -> tuple[dict, Trace]:
    """The build's accelerator (``hls.accelerator``: the whole network, one Verilator model, images back to back)
    against the numpy controller and the torch model; ``hls.accelerator.rtlsim`` has the figures."""
    from .hls import accelerator as A

    res, run = A.rtlsim_run(build_dir, images, labels, progress=progress, design=design, threads=threads, jobs=jobs)
    m = Manifest.load(Path(build_dir) / "export")
    if design in A.STATIC:  # every gated block at the design's width (a route: on the menu or beyond it)
        run.decisions = np.full((len(images), len(m.gated_blocks)), m.routes.index(A.static_bits(design)))
    bitops = Controller(m, None).bitops(run.decisions, run.keep)
    if run.keep is not None:
        res["kept_channel_fraction"] = kept_fraction(m, run.decisions, run.keep)
    res["compute_pct"] = float(100 * bitops.mean() / m.data["bitops"]["full_8bit"])
    res["bitops_per_input"] = float(bitops.mean())
    res["images_per_s"] = res["sim_images_per_s"]  # the other backends' name for the simulator's speed
    trace = Trace(run.decisions, np.asarray(m.routes)[run.decisions], bitops,
                  np.full(len(images), res["cycles_per_image_measured"]), keep=run.keep)
    return res, trace

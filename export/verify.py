"""Golden checks of an export against FINN's front end: every core's QONNX graph through FINN's
``ConvertQONNXtoFINN`` and fracskip's streamlining, executed in Python, must give exactly the integers
the Brevitas model gives for that core.

The reference is Brevitas evaluated in float64: FINN's thresholds compare integer accumulators, which is
exact arithmetic, while float32 Brevitas (and float32 execution of the QONNX graph) rounds a value lying
within float32 precision of a rounding boundary either way. The float32 disagreements are counted too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..runtime.manifest import Manifest


def core_inputs(manifest: Manifest, images: np.ndarray) -> dict[str, np.ndarray]:
    """Realistic inputs for every core: the interface tensors the torch model produces on ``images``
    (each block fed the output of the previous block's 8-bit path)."""
    from ..runtime.torch_backend import TorchBackend

    tb = TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])))
    feeds = {"stem": images.astype(np.float32)}
    x = tb.run("stem", feeds["stem"])
    for blk in manifest.blocks:
        for p in blk["paths"].values():
            if p.get("core"):
                feeds[p["core"]] = x
        full = max(int(b) for b in blk["paths"])
        x = tb.run(manifest.path_core(blk["index"], full), x)
    feeds["head"] = x.sum(axis=(2, 3))
    return feeds


def verify_streamlined(manifest: Manifest, images: np.ndarray, cores: list[str] | None = None,
                       progress: bool = True) -> dict[str, dict]:
    """For each core: run FINN's front end (step_qonnx_to_finn, step_tidy_up, step_fracskip_streamline) and
    compare the streamlined graph's Python execution with the torch core, input by input."""
    from ..hls import finn_env

    work = Path(tempfile.mkdtemp(prefix="fracskip-verify-"))
    finn_env.setup(work / "finn_build")
    from finn.builder.build_dataflow_config import DataflowBuildConfig
    from finn.builder.build_dataflow_steps import step_qonnx_to_finn, step_tidy_up
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from ..hls.steps import step_fracskip_streamline
    from ..runtime.torch_backend import TorchBackend

    cfg = DataflowBuildConfig(output_dir=str(work / "out"), synth_clk_period_ns=10.0, target_fps=1,
                              generate_outputs=[])
    tb = TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])))
    feeds = core_inputs(manifest, images)
    results = {}
    names = cores or list(manifest.cores())
    for name in tqdm(names, desc="verify", unit="core", disable=None if progress else True):
        core = manifest.cores()[name]
        model = ModelWrapper(str(manifest.file(core["file"])))
        for step in (step_qonnx_to_finn, step_tidy_up, step_fracskip_streamline):
            model = step(model, cfg)
        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        x = feeds[name]
        got = np.concatenate([execute_onnx(model, {iname: x[i:i + 1]})[oname] for i in range(len(x))])
        want32 = tb.run(name, x)
        with torch.no_grad():
            want = tb.cores[name].double()(torch.from_numpy(x).double()).numpy()
        tb.cores[name].float()
        exact = name != "head"  # the head ends in float logits (scale and bias on the host)
        diff = float(np.abs(got - want).max())
        results[name] = {"ops": sorted({n.op_type for n in model.graph.node}), "inputs": int(len(x)),
                         "elements": int(got.size), "max_abs_diff": diff,
                         "mismatches": int((got != want).sum()) if exact else None,
                         "equal": bool(np.array_equal(got, want)) if exact else diff <= 1e-4,
                         "differ_from_float32_brevitas": int((got != want32).sum()) if exact else None}
    return results

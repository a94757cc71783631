"""Golden checks of an export against FINN's front end: every core's QONNX graph through FINN's
``ConvertQONNXtoFINN`` and fracskip's streamlining, executed in Python, must give exactly the integers
the Brevitas model gives for that core.

The reference is Brevitas evaluated in float64: FINN's thresholds compare integer accumulators, which is
exact arithmetic, while float32 Brevitas (and float32 execution of the raw QONNX graph) rounds a value lying
within float32 precision of a rounding boundary either way. The float32 disagreements are counted too.
"""

from __future__ import annotations

import copy

import numpy as np
from tqdm import tqdm

from ..runtime.manifest import Manifest


# a core's QONNX file (by content) -> its front-end graph: within one process (the tests, the bench) each graph
# is streamlined once, however many golden runs read it
_streamlined: dict[str, object] = {}


def front_end(manifest: Manifest, cores: list[str] | None = None, progress: bool = True) -> dict:
    """FINN's front end (``hls.steps.frontend_steps``: QONNX to FINN and streamlining, in float64) on each core's graph:
    name -> streamlined ModelWrapper (the caller's own copy), integer in and integer out (the head: logits)."""
    from ..hls import finn_env, frontend
    from ..runtime.manifest import sha256

    files = {name: manifest.file(manifest.cores()[name]["file"]) for name in cores or manifest.cores()}
    keys = {name: sha256(f) for name, f in files.items()}
    todo = [name for name in files if keys[name] not in _streamlined]
    if todo:
        with finn_env.scratch("fracskip-frontend-") as work:
            from finn.builder.build_dataflow_config import DataflowBuildConfig
            from qonnx.core.modelwrapper import ModelWrapper

            from ..hls.steps import frontend_steps

            cfg = DataflowBuildConfig(output_dir=str(work / "out"), synth_clk_period_ns=10.0, target_fps=1,
                                      generate_outputs=[])
            for name in tqdm(todo, desc="FINN front end", unit="core", disable=None if progress else True):
                if cached := frontend.lookup(files[name]):
                    _streamlined[keys[name]] = ModelWrapper(str(cached))
                    continue
                model = ModelWrapper(str(files[name]))
                for step in frontend_steps():
                    model = step(model, cfg)
                frontend.store(files[name], model)
                _streamlined[keys[name]] = model
    return {name: copy.deepcopy(_streamlined[keys[name]]) for name in files}


def execute(model, x: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """FINN's Python execution of a batch-1 graph, input by input; ``keep``: a channel path's second input."""
    from qonnx.core.onnx_exec import execute_onnx

    names, oname = [t.name for t in model.graph.input[:1 if keep is None else 2]], model.graph.output[0].name
    feeds = [x] if keep is None else [x, keep]
    return np.concatenate([execute_onnx(model, {n: f[i:i + 1].astype(np.float32) for n, f in zip(names, feeds)})[oname]
                           for i in range(len(x))])


def core_inputs(manifest: Manifest, images: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    """Realistic inputs for every core: the interface tensors the torch model produces on ``images``
    (each block fed the output of the previous block's widest path, every channel kept); a channel path's core
    of ``k`` groups kept also gets a keep mask of ``k`` groups drawn at random per input."""
    from ..backends.torch_backend import TorchBackend

    tb = TorchBackend(str(manifest.file(manifest.data["source_checkpoint"]["file"])))
    rng = np.random.default_rng(0)
    feeds = {"stem": (images.astype(np.float32),)}
    x = tb.run("stem", *feeds["stem"])
    for blk in manifest.blocks:
        for p in blk["paths"].values():
            if "channels" in p:
                ch = p["channels"]
                for k, c in ch["kept"].items():
                    groups = np.argsort(rng.random((len(x), ch["groups"])), axis=1) < int(k)
                    feeds[c["core"]] = (x, groups.repeat(ch["group"], axis=1).astype(np.float32))
            elif p.get("core"):
                feeds[p["core"]] = (x,)
        full = manifest.path_core(blk["index"], max(int(b) for b in blk["paths"]))
        x = tb.run(full, x, *[np.ones_like(k) for k in feeds[full][1:]])
    feeds["head"] = (x.sum(axis=(2, 3)),)
    return feeds


def verify_streamlined(manifest: Manifest, images: np.ndarray, cores: list[str] | None = None,
                       progress: bool = True) -> dict[str, dict]:
    """For each core: compare the streamlined graph's Python execution with the torch core (float64 and
    float32), input by input."""
    from ..backends.torch_backend import TorchBackend

    source = str(manifest.file(manifest.data["source_checkpoint"]["file"]))
    tb32, tb64 = TorchBackend(source), TorchBackend(source, exact=True)
    feeds = core_inputs(manifest, images)
    results = {}
    for name, model in front_end(manifest, cores, progress).items():
        args = feeds[name]
        x = args[0]
        got = execute(model, *args)
        want, want32 = tb64.run(name, *args), tb32.run(name, *args)
        exact = name != "head"  # the head ends in float logits (scale and bias on the host)
        diff = float(np.abs(got - want).max())
        results[name] = {"ops": sorted({n.op_type for n in model.graph.node}), "inputs": int(len(x)),
                         "elements": int(got.size), "max_abs_diff": diff,
                         "mismatches": int((got != want).sum()) if exact else None,
                         "equal": bool(np.array_equal(got, want)) if exact else diff <= 1e-4,
                         "differ_from_float32_brevitas": int((got != want32).sum()) if exact else None}
    return results

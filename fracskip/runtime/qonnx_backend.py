"""Backend ``qonnx``: the exported QONNX graphs executed by qonnx's Python executor (the golden reference)."""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from ..errors import FracskipError
from .manifest import Manifest


class QONNXBackend:
    name = "qonnx"

    def __init__(self, manifest: Manifest):
        self.models: dict[str, ModelWrapper] = {}
        for name, core in manifest.cores().items():
            self.models[name] = ModelWrapper(str(manifest.file(core["file"])))

    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        m = self.models.get(core)
        if m is None:
            raise FracskipError(f"core {core!r} is not in this export")
        iname, oname = m.graph.input[0].name, m.graph.output[0].name
        # exported graphs have batch 1: run input by input
        return np.concatenate([execute_onnx(m, {iname: x[i:i + 1].astype(np.float32)})[oname] for i in range(len(x))])

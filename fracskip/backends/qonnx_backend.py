"""Backend ``qonnx``: the exported graphs executed by qonnx/FINN's Python executor (the golden reference).

By default each core runs as FINN's front end leaves it (``ConvertQONNXtoFINN`` + streamlining): integer
tensors, integer-valued convolutions and MultiThreshold, so that its outputs are exact and equal the
hardware's. ``graphs="qonnx"`` runs the exported QONNX files as they are, in float32, where a value within
float32 precision of a rounding boundary can round either way (export/verify.py measures how often).
"""

from __future__ import annotations

import numpy as np

from ..errors import FracskipError
from ..runtime.manifest import Manifest

GRAPHS = ("finn", "qonnx")


class QONNXBackend:
    name = "qonnx"

    def __init__(self, manifest: Manifest, graphs: str = "finn", progress: bool = True):
        from ..export.verify import front_end

        if graphs not in GRAPHS:
            raise FracskipError(f"unknown graph form {graphs!r}; choose one of {', '.join(GRAPHS)}")
        self.graphs = graphs
        if graphs == "finn":
            self.models = front_end(manifest, progress=progress)
        else:  # as exported (Brevitas' Quant nodes), with the tensor shapes qonnx's executor needs
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.transformation.infer_shapes import InferShapes

            self.models = {n: ModelWrapper(str(manifest.file(c["file"]))).transform(InferShapes())
                           for n, c in manifest.cores().items()}

    def run(self, core: str, x: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        from ..export.verify import execute

        m = self.models.get(core)
        if m is None:
            raise FracskipError(f"core {core!r} is not in this export")
        return execute(m, x, keep)

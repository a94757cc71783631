"""Backend ``torch``: the cores computed by the trained PyTorch/Brevitas modules themselves."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import FracskipError
from ..export.cores import HeadCore, PathCore, StemCore
from ..training.checkpoint import load_model


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: str):
        self.net, self.checkpoint = load_model(checkpoint)
        last = self.net.cfg.image_size
        for _, _, stride in self.net.cfg.block_specs():
            last = (last + stride - 1) // stride
        self.cores: dict[str, torch.nn.Module] = {"stem": StemCore(self.net), "head": HeadCore(self.net, last * last)}
        for i, blk in enumerate(self.net.blocks):
            for key in blk.paths:
                bits = int(key[1:])
                self.cores[f"block{i}_b{bits}"] = PathCore(blk, bits)
        for c in self.cores.values():
            c.eval()

    @torch.no_grad()
    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        if core not in self.cores:
            raise FracskipError(f"core {core!r} is not in this checkpoint")
        return self.cores[core](torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    @torch.no_grad()
    def reference(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The PyTorch model's own forward pass (its own gates): logits and choices."""
        out = self.net(torch.from_numpy(images.astype(np.float32)))
        return out.logits.numpy(), out.choices.numpy()

"""Backend ``torch``: the cores computed by the trained PyTorch/Brevitas modules themselves."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..errors import FracskipError
from ..export.cores import ChannelPathCore, HeadCore, PathCore, StemCore
from ..runtime.intgate import pack_keep
from ..training.checkpoint import load_model


class TorchBackend:
    """``exact=True`` evaluates in float64: every quantizer then rounds the value the integer hardware computes,
    where float32 may land on the other side of a rounding boundary (see export/verify.py). It is the
    reference of ``fracskip simulate``. Except at an exact tie, half a step: Brevitas rounds it to even, FINN's
    thresholds (x >= (t + 1/2) s) up. Counted at every activation quantizer's input, no tie occurs on the shipped
    networks (the default on 2,000 test images, lcnet on 1,000, the tiny test network on 256).

    Every quantizer scale is taken as the float32 model computes it, which is what the export writes:
    recomputed in float64, a scale such as max|w|/127 or a learned threshold/255 differs in its last bits."""

    name = "torch"

    def __init__(self, checkpoint: str, exact: bool = False):
        self.net, self.checkpoint = load_model(checkpoint)
        self.dtype = torch.float64 if exact else torch.float32
        if exact:
            _freeze_scales(self.net)
        self.net.to(self.dtype)
        last = self.net.cfg.image_size
        for _, _, stride in self.net.cfg.block_specs():
            last = (last + stride - 1) // stride
        self.cores: dict[str, torch.nn.Module] = {"stem": StemCore(self.net), "head": HeadCore(self.net, last * last)}
        groups = getattr(self.net, "groups", None)  # a channel-skipping network's, per gated block
        for i, blk in enumerate(self.net.blocks):
            for key in blk.paths:
                bits = int(key[1:])
                if groups is None or i == 0 or bits == 0:
                    self.cores[f"block{i}_b{bits}"] = PathCore(blk, bits)
                    continue
                scales = self.net.mode_scales(i - 1)[list(self.net.cfg.path_bits).index(bits)]
                for k in range(1, groups[i - 1] + 1):  # as the export's cores: one per number of groups kept
                    self.cores[f"block{i}_b{bits}_k{k}"] = ChannelPathCore(blk, bits, scales[k])
        for c in self.cores.values():
            c.to(self.dtype).eval()

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)

    @torch.no_grad()
    def run(self, core: str, x: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        if core not in self.cores:
            raise FracskipError(f"core {core!r} is not in this checkpoint")
        c = self.cores[core]
        if isinstance(c, ChannelPathCore) != (keep is not None):
            raise FracskipError(f"core {core!r} {'needs' if keep is None else 'takes no'} channel keep mask")
        return (c(self._tensor(x)) if keep is None else c(self._tensor(x), self._tensor(keep))).numpy()

    def reference(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The PyTorch model's own forward pass (its own gates): logits and choices."""
        return self.reference_trace(images)[:2]

    def reference_trace(self, images: np.ndarray, batch_size: int | None = None, progress: bool = False
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Logits, choices and, of a channel-skipping network, the keep bits (N, gated blocks) (group g: bit g).
        ``batch_size``: images per forward pass, to bound the memory (each image's results are its own)."""
        step = batch_size or max(len(images), 1)
        starts = range(0, max(len(images), 1), step)  # one pass of an empty batch where there are no images
        runs = [self._trace(images[lo:lo + step])
                for lo in tqdm(starts, desc="torch reference", unit="batch", disable=None if progress else True)]
        keep = None if runs[0][2] is None else np.concatenate([r[2] for r in runs])
        return np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs]), keep

    @torch.no_grad()
    def _trace(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        out = self.net(self._tensor(images))
        keep = getattr(out, "keep", None)
        bits = np.stack([pack_keep(k.numpy()) for k in keep], 1) if keep else None
        return out.logits.numpy(), out.choices.numpy(), bits


class _ConstScale(torch.nn.Module):
    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, x: torch.Tensor, threshold: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale


@torch.no_grad()
def _freeze_scales(net: torch.nn.Module) -> None:
    """Fix every scale at its float32 value (exact in float64).

    Weights: every quantized layer gets its own quantized weight (integers times scale) and its weight
    quantizer is switched off; layers of different bit-widths share one float weight, each gets its copy.
    Activations: the quantizer's scale becomes a constant. BatchNorm's epsilon becomes the float32 value that
    ONNX stores as the node's attribute."""
    if hasattr(net, "channel_scale"):  # a channel-skipping network's per-mode scales (training/channels.py)
        net.frozen_scales = [s.exp().detach().clone() for s in net.channel_scale]
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = float(np.float32(m.eps))
        weight_proxy = getattr(m, "weight_quant", None)
        if weight_proxy is not None and hasattr(m, "quant_weight"):
            qw = m.quant_weight()
            m.weight = torch.nn.Parameter(qw.int().double() * qw.scale.double(), requires_grad=False)
            weight_proxy.disable_quant = True
        act_proxy = getattr(m, "act_quant", None)
        if act_proxy is not None and hasattr(act_proxy, "fused_activation_quant_proxy"):
            tq = act_proxy.fused_activation_quant_proxy.tensor_quant
            threshold = tq.int_scaling_impl(tq.msb_clamp_bit_width_impl())
            tq.scaling_impl = _ConstScale(tq.scaling_impl(torch.zeros(1, 1, 1, 1), threshold))

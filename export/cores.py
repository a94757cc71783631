"""The hardware cores as PyTorch modules: stem, one module per (block, bit-width) path, and head.

Each takes and returns the integers that travel between cores (the 8-bit interface values as float32),
so that its exported QONNX graph has an integer (UINT8) input that FINN can stream, and the torch model
gives the exact integers every exported graph must reproduce.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from brevitas.nn import QuantIdentity

from ..training import quant as q
from ..training.model import DFSBlock, DFSNet, value


def iface_in() -> QuantIdentity:
    """The interface format as a Quant node at a core's input: an identity on interface integers that
    tells QONNX and FINN the tensor is UINT8 with the interface scale."""
    return QuantIdentity(act_quant=q.IfaceQuant, bit_width=8, return_quant_tensor=True)


class StemCore(nn.Module):
    def __init__(self, net: DFSNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return value(self.net.stem(images)) / q.IFACE_SCALE


class PathCore(nn.Module):
    def __init__(self, block: DFSBlock, bits: int):
        super().__init__()
        self.path = block.path(bits)
        if self.path is None:
            raise ValueError("skipping an identity block has no core")
        self.inp = iface_in()

    def forward(self, x_int: torch.Tensor) -> torch.Tensor:
        return value(self.path(self.inp(x_int * q.IFACE_SCALE))) / q.IFACE_SCALE


class ChannelPathCore(PathCore):
    """A path of a channel-skipping block (training/channels.py) for one number of channel groups kept. Its
    second input, ``keep`` (N, C) 0/1 per output channel of conv1, zeroes the dropped channels' codes after
    relu1 (a Mul by the graph's input: the hardware skips their folds instead); relu1's input carries the
    mode's scale, a per-channel constant of (bits, groups kept) that FINN folds into relu1's thresholds."""

    def __init__(self, block: DFSBlock, bits: int, scale: torch.Tensor):
        super().__init__(block, bits)
        self.register_buffer("scale", scale.detach().clone().reshape(1, -1))

    def forward(self, x_int: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.inp(x_int * q.IFACE_SCALE)
        return value(self.path(x, keep, self.scale.expand(x_int.shape[0], -1))) / q.IFACE_SCALE


class HeadCore(nn.Module):
    """The classifier after global average pooling. Its input is the pooled feature map as the integer
    sum over H and W of the interface integers, which the host computes (FINN's GlobalAccPool is HLS-only);
    the 1/(H*W) and the interface scale fold into the classifier's input thresholds."""

    def __init__(self, net: DFSNet, hw: int):
        super().__init__()
        self.net = net
        self.hw = hw

    def forward(self, x_sum: torch.Tensor) -> torch.Tensor:
        return self.net.head_fc(self.net.head_act(x_sum * q.pool_scale(self.hw)))

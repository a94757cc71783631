"""Cost accounting: BitOPs of every path, counted as ``qonnx-inference-cost`` counts them.

A convolution or matrix product costs MACs x weight bits x input-activation bits. Zero weights are not
discounted (qonnx's default, ``discount_sparsity=False``). Batch-norm, thresholds, the residual add and
the gates are not counted (qonnx counts only multiply-accumulates; the gates, about a thousand integer
parameters run in RTL on chip, are reported separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import quant as q
from .model import ModelConfig


def conv_macs(cin: int, cout: int, k: int, hout: int, wout: int) -> int:
    return cin * cout * k * k * hout * wout


@dataclass
class CostTable:
    """BitOPs of the fixed parts and of every (gated block, menu entry), and of the widths beyond the menu."""

    bit_menu: tuple[int, ...]
    stem: int
    first_block: int
    head: int
    gated: list[list[int]]  # [gated block][menu index] -> BitOPs
    block_macs: list[dict[str, int]]  # per block: MACs of conv1, conv2, shortcut
    beyond: tuple[int, ...] = ()  # path widths no gate chooses (ModelConfig.routes): static networks only

    @property
    def routes(self) -> tuple[int, ...]:
        return tuple(self.bit_menu) + tuple(self.beyond)

    def route_bitops(self) -> list[list[int]]:
        """[gated block][route index] -> BitOPs: the menu's entries, then the widths beyond it."""
        return [row + [_path_bitops(m, b, "shortcut" in m) for b in self.beyond]
                for row, m in zip(self.gated, self.block_macs[1:])]

    @property
    def fixed(self) -> int:
        return self.stem + self.first_block + self.head

    @property
    def full(self) -> int:
        """BitOPs of the same network run all at 8 bits: the 100 % of ``compute_pct``."""
        i8 = self.bit_menu.index(q.FULL_BITS) if q.FULL_BITS in self.bit_menu else None
        if i8 is not None:
            return self.fixed + sum(row[i8] for row in self.gated)
        return self.fixed + sum(_path_bitops(m, q.FULL_BITS, False) for m in self.block_macs[1:])

    def per_input(self, choices: torch.Tensor) -> torch.Tensor:
        """(N, gated blocks) route indices (``routes``: the menu's, then beyond) -> (N,) BitOPs."""
        table = torch.tensor(self.route_bitops(), dtype=torch.float64)  # (G, routes)
        if choices.numel() == 0:
            return torch.full((choices.shape[0],), float(self.fixed), dtype=torch.float64)
        picked = table.gather(1, choices.T.cpu().long()).T  # (N, G)
        return self.fixed + picked.sum(1)

    def expected_fraction(self, masks: torch.Tensor) -> torch.Tensor:
        """Differentiable cost of a batch as a fraction of ``full``: masks (N, G, K) -> (N,)."""
        table = torch.tensor(self.gated, dtype=masks.dtype, device=masks.device)
        return (self.fixed + (masks * table).sum(dim=(1, 2))) / self.full


def _path_bitops(m: dict[str, int], bits: int, downsample_skip: bool) -> int:
    if bits == 0:
        return m.get("shortcut", 0) * q.FULL_BITS * q.FULL_BITS if downsample_skip else 0
    return (m["conv1"] + m["conv2"] + m.get("shortcut", 0)) * bits * bits


def cost_table(cfg: ModelConfig) -> CostTable:
    size = cfg.image_size
    stem = conv_macs(cfg.in_channels, cfg.widths[0], 3, size, size) * q.FULL_BITS * q.FULL_BITS
    macs = []
    for cin, cout, stride in cfg.block_specs():
        size = (size + stride - 1) // stride
        m = {"conv1": conv_macs(cin, cout, 3, size, size), "conv2": conv_macs(cout, cout, 3, size, size)}
        if stride != 1 or cin != cout:
            m["shortcut"] = conv_macs(cin, cout, 1, size, size)
        macs.append(m)
    first = _path_bitops(macs[0], q.FULL_BITS, False)
    gated = [[_path_bitops(m, b, "shortcut" in m) for b in cfg.bit_menu] for m in macs[1:]]
    head = cfg.widths[-1] * cfg.num_classes * q.FULL_BITS * q.FULL_BITS
    return CostTable(cfg.bit_menu, stem, first, head, gated, macs, cfg.routes[len(cfg.bit_menu):])

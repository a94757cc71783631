"""Per-input channel skipping (LC-Net's C-Net, Xia et al. 2020) on the DFS network, in units the hardware skips.

LC-Net makes two decisions per input and layer: L-Net skips the layer (DFS's "skip" entry of the bit menu) and C-Net
keeps a subset of its channels, scaling the retained outputs. Here, per gated block:

- the channels are conv1's output channels (the block's inner width), cut into groups of ``channel_group``
  channels, one group = one PE fold of conv1 and one SIMD fold of conv2's input: a dropped group is a fold
  conv1 does not compute and conv2 does not read. conv2's outputs, the shortcut and the residual add keep every
  channel, so the 8-bit block interface is unchanged;
- the decision comes from a head on the gate's LSTM state: int8 weights with a power-of-two scale, integer
  logits, group kept iff its logit > 0 (at least one group: the largest logit, first on ties). Trained
  straight-through like the gate's choice (forward: the hard 0/1 keep; backward: the sigmoid's slope);
- a dropped group's codes after relu1 are zeros, exactly what conv2 reads when its folds are skipped;
- the retained outputs are scaled by per-channel constants per mode (path bit-width, number of groups kept),
  applied before relu1's quantizer, so that each mode's thresholds absorb them (docs/channel-skipping.md says
  how this departs from the paper's per-input saliency scaling, and why).

``LCNet`` is a ``DFSNet`` with these heads; ``ChannelCostTable`` counts the BitOPs of the kept channels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import FracskipError
from ..runtime import intgate as spec
from .cost import CostTable, cost_table
from .intgate import IntGate, _fq_bias, _fq_weight, int_bias, int_weight, weight_exponent
from .model import DFSBlock, DFSNet, ModelConfig

MODES = ("bits", "channels", "both")


def mode_of(cfg: ModelConfig) -> str:
    """bits: DFS; channels: LC-Net-style, one precision (skip allowed); both: bit-width and channel groups."""
    if not cfg.channel_group:
        return "bits"
    return "channels" if len([b for b in cfg.bit_menu if b]) == 1 else "both"


def group_counts(cfg: ModelConfig) -> list[int]:
    """Channel groups of every gated block: its inner width / the group size."""
    return [cout // cfg.channel_group for _, cout, _ in cfg.block_specs()[1:]]


def build(cfg: ModelConfig) -> DFSNet:
    """The network a config describes: DFS, or DFS with channel heads."""
    return LCNet(cfg) if cfg.channel_group else DFSNet(cfg)


def decide(logits: torch.Tensor) -> torch.Tensor:
    """(B, groups) integer logits -> bool keep: logit > 0, and at least the largest (first on ties)."""
    keep = logits > 0
    none = ~keep.any(dim=1)
    if bool(none.any()):
        keep = keep | (F.one_hot(logits.argmax(dim=1), logits.shape[1]).bool() & none[:, None])
    return keep


class ChannelHead(nn.Module):
    """C-Net on the gate: per gated block, a linear map of the LSTM's hidden state h to one logit per channel
    group, in the integer arithmetic of the gate's own output layer (h on 2**-H_EXP, int8 weights at a
    power-of-two scale, int32 bias), so that the keep decisions are integer comparisons."""

    def __init__(self, hidden: int, groups: list[int]):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(hidden, n) for n in groups)
        for p in self.proj:  # start by keeping every group: the backbone as trained
            nn.init.normal_(p.weight, std=0.05)
            nn.init.constant_(p.bias, 1.0)

    def forward(self, g: int, h: torch.Tensor) -> torch.Tensor:
        p = self.proj[g]
        e = weight_exponent(p.weight)
        return h.double() @ _fq_weight(p.weight, e).T + _fq_bias(p.bias, e + spec.H_EXP)

    @torch.no_grad()
    def integer_params(self) -> list[dict]:
        """Per gated block: int8 weights, their exponent, int32 bias at exponent + H_EXP (what the RTL reproduces)."""
        out = []
        for p in self.proj:
            e = weight_exponent(p.weight)
            out.append({"w": int_weight(p.weight, e).numpy().astype(np.int64), "exp": e,
                        "b": int_bias(p.bias, e + spec.H_EXP).numpy().astype(np.int64)})
        return out


class LCOutput(NamedTuple):
    logits: torch.Tensor
    choices: torch.Tensor  # (B, gated blocks): index into the bit menu
    masks: torch.Tensor | None  # (B, gated blocks, menu): straight-through one-hot of the bit choice
    kept: torch.Tensor  # (B, gated blocks): fraction of channel groups kept (straight-through when trained)
    keep: list[torch.Tensor]  # per gated block (B, groups) bool


class LCNet(DFSNet):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        if not isinstance(self.gate, IntGate):
            raise FracskipError("channel skipping needs the integer gate (gate='int')")
        self.groups = group_counts(cfg)
        self.channel_head = ChannelHead(cfg.gate_hidden, self.groups)
        # log of the per-mode scale of retained channels: [gated block] (path bits, groups kept 0..n, channel)
        self.channel_scale = nn.ParameterList(
            nn.Parameter(torch.zeros(len(cfg.path_bits), n + 1, blk.cout)) for n, blk in zip(self.groups, self.blocks[1:]))

    def decision_parameters(self) -> list[nn.Parameter]:
        """What the gates stage trains: the gate, the channel heads and the per-mode scales."""
        return list(self.gate.parameters()) + list(self.channel_head.parameters()) + list(self.channel_scale)

    def mode_scales(self, g: int) -> torch.Tensor:
        """(path bits, groups kept 0..n, channel) scale constants of gated block g."""
        frozen = getattr(self, "frozen_scales", None)  # float32 values, what the export writes (TorchBackend)
        if frozen is not None:
            return frozen[g].to(self.channel_scale[g].dtype)
        return self.channel_scale[g].exp()

    def forward(self, images: torch.Tensor, choices: torch.Tensor | None = None, straight_through: bool = False,
                keep: list[torch.Tensor] | None = None) -> LCOutput:
        """As ``DFSNet.forward``; ``keep`` forces the channel groups (per gated block (B, groups) bool). Forced
        ``choices`` without ``keep`` keep every group, the gate not run: the static network, as the controller's
        ``run(bits=)`` and the hardware's baselines run it."""
        if images.dim() != 4:
            raise FracskipError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        x = self.blocks[0].run(self.stem(images), 8)
        n = images.shape[0]
        state = self.gate.init_state(n, images)
        picked, masks, kept, keeps = [], [], [], []
        for g, blk in enumerate(self.blocks[1:]):
            choice, mask, state = self._choose(g, x, state, choices, straight_through)
            if mask is not None:
                masks.append(mask)
            if keep is not None:
                k = keep[g].bool()
                km = k.float()
            elif choices is not None:
                k = torch.ones(n, self.groups[g], dtype=torch.bool, device=images.device)
                km = k.float()
            else:  # from the hidden state that chose the width
                cl = self.channel_head(g, state[0])
                k = decide(cl)
                km = k.float()
                if straight_through:
                    soft = torch.sigmoid(cl.float())
                    km = km - soft.detach() + soft
            picked.append(choice)
            keeps.append(k)
            kept.append(km.mean(dim=1))
            x = self._route_lc(g, blk, x, choice, mask, km, k.sum(dim=1))
        return LCOutput(self.head(x), torch.stack(picked, 1) if picked else torch.zeros(n, 0, dtype=torch.long),
                        torch.stack(masks, 1) if masks else None,
                        torch.stack(kept, 1) if kept else torch.zeros(n, 0), keeps)

    def _route_lc(self, g: int, blk: DFSBlock, x, choice: torch.Tensor, mask: torch.Tensor | None,
                  km: torch.Tensor, nkept: torch.Tensor):
        """``DFSNet._route`` with every input's channel groups (km: (B, groups) kept, nkept: (B,) their count) and
        the scale of its mode."""
        pbits = self.cfg.path_bits
        ch = km.repeat_interleave(self.cfg.channel_group, dim=1).to(x.value.dtype)  # (B, cout)
        scales = self.mode_scales(g)

        def run(xs, bits: int, rows: torch.Tensor | None):
            if bits == 0:
                return blk.run(xs, 0).value
            c = ch if rows is None else ch.index_select(0, rows)
            nk = nkept if rows is None else nkept.index_select(0, rows)
            s = scales[pbits.index(bits)].index_select(0, nk).to(c.dtype)
            return blk.run(xs, bits, c, s).value

        return self._route(blk, x, choice, mask, run)


class ChannelCostTable(CostTable):
    """BitOPs with channel groups: conv1 computes only its kept output channels and conv2 reads only those as
    input channels, so both scale with the groups kept; the shortcut and every fixed part do not.
    A gated block at b bits keeping k of its G groups costs b*b*((conv1 + conv2) MACs * k / G + shortcut MACs)."""

    def __init__(self, base: CostTable, groups: list[int]):
        super().__init__(**{k: getattr(base, k) for k in ("bit_menu", "stem", "first_block", "head", "gated",
                                                           "block_macs", "beyond")})
        self._groups = torch.tensor(groups, dtype=torch.float64)
        # conv1's and conv2's MACs of one group: both count the block's inner width, a multiple of its groups
        self._per_group = torch.tensor([(m["conv1"] + m["conv2"]) // n for m, n in zip(self.block_macs[1:], groups)],
                                       dtype=torch.float64)

    def per_block(self, kept: torch.Tensor) -> torch.Tensor:
        """(N, G) kept fractions -> (N, G, routes) BitOPs of every route (the menu's entries, then beyond)."""
        full = torch.tensor(self.route_bitops(), dtype=torch.float64, device=kept.device)  # (G, routes), f = 1
        bits2 = torch.tensor([b * b for b in self.routes], dtype=torch.float64, device=kept.device)
        dropped = (1 - kept.double()) * self._groups.to(kept.device)
        # a whole number of groups, as the export's cores count them ((1 - k/G) * MACs rounds off for G = 6);
        # straight-through, the gradient of the fraction
        dropped = dropped + (dropped.round() - dropped).detach()
        saved = dropped[..., None] * self._per_group.to(kept.device)[:, None] * bits2  # dropped folds
        return full - saved * (bits2 > 0)

    def per_input(self, choices: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        if kept is None or choices.numel() == 0:
            return super().per_input(choices)
        table = self.per_block(kept.cpu())
        return self.fixed + table.gather(2, choices.cpu().long()[..., None])[..., 0].sum(1)

    def expected_fraction(self, masks: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        if kept is None:
            return super().expected_fraction(masks)
        table = self.per_block(kept)[..., :masks.shape[-1]].to(masks.dtype)
        return (self.fixed + (masks * table).sum(dim=(1, 2))) / self.full


def table_for(cfg: ModelConfig) -> CostTable:
    base = cost_table(cfg)
    return ChannelCostTable(base, group_counts(cfg)) if cfg.channel_group else base

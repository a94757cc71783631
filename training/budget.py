"""Move a trained DFS network to another operating point without training: a price on compute in the gates.

The gate's logits are its learned preference among the menu entries. Subtracting ``lam * cost_k`` (cost_k: the
entry's BitOPs relative to the 8-bit path, averaged over the gated blocks) from every gate's logit k is the
Lagrangian form of "best decisions under a compute budget": ``lam`` > 0 buys cheaper paths, ``lam`` < 0 dearer
ones. It is a change of the shared output layer's bias only, so the integer gate stays a gate of the same
specification. ``lam`` is found by bisection on training images (never the test set) so that the mean compute
meets the target.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import FracskipError
from . import data as D
from .checkpoint import atomic_save, load_model, load_raw
from .cost import cost_table
from .model import DFSNet

log = logging.getLogger(__name__)


def relative_costs(net: DFSNet) -> torch.Tensor:
    """(K,) mean over gated blocks of each menu entry's BitOPs relative to that block's widest entry."""
    table = torch.tensor(cost_table(net.cfg).gated, dtype=torch.float64)  # (G, K)
    return (table / table.max(dim=1, keepdim=True).values).mean(0)


@torch.no_grad()
def _compute(net: DFSNet, images: torch.Tensor, batch_size: int = 500) -> float:
    table = cost_table(net.cfg)
    choices = torch.cat([net(images[i:i + batch_size].float()).choices for i in range(0, len(images), batch_size)])
    return float(table.per_input(choices).mean() / table.full)


@torch.no_grad()
def calibrate_budget(checkpoint: str | Path, target: float, out: str | Path, images: int = 2000,
                     dataset: str = "fashion-mnist", data_dir: str | None = None, steps: int = 14) -> dict:
    """Write ``out``: ``checkpoint`` with its gates priced so that the mean compute on ``images`` training
    images is at most ``target`` (a fraction of the all-8-bit network), as close to it as the bisection gets."""
    if not 0 < target <= 1:
        raise FracskipError(f"--target is a fraction of the 8-bit compute in (0, 1], got {target}")
    out = Path(out)
    if out.exists():
        raise FracskipError(f"{out} exists; choose another output file")
    net, ck = load_model(checkpoint)
    if net.cfg.channel_group:
        raise FracskipError(f"{checkpoint} also skips channel groups: pricing prices only the bit-width choice, "
                            "and would leave the channel heads' compute unaccounted")
    if net.n_gated == 0 or len(net.cfg.bit_menu) < 2:
        raise FracskipError(f"{checkpoint} has no gates to price")
    table = cost_table(net.cfg)
    floor = (table.fixed + sum(min(row) for row in table.gated)) / table.full
    if target < floor:
        raise FracskipError(f"--target {target} is below this network's cheapest routing ({floor:.3f} of the 8-bit "
                            "compute: stem, first block and head always run at 8 bits)")
    x = D.load(dataset, "train", data_dir, images).images
    bias0 = net.gate.proj.bias.detach().clone()
    cost = relative_costs(net).to(bias0.dtype)

    def at(lam: float) -> float:
        net.gate.proj.bias.copy_(bias0 - lam * cost)
        return _compute(net, x)

    lo, hi = -1.0, 1.0
    while at(hi) > target:  # widen until the budget is met (lam large enough prices every dear entry out)
        hi *= 2
        if hi > 1e4:
            raise FracskipError(f"even the cheapest paths exceed {target:.3f} of the 8-bit compute")
    while at(lo) <= target and lo > -1e4:
        lo *= 2
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if at(mid) <= target else (mid, hi)
    reached = at(hi)
    info = {"target": target, "lambda": hi, "train_images": len(x), "train_compute": reached,
            "source": str(checkpoint)}
    raw = load_raw(checkpoint)
    raw.pop("path", None)
    raw["state_dict"] = net.state_dict()
    raw["budget"] = info
    raw.pop("eval", None)  # the source's test figures no longer describe this network
    atomic_save(raw, out)
    log.info("priced gates: lambda %.4f, %.1f %% compute on %d training images", hi, 100 * reached, len(x))
    return info

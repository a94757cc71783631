"""Move a trained DFS network to another operating point without training: a price on compute in the gates.

The gate's logits are its learned preference among the menu entries. Subtracting ``lam * cost_k`` (cost_k: the
entry's BitOPs relative to the 8-bit path, averaged over the gated blocks) from every gate's logit k is the
Lagrangian form of "best decisions under a compute budget": ``lam`` > 0 buys cheaper paths, ``lam`` < 0 dearer
ones. It is a change of the shared output layer's bias only, so the integer gate stays a gate of the same
specification. ``lam`` is found by bisection on training images (never the test set) so that the mean compute
meets the target.

A menu can also shrink (``restrict_menu``, ``fracskip budget --menu``): entries the gates never choose still cost
hardware (each width a mode of every block's datapath: thresholds, weight words), so they are dropped with their
paths and their outputs of the gate, and the gates' argmax runs over the entries left; on every input whose choice
was a kept entry the decisions are unchanged, which is measured on training images and reported.

With channel heads (training/channels.py) the same price falls on every group: its logit (kept where > 0) loses
``lam`` times the group's share of its block's compute (conv1 and conv2 over the groups, against the block's
conv1, conv2 and shortcut), and each head's bias is all that changes. That share is the same at every width, so
one ``lam`` prices a group at what dropping it saves at 8 bits only: at 2 bits it saves a sixteenth of that, and
a network of both kinds (``--mode both``) is priced to keep fewer groups than their compute alone would say.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import FracskipError
from ..runtime.intgate import H_EXP
from . import data as D
from .checkpoint import atomic_save, load_model, load_state, model_config, trained_on
from .channels import build, group_counts, table_for
from .cost import cost_table
from .intgate import IntGate, int_bias, int_weight
from .model import DFSNet

log = logging.getLogger(__name__)


def relative_costs(net: DFSNet) -> torch.Tensor:
    """(K,) mean over gated blocks of each menu entry's BitOPs relative to that block's widest entry."""
    table = torch.tensor(cost_table(net.cfg).gated, dtype=torch.float64)  # (G, K)
    return (table / table.max(dim=1, keepdim=True).values).mean(0)


def group_costs(net: DFSNet) -> list[float]:
    """Per gated block, one channel group's share of the block's compute (the same at every bit-width)."""
    macs = cost_table(net.cfg).block_macs[1:]
    return [(m["conv1"] + m["conv2"]) / n / (m["conv1"] + m["conv2"] + m.get("shortcut", 0))
            for m, n in zip(macs, group_counts(net.cfg))]


@torch.no_grad()
def _compute(net: DFSNet, images: torch.Tensor, batch_size: int = 500) -> float:
    table = table_for(net.cfg)
    outs = [net(images[i:i + batch_size].float()) for i in range(0, len(images), batch_size)]
    choices = torch.cat([o.choices for o in outs])
    per = table.per_input(choices, torch.cat([o.kept for o in outs])) if net.cfg.channel_group \
        else table.per_input(choices)
    return float(per.mean() / table.full)


def cheapest_compute(net: DFSNet) -> float:
    """The cheapest routing's compute: every block on its cheapest entry (with one channel group kept)."""
    table = table_for(net.cfg)
    if not net.cfg.channel_group:
        return (table.fixed + sum(min(row) for row in table.gated)) / table.full
    one = torch.tensor([[1.0 / n for n in group_counts(net.cfg)]], dtype=torch.float64)
    menu = table.per_block(one)[0, :, :len(table.bit_menu)]
    return float((table.fixed + menu.min(dim=1).values.sum()) / table.full)


def dearest_compute(net: DFSNet) -> float:
    """The dearest routing's compute: every block on its dearest menu entry, every channel group kept."""
    table = table_for(net.cfg)
    return (table.fixed + sum(max(row) for row in table.gated)) / table.full


def restrict_menu(net: DFSNet, raw: dict, menu: tuple[int, ...]) -> tuple[DFSNet, dict]:
    """(network, checkpoint dict) with only ``menu``'s entries of the bit menu: the dropped entries' rows of the
    gate's output layer removed. Their paths stay (``ModelConfig.routes``): the gates cannot choose them, and the
    static networks of those widths (``fracskip eval --bits``, the build's baselines) still run."""
    old = tuple(net.cfg.bit_menu)
    menu = tuple(sorted(set(menu)))
    if not set(menu) <= set(old):
        raise FracskipError(f"--menu {','.join(map(str, menu))}: entries {sorted(set(menu) - set(old))} are not on "
                            f"this checkpoint's menu {','.join(map(str, old))}")
    if (0 in old) != (0 in menu):
        raise FracskipError("--menu must keep 0 (skip): a block is gated because it can be skipped")
    if not [b for b in menu if b] or (len(menu) < 2 and not net.cfg.channel_group):
        raise FracskipError(f"--menu {','.join(map(str, menu))} leaves the gates nothing to choose: keep a width "
                            "and another entry")
    keep_rows = [old.index(b) for b in menu]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    if isinstance(net.gate, IntGate):
        # The integer gate's projection takes its exponent from its largest weight, which a dropped row may have
        # held. The kept rows are put on the grid they were quantized to, so that a finer exponent only scales
        # every integer logit by one power of two: the same argmax, ties included.
        e = net.gate.exponents()["proj"]
        state["gate.proj.weight"] = (int_weight(net.gate.proj.weight, e) * 2.0**-e).float()
        state["gate.proj.bias"] = (int_bias(net.gate.proj.bias, e + H_EXP) * 2.0**-(e + H_EXP)).float()
    for k in ("gate.proj.weight", "gate.proj.bias"):
        state[k] = state[k][keep_rows]
    raw = dict(raw, model_config=dict(raw["model_config"], bit_menu=list(menu), path_bits=list(net.cfg.path_bits)),
               state_dict=state)
    small = build(model_config(raw))
    load_state(small, state, strict=True)
    if isinstance(net.gate, IntGate):
        before, after = net.gate.integer_params(), small.gate.integer_params()
        scale = 2 ** (after.proj_exp - before.proj_exp)
        same = [np.array_equal(np.asarray(a), np.asarray(b)[keep_rows] * scale)
                for a, b in ((after.proj_w, before.proj_w), (after.proj_b, before.proj_b))]
        if not all(same):
            raise FracskipError("the gate's output layer cannot be cut exactly (its integers would change beyond a "
                                "common power of two); keep the full menu")
    return small.eval(), raw


@torch.no_grad()
def _decisions(net: DFSNet, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, gated blocks) chosen widths in bits (and, with channel heads, the kept fraction beside them)."""
    menu = torch.tensor(net.cfg.bit_menu)
    outs = [net(images[i:i + batch_size].float()) for i in range(0, len(images), batch_size)]
    bits = menu[torch.cat([o.choices for o in outs])].double()
    return torch.cat([bits, torch.cat([o.kept for o in outs]).double()], 1) if net.cfg.channel_group else bits


@torch.no_grad()
def calibrate_budget(checkpoint: str | Path, target: float | None, out: str | Path, images: int = 2000,
                     dataset: str | None = None, data_dir: str | None = None, steps: int = 14,
                     menu: tuple[int, ...] | None = None) -> dict:
    """Write ``out``: ``checkpoint`` with its menu cut to ``menu`` (``restrict_menu``) and/or its gates priced so
    that the mean compute on ``images`` training images is at most ``target`` (a fraction of the all-8-bit
    network), as close to it as the bisection gets. ``dataset``: by default the one the checkpoint was trained on."""
    if target is None and menu is None:
        raise FracskipError("give --target (a compute budget to price the gates to) or --menu (entries to keep)")
    if target is not None and not 0 < target <= 1:
        raise FracskipError(f"--target is a fraction of the 8-bit compute in (0, 1], got {target}")
    out = Path(out)
    if out.exists():
        raise FracskipError(f"{out} exists; choose another output file")
    net, raw = load_model(checkpoint)
    dataset = dataset or trained_on(raw)
    if net.n_gated == 0 or (len(net.cfg.bit_menu) < 2 and not net.cfg.channel_group):
        raise FracskipError(f"{checkpoint} has no gates to price")
    x = D.load(dataset, "train", data_dir, images).images
    D.require_fit(x, net.cfg, str(checkpoint))
    info: dict = {"source": str(checkpoint), "train_images": len(x)}
    if menu is not None:
        before = _decisions(net, x)
        net, raw = restrict_menu(net, raw, menu)
        info["menu"] = list(net.cfg.bit_menu)
        info["same_decisions_pct"] = 100.0 * float((_decisions(net, x) == before).all(dim=1).double().mean())
    if target is None:
        info["train_compute"] = _compute(net, x)
        return _write(raw, net, info, out)
    floor = cheapest_compute(net)
    if target < floor:
        raise FracskipError(f"--target {target} is below this network's cheapest routing ({floor:.3f} of the 8-bit "
                            "compute: stem, first block and head always run at 8 bits)")
    ceiling = dearest_compute(net)
    if target >= ceiling:  # met only as lam goes to minus infinity: every gate priced to its dearest entry
        raise FracskipError(f"--target {target} is at or above this network's dearest routing ({ceiling:.3f} of the "
                            "8-bit compute, every gated block at its menu's widest entry): no price reaches it; "
                            "give a smaller target (`fracskip eval --bits B` runs every block at one width)")
    bias0 = net.gate.proj.bias.detach().clone()
    cost = relative_costs(net).to(bias0.dtype)
    heads = list(net.channel_head.proj) if net.cfg.channel_group else []
    head0 = [p.bias.detach().clone() for p in heads]
    per_group = group_costs(net) if heads else []

    def at(lam: float) -> float:
        net.gate.proj.bias.copy_(bias0 - lam * cost)
        for p, b0, c in zip(heads, head0, per_group):
            p.bias.copy_(b0 - lam * c)
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
    info.update({"target": target, "lambda": hi, "train_compute": at(hi)})
    return _write(raw, net, info, out)


def _write(raw: dict, net: DFSNet, info: dict, out: Path) -> dict:
    raw = dict(raw)
    raw.pop("path", None)
    raw["state_dict"] = net.state_dict()
    raw["budget"] = {**info, "before": raw["budget"]} if "budget" in raw else info  # a priced model priced again
    raw.pop("eval", None)  # the source's test figures no longer describe this network
    atomic_save(raw, out)
    log.info("wrote %s: %.1f %% compute on %d training images", out, 100 * info["train_compute"],
             info["train_images"])
    return info

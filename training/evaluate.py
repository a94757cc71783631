"""Accuracy and cost of a DFS network on a dataset split."""

from __future__ import annotations

import torch
from tqdm import tqdm

from . import data as D
from .channels import LCNet, mode_of, table_for
from .model import DFSNet


@torch.no_grad()
def evaluate(net: DFSNet, split: D.Split, batch_size: int = 256, choices: torch.Tensor | None = None,
             progress: bool = True) -> dict:
    """The figures of ``fracskip eval``: accuracy, mean compute, mean BitOPs and the choices per gated block."""
    D.require_fit(split.images, net.cfg, "the model")
    net.eval()
    table = table_for(net.cfg)
    lc = isinstance(net, LCNet)
    correct, picked, kept = 0, [], []
    bar = tqdm(total=len(split), desc="eval", unit="img", disable=None if progress else True, leave=False)
    for i, (x, y) in enumerate(D.batches(split, batch_size, shuffle=False)):
        forced = None if choices is None else choices[i * batch_size: i * batch_size + len(y)]
        out = net(x.float(), choices=forced)
        correct += int((out.logits.argmax(1) == y).sum())
        picked.append(out.choices)
        if lc:
            kept.append(out.kept)
        bar.update(len(y))
    bar.close()
    ch = torch.cat(picked)
    kept = torch.cat(kept).double() if lc else None
    bitops = table.per_input(ch, kept) if lc else table.per_input(ch)
    # the menu's entries, and a width beyond it where one was forced
    routes = [(k, b) for k, b in enumerate(net.cfg.routes) if k < len(net.cfg.bit_menu) or bool((ch == k).any())]
    counts = [{str(b): int((ch[:, g] == k).sum()) for k, b in routes} for g in range(ch.shape[1])]
    ev = {
        "n": len(split),
        "accuracy": correct / max(len(split), 1),
        "compute_pct": float(100 * bitops.mean() / table.full),
        "bitops_per_input": float(bitops.mean()),
        "bitops_full_8bit": table.full,
        "bit_menu": list(net.cfg.bit_menu),
        "choices": counts,
        "gate_params": sum(p.numel() for p in net.gate.parameters()),
    }
    if lc:
        ev.update(channel_report(net, ch, kept))
    return ev


def channel_report(net: LCNet, choices: torch.Tensor, kept: torch.Tensor) -> dict:
    """Per gated block, the mean fraction of its channels kept by the inputs that ran its convolutions (not
    skipped); and over all inputs, a skip counting as no channel."""
    ran = torch.tensor([b != 0 for b in net.cfg.routes])[choices]  # (N, G)
    per_block = [None if not bool(ran[:, g].any()) else float(kept[ran[:, g], g].mean()) for g in range(kept.shape[1])]
    return {"mode": mode_of(net.cfg),
            "channel_group": net.cfg.channel_group, "channel_groups": list(net.groups),
            "kept_channel_fraction": per_block,
            "kept_channel_fraction_all": [float((kept[:, g] * ran[:, g]).mean()) for g in range(kept.shape[1])]}


@torch.no_grad()
def recalibrate_bn(net: DFSNet, split: D.Split, images: int = 2000, batch_size: int = 200,
                   choices: torch.Tensor | None = None, every_path: bool = False) -> None:
    """Re-estimate BatchNorm running statistics in train mode, under a routing.

    Used after the backbone stage with ``every_path`` (whole batches through each menu entry). Under
    per-input routing (the gates') a path sees only the inputs routed to it, and train-mode BatchNorm
    normalises those few with their own statistics, which distorts every layer downstream: the training
    loop therefore does not recalibrate after the gates and joint stages (BatchNorm stays frozen there).

    Training samples paths at random, so each block's statistics mix inputs from every upstream
    configuration. With the gates' routing (default) or fixed ``choices``, each BatchNorm gets the statistics
    of the inputs it really sees; ``every_path`` runs the whole network once per menu entry (all blocks at
    that entry), the routing of a backbone whose gates are not trained yet. A BatchNorm that no input reaches
    keeps its previous statistics. Only BatchNorm buffers change.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    net.eval()
    for m in bns:
        m.train()
    sub = split.subset(images)
    routings = [torch.full((batch_size, net.n_gated), k) for k in range(len(net.cfg.routes))] if every_path \
        else [choices]
    for forced in routings:
        for x, _ in D.batches(sub, batch_size, shuffle=False):
            net(x.float(), choices=None if forced is None else forced[: len(x)])
    for m, (mom, mean, var, nbt) in zip(bns, saved):
        m.momentum = mom
        if int(m.num_batches_tracked) == 0:  # no input reached it
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(nbt)
    net.eval()

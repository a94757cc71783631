"""Accuracy and cost of a DFS network on a dataset split."""

from __future__ import annotations

import torch
from tqdm import tqdm

from . import data as D
from .cost import cost_table
from .model import DFSNet


@torch.no_grad()
def evaluate(net: DFSNet, split: D.Split, batch_size: int = 256, choices: torch.Tensor | None = None,
             progress: bool = True) -> dict:
    """The figures of ``fracskip eval``: accuracy, mean compute, mean BitOPs and the choices per gated block."""
    net.eval()
    table = cost_table(net.cfg)
    correct, picked = 0, []
    bar = tqdm(total=len(split), desc="eval", unit="img", disable=None if progress else True, leave=False)
    for i, (x, y) in enumerate(D.batches(split, batch_size, shuffle=False)):
        forced = None if choices is None else choices[i * batch_size: i * batch_size + len(y)]
        out = net(x.float(), choices=forced)
        correct += int((out.logits.argmax(1) == y).sum())
        picked.append(out.choices)
        bar.update(len(y))
    bar.close()
    ch = torch.cat(picked)
    bitops = table.per_input(ch)
    menu = net.cfg.bit_menu
    counts = [{str(b): int((ch[:, g] == k).sum()) for k, b in enumerate(menu)} for g in range(ch.shape[1])]
    return {
        "n": len(split),
        "accuracy": correct / max(len(split), 1),
        "compute_pct": float(100 * bitops.mean() / table.full),
        "bitops_per_input": float(bitops.mean()),
        "bitops_full_8bit": table.full,
        "bit_menu": list(menu),
        "choices": counts,
        "gate_params": sum(p.numel() for p in net.gate.parameters()),
    }


@torch.no_grad()
def recalibrate_bn(net: DFSNet, split: D.Split, images: int = 2000, batch_size: int = 200,
                   choices: torch.Tensor | None = None, every_path: bool = False, passes: int = 2) -> None:
    """Re-estimate BatchNorm running statistics under the routing used at inference.

    Training samples paths at random, so each block's statistics mix inputs from every upstream
    configuration. With the gates' routing (default) or fixed ``choices``, each BatchNorm gets the statistics
    of the inputs it really sees; ``every_path`` runs the whole network once per menu entry (all blocks at
    that entry), the routing of a backbone whose gates are not trained yet. The network runs in eval mode and
    hooks record every BatchNorm's input: with per-input routing a path sees a few inputs of a batch, and
    train-mode BatchNorm would normalise them with the statistics of those few. Two passes let downstream
    layers see upstream inputs normalised with the new statistics. A BatchNorm that no input reaches keeps
    its statistics. Only BatchNorm buffers change.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    net.eval()
    sub = split.subset(images)
    routings = [torch.full((batch_size, net.n_gated), k) for k in range(len(net.cfg.bit_menu))] if every_path \
        else [choices]
    for _ in range(passes):
        acc = {m: [0, 0.0, 0.0] for m in bns}

        def hook(m, inp):
            x = inp[0].detach().double()
            a = acc[m]
            a[0] += x.numel() // x.shape[1]
            a[1] = a[1] + x.sum(dim=(0, 2, 3))
            a[2] = a[2] + (x * x).sum(dim=(0, 2, 3))

        handles = [m.register_forward_pre_hook(hook) for m in bns]
        try:
            for forced in routings:
                for x, _ in D.batches(sub, batch_size, shuffle=False):
                    net(x.float(), choices=None if forced is None else forced[: len(x)])
        finally:
            for h in handles:
                h.remove()
        for m, (n, s, ss) in acc.items():
            if n > 1:
                mean = s / n
                var = (ss / n - mean * mean) * n / (n - 1)
                m.running_mean.copy_(mean.to(m.running_mean.dtype))
                m.running_var.copy_(var.clamp_min(0).to(m.running_var.dtype))

"""Oracle routings: the ceiling a gate is measured against.

An oracle knows each image's label, so no gate can match it; it says how much accuracy per BitOP input-adaptive
precision can buy on a given backbone. Two oracles, both per image:

- ``uniform``: every gated block at one precision, the cheapest of the menu's bit-widths (skip excluded) that
  classifies the image correctly; the cheapest bit-width when none does.
- ``greedy``: start from every block at the widest bit-width; block by block, in network order, take the
  cheapest menu entry (skip included) that keeps the image correct, the other blocks as already chosen. Images
  wrong at full width get the uniform oracle's cheapest routing. By construction it keeps the full-width accuracy.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from . import data as D
from .cost import cost_table
from .model import DFSNet


@torch.no_grad()
def correct_under(net: DFSNet, split: D.Split, choices: torch.Tensor, batch_size: int = 256,
                  progress: bool = False, desc: str = "oracle") -> torch.Tensor:
    """(N,) bool: which images the network classifies correctly under the forced per-image ``choices`` (N, G)."""
    net.eval()
    out = []
    bar = tqdm(total=len(split), desc=desc, unit="img", disable=None if progress else True, leave=False)
    for i in range(0, len(split), batch_size):
        x, y = split.images[i:i + batch_size].float(), split.labels[i:i + batch_size]
        out.append(net(x, choices=choices[i:i + batch_size]).logits.argmax(1) == y)
        bar.update(len(y))
    bar.close()
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _by_cost(net: DFSNet) -> list[int]:
    """Menu indices, cheapest first (by the whole network's BitOPs at that entry in every block)."""
    table = cost_table(net.cfg)
    return sorted(range(len(net.cfg.bit_menu)), key=lambda k: sum(row[k] for row in table.gated))


def uniform(net: DFSNet, split: D.Split, progress: bool = False) -> torch.Tensor:
    n, G = len(split), net.n_gated
    levels = [k for k in _by_cost(net) if net.cfg.bit_menu[k] > 0]
    pick = torch.full((n,), -1, dtype=torch.long)
    for k in levels:
        todo = (pick < 0).nonzero(as_tuple=True)[0]
        if not len(todo):
            break
        sub = D.Split(split.images[todo], split.labels[todo])
        ok = correct_under(net, sub, torch.full((len(todo), G), k), progress=progress, desc=f"oracle {net.cfg.bit_menu[k]}-bit")
        pick[todo[ok]] = k
    pick[pick < 0] = levels[0]
    return pick[:, None].expand(n, G).clone()


def greedy(net: DFSNet, split: D.Split, progress: bool = False) -> torch.Tensor:
    n, G = len(split), net.n_gated
    order = _by_cost(net)
    top = order[-1]
    cur = torch.full((n, G), top, dtype=torch.long)
    ok = correct_under(net, split, cur, progress=progress, desc="oracle full")
    for g in range(G):
        open_ = ok.clone()  # images whose block g is still at full width
        for k in order[:-1]:
            todo = open_.nonzero(as_tuple=True)[0]
            if not len(todo):
                break
            trial = cur[todo].clone()
            trial[:, g] = k
            sub = D.Split(split.images[todo], split.labels[todo])
            good = correct_under(net, sub, trial, progress=progress, desc=f"oracle block {g + 1}")
            cur[todo[good], g] = k
            open_[todo[good]] = False
    wrong = (~ok).nonzero(as_tuple=True)[0]
    cheapest = [k for k in order if net.cfg.bit_menu[k] > 0][0]
    cur[wrong] = cheapest
    return cur


ORACLES = {"uniform": uniform, "greedy": greedy}

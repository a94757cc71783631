"""Folding for a board: how much parallelism each core gets.

Every core has a ladder of candidate foldings (FINN's SetFolding at halving cycle targets), each with FINN's
cycle and resource estimates. ``allocate`` picks one rung per core so that the expected cycles per input,
``sum(p_core * cycles_core)``, are smallest within the resource budget, where ``p_core`` is how often the
core runs per input (1 for stem, first block and head; the gates' measured selection frequency for a path).
It is the greedy marginal-gain allocation of ATHEENA (resources follow execution probability): starting
from the slowest folding everywhere, repeatedly take the upgrade with the largest drop in expected cycles
per unit of budget it uses. With every probability equal to 1, it is plain throughput-balanced folding.
"""

from __future__ import annotations

from dataclasses import dataclass

RESOURCES = ("LUT", "BRAM_18K", "URAM", "DSP")


@dataclass
class Allocation:
    rungs: dict[str, int]  # core -> index into its ladder
    expected_cycles: float
    resources: dict[str, float]
    fits: bool
    usage: float  # the largest fraction of the budget used, over resource types


def _usage(total: dict[str, float], budget: dict[str, float]) -> float:
    return max((total[r] / budget[r]) if budget.get(r) else (float("inf") if total[r] > 0 else 0.0) for r in RESOURCES)


def allocate(ladders: dict[str, list[dict]], prob: dict[str, float], budget: dict[str, float]) -> Allocation:
    rung = {c: 0 for c in ladders}
    total = {r: sum(ladders[c][0]["resources"][r] for c in ladders) for r in RESOURCES}

    def expected() -> float:
        return sum(prob[c] * ladders[c][rung[c]]["cycles"] for c in ladders)

    fits = _usage(total, budget) <= 1.0
    while fits:
        best, best_gain = None, 0.0
        for c, lad in ladders.items():
            if rung[c] + 1 >= len(lad) or prob[c] == 0:
                continue
            cur, nxt = lad[rung[c]], lad[rung[c] + 1]
            new_total = {r: total[r] - cur["resources"][r] + nxt["resources"][r] for r in RESOURCES}
            if _usage(new_total, budget) > 1.0:
                continue
            gain = prob[c] * (cur["cycles"] - nxt["cycles"])
            spent = sum((nxt["resources"][r] - cur["resources"][r]) / budget[r] for r in RESOURCES if budget.get(r))
            score = gain / max(spent, 1e-9)
            if score > best_gain:
                best, best_gain = c, score
        if best is None:
            break
        cur, nxt = ladders[best][rung[best]], ladders[best][rung[best] + 1]
        for r in RESOURCES:
            total[r] += nxt["resources"][r] - cur["resources"][r]
        rung[best] += 1
    return Allocation(rung, expected(), total, fits, _usage(total, budget))


def uniform(ladders: dict[str, list[dict]], target_cycles: float) -> dict[str, int]:
    """The slowest rung of every core that meets ``target_cycles`` (or its fastest, if none does)."""
    out = {}
    for c, lad in ladders.items():
        ok = [i for i, r in enumerate(lad) if r["cycles"] <= target_cycles]
        out[c] = ok[0] if ok else len(lad) - 1
    return out

"""The runtime controller: per input, stem -> (gate -> chosen path, or skip) per block -> head.

It imports only numpy and the standard library. Where a core runs is the backend's business: ``torch`` (the
checkpoint) or ``qonnx`` (the exported graphs, the golden reference). A backend is any object with
``run(core_name, x) -> y`` on batches of integer tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import FracskipError
from .intgate import IntGateParams, IntGates, keep_mask
from .manifest import Manifest


class Backend(Protocol):
    name: str

    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        """Run a batch through one core: interface integers (as float32) in, integers (or head logits) out.
        A channel path's core (docs/channel-skipping.md) is called ``run(core, x, keep)``, keep (N, C) 0/1 per
        channel of its conv1."""
        ...


@dataclass
class Trace:
    """What happened to every input: the gates' choices, their cost, and the hardware cycles where known (the
    accelerator's Verilator run: ``simulate_accelerator``)."""

    choices: np.ndarray  # (N, gated blocks): index into the bit menu
    bits: np.ndarray  # (N, gated blocks): the chosen bit-width (0 = skipped)
    bitops: np.ndarray  # (N,)
    cycles: np.ndarray | None  # (N,) cycles per image, where measured
    calls: list[dict] = field(default_factory=list)  # per core call: core, input indices, output (if recorded)
    keep: np.ndarray | None = None  # (N, gated blocks): a channel-skipping export's keep bits (group g: bit g)


class Controller:
    def __init__(self, manifest: Manifest, backend: Backend, record: bool = False):
        self.m = manifest
        self.backend = backend
        self.gates = IntGates(IntGateParams.from_json(manifest.data["gates"]))
        self.record = record
        self.menu = manifest.bit_menu
        self.routes = manifest.routes  # the menu's entries, then widths only a static network runs

    def run(self, images: np.ndarray, bits: int | None = None) -> tuple[np.ndarray, Trace]:
        """images: (N, C, H, W) raw uint8 pixels -> logits (N, classes) and the trace. ``bits``: every gated block
        at this width (of ``routes``), the gates not run (the static network of that width); the trace's choices
        then index ``routes``."""
        if bits is not None and bits not in self.routes:
            raise FracskipError(f"{bits} bits: the gated blocks have paths at {', '.join(map(str, self.routes))}")
        forced = None if bits is None else self.routes.index(bits)
        exp = tuple(self.m.data["input"]["shape"][1:])
        if images.ndim != 4 or tuple(images.shape[1:]) != exp:
            raise FracskipError(f"expected images of shape (N, {', '.join(map(str, exp))}), got {images.shape}")
        if not len(images):  # no core would run, and a block's output would be nothing to route on
            raise FracskipError("no images to run: the batch is empty")
        if images.dtype != np.uint8 and not np.array_equal(images, np.clip(np.round(images), 0, 255)):
            raise FracskipError("images must be raw 8-bit pixels (uint8, or float holding integers 0..255)")
        n = images.shape[0]
        calls: list[dict] = []
        everyone = np.arange(n)
        x = self._call("stem", images.astype(np.float32), everyone, calls)
        state = self.gates.init_state(n)
        choices, keeps = [], []
        channels = self.gates.p.chan_w is not None
        for blk in self.m.blocks:
            if not blk["gated"]:
                bits = next(iter(blk["paths"]))
                x = self._call(blk["paths"][bits]["core"], x, everyone, calls)
                continue
            if forced is None:
                _, choice, state = self.gates.step(blk["gate"], x.astype(np.int64), state)
            else:
                choice = np.full(n, forced)
            choices.append(choice)
            if channels:  # from the hidden state that chose the width; a static run keeps every group
                keeps.append(self.gates.keep(blk["gate"], state[0]) if forced is None
                             else np.full(n, (1 << len(self.gates.p.chan_b[blk["gate"]])) - 1))
            y = None
            for k in np.unique(choice):
                idx = np.nonzero(choice == k)[0]
                out = self._path(blk["paths"][str(self.routes[k])], x, idx, keeps[-1] if channels else None, calls)
                if y is None:
                    y = np.zeros((n, *out.shape[1:]), dtype=np.float32)
                y[idx] = out
            x = y
        # global average pooling on the host, as an exact integer sum (see HeadCore)
        logits = self._call("head", x.sum(axis=(2, 3), dtype=np.float64).astype(np.float32), everyone, calls)
        ch = np.stack(choices, 1) if choices else np.zeros((n, 0), dtype=np.int64)
        bits = np.asarray(self.routes)[ch] if choices else ch
        keep = np.stack(keeps, 1) if keeps else None
        return logits, Trace(ch, bits, self.bitops(ch, keep), None, calls, keep)

    def bitops(self, choices: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """BitOPs per input of these choices (indices into ``routes``; and keep bits: a channel path costs its kept
        groups' MACs)."""
        paths = [[blk["paths"][str(b)] for b in self.routes] for blk in self.m.gated_blocks]
        return count_bitops(self.m.fixed_bitops, [[p["bitops"] for p in row] for row in paths],
                            [[bitops_by_kept(p) for p in row] for row in paths], choices, keep)

    def _path(self, path: dict, x: np.ndarray, idx: np.ndarray, keep: np.ndarray | None, calls: list) -> np.ndarray:
        """A path on the inputs ``idx``; a channel path's inputs in batches by the number of groups they keep (the
        core of that count: its relu1 scale), with their keep masks."""
        ch = path.get("channels")
        if path.get("core") is None:
            return x[idx]
        if ch is None:
            return self._call(path["core"], x[idx], idx, calls)
        bits = keep[idx]
        mask = keep_mask(bits, ch["groups"], ch["group"]).astype(np.float32)
        kept = popcount(bits)
        y = None
        for c in np.unique(kept):
            sub = np.nonzero(kept == c)[0]
            out = self._call(ch["kept"][str(c)]["core"], x[idx[sub]], idx[sub], calls, mask[sub])
            if y is None:
                y = np.zeros((len(idx), *out.shape[1:]), dtype=np.float32)
            y[sub] = out
        return y

    def _call(self, core: str, x: np.ndarray, idx: np.ndarray, calls: list,
              keep: np.ndarray | None = None) -> np.ndarray:
        y = self.backend.run(core, x) if keep is None else self.backend.run(core, x, keep)
        y = np.asarray(y, dtype=np.float32)
        if y.shape[0] != x.shape[0]:
            raise FracskipError(f"backend {self.backend.name} returned {y.shape[0]} results for {x.shape[0]} inputs of {core}")
        calls.append({"core": core, "idx": idx, "in": x if self.record else None, "out": y if self.record else None,
                      "keep": keep if self.record else None})
        return y


def bitops_by_kept(path: dict) -> list[int] | None:
    """A path's BitOPs by channel groups kept (index 0..groups; 0 kept costs nothing); None without groups."""
    ch = path.get("channels")
    return None if ch is None else [0] + [ch["kept"][str(k)]["bitops"] for k in range(1, ch["groups"] + 1)]


def count_bitops(fixed: float, costs: list[list[float]], by_kept: list[list[list[int] | None]],
                 choices: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """BitOPs per input: ``fixed``, plus per gated block g the cost of its choice (``costs[g][k]``), or with keep
    bits, for a choice whose path has channel groups, its groups kept's (``by_kept[g][k]``). The controller counts
    with it from the manifest, the board driver from its package."""
    total = np.full(len(choices), float(fixed))
    for g, row in enumerate(costs):
        row = np.asarray(row, np.float64)
        total += row[choices[:, g]]
        if keep is None:
            continue
        kept = popcount(keep[:, g])
        for k, bk in enumerate(by_kept[g]):
            on = choices[:, g] == k
            if bk is not None and on.any():
                total[on] += np.asarray(bk, np.float64)[kept[on]] - row[k]
    return total


def popcount(bits: np.ndarray) -> np.ndarray:
    """Set bits of each element: keep bits -> channel groups kept."""
    return np.array([bin(int(b)).count("1") for b in np.asarray(bits).ravel()], dtype=np.int64).reshape(np.shape(bits))


def kept_fraction(choices: np.ndarray, keep: np.ndarray, groups: list[int],
                  grouped: list[list[int]]) -> list[float | None]:
    """Per gated block g, the fraction of its ``groups[g]`` channel groups kept, over the inputs whose choice is one
    of the menu indices ``grouped[g]`` (the paths with channel groups); None where no input ran one."""
    frac = []
    for g, (n, with_groups) in enumerate(zip(groups, grouped)):
        ran = np.isin(choices[:, g], with_groups)
        frac.append(float(popcount(keep[ran, g]).mean() / n) if ran.any() and n else None)
    return frac

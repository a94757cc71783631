"""FIFO depths by the frame-sequence model on a long run of real decisions, after sizing by simulation.

Sizing by Verilator (``accelerator.size_fifos``) sees a few dozen images, and its cycles per image on them are
mostly the pipeline filling and draining: it cannot tell what buffering buys in the steady state, where blocks whose
modes vary from frame to frame hold each other up (a frame slow in one block and another slow in the next). The
frame-sequence model (``pipeline_folding.frame_sequence_cycles``, which the measured spacing follows within a few
per cent) can, on hundreds of images, in seconds. Two moves, each judged by it:

- ``trim``: FIFOs in front of a node every frame waits for (the stem's, in front of the first block) fill with
  images that wait there; they buy nothing a host's buffer would not. The ones a block RAM or more deep go down to
  ``TRIM_DEPTH``, or to what they hold of an image passing alone (the model sees frames, not words: a residual's
  shortcut holds what the convolutions beside it take in before their first output), where the model loses
  nothing; the simulation must then still run at the sizing run's speed.
- ``deepen``: a gated block's frame buffer (its input, held for the gate's decision) takes whole frames more, which
  lets the blocks before it run ahead while a slow mode holds it up: the cheapest place for that buffering, one
  compact frame of the block's input per frame held. As many more frames as the model finds worth it, within what
  the device has room for. A deeper FIFO cannot make a pipeline stall that ran before.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable

import numpy as np

from .accelerator import FRAME_BUFFER

log = logging.getLogger(__name__)

TRIM_DEPTH = 32  # a trimmed FIFO: one SRL32 per bit
TRIM_BITS = 18 * 1024  # the FIFOs worth trimming: a RAMB18's worth or more
TRIM_LOSS = 0.002  # a trim the model says costs more than this (relative cycles per image) is not made
DEEPEN_MAX = 3  # whole frames a frame buffer may hold beyond its own
DEEPEN_GAIN = 0.01  # a frame more must buy at least this much (relative cycles per image)
# sweeps of the model before its waits count as a deadlock: a depth judged by it is refused then, where a figure
# reported keeps pipeline_folding's longer search (200 calibration images settle in under 60 sweeps on the default
# as the demo emits it, 60 to 100 on the tiny channel network of the tests)
SWEEPS = 150
TOKEN_BITS = 1024  # a stream whose frame is this small carries tokens or a gate's state


@contextlib.contextmanager
def depths_set(model, depths: dict[str, int]):
    """``model`` with ``depths`` written into its FIFO nodes for the duration (the model reads nothing else)."""
    from qonnx.custom_op.registry import getCustomOp

    insts = {n.name: getCustomOp(n) for n in model.get_nodes_by_op_type("StreamingFIFO_rtl") if n.name in depths}
    old = {k: int(i.get_nodeattr("depth")) for k, i in insts.items()}
    try:
        for k, i in insts.items():
            i.set_nodeattr("depth", int(depths[k]))
        yield model
    finally:
        for k, i in insts.items():
            i.set_nodeattr("depth", old[k])


class SequenceModel:
    """Cycles per image of a folded accelerator graph on one sequence of decisions, its FIFOs at given depths
    (each set of depths evaluated once: sizing asks again for the depths trimming started or ended at)."""

    def __init__(self, model, man, decisions: np.ndarray, keep: np.ndarray | None = None):
        from qonnx.custom_op.registry import getCustomOp

        self.model, self.man, self.decisions, self.keep = model, man, decisions, keep
        self.fifos = {n.name: getCustomOp(n) for n in model.get_nodes_by_op_type("StreamingFIFO_rtl")}
        self._seen: dict[tuple | None, float] = {}

    def words(self, name: str) -> int:
        """Words of a FIFO's stream per frame."""
        return int(np.prod(self.fifos[name].get_folded_output_shape()[:-1]))

    def bits(self, depths: dict[str, int]) -> int:
        return sum(int(depths.get(k, i.get_nodeattr("depth"))) * i.get_instream_width() for k, i in self.fifos.items())

    def cycles(self, depths: dict[str, int] | None = None) -> float:
        """With the FIFOs at ``depths`` (the others as the graph has them); None: unbounded FIFOs."""
        from .pipeline_folding import frame_sequence_cycles

        key = None if depths is None else tuple(sorted(depths.items()))
        if key not in self._seen:
            if depths is None:
                self._seen[key] = frame_sequence_cycles(self.model, self.decisions, self.man, keep=self.keep)[0]
            else:
                with depths_set(self.model, depths):
                    self._seen[key] = frame_sequence_cycles(self.model, self.decisions, self.man, capacities=True,
                                                            keep=self.keep, sweeps=SWEEPS)[0]
        return self._seen[key]


def covering(decisions: np.ndarray) -> list[int]:
    """Indices of a few images that between them take every mode of every gated block that ``decisions`` ((images,
    gates) menu indices) take, greedily, the most new (gate, mode) pairs first."""
    want = {(g, int(m)) for g in range(decisions.shape[1]) for m in decisions[:, g]}
    out = []
    while want:
        i = max(range(len(decisions)), key=lambda i: len(want & set(enumerate(map(int, decisions[i])))))
        out.append(i)
        want -= set(enumerate(map(int, decisions[i])))
    return out


def trim(seq: SequenceModel, depths: dict[str, int], spare: set[str] = frozenset(), min_bits: int = TRIM_BITS,
         floor: dict[str, int] | None = None) -> tuple[dict[str, int], list]:
    """``depths`` with the FIFOs of ``min_bits`` or more (frame buffers and ``spare`` left) down to ``TRIM_DEPTH``
    (or their ``floor``) where the model on ``seq`` loses at most ``TRIM_LOSS`` of its cycles per image; and the
    ones trimmed."""
    base = seq.cycles(depths)
    if not math.isfinite(base):  # the model gave up (SWEEPS): every trial would compare as no loss
        log.warning("the frame-sequence model found no steady state for these depths: no FIFO trimmed")
        return dict(depths), []
    to = {k: max(TRIM_DEPTH, (floor or {}).get(k, 0)) for k in depths}
    out, trimmed = dict(depths), []
    cands = sorted((k for k, d in depths.items() if not k.endswith(FRAME_BUFFER) and k not in spare
                    and d > to[k] and d * seq.fifos[k].get_instream_width() >= min_bits),
                   key=lambda k: -depths[k] * seq.fifos[k].get_instream_width())
    todo = [cands] if cands else []
    while todo:  # all at once, and the halves of a group that loses, down to single FIFOs
        group = todo.pop(0)
        trial = {**out, **{k: to[k] for k in group}}
        if seq.cycles(trial) <= base * (1 + TRIM_LOSS):
            out, trimmed = trial, trimmed + group
        elif len(group) > 1:
            todo += [group[:len(group) // 2], group[len(group) // 2:]]
    return out, trimmed


def frames_held(seq: SequenceModel, depths: dict[str, int]) -> int:
    """Whole frames beyond their own that every frame buffer of ``depths`` holds (what ``deepen`` gave them)."""
    bufs = [k for k in depths if k.endswith(FRAME_BUFFER)]
    return max(0, min(((depths[k] - 1) // seq.words(k) - 1 for k in bufs), default=0))


def deepen(seq: SequenceModel, depths: dict[str, int], fits: Callable[[dict[str, int]], bool]) -> tuple[dict, list]:
    """``depths`` with every frame buffer holding up to ``DEEPEN_MAX`` frames more, one at a time while a frame
    buys ``DEEPEN_GAIN`` of the model's cycles per image and ``fits(depths)`` (the emitted design on the device);
    and the steps, (frames more, cycles per image, FIFO bits) each, from the frames ``depths`` hold already. The
    token and state streams (frames of ``TOKEN_BITS`` or less, in shift registers) hold as many frames more, or a
    block that runs ahead waits on its decisions' FIFOs instead."""
    bufs = [k for k in depths if k.endswith(FRAME_BUFFER)]
    tokens = [k for k in depths if seq.words(k) * seq.fifos[k].get_instream_width() <= TOKEN_BITS]
    held = frames_held(seq, depths)
    steps = [(held, seq.cycles(depths), seq.bits(depths))]
    out = dict(depths)
    if not math.isfinite(steps[0][1]):  # the model gave up (SWEEPS): no frame could be shown to buy anything
        log.warning("the frame-sequence model found no steady state: frame buffers not deepened")
        return out, steps
    for more in range(held + 1, DEEPEN_MAX + 1 if bufs else 1):
        trial = {**out, **{k: (1 + more) * seq.words(k) + 1 for k in bufs},
                 **{k: max(depths[k], (2 + more) * seq.words(k) + 1) for k in tokens}}
        cycles = seq.cycles(trial)
        if cycles > steps[-1][1] * (1 - DEEPEN_GAIN):
            log.info("a frame buffer frame more (%d) buys too little: %.0f cycles per image", more, cycles)
            break
        if not fits(trial):
            log.info("a frame buffer frame more (%d, %.0f cycles per image) does not fit the device", more, cycles)
            break
        out = trial
        steps.append((more, cycles, seq.bits(trial)))
    return out, steps

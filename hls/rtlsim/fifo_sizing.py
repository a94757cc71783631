"""FIFO sizing by Verilator simulation (FINN's own sizing needs Vivado's xsim), on random frames: for cores whose
timing does not depend on the values (a static network's). The DFS accelerator's does (the gates pick each block's
path per image): it is sized on real images by ``hls.accelerator.size_fifos``, which uses this module's
``set_fifo_depths``.

One build simulates every StreamingFIFO_rtl with a run-time depth (stitch(sizing_fifos=True)), so each trial
set of depths is one call of a running simulator, not a compile:

1. every FIFO at its maximum depth (two frames of its stream, at least 64 words and its own depth: `stitch`):
   the best throughput the core can reach, and each FIFO's peak occupancy;
2. target = max(FINN's estimate ``max_cycles``, that best) x (1 + tolerance) cycles per frame;
3. start from the peak occupancies (what FINN's simulation-based sizing would choose), then, largest FIFO
   (depth x width bits) first, binary-search each FIFO's smallest depth that still meets the target with
   the others at their current depths (minimal FINN depth 2 tried first: most FIFOs need no more);
   ``minimize=False`` stops at the peak occupancies (two simulations instead of dozens, more FIFO bits);
4. write the depths into the model, regenerate those FIFOs' HDL and, unless ``verify=False``, build the core
   with FINN's real fifo.sv and measure it again on twice the frames (outputs must equal the sizing run's).

Every accepted set met the target in simulation, so the result does too; the search is greedy, so the total
is a local minimum: no single FIFO can be made shallower.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from .sim import RTLSimCore, SimResult

log = logging.getLogger(__name__)

MIN_DEPTH = 2  # fifo.sv's smallest


@dataclass
class FifoSizingReport:
    depths: dict[str, int]  # chosen depth per StreamingFIFO_rtl node
    widths: dict[str, int]  # stream width in bits per FIFO
    initial_depths: dict[str, int]  # depths in the model before sizing
    peak_occupancy: dict[str, int]  # with every FIFO at its maximum
    total_bits: int  # sum of depth x width of the chosen depths
    estimate_cycles: int  # FINN's max_cycles (slowest layer), cycles per frame
    target_cycles: float
    unbounded_cycles: float  # measured, every FIFO at its maximum
    initial_cycles: float | None  # measured with the initial depths (None: the core stalled)
    sized_cycles: float  # measured with the chosen depths (sizing FIFOs)
    verified_cycles: float | None  # measured with FINN's fifo.sv at the chosen depths, 2 x frames
    evaluations: int
    frames: int
    minimized: bool  # False: the peak occupancies, kept without the per-FIFO search

    def to_dict(self) -> dict:
        return asdict(self)


def _with_fifos(model, fpgapart: str):
    """The model with FINN's minimal FIFOs (and width converters) when it has none yet."""
    if model.get_nodes_by_op_type("StreamingFIFO_rtl"):
        return model
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames

    model = model.transform(InsertDWC()).transform(SpecializeLayers(fpgapart))
    model = model.transform(InsertFIFO(create_shallow_fifos=True)).transform(SpecializeLayers(fpgapart))
    return model.transform(GiveUniqueNodeNames())


def random_frames(core: RTLSimCore, n_frames: int, seed: int = 0) -> list[np.ndarray]:
    """Random frames within each input's FINN datatype (for a core whose timing does not depend on the values)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in core.inputs:
        lo, hi = int(s.dtype.min()), int(s.dtype.max())  # integers: float32 would round those past 2^24
        frames.append(rng.integers(lo, hi, (n_frames,) + s.normal_shape[1:], endpoint=True,
                                   dtype=np.uint64 if hi >= 1 << 63 else np.int64))
    return frames


def set_fifo_depths(model, depths: dict[str, int], fpgapart: str, clk_ns: float):
    """A copy of ``model`` with ``depths`` written into its StreamingFIFO_rtl nodes (and their producers'
    outFIFODepths, as FINN's ApplyFIFODepthsFromFile does) and the HDL of the FIFOs that changed regenerated.
    ``model`` itself is left as it was: its FIFOs keep their depths and their generated HDL (clearing a FIFO's
    ``code_gen_dir_ipgen`` in the caller's model left it pointing at no HDL, and FINN's CreateStitchedIP of that
    model then stopped at "Expected file /<fifo>.v ... not found")."""
    import copy

    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.custom_op.registry import getCustomOp

    model = copy.deepcopy(model)
    for node in model.get_nodes_by_op_type("StreamingFIFO_rtl"):
        if node.name not in depths:
            continue
        inst = getCustomOp(node)
        if int(inst.get_nodeattr("depth")) == depths[node.name]:
            continue
        inst.set_nodeattr("depth", int(depths[node.name]))
        inst.set_nodeattr("code_gen_dir_ipgen", "")  # PrepareIP keeps existing HDL otherwise
        producer = model.find_producer(node.input[0])
        if producer is not None:
            prod = getCustomOp(producer)
            outs = list(prod.get_nodeattr("outFIFODepths"))
            if len(outs) != len(producer.output):
                outs = [0] * len(producer.output)
            outs[list(producer.output).index(node.input[0])] = int(depths[node.name])
            prod.set_nodeattr("outFIFODepths", outs)
    return model.transform(PrepareIP(fpgapart, clk_ns))


def size_fifos(model, fpgapart: str, clk_ns: float, cache_dir: Path | None = None, tolerance: float = 0.03,
               n_frames: int = 4, verify: bool = True, jobs: int = 1, progress: bool = True,
               seed: int = 0, minimize: bool = True) -> tuple[object, FifoSizingReport]:
    """Size the StreamingFIFO_rtl depths of a FINN all-RTL dataflow model by simulation.

    ``model``: after SpecializeLayers (FIFOs are inserted when there are none), with or without PrepareIP.
    ``tolerance``: allowed throughput loss relative to max(FINN's estimate, the best measured).
    ``minimize``: search each FIFO's smallest depth (step 3), or keep the peak occupancies.
    Returns the model with the chosen depths (HDL regenerated) and a report.
    """
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.custom_op.registry import getCustomOp

    if n_frames < 2:
        raise FracskipError("FIFO sizing needs at least 2 frames to measure steady-state throughput")
    model = _with_fifos(model, fpgapart).transform(PrepareIP(fpgapart, clk_ns))
    fifo_nodes = model.get_nodes_by_op_type("StreamingFIFO_rtl")
    if not fifo_nodes:
        raise FracskipError("the model has no StreamingFIFO_rtl after InsertFIFO: nothing to size")
    initial = {n.name: int(getCustomOp(n).get_nodeattr("depth")) for n in fifo_nodes}

    core = RTLSimCore(model, cache_dir=cache_dir, jobs=jobs, sizing_fifos=True, progress=progress)
    if core.estimate is None:
        core.close()
        raise FracskipError("FIFO sizing targets FINN's cycle estimate, and FINN cannot estimate this model")
    with core:
        frames = random_frames(core, n_frames, seed)
        slots = core.fifos
        caps = [s.max_depth + 1 for s in slots]  # capacity = storage + output register
        best = core.run(frames, fifo_depths=caps, reset=True)  # raises if even this stalls
        unbounded = best.cycles_per_frame
        estimate = int(core.estimate["max_cycles"])
        target = max(estimate, unbounded) * (1 + tolerance)
        if unbounded > estimate * (1 + tolerance):
            log.warning("with unbounded FIFOs the core reaches %.0f cycles/frame, more than FINN's estimate %d: "
                        "sizing for %.0f", unbounded, estimate, target)
        limit = int(2 * best.cycles * (1 + tolerance)) + 1000  # a trial that slow has failed anyway
        evaluations = 1

        def trial(depths: list[int]) -> SimResult:
            nonlocal evaluations
            evaluations += 1
            return core.run(frames, fifo_depths=depths, reset=True, check=False, cycle_limit=limit)

        def meets(depths: list[int]) -> bool:
            r = trial(depths)
            return not r.stalled and r.cycles_per_frame <= target

        first = trial([initial[s.node] for s in slots])
        initial_cycles = None if first.stalled else first.cycles_per_frame
        depths = [min(max(MIN_DEPTH, mc + 1), cap) for mc, cap in zip(best.fifo_maxcount, caps)]
        if not meets(depths):
            log.info("peak-occupancy depths miss the target; starting from the maxima")
            depths = list(caps)
        order = sorted(range(len(slots)), key=lambda i: -depths[i] * slots[i].width) if minimize else []
        for i in _bar(progress, len(order))(order):
            if depths[i] == MIN_DEPTH:
                continue
            lo, hi = MIN_DEPTH, depths[i]
            if meets(depths[:i] + [lo] + depths[i + 1:]):
                hi = lo
            else:  # binary search; invariant: hi meets the target, lo does not
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if meets(depths[:i] + [mid] + depths[i + 1:]):
                        hi = mid
                    else:
                        lo = mid
            depths[i] = hi
        final = trial(depths)
        if final.stalled or final.cycles_per_frame > target:
            raise FracskipError("internal error: the chosen FIFO depths do not reproduce their measured throughput")

    chosen = {s.node: d for s, d in zip(slots, depths)}
    widths = {s.node: s.width for s in slots}
    model = set_fifo_depths(model, chosen, fpgapart, clk_ns)
    verified = None
    if verify:
        with RTLSimCore(model, cache_dir=cache_dir, jobs=jobs, progress=progress) as real:
            # twice the frames: the sized core must hold its throughput beyond the frames it was sized on
            more = random_frames(real, 2 * n_frames, seed + 1)
            more = [np.concatenate([a, b[n_frames:]]) for a, b in zip(frames, more)]
            check = real.run(more, check=False, cycle_limit=2 * limit)
        if check.stalled:
            raise FracskipError(f"with FINN's fifo.sv at the sized depths the core stalls ({chosen}); the sizing "
                                "FIFO model disagrees with fifo.sv here: report this.")
        for a, b in zip(check.outputs, best.outputs):
            if not np.array_equal(a[:n_frames], b):
                raise FracskipError("the core's outputs differ between the sizing FIFOs and FINN's fifo.sv")
        verified = check.cycles_per_frame
        if verified > target:
            log.warning("with FINN's fifo.sv the sized core runs %.1f cycles/frame, above the target %.1f",
                        verified, target)
    report = FifoSizingReport(
        depths=chosen, widths=widths, initial_depths=initial,
        peak_occupancy={s.node: mc for s, mc in zip(slots, best.fifo_maxcount)},
        total_bits=sum(chosen[n] * widths[n] for n in chosen), estimate_cycles=estimate, target_cycles=target,
        unbounded_cycles=unbounded, initial_cycles=initial_cycles, sized_cycles=final.cycles_per_frame,
        verified_cycles=verified, evaluations=evaluations, frames=n_frames,
        minimized=minimize)
    log.info("FIFO sizing: %d FIFOs, %d bits in total, %.1f cycles/frame (FINN estimate %d, target %.1f) "
             "after %d simulations", len(chosen), report.total_bits, verified or final.cycles_per_frame, estimate,
             target, report.evaluations)
    return model, report


def _bar(enabled: bool, total: int):
    if not enabled:
        return lambda it: it
    from rich.progress import track

    return lambda it: track(it, description="sizing FIFOs", total=total, transient=True)

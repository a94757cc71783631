"""Where the sized FIFOs keep their words: block RAM or LUT RAM, as the device has room for them.

Sizing by simulation gives each FIFO a depth, not a memory: fifo.sv puts a FIFO deeper than 257 words in block
RAM and a shallower one in LUT RAM, whatever the rest of the design leaves free. A folding that fills the block
RAM can then go over the device by its sized FIFOs alone while thousands of LUTs stand idle, and the whole network
would be folded again (slower) to make room. Moving the FIFOs that cost the fewest LUTs per block RAM freed into
LUT RAM (or the reverse when the LUTs run out) is what a FINN user does by hand with a FIFO's ``ram_style``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .pipeline_folding import emitted_resources

# fifo.sv builds a FIFO of at most 33 words as a shift register, whatever its ram_style asks
SRL_MAX_DEPTH = 33
# the styles a FIFO may be moved from, by the style it is moved to
MOVES_FROM = {"distributed": ("block",), "block": ("srl", "distributed")}


@dataclass(frozen=True)
class Move:
    node: str
    depth: int
    width: int
    style: str  # the ram_style given
    lut: float  # LUTs it adds (negative: frees)
    bram: float  # BRAM_18K it adds (negative: frees)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _cost(inst, part: str, style: str) -> tuple[float, float]:
    """(LUT, BRAM_18K) of a FIFO node built as ``style``, by FINN's fitted model of fifo.sv."""
    old = inst.get_nodeattr("ram_style")
    inst.set_nodeattr("ram_style", style)
    try:
        return float(inst.lut_estimation(part)), float(inst.bram_estimation(part))
    finally:
        inst.set_nodeattr("ram_style", old)


def _candidates(model, part: str, to: str, uram: bool) -> list[Move]:
    """The FIFOs that could be built in ``to`` ("distributed" or "block") instead, with what each move costs."""
    from qonnx.custom_op.registry import getCustomOp

    out = []
    for node in model.get_nodes_by_op_type("StreamingFIFO_rtl"):
        inst = getCustomOp(node)
        depth = int(inst.get_nodeattr("depth"))
        if depth <= SRL_MAX_DEPTH:
            continue
        now = inst.get_ram_style()
        if now == "ultra" and not uram:  # Vivado puts it in block RAM (emitted_resources counts it there)
            now = "block"
        if now not in MOVES_FROM[to]:
            continue
        lut0, bram0 = _cost(inst, part, now)
        lut1, bram1 = _cost(inst, part, to)
        out.append(Move(node.name, depth, int(inst.get_instream_width_padded()), to, lut1 - lut0, bram1 - bram0))
    return out


def plan(model, part: str, device: dict[str, float], uram: bool) -> list[Move]:
    """The moves that bring an emitted design within ``device`` by FINN's estimates, the cheapest first: for block
    RAM over the device, FIFOs into LUT RAM by fewest LUTs per block RAM freed; for LUTs over, into block RAM by
    fewest block RAMs per LUT freed; each only while the other resource stays within the device. [] when the design
    fits, or when moving FIFOs alone cannot make it fit (the caller folds again)."""
    total = emitted_resources(model, part, uram)["total"]
    over_bram = total["BRAM_18K"] - device.get("BRAM_18K", 0)
    over_lut = total["LUT"] - device.get("LUT", 0)
    if (over_bram > 0) == (over_lut > 0):  # fits, or both over: nothing to trade
        return []
    if over_bram > 0:
        need, spend, room = over_bram, "LUT", device.get("LUT", 0) - total["LUT"]
        moves = [m for m in _candidates(model, part, "distributed", uram) if m.bram < 0]
        moves.sort(key=lambda m: m.lut / -m.bram)
    else:
        need, spend, room = over_lut, "BRAM_18K", device.get("BRAM_18K", 0) - total["BRAM_18K"]
        moves = [m for m in _candidates(model, part, "block", uram) if m.lut < 0]
        moves.sort(key=lambda m: m.bram / -m.lut)
    chosen = []
    for m in moves:
        gain, cost = (-m.bram, m.lut) if spend == "LUT" else (-m.lut, m.bram)
        if cost > room:
            continue
        chosen.append(m)
        need -= gain
        room -= cost
        if need <= 0:
            return chosen
    return []


def apply(model, moves: list[Move], part: str, clk_ns: float):
    """A copy of ``model`` with each moved FIFO's ``ram_style`` set and its HDL generated again."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.custom_op.registry import getCustomOp

    if not moves:
        return model
    model = copy.deepcopy(model)
    style = {m.node: m.style for m in moves}
    for node in model.get_nodes_by_op_type("StreamingFIFO_rtl"):
        if node.name in style:
            inst = getCustomOp(node)
            inst.set_nodeattr("ram_style", style[node.name])
            inst.set_nodeattr("code_gen_dir_ipgen", "")  # PrepareIP keeps existing HDL otherwise
    return model.transform(PrepareIP(part, clk_ns))


def place(model, part: str, clk_ns: float, device: dict[str, float]) -> tuple[object, list[dict]]:
    """``model`` with its FIFOs moved between block RAM and LUT RAM where that makes it fit the device (``plan``),
    and the moves made."""
    moves = plan(model, part, device, uram=device.get("URAM", 0) > 0)
    return apply(model, moves, part, clk_ns), [m.to_dict() for m in moves]

"""ModalActivation and ModalActivation_rtl: one per-element function per mode, the mode chosen per frame.

The elementwise stages of a DFS block differ from path to path: the 2- and 4-bit paths quantize the block input
with a threshold table and the 8-bit path does not; the middle activation is a 3- or 15-step table at 2 and 4 bits
and an exact requantizer (``IntRequant``) at 8. In the block's one runtime-precision datapath (``hls/modal.py``)
each such stage is one node of this op, holding every mode's function:

- ``bypass``: out = in (the mode's path has no such stage);
- ``thresholds``: out = act_val + #{j : in >= T[c, j]} (FINN's MultiThreshold on integers; T ceiled), the input
  taken at the mode's own width ``in_bits`` (a mode's path feeds it a narrower type than the stream's, which holds
  every mode's: a 4-bit path's accumulator needs 18 bits where the 8-bit path's needs 26);
- ``requant``: out = clip((in * mul[c] + bias[c]) >> shift, lo, hi) (``IntRequant``; ``>>`` floors).

Streams: ``in0_V`` the data, FINN's Thresholding layout (``NumChannels`` with ``PE`` per word, ``numInputVectors``
words of NumChannels/PE per frame), ``in1_V`` one mode token per frame (8 bits, the mode in the low bits, as
``MVAU_bitserial`` reads it), ``out0_V`` the data in ``outputDataType``, which holds every mode's outputs. The
functions are the JSON attribute ``modes`` (a list, one ``ModeFunction.to_json()`` per mode, at most 64).

Channel groups (LC-Net's per-input channel skipping, issue #16: a block's relu1): with ``channelGroup`` > 0 the
channels form NG = NumChannels / channelGroup groups (at most 16), each kept or dropped per frame. The token is then
``8 + ceil(NG / 8) * 8`` bits as ``BitSerialParams.mode_token`` makes it: the base mode m (the bit-width) in the low
byte, group g's keep bit at bit 8 + g. ``modes`` holds one function per (m, groups kept): a frame of m keeping n
groups takes ``modes[m * NG + max(n, 1) - 1]``, and a dropped group's channels are 0. Any channelGroup dividing
NumChannels will do, whatever PE: a lane's keep bit is a multiplexer of the keep bits by the word in the pixel
(one for every lane when channelGroup is a multiple of PE).

The RTL (generated per node, plain Verilog-2005) takes a frame's token in a cycle of its own (the function's index
and the keep bits into registers), then the frame's words at one per cycle through two pipeline stages: compare and
multiply; then select the result into the output register (0 for a dropped group's channel). Both stages advance
when the output register is free, as in ``IntRequant_rtl``. Modes share hardware (``banks``, ``units``): the
threshold modes of one compare width and number of steps share one comparator bank, its table a row per (mode of the
bank, channel); the requant modes share the multiplier, whose ``mul`` and ``bias`` tables are indexed likewise; the
output multiplexer chooses among the bypass, the count plus each distinct ``act_val`` and the sum's shift and clip
for each distinct (shift, lo, hi). Banks keep their own shape: a compare width is part of a mode's function, and
before the banks one table padded to the widest steps and the stream's width cost the default's 17 nodes 6,991 LUT
against 6,729 for a table per mode. The tables are memories with initial contents, LUT ROMs read in the compare
stage; when one deeper than 64 words holds 16 Kib or more, a pipeline stage of its own reads them all synchronously,
and those deeper than 64 words are block RAM (Yosys mapped 128-word LUT ROMs read synchronously at 8 LUTs a bit).

Measured, Yosys 0.70 ``synth_xilinx -family xc7`` of the emitted Verilog: the default's 17 nodes (its 5 gated
blocks' modal activations, 16 to 64 channels, PE 1) 6,116 LUT, 2,646 FF, against 6,729 LUT, 2,520 FF before the
banks (per node 0.67x to 1.13x; dropping an unused wire alone moved one node's LUTs by 13 %). Channel groups, 64
channels in 16 groups of 4 at PE 4: 16 functions of 15 thresholds at 18 compare bits 825 LUT, 138 FF, 30 BRAM18 (a
comparator bank and LUT ROM per mode, the generator before the banks with its 4-mode limit lifted, no groups: 19,657
LUT, 2,833 FF); relu1's shape, 48 functions (3 and 15 thresholds at 13 and 18 bits, requant; per groups kept) 1,094
LUT, 170 FF, 38 BRAM18, 4 DSP.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from ...errors import FracskipError
from ...runtime.intgate import keep_mask
from ..bitserial.core import MODE_TOKEN_BITS, mode_token_bits
from ..lutmvu.core import low_bits
from .requant_rtl import signed_bits
from .single_file import SingleFileRTL
from .stream_op import PerChannelStreamOp, verilog_literal

KINDS = ("bypass", "thresholds", "requant")
MAX_MODES = 64
MAX_GROUPS = 16  # keep bits: a token of 8 + 16 bits is exact in FINN's float32 tensors
LABEL_MODES = 8  # up to this many modes a stage selects by the mode itself; beyond, by a register set with the token
BLOCK_ROM_BITS = 16384  # a table deeper than a LUT6 ROM and this big is read synchronously, for block RAM


@dataclass(frozen=True)
class ModeFunction:
    """One mode's per-element function of an integer stream, channels on the last axis."""

    kind: str
    thresholds: tuple[tuple[int, ...], ...] = ()  # (C or 1, N) integer thresholds, rows sorted
    act_val: int = 0
    mul: tuple[int, ...] = ()  # (C,), >= 0
    bias: tuple[int, ...] = ()  # (C,)
    shift: int = 0
    lo: int = 0
    hi: int = 0
    in_bits: int = 0  # thresholds: the input as a signed operand of this width (0: the stream's)

    @classmethod
    def bypass(cls) -> ModeFunction:
        return cls("bypass")

    @classmethod
    def from_thresholds(cls, table: np.ndarray, idt: DataType, act_val: int = 0) -> ModeFunction:
        """A FINN threshold table on integers of ``idt``: ``x >= t`` <=> ``x >= ceil(t)``, and a threshold beyond
        the type's range is clipped to min (always reached) or max + 1 (never), which keeps the RTL's compare
        width that of the input. ``idt`` is the mode's input type: the RTL compares at its width."""
        t = np.clip(np.ceil(np.asarray(table, dtype=np.float64)), idt.min(), idt.max() + 1).astype(np.int64)
        return cls("thresholds", thresholds=tuple(tuple(int(v) for v in row) for row in np.sort(t, axis=1)),
                   act_val=int(act_val), in_bits=operand_bits(idt))

    @classmethod
    def requant(cls, mul, bias, shift: int, lo: int, hi: int) -> ModeFunction:
        return cls("requant", mul=tuple(int(v) for v in mul), bias=tuple(int(v) for v in bias), shift=int(shift),
                   lo=int(lo), hi=int(hi))

    @property
    def steps(self) -> int:
        return len(self.thresholds[0]) if self.thresholds else 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).astype(np.int64)
        if self.kind == "bypass":
            return x
        if self.kind == "thresholds":
            if self.in_bits:  # as the RTL: the low in_bits bits, signed (the value itself if it is in the mode's type)
                x = low_bits(x, self.in_bits, signed=True)
            t = np.asarray(self.thresholds, dtype=np.int64)  # (C or 1, N): broadcasts over the channel axis
            return (x[..., None] >= t).sum(axis=-1) + self.act_val
        mul, bias = np.asarray(self.mul, dtype=np.int64), np.asarray(self.bias, dtype=np.int64)
        return np.clip((x * mul + bias) >> self.shift, self.lo, self.hi)

    def out_range(self, idt: DataType) -> tuple[int, int]:
        if self.kind == "bypass":
            return int(idt.min()), int(idt.max())
        if self.kind == "thresholds":
            return self.act_val, self.act_val + self.steps
        return self.lo, self.hi

    def problems(self, channels: int, idt: DataType) -> list[str]:
        """What is wrong with the function on ``channels`` channels of ``idt`` inputs (the stream's type)."""
        if self.kind not in KINDS:
            return [f"kind {self.kind!r} is not one of {KINDS}"]
        if self.kind == "thresholds":
            rows = {len(r) for r in self.thresholds}
            if len(self.thresholds) not in (1, channels) or len(rows) != 1 or not self.steps:
                return [f"thresholds need (1 or {channels}, N >= 1) entries"]
            if any(list(r) != sorted(r) for r in self.thresholds):
                return ["threshold rows must be sorted"]
            # compared at the input's width + 1 bits (the mode's, else the stream's): the RTL would read a threshold
            # beyond that range by its low bits
            h = 1 << (self.in_bits - 1) if self.in_bits else None
            lo, hi = (-h, h) if h else (int(idt.min()), int(idt.max()) + 1)
            if not lo <= min(map(min, self.thresholds)) <= max(map(max, self.thresholds)) <= hi:
                what = f"{self.in_bits}-bit" if h else idt.name
                return [f"thresholds beyond the range of {what} inputs: clip them to it (from_thresholds)"]
        if self.kind == "requant":
            if len(self.mul) != channels or len(self.bias) != channels:
                return [f"requant needs {channels} multipliers and biases"]
            if min(self.mul) < 0 or self.shift < 0 or self.lo > self.hi:
                return ["requant needs multipliers >= 0, shift >= 0 and lo <= hi"]
        return []

    def to_json(self) -> dict:
        if self.kind == "bypass":
            return {"kind": "bypass"}
        if self.kind == "thresholds":
            return {"kind": "thresholds", "thresholds": [list(r) for r in self.thresholds], "act_val": self.act_val,
                    "in_bits": self.in_bits}
        return {"kind": "requant", "mul": list(self.mul), "bias": list(self.bias), "shift": self.shift,
                "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_json(cls, d: dict) -> ModeFunction:
        d = dict(d)
        if "thresholds" in d:
            d["thresholds"] = tuple(tuple(int(v) for v in r) for r in d["thresholds"])
        for k in ("mul", "bias"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        return cls(**d)


def operand_bits(dt: DataType) -> int:
    """Bits of ``dt``'s values as a signed operand."""
    return dt.bitwidth() + (0 if dt.signed() else 1)


def datatype_for(lo: int, hi: int) -> DataType:
    """The narrowest FINN integer type holding [lo, hi]."""
    return DataType[f"INT{signed_bits([lo, hi])}"] if lo < 0 else DataType[f"UINT{max(1, int(hi).bit_length())}"]


@dataclass(frozen=True)
class Bank:
    """Modes sharing one lane datapath: a comparator bank (``thresholds``, of ``bits``-bit compares and ``steps``
    thresholds) or the multiplier (``requant``). Its tables hold a row per (mode of the bank, channel)."""

    kind: str
    modes: tuple[int, ...]
    bits: int = 0
    steps: int = 0


@dataclass(frozen=True)
class Table:
    """A constant table of a bank, one word per (mode of the bank, word of the pixel): the fields of the PE lanes,
    lane i of word f holding channel f * PE + i. Its address is the bank's mode (``mode_bits``, none for a
    bank of one mode) above the word in the pixel (``fold_bits``, none when every channel has the same row)."""

    name: str
    bank: int
    width: int  # a lane's field
    words: dict[int, tuple[int, ...]]  # address -> the lanes' fields
    mode_bits: int
    fold_bits: int
    block: bool = False  # a synchronous ROM, for block RAM

    @property
    def depth(self) -> int:
        return 1 << (self.mode_bits + self.fold_bits)

    @property
    def size(self) -> int:
        """Bits, every lane's."""
        return self.depth * len(next(iter(self.words.values()))) * self.width

    def varying(self) -> int:
        """Bits of the lanes' fields that differ from word to word (the others are constants to synthesis)."""
        rows = list(self.words.values())
        return sum(len({(r[i] >> b) & 1 for r in rows}) > 1 for i in range(len(rows[0])) for b in range(self.width))


def bram18(depth: int, width: int) -> int:
    """RAMB18s of a ROM of ``depth`` words of ``width`` bits: 512 x 36, 1K x 18, 2K x 9, 4K x 4, 8K x 2, 16K x 1."""
    for d, w in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= d:
            return math.ceil(width / w)
    return math.ceil(depth / 16384) * width


def bits_for(n: int) -> int:
    """Bits of an index of ``n`` values."""
    return max(1, (n - 1).bit_length())


@register_hw_op
class ModalActivation(PerChannelStreamOp):
    """Per-frame choice of a per-element function (abstract HW layer; python execution)."""

    def get_nodeattr_types(self):
        return {**super().get_nodeattr_types(), "modes": ("s", True, "[]"),
                "channelGroup": ("i", False, 0)}  # channels per keep group (0: no channel groups)

    def mode_functions(self) -> list[ModeFunction]:
        return [ModeFunction.from_json(d) for d in json.loads(self.get_nodeattr("modes"))]

    def n_groups(self) -> int:
        """Channel groups a frame keeps or drops (0 without channel groups)."""
        g = self.get_nodeattr("channelGroup")
        return self.get_nodeattr("NumChannels") // g if g > 0 else 0

    def token_bits(self) -> int:
        """The mode token: the mode in the low byte, then the keep bits (group g at bit 8 + g), whole bytes."""
        return mode_token_bits(self.n_groups())

    def verify_node(self):
        try:
            fns = self.mode_functions()
        except (TypeError, ValueError) as exc:
            return [f"modes is not a list of mode functions: {exc}"]
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        C, cg = self.get_nodeattr("NumChannels"), self.get_nodeattr("channelGroup")
        info = []
        if not 1 <= len(fns) <= MAX_MODES:
            info.append(f"{len(fns)} modes: 1 to {MAX_MODES}")
        if cg < 0 or (cg and C % cg):
            info.append(f"channelGroup={cg} must divide NumChannels={C} (or be 0: no channel groups)")
        elif cg:
            ng = C // cg
            if ng > MAX_GROUPS:
                info.append(f"{ng} channel groups: at most {MAX_GROUPS} (a token of 8 + {MAX_GROUPS} bits is the "
                            "widest FINN's float32 tensors hold exactly)")
            if len(fns) % ng:
                info.append(f"{len(fns)} modes: channel groups need one per (mode, groups kept), a multiple of {ng}")
        if not (idt.is_integer() and odt.is_integer()) or DataType["BIPOLAR"] in (idt, odt):
            info.append(f"integer input and output types needed, has {idt.name} -> {odt.name}")
        for k, f in enumerate(fns):
            info += [f"mode {k}: {p}" for p in f.problems(C, idt)]
            if f.in_bits > operand_bits(idt):
                info.append(f"mode {k}: {f.in_bits}-bit inputs exceed the stream's {idt.name}")
            lo, hi = f.out_range(idt)
            if not info and not (odt.allowed(lo) and odt.allowed(hi)):
                info.append(f"mode {k}: outputs [{lo}, {hi}] exceed {odt.name}")
        return info + self.fold_reasons()

    # ------------------------------------------------------------------ streams: in1 is the mode token
    def get_normal_input_shape(self, ind=0):
        return super().get_normal_input_shape() if ind == 0 else (1, 1)

    def get_folded_input_shape(self, ind=0):
        return super().get_folded_input_shape() if ind == 0 else (1, 1, 1)

    def get_input_datatype(self, ind=0):
        return super().get_input_datatype() if ind == 0 else DataType[f"UINT{self.token_bits()}"]

    def get_instream_width(self, ind=0):
        return super().get_instream_width() if ind == 0 else self.token_bits()

    def get_exp_cycles(self):
        return super().get_exp_cycles() + 1  # the token takes a cycle of its own

    # ------------------------------------------------------------------ the hardware's sharing
    def banks(self) -> list[Bank]:
        """The comparator banks, one per (compare bits, steps), in order of their first mode; then the requant
        modes' multiplier."""
        fns, shapes = self.mode_functions(), {}
        for k, f in enumerate(fns):
            if f.kind == "thresholds":
                shapes.setdefault((self.compare_bits(f), f.steps), []).append(k)
        out = [Bank("thresholds", tuple(m), b, n) for (b, n), m in shapes.items()]
        rq = tuple(k for k, f in enumerate(fns) if f.kind == "requant")
        return out + ([Bank("requant", rq)] if rq else [])

    def units(self) -> tuple[list[tuple], list[int]]:
        """The output multiplexer's inputs (bypass; a count plus an ``act_val``; a requant sum's shift and clip)
        and each mode's."""
        keys = [("bypass",) if f.kind == "bypass" else ("thresholds", f.act_val) if f.kind == "thresholds"
                else ("requant", f.shift, f.lo, f.hi) for f in self.mode_functions()]
        units = list(dict.fromkeys(keys))
        return units, [units.index(u) for u in keys]

    def tables(self) -> list[Table]:
        """The banks' constant tables: a comparator bank's thresholds (a lane's field, its steps at the bank's
        compare width), the multiplier's ``mul`` and ``bias``."""
        fns, pe, C = self.mode_functions(), self.get_nodeattr("PE"), self.get_nodeattr("NumChannels")
        fold_bits, w, out = bits_for(C // pe), self.widths(), []

        def table(name, b, width, rows):  # rows(k, c): mode k's field of channel c
            modes = self.banks()[b].modes
            by_channel = any(len({rows(k, c) for c in range(C)}) > 1 for k in modes)
            fb, mb = fold_bits if by_channel else 0, bits_for(len(modes)) if len(modes) > 1 else 0
            words = {j << fb | f: tuple(rows(k, f * pe + i) for i in range(pe))
                     for j, k in enumerate(modes) for f in range(C // pe if fb else 1)}
            out.append(Table(name, b, width, words, mb, fb))

        for b, bank in enumerate(self.banks()):
            if bank.kind == "thresholds":
                table(f"thr{b}", b, bank.steps * bank.bits,
                      lambda k, c, t=bank.bits: _word(list(fns[k].thresholds[c % len(fns[k].thresholds)]), t))
            else:
                table("mul", b, w["mw"], lambda k, c: fns[k].mul[c])
                table("bias", b, w["bw"], lambda k, c: fns[k].bias[c])
        # a table deeper than a LUT6 and of a block RAM's worth of bits is read in a pipeline stage of its own;
        # with that stage, every table deeper than a LUT6 is block RAM (Yosys took 8 LUTs a bit for 128 words)
        if any(t.depth > 64 and t.size >= BLOCK_ROM_BITS for t in out):
            out = [replace(t, block=t.depth > 64) for t in out]
        return out

    def deep(self) -> bool:
        """A pipeline stage reads the tables (synchronously: some is block RAM)."""
        return any(t.block for t in self.tables())

    # ------------------------------------------------------------------ estimates
    def widths(self) -> dict[str, int]:
        """Datapath bits: signed input operand, count; requant multiplier, bias, sum."""
        idt, fns = self.get_input_datatype(), self.mode_functions()
        xw = operand_bits(idt)
        rq = [f for f in fns if f.kind == "requant"]
        mw = max((signed_bits(f.mul) for f in rq), default=1)
        bw = max((signed_bits(f.bias) for f in rq), default=1)
        sw = max([xw + mw, bw] + [signed_bits([f.lo, f.hi]) for f in rq]) + 1
        nt = max((f.steps for f in fns), default=0)
        return {"xw": xw, "ctw": max(1, nt.bit_length()), "mw": mw, "bw": bw, "sw": sw}

    def compare_bits(self, f: ModeFunction) -> int:
        """A threshold mode's compare width: its inputs as signed operands, and one bit for max + 1."""
        return (f.in_bits or operand_bits(self.get_input_datatype())) + 1

    def _kinds(self) -> set[str]:
        return {f.kind for f in self.mode_functions()}

    def dsp_estimation(self, fpgapart=None):
        """When a mode requantizes: per lane, the signed multiplier tiled from 25 x 18 DSP48s as
        ``IntRequant_rtl.dsp_estimation`` counts them."""
        if "requant" not in self._kinds():
            return 0
        w = self.widths()

        def tiles(a, b):  # a on the 25-bit port, b on the 18-bit port
            return (1 + math.ceil(max(0, a - 25) / 24)) * (1 + math.ceil(max(0, b - 18) / 17))

        return self.get_nodeattr("PE") * min(tiles(w["xw"], w["mw"]), tiles(w["mw"], w["xw"]))

    def lut_estimation(self, fpgapart=None):
        """Estimates fitted to Yosys ``synth_xilinx`` (the module docstring's nodes: the sum within 1 %, single nodes
        from 0.6x to 1.65x). Per lane and threshold, 2 LUTs of count and, against a table's row, 2/3 of a LUT per
        compare bit (against a constant row the compares fold into the count); per lane, the requant sum's bits.
        The LUT ROMs (not block RAM) in the bits that vary from word to word (the others are constants): 1.15 LUTs
        per varying bit and 64 words, plus half as much for their multiplexers. The counters."""
        w, pe = self.widths(), self.get_nodeattr("PE")
        banks = self.banks()
        lane, roms = 0, 0.0
        for t in self.tables():
            bank = banks[t.bank]
            if bank.kind == "thresholds":  # against a constant row the compares fold into the count
                lane += bank.steps * (2 + (math.ceil(2 * bank.bits / 3) if t.mode_bits or t.fold_bits else 0))
            if (t.mode_bits or t.fold_bits) and not t.block:
                n = math.ceil(t.depth / 64)
                roms += 1.15 * t.varying() * (n + (n - 1) / 2)
        lane += w["sw"] if "requant" in self._kinds() else 0
        frame = int(np.prod(self.get_folded_input_shape()[:-1]))
        return int(pe * lane + roms + 2 * max(1, frame.bit_length()) + 4)

    def bram_estimation(self, fpgapart=None):
        """The block tables (``Table.block``) as Yosys maps them: PE lanes' fields wide, RAMB18s of at most 36 bits
        at 512 words."""
        return sum(bram18(t.depth, t.width * self.get_nodeattr("PE")) for t in self.tables() if t.block)

    def uram_estimation(self, fpgapart=None):
        return 0

    # ------------------------------------------------------------------ execution
    def token_function(self, token: int) -> tuple[int, int | None]:
        """A mode token's function (its index in ``modes``) and keep bits (None without channel groups): mode m
        keeping n of the NG groups is function m * NG + max(n, 1) - 1."""
        ng, menu = self.n_groups(), len(self.mode_functions())
        if not ng:
            if not 0 <= token < menu:
                raise FracskipError(f"{self.onnx_node.name}: mode {token}; the modes are 0 to {menu - 1}")
            return token, None
        m, keep = token & ((1 << MODE_TOKEN_BITS) - 1), token >> MODE_TOKEN_BITS
        if not (0 <= m < menu // ng and 0 <= keep < 1 << ng):
            raise FracskipError(f"{self.onnx_node.name}: token {token:#x}; the modes are 0 to {menu // ng - 1} (low "
                                f"byte), with keep bits for {ng} groups above")
        return m * ng + max(1, bin(keep).count("1")) - 1, keep

    def frame_functions(self, context) -> list[tuple[int, int | None]]:
        """Each input frame's ``token_function``."""
        node = self.onnx_node
        n = context[node.input[0]].shape[0]
        tokens = [int(v) for v in np.asarray(context[node.input[1]]).reshape(-1)]
        if len(tokens) != n:
            raise FracskipError(f"{node.name}: {len(tokens)} mode tokens for {n} frames")
        return [self.token_function(t) for t in tokens]

    def channel_keep(self, keep: int) -> np.ndarray:
        """Per channel, whether its group is kept."""
        return keep_mask(keep, self.n_groups(), self.get_nodeattr("channelGroup")).astype(bool)

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        fns, y = self.mode_functions(), []
        for f, (k, keep) in enumerate(self.frame_functions(context)):
            yf = fns[k](x[f:f + 1])
            y.append(yf if keep is None else np.where(self.channel_keep(keep), yf, 0))
        context[node.output[0]] = np.concatenate(y).astype(np.float32)


_V = """// fracskip ModalActivation_rtl: {channels} channels, {pe} per word, {idt} -> {odt}; per frame, one mode token:
{summary}// The token takes a cycle; then per word: {stages} -> output register.
module {top} (
  input ap_clk,
  input ap_rst_n,
  input  [{iw_pad}-1:0] in0_V_TDATA,
  input  in0_V_TVALID,
  output in0_V_TREADY,
  input  [{tok_bits}-1:0] in1_V_TDATA,
  input  in1_V_TVALID,
  output in1_V_TREADY,
  output [{ow_pad}-1:0] out0_V_TDATA,
  output out0_V_TVALID,
  input  out0_V_TREADY
);
  localparam PE = {pe};
  localparam C = {channels};
  localparam MB = {mb};  // mode index bits
  localparam FW = {fw};  // word-in-pixel counter bits (lane i of word f is channel f*PE + i)
  localparam NW = {nw};  // word-in-frame counter bits
  localparam IW = {iw};  // input element bits
  localparam XW = {xw};  // input as a signed operand
  localparam OW = {ow};  // output element bits
  localparam CTW = {ctw};  // count bits
  localparam MW = {mw};  // requant multiplier (signed, all >= 0)
  localparam BW = {bw};  // requant bias
  localparam PW = XW + MW;
  localparam SW = {sw};  // requant sum
  reg have;  // the current frame's token has been taken
  reg [MB-1:0] mode;
  reg [FW-1:0] fold;
  reg [NW-1:0] word;
  reg {valids};
{frame}
{tables}
  wire advance = !y_valid || out0_V_TREADY;
  wire take = have && in0_V_TVALID && advance;
  assign in0_V_TREADY = have && advance;
  assign in1_V_TREADY = !have;
  assign out0_V_TVALID = y_valid;

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      have <= 1'b0;
      mode <= 0;
      fold <= 0;
      word <= 0;
{reset}    end else begin
      if (!have && in1_V_TVALID) begin
        have <= 1'b1;
        mode <= next;
{take}      end
      if (take) begin
        fold <= (fold == {fw}'d{last_fold}) ? {{FW{{1'b0}}}} : fold + 1'b1;
        word <= (word == {nw}'d{last_word}) ? {{NW{{1'b0}}}} : word + 1'b1;
        if (word == {nw}'d{last_word}) have <= 1'b0;
      end
      if (advance) begin
{pipe}      end
    end
  end
{reads}
  genvar i;
  generate
    for (i = 0; i < PE; i = i + 1) begin : g_pe
      wire [IW-1:0] x = in0_V_TDATA[i*IW +: IW];
      wire signed [XW-1:0] xs = {xs};
{lane_decl}      reg [OW-1:0] y;
      always @(posedge ap_clk) begin
        if (advance) begin
{lane_stage1}        end
      end
{lane_comb}      always @(posedge ap_clk) begin
        if (advance) begin
{output}        end
      end
      assign out0_V_TDATA[i*OW +: OW] = y;
    end
  endgenerate
{pad}endmodule
"""


def _twos(value: int, width: int) -> str:
    return f"{width}'d{value & ((1 << width) - 1)}"


def _resize(signal: str, width: int, out: int) -> str:
    """A signed ``width``-bit signal as ``out`` bits, sign-extended or truncated (every mode's results lie in
    the output type, so either keeps the value)."""
    if width >= out:
        return f"{signal}[{out - 1}:0]"
    return f"{{{{{out - width}{{{signal}[{width - 1}]}}}}, {signal}}}"


def _word(values: list[int], width: int) -> int:
    """Fields of ``width`` bits (two's complement), value 0 in the lowest bits."""
    return sum((v & ((1 << width) - 1)) << (i * width) for i, v in enumerate(values))


def _rom(name: str, width: int, values: dict[int, int], ew: int) -> str:
    """A constant table as a function of its address: a case statement, which synthesis maps to LUT ROMs (a
    dynamic part-select of one wide constant would be a shifter as wide as the table)."""
    mask = (1 << width) - 1
    body = "".join(f"      {e}: {name} = {width}'h{v & mask:x};\n" for e, v in sorted(values.items()))
    return (f"  function [{width}-1:0] {name};\n    input [{ew}-1:0] e;\n    case (e)\n{body}"
            f"      default: {name} = {width}'h0;\n    endcase\n  endfunction\n")


def _case(select: str, labels: dict[int, list[int]], arms: dict[int, str], default: str) -> str:
    """A lane's ``case (select)``: for each value, its labels and its arm (an assignment); else ``default``."""
    body = "".join(f"            {', '.join(map(str, labels[v]))}: {arms[v]}\n" for v in labels)
    return f"          case ({select})\n{body}            default: {default}\n          endcase\n"


class _Frame:
    """What a frame's token sets: registers of values of its mode ``next`` (each a LUT ROM of the mode), and the
    copies of frame values that pipeline stage 1 (compare, multiply) and 2 (output) see."""

    def __init__(self, n_modes: int, deep: bool):
        self.n_modes, self.deep = n_modes, deep
        self.decl: list[str] = []
        self.take: list[str] = []
        self.staged: dict[str, tuple[int, str]] = {}  # copy -> (bits, source)

    def register(self, name: str, values: list[int | None]) -> str:
        """A register set with the token to ``values[next]`` (None: any)."""
        bits = bits_for(max(v for v in values if v is not None) + 1)
        self.decl.append(_rom(f"{name}_of", bits, {k: v for k, v in enumerate(values) if v is not None},
                              bits_for(self.n_modes)) + f"  reg [{bits}-1:0] {name};\n")
        self.take.append(f"        {name} <= {name}_of(next);\n")
        return name

    def at(self, sig: str, bits: int, stage: int) -> str:
        """``sig``, a frame value or a value of the word at the table read, as ``stage`` sees it."""
        chain = (["a_"] if self.deep else []) + ["p_"]
        seen = sig
        for p in chain[:len(chain) - (2 - stage)]:
            self.staged.setdefault(p + sig, (bits, seen))
            seen = p + sig
        return seen

    def select(self, name: str, values: list[int | None], stage: int) -> tuple[str | None, dict[int, list[int]]]:
        """``stage``'s choice among the distinct ``values`` (one per mode, None where any will do): the select and
        each value's case labels (no select: one value). The mode itself selects when each value has one mode or
        the modes are few (a LUT decodes the labels, shared by the lanes), else a register set with the token."""
        used = {k: v for k, v in enumerate(values) if v is not None}
        distinct = sorted(set(used.values()))
        if len(distinct) == 1:
            return None, {}
        if len(used) == len(distinct) or self.n_modes <= LABEL_MODES:
            labels = {v: [k for k, u in used.items() if u == v] for v in distinct}
            return self.at("mode", bits_for(self.n_modes), stage), labels
        return self.at(self.register(name, values), bits_for(len(distinct)), stage), {v: [v] for v in distinct}


class ModalActivation_rtl(SingleFileRTL, ModalActivation, RTLBackend):
    """ModalActivation as a pipelined Verilog module (see the module docstring)."""

    def get_nodeattr_types(self):
        attrs = dict(ModalActivation.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0)), ("in1_V", self.token_bits())]
        return intf

    def _token_verilog(self, fr: _Frame) -> None:
        """The frame's function ``next`` from the token and, with channel groups, the keep bits: each lane's of
        the word (``kw``), a multiplexer of the keep bits by the word in the pixel."""
        ng, cg, pe = self.n_groups(), self.get_nodeattr("channelGroup"), self.get_nodeattr("PE")
        if not ng:
            fr.decl.append("  wire [MB-1:0] next = in1_V_TDATA[MB-1:0];\n")
            return
        t = MODE_TOKEN_BITS
        fr.decl.append(f"  reg [{ng}-1:0] keep;  // group g's keep bit\n  reg [{bits_for(ng + 1)}-1:0] kept;\n"
                       f"  integer g;\n  always @* begin\n    kept = 0;\n    for (g = 0; g < {ng}; g = g + 1)\n"
                       f"      kept = kept + in1_V_TDATA[{t} + g];\n  end\n"
                       f"  // the frame's function: mode m keeping n groups is modes[m * {ng} + max(n, 1) - 1]\n"
                       f"  wire [MB-1:0] next = in1_V_TDATA[{t - 1}:0] * {ng} + (kept == 0 ? 0 : kept - 1);\n")
        fr.take.append(f"        keep <= in1_V_TDATA[{t} +: {ng}];\n")
        cf = self.get_nodeattr("NumChannels") // pe
        fr.decl.append(f"  // lane i of word f holds channel f*PE + i, of group (f*PE + i) / {cg}\n")
        vectors: dict[tuple[int, ...], str] = {}  # a lane's groups by word -> its keep bits by word
        bit = []
        for i in range(pe):
            groups = tuple((f * pe + i) // cg for f in range(cf))
            if groups not in vectors:
                vectors[groups] = f"kv{len(vectors)}"
                fr.decl.append(f"  wire [{cf}-1:0] {vectors[groups]} = "
                               f"{{{', '.join(f'keep[{g}]' for g in groups[::-1])}}};\n")
            bit.append(f"{vectors[groups]}[fold]" if cf > 1 else f"keep[{groups[0]}]")
        fr.decl.append(f"  wire [PE-1:0] kw = {{{', '.join(bit[::-1])}}};\n")

    def _tables_verilog(self, fr: _Frame, tables: list[Table]) -> tuple[str, str]:
        """The tables (constants, memories) and, in a pipeline with a table stage, their synchronous reads."""
        banks, pe, text, reads = self.banks(), self.get_nodeattr("PE"), "", ""
        local = {}  # a bank's address bits of the frame's mode: the mode itself if the bank's modes come first
        for b, bank in enumerate(banks):
            n = len(bank.modes)
            if n > 1:
                local[b] = (f"mode[{bits_for(n) - 1}:0]" if bank.modes == tuple(range(n)) else fr.register(
                    f"lb{b}", [bank.modes.index(k) if k in bank.modes else None for k in range(fr.n_modes)]))
        for t in tables:
            width = pe * t.width
            packed = {a: _word(list(v), t.width) for a, v in t.words.items()}
            addr = ", ".join(([local[t.bank]] if t.mode_bits else []) + (["fold"] if t.fold_bits else []))
            if not addr:
                text += f"  wire [{width}-1:0] {t.name}_w = {width}'h{packed[0]:x};\n"
                continue
            # a memory with initial contents: a case statement of the same table swung 2.5x in Yosys's LUTs with
            # the order of unrelated declarations (ABC), this form within 4 %
            style = '(* rom_style = "block" *) ' if t.block else ""
            init = "".join(f"    {t.name}_rom[{a}] = {width}'h{v:x};\n" for a, v in sorted(packed.items()))
            text += f"  {style}reg [{width}-1:0] {t.name}_rom [0:{t.depth}-1];\n  initial begin\n{init}  end\n"
            if fr.deep:  # read with the word's take: a stage ahead of the compare and the multiplier
                text += f"  reg [{width}-1:0] {t.name}_w;\n"
                reads += f"  always @(posedge ap_clk) if (advance) {t.name}_w <= {t.name}_rom[{{{addr}}}];\n"
            else:
                text += f"  wire [{width}-1:0] {t.name}_w = {t.name}_rom[{{{addr}}}];\n"
        return text, reads

    def verilog(self, top: str | None = None) -> str:
        """The module's Verilog (plain Verilog-2005: Verilator and Yosys read it)."""
        self.require_valid()
        fns = self.mode_functions()
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        C, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        w, ow, cf = self.widths(), odt.bitwidth(), C // pe
        words = int(np.prod(self.get_folded_input_shape()[:-1]))
        banks, (units, unit_of), tables = self.banks(), self.units(), self.tables()
        fr = _Frame(len(fns), any(t.block for t in tables))
        self._token_verilog(fr)
        text, reads = self._tables_verilog(fr, tables)
        xa = "x0" if fr.deep else "xs"  # the input word as the compares and the multiplier see it

        # -- the lanes: stage 1 compares and multiplies, stage 2 selects the frame's unit into y
        decl, stage1, comb = "", f"          x1 <= {xa};\n", ""
        if fr.deep:
            decl += "      reg signed [XW-1:0] x0;\n      always @(posedge ap_clk) if (advance) x0 <= xs;\n"
        decl += "      reg signed [XW-1:0] x1;\n"
        thr = [b for b, bank in enumerate(banks) if bank.kind == "thresholds"]
        if thr:
            decl += "      reg [CTW-1:0] cnt1;\n"
            for b in thr:
                tw, n = banks[b].bits, banks[b].steps
                decl += (f"      wire [{n * tw}-1:0] tr{b} = thr{b}_w[i*{n * tw} +: {n * tw}];\n"
                         f"      wire signed [{tw}-1:0] xm{b} = {{{xa}[{tw - 2}], {xa}[{tw - 2}:0]}};\n"
                         f"      reg [{bits_for(n + 1)}-1:0] cb{b};\n      integer jb{b};\n")
                comb += (f"      always @* begin\n        cb{b} = 0;\n"
                         f"        for (jb{b} = 0; jb{b} < {n}; jb{b} = jb{b} + 1)\n"
                         f"          cb{b} = cb{b} + (xm{b} >= $signed(tr{b}[jb{b}*{tw} +: {tw}]));\n"
                         "      end\n")
            bank_of = {k: thr.index(b) for b in thr for k in banks[b].modes}
            sel, labels = fr.select("tsel", [bank_of.get(k) for k in range(len(fns))], 1)
            stage1 += (f"          cnt1 <= cb{thr[0]};\n" if sel is None else
                       _case(sel, labels, {v: f"cnt1 <= cb{thr[v]};" for v in labels}, "cnt1 <= {CTW{1'b0}};"))
        if "requant" in self._kinds():
            decl += "      reg signed [PW-1:0] p1;\n      reg signed [BW-1:0] b1;\n"
            stage1 += f"          p1 <= {xa} * $signed(mul_w[i*MW +: MW]);\n          b1 <= bias_w[i*BW +: BW];\n"
            comb += "      wire signed [SW-1:0] sum = {{(SW-PW){p1[PW-1]}}, p1} + {{(SW-BW){b1[BW-1]}}, b1};\n"
        arms = {}
        for u, key in enumerate(units):
            if key[0] == "bypass":
                arms[u] = f"y <= {_resize('x1', w['xw'], ow)};"
            elif key[0] == "thresholds":
                aw = max(w["ctw"] + 1, signed_bits([key[1]])) + 1
                act = verilog_literal(aw, key[1])
                comb += f"      wire signed [{aw}-1:0] t{u} = $signed({{1'b0, cnt1}}) + {act};\n"
                arms[u] = f"y <= {_resize(f't{u}', aw, ow)};"
            else:
                _, shift, lo, hi = key
                lo, hi = verilog_literal(w["sw"], lo), verilog_literal(w["sw"], hi)
                comb += (f"      wire signed [SW-1:0] q{u} = sum >>> {shift};\n"
                         f"      wire signed [SW-1:0] r{u} = (q{u} < {lo}) ? {lo} : ((q{u} > {hi}) ? {hi} : q{u});\n")
                arms[u] = f"y <= {_resize(f'r{u}', w['sw'], ow)};"
        sel, labels = fr.select("usel", unit_of, 2)
        output = f"          {arms[0]}\n" if sel is None else _case(sel, labels, arms, "y <= {OW{1'b0}};")
        if self.n_groups():
            output = (f"          if (!{fr.at('kw', pe, 2)}[i]) y <= {{OW{{1'b0}}}};  // a dropped group's channel\n"
                      f"          else {output.lstrip()}")
        valids = ["a_valid"] * fr.deep + ["p_valid", "y_valid"]
        pipe = "".join(f"        {v} <= {u};\n" for v, u in zip(valids, ["take"] + valids))
        pipe += "".join(f"        {r} <= {src};\n" for r, (_, src) in fr.staged.items())
        staged = "".join(f"  reg [{bits}-1:0] {r};\n" for r, (bits, _) in fr.staged.items())

        summary = "".join(f"//   mode {k}: {f.kind}" + (
            f", {f.steps} thresholds, act_val {f.act_val}" if f.kind == "thresholds" else
            f", >> {f.shift}, clip [{f.lo}, {f.hi}]" if f.kind == "requant" else "") + "\n" for k, f in enumerate(fns))
        summary += "".join(f"// bank {b}: modes {list(bank.modes)}, " + (
            f"{bank.steps} thresholds at {bank.bits} bits\n" if bank.kind == "thresholds" else "the multiplier\n")
            for b, bank in enumerate(banks))
        ow_pad, ow_raw = self.get_outstream_width_padded(), ow * pe
        pad = (f"  assign out0_V_TDATA[{ow_pad}-1:{ow_raw}] = {{{ow_pad - ow_raw}{{1'b0}}}};\n"
               if ow_pad > ow_raw else "")
        return _V.format(
            top=top or self.get_verilog_top_module_name(), channels=C, pe=pe, idt=idt.name, odt=odt.name,
            summary=summary, stages=("read the tables | " if fr.deep else "") +
            "compare and multiply | select the mode's result", iw_pad=self.get_instream_width_padded(0),
            tok_bits=self.token_bits(), ow_pad=ow_pad, mb=bits_for(len(fns)), fw=bits_for(cf), nw=bits_for(words),
            iw=idt.bitwidth(), ow=ow, valids=", ".join(valids), frame="".join(fr.decl) + staged, tables=text,
            reset="".join(f"      {v} <= 1'b0;\n" for v in valids), take="".join(fr.take), last_fold=cf - 1,
            last_word=words - 1, pipe=pipe, reads=reads, xs="x" if idt.signed() else "{1'b0, x}", lane_decl=decl,
            lane_stage1=stage1, lane_comb=comb, output=output, pad=pad, **w)

    def execute_node(self, context, graph):
        ModalActivation.execute_node(self, context, graph)


_rtl.register_custom_op(ModalActivation_rtl)
_rtl.ModalActivation_rtl = ModalActivation_rtl

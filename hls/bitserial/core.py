"""The bit-serial runtime-precision MVU as a parameter set: memory images, wrapper, cycle model, reference.

Everything here is plain Python and numpy (no FINN import): the synthesis flow, the Verilator harness and
the FINN custom op describe an instance by one ``BitSerialParams``. The arithmetic is BISMO's (Umuroglu et
al., FPL 2018): a b_w x b_a product is b_w * b_a binary dot products (AND + popcount) of bit-planes,
shifted and added, the MSB planes of two's complement operands subtracted, so cycles follow b_w * b_a.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from ...runtime.intgate import keep_mask
from ..lutmvu.core import int_range, low_bits, worst_case_acc_bits
from ..rtl import ADDTREE, BUF2, shared_sources

CORE_MODULE = "bsmvu"
MAX_MODES = 4  # a 2-bit mode token
RAM_STYLES = {"auto": 0, "distributed": 1, "block": 2}
ACT_RAM_STYLES = {"distributed": 0, "block": 1}  # the activation buffer's: the RTL's ABUF_BLOCK
# Deeper weight memories go to block RAM unless the user says otherwise: a weight word is PE*WBP*SIMD
# bits wide, a LUT ROM costs a LUT6 per bit and 64 words.
LUT_WMEM_MAX_DEPTH = 32
# Threshold memories (one per PE, ACCU_WIDTH + 1 bits) deeper than a LUT6 ROM are block RAM
LUT_TMEM_MAX_DEPTH = 64
# Cycles from a vector's last compute step to its last output word: read, popcount, T, A, output register
# (thresholds add the search: one cycle per output bit and the first read).
PIPELINE_LATENCY = 5
MODE_TOKEN_BITS = 8  # the mode stream's TDATA (the mode index in its low 2 bits), without channel groups


def mode_token_bits(groups: int) -> int:
    """TDATA of a mode token: the mode byte, then a keep bit per channel group (group g at bit 8 + g), whole
    bytes; what MVAU_bitserial, ModalActivation and ModeFork read and write."""
    return MODE_TOKEN_BITS + (groups + 7) // 8 * 8
CHANNEL_SKIPS = {"": 0, "out": 1, "in": 2}  # which channels come in groups that a frame may drop


def rtl_dir() -> Path:
    return Path(str(resources.files("fracskip.hls.bitserial") / "rtl"))


def rtl_sources() -> list[Path]:
    """The Verilog files of the unit, one module each."""
    return ([rtl_dir() / f for f in ("bsmvu.v", "bsmvu_popcount.v", "bsmvu_popcount_tree.v")]
            + shared_sources(ADDTREE, BUF2))


def signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding [lo, hi]."""
    return max(-lo - 1 if lo < 0 else 0, hi).bit_length() + 1


@dataclass(frozen=True)
class Precision:
    """One entry of the bit menu: operand widths and (optionally) the activation's output width.

    ``out_bits`` 0: no activation, the output is the accumulator. ``act_val``: FINN's ActVal, the output
    is act_val + number of thresholds reached.
    """

    wbits: int
    abits: int
    out_bits: int = 0
    act_val: int = 0

    @property
    def bitops(self) -> int:
        return self.wbits * self.abits


@dataclass(frozen=True)
class BitSerialParams:
    """One instance of the unit; shape and folding names follow FINN's MVAU attributes.

    ``wbp``: weight bit-planes per cycle (the bit-parallelism knob: PE * SIMD * WBP binary MACs per
    cycle). ``modes``: the bit menu, indexed by the mode token. ``n_vectors``: vectors per frame (one
    token per frame). ``mode_stream`` False: a fixed-precision unit (one mode, no token stream).

    Channel groups (LC-Net's channel skipping): ``channel_skip`` "out", the MH output channels come in groups
    of ``channel_group`` (a multiple of PE), and a frame's dropped groups give zeros in a cycle per row fold;
    "in", the input channels (``in_channels`` per kernel position, MW a multiple: a sliding window's vector)
    come in groups of ``channel_group`` (a multiple of SIMD), and a frame's dropped groups are neither loaded
    nor computed (they count as zeros). A frame's token then holds its keep bits beside its mode
    (``mode_token``).
    """

    mw: int
    mh: int
    pe: int
    simd: int
    wbp: int
    modes: tuple[Precision, ...]
    weight_signed: bool = True
    act_signed: bool = False
    n_vectors: int = 1
    mode_stream: bool = True
    ram_style: str = "auto"  # weight memory: auto | distributed | block
    act_ram_style: str = "distributed"  # the activation buffer's memory: distributed | block
    in_simd: int = 0  # activations per input word, dividing SIMD (0: SIMD); the unit gathers SIMD/in_simd words
    acc_bits: int = field(default=0)  # 0: FINN's datatype bound over every mode (see acc_bits_for)
    channel_skip: str = ""  # "" none, "out" output channel groups, "in" input channel groups
    channel_group: int = 0  # channels per group
    in_channels: int = 0  # "in": channels per kernel position (0: MW)

    def __post_init__(self) -> None:
        problems = []
        for name in ("mw", "mh", "pe", "simd", "wbp", "n_vectors"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if not 1 <= len(self.modes) <= MAX_MODES:
            problems.append(f"{len(self.modes)} modes: the menu holds 1 to {MAX_MODES}")
        if not problems:
            if self.mw % self.simd:
                problems.append(f"MW={self.mw} is not a multiple of SIMD={self.simd}")
            if self.mh % self.pe:
                problems.append(f"MH={self.mh} is not a multiple of PE={self.pe}")
            if self.in_simd < 0 or self.simd % self.word_simd:
                problems.append(f"in_simd={self.in_simd} does not divide SIMD={self.simd}")
        for k, m in enumerate(self.modes):
            if not (1 <= m.wbits <= 32 and 1 <= m.abits <= 32):
                problems.append(f"mode {k}: widths must be 1..32 bits")
            if (self.weight_signed and m.wbits < 2) or (self.act_signed and m.abits < 2):
                problems.append(f"mode {k}: signed operands need at least 2 bits")
            if not 0 <= m.out_bits <= 16:
                problems.append(f"mode {k}: out_bits={m.out_bits} must be 0..16")
        if self.modes and self.wbp > max(m.wbits for m in self.modes):
            problems.append(f"WBP={self.wbp} exceeds the widest mode's weight bits: planes beyond them would idle in "
                            "every mode")
        if len({m.out_bits > 0 for m in self.modes}) > 1:
            problems.append("either every mode has an activation (out_bits > 0) or none")
        if not self.mode_stream and len(self.modes) != 1:
            problems.append("a unit without mode stream has exactly one mode")
        if self.ram_style not in RAM_STYLES:
            problems.append(f"ram_style={self.ram_style!r} is not one of {sorted(RAM_STYLES)}")
        if self.act_ram_style not in ACT_RAM_STYLES:
            problems.append(f"act_ram_style={self.act_ram_style!r} is not one of {sorted(ACT_RAM_STYLES)}")
        problems += self._channel_problems() if not problems else []
        if problems:
            raise FracskipError("invalid bit-serial MVU parameters: " + "; ".join(problems))
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", self.acc_bits_for())
        if self.wmem >= 1 << 16 or self.tmem >= 1 << 16:
            raise FracskipError("invalid bit-serial MVU parameters: a memory of 2^16 words or more")

    def _channel_problems(self) -> list[str]:
        skip, g = self.channel_skip, self.channel_group
        if skip not in CHANNEL_SKIPS:
            return [f"channel_skip={skip!r} is not one of {sorted(CHANNEL_SKIPS)}"]
        if not skip:
            return [] if g == 0 else ["channel_group needs channel_skip 'out' or 'in'"]
        if not self.mode_stream:
            return ["channel groups come with the mode token: a unit without mode stream has none"]
        if skip == "out":
            bad = g < 1 or g % self.pe or self.mh % g
            out = [f"channel_group={g} must be a multiple of PE={self.pe} dividing MH={self.mh}"] if bad else []
            if self.has_act:
                out.append("output channel groups need a unit without activation (the zeros are accumulators)")
            return out
        c = self.kernel_channels
        if g < 1 or g % self.simd or c % g or self.mw % c:
            return [f"channel_group={g} must be a multiple of SIMD={self.simd} dividing the {c} input channels, "
                    f"which divide MW={self.mw}"]
        return []

    # ------------------------------------------------------------------ shape
    @property
    def n_groups(self) -> int:
        """Channel groups a frame keeps or drops (0 without channel skipping)."""
        if not self.channel_skip:
            return 0
        return (self.mh if self.channel_skip == "out" else self.kernel_channels) // self.channel_group

    @property
    def kernel_channels(self) -> int:
        """Input channels per kernel position (input channel groups repeat with them along MW)."""
        return self.in_channels or self.mw

    @property
    def folds_per_group(self) -> int:
        """Row folds (output groups) or column folds of a kernel position (input groups) per channel group."""
        if not self.n_groups:
            return 1
        return self.channel_group // (self.pe if self.channel_skip == "out" else self.simd)

    @property
    def mode_token_bits(self) -> int:
        """TDATA of the mode stream: the mode in the low byte, the keep bits (group g at bit 8 + g) after it."""
        return mode_token_bits(self.n_groups)

    def mode_token(self, k: int, keep: int | None = None) -> int:
        """The token of a frame of mode ``k`` keeping the groups whose bits ``keep`` sets (default: all)."""
        full = (1 << self.n_groups) - 1
        keep = full if keep is None else keep
        if self.n_groups and not 0 < keep <= full:
            raise FracskipError(f"keep bits {keep:#x}: at least one of the {self.n_groups} groups, none beyond")
        return k | ((keep & full) << MODE_TOKEN_BITS)

    def _kept(self, keep: int | None, count: int, per_group: int) -> int:
        """How many of ``count`` folds (``per_group`` of them per group, repeating) a frame keeps."""
        if keep is None or not self.n_groups:
            return count
        return sum(self._fold_kept(keep, f, per_group) for f in range(count))

    def _fold_kept(self, keep: int, f: int, per_group: int) -> bool:
        """Whether fold ``f`` (``per_group`` folds per group, repeating) is of a group ``keep`` keeps."""
        return bool((keep >> ((f % (self.n_groups * per_group)) // per_group)) & 1)

    @property
    def sf(self) -> int:
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        return self.mh // self.pe

    @property
    def has_act(self) -> bool:
        return self.modes[0].out_bits > 0

    @property
    def act_width(self) -> int:
        """Input element field: the widest mode's activation."""
        return max(m.abits for m in self.modes)

    def mode_acc_bits(self, k: int) -> int:
        """FINN's datatype-only accumulator width of mode k (MinimizeAccumulatorWidth, datatype_only)."""
        m = self.modes[k]
        return worst_case_acc_bits(self.mw, m.wbits, self.weight_signed, m.abits, self.act_signed)

    def acc_bits_for(self) -> int:
        """The unit's accumulator: two's complement, wide enough for every mode's worst case."""
        bits = 0
        for m in self.modes:
            wl, wh = int_range(m.wbits, self.weight_signed)
            al, ah = int_range(m.abits, self.act_signed)
            prods = (wl * al, wl * ah, wh * al, wh * ah)
            bits = max(bits, signed_bits(self.mw * min(prods), self.mw * max(prods)))
        return bits

    def out_range(self) -> tuple[int, int]:
        """Smallest and largest output value over every mode."""
        if not self.has_act:
            return -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1
        lo = min(m.act_val for m in self.modes)
        hi = max(m.act_val + (1 << m.out_bits) - 1 for m in self.modes)
        return lo, hi

    @property
    def out_signed(self) -> bool:
        return self.out_range()[0] < 0

    @property
    def out_bits_per_element(self) -> int:
        if not self.has_act:
            return self.acc_bits
        lo, hi = self.out_range()
        return signed_bits(lo, hi) if lo < 0 else max(1, hi.bit_length())

    @property
    def word_simd(self) -> int:
        """Activations per input word: in_simd, or SIMD."""
        return self.in_simd or self.simd

    @property
    def in_words(self) -> int:
        """Input words per SIMD word (the unit gathers them: one per cycle)."""
        return self.simd // self.word_simd

    @property
    def in_width(self) -> int:
        return self.word_simd * self.act_width

    @property
    def out_width(self) -> int:
        return self.pe * self.out_bits_per_element

    def groups(self, k: int) -> int:
        """Weight plane groups of mode k (WBP planes each)."""
        return -(-self.modes[k].wbits // self.wbp)

    def stored_wbits(self, k: int) -> int:
        """Mode k's weight bits as the memory holds them: whole plane groups. Where WBP does not divide the
        weight bits the weights are sign- (or zero-) extended: the same integers, so the RTL is unchanged. A
        WBP wider than a narrow mode's weights leaves lanes idle in that mode but serves the wider modes."""
        return self.groups(k) * self.wbp

    @property
    def wmem_width(self) -> int:
        return self.pe * self.wbp * self.simd

    def wbase(self, k: int) -> int:
        return sum(self.nf * self.groups(j) * self.sf for j in range(k))

    @property
    def wmem(self) -> int:
        return self.wbase(len(self.modes))

    @property
    def resolved_ram_style(self) -> str:
        """``auto`` made explicit, so that synthesis and the estimate agree on where the weights live."""
        if self.ram_style != "auto":
            return self.ram_style
        return "distributed" if self.wmem <= LUT_WMEM_MAX_DEPTH else "block"

    def tbase(self, k: int) -> int:
        return sum(self.nf << self.modes[j].out_bits for j in range(k)) if self.has_act else 0

    @property
    def tmem(self) -> int:
        return max(1, self.tbase(len(self.modes)))

    # ------------------------------------------------------------------ cycle model
    def kept_folds(self, keep: int | None = None) -> int:
        """Column folds a frame computes: all but those of dropped input channel groups."""
        if self.channel_skip != "in":
            return self.sf
        return self._kept(keep, self.sf, self.folds_per_group)

    def kept_rows(self, keep: int | None = None) -> int:
        """Row folds a frame computes: all but those of dropped output channel groups."""
        if self.channel_skip != "out":
            return self.nf
        return self._kept(keep, self.nf, self.folds_per_group)

    def compute_cycles(self, k: int, keep: int | None = None) -> int:
        """Cycles of one row fold's dot products in mode k: b_a * ceil(b_w / WBP) * (kept) SF."""
        return self.modes[k].abits * self.groups(k) * self.kept_folds(keep)

    def row_cycles(self, k: int, keep: int | None = None) -> int:
        """Cycles per output word in mode k: compute, or the threshold search (one cycle per output bit)
        when that is longer (both run concurrently)."""
        return max(self.compute_cycles(k, keep), self.modes[k].out_bits)

    def vector_cycles(self, k: int, keep: int | None = None) -> int:
        """A dropped row fold (output channel groups) takes one cycle."""
        rows = self.kept_rows(keep)
        return rows * self.row_cycles(k, keep) + (self.nf - rows)

    def frame_cycles(self, k: int, keep: int | None = None) -> int:
        """Cycles per frame of mode k (keeping ``keep``'s channel groups) at full rate (steady state): the
        compute's, or the loader's where gathering narrow input words makes it the slower of the two."""
        return self.n_vectors * max(self.vector_cycles(k, keep), self.load_cycles(k, keep))

    def load_cycles(self, k: int, keep: int | None = None) -> int:
        """Cycles to load one vector of mode k into the activation buffer: per SIMD word, its input words (one
        per cycle) gathered while the word before is written, one bit-plane per cycle (one cycle for a word of
        dropped input channels)."""
        folds = self.kept_folds(keep)
        return folds * max(self.in_words, self.modes[k].abits) + (self.sf - folds) * self.in_words

    def tail_latency(self, k: int) -> int:
        """Cycles from the last compute step of a vector of mode k to its last output word."""
        return PIPELINE_LATENCY + (self.modes[k].out_bits + 1 if self.has_act else 0)

    def cycles(self, modes: Sequence[int], keeps: Sequence[int | None] | None = None) -> int:
        """The unit's cycle model for frames of the given modes, from the first input word (or token)
        taken to the last output word given, at full rate.

        Two stages over a two-bank activation buffer: the loader fills a bank (load_cycles, plus one cycle
        for each frame's mode token after the first) once the compute has freed it; the compute takes a
        vector (vector_cycles) once it is loaded. Within a mode the loader is never the bottleneck
        (SF*b_a <= NF*b_a*b_w/WBP*SF) unless it gathers more input words per SIMD word than that; after a switch
        from a cheap to a dear mode it can be. ``keeps``: each
        frame's keep bits (channel groups), all kept by default.
        """
        keeps = [None] * len(modes) if keeps is None else list(keeps)
        vecs = [(k, c) for k, c in zip(modes, keeps) for _ in range(self.n_vectors)]
        if not vecs:
            return 0
        load_end: list[int] = []
        comp_end: list[int] = []
        t_in = free = 0  # gathering: the next input word's first cycle; the cycle the stage takes a word
        for v, (k, c) in enumerate(vecs):
            bank = comp_end[v - 2] if v >= 2 else 0  # the bank this vector fills is free
            if self.in_words == 1:
                start = max(load_end[v - 1] if v else 0, bank)
                if v and v % self.n_vectors == 0:
                    start += 1  # the next frame's mode token
                load_end.append(start + self.load_cycles(k, c))
            else:  # word by word: gathering runs ahead of the stage by one SIMD word
                for planes in self._word_planes(k, c):
                    full = t_in + self.in_words  # the word's last input word was taken the cycle before
                    t_in = move = max(full, free)  # the stage takes it; the next word's gathering begins
                    free = max(move + 1, bank) + planes - 1  # its last plane written: the stage takes the next
                load_end.append(free)
                if (v + 1) % self.n_vectors == 0:
                    t_in = max(t_in, full + 1)  # the next frame's mode token
            comp_end.append(max(comp_end[v - 1] if v else 0, load_end[v]) + self.vector_cycles(k, c))
        return comp_end[-1] + self.tail_latency(vecs[-1][0])

    def _word_planes(self, k: int, keep: int | None) -> list[int]:
        """Cycles the loader spends on each SIMD word of a vector: its bit-planes, one for dropped channels."""
        if self.channel_skip != "in" or keep is None:
            return [self.modes[k].abits] * self.sf
        return [self.modes[k].abits if self._fold_kept(keep, sf, self.folds_per_group) else 1 for sf in range(self.sf)]

    @property
    def bitops_per_cycle(self) -> int:
        """Binary MACs per cycle: PE x SIMD x WBP (all busy in a mode whose weight bits WBP divides)."""
        return self.pe * self.simd * self.wbp

    # ------------------------------------------------------------------ Verilog
    def verilog_parameters(self, weight_file: str, thresh_prefix: str = "thresholds") -> dict[str, int | str]:
        def packed(values: Sequence[int], width: int) -> str:
            word = 0
            for k, v in enumerate(values):
                word |= (v & ((1 << width) - 1)) << (k * width)
            return f"{MAX_MODES * width}'h{word:x}"

        n = len(self.modes)
        return {
            "MW": self.mw, "MH": self.mh, "PE": self.pe, "SIMD": self.simd, "IN_SIMD": self.word_simd,
            "WBP": self.wbp, "N_MODES": n,
            "WBITS": packed([self.stored_wbits(k) for k in range(n)], 8),
            "ABITS": packed([m.abits for m in self.modes], 8),
            "OBITS": packed([m.out_bits for m in self.modes], 8),
            "ACT_VALS": packed([m.act_val for m in self.modes], 32),
            "WBASE": packed([self.wbase(k) for k in range(n)], 16),
            "TBASE": packed([self.tbase(k) for k in range(n)], 16),
            "WMEM": self.wmem, "TMEM": self.tmem,
            "WEIGHT_SIGNED": int(self.weight_signed), "ACTIVATION_SIGNED": int(self.act_signed),
            "ACTIVATION_WIDTH": self.act_width, "ACCU_WIDTH": self.acc_bits,
            "OUT_WIDTH": self.out_bits_per_element, "N_VEC": self.n_vectors,
            "MODE_STREAM": int(self.mode_stream), "RAM_STYLE": RAM_STYLES[self.resolved_ram_style],
            "TRAM_BLOCK": int(self.has_act and self.tmem > LUT_TMEM_MAX_DEPTH),
            "ABUF_BLOCK": ACT_RAM_STYLES[self.act_ram_style],
            "CSKIP": CHANNEL_SKIPS[self.channel_skip], "NG": max(1, self.n_groups),
            "GPF": self.folds_per_group,
            "CF": self.kernel_channels // self.simd if self.channel_skip == "in" else 1,
            "WEIGHT_FILE": weight_file, "THRESH_FILE": thresh_prefix,
        }


# ---------------------------------------------------------------------------------------------- images
def _check_ints(name: str, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    ai = np.rint(a).astype(np.int64)
    if not np.array_equal(ai, a):
        raise FracskipError(f"{name} must be integers (FINN's integer tensor, before any scaling)")
    if ai.size and (ai.min() < lo or ai.max() > hi):
        raise FracskipError(f"{name} span [{ai.min()}, {ai.max()}], outside the type's [{lo}, {hi}]")
    return ai


def weight_words(params: BitSerialParams, weights: Sequence[np.ndarray]) -> list[int]:
    """Weight memory image: every mode's (MW, MH) matrix (ONNX/FINN orientation, y = x @ W), as bit-planes.

    Mode k, row fold nf, plane group g (MSB group first), column fold sf: word
    wbase(k) + (nf*G_k + g)*SF + sf; bit (p*WBP + i)*SIMD + s = bit (G_k-1-g)*WBP + i of
    W_k[sf*SIMD + s, nf*PE + p] (two's complement over G_k*WBP bits: ``stored_wbits``).
    """
    p = params
    if len(weights) != len(p.modes):
        raise FracskipError(f"{len(weights)} weight matrices for {len(p.modes)} modes")
    words: list[int] = []
    for k, (m, w) in enumerate(zip(p.modes, weights)):
        w = np.asarray(w)
        if w.shape != (p.mw, p.mh):
            raise FracskipError(f"mode {k}: weights have shape {w.shape}, expected (MW, MH) = ({p.mw}, {p.mh})")
        wi = _check_ints(f"mode {k} weights", w, *int_range(m.wbits, p.weight_signed))
        wi &= (1 << p.stored_wbits(k)) - 1  # two's complement over whole plane groups
        # (MW, MH) -> [nf, sf, pe, simd]
        tiles = wi.reshape(p.sf, p.simd, p.nf, p.pe).transpose(2, 0, 3, 1)
        g_count = p.groups(k)
        for nf in range(p.nf):
            for g in range(g_count):
                planes = [(g_count - 1 - g) * p.wbp + i for i in range(p.wbp)]
                for sf in range(p.sf):
                    # bits[pe, i, simd] -> flat index (pe*WBP + i)*SIMD + s
                    bits = np.stack([(tiles[nf, sf] >> b) & 1 for b in planes], axis=1)
                    flat = bits.reshape(-1)
                    words.append(int(sum(int(1) << int(j) for j in np.flatnonzero(flat))))
    return words


def threshold_words(params: BitSerialParams, thresholds: Sequence[np.ndarray]) -> list[list[int]]:
    """Per PE, the threshold memory image (ACCU_WIDTH + 1 bits, two's complement).

    ``thresholds[k]``: (MH or 1, N_k) as in FINN's MVAU, N_k < 2^out_bits. ``y >= t`` counts, so integer
    accumulators compare with ceil(t); clipped to [acc min, acc max + 1] ("never"), sorted (the count
    does not depend on the order), padded with "never" to 2^out_bits entries per row.
    """
    p = params
    if not p.has_act:
        return [[0] for _ in range(p.pe)]
    if len(thresholds) != len(p.modes):
        raise FracskipError(f"{len(thresholds)} threshold tables for {len(p.modes)} modes")
    lo, hi = -(1 << (p.acc_bits - 1)), (1 << (p.acc_bits - 1)) - 1
    tw = p.acc_bits + 1
    out: list[list[int]] = [[] for _ in range(p.pe)]
    for k, (m, t) in enumerate(zip(p.modes, thresholds)):
        t = np.asarray(t, dtype=np.float64)
        slots = 1 << m.out_bits
        if t.ndim != 2 or t.shape[0] not in (1, p.mh) or t.shape[1] >= slots:
            raise FracskipError(f"mode {k}: thresholds have shape {t.shape}, expected ({p.mh} or 1, < {slots})")
        ti = np.sort(np.clip(np.ceil(t), lo, hi + 1).astype(np.int64), axis=1)
        ti = np.broadcast_to(ti, (p.mh, t.shape[1]))
        table = np.full((p.mh, slots), hi + 1, dtype=np.int64)
        table[:, : t.shape[1]] = ti
        for nf in range(p.nf):
            for pe in range(p.pe):
                out[pe] += [int(v) & ((1 << tw) - 1) for v in table[nf * p.pe + pe]]
    return out


def write_memory_files(params: BitSerialParams, weights: Sequence[np.ndarray],
                       thresholds: Sequence[np.ndarray] | None, weight_file: Path,
                       thresh_prefix: Path) -> None:
    """Write the $readmemh images: ``weight_file`` and ``<thresh_prefix>_peNN.dat`` (one per PE)."""
    digits = (params.wmem_width + 3) // 4
    Path(weight_file).write_text("".join(f"{w:0{digits}x}\n" for w in weight_words(params, weights)))
    tables = threshold_words(params, thresholds) if params.has_act else [[0]] * params.pe
    tdigits = (params.acc_bits + 1 + 3) // 4
    for pe, words in enumerate(tables):
        Path(f"{thresh_prefix}_pe{pe:02d}.dat").write_text("".join(f"{w:0{tdigits}x}\n" for w in words))


# ---------------------------------------------------------------------------------------------- reference
def reference(params: BitSerialParams, x: np.ndarray, modes: Sequence[int], weights: Sequence[np.ndarray],
              thresholds: Sequence[np.ndarray] | None = None,
              keeps: Sequence[int | None] | None = None) -> np.ndarray:
    """The unit's function (numpy): frame f of ``x`` (F, ..., MW) through mode ``modes[f]``.

    Mode k: y = x @ W_k, then, with an activation, act_val_k + #{i: y >= T_k[row, i]} (FINN's
    MultiThreshold). The FINN op's execute_node runs FINN's own code for the same function. ``keeps``: each
    frame's keep bits; the channels of a dropped group are zeros (output groups) or read as zeros (input).
    """
    out = []
    for f, k in enumerate(modes):
        if not 0 <= k < len(params.modes):
            raise FracskipError(f"frame {f}: mode {k} is not in the menu of {len(params.modes)} "
                                "(a skipped frame is not sent to the unit)")
        xf = mode_inputs(params, k, x[f])
        keep = None if keeps is None else keeps[f]
        if keep is not None and params.channel_skip == "in":  # the groups repeat at every kernel position
            xf = xf * np.tile(channel_keep(params, keep), params.mw // params.kernel_channels)
        acc = xf @ np.asarray(weights[k]).astype(np.int64)
        if keep is not None and params.channel_skip == "out":
            acc = acc * channel_keep(params, keep)
        if params.has_act:
            t = np.asarray(thresholds[k], dtype=np.float64)
            acc = (acc[..., None] >= t).sum(axis=-1) + params.modes[k].act_val
        out.append(acc)
    return np.stack(out)


def mode_inputs(params: BitSerialParams, k: int, x: np.ndarray) -> np.ndarray:
    """``x`` as mode ``k`` reads it: the low ``abits`` bits of each element (two's complement if signed), as the RTL
    takes a narrower mode's activations from the stream's field of the widest; in the mode's range, ``x`` itself."""
    return low_bits(x, params.modes[k].abits, params.act_signed)


def channel_keep(params: BitSerialParams, keep: int) -> np.ndarray:
    """0/1 per channel of the groups (output channels, or one kernel position's input channels)."""
    return keep_mask(keep, params.n_groups, params.channel_group)


# ---------------------------------------------------------------------------------------------- wrapper
def _byte_padded(bits: int) -> int:
    return (bits + 7) // 8 * 8


def wrapper_verilog(params: BitSerialParams, module: str, weight_file: str, thresh_prefix: str) -> str:
    """Verilog top with FINN's port names: ap_clk, ap_rst_n, in0_V_* (activations), in1_V_* (mode tokens,
    ``mode_token_bits`` of TDATA, only with a mode stream), out0_V_*; TDATA padded to whole bytes.

    The memory image paths are parameters (``WEIGHT_FILE``, ``THRESH_FILE`` prefix) defaulting to the given
    files, so that a stitcher can point an instance at copies, as FINN's memstream wrappers allow.
    """
    p = params
    in_pad, out_pad = _byte_padded(p.in_width), _byte_padded(p.out_width)
    pars = p.verilog_parameters(weight_file, thresh_prefix)
    body = ",\n".join(
        f"        .{k}({k})" if k in ("WEIGHT_FILE", "THRESH_FILE") else f"        .{k}({v})" for k, v in pars.items())
    out_assign = "core_out" if out_pad == p.out_width else f"{{{out_pad - p.out_width}'b0, core_out}}"
    ng = max(1, p.n_groups)
    if p.mode_stream:
        keep = f"in1_V_TDATA[{MODE_TOKEN_BITS} +: {ng}]" if p.n_groups else f"{ng}'b1"
        mode_ports = f"""    input  wire [{p.mode_token_bits - 1}:0] in1_V_TDATA,
    input  wire in1_V_TVALID,
    output wire in1_V_TREADY,
"""
        mode_conn = f"""        .s_mode_tdata({{{keep}, in1_V_TDATA[1:0]}}),
        .s_mode_tvalid(in1_V_TVALID),
        .s_mode_tready(in1_V_TREADY),"""
    else:
        mode_ports = ""
        mode_conn = f"""        .s_mode_tdata({ng + 2}'b0),
        .s_mode_tvalid(1'b0),
        .s_mode_tready(),"""
    return f"""// generated by fracskip.hls.bitserial: bit-serial runtime-precision MVAU with FINN's stream interface
/* verilator lint_off UNUSEDSIGNAL */
module {module} #(
    parameter WEIGHT_FILE = "{weight_file}",
    parameter THRESH_FILE = "{thresh_prefix}"
) (
    input  wire ap_clk,
    input  wire ap_rst_n,
    input  wire [{in_pad - 1}:0] in0_V_TDATA,
    input  wire in0_V_TVALID,
    output wire in0_V_TREADY,
{mode_ports}    output wire [{out_pad - 1}:0] out0_V_TDATA,
    output wire out0_V_TVALID,
    input  wire out0_V_TREADY
);
    wire [{p.out_width - 1}:0] core_out;
    {CORE_MODULE} #(
{body}
    ) core (
        .ap_clk(ap_clk),
        .ap_rst_n(ap_rst_n),
        .s_axis_tdata(in0_V_TDATA[{p.in_width - 1}:0]),
        .s_axis_tvalid(in0_V_TVALID),
        .s_axis_tready(in0_V_TREADY),
{mode_conn}
        .m_axis_tdata(core_out),
        .m_axis_tvalid(out0_V_TVALID),
        .m_axis_tready(out0_V_TREADY)
    );
    assign out0_V_TDATA = {out_assign};
endmodule
/* verilator lint_on UNUSEDSIGNAL */
"""


# ---------------------------------------------------------------------------------------------- packing
def pack_inputs(params: BitSerialParams, x: np.ndarray) -> list[int]:
    """Input stream words of frames ``x`` (F, ..., MW): in_simd (or SIMD) elements of act_width bits per word
    (FINN's MVAU folding: element s of word i is column i*in_simd + s), two's complement."""
    p = params
    n = p.word_simd
    xi = np.asarray(x).astype(np.int64).reshape(-1, n) & ((1 << p.act_width) - 1)
    shifts = [s * p.act_width for s in range(n)]
    return [sum(int(v) << sh for v, sh in zip(row, shifts)) for row in xi]


def unpack_outputs(params: BitSerialParams, words: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """Output stream words -> integer array of ``shape`` (..., MH): word nf holds rows nf*PE + p."""
    p = params
    ob = p.out_bits_per_element
    mask = (1 << ob) - 1
    vals = np.array([[(w >> (pe * ob)) & mask for pe in range(p.pe)] for w in words], dtype=np.int64)
    if p.out_signed:
        vals = np.where(vals >= 1 << (ob - 1), vals - (1 << ob), vals)
    return vals.reshape(shape)

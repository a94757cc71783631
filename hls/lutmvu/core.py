"""The LUT-based matrix-vector unit as a parameter set: its RTL sources, weight ROM image and wrapper.

Everything here is plain Python and numpy (no FINN import): the synthesis flow, the Verilator harness and
the FINN custom op all describe an instance by one ``LutMvuParams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from ..rtl import ADDTREE, BUF2, shared_sources

CORE_MODULE = "lutmvu"
ROM_STYLES = {"auto": 0, "distributed": 1, "block": 2}
# Deeper weight ROMs go to block RAM unless the user says otherwise (FINN's rule for embedded weights).
LUT_ROM_MAX_DEPTH = 128
# Cycles from taking an input word to offering the output word it completes (issue, fetch, read,
# multiply/reduce, accumulate; +1 for thresholds): n vectors take cycles(n) + latency.
PIPELINE_LATENCY = 4


def rtl_dir() -> Path:
    """Folder of the packaged Verilog sources."""
    return Path(str(resources.files("fracskip.hls.lutmvu") / "rtl"))


def rtl_sources() -> list[Path]:
    """The Verilog files of the unit: its own (the top and the multiplier) and the shared ones it instantiates."""
    return [rtl_dir() / "lutmvu.v", *shared_sources(ADDTREE, BUF2)]


@dataclass(frozen=True)
class LutMvuParams:
    """One instance of the unit; field names follow FINN's MVAU attributes."""

    mw: int
    mh: int
    pe: int
    simd: int
    weight_bits: int
    weight_signed: bool
    act_bits: int
    act_signed: bool
    acc_bits: int
    rom_style: str = "auto"  # auto | distributed | block (weights)
    acc_signed: bool = True  # how thresholds read the accumulator
    n_thresholds: int = 0  # per output row; 0: no activation, the output is the accumulator
    out_bits: int = 0  # output element width with thresholds
    act_val: int = 0  # FINN's ActVal: output = act_val + number of thresholds reached

    def __post_init__(self) -> None:
        problems = []
        for name in ("mw", "mh", "pe", "simd", "weight_bits", "act_bits", "acc_bits"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if not problems:
            if self.mw % self.simd:
                problems.append(f"MW={self.mw} is not a multiple of SIMD={self.simd}")
            if self.mh % self.pe:
                problems.append(f"MH={self.mh} is not a multiple of PE={self.pe}")
        if (self.weight_signed and self.weight_bits < 2) or (self.act_signed and self.act_bits < 2):
            problems.append("signed operands need at least 2 bits (bipolar is not supported)")
        if self.rom_style not in ROM_STYLES:
            problems.append(f"rom_style={self.rom_style!r} is not one of {sorted(ROM_STYLES)}")
        if self.n_thresholds and not 1 <= self.out_bits <= 32:
            problems.append(f"out_bits={self.out_bits}: with thresholds the output needs 1 to 32 bits")
        if problems:
            raise FracskipError("invalid LUT-MVU parameters: " + "; ".join(problems))

    @property
    def sf(self) -> int:
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        return self.mh // self.pe

    @property
    def wmem(self) -> int:
        return self.sf * self.nf

    @property
    def in_width(self) -> int:
        return self.simd * self.act_bits

    @property
    def out_bits_per_element(self) -> int:
        return self.out_bits if self.n_thresholds else self.acc_bits

    @property
    def out_width(self) -> int:
        return self.pe * self.out_bits_per_element

    @property
    def latency(self) -> int:
        """Pipeline latency in cycles (see PIPELINE_LATENCY)."""
        return PIPELINE_LATENCY + (1 if self.n_thresholds else 0)

    @property
    def rom_width(self) -> int:
        return self.pe * self.simd * self.weight_bits

    @property
    def resolved_rom_style(self) -> str:
        """``auto`` made explicit, so that synthesis and the estimate agree on where the weights live."""
        if self.rom_style != "auto":
            return self.rom_style
        return "distributed" if self.wmem <= LUT_ROM_MAX_DEPTH else "block"

    def cycles(self, n_vectors: int = 1) -> int:
        """FINN's MVAU cycle count: MH/PE * MW/SIMD per input vector."""
        return self.nf * self.sf * n_vectors

    def verilog_parameters(self, weight_file: str, thresh_file: str = "") -> dict[str, int | str]:
        pars: dict[str, int | str] = {
            "MW": self.mw,
            "MH": self.mh,
            "PE": self.pe,
            "SIMD": self.simd,
            "WEIGHT_WIDTH": self.weight_bits,
            "WEIGHT_SIGNED": int(self.weight_signed),
            "ACTIVATION_WIDTH": self.act_bits,
            "ACTIVATION_SIGNED": int(self.act_signed),
            "ACCU_WIDTH": self.acc_bits,
            "WEIGHT_FILE": weight_file,
            "ROM_STYLE": ROM_STYLES[self.resolved_rom_style],
        }
        if self.n_thresholds:
            pars.update(ACCU_SIGNED=int(self.acc_signed), N_THRES=self.n_thresholds, OUT_WIDTH=self.out_bits,
                        ACT_VAL=self.act_val, THRESH_FILE=thresh_file)
        return pars


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of a FINN INT<bits>/UINT<bits>."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def low_bits(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """``x`` (integers) as RTL reads the low ``bits`` bits of a wider field: two's complement if ``signed``, modulo
    2^bits; within INT<bits>/UINT<bits>, ``x`` itself."""
    h = 1 << (bits - 1) if signed else 0
    return ((np.asarray(x).astype(np.int64) + h) & ((1 << bits) - 1)) - h


def worst_case_acc_bits(mw: int, weight_bits: int, weight_signed: bool, act_bits: int, act_signed: bool) -> int:
    """Accumulator width for any weights and inputs of the given types (FINN's datatype-only bound)."""
    wl, wh = int_range(weight_bits, weight_signed)
    al, ah = int_range(act_bits, act_signed)
    prods = (wl * al, wl * ah, wh * al, wh * ah)
    lo, hi = mw * min(prods), mw * max(prods)
    if lo >= 0:
        return max(1, hi.bit_length())
    return max(-lo - 1, hi).bit_length() + 1


def rom_words(params: LutMvuParams, weights: np.ndarray) -> list[int]:
    """ROM image of a (MW, MH) weight matrix (ONNX/FINN orientation, y = x @ W).

    Word ``nf*SF + sf`` holds W[sf*SIMD + s, nf*PE + p] at bits [(p*SIMD + s)*WW +: WW], two's complement.
    """
    w = np.asarray(weights)
    if w.shape != (params.mw, params.mh):
        raise FracskipError(f"weights have shape {w.shape}, expected (MW, MH) = ({params.mw}, {params.mh})")
    wi = np.rint(w).astype(np.int64)
    if not np.array_equal(wi, w):
        raise FracskipError("weights must be integers (FINN's integer weight tensor, before any scaling)")
    lo, hi = int_range(params.weight_bits, params.weight_signed)
    if wi.min() < lo or wi.max() > hi:
        raise FracskipError(f"weights span [{wi.min()}, {wi.max()}], outside the weight type's [{lo}, {hi}]")
    # (MW, MH) -> (NF, SF, PE, SIMD): element [nf, sf, p, s] = W[sf*SIMD + s, nf*PE + p]
    tiles = wi.reshape(params.sf, params.simd, params.nf, params.pe).transpose(2, 0, 3, 1)
    lanes = tiles.reshape(params.wmem, params.pe * params.simd) & ((1 << params.weight_bits) - 1)
    shifts = [lane * params.weight_bits for lane in range(params.pe * params.simd)]
    return [sum(int(v) << sh for v, sh in zip(row, shifts)) for row in lanes]


def write_rom_file(params: LutMvuParams, weights: np.ndarray, path: Path) -> Path:
    """Write the $readmemh image of ``weights``; returns ``path``."""
    digits = (params.rom_width + 3) // 4
    path = Path(path)
    path.write_text("".join(f"{word:0{digits}x}\n" for word in rom_words(params, weights)))
    return path


def threshold_words(params: LutMvuParams, thresholds: np.ndarray) -> list[int]:
    """Threshold ROM image: word nf holds T[nf*PE + p][i] at bits [(p*N + i)*TW +: TW], TW = acc_bits + 1.

    ``thresholds`` (MH, N) or (1, N) as in FINN's MVAU: y >= t counts. For integer accumulators that is
    y >= ceil(t); clipping to [acc min, acc max + 1] keeps "always" and "never" and fits TW bits.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    n = params.n_thresholds
    if t.ndim != 2 or t.shape[1] != n or t.shape[0] not in (1, params.mh):
        raise FracskipError(f"thresholds have shape {t.shape}, expected ({params.mh} or 1, {n})")
    lo, hi = int_range(params.acc_bits, params.acc_signed)
    ti = np.clip(np.ceil(t), lo, hi + 1).astype(np.int64)
    ti = np.broadcast_to(ti, (params.mh, n))
    tw = params.acc_bits + 1
    # (MH, N) -> (NF, PE*N): row nf*PE + p of fold nf at lanes p*N .. p*N + N-1
    lanes = ti.reshape(params.nf, params.pe * n) & ((1 << tw) - 1)
    return [sum(int(v) << (k * tw) for k, v in enumerate(row)) for row in lanes]


def write_threshold_file(params: LutMvuParams, thresholds: np.ndarray, path: Path) -> Path:
    digits = (params.pe * params.n_thresholds * (params.acc_bits + 1) + 3) // 4
    path = Path(path)
    path.write_text("".join(f"{word:0{digits}x}\n" for word in threshold_words(params, thresholds)))
    return path


def wrapper_verilog(params: LutMvuParams, module: str, weight_file: str, thresh_file: str = "") -> str:
    """Verilog top with FINN's port names (ap_clk, ap_rst_n, in0_V_*, out0_V_*; TDATA padded to bytes).

    The memory image paths are parameters of the wrapper (``WEIGHT_FILE``, ``THRESH_FILE``) defaulting to the
    given files, so that a stitcher can point an instance at a copy, as FINN's memstream wrappers allow.
    """
    in_pad = _byte_padded(params.in_width)
    out_pad = _byte_padded(params.out_width)
    files = {"WEIGHT_FILE": weight_file, **({"THRESH_FILE": thresh_file} if params.n_thresholds else {})}
    header = ",\n".join(f'    parameter {k} = "{v}"' for k, v in files.items())
    pars = ",\n".join(
        f"        .{k}({k})" if k in files else f"        .{k}({v})"
        for k, v in params.verilog_parameters(weight_file, thresh_file).items()
    )
    out_assign = "core_out" if out_pad == params.out_width else \
        f"{{{out_pad - params.out_width}'b0, core_out}}"
    # The unused top bits of a byte-padded input word are ignored, as in FINN's own wrappers.
    return f"""// generated by fracskip.hls.lutmvu: LUT-based MVAU with FINN's stream interface
module {module} #(
{header}
) (
    input  wire ap_clk,
    input  wire ap_rst_n,
    input  wire [{in_pad - 1}:0] in0_V_TDATA,
    input  wire in0_V_TVALID,
    output wire in0_V_TREADY,
    output wire [{out_pad - 1}:0] out0_V_TDATA,
    output wire out0_V_TVALID,
    input  wire out0_V_TREADY
);
    wire [{params.out_width - 1}:0] core_out;
    {CORE_MODULE} #(
{pars}
    ) core (
        .ap_clk(ap_clk),
        .ap_rst_n(ap_rst_n),
        .s_axis_tdata(in0_V_TDATA[{params.in_width - 1}:0]),
        .s_axis_tvalid(in0_V_TVALID),
        .s_axis_tready(in0_V_TREADY),
        .m_axis_tdata(core_out),
        .m_axis_tvalid(out0_V_TVALID),
        .m_axis_tready(out0_V_TREADY)
    );
    assign out0_V_TDATA = {out_assign};
endmodule
"""


def _byte_padded(bits: int) -> int:
    return (bits + 7) // 8 * 8

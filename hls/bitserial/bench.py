"""LUT per (BitOP per cycle): the bit-serial runtime-precision MVU beside MVAU_lut and FINN's MVAU_rtl.

    python -m fracskip.hls.bitserial.bench           # 3 bit-serial + 3 MVAU_lut Yosys runs, ~10 min
    python -m fracskip.hls.bitserial.bench --quick   # the bit-serial unit at PE 8 only, MVAU_lut at b = 2, 4

The layer is lutmvu.bench's conv3x3 C16 on 28x28 (MW = 144, MH = 16, 784 vectors per frame). Bit-serial
rows: one unit holding the menu {2, 4, 8} (weights W2 + W4 + W8 in block RAM, no activation, as the
MVAU_lut rows), Yosys ``synth_xilinx -family xc7 -nodsp`` (hierarchy kept); its BitOPs per cycle are
PE x SIMD x WBP in every mode, its cycles per frame follow b_w * b_a. MVAU_lut rows: one unit per
precision, lutmvu's own synthesis (``-flatten``), BitOPs per cycle = SIMD x b^2. MVAU_rtl: FINN's DSP MVU
is not synthesised here; its DSP count is FINN's estimate (labelled), FINN reports 0 LUT for it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .core import BitSerialParams, Precision
from .estimate import estimate_resources
from .synth import synthesize

log = logging.getLogger(__name__)

FPGA_PART = "xc7z020clg400-1"
MW, MH, N_VECTORS = 144, 16, 28 * 28
BITS = (2, 4, 8)
# (PE, SIMD, WBP) of the bit-serial unit
FOLDINGS = ((1, 48, 1), (4, 48, 2), (8, 48, 2))
LUT_MVU = (1, 48)  # PE, SIMD of MVAU_lut (lutmvu.bench's folding for the 50k-cycle target)
BISMO_NOTE = ("BISMO (Umuroglu et al., FPL 2018), published, not measured here: cycles ~ b_w*b_a at run-time "
              "precision; peak 6.5 binary TOPS on the PYNQ-Z1 (xc7z020, 53,200 LUT in the whole device). The paper's "
              "LUT count for that configuration is not quoted here, so no LUT per (BitOP/cycle) is derived from it")


@dataclass(frozen=True)
class Row:
    unit: str
    folding: str
    bits: str
    lut: int | None
    ff: int | None
    bram18: int | None
    dsp: int | None
    bitops: dict[int, int]  # per b: BitOPs per cycle
    cycles: dict[int, int]  # per b: cycles per frame
    lut_model: int | None = None
    source: str = "Yosys"


def bitserial_params(pe: int, simd: int, wbp: int) -> BitSerialParams:
    return BitSerialParams(MW, MH, pe, simd, wbp, tuple(Precision(b, b) for b in BITS), n_vectors=N_VECTORS,
                           ram_style="block")


def bitserial_rows(foldings: Sequence[tuple[int, int, int]]) -> list[Row]:
    rows = []
    for pe, simd, wbp in tqdm(foldings, desc="yosys bit-serial", unit="unit"):
        p = bitserial_params(pe, simd, wbp)
        r = synthesize(p)
        rows.append(Row("MVAU_bitserial {2,4,8}", f"PE{pe} SIMD{simd} WBP{wbp}", "2/4/8", r.lut, r.ff, r.bram18,
                        r.dsp, {b: p.bitops_per_cycle for b in BITS},
                        {b: p.frame_cycles(k) for k, b in enumerate(BITS)}, _model_lut(p)))
    return rows


def _model_lut(p: BitSerialParams) -> int | None:
    try:
        return round(estimate_resources(p).lut)
    except ImportError:  # not fitted yet
        return None


def lutmvu_rows(bits: Sequence[int]) -> list[Row]:
    from ..lutmvu.bench import layer_params
    from ..lutmvu.bench import Layer as LutLayer
    from ..lutmvu.synth import random_weights, synthesize as lut_synthesize

    layer = LutLayer("conv3x3 C16 28x28", mw=MW, mh=MH, pe=LUT_MVU[0], simd=LUT_MVU[1], n_vectors=(1, 28, 28))
    rows = []
    for b in tqdm(bits, desc="yosys MVAU_lut", unit="unit"):
        p = layer_params(layer, b)
        r = lut_synthesize(p, random_weights(p))
        rows.append(Row("MVAU_lut", f"PE{p.pe} SIMD{p.simd}", str(b), r.lut, r.ff, r.bram18, r.dsp,
                        {b: p.pe * p.simd * b * b}, {b: p.cycles(N_VECTORS)}))
    return rows


def mvau_rtl_rows(bits: Sequence[int], build_dir: Path) -> list[Row]:
    """FINN's own estimates of MVAU_rtl (the DSP MVU) at the MVAU_lut folding: not a measurement."""
    from qonnx.custom_op.registry import getCustomOp

    from ..finn_env import setup
    from ..lutmvu.bench import Layer as LutLayer
    from ..lutmvu.bench import layer_params
    from ..lutmvu.graphs import mvau_model
    from ..lutmvu.synth import random_weights

    setup(build_dir)
    layer = LutLayer("conv3x3 C16 28x28", mw=MW, mh=MH, pe=LUT_MVU[0], simd=LUT_MVU[1], n_vectors=(1, 28, 28))
    rows = []
    for b in bits:
        p = layer_params(layer, b)
        op = getCustomOp(mvau_model(p, random_weights(p), layer.n_vectors, op_type="MVAU_rtl").graph.node[0])
        rows.append(Row("MVAU_rtl (DSP)", f"PE{p.pe} SIMD{p.simd}", str(b), int(op.lut_estimation(FPGA_PART)), None,
                        int(op.bram_estimation(FPGA_PART)), int(op.dsp_estimation(FPGA_PART)),
                        {b: p.pe * p.simd * b * b}, {b: int(op.get_exp_cycles())}, source="FINN estimate"))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    head = ("unit", "folding", "b", "source", "LUT", "FF", "BRAM18", "DSP", "LUT model",
            "BitOP/cyc b=2", "b=4", "b=8", "LUT/(BitOP/cyc) b=2", "b=4", "b=8", "cycles/frame b=2", "b=4", "b=8")

    def per_b(d: dict[int, int], fmt=str) -> list[str]:
        return [fmt(d[b]) if b in d else "-" for b in BITS]

    def ratio(r: Row) -> dict[int, str]:
        return {b: f"{r.lut / ops:.2f}" for b, ops in r.bitops.items()} if r.lut else {}

    body = []
    for r in rows:
        rat = ratio(r)
        body.append((r.unit, r.folding, r.bits, r.source, *(str(v) if v is not None else "-" for v in
                     (r.lut, r.ff, r.bram18, r.dsp, r.lut_model)), *per_b(r.bitops), *[rat.get(b, "-") for b in BITS],
                     *per_b(r.cycles)))
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:>{w}}}" if i > 3 else f"{{:<{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body])


def verdict(rows: Sequence[Row]) -> str:
    """Is the goal met: at 4x4 and 2x2, LUT per (BitOP/cycle) of the bit-serial unit <= MVAU_lut's?"""
    lut = {b: r.lut / r.bitops[b] for r in rows if r.unit == "MVAU_lut" for b in r.bitops}
    best = min((r for r in rows if r.unit.startswith("MVAU_bitserial")), key=lambda r: r.lut / r.bitops[2])
    ours = best.lut / best.bitops[2]
    lines = [f"best bit-serial: {best.folding}: {ours:.2f} LUT per (BitOP/cycle) in every mode "
             f"(+{best.bram18} BRAM18 for W2+W4+W8)"]
    for b in (2, 4, 8):
        if b in lut:
            met = "met" if ours <= lut[b] else "NOT met"
            lines.append(f"  b={b}: MVAU_lut {lut[b]:.2f} -> goal {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="bit-serial at PE 8 only; MVAU_lut at b = 2, 4")
    ap.add_argument("--build-dir", type=Path, default=None, help="FINN build folder (default: a temporary one)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    foldings = FOLDINGS[-1:] if args.quick else FOLDINGS
    lut_bits = (2, 4) if args.quick else BITS
    rows = bitserial_rows(foldings) + lutmvu_rows(lut_bits)
    rows += mvau_rtl_rows(BITS, args.build_dir or Path(tempfile.mkdtemp(prefix="bitserial_bench_")))
    print(f"conv3x3 C16 28x28 as a matrix: MW={MW}, MH={MH}, {N_VECTORS} vectors per frame; xc7 (Yosys)")
    print(format_table(rows))
    print(verdict(rows))
    print(BISMO_NOTE)
    try:
        from .fitted import MODEL

        print(f"resource model (fit.py): LUT error on {MODEL['error']['points']} fitted points "
              f"{MODEL['error']['lut_mean_abs_pct']} % mean / {MODEL['error']['lut_max_abs_pct']} % max; on "
              f"{MODEL['held_out_error']['points']} held-out configurations {MODEL['held_out_error']['lut_mean_abs_pct']} "
              f"% mean / {MODEL['held_out_error']['lut_max_abs_pct']} % max")
    except ImportError:
        print("resource model: not fitted yet (python -m fracskip.hls.bitserial.fit)")


if __name__ == "__main__":
    main()

"""What LUT-based compute costs per bit-width, next to FINN's own MVAU estimates for the same layer.

    python -m fracskip.hls.lutmvu.bench            # 2 layers x b = 2, 4, 8: 6 Yosys runs, ~2 min
    python -m fracskip.hls.lutmvu.bench --quick    # the first layer only

For each layer (one DFS-block convolution as a matrix, at the folding FINN picks for a 50k-cycle target;
FINN-NOTES §3b) and b in (2, 4, 8), with INT<b> weights and UINT<b> inputs: Yosys LUT/FF/BRAM of this unit,
the fitted model's LUT, FINN's HLS MVAU LUT estimate (``MVAU_hls.lut_estimation``, resType lut, weights
embedded) and FINN's RTL MVU DSP count (``MVAU_rtl.dsp_estimation``), at equal PE x SIMD.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .core import LutMvuParams, worst_case_acc_bits
from .estimate import estimate_resources
from .synth import random_weights, synthesize

log = logging.getLogger(__name__)

FPGA_PART = "xc7z020clg400-1"


@dataclass(frozen=True)
class Layer:
    name: str
    mw: int
    mh: int
    pe: int
    simd: int
    n_vectors: tuple[int, ...]


# The two convolutions of a DFS BasicBlock (3x3, C -> C) at C=16 on 28x28 and C=64 on 7x7.
LAYERS = (
    Layer("conv3x3 C16 28x28", mw=144, mh=16, pe=1, simd=48, n_vectors=(1, 28, 28)),
    Layer("conv3x3 C64 7x7", mw=576, mh=64, pe=1, simd=48, n_vectors=(1, 7, 7)),
)


@dataclass(frozen=True)
class BenchRow:
    layer: str
    bits: int
    pe: int
    simd: int
    cycles: int
    lut: int  # Yosys
    ff: int
    bram18: int
    lut_model: int  # fitted model
    finn_hls_lut: int  # FINN's MVAU_hls estimate
    finn_rtl_dsp: int  # FINN's MVAU_rtl estimate


def layer_params(layer: Layer, bits: int) -> LutMvuParams:
    return LutMvuParams(mw=layer.mw, mh=layer.mh, pe=layer.pe, simd=layer.simd, weight_bits=bits,
                        weight_signed=True, act_bits=bits, act_signed=False,
                        acc_bits=worst_case_acc_bits(layer.mw, bits, True, bits, False))


def finn_estimates(params: LutMvuParams, n_vectors: Sequence[int], fpgapart: str = FPGA_PART) -> tuple[int, int]:
    """(MVAU_hls LUT estimate, MVAU_rtl DSP estimate) of the same layer; finn_env.setup() must have run."""
    from qonnx.custom_op.registry import getCustomOp

    from .graphs import mvau_model

    w = random_weights(params)
    hls = mvau_model(params, w, n_vectors, op_type="MVAU_hls", mem_mode="internal_embedded", resType="lut")
    rtl = mvau_model(params, w, n_vectors, op_type="MVAU_rtl")
    return (int(getCustomOp(hls.graph.node[0]).lut_estimation(fpgapart)),
            int(getCustomOp(rtl.graph.node[0]).dsp_estimation(fpgapart)))


def lutmvu_table(layers: Sequence[Layer] = LAYERS, bits: Sequence[int] = (2, 4, 8),
                 build_dir: Path | None = None, fpgapart: str = FPGA_PART) -> list[BenchRow]:
    """Measure every layer at every bit-width (sequential Yosys runs); one row each."""
    from ..finn_env import setup

    setup(Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="lutmvu_bench_")))
    rows = []
    jobs = [(layer, b) for layer in layers for b in bits]
    for layer, b in tqdm(jobs, desc="yosys", unit="unit"):
        p = layer_params(layer, b)
        synth = synthesize(p, random_weights(p))
        hls_lut, rtl_dsp = finn_estimates(p, layer.n_vectors, fpgapart)
        n_vec = 1
        for v in layer.n_vectors:
            n_vec *= v
        rows.append(BenchRow(layer.name, b, p.pe, p.simd, p.cycles(n_vec), synth.lut, synth.ff, synth.bram18,
                             round(estimate_resources(p).lut), hls_lut, rtl_dsp))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    head = ("layer", "b", "PExSIMD", "cycles", "LUT", "FF", "BRAM18", "LUT model", "LUT/LUT(b=2)",
            "FINN HLS LUT", "FINN RTL DSP")
    base = {r.layer: r.lut for r in rows if r.bits == 2}
    body = [(r.layer, str(r.bits), f"{r.pe}x{r.simd}", str(r.cycles), str(r.lut), str(r.ff), str(r.bram18),
             str(r.lut_model), f"{r.lut / base[r.layer]:.1f}" if r.layer in base else "-",
             str(r.finn_hls_lut), str(r.finn_rtl_dsp)) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:>{w}}}" if i else f"{{:<{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="first layer only (3 Yosys runs)")
    ap.add_argument("--build-dir", type=Path, default=None, help="FINN build folder (default: a temporary one)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows = lutmvu_table(LAYERS[:1] if args.quick else LAYERS, build_dir=args.build_dir)
    print(format_table(rows))  # the CLI's output


if __name__ == "__main__":
    main()

"""A LUT-based RTL matrix-vector unit for FINN, and its FINN custom op ``MVAU_lut``.

FINN's RTL MVU computes in DSPs only, so a 2-bit layer costs as many DSPs as an 8-bit one; FINN's LUT-based
MVAU is HLS (Vitis, no simulation here). This unit computes in LUTs, with the stream layout and cycle count
of FINN's MVAU, so that low-precision DFS paths are also cheap in hardware.

- ``core``: parameters, ROM image, wrapper (plain Python); ``rtl/lutmvu.v``: the Verilog.
- ``harness``: many instances in one Verilator model; ``synth``: Yosys numbers; ``estimate``/``fit``: the
  fitted resource model; ``bench``: the b = 2/4/8 table.
- FINN side (import after ``fracskip.hls.finn_env.setup``): ``op.MVAU_lut`` (importing ``op`` registers it),
  ``convert.ConvertMVAUToLut`` / ``convert_to_lut``, ``graphs.mvau_model``.
"""

from __future__ import annotations

from importlib import import_module

from .core import (
    LutMvuParams,
    rom_words,
    rtl_sources,
    threshold_words,
    worst_case_acc_bits,
    wrapper_verilog,
    write_rom_file,
    write_threshold_file,
)
from .estimate import ResourceEstimate, estimate_resources
from .synth import SynthResult, synthesize

# FINN-dependent names, imported on first use (FINN must be set up first; see finn_env).
_LAZY = {
    "MVAU_lut": "op", "unsupported_reasons": "op",
    "ConvertMVAUToLut": "convert", "convert_to_lut": "convert", "lut_reasons": "convert",
    "mvau_model": "graphs",
    "lutmvu_table": "bench", "format_table": "bench",
}

__all__ = [
    "LutMvuParams", "rom_words", "rtl_sources", "threshold_words", "worst_case_acc_bits", "wrapper_verilog",
    "write_rom_file", "write_threshold_file",
    "ResourceEstimate", "estimate_resources", "SynthResult", "synthesize",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

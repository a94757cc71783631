"""A bit-serial, runtime-precision matrix-vector unit for FINN, and its FINN custom op ``MVAU_bitserial``.

One datapath per DFS block for every bit-width: the precision is chosen per frame by a mode token, the
unit holds every path's own weights (and thresholds) in memory, and a frame takes cycles in proportion
to b_w * b_a of its mode (BISMO's arithmetic, Umuroglu et al., FPL 2018), so the expected time of a
block is sum_k p_k c_k.

- ``core``: parameters, memory images, wrapper, cycle model, numpy reference; ``rtl/``: the Verilog.
- ``harness``: many instances with mode streams in one (cached) Verilator model; ``synth``: Yosys
  numbers; ``estimate``/``fit``/``fitted``: the fitted resource model; ``bench``: the comparison table.
- FINN side (import after ``fracskip.hls.finn_env.setup``): ``op.MVAU_bitserial`` (importing ``op``
  registers it).
"""

from __future__ import annotations

from importlib import import_module

from .core import (
    BitSerialParams,
    Precision,
    pack_inputs,
    reference,
    rtl_sources,
    threshold_words,
    unpack_outputs,
    weight_words,
    wrapper_verilog,
    write_memory_files,
)

_LAZY = {"MVAU_bitserial": "op", "bitserial_model": "op"}

__all__ = [
    "BitSerialParams", "Precision", "pack_inputs", "reference", "rtl_sources", "threshold_words",
    "unpack_outputs", "weight_words", "wrapper_verilog", "write_memory_files",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

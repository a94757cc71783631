"""Verilog modules that several of fracskip's units instantiate (Verilog-2005, one module per file): the
two-entry output buffer and the balanced adder tree. A unit lists the ones it uses
beside its own sources, so every flow that reads a unit's files (FINN's IP packaging, the stitcher, Verilator,
Yosys) reads them too."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUF2 = "fracskip_buf2.v"
ADDTREE = "fracskip_addtree.v"


def rtl_dir() -> Path:
    return Path(str(resources.files(__name__)))


def shared_sources(*names: str) -> list[Path]:
    return [rtl_dir() / n for n in names]

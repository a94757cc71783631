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


RESOURCE_KEYS = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
SHELL_FLOWS = {"vivado_zynq": "zynq-iodma", "vitis_alveo": "alveo"}


def _read(p: Path) -> dict:
    """One preset file, checked field by field: a damaged preset is named, never half-read."""
    try:
        d = json.loads(p.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FracskipError(f"board preset {p} is not valid JSON ({str(e)[:200]}); restore it from fracskip") from e
    except OSError as e:
        raise FracskipError(f"cannot read board preset {p} ({e.strerror or e})") from e

    def bad(why: str) -> FracskipError:
        return FracskipError(f"board preset {p}: {why}; restore it from fracskip or fix the file")

    if not isinstance(d, dict):
        raise bad("not a JSON object")
    known = {"name", "part", "clk_ns", "shell_flow", "resources", "platform", "driver"}
    if set(d) - known or {"name", "part", "clk_ns", "shell_flow", "resources"} - set(d):
        raise bad(f"fields must be {sorted(known)} (platform and driver optional), got {sorted(map(str, d))}")
    for k in ("name", "part"):
        if not isinstance(d[k], str) or not d[k].strip():
            raise bad(f"{k} must be a non-empty string")
    clk = d["clk_ns"]
    if isinstance(clk, bool) or not isinstance(clk, (int, float)) or not 0 < clk < 1e3:
        raise bad(f"clk_ns must be a clock period in ns (0 < clk_ns < 1000), got {clk!r}")
    if not isinstance(d["shell_flow"], str) or d["shell_flow"] not in SHELL_FLOWS:
        raise bad(f"shell_flow must be one of {sorted(SHELL_FLOWS)}, got {d['shell_flow']!r}")
    res = d["resources"]
    if not isinstance(res, dict) or set(res) != set(RESOURCE_KEYS) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in res.values()):
        raise bad(f"resources must give {', '.join(RESOURCE_KEYS)} as non-negative integers")
    if d["shell_flow"] == "vitis_alveo" and not (isinstance(d.get("platform"), str) and d["platform"]):
        raise bad("an Alveo (vitis_alveo) preset needs its Vitis platform")
    if d.get("platform") is not None and not isinstance(d["platform"], str):
        raise bad("platform must be a string")
    if d.get("driver", SHELL_FLOWS[d["shell_flow"]]) != SHELL_FLOWS[d["shell_flow"]]:
        raise bad(f"driver must be {SHELL_FLOWS[d['shell_flow']]!r} for shell_flow {d['shell_flow']}")
    return d


def _presets() -> list[dict]:
    return [_read(p) for p in sorted(PRESETS.glob("*.json"))]


def names() -> list[str]:
    return sorted(d["name"] for d in _presets())


def load(name: str) -> Board:
    if not isinstance(name, str) or not name.strip():
        raise FracskipError(f"--board needs a board name; presets: {', '.join(names())}")
    presets = _presets()
    for d in presets:
        if d["name"].lower() == name.lower():
            return Board(**d)
    raise FracskipError(f"unknown board {name!r}; presets: {', '.join(sorted(d['name'] for d in presets))} "
                        "(bitstreams/boards/*.json)")

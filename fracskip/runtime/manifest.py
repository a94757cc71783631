"""The export manifest: what the hardware flow and the runtime controller read. Standard library only
(it is read on the board too)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import FracskipError

FORMAT = "fracskip-export/1"
REQUIRED = ("format", "bit_menu", "interface", "input", "stem", "blocks", "head", "gates", "files")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Manifest:
    root: Path
    data: dict

    # -- topology -------------------------------------------------------------------------------
    @property
    def bit_menu(self) -> list[int]:
        return self.data["bit_menu"]

    @property
    def blocks(self) -> list[dict]:
        return self.data["blocks"]

    @property
    def gated_blocks(self) -> list[dict]:
        return [b for b in self.blocks if b["gated"]]

    @property
    def iface_scale(self) -> float:
        return float(self.data["interface"]["scale"])

    def cores(self) -> dict[str, dict]:
        """Every hardware core by name: stem, block<i>_b<bits>, head."""
        out = {"stem": self.data["stem"]}
        for b in self.blocks:
            for p in b["paths"].values():
                if p.get("core"):
                    out[p["core"]] = p
        out["head"] = self.data["head"]
        return out

    def path_core(self, block: int, bits: int) -> str | None:
        """Core name of a block's path; None when that path passes the input on (skip of an identity block)."""
        return self.blocks[block]["paths"][str(bits)].get("core")

    def file(self, name: str) -> Path:
        return self.root / name

    # -- i/o ------------------------------------------------------------------------------------
    def save(self) -> None:
        (self.root / "manifest.json").write_text(json.dumps(self.data, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> "Manifest":
        root = Path(folder)
        path = root / "manifest.json"
        if not path.exists():
            raise FracskipError(f"{root} has no manifest.json: pass a folder written by `fracskip export`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise FracskipError(f"{path} is not valid JSON ({e}); re-run `fracskip export`") from e
        m = cls(root, data)
        m.check_schema()
        if verify:
            m.verify_files()
        return m

    def check_schema(self) -> None:
        d = self.data
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise FracskipError(f"manifest in {self.root} lacks {missing}; re-run `fracskip export`")
        if d["format"] != FORMAT:
            raise FracskipError(f"manifest format {d['format']!r} is not {FORMAT!r}; re-export with this fracskip")
        for i, b in enumerate(d["blocks"]):
            for key in ("index", "gated", "paths", "in", "out"):
                if key not in b:
                    raise FracskipError(f"manifest block {i} lacks {key!r}")
            if b["index"] != i:
                raise FracskipError(f"manifest block {i} has index {b['index']}")
            for bits, p in b["paths"].items():
                if int(bits) not in d["bit_menu"] and b["gated"]:
                    raise FracskipError(f"block {i} path {bits} is not in the bit menu {d['bit_menu']}")
                if p.get("core") and p.get("file") not in d["files"]:
                    raise FracskipError(f"block {i} path {bits}: file {p.get('file')} not listed in files")

    def verify_files(self) -> None:
        """Refuse a missing file or one whose sha256 differs from the manifest's."""
        for name, digest in self.data["files"].items():
            p = self.root / name
            if not p.exists():
                raise FracskipError(f"{p} listed in the manifest is missing; re-run `fracskip export`")
            if sha256(p) != digest:
                raise FracskipError(f"{p} does not match its sha256 in the manifest (modified after export?); "
                                    f"re-run `fracskip export` rather than editing exported files")

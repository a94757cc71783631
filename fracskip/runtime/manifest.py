"""The export manifest: what the hardware flow and the runtime controller read. Standard library only
(it is read on the board too)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import FracskipError
from .intgate import SPEC

FORMAT = "fracskip-export/1"
REQUIRED = ("format", "bit_menu", "interface", "input", "stem", "blocks", "head", "gates", "files", "bitops")


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
    def routes(self) -> list[int]:
        """The menu's entries, then the path widths no gate chooses (``ModelConfig.routes``): what a static network
        (``Controller.run(bits=...)``, the build's baselines) may run every gated block at."""
        gated = self.gated_blocks
        extra = [int(k) for k in gated[0]["paths"] if int(k) not in self.bit_menu] if gated else []
        return list(self.bit_menu) + extra

    @property
    def fixed_bitops(self) -> int:
        """BitOPs every input costs whatever its gates decide: the stem, the head and the ungated blocks."""
        return (self.data["stem"]["bitops"] + self.data["head"]["bitops"]
                + sum(next(iter(b["paths"].values()))["bitops"] for b in self.blocks if not b["gated"]))

    @property
    def channel_groups(self) -> list[int]:
        """Per gated block, its channel groups (0 without channel skipping)."""
        return [next((p["channels"]["groups"] for p in b["paths"].values() if "channels" in p), 0)
                for b in self.gated_blocks]

    @property
    def blocks(self) -> list[dict]:
        return self.data["blocks"]

    @property
    def gated_blocks(self) -> list[dict]:
        return [b for b in self.blocks if b["gated"]]

    @property
    def iface_scale(self) -> float:
        return float(self.data["interface"]["scale"])

    @property
    def channel_group(self) -> int | None:
        """Channels per skippable group of a channel-skipping export (docs/channel-skipping.md); None without."""
        ch = self.data.get("channels")
        return int(ch["group"]) if ch else None

    def cores(self) -> dict[str, dict]:
        """Every hardware core by name: stem, block<i>_b<bits> (block<i>_b<bits>_k<kept> with channel groups),
        head."""
        out = {"stem": self.data["stem"]}
        for b in self.blocks:
            for p in b["paths"].values():
                if p.get("core"):
                    out[p["core"]] = p
                for c in p.get("channels", {}).get("kept", {}).values():
                    out[c["core"]] = c
        out["head"] = self.data["head"]
        return out

    def path_core(self, block: int, bits: int, kept: int | None = None) -> str | None:
        """Core name of a block's path; None when that path passes the input on (skip of an identity block).
        ``kept``: of a channel-skipping path, the core for that many channel groups kept (default: all)."""
        p = self.blocks[block]["paths"][str(bits)]
        if kept is None or "channels" not in p:
            return p.get("core")
        return p["channels"]["kept"][str(kept)]["core"]

    def file(self, name: str) -> Path:
        return self.root / name

    # -- i/o ------------------------------------------------------------------------------------
    def save(self) -> None:
        (self.root / "manifest.json").write_text(json.dumps(self.data, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> "Manifest":
        root = Path(folder)
        path = root / "manifest.json"
        if not root.is_dir():
            raise FracskipError(f"{root} is not a folder: pass a folder written by `fracskip export`")
        if not path.is_file():
            raise FracskipError(f"{root} has no manifest.json: pass a folder written by `fracskip export`")
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise FracskipError(f"{path} is not valid JSON ({str(e)[:200]}); re-run `fracskip export`") from e
        except OSError as e:
            raise FracskipError(f"cannot read {path} ({e.strerror or e})") from e
        m = cls(root, data)
        m.check_schema()
        if verify:
            m.verify_files()
        return m

    def check_schema(self) -> None:
        """Everything the build, the controller and the simulation read, with its type; a clear error otherwise."""
        d = self.data
        where = f"manifest in {self.root}"
        if not isinstance(d, dict):
            raise FracskipError(f"{where} is not a JSON object; re-run `fracskip export`")
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise FracskipError(f"{where} lacks {missing}; re-run `fracskip export`")
        if d["format"] != FORMAT:
            raise FracskipError(f"manifest format {d['format']!r} is not {FORMAT!r}; re-export with this fracskip")
        files = _obj(d["files"], "files")
        for name, digest in files.items():
            if not _plain_name(name):
                raise FracskipError(f"{where}: file name {name!r} is not a plain file name in the export folder")
            if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                raise FracskipError(f"{where}: sha256 of {name!r} is not 64 hex digits")
        menu = _ints(d["bit_menu"], "bit_menu", lo=0, hi=8)
        if not menu or len(set(menu)) != len(menu) or menu != sorted(menu):
            raise FracskipError(f"{where}: bit_menu {menu} must be distinct widths in ascending order, 0 = skip")
        _number(_obj(d["interface"], "interface").get("scale"), "interface.scale", positive=True)
        _shape(_obj(d["input"], "input").get("shape"), "input.shape")
        for key in ("stem", "head"):
            self._core(_obj(d[key], key), key, files)
        _shape(_obj(d["head"].get("in"), "head.in").get("shape"), "head.in.shape")
        gates = _obj(d["gates"], "gates")
        if gates.get("spec") != SPEC:
            raise FracskipError(f"{where}: gates are not an integer gate of spec {SPEC!r} (found {gates.get('spec')!r}); "
                                "re-export with this fracskip")
        src = d.get("source_checkpoint")
        if src is not None and _obj(src, "source_checkpoint").get("file") not in files:
            raise FracskipError(f"{where}: source checkpoint file {src.get('file')!r} is not listed in files")
        _number(_obj(d["bitops"], "bitops").get("full_8bit"), "bitops.full_8bit", positive=True)
        blocks = d["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise FracskipError(f"{where}: blocks must be a non-empty list")
        n_gated, beyond = 0, None
        for i, b in enumerate(blocks):
            b = _obj(b, f"blocks[{i}]")
            for key in ("index", "gated", "paths", "in", "out"):
                if key not in b:
                    raise FracskipError(f"manifest block {i} lacks {key!r}")
            if b["index"] != i or isinstance(b["index"], bool):
                raise FracskipError(f"manifest block {i} has index {b['index']}")
            if not isinstance(b["gated"], bool):
                raise FracskipError(f"manifest block {i}: 'gated' must be true or false")
            for key in ("in", "out"):  # NCHW: the gates' pooling and the channel groups read C, H and W
                if len(_shape(_obj(b[key], f"blocks[{i}].{key}").get("shape"), f"blocks[{i}].{key}.shape")) != 4:
                    raise FracskipError(f"manifest: blocks[{i}].{key}.shape {b[key]['shape']} is not (N, C, H, W)")
            paths = _obj(b["paths"], f"blocks[{i}].paths")
            if not paths:
                raise FracskipError(f"manifest block {i} has no paths")
            for bits, p in paths.items():
                if not (bits.isdigit() and bits == str(int(bits))):
                    raise FracskipError(f"manifest block {i}: path key {bits!r} is not a bit-width")
                p = _obj(p, f"blocks[{i}].paths[{bits}]")
                if b["gated"] and int(bits) not in menu and not (1 <= int(bits) <= 8 and p.get("core")):
                    raise FracskipError(f"block {i} path {bits} is neither on the bit menu {menu} nor a width with "
                                        "a core")
                if p.get("core") is not None:
                    self._core(p, f"blocks[{i}].paths[{bits}]", files)
                    if "channels" in p:
                        self._channel_cores(p, f"blocks[{i}].paths[{bits}]", files, b["out"]["shape"][1])
                else:
                    _number(p.get("bitops"), f"blocks[{i}].paths[{bits}].bitops")
            if b["gated"]:
                extra = [int(k) for k in paths if int(k) not in menu]
                if not set(menu) <= {int(k) for k in paths} or (beyond is not None and extra != beyond):
                    raise FracskipError(f"manifest block {i}: paths {sorted(paths)} are not the bit menu {menu} "
                                        f"and the widths beyond it of the other gated blocks")
                beyond = extra
                if b.get("gate") != n_gated or isinstance(b.get("gate"), bool):
                    raise FracskipError(f"manifest block {i}: gate {b.get('gate')!r} should be {n_gated}")
                n_gated += 1
            elif len(paths) != 1 or next(iter(paths.values())).get("core") is None:
                raise FracskipError(f"manifest block {i} is not gated: it needs exactly one path with a core")
        self._gates_fit_blocks(gates, [b for b in blocks if b["gated"]], menu)

    def _gates_fit_blocks(self, gates: dict, gated: list[dict], menu: list[int]) -> None:
        """The integer gate has one embedding per gated block, over its input's channels and pooled over its
        feature map, and one logit per bit-menu entry (its own shapes and ranges: ``IntGateParams.check``)."""
        from .intgate import pool_multiplier

        where = f"manifest in {self.root}: the integer gate"
        embed, proj = gates.get("embed"), _obj(gates.get("proj"), "gates.proj").get("weight")
        if not isinstance(embed, list) or len(embed) != len(gated) or gates.get("n_gates") != len(gated):
            raise FracskipError(f"{where} has {gates.get('n_gates')} gates and "
                                f"{len(embed) if isinstance(embed, list) else 'no'} embeddings for {len(gated)} gated "
                                "blocks; re-run `fracskip export`")
        if not isinstance(proj, list) or len(proj) != len(menu) or gates.get("n_choices") != len(menu):
            raise FracskipError(f"{where} chooses among {gates.get('n_choices')} paths, the bit menu has {len(menu)}; "
                                "re-run `fracskip export`")
        for g, (e, b) in enumerate(zip(embed, gated)):
            _, c, h, w = b["in"]["shape"]
            e = _obj(e, f"gates.embed[{g}]")
            rows = e.get("weight")
            if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != c for r in rows):
                raise FracskipError(f"{where}'s embedding {g} does not take block {b['index']}'s {c} channels")
            if e.get("pool_mult") != pool_multiplier(h * w):
                raise FracskipError(f"{where}'s pool_mult {e.get('pool_mult')} of gate {g} does not average block "
                                    f"{b['index']}'s {h}x{w} feature map")
            heads = gates.get("channel_head")
            groups = {p["channels"]["groups"] for p in b["paths"].values() if "channels" in p}
            if heads is not None or groups:
                head = _obj(heads[g], f"gates.channel_head[{g}]").get("weight") if isinstance(heads, list) \
                    and g < len(heads) else None
                if not isinstance(head, list) or {len(head)} != groups:
                    raise FracskipError(f"{where}'s channel head {g} keeps {len(head) if head else 'no'} groups, "
                                        f"block {b['index']}'s channel paths have {sorted(groups) or 'none'}")

    def _channel_cores(self, p: dict, what: str, files: dict, channels: int) -> None:
        if not self.data.get("channels"):
            raise FracskipError(f"manifest {what} has channel cores but no top-level 'channels'; "
                                "re-run `fracskip export`")
        ch = _obj(p["channels"], f"{what}.channels")
        groups = ch.get("groups")
        kept = _obj(ch.get("kept"), f"{what}.channels.kept")
        if isinstance(groups, bool) or not isinstance(groups, int) or sorted(kept, key=str) != sorted(
                (str(k) for k in range(1, groups + 1)), key=str):
            raise FracskipError(f"manifest {what}.channels: kept must hold one core per count 1..groups")
        # the controller masks by the path's group size, the accelerator by the top-level one: one size, and the
        # groups cover the block's channels
        group = _obj(self.data["channels"], "channels").get("group")
        if isinstance(group, bool) or not isinstance(group, int) or ch.get("group") != group \
                or groups * group != channels:
            raise FracskipError(f"manifest {what}.channels: {groups} groups of {ch.get('group')!r} channels (top-level "
                                f"channels.group {group!r}) do not cover the block's {channels} channels; "
                                "re-run `fracskip export`")
        for k, c in kept.items():
            self._core(_obj(c, f"{what}.channels.kept[{k}]"), f"{what}.channels.kept[{k}]", files)

    def _core(self, c: dict, what: str, files: dict) -> None:
        if not isinstance(c.get("core"), str) or not c["core"]:
            raise FracskipError(f"manifest {what}: 'core' must be a name")
        if c.get("file") not in files:
            raise FracskipError(f"{what}: file {c.get('file')} not listed in files" if what.startswith("blocks")
                                else f"manifest {what}: file {c.get('file')!r} not listed in files")
        _number(c.get("bitops"), f"{what}.bitops")

    def verify_files(self) -> None:
        """Refuse a missing file or one whose sha256 differs from the manifest's."""
        for name, digest in self.data["files"].items():
            p = self.root / name
            if not p.is_file():
                raise FracskipError(f"{p} listed in the manifest is missing; re-run `fracskip export`")
            if sha256(p) != digest:
                raise FracskipError(f"{p} does not match its sha256 in the manifest (modified after export?); "
                                    f"re-run `fracskip export` rather than editing exported files")


def _obj(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise FracskipError(f"manifest: {what} must be a JSON object, got {type(v).__name__}; re-run `fracskip export`")
    return v


def _number(v, what: str, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")) \
            or v < 0 or (positive and v == 0):
        raise FracskipError(f"manifest: {what} must be a {'positive' if positive else 'non-negative'} number, "
                            f"got {v!r}; re-run `fracskip export`")
    return v


def _ints(v, what: str, lo: int = 0, hi: int | None = None) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo
                                          and (hi is None or x <= hi) for x in v):
        raise FracskipError(f"manifest: {what} must be a list of integers"
                            f"{f' in {lo}..{hi}' if hi is not None else f' >= {lo}'}, got {v!r}")
    return v


def _shape(v, what: str) -> list[int]:
    s = _ints(v, what, lo=1)
    if not s:
        raise FracskipError(f"manifest: {what} is empty")
    return s


def _plain_name(name) -> bool:
    return isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name \
        and "\\" not in name and "\0" not in name

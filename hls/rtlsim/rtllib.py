"""A Verilator-compatible copy of finn-plus's RTL library (finn-rtllib).

Two files of the installed library use SystemVerilog that Verilator 5.48 rejects (FINN-NOTES §4). The
project ships rewrites of them in ``rtllib_patches/`` (same folder layout as finn-rtllib; plus fracskip's own
additions, such as the sizing FIFO, under ``fracskip/``) with the SHA-256 of the upstream file each rewrite
was derived from: when finn-plus changes one of those files, the rewrite is stale and we stop rather than
simulate an outdated copy. The installed package is never modified;
FINN is pointed at the copy through ``FINN_RTLLIB`` (``fracskip.hls.finn_env.setup(..., rtllib=...)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from ...errors import FracskipError

log = logging.getLogger(__name__)

PATCH_DIR = Path(__file__).resolve().parent / "rtllib_patches"
MANIFEST = PATCH_DIR / "manifest.json"


def default_cache_dir() -> Path:
    """``$FRACSKIP_CACHE``, else ``$XDG_CACHE_HOME/fracskip``, else ``~/.cache/fracskip``."""
    if os.environ.get("FRACSKIP_CACHE"):
        return Path(os.environ["FRACSKIP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fracskip"


def installed_rtllib() -> Path:
    """finn-rtllib of the installed finn-plus package (not the FINN_RTLLIB override)."""
    try:
        import finn
    except ImportError as e:
        raise FracskipError("finn-plus is not installed: see the README's install recipe.") from e
    path = Path(finn.__file__).resolve().parent / "finn-rtllib"
    if not path.is_dir():
        raise FracskipError(f"finn-plus at {path.parent} has no finn-rtllib folder: reinstall finn-plus==1.6.1.")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest() -> dict:
    manifest = json.loads(MANIFEST.read_text())
    for rel in list(manifest["rewrites"]) + list(manifest["additions"]):
        if not (PATCH_DIR / rel).is_file():
            raise FracskipError(f"{rel}, listed in {MANIFEST}, is missing: the fracskip install is incomplete.")
    return manifest


def patched_files() -> dict[str, dict]:
    """{path relative to finn-rtllib: manifest entry} of the shipped rewrites of upstream files."""
    return _manifest()["rewrites"]


def added_files() -> list[str]:
    """Paths relative to finn-rtllib of fracskip's own additions (e.g. the sizing FIFO)."""
    return sorted(_manifest()["additions"])


def patch_hash() -> str:
    """Hash of everything fracskip changes in the library copy."""
    h = hashlib.sha256()
    for rel in sorted(patched_files()) + added_files():
        h.update(rel.encode())
        h.update((PATCH_DIR / rel).read_bytes())
    return h.hexdigest()[:16]


def copy_key(src: Path) -> str:
    """Hash of the library ``src`` as installed (every file it copies, 1.8 MB: milliseconds) and of the patches.
    finn-plus's version alone does not tell its files: a reinstall from another build or a local edit changes them
    under the same version, and a copy keyed by it would go on serving the old files, unchecked."""
    h = hashlib.sha256(patch_hash().encode())
    for f in sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = f.relative_to(src).as_posix().encode()
        data = f.read_bytes()
        h.update(len(rel).to_bytes(8, "little") + rel + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:16]


def _check_upstream(src: Path, entries: dict[str, dict]) -> None:
    for rel, entry in entries.items():
        upstream = src / rel
        if not upstream.is_file():
            raise FracskipError(f"finn-rtllib has no {rel} any more; the Verilator rewrite in {PATCH_DIR} targets "
                                f"finn-plus {entry['finn_version']}. Install that version or re-derive the rewrite.")
        if _sha256(upstream) != entry["upstream_sha256"]:
            raise FracskipError(
                f"finn-rtllib's {rel} differs from the one the Verilator rewrite {PATCH_DIR / rel} was derived from "
                f"(finn-plus {entry['finn_version']}): re-apply the rewrite to the new file and update "
                f"upstream_sha256 in {MANIFEST}, or install finn-plus=={entry['finn_version']}.")


def prepare_rtllib(cache_dir: Path | None = None) -> Path:
    """Return the folder of a Verilator-compatible finn-rtllib copy, creating it on first use.

    The copy lives in ``<cache_dir>/rtllib/finn-<version>-<hash>``, the hash of the installed library's files and
    of the rewrites (``copy_key``): one per content, so calling this again never changes a copy that a running
    simulation reads, and a library changed since a copy was made gets a copy of its own, its upstream files
    checked again.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    src = installed_rtllib()
    entries = patched_files()
    finn_version = metadata.version("finn-plus")
    dest = cache_dir / "rtllib" / f"finn-{finn_version}-{copy_key(src)}"
    if (dest / ".complete").is_file():
        return dest
    _check_upstream(src, entries)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # build beside the destination and rename: a concurrent or interrupted run never leaves a half copy
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        copy = tmp / "finn-rtllib"
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for rel in list(entries) + added_files():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PATCH_DIR / rel, copy / rel)
        (copy / ".complete").write_text(json.dumps({"finn_version": finn_version, "source": str(src),
                                                     "rewritten": sorted(entries),
                                                     "added": added_files()}, indent=1) + "\n")
        for attempt in range(3):  # a round is lost only to another process changing ``dest`` meanwhile
            try:
                copy.rename(dest)
                break
            except OSError:
                if (dest / ".complete").is_file():  # another process's copy came first
                    break
                if attempt == 2:
                    raise
                # copies arrive whole, so one without .complete was damaged since (a cleaner, an interrupted rm)
                # and no one uses it: moved aside to be deleted with ``tmp``, where it failed every later call
                with contextlib.suppress(OSError):
                    dest.rename(tmp / "damaged")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("Verilator-compatible finn-rtllib copy at %s (rewritten: %s; added: %s)", dest,
             ", ".join(sorted(entries)), ", ".join(added_files()))
    return dest


def setup_finn(build_dir: Path, cache_dir: Path | None = None) -> Path:
    """Initialise finn-plus for RTL simulation: FINN's generated code below ``build_dir`` and the
    Verilator-compatible library copy as its ``FINN_RTLLIB``. Call it before FINN generates HDL (PrepareIP)
    and before importing FINN transformations; returns the library copy."""
    from .. import finn_env

    rtllib = prepare_rtllib(cache_dir)
    finn_env.setup(Path(build_dir), rtllib=rtllib)
    return rtllib

"""Output folders of the multi-stage commands (``demo``, ``bench``, ``build``): made fresh, marked incomplete while
the command runs, and removed again (emptied, if the user gave an empty one) if it fails or is interrupted, so
that nothing half-written looks like a result; an earlier result that ``--force`` replaces is kept aside until the
new one is complete, and put back if it is not.
Single-stage outputs (an export, a deployment package) are written under a temporary name beside their place and
renamed when complete (``staged``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from .errors import FracskipError

INCOMPLETE = ".incomplete"


def _absolute(path: str | Path) -> Path:
    """``path`` from the root, '.' and '..' resolved: a relative one names another folder once the folder it is
    relative to (the working directory, '-o .') has been set aside."""
    return Path(os.path.abspath(path))


def _set_aside(path: Path) -> Path:
    """Rename ``path`` into a new temporary folder beside it (the same file system: nothing is copied) and return
    its new path; that folder (``.parent``) goes once the new result is in place, or ``path`` comes back."""
    path = path.absolute()
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.replaced-", dir=path.parent)) / path.name
    try:
        path.rename(aside)
    except BaseException:
        aside.parent.rmdir()
        raise
    return aside


def _empty(folder: Path) -> None:
    """Remove what a failed run wrote into a folder of the user's, the incomplete marker last: whatever cannot be
    removed stays marked as not a result."""
    for p in folder.iterdir():
        if p.name != INCOMPLETE:
            with suppress(OSError):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if [p.name for p in folder.iterdir()] == [INCOMPLETE]:
        (folder / INCOMPLETE).unlink()


def require_complete(folder: Path) -> None:
    """Refuse a folder that ``fresh`` left marked incomplete: its run was killed (an interrupted one is removed)."""
    if (Path(folder) / INCOMPLETE).exists():
        raise FracskipError(f"{folder} is incomplete: the run that made it was killed before it finished ({INCOMPLETE} "
                            "is still there). Run that command again with --force.")


@contextmanager
def fresh(out: str | Path, force: bool, command: str) -> Iterator[Path]:
    """``with fresh(out, force, "demo") as out: ...``: an empty ``out`` (a non-empty one only with ``force``),
    holding ``.incomplete`` until the block ends; removed entirely when the block raises (Ctrl-C included), or
    emptied if it was an empty folder of the user's, and then the folder it replaced is back as it was. An ``out``
    that is a symbolic link stays one, to the new folder."""
    out = Path(out).resolve() if Path(out).is_symlink() else _absolute(out)
    if out.exists() and not out.is_dir():
        raise FracskipError(f"{out} is a file; pass a folder (it is created if missing)")
    aside = None
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FracskipError(f"{out} is not empty: pass --force to replace it, or choose another -o folder")
        aside = _set_aside(out)
    given = out.is_dir()  # an empty folder of the user's (a mount point, perhaps): emptied again, not removed
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker = out / INCOMPLETE
        marker.write_text(f"a fracskip {command} is running or was interrupted; this folder is not usable\n")
        yield out
    except BaseException:
        if given:
            _empty(out)
        else:
            shutil.rmtree(out, ignore_errors=True)  # we made it: leave nothing that looks like a result
        if aside is not None:
            aside.rename(out)
            aside.parent.rmdir()
        raise
    marker.unlink(missing_ok=True)
    if aside is not None:
        shutil.rmtree(aside.parent, ignore_errors=True)


@contextmanager
def staged(out: Path, tag: str = "partial") -> Iterator[Path]:
    """``with staged(out) as tmp: ...``: the block writes into a temporary folder beside ``out``, which becomes
    ``out`` (replacing it) only when the block completes; if it raises, ``out`` is as it was and ``tmp`` is gone.
    An ``out`` that is a symbolic link stays one: its target is replaced."""
    out = out.resolve() if out.is_symlink() else _absolute(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}-", dir=out.parent))
    # mkdtemp's folder is private (0700): the result gets the mode mkdir gives a new folder here (the umask's)
    (probe := tmp / ".mode").mkdir()
    tmp.chmod(probe.stat().st_mode & 0o7777)
    probe.rmdir()
    aside = None
    try:
        yield tmp
        if out.exists():  # kept aside until the new folder is in place: no moment without one or the other
            aside = _set_aside(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not out.exists():
            aside.rename(out)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside.parent, ignore_errors=True)


@contextmanager
def replacing(*paths: Path) -> Iterator[None]:
    """``with replacing(a, b): ...``: the block writes ``a`` and ``b`` anew; those that exist are set aside
    meanwhile and go when it completes. If it raises, what it wrote at those paths goes and they are back as
    they were (a failed re-run leaves the earlier result, not a mix of the two). A path that is a symbolic link
    stands for its target, as in ``fresh`` and ``staged``."""
    paths = tuple(p.resolve() if p.is_symlink() else _absolute(p) for p in paths)
    asides: dict[Path, Path] = {}
    try:
        for p in paths:
            if p.exists():
                asides[p] = _set_aside(p)
    except BaseException:  # nothing written yet: the ones already moved go back
        _restore(asides)
        raise
    try:
        yield
    except BaseException:
        for p in paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink()
        _restore(asides)
        raise
    for aside in asides.values():
        shutil.rmtree(aside.parent, ignore_errors=True)


def _restore(asides: dict[Path, Path]) -> None:
    for p, aside in asides.items():
        aside.rename(p)
        aside.parent.rmdir()

"""FINN's front end of a core (``steps.frontend_steps``: QONNX to FINN-ONNX, tidy-up, streamlining in float64),
computed once per core file: the golden run (export/verify.py) and the build's analysis (hls/core.py) of the
same export take it from here instead of streamlining each core twice (about a third of a core's analysis).

Kept in fracskip's cache folder (``$FRACSKIP_CACHE``, else ``~/.cache/fracskip``) as ``frontend/<key>.onnx``,
the key a sha256 of the core's QONNX file, of fracskip's build code (every ``hls/*.py``, which the steps import)
and of the finn-plus and qonnx versions: a changed core, step or FINN never reads an older graph. Files appear
by atomic rename, so concurrent builds (pytest-xdist workers, ``--workers``) never read half a file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

@functools.cache
def _code_key() -> str:
    h = hashlib.sha256()
    for pkg in ("finn-plus", "qonnx"):
        h.update(f"{pkg}={metadata.version(pkg)};".encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def cache_path(qonnx_file: str | Path, cache_dir: Path | None = None) -> Path:
    from .rtlsim.rtllib import default_cache_dir

    h = hashlib.sha256(_code_key().encode())
    h.update(Path(qonnx_file).read_bytes())
    return (cache_dir or default_cache_dir()) / "frontend" / f"{h.hexdigest()[:32]}.onnx"


def lookup(qonnx_file: str | Path) -> Path | None:
    """The cached front-end graph of this core file, if there is one."""
    p = cache_path(qonnx_file)
    return p if p.is_file() else None


def store(qonnx_file: str | Path, model_or_file) -> None:
    """Keep a front-end graph (a ModelWrapper or an .onnx file) for this core file."""
    p = cache_path(qonnx_file)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".part-", suffix=".onnx")
    os.close(fd)
    try:
        if isinstance(model_or_file, (str, Path)):
            Path(tmp).write_bytes(Path(model_or_file).read_bytes())
        else:
            model_or_file.save(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

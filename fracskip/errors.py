"""The one exception type of fracskip: its message always says what to do."""

from __future__ import annotations  # a board's Python (3.8 on PYNQ images) imports this module too

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class FracskipError(Exception):
    """A user-facing error. The CLI prints the message and exits non-zero."""


class ToolMissingError(FracskipError):
    """A required external tool (Vivado, Vitis, a board) is not available here."""


@contextmanager
def reported() -> Iterator[None]:
    """A module command's body (``python -m fracskip.hls.shell`` and its kind): a FracskipError ends it as it ends
    the CLI, ``fracskip: error: ...`` and exit 2, no traceback."""
    try:
        yield
    except FracskipError as e:
        print(f"fracskip: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

"""The project's own FINN custom ops, registered into FINN's registry on import (the installed package is not changed)."""

from . import clip_rtl, duplicatestreams_rtl  # noqa: F401

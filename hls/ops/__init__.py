"""The project's own FINN custom ops, registered into FINN's registry on import (the installed package is not changed)."""

from ..bitserial import op as bitserial_op  # noqa: F401  MVAU_bitserial, the runtime-precision MVU
from ..lutmvu import op as lutmvu_op  # noqa: F401  MVAU_lut, the LUT-based MVAU
from . import clip_rtl, duplicatestreams_rtl, gate_rtl, requant_rtl  # noqa: F401

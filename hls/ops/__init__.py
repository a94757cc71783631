"""The project's own FINN custom ops, registered into FINN's registry on import (the installed package is not changed)."""

from ..bitserial import op as bitserial_op  # noqa: F401  MVAU_bitserial, the runtime-precision MVU
from ..lutmvu import op as lutmvu_op  # noqa: F401  MVAU_lut, the LUT-based MVAU
from . import clip_rtl, duplicatestreams_rtl, gate_rtl, requant_rtl  # noqa: F401
from . import global_sum_rtl, stream_merge_rtl, stream_route_rtl, token_fork_rtl, token_join_rtl  # noqa: F401  the accelerator's
from . import modal_act_rtl, mode_fork_rtl  # noqa: F401  the block's runtime-precision datapath (hls/modal.py)

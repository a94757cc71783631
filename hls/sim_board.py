"""A simulated board for the accelerator's driver (``fracskip.runtime.accelerator_driver``): the memory as
``pynq.allocate`` sees it, the IODMAs' AXI-lite registers as FINN's ``FINNDMAOverlay`` drives them, and every
transfer streamed through the Verilator model of the whole accelerator. ``fracskip deploy PACKAGE --simulate``
runs the board's code path on it, without a board.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import FracskipError

log = logging.getLogger(__name__)


class SimBuffer(np.ndarray):
    """A ``pynq.allocate`` buffer: a numpy array with a device address, ``flush`` and ``invalidate``."""

    device_address: int = 0

    def flush(self) -> None:  # the simulated memory is coherent
        pass

    def invalidate(self) -> None:
        pass


class SimIODMA:
    """A FINN IODMA's AXI-lite registers as FINNDMAOverlay uses them on zynq-iodma: 0x00 control/status
    (ap_start 0x1, ap_done 0x2 clear-on-read, ap_idle 0x4), 0x10/0x14 buffer address, 0x1C frames. Starting an
    input DMA tells the overlay, which runs the transfer once every DMA is armed; an accelerator that stalls
    (cycle limit) never raises ap_done, as on hardware."""

    def __init__(self, overlay: "AcceleratorSimOverlay", name: str, is_input: bool):
        self.overlay, self.name, self.is_input = overlay, name, is_input
        self.regs = {0x00: 0x4, 0x10: 0, 0x14: 0, 0x1C: 0}

    def read(self, offset: int) -> int:
        v = self.regs.get(offset, 0)
        if offset == 0x00:
            self.regs[0x00] &= ~0x2
        return v

    def write(self, offset: int, value: int) -> None:
        self.regs[offset] = int(value)
        if offset == 0x00 and value & 0x1:
            self.regs[0x00] = 0x1  # busy
            if self.is_input:
                self.overlay._transfer()


class SimMemory:
    """The board's memory as ``pynq.allocate`` sees it: buffers at device addresses, found again by the address
    a DMA's registers hold."""

    def __init__(self):
        self._buffers: dict[int, SimBuffer] = {}
        self._next_address = 0x1000_0000

    def allocate(self, shape, dtype=np.uint8, cacheable: bool = True, target=None) -> SimBuffer:
        buf = np.zeros(shape, dtype).view(SimBuffer)
        buf.device_address = self._next_address
        self._next_address += (buf.nbytes + 0xFFF) & ~0xFFF or 0x1000
        self._buffers[buf.device_address] = buf
        return buf

    def _buffer(self, dma: "SimIODMA") -> SimBuffer:
        addr = dma.regs[0x10] | (dma.regs[0x14] << 32)
        if addr not in self._buffers:
            raise FracskipError(f"DMA {dma.name} points at 0x{addr:x}, which is no allocated buffer")
        return self._buffers[addr]


class AcceleratorSimOverlay(SimMemory):
    """The board as the accelerator's driver sees it (``fracskip.runtime.accelerator_driver``), simulated: the IODMAs
    of the package's ``driver/settings.json`` as registers (``SimIODMA``), ``allocate`` for buffers, and starting the
    input DMA with every output DMA armed streams the input buffer through the Verilator model of the whole
    accelerator (``simulation/accelerator.onnx``) and writes each output stream into its output DMA's buffer.

    The model is the package's ``simulation/accelerator.onnx``: the emitted HDL (FINN's fifo.sv), or, where the
    package has ``fifo_depths.json``, the graph FIFO sizing simulated, with its run-time-depth FIFOs at those depths.
    Either way the Verilator binary is the one the build (its emitted-HDL check) or the sizing compiled, cached by
    content, so nothing is verilated again. ``results``: the ``SimResult`` of every transfer."""

    def __init__(self, pkg, cache_dir: str | Path | None = None, cycle_limit: int | None = None,
                 progress: bool = False):
        from qonnx.core.modelwrapper import ModelWrapper

        from .deploy_package import SIM_DEPTHS, SIM_MODEL
        from .rtlsim import RTLSimCore, default_cache_dir, setup_finn

        if not (pkg.folder / SIM_MODEL).is_file():
            raise FracskipError(f"{pkg.folder / SIM_MODEL} is missing: the package was not written for simulation "
                                "(python -m fracskip.hls.deploy_package BUILD -o PACKAGE)")
        self.pkg, self.io = pkg, pkg.io
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        setup_finn(cache / "finn_build", cache)
        from . import ops  # noqa: F401  fracskip's RTL ops

        depths = pkg.folder / SIM_DEPTHS
        t0 = time.time()
        self.sim = RTLSimCore(ModelWrapper(str(pkg.folder / SIM_MODEL)), cache_dir=cache,
                              sizing_fifos=depths.is_file(), cycle_limit=cycle_limit, progress=progress)
        self.build_seconds = time.time() - t0
        sized = json.loads(depths.read_text()) if depths.is_file() else {}
        self.fifos = "sizing FIFOs at the sized depths" if depths.is_file() else "as emitted (FINN's fifo.sv)"
        self.depths = [int(sized.get(s.node, s.depth)) for s in self.sim.fifos] if depths.is_file() else None
        self._check_streams()
        self.results: list = []
        self.ip_dict = {}
        super().__init__()
        for names, is_in in ((self.io["idma_names"], True), (self.io["odma_names"], False)):
            for name in names:
                setattr(self, name, SimIODMA(self, name, is_in))
                self.ip_dict[name] = {"type": "xilinx.com:hls:idma:1.0" if is_in else "xilinx.com:hls:odma:1.0"}

    def _check_streams(self) -> None:
        """FINN's packed layout of every stream = the simulated stream's words (order: the graph's)."""
        for side, ports in (("i", self.sim.inputs), ("o", self.sim.outputs)):
            shapes = self.io[f"{side}shape_packed"]
            if len(shapes) != len(ports):
                raise FracskipError(f"driver settings list {len(shapes)} {side}-streams, the accelerator has "
                                    f"{len(ports)}: the package does not match its simulation model")
            for j, (shape, p) in enumerate(zip(shapes, ports)):
                if shape[-1] != p.word_bytes or int(np.prod(shape[1:-1])) != p.words_per_frame:
                    raise FracskipError(f"stream {p.tensor}: FINN's packed shape {shape} is not its "
                                        f"{p.words_per_frame} words of {p.word_bytes} bytes per image")

    def _transfer(self) -> None:
        idmas = [getattr(self, n) for n in self.io["idma_names"]]
        odmas = [getattr(self, n) for n in self.io["odma_names"]]
        n = idmas[0].regs[0x1C]
        if any(d.regs[0x00] & 0x1 == 0 for d in idmas) or any(d.regs[0x00] & 0x1 == 0 or d.regs[0x1C] != n
                                                               for d in odmas):
            return  # FINN's driver starts the output DMAs first, then every input: the last start runs it
        words = [self._buffer(d).reshape(-1)[:n * p.words_per_frame * p.word_bytes].tobytes()
                 for d, p in zip(idmas, self.sim.inputs)]
        res = self.sim.run_words(words, n, fifo_depths=self.depths, check=False)
        self.results.append(res)
        if res.stalled:
            log.warning("the simulated accelerator stalled after %d cycles (%s): its DMAs never finish",
                        res.cycles, res.stall_diagnosis)
            return
        for d, raw in zip(odmas, res.raw_outputs):
            out = np.frombuffer(raw, np.uint8)
            self._buffer(d).reshape(-1)[:out.size] = out
        for d in idmas + odmas:
            d.regs[0x00] = 0x6  # done, idle

    def cycle_report(self) -> dict:
        """Steady-state cycles per image over the transfers (frames back to back within each), and latency."""
        frames = [len(r.frame_cycles) for r in self.results if not r.stalled]
        cpf = [r.cycles_per_frame for r in self.results if not r.stalled and len(r.frame_cycles) > 1]
        return {"transfers": len(self.results), "images": int(sum(frames)),
                "cycles_per_image": float(np.mean(cpf)) if cpf else None,
                "first_image_latency_cycles": self.results[0].latency if self.results else None,
                "estimate_max_cycles": int(self.sim.estimate["max_cycles"]) if self.sim.estimate else None}

    def close(self) -> None:
        self.sim.close()

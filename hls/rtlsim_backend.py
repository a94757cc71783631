"""Backend ``rtlsim``: the controller drives the Verilator models of a build's cores (hardware in the loop,
simulated; DESIGN.md, simulation tier 2).

Per core, from ``BUILD_DIR/cores/<core>/intermediate_models/``:

- the dataflow partition (``step_fracskip_size_fifos.onnx`` when ``fracskip build --size-fifos`` sized its FIFOs,
  else ``step_fracskip_hdl.onnx``) is stitched and verilated on first use (``rtlsim.RTLSimCore``; binaries are
  cached by content, so a second run starts at once);
- the host-side nodes of FINN's parent graph (``dataflow_parent.onnx``: the NCHW<->NHWC transposes, the head's
  scale and bias) become the board driver's ``HostProgram``s, and batches are packed and unpacked with the board
  driver's numpy packing (``fracskip.runtime.driver``), so the simulation exercises the code the board runs.

The same description of every core (FINN's ``io_shape_dict`` plus the host programs) is what ``write_package``
puts into a deploy package's ``settings.json``; ``SimOverlay`` is a ``pynq.Overlay`` stand-in whose IODMAs stream
the driver's buffers through these Verilator models, for testing the board driver without a board.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FracskipError
from ..runtime import driver as drv

log = logging.getLogger(__name__)

MODEL_FILES = ("step_fracskip_size_fifos.onnx", "step_fracskip_hdl.onnx")  # newest first
PARENT_FILE = "dataflow_parent.onnx"
PLATFORM = {"vivado_zynq": "zynq-iodma", "vitis_alveo": "alveo"}


# ---------------------------------------------------------------- what the host and the driver need per core


def core_model_path(build_dir: Path, core: str) -> Path:
    """The dataflow partition of ``core`` that the simulation (and a later bitstream) uses."""
    im = Path(build_dir) / "cores" / core / "intermediate_models"
    for name in MODEL_FILES:
        if (im / name).is_file():
            return im / name
    raise FracskipError(f"{im} has no {' or '.join(MODEL_FILES)}: build with `fracskip build ... --until hdl`")


def _host_op(model, node, core: str, params: dict[str, np.ndarray]) -> dict:
    from qonnx.util.basic import get_by_name

    dyn = [i for i in node.input if i and model.get_initializer(i) is None]
    if len(dyn) != 1 or len(node.output) != 1:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) is not a single-input op")
    op = {"op": node.op_type}
    if node.op_type == "Transpose":
        op["perm"] = [int(p) for p in get_by_name(node.attribute, "perm").ints]
    elif node.op_type in ("Mul", "Add", "Sub", "Div"):
        const = node.input[0] if node.input[1] == dyn[0] else node.input[1]
        op["param"] = f"{core}/{node.name}"
        op["const_first"] = node.input[0] == const
        params[op["param"]] = np.asarray(model.get_initializer(const), dtype=np.float32)
    elif node.op_type == "Reshape":
        op["shape"] = [int(s) for s in model.get_initializer(node.input[1])]
    elif node.op_type == "Flatten":
        if (get_by_name(node.attribute, "axis").i if get_by_name(node.attribute, "axis") else 1) != 1:
            raise FracskipError(f"{core}: Flatten {node.name} with axis != 1 on the host")
    elif node.op_type in ("ReduceMean", "ReduceSum"):
        axes = get_by_name(node.attribute, "axes")
        op["axes"] = [int(a) for a in (axes.ints if axes else model.get_initializer(node.input[1]))]
        kd = get_by_name(node.attribute, "keepdims")
        op["keepdims"] = int(kd.i) if kd else 1
    elif node.op_type not in drv.HOST_OPS:
        raise FracskipError(f"{core}: host node {node.name} ({node.op_type}) is not one the board driver runs "
                            f"({', '.join(drv.HOST_OPS)})")
    return op


def host_programs(parent, core: str, params: dict[str, np.ndarray]) -> tuple[list[dict], list[dict]]:
    """The parent graph's nodes before and after its one StreamingDataflowPartition, as host-op lists."""
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if len(sdp) != 1:
        raise FracskipError(f"{core}: the parent graph has {len(sdp)} dataflow partitions, the driver expects one")
    pre, post, seen = [], [], False
    for node in parent.graph.node:  # topologically sorted by FINN
        if node.op_type == "StreamingDataflowPartition":
            seen = True
            continue
        (post if seen else pre).append(_host_op(parent, node, core, params))
    return pre, post


def io_shape_dict(model, core: str) -> dict:
    """FINN's ``io_shape_dict`` (``finn.util.basic.get_driver_shapes``) of a dataflow partition, with the DMA
    names a fracskip multi-core bitstream gives each core: ``idma_<core>`` / ``odma_<core>``."""
    from qonnx.custom_op.registry import getCustomOp

    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise FracskipError(f"{core}: the driver handles cores with one input and one output stream")
    t_in, t_out = model.graph.input[0].name, model.graph.output[0].name
    first, last = getCustomOp(model.find_consumer(t_in)), getCustomOp(model.find_producer(t_out))
    d: dict = {}
    for side, tensor, inst, folded in (("i", t_in, first, first.get_folded_input_shape()),
                                       ("o", t_out, last, last.get_folded_output_shape())):
        dt = model.get_tensor_datatype(tensor)
        folded = [int(s) for s in folded]
        d[f"{side}dt"] = [f"DataType['{dt.name}']"]
        d[f"{side}shape_normal"] = [[int(s) for s in model.get_tensor_shape(tensor)]]
        d[f"{side}shape_folded"] = [folded]
        d[f"{side}shape_packed"] = [folded[:-1] + [(folded[-1] * dt.bitwidth() + 7) // 8]]
    d.update(idma_names=[f"idma_{core}"], odma_names=[f"odma_{core}"], num_inputs=1, num_outputs=1)
    return d


def driver_settings(build_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """settings.json content and host constants for every core of an HDL build."""
    from qonnx.core.modelwrapper import ModelWrapper

    build_dir = Path(build_dir)
    summary = _summary(build_dir)
    board = summary["board"]
    params: dict[str, np.ndarray] = {}
    cores = {}
    for core, c in summary["cores"].items():
        im = build_dir / "cores" / core / "intermediate_models"
        parent = ModelWrapper(str(im / PARENT_FILE))
        pre, post = host_programs(parent, core, params)
        cores[core] = {"io_shape_dict": io_shape_dict(ModelWrapper(str(core_model_path(build_dir, core))), core),
                       "host": {"pre": pre, "post": post,
                                "input_shape": [int(s) for s in parent.get_tensor_shape(parent.graph.input[0].name)]},
                       "estimate_cycles": int(c["cycles"])}
    info = {"driver_type": "FracskipOverlay", "platform": PLATFORM.get(board["shell_flow"], "zynq-iodma"),
            "fclk_mhz": 1e3 / board["clk_ns"], "board": board["name"], "bitfile": "bitfile/fracskip.bit",
            "note": f"DMA names follow fracskip's convention idma_<core>/odma_<core>; {drv.NOT_ON_A_BOARD}"}
    return {"format": drv.FORMAT, "driver_information": info, "cores": cores}, params


def write_package(build_dir: str | Path, out: str | Path, bitfile: str | Path | None = None) -> Path:
    """A deploy package for ``fracskip deploy`` (layout: fracskip.runtime.driver). Without ``bitfile`` it has no
    bitstream (none can be built without Vivado); the driver then refuses to open it on a board."""
    build_dir, out = Path(build_dir), Path(out)
    settings, params = driver_settings(build_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    np.savez(out / "host_params.npz", **params)
    shutil.copytree(build_dir / "export", out / "export", dirs_exist_ok=True)
    if bitfile is not None:
        (out / "bitfile").mkdir(exist_ok=True)
        for f in Path(bitfile).parent.glob(Path(bitfile).stem + ".*"):  # .bit with its .hwh, or .xclbin
            shutil.copyfile(f, out / "bitfile" / ("fracskip" + f.suffix))
        settings["driver_information"]["bitfile"] = "bitfile/fracskip" + Path(bitfile).suffix
        (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    return out


def _summary(build_dir: Path) -> dict:
    path = build_dir / "summary.json"
    if not path.is_file():
        raise FracskipError(f"{build_dir} has no summary.json: pass a folder written by `fracskip build --until hdl`")
    s = json.loads(path.read_text())
    if s.get("until") not in ("hdl", "bitstream"):
        raise FracskipError(f"{build_dir} was built --until {s.get('until')}: the RTL simulation needs HDL "
                            "(`fracskip build ... --until hdl`)")
    return s


# ---------------------------------------------------------------- the Verilator models, built on first use


@dataclass
class CoreStats:
    """Measured cycles of one core over all calls."""

    estimate: int  # FINN's max_cycles of the simulated model (the slowest layer), cycles per frame
    calls: int = 0
    frames: int = 0
    cycles: float = 0.0  # sum over frames of the steady-state cycles per frame of their call
    latency: list[int] = field(default_factory=list)  # first-frame latency per call

    @property
    def cycles_per_frame(self) -> float:
        return self.cycles / self.frames if self.frames else float("nan")

    def to_dict(self) -> dict:
        return {"calls": self.calls, "frames": self.frames, "cycles_per_frame": self.cycles_per_frame,
                "estimate_max_cycles": self.estimate, "cycles_vs_estimate": self.cycles_per_frame / self.estimate,
                "mean_latency": float(np.mean(self.latency)) if self.latency else None}


class CoreSims:
    """One ``RTLSimCore`` per core of a build, built on first use."""

    def __init__(self, build_dir: Path, cores: list[str], cache_dir: Path | None, cycle_limit: int | None,
                 progress: bool):
        from .rtlsim import default_cache_dir

        self.build_dir, self.names = build_dir, cores
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.setup_finn()
        self.cycle_limit, self.progress = cycle_limit, progress
        self.sims: dict = {}
        self.sized: dict[str, bool] = {}
        self.build_seconds = 0.0

    def setup_finn(self) -> None:
        """FINN with the Verilator-compatible finn-rtllib copy. Stitching reads the library then; the HDL that
        PrepareIP generated names no library file, so a build made with the stock library simulates unchanged.
        Repeated before each stitch: other code in this process may have re-initialised FINN since."""
        from .rtlsim import setup_finn

        setup_finn(self.cache_dir / "finn_build", self.cache_dir)
        from . import ops  # noqa: F401  registers fracskip's RTL custom ops (DuplicateStreams_rtl)

    def __getitem__(self, core: str):
        if core not in self.sims:
            from qonnx.core.modelwrapper import ModelWrapper

            from .rtlsim import RTLSimCore

            if core not in self.names:
                raise FracskipError(f"core {core!r} is not in this build ({', '.join(self.names)})")
            t0 = time.time()
            self.setup_finn()
            path = core_model_path(self.build_dir, core)
            log.info("rtlsim: core %s (%d/%d): stitching and verilating %s", core, len(self.sims) + 1,
                     len(self.names), path.name)
            self.sims[core] = RTLSimCore(ModelWrapper(str(path)), cache_dir=self.cache_dir, jobs=1,
                                         cycle_limit=self.cycle_limit, progress=self.progress)
            self.sized[core] = path.name == MODEL_FILES[0]
            self.build_seconds += time.time() - t0
            log.info("rtlsim: core %s ready in %.0f s (%s)", core, time.time() - t0,
                     "compiled" if self.sims[core].compiled else "cached binary")
        return self.sims[core]

    def run(self, core: str, words: bytes, n: int, check: bool = True):
        sim = self[core]
        try:
            return sim.run_words([words], n, check=check)
        except FracskipError as e:
            if "stalled" in str(e) and not self.sized[core]:
                raise FracskipError(f"core {core}: {e} The FIFOs of this build were not sized by simulation: run "
                                    "`fracskip build ... --size-fifos` (or hls.build.size_build_fifos).") from e
            raise FracskipError(f"core {core}: {e}") from e

    def close(self) -> None:
        for s in self.sims.values():
            s.close()
        self.sims.clear()


class RTLSimBackend:
    """The controller's backend on the Verilator models of a build (see the module docstring).

    After each ``run``: ``last_cycles`` (per input: the call's steady-state cycles per frame, i.e. the spacing
    of frame completions when the batch streams back to back: what a pipelined core costs per input; a batch
    of one is streamed twice, since one frame has no steady state), ``last_outputs`` (the core's integer
    output, FINN's normal NHWC shape, before the host post-ops) and ``last_inputs`` (its integer input).
    """

    name = "rtlsim"

    def __init__(self, build_dir: str | Path, cache_dir: str | Path | None = None, cycle_limit: int | None = None,
                 progress: bool = True):
        self.build_dir = Path(build_dir)
        settings, params = driver_settings(self.build_dir)
        self.io = {c: drv.CoreIO.from_settings(c, e, params) for c, e in settings["cores"].items()}
        self.sims = CoreSims(self.build_dir, list(self.io), cache_dir, cycle_limit, progress)
        self.stats = {c: CoreStats(estimate=io.estimate_cycles) for c, io in self.io.items()}
        self.last_cycles: np.ndarray | None = None
        self.last_outputs: np.ndarray | None = None
        self.last_inputs: np.ndarray | None = None
        self._python: dict = {}

    @property
    def build_seconds(self) -> float:
        """Time spent stitching and verilating so far (not simulation)."""
        return self.sims.build_seconds

    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        io = self._io(core)
        n = len(x)
        xin = io.pre(io.check_input(x))
        self._check(io, xin)
        words = drv.pack(xin.reshape((n,) + io.ishape_folded[1:]), io.idt).tobytes()
        frames = max(n, 2)  # one frame has no steady state: stream it twice
        res = self.sims.run(core, words * (frames // n), frames)
        y = io.from_stream(np.frombuffer(res.raw_outputs[0], np.uint8), frames)[:n]
        st = self.stats[core]
        st.calls += 1
        st.frames += n
        st.cycles += n * res.cycles_per_frame
        st.latency.append(res.latency)
        self.last_cycles = np.full(n, res.cycles_per_frame)
        self.last_inputs, self.last_outputs = xin, y
        return io.post(y)

    def reference(self, core: str, x: np.ndarray) -> np.ndarray:
        """FINN's Python execution of the same partition on the same input: the integer output ``run`` must give
        (``last_outputs``). FINN's thresholds are exact integer arithmetic."""
        from finn.core.onnx_exec import execute_onnx

        io = self._io(core)
        xin = io.pre(io.check_input(x))
        model = self._python_model(core)
        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        return np.concatenate([execute_onnx(model, {iname: xin[i:i + 1]})[oname] for i in range(len(xin))])

    def cycle_report(self) -> dict:
        """Per core used so far: frames, measured cycles per frame, FINN's estimate and their ratio; overall: the
        measured cycles of all frames over the estimated cycles of the same frames."""
        used = {c: s for c, s in self.stats.items() if s.frames}
        est = sum(s.frames * s.estimate for s in used.values())
        return {"cores": {c: s.to_dict() for c, s in used.items()},
                "overall_vs_estimate": sum(s.cycles for s in used.values()) / est if est else None}

    def close(self) -> None:
        self.sims.close()

    def __enter__(self) -> "RTLSimBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----
    def _io(self, core: str) -> drv.CoreIO:
        io = self.io.get(core)
        if io is None:
            raise FracskipError(f"core {core!r} is not in the build {self.build_dir} ({', '.join(self.io)})")
        return io

    @staticmethod
    def _check(io: drv.CoreIO, xin: np.ndarray) -> None:
        if tuple(xin.shape[1:]) != io.ishape_normal[1:]:
            raise FracskipError(f"core {io.name}: host ops give {xin.shape}, the core takes {io.ishape_normal}")
        io.idt.check(xin, f"core {io.name} input")

    def _python_model(self, core: str):
        """The simulated partition with each ``*_rtl`` node (and fracskip's MVAU_lut) mapped back to its abstract
        FINN op, whose ``execute_node`` is FINN's Python model of the layer."""
        if core not in self._python:
            from qonnx.core.modelwrapper import ModelWrapper

            m = ModelWrapper(str(core_model_path(self.build_dir, core)))
            for n in m.graph.node:
                op, _, impl = n.op_type.rpartition("_")
                if impl in ("rtl", "lut"):
                    n.op_type, n.domain = op, "finn.custom_op.fpgadataflow"
            self._python[core] = m
        return self._python[core]


# ---------------------------------------------------------------- a pynq.Overlay stand-in for the board driver


class SimBuffer(np.ndarray):
    """A ``pynq.allocate`` buffer: a numpy array with a device address, ``flush`` and ``invalidate``."""

    device_address: int = 0

    def flush(self) -> None:  # the simulated memory is coherent
        pass

    def invalidate(self) -> None:
        pass


class SimIODMA:
    """A FINN IODMA's AXI-lite registers as FINNDMAOverlay uses them on zynq-iodma: 0x00 control/status
    (ap_start 0x1, ap_done 0x2 clear-on-read, ap_idle 0x4), 0x10/0x14 buffer address, 0x1C frames. Starting the
    input DMA of a core whose output DMA is armed streams the input buffer through the core's Verilator model
    and writes the output buffer; a core that stalls (cycle limit) never raises ap_done, as on hardware."""

    def __init__(self, overlay: "SimOverlay", core: str, is_input: bool):
        self.overlay, self.core, self.is_input = overlay, core, is_input
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
                self.overlay._transfer(self.core)


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
            raise FracskipError(f"a DMA of {dma.core} points at 0x{addr:x}, which is no allocated buffer")
        return self._buffers[addr]


class SimOverlay(SimMemory):
    """The board as the driver sees it, simulated: one IODMA pair per core (``idma_<core>``/``odma_<core>``),
    ``allocate`` for buffers, and every transfer streamed through the core's Verilator model."""

    def __init__(self, build_dir: str | Path, cache_dir: str | Path | None = None, cycle_limit: int | None = None,
                 progress: bool = True):
        build_dir = Path(build_dir)
        settings, self.params = driver_settings(build_dir)
        self.info, self.settings = settings["driver_information"], settings
        self.sims = CoreSims(build_dir, list(settings["cores"]), cache_dir, cycle_limit, progress)
        self.ip_dict = {}
        super().__init__()
        self.last_result: dict = {}
        for core, e in settings["cores"].items():
            d = e["io_shape_dict"]
            for name, is_in in ((d["idma_names"][0], True), (d["odma_names"][0], False)):
                setattr(self, name, SimIODMA(self, core, is_in))
                self.ip_dict[name] = {"type": "xilinx.com:hls:idma:1.0" if is_in else "xilinx.com:hls:odma:1.0"}

    def cores(self) -> dict[str, drv.CoreIO]:
        return {c: drv.CoreIO.from_settings(c, e, self.params) for c, e in self.settings["cores"].items()}

    def _transfer(self, core: str) -> None:
        d = self.settings["cores"][core]["io_shape_dict"]
        idma, odma = getattr(self, d["idma_names"][0]), getattr(self, d["odma_names"][0])
        n = idma.regs[0x1C]
        if odma.regs[0x00] & 0x1 == 0 or odma.regs[0x1C] != n:
            raise FracskipError(f"core {core}: input DMA started without an armed output DMA for {n} frames")
        ibuf, obuf = self._buffer(idma), self._buffer(odma)
        per_frame_in = int(np.prod(d["ishape_packed"][0][1:]))
        res = self.sims.run(core, ibuf.reshape(-1)[:n * per_frame_in].tobytes(), n, check=False)
        self.last_result[core] = res
        if res.stalled:
            log.warning("simulated core %s stalled after %d cycles (words in %s, out %s; %s): its DMA never finishes",
                        core, res.cycles, res.words_in, res.words_out, res.stall_diagnosis)
            return
        out = np.frombuffer(res.raw_outputs[0], np.uint8)
        obuf.reshape(-1)[:out.size] = out
        idma.regs[0x00] = odma.regs[0x00] = 0x6  # done, idle

    def close(self) -> None:
        self.sims.close()


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
                setattr(self, name, SimIODMA(self, "accelerator", is_in))
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

    def _transfer(self, _core: str) -> None:
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

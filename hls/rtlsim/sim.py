"""Bit-exact, cycle-accurate simulation of a FINN all-RTL dataflow core in Verilator, driven from Python.

The stitched core is verilated once; the simulator binary is cached under a hash of the RTL text (FINN's
generated folder names masked), the memory files, the testbench, the Verilator version and flags and the C++
optimisation, so building the same core again, in this process or another, reuses it. The C++ compiler is not
in it: clear the cache after changing compilers. Compiler flags of the environment (CXXFLAGS, ...) never reach
the build (``Verilator.env``). The simulator runs as one persistent process fed over pipes (testbench.cpp): a
call costs one pipe round trip instead of a process start and model construction. Frames are packed into
AXI-stream words with FINN's own ``finn.util.data_packing`` (the layout its PYNQ driver uses) and streamed
back-to-back. Integer streams whose values float32, FINN's container, cannot all hold (past 2^24: wide
accumulators) are packed and unpacked as integers instead, exactly (``exact_ints``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import FracskipError
from .rtllib import default_cache_dir
from .stitch import StitchedCore, StreamPort, diagnose_stall, stitch
from .verilator import CXX_OPT, Verilator, build_errors, find_verilator

log = logging.getLogger(__name__)

TESTBENCH = Path(__file__).resolve().parent / "testbench.cpp"
EXE = "Vsim"
_REQ_MAGIC, _ANS_MAGIC, _PRG_MAGIC = 0x51525346, 0x41525346, 0x50525346
# cycles between progress records at least: a second or so of the default accelerator's model
PROGRESS_EVERY = 1 << 17
# the compiled models a cache keeps (rtlsim/ and the harness's harness/ each), least recently used first out: every
# change of a source makes new ones (0.3 to 2.6 MB each, the default's accelerator 2 MB), and a cache that outlives
# its builds, as CI's, would grow without end
RTLSIM_CACHE_BYTES = 4 << 30
# a build folder (``<key>.build-*``) untouched for this long was left by a killed process: a live build writes into
# it every few seconds, and the longest take minutes
STALE_BUILD_SECONDS = 24 * 3600


@dataclass
class SimResult:
    outputs: list[np.ndarray]  # per graph output, (n_frames, *normal shape without batch): FINN's float32 values, or
    # int64 (uint64 for UINT64) for a datatype past float32's exact integers (exact_ints)
    cycles: int  # cycles simulated by this call: from the first input word offered until the last output word
    # was taken and every input word read (a core may read a frame's end after its last output; see testbench.cpp)
    frame_cycles: list[int]  # per frame, the cycle at which its last output word was taken
    stalled: bool = False  # the cycle limit was reached before all outputs arrived and all inputs were taken
    words_in: list[int] = field(default_factory=list)  # words consumed per input
    words_out: list[int] = field(default_factory=list)  # words produced per output
    fifo_maxcount: list[int] = field(default_factory=list)  # sizing cores: peak occupancy per FIFO
    raw_outputs: list[bytes] = field(default_factory=list)  # per output, the words as little-endian bytes
    stream_state: list[tuple[bool, bool]] = field(default_factory=list)  # (TVALID, TREADY) per internal stream
    stall_diagnosis: str = ""  # which stage stopped, if stalled

    @property
    def latency(self) -> int | float:
        """First-frame latency in cycles (pipeline fill included); NaN when a stall left no frame done (a stalled
        run's figures go into messages and reports, which an IndexError would replace)."""
        return self.frame_cycles[0] if self.frame_cycles else math.nan

    @property
    def cycles_per_frame(self) -> float:
        """Steady-state cycles per frame: spacing of frame completions (the latency when one frame ran; NaN when
        none did)."""
        fc = self.frame_cycles
        return (fc[-1] - fc[0]) / (len(fc) - 1) if len(fc) > 1 else float(self.latency)


def exact_ints(dtype) -> bool:
    """Whether the values of ``dtype`` are integers that float32, FINN's container for every value, cannot all hold
    (past 2^24: INT32 accumulators, UINT25 and wider). Such streams go in and out as exact integers."""
    return dtype.is_integer() and max(-int(dtype.min()), int(dtype.max())) > 1 << 24


def _ints_within(dtype, x: np.ndarray) -> np.ndarray | None:
    """The values of ``x`` (any numeric dtype, or Python ints) as an object array of Python ints, compared with
    ``dtype``'s range exactly; None if one is not an integer of it. A float32 2^31 is no INT32, though numpy's
    comparison with INT32's maximum, 2^31 - 1, rounds that to 2^31 too."""
    vals = x.ravel().tolist()
    try:
        ints = [int(v) for v in vals]
    except (ValueError, OverflowError):  # NaN, infinity
        return None
    if any(i != v for i, v in zip(ints, vals)) or ints and not dtype.min() <= min(ints) <= max(ints) <= dtype.max():
        return None
    return np.array(ints, dtype=object).reshape(x.shape)


def _signed_values(patterns: np.ndarray, dtype) -> np.ndarray:
    """Unsigned ``dtype.bitwidth()``-bit patterns as the values of the integer ``dtype``: int64, uint64 for UINT64."""
    bits = dtype.bitwidth()
    if not dtype.signed():
        return patterns.astype(np.uint64 if bits == 64 else np.int64)
    values = patterns.astype(np.uint64).astype(np.int64)  # two's complement at 64 bits
    return values if bits == 64 else np.where(values >= 1 << (bits - 1), values - (1 << bits), values)


def finn_estimate(model) -> dict:
    """FINN's analytical performance of the dataflow model: critical_path_cycles, max_cycles, max_cycles_node_name."""
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles

    return dict(model.transform(AnnotateCycles()).analysis(dataflow_performance))


# ---------------------------------------------------------------- building (cached)


def _config_header(core: StitchedCore) -> str:
    ins = " ".join(f"X({i}, {s.port})" for i, s in enumerate(core.inputs))
    outs = " ".join(f"X({i}, {s.port})" for i, s in enumerate(core.outputs))
    fifos = " ".join(f"X({f.index})" for f in core.fifos)
    return (f"// generated by fracskip.hls.rtlsim.sim for {core.top}\n#pragma once\n#include \"V{core.top}.h\"\n"
            f"#define TB_TOP V{core.top}\n#define TB_INPUTS(X) {ins}\n#define TB_OUTPUTS(X) {outs}\n"
            f"#define TB_FIFOS(X) {fifos}\n#define TB_N_INPUTS {len(core.inputs)}\n"
            f"#define TB_N_OUTPUTS {len(core.outputs)}\n#define TB_N_FIFOS {len(core.fifos)}\n"
            f"#define TB_STATE_WORDS {core.state_words}\n")


def _content_hash(core: StitchedCore, header: str, flags: list[str], tool: Verilator) -> str:
    h = hashlib.sha256()

    def add(tag: str, data: bytes) -> None:
        h.update(tag.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("verilator", tool.version.encode())
    add("flags", " ".join(flags).encode())
    add("testbench", TESTBENCH.read_bytes())
    add("config", header.encode())
    for src in core.sources:
        text = src.read_text()
        for d in core.generated_dirs:  # FINN's code-gen folder names are random; contents decide
            text = text.replace(str(d), "@GEN@")
        add("src:" + src.name, text.encode())
    for name in sorted(core.data_files):
        add("data:" + name, core.data_files[name].read_bytes())
    return h.hexdigest()[:24]


@contextmanager
def _spinner(text: str, enabled: bool):
    if not enabled:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        bar.add_task(text, total=None)
        yield


def _make_list(mk: Path, var: str) -> list[str]:
    """Names listed under ``VAR += \\`` in a Verilator-generated makefile."""
    names, inside = [], False
    for line in mk.read_text().splitlines():
        if line.startswith(var + " +="):
            inside = True
        elif inside and line.startswith((" ", "\t")) and line.strip() not in ("", "\\"):
            names.append(line.strip().rstrip("\\").strip())
        else:
            inside = False
    return names


def _runtime_dir(cache_dir: Path, tool: Verilator, opt: str, threads: int = 1) -> Path:
    """Where Verilator's runtime library objects built with ``opt`` (for a model on ``threads`` threads, kept apart
    from the single-threaded ones) by this compiler are kept."""
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256(f"{tool.version}|{opt}|{cxx}{'|threads' if threads > 1 else ''}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "verilator-runtime" / key


def _run(cmd: list[str], cwd: Path, env: dict, log_file: Path) -> subprocess.CompletedProcess:
    cp = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    with log_file.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + cp.stdout + cp.stderr + f"[exit {cp.returncode}]\n\n")
    return cp


def build_simulator(core: StitchedCore, cache_dir: Path, jobs: int = 1, opt: str = CXX_OPT,
                    progress: bool = True, threads: int = 1) -> tuple[Path, bool]:
    """Verilate ``core`` into ``cache_dir/rtlsim/<hash>/`` unless that build exists.

    Returns (simulator folder, True when it was compiled now). The folder holds the binary ``Vsim`` and the
    memory files the RTL opens relative to its working directory, so it is self-contained.
    """
    tool = find_verilator()
    header = _config_header(core)
    flag_view = tool.verilate_command(core.top, [], [], Path("obj"), EXE, threads)[1:] + [opt]
    key = _content_hash(core, header, flag_view, tool)
    dest = Path(cache_dir) / "rtlsim" / key
    if (dest / EXE).is_file():
        log.info("reusing the simulator of %s (%d sources) from %s", core.top, len(core.sources), dest)
        _touch(dest)
        return dest, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=key + ".build-", dir=dest.parent))
    obj, build_log = tmp / "obj", tmp / "build.log"
    try:
        (tmp / "tb_config.h").write_text(header)
        shutil.copyfile(TESTBENCH, tmp / "testbench.cpp")
        shutil.copyfile(core.top_file, tmp / core.top_file.name)  # kept for reference / debugging
        with _spinner(f"Verilating {core.top} ({len(core.sources)} files)", progress):
            cp = _run(tool.verilate_command(core.top, core.sources + [tmp / "testbench.cpp"],
                                            core.include_dirs + [tmp], obj, EXE, threads), tmp, tool.env(),
                     build_log)
            runtime = None
            if cp.returncode == 0:
                mk = obj / f"V{core.top}_classes.mk"
                names = _make_list(mk, "VM_GLOBAL_FAST") + _make_list(mk, "VM_GLOBAL_SLOW")
                rt_dir = _runtime_dir(cache_dir, tool, opt, threads)
                runtime = [rt_dir / f"{n}.o" for n in names]
                have_runtime = bool(names) and all(o.is_file() for o in runtime)
                cp = _run(tool.make_command(obj, core.top, jobs, opt, runtime if have_runtime else None), tmp,
                          tool.env(), build_log)
                if cp.returncode == 0 and names and not have_runtime:
                    _keep_runtime(obj, names, rt_dir)
        if cp.returncode != 0 or not (obj / EXE).is_file():
            failed = dest.with_name(key + ".failed")
            try:  # replaces an earlier failure's; should another failing build replace ours, its log is as good
                _move_into_place(tmp, failed)
                kept = f"full log: {failed / 'build.log'}"
            except OSError as e:
                kept = f"its log could not be kept: {e}"
            errors = build_errors(cp.stdout + cp.stderr)
            raise FracskipError(f"Verilator could not build {core.top}: " + " | ".join(errors) + f" ({kept})")
        shutil.move(obj / EXE, tmp / EXE)
        shutil.rmtree(obj)  # objects are never reused: the hash changes with any source
        for name, src in core.data_files.items():
            shutil.copyfile(src, tmp / name)
        _move_into_place(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("verilated %s into %s", core.top, dest)
    prune_models(dest.parent, RTLSIM_CACHE_BYTES, keep=dest)
    return dest, True


def _move_into_place(tmp: Path, dest: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dest``. A complete model already at ``dest`` (another process built
    the same design meanwhile) stays, and ``tmp`` is left to the caller to remove; anything else there (a stray
    file, a failed build's folder, a model folder that a killed prune left incomplete) is replaced."""
    for attempt in range(3):  # a round is lost only to another process changing ``dest`` meanwhile
        try:
            tmp.rename(dest)
            return
        except OSError:
            if (dest / EXE).is_file():
                return
            if attempt == 2:
                raise
        _discard(dest)


def _discard(path: Path) -> None:
    """Delete the folder (or stray file) ``path``, renamed first so that no one meets it half deleted under its
    name: were this process killed meanwhile, the rest is a build folder that a prune removes once stale."""
    trash = Path(tempfile.mkdtemp(prefix=path.name + ".build-discarded-", dir=path.parent))
    try:
        path.rename(trash / path.name)
    except OSError:
        pass  # gone already (another process discarded it), or not ours to delete: the caller finds it still there
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _touch(model_dir: Path) -> None:
    """Mark a cached model used now: its folder's time orders the pruning."""
    try:
        os.utime(model_dir)  # not Path.touch: where another process just pruned the model, it would create a file
    except OSError:
        pass  # pruned meanwhile (the next use builds it again), or a read-only cache, which this process never prunes


def prune_models(models_dir: Path, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used models (and failed builds) of ``models_dir`` until the rest take at most
    ``max_bytes``; ``keep`` stays whatever its age. Builds in progress are left alone, those of killed processes
    (nothing in them changed for ``STALE_BUILD_SECONDS``) deleted. The deleted folders."""
    def used_and_size(d: Path) -> tuple[float, int] | None:
        try:
            return d.stat().st_mtime, sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        except OSError:
            return None  # pruned by another process meanwhile

    def stale(build: Path) -> bool:
        try:  # the newest time inside: a long make writes into obj/, not into the build folder itself
            newest = max([build.stat().st_mtime] + [f.stat().st_mtime for f in build.rglob("*")])
        except OSError:
            return False  # deleted meanwhile, or in flux: a live build
        return time.time() - newest > STALE_BUILD_SECONDS

    entries, removed = [], []
    for d in Path(models_dir).iterdir():
        if not d.is_dir():
            continue
        if ".build-" in d.name:
            if stale(d):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        elif (found := used_and_size(d)) is not None:
            entries.append((*found, d))
    total = sum(size for _, size, _ in entries)
    entries = [e for e in entries if e[2] != keep]
    for _, size, d in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        _discard(d)  # a process running that model keeps its open binary
        total -= size
        removed.append(d)
    if removed:
        log.info("pruned %d least recently used simulators or stale builds from %s (the cache keeps %.1f GB)",
                 len(removed), models_dir, max_bytes / 1e9)
    return removed


def _keep_runtime(obj: Path, names: list[str], rt_dir: Path) -> None:
    """Store the runtime library objects of a finished build for the next builds."""
    rt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=rt_dir.name + ".", dir=rt_dir.parent))
    try:
        for n in names:
            shutil.copyfile(obj / f"{n}.o", tmp / f"{n}.o")
        tmp.rename(rt_dir)
    except OSError:
        pass  # another build stored it first, or it cannot be stored: the next build compiles it again
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the core


class RTLSimCore:
    """A FINN dataflow partition (all ``*_rtl``, after InsertDWC, InsertFIFO, SpecializeLayers, PrepareIP)
    simulated in Verilator.

    ``sizing_fifos``: simulate every StreamingFIFO_rtl with a run-time depth (see fifo_sizing).
    ``cycle_limit``: per call; default four times FINN's estimate for the batch (critical path + frames x
    slowest layer) plus 10k cycles. Reaching it means the core stalled: FracskipError.
    ``threads``: Verilator's model evaluates on that many threads (a model of its own in the cache).
    """

    def __init__(self, model, cache_dir: Path | None = None, jobs: int = 1, opt: str = CXX_OPT,
                 sizing_fifos: bool = False, cycle_limit: int | None = None, progress: bool = True,
                 threads: int = 1):
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        try:
            self.estimate: dict | None = finn_estimate(model)
        except Exception as e:  # noqa: BLE001  a custom op without a cycle estimate; only the default limit needs it
            log.warning("FINN cannot estimate the cycles of this core (%s); run() will need a cycle_limit", e)
            self.estimate = None
        self.cycle_limit = cycle_limit
        with tempfile.TemporaryDirectory(prefix="fracskip-stitch-") as tmp:
            self.core = stitch(model, Path(tmp), sizing_fifos=sizing_fifos)
            self.sim_dir, self.compiled = build_simulator(self.core, self.cache_dir, jobs=jobs, opt=opt,
                                                          progress=progress, threads=threads)
        self.core.top_file = self.sim_dir / self.core.top_file.name

    @property
    def inputs(self) -> list[StreamPort]:
        return self.core.inputs

    @property
    def outputs(self) -> list[StreamPort]:
        return self.core.outputs

    @property
    def fifos(self):
        return self.core.fifos

    def default_cycle_limit(self, n_frames: int) -> int:
        est = self.estimate
        if est is None:
            raise FracskipError("no cycle estimate from FINN for this core: pass cycle_limit to RTLSimCore or run()")
        return 4 * (int(est["critical_path_cycles"]) + n_frames * int(est["max_cycles"])) + 10_000

    # -------------------------------------------------------- process

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile(prefix="fracskip-rtlsim-")
        self._proc = subprocess.Popen([str(self.sim_dir / EXE)], cwd=self.sim_dir, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr)
        hello = self._proc.stdout.read(4)
        if len(hello) != 4 or struct.unpack("<I", hello)[0] != _ANS_MAGIC:
            self._fail("the simulator did not start")
        # Verilator only warns when a $readmemh file is missing, and the memory then reads 0
        warnings = [ln for ln in self._stderr_text().splitlines() if "%Warning" in ln or "%Error" in ln]
        if warnings:
            self.close()
            raise FracskipError(f"the simulator of {self.sim_dir} reports at start: " + " | ".join(warnings[:5]))

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _fail(self, what: str):
        err = self._stderr_text().strip()[-2000:] if self._stderr else ""
        self.close()
        raise FracskipError(f"{what} ({self.sim_dir / EXE}); its messages: {err or '(none)'}")

    def close(self) -> None:
        """Stop the simulator process (a later run starts a fresh one)."""
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def sibling(self) -> RTLSimCore:
        """Another simulator process of the same compiled model, without stitching and hashing the sources again
        (``--jobs``: the images in shares, one process each)."""
        other = copy.copy(self)
        other._proc = other._stderr = None
        other.compiled = False
        return other

    def __enter__(self) -> RTLSimCore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -------------------------------------------------------- running

    def _frames(self, inputs) -> list[np.ndarray]:
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, Mapping):
            missing = [s.tensor for s in self.inputs if s.tensor not in inputs]
            if missing:
                names = [s.tensor for s in self.inputs]
                raise FracskipError(f"no data for core input(s) {missing}; the inputs are {names}")
            inputs = [inputs[s.tensor] for s in self.inputs]
        if not isinstance(inputs, Sequence) or len(inputs) != len(self.inputs):
            raise FracskipError(f"the core has {len(self.inputs)} input(s) ({[s.tensor for s in self.inputs]}); "
                                f"give one array (a batch of frames) per input")
        arrays = []
        for s, x in zip(self.inputs, inputs):
            x = np.asarray(x)
            if x.shape[1:] != s.normal_shape[1:]:
                shape = ", ".join(map(str, s.normal_shape[1:]))
                raise FracskipError(f"input {s.tensor}: expected a batch of shape (n, {shape}), got {x.shape}")
            exact = _ints_within(s.dtype, x) if exact_ints(s.dtype) else x if np.all(s.dtype.allowed(x)) else None
            if exact is None:
                raise FracskipError(f"input {s.tensor}: values outside {s.dtype} (min {x.min()}, max {x.max()})")
            arrays.append(exact)
        if len({x.shape[0] for x in arrays}) != 1 or arrays[0].shape[0] == 0:
            raise FracskipError("every input needs the same, non-zero number of frames; got "
                                f"{[x.shape[0] for x in arrays]}")
        return arrays

    @staticmethod
    def _pack(s: StreamPort, x: np.ndarray) -> bytes:
        from finn.util.data_packing import finnpy_to_packed_bytearray, int_array_to_packed_bytearray

        shape = (x.shape[0],) + s.folded_shape[1:]
        if exact_ints(s.dtype):  # x: Python ints (_frames); FINN's general packing, without its float32 container
            bits = s.dtype.bitwidth()
            patterns = np.array([v & ((1 << bits) - 1) for v in x.ravel().tolist()], np.uint64).reshape(shape)
            packed = np.flip(int_array_to_packed_bytearray(np.flip(patterns, -1), bits), -1)
        else:
            packed = finnpy_to_packed_bytearray(x.astype(np.float32).reshape(shape), s.dtype, reverse_inner=True,
                                                reverse_endian=True)
        if packed.shape[-1] < s.word_bytes:  # little endian: padding bytes are the high ones, at the end
            pad = np.zeros(packed.shape[:-1] + (s.word_bytes - packed.shape[-1],), np.uint8)
            packed = np.concatenate([packed, pad], axis=-1)
        if packed.shape[-1] != s.word_bytes:
            raise FracskipError(f"{s.tensor}: {packed.shape[-1]} packed bytes per word, the stream has {s.word_bytes}")
        return np.ascontiguousarray(packed).tobytes()

    @staticmethod
    def _unpack(s: StreamPort, raw: bytes, n_frames: int) -> np.ndarray:
        from finn.util.data_packing import packed_bytearray_to_finnpy, prepare_values

        words = np.frombuffer(raw, np.uint8).reshape((n_frames,) + s.folded_shape[1:-1] + (s.word_bytes,))
        shape = (n_frames,) + s.folded_shape[1:]
        if exact_ints(s.dtype):  # FINN's unpacking up to the bit patterns; its values would be float32
            y = _signed_values(prepare_values(words.copy(), s.dtype, shape, True, True), s.dtype)
        else:
            y = np.asarray(packed_bytearray_to_finnpy(words.copy(), s.dtype, shape, reverse_inner=True,
                                                      reverse_endian=True), np.float32)
        return y.reshape((n_frames,) + s.normal_shape[1:])

    def run(self, inputs, cycle_limit: int | None = None, fifo_depths: Sequence[int] | None = None,
            reset: bool = False, check: bool = True, on_frames: Callable[[int], None] | None = None,
            progress_every: int = PROGRESS_EVERY) -> SimResult:
        """Stream a batch of frames through the core and collect its outputs.

        ``inputs``: one array per graph input (a list in graph order, a {tensor: array} mapping, or one array
        for a single-input core), each (n_frames, *the input's shape without batch), values of its FINN datatype
        (past 2^24, as in INT32, exact only from an integer array: float32 has rounded them).
        ``fifo_depths``: depth per sizing FIFO (sizing cores only). ``reset``: pulse ap_rst_n first.
        With ``check`` a stall (cycle limit reached) raises FracskipError; otherwise ``result.stalled`` is set.
        A core that gives more output words than the frames have raises FracskipError either way.
        ``on_frames``: called during the run with the number of frames done so far, whenever more are done and
        ``progress_every`` cycles have passed since the last call, and once the last is done (a progress bar).
        """
        frames = self._frames(inputs)
        n = frames[0].shape[0]
        result = self.run_words([self._pack(s, x) for s, x in zip(self.inputs, frames)], n, cycle_limit=cycle_limit,
                                fifo_depths=fifo_depths, reset=reset, check=check, on_frames=on_frames,
                                progress_every=progress_every)
        if not result.stalled:
            result.outputs = [self._unpack(s, raw, n) for s, raw in zip(self.outputs, result.raw_outputs)]
        return result

    def run_words(self, words: Sequence[bytes], n_frames: int, cycle_limit: int | None = None,
                  fifo_depths: Sequence[int] | None = None, reset: bool = False, check: bool = True,
                  on_frames: Callable[[int], None] | None = None, progress_every: int = PROGRESS_EVERY) -> SimResult:
        """``run`` on streams packed by the caller (e.g. a board driver's DMA buffers): per input, ``n_frames`` x
        ``words_per_frame`` words of ``word_bytes`` little-endian bytes. ``raw_outputs`` holds the output words;
        ``outputs`` stays empty."""
        n = int(n_frames)
        if len(words) != len(self.inputs) or n < 1:
            raise FracskipError(f"{len(words)} packed inputs of {n} frames for a core with {len(self.inputs)} inputs")
        words = [bytes(w) for w in words]
        for s, w in zip(self.inputs, words):
            if len(w) != n * s.words_per_frame * s.word_bytes:
                raise FracskipError(f"input {s.tensor}: {len(w)} bytes, {n} frames need "
                                    f"{n * s.words_per_frame} words of {s.word_bytes} bytes")
        limit = cycle_limit or self.cycle_limit or self.default_cycle_limit(n)
        depths = list(fifo_depths) if fifo_depths is not None else [f.depth for f in self.fifos]
        if len(depths) != len(self.fifos):
            raise FracskipError(f"{len(depths)} FIFO depths for {len(self.fifos)} sizing FIFOs")
        # a sizing FIFO holds at most max_depth + 1 words and clamps a deeper setting (fifo.sv has no depth below 2):
        # the run would measure another FIFO than the one asked for
        wrong = [f"{f.node}: {d}" for f, d in zip(self.fifos, depths) if not 2 <= int(d) <= f.max_depth + 1]
        if wrong:
            raise FracskipError(f"FIFO depths outside 2 .. max_depth + 1 of the sizing FIFOs ({', '.join(wrong[:5])}); "
                                "max_depth is the larger of two frames, 64 words and the node's depth attribute")
        every = max(int(progress_every), 1) if on_frames is not None else 0
        req = [struct.pack("<IIQIQ", _REQ_MAGIC, n, limit, int(reset), every)]
        req += [struct.pack("<IQ", s.word_bytes, s.words_per_frame) for s in self.inputs + self.outputs]
        req += [struct.pack("<I", int(d)) for d in depths]
        req += words
        if self._proc is None:
            self._start()
        try:  # an answer left half read (on_frames raised, Ctrl-C) would be read as the next request's
            try:
                self._proc.stdin.write(b"".join(req))
                self._proc.stdin.flush()
            except OSError:
                self._fail("the simulator stopped while reading a request")
            (magic,) = struct.unpack("<I", self._read(4))
            while magic == _PRG_MAGIC and on_frames is not None:
                on_frames(struct.unpack("<I", self._read(4))[0])
                (magic,) = struct.unpack("<I", self._read(4))
            if magic != _ANS_MAGIC:
                self._fail("garbled answer from the simulator")
            status, cycles = struct.unpack("<IQ", self._read(struct.calcsize("<IQ")))
            n_in, n_out = len(self.inputs), len(self.outputs)
            counts = list(struct.unpack(f"<{n_in + 2 * n_out}Q", self._read(8 * (n_in + 2 * n_out))))
            words_in, words_out, surplus = counts[:n_in], counts[n_in:n_in + n_out], counts[n_in + n_out:]
            (n_done,) = struct.unpack("<I", self._read(4))
            frame_cycles = list(struct.unpack(f"<{n_done}Q", self._read(8 * n_done)))
            maxcount = list(struct.unpack(f"<{len(self.fifos)}I", self._read(4 * len(self.fifos))))
            n_state = self.core.state_words
            bits = int.from_bytes(self._read(4 * n_state), "little")
            state = [(bool(bits >> (2 * ln.index) & 1), bool(bits >> (2 * ln.index + 1) & 1)) for ln in self.core.links]
            raws = [self._read(w * s.word_bytes) for w, s in zip(words_out, self.outputs)]
        except BaseException:
            self.close()
            raise
        self._refuse_surplus(surplus, n)
        stalled = status == 1
        result = SimResult(outputs=[], cycles=int(cycles), frame_cycles=frame_cycles, stalled=stalled,
                           words_in=words_in, words_out=words_out, fifo_maxcount=maxcount, raw_outputs=raws,
                           stream_state=state,
                           stall_diagnosis=diagnose_stall(self.core.links, state) if stalled else "")
        if stalled:
            self.close()  # the core's state is undefined now: the next call starts a fresh simulator
            if check:
                expected_in = [n * s.words_per_frame for s in self.inputs]
                expected_out = [n * s.words_per_frame for s in self.outputs]
                what = (f"every output word given, but not every input word taken by the cycle limit of {limit} cycles "
                        f"({n_done}/{n} frames done; " if n_done == n else
                        f"no result after the cycle limit of {limit} cycles ({n_done}/{n} frames done; ")
                raise FracskipError(
                    f"the core stalled: {what}"
                    f"input words consumed {words_in} of {expected_in}, output words produced {words_out} of "
                    f"{expected_out}); {result.stall_diagnosis}. It is deadlocked or far slower than FINN's estimate "
                    f"({(self.estimate or {}).get('max_cycles', '?')} cycles/frame): check the FIFO depths (a "
                    "fork's skip FIFO must hold what the other branch buffers; the accelerator's are sized on real "
                    "images by `fracskip build` (hls.accelerator.size_fifos), a static core's by "
                    "rtlsim.fifo_sizing.size_fifos) or raise cycle_limit.")
        return result

    def _refuse_surplus(self, surplus: list[int], n: int) -> None:
        """A core that gives more output words than its frames have is broken: its outputs cannot be told apart
        from the next frame's, and the rest would be the next call's first words."""
        extra = [f"{s.tensor} gave {n * s.words_per_frame + k} words (at least) for {n} frame(s) of "
                 f"{s.words_per_frame}" for s, k in zip(self.outputs, surplus) if k]
        if extra:
            self.close()  # the surplus may not all have come out: the next call starts a fresh simulator
            raise FracskipError(f"the core gave more output words than its frames have: {'; '.join(extra)}. Its "
                                "RTL and its graph disagree on the output's shape or folding "
                                f"({self.sim_dir / EXE})")

    def _read(self, nbytes: int) -> bytes:
        data = self._proc.stdout.read(nbytes) if nbytes else b""
        if len(data) != nbytes:
            code = self._proc.poll()
            self._fail(f"the simulator ended during a run (exit code {code})")
        return data


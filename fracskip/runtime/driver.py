"""The board driver: every fracskip core of one overlay, driven the way finn-plus-driver's ``FINNDMAOverlay``
drives a FINN accelerator. It imports only numpy and the standard library; ``pynq`` is imported when an overlay
is opened, so that the same module packs data for the RTL simulation off-board.

No board code path has been run on a board: the register sequences below are FINNDMAOverlay's (zynq-iodma:
the IODMAs' AXI-lite registers; alveo: ``pynq`` kernel ``start``/``wait`` through XRT), and they are exercised
here only against a simulated overlay whose DMAs stream the buffers through the Verilator model of each core
(``fracskip.hls.rtlsim_backend.SimOverlay``).

A deploy package (``fracskip deploy PACKAGE``)::

    PACKAGE/settings.json     {"format": "fracskip-driver/1", "driver_information": {...}, "cores": {...}}
    PACKAGE/host_params.npz   constants of the host-side ops (e.g. the head's output scale and bias)
    PACKAGE/export/           the export the build came from (manifest.json, gates; read by the controller)
    PACKAGE/bitfile/          the bitstream (.bit + .hwh on Zynq, .xclbin on Alveo)

``driver_information`` follows finn-plus's ``settings.json`` (``platform`` "zynq-iodma" or "alveo", ``fclk_mhz``),
and each entry of ``cores`` holds FINN's ``io_shape_dict`` for that core (``idt``, ``odt``, ``ishape_normal``,
``ishape_folded``, ``ishape_packed``, the ``o*`` counterparts, ``idma_names``, ``odma_names``, ``num_inputs``,
``num_outputs``) plus ``host``: the ops of FINN's parent graph that run on the host before and after the
dataflow partition (NCHW<->NHWC transposes; the head's scale and bias), as a list of small numpy ops.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FracskipError, ToolMissingError

log = logging.getLogger(__name__)

FORMAT = "fracskip-driver/1"
PLATFORMS = ("zynq-iodma", "alveo")
NOT_ON_A_BOARD = "no board code path of fracskip has been run on a board yet"


# ---------------------------------------------------------------- FINN datatypes, numpy only


@dataclass(frozen=True)
class IntType:
    """The integer FINN DataTypes a core streams: INTn, UINTn, BINARY, BIPOLAR."""

    name: str
    bits: int
    signed: bool

    @classmethod
    def parse(cls, text: str) -> "IntType":
        """``"UINT8"`` or the ``"DataType['UINT8']"`` strings of FINN's settings.json."""
        m = re.fullmatch(r"(?:DataType\[['\"])?([A-Z]+[0-9]*)(?:['\"]\])?", str(text).strip())
        name = m.group(1) if m else str(text)
        if name in ("BINARY", "BIPOLAR"):
            return cls(name, 1, False)
        m = re.fullmatch(r"(U?)INT([0-9]+)", name)
        if not m or not 0 < int(m.group(2)) <= 64:
            raise FracskipError(f"datatype {text!r} is not an integer FINN type (INTn, UINTn, BINARY, BIPOLAR): the "
                                "board driver packs only integer streams; keep float ops on the host side")
        return cls(name, int(m.group(2)), m.group(1) == "")

    @property
    def min(self) -> int:
        return -1 if self.name == "BIPOLAR" else (-(1 << (self.bits - 1)) if self.signed else 0)

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 if self.name == "BIPOLAR" else (1 << self.bits) - 1)

    def check(self, x: np.ndarray, what: str) -> None:
        bad = (x != np.round(x)) | (x < self.min) | (x > self.max)
        if self.name == "BIPOLAR":
            bad = (x != 1) & (x != -1)
        if np.any(bad):
            v = x[bad].flat[0]
            raise FracskipError(f"{what}: value {v} is not a {self.name} ({self.min}..{self.max}); the core streams "
                                f"{self.name}, check the input (raw pixels for the stem, interface integers after)")


# ---------------------------------------------------------------- packing (FINN's byte layout)


def pack(folded: np.ndarray, dtype: IntType | str) -> np.ndarray:
    """The bytes of FINN's ``finnpy_to_packed_bytearray(folded, dtype, reverse_inner=True, reverse_endian=True)``.

    Each innermost vector (one AXI-stream word) becomes one little-endian integer whose element ``i`` sits at
    bits ``[i*b, (i+1)*b)`` (two's complement for signed types, BIPOLAR -1/+1 as 0/1), padded to whole bytes.
    Returns uint8 of shape ``folded.shape[:-1] + (bytes per word,)``.
    """
    dt = IntType.parse(dtype) if isinstance(dtype, str) else dtype
    x = np.asarray(folded)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise FracskipError("pack needs at least one dimension (the innermost one is a stream word), not empty")
    if x.dtype.kind not in "biuf":
        raise FracskipError(f"pack: {x.dtype} values cannot be streamed as {dt.name}; pass integers (int or float dtype)")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise FracskipError(f"pack: NaN or infinite values for {dt.name}")
        xi = np.round(x)
        if np.any(xi != x):
            raise FracskipError(f"pack: non-integer values for {dt.name}")
        x = xi
    if x.size and (x.min() < dt.min or x.max() > dt.max or (dt.name == "BIPOLAR" and np.any((x != 1) & (x != -1)))):
        raise FracskipError(f"pack: values outside {dt.name} ({dt.min}..{dt.max}) would wrap around; check the input")
    v = x.astype(np.int64)
    if dt.name == "BIPOLAR":
        v = (v + 1) // 2
    u = v.astype(np.uint64) & np.uint64((1 << dt.bits) - 1)  # two's complement
    n = x.shape[-1]
    if dt.bits in (8, 16, 32, 64):  # whole bytes: the word is the elements' little-endian bytes in order
        return np.ascontiguousarray(u.astype(f"<u{dt.bits // 8}")).view(np.uint8).reshape(x.shape[:-1] + (-1,))
    nbits = n * dt.bits
    nbytes = (nbits + 7) // 8
    bits = ((u[..., :, None] >> np.arange(dt.bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    bits = bits.reshape(x.shape[:-1] + (nbits,))
    if nbytes * 8 != nbits:
        bits = np.concatenate([bits, np.zeros(x.shape[:-1] + (nbytes * 8 - nbits,), np.uint8)], axis=-1)
    return np.packbits(bits.reshape(x.shape[:-1] + (nbytes, 8)), axis=-1, bitorder="little")[..., 0]


def unpack(packed: np.ndarray, dtype: IntType | str, folded_shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``pack`` (FINN's ``packed_bytearray_to_finnpy(..., reverse_endian=True, reverse_inner=True)``):
    uint8 ``(..., bytes per word)`` -> float32 of ``folded_shape`` (FINN's container type)."""
    dt = IntType.parse(dtype) if isinstance(dtype, str) else dtype
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise FracskipError(f"unpack: expected a uint8 byte buffer, got {p.dtype}")
    if not len(folded_shape) or any(int(s) < 1 for s in folded_shape):
        raise FracskipError(f"unpack: shape {tuple(folded_shape)} has no values")
    n = int(folded_shape[-1])
    nbytes = (n * dt.bits + 7) // 8
    outer = tuple(int(s) for s in folded_shape[:-1])
    if p.size != int(np.prod(outer, dtype=np.int64)) * nbytes:
        raise FracskipError(f"unpack: {p.size} bytes do not hold {folded_shape} {dt.name} values "
                            f"({nbytes} bytes per word)")
    bits = np.unpackbits(p.reshape(outer + (nbytes,)), axis=-1, bitorder="little")[..., :n * dt.bits]
    bits = bits.reshape(outer + (n, dt.bits)).astype(np.uint64)
    u = (bits << np.arange(dt.bits, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)
    v = u.astype(np.int64)
    if dt.signed:
        v = np.where(v >= (1 << (dt.bits - 1)), v - (1 << dt.bits), v)
    if dt.name == "BIPOLAR":
        v = 2 * v - 1
    return v.astype(np.float32)


# ---------------------------------------------------------------- host-side ops of FINN's parent graph

HOST_OPS = ("Transpose", "Mul", "Add", "Sub", "Div", "Reshape", "Flatten", "Relu", "ReduceMean", "ReduceSum",
            "Identity")


@dataclass
class HostProgram:
    """The non-dataflow nodes of FINN's parent graph on one side of the partition, on batches, in numpy.

    ``ops``: ``{"op": <ONNX op type>, ...attributes}``; constants by name in ``params`` (float32, as in the
    graph). Elementwise float32 ops give the same IEEE results as onnxruntime's; reshapes keep the batch axis.
    """

    ops: list[dict] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for o in self.ops:
            if o["op"] not in HOST_OPS:
                raise FracskipError(f"host op {o['op']} is not supported by the board driver ({', '.join(HOST_OPS)})")
            if "param" in o and o["param"] not in self.params:
                raise FracskipError(f"host op {o['op']} needs constant {o['param']!r}, missing from host_params.npz")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        for o in self.ops:
            op = o["op"]
            c = self.params.get(o.get("param", ""), None)
            if op == "Transpose":
                x = np.transpose(x, o["perm"])
            elif op in ("Mul", "Add", "Sub", "Div"):
                f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
                x = f(c, x) if o.get("const_first") else f(x, c)
                x = x.astype(np.float32, copy=False)
            elif op == "Reshape":
                x = x.reshape((x.shape[0],) + tuple(o["shape"][1:]))
            elif op == "Flatten":
                x = x.reshape(x.shape[0], -1)
            elif op == "Relu":
                x = np.maximum(x, np.float32(0))
            elif op in ("ReduceMean", "ReduceSum"):
                f = np.mean if op == "ReduceMean" else np.sum
                x = f(x, axis=tuple(o["axes"]), keepdims=bool(o.get("keepdims", 1)), dtype=np.float32)
            elif op != "Identity":
                raise FracskipError(f"host op {op} not implemented")
        return x


# ---------------------------------------------------------------- one core's I/O description


@dataclass
class CoreIO:
    """One core of the overlay: FINN's ``io_shape_dict`` (single input and output) and the host programs."""

    name: str
    io_shape_dict: dict
    pre: HostProgram
    post: HostProgram
    host_input_shape: tuple[int, ...]  # what the controller hands over, batch 1 (e.g. NCHW)
    estimate_cycles: int | None = None  # FINN's max_cycles of the core, when known

    def __post_init__(self) -> None:
        d = self.io_shape_dict
        if d.get("num_inputs", 1) != 1 or d.get("num_outputs", 1) != 1:
            raise FracskipError(f"core {self.name}: the driver handles one input and one output stream per core")
        self.idt = IntType.parse(d["idt"][0])
        self.odt = IntType.parse(d["odt"][0])

    @property
    def ishape_normal(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["ishape_normal"][0])

    @property
    def oshape_normal(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["oshape_normal"][0])

    @property
    def ishape_folded(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["ishape_folded"][0])

    @property
    def oshape_folded(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["oshape_folded"][0])

    @property
    def ishape_packed(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["ishape_packed"][0])

    @property
    def oshape_packed(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["oshape_packed"][0])

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """A batch from the controller: the right shape and integer values; float32 (FINN's container)."""
        x = np.asarray(x)
        if x.ndim != len(self.host_input_shape) or tuple(x.shape[1:]) != self.host_input_shape[1:] or not len(x):
            exp = ", ".join(map(str, self.host_input_shape[1:]))
            raise FracskipError(f"core {self.name}: expected a batch of shape (n, {exp}), got {x.shape}")
        if x.dtype.kind not in "iuf":
            raise FracskipError(f"core {self.name}: expected integer values (any int or float dtype), got {x.dtype}")
        return x.astype(np.float32)

    def from_stream(self, packed: np.ndarray, n: int) -> np.ndarray:
        """Packed output buffer -> the core's integer output in its normal shape (n, *oshape_normal[1:])."""
        y = unpack(np.asarray(packed).reshape(-1)[:n * int(np.prod(self.oshape_packed[1:]))], self.odt,
                   (n,) + self.oshape_folded[1:])
        return y.reshape((n,) + self.oshape_normal[1:])

    @classmethod
    def from_settings(cls, name: str, entry: dict, params: dict[str, np.ndarray]) -> "CoreIO":
        host = entry["host"]
        return cls(name, entry["io_shape_dict"], HostProgram(host["pre"], params), HostProgram(host["post"], params),
                   tuple(host["input_shape"]), entry.get("estimate_cycles"))


def load_settings(folder: str | Path) -> tuple[dict, dict[str, CoreIO]]:
    """settings.json (+ host_params.npz) of a deploy package -> (driver_information, {core: CoreIO}).

    Every field the driver reads is checked here, so that a damaged package is refused with its name and the
    field at fault before any buffer is allocated or any DMA is started."""
    folder = Path(folder)
    path = folder / "settings.json"
    if not path.is_file():
        raise FracskipError(f"{folder} has no settings.json: pass a package written by "
                            "fracskip.hls.rtlsim_backend.write_package (or a bitstream build)")
    try:
        s = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FracskipError(f"{path} is not valid JSON ({str(e)[:200]}); regenerate the package") from e
    if not isinstance(s, dict):
        raise FracskipError(f"{path} is not a JSON object; regenerate the package")
    if s.get("format") != FORMAT:
        raise FracskipError(f"{path}: format {s.get('format')!r} is not {FORMAT!r}; regenerate the package")
    params = load_npz(folder / "host_params.npz") if (folder / "host_params.npz").is_file() else {}
    info = s.get("driver_information")
    if not isinstance(info, dict):
        raise FracskipError(f"{path}: driver_information must be an object; regenerate the package")
    if info.get("platform") not in PLATFORMS:
        raise FracskipError(f"{path}: platform {info.get('platform')!r} is not one of {PLATFORMS}")
    if "bitfile" in info and not (isinstance(info["bitfile"], str) and _inside(info["bitfile"])):
        raise FracskipError(f"{path}: bitfile {info['bitfile']!r} must be a relative path inside the package")
    cores = s.get("cores")
    if not isinstance(cores, dict) or not cores:
        raise FracskipError(f"{path}: cores must be a non-empty object; regenerate the package")
    out = {}
    for name, e in cores.items():
        try:
            _check_core_entry(e)
            out[name] = CoreIO.from_settings(name, e, params)
        except FracskipError as err:
            raise FracskipError(f"{path}: core {name!r}: {err}; regenerate the package") from err
    return info, out


IO_KEYS = ("ishape_normal", "oshape_normal", "ishape_folded", "oshape_folded", "ishape_packed", "oshape_packed")


def _shape_ok(v) -> bool:
    return isinstance(v, list) and len(v) >= 1 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1
                                                        for i in v)


def _check_core_entry(e) -> None:
    """One entry of settings.json's ``cores``: FINN's io_shape_dict and the host programs, consistent."""
    if not isinstance(e, dict) or not isinstance(e.get("io_shape_dict"), dict) or not isinstance(e.get("host"), dict):
        raise FracskipError("needs objects io_shape_dict and host")
    d, host = e["io_shape_dict"], e["host"]
    for k in IO_KEYS:
        if not (isinstance(d.get(k), list) and len(d[k]) == 1 and _shape_ok(d[k][0])):
            raise FracskipError(f"io_shape_dict[{k!r}] must be a list holding one shape of positive integers")
    for k in ("idt", "odt", "idma_names", "odma_names"):
        if not (isinstance(d.get(k), list) and len(d[k]) == 1 and isinstance(d[k][0], str)):
            raise FracskipError(f"io_shape_dict[{k!r}] must be a list holding one string")
    for k in ("num_inputs", "num_outputs"):
        if k in d and (not isinstance(d[k], int) or isinstance(d[k], bool)):
            raise FracskipError(f"io_shape_dict[{k!r}] must be an integer")
    idt, odt = IntType.parse(d["idt"][0]), IntType.parse(d["odt"][0])
    for side, dt in (("i", idt), ("o", odt)):
        normal, folded, packed = (d[f"{side}shape_{k}"][0] for k in ("normal", "folded", "packed"))
        if int(np.prod(normal[1:])) != int(np.prod(folded[1:])):
            raise FracskipError(f"{side}shape_folded {folded} does not hold {side}shape_normal {normal}")
        if folded[:-1] != packed[:-1] or packed[-1] != (folded[-1] * dt.bits + 7) // 8:
            raise FracskipError(f"{side}shape_packed {packed} is not {side}shape_folded {folded} packed as {dt.name}")
    if not _shape_ok(host.get("input_shape")):
        raise FracskipError("host.input_shape must be a shape of positive integers")
    for side in ("pre", "post"):
        ops = host.get(side)
        if not isinstance(ops, list) or not all(isinstance(o, dict) and isinstance(o.get("op"), str) for o in ops):
            raise FracskipError(f"host.{side} must be a list of ops ({{\"op\": ...}})")
        for o in ops:
            for k in ("perm", "shape", "axes"):
                if k in o and not (isinstance(o[k], list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                                  for i in o[k])):
                    raise FracskipError(f"host op {o['op']}: {k} must be a list of integers")
            if o["op"] == "Transpose" and sorted(o.get("perm", [None])) != list(range(len(o.get("perm", [])))):
                raise FracskipError(f"host op Transpose: perm {o.get('perm')} is not a permutation")
            if o["op"] == "Reshape" and "shape" not in o or o["op"] in ("ReduceMean", "ReduceSum") and "axes" not in o:
                raise FracskipError(f"host op {o['op']} lacks its {'shape' if o['op'] == 'Reshape' else 'axes'}")
            if "param" in o and not isinstance(o["param"], str):
                raise FracskipError(f"host op {o['op']}: param must be a name")
    est = e.get("estimate_cycles")
    if est is not None and (isinstance(est, bool) or not isinstance(est, (int, float)) or not est > 0):
        raise FracskipError("estimate_cycles must be a positive number")


def _inside(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, read without pickle (object arrays are refused: they could run code)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise FracskipError(f"{path} is a single array, not an .npz archive")
            return {k: z[k] for k in z.files}
    except FracskipError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise FracskipError(f"{path} holds pickled objects, which fracskip does not load; nothing from it "
                                "was run. Regenerate the file") from e
        raise FracskipError(f"{path} is not a readable .npz archive ({e})") from e
    except Exception as e:  # noqa: BLE001 - BadZipFile, OSError, EOFError ...
        raise FracskipError(f"{path} is not a readable .npz archive ({type(e).__name__}: {str(e)[:200]})") from e


# ---------------------------------------------------------------- the DMA engine of one core


class DMACore:
    """One core of the overlay with ``FINNDMAOverlay``'s interface and register sequences: ``batch_size``,
    ``fold_input``, ``pack_input``, ``unpack_output``, ``unfold_output``, ``copy_input_data_to_device``,
    ``copy_output_data_from_device``, ``execute_on_buffers``, ``wait_until_finished``, ``execute``.

    ``overlay``: a ``pynq.Overlay`` (or a simulated one) with the core's IODMAs as attributes named as in
    ``io_shape_dict``; ``allocate``: ``pynq.allocate`` (or the simulated one). ``timeout_s``: a core that does
    not finish in that time is reported stalled instead of polled for ever (FINNDMAOverlay polls without limit).
    """

    def __init__(self, io: CoreIO, platform: str, overlay, allocate, batch_size: int = 1, timeout_s: float = 10.0,
                 device=None):
        if platform not in PLATFORMS:
            raise FracskipError(f"platform {platform!r} is not one of {PLATFORMS}")
        self.io, self.platform, self.allocate, self.device, self.timeout_s = io, platform, allocate, device, timeout_s
        d = io.io_shape_dict
        try:
            self.idma = getattr(overlay, d["idma_names"][0])
            self.odma = getattr(overlay, d["odma_names"][0])
        except (AttributeError, IndexError, KeyError) as e:
            raise FracskipError(f"core {io.name}: the overlay has no DMA {e}; the bitstream does not match "
                                "settings.json (idma_names/odma_names)") from e
        self.odma_handle = None
        self.ibuf = self.obuf = None
        self._batch_size = 0
        self.batch_size = batch_size

    # ---- buffers (FINNDMAOverlay.batch_size setter)
    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = int(value)
        cacheable = {"alveo": False, "zynq-iodma": True}[self.platform]
        shape_i = (self._batch_size,) + self.io.ishape_packed[1:]
        shape_o = (self._batch_size,) + self.io.oshape_packed[1:]
        self.ibuf = self.allocate(shape=shape_i, dtype=np.uint8, cacheable=cacheable, target=self.device)
        self.obuf = self.allocate(shape=shape_o, dtype=np.uint8, cacheable=cacheable, target=self.device)
        self.obuf_host = np.empty(shape_o, np.uint8)

    # ---- FINNDMAOverlay's steps
    def fold_input(self, ibuf_normal: np.ndarray) -> np.ndarray:
        n = ibuf_normal.shape[0]
        if tuple(ibuf_normal.shape[1:]) != self.io.ishape_normal[1:]:
            raise FracskipError(f"core {self.io.name}: input of shape {ibuf_normal.shape}, expected "
                                f"(n, {', '.join(map(str, self.io.ishape_normal[1:]))})")
        return ibuf_normal.reshape((n,) + self.io.ishape_folded[1:])

    def pack_input(self, ibuf_folded: np.ndarray) -> np.ndarray:
        self.io.idt.check(ibuf_folded, f"core {self.io.name} input")
        return pack(ibuf_folded, self.io.idt)

    def unpack_output(self, obuf_packed: np.ndarray, n: int) -> np.ndarray:
        return unpack(obuf_packed[:n], self.io.odt, (n,) + self.io.oshape_folded[1:])

    def unfold_output(self, obuf_folded: np.ndarray) -> np.ndarray:
        return obuf_folded.reshape((obuf_folded.shape[0],) + self.io.oshape_normal[1:])

    def copy_input_data_to_device(self, data: np.ndarray) -> None:
        self.ibuf[:data.shape[0]] = data
        self.ibuf.flush()

    def copy_output_data_from_device(self, data: np.ndarray) -> None:
        self.obuf.invalidate()
        np.copyto(data, self.obuf)

    def execute_on_buffers(self, asynch: bool = False, batch_size: int | None = None) -> None:
        n = self.batch_size if batch_size is None else batch_size
        if n > self.batch_size:
            raise FracskipError(f"core {self.io.name}: batch {n} is larger than the buffers ({self.batch_size})")
        if self.platform == "zynq-iodma":
            if self.odma.read(0x00) & 0x4 == 0:
                raise FracskipError(f"core {self.io.name}: the output DMA is not idle (a previous run never finished)")
            # FINNDMAOverlay: output DMA first, then input; 0x10/0x14 buffer address, 0x1C frames, 0x00 ap_start
            for dma, buf in ((self.odma, self.obuf), (self.idma, self.ibuf)):
                dma.write(0x10, buf.device_address & 0xFFFFFFFF)
                dma.write(0x14, (buf.device_address >> 32) & 0xFFFFFFFF)
                dma.write(0x1C, n)
                dma.write(0x00, 1)
        else:  # alveo: XRT kernels through pynq
            if self.odma_handle is not None:
                raise FracskipError(f"core {self.io.name}: the output DMA is already running")
            self.idma.start(self.ibuf, n)
            self.odma_handle = self.odma.start(self.obuf, n)
        if not asynch:
            self.wait_until_finished()

    def wait_until_finished(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        if self.platform == "zynq-iodma":
            while self.odma.read(0x00) & 0x2 == 0:  # ap_done
                if time.monotonic() > deadline:
                    raise FracskipError(
                        f"core {self.io.name} stalled: its output DMA did not finish within {self.timeout_s:g} s "
                        f"(status 0x{self.odma.read(0x00):x}). Reload the overlay; if it repeats, the core deadlocks "
                        "(FIFO depths) or the bitstream does not match settings.json.")
                time.sleep(0)
        else:
            if self.odma_handle is None:
                raise FracskipError(f"core {self.io.name}: nothing to wait for")
            handle, self.odma_handle = self.odma_handle, None
            handle.wait()  # XRT's own timeout applies on Alveo

    def execute(self, x: np.ndarray) -> np.ndarray:
        """Core-level integers (after the host pre-ops, e.g. NHWC) -> the core's integer output (normal shape)."""
        n = x.shape[0]
        if n > self.batch_size:
            self.batch_size = n  # grow the buffers (FINNDMAOverlay reallocates on a batch_size change too)
        self.copy_input_data_to_device(self.pack_input(self.fold_input(np.asarray(x, np.float32))))
        self.execute_on_buffers(batch_size=n)
        self.copy_output_data_from_device(self.obuf_host)
        return self.unfold_output(self.unpack_output(self.obuf_host, n))


# ---------------------------------------------------------------- the overlay of all cores, as a controller backend


class OverlayBackend:
    """The controller's backend on a board: every core of one overlay, each through its ``DMACore``.

    ``last_outputs``: the integer output of the last call (before the host post-ops), as the RTL simulation's.
    Cycle counts are not measured on the board (no instrumentation in the overlay): ``last_cycles`` is absent.
    """

    def __init__(self, info: dict, cores: dict[str, CoreIO], overlay, allocate, timeout_s: float = 10.0,
                 device=None):
        self.name = "pynq" if info["platform"] == "zynq-iodma" else "alveo"
        self.io = cores
        self.dma = {c: DMACore(io, info["platform"], overlay, allocate, timeout_s=timeout_s, device=device)
                    for c, io in cores.items()}
        self.last_outputs: np.ndarray | None = None

    def run(self, core: str, x: np.ndarray) -> np.ndarray:
        io = self.io.get(core)
        if io is None:
            raise FracskipError(f"core {core!r} is not in this overlay ({', '.join(self.io)})")
        xin = io.pre(io.check_input(x))
        y = self.dma[core].execute(xin)
        self.last_outputs = y
        return io.post(y)


def open_overlay(package: str | Path, timeout_s: float = 10.0, download: bool = True):
    """The package's bitstream on this board, as an ``OverlayBackend``. Needs pynq (a PYNQ image, or an Alveo
    host with XRT and pynq); raises ToolMissingError otherwise. """
    package = Path(package)
    info, cores = load_settings(package)
    try:
        import pynq
    except ImportError as e:
        raise ToolMissingError(
            "pynq is not installed: `fracskip deploy` runs on a PYNQ board image (Zynq, zynq-iodma) or on an Alveo "
            "host with XRT and pynq. Off-board, simulate the same cores: `fracskip simulate BUILD_DIR --backend "
            f"rtlsim`. ({NOT_ON_A_BOARD}.)") from e
    bitfile = package / info.get("bitfile", "bitfile/fracskip.bit")
    if not bitfile.is_file():
        raise FracskipError(f"{bitfile} is missing: the package has no bitstream (`fracskip build --until bitstream` "
                            "needs Vivado/Vitis)")
    try:
        overlay = pynq.Overlay(str(bitfile), download=download)
    except Exception as e:  # noqa: BLE001  pynq raises many types when no device is present
        raise ToolMissingError(f"pynq could not open {bitfile} on this machine ({type(e).__name__}: {e}); is this a "
                               f"board with the matching shell? ({NOT_ON_A_BOARD}.)") from e
    return OverlayBackend(info, cores, overlay, pynq.allocate, timeout_s=timeout_s)


# ---------------------------------------------------------------- images without torch (the board has none)


def load_array(path: str | Path) -> np.ndarray:
    """Images (N, C, H, W) or labels (N,) from a .npy file or an IDX file (Fashion-MNIST's .gz; images get C=1).
    A .npy file is read without pickle: an object array is refused, not unpickled."""
    path = Path(path)
    if not path.is_file():
        raise FracskipError(f"{path} does not exist (or is not a file): pass a .npy or IDX file")
    if path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            if "pickle" in str(e).lower():
                raise FracskipError(f"{path} holds pickled objects, which fracskip does not load; nothing from it "
                                    "was run. Save plain arrays (np.save of a uint8 array)") from e
            raise FracskipError(f"{path} is not a readable .npy file ({e})") from e
        except Exception as e:  # noqa: BLE001 - truncated headers raise several types
            raise FracskipError(f"{path} is not a readable .npy file ({type(e).__name__}: {str(e)[:200]})") from e
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
            raise FracskipError(f"{path} holds {getattr(x, 'dtype', type(x))} data, not numbers")
        return x
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise FracskipError(f"cannot read {path} ({e})") from e
    if len(raw) < 8 or raw[:3] != b"\0\0\x08":
        raise FracskipError(f"{path} is neither .npy nor an IDX file of uint8 data")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    x = np.frombuffer(raw, np.uint8, offset=min(4 + 4 * ndim, len(raw)))
    if ndim < 1 or len(raw) < 4 + 4 * ndim or x.size != int(np.prod(dims, dtype=np.int64)):
        raise FracskipError(f"{path} is a truncated or damaged IDX file ({x.size} values for dimensions {dims})")
    x = x.reshape(dims)
    if x.ndim == 3:
        x = x[:, None]
    return x

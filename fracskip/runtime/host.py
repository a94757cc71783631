"""The host side of the board, in numpy and the standard library (``pynq`` is never imported here): FINN's integer
datatypes and its packed byte layout of a stream (``finn.util.data_packing``'s), the host ops FINN's parent graph
leaves around the dataflow (``HostProgram``), one stream end's description (``CoreIO``: FINN's ``io_shape_dict``
with the host ops on either side), and images and constants read without pickle. The accelerator's board driver
(``accelerator_driver``) and the build's stream packing (``fracskip.hls.accelerator.Host``) use them.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FracskipError

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
    if dt.signed:  # two's complement of dt.bits bits, in uint64 arithmetic: 64-bit types must not overflow
        half = np.uint64(1 << (dt.bits - 1))
        u = (u ^ half) - half
    v = u.view(np.int64)
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
        """Every op checked as a package's JSON may hold it, before any runs."""
        if not isinstance(self.ops, list) or not all(isinstance(o, dict) and isinstance(o.get("op"), str)
                                                     for o in self.ops):
            raise FracskipError("host ops must be a list of ops ({\"op\": ...})")
        for o in self.ops:
            if o["op"] not in HOST_OPS:
                raise FracskipError(f"host op {o['op']} is not supported by the board driver ({', '.join(HOST_OPS)})")
            for k in ("perm", "shape", "axes"):
                if k in o and not (isinstance(o[k], list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                                  for i in o[k])):
                    raise FracskipError(f"host op {o['op']}: {k} must be a list of integers")
            if o["op"] == "Transpose" and sorted(o.get("perm", [None])) != list(range(len(o.get("perm", [])))):
                raise FracskipError(f"host op Transpose: perm {o.get('perm')} is not a permutation")
            if o["op"] == "Reshape" and "shape" not in o or o["op"] in ("ReduceMean", "ReduceSum") and "axes" not in o:
                raise FracskipError(f"host op {o['op']} lacks its {'shape' if o['op'] == 'Reshape' else 'axes'}")
            if o["op"] in ("ReduceMean", "ReduceSum") and (not o["axes"] or 0 in o["axes"]):
                # [] is every axis to ONNX, none to numpy; axis 0 is the batch's, whose images are reduced alone
                raise FracskipError(f"host op {o['op']}: axes {o['axes']} must name an image's axes, not none or "
                                    "the batch's (0): package the build again")
            if "param" in o and not isinstance(o["param"], str):
                raise FracskipError(f"host op {o['op']}: param must be a name")
            if "param" in o and o["param"] not in self.params:
                raise FracskipError(f"host op {o['op']} needs constant {o['param']!r}, missing from the host constants "
                                    "(driver/fracskip_host.npz)")

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
                x = f(x, axis=_image_axes(o, x.ndim), keepdims=bool(o.get("keepdims", 1)), dtype=np.float32)
            elif op != "Identity":
                raise FracskipError(f"host op {op} not implemented")
        return x


def _image_axes(o: dict, ndim: int) -> tuple:
    """A reduction's axes within a batch of ``ndim`` axes, none of them the batch's."""
    axes = tuple(a + ndim if a < 0 else a for a in o["axes"])
    if not all(1 <= a < ndim for a in axes) or len(set(axes)) != len(axes):
        raise FracskipError(f"host op {o['op']}: axes {o['axes']} are not distinct axes of an image in a batch of "
                            f"{ndim} axes (1 .. {ndim - 1}): package the build again")
    return axes


def shape_ok(v) -> bool:
    """A shape: a non-empty list of positive integers."""
    return isinstance(v, list) and len(v) >= 1 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1
                                                        for i in v)


# ---------------------------------------------------------------- one core's I/O description


@dataclass
class CoreIO:
    """One core's stream ends: FINN's ``io_shape_dict`` (single input and output) and the host programs."""

    name: str
    io_shape_dict: dict
    pre: HostProgram
    post: HostProgram
    host_input_shape: tuple[int, ...]  # what the host hands over, batch 1 (e.g. NCHW)

    def __post_init__(self) -> None:
        d = self.io_shape_dict
        if d.get("num_inputs", 1) != 1 or d.get("num_outputs", 1) != 1:
            raise FracskipError(f"core {self.name}: the driver handles one input and one output stream per core")
        self.idt = IntType.parse(d["idt"][0])

    @property
    def ishape_folded(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["ishape_folded"][0])

    @property
    def ishape_packed(self) -> tuple[int, ...]:
        return tuple(self.io_shape_dict["ishape_packed"][0])

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """A batch from the controller: the right shape and a numeric dtype; float32 (FINN's container). Whether the
        values are integers of the input's datatype is `pack`'s check."""
        x = np.asarray(x)
        if x.ndim != len(self.host_input_shape) or tuple(x.shape[1:]) != self.host_input_shape[1:] or not len(x):
            exp = ", ".join(map(str, self.host_input_shape[1:]))
            raise FracskipError(f"core {self.name}: expected a batch of shape (n, {exp}), got {x.shape}")
        if x.dtype.kind not in "iuf":
            raise FracskipError(f"core {self.name}: expected integer values (any int or float dtype), got {x.dtype}")
        return x.astype(np.float32)


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
    x = read_idx(path, "neither .npy nor an IDX file of uint8 data")
    return x[:, None] if x.ndim == 3 else x


def read_idx(path: Path, what: str = "not an IDX file of uint8 data") -> np.ndarray:
    """An IDX file of uint8 data (gzipped if it ends in .gz), as an array of the dimensions its header gives;
    ``what`` says what the file is not when its header is not IDX's."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # a damaged .gz fails in zlib itself
        raise FracskipError(f"cannot read {path} ({e})") from e
    if len(raw) < 8 or raw[:3] != b"\0\0\x08":
        raise FracskipError(f"{path} is {what}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    x = np.frombuffer(raw, np.uint8, offset=min(4 + 4 * ndim, len(raw)))
    if ndim < 1 or len(raw) < 4 + 4 * ndim or x.size != int(np.prod(dims, dtype=np.int64)):
        raise FracskipError(f"{path} is a truncated or damaged IDX file ({x.size} values for dimensions {dims})")
    return x.reshape(dims)

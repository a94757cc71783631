"""The board driver of the one-pipeline accelerator (DESIGN.md, version 2): uint8 images in, per image the head's
integer logits and the per-block decisions (and keep bits) out, through FINN's deployment package. On the board it
imports only numpy, the standard library and ``pynq``.

The package is FINN's layout (``step_deployment_package``), written by ``fracskip.hls.deploy_package``::

    PACKAGE/bitfile/                 FINN's bitfile folder (.bit + .hwh for zynq-iodma, .xclbin for alveo)
    PACKAGE/driver/settings.json     FINN's MakePYNQDriver output: driver_type, io_shape_dict (one input, the
                                     image stream; two outputs, the head's integers and the decisions), platform
    PACKAGE/driver/fracskip.json     fracskip's additions: host ops before and after the accelerator (the NCHW ->
                                     NHWC transpose; the head's float scale and bias), class names, the decisions
                                     stream's layout (gate -> block, bit menu, BitOPs per choice; with channel
                                     heads [d, keep] per block, its groups and BitOPs by groups kept), provenance
    PACKAGE/driver/fracskip_host.npz the host ops' constants (the head's scale and bias)

``DMAOverlay`` follows FINN's ``FINNDMAOverlay`` where ``AcceleratorDriver`` uses it (``batch_size``, ``execute``,
``execute_on_buffers``) and its register sequences, for any number of inputs and outputs, in numpy; unlike FINN's,
``execute`` always returns a list, and it has no ``throughput_test`` and no weight loading (fracskip's weights are
in the bitstream). It is the copy CI runs against the Verilator model
(``fracskip.hls.sim_board.AcceleratorSimOverlay``). ``open_board(..., finn_driver=True)`` uses FINN's own
``FINNDMAOverlay`` (``pip install finn-plus-driver`` on the board) instead; ``AcceleratorDriver`` needs only
``batch_size`` and ``execute`` of either. No code path of this module has been run on a board.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import FracskipError, ToolMissingError
from . import DEPLOY_TIMEOUT_S, TIMEOUT_IMAGES
from .controller import count_bitops, kept_fraction
from .host import NOT_ON_A_BOARD, PLATFORMS, HostProgram, IntType, load_npz, pack, shape_ok, unpack
from .intgate import split_decisions

FORMAT = "fracskip-accelerator/1"
SETTINGS, EXTRA, HOST_NPZ = "driver/settings.json", "driver/fracskip.json", "driver/fracskip_host.npz"
LOGITS, DECISIONS = 0, 1  # output indices in FINN's io_shape_dict


# ---------------------------------------------------------------- the package


@dataclass
class Package:
    """A deployment package, read and checked: FINN's driver settings and fracskip's additions."""

    folder: Path
    info: dict  # FINN's driver_information (driver_type, io_shape_dict, platform, fclk_mhz, ...)
    extra: dict  # fracskip.json
    pre: HostProgram
    post: HostProgram

    @property
    def io(self) -> dict:
        return self.info["io_shape_dict"]

    @property
    def platform(self) -> str:
        return self.info["platform"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.extra["host"]["input_shape"])

    @property
    def bitfile(self) -> Path | None:
        b = self.extra.get("bitfile")
        return None if b is None else self.folder / b

    @property
    def words_per_gate(self) -> int:
        """1 ([d] per gated block), or 2 with channel heads ([d, keep])."""
        return int(self.extra["decisions"].get("words_per_gate", 1))

    def bitops(self, decisions: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """BitOPs per image of the decisions (menu indices) and keep bits, as the controller counts them: a path
        with channel groups costs its kept groups' BitOPs."""
        d = self.extra["decisions"]
        by_kept = d["channels"]["bitops_by_kept"] if "channels" in d else [[None] * len(c) for c in d["bitops"]]
        return count_bitops(d["fixed_bitops"], d["bitops"], by_kept, decisions, keep)

    def grouped(self) -> list[list[int]]:
        """Per gated block, the menu entries whose path has channel groups."""
        return [[k for k, c in enumerate(by_kept) if c is not None]
                for by_kept in self.extra["decisions"]["channels"]["bitops_by_kept"]]

    def kept_fraction(self, decisions: np.ndarray, keep: np.ndarray) -> list[float | None]:
        """Per gated block, the fraction of its channel groups kept over the images that ran a path with groups."""
        return kept_fraction(decisions, keep, self.extra["decisions"]["channels"]["groups"], self.grouped())


def load_package(folder: str | Path) -> Package:
    """Read ``folder`` (layout above), checking every field the driver uses before any buffer is allocated."""
    folder = Path(folder)
    s, extra = _json(folder / SETTINGS), _json(folder / EXTRA)
    info = s.get("driver_information") if isinstance(s, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("io_shape_dict"), dict):
        raise FracskipError(f"{folder / SETTINGS}: no driver_information.io_shape_dict (FINN's MakePYNQDriver "
                            "output); regenerate the package")
    if info.get("platform") not in PLATFORMS:
        raise FracskipError(f"{folder / SETTINGS}: platform {info.get('platform')!r} is not one of {PLATFORMS}")
    if not isinstance(extra, dict) or extra.get("format") != FORMAT:
        raise FracskipError(f"{folder / EXTRA}: format {extra.get('format') if isinstance(extra, dict) else None!r}"
                            f" is not {FORMAT!r}; regenerate the package (python -m fracskip.hls.deploy_package)")
    try:
        _check_io(info["io_shape_dict"])
        host = extra["host"]
        params = load_npz(folder / HOST_NPZ) if (folder / HOST_NPZ).is_file() else {}
        pre, post = HostProgram(host["pre"], params), HostProgram(host["post"], params)
        _check_input(host["input_shape"], pre, info["io_shape_dict"]["ishape_normal"][0])
        d = extra["decisions"]
        gates, menu = d["gates"], d["bit_menu"]
        if len(d["bitops"]) != len(gates) or any(len(c) != len(menu) for c in d["bitops"]):
            raise FracskipError("decisions.bitops needs one cost per bit-menu entry for every gate")
        words = int(d.get("words_per_gate", 1))
        if words not in (1, 2) or (words == 2) != isinstance(d.get("channels"), dict):
            raise FracskipError(f"decisions.words_per_gate {words}: 1, or 2 with decisions.channels")
        if words == 2:
            ch = d["channels"]
            if len(ch["groups"]) != len(gates) or any(not 0 < int(n) <= 16 for n in ch["groups"]) \
                    or len(ch["bitops_by_kept"]) != len(gates) \
                    or any(len(c) != len(menu) or any(x is not None and len(x) != n + 1 for x in c)
                           for c, n in zip(ch["bitops_by_kept"], ch["groups"])):
                raise FracskipError("decisions.channels needs per gate 1..16 groups and, per bit-menu entry, "
                                    "BitOPs for 0..groups kept (or null)")
        n_dec = int(np.prod(info["io_shape_dict"]["oshape_normal"][DECISIONS][1:]))
        if n_dec != words * len(gates):
            raise FracskipError(f"the decisions stream carries {n_dec} values, decisions.gates lists {len(gates)} "
                                f"of {words} word(s)")
        if not isinstance(extra.get("classes"), list) or not extra["classes"]:
            raise FracskipError("classes must be a non-empty list of names")
        _check_post(post, info["io_shape_dict"]["oshape_normal"][LOGITS], len(extra["classes"]))
        costs = [x for row in d["bitops"] for x in row] + [x for row in d.get("channels", {}).get("bitops_by_kept", [])
                                                            for c in row if c is not None for x in c]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < float("inf") for x in costs):
            raise FracskipError("decisions.bitops (and channels.bitops_by_kept) must be numbers, not negative")
        if len(d["blocks"]) != len(gates):  # the report names each gate's block
            raise FracskipError(f"decisions.blocks lists {len(d['blocks'])} blocks for {len(gates)} gates")
        if not float(d["full_8bit_bitops"]) > 0 or not float(d["fixed_bitops"]) >= 0:
            raise FracskipError("decisions.full_8bit_bitops must be positive and fixed_bitops not negative")
        bit = extra.get("bitfile")
        if bit is not None and (not isinstance(bit, str) or PurePosixPath(bit).parent != PurePosixPath("bitfile")):
            raise FracskipError(f"bitfile {bit!r}: the bitstream is a file of the package's bitfile/ folder "
                                "(FINN's layout)")
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise FracskipError(f"{folder}: the package lacks or garbles {e}; regenerate it") from e
    except FracskipError as e:
        raise FracskipError(f"{folder}: {e}; regenerate the package") from e
    return Package(folder, info, extra, pre, post)


def _json(path: Path):
    if not path.is_file():
        raise FracskipError(f"{path} is missing: pass a deployment package written by "
                            "`python -m fracskip.hls.deploy_package` (FINN's layout: bitfile/, driver/)")
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FracskipError(f"{path} is not valid JSON ({str(e)[:200]}); regenerate the package") from e


MAX_IMAGE_VALUES = 1 << 24  # an image of more values than this is no image a fracskip accelerator streams


def _check_input(shape, pre: HostProgram, stream: list) -> None:
    """The host's input shape, and that the host ops before the accelerator turn one image of it into one frame
    of the image stream (FINN's ishape_normal)."""
    if not shape_ok(shape) or shape[0] != 1:
        raise FracskipError(f"host.input_shape {shape!r} must be a shape of positive integers, batch 1")
    if int(np.prod(shape, dtype=np.int64)) > MAX_IMAGE_VALUES:
        raise FracskipError(f"host.input_shape {shape} holds more than {MAX_IMAGE_VALUES} values per image")
    try:
        out = pre(np.zeros(shape, np.float32)).shape
    except (ValueError, IndexError, TypeError) as e:  # numpy's errors for ops that do not fit the shape
        raise FracskipError(f"host.pre does not run on one image of host.input_shape {shape} ({e})") from e
    if list(out) != list(stream):
        raise FracskipError(f"host.pre makes {list(out)} of one image of host.input_shape {shape}, the image "
                            f"stream takes {stream}")


def _check_post(post: HostProgram, stream: list, n_classes: int) -> None:
    """The host ops after the accelerator turn one frame of the logits stream (FINN's oshape_normal) into one
    logit per class: checked here, not found out after a run."""
    try:
        out = post(np.zeros(stream, np.float32)).shape
    except (ValueError, IndexError, TypeError) as e:  # numpy's errors for ops that do not fit the shape
        raise FracskipError(f"host.post does not run on one frame of the logits stream {stream} ({e})") from e
    if list(out) != [1, n_classes]:
        raise FracskipError(f"host.post makes {list(out)} of one frame of the logits stream {stream}, not one "
                            f"logit for each of the {n_classes} classes")


def _check_io(d: dict) -> None:
    n_in, n_out = d.get("num_inputs"), d.get("num_outputs")
    if n_in != 1 or n_out != 2:
        raise FracskipError(f"io_shape_dict: {n_in} inputs and {n_out} outputs; the accelerator has one image "
                            "stream in and two out (logits, decisions)")
    for side, n in (("i", n_in), ("o", n_out)):
        for k in (f"{side}dt", f"{side}dma_names", f"{side}shape_normal", f"{side}shape_folded",
                  f"{side}shape_packed"):
            if not isinstance(d.get(k), list) or len(d[k]) != n:
                raise FracskipError(f"io_shape_dict[{k!r}] must list {n} entries")
        for j in range(n):
            dt = IntType.parse(d[f"{side}dt"][j])
            normal, folded, packed = (d[f"{side}shape_{k}"][j] for k in ("normal", "folded", "packed"))
            if not all(shape_ok(v) for v in (normal, folded, packed)):
                raise FracskipError(f"io_shape_dict {side}shape_* [{j}]: {normal}, {folded}, {packed} must be shapes "
                                    "of positive integers")
            if int(np.prod(normal[1:])) != int(np.prod(folded[1:])) or folded[:-1] != packed[:-1] \
                    or packed[-1] != (folded[-1] * dt.bits + 7) // 8:
                raise FracskipError(f"io_shape_dict {side}shape_* [{j}]: {normal}, {folded}, {packed} are not one "
                                    f"{dt.name} tensor normal, folded and packed")
            if not isinstance(d[f"{side}dma_names"][j], str) or not d[f"{side}dma_names"][j]:
                raise FracskipError(f"io_shape_dict {side}dma_names[{j}] is empty: the DMA's instance name in the "
                                    "block design")


# ---------------------------------------------------------------- FINNDMAOverlay's DMA sequences, numpy only


class DMAOverlay:
    """FINN's ``FINNDMAOverlay`` (finn-plus-driver 1.6.1) on an overlay's IODMAs, any number of inputs and
    outputs: buffers per stream allocated on ``batch_size``; ``execute`` folds, packs (FINN's byte layout, with
    ``driver.pack``), starts the DMAs in FINN's order (zynq-iodma: the output DMAs, then the input DMAs, by AXI-lite
    0x10/0x14 address, 0x1C frames, 0x00 ap_start; alveo: the XRT kernels' ``start``, inputs first), waits for every
    output DMA's ap_done, unpacks. ``timeout_s`` (per ``TIMEOUT_IMAGES`` images of a batch, at least once): on
    zynq-iodma a DMA that does not finish is reported, not polled for ever (FINNDMAOverlay polls without limit); on
    alveo XRT's wait applies.
    """

    def __init__(self, overlay, allocate, io_shape_dict: dict, platform: str, batch_size: int = 1,
                 timeout_s: float = DEPLOY_TIMEOUT_S, device=None):
        if platform not in PLATFORMS:
            raise FracskipError(f"platform {platform!r} is not one of {PLATFORMS}")
        self.io, self.platform, self.allocate, self.device, self.timeout_s = io_shape_dict, platform, allocate, \
            device, timeout_s
        self.idt = [IntType.parse(t) for t in io_shape_dict["idt"]]
        self.odt = [IntType.parse(t) for t in io_shape_dict["odt"]]
        try:
            self.idma = [getattr(overlay, n) for n in io_shape_dict["idma_names"]]
            self.odma = [getattr(overlay, n) for n in io_shape_dict["odma_names"]]
        except AttributeError as e:
            raise FracskipError(f"the overlay has no DMA {e}; the bitstream does not match driver/settings.json "
                                "(idma_names/odma_names)") from e
        self.odma_handle = [None] * len(self.odma)
        self._running = 0  # images of the batch the DMAs are running
        self._batch_size = 0
        self.batch_size = batch_size

    def _shape(self, key: str, ind: int, n: int | None = None) -> tuple[int, ...]:
        return (self._batch_size if n is None else n,) + tuple(self.io[key][ind][1:])

    @property
    def num_inputs(self) -> int:
        return len(self.idma)

    @property
    def num_outputs(self) -> int:
        return len(self.odma)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = int(value)
        cacheable = {"alveo": False, "zynq-iodma": True}[self.platform]
        self.ibuf = [self.allocate(shape=self._shape("ishape_packed", i), dtype=np.uint8, cacheable=cacheable,
                                   target=self.device) for i in range(self.num_inputs)]
        self.obuf = [self.allocate(shape=self._shape("oshape_packed", o), dtype=np.uint8, cacheable=cacheable,
                                   target=self.device) for o in range(self.num_outputs)]
        self.obuf_host = [np.empty(b.shape, np.uint8) for b in self.obuf]

    def fold_input(self, x: np.ndarray, ind: int = 0) -> np.ndarray:
        if x.shape != self._shape("ishape_normal", ind):
            raise FracskipError(f"input {ind}: shape {x.shape}, the accelerator takes {self._shape('ishape_normal', ind)}")
        return x.reshape(self._shape("ishape_folded", ind))

    def pack_input(self, folded: np.ndarray, ind: int = 0) -> np.ndarray:
        self.idt[ind].check(folded, f"input {ind}")
        return pack(folded, self.idt[ind])

    def unpack_output(self, packed: np.ndarray, ind: int = 0) -> np.ndarray:
        return unpack(packed, self.odt[ind], self._shape("oshape_folded", ind))

    def unfold_output(self, folded: np.ndarray, ind: int = 0) -> np.ndarray:
        return folded.reshape(self._shape("oshape_normal", ind))

    def copy_input_data_to_device(self, data: np.ndarray, ind: int = 0) -> None:
        np.copyto(self.ibuf[ind], data)
        self.ibuf[ind].flush()

    def copy_output_data_from_device(self, data: np.ndarray, ind: int = 0) -> None:
        self.obuf[ind].invalidate()
        np.copyto(data, self.obuf[ind])

    def execute_on_buffers(self, asynch: bool = False, batch_size: int | None = None) -> None:
        n = self.batch_size if batch_size is None else int(batch_size)
        if n > self.batch_size:
            raise FracskipError(f"batch {n} is larger than the buffers ({self.batch_size})")
        self._running = n
        if self.platform == "zynq-iodma":
            for o, dma in enumerate(self.odma):
                if dma.read(0x00) & 0x4 == 0:
                    raise FracskipError(f"output DMA {o} is not idle (a previous run never finished): reload the "
                                        "overlay")
            for dma, buf in list(zip(self.odma, self.obuf)) + list(zip(self.idma, self.ibuf)):
                dma.write(0x10, buf.device_address & 0xFFFFFFFF)
                dma.write(0x14, (buf.device_address >> 32) & 0xFFFFFFFF)
                dma.write(0x1C, n)
                dma.write(0x00, 1)
        else:  # alveo: XRT kernels through pynq
            if any(h is not None for h in self.odma_handle):
                raise FracskipError("an output DMA is already running")
            for dma, buf in zip(self.idma, self.ibuf):
                dma.start(buf, n)
            self.odma_handle = [dma.start(buf, n) for dma, buf in zip(self.odma, self.obuf)]
        if not asynch:
            self.wait_until_finished()

    def wait_until_finished(self) -> None:
        if self.platform == "alveo":
            handles, self.odma_handle = self.odma_handle, [None] * len(self.odma)
            for h in handles:
                h.wait()  # XRT's wait: timeout_s does not apply
            return
        limit = self.timeout_s * max(1.0, self._running / TIMEOUT_IMAGES)
        deadline = time.monotonic() + limit
        for o, dma in enumerate(self.odma):
            while dma.read(0x00) & 0x2 == 0:  # ap_done
                if time.monotonic() > deadline:
                    raise FracskipError(
                        f"the accelerator stalled: output DMA {o} did not finish a batch of {self._running} within "
                        f"{limit:g} s (--timeout {self.timeout_s:g} s per {TIMEOUT_IMAGES} images). Reload the overlay; "
                        "if it repeats, the bitstream does not match driver/settings.json or a FIFO deadlocks; a "
                        "slower design needs a longer --timeout.")
                time.sleep(0)

    def execute(self, inputs) -> list[np.ndarray]:
        """FINNDMAOverlay.execute: one array per input (normal shape, batch = ``batch_size``) -> one per output."""
        inputs = inputs if isinstance(inputs, list) else [inputs]
        for i, x in enumerate(inputs):
            self.copy_input_data_to_device(self.pack_input(self.fold_input(np.asarray(x), i), i), i)
        self.execute_on_buffers()
        outs = []
        for o in range(self.num_outputs):
            self.copy_output_data_from_device(self.obuf_host[o], o)
            outs.append(self.unfold_output(self.unpack_output(self.obuf_host[o], o), o))
        return outs


# ---------------------------------------------------------------- the accelerator's host side


@dataclass
class Run:
    """Images through the accelerator: per image the head's integers, logits (scale and bias applied on the
    host), the decisions (menu index per gated block), the keep bits with channel heads (group j kept at bit j,
    per gated block; else None), and the wall-clock seconds of the batch loop."""

    head: np.ndarray
    logits: np.ndarray
    decisions: np.ndarray
    seconds: float
    batches: int = 0
    keep: np.ndarray | None = None


class AcceleratorDriver:
    """The accelerator on an overlay with FINNDMAOverlay's interface (``DMAOverlay``, FINN's own, or a simulated
    one): images (N, C, H, W) uint8 -> ``Run``; ``report`` makes the JSON of ``fracskip deploy``."""

    def __init__(self, package: Package, overlay):
        self.pkg, self.overlay = package, overlay

    def check_images(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images)
        exp = self.pkg.input_shape[1:]
        if x.ndim != len(self.pkg.input_shape) or tuple(x.shape[1:]) != exp or not len(x):
            raise FracskipError(f"images of shape {x.shape}: the accelerator takes (N, {', '.join(map(str, exp))}) "
                                "raw pixels")
        if x.dtype.kind not in "iuf" or (x.dtype.kind == "f" and np.any(x != np.round(x))) or x.min() < 0 \
                or x.max() > 255:
            raise FracskipError("images must be raw 8-bit pixels (integers 0..255)")
        return x

    def run(self, images: np.ndarray, batch_size: int = 64) -> Run:
        x = self.check_images(images)
        head, dec = [], []
        t0 = time.perf_counter()
        for lo in range(0, len(x), batch_size):
            # NCHW pixels -> the NHWC image stream, a batch at a time: the float32 stream of every image at once
            # is four times the pixels, too much for a Pynq-Z2's 512 MB with a large image set
            xb = self.pkg.pre(x[lo:lo + batch_size].astype(np.float32))
            if self.overlay.batch_size != len(xb):
                self.overlay.batch_size = len(xb)  # FINNDMAOverlay reallocates its buffers on a change
            try:
                h, d = self.overlay.execute([xb])
            except FracskipError:
                raise
            except Exception as e:  # noqa: BLE001 - FINN's driver asserts and pynq raises many types
                raise FracskipError(f"{type(self.overlay).__name__} failed on the batch of images {lo} to "
                                    f"{lo + len(xb) - 1} ({type(e).__name__}: {e})") from e
            head.append(np.asarray(h).reshape(len(xb), -1))
            dec.append(np.asarray(d).reshape(len(xb), -1))
        dt = time.perf_counter() - t0
        head_i = np.concatenate(head)
        dec_i, keep = split_decisions(np.concatenate(dec), self.pkg.words_per_gate)
        menu = len(self.pkg.extra["decisions"]["bit_menu"])
        if dec_i.size and (dec_i.min() < 0 or dec_i.max() >= menu):
            raise FracskipError(f"the accelerator returned decisions outside the bit menu (0..{menu - 1}): the "
                                "bitstream does not match this package")
        if keep is not None:
            groups = np.asarray(self.pkg.extra["decisions"]["channels"]["groups"])
            if keep.size and (keep >> groups).any():
                raise FracskipError("the accelerator returned keep bits beyond its blocks' channel groups: the "
                                    "bitstream does not match this package")
            # the RTL keeps at least one group of a block whose channel path ran (a skipped block's keep is unused)
            for g, entries in enumerate(self.pkg.grouped()):
                if (np.isin(dec_i[:, g], entries) & (keep[:, g] == 0)).any():
                    raise FracskipError(f"the accelerator kept no channel group of gate {g}'s block where its channel "
                                        "path ran: the bitstream does not match this package")
        logits = np.asarray(self.pkg.post(head_i), np.float32)
        return Run(head_i, logits, dec_i, dt, -(-len(x) // batch_size), keep)

    def report(self, run: Run, labels: np.ndarray | None = None) -> dict:
        d = self.pkg.extra["decisions"]
        n = len(run.decisions)
        bo = self.pkg.bitops(run.decisions, run.keep)
        res = {"backend": self.pkg.platform, "driver": type(self.overlay).__name__, "n": n,
               "images_per_s": n / run.seconds if run.seconds > 0 else None, "batches": run.batches,
               "compute_pct": float(100 * bo.mean() / d["full_8bit_bitops"]),
               "bitops_per_input": float(bo.mean()),  # eval's and simulate's name for this mean
               "decisions": {f"block{blk}": {str(b): int(c) for b, c in
                                             zip(d["bit_menu"], np.bincount(run.decisions[:, g],
                                                                            minlength=len(d["bit_menu"])))}
                             for g, blk in enumerate(d["blocks"])}}
        if run.keep is not None:
            res["kept_channel_fraction"] = self.pkg.kept_fraction(run.decisions, run.keep)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if len(labels) != n:
                raise FracskipError(f"{len(labels)} labels for {n} images")
            res["accuracy"] = float((run.logits.argmax(1) == labels).mean())
        return res


def open_board(package: str | Path, batch_size: int = 64, timeout_s: float = DEPLOY_TIMEOUT_S,
               finn_driver: bool = False,
               download: bool = True):
    """(Package, the overlay on this board): the package's bitstream loaded with pynq, driven by ``DMAOverlay``
    or, with ``finn_driver``, by FINN's own ``FINNDMAOverlay`` (finn-plus-driver). Raises ToolMissingError where
    pynq, the bitstream or finn-plus-driver is missing."""
    pkg = load_package(package)
    if pkg.bitfile is None or not pkg.bitfile.is_file():
        raise ToolMissingError(
            f"{package} has no bitstream ({pkg.extra.get('provenance', {}).get('bitstream', 'bitfile/ is empty')}): "
            "`fracskip build EXPORT --board B -o OUT --until bitstream` makes one where Vivado (and Vitis HLS) are "
            "installed. Without a board, drive the Verilator model: `fracskip deploy PACKAGE --simulate ...`")
    try:
        import pynq
    except ImportError as e:
        raise ToolMissingError("pynq is not installed: `fracskip deploy` runs on a PYNQ board image (zynq-iodma) or "
                               "an Alveo host with XRT and pynq; elsewhere use --simulate. "
                               f"({NOT_ON_A_BOARD}.)") from e
    if finn_driver:
        try:
            from finn_plus_driver import get_driver_class
        except ImportError as e:
            raise ToolMissingError("--finn-driver needs FINN's board driver: `pip install finn-plus-driver` on the "
                                   "board (it needs numpy<2 and qonnx), or drop --finn-driver for fracskip's "
                                   "numpy copy of its DMA sequences") from e
        try:
            cls = get_driver_class(pkg.info["driver_type"])
            ov = cls(str(pkg.bitfile), pkg.platform, json.loads(json.dumps(pkg.io)), batch_size=batch_size,
                     fclk_mhz=pkg.info.get("fclk_mhz", 100.0), download=download,
                     runtime_weight_dir=str(pkg.folder / "driver" / "runtime_weights"),
                     runtime_weights=pkg.info.get("runtime_weights", False))
        except Exception as e:  # noqa: BLE001 - pynq's and FINN's errors have many types
            raise FracskipError(f"FINN's driver could not open {pkg.bitfile} ({type(e).__name__}: {e}); is this the "
                                f"board and bitstream the package was built for? ({NOT_ON_A_BOARD}.)") from e
        return pkg, ov
    try:
        overlay = pynq.Overlay(str(pkg.bitfile), download=download)
    except Exception as e:  # pynq raises many types when no device is present
        raise ToolMissingError(f"pynq could not open {pkg.bitfile} ({type(e).__name__}: {e}); is this the board "
                               f"the package was built for? ({NOT_ON_A_BOARD}.)") from e
    return pkg, DMAOverlay(overlay, pynq.allocate, pkg.io, pkg.platform, batch_size, timeout_s)

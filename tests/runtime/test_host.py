"""fracskip.runtime.host: the board's host side in numpy (FINN's datatypes and packing, the host ops of FINN's
parent graphs), against FINN's own packing and onnx execution, and the stream ends of the tiny build.

The accelerator's board driver, on a simulated board, is tests/runtime/test_deploy.py's.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fracskip.errors import FracskipError
from fracskip.runtime import host as drv

import hil  # tests/hil.py: the shared tiny HDL build

pytestmark = pytest.mark.xdist_group(__name__)

DTYPES = ["UINT8", "INT8", "UINT4", "INT4", "UINT2", "INT2", "BINARY", "BIPOLAR", "UINT14", "INT24", "INT3", "INT17"]
SHAPES = [(2, 28, 28, 1, 1), (3, 7, 5), (1, 6, 48), (4, 10), (2, 3, 3, 16)]


def _values(name: str, shape: tuple, seed: int) -> np.ndarray:
    from qonnx.core.datatype import DataType

    dt = DataType[name]
    rng = np.random.default_rng(seed)
    x = rng.integers(int(dt.min()), int(dt.max()) + 1, shape).astype(np.float32)
    x.flat[:2] = [dt.min(), dt.max()]  # the extremes, where two's complement and padding go wrong
    return np.where(x > 0, 1, -1).astype(np.float32) if name == "BIPOLAR" else x


# ---------------------------------------------------------------- packing, numpy only


@pytest.mark.parametrize("name", DTYPES)
def test_packing_equals_finns_byte_layout(name):
    from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy
    from qonnx.core.datatype import DataType

    for k, shape in enumerate(SHAPES):
        x = _values(name, shape, k)
        ref = finnpy_to_packed_bytearray(x, DataType[name], reverse_inner=True, reverse_endian=True)
        got = drv.pack(x, name)
        assert got.dtype == np.uint8 and got.shape == ref.shape, (name, shape)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(drv.unpack(got, name, shape), x)
        np.testing.assert_array_equal(packed_bytearray_to_finnpy(got.copy(), DataType[name], shape,
                                                                 reverse_endian=True, reverse_inner=True), x)


def test_pack_round_trip_and_integer_containers():
    rng = np.random.default_rng(3)
    for bits in (1, 5, 8, 12, 16, 31, 32, 63, 64):
        for signed in (False, True):
            if (bits == 1 and signed) or (bits == 64 and not signed):  # UINT64 values do not fit int64 arrays
                continue
            name = ("INT" if signed else "UINT") + str(bits)
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            x = rng.integers(lo, hi, (5, 3, 7), dtype=np.int64, endpoint=True)
            x.flat[:2] = [lo, hi]  # the extremes, where two's complement overflows
            containers = (x,) if bits > 32 else (x, x.astype(np.float32) if bits <= 24 else x.astype(np.float64))
            for container in containers:
                packed = drv.pack(container, name)
                assert packed.shape == (5, 3, (7 * bits + 7) // 8)
                np.testing.assert_array_equal(drv.unpack(packed, name, x.shape), x.astype(np.float32))


def test_datatypes_from_settings_json_and_refusals():
    assert drv.IntType.parse("DataType['UINT8']") == drv.IntType("UINT8", 8, False)
    assert drv.IntType.parse("INT24").min == -(1 << 23)
    with pytest.raises(FracskipError, match="not an integer FINN type"):
        drv.IntType.parse("DataType['FLOAT32']")
    with pytest.raises(FracskipError, match="not a UINT4"):
        drv.IntType.parse("UINT4").check(np.array([3.0, 16.0]), "x")
    with pytest.raises(FracskipError, match="not a INT8"):
        drv.IntType.parse("INT8").check(np.array([0.5]), "x")
    with pytest.raises(FracskipError, match="non-integer"):
        drv.pack(np.array([[0.5, 1.0]]), "UINT8")


def test_host_program_equals_onnx_execution_on_batches():
    """The host ops of FINN's parent graph, in numpy on a batch, against qonnx's execution of the graph."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.basic import qonnx_make_model

    rng = np.random.default_rng(0)
    scale = rng.random((1, 10), dtype=np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Mul", ["r", "scale"], ["m"]),
             helper.make_node("Add", ["bias", "m"], ["y"])]
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    graph = helper.make_graph(nodes, "host", [vi("x", [1, 10, 1, 1])], [vi("y", [1, 10])],
                              value_info=[vi("t", [1, 1, 1, 10]), vi("r", [1, 10]), vi("m", [1, 10])])
    m = ModelWrapper(qonnx_make_model(graph))
    m.set_initializer("shape", np.array([1, 10], np.int64))
    m.set_initializer("scale", scale)
    m.set_initializer("bias", bias)
    program = drv.HostProgram(
        [{"op": "Transpose", "perm": [0, 2, 3, 1]}, {"op": "Reshape", "shape": [1, 10]},
         {"op": "Mul", "param": "s"}, {"op": "Add", "param": "b", "const_first": True}], {"s": scale, "b": bias})
    x = rng.integers(-2**20, 2**20, (6, 10, 1, 1)).astype(np.float32)
    want = np.concatenate([execute_onnx(m, {"x": x[i:i + 1]})["y"] for i in range(6)])
    np.testing.assert_array_equal(program(x), want)
    with pytest.raises(FracskipError, match="not supported"):
        drv.HostProgram([{"op": "Softmax"}])


def test_board_side_imports_little():
    """The drivers and the controller run on a PYNQ image: numpy and the standard library, nothing heavier."""
    code = ("import sys; import fracskip.runtime.host, fracskip.runtime.accelerator_driver, "
            "fracskip.runtime.controller, fracskip.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'qonnx', 'finn', 'onnx', 'brevitas', "
            "'onnxruntime', 'pynq', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- a build's stream ends


@pytest.fixture(scope="module")
def stem(tiny_export, tmp_path_factory):
    from fracskip.hls.host_ops import core_io

    return core_io(hil.tiny_build(tiny_export, tmp_path_factory), "stem")


def test_stem_io_is_finns_and_packs_as_finn_does(stem):
    """The stem's stream end, read from the build (FINN's io_shape_dict of its partition, its parent graph's
    NCHW -> NHWC transpose): the host's packing of a batch is FINN's byte layout of the folded stream."""
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    assert stem.host_input_shape == (1, 1, 28, 28) and stem.idt == drv.IntType.parse("UINT8")
    images, _ = hil.sample_images(5)
    x = stem.pre(stem.check_input(images))
    folded = x.reshape((5,) + stem.ishape_folded[1:])
    np.testing.assert_array_equal(folded.reshape(5, 28, 28, 1), images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(drv.pack(folded, stem.idt), finnpy_to_packed_bytearray(
        folded, DataType["UINT8"], reverse_inner=True, reverse_endian=True))
    assert drv.pack(folded, stem.idt).shape == (5,) + stem.ishape_packed[1:]


def test_wrong_batches_are_refused(stem):
    with pytest.raises(FracskipError, match=r"expected a batch of shape \(n, 1, 28, 28\)"):
        stem.check_input(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(FracskipError, match=r"expected a batch of shape"):
        stem.check_input(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(FracskipError, match="integer values"):
        stem.check_input(np.zeros((1, 1, 28, 28), dtype=bool))
    with pytest.raises(FracskipError, match="not a UINT8"):
        stem.idt.check(np.full((1, 1, 28, 28), 300, np.float32), "stem input")
    with pytest.raises(FracskipError, match="not a UINT8"):
        stem.idt.check(np.full((1, 1, 28, 28), 0.5, np.float32), "stem input")


def test_the_stall_timeout_grows_with_the_batch():
    """--timeout is per 1,000 images of a batch (at least once): a batch of 50,000 at 3,500 images/s takes 14 s, which
    a flat 10 s reported as a stall. Stand-in DMAs that never finish (AXI-lite: idle at start, never done)."""
    import time

    from fracskip.runtime import accelerator_driver as ad

    class NeverDone:
        def read(self, offset):
            return 0x4  # ap_idle, never ap_done

        def write(self, offset, value):
            pass

    class Buffer(np.ndarray):
        device_address = 0

        def flush(self):
            pass

    overlay = type("Overlay", (), {"idma0": NeverDone(), "odma0": NeverDone()})()
    io = {"idt": ["UINT8"], "odt": ["INT16"], "ishape_packed": [(1, 4)], "oshape_packed": [(1, 2)],
          "idma_names": ["idma0"], "odma_names": ["odma0"]}
    alloc = lambda shape, dtype, cacheable, target: np.zeros(shape, dtype).view(Buffer)  # noqa: E731
    dma = ad.DMAOverlay(overlay, alloc, io, "zynq-iodma", batch_size=3000, timeout_s=0.05)
    for n, limit in ((3000, 0.15), (10, 0.05)):
        t0 = time.monotonic()
        with pytest.raises(FracskipError, match=rf"did not finish a batch of {n} within {limit:g} s"):
            dma.execute_on_buffers(batch_size=n)
        assert time.monotonic() - t0 >= limit


def test_deploy_names_its_bitops_as_eval_and_simulate_do(tmp_path):
    """The mean BitOPs over the images run is ``bitops_per_input`` in ``fracskip deploy``'s report as in eval's and
    simulate's (it was ``bitops_per_image``, the bench's name for the folding's figure by the gates' calibration
    frequencies). The hand-written package: 10 fixed BitOPs, 0/4/16 per gate by menu entry, 42 at 8 bits."""
    import packages  # tests/packages.py

    from fracskip.runtime import accelerator_driver as ad

    pkg = ad.load_package(packages.write(tmp_path / "pkg"))
    decisions = np.array([[0, 1], [2, 2], [1, 0]])
    run = ad.Run(np.zeros((3, 10)), np.zeros((3, 10), np.float32), decisions, 1.0, 1)
    r = ad.AcceleratorDriver(pkg, None).report(run, np.zeros(3, np.int64))
    assert r["bitops_per_input"] == pytest.approx(10 + (4 + 32 + 4) / 3) and "bitops_per_image" not in r
    assert r["compute_pct"] == pytest.approx(100 * r["bitops_per_input"] / 42)
    assert {"n", "accuracy", "compute_pct", "bitops_per_input", "images_per_s"} <= set(r)  # simulate's names


def test_keep_bits_the_rtl_never_emits_are_refused(tmp_path):
    """The RTL keeps at least one group of a block whose channel path ran (dfsgate.v), within its groups: keep 0
    there, or a bit beyond its groups, is a bitstream of another package. Keep 0 where no channel path ran (the
    block skipped) is what the gate emits and is read."""
    import packages
    from fracskip.runtime import accelerator_driver as ad

    def channels(folder, finn, extra):  # two gates of 2 groups, [d, keep] each; only the 4-bit and 8-bit paths
        io = finn["driver_information"]["io_shape_dict"]
        io["odt"][1], io["oshape_normal"][1], io["oshape_folded"][1], io["oshape_packed"][1] = \
            "DataType['INT16']", [1, 4], [1, 4, 1], [1, 4, 2]
        extra["decisions"].update(words_per_gate=2, channels={
            "groups": [2, 2], "bitops_by_kept": [[None, [0, 2.0, 4.0], [0, 8.0, 16.0]]] * 2})

    pkg = ad.load_package(packages.write(tmp_path / "pkg", channels))

    class Board:  # an overlay returning fixed decisions
        batch_size = 1

        def __init__(self, words):
            self.words = np.asarray(words, np.float32)

        def execute(self, inputs):
            return np.zeros((len(inputs[0]), 10), np.float32), self.words[:len(inputs[0])]

    images = np.zeros((2, 1, 28, 28), np.uint8)
    run = ad.AcceleratorDriver(pkg, Board([[0, 0, 1, 3], [2, 1, 1, 2]])).run(images)
    assert run.keep.tolist() == [[0, 3], [1, 2]]
    for words in ([[1, 0, 1, 3], [0, 0, 0, 0]], [[0, 0, 2, 4], [0, 0, 0, 0]]):  # keep 0 on a path; a third group
        with pytest.raises(FracskipError, match="bitstream does not match this package"):
            ad.AcceleratorDriver(pkg, Board(words)).run(images)


def test_the_driver_makes_the_image_stream_a_batch_at_a_time(tmp_path):
    """The host ops before the accelerator run per batch: the float32 stream of a whole image set (four times its
    uint8 pixels) is never made at once, which a Pynq-Z2's 512 MB may not hold."""
    import tracemalloc

    import packages
    from fracskip.runtime import accelerator_driver as ad

    pkg = ad.load_package(packages.write(tmp_path / "pkg"))

    class Board:  # an overlay answering zeros
        batch_size = 1

        def execute(self, inputs):
            n = len(inputs[0])
            return np.zeros((n, 10), np.float32), np.zeros((n, 2), np.float32)

    x = np.zeros((20000, 1, 28, 28), np.uint8)
    tracemalloc.start()
    try:
        run = ad.AcceleratorDriver(pkg, Board()).run(x, batch_size=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert run.batches == 200 and len(run.logits) == 20000
    assert peak < x.nbytes / 2, f"{peak / 1e6:.1f} MB allocated for {x.nbytes / 1e6:.1f} MB of images"


def test_bitops_and_kept_fraction_count_the_channel_groups_kept():
    """``count_bitops``: the fixed BitOPs plus each gated block's chosen path; a path with channel groups costs
    what its groups kept cost, not its full width. ``kept_fraction``: over the inputs that ran such a path only
    (None where none did)."""
    from fracskip.runtime.controller import count_bitops, kept_fraction

    costs = [[0, 100, 200]]  # one gated block: skip, 2 bits, 4 bits (the 4-bit path in 4 channel groups)
    by_kept = [[None, None, [0, 50, 100, 150, 200]]]
    choices = np.array([[0], [1], [2], [2]])
    keep = np.array([[0b1111], [0b0001], [0b0011], [0b1000]])  # the keep bits of a path without groups: unread
    assert count_bitops(1000, costs, by_kept, choices, keep).tolist() == [1000, 1100, 1100, 1050]
    assert count_bitops(1000, costs, by_kept, choices).tolist() == [1000, 1100, 1200, 1200]
    assert kept_fraction(choices, keep, [4], [[2]]) == [(2 + 1) / 2 / 4]
    assert kept_fraction(choices[:2], keep[:2], [4], [[2]]) == [None]

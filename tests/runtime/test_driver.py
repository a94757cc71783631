"""fracskip.runtime.driver: the board driver (numpy only), its packing against FINN's, and the driver against a
simulated overlay whose IODMAs stream the buffers through the Verilator models of the tiny build's cores.

No board code path has been run on a board: the board itself is only simulated here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from fracskip.cli import main
from fracskip.errors import FracskipError
from fracskip.runtime import driver as drv

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
    for bits in (1, 5, 8, 12, 16, 31, 32):
        for signed in (False, True):
            if bits == 1 and signed:
                continue
            name = ("INT" if signed else "UINT") + str(bits)
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            x = rng.integers(lo, hi + 1, (5, 3, 7), dtype=np.int64)
            for container in (x, x.astype(np.float32) if bits <= 24 else x.astype(np.float64)):
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
    code = ("import sys; import fracskip.runtime.driver, fracskip.runtime.accelerator_driver, "
            "fracskip.runtime.controller, fracskip.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'qonnx', 'finn', 'onnx', 'brevitas', "
            "'onnxruntime', 'pynq', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- the driver on a simulated board


@pytest.fixture(scope="module")
def tiny_build(tiny_export, tmp_path_factory):
    from fracskip.hls.rtlsim import find_verilator

    find_verilator()
    return hil.tiny_build(tiny_export, tmp_path_factory)


@pytest.fixture(scope="module")
def board(tiny_build):
    from fracskip.hls.rtlsim_backend import SimOverlay

    overlay = SimOverlay(tiny_build, progress=False)
    yield overlay, drv.OverlayBackend(overlay.info, overlay.cores(), overlay, overlay.allocate)
    overlay.close()


@pytest.mark.rtlsim
@pytest.mark.slow
def test_driver_streams_batches_through_the_simulated_overlay(tiny_build, board):
    """stem and head (the two cores without a residual fork) at batch sizes 1 and 5: the integers the driver
    unpacks equal FINN's Python execution of the partition; the input buffer holds FINN's packing."""
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    from fracskip.hls.rtlsim_backend import RTLSimBackend

    overlay, be = board
    images, _ = hil.sample_images(6)
    ref = RTLSimBackend(tiny_build, progress=False)  # only its FINN Python reference is used here
    for n in (1, 5):
        x = images[:n].astype(np.float32)
        y = be.run("stem", x)
        assert y.shape == (n, 16, 28, 28)
        np.testing.assert_array_equal(be.last_outputs, ref.reference("stem", x))
        io, dma = be.io["stem"], be.dma["stem"]
        folded = x.transpose(0, 2, 3, 1).reshape((n,) + io.ishape_folded[1:])
        np.testing.assert_array_equal(dma.ibuf[:n], finnpy_to_packed_bytearray(folded, DataType["UINT8"],
                                                                              reverse_inner=True, reverse_endian=True))
        assert overlay.last_result["stem"].frame_cycles and not overlay.last_result["stem"].stalled
        h = np.random.default_rng(n).integers(0, 49 * 255 + 1, (n, 64)).astype(np.float32)  # pooled sums
        logits = be.run("head", h)
        assert logits.shape == (n, 10)
        np.testing.assert_array_equal(be.last_outputs, ref.reference("head", h))
    assert be.dma["stem"].batch_size == 5  # the buffers grew with the batch
    ref.close()


@pytest.mark.rtlsim
@pytest.mark.slow
def test_driver_refuses_wrong_shapes_and_values(board):
    _, be = board
    with pytest.raises(FracskipError, match=r"expected a batch of shape \(n, 1, 28, 28\)"):
        be.run("stem", np.zeros((2, 28, 28), np.float32))
    with pytest.raises(FracskipError, match=r"expected a batch of shape"):
        be.run("stem", np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(FracskipError, match="not a UINT8"):
        be.run("stem", np.full((1, 1, 28, 28), 300, np.float32))
    with pytest.raises(FracskipError, match="not a UINT8"):
        be.run("stem", np.full((1, 1, 28, 28), 0.5, np.float32))
    with pytest.raises(FracskipError, match="integer values"):
        be.run("stem", np.zeros((1, 1, 28, 28), dtype=bool))
    with pytest.raises(FracskipError, match="not in this overlay"):
        be.run("block9_b8", np.zeros((1, 16, 28, 28), np.float32))


@pytest.mark.rtlsim
@pytest.mark.slow
def test_a_stalled_core_is_reported_not_waited_for(tiny_build):
    """A core that never finishes (here: a cycle limit far below one frame) leaves its output DMA busy, as on
    hardware; the driver gives up after its timeout with a message, and refuses to reuse the busy DMA."""
    from fracskip.hls.rtlsim_backend import SimOverlay

    overlay = SimOverlay(tiny_build, cycle_limit=200, progress=False)
    be = drv.OverlayBackend(overlay.info, overlay.cores(), overlay, overlay.allocate, timeout_s=0.5)
    x = hil.sample_images(2)[0].astype(np.float32)
    t0 = time.time()
    with pytest.raises(FracskipError, match="stem stalled: its output DMA did not finish within 0.5 s"):
        be.run("stem", x)
    assert time.time() - t0 < 5 + overlay.sims.build_seconds
    assert overlay.last_result["stem"].stalled and overlay.last_result["stem"].cycles == 200
    with pytest.raises(FracskipError, match="not idle"):
        be.run("stem", x)
    overlay.close()


@pytest.mark.rtlsim
@pytest.mark.slow
def test_deploy_fails_clearly_without_a_board(tiny_build, tmp_path, capsys):
    from fracskip.hls.rtlsim_backend import write_package

    pkg = write_package(tiny_build, tmp_path / "pkg")
    info, cores = drv.load_settings(pkg)
    assert info["platform"] == "zynq-iodma" and set(cores) == set(
        __import__("json").loads((tiny_build / "summary.json").read_text())["cores"])
    np.save(tmp_path / "x.npy", hil.sample_images(2)[0])
    rc = main(["deploy", str(pkg), "--images", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert rc == 2
    try:
        import pynq  # noqa: F401
    except ImportError:
        assert "pynq is not installed" in err
    else:  # pynq present but no bitstream in the package
        assert "bitstream" in err or "pynq could not open" in err


@pytest.mark.rtlsim
@pytest.mark.slow
def test_successful_deploy_on_the_simulated_board(tiny_export, tmp_path_factory, tmp_path, monkeypatch, capsys):
    """`fracskip deploy PACKAGE --images --labels --json`, the board being the simulated overlay of the tiny build
    (FIFOs of the cores these images use sized): the accuracy and compute it prints are the torch model's on the
    same images, computed independently."""
    from fracskip.hls.rtlsim_backend import SimOverlay, write_package
    from fracskip.runtime.manifest import Manifest
    from fracskip.runtime.torch_backend import TorchBackend

    build_dir, _ = hil.sized_tiny_build(tiny_export, tmp_path_factory)
    pkg = write_package(build_dir, tmp_path / "pkg")
    images, labels = hil.sample_images()
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    overlays = []

    def open_sim(package, timeout_s=10.0, download=True):
        info, cores = drv.load_settings(package)
        overlay = SimOverlay(build_dir, progress=False)
        overlays.append(overlay)
        return drv.OverlayBackend(info, cores, overlay, overlay.allocate, timeout_s=timeout_s)

    monkeypatch.setattr(drv, "open_overlay", open_sim)
    try:
        rc = main(["deploy", str(pkg), "--images", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                   "--batch-size", "5", "--timeout", "60", "--json"])
    finally:
        for o in overlays:
            o.close()
    assert rc == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    m = Manifest.load(pkg / "export")
    ref_logits, ref_choices = TorchBackend(str(m.file(m.data["source_checkpoint"]["file"])), exact=True).reference(images)
    assert res["n"] == len(images) and res["backend"] == "pynq"
    assert res["accuracy"] == float((ref_logits.argmax(1) == labels).mean())
    cost = np.array([sum(blk["paths"][str(m.bit_menu[c])]["bitops"] for blk, c in zip(m.gated_blocks, row))
                     for row in ref_choices], dtype=np.float64)
    fixed = m.data["stem"]["bitops"] + m.data["head"]["bitops"] + sum(
        next(iter(b["paths"].values()))["bitops"] for b in m.blocks if not b["gated"])
    assert res["compute_pct"] == pytest.approx(100 * (cost + fixed).mean() / m.data["bitops"]["full_8bit"])

"""The ``rtlsim`` backend: the runtime controller driving the Verilator models of a build's cores.

The build is the tiny test network's (tests/conftest.py ``tiny_export``) taken to HDL for Pynq-Z2, with the FIFOs
of the residual cores the test images use sized by simulation (tests/hil.py, shared with the driver
tests). References: FINN's Python execution of each partition (exact integers), the exported QONNX graphs and
the PyTorch model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fracskip.cli import main
from fracskip.errors import FracskipError
from fracskip.hls.build import BuildConfig

import hil  # tests/hil.py: the shared tiny HDL build

pytestmark = pytest.mark.xdist_group(__name__)


def test_size_fifos_needs_hdl():
    with pytest.raises(FracskipError, match="--until hdl"):
        BuildConfig(until="estimates", size_fifos=True)


@pytest.fixture(scope="module")
def sized(tiny_export, tmp_path_factory):
    """(build folder, cores the test images use, summary.json before the sizing's section)."""
    from fracskip.hls.rtlsim import find_verilator

    find_verilator()
    build_dir, used = hil.sized_tiny_build(tiny_export, tmp_path_factory)
    return build_dir, used, hil.summary_before_sizing(tmp_path_factory)


@pytest.fixture(scope="module")
def backend(sized):
    from fracskip.hls.rtlsim_backend import RTLSimBackend

    with RTLSimBackend(sized[0], progress=False) as be:
        yield be


@pytest.mark.rtlsim
@pytest.mark.slow
def test_fifo_sizing_is_recorded_in_the_build(sized):
    from fracskip.hls.rtlsim_backend import core_model_path

    build_dir, used, before = sized
    after = json.loads((build_dir / "summary.json").read_text())
    section = after.pop("rtlsim")
    before.pop("rtlsim", None)
    for k in ("time_s",):
        after.pop(k), before.pop(k)
    assert after == before  # the existing keys are untouched
    assert section["cores"], "no core was sized"
    for core, r in section["cores"].items():
        assert core in used
        assert core_model_path(build_dir, core).name == "step_fracskip_size_fifos.onnx"
        assert (build_dir / r["report"]).is_file()
        assert r["minimal_fifo_cycles"] is None  # FINN's minimal FIFOs deadlock a residual fork
        assert max(r["fifo_depths"].values()) > 2
        assert r["cycles_vs_estimate"] < 1.04  # within the sizing tolerance of FINN's estimate


@pytest.mark.rtlsim
@pytest.mark.slow
def test_full_network_in_the_loop_is_bit_exact(sized, capsys):
    """`fracskip simulate BUILD --backend rtlsim --json` on the test images: every core invocation bit-exact
    with the qonnx backend and with FINN's Python execution of its partition, the gates decide as PyTorch
    does, cycles close to FINN's estimates."""
    build_dir, used, _ = sized
    n = hil.N_IMAGES
    rc = main(["simulate", str(build_dir), "--backend", "rtlsim", "--dataset", "synthetic", "--limit", str(n),
               "--batch-size", "5", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == n and res["backend"] == "rtlsim"
    assert res["bit_exact_pct"] == 100.0
    assert res["decisions_match_pct"] == 100.0
    assert res["argmax_agreement_pct"] == 100.0 and res["accuracy"] == res["torch_accuracy"]
    assert res["bit_exact_vs_finn_pct"] == 100.0
    assert res["head_max_abs_diff"] < 1e-4
    # bit_exact_pct counts the integer cores' invocations (the head ends in float logits: head_max_abs_diff)
    used_per_image = hil.cores_per_image(build_dir, hil.sample_images(n)[0])
    assert res["path_invocations"] == sum(len([c for c in cores if c != "head"]) for cores in used_per_image)
    assert set(res["cores"]) == set(used)
    summary = json.loads((build_dir / "summary.json").read_text())
    images, _ = hil.sample_images(n)
    expected = np.mean([sum(summary["cores"][c]["cycles"] for c in cores)
                        for cores in hil.cores_per_image(build_dir, images)])  # FINN's estimate, same paths
    assert 0.97 < res["mean_cycles_per_input"] / expected < 1.05, (res["mean_cycles_per_input"], expected)
    cve = res["cycles_vs_estimate"]
    assert set(cve) == {"overall", *used} and 0.97 < cve["overall"] < 1.05
    assert res["images_per_s"] > 0


@pytest.mark.rtlsim
@pytest.mark.slow
def test_batches_of_one_and_more(backend):
    images, _ = hil.sample_images(4)
    x = images.astype(np.float32)
    y4 = backend.run("stem", x)
    ints4, cyc4 = backend.last_outputs, backend.last_cycles
    np.testing.assert_array_equal(ints4, backend.reference("stem", x))
    assert y4.shape == (4, 16, 28, 28) and cyc4.shape == (4,)
    y1 = backend.run("stem", x[2:3])
    assert backend.last_cycles.shape == (1,)
    np.testing.assert_array_equal(y1, y4[2:3])
    # a batch of one is streamed twice for its steady state: the same cycles per frame as the batch of four
    assert abs(backend.last_cycles[0] / cyc4[0] - 1) < 0.01
    assert abs(cyc4[0] / backend.stats["stem"].estimate - 1) < 0.03


@pytest.mark.rtlsim
@pytest.mark.slow
def test_wrong_inputs_are_refused(backend):
    with pytest.raises(FracskipError, match=r"core stem: expected a batch of shape \(n, 1, 28, 28\)"):
        backend.run("stem", np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(FracskipError, match="not a UINT8"):
        backend.run("stem", np.full((2, 1, 28, 28), -1, np.float32))
    with pytest.raises(FracskipError, match="not in the build"):
        backend.run("block7_b2", np.zeros((1, 16, 28, 28), np.float32))


@pytest.mark.rtlsim
@pytest.mark.slow
def test_a_stalled_core_is_reported(sized):
    """A cycle limit below one frame's latency: the simulation stops there and says so, it does not hang."""
    from fracskip.hls.rtlsim_backend import RTLSimBackend

    with RTLSimBackend(sized[0], cycle_limit=300, progress=False) as be:
        with pytest.raises(FracskipError, match=r"core stem: the core stalled: no result after the cycle limit of 300"):
            be.run("stem", hil.sample_images(2)[0])


@pytest.mark.rtlsim
@pytest.mark.slow
def test_a_deadlock_is_reported_with_the_stage_that_stopped(sized, rtl_cache):
    """A residual core with every FIFO at FINN's minimum depth (2): the fork's skip branch cannot hold what the
    convolution branch buffers, the join waits for the branch that never delivers. The error names the join and
    the empty input it waits for, not just the core."""
    from qonnx.core.modelwrapper import ModelWrapper

    from fracskip.hls.rtlsim import RTLSimCore
    from fracskip.hls.rtlsim_backend import core_model_path

    build_dir, used, _ = sized
    core = next(c for c in used if c.startswith("block") and not c.endswith("_b0"))
    model = ModelWrapper(str(core_model_path(build_dir, core)))
    joins = {n.name for n in model.graph.node if n.op_type == "ElementwiseAdd_rtl"}
    assert len(joins) == 1
    x = np.zeros([2, *model.get_tensor_shape(model.graph.input[0].name)[1:]], np.float32)
    with RTLSimCore(model, cache_dir=rtl_cache, sizing_fifos=True, cycle_limit=200_000, progress=False) as sim:
        with pytest.raises(FracskipError, match="stalled at ") as err:
            sim.run([x], fifo_depths=[2] * len(sim.fifos), reset=True)
        res = sim.run([x], fifo_depths=[2] * len(sim.fifos), reset=True, check=False)
    assert res.stalled and res.stall_diagnosis in str(err.value)
    (join,) = joins
    assert res.stall_diagnosis.startswith(f"stalled at {join} (ElementwiseAdd_rtl) does not take "), res.stall_diagnosis
    assert "while it waits for" in res.stall_diagnosis and "empty" in res.stall_diagnosis, res.stall_diagnosis


def test_stall_diagnosis_follows_blocked_streams_to_the_waiting_node():
    from fracskip.hls.rtlsim.stitch import Link, diagnose_stall

    # fork -> fifo_a -> add.in0 ; fork -> conv -> add.in1 ; add -> out
    links = [Link(0, "t_skip", "fork", "fifo_a", "StreamingFIFO_rtl"), Link(1, "t_a", "fifo_a", "add", "ElementwiseAdd_rtl"),
             Link(2, "t_conv_in", "fork", "conv", "MVAU_rtl"), Link(3, "t_b", "conv", "add", "ElementwiseAdd_rtl")]
    deadlock = [(True, False), (True, False), (False, True), (False, False)]
    d = diagnose_stall(links, deadlock)
    assert d == ("stalled at add (ElementwiseAdd_rtl) does not take t_a (from fifo_a) while it waits for t_b "
                 "(from conv, empty); full FIFOs: fifo_a"), d
    assert "starved" in diagnose_stall(links, [(False, True)] * 4)
    assert diagnose_stall(links, []) == "no stream state was recorded"


@pytest.mark.rtlsim
@pytest.mark.slow
def test_lut_mvau_core_is_bit_exact(sized, backend):
    """With the builder's default ``--mvau lut`` the 2- and 4-bit paths compute on fracskip's MVAU_lut
    (test_build.py checks which layers); one that the test images take runs bit-exact on random inputs."""
    build_dir, used, _ = sized
    summary = json.loads((build_dir / "summary.json").read_text())
    assert summary["mvau"] == "lut"
    lut_cores = [c for c in used if "MVAU_lut" in summary["cores"][c]["mvau"].values()]
    assert lut_cores, "the test images take no path with an MVAU_lut"
    core = lut_cores[0]
    x = np.random.default_rng(1).integers(0, 256, (3, *backend.io[core].host_input_shape[1:])).astype(np.float32)
    backend.run(core, x)
    np.testing.assert_array_equal(backend.last_outputs, backend.reference(core, x))
    assert backend.last_cycles[0] / backend.stats[core].estimate < 1.04  # the FIFO sizing's tolerance

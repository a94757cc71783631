"""The accelerator's deployment package (hls/deploy_package.py) driven by the board driver
(fracskip.runtime.accelerator_driver) through the simulated overlay: ``fracskip deploy PACKAGE --simulate``.

The accelerator is the one ``fracskip build`` emits for the tiny network (design dfs: tests/hil.py's shared build,
composed and FIFO-sized by tests/hil.py's ``dfs_accelerator`` and ``sized_dfs_accelerator``, as
tests/hls/test_accelerator.py's are, on the same eight covering images: every path of every gated block taken),
packaged with the run-time-depth FIFOs at the depths that sizing chose. The module runs in test_accelerator's xdist
group, after it: the graph, its HDL and its sizing are there (made once per process), and so is FINN's front end of
the export, which the golden (the numpy controller) reuses; ``--simulate`` runs the Verilator binary the sizing
compiled (cached by content). No Vivado runs and no bitstream exists: the package says so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import hil  # tests/hil.py: the shared tiny HDL build

pytestmark = [pytest.mark.rtlsim, pytest.mark.slow, pytest.mark.xdist_group("test_accelerator")]

N_IMAGES = hil.ACCELERATOR_IMAGES  # test_accelerator's: the same images give the same sizing run


@pytest.fixture(scope="module")
def package(tiny_export, tmp_path_factory, rtl_cache):
    """(package folder, images file, labels file, images, labels, build folder) of the tiny build's accelerator."""
    from fracskip.hls import deploy_package as DP
    from fracskip.hls.rtlsim import find_verilator, setup_finn

    find_verilator()
    hil.tiny_build(tiny_export, tmp_path_factory)
    root = tmp_path_factory.mktemp("deploy")
    setup_finn(root / "finn_build", cache_dir=rtl_cache)  # the build re-initialised FINN
    from fracskip.hls import ops  # noqa: F401

    acc = hil.dfs_accelerator(tiny_export, tmp_path_factory, rtl_cache)
    _, sizing = hil.sized_dfs_accelerator(acc)  # FINN's peak-occupancy rule on the images (size_fifos, step 1)
    pkg = DP.write_package(acc["build_dir"], root / "package", acc["hw"], sizing.depths)
    np.save(root / "x.npy", acc["images"])
    np.save(root / "y.npy", acc["labels"])
    return pkg, root / "x.npy", root / "y.npy", acc["images"], acc["labels"], acc["build_dir"]


def test_package_is_finns_layout(package):
    """driver/settings.json is FINN's MakePYNQDriver output for one image stream in and two streams out; fracskip's
    additions beside it; no bitfile/ (no Vivado here), and the package says so."""
    from fracskip.runtime import accelerator_driver as ad

    pkg = ad.load_package(package[0])
    assert pkg.info["driver_type"] == "FINNDMAOverlay" and pkg.platform == "zynq-iodma"
    io = pkg.io
    assert io["idma_names"] == ["idma0"] and sorted(io["odma_names"]) == ["odma0", "odma1"]  # MakeZYNQProject's names
    assert io["idt"] == ["DataType['UINT8']"] and io["ishape_normal"] == [[1, 28, 28, 1]]
    assert io["oshape_normal"] == [[1, 10], [1, 2]] and io["odt"][1] == "DataType['INT16']"
    assert pkg.extra["decisions"]["blocks"] == [1, 2] and pkg.extra["decisions"]["bit_menu"] == [0, 2, 4, 8]
    assert [o["op"] for o in pkg.extra["host"]["pre"]] == ["Transpose"] and pkg.extra["host"]["post"]
    assert pkg.bitfile is None and not (package[0] / "bitfile").exists()
    assert pkg.extra["provenance"]["bitstream"].startswith("absent")


def test_deploy_simulate_equals_the_golden(package, capsys):
    """The CLI on a board's arguments plus --simulate, batches of 3 (the buffers reallocated for the last, of 2):
    every image's head integers and decisions equal the golden's, its accuracy is eval's on these images."""
    from fracskip.cli import main

    pkg, x, y, *_ = package
    rc = main(["deploy", str(pkg), "--simulate", "--images", str(x), "--labels", str(y), "--json",
               "--batch-size", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    r = json.loads(out)
    assert r["simulated"] is True and r["n"] == N_IMAGES and r["batches"] == 3
    assert r["decisions_match_pct"] == 100.0 and r["bit_exact_pct"] == 100.0, r
    assert r["argmax_equal_golden_pct"] == 100.0 and r["logits_max_abs_diff"] < 1e-4
    assert r["accuracy"] == r["accuracy_golden"] == r["accuracy_eval"]
    for block, use in r["decisions"].items():  # every path taken
        assert sorted(use) == ["0", "2", "4", "8"] and min(use.values()) > 0, (block, use)
    assert r["rtlsim"]["transfers"] == 3 and r["rtlsim"]["images"] == N_IMAGES
    assert r["rtlsim"]["cycles_per_image"] < 1.5 * r["rtlsim"]["estimate_max_cycles"]
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend

    man = Manifest.load(package[5] / "export")  # the controller's count of what these decisions cost
    _, trace = Controller(man, QONNXBackend(man, progress=False)).run(package[3])
    assert r["bitops_per_input"] == pytest.approx(float(trace.bitops.mean()), rel=1e-9)
    assert 0 < r["compute_pct"] < 100


def test_deploy_without_a_board_or_bitstream_says_what_is_missing(package, capsys):
    from fracskip.cli import main

    pkg, x, *_ = package
    assert main(["deploy", str(pkg), "--images", str(x), "--json"]) == 2
    err = capsys.readouterr().err
    assert "no bitstream" in err and "--until bitstream" in err and "--simulate" in err


def test_a_damaged_package_is_refused(package, tmp_path):
    import shutil

    from fracskip.errors import FracskipError
    from fracskip.runtime import accelerator_driver as ad

    bad = tmp_path / "pkg"
    shutil.copytree(package[0] / "driver", bad / "driver")
    extra = json.loads((bad / ad.EXTRA).read_text())
    extra["decisions"]["gates"].append(2)  # a third gate, with its costs, that the stream does not carry
    extra["decisions"]["bitops"].append(extra["decisions"]["bitops"][-1])
    (bad / ad.EXTRA).write_text(json.dumps(extra))
    with pytest.raises(FracskipError, match="decisions stream carries 2 values"):
        ad.load_package(bad)
    s = json.loads((bad / ad.SETTINGS).read_text())
    s["driver_information"]["io_shape_dict"]["odma_names"] = ["odma0", ""]
    (bad / ad.SETTINGS).write_text(json.dumps(s))
    with pytest.raises(FracskipError, match="odma_names"):
        ad.load_package(bad)


def test_a_stalled_accelerator_is_reported_not_waited_for(package, rtl_cache):
    """An accelerator that never finishes (a cycle limit far below one image) leaves its output DMAs busy, as on
    hardware: the driver gives up after its timeout with a message, and refuses to start on the busy DMAs."""
    import time

    from fracskip.errors import FracskipError
    from fracskip.hls.sim_board import AcceleratorSimOverlay
    from fracskip.runtime import accelerator_driver as ad

    pkg = ad.load_package(package[0])
    sim = AcceleratorSimOverlay(pkg, cache_dir=rtl_cache, cycle_limit=200)
    try:
        overlay = ad.DMAOverlay(sim, sim.allocate, pkg.io, pkg.platform, batch_size=2, timeout_s=0.5)
        x = package[3][:2].transpose(0, 2, 3, 1)  # the image stream's NHWC frames
        t0 = time.monotonic()
        with pytest.raises(FracskipError, match=r"the accelerator stalled: output DMA 0 did not finish a batch of 2 within 0.5 s \(--timeout 0.5 s per 1000 images\)"):
            overlay.execute(x)
        assert time.monotonic() - t0 < 5
        assert sim.results[-1].stalled and sim.results[-1].cycles == 200
        with pytest.raises(FracskipError, match="not idle"):
            overlay.execute(x)
    finally:
        sim.close()

"""`fracskip bench --quick --json` on the shipped default: eval, export, golden controller, the Pynq-Z2 build to
FINN's estimates and the throughput table of the DFS accelerator and the static pipelines on the same budget.
Then, on the bench's build, the default's accelerator through every step before the first call of AMD's tools."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import hil  # tests/hil.py: the recording stand-ins for AMD's tools

from fracskip import bitstreams
from fracskip.bench import QUICK
from fracskip.cli import main
from fracskip.training.checkpoint import DEFAULT_DIR

pytestmark = pytest.mark.xdist_group("bench")  # the second test reuses the first one's build of the default
_BENCH: dict[str, Path] = {}


@pytest.mark.slow
def test_bench_quick_on_the_default(tmp_path, capfd):
    out = tmp_path / "bench"
    # two parallel FINN builds: the machine has two cores, and `build --workers 2` is exercised here
    assert main(["bench", "--quick", "--json", "-o", str(out), "--workers", "2"]) == 0
    fig = json.loads(capfd.readouterr().out)  # stdout at the descriptor: nothing but the JSON, FINN's workers too
    with capfd.disabled():  # the figures, for the CI log
        print("\nfracskip bench --quick --json:\n" + json.dumps(fig))
    assert fig == json.loads((out / "bench.json").read_text())
    _BENCH["build"] = out / "build-Pynq-Z2"

    assert fig["model"]["n"] == 1000 and 0.85 < fig["model"]["accuracy"] <= 1 and fig["model"]["compute_pct"] <= 100
    g = fig["golden"]
    assert g["n"] == QUICK["golden_images"]
    assert g["decisions_match_pct"] == 100 and g["argmax_agreement_pct"] == 100
    assert g["max_logit_abs_diff"] <= 1e-4 and g["accuracy"] == g["torch_accuracy"]

    b = fig["build"]
    assert b["board"] == "Pynq-Z2" and b["until"] == "estimates" and b["wall_s"] > 0
    assert b["cores"] == fig["export"]["cores"] and fig["rtlsim"] is None  # quick: no RTL of the shipped network

    t = fig["throughput"]
    designs = ("dfs", "static_W2A2", "static_W4A4", "static_W8A8")
    budget = {r: v * t["budget_fraction"] for r, v in bitstreams.load("Pynq-Z2").resources.items()
              if r in ("LUT", "BRAM_18K", "URAM", "DSP")}
    compare = {r["model"]: r for r in json.loads((DEFAULT_DIR / "compare.json").read_text())}
    full_8bit = json.loads((out / "export" / "manifest.json").read_text())["bitops"]["full_8bit"]
    for name in designs:
        d = t[name]
        assert set(d) >= {"accuracy", "bitops_per_image", "cycles_per_image_model", "cycles_per_image_measured",
                          "images_per_s_measured", "resources_synth", "fits"}, name
        assert d["cycles_per_image_model"] > 0 and d["resources_est"]["LUT"] > 0
        # every design folded with what FINN inserts between its nodes inside the same budget
        assert d["fits"] and all(d["resources_est_inserted"][r] <= budget[r] for r in budget), (name, d)
        assert d["cycles_per_image_measured"] is None and d["images_per_s_measured"] is None  # not simulated
        if name != "dfs":
            assert d["accuracy"] == compare[name.replace("_", " ")]["accuracy"]
    # BitOPs against the export's own count (qonnx-inference-cost's): the all-8-bit pipeline runs every layer at
    # 8 bits; the narrower static ones and DFS (the gates' calibration frequencies) run fewer
    assert t["static_W8A8"]["bitops_per_image"] == pytest.approx(full_8bit, rel=1e-6)
    assert t["static_W2A2"]["bitops_per_image"] < t["static_W4A4"]["bitops_per_image"] < full_8bit
    assert t["dfs"]["bitops_per_image"] < full_8bit
    # the claim compares accuracies on the same 10,000 test images: DFS's from the checkpoint's eval.json (the
    # quick bench evaluates 1,000), the static networks' from compare.json
    evaluated = json.loads((DEFAULT_DIR / "eval.json").read_text())
    assert (t["dfs"]["accuracy"], t["dfs"]["accuracy_images"]) == (evaluated["accuracy"], evaluated["n"]) == \
        (t["dfs"]["accuracy"], t["static_W4A4"]["accuracy_images"])
    peers = [n for n in designs[1:] if t[n]["accuracy"] >= evaluated["accuracy"]]
    assert t["claim"]["statics_at_least_as_accurate"] == peers and "static_W4A4" in peers
    assert t["claim"]["dfs_faster_than_every_peer_model"] == all(
        t[n]["cycles_per_image_model"] > t["dfs"]["cycles_per_image_model"] for n in peers)


@pytest.fixture
def default_build(tmp_path_factory) -> Path:
    """The Pynq-Z2 build of the shipped default to FINN's estimates: the quick bench's, or one of its own where the
    bench did not run first in this process."""
    if "build" not in _BENCH:
        from fracskip.export.exporter import export
        from fracskip.hls.build import BuildConfig, build

        root = tmp_path_factory.mktemp("default")
        export("default", root / "export", progress=False)
        build(root / "export", root / "build", BuildConfig(board="Pynq-Z2", until="estimates"), progress=False)
        _BENCH["build"] = root / "build"
    return _BENCH["build"]


@pytest.mark.slow
@pytest.mark.rtlsim  # the HDL is generated with the Verilator-compatible FINN library
def test_default_accelerator_up_to_the_first_vivado_call(default_build, rtl_cache, tmp_path, monkeypatch):
    """The shipped default's accelerator (design dfs, every node folded for the Pynq-Z2 budget) through what runs
    before AMD's tools: its HDL; FINN's CreateStitchedIP up to its Vivado call, the IPI script complete
    (``stitch_problems``); the shell step (FINN's step_synthesize_bitfile: ZynqBuild's IODMAs, width converters and
    partitions) up to its first Vitis HLS call; the deployment package with FINN's driver. Recording stand-ins
    answer the tools; nothing here is a bitstream. The FIFOs keep FINN's inserted depths: their sizing by simulation
    is measured by ``fracskip bench`` and ``make demo``, not in CI (about nine CPU-minutes on this network)."""
    import finn.transformation.fpgadataflow.create_stitched_ip as csi

    from fracskip import bitstreams
    from fracskip.hls import shell
    from fracskip.hls.accelerator import compose_design, to_hw
    from fracskip.hls.deploy_package import write_package
    from fracskip.hls.rtlsim import setup_finn
    from fracskip.hls.stitch_ip import TCL, create_stitched_ip, stitch_problems
    from fracskip.runtime import accelerator_driver as ad
    from qonnx.core.modelwrapper import ModelWrapper

    board = bitstreams.load("Pynq-Z2")
    hil.keep_finn_env(monkeypatch)
    setup_finn(tmp_path / "finn", cache_dir=rtl_cache)
    model, info = compose_design(default_build, "dfs")
    hw = to_hw(model, board.part, board.clk_ns)
    ops = {n.op_type for n in hw.graph.node}
    assert len(hw.graph.node) > len(model.graph.node)  # a FIFO on every stream
    assert {"DFSGate_rtl", "MVAU_bitserial", "StreamRoute_rtl", "StreamingFIFO_rtl"} <= ops

    calls = hil.recording_stand_ins(tmp_path, monkeypatch)
    # FINN waits for each added file to hold still for 50 ms; all were written before the stitch
    monkeypatch.setattr(csi, "wait_for_file", functools.partial(csi.wait_for_file, stable_for=0))
    with pytest.raises(Exception, match=hil.FINN_STOPS_AFTER_VIVADO):
        create_stitched_ip(hw, board.part, board.clk_ns)
    (call,) = hil.tool_calls(calls)
    assert call.tool == "vivado" and call.args == f"-mode batch -source {TCL}"
    assert call.cwd.name.startswith("vivado_stitch_proj_")
    assert stitch_problems(hw, (call.cwd / TCL).read_text()) == []

    out = tmp_path / "finn_output"
    with pytest.raises(Exception, match=hil.FINN_STOPS_AFTER_HLS):
        shell.synthesize(hw, shell.dataflow_config(out, board))
    call = hil.tool_calls(calls)[1]
    assert call.tool == "vitis_hls" and "IODMA_hls" in call.cwd.name, call
    parts = sorted((out / "intermediate_models" / "kernel_partitions").glob("partition_*.onnx"))
    sizes = sorted(len(ModelWrapper(str(p)).graph.node) for p in parts)
    # one image stream in, logits and decisions out: three IODMAs, and the accelerator whole in one partition
    assert sizes[:3] == [1, 1, 1] and len(sizes) == 4 and sizes[3] >= len(hw.graph.node), sizes

    pkg = ad.load_package(write_package(default_build, tmp_path / "package", hw))
    assert len(pkg.io["idma_names"]) == 1 and len(pkg.io["odma_names"]) == 2, pkg.io
    assert pkg.extra["decisions"]["blocks"] == [1, 2, 3, 4, 5] and pkg.extra["bitfile"] is None

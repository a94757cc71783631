import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fracskip import bitstreams
from fracskip.cli import main
from fracskip.errors import FracskipError, ToolMissingError
from fracskip.hls import finn_env
from fracskip.hls.build import BuildConfig, build
from fracskip.hls.folding import allocate

import hil  # tests/hil.py: the shared tiny HDL build


def test_board_presets():
    assert bitstreams.names() == ["Pynq-Z2", "U250", "ZCU104"]
    z2 = bitstreams.load("pynq-z2")
    assert z2.part == "xc7z020clg400-1" and z2.shell_flow == "vivado_zynq" and z2.resources["DSP"] == 220
    assert bitstreams.load("ZCU104").part == "xczu7ev-ffvc1156-2-e"
    u250 = bitstreams.load("U250")
    assert u250.shell_flow == "vitis_alveo" and u250.platform
    with pytest.raises(FracskipError, match="unknown board"):
        bitstreams.load("Arty")


def _rung(cycles, lut):
    return {"cycles": cycles, "resources": {"LUT": lut, "BRAM_18K": 0, "URAM": 0, "DSP": 0}}


def test_folding_respects_budget_and_follows_probability():
    ladders = {c: [_rung(1000, 100), _rung(500, 200), _rung(250, 400), _rung(125, 800)] for c in ("often", "rare")}
    budget = {"LUT": 1000, "BRAM_18K": 10, "URAM": 0, "DSP": 10}
    a = allocate(ladders, {"often": 0.9, "rare": 0.1}, budget)
    assert a.fits and a.resources["LUT"] <= budget["LUT"]
    assert a.rungs["often"] > a.rungs["rare"]
    assert a.expected_cycles == pytest.approx(0.9 * ladders["often"][a.rungs["often"]]["cycles"]
                                              + 0.1 * ladders["rare"][a.rungs["rare"]]["cycles"])
    small = allocate(ladders, {"often": 0.9, "rare": 0.1}, {**budget, "LUT": 150})
    assert not small.fits  # even the slowest folding of both cores needs 200 LUT


def test_unknown_board_and_tampered_export_are_refused(tiny_export, tmp_path):
    with pytest.raises(FracskipError, match="unknown board"):
        build(tiny_export, tmp_path / "b", BuildConfig(board="Basys3"))
    bad = tmp_path / "bad"
    shutil.copytree(tiny_export, bad)
    (bad / "head.onnx").write_bytes(b"not onnx")
    with pytest.raises(FracskipError, match="sha256"):
        build(bad, tmp_path / "b2", BuildConfig(board="Pynq-Z2"))
    assert not (tmp_path / "b2").exists()


@pytest.mark.skipif(finn_env.vivado_available(), reason="Vivado is installed: the refusal cannot be shown here")
def test_bitstream_without_vivado_fails_clearly(tiny_export, tmp_path, capsys):
    with pytest.raises(ToolMissingError, match="vivado"):
        build(tiny_export, tmp_path / "b", BuildConfig(board="Pynq-Z2", until="bitstream"))
    assert not (tmp_path / "b").exists()
    rc = main(["build", str(tiny_export), "--board", "Pynq-Z2", "-o", str(tmp_path / "c"), "--until", "bitstream"])
    assert rc == 2 and "vivado not found" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_finn_set_up_where_vivado_is_but_not_its_simulator_binding(tmp_path):
    """A machine with Vivado (here: XILINX_VIVADO and a stand-in found through FINN_TOOL_DIR_OVERRIDE) where FINN's
    binding of Vivado's simulator (XSI, built by `finn deps update`) is not: FINN's build steps still import, since
    fracskip never uses that simulator. They raised "XSI not available" there, in every build's first step."""
    import os
    import subprocess
    import sys

    shim = tmp_path / "recording-stand-ins-not-xilinx-tools"
    shim.mkdir()
    (shim / "vivado").write_text("#!/bin/sh\n# a stand-in for vivado: never called here\nexit 1\n")
    os.chmod(shim / "vivado", 0o755)
    env = dict(os.environ, FINN_TOOL_DIR_OVERRIDE=str(shim),
               XILINX_VIVADO=str(tmp_path / "no-vivado-here" / "Vivado" / "2024.2"))
    code = ("import sys; from pathlib import Path; from fracskip.hls import finn_env; "
            "assert finn_env.vivado_available(); finn_env.setup(Path(sys.argv[1])); "
            "import finn.builder.build_dataflow_steps")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "finn")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_build_summary(tiny_export, tmp_path, tmp_path_factory):
    """The shared tiny build (Pynq-Z2, --until hdl, --mvau lut) against FINN's own reports and the board preset,
    and a --mvau dsp build of the same export beside it."""
    out = hil.tiny_build(tiny_export, tmp_path_factory)
    s = json.loads((out / "summary.json").read_text())
    assert not (out / ".incomplete").exists()
    assert set(s["cores"]) == {"stem", "block0_b8", "block1_b0", "block1_b2", "block1_b4", "block1_b8",
                               "block2_b0", "block2_b2", "block2_b4", "block2_b8", "head"}
    for name, c in s["cores"].items():
        rep = out / c["finn_output_dir"] / "report"
        for f in ("estimate_layer_resources.json", "estimate_layer_cycles.json", "estimate_network_performance.json",
                  "op_and_param_counts.json", "time_per_step.json"):
            assert (rep / f).exists(), (name, f)
        steps = json.loads((rep / "time_per_step.json").read_text())  # both FINN runs of the core, not the last
        assert {"step_fracskip_specialize_layers", "step_target_fps_parallelization", "step_fracskip_hdl"} <= set(steps)
        assert c["cycles"] > 0
    # fits, recomputed from independent sources: FINN's own per-layer reports of every core, and the board's
    # capacity read from its preset file times the budget fraction
    t = s["totals"]
    board = json.loads((Path(bitstreams.__file__).parent / "boards" / "pynq-z2.json").read_text())["resources"]
    used = {r: 0.0 for r in t["resources"]}  # FINN estimates LUT, BRAM_18K, URAM and DSP (no FF)
    for c in s["cores"].values():
        rep = json.loads((out / c["finn_output_dir"] / "report" / "estimate_layer_resources.json").read_text())
        for layer, res in rep.items():
            if layer != "total":
                for r in used:
                    used[r] += res.get(r, 0)
    for r in used:
        assert t["resources"][r] == pytest.approx(used[r]), r
    assert t["fits"] == all(used[r] <= 0.8 * board[r] for r in used)
    v1 = s["per_path_cores"]
    assert v1["static_8bit"]["expected_cycles_per_input"] > 0 and v1["speedup_vs_static_8bit"] > 0
    assert s["exceptions"] == []  # every layer in RTL, every sub-8-bit MVAU on the LUT unit
    with pytest.raises(FracskipError, match="--force"):  # refused before any work: the shared build is untouched
        build(tiny_export, out, BuildConfig(board="ZCU104", until="estimates"), progress=False)

    # --mvau: lut (the default) puts the MVAUs of the 2- and 4-bit paths on MVAU_lut (LUTs, no DSP), dsp all on MVAU_rtl
    dsp = tmp_path / "dsp"
    assert main(["build", str(tiny_export), "--board", "Pynq-Z2", "-o", str(dsp), "--until", "estimates",
                 "--target-fps", str(hil.TARGET_FPS), "--calibration", "64", "--mvau", "dsp", "--quiet"]) == 0
    d = json.loads((dsp / "summary.json").read_text())
    for folder, summary, mvau in ((out, s, "lut"), (dsp, d, "dsp")):
        assert json.loads((folder / "build_config.json").read_text())["mvau"] == summary["mvau"] == mvau
    for name, c in s["cores"].items():
        low = name.endswith(("_b2", "_b4"))
        assert c["mvau"] and set(c["mvau"].values()) == {"MVAU_lut" if low else "MVAU_rtl"}, (name, c["mvau"])
        assert set(d["cores"][name]["mvau"].values()) == {"MVAU_rtl"}
        res = json.loads((out / c["finn_output_dir"] / "report" / "estimate_layer_resources.json").read_text())
        for layer in c["mvau"]:
            assert (res[layer]["DSP"] == 0 and res[layer]["LUT"] > 0) if low else res[layer]["DSP"] > 0, (name, layer)
        if low:  # the DSPs left are the IntRequant_rtl layers' (the 8-bit output requantizers)
            requant_dsp = sum(v["DSP"] for k, v in res.items() if k.startswith("IntRequant_rtl"))
            assert c["resources"]["DSP"] == requant_dsp < d["cores"][name]["resources"]["DSP"]


def test_mvau_option_is_checked():
    assert BuildConfig().mvau == "lut"
    with pytest.raises(FracskipError, match="--mvau must be one of lut, dsp, hls"):
        BuildConfig(mvau="uram")


@pytest.mark.skipif(finn_env.vitis_hls_available(), reason="Vitis HLS is installed: the refusal cannot be shown here")
def test_mvau_hls_to_hdl_without_vitis_fails_clearly(tiny_export, tmp_path, capsys):
    with pytest.raises(ToolMissingError, match="vitis_hls not found: --mvau hls"):
        build(tiny_export, tmp_path / "b", BuildConfig(board="Pynq-Z2", until="hdl", mvau="hls"))
    assert not (tmp_path / "b").exists()
    rc = main(["build", str(tiny_export), "--board", "Pynq-Z2", "-o", str(tmp_path / "c"), "--mvau", "hls"])
    assert rc == 2 and "vitis_hls not found" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def _mvau_layers(tmp_path):
    """Three MVAU_rtl side by side: 2-bit, 8-bit, and 2-bit with runtime-writeable weights (no ROM for those)."""
    finn_env.setup(tmp_path / "finn")
    from fracskip.hls.lutmvu.core import LutMvuParams
    from fracskip.hls.lutmvu.graphs import mvau_model

    models = []
    for i, (bits, attrs) in enumerate([(2, {}), (8, {}), (2, {"runtime_writeable_weights": 1})]):
        p = LutMvuParams(mw=8, mh=4, pe=1, simd=2, weight_bits=bits, weight_signed=True, act_bits=bits,
                         act_signed=False, acc_bits=2 * bits + 3)
        m = mvau_model(p, np.ones((8, 4)), op_type="MVAU_rtl", name=f"MVAU_rtl_{i}", **attrs)
        for t in ("inp", "weights", "outp"):
            m.rename_tensor(t, f"{t}{i}")
        models.append(m)
    g = models[0].graph
    for m in models[1:]:
        for part in ("node", "input", "output", "initializer", "quantization_annotation"):
            getattr(g, part).extend(getattr(m.graph, part))
    return models[0]


def test_lut_mvau_step(tmp_path):
    """--mvau lut: sub-8-bit MVAUs become MVAU_lut, 8-bit ones stay MVAU_rtl, and one the LUT unit cannot
    implement stays MVAU_rtl with its reasons in report/mvau_layers.json; --mvau dsp changes nothing."""
    model = _mvau_layers(tmp_path)
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    from fracskip.hls.steps import step_fracskip_lut_mvau

    for mvau, ops in (("lut", ["MVAU_lut", "MVAU_rtl", "MVAU_rtl"]), ("dsp", ["MVAU_rtl"] * 3)):
        cfg = DataflowBuildConfig(output_dir=str(tmp_path / mvau), target_fps=1)
        out = step_fracskip_lut_mvau(copy.deepcopy(model), cfg, mvau)
        assert [n.op_type for n in out.graph.node] == ops
        report = json.loads((tmp_path / mvau / "report" / "mvau_layers.json").read_text())
        assert report["mvau"] == mvau and set(report["layers"]) == {n.name for n in out.graph.node}
        reasons = {k: v["unsupported_reasons"] for k, v in report["layers"].items() if "unsupported_reasons" in v}
        if mvau == "lut":
            assert [n.name for n in out.graph.node] == ["MVAU_lut_0", "MVAU_rtl_0", "MVAU_rtl_1"]
            assert list(reasons) == ["MVAU_rtl_1"] and "runtime_writeable_weights" in reasons["MVAU_rtl_1"][0]
            assert report["layers"]["MVAU_rtl_0"]["bits"] == 8
        else:
            assert reasons == {}


def test_build_config_keeps_the_options_as_given(tiny_export, tmp_path, monkeypatch):
    """build_config.json ("the options of this build") of a --until bitstream build said "until": "hdl": the HDL
    build runs first as its own step, and that step's options were written instead of the user's."""
    import fracskip.hls.build as B

    monkeypatch.setattr(B.shell, "require_tools", lambda board: None)  # no Vivado needed: stopped before any tool
    seen = {}

    def stop(manifest, n, data_dir):  # the first stage after the options are written
        seen.update(json.loads((tmp_path / "b" / "build_config.json").read_text()))
        raise KeyboardInterrupt
    monkeypatch.setattr(B, "calibrate", stop)
    with pytest.raises(KeyboardInterrupt):
        build(tiny_export, tmp_path / "b", BuildConfig(board="Pynq-Z2", until="bitstream", budget=0.5), progress=False)
    assert seen["until"] == "bitstream" and seen["budget"] == 0.5
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("raised", [RuntimeError("the layer cannot be lowered"), KeyboardInterrupt()],
                         ids=["step-fails", "ctrl-c"])
def test_a_failed_finn_step_is_named_and_ctrl_c_stays_an_interruption(raised, tiny_export, tmp_path, monkeypatch):
    """FINN's builder returns, rather than raises, both when a step fails and when Ctrl-C lands in a step. The error
    said only "see <the core's build_dataflow.log>", a file inside the folder `fracskip build` removes as it fails;
    and a Ctrl-C came out as "FINN build of ... failed" (exit 2) instead of an interruption (exit 130)."""
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    from fracskip.hls import core

    hil.keep_finn_env(monkeypatch)
    finn_env.setup(tmp_path / "finn")

    def step_that_fails(model, cfg):
        raise raised
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # set, FINN's builder re-raises a step's exception itself
    cfg = DataflowBuildConfig(output_dir=str(tmp_path / "core"), synth_clk_period_ns=10.0, fpga_part="xc7z020clg400-1",
                              steps=[step_that_fails], generate_outputs=[])
    with pytest.raises(type(raised)) if isinstance(raised, KeyboardInterrupt) else pytest.raises(FracskipError) as e:
        core._run(Path(tiny_export) / "stem.onnx", cfg)
    if not isinstance(raised, KeyboardInterrupt):
        assert "stem.onnx failed in step_that_fails: FINN INTERNAL COMPILER ERROR: the layer cannot be lowered" \
            in str(e.value)


def test_an_accelerator_emitted_again_replaces_its_summary_section(tmp_path):
    """`python -m fracskip.hls.accelerator BUILD` re-emits a design: summary.json, which the bench, the bitstream
    step and the report read, must then describe the new HDL, not the one it replaced."""
    from fracskip.hls.build import record_design

    def rep(cycles, synth=None):
        r = {"nodes": 3, "cycles_per_image_model": cycles, "bottleneck_model": "n", "fits_estimate": True,
             "resources_estimate": {"LUT": 1.0}, "resources_estimate_inserted": {"LUT": 2.0},
             "fifo_sizing": {"frames": 4, "sized_cycles": cycles, "total_bits": 64, "unbounded_cycles": cycles,
                             "window_cap": 32, "window_cap_cycles": cycles},
             "verified": {"cycles_per_image": cycles}, "resources_estimate_emitted": {"total": {"LUT": 3.0}},
             "fits_device_estimate_emitted": True, "seconds": {}}
        return {**r, "resources_synth": synth, "fits_device_synth": True, "fit_attempts": 1, "fit_reserve": {}} \
            if synth else r

    old = {"board": {"name": "Pynq-Z2"}, "accelerator": {"cycles_per_image_model": 1.0, "fits_device_synth": True,
                                                         "resources_synth": {"LUT": 9}},
           "baselines": {"static_W4A4": {"cycles_per_image_model": 2.0}}}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    record_design(tmp_path, "dfs", rep(100.0))
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["accelerator"]["cycles_per_image_model"] == 100.0 and s["accelerator"]["sizing_images"] == 4
    assert "resources_synth" not in s["accelerator"]  # no Yosys this time: the old figures must not stay
    assert s["baselines"]["static_W4A4"]["cycles_per_image_model"] == 2.0 and s["board"] == old["board"]
    record_design(tmp_path, "static_W4A4", rep(50.0, synth={"LUT": 7}))
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["baselines"]["static_W4A4"]["resources_synth"] == {"LUT": 7}
    assert s["baselines"]["static_W4A4"]["report"] == "baselines/static_W4A4/report/accelerator.json"
    assert s["accelerator"]["cycles_per_image_model"] == 100.0
    # design routed's report as build_accelerator writes it: not folded by the allocator, none of the folding's
    # figures (a KeyError here left summary.json describing the HDL that routed's had just replaced)
    folding = ("cycles_per_image_model", "bottleneck_model", "fits_estimate", "resources_estimate",
               "resources_estimate_inserted")
    record_design(tmp_path, "routed", {k: v for k, v in rep(300.0).items() if k not in folding})
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["accelerator"]["cycles_per_image_emitted"] == 300.0 and "routed" in s["accelerator"]["what"]
    assert s["accelerator"]["cycles_per_image_model"] is None


def test_the_summary_counts_the_fifos_as_emitted(tmp_path):
    """The frame buffers are deepened after sizing (by the estimates, then by Yosys): summary.json's fifo_bits, beside
    the emitted design's cycles, is the emitted FIFOs' (it was the sizing's: the default's 1.35 Mbit, before its
    frame buffers took a frame more), the sizing's kept as fifo_bits_sized."""
    from fracskip.hls.build import record_design

    rep = {"nodes": 3, "cycles_per_image_model": 1.0, "bottleneck_model": "n", "fits_estimate": True,
           "resources_estimate": {}, "resources_estimate_inserted": {},
           "fifo_sizing": {"frames": 4, "sized_cycles": 1.0, "total_bits": 64, "unbounded_cycles": 1.0,
                           "window_cap": 32, "window_cap_cycles": 1.0},
           "verified": {"cycles_per_image": 1.0}, "resources_estimate_emitted": {"total": {}},
           "fits_device_estimate_emitted": True, "seconds": {}, "fifo_bits_emitted": 96}
    (tmp_path / "summary.json").write_text(json.dumps({"board": {"name": "Pynq-Z2"}}))
    record_design(tmp_path, "dfs", rep)
    s = json.loads((tmp_path / "summary.json").read_text())["accelerator"]
    assert (s["fifo_bits"], s["fifo_bits_sized"]) == (96, 64)

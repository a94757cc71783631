import json
import shutil

import pytest

from fracskip import bitstreams
from fracskip.cli import main
from fracskip.errors import FracskipError, ToolMissingError
from fracskip.hls import finn_env
from fracskip.hls.build import BuildConfig, build
from fracskip.hls.folding import allocate


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


@pytest.mark.slow
def test_build_estimates_summary(tiny_export, tmp_path):
    out = tmp_path / "build"
    s = build(tiny_export, out, BuildConfig(board="ZCU104", until="estimates", calibration_images=64), progress=False)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(s))
    assert not (out / ".incomplete").exists()
    assert set(s["cores"]) == {"stem", "block0_b8", "block1_b0", "block1_b2", "block1_b4", "block1_b8",
                               "block2_b0", "block2_b2", "block2_b4", "block2_b8", "head"}
    for name, c in s["cores"].items():
        rep = out / c["finn_output_dir"] / "report"
        for f in ("estimate_layer_resources.json", "estimate_layer_cycles.json", "estimate_network_performance.json",
                  "op_and_param_counts.json", "time_per_step.json"):
            assert (rep / f).exists(), (name, f)
        assert c["cycles"] > 0
    t = s["totals"]
    assert t["fits"] == all(t["resources"][r] <= t["budget"][r] for r in t["resources"])
    assert s["static_8bit"]["expected_cycles_per_input"] > 0 and s["speedup_vs_static_8bit"] > 0
    assert s["exceptions"] == []  # every layer in RTL
    with pytest.raises(FracskipError, match="--force"):
        build(tiny_export, out, BuildConfig(board="ZCU104", until="estimates"), progress=False)

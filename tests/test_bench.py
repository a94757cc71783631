"""`fracskip bench --quick --json` on the shipped default: eval, export, golden controller, the Pynq-Z2 build to
FINN's estimates and the throughput table of the DFS accelerator and the static pipelines on the same budget."""

from __future__ import annotations

import json

import pytest

from fracskip.bench import QUICK
from fracskip.cli import main
from fracskip.training.checkpoint import DEFAULT_DIR


@pytest.mark.slow
def test_bench_quick_on_the_default(tmp_path, capfd):
    out = tmp_path / "bench"
    # two parallel FINN builds: the machine has two cores, and `build --workers 2` is exercised here
    assert main(["bench", "--quick", "--json", "-o", str(out), "--workers", "2"]) == 0
    fig = json.loads(capfd.readouterr().out)  # stdout at the descriptor: nothing but the JSON, FINN's workers too
    with capfd.disabled():  # the figures, for the CI log
        print("\nfracskip bench --quick --json:\n" + json.dumps(fig))
    assert fig == json.loads((out / "bench.json").read_text())

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
    compare = {r["model"]: r for r in json.loads((DEFAULT_DIR / "compare.json").read_text())}
    full_8bit = json.loads((out / "export" / "manifest.json").read_text())["bitops"]["full_8bit"]
    for name in designs:
        d = t[name]
        assert set(d) >= {"accuracy", "bitops_per_image", "cycles_per_image_model", "cycles_per_image_measured",
                          "images_per_s_measured", "resources_synth", "fits"}, name
        assert d["cycles_per_image_model"] > 0 and d["resources_est"]["LUT"] > 0
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

"""`fracskip bench --quick --json` on the shipped default: the whole flow (eval, export, golden controller,
Pynq-Z2 build to HDL, FIFO sizing, RTL simulation under the controller) and the figures it reports."""

from __future__ import annotations

import json

import pytest

from fracskip.bench import QUICK
from fracskip.cli import main


@pytest.mark.slow
@pytest.mark.rtlsim
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
    assert g["decisions_match_pct"] == 100 and g["argmax_agreement_pct"] == 100
    assert g["max_logit_abs_diff"] <= 1e-4 and g["accuracy"] == g["torch_accuracy"]

    b = fig["build"]["Pynq-Z2"]
    assert b["wall_s"] > 0
    # the claim, against an independent measurement: the DFS network's cycles per input, measured in Verilator on
    # the RTL images (their own paths), are below the static all-8-bit network's on the same budget
    assert b["speedup_vs_static_8bit"] > 1
    assert fig["rtlsim"]["mean_cycles_per_input"] < b["static_8bit_expected_cycles_per_input"]

    r = fig["rtlsim"]
    assert r["n"] == QUICK["rtl_images"] and fig["golden"]["n"] == QUICK["golden_images"]
    assert r["bit_exact_pct"] == 100 and r["bit_exact_vs_finn_pct"] == 100
    assert r["decisions_match_pct"] == 100 and r["accuracy"] == r["torch_accuracy"]
    lo, hi = r["cycles_vs_estimate_range"]
    assert 0.85 <= lo <= hi <= 1.15, r["cycles_vs_estimate"]  # FINN's own tolerance
    assert set(fig["fifo_sizing"]["cores"]) >= {"stem", "head"} and fig["fifo_sizing"]["minimized"] is False

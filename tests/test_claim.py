"""The bench's claim (``fracskip.bench.claim``) and its report lines, on hand-made rows: which statics it judges
DFS against, when it cannot judge, and the BitOPs ratio its measured speedup is held to."""

from __future__ import annotations

import pytest

from fracskip.bench import claim, judged_fit
from fracskip.report import throughput_rows


def row(acc, cycles, bitops, measured=None, images=10000):
    return {"accuracy": acc, "accuracy_images": images, "bitops_per_image": bitops, "cycles_per_image_model": cycles,
            "images_per_s_model": 1e8 / cycles, "cycles_per_image_measured": measured, "measured_on_images": 50,
            "images_per_s_measured": 1e8 / measured if measured else None,
            "resources_est_inserted": {"LUT": 1.0, "BRAM_18K": 1.0, "DSP": 1.0}, "fits": True}


def table(rows: dict, rtlsim=None) -> dict:
    rtlsim = rtlsim or {"bitops_per_input": rows["dfs"]["bitops_per_image"]}
    statics = [n for n in rows if n != "dfs"]
    return {**rows, "board": "Pynq-Z2", "budget_fraction": 0.8, "clock_mhz": 100.0,
            "claim": claim(rows, statics, rtlsim)}


def test_the_measured_ratio_is_held_to_the_bitops_of_the_images_measured():
    rows = {"dfs": row(0.91, 100, 300, measured=110), "static_W4A4": row(0.92, 150, 600, measured=165),
            "static_W8A8": row(0.93, 300, 1200, measured=330), "static_W2A2": row(0.90, 50, 280, measured=55)}
    c = claim(rows, ["static_W2A2", "static_W4A4", "static_W8A8"], {"bitops_per_input": 250})
    assert c["bitops_ratio"]["static_W4A4"] == 2.0  # the calibration frequencies', beside the model's cycles
    assert c["bitops_ratio_measured_images"]["static_W4A4"] == 600 / 250
    assert c["speedup_measured_over_bitops_ratio"]["static_W4A4"] == pytest.approx(1.5 / 2.4)
    assert c["statics_at_least_as_accurate"] == ["static_W4A4", "static_W8A8"]
    assert c["dfs_faster_than_every_peer_model"] is True and c["dfs_faster_than_every_peer_measured"] is True
    assert "why_none" not in c and "statics_absent" not in c
    rows["static_W8A8"]["cycles_per_image_measured"] = 100  # a peer as fast as DFS
    assert claim(rows, ["static_W2A2", "static_W4A4", "static_W8A8"], {"bitops_per_input": 250})[
        "dfs_faster_than_every_peer_measured"] is False


def test_an_export_without_some_widths_is_judged_against_the_statics_it_has():
    """A menu of 0,2,4 (or the channel checkpoint's one width): no W8A8 pipeline is built, and the claim, the
    report's lines and plot say so instead of failing at the bench's last step."""
    t = table({"dfs": row(0.91, 100, 300, measured=110), "static_W4A4": row(0.92, 150, 600, measured=165)})
    c = t["claim"]
    assert set(c["speedup_model"]) == {"static_W4A4"}
    assert set(c["statics_absent"]) == {"static_W2A2", "static_W8A8"}
    assert "8-bit" in c["statics_absent"]["static_W8A8"]
    assert c["dfs_faster_than_every_peer_measured"] is True
    lines = throughput_rows(t)
    assert "static W8A8" not in lines and "static W8A8" in lines["static pipelines not built"]


@pytest.mark.parametrize("case, why", [
    ("no compare.json", r"no accuracy for static W2A2, static W4A4"),
    ("other images", r"not all on the same test images"),
    ("no peer", r"no static network here is at least as accurate"),
    ("no statics", r"no static pipeline was built")])
def test_the_claim_says_why_it_cannot_be_judged(case, why):
    import re

    rows = {"dfs": row(0.91, 100, 300, measured=110), "static_W2A2": row(0.90, 50, 280, measured=55),
            "static_W4A4": row(0.92, 150, 600, measured=165)}
    if case == "no compare.json":
        for n in ("static_W2A2", "static_W4A4"):
            rows[n].update(accuracy=None, accuracy_images=None)
    elif case == "other images":
        rows["static_W4A4"]["accuracy_images"] = 1000
    elif case == "no peer":
        rows["static_W4A4"]["accuracy"] = 0.905
    else:
        del rows["static_W2A2"], rows["static_W4A4"]
    t = table(rows)
    c = t["claim"]
    assert re.search(why, c["why_none"]), c["why_none"]
    # both verdicts unknown, not vacuously true (all([]) would say DFS beats every one of no peers)
    assert c["dfs_faster_than_every_peer_model"] is None
    assert c.get("dfs_faster_than_every_peer_measured") is None
    assert c["statics_at_least_as_accurate"] == ([] if case == "no peer" else None)
    lines = throughput_rows(t)
    assert lines["DFS faster than every static network at least as accurate (model)"] == c["why_none"]


def test_the_budget_sweep_plot_takes_rows_that_do_not_fit_and_budgets_that_name_resources(tmp_path):
    from fracskip.report import budget_sweep_plot

    def design(cycles, fits=True):
        return {"cycles_per_image_model": cycles, "fits": fits}
    rows = [{"budget": "0.7", "fractions": {"LUT": 0.7, "DSP": 0.7}, "dfs": design(3e4, False), "static_W4A4": design(5e4)},
            {"budget": "0.8", "fractions": {"LUT": 0.8, "DSP": 0.8}, "dfs": design(2.8e4), "static_W4A4": design(3.7e4)},
            {"budget": "DSP=1", "fractions": {"LUT": 0.8, "DSP": 1.0}, "dfs": design(2.8e4), "static_W4A4": design(3.7e4)}]
    budget_sweep_plot({"board": "Pynq-Z2", "build_budget_fraction": 0.8, "rows": rows}, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fits_is_judged_on_the_strongest_evidence_there_is():
    folded = {"fits": True}  # the folding's estimates within the budget
    emitted = {"fits_device_estimate_emitted": False, "resources_estimate_emitted": {"total": {"LUT": 6e4}}}
    assert judged_fit({}, folded) == (True, "the folding's estimates against the budget")
    assert judged_fit(emitted, folded) == (False, "the emitted design's estimates against the device")
    synth = {**emitted, "resources_synth": {"LUT": 4.6e4}, "fits_device_synth": True}
    assert judged_fit(synth, folded) == (True, "Yosys of the emitted HDL against the device")
    assert judged_fit({**emitted, "resources_synth": None}, folded)[0] is False  # no Yosys run: the estimates'


def test_a_dfs_that_does_not_fit_the_device_is_faster_than_no_one():
    """The claim is on throughput at the same budget: a DFS design that Yosys (or the estimates) put over the device
    cannot be placed, so its speed, modelled or simulated, beats no static pipeline."""
    rows = {"dfs": row(0.91, 100, 300, measured=110), "static_W4A4": row(0.92, 150, 600, measured=165)}
    rows["dfs"].update(fits=False, fits_from="Yosys of the emitted HDL against the device")
    t = table(rows)
    c = t["claim"]
    assert c["dfs_faster_than_every_peer_model"] is False and c["dfs_faster_than_every_peer_measured"] is False
    assert "does not fit" in c["why_false"] and "Yosys" in c["why_false"]
    assert "does not fit" in throughput_rows(t)["DFS faster than every static network at least as accurate (measured)"]
    rows["dfs"]["fits"] = True
    assert claim(rows, ["static_W4A4"], {"bitops_per_input": 300})["dfs_faster_than_every_peer_measured"] is True


def test_every_test_image_holds_the_statics_measured_to_the_dfs_model_on_all_images():
    rows = {"dfs": row(0.91, 100, 300, measured=110), "static_W4A4": row(0.92, 150, 600, measured=165)}
    every = {"n": 10000, "cycles_per_image_model": 120.0, "bitops_per_image": 320.0}
    c = claim(rows, ["static_W4A4"], {"bitops_per_input": 250}, every)
    e = c["every_test_image"]
    assert e["n"] == 10000 and e["speedup"]["static_W4A4"] == 165 / 120
    assert e["bitops_ratio"]["static_W4A4"] == 600 / 320
    assert e["speedup_over_bitops_ratio"]["static_W4A4"] == pytest.approx((165 / 120) / (600 / 320))
    assert c["speedup_measured_over_bitops_ratio"]["static_W4A4"] == pytest.approx(1.5 / 2.4)  # the measured images'
    assert "every_test_image" not in claim(rows, ["static_W4A4"], {"bitops_per_input": 250})
    line = throughput_rows(table(rows) | {"claim": c})
    key = next(k for k in line if "all 10,000 test images" in k)
    assert line[key] == "static W4A4 1.38x (73.3 %)"


def test_a_static_as_accurate_as_dfs_is_a_peer_and_a_tie_is_not_faster():
    """"At least as accurate" takes a static network of exactly DFS's accuracy; "faster" is strictly faster: DFS
    at a peer's cycles per image does not beat it."""
    rows = {"dfs": row(0.91, 100, 300, measured=110), "static_W4A4": row(0.91, 150, 600, measured=165)}
    c = claim(rows, ["static_W4A4"], {"bitops_per_input": 300})
    assert c["statics_at_least_as_accurate"] == ["static_W4A4"] and c["dfs_faster_than_every_peer_model"] is True
    rows["static_W4A4"]["cycles_per_image_model"] = 100
    c = claim(rows, ["static_W4A4"], {"bitops_per_input": 300})
    assert c["dfs_faster_than_every_peer_model"] is False and c["dfs_faster_than_every_peer_measured"] is True

"""Shared fixtures: a tiny DFS network trained for a few steps on the synthetic set, and its export; a channel-
skipping network on it, and its export."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracskip.training.train import TrainConfig, train

TINY = dict(dataset="synthetic", train_limit=256, test_limit=64, depth=8, batch_size=64,
            epochs={"backbone": 2, "gates": 1, "joint": 1}, checkpoint_every=2)


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Trained for a few steps, then its gates rewritten so that one batch of the synthetic test images takes
    every path, skip included, in every gated block (tests/routing.py): golden, RTL and driver tests then
    see batches split across paths."""
    from fracskip.training import data as D

    from routing import ROUTED_IMAGES, diversify_gates

    import torch

    out = tmp_path_factory.mktemp("tiny") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order: the same tiny network on every machine
    try:
        train(TrainConfig(**TINY), out)
    finally:
        torch.set_num_threads(threads)
    diversify_gates(out / "model.pt", D.load("synthetic", "test", limit=ROUTED_IMAGES).images)
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    from fracskip.export.exporter import export

    out = tmp_path_factory.mktemp("export") / "exp"
    export(tiny_run / "model.pt", out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_lc_export(tiny_run, tmp_path_factory) -> Path:
    """A channel-skipping network on the tiny backbone (channel groups of 16: 2 and 4 groups in the two gated
    blocks), trained a few steps, then given the tiny run's gates (which take every width on the synthetic images),
    random channel heads (every input its own groups) and random per-mode scales (relu1's thresholds differ with
    the groups kept), and its export (one core per block, bits and groups kept)."""
    import torch

    from fracskip.export.exporter import export
    from fracskip.training.checkpoint import atomic_save, load_raw

    root = tmp_path_factory.mktemp("lc")
    cfg = TrainConfig(**{**TINY, "init": str(tiny_run / "model.pt"), "stages": ("gates",), "epochs": {"gates": 0.25},
                         "mode": "both", "channel_group": 16, "target": 0.5, "train_limit": 128, "test_limit": 16})
    train(cfg, root / "run")
    raw = load_raw(root / "run")
    raw.pop("path")
    dfs = load_raw(tiny_run / "model.pt")["state_dict"]
    gen = torch.Generator().manual_seed(3)
    for key, v in raw["state_dict"].items():
        if key.startswith("gate."):
            raw["state_dict"][key] = dfs[key]
        elif key.startswith("channel_head.proj.") and key.endswith("weight"):
            raw["state_dict"][key] = torch.randn(v.shape, generator=gen) * 0.3
        elif key.startswith("channel_head.proj.") and key.endswith("bias"):
            raw["state_dict"][key] = torch.zeros_like(v)
        elif key.startswith("channel_scale."):
            raw["state_dict"][key] = torch.randn(v.shape, generator=gen) * 0.1
    atomic_save(raw, root / "drops.pt")
    export(root / "drops.pt", root / "exp", progress=False)
    return root / "exp"


@pytest.fixture(scope="session")
def tiny_lc_build(tiny_lc_export, tmp_path_factory):
    """``fracskip build`` of the tiny channel-skipping export (Pynq-Z2, to HDL), through the CLI (what it printed:
    ``build_stdout.txt`` beside the folder): every core built by the FINN flow (``cores/<core>/``), and the accelerator
    with its channel datapaths, its FIFOs sized in Verilator on 8 images."""
    import contextlib
    import io

    from fracskip.cli import main

    out = tmp_path_factory.mktemp("lc_build") / "build"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["build", str(tiny_lc_export), "--board", "Pynq-Z2", "-o", str(out), "--sizing-images", "8",
                   "--calibration", "64", "--quiet"])
    (out.parent / "build_stdout.txt").write_text(printed.getvalue())
    assert rc == 0, printed.getvalue()
    return out


@pytest.fixture(scope="session")
def rtl_cache() -> Path:
    """The one Verilator cache of the run: fracskip's (``$FRACSKIP_CACHE``, else ``~/.cache/fracskip``). Simulators
    and Verilator's runtime library are keyed by the content of every source, so sharing them is safe; each test
    module used to start a fresh cache and recompile the runtime library and identical cores."""
    from fracskip.hls.rtlsim import default_cache_dir

    return default_cache_dir()


# ---------------------------------------------------------------- Verilator: required unless explicitly waived

ALLOW_NO_VERILATOR = "FRACSKIP_ALLOW_NO_VERILATOR"


# The order in which the two workers take the tests (`make test` passes --no-loadscope-reorder, so pytest-xdist
# keeps it): the quick bench first, the longest test, which needs nothing shared, while the other worker makes the
# shared tiny HDL build (tests/hil.py) for the hardware-in-the-loop modules that follow; then the other long tests,
# so that no long one is left for the end; the rest in file order.
FIRST = ("tests/test_bench.py", "tests/hls/test_accelerator.py",
         "tests/hls/test_modal.py", "tests/runtime/test_host.py", "tests/hls/test_pipeline_folding.py",
         "tests/hls/test_build.py::test_build_summary", "tests/test_outputs.py::test_demo_runs",
         "tests/hls/test_lutmvu.py::test_bit_exact", "tests/hls/test_bitserial.py::test_bit_exact",
         "tests/training/test_train.py::test_resume")


def _rank(item) -> int:
    return next((i for i, prefix in enumerate(FIRST) if item.nodeid.startswith(prefix)), len(FIRST))


def pytest_collection_modifyitems(config, items):
    """The order above (a stable sort: file order within each rank). And the RTL tests (marker ``rtlsim``) need
    Verilator. Missing, it fails the run loudly instead of letting the tests skip one by one;
    ``FRACSKIP_ALLOW_NO_VERILATOR=1`` turns that into explicit skips."""
    import os

    items.sort(key=_rank)
    rtl = [i for i in items if i.get_closest_marker("rtlsim")]
    if not rtl:
        return
    from fracskip.errors import ToolMissingError
    from fracskip.hls.rtlsim import find_verilator

    try:
        find_verilator()
    except ToolMissingError as e:
        if os.environ.get(ALLOW_NO_VERILATOR) != "1":
            raise pytest.UsageError(
                f"{len(rtl)} selected tests need Verilator, which is missing: {e}\n"
                f"Install it (`make setup` does), deselect them (-m 'not rtlsim'), or set {ALLOW_NO_VERILATOR}=1 "
                "to skip them knowingly.") from e
        for item in rtl:
            item.add_marker(pytest.mark.skip(reason=f"{ALLOW_NO_VERILATOR}=1 and Verilator is missing: {e}"))

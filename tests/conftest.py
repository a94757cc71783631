"""Shared fixtures: a tiny DFS network trained for a few steps on the synthetic set, and its export."""

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
    out = tmp_path_factory.mktemp("tiny") / "run"
    train(TrainConfig(**TINY), out)
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    from fracskip.export.exporter import export

    out = tmp_path_factory.mktemp("export") / "exp"
    export(tiny_run / "model.pt", out, progress=False)
    return out

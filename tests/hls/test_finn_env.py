"""FINN's set-up outside its CLI (``hls/finn_env.py``)."""

import os
from pathlib import Path

from fracskip.hls import finn_env

import hil  # tests/hil.py

_VARS = ("FINN_BUILD_DIR", "FINN_SETTINGS", "FINN_RTLLIB")


def test_scratch_leaves_no_folder_behind(monkeypatch, tmp_path):
    """Scratch after scratch, with no set-up before the first (the front end's checks run that way): each one's
    folder goes with it, and FINN is not left pointing at a folder that has gone."""
    hil.keep_finn_env(monkeypatch)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)

    for _ in range(3):
        with finn_env.scratch("scratch-") as work:
            assert Path(os.environ["FINN_BUILD_DIR"]).is_relative_to(work)
    assert list(tmp_path.iterdir()) == []
    assert not any(var in os.environ for var in _VARS)


def test_scratch_restores_the_set_up_before_it(monkeypatch, tmp_path):
    hil.keep_finn_env(monkeypatch)
    monkeypatch.delenv("FINN_RTLLIB", raising=False)
    finn_env.setup(tmp_path / "build")
    before = {var: os.environ.get(var) for var in _VARS}

    with finn_env.scratch() as work:
        assert Path(os.environ["FINN_BUILD_DIR"]).is_relative_to(work)
    assert not work.exists()
    assert {var: os.environ.get(var) for var in _VARS} == before

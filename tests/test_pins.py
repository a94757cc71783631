"""The set-up's pins agree wherever they are written (requirements.txt, pyproject.toml, the Makefile's torch), and
pyproject.toml declares every package that fracskip's own modules import at load time (outside FINN's: ``hls/``,
whose finn-plus is installed with --no-deps), so that ``pip install .`` alone runs train, eval and export."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    reqs = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            reqs[canonicalize_name(r.name)] = str(r.specifier)
    return reqs


def _declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, project["dependencies"])}


def test_pins_agree_between_pyproject_requirements_and_makefile():
    reqs, declared = _requirements(), _declared()
    assert {n: s for n, s in declared.items() if reqs.get(n) != s} == {}, "pyproject.toml against requirements.txt"
    make_torch = re.findall(r"pip install .*\btorch==(\S+)", (ROOT / "Makefile").read_text())
    assert make_torch and {f"=={v}" for v in make_torch} == {reqs["torch"]}


def test_pyproject_declares_the_imports_of_train_and_export():
    imported = set()
    for folder in ("fracskip", "training", "export"):
        for f in (ROOT / folder).rglob("*.py"):
            for node in ast.parse(f.read_text()).body:  # module level: what importing the module needs
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
                imported |= {n.split(".")[0] for n in names}
    third_party = {canonicalize_name(n) for n in imported - set(sys.stdlib_module_names) - {"fracskip"}}
    assert third_party - set(_declared()) == set()


def test_make_demo_takes_fracskip_demos_options():
    """A second `make demo` finds demo-out/ from the first, which `fracskip demo` replaces only with --force:
    `make demo DEMO_ARGS=--force` must reach it (``make -n``: the commands printed, none run)."""
    cp = subprocess.run(["make", "-n", "-C", str(ROOT), "demo", "DEMO_ARGS=--force -o elsewhere"], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    demo = [ln for ln in cp.stdout.splitlines() if "fracskip demo" in ln]
    assert demo == [".venv/bin/fracskip demo --force -o elsewhere"], cp.stdout


def test_make_setup_refuses_an_older_python(tmp_path):
    """The Makefile falls back to any python3: an older one must be refused by name before pip fails on a pin
    (``-B``: the check runs even where .venv is set up; the stand-in python fails whatever it is asked)."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 'Python 3.9.2'\nexit 1\n")
    fake.chmod(0o755)
    cp = subprocess.run(["make", "-B", "-C", str(ROOT), ".venv/.installed", f"PYTHON={fake}"], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode != 0 and "needs Python 3.11 or newer" in cp.stderr, cp.stderr

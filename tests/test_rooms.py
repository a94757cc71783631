"""A folder's imports tell its room: ``fracskip/runtime/`` is what a board runs, so it imports the standard library,
numpy, pynq and FINN's generated board driver, and of fracskip only itself and the error type. Every import is
checked, those inside functions too: a lazy import of torch is still one the board cannot satisfy."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[1] / "fracskip" / "runtime"
BOARD_PACKAGES = {"numpy", "pynq", "finn_plus_driver"}  # finn_plus_driver: the deployment package's driver/
OWN = {"fracskip.errors", "fracskip.runtime"}


def imports(source: str, package: str) -> set[str]:
    """Absolute names of the modules ``source`` (a module of ``package``) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module)
    return found


def foreign(name: str) -> bool:
    top = name.split(".")[0]
    if top == "fracskip":
        return not any(name == own or name.startswith(own + ".") for own in OWN)
    return top not in BOARD_PACKAGES and top not in sys.stdlib_module_names


def test_imports_resolve_relative_names():
    assert imports("from . import x\nfrom ..errors import E\nfrom .host import y\nimport torch.nn\n",
                   "fracskip.runtime") == {"fracskip.runtime", "fracskip.errors", "fracskip.runtime.host", "torch.nn"}
    assert [foreign(n) for n in ("torch.nn", "qonnx.core", "fracskip.hls.accelerator", "fracskip.runtime.host",
                                 "numpy", "json", "fracskip.errors")] == [True, True, True, False, False, False, False]


@pytest.mark.parametrize("module", sorted(p.name for p in RUNTIME.glob("*.py")))
def test_runtime_imports_only_what_a_board_has(module):
    found = imports((RUNTIME / module).read_text(), "fracskip.runtime")
    assert not sorted(filter(foreign, found)), (
        f"fracskip/runtime/{module} imports development code; it belongs in fracskip/backends/ or hls/")

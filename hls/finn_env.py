"""Using finn-plus from Python, with or without the Xilinx tools.

finn-plus keeps global settings that its CLI normally creates, and checks eagerly for Vivado's simulator
at import time. Outside its CLI, and on a machine without Vivado, three things are needed (FINN-NOTES §2):
settings initialised by hand, the XSI import check short-circuited (fracskip never uses Vivado's simulator,
with or without Vivado), and ``XILINX_VIVADO`` set so that ``exit_buildflow`` can write its metadata, only when
Vivado is really absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ToolMissingError

_ABSENT_VIVADO = "/nonexistent/Xilinx/Vivado"  # marks the workaround; never a real install


def _found(tool: str) -> bool:
    """Whether FINN will find ``tool``: in FINN_TOOL_DIR_OVERRIDE's folder when that is set, else on PATH (the
    rule of finn.util.basic.resolve_xilinx_tool)."""
    override = os.environ.get("FINN_TOOL_DIR_OVERRIDE")
    return shutil.which(str(Path(override) / tool) if override else tool) is not None


def vivado_available() -> bool:
    root = os.environ.get("XILINX_VIVADO")
    return _found("vivado") and bool(root) and root != _ABSENT_VIVADO


def vitis_hls_available() -> bool:
    return _found("vitis_hls") or _found("vitis-run")


def v_plus_plus_available() -> bool:
    return _found("v++")


def require(tool: str) -> None:
    """Raise ToolMissingError naming ``tool`` (vivado, vitis_hls or v++) when it is not on PATH."""
    ok = {"vivado": vivado_available, "vitis_hls": vitis_hls_available, "v++": v_plus_plus_available}[tool]()
    if not ok:
        raise ToolMissingError(
            f"{tool} not found: this step needs AMD/Xilinx {tool} on PATH (source settings64.sh of your "
            f"Vivado/Vitis install, or use the docker image: docker/README.md). Nothing was written for this step.")


# the entries of finn-plus's external_dependencies.yaml that its shell flow reads for fracskip's boards
SHELL_DEPS = ("finn-hlslib", "pynq-z1", "pynq-z2")


def deps_dir() -> Path:
    """Where FINN reads its external dependencies (finn-hlslib, board files) in fracskip's set-up, whose settings
    file is fracskip's own: ``FINN_DEPS``, else finn-plus's default, ``finn_deps/`` beside its package."""
    from finn.interface.settings import FINN_ROOT, resolve_relative

    return resolve_relative(Path(os.environ.get("FINN_DEPS") or "finn_deps").expanduser(), FINN_ROOT)


def require_deps(board_name: str) -> None:
    """ToolMissingError naming what FINN's shell flow will read from its external dependencies and cannot find:
    finn-hlslib (the IODMAs are HLS; their code includes its headers) and, for the PYNQ boards, their board files
    (Vivado has the Xilinx boards' own, not TUL's). finn-plus fetches both from GitHub with ``finn deps update``."""
    deps = deps_dir()
    need = [deps / "finn-hlslib" / "streamtools.h"]
    if board_name.lower().startswith("pynq"):
        need.append(deps / "board_files" / board_name.lower())
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise ToolMissingError(
            f"FINN's external dependencies are missing: {', '.join(missing)}. Fetch them once with finn-plus's "
            f"`finn deps update --batch --dependency-path {deps}` (it clones from GitHub, with Vivado's "
            "settings64.sh sourced), or point FINN_DEPS at a folder that holds them. Nothing was written for this "
            "step.")


def fetch_deps(dest: Path, definitions: Path | None = None) -> None:
    """What FINN's shell flow reads of its external dependencies (``SHELL_DEPS``) into ``dest``, by finn-plus's own
    updater at the commits its definitions pin (``definitions``: finn-plus's ``external_dependencies.yaml`` unless
    given), the others left out (AuroraFlow, attention-hlslib, other boards' files: a failure of any would end the
    updater). Unlike ``finn deps update`` it needs no Vivado (that command first builds FINN's binding of Vivado's
    simulator): the docker image fetches them when it is built (``python -m fracskip.hls.finn_env fetch-deps DIR``;
    git, wget and unzip on PATH, as the updater uses them)."""
    import yaml
    from finn.interface.manage_deps import DependencyUpdater
    from finn.interface.settings import FINNSettings

    every = yaml.safe_load(Path(definitions or FINNSettings().finn_deps_definitions).read_text())
    wanted = {kind: {n: d for n, d in (every.get(kind) or {}).items() if n in SHELL_DEPS}
              for kind in ("git_deps", "boardfile_deps", "direct_download_deps")}
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fracskip-finn-deps-") as tmp:
        trimmed = Path(tmp) / "external_dependencies.yaml"
        trimmed.write_text(yaml.safe_dump(wanted))
        DependencyUpdater(dependency_location=dest, dependency_definition_file=trimmed, git_timeout_s=300,
                          non_interactive=True).update()


def setup(build_dir: Path, rtllib: Path | None = None) -> None:
    """Initialise finn-plus in this process; FINN's generated code goes below ``build_dir``.

    ``rtllib``: a copy of finn-rtllib to use instead of the installed one (the Verilator-compatible copy).
    """
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    settings = build_dir / "finn_settings.yaml"
    if not settings.exists():
        settings.write_text("# written by fracskip: finn-plus settings for builds outside the finn CLI\n{}\n")
    os.environ["FINN_SETTINGS"] = str(settings)
    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    if rtllib is not None:
        os.environ["FINN_RTLLIB"] = str(Path(rtllib).resolve())
    if not vivado_available():
        os.environ.setdefault("XILINX_VIVADO", _ABSENT_VIVADO)
    import finn.xsi

    # build_dataflow_steps imports SimEngine for type hints, and that import builds FINN's binding of Vivado's
    # simulator (XSI), or fails where it cannot; fracskip simulates with Verilator and needs none of it
    if "SimEngine" not in vars(finn.xsi):
        finn.xsi.SimEngine = None
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()


@contextmanager
def scratch(prefix: str = "fracskip-finn-") -> Iterator[Path]:
    """FINN set up in a temporary folder for the block, which is removed afterwards; the process's earlier FINN
    set-up (build folder, finn-rtllib copy) is restored, so FINN's later code generation goes where it went.

    Without an earlier set-up, or one whose folder has gone (another scratch's), FINN is left without one:
    restoring it would create that folder again, a stray one per scratch, and FINN would write below a folder
    that no one removes."""
    names = ("FINN_BUILD_DIR", "FINN_SETTINGS", "FINN_RTLLIB")
    before = {name: os.environ.get(name) for name in names}
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        setup(work / "finn_build")
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        build_dir, rtllib = before["FINN_BUILD_DIR"], before["FINN_RTLLIB"]
        if build_dir and Path(build_dir).is_dir():
            setup(Path(build_dir), Path(rtllib) if rtllib else None)
        else:
            import finn.util.settings

            for name in names:
                os.environ.pop(name, None)
            finn.util.settings._SETTINGS = None  # a later FINN call fails clearly, not below a deleted folder


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m fracskip.hls.finn_env",
                                 description="fetch-deps DIR: FINN's external dependencies (finn-hlslib, board files) "
                                             "into DIR, for FINN_DEPS=DIR")
    ap.add_argument("command", choices=["fetch-deps"])
    ap.add_argument("dest", type=Path)
    fetch_deps(ap.parse_args().dest)

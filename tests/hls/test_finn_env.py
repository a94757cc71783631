"""FINN's set-up outside its CLI (``hls/finn_env.py``)."""

import os
from pathlib import Path

import pytest

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


def test_fetch_deps_runs_finns_updater_at_the_pinned_commit(tmp_path, monkeypatch):
    """``python -m fracskip.hls.finn_env fetch-deps DIR`` (the docker image's) through finn-plus's own updater, here
    from a repository served on this machine (git's plain HTTP protocol): the pinned commit is checked out, not the
    newest, and require_deps then finds what the shell step reads."""
    import functools
    import http.server
    import subprocess
    import threading

    import yaml

    from fracskip.errors import ToolMissingError
    from fracskip.hls import finn_env

    src = tmp_path / "hlslib-src"
    src.mkdir()
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / "streamtools.h").write_text("// pinned\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "pinned"], check=True)
    pinned = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (src / "streamtools.h").write_text("// newer\n")
    subprocess.run([*git, "commit", "-qam", "newer"], check=True)
    subprocess.run([*git, "update-server-info"], check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src / ".git"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    defs = tmp_path / "deps.yaml"
    defs.write_text(yaml.safe_dump({
        "git_deps": {"finn-hlslib": {"url": f"http://127.0.0.1:{server.server_port}/", "commit": pinned,
                                     "pip_install": False, "install_editable": False}},
        "boardfile_deps": {}, "direct_download_deps": {}}))
    dest = tmp_path / "finn_deps"
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # the server is this machine's
    try:
        finn_env.fetch_deps(dest, defs)
    finally:
        server.shutdown()
    assert (dest / "finn-hlslib" / "streamtools.h").read_text() == "// pinned\n"
    monkeypatch.setenv("FINN_DEPS", str(dest))
    finn_env.require_deps("U250")  # no board files needed: Vivado has the Alveo platforms' own
    with pytest.raises(ToolMissingError, match=r"board_files/pynq-z2\. Fetch them once"):
        finn_env.require_deps("Pynq-Z2")

"""Fixtures shared by the FINN-flow tests of tests/hls."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def finn_rtlsim(tmp_path_factory, rtl_cache):
    """FINN set up for Verilator simulation below a fresh folder (its environment restored afterwards)."""
    from fracskip.errors import ToolMissingError
    from fracskip.hls.rtlsim import find_verilator, setup_finn

    try:
        find_verilator()
    except ToolMissingError as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("finn_rtlsim")
    saved = {k: os.environ.get(k) for k in ("FINN_SETTINGS", "FINN_BUILD_DIR", "FINN_RTLLIB", "XILINX_VIVADO")}
    setup_finn(root / "finn_build", cache_dir=rtl_cache)
    (root / "cache").symlink_to(rtl_cache, target_is_directory=True)  # the tests' finn_rtlsim / "cache"
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v

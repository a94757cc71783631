"""``fracskip deploy`` on the Python of PYNQ's board images (v2.7: 3.8, v3.0: 3.10), with numpy alone: the package
installed as the README's board step installs it, its DMAs driven on a stand-in for pynq whose accelerator computes
known outputs from the packed input bytes. Skipped where no such interpreter is on this machine."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import packages  # tests/packages.py: a hand-written deployment package

REPO = Path(__file__).resolve().parents[2]

# Not pynq: IODMAs on numpy buffers whose "accelerator" answers, when the input DMA starts, with head outputs
# (k + 1) * (sum of the image's pixels) - 3000 (INT24, signed) and decisions (sum + g) % 3 (UINT2).
FAKE_PYNQ = '''
import numpy as np
from fracskip.runtime.host import pack

MEM = {}


class Buffer(np.ndarray):
    device_address = 0

    def flush(self):
        pass

    def invalidate(self):
        pass


def allocate(shape, dtype=np.uint8, cacheable=True, target=None):
    buf = np.zeros(shape, dtype).view(Buffer)
    buf.device_address = 0x10000000 + 0x100000 * len(MEM)
    MEM[buf.device_address] = buf
    return buf


class DMA:
    def __init__(self, overlay, name):
        self.overlay, self.name, self.regs = overlay, name, {0x00: 4}

    def read(self, offset):
        return self.regs.get(offset, 0)

    def write(self, offset, value):
        self.regs[offset] = int(value)
        if offset == 0x00 and value & 1 and self.name == "idma0":
            self.overlay.run()


class Overlay:
    def __init__(self, path, download=True):
        self.idma0, self.odma0, self.odma1 = (DMA(self, n) for n in ("idma0", "odma0", "odma1"))

    def run(self):
        n = self.idma0.regs[0x1C]
        x = MEM[self.idma0.regs[0x10] | self.idma0.regs[0x14] << 32].reshape(n, -1).astype(np.int64)
        s = x.sum(1)
        head = np.stack([(k + 1) * s - 3000 for k in range(10)], 1)
        MEM[self.odma0.regs[0x10]][:n] = pack(head.reshape(n, 10, 1), "INT24")
        MEM[self.odma1.regs[0x10]][:n] = pack(np.stack([(s + g) % 3 for g in range(2)], 1).reshape(n, 2, 1), "UINT2")
        for dma in (self.idma0, self.odma0, self.odma1):
            dma.regs[0x00] = 6  # ap_done, ap_idle
'''


def _interpreter(version: str) -> str | None:
    """A ``python<version>`` that runs: on PATH, or one of pyenv's (whose shims fail for a version not selected)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for exe in [shutil.which(f"python{version}")] + sorted(glob.glob(str(root / f"versions/{version}.*/bin/python"
                                                                               f"{version}"))):
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.8", "3.10"])
def test_deploy_runs_on_the_python_of_pynq_images(version, tmp_path):
    exe = _interpreter(version)
    if exe is None:
        pytest.skip(f"no Python {version} on this machine (PYNQ's board images run it)")
    venv = tmp_path / "board"
    subprocess.run([exe, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["numpy"], check=True, timeout=600)
    # the README's board step: the package without its development dependencies, on the board's older Python;
    # from a copy, as pip builds in the source tree
    src = shutil.copytree(REPO, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", ".data", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "*-out", "runs"))
    subprocess.run(pip + ["--no-deps", "--ignore-requires-python", str(src)], check=True, timeout=600, cwd=tmp_path)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "pynq.py").write_text(FAKE_PYNQ)

    def with_bitfile(folder, settings, extra):
        (folder / "bitfile").mkdir()
        (folder / "bitfile" / "a.bit").write_bytes(b"not a bitstream: the stand-in for pynq does not read it")
        extra["bitfile"] = "bitfile/a.bit"
    pkg = packages.write(tmp_path / "pkg", with_bitfile)
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 9, 9, 3])
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    run = subprocess.run([str(venv / "bin" / "fracskip"), "deploy", str(pkg), "--images", str(tmp_path / "x.npy"),
                          "--labels", str(tmp_path / "y.npy"), "--batch-size", "2", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / "fake")))
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(run.stdout)
    s = images.reshape(5, -1).sum(1).astype(np.int64)
    decisions = np.stack([(s + g) % 3 for g in range(2)], 1)
    # the head's last output is the largest for every image (k + 1 grows); the package's scale is 1, bias 0
    assert res["batches"] == 3 and res["n"] == 5
    assert res["accuracy"] == float(np.mean(labels == 9))
    assert res["decisions"] == {f"block{b}": {str(w): int((decisions[:, g] == k).sum())
                                              for k, w in enumerate([0, 4, 8])} for g, b in enumerate([1, 2])}

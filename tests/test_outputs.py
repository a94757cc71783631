"""The commands' outputs: a killed ``export``, ``demo`` or ``bench`` leaves nothing that looks like a result;
``compare`` and ``demo`` (with its report) give what independent runs of their stages give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracskip.cli import main


def test_killed_export_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    import fracskip.export.exporter as E

    real = E.inference_cost
    calls = {"n": 0}

    def cost_then_kill(*a, **k):  # killed after a few cores are written
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(E, "inference_cost", cost_then_kill)
    with pytest.raises(KeyboardInterrupt):
        E.export(tiny_run / "model.pt", tmp_path / "exp", progress=False)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []  # neither exp nor its temporary folder


def _few_test_images(monkeypatch, n: int) -> None:
    """The commands' eval stage on the first ``n`` test images (10,000 take a minute even for the tiny net)."""
    from fracskip.training import data as D

    real_load = D.load

    def load(dataset, split, data_dir=None, limit=None):
        return real_load(dataset, split, data_dir, min(n, limit or n))
    monkeypatch.setattr(D, "load", load)


@pytest.fixture
def small_world(tiny_export, monkeypatch):
    """The demo's and bench's stages before the one killed, made cheap but real: 64 test images, and an export
    that is the tiny run's (copied whole, as the exporter would have written it)."""
    import shutil

    import fracskip.export.exporter as E

    _few_test_images(monkeypatch, 64)
    monkeypatch.setattr(E, "export", lambda checkpoint, out, **k: shutil.copytree(tiny_export, out))


@pytest.mark.parametrize("command, stage", [("demo", "fracskip.hls.build.build"),
                                            ("bench", "fracskip.simulate.simulate")])
def test_killed_demo_or_bench_leaves_nothing(command, stage, small_world, tiny_run, tmp_path, monkeypatch):
    """Killed in the stage after export (the demo in its build, the bench in its golden simulation), with eval
    done and a complete export in the output folder: the whole output folder goes."""
    out = tmp_path / "out"
    held = []

    def kill(*a, **k):
        held.extend(p.name for p in (out / "export").iterdir())
        raise KeyboardInterrupt
    monkeypatch.setattr(stage, kill)
    argv = [command, "-o", str(out), "--checkpoint", str(tiny_run / "model.pt")]
    rc = main(argv + (["--quick"] if command == "bench" else ["--images", "2"]))
    assert rc == 130 and "manifest.json" in held
    assert not out.exists()


@pytest.mark.parametrize("command, stage", [("demo", "fracskip.hls.build.build"),
                                            ("bench", "fracskip.simulate.simulate"),
                                            ("build", "fracskip.hls.build._build")])
def test_killed_run_with_force_gives_back_the_folder_it_replaced(command, stage, small_world, tiny_run, tiny_export,
                                                                tmp_path, monkeypatch):
    """--force replaces an earlier result only once the new one is complete: killed midway, the folder is the
    earlier one again, byte for byte, and nothing is left beside it."""
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "report" / "earlier.json").write_text('{"mine": true}\n')

    def kill(*a, **k):
        assert not (out / "report").exists() and (out / ".incomplete").exists()
        raise KeyboardInterrupt
    monkeypatch.setattr(stage, kill)
    if command == "build":
        argv = ["build", str(tiny_export), "--board", "Pynq-Z2", "--until", "estimates"]
    else:
        argv = [command, "--checkpoint", str(tiny_run / "model.pt")] + (["--quick"] if command == "bench" else [])
    assert main(argv + ["-o", str(out), "--force"]) == 130
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        ["out", "out/report", "out/report/earlier.json"]
    assert (out / "report" / "earlier.json").read_text() == '{"mine": true}\n'


def test_force_replaces_the_earlier_folder_once_the_new_one_is_complete(tmp_path):
    from fracskip.outdir import fresh

    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("earlier\n")
    with fresh(out, force=True, command="test") as o:
        (o / "new.txt").write_text("new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_a_failed_run_empties_but_keeps_the_users_empty_folder(tmp_path, monkeypatch):
    """-o an empty folder of the user's (a mount point, say): a failed run takes back what it wrote, not the folder."""
    from fracskip.outdir import fresh

    out = tmp_path / "mnt"
    out.mkdir()
    with pytest.raises(RuntimeError):
        with fresh(out, force=False, command="test") as o:
            (o / "build").mkdir()
            (o / "build" / "half.json").write_text("{")
            raise RuntimeError("killed")
    assert out.is_dir() and not any(out.iterdir())
    # what cannot be removed stays marked as no result: the marker goes last, and only from an empty folder
    import fracskip.outdir as O

    with pytest.raises(RuntimeError):
        with fresh(out, force=False, command="test") as o:
            (o / "stuck.json").write_text("{")
            (o / "gone.json").write_text("{")
            real_unlink = Path.unlink
            monkeypatch.setattr(Path, "unlink", lambda p, *a, **k: (_ for _ in ()).throw(PermissionError(p))
                                if p.name == "stuck.json" else real_unlink(p, *a, **k))
            raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == [O.INCOMPLETE, "stuck.json"]
    monkeypatch.undo()
    for p in out.iterdir():
        p.unlink()
    with pytest.raises(RuntimeError):  # a folder fresh made is removed whole
        with fresh(tmp_path / "made", force=False, command="test"):
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]


def test_staged_and_fresh_replace_the_folder_a_symlink_points_to(tmp_path):
    """-o LINK, a symbolic link to a folder: the output goes to its target, and the link stays one (rmtree refuses
    links: the finished export was thrown away at its last step)."""
    from fracskip.outdir import fresh, staged

    target = tmp_path / "target"
    target.mkdir()
    (target / "earlier.txt").write_text("earlier\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    with staged(link) as tmp:
        (tmp / "export.txt").write_text("new\n")
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["export.txt"]
    with fresh(link, force=True, command="test") as o:
        (o / "demo.txt").write_text("new\n")
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["demo.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_a_raising_block_leaves_the_earlier_folder_as_it_was(tmp_path):
    """``fresh`` with --force and ``staged`` whose block raises: the folder they replace is back as it was, and
    nothing they wrote (the new folder, the temporary one beside it) is left."""
    from fracskip.outdir import fresh, staged

    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("earlier\n")
    for replace in (lambda: fresh(out, True, "test"), lambda: staged(out)):
        with pytest.raises(RuntimeError, match="killed"):
            with replace() as o:
                (o / "half.json").write_text("{")
                raise RuntimeError("killed")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
        assert [p.name for p in out.iterdir()] == ["earlier.txt"] and (out / "earlier.txt").read_text() == "earlier\n"


def test_staged_folder_has_the_mode_of_a_new_folder(tmp_path):
    """An export or a deployment package is an ordinary folder of the user's, readable as the umask allows (a
    package is copied to the board, an export shared or mounted), not mkdtemp's private 0700."""
    import os

    from fracskip.outdir import staged

    mask = os.umask(0o022)
    try:
        (tmp_path / "made-by-mkdir").mkdir()
        with staged(tmp_path / "exp") as tmp:
            (tmp / "manifest.json").write_text("{}\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "exp").stat().st_mode == (tmp_path / "made-by-mkdir").stat().st_mode
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["manifest.json"]


def test_replacing_gives_back_the_earlier_results_when_the_rewrite_fails(tmp_path):
    """The shell step's --force (hls/shell.py): a failed Vivado run must leave the earlier bitstream, package and
    stitched IP as they were, not a summary that names a bitstream whose folder is gone; a finished one replaces
    them."""
    from fracskip.outdir import replacing

    a, b, c = tmp_path / "stitched_ip", tmp_path / "bitfile", tmp_path / "deploy"
    a.mkdir()
    (a / "old.tcl").write_text("old\n")
    b.mkdir()
    (b / "old.bit").write_text("old\n")
    with pytest.raises(RuntimeError, match="vivado failed"):
        with replacing(a, b, c):
            assert not a.exists() and not b.exists()
            a.mkdir()
            (a / "half.tcl").write_text("half\n")
            c.mkdir()
            raise RuntimeError("vivado failed")
    assert [p.name for p in a.iterdir()] == ["old.tcl"] and [p.name for p in b.iterdir()] == ["old.bit"]
    assert not c.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bitfile", "stitched_ip"]
    with replacing(a, b, c):
        a.mkdir()
        (a / "new.tcl").write_text("new\n")
    assert [p.name for p in a.iterdir()] == ["new.tcl"] and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stitched_ip"]



def test_replacing_keeps_what_it_did_not_set_aside_and_follows_links(tmp_path, monkeypatch):
    """A failure while setting the second path aside (a busy mount, a full disk, Ctrl-C) must leave every earlier
    result where it was: the block never ran. A path that is a symbolic link stands for its target (the package
    folder may be one), as in fresh and staged."""
    from fracskip import outdir

    paths = [tmp_path / n for n in ("stitched_ip", "bitfile", "deploy")]
    for p in paths:
        p.mkdir()
        (p / "old").write_text("old\n")
    real, calls = outdir._set_aside, []

    def fails_second(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("device busy")
        return real(path)

    monkeypatch.setattr(outdir, "_set_aside", fails_second)
    with pytest.raises(OSError, match="device busy"):
        with outdir.replacing(*paths):
            raise AssertionError("the block must not run")
    monkeypatch.undo()
    assert all((p / "old").read_text() == "old\n" for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bitfile", "deploy", "stitched_ip"]
    target = tmp_path / "target"
    paths[2].rename(target)
    paths[2].symlink_to(target)
    with outdir.replacing(paths[2]):
        assert not target.exists()  # the link's target is what is set aside, and written anew
        target.mkdir()
        (target / "new").write_text("new\n")
    assert paths[2].is_symlink() and [p.name for p in paths[2].iterdir()] == ["new"]


def test_shell_step_on_a_folder_that_is_no_hdl_build_says_so(tmp_path):
    """``python -m fracskip.hls.shell BUILD``, the way the fit refusal and the README name it: a clear message and exit
    2 (it imported FINN's builder before FINN was set up: a traceback, exit 1)."""
    import subprocess
    import sys

    cp = subprocess.run([sys.executable, "-m", "fracskip.hls.shell", str(tmp_path)], capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 2, cp.stderr[-2000:]
    assert "is not a finished HDL build" in cp.stderr and "Traceback" not in cp.stderr


def test_export_carries_the_checkpoint_it_loaded_when_it_is_replaced_meanwhile(tiny_run, tmp_path, monkeypatch):
    """A training run replaces its checkpoint.pt every few hundred steps: an export must not carry cores of one
    point of training and a torch reference of another. It reads the file once, so its cores and its copy are of
    that read, whatever lands after."""
    import hashlib
    import shutil

    import fracskip.export.exporter as E

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    loaded = (run / "model.pt").read_bytes()
    real = E.load_model

    def load_then_replace(ref, data=None):
        out = real(ref, data)
        (run / "model.pt").write_bytes(loaded + b"\0")  # the next checkpoint lands
        return out
    monkeypatch.setattr(E, "load_model", load_then_replace)
    E.export(run / "model.pt", tmp_path / "exp", progress=False)
    source = json.loads((tmp_path / "exp" / "manifest.json").read_text())["source_checkpoint"]
    assert (tmp_path / "exp" / source["file"]).read_bytes() == loaded
    assert source["sha256"] == hashlib.sha256(loaded).hexdigest()


def test_failed_demo_keeps_the_users_folder_only_without_force(tiny_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data\n")
    assert main(["demo", "-o", str(out), "--checkpoint", str(tiny_run / "model.pt")]) == 2
    assert "--force" in capsys.readouterr().err and (out / "mine.txt").exists()


def test_compare_equals_eval_of_each_checkpoint(tiny_run, tmp_path, capsys):
    """`fracskip compare` against independent `fracskip eval` runs of the same checkpoints and images, and its
    plot is a real PNG."""
    other = tmp_path / "w4"
    from fracskip.training.train import TrainConfig, train

    train(TrainConfig(dataset="synthetic", train_limit=128, test_limit=32, depth=8, batch_size=64, bit_menu=(4,),
                      stages=("backbone",), epochs={"backbone": 1}, recalibration_images=64), other)
    ckpts = [str(tiny_run / "model.pt"), str(other / "model.pt")]
    png = tmp_path / "front.png"
    assert main(["compare", *ckpts, "--dataset", "synthetic", "--limit", "48", "--plot", str(png), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["checkpoint"] for r in rows] == ckpts
    for row, ck in zip(rows, ckpts):
        assert main(["eval", ck, "--dataset", "synthetic", "--limit", "48", "--json"]) == 0
        ev = json.loads(capsys.readouterr().out)
        assert (row["accuracy"], row["compute_pct"], row["n"]) == (ev["accuracy"], ev["compute_pct"], 48)
        assert row["choices"] == ev["choices"]
    # the tiny network's stem, first block and head run at 8 bits: W4A4 costs well above 16/64 of all-8-bit
    assert rows[1]["model"] == "static W4A4" and rows[0]["compute_pct"] != rows[1]["compute_pct"] < 100
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", *ckpts, "--dataset", "synthetic", "--limit", "48"]) == 0
    table = capsys.readouterr().out
    assert "static W4A4" in table and f"{rows[0]['accuracy']:.4f}" in table


@pytest.mark.slow
@pytest.mark.rtlsim  # the tiny channel build sizes its FIFOs in Verilator
@pytest.mark.xdist_group("tiny_lc")  # with the other users of the tiny channel network's build
def test_demo_runs_every_stage_and_reports_them(tiny_lc_export, tiny_lc_build, tmp_path, capsys, monkeypatch):
    """`fracskip demo` on the tiny channel-skipping network, golden backend: the report holds what each stage's own
    command gives, and the folder is complete (no .incomplete marker). Its eval runs on 1,000 test images, and its
    export and build stages hand over the network's export and its `fracskip build` (tests/conftest.py), copied
    whole: both are what `fracskip export` and `fracskip build` wrote for this checkpoint in this run, and both have
    tests of their own; the bench test runs a build with two workers."""
    import shutil

    import fracskip.export.exporter as E
    import fracskip.hls.build as B

    _few_test_images(monkeypatch, 1000)

    def build(export_dir, out, cfg, **k):
        shutil.copytree(tiny_lc_build, out)
        return json.loads((out / "summary.json").read_text())
    monkeypatch.setattr(E, "export", lambda checkpoint, out, **k: shutil.copytree(tiny_lc_export, out))
    monkeypatch.setattr(B, "build", build)
    out = tmp_path / "demo"
    ck = str(tiny_lc_export.parent / "drops.pt")
    assert main(["demo", "-o", str(out), "--checkpoint", ck, "--images", "8", "--backend", "qonnx"]) == 0
    printed = capsys.readouterr().out
    assert not (out / ".incomplete").exists()
    rep = json.loads((out / "report" / "report.json").read_text())
    html = (out / "report" / "index.html") if (out / "report" / "index.html").exists() else \
        next((out / "report").glob("*.html"))
    page = html.read_text()
    for png in (out / "report").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.name in page
    assert {"decisions.png", "cores.png", "throughput.png"} <= {p.name for p in (out / "report").glob("*.png")}
    # each stage against its own command
    summary = json.loads((out / "build" / "summary.json").read_text())
    assert rep["build"]["totals"] == summary["totals"] and rep["build"]["accelerator"] == summary["accelerator"]
    tp = rep["throughput"]
    assert all(tp[d]["cycles_per_image_model"] > 0 for d in ("dfs", "static_W2A2", "static_W4A4", "static_W8A8"))
    # DFS as the build folded it (its report's row, not folded again), the static pipelines with every unit
    built = json.loads((out / "build" / summary["accelerator"]["report"]).read_text())["throughput_table"]["dfs"]
    assert tp["dfs"]["resources_est"] == built["resources_est"] and built["units"] == ["MVAU_rtl", "MVAU_lut"]
    assert tp["dfs"]["cycles_per_image_model"] == built["cycles_per_image_model"]
    assert tp["dfs"]["accuracy"] == rep["eval"]["accuracy"] and tp["static_W4A4"]["accuracy"] is None  # no compare.json
    assert tp["claim"]["dfs_faster_than_every_peer_model"] is None and "throughput" in printed
    assert main(["simulate", str(out / "build"), "--backend", "qonnx", "--dataset", "fashion-mnist", "--limit", "8",
                 "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    for k in ("accuracy", "decisions_match_pct", "argmax_agreement_pct", "compute_pct", "kept_channel_fraction"):
        assert rep["simulate"][k] == sim[k], k
    assert rep["simulate"]["decisions_match_pct"] == 100
    assert f"{rep['eval']['accuracy']:.4f}" in printed and str(out / "report") in printed


def test_shell_step_judges_the_fit_by_the_accelerators_own_report(tmp_path, monkeypatch):
    """summary.json's accelerator section is the build's: after `python -m fracskip.hls.accelerator BUILD` rebuilt
    the accelerator without Yosys it still said fits_device_synth (and named a synth.json the rebuild had removed),
    and the shell step let Vivado run on HDL that FINN's estimates put over the device. The fit Yosys found is read
    from the report of the HDL being stitched."""
    import dataclasses

    from fracskip import bitstreams
    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A
    from fracskip.hls import deploy_package, shell

    board = dataclasses.asdict(bitstreams.load("Pynq-Z2"))
    (tmp_path / "summary.json").write_text(json.dumps({"until": "hdl", "board": board, "accelerator": {
        "fits_device_synth": True, "synth_report": "accelerator/report/synth.json"}}))  # the build's first accelerator
    (tmp_path / A.ACC_DIR / "report").mkdir(parents=True)
    (tmp_path / A.ACC_DIR / "report" / "accelerator.json").write_text(json.dumps({"nodes": 3}))  # rebuilt, no Yosys
    over = {"LUT": 60000.0, "BRAM_18K": 10.0, "URAM": 0.0, "DSP": 0.0}
    monkeypatch.setattr(shell, "require_tools", lambda board: None)
    monkeypatch.setattr(deploy_package, "sized_accelerator", lambda build_dir: object())
    monkeypatch.setattr(A, "emitted_fit", lambda model, board: {"fits_device_estimate_emitted": False,
                                                                 "resources_estimate_emitted": {"total": over}})
    with pytest.raises(FracskipError, match=r"does not fit the Pynq-Z2 by FINN's estimates \(LUT 60000 of 53200"):
        shell.shell_build(tmp_path)
    assert sorted(p.name for p in (tmp_path / A.ACC_DIR).iterdir()) == ["report"]  # nothing of FINN's started

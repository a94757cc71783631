"""The Verilator model caches (fracskip.hls.rtlsim.sim, .harness) when processes share them: a model pruned while
another process marks it used, a destination that a race, a killed prune or a failed build left behind, builds of
killed processes, compiler flags of the environment, a Verilator upgrade.

Most builds here run a fake ``verilator`` (a shell script that writes the files the real one would leave for make,
and a makefile that "compiles" the binary): what is tested is the cache around the build, in milliseconds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fracskip.errors import FracskipError
from fracskip.hls.rtlsim import harness, sim
from fracskip.hls.rtlsim.verilator import COMPILER_ENV, Verilator, find_verilator

DAY = 24 * 3600

FAKE_SIM_VERILATOR = """#!/bin/sh
while [ $# -gt 0 ]; do
    if [ "$1" = -Mdir ]; then obj=$2; fi
    shift
done
mkdir -p "$obj"
if [ -n "{fail}" ]; then
    echo "%Error: top.sv:1:1: syntax error, unexpected endmodule"
    exit 1
fi
: > "$obj/Vtop_classes.mk"
printf 'Vsim:\\n\\techo model > Vsim\\n' > "$obj/Vtop.mk"
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """``build(fail=False) -> (model folder, compiled now)``: build_simulator of a one-file core into
    ``tmp_path/cache`` with a fake Verilator (the same key for every call)."""
    src = tmp_path / "top.sv"
    src.write_text("module top(input logic clk); endmodule\n")
    core = SimpleNamespace(top="top", inputs=[], outputs=[], fifos=[], state_words=0, sources=[src],
                           generated_dirs=[], data_files={}, top_file=src, include_dirs=[])
    tools = {fail: Verilator(binary=_script(tmp_path / f"verilator{int(fail)}", FAKE_SIM_VERILATOR.format(
        fail="yes" if fail else "")), root=tmp_path, version="fake-1") for fail in (False, True)}

    def build(fail: bool = False):
        monkeypatch.setattr(sim, "find_verilator", lambda: tools[fail])
        return sim.build_simulator(core, tmp_path / "cache", progress=False)

    return build


def test_touch_marks_a_model_used_and_never_creates_one(tmp_path):
    model = tmp_path / "0123abcd"
    model.mkdir()
    os.utime(model, (1, 1))
    sim._touch(model)
    assert model.stat().st_mtime > 1
    model.rmdir()  # pruned by another process between its lookup and the mark
    sim._touch(model)
    assert not os.path.lexists(model)


def test_a_stray_file_where_a_model_belongs_is_replaced(fake_build):
    dest, _ = fake_build()
    shutil.rmtree(dest)
    dest.write_bytes(b"")  # what Path.touch once left where another process had just pruned the model
    assert fake_build() == (dest, True)
    assert (dest / "Vsim").read_text() == "model\n"


def test_an_incomplete_model_folder_is_replaced(fake_build):
    dest, _ = fake_build()
    (dest / "Vsim").unlink()  # a prune killed in the middle of its rmtree
    (dest / "leftover").write_text("x")
    assert fake_build() == (dest, True)
    assert (dest / "Vsim").is_file() and not (dest / "leftover").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no build or discarded folder left


def test_a_model_another_process_installed_meanwhile_is_kept(fake_build, monkeypatch):
    dest, _ = fake_build()
    shutil.rmtree(dest)
    run = sim._run

    def racing_run(cmd, cwd, env, log_file):
        cp = run(cmd, cwd, env, log_file)
        if cmd[0] == "make":  # another process finishes the same design first
            dest.mkdir()
            (dest / "Vsim").write_text("theirs")
        return cp

    monkeypatch.setattr(sim, "_run", racing_run)
    assert fake_build() == (dest, True)
    assert (dest / "Vsim").read_text() == "theirs"
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # ours discarded


def test_a_failed_build_replaces_an_earlier_failure_and_points_at_its_log(fake_build):
    logs = []
    for _ in range(2):  # the second finds the first's folder in its place
        with pytest.raises(FracskipError, match="syntax error") as e:
            fake_build(fail=True)
        logs.append(log := Path(re.search(r"full log: (\S+)\)", str(e.value))[1]))
        assert log.parent.name.endswith(".failed") and "%Error: top.sv:1:1" in log.read_text()
        assert log.read_text().count("[exit 1]") == 1  # this build's log, not the one before
    assert logs[0] == logs[1] and sorted(p.name for p in log.parent.parent.iterdir()) == [log.parent.name]


def test_moving_into_place_replaces_a_failed_builds_folder_and_keeps_a_complete_model(tmp_path):
    def folder(name: str, *files: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        for f in files:
            (d / f).write_text(name)
        return d

    failed = folder("k.failed", "build.log")  # another failing build's, renamed first: "Directory not empty"
    sim._move_into_place(folder("k.build-1", "build.log"), failed)
    assert (failed / "build.log").read_text() == "k.build-1"
    model = folder("k", "Vsim")
    ours = folder("k.build-2", "Vsim")
    sim._move_into_place(ours, model)
    assert (model / "Vsim").read_text() == "k" and ours.is_dir()  # the caller removes its own


def test_prune_removes_the_builds_of_killed_processes_only(tmp_path):
    def build(name: str, used: float, inner_used: float | None = None) -> Path:
        d = tmp_path / name
        (d / "obj").mkdir(parents=True)
        (d / "obj" / "model.o").write_bytes(b"x" * 100)
        for p in (d / "obj" / "model.o", d / "obj"):
            t = used if inner_used is None else inner_used
            os.utime(p, (t, t))
        os.utime(d, (used, used))
        return d

    now = time.time()
    killed = build("a.build-1", now - 2 * DAY)
    long_make = build("b.build-2", now - 2 * DAY, inner_used=now - 60)  # make still writes into obj/
    fresh = build("c.build-3", now)
    model = tmp_path / "d"
    model.mkdir()
    (model / "Vsim").write_bytes(b"x" * 100)
    os.utime(model, (now - 30 * DAY, now - 30 * DAY))
    assert sim.prune_models(tmp_path, 10_000) == [killed]
    assert not killed.exists() and long_make.is_dir() and fresh.is_dir() and model.is_dir()
    assert sim.prune_models(tmp_path, 0) == [model]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.build-2", "c.build-3"]  # no discarded folder left


def test_the_environment_of_verilator_has_no_compiler_flags(tmp_path, monkeypatch):
    for var in COMPILER_ENV:
        monkeypatch.setenv(var, "-march=native")
    monkeypatch.setenv("FRACSKIP_UNRELATED", "kept")
    env = Verilator(tmp_path / "bin" / "verilator", tmp_path, "5.48.0").env()
    assert not set(COMPILER_ENV) & set(env)
    assert env["VERILATOR_ROOT"] == str(tmp_path) and env["FRACSKIP_UNRELATED"] == "kept"


@pytest.mark.rtlsim
def test_compiler_flags_of_the_environment_never_reach_the_compile_lines(tmp_path, monkeypatch):
    """make -n of a real verilated model: the compile and link lines with the environment as given to make,
    against the whole environment (which verilated.mk appends after OPT_FAST)."""
    (tmp_path / "top.sv").write_text("module top(input logic clk, output logic q);\n"
                                     "    always_ff @(posedge clk) q <= !q;\nendmodule\n")
    (tmp_path / "main.cpp").write_text("int main() { return 0; }\n")
    tool = find_verilator()
    obj = tmp_path / "obj"
    cmd = tool.verilate_command("top", [tmp_path / "top.sv", tmp_path / "main.cpp"], [], obj, "Vsim")
    assert subprocess.run(cmd, env=tool.env(), capture_output=True, text=True).returncode == 0
    flags = dict(CXXFLAGS="-march=native", CPPFLAGS="-DFROM_CPPFLAGS", OPT="-O3", LDFLAGS="-Wl,--from-ldflags",
                 LDLIBS="-lfrom_ldlibs")
    for var, value in flags.items():
        monkeypatch.setenv(var, value)

    def dry_run(env: dict) -> str:
        cp = subprocess.run(tool.make_command(obj, "top") + ["-n"], env=env, capture_output=True, text=True)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout

    whole = dry_run({**os.environ, "VERILATOR_ROOT": str(tool.root)})
    assert all(v in whole for v in flags.values())  # the experiment sees them when they are passed
    given = dry_run(tool.env())
    assert "-Og" in given and not [v for v in flags.values() if v in given]


def test_the_testbench_cache_is_keyed_by_the_verilator_version(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    fake = _script(tmp_path / "verilator", f"#!/bin/sh\necho built >> {tmp_path}/builds\nmkdir obj && echo > obj/sim\n")
    src = tmp_path / "dut.sv"
    src.write_text("module dut; endmodule\n")
    binaries = []
    for version in ("5.48.0", "5.48.0", "5.50.0"):
        monkeypatch.setattr(harness, "find_verilator", lambda v=version: Verilator(fake, tmp_path, v))
        binaries.append(harness.compile_testbench("tb", "module tb(input logic clk); endmodule\n", [src]))
    assert binaries[0] == binaries[1] != binaries[2] and binaries[2].is_file()
    assert len((tmp_path / "builds").read_text().splitlines()) == 2  # the same version reused its model


def test_the_testbench_cache_is_keyed_by_the_cpp_main(tmp_path, monkeypatch):
    """The C++ main that clocks the model is compiled into it: a changed main is a new model, not the cached one."""
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    fake = _script(tmp_path / "verilator", f"#!/bin/sh\necho built >> {tmp_path}/builds\nmkdir obj && echo > obj/sim\n")
    monkeypatch.setattr(harness, "find_verilator", lambda: Verilator(fake, tmp_path, "5.48.0"))
    src = tmp_path / "dut.sv"
    src.write_text("module dut; endmodule\n")
    tb = "module tb(input logic clk); endmodule\n"
    first = harness.compile_testbench("tb", tb, [src])
    monkeypatch.setattr(harness, "MAIN_CPP", harness.MAIN_CPP.replace("tb->final();", "tb->final();  // changed"))
    assert harness.compile_testbench("tb", tb, [src]) != first
    assert len((tmp_path / "builds").read_text().splitlines()) == 2


def test_a_testbench_model_folder_without_its_binary_is_replaced(tmp_path, monkeypatch):
    """Models arrive whole (renamed into place when built); a folder without the binary was damaged since (a cache
    cleaner) and made every later build of that model fail with "Directory not empty"."""
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    fake = _script(tmp_path / "verilator", "#!/bin/sh\nmkdir obj && echo > obj/sim\n")
    monkeypatch.setattr(harness, "find_verilator", lambda: Verilator(fake, tmp_path, "5.48.0"))
    src = tmp_path / "dut.sv"
    src.write_text("module dut; endmodule\n")
    binary = harness.compile_testbench("tb", "module tb(input logic clk); endmodule\n", [src])
    binary.unlink()
    assert harness.compile_testbench("tb", "module tb(input logic clk); endmodule\n", [src]) == binary
    assert binary.is_file() and [p.name for p in (tmp_path / "cache" / "harness").iterdir()] == [binary.parents[1].name]


def test_the_testbench_cache_prunes_its_least_recently_used_models(tmp_path, monkeypatch):
    """Harness models were kept for ever (the core simulators' cache was pruned beyond RTLSIM_CACHE_BYTES): ten
    models of 1 MB took 10 MB against a budget of 3.5 MB. Now pruned alike, the least recently used first (a reused
    model counts as used), a build in progress left alone."""
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sim, "RTLSIM_CACHE_BYTES", 250_000)
    fake = _script(tmp_path / "verilator", "#!/bin/sh\nmkdir obj && head -c 100000 /dev/zero > obj/sim\n")
    monkeypatch.setattr(harness, "find_verilator", lambda: Verilator(fake, tmp_path, "5.48.0"))
    src = tmp_path / "dut.sv"
    src.write_text("module dut; endmodule\n")

    def model(i: int) -> Path:
        return harness.compile_testbench("tb", f"module tb(input logic clk); // {i}\nendmodule\n", [src]).parents[1]

    a, b = model(0), model(1)
    other_build = a.parent / "0123.build-abcd"  # another process's, still compiling
    other_build.mkdir()
    (other_build / "obj.o").write_bytes(b"x" * 100_000)
    for age, d in ((3000, a), (2000, b)):
        os.utime(d, (time.time() - age, time.time() - age))
    assert model(0) == a  # reused: now the most recently used
    c = model(2)
    assert sorted(p.name for p in a.parent.iterdir()) == sorted([a.name, c.name, other_build.name])


def test_a_failed_testbench_build_keeps_its_errors_and_last_lines_in_the_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    output = ["filler %d" % i for i in range(30)] + [
        "%Error: tb.sv:3:5: syntax error, unexpected IDENTIFIER"] + ["more filler %d" % i for i in range(30)] + [
        "sim.cpp:(.text+0x1): undefined reference to `missing_function'",
        "collect2: error: ld returned 1 exit status", "make: *** [Vtb.mk:70: sim] Error 1"]
    (tmp_path / "output").write_text("\n".join(output) + "\n")
    fake = _script(tmp_path / "verilator", f"#!/bin/sh\ncat {tmp_path}/output\nexit 2\n")
    monkeypatch.setattr(harness, "find_verilator", lambda: Verilator(fake, tmp_path, "5.48.0"))
    src = tmp_path / "dut.sv"
    src.write_text("module dut; endmodule\n")
    with pytest.raises(FracskipError) as e:
        harness.compile_testbench("tb", "module tb(input logic clk); endmodule\n", [src])
    msg = str(e.value)
    assert "exit 2" in msg and "%Error: tb.sv:3:5" in msg and "undefined reference to `missing_function'" in msg
    assert "Error 1" in msg and "filler 3" not in msg
    assert [p.name for p in (tmp_path / "cache" / "harness").iterdir()] == []  # nothing that looks like a model


def test_an_absolute_memory_path_is_found_in_any_parameter_entry():
    """A parameter list need not repeat `parameter` for each entry; the stitcher's check of absolute paths reads
    them all (a cached model would otherwise read the files of the build it was compiled for)."""
    from fracskip.hls.rtlsim.stitch import _check_no_build_paths

    params = 'parameter int W = 8, WEIGHT_FILE = "/builds/b1/w.dat", parameter string T = "thr"'
    with pytest.raises(FracskipError, match="WEIGHT_FILE from an absolute path"):
        _check_no_build_paths("n", "top", params, set())
    _check_no_build_paths("n", "top", params, {"WEIGHT_FILE"})


@pytest.mark.rtlsim
def test_harness_words_outside_the_stream_width_are_refused(tmp_path, monkeypatch):
    """$readmemh cut a word wider than the stream to its bits (the DUT saw another input, and a test could pass on
    it) and stopped at a negative one with an empty message."""
    monkeypatch.setenv("FRACSKIP_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "inc.sv"
    src.write_text("module inc(input logic ap_clk, ap_rst_n, input logic [7:0] in0_V_TDATA, input logic in0_V_TVALID,\n"
                   "  output logic in0_V_TREADY, output logic [7:0] out0_V_TDATA, output logic out0_V_TVALID,\n"
                   "  input logic out0_V_TREADY);\n  assign out0_V_TDATA = in0_V_TDATA + 8'd1;\n"
                   "  assign out0_V_TVALID = in0_V_TVALID;\n  assign in0_V_TREADY = out0_V_TREADY;\nendmodule\n")
    tb = harness.StreamHarness([harness.StreamDut("inc", 8, 8, 3, 3)], [src], tmp_path / "runs", jobs=1)
    assert tb.run([[1, 2, 255]])[0].outputs == [2, 3, 0]
    for words in ([1, 0x1FF, 3], [1, -2, 3]):
        with pytest.raises(FracskipError, match=r"DUT 0 \(inc\) input words must be unsigned 8-bit"):
            tb.run([words])


def test_a_damaged_rtllib_copy_is_replaced(tmp_path):
    """A library copy arrives whole (renamed into place with its .complete); one without it was damaged since (a
    cache cleaner, an interrupted rm) and made every later prepare_rtllib fail with "Directory not empty"."""
    from fracskip.hls.rtlsim.rtllib import prepare_rtllib

    copy = prepare_rtllib(tmp_path)
    (copy / ".complete").unlink()
    shutil.rmtree(copy / "fifo")
    assert prepare_rtllib(tmp_path) == copy
    assert (copy / ".complete").is_file() and (copy / "fifo" / "hdl" / "fifo.sv").is_file()
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # nothing left beside it


def test_a_library_changed_since_its_copy_gets_a_copy_of_its_own_or_a_refusal(tmp_path, monkeypatch):
    """The copy was keyed by finn-plus's version and the patches: files changed under the same version (a reinstall
    from another build, a local edit) went on being served from the old copy, and a changed upstream of a rewrite
    was never checked again."""
    from fracskip.hls.rtlsim import rtllib

    installed = tmp_path / "finn-rtllib"
    shutil.copytree(rtllib.installed_rtllib(), installed, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(rtllib, "installed_rtllib", lambda: installed)
    first = rtllib.prepare_rtllib(tmp_path / "cache")
    assert rtllib.prepare_rtllib(tmp_path / "cache") == first
    mvu = installed / "mvu" / "mvu.sv"
    mvu.write_text(mvu.read_text() + "// changed\n")
    second = rtllib.prepare_rtllib(tmp_path / "cache")
    assert second != first and (second / "mvu" / "mvu.sv").read_bytes() == mvu.read_bytes()
    assert (first / "mvu" / "mvu.sv").read_bytes() != mvu.read_bytes()  # a running simulation's copy is left alone
    fifo = installed / "fifo" / "hdl" / "fifo.sv"
    fifo.write_text(fifo.read_text() + "// changed\n")
    with pytest.raises(FracskipError, match=r"fifo/hdl/fifo.sv differs from the one the Verilator rewrite"):
        rtllib.prepare_rtllib(tmp_path / "cache")

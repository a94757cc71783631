"""Hand-written mutants: does the test suite notice when the code is wrong?

Each mutant is one entry of ``MUTANTS``: the file (repository path), a text that must occur in it exactly once,
its replacement, and the tests that should kill it. For every mutant the repository's Python sources and tests
are copied to a temporary folder, the one edit is made there (the work tree is never touched), the installed
package layout is rebuilt from the copy (``fracskip``, ``fracskip.training`` = ``training/`` ...) and put first
on ``PYTHONPATH``, and pytest runs the selection. The mutant is *killed* when a test fails; it *survived* when
all selected tests pass; a selection that errors (missing text, collection error) is reported as an error.

    python tests/mutation/run_mutants.py                 # all mutants, a table at the end
    python tests/mutation/run_mutants.py packing routing # those whose name contains a word
    python tests/mutation/run_mutants.py --baseline      # also run each selection unmutated: it must pass
    python tests/mutation/run_mutants.py --json out.json

Adding a mutant is one ``Mutant(...)`` line below.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the installed layout (pyproject.toml's package-dir): import name -> repository folder
PACKAGES = {"fracskip": "fracskip", "fracskip/training": "training", "fracskip/export": "export",
            "fracskip/hls": "hls", "fracskip/bitstreams": "bitstreams"}
COPY = ["fracskip", "training", "export", "hls", "bitstreams", "tests", "pyproject.toml", "docs"]


@dataclass
class Mutant:
    name: str
    file: str  # repository path
    old: str  # must occur exactly once
    new: str
    tests: list[str]  # pytest node ids / files, in the repository
    k: str | None = None  # optional -k expression
    why: str = ""


PLAN = "tests/hls/test_accelerator_plan.py"
FIFO_MEMORY = "tests/hls/test_fifo_memory.py"
FOLDING = "tests/hls/test_pipeline_folding.py"
# their tests that need no build of the tiny network
FOLDING_FAST = ("allocate or pareto or free_bound or bitserial_rungs or bad_budget or converter_pair or parallelisms"
                " or stage_bound")
OUTDIR_FAST = "force_replaces or empties or symlink or mode_of or replacing or raising_block"
FIFO_MODEL_FAST = "steady_state or deepening"

MUTANTS = [
    Mutant("resume-restarts-from-zero", "training/train.py",
           "if resume and ck_path.exists():", "if False and resume and ck_path.exists():",
           ["tests/training/test_train.py::test_resume_after_interruption_equals_uninterrupted"],
           why="--resume ignores the checkpoint and trains from step 0 (deterministically: same final weights)"),
    Mutant("ddp-removed", "training/train.py",
           "torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if world > 1 else net", "net",
           ["tests/training/test_train.py::test_torchrun_ddp_keeps_replicas_equal"],
           why="each rank trains on its shard without the gradient all-reduce"),
    Mutant("cost-bits-counted-once", "training/cost.py",
           'return (m["conv1"] + m["conv2"] + m.get("shortcut", 0)) * bits * bits',
           'return (m["conv1"] + m["conv2"] + m.get("shortcut", 0)) * bits',
           ["tests/training/test_model.py::test_cost_table_against_hand_count"],
           why="BitOPs of a path counted as MACs x b instead of MACs x b_w x b_a"),
    Mutant("packing-bit-order", "fracskip/runtime/host.py",
           'return np.packbits(bits.reshape(x.shape[:-1] + (nbytes, 8)), axis=-1, bitorder="little")[..., 0]',
           'return np.packbits(bits.reshape(x.shape[:-1] + (nbytes, 8)), axis=-1, bitorder="big")[..., 0]',
           ["tests/runtime/test_host.py::test_packing_equals_finns_byte_layout", "tests/test_loaders_property.py"],
           k="pack", why="bits of a byte packed MSB first"),
    Mutant("packing-no-range-check", "fracskip/runtime/host.py",
           "if x.size and (x.min() < dt.min or x.max() > dt.max", "if False and (x.min() < dt.min or x.max() > dt.max",
           ["tests/test_loaders_property.py"], k="pack", why="out-of-range values wrap around silently"),
    Mutant("routing-off-by-one", "fracskip/runtime/controller.py",
           'blk["paths"][str(self.routes[k])]',
           'blk["paths"][str(self.routes[min(k + 1, len(self.routes) - 1)])]',
           ["tests/export/test_export.py::test_golden_controller_matches_torch"],
           why="the controller runs the next menu entry's core instead of the chosen one"),
    Mutant("manifest-hash-unchecked", "fracskip/runtime/manifest.py",
           "if sha256(p) != digest:", "if False:",
           ["tests/export/test_export.py::test_tampered_and_missing_files_are_refused"],
           why="a file modified after export is accepted"),
    Mutant("checkpoint-unpickles-anything", "training/checkpoint.py",
           'map_location="cpu", weights_only=True)', 'map_location="cpu", weights_only=False)',
           ["tests/test_bad_inputs.py"], k="crafted", why="a crafted .pt runs its code"),
    Mutant("cifar-unpickler-admits-everything", "training/data.py",
           "if (module, name) not in self.ALLOWED:", "if False:",
           ["tests/test_bad_inputs.py"], k="cifar", why="a crafted CIFAR-10 batch runs its code"),
    Mutant("limit-sign-unchecked", "fracskip/validate.py",
           "if isinstance(value, bool) or not isinstance(value, int) or value < 1:",
           "if isinstance(value, bool) or not isinstance(value, int):",
           ["tests/test_bad_inputs.py"], k="limit", why="--limit -5 evaluates 9,995 images"),
    # the integer gate (fracskip/runtime/intgate.py), each against the independent spec in tests/runtime/test_intgate.py
    Mutant("gate-lstm-input-forget-swapped", "fracskip/runtime/intgate.py",
           "zi, zf, zg, zo = np.split(z, 4, axis=1)", "zf, zi, zg, zo = np.split(z, 4, axis=1)",
           ["tests/runtime/test_intgate.py"], k="random_parameters",
           why="the numpy gate takes the LSTM's forget gate for its input gate and vice versa"),
    Mutant("gate-rounding-truncates", "fracskip/runtime/intgate.py",
           "return (x + (1 << (s - 1))) >> s", "return x >> s",
           ["tests/runtime/test_intgate.py"], k="random_parameters", why="rescaling floors instead of rounding half up"),
    Mutant("gate-tie-picks-last", "fracskip/runtime/intgate.py",
           "decision = logits.argmax(axis=1)", "decision = logits.shape[1] - 1 - logits[:, ::-1].argmax(axis=1)",
           ["tests/runtime/test_intgate.py"], k="random_parameters", why="a tie goes to the highest menu index"),
    Mutant("gate-state-not-passed", "fracskip/runtime/controller.py",
           '_, choice, state = self.gates.step(blk["gate"], x.astype(np.int64), state)',
           '_, choice, _ = self.gates.step(blk["gate"], x.astype(np.int64), state)',
           ["tests/runtime/test_intgate.py"], k="every_path",
           why="the controller restarts the LSTM state at every gate"),
    Mutant("torch-gate-float-pool", "training/intgate.py",
           "pooled = soft + (pooled_int * 2.0**-spec.IFACE_EXP - soft).detach()", "pooled = soft",
           ["tests/runtime/test_intgate.py"], k="torch_gate",
           why="the trained gate pools in float instead of the specification's integer mean"),
    # FIFO depths judged by the frame-sequence model (hls/fifo_model.py), on a stand-in model of known cycles
    Mutant("trim-no-loss-allowed", "hls/fifo_model.py",
           "if seq.cycles(trial) <= base * (1 + TRIM_LOSS):", "if seq.cycles(trial) <= base:",
           [PLAN], k=FIFO_MODEL_FAST, why="a trim that costs less than TRIM_LOSS is refused"),
    Mutant("trim-ignores-floor", "hls/fifo_model.py",
           "to = {k: max(TRIM_DEPTH, (floor or {}).get(k, 0)) for k in depths}",
           "to = dict.fromkeys(depths, TRIM_DEPTH)",
           [PLAN], k=FIFO_MODEL_FAST, why="a FIFO is trimmed below what an image passing alone leaves in it"),
    Mutant("trim-takes-frame-buffers", "hls/fifo_model.py",
           "if not k.endswith(FRAME_BUFFER) and k not in spare", "if k not in spare",
           [PLAN], k=FIFO_MODEL_FAST, why="a gated block's frame buffer is trimmed below a frame (a deadlock)"),
    Mutant("trim-ignores-spare", "hls/fifo_model.py",
           "if not k.endswith(FRAME_BUFFER) and k not in spare", "if not k.endswith(FRAME_BUFFER)",
           [PLAN], k=FIFO_MODEL_FAST, why="the window FIFOs sizing capped are trimmed again"),
    Mutant("trim-min-bits-exclusive", "hls/fifo_model.py",
           "d * seq.fifos[k].get_instream_width() >= min_bits", "d * seq.fifos[k].get_instream_width() > min_bits",
           [PLAN], k=FIFO_MODEL_FAST, why="a FIFO of exactly a RAMB18's bits is not a candidate"),
    Mutant("trim-all-or-nothing", "hls/fifo_model.py",
           "todo += [group[:len(group) // 2], group[len(group) // 2:]]", "pass",
           [PLAN], k=FIFO_MODEL_FAST, why="one FIFO that loses cycles keeps every other from being trimmed"),
    Mutant("deepen-gain-against-start", "hls/fifo_model.py",
           "if cycles > steps[-1][1] * (1 - DEEPEN_GAIN):", "if cycles > steps[0][1] * (1 - DEEPEN_GAIN):",
           [PLAN], k=FIFO_MODEL_FAST, why="a frame more is judged against the undeepened cycles, not the last step's"),
    Mutant("deepen-fit-unchecked", "hls/fifo_model.py", "if not fits(trial):", "if False:",
           [PLAN], k=FIFO_MODEL_FAST, why="frame buffers deepened beyond what the device holds"),
    Mutant("deepen-tokens-a-frame-short", "hls/fifo_model.py",
           "(2 + more) * seq.words(k) + 1", "(1 + more) * seq.words(k) + 1",
           [PLAN], k=FIFO_MODEL_FAST, why="the decisions' streams hold a frame less than the blocks run ahead"),
    Mutant("deepen-one-frame-fewer", "hls/fifo_model.py",
           "range(held + 1, DEEPEN_MAX + 1 if bufs else 1)", "range(held + 1, DEEPEN_MAX if bufs else 1)",
           [PLAN], k=FIFO_MODEL_FAST, why="DEEPEN_MAX frames more is never tried"),
    Mutant("frames-held-counts-its-own", "hls/fifo_model.py",
           "(depths[k] - 1) // seq.words(k) - 1 for k in bufs", "(depths[k] - 1) // seq.words(k) for k in bufs",
           [PLAN], k=FIFO_MODEL_FAST, why="a frame buffer's own frame counts as one held more"),
    Mutant("sequence-cache-by-names", "hls/fifo_model.py",
           "key = None if depths is None else tuple(sorted(depths.items()))",
           "key = None if depths is None else tuple(sorted(depths))",
           [FIFO_MEMORY], why="every set of depths of the same FIFOs gets the first one's cycles"),
    Mutant("depths-not-restored", "hls/fifo_model.py", 'i.set_nodeattr("depth", old[k])', "pass",
           [FIFO_MEMORY], why="a trial's depths stay written into the graph"),
    # the accelerator's FIFO geometry (hls/accelerator.py)
    Mutant("window-cap-stall-ignored", "hls/accelerator.py",
           "return run.stalled or run.cycles_per_frame >", "return run.cycles_per_frame >",
           ["tests/hls/test_accelerator.py::test_window_fifos_deepen_while_doubling_buys_throughput"],
           why="a window cap that stalls the accelerator (nan cycles) is taken"),
    Mutant("window-cap-no-gain-allowed", "hls/accelerator.py",
           "than.cycles_per_frame * (1 + WINDOW_CAP_GAIN)", "than.cycles_per_frame",
           ["tests/hls/test_accelerator.py::test_window_fifos_deepen_while_doubling_buys_throughput"],
           why="window FIFOs double for any gain, however small"),
    Mutant("bram-depth-floor-rounded-down", "hls/accelerator.py",
           "int(np.ceil(BRAM_DEPTH_FLOOR * depth))", "int(BRAM_DEPTH_FLOOR * depth)",
           [PLAN], k="block_ram_depth", why="a FIFO may go a word below BRAM_DEPTH_FLOOR of its depth"),
    Mutant("bram-depth-equal-cost", "hls/accelerator.py",
           "if lo >= depth or bram(lo) >= need:", "if lo >= depth or bram(lo) > need:",
           [PLAN], k="block_ram_depth", why="a FIFO is shortened to a depth that costs as many BRAM18"),
    # the folding allocator (hls/pipeline_folding.py)
    Mutant("pareto-within-block-only", "hls/pipeline_folding.py",
           "below &= np.arange(a + len(blk))[None, :] < np.arange(a, a + len(blk))[:, None]",
           "below &= (np.arange(a + len(blk))[None, :] < np.arange(a, a + len(blk))[:, None])"
           " & (np.arange(a + len(blk))[None, :] >= a)",
           [FOLDING], k=FOLDING_FAST, why="past PARETO_BLOCK rungs, a rung is held only against those of its block"),
    Mutant("pareto-across-widths", "hls/pipeline_folding.py",
           "groups.setdefault((r.in_widths, r.out_widths), []).append(i)", "groups.setdefault((), []).append(i)",
           [FOLDING], k=FOLDING_FAST, why="a rung is dropped for one of other stream widths (converters unpriced)"),
    Mutant("parallel-without-n", "hls/pipeline_folding.py", " | {n})", ")",
           [FOLDING], k=FOLDING_FAST, why="a node can no longer be folded fully parallel over 12 or 24 channels"),
    Mutant("input-parallel-twos-of-c", "hls/pipeline_folding.py", "g = math.gcd(c, mw)", "g = c",
           [FOLDING], k=FOLDING_FAST, why="a SIMD that does not divide the unit's inputs"),
    Mutant("stage-every-frame-node-ignored", "hls/pipeline_folding.py",
           "return float(rung.cycles.get(m, rung.cycles.get(ALL, 0.0)))", "return float(rung.cycles.get(m, 0.0))",
           [FOLDING], k=FOLDING_FAST, why="a gated block's node of every frame no longer bounds its modes"),
    Mutant("stage-skipped-frames-dropped", "hls/pipeline_folding.py", "if rest > 1e-9:", "if False:",
           [FOLDING], k=FOLDING_FAST, why="frames of a skip without shortcut cost the stage nothing"),
    Mutant("stage-sum-not-max", "hls/pipeline_folding.py",
           "per[m] = max(per.get(m, 0.0), mode_cycles(rung, m))", "per[m] = per.get(m, 0.0) + mode_cycles(rung, m)",
           [FOLDING], k=FOLDING_FAST, why="a stage's nodes take a frame one after another, not together"),
    Mutant("budget-fit-exclusive", "hls/pipeline_folding.py",
           "return all(total[r] <= budget.get(r, 0) + 1e-9 for r in RESOURCES)",
           "return all(total[r] < budget.get(r, 0) for r in RESOURCES)",
           [FOLDING], k=FOLDING_FAST, why="a folding that uses exactly the budget does not fit"),
    Mutant("pareto-by-expected-cycles", "hls/pipeline_folding.py",
           "+ [rungs[i].cycles.get(m, rungs[i].expected) for m in modes] for i in idx])", "for i in idx])",
           [FOLDING], k=FOLDING_FAST, why="a rung slower on average but faster in one mode is dropped"),
    Mutant("equal-price-ties-unbroken", "hls/pipeline_folding.py", "if tied.x is not None:", "if False:",
           [FOLDING], k=FOLDING_FAST, why="of equally priced choices, HiGHS's first, however slow its nodes"),
    Mutant("stagewise-bisection-skipped", "hls/pipeline_folding.py",
           "while best_t - below > STAGEWISE_TOLERANCE * best_t:", "while False:",
           [FOLDING], k=FOLDING_FAST, why="the stage-wise bound stops at the next rung's figure"),
    # compute budgets (training/budget.py)
    Mutant("cheapest-compute-without-fixed", "training/budget.py",
           "return (table.fixed + sum(min(row) for row in table.gated)) / table.full",
           "return sum(min(row) for row in table.gated) / table.full",
           ["tests/training/test_train.py"], k="cheapest or budget_target or no_pricing",
           why="the floor a target is refused below leaves out the stem, first block and head"),
    # the bench's claim (fracskip/bench.py)
    Mutant("claim-peers-strictly-more-accurate", "fracskip/bench.py",
           'rows[n]["accuracy"] >= dfs["accuracy"]', 'rows[n]["accuracy"] > dfs["accuracy"]',
           ["tests/test_claim.py"], why="a static network exactly as accurate as DFS is not a peer"),
    Mutant("claim-model-tie-is-faster", "fracskip/bench.py",
           'rows[n]["cycles_per_image_model"] > dfs["cycles_per_image_model"] for n in peers',
           'rows[n]["cycles_per_image_model"] >= dfs["cycles_per_image_model"] for n in peers',
           ["tests/test_claim.py"], why="DFS as fast as a peer by the model counts as faster"),
    Mutant("claim-measured-against-every-static", "fracskip/bench.py",
           'all(c["speedup_measured"][n] > 1 for n in peers)', 'all(c["speedup_measured"][n] > 1 for n in statics)',
           ["tests/test_claim.py"], why="DFS must beat less accurate statics too"),
    # output folders (fracskip/outdir.py)
    Mutant("fresh-failure-drops-earlier", "fracskip/outdir.py",
           "if aside is not None:\n            aside.rename(out)", "if False:\n            aside.rename(out)",
           ["tests/test_outputs.py"], k=OUTDIR_FAST, why="a failed --force run leaves the earlier result aside"),
    Mutant("staged-failure-leaves-tmp", "fracskip/outdir.py",
           "shutil.rmtree(tmp, ignore_errors=True)", "pass",
           ["tests/test_outputs.py"], k=OUTDIR_FAST, why="a failed export leaves its half-written folder beside"),
    # FIFOs moved between block RAM and LUT RAM (hls/fifo_memory.py)
    Mutant("fifo-moves-past-need", "hls/fifo_memory.py", "if need <= 0:", "if need < 0:",
           [FIFO_MEMORY], why="a FIFO more is moved when the design fits exactly"),
    Mutant("fifo-shift-register-moved", "hls/fifo_memory.py",
           "if depth <= SRL_MAX_DEPTH:", "if depth < SRL_MAX_DEPTH:",
           [FIFO_MEMORY], why="a 33-word FIFO (a shift register whatever its style) is counted as moved"),
    Mutant("fifo-search-stops-at-too-dear", "hls/fifo_memory.py",
           "if cost > room:\n            continue", "if cost > room:\n            break",
           [FIFO_MEMORY], why="the search ends at the first move too dear for the room left, though a later, "
                              "cheaper one fits"),
    # the runtime's BitOPs and keep bits (fracskip/runtime)
    Mutant("bitops-kept-adds-full-path", "fracskip/runtime/controller.py",
           "total[on] += np.asarray(bk, np.float64)[kept[on]] - row[k]",
           "total[on] += np.asarray(bk, np.float64)[kept[on]]",
           ["tests/runtime/test_host.py"], k="bitops_and_kept_fraction",
           why="a channel path costs its full width and its kept groups"),
    Mutant("kept-fraction-over-every-input", "fracskip/runtime/controller.py",
           "popcount(keep[ran, g]).mean() / n", "popcount(keep[:, g]).mean() / n",
           ["tests/runtime/test_host.py"], k="bitops_and_kept_fraction",
           why="inputs on a path without groups count in the kept fraction"),
    Mutant("keep-groups-zero-logit-kept", "fracskip/runtime/intgate.py", "keep = logits > 0", "keep = logits >= 0",
           ["tests/training/test_channels.py::test_shipped_lcnet_channel_head_is_the_integer_specification",
            "tests/runtime/test_intgate.py::test_a_channel_group_is_kept_on_a_positive_logit_only"],
           why="a channel group whose logit is exactly 0 is kept"),
]


def _copy_repo(dest: Path, mutant: Mutant | None) -> Path:
    """The repository's sources and tests in ``dest``, the mutant applied; returns the site folder to import from."""
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    if mutant is not None:
        path = dest / mutant.file
        text = path.read_text()
        n = text.count(mutant.old)
        if n != 1:
            raise RuntimeError(f"{mutant.name}: the text to replace occurs {n} times in {mutant.file} (needs 1)")
        path.write_text(text.replace(mutant.old, mutant.new))
    site = dest / "_site"
    (site / "fracskip").mkdir(parents=True)
    for entry in (dest / "fracskip").iterdir():  # fracskip/ itself, then its subpackages from their folders
        (site / "fracskip" / entry.name).symlink_to(entry)
    for pkg, folder in PACKAGES.items():
        if pkg != "fracskip":
            (site / pkg).symlink_to(dest / folder)
    return site


def run(mutant: Mutant | None, selection: Mutant, timeout: float) -> tuple[str, float, str]:
    """("killed" | "survived" | "error" | "passed" | "failed", seconds, tail of the log)."""
    with tempfile.TemporaryDirectory(prefix="fracskip-mutant-") as tmp:
        tmp = Path(tmp)
        try:
            site = _copy_repo(tmp, mutant)
        except RuntimeError as e:
            return "error", 0.0, str(e)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        # the pytest script, not `python -m pytest`, which would put the copy's raw fracskip/ folder (without its
        # subpackages) first on sys.path
        cmd = [str(Path(sys.executable).parent / "pytest"), "-x", "-q", "-p", "no:cacheprovider", *selection.tests]
        if selection.k:
            cmd += ["-k", selection.k]
        t0 = time.time()
        try:
            cp = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "error", time.time() - t0, f"timeout after {timeout:.0f} s"
        dt = time.time() - t0
        log = (cp.stdout + cp.stderr)[-1500:]
        if f"{site}" not in _imported_from(site, env):
            return "error", dt, "the copy was not the code under test"
        if cp.returncode == 1:
            return ("killed" if mutant else "failed"), dt, log
        if cp.returncode == 0:
            return ("survived" if mutant else "passed"), dt, log
        return "error", dt, log


def _imported_from(site: Path, env: dict) -> str:
    code = "import fracskip.training.train as t, fracskip.runtime.host as d; print(t.__file__, d.__file__)"
    return subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True).stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="run only mutants whose name contains one of these words")
    p.add_argument("--baseline", action="store_true", help="first run each selection without the mutant")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    chosen = [m for m in MUTANTS if not a.names or any(w in m.name for w in a.names)]
    if a.names:  # in the order the words were given
        chosen.sort(key=lambda m: min(i for i, w in enumerate(a.names) if w in m.name))
    results = []
    for m in chosen:
        row = {"mutant": m.name, "file": m.file, "tests": m.tests, "k": m.k, "why": m.why}
        if a.baseline:
            row["baseline"], row["baseline_s"], log = run(None, m, a.timeout)
            if row["baseline"] != "passed":
                print(f"[baseline {row['baseline']}] {m.name}\n{log}", file=sys.stderr)
        row["result"], row["seconds"], log = run(m, m, a.timeout)
        if row["result"] != "killed":
            row["log"] = log
        print(f"{row['result']:>9}  {row['seconds']:6.0f} s  {m.name}: {m.why}", flush=True)
        if row["result"] == "error":
            print(log, file=sys.stderr)
        results.append(row)
    killed = sum(r["result"] == "killed" for r in results)
    print(f"\n{killed}/{len(results)} mutants killed"
          + "".join(f"\n  {r['result']}: {r['mutant']}" for r in results if r["result"] != "killed"))
    if a.json:
        Path(a.json).write_text(json.dumps({"killed": killed, "total": len(results), "mutants": results}, indent=1))
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

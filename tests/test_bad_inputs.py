"""Bad inputs to every command, run through ``fracskip.cli.main`` in-process: each one must be refused with
exit code 2 and a message naming the problem, without a traceback, without running anything from a file
(crafted pickles create a marker file if they ever run) and without leaving an output behind.

Each case is one line of ``CASES``: (id, argv built from the fixtures, regex the message must match, outputs
that must not exist afterwards). The table is the list of bad inputs the issue asks for; the ids say what is bad.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from fracskip.cli import main
from fracskip.runtime.manifest import sha256

import packages  # tests/packages.py: a hand-written deployment package


class Evil:
    """Unpickling this runs ``touch MARKER``: a file that must never appear."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Ctx:
    tmp: Path
    run: Path  # a trained tiny run folder
    ckpt: Path  # its model.pt
    exp: Path  # an export of it
    marker: Path

    # ---- files made on demand, inside tmp
    def evil_pt(self) -> str:
        p = self.tmp / "evil.pt"
        torch.save({"format": "fracskip-checkpoint/1", "payload": Evil(self.marker)}, p)
        return str(p)

    def garbage(self, name: str, data: bytes = b"\x80\x04garbage, not a checkpoint") -> str:
        p = self.tmp / name
        p.write_bytes(data)
        return str(p)

    def nonempty(self) -> str:
        d = self.tmp / "full"
        d.mkdir(exist_ok=True)
        (d / "keep.txt").write_text("user data\n")
        return str(d)

    def a_file(self) -> str:
        p = self.tmp / "afile"
        p.write_text("not a folder\n")
        return str(p)

    def evil_cifar(self) -> str:
        d = self.tmp / "cifar"
        d.mkdir(exist_ok=True)
        for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (d / n).write_bytes(pickle.dumps({b"data": Evil(self.marker), b"labels": [0]}, protocol=2))
        return str(d)

    def cifar(self) -> str:
        """A CIFAR-10 folder of two 3x32x32 images per batch: another dataset than the tiny run's."""
        d = self.tmp / "cifar-ok"
        d.mkdir(exist_ok=True)
        batch = {b"data": np.zeros((2, 3 * 32 * 32), np.uint8), b"labels": [0, 1]}
        for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (d / n).write_bytes(pickle.dumps(batch, protocol=2))
        return str(d)

    def export_copy(self, change=None) -> str:
        """A copy of the export, changed by ``change(folder, manifest_dict)``, its hashes recomputed: only the
        content check can catch it."""
        d = self.tmp / "exp"
        shutil.copytree(self.exp, d)
        m = json.loads((d / "manifest.json").read_text())
        if change:
            change(d, m)
        m["files"] = {k: sha256(d / k) for k in m["files"] if (d / k).exists()} | \
            {k: v for k, v in m["files"].items() if not (d / k).exists()}
        (d / "manifest.json").write_text(json.dumps(m))
        return str(d)

    def evil_npy(self) -> str:
        p = self.tmp / "evil.npy"
        np.save(p, np.array([Evil(self.marker)], dtype=object), allow_pickle=True)
        return str(p)

    def package(self, change=None) -> str:
        """The accelerator's deployment package (tests/packages.py); no bitstream."""
        np.save(self.tmp / "x.npy", np.zeros((3, 1, 28, 28), np.uint8))
        return str(packages.write(self.tmp / "pkg", change))

    @property
    def out(self) -> str:
        return str(self.tmp / "out")


def _evil_host_params(d: Path, s: dict, x: dict) -> None:
    np.savez(d / "driver" / "fracskip_host.npz", a=np.array([Evil(d.parent / "marker")], dtype=object))


def _scale_of_seven(d: Path, s: dict, x: dict) -> None:  # the head's scale for 7 classes, its stream of 10
    np.savez(d / "driver" / "fracskip_host.npz", scale=np.ones(7, np.float32), bias=np.zeros(10, np.float32))


def _old_build(c) -> str:
    """A build folder as the first layout wrote it: its summary.json of format 1 beside the export."""
    d = c.tmp / "old-build"
    shutil.copytree(c.exp, d / "export")
    (d / "summary.json").write_text(json.dumps({"format": "fracskip-build/1", "until": "hdl", "cores": {}}))
    return str(d)


def _garbage_onnx(d: Path, m: dict) -> None:
    (d / "block1_b4.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xff\xff")


def _gate_out_of_range(d: Path, m: dict) -> None:
    m["gates"]["lstm"]["w_ih"][0][0] = 999  # an int8 weight of the integer gate


def _gate_without_an_embedding(d: Path, m: dict) -> None:
    m["gates"]["embed"].pop()


def _gate_with_an_extra_choice(d: Path, m: dict) -> None:
    m["gates"]["proj"]["weight"].append(m["gates"]["proj"]["weight"][0])
    m["gates"]["proj"]["bias"].append(0)
    m["gates"]["n_choices"] += 1


def _gate_exponent_huge(d: Path, m: dict) -> None:
    m["gates"]["lstm"]["w_hh_exp"] = 70


def _gate_weight_not_integer(d: Path, m: dict) -> None:
    m["gates"]["lstm"]["w_ih"][0][0] = 1.7


def _gate_pool_mult_wrong(d: Path, m: dict) -> None:
    m["gates"]["embed"][0]["pool_mult"] += 1


def _no_bitops(d: Path, m: dict) -> None:
    del m["bitops"]


def _evil_source(d: Path, m: dict) -> None:
    torch.save({"format": "fracskip-checkpoint/1", "x": Evil(d.parent / "marker")}, d / "source_checkpoint.pt")


def _cifar_source(d: Path, m: dict) -> None:
    ck = torch.load(d / "source_checkpoint.pt", weights_only=True)
    ck["train_config"]["dataset"] = "cifar10"
    torch.save(ck, d / "source_checkpoint.pt")


def _traversal(d: Path, m: dict) -> None:
    m["stem"]["file"] = "../stem.onnx"


def _traversal_files(d: Path, m: dict) -> None:
    m["files"]["../outside.txt"] = "0" * 64


def _killed(d: Path, m: dict) -> None:
    (d / ".incomplete").write_text("")  # what outdir.fresh leaves when its run is killed (SIGKILL, OOM)


def _not_json_manifest(ctx: Ctx) -> str:
    d = ctx.export_copy()
    (Path(d) / "manifest.json").write_text("{ this is not json")
    return d


def _empty_onnx_graph(d: Path, m: dict) -> None:
    import onnx

    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])), str(d / "head.onnx"))


R = "-o"
CASES = [
    # ---------------------------------------------------------------- train
    ("train-limit-zero", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--limit", "0"], r"--limit must be a positive", ["out"]),
    ("train-limit-negative", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--limit", "-5"], r"--limit must be a positive", ["out"]),
    ("train-test-limit-zero", lambda c: ["train", R, c.out, "--test-limit", "0"], r"--test-limit must be a positive", ["out"]),
    ("train-batch-size-zero", lambda c: ["train", R, c.out, "--batch-size", "0"], r"--batch-size must be a positive", ["out"]),
    ("train-target-zero", lambda c: ["train", R, c.out, "--target", "0"], r"--target must be in \(0, 1\]", ["out"]),
    ("train-target-above-one", lambda c: ["train", R, c.out, "--target", "1.5"], r"--target must be in \(0, 1\]", ["out"]),
    ("train-target-nan", lambda c: ["train", R, c.out, "--target", "nan"], r"--target must be a finite number", ["out"]),
    ("train-alpha-negative", lambda c: ["train", R, c.out, "--alpha", "-1"], r"--alpha must be in \[0, \]", ["out"]),
    ("train-epochs-negative", lambda c: ["train", R, c.out, "--epochs", "backbone=-1"], r"--epochs backbone must be in", ["out"]),
    ("train-epochs-unknown-stage", lambda c: ["train", R, c.out, "--epochs", "warmup=1"], r"unknown stage 'warmup'", ["out"]),
    ("train-lr-zero", lambda c: ["train", R, c.out, "--lr", "backbone=0"], r"--lr backbone must be in \(0, \]", ["out"]),
    ("train-epochs-garbled", lambda c: ["train", R, c.out, "--epochs", "backbone"], r"expected stage=epochs", ["out"]),
    ("train-seed-negative", lambda c: ["train", R, c.out, "--seed", "-1"], r"--seed must be >= 0", ["out"]),
    ("train-depth-not-6n2", lambda c: ["train", R, c.out, "--depth", "15"], r"6n\+2", ["out"]),
    ("train-bit-menu-16", lambda c: ["train", R, c.out, "--bit-menu", "0,16"], r"bit menu entries must be", ["out"]),
    ("train-bit-menu-1-bit", lambda c: ["train", R, c.out, "--bit-menu", "0,1,8"], r"bit menu entries must be 0 \(skip\) or 2\.\.8 bits", ["out"]),
    ("train-bit-menu-unsorted", lambda c: ["train", R, c.out, "--bit-menu", "0,4,2"], r"must be in ascending order \(skip first\), e\.g\. 0,2,4", ["out"]),
    ("train-bit-menu-garbled", lambda c: ["train", R, c.out, "--bit-menu", "2;4"], r"bit menu is a comma-separated", ["out"]),
    ("train-unknown-stage", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--stages", "backbone,finetune"], r"unknown stage", ["out"]),
    ("train-path-probs-garbled", lambda c: ["train", R, c.out, "--path-probs", "1,x"], r"one relative frequency per bit-menu entry", ["out"]),
    ("train-path-probs-nan", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--path-probs", "nan,1,1,1"], r"one non-negative weight per bit-menu entry", ["out"]),
    ("train-path-probs-inf", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--path-probs", "inf,1,1,1"], r"one non-negative weight per bit-menu entry", ["out"]),
    ("train-bit-menu-only-skip", lambda c: ["train", R, c.out, "--bit-menu", "0"], r"has no width above 0", ["out"]),
    ("train-path-probs-count", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--path-probs", "1,1"], r"--path-probs needs one", ["out"]),
    ("train-path-probs-without-backbone", lambda c: ["train", R, c.out, "--stages", "gates", "--path-probs", "1,1,1,1"], r"cannot be used with --stages", ["out"]),
    ("train-cifar-without-data", lambda c: ["train", R, c.out, "--dataset", "cifar10"], r"--dataset cifar10 needs --data", ["out"]),
    ("train-data-missing", lambda c: ["train", R, c.out, "--data", str(c.tmp / "nowhere")], r"--data .*nowhere: no such folder", ["out"]),
    ("train-cifar-crafted-pickle", lambda c: ["train", R, c.out, "--dataset", "cifar10", "--data", c.evil_cifar(), "--limit", "8"], r"not allowed in a CIFAR-10 batch", ["out"]),
    ("train-resume-nothing", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--resume"], r"--resume: .* holds no checkpoint.pt", ["out"]),
    ("train-resume-with-other-options", lambda c: ["train", R, str(Path(c.copy_run()).parent), "--resume", "--depth", "14"], r"another training config \(depth 8 in the run, 14 now\): pass --resume without those options", []),
    ("train-output-is-a-file", lambda c: ["train", R, c.a_file(), "--dataset", "synthetic"], r"is a file; pass a folder", []),
    ("train-output-not-empty", lambda c: ["train", R, c.nonempty(), "--dataset", "synthetic"], r"is not empty: pass --resume to continue the run it holds", []),
    ("train-init-crafted-pickle", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--init", c.evil_pt()], r"not a plain-data checkpoint", ["out"]),
    ("train-distill-teacher-of-other-images", lambda c: ["train", R, c.out, "--dataset", "cifar10", "--data", c.cifar(), "--limit", "2", "--test-limit", "2", "--distill", str(c.run)], r"the teacher --distill .* takes 1x28x28 images .* these are 3x32x32", ["out"]),
    ("train-init-missing", lambda c: ["train", R, c.out, "--dataset", "synthetic", "--init", str(c.tmp / "no.pt")], r"does not exist", ["out"]),
    # ---------------------------------------------------------------- eval
    ("eval-limit-negative", lambda c: ["eval", str(c.run), "--dataset", "synthetic", "--limit", "-5"], r"--limit must be a positive", []),
    ("eval-limit-zero", lambda c: ["eval", str(c.run), "--dataset", "synthetic", "--limit", "0"], r"--limit must be a positive", []),
    ("eval-checkpoint-missing", lambda c: ["eval", str(c.tmp / "no.pt")], r"no\.pt does not exist", []),
    ("eval-crafted-pickle", lambda c: ["eval", c.evil_pt(), "--dataset", "synthetic"], r"not a plain-data checkpoint", []),
    ("eval-garbage-file", lambda c: ["eval", c.garbage("junk.pt")], r"not a readable checkpoint", []),
    ("eval-folder-without-checkpoint", lambda c: ["eval", c.nonempty()], r"without model\.pt or checkpoint\.pt", []),
    ("eval-bits-not-in-menu", lambda c: ["eval", str(c.run), "--dataset", "synthetic", "--limit", "8", "--bits", "3"], r"--bits 3: this model's gated blocks have paths at 0, 2, 4, 8 bits", []),
    ("eval-images-of-another-dataset", lambda c: ["eval", str(c.run), "--dataset", "cifar10", "--data", c.cifar()], r"takes 1x28x28 images .* these are 3x32x32: pass the dataset it was trained on", []),
    ("eval-not-a-fracskip-checkpoint", lambda c: ["eval", c.plain_pt()], r"not a fracskip checkpoint", []),
    # ---------------------------------------------------------------- compare
    ("compare-images-of-another-dataset", lambda c: ["compare", str(c.run), "--dataset", "cifar10", "--data", c.cifar()], r"takes 1x28x28 images", []),
    ("compare-duplicate", lambda c: ["compare", str(c.run), str(c.run), "--dataset", "synthetic"], r"listed twice", []),
    ("compare-crafted-pickle", lambda c: ["compare", str(c.run), c.evil_pt(), "--dataset", "synthetic"], r"not a plain-data checkpoint", []),
    ("compare-plot-suffix", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--plot", str(c.tmp / "p.xyz")], r"name a \.png", ["p.xyz"]),
    ("compare-plot-exists", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--plot", c.garbage("p.png", b"my earlier plot")], r"--plot .*p\.png exists; choose another file name", []),
    ("compare-plot-folder-missing", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--plot", str(c.tmp / "no" / "p.png")], r"no such folder", ["no"]),
    ("compare-limit-zero", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--limit", "0"], r"--limit must be a positive", []),
    ("compare-oracle-missing", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--oracle", str(c.tmp / "none.pt")], r"does not exist", []),
    ("compare-oracle-crafted-pickle", lambda c: ["compare", str(c.run), "--dataset", "synthetic", "--oracle", c.evil_pt()], r"not a plain-data checkpoint", []),
    # ---------------------------------------------------------------- budget
    ("budget-target-above-one", lambda c: ["budget", str(c.run), "--target", "1.5", "-o", str(c.tmp / "b.pt")], r"--target must be in", ["b.pt"]),
    ("budget-images-zero", lambda c: ["budget", str(c.run), "--target", "0.5", "-o", str(c.tmp / "b.pt"), "--images", "0"], r"--images must be a positive", ["b.pt"]),
    ("budget-output-folder-missing", lambda c: ["budget", str(c.run), "--target", "0.5", "-o", str(c.tmp / "no" / "b.pt")], r"no such folder", ["no"]),
    ("budget-neither-target-nor-menu", lambda c: ["budget", str(c.run), "-o", str(c.tmp / "b.pt")], r"give --target .* or --menu", ["b.pt"]),
    ("budget-menu-keeps-no-skip", lambda c: ["budget", str(c.run), "--menu", "2,4", "-o", str(c.tmp / "b.pt"), "--dataset", "synthetic"], r"must keep 0", ["b.pt"]),
    ("budget-images-of-another-dataset", lambda c: ["budget", str(c.run), "--target", "0.5", "-o", str(c.tmp / "b.pt"), "--dataset", "cifar10", "--data", c.cifar()], r"takes 1x28x28 images", ["b.pt"]),
    ("budget-crafted-pickle", lambda c: ["budget", c.evil_pt(), "--target", "0.5", "-o", str(c.tmp / "b.pt")], r"not a plain-data checkpoint", ["b.pt"]),
    # ---------------------------------------------------------------- export
    ("export-crafted-pickle", lambda c: ["export", c.evil_pt(), R, c.out], r"not a plain-data checkpoint", ["out"]),
    ("export-output-is-a-file", lambda c: ["export", str(c.ckpt), R, c.a_file()], r"is a file; pass a folder", []),
    ("export-output-not-empty", lambda c: ["export", str(c.ckpt), R, c.nonempty()], r"is not empty: pass --force", []),
    ("export-force-over-its-input", lambda c: ["export", c.copy_run(), R, str(c.tmp / "run"), "--force"], r"holds the input", []),
    ("export-garbage-checkpoint", lambda c: ["export", c.garbage("junk.pt", b"PK\x03\x04 broken zip"), R, c.out], r"not a readable checkpoint", ["out"]),
    # ---------------------------------------------------------------- simulate
    ("simulate-limit-zero", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--limit", "0"], r"--limit must be a positive", []),
    ("simulate-threads-zero", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--limit", "4", "--threads", "0"], r"--threads must be a positive", []),
    ("simulate-threads-not-rtlsim", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--limit", "4", "--threads", "2"], r"--threads sets the Verilator model's threads", []),
    ("simulate-jobs-zero", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--limit", "4", "--jobs", "0"], r"--jobs must be a positive", []),
    ("simulate-jobs-not-rtlsim", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--limit", "4", "--jobs", "2"], r"--jobs sets how many Verilator models run", []),
    ("simulate-batch-size-zero", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--batch-size", "0"], r"--batch-size must be a positive", []),
    ("simulate-batch-size-with-rtlsim", lambda c: ["simulate", str(c.exp), "--backend", "rtlsim", "--dataset", "synthetic", "--batch-size", "8"], r"--batch-size sets the controller's batches: --backend rtlsim streams", []),
    ("build-sizing-images-with-estimates", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--until", "estimates", "--sizing-images", "8"], r"--sizing-images sizes the emitted accelerator's FIFOs: --until estimates emits none", ["out"]),
    ("simulate-killed-folder", lambda c: ["simulate", c.export_copy(_killed), "--dataset", "synthetic", "--limit", "4"], r"is incomplete: the run that made it was killed", []),
    ("build-sizing-one-image", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--sizing-images", "1"], r"--sizing-images 1: .* 2 images or more", ["out"]),
    ("build-ignore-fit-without-bitstream", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--ignore-fit"], r"--ignore-fit lets Vivado try .* it needs --until bitstream", ["out"]),
    ("simulate-rtlsim-one-image", lambda c: ["simulate", str(c.exp), "--backend", "rtlsim", "--dataset", "synthetic", "--limit", "1"], r"--limit 2 or more \(one image gives only its latency\)", []),
    ("simulate-rtlsim-on-an-export", lambda c: ["simulate", str(c.exp), "--backend", "rtlsim", "--dataset", "synthetic"], r"not a build folder", []),
    ("simulate-build-of-an-older-format", lambda c: ["simulate", _old_build(c), "--backend", "rtlsim", "--dataset", "synthetic", "--limit", "4"], r"is a build of format 'fracskip-build/1'; this fracskip reads 'fracskip-build/2'", []),
    ("simulate-graphs-with-torch", lambda c: ["simulate", str(c.exp), "--backend", "torch", "--graphs", "qonnx"], r"cannot be used with --backend torch", []),
    ("simulate-folder-missing", lambda c: ["simulate", str(c.tmp / "nowhere"), "--dataset", "synthetic"], r"no such folder", []),
    ("simulate-cifar-export-without-data", lambda c: ["simulate", c.export_copy(_cifar_source), "--backend", "torch", "--limit", "4"], r"was trained on cifar10, whose test images it is simulated on: it needs --data DIR", []),
    ("simulate-garbage-onnx-rehashed", lambda c: ["simulate", c.export_copy(_garbage_onnx), "--dataset", "synthetic", "--limit", "4"], r"block1_b4\.onnx is not a readable ONNX model", []),
    ("simulate-empty-onnx-graph", lambda c: ["simulate", c.export_copy(_empty_onnx_graph), "--dataset", "synthetic", "--limit", "4"], r"head\.onnx is an ONNX file without a graph", []),
    ("simulate-manifest-not-json", lambda c: ["simulate", _not_json_manifest(c), "--dataset", "synthetic"], r"manifest\.json is not valid JSON", []),
    ("simulate-gate-weight-out-of-range", lambda c: ["simulate", c.export_copy(_gate_out_of_range), "--dataset", "synthetic", "--limit", "4"], r"integer gate parameters break the specification", []),
    ("simulate-gate-without-an-embedding", lambda c: ["simulate", c.export_copy(_gate_without_an_embedding), "--dataset", "synthetic", "--limit", "4"], r"the integer gate has 2 gates and 1 embeddings for 2 gated blocks", []),
    ("simulate-gate-with-an-extra-choice", lambda c: ["simulate", c.export_copy(_gate_with_an_extra_choice), "--dataset", "synthetic", "--limit", "4"], r"chooses among 5 paths, the bit menu has 4", []),
    ("simulate-gate-exponent-huge", lambda c: ["simulate", c.export_copy(_gate_exponent_huge), "--dataset", "synthetic", "--limit", "4"], r"w_hh exponent 70 is outside -24\.\.24", []),
    ("simulate-gate-weight-not-integer", lambda c: ["simulate", c.export_copy(_gate_weight_not_integer), "--dataset", "synthetic", "--limit", "4"], r"expected integers, found float64", []),
    ("simulate-gate-pool-mult-wrong", lambda c: ["simulate", c.export_copy(_gate_pool_mult_wrong), "--dataset", "synthetic", "--limit", "4"], r"pool_mult \d+ of gate 0 does not average block 1's 28x28", []),
    ("simulate-manifest-without-bitops", lambda c: ["simulate", c.export_copy(_no_bitops), "--dataset", "synthetic", "--limit", "4"], r"lacks \['bitops'\]", []),
    ("simulate-crafted-source-checkpoint", lambda c: ["simulate", c.export_copy(_evil_source), "--backend", "torch", "--dataset", "synthetic", "--limit", "4"], r"not a plain-data checkpoint", []),
    ("simulate-manifest-path-traversal", lambda c: ["simulate", c.export_copy(_traversal), "--dataset", "synthetic"], r"not listed in files", []),
    ("simulate-manifest-lists-outside-file", lambda c: ["simulate", c.export_copy(_traversal_files), "--dataset", "synthetic"], r"'\.\./outside\.txt' is not a plain file name", []),
    ("simulate-tampered-file", lambda c: ["simulate", c.tampered_export(), "--dataset", "synthetic"], r"does not match its sha256", []),
    # ---------------------------------------------------------------- build
    ("build-a-build-as-export", lambda c: ["build", _old_build(c), "--board", "Pynq-Z2", R, c.out], r"old-build is a build folder, not an export: pass its export", ["out"]),
    ("build-unknown-board", lambda c: ["build", str(c.exp), "--board", "Arty", R, c.out], r"unknown board 'Arty'", ["out"]),
    ("build-workers-zero", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--workers", "0"], r"--workers must be a positive", ["out"]),
    ("build-budget-zero", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--budget", "0"], r"--budget must be in \(0, 1\]", ["out"]),
    ("build-budget-above-one", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--budget", "1.5"], r"--budget must be in \(0, 1\]", ["out"]),
    ("build-target-fps-negative", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--target-fps", "-1"], r"--target-fps must be in \(0, \]", ["out"]),
    ("build-calibration-zero", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--calibration", "0"], r"--calibration must be a positive", ["out"]),
    ("build-baselines-with-estimates", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--until", "estimates", "--baselines"], r"--baselines works on the emitted accelerator", ["out"]),
    ("build-synth-with-estimates", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.out, "--until", "estimates", "--synth"], r"--synth works on the emitted accelerator", ["out"]),
    ("simulate-static-design-not-rtlsim", lambda c: ["simulate", str(c.exp), "--dataset", "synthetic", "--design", "static_W4A4"], r"--design static_W4A4 runs an accelerator of a build", []),
    ("build-export-missing", lambda c: ["build", str(c.tmp / "nowhere"), "--board", "Pynq-Z2", R, c.out], r"no such folder", ["out"]),
    ("build-output-inside-export", lambda c: ["build", c.export_copy(), "--board", "Pynq-Z2", R, str(c.tmp / "exp" / "b")], r"inside the input folder", []),
    ("build-garbage-onnx-rehashed", lambda c: ["build", c.export_copy(_garbage_onnx), "--board", "Pynq-Z2", R, c.out], r"not a readable ONNX model", ["out"]),
    ("build-cifar-export-without-data", lambda c: ["build", c.export_copy(_cifar_source), "--board", "Pynq-Z2", R, c.out], r"was trained on cifar10, whose training images calibrate the gates: it needs --data DIR", ["out"]),
    ("build-output-not-empty", lambda c: ["build", str(c.exp), "--board", "Pynq-Z2", R, c.nonempty()], r"is not empty: pass --force", []),
    # ---------------------------------------------------------------- deploy
    ("deploy-package-missing", lambda c: ["deploy", str(c.tmp / "nowhere"), "--images", str(c.tmp / "x.npy")], r"no such folder", []),
    ("deploy-not-a-package", lambda c: ["deploy", str(c.exp), "--images", c.npy("x.npy", np.zeros((1, 1, 28, 28), np.uint8))], r"settings\.json is missing", []),
    ("deploy-settings-empty", lambda c: ["deploy", c.package(lambda d, s, x: s.clear()), "--images", str(c.tmp / "x.npy")], r"no driver_information\.io_shape_dict", []),
    ("deploy-extra-missing", lambda c: ["deploy", c.package(lambda d, s, x: x.clear()), "--images", str(c.tmp / "x.npy")], r"format None is not 'fracskip-accelerator/1'", []),
    ("deploy-settings-not-json", lambda c: ["deploy", c.settings_garbage(), "--images", str(c.tmp / "x.npy")], r"settings\.json is not valid JSON", []),
    ("deploy-settings-bad-platform", lambda c: ["deploy", c.package(lambda d, s, x: s["driver_information"].update(platform="fpga")), "--images", str(c.tmp / "x.npy")], r"platform 'fpga' is not one of", []),
    ("deploy-settings-bad-shape", lambda c: ["deploy", c.package(lambda d, s, x: s["driver_information"]["io_shape_dict"].update(ishape_packed=[[1, 28, 28, 2]])), "--images", str(c.tmp / "x.npy")], r"io_shape_dict ishape_\* \[0\]", []),
    ("deploy-images-missing", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "no.npy")], r"no\.npy: no such file", []),
    ("deploy-images-crafted-pickle", lambda c: ["deploy", c.package(), "--images", c.evil_npy()], r"holds pickled objects", []),
    ("deploy-images-wrong-shape", lambda c: ["deploy", c.package(), "--images", c.npy("w.npy", np.zeros((2, 3, 28, 28), np.uint8))], r"shape \(2, 3, 28, 28\)", []),
    ("deploy-images-not-pixels", lambda c: ["deploy", c.package(), "--images", c.npy("f.npy", np.full((2, 1, 28, 28), 0.5))], r"raw 8-bit pixels", []),
    ("deploy-labels-count", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--labels", c.npy("l.npy", np.zeros(5, np.int64))], r"\(5,\) labels for 3 images", []),
    ("deploy-labels-fractional", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--labels", c.npy("l.npy", np.array([0.5, 1, 2]))], r"pass class numbers 0\.\.9", []),
    ("deploy-labels-beyond-the-classes", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--labels", c.npy("l.npy", np.array([0, 1, 10]))], r"values 0\.\.10; pass class numbers 0\.\.9", []),
    ("deploy-limit-zero", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--limit", "0"], r"--limit must be a positive", []),
    ("deploy-timeout-zero", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--timeout", "0"], r"--timeout must be in", []),
    ("deploy-timeout-with-finn-driver", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--finn-driver", "--timeout", "5"], r"--timeout cannot be kept with --finn-driver", []),
    ("deploy-simulate-with-finn-driver", lambda c: ["deploy", c.package(), "--images", str(c.tmp / "x.npy"), "--finn-driver", "--simulate"], r"--finn-driver runs FINN's driver on a board", []),
    ("deploy-extra-without-blocks", lambda c: ["deploy", c.package(lambda d, s, x: x["decisions"].pop("blocks")), "--images", str(c.tmp / "x.npy")], r"the package lacks or garbles 'blocks'", []),
    ("deploy-host-post-does-not-fit", lambda c: ["deploy", c.package(_scale_of_seven), "--images", str(c.tmp / "x.npy")], r"host\.post does not run on one frame of the logits stream \[1, 10\]", []),
    ("deploy-classes-not-the-logits", lambda c: ["deploy", c.package(lambda d, s, x: x.update(classes=["a", "b"])), "--images", str(c.tmp / "x.npy")], r"not one logit for each of the 2 classes", []),
    ("deploy-bitops-not-numbers", lambda c: ["deploy", c.package(lambda d, s, x: x["decisions"].update(bitops=[["0", "4", "16"]] * 2)), "--images", str(c.tmp / "x.npy")], r"decisions\.bitops .*must be numbers", []),
    ("deploy-simulate-alveo-package", lambda c: ["deploy", c.package(lambda d, s, x: s["driver_information"].update(platform="alveo")), "--images", str(c.tmp / "x.npy"), "--simulate"], r"alveo package .*--simulate models the IODMAs' AXI-lite registers of zynq-iodma only", []),
    ("deploy-bitfile-outside-the-package", lambda c: ["deploy", c.package(lambda d, s, x: x.update(bitfile="../../x.bit")), "--images", str(c.tmp / "x.npy")], r"bitfile '\.\./\.\./x\.bit': the bitstream is a file of the package's bitfile/ folder", []),
    ("deploy-crafted-host-params", lambda c: ["deploy", c.package(_evil_host_params), "--images", str(c.tmp / "x.npy")], r"fracskip_host\.npz holds pickled objects", []),
    ("deploy-images-truncated-idx", lambda c: ["deploy", c.package(), "--images", c.garbage("t.idx", b"\0\0\x08\x03" + (9).to_bytes(4, "big") * 3 + b"\0" * 5)], r"truncated or damaged IDX", []),
    # ---------------------------------------------------------------- demo
    ("demo-images-zero", lambda c: ["demo", R, c.out, "--images", "0"], r"--images must be a positive", ["out"]),
    ("demo-workers-zero", lambda c: ["demo", R, c.out, "--workers", "0"], r"--workers must be a positive", ["out"]),
    ("demo-rtlsim-one-image", lambda c: ["demo", R, c.out, "--images", "1"], r"--images 2 or more \(one image gives only its latency\)", ["out"]),
    ("demo-unknown-board", lambda c: ["demo", R, c.out, "--board", "Basys3"], r"unknown board 'Basys3'", ["out"]),
    ("demo-crafted-checkpoint", lambda c: ["demo", R, c.out, "--checkpoint", c.evil_pt()], r"not a plain-data checkpoint", ["out"]),
    ("demo-checkpoint-takes-other-images", lambda c: ["demo", R, c.out, "--checkpoint", c.cifar_shaped_pt()], r"takes 3x32x32 images: `fracskip demo` measures on Fashion-MNIST", ["out"]),
    ("demo-output-not-empty", lambda c: ["demo", R, c.nonempty(), "--checkpoint", str(c.ckpt)], r"is not empty: pass --force", []),
    ("demo-force-over-its-checkpoint", lambda c: ["demo", R, str(c.tmp / "run"), "--checkpoint", c.copy_run(), "--force"], r"holds the input", []),
    # ---------------------------------------------------------------- bench
    ("bench-workers-zero", lambda c: ["bench", R, c.out, "--workers", "0"], r"--workers must be a positive", ["out"]),
    ("bench-crafted-checkpoint", lambda c: ["bench", R, c.out, "--checkpoint", c.evil_pt()], r"not a plain-data checkpoint", ["out"]),
    ("bench-checkpoint-takes-other-images", lambda c: ["bench", R, c.out, "--checkpoint", c.cifar_shaped_pt()], r"takes 3x32x32 images: `fracskip bench` measures", ["out"]),
    ("bench-output-is-a-file", lambda c: ["bench", R, c.a_file(), "--checkpoint", str(c.ckpt)], r"is a file; pass a folder", []),
    ("bench-output-not-empty", lambda c: ["bench", R, c.nonempty(), "--checkpoint", str(c.ckpt)], r"is not empty: pass --force", []),
    # ---------------------------------------------------------------- argparse's own refusals (exit 2 too)
    ("unknown-command", lambda c: ["frobnicate"], r"invalid choice", []),
    ("build-without-board", lambda c: ["build", str(c.exp), R, c.out], r"--board", ["out"]),
]


def _extra(ctx: Ctx) -> None:
    """Helpers that need the instance (kept out of the dataclass body for readability)."""

    def plain_pt() -> str:
        p = ctx.tmp / "plain.pt"
        torch.save({"weights": torch.zeros(3)}, p)
        return str(p)

    def copy_run() -> str:
        shutil.copytree(ctx.run, ctx.tmp / "run")
        return str(ctx.tmp / "run" / "model.pt")

    def tampered_export() -> str:
        d = ctx.export_copy()
        with open(Path(d) / "stem.onnx", "ab") as f:
            f.write(b"\0")
        return d

    def settings_garbage() -> str:
        d = ctx.package()
        (Path(d) / "driver" / "settings.json").write_text('{"driver_information": ')
        return d

    def cifar_shaped_pt() -> str:
        ck = torch.load(ctx.ckpt, weights_only=True)
        ck["model_config"].update(in_channels=3, image_size=32)
        torch.save(ck, ctx.tmp / "cifar.pt")
        return str(ctx.tmp / "cifar.pt")

    def npy(name: str, arr: np.ndarray) -> str:
        np.save(ctx.tmp / name, arr)
        return str(ctx.tmp / name)

    ctx.plain_pt, ctx.copy_run, ctx.tampered_export, ctx.settings_garbage, ctx.npy, ctx.cifar_shaped_pt = (
        plain_pt, copy_run, tampered_export, settings_garbage, npy, cifar_shaped_pt)


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(case, tiny_run, tiny_export, tmp_path, capsys):
    name, argv, message, outputs = case
    ctx = Ctx(tmp_path, tiny_run, tiny_run / "model.pt", tiny_export, tmp_path / "marker")
    _extra(ctx)
    args = argv(ctx)
    before = _snapshot(tmp_path)
    run_before, exp_before = _snapshot(tiny_run), _snapshot(tiny_export)
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, (name, rc, err)
    assert "Traceback" not in err, err
    import re

    assert re.search(message, err), (name, err)
    assert not ctx.marker.exists(), f"{name}: code from a file was executed"
    assert not any(p.name == "marker" for p in tmp_path.rglob("marker")), f"{name}: code from a file was executed"
    for o in outputs:
        assert not (tmp_path / o).exists(), f"{name}: left {o} behind"
    assert _snapshot(tmp_path) == before, f"{name}: wrote {_snapshot(tmp_path) - before}"
    assert _snapshot(tiny_run) == run_before and _snapshot(tiny_export) == exp_before


def test_there_are_at_least_forty_and_every_command_is_covered():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)
    commands = {c[0].split("-")[0] for c in CASES}
    assert {"train", "eval", "compare", "export", "simulate", "build", "deploy", "demo", "bench"} <= commands


# ---------------------------------------------------------------- a read-only output folder


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write in: chmod for a normal user; for root (which ignores permission bits) the
    immutable attribute (chattr +i), removed again afterwards."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: no way to make a folder read-only here")
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)


@pytest.mark.parametrize("command", [
    lambda run, exp, out: ["export", str(run / "model.pt"), "-o", out],
    lambda run, exp, out: ["train", "-o", out, "--dataset", "synthetic"],
    lambda run, exp, out: ["build", str(exp), "--board", "Pynq-Z2", "-o", out],
    lambda run, exp, out: ["bench", "-o", out, "--checkpoint", str(run / "model.pt")],
    lambda run, exp, out: ["demo", "-o", out, "--checkpoint", str(run / "model.pt")],
], ids=["export", "train", "build", "bench", "demo"])
def test_read_only_output_folder_is_a_clear_error(command, readonly_dir, tiny_run, tiny_export, capsys):
    rc = main(command(tiny_run, tiny_export, str(readonly_dir / "out")))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "cannot write in" in err and "choose a writable output folder" in err, err
    assert not any(readonly_dir.iterdir())



def test_build_refuses_an_output_folder_that_holds_its_dataset(tiny_export, tmp_path, monkeypatch, capsys):
    """--data inside -o, with --force: replacing -o set the dataset aside with it, and the calibration then said
    "data folder ... does not exist" of a folder the user could see. Refused before any work, as train refuses it."""
    import fracskip.hls.build as B

    monkeypatch.setattr(B, "build", lambda *a, **k: pytest.fail("the build started"))
    out = tmp_path / "out"
    (out / "fashion-mnist").mkdir(parents=True)
    (out / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    before = _snapshot(tmp_path)
    rc = main(["build", str(tiny_export), "--board", "Pynq-Z2", "-o", str(out), "--force",
               "--data", str(out / "fashion-mnist")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert "holds the input" in err and "choose another output folder" in err, err
    assert _snapshot(tmp_path) == before

def test_a_build_without_its_sized_graph_or_with_a_damaged_report_is_refused(tmp_path):
    """The accelerator's graph before sizing has depth-2 FIFOs: simulating it after the sized one went missing
    compiled a model for minutes and then reported a deadlock. A damaged accelerator.json gave a JSONDecodeError."""
    import json

    from fracskip.errors import FracskipError
    from fracskip.hls.accelerator import ACC_DIR, MODELS, accelerator_model, accelerator_report

    im, rep = tmp_path / ACC_DIR / "intermediate_models", tmp_path / ACC_DIR / "report"
    im.mkdir(parents=True)
    rep.mkdir()
    (im / MODELS[1]).write_bytes(b"")
    (rep / "accelerator.json").write_text(json.dumps({"fifo_sizing": {"images": 8}}))
    with pytest.raises(FracskipError, match=r"is missing, though the build sized its FIFOs"):
        accelerator_model(tmp_path)
    (rep / "accelerator.json").write_text('{"fifo_sizing": ')
    with pytest.raises(FracskipError, match=r"accelerator\.json is not valid JSON .*rebuild the accelerator"):
        accelerator_report(tmp_path)


def test_simulate_takes_the_exports_dataset_by_default(tiny_export, monkeypatch, capsys):
    """Without --dataset, simulate ran every export on Fashion-MNIST (eval, compare and budget take the
    checkpoint's dataset): the tiny synthetic network was scored on another dataset's images without a word."""
    from fracskip.training import data as D

    seen, real = [], D.load
    monkeypatch.setattr(D, "load", lambda dataset, *a, **k: seen.append(dataset) or real(dataset, *a, **k))
    assert main(["simulate", str(tiny_export), "--backend", "torch", "--limit", "4", "--json"]) == 0
    assert seen == ["synthetic"] and json.loads(capsys.readouterr().out)["n"] == 4


def test_resume_alone_continues_the_run_with_its_own_options(tiny_run, tmp_path, capsys):
    """`fracskip train -o RUN --resume` was refused unless every option of the run was given again (the
    defaults differ from the run's), with a message that named none of them."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["train", "-o", str(run), "--resume"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] >= 0


def test_demo_says_what_the_decisions_are_held_to():
    """`fracskip demo --backend qonnx` reported "decisions equal to the golden's": the qonnx backend is the golden,
    and its decisions_match_pct holds it to the torch model."""
    from fracskip.demo import _simulation_rows

    qonnx = {"backend": "qonnx", "reference": "torch float64", "n": 2, "accuracy": 0.5, "decisions_match_pct": 100.0}
    assert list(_simulation_rows(qonnx)) == ["accuracy", "decisions equal to torch's (%)"]
    assert "decisions equal to the golden's (%)" in _simulation_rows({**qonnx, "backend": "rtlsim"})


def test_throughput_plot_does_not_call_the_model_measured(tmp_path, monkeypatch):
    """The throughput plot's axis said "cycles measured" under bars of the folding model's cycles, also where
    nothing was measured (the demo on the qonnx backend)."""
    import fracskip.report as R

    figs = []
    monkeypatch.setattr(R.plt, "close", figs.append)
    row = {"images_per_s_model": 3000.0, "images_per_s_measured": None, "accuracy": 0.9}
    R.throughput_plot({"dfs": row, "static_W4A4": {**row, "accuracy": None}, "clock_mhz": 100.0, "board": "Pynq-Z2",
                       "budget_fraction": 0.8}, tmp_path / "t.png")
    ax = figs[0].axes[0]
    assert "measured" not in ax.get_xlabel() and [h.get_label() for h in ax.get_legend().legend_handles] == [
        "folding model (estimates)"]


def test_force_never_deletes_the_folder_it_runs_in(tiny_run, tmp_path, monkeypatch, capsys):
    """`fracskip export CKPT -o . --force` set the working folder aside, then failed on the relative '.' (which
    had moved with it: 'Device or resource busy') and deleted it, the user's files with it. The CLI refuses an
    output that holds the working folder; the API takes '.' as the folder it names when it is called."""
    from fracskip.outdir import fresh, staged

    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("precious\n")
    monkeypatch.chdir(home)
    for argv in (["export", str(tiny_run / "model.pt"), "-o", ".", "--force"],
                 ["demo", "-o", "..", "--force", "--checkpoint", str(tiny_run / "model.pt")]):
        assert main(argv) == 2
        assert "holds the folder you run in" in capsys.readouterr().err
        assert (home / "notes.txt").read_text() == "precious\n"
    for replace in (lambda: staged(Path(".")), lambda: fresh(".", True, "test")):
        monkeypatch.chdir(home)
        with replace() as out:
            (out / "new.txt").write_text("result\n")
        assert sorted(p.name for p in home.iterdir()) == ["new.txt"] and sorted(os.listdir(tmp_path)) == ["home"]
        (home / "new.txt").rename(home / "notes.txt")

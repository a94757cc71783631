import json
import subprocess
import sys

import pytest
import torch

from fracskip.cli import main
from fracskip.errors import FracskipError
from fracskip.training import data as D
from fracskip.training import train as T
from fracskip.training.checkpoint import load_model
from fracskip.training.evaluate import evaluate


def test_checkpoint_round_trip(tiny_run):
    net, ck = load_model(tiny_run / "model.pt")
    ev = evaluate(net, D.load("synthetic", "test", limit=64), progress=False)
    assert ev == ck["eval"]


def test_eval_cli_json(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--dataset", "synthetic", "--limit", "64", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev) >= {"accuracy", "compute_pct", "bitops_per_input", "choices"}
    assert 0 <= ev["accuracy"] <= 1 and 0 < ev["compute_pct"] <= 100
    assert sum(ev["choices"][0].values()) == 64
    # every gated block forced to one precision: the backbone's fixed-precision point
    assert main(["eval", str(tiny_run), "--dataset", "synthetic", "--limit", "64", "--bits", "2", "--json"]) == 0
    ev2 = json.loads(capsys.readouterr().out)
    assert ev2["forced_bits"] == 2 and all(c["2"] == 64 for c in ev2["choices"])
    assert main(["eval", str(tiny_run), "--dataset", "synthetic", "--limit", "8", "--bits", "3"]) == 2
    assert "bit menu" in capsys.readouterr().err


def test_path_probs_are_checked():
    with pytest.raises(FracskipError, match="path-probs"):
        T.TrainConfig(path_probs=(1, 1))
    with pytest.raises(FracskipError, match="path-probs"):
        T.TrainConfig(path_probs=(1, -1, 1, 1))
    assert T.TrainConfig(path_probs=(1, 2, 3, 3)).path_probs == (1.0, 2.0, 3.0, 3.0)


def test_resume_after_interruption_equals_uninterrupted(tmp_path, monkeypatch, tiny_config):
    cfg = T.TrainConfig(**{**tiny_config, "epochs": {"backbone": 1, "gates": 1, "joint": 1}})
    T.train(cfg, tmp_path / "straight")
    ref = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)["state_dict"]

    real_step, calls = T._step, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:  # inside the gates stage, after a checkpoint
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(T, "_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "broken")
    assert not (tmp_path / "broken" / "model.pt").exists()
    with pytest.raises(FracskipError, match="--resume"):
        T.train(cfg, tmp_path / "broken")  # a run folder is never overwritten silently
    monkeypatch.setattr(T, "_step", real_step)
    T.train(cfg, tmp_path / "broken", resume=True)
    got_ck = torch.load(tmp_path / "broken" / "model.pt", weights_only=False)
    ref_ck = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)
    steps = lambda ck: [(h["stage"], h["steps"]) for h in ck["history"] if "steps" in h]  # noqa: E731
    # the resumed run finished the interrupted epoch from its checkpoint instead of starting over
    assert sum(n for _, n in steps(got_ck)) < sum(n for _, n in steps(ref_ck)) + 6
    got = got_ck["state_dict"]
    assert set(got) == set(ref)
    # Not bit-identical: Brevitas keeps the step counter of a quantizer still collecting statistics outside
    # the state dict. Measured differences are ~1e-4.
    for k in ref:
        assert torch.allclose(got[k].float(), ref[k].float(), atol=2e-3), k


def test_bad_data_path_gives_a_clear_error(tmp_path, capsys):
    rc = main(["train", "-o", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "dataset-fashion-mnist" in err
    assert not (tmp_path / "r").exists()


def test_truncated_idx_file_is_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") * 3 + b"\x00" * 7)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 10)
    with pytest.raises(FracskipError, match="truncated"):
        D.load("fashion-mnist", "test", tmp_path)


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "fracskip.cli",
           "train", "-o", str(out), "--dataset", "synthetic", "--limit", "256", "--test-limit", "64", "--depth", "8",
           "--epochs", "backbone=1,gates=1,joint=1", "--batch-size", "32"]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr[-2000:]
    net, ck = load_model(out / "model.pt")
    steps = [h["steps"] for h in ck["history"] if "steps" in h]
    assert steps[0] == 4  # 256 images / 2 ranks / 32 per batch: each rank took its own shard

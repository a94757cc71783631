import json
import subprocess
import sys
from pathlib import Path

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
    assert "have paths at 0, 2, 4, 8 bits" in capsys.readouterr().err


def test_path_probs_are_checked():
    with pytest.raises(FracskipError, match="path-probs"):
        T.TrainConfig(path_probs=(1, 1))
    with pytest.raises(FracskipError, match="path-probs"):
        T.TrainConfig(path_probs=(1, -1, 1, 1))
    assert T.TrainConfig(path_probs=(1, 2, 3, 3)).path_probs == (1.0, 2.0, 3.0, 3.0)


_REAL_STEP = T._step


def _recording_step(log: list, fail_at: int | None = None):
    """T._step wrapped: before every step, the step's identity, its batch and the network's whole state (the
    state after the previous step); raises KeyboardInterrupt at call ``fail_at`` (a killed run)."""
    real = _REAL_STEP

    def step(model, net, stage, x, y, cfg, table, done, *rest, **kw):
        if fail_at is not None and len(log) + 1 == fail_at:
            raise KeyboardInterrupt
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        log.append({"stage": stage, "step": done, "x": x.clone(), "y": y.clone(), "state": state})
        return real(model, net, stage, x, y, cfg, table, done, *rest, **kw)

    return step


def _same_state(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


RESUME_CFG = {"epochs": {"backbone": 1, "gates": 2}, "stages": ("backbone", "gates"), "recalibration_images": 64}


@pytest.mark.parametrize("gates_step", [3, 1], ids=["inside-gates", "at-the-stage-boundary"])
def test_resume_after_interruption_equals_uninterrupted(gates_step, tmp_path, monkeypatch, tiny_config):
    """Killed at step k and resumed, the run replays exactly what the uninterrupted run did from its last
    checkpoint on: the same batches into the same network state, step by step, and bit-identical final weights.
    A "resume" that starts over (or skips ahead) fails here even though a deterministic restart would end with the
    same weights.

    Interrupted inside the gates stage: Brevitas keeps the step counter of an activation quantizer that is still
    collecting statistics (the first 300 training steps) outside the state dict, so a checkpoint taken in the
    backbone stage of this short run cannot restore that counter; in the gates and joint stages the quantizers
    are in eval mode and the counter is not used. Killed at the first gates step, the run resumes from the
    checkpoint the backbone stage wrote when it ended (which once held the backbone's optimizer for the gates'). The
    history, epoch records included, is the uninterrupted run's but for wall times.
    """
    cfg = T.TrainConfig(**{**tiny_config, **RESUME_CFG})
    straight: list = []
    monkeypatch.setattr(T, "_step", _recording_step(straight))
    T.train(cfg, tmp_path / "straight")
    n_backbone = sum(1 for s in straight if s["stage"] == "backbone")
    kill_at = n_backbone + gates_step  # killed at the gates step of that number; inside: one after a checkpoint
    assert len(straight) > kill_at + 2

    before: list = []
    monkeypatch.setattr(T, "_step", _recording_step(before, fail_at=kill_at))
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "broken")
    assert not (tmp_path / "broken" / "model.pt").exists()
    with pytest.raises(FracskipError, match="--resume"):
        T.train(cfg, tmp_path / "broken")  # a run folder is never overwritten silently
    after: list = []
    monkeypatch.setattr(T, "_step", _recording_step(after))
    T.train(cfg, tmp_path / "broken", resume=True)

    # the resumed run starts where a checkpoint of the interrupted one was, not at step 0, not ahead of the kill
    j = next(i for i, s in enumerate(straight) if (s["stage"], s["step"]) == (after[0]["stage"], after[0]["step"]))
    assert kill_at - 1 - cfg.checkpoint_every <= j <= kill_at, (j, kill_at)
    assert len(after) == len(straight) - j, "the resumed run did not do exactly the remaining steps"
    for k, (got, want) in enumerate(zip(after, straight[j:])):
        assert (got["stage"], got["step"]) == (want["stage"], want["step"]), k
        assert torch.equal(got["x"], want["x"]) and torch.equal(got["y"], want["y"]), f"step {j + k}: another batch"
        assert _same_state(got["state"], want["state"]), f"step {j + k}: the network state differs"
    got = torch.load(tmp_path / "broken" / "model.pt", weights_only=True)
    ref = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    assert _same_state(got["state_dict"], ref["state_dict"])
    assert got["eval"] == ref["eval"]
    assert _untimed(got["history"]) == _untimed(ref["history"])


def test_resume_refuses_another_number_of_processes(tmp_path, monkeypatch, tiny_config):
    """Each DDP rank trains its own shard, so a checkpoint's place in an epoch holds only for its number of
    processes: a resume with another is refused, not continued at the wrong place."""
    cfg = T.TrainConfig(**{**tiny_config, "epochs": {"backbone": 0.25}, "stages": ("backbone",)})
    T.train(cfg, tmp_path / "r")
    monkeypatch.setattr(T, "_dist", lambda: (0, 2))
    with pytest.raises(FracskipError, match="written by a run of 1 processes, this one has 2"):
        T.train(cfg, tmp_path / "r", resume=True)


def test_a_stage_of_zero_epochs_trains_nothing(tmp_path, monkeypatch, tiny_config):
    steps: list = []
    monkeypatch.setattr(T, "_step", _recording_step(steps))
    T.train(T.TrainConfig(**{**tiny_config, "epochs": {"backbone": 0}, "stages": ("backbone",)}), tmp_path / "r")
    history = torch.load(tmp_path / "r" / "model.pt", weights_only=True)["history"]
    assert steps == [] and [h for h in history if "steps" in h] == [] and "eval" in history[-1]


def test_init_from_another_network_is_refused(tmp_path, tiny_config):
    """--init takes a checkpoint's weights by name, leaving out what has another shape (a gate of another menu):
    a checkpoint of another depth loaded a few tensors into the wrong blocks, dropped the rest without a word and
    trained on a mostly random backbone. It is refused before anything is written."""
    from fracskip.training.checkpoint import FORMAT, atomic_save
    from fracskip.training.model import DFSNet, ModelConfig

    atomic_save({"format": FORMAT, "model_config": ModelConfig(depth=14).to_dict(), "train_config": {},
                 "state_dict": DFSNet(ModelConfig(depth=14)).state_dict()}, tmp_path / "d14.pt")
    cfg = T.TrainConfig(**{**tiny_config, "init": str(tmp_path / "d14.pt"), "stages": ("gates",),
                           "epochs": {"gates": 0.25}})
    with pytest.raises(FracskipError, match=r"--init .*d14.pt is a network of depth 14, this one has depth 8"):
        T.train(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cheapest_and_dearest_compute_bound_every_routing():
    """The floor and ceiling a --target must lie between: the least and the most compute of every routing of the
    gated blocks over the menu (243 at the shipped default's depth and menu), per input, fixed parts included."""
    import itertools

    from fracskip.training.budget import cheapest_compute, dearest_compute
    from fracskip.training.channels import build, table_for
    from fracskip.training.model import ModelConfig

    net = build(ModelConfig(depth=14, bit_menu=(0, 2, 4)))  # the shipped default's
    table = table_for(net.cfg)
    routings = torch.tensor(list(itertools.product(range(len(net.cfg.bit_menu)), repeat=net.n_gated)))
    compute = table.per_input(routings) / table.full
    assert len(routings) == 243 and 0 < cheapest_compute(net) < dearest_compute(net) < 1
    assert cheapest_compute(net) == pytest.approx(float(compute.min()))
    assert dearest_compute(net) == pytest.approx(float(compute.max()))


def test_a_target_below_the_cheapest_routing_is_refused(tmp_path, tiny_config):
    """The stem, the first block and the head always run at 8 bits: below that floor the sign-switching loss
    only pushes every gate to its cheapest entry, never reaching the target (fracskip budget refuses it too)."""
    from fracskip.training.budget import cheapest_compute
    from fracskip.training.channels import build
    from fracskip.training.model import ModelConfig

    floor = cheapest_compute(build(ModelConfig(depth=tiny_config["depth"])))
    cfg = T.TrainConfig(**{**tiny_config, "target": round(floor - 0.05, 2), "stages": ("backbone", "gates"),
                           "epochs": {"backbone": 0.25, "gates": 0.25}})
    with pytest.raises(FracskipError, match=rf"--target {cfg.target} is below this network's cheapest routing "
                                            rf"\({floor:.3f}"):
        T.train(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_static_front_takes_the_most_accurate_of_equal_compute():
    """Two static runs of one width (two seeds): the same compute, two accuracies (was a division by zero)."""
    from fracskip.training.compare import static_front

    rows = [{"model": f"static W{b}A{b}", "compute_pct": c, "accuracy": a}
            for b, c, a in ((2, 6.25, 0.70), (4, 25.0, 0.80), (4, 25.0, 0.90), (8, 100.0, 0.95))]
    assert static_front(rows, 25.0) == 0.90 and static_front(rows, 62.5) == pytest.approx(0.925)
    assert static_front(rows, 6.25) == 0.70 and static_front(rows, 3.0) is None


def test_bad_data_path_gives_a_clear_error(tmp_path, capsys):
    rc = main(["train", "-o", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "no such folder" in err and "dataset folder" in err
    assert not (tmp_path / "r").exists()


def test_truncated_idx_file_is_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") * 3 + b"\x00" * 7)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 10)
    with pytest.raises(FracskipError, match="truncated"):
        D.load("fashion-mnist", "test", tmp_path)


def _idx(dims: list[int], body: bytes) -> bytes:
    return b"\x00\x00\x08" + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


@pytest.mark.parametrize("images, labels, message", [
    (_idx([2, 28, 28], bytes(2 * 784)), _idx([2], b"\x00\xc8"), r"label 200 is not a Fashion-MNIST class"),
    (_idx([0, 28, 28], b""), _idx([0], b""), r"holds no images"),
    (b"\x00\x00\x08\x03" + bytes(4), _idx([1], b"\x00"), r"truncated or damaged IDX"),  # shorter than its header
    ("gzip", _idx([1], b"\x00"), r"cannot read .*images-idx3-ubyte\.gz"),  # a .gz damaged after its header
], ids=["label-out-of-range", "empty", "header-cut", "damaged-gzip"])
def test_damaged_fashion_mnist_files_are_refused(tmp_path, images, labels, message):
    import gzip

    name = "t10k-images-idx3-ubyte"
    if images == "gzip":
        packed = gzip.compress(_idx([1, 28, 28], bytes(784)))
        (tmp_path / f"{name}.gz").write_bytes(packed[:12] + bytes(len(packed) - 12))
    else:
        (tmp_path / name).write_bytes(images)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(FracskipError, match=message):
        D.load("fashion-mnist", "test", tmp_path)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_replicas(out, *extra) -> list[dict]:
    script = Path(__file__).with_name("ddp_replicas.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script), str(out), *extra]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert cp.returncode == 0, cp.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_torchrun_ranks_take_the_cost_sign_of_the_whole_batch(tmp_path):
    """The sign-switching loss compares the batch's compute with the target. Under DDP each rank saw only its
    shard's compute, so near the target one rank pushed the cost down while the other pushed it up and the
    averaged gradient cancelled (on the shipped default, 6 of 8 batches of 256 split that way at target 0.25).
    Every rank now compares the mean over all ranks."""
    out = tmp_path / "cost"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(Path(__file__).with_name("ddp_cost.py")), str(out)]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr[-3000:]
    c0, c1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert c0 == c1


@pytest.mark.slow
def test_torchrun_ddp_keeps_replicas_equal(tmp_path):
    """Two ranks under torchrun, each on its own shard: DDP's all-reduce leaves both ranks with the same
    parameters, bit for bit, and the saved model is rank 0's. The control run keeps each rank's gradients
    local (DDP replaced by the bare model): its replicas drift apart, so without DDP this test fails."""
    r0, r1 = _torchrun_replicas(tmp_path / "ddp")
    assert set(r0) == set(r1) and r0
    assert all(torch.equal(r0[k], r1[k]) for k in r0), [k for k in r0 if not torch.equal(r0[k], r1[k])][:5]
    ck = torch.load(tmp_path / "ddp" / "run" / "model.pt", weights_only=True)
    # (a quantizer still collecting statistics saves its statistics as .value, not the parameter: skip those)
    shared = [k for k in r0 if k in ck["state_dict"] and not k.endswith(".value")]
    assert shared and all(torch.equal(ck["state_dict"][k], r0[k]) for k in shared)
    steps = [h["steps"] for h in ck["history"] if "steps" in h]
    assert steps[0] == 4  # 256 images / 2 ranks / 32 per batch: each rank took its own shard

    l0, l1 = _torchrun_replicas(tmp_path / "local", "--local-gradients")
    drifted = [k for k in l0 if not torch.equal(l0[k], l1[k])]
    assert drifted, "without the all-reduce the replicas should differ: the test could not fail"
    assert any(not torch.equal(l0[k], r0[k]) for k in r0)


def test_budget_menu_keeps_the_gates_integers_when_the_dropped_row_held_the_largest_weight():
    """The integer gate's output layer takes its exponent from its largest weight. With that weight in a dropped
    row the exponent gets finer, and the kept rows' integers must only scale by that power of two (decisions and
    logits unchanged), not be rounded anew."""
    from fracskip.training.budget import restrict_menu

    net, raw = load_model("default")
    w, b = net.gate.proj.weight, net.gate.proj.bias
    with torch.no_grad():  # the 4-bit row: twice the largest weight, and a bias that makes it rarely win
        w[2] *= 2 * float(w.abs().max() / w[2].abs().max())
        b[2] -= 20
    raw["state_dict"] = net.state_dict()
    small, _ = restrict_menu(net, raw, (0, 2))
    before, after = net.gate.integer_params(), small.gate.integer_params()
    d = after.proj_exp - before.proj_exp
    assert d > 0  # the premise: a finer exponent after the cut
    assert (after.proj_w == before.proj_w[:2] * 2**d).all() and (after.proj_b == before.proj_b[:2] * 2**d).all()
    x = D.load("fashion-mnist", "test", None, 200).images.float()
    with torch.no_grad():
        full, cut = net(x), small(x)
    same = (full.choices != 2).all(dim=1)  # the images the dropped entry did not win anywhere
    assert int(same.sum()) > 20
    assert torch.equal(full.choices[same], cut.choices[same]) and torch.equal(full.logits[same], cut.logits[same])


def test_budget_target_prices_the_gates_to_the_budget(tmp_path, capsys):
    """`fracskip budget default --target T`: the gates' projection biases shift by lambda times each entry's relative
    cost, and nothing else changes; the priced network's compute on the same training images, measured again, is
    the reported one, at most T and below the source's."""
    from fracskip.training.budget import _compute, cheapest_compute, relative_costs

    full, _ = load_model("default")
    x = D.load("fashion-mnist", "train", None, 300).images
    before = _compute(full, x)
    target = round((cheapest_compute(full) + before) / 2, 3)
    rc = main(["budget", "default", "--target", str(target), "-o", str(tmp_path / "b.pt"), "--images", "300",
               "--json"])
    info = json.loads(capsys.readouterr().out)
    priced, _ = load_model(str(tmp_path / "b.pt"))
    assert rc == 0 and info["target"] == target and info["train_compute"] <= target < before
    assert _compute(priced, x) == pytest.approx(info["train_compute"])
    want = full.gate.proj.bias - info["lambda"] * relative_costs(full).to(full.gate.proj.bias.dtype)
    assert torch.allclose(priced.gate.proj.bias, want)
    changed = [k for k, v in full.state_dict().items() if not torch.equal(v, priced.state_dict()[k])]
    assert changed == ["gate.proj.bias"]


def test_budget_refuses_a_target_no_pricing_reaches_from_below(tmp_path, capsys):
    """The default's dearest routing (every gated block at 4 bits, its menu's widest) is 38.8 % of the all-8-bit
    network. A larger target was met only as lambda went to minus infinity: the bisection ended at lambda
    -16383, every gate priced to its dearest entry, and the checkpoint was labelled "priced to 1"."""
    rc = main(["budget", "default", "--target", "0.9", "-o", str(tmp_path / "b.pt"), "--images", "100"])
    err = capsys.readouterr().err
    assert rc == 2 and "--target 0.9 is at or above this network's dearest routing (0.388" in err
    assert not (tmp_path / "b.pt").exists()


def test_budget_and_compare_take_the_dataset_the_checkpoint_was_trained_on(tmp_path, capsys):
    """`fracskip eval RUN --data DIR` reads the test images of the dataset RUN was trained on; budget and compare
    read Fashion-MNIST unless told --dataset, and a CIFAR-10 run was told to install Fashion-MNIST."""
    import pickle

    import numpy as np

    from fracskip.training.checkpoint import FORMAT, atomic_save
    from fracskip.training.model import DFSNet, ModelConfig

    data = tmp_path / "cifar"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, 20)]}
        (data / name).write_bytes(pickle.dumps(batch, protocol=2))
    cfg = ModelConfig(depth=8, in_channels=3, image_size=32)
    atomic_save({"format": FORMAT, "model_config": cfg.to_dict(), "train_config": {"dataset": "cifar10"},
                 "state_dict": DFSNet(cfg).state_dict()}, tmp_path / "c.pt")
    ck = str(tmp_path / "c.pt")
    assert main(["compare", ck, "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 20
    assert main(["budget", ck, "--target", "0.6", "--data", str(data), "--images", "50", "-o",
                 str(tmp_path / "b.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train_images"] == 50


def test_budget_menu_drops_entries_and_keeps_their_paths(tmp_path, capsys):
    """`fracskip budget default --menu 0,2`: the gate loses its 4-bit output, so exactly the images that chose 2 bits
    in every block decide as before, with the same logits; the 4- and 8-bit paths stay for the static networks (a
    forced choice beyond the menu runs them, as on the full model); the menu must keep skip and a width, and may
    only drop entries."""
    rc = main(["budget", "default", "--menu", "0,2", "-o", str(tmp_path / "m.pt"), "--images", "300", "--json"])
    info = json.loads(capsys.readouterr().out)
    full, _ = load_model("default")
    small, raw = load_model(str(tmp_path / "m.pt"))
    assert rc == 0 and info["menu"] == [0, 2] and full.cfg.bit_menu == (0, 2, 4)
    assert small.cfg.bit_menu == (0, 2) and small.cfg.path_bits == (2, 4, 8) and small.cfg.routes == (0, 2, 4, 8)
    assert raw["state_dict"]["gate.proj.weight"].shape[0] == 2
    x = D.load("fashion-mnist", "train", None, 300).images.float()
    with torch.no_grad():
        a, b = full(x), small(x)
        two = (a.choices == 1).all(dim=1)
        assert 0 < int(two.sum()) < len(x)
        assert info["same_decisions_pct"] == pytest.approx(100 * float(two.double().mean()))
        assert torch.equal(b.choices[two], a.choices[two]) and torch.equal(b.logits[two], a.logits[two])
        for k in (2, 3):  # 4 and 8 bits: beyond the small menu, on both models' routes at the same place
            forced = torch.full((len(x), small.n_gated), k)
            assert torch.equal(full(x, choices=forced).logits, small(x, choices=forced).logits)
    from fracskip.training.compare import kind

    assert kind(raw).startswith("DFS {skip, 2}")  # a menu cut without a target (was a KeyError in compare)
    assert main(["eval", str(tmp_path / "m.pt"), "--bits", "8", "--limit", "100", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["compute_pct"] == 100.0 and ev["choices"][0] == {"0": 0, "2": 0, "8": 100}
    assert main(["eval", str(tmp_path / "m.pt"), "--bits", "3", "--limit", "10"]) != 0
    assert "paths at 0, 2, 4, 8 bits" in capsys.readouterr().err
    from fracskip.training.budget import calibrate_budget

    for menu, msg in (("2,4", "must keep 0"), ("0,3", "not on this checkpoint's menu"), ("0", "nothing to choose")):
        with pytest.raises(FracskipError, match=msg):
            calibrate_budget("default", None, tmp_path / "x.pt", images=10, menu=tuple(int(b) for b in menu.split(",")))
    assert not (tmp_path / "x.pt").exists()


def test_the_accelerator_sizes_its_fifos_on_the_images_the_build_calibrated_on(tmp_path):
    """`fracskip build --data DIR`: the calibration read DIR, and the accelerator's sizing and sequence model read
    the dataset package (CIFAR-10 builds failed there, asking for the --data they had been given)."""
    import json

    import numpy as np

    from fracskip.hls.accelerator import calibration_data, sizing_images

    data = tmp_path / "data"
    data.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    (data / "train-images-idx3-ubyte").write_bytes(_idx([3, 28, 28], pixels.tobytes()))
    (data / "train-labels-idx1-ubyte").write_bytes(_idx([3], bytes([1, 2, 3])))
    build = tmp_path / "build"
    build.mkdir()
    (build / "calibration.json").write_text(json.dumps({"dataset": "fashion-mnist", "data_dir": str(data),
                                                        "split": "train", "images": 3, "frequencies": []}))
    assert np.array_equal(sizing_images(build, 3)[:, 0], pixels)
    assert calibration_data(build, "train", 2).labels.tolist() == [1, 2]


def test_train_through_the_cli_takes_its_options(tmp_path, capsys):
    """`fracskip train` as a user runs it (every other CLI train call in the tests is a refusal): the options reach
    the run's configuration, the stages given run with the steps their epochs make, and eval.json scores the test
    images asked for."""
    out = tmp_path / "run"
    rc = main(["train", "-o", str(out), "--dataset", "synthetic", "--limit", "64", "--test-limit", "16", "--depth", "8",
               "--epochs", "backbone=0.5,gates=0.25,joint=0", "--lr", "backbone=2e-3", "--target", "0.5",
               "--alpha", "0.3", "--batch-size", "16", "--seed", "3"])
    assert rc == 0
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["epochs"] == {"backbone": 0.5, "gates": 0.25, "joint": 0.0}
    assert cfg["lr"]["backbone"] == 2e-3 and cfg["target"] == 0.5 and cfg["alpha"] == 0.3
    assert (cfg["train_limit"], cfg["test_limit"], cfg["depth"], cfg["batch_size"]) == (64, 16, 8, 16)
    steps = {r["stage"]: r["steps"] for r in map(json.loads, (out / "history.jsonl").read_text().splitlines())
             if "steps" in r}
    assert steps == {"backbone": 2, "gates": 1}  # 64 images in batches of 16: half an epoch, a quarter; joint none
    ev = json.loads((out / "eval.json").read_text())
    assert ev["n"] == 16 and sum(ev["choices"][0].values()) == 16


def test_distill_from_the_shipped_default_whose_menu_was_cut(tmp_path):
    """The shipped default's menu is {0, 2, 4} (cut by budget --menu), its 8-bit paths kept as routes: a teacher
    that the check accepted and the loss then failed on (ValueError: 8 not in the menu)."""
    rc = main(["train", "-o", str(tmp_path / "run"), "--dataset", "synthetic", "--limit", "32", "--test-limit", "8",
               "--depth", "8", "--stages", "backbone", "--epochs", "backbone=0.5", "--batch-size", "16",
               "--distill", "default"])
    assert rc == 0 and json.loads((tmp_path / "run" / "train_config.json").read_text())["distill"] == "default"


def test_compare_names_a_backbone_run_and_a_cut_menu_for_what_they_are():
    from fracskip.training.compare import kind

    def ck(menu, **extra):
        return {"model_config": {"bit_menu": list(menu)}, **extra}

    assert kind(ck((0, 2, 4, 8), train_config={"target": 0.45, "stages": ["backbone"]})) == \
        "DFS {skip, 2, 4, 8} backbone (gates untrained)"
    assert kind(ck((0, 2, 4, 8), train_config={"target": 0.3, "stages": ["backbone", "gates", "joint"]})) == \
        "DFS {skip, 2, 4, 8} target 0.3"
    assert kind(ck((0, 8), train_config={"target": 0.3}, budget={"menu": [0, 8]})).startswith("DFS {skip, 8}")
    assert kind(ck((0, 8), train_config={"target": 0.3})) == "skip-only {skip, 8}"
    assert kind(ck((4,))) == "static W4A4"

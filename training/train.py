"""DFS training, as in the paper: (1) backbone, (2) gates alone, (3) joint fine-tuning with the
sign-switching target-cost loss. Baselines (static W2A2/W4A4/W8A8, skip-only) come from the same loop.

Stage 1 trains the one set of float weights for every bit-width at once: each batch runs every gated
block through a randomly drawn entry of the bit menu (skip included), each bit-width with its own
BatchNorm, as in switchable-precision training. Stages 2 and 3 keep BatchNorm statistics frozen, so that a
batch split across paths by the gates sees the same normalisation as one input alone (and as FINN's thresholds).
After stage 1 the BatchNorm statistics are re-estimated path by path (every block at one menu entry, whole
batches): random paths leave each block with statistics mixed over every upstream configuration (measured on
Fashion-MNIST: all-4-bit accuracy 0.669 before, 0.874 after recalibration, same weights). Stages 2 and 3 then
keep them frozen, so that training and inference normalise alike.

Runs on one process, or on several under ``torchrun`` (PyTorch DDP, gloo): each rank takes a shard of every epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import FracskipError
from . import data as D
from .budget import cheapest_compute
from .checkpoint import FORMAT, atomic_save, atomic_write_text, load_raw, load_state, model_config
from .evaluate import evaluate, recalibrate_bn
from .intgate import IntGate
from . import quant as q
from .channels import MODES, LCNet, build, table_for
from .model import DFSNet, ModelConfig

log = logging.getLogger(__name__)
STAGES = ("backbone", "gates", "joint")


@dataclass
class TrainConfig:
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    train_limit: int | None = None  # use the first N training images (tests, quick runs)
    test_limit: int | None = None
    depth: int = 14
    bit_menu: tuple[int, ...] = (0, 2, 4, 8)
    stages: tuple[str, ...] = STAGES
    epochs: dict[str, float] = field(default_factory=lambda: {"backbone": 8, "gates": 0.5, "joint": 1})
    lr: dict[str, float] = field(default_factory=lambda: {"backbone": 2e-3, "gates": 5e-3, "joint": 2e-4})
    gate_lr_joint: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    target: float = 0.45  # target compute, as a fraction of the all-8-bit network
    alpha: float = 2.0  # weight of the sign-switching cost term
    init: str | None = None  # start from this checkpoint's weights (e.g. a trained backbone)
    seed: int = 0
    checkpoint_every: int = 100  # steps
    augment: bool = True
    recalibration_images: int = 2000  # BatchNorm statistics re-estimated path by path after the backbone stage
    path_probs: tuple[float, ...] | None = None  # stage 1: how often each menu entry is drawn (default uniform)
    distill: str | None = None  # teacher checkpoint: its all-8-bit logits are distilled into every stage
    distill_weight: float = 1.0  # weight of the distillation term (KL at temperature distill_temperature)
    distill_temperature: float = 4.0
    gate: str = "int"  # the integer gate of docs/integer-gate.md; "float" only to reproduce earlier runs
    # bits: DFS; channels: per-input channel groups at one precision (skip allowed), LC-Net-style; both: the two
    # axes (training/channels.py). channel_group: channels per group, one PE fold of the hardware
    mode: str = "bits"
    channel_group: int | None = None

    def __post_init__(self) -> None:
        self.bit_menu = tuple(int(b) for b in self.bit_menu)
        if self.path_probs is not None:
            self.path_probs = tuple(float(p) for p in self.path_probs)
            if len(self.path_probs) != len(self.bit_menu) or sum(self.path_probs) <= 0 or \
                    not all(math.isfinite(p) and p >= 0 for p in self.path_probs):
                raise FracskipError(f"--path-probs needs one non-negative weight per bit-menu entry {list(self.bit_menu)}, "
                                    f"got {list(self.path_probs)}")
        self.stages = tuple(self.stages)
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise FracskipError(f"unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
        if len(self.bit_menu) == 1 and any(s != "backbone" for s in self.stages) and self.mode == "bits":
            raise FracskipError("a static baseline (one-entry bit menu) has no gates: use --stages backbone")
        if not 0 < self.target <= 1:
            raise FracskipError(f"--target is a fraction of the 8-bit compute in (0, 1], got {self.target}")
        if self.dataset not in D.DATASETS:
            raise FracskipError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(D.DATASETS)}")
        for name in ("train_limit", "test_limit", "batch_size", "checkpoint_every", "recalibration_images"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise FracskipError(f"{name} (--{name.replace('_', '-').replace('train-', '')}) must be a positive "
                                    f"whole number, got {v!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise FracskipError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        for name, d, positive in (("epochs", self.epochs, False), ("lr", self.lr, True)):
            for k, v in d.items():
                if k not in STAGES or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                        or (positive and v == 0):
                    raise FracskipError(f"--{name} {k}={v}: stages are {', '.join(STAGES)}, values finite and "
                                        f"{'> 0' if positive else '>= 0'}")
        self._check_mode()
        for name in ("alpha", "weight_decay", "gate_lr_joint"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise FracskipError(f"{name} must be a finite number >= 0, got {v!r}")

    def _check_mode(self) -> None:
        if self.mode not in MODES:
            raise FracskipError(f"--mode is one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "bits":
            if self.channel_group is not None:
                raise FracskipError("--channel-group needs --mode channels or both (bits-only DFS skips no channels)")
            return
        g = self.channel_group
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise FracskipError(f"--mode {self.mode} needs --channel-group N (channels per group, a PE fold), got {g!r}")
        widths = len([b for b in self.bit_menu if b])
        if self.mode == "channels" and widths != 1:
            raise FracskipError(f"--mode channels runs one precision (skip allowed): a bit menu such as 0,8 or 4, "
                                f"got {list(self.bit_menu)}; use --mode both for several widths")
        if self.mode == "both" and widths < 2:
            raise FracskipError(f"--mode both needs at least two widths in the bit menu, got {list(self.bit_menu)}")
        if "backbone" in self.stages:
            raise FracskipError(f"--mode {self.mode} trains the gates and channel heads on a trained backbone: "
                                "use --stages gates,joint with --init BACKBONE")
        problem = ModelConfig(depth=self.depth, bit_menu=self.bit_menu, channel_group=g).too_many_groups()
        if problem:  # the export would refuse it after hours of training
            raise FracskipError(problem)

    def model_config(self, image_size: int, in_channels: int) -> ModelConfig:
        return ModelConfig(depth=self.depth, bit_menu=self.bit_menu, image_size=image_size, in_channels=in_channels,
                           gate=self.gate, channel_group=self.channel_group or 0)


def _dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(cfg: TrainConfig, out: Path, resume: bool = False) -> dict:
    """Train into folder ``out``: checkpoint.pt (resumable), model.pt (final), history.jsonl, eval.json."""
    rank, world = _dist()
    out = Path(out)
    ck_path = out / "checkpoint.pt"
    if out.exists() and any(out.iterdir()) and not resume:
        raise FracskipError(f"{out} is not empty: pass --resume to continue that run, or choose another -o folder")
    torch.manual_seed(cfg.seed)
    trainset = D.load(cfg.dataset, "train", cfg.data_dir, cfg.train_limit)
    testset = D.load(cfg.dataset, "test", cfg.data_dir, cfg.test_limit)
    mcfg = cfg.model_config(trainset.images.shape[-1], trainset.images.shape[1])
    net = build(mcfg)
    floor = cheapest_compute(net)
    if any(s != "backbone" for s in cfg.stages) and cfg.target < floor:
        least = math.ceil(floor * 1000) / 1000
        raise FracskipError(f"--target {cfg.target} is below this network's cheapest routing ({floor:.3f} of the 8-bit "
                            "compute: stem, first block and head always run at 8 bits); the gates would be pushed "
                            f"to it and never reach the target: choose --target {least} or more")
    progress = {"stage": 0, "epoch": 0, "step": 0}
    history: list[dict] = []
    opt_state = None
    if resume and ck_path.exists():
        ck = load_raw(ck_path)
        if ck["train_config"] != _jsonable(cfg):
            was, now = ck["train_config"], _jsonable(cfg)
            diff = ", ".join(f"{k} {was.get(k)!r} in the run, {now.get(k)!r} now" for k in sorted({*was, *now})
                             if was.get(k) != now.get(k))
            raise FracskipError(f"{ck_path} was written with another training config ({diff}): pass --resume without "
                                "those options, or the run's values")
        if ck.get("world", 1) != world:  # each rank's shard, and so the position in an epoch, depends on it
            raise FracskipError(f"{ck_path} was written by a run of {ck.get('world', 1)} processes, this one has "
                                f"{world}: resume with the same number (torchrun --nproc_per_node)")
        load_state(net, ck["state_dict"], strict=True)
        progress, history, opt_state = ck["progress"], ck["history"], ck.get("optimizer")
        log.info("resuming %s at stage %s epoch %d step %d", out, cfg.stages[progress["stage"]] if progress["stage"] < len(cfg.stages) else "done", progress["epoch"], progress["step"])
    elif cfg.init:
        src = load_raw(cfg.init)
        _require_same_network(model_config(src), mcfg, cfg.init)
        missing = load_state(net, src["state_dict"], strict=False)
        log.info("initialised from %s (%d tensors not in it)", cfg.init, len(missing))
    if isinstance(net.gate, IntGate) and not net.gate.calibrated:
        _calibrate_gate(net, trainset)
    table = table_for(mcfg)
    teacher = _teacher(cfg.distill) if cfg.distill else None
    if teacher is not None:
        D.require_fit(trainset.images, teacher.cfg, f"the teacher --distill {cfg.distill}")

    def save(optimizer: bool = True) -> None:
        if rank != 0:
            return
        # written with the first checkpoint: a run that fails before it leaves no files to block a new one
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "train_config.json").exists():
            atomic_write_text(out / "train_config.json", json.dumps(_jsonable(cfg), indent=1))
        atomic_save({"format": FORMAT, "model_config": mcfg.to_dict(), "train_config": _jsonable(cfg),
                     "state_dict": net.state_dict(), "progress": progress, "history": history, "world": world,
                     "optimizer": opt.state_dict() if optimizer else None}, ck_path)

    while progress["stage"] < len(cfg.stages):
        stage = cfg.stages[progress["stage"]]
        opt = _optimizer(net, stage, cfg)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
            opt_state = None
        model = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if world > 1 else net
        steps_per_epoch = math.ceil(len(trainset) / world / cfg.batch_size)
        epochs = cfg.epochs.get(stage, 0)
        total = 0 if epochs == 0 else max(1, int(epochs * steps_per_epoch))  # 0 epochs: the stage trains nothing
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1))))
        done_steps = progress["epoch"] * steps_per_epoch + progress["step"]
        for _ in range(done_steps):
            sched.step()
        bar = tqdm(total=total, initial=done_steps, desc=f"{stage}", unit="step", disable=None if rank == 0 else True)
        while done_steps < total or progress["step"]:  # an epoch interrupted after its last step: its record
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + progress["stage"] * 100 + progress["epoch"])
            it = D.batches(trainset, cfg.batch_size, shuffle=True, generator=gen, rank=rank, world=world)
            # the epoch's running figures, resumed with it: its record covers all its steps
            t0, agg = time.time(), progress.get("agg") or {"loss": 0.0, "acc": 0.0, "cost": 0.0, "n": 0}
            progress["agg"] = agg
            for i, (x, y) in enumerate(it):
                if i < progress["step"]:
                    continue  # resuming inside an epoch: the same permutation, fast-forwarded
                if done_steps >= total:
                    break
                if cfg.augment:  # seeded per step, so that a resumed run draws what the original would have
                    x = D.augment(x, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + done_steps))
                loss, acc, c = _step(model, net, stage, x.float(), y, cfg, table, done_steps, teacher)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                done_steps += 1
                progress["step"] = i + 1
                for k, v in (("loss", float(loss.detach())), ("acc", acc), ("cost", c)):
                    agg[k] += v
                agg["n"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{agg['loss'] / agg['n']:.3f}", acc=f"{agg['acc'] / agg['n']:.3f}",
                                cost=f"{agg['cost'] / agg['n']:.3f}")
                if done_steps % cfg.checkpoint_every == 0:
                    save()
            rec = {"stage": stage, "epoch": progress["epoch"], "steps": agg["n"], "seconds": round(time.time() - t0, 1)}
            rec.update({k: agg[k] / max(agg["n"], 1) for k in ("loss", "acc", "cost")})
            history.append(rec)
            progress["epoch"] += 1
            progress["step"] = 0
            progress.pop("agg")
            save()
        bar.close()
        if rank == 0:
            if stage == "backbone":  # gates and joint stages keep BatchNorm frozen: train and test see the same
                recalibrate_bn(net, trainset, cfg.recalibration_images, every_path=True)
                if isinstance(net.gate, IntGate):  # the LSTM input's exponent from the trained features, not the
                    _calibrate_gate(net, trainset)  # random ones it was first fixed on; the gates train on it
            ev = evaluate(net, testset)
            history.append({"stage": stage, "eval": ev})
            log.info("after %s: accuracy %.4f at %.1f %% compute", stage, ev["accuracy"], ev["compute_pct"])
        progress = {"stage": progress["stage"] + 1, "epoch": 0, "step": 0}
        save(optimizer=False)  # the next stage makes an optimizer of its own parameters
    result = {}
    if rank == 0:
        ev = history[-1]["eval"] if history and "eval" in history[-1] else evaluate(net, testset)
        atomic_save({"format": FORMAT, "model_config": mcfg.to_dict(), "train_config": _jsonable(cfg),
                     "state_dict": net.state_dict(), "progress": progress, "history": history, "eval": ev},
                    out / "model.pt")
        atomic_write_text(out / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        atomic_write_text(out / "eval.json", json.dumps(ev, indent=1))
        result = ev
    if world > 1:
        dist.barrier()
    return result


def _require_same_network(theirs: ModelConfig, ours: ModelConfig, ref: str) -> None:
    """--init loads weights by name and leaves out those of another shape (a gate of another menu, which trains
    anew): a checkpoint of another depth, width, input or hidden size would load a few tensors into the wrong
    blocks and leave the rest random."""
    differ = [k for k in ("depth", "widths", "in_channels", "num_classes", "gate_hidden")
              if getattr(theirs, k) != getattr(ours, k)]
    if differ:
        def said(c: ModelConfig) -> str:
            return ", ".join(f"{k.replace('_', ' ')} {getattr(c, k)}" for k in differ)

        raise FracskipError(f"--init {ref} is a network of {said(theirs)}, this one has {said(ours)}: its weights "
                            "do not fit; pass a checkpoint of this network (the same --depth and dataset)")


def _calibrate_gate(net: DFSNet, trainset: D.Split, images: int = 512) -> None:
    """Fix the integer gate's LSTM-input exponent from the float embeddings of block inputs under every path."""
    net.eval()  # running BatchNorm statistics must not move
    x = trainset.subset(images).images.float()
    feats = [torch.cat(fs) for fs in zip(*(net.gate_inputs(x, b) for b in net.cfg.path_bits))]
    log.info("integer gate: LSTM input exponent %d", net.gate.calibrate(feats))


def _optimizer(net: DFSNet, stage: str, cfg: TrainConfig) -> torch.optim.Optimizer:
    gate = net.decision_parameters() if isinstance(net, LCNet) else list(net.gate.parameters())
    gate_ids = {id(p) for p in gate}
    backbone = [p for p in net.parameters() if id(p) not in gate_ids]
    for p in backbone:
        p.requires_grad_(stage != "gates")
    for p in gate:
        p.requires_grad_(stage != "backbone")
    if stage == "backbone":
        groups = [{"params": backbone, "lr": cfg.lr["backbone"]}]
    elif stage == "gates":
        groups = [{"params": gate, "lr": cfg.lr["gates"]}]
    else:
        groups = [{"params": backbone, "lr": cfg.lr["joint"]}, {"params": gate, "lr": cfg.gate_lr_joint}]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _teacher(ref: str) -> DFSNet:
    """A frozen network that runs every gated block at its widest path: the distillation target."""
    from .checkpoint import load_model

    net, _ = load_model(ref)
    if q.FULL_BITS not in net.cfg.path_bits:
        raise FracskipError(f"--distill {ref}: the teacher has no {q.FULL_BITS}-bit paths (its menu is {list(net.cfg.bit_menu)})")
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _distill_loss(logits: torch.Tensor, x: torch.Tensor, teacher: DFSNet, T: float) -> torch.Tensor:
    with torch.no_grad():
        k = teacher.cfg.routes.index(q.FULL_BITS)  # a route: the teacher's menu may have been cut (budget --menu)
        target = teacher(x, choices=torch.full((len(x), teacher.n_gated), k)).logits
    return F.kl_div(F.log_softmax(logits / T, 1), F.log_softmax(target / T, 1), log_target=True,
                    reduction="batchmean") * T * T


def _step(model, net: DFSNet, stage: str, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, table, step: int,
          teacher: DFSNet | None = None):
    if stage == "backbone":
        net.train()
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)  # same draw on every DDP rank
        if cfg.path_probs is None:
            pick = torch.randint(0, len(cfg.bit_menu), (1, net.n_gated), generator=g)
        else:
            pick = torch.multinomial(torch.tensor(cfg.path_probs), net.n_gated, replacement=True, generator=g)[None]
        pick = pick.expand(len(y), -1)
        out = model(x, choices=pick)
        loss = F.cross_entropy(out.logits, y)
        c = float(table.per_input(pick[:1])[0] / table.full)
    else:
        net.eval()  # frozen BatchNorm statistics (see module docstring); gradients still flow
        out = model(x, straight_through=True)
        frac = table.expected_fraction(out.masks, out.kept) if isinstance(net, LCNet) else \
            table.expected_fraction(out.masks)
        cost = frac.mean()
        c = float(cost.detach())
        if dist.is_initialized():  # the whole batch's compute decides the sign, as in one process: not each shard's
            whole = torch.tensor([c], dtype=torch.float64)
            dist.all_reduce(whole)
            c = float(whole) / dist.get_world_size()
        sign = 1.0 if c > cfg.target else -1.0  # the DFS sign-switching target-cost loss
        loss = F.cross_entropy(out.logits, y) + cfg.alpha * sign * cost
    if teacher is not None:
        loss = loss + cfg.distill_weight * _distill_loss(out.logits, x, teacher, cfg.distill_temperature)
    acc = float((out.logits.argmax(1) == y).float().mean())
    return loss, acc, c


def _jsonable(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["bit_menu"] = list(d["bit_menu"])
    d["stages"] = list(d["stages"])
    if d["path_probs"] is not None:
        d["path_probs"] = list(d["path_probs"])
    else:
        del d["path_probs"]  # keeps the configs of earlier runs resumable
    if d["mode"] == "bits":
        del d["mode"], d["channel_group"]  # likewise
    return d

"""Per-input channel skipping (training/channels.py): masks, cost, the unchanged bits-only mode, resume, loading."""

import json

import pytest
import torch

from fracskip.cli import main
from fracskip.errors import FracskipError
from fracskip.training import channels as C
from fracskip.training import data as D
from fracskip.training import train as T
from fracskip.training.checkpoint import atomic_save, load_model, load_raw
from fracskip.training.model import DFSNet, ModelConfig

LC = dict(stages=("gates", "joint"), epochs={"gates": 1, "joint": 1}, mode="both", channel_group=4)


def _calibrated(cfg: ModelConfig) -> DFSNet:
    torch.manual_seed(0)
    net = C.build(cfg)
    net.train()
    x = torch.randint(0, 256, (16, cfg.in_channels, cfg.image_size, cfg.image_size)).float()
    with torch.no_grad():
        for k in range(len(cfg.bit_menu)):
            net(x, choices=torch.full((16, net.n_gated), k))
    return net.eval()


def _keep(net, rows: int, pattern) -> list[torch.Tensor]:
    """Per gated block a (rows, groups) keep mask drawn by ``pattern(g, groups)``."""
    return [pattern(g, n).expand(rows, n).clone() for g, n in enumerate(net.groups)]


def test_masks_zero_exactly_the_dropped_groups():
    """conv2 reads zeros in exactly the dropped groups' channels and, in the kept ones, relu1's codes of
    bn1(conv1) times the mode's scale (number of groups kept, path bits); every group kept at scale 1 is DFS."""
    cfg = ModelConfig(depth=8, channel_group=4)
    net = _calibrated(cfg)
    x = torch.randint(0, 256, (4, 1, 28, 28)).float()
    k4 = cfg.bit_menu.index(4)
    forced = torch.full((4, net.n_gated), k4)
    with torch.no_grad():
        net.channel_scale[0][cfg.path_bits.index(4)].uniform_(-0.3, 0.3)
    pattern = lambda g, n: (torch.arange(n) % 3 == 1)[None]  # noqa: E731 - groups 1, 4, 7, ... kept
    seen = {}
    p = net.blocks[1].paths["b4"]
    hooks = [p.conv2.register_forward_pre_hook(lambda m, a: seen.__setitem__("conv2_in", a[0].value.clone())),
             p.conv1.register_forward_hook(lambda m, a, o: seen.__setitem__("conv1_in", a[0]))]
    with torch.no_grad():
        out = net(x, choices=forced, keep=_keep(net, 4, pattern))
    for h in hooks:
        h.remove()
    grp = torch.arange(p.conv1.out_channels) // cfg.channel_group
    kept_ch = grp % 3 == 1
    got = seen["conv2_in"]
    assert got.shape[1] == p.conv1.out_channels
    assert torch.all(got[:, ~kept_ch] == 0), "a dropped group's channel is not zero"
    with torch.no_grad():
        nk = int(kept_ch.view(-1, cfg.channel_group)[:, 0].sum())
        s = net.mode_scales(0)[cfg.path_bits.index(4), nk]
        want = p.relu1(p.bn1(p.conv1(seen["conv1_in"])) * s[None, :, None, None]).value
    assert torch.equal(got[:, kept_ch], want[:, kept_ch])
    assert float(want[:, kept_ch].abs().sum()) > 0  # the kept channels carry data
    assert out.kept[0, 0] == kept_ch.float().mean()
    # every group kept, every scale 1: the channel machinery computes exactly the DFS network
    with torch.no_grad():
        for s in net.channel_scale:
            s.zero_()
        full = net(x, choices=forced, keep=_keep(net, 4, lambda g, n: torch.ones(1, n, dtype=torch.bool)))
        dfs = DFSNet.forward(net, x, choices=forced)
    assert torch.equal(full.logits, dfs.logits)


def test_forced_choices_keep_every_group():
    """A forced run (`eval --bits`, the distillation teacher, the oracles, the backbone stage) is the static network
    of the controller's ``run(bits=)`` and the hardware's baselines: every channel group kept, the gate not run,
    whatever the channel heads would keep."""
    cfg = ModelConfig(depth=8, channel_group=4)
    net = _calibrated(cfg)
    with torch.no_grad():
        for p in net.channel_head.proj:
            p.bias.fill_(-100.0)  # every logit negative: the heads keep one group
    x = torch.randint(0, 256, (4, 1, 28, 28)).float()
    forced = torch.full((4, net.n_gated), cfg.bit_menu.index(4))
    with torch.no_grad():
        assert not any(bool(k.all()) for k in net(x).keep)  # the heads drop groups when they decide
        calls = []
        hook = net.gate.register_forward_hook(lambda *a: calls.append(1))
        out = net(x, choices=forced)
        hook.remove()
        every = net(x, choices=forced, keep=_keep(net, 4, lambda g, n: torch.ones(1, n, dtype=torch.bool)))
    assert not calls and all(bool(k.all()) for k in out.keep) and bool((out.kept == 1).all())
    assert torch.equal(out.logits, every.logits)


def test_more_groups_than_a_keep_word_holds_are_refused():
    """A block's keep bits are one 16-bit word: 32 groups of 2 channels are refused before training starts, not by
    the export after it has written every core; a network that has them still loads."""
    from fracskip.training.train import TrainConfig

    with pytest.raises(FracskipError, match=r"32 channel groups.*at most 16.*--channel-group 4"):
        TrainConfig(depth=8, mode="channels", bit_menu=(4,), channel_group=2, stages=("gates", "joint"))
    assert ModelConfig(depth=8, channel_group=2).too_many_groups()
    assert ModelConfig(depth=8, channel_group=4).too_many_groups() is None
    assert C.group_counts(ModelConfig(depth=8, channel_group=4)) == [8, 16]


def test_decide_keeps_at_least_one_group():
    keep = C.decide(torch.tensor([[-1.0, 2.0, 0.0], [-3.0, -1.0, -1.0], [0.0, 0.0, 0.0]]))
    assert keep.tolist() == [[False, True, False], [False, True, False], [True, False, False]]


def test_cost_counts_the_kept_channels():
    """BitOPs against a count of each conv's MACs with its input and output channels as kept."""
    cfg = ModelConfig(depth=8, channel_group=4)  # gated: 16->32 /2 @14, 32->64 /2 @7
    table = C.table_for(cfg)
    kept_groups = [[3, 8], [1, 16], [8, 5]]  # per input: groups kept in each gated block (of 8 and 16)
    choices = torch.tensor([[1, 3], [2, 0], [0, 2]])  # menu (0, 2, 4, 8): 2-bit/8-bit, 4-bit/skip, skip/4-bit
    kept = torch.tensor([[k / n for k, n in zip(row, (8, 16))] for row in kept_groups], dtype=torch.float64)
    fixed = (1 * 16 * 9 * 28 * 28 + 2 * 16 * 16 * 9 * 28 * 28) * 64 + 64 * 10 * 64

    def block(cin, cout, hw, bits, groups_kept):
        if bits == 0:
            return cin * cout * hw * 8 * 8  # a downsampling block's skip runs its 1x1 shortcut at 8 bits
        inner = 4 * groups_kept
        return (cin * inner * 9 * hw + inner * cout * 9 * hw + cin * cout * hw) * bits * bits

    menu = cfg.bit_menu
    want = [fixed + block(16, 32, 196, menu[c[0]], k[0]) + block(32, 64, 49, menu[c[1]], k[1])
            for c, k in zip(choices.tolist(), kept_groups)]
    assert table.per_input(choices, kept).tolist() == want
    masks = torch.nn.functional.one_hot(choices, 4).double()
    assert torch.allclose(table.expected_fraction(masks, kept), torch.tensor(want, dtype=torch.float64) / table.full)
    assert table.full == C.cost_table(ModelConfig(depth=8)).full  # 100 % is the same all-8-bit network


def test_cost_of_groups_kept_is_the_exports_integer_count():
    """k of G groups kept saves chan * (G - k) // G MACs per bits**2, the count of the export's cores and the
    controller's, also when G is not a power of two (6 and 12 groups: (1 - k/G) * chan rounds differently)."""
    cfg = ModelConfig(depth=8, widths=(12, 24, 48), channel_group=4)
    table, groups = C.table_for(cfg), C.group_counts(cfg)
    assert groups == [6, 12]
    full = table.route_bitops()
    for k in range(1, 13):
        kept = torch.tensor([[min(k, groups[0]) / groups[0], k / groups[1]]], dtype=torch.float64)
        got = table.per_block(kept)[0]
        for g, (n, m) in enumerate(zip(groups, table.block_macs[1:])):
            chan, kk = m["conv1"] + m["conv2"], min(k, n) if g == 0 else k
            want = [full[g][r] - (chan * (n - kk) // n * b * b if b else 0) for r, b in enumerate(table.routes)]
            assert got[g].tolist() == want, (g, kk)


def test_bits_only_mode_is_unchanged(tiny_config):
    """DFS builds the DFS network, evaluates with the DFS cost and writes no new config keys (old runs resume)."""
    cfg = ModelConfig(depth=8)
    assert type(C.build(cfg)) is DFSNet and "channel_group" not in cfg.to_dict()
    assert C.mode_of(cfg) == "bits" and type(C.table_for(cfg)) is C.CostTable
    j = T._jsonable(T.TrainConfig(**tiny_config))
    assert "mode" not in j and "channel_group" not in j
    with pytest.raises(FracskipError, match="--channel-group needs --mode"):
        T.TrainConfig(**tiny_config, channel_group=4)
    with pytest.raises(FracskipError, match="one precision"):
        T.TrainConfig(**{**tiny_config, **LC, "mode": "channels"})
    with pytest.raises(FracskipError, match="divide"):
        ModelConfig(depth=8, channel_group=5)
    # channels at one fixed precision without skip: the gate only decides channel groups
    assert T.TrainConfig(**{**tiny_config, **LC, "mode": "channels", "bit_menu": (4,)}).mode == "channels"


def _lc_config(tiny_config, init) -> T.TrainConfig:
    return T.TrainConfig(**{**tiny_config, **LC, "init": str(init), "target": 0.5, "train_limit": 128,
                            "test_limit": 32, "checkpoint_every": 1})


def test_resume_equals_uninterrupted(tmp_path, monkeypatch, tiny_config, tiny_run):
    """An LC run killed inside its stage and resumed ends with the weights of the uninterrupted run."""
    cfg = T.TrainConfig(**{**_lc_config(tiny_config, tiny_run / "model.pt").__dict__, "stages": ("joint",)})
    T.train(cfg, tmp_path / "straight")
    real, calls = T._step, []

    def dying(*a, **kw):
        calls.append(a[2])
        if len(calls) == 2:  # the second step (2 steps per stage, a checkpoint after each)
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(T, "_step", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "broken")
    assert calls[-1] == "joint"
    monkeypatch.setattr(T, "_step", real)
    T.train(cfg, tmp_path / "broken", resume=True)
    got = torch.load(tmp_path / "broken" / "model.pt", weights_only=True)
    ref = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    assert set(got["state_dict"]) == set(ref["state_dict"])
    assert all(torch.equal(got["state_dict"][k], ref["state_dict"][k]) for k in ref["state_dict"])
    assert got["eval"] == ref["eval"] and got["model_config"]["channel_group"] == 4
    assert any(k.startswith("channel_head.") for k in got["state_dict"])


def test_checkpoint_loads_safely_and_eval_reports_channels(tmp_path, tiny_config, tiny_run, capsys):
    cfg = T.TrainConfig(**{**_lc_config(tiny_config, tiny_run / "model.pt").__dict__, "epochs": {"gates": 0.5,
                                                                                                   "joint": 0.5},
                           "test_limit": 64})
    T.train(cfg, tmp_path / "lc")
    net, ck = load_model(tmp_path / "lc")  # torch.load(weights_only=True) and the checked config
    assert isinstance(net, C.LCNet) and net.cfg.channel_group == 4
    assert main(["eval", str(tmp_path / "lc"), "--dataset", "synthetic", "--limit", "64", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev == {**ck["eval"], "checkpoint": str(tmp_path / "lc" / "model.pt"), "dataset": "synthetic"}
    assert ev["mode"] == "both" and ev["channel_groups"] == [8, 16]
    assert len(ev["kept_channel_fraction"]) == net.n_gated
    assert all(f is None or 0 < f <= 1 for f in ev["kept_channel_fraction"])
    # a damaged group size is refused with a message, not a traceback or a wrong network
    raw = load_raw(tmp_path / "lc")
    raw.pop("path")
    raw["model_config"]["channel_group"] = 5
    atomic_save(raw, tmp_path / "bad.pt")
    with pytest.raises(FracskipError, match="group size 5 must divide"):
        load_model(tmp_path / "bad.pt")
    assert main(["train", "-o", str(tmp_path / "x"), "--channel-group", "4"]) == 2
    assert "--mode" in capsys.readouterr().err


def test_shipped_lcnet_loads_as_channel_skipping():
    """The alias `lcnet` is a plain-data checkpoint (weights_only) of a channel-skipping network, its group size
    recorded, and its eval.json is what `fracskip eval lcnet --json` printed for it."""
    from fracskip.training.checkpoint import SHIPPED

    net, ck = load_model("lcnet")
    assert isinstance(net, C.LCNet) and ck["model_config"]["channel_group"] == net.cfg.channel_group >= 1
    ev = json.loads((SHIPPED["lcnet"].parent / "eval.json").read_text())
    assert ev["checkpoint"] == "lcnet" and ev["channel_group"] == net.cfg.channel_group
    assert len(ev["kept_channel_fraction"]) == net.n_gated and ev["accuracy"] == ck["eval"]["accuracy"]


def test_shipped_lcnet_channel_head_is_the_integer_specification():
    """The shipped lcnet checkpoint's channel heads, as trained (floats at power-of-two scales), keep exactly the
    groups the integer specification keeps (``runtime.intgate.keep_groups`` of ``integer_params()``: what the RTL
    gate computes), for random hidden states, ties at zero and all-dropped rows included."""
    import numpy as np

    from fracskip.runtime import intgate as spec

    net, _ = load_model("lcnet")
    head = net.channel_head
    ints = head.integer_params()
    gen = torch.Generator().manual_seed(5)
    dropped = 0
    for g, p in enumerate(ints):
        h = torch.randint(-128, 128, (2000, p["w"].shape[1]), generator=gen)
        h[:20] = 0  # logits = biases alone
        torch_keep = C.decide(head(g, h.double() / 2 ** spec.H_EXP)).numpy()
        bits = spec.keep_groups(p["w"], p["b"], h.numpy())
        want = (torch_keep * (1 << np.arange(torch_keep.shape[1]))).sum(axis=1)
        assert np.array_equal(bits, want), g
        dropped += int((bits != (1 << torch_keep.shape[1]) - 1).sum())
    assert dropped > 0  # some rows drop groups: the comparison is not between two all-ones


def test_compare_includes_earlier_rows(tmp_path, tiny_run, capsys):
    """`fracskip compare --include` adds the rows of an earlier comparison on the same images (the static rows of
    the default's table beside new channel-skipping rows) and refuses rows measured on other images."""
    args = ["compare", str(tiny_run), "--dataset", "synthetic", "--json"]
    assert main(args + ["--limit", "32"]) == 0
    first = capsys.readouterr().out
    (tmp_path / "a.json").write_text(first)
    static = {**json.loads(first)[0], "model": "static W2A2", "checkpoint": "w2a2", "compute_pct": 1.0}
    (tmp_path / "b.json").write_text(json.dumps([static]))
    assert main(args + ["--limit", "32", "--include", str(tmp_path / "b.json")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows][0] == "static W2A2" and len(rows) == 2
    assert rows[1]["gain_over_static_front"] == rows[1]["accuracy"] - static["accuracy"]
    assert main(args + ["--limit", "16", "--include", str(tmp_path / "a.json")]) == 2
    assert "32 test images" in capsys.readouterr().err


@pytest.mark.xdist_group("tiny_lc")  # with tests/hls/test_channel_datapath.py, which shares the export
def test_channel_export_golden_controller_matches_torch(tiny_lc_export):
    """A channel-skipping network exported (one core per (block, bits, groups kept), the keep mask a second graph
    input) and run by the numpy controller on FINN's streamlined graphs: the keep bits, the choices and the
    logits are the torch model's (float64), with groups dropped and not."""
    import numpy as np

    from fracskip.runtime.controller import Controller, popcount
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend
    from fracskip.backends.torch_backend import TorchBackend

    m = Manifest.load(tiny_lc_export)
    assert m.channel_group == 16
    blk = m.gated_blocks[0]
    paths = [p for p in blk["paths"].values() if "channels" in p]
    groups = paths[0]["channels"]["groups"]
    costs = [paths[0]["channels"]["kept"][str(k)]["bitops"] for k in range(1, groups + 1)]
    assert costs == sorted(costs) and costs[-1] == paths[0]["bitops"] and len(set(costs)) == groups

    images = D.load("synthetic", "test", limit=12).images.numpy()
    ref = TorchBackend(str(m.file("source_checkpoint.pt")), exact=True)
    ref_logits, ref_choices, ref_keep = ref.reference_trace(images)
    full = np.array([(1 << len(b)) - 1 for b in Controller(m, ref).gates.p.chan_b])
    assert (ref_keep != full).any() and len(np.unique(popcount(ref_keep[:, 0]))) > 1  # several cores of a path
    for backend in (ref, QONNXBackend(m, progress=False)):
        logits, trace = Controller(m, backend).run(images)
        assert np.array_equal(trace.keep, ref_keep) and np.array_equal(trace.choices, ref_choices), backend.name
        assert np.abs(logits - ref_logits).max() <= 1e-4, backend.name
    # BitOPs: the manifest's per-core costs give the training's cost model of the kept channels
    frac = popcount(trace.keep) / np.array([len(b) for b in Controller(m, ref).gates.p.chan_b])
    want = C.table_for(ref.net.cfg).per_input(torch.from_numpy(trace.choices), torch.from_numpy(frac)).numpy()
    assert np.array_equal(trace.bitops, want) and (trace.bitops < Controller(m, ref).bitops(trace.choices)).any()
    # every core on its own, each channel core with random masks of its count: FINN's integers are Brevitas'
    from fracskip.export.verify import verify_streamlined

    res = verify_streamlined(m, images[:2], progress=False)
    assert all(r["equal"] for r in res.values()) and len(res) == len(m.cores()), res
    # forcing every input to the keep bits of another changes the logits: the mask is not a no-op
    other = Controller(m, QONNXBackend(m, progress=False))
    other.gates.keep = lambda g, h: np.full(len(h), 1)
    assert not np.allclose(other.run(images)[0], logits)


def test_budget_prices_channel_groups(tmp_path):
    """`fracskip budget` on the shipped lcnet (channels at one width): one price moves every channel head's bias
    by its group's share of the block, so fewer groups are kept, and the compute on the training images lands at
    or below the target; the priced checkpoint evaluates at that compute (the same count as the trainer's)."""
    from fracskip.training.budget import _compute, calibrate_budget, group_costs

    net, _ = load_model("lcnet")
    x = D.load("fashion-mnist", "train", None, 120).images
    before = _compute(net, x)
    info = calibrate_budget("lcnet", 0.28, tmp_path / "p.pt", images=len(x))
    assert info["train_compute"] <= 0.28 < before and info["lambda"] > 0
    priced, _ = load_model(str(tmp_path / "p.pt"))
    assert _compute(priced, x) == pytest.approx(info["train_compute"])
    shares = group_costs(net)
    for g, (a, b) in enumerate(zip(net.channel_head.proj, priced.channel_head.proj)):
        assert torch.equal(a.weight, b.weight)
        assert torch.allclose(a.bias - b.bias, torch.full_like(a.bias, info["lambda"] * shares[g]))
    with torch.no_grad():
        kept = [float(m(x.float()).kept.mean()) for m in (net, priced)]
    assert kept[1] < kept[0]
    with pytest.raises(FracskipError, match="cheapest routing"):
        calibrate_budget("lcnet", 0.15, tmp_path / "q.pt", images=50)


@pytest.mark.xdist_group("tiny_lc")
def test_a_channel_head_that_does_not_fit_its_block_is_refused(tiny_lc_export, tmp_path):
    """A channel head keeping more groups than its block's channel paths have would route to cores that do not
    exist: the manifest is refused when it is loaded."""
    import shutil

    from fracskip.runtime.manifest import Manifest

    bad = tmp_path / "exp"
    shutil.copytree(tiny_lc_export, bad)
    m = json.loads((bad / "manifest.json").read_text())
    head = m["gates"]["channel_head"][0]
    head["weight"].append(head["weight"][0])
    head["bias"].append(0)
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FracskipError, match="channel head 0 keeps 3 groups, block 1's channel paths have \\[2\\]"):
        Manifest.load(bad)


@pytest.mark.xdist_group("tiny_lc")
@pytest.mark.parametrize("where, group", [("path", 8), ("top", 8), ("both", 8), ("top", "16")])
def test_a_channel_group_size_that_does_not_fit_its_block_is_refused(tiny_lc_export, tmp_path, where, group):
    """The controller masks a channel path's groups by its own group size, the accelerator by the top-level one:
    sizes that differ, or groups that do not cover the block's channels, are refused when the manifest is loaded
    (they ran with a mask of the wrong width, or built hardware that skips other channels than the golden)."""
    import shutil

    from fracskip.runtime.manifest import Manifest

    bad = tmp_path / "exp"
    shutil.copytree(tiny_lc_export, bad)
    m = json.loads((bad / "manifest.json").read_text())
    if where in ("top", "both"):
        m["channels"]["group"] = group
    if where in ("path", "both"):
        m["blocks"][1]["paths"]["2"]["channels"]["group"] = group
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FracskipError, match=r"blocks\[1\]\.paths\[2\]\.channels: 2 groups of .* do not cover the "
                                            r"block's 32 channels"):
        Manifest.load(bad)


@pytest.mark.xdist_group("tiny_lc")
def test_simulate_counts_the_keep_bits_as_decisions(tiny_lc_export, monkeypatch):
    """`fracskip simulate`'s decisions_match_pct holds the keep bits as decisions, as rtlsim's and deploy's do: an
    image whose keep bits differ from the reference's is no match."""
    from fracskip.simulate import simulate
    from fracskip.backends.torch_backend import TorchBackend

    split = D.load("synthetic", "test", limit=8)
    real = TorchBackend.reference_trace

    def one_off(self, images):
        logits, choices, keep = real(self, images)
        keep = keep.copy()
        keep[0, 0] ^= 1
        return logits, choices, keep

    monkeypatch.setattr(TorchBackend, "reference_trace", one_off)
    res, _ = simulate(tiny_lc_export, "torch", split.images.numpy(), split.labels.numpy(), progress=False)
    assert res["keep_decisions_match_pct"] == res["decisions_match_pct"] == 87.5, res

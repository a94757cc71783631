import pytest
import torch

from fracskip.errors import FracskipError
from fracskip.training import data as D
from fracskip.training.cost import cost_table
from fracskip.training.evaluate import evaluate
from fracskip.training.model import DFSNet, ModelConfig


def _calibrated(cfg: ModelConfig) -> DFSNet:
    """A fresh network whose activation quantizers have seen data (Brevitas collects scale statistics first)."""
    net = DFSNet(cfg)
    net.train()
    x = torch.randint(0, 256, (16, cfg.in_channels, cfg.image_size, cfg.image_size)).float()
    with torch.no_grad():
        for k in range(len(cfg.bit_menu)):
            net(x, choices=torch.full((16, net.n_gated), k))
    return net


def test_gate_at_batch_size_1():
    net = _calibrated(ModelConfig(depth=8))
    x = torch.randint(0, 256, (1, 1, 28, 28)).float()
    net.eval()
    with torch.no_grad():
        out = net(x)
    assert out.logits.shape == (1, 10) and out.choices.shape == (1, 2)
    net.train()
    out = net(x, straight_through=True)  # the reference DFS code breaks here (squeeze of the batch dim)
    assert out.masks.shape == (1, 2, 4)


def test_straight_through_gradient_reaches_the_gate():
    net = _calibrated(ModelConfig(depth=8))
    net.eval()
    out = net(torch.randint(0, 256, (8, 1, 28, 28)).float(), straight_through=True)
    table = cost_table(net.cfg)
    (out.logits.sum() + table.expected_fraction(out.masks).sum()).backward()
    grads = [p.grad for p in net.gate.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # forward values are the hard choices: masks are exactly one-hot
    assert torch.equal(out.masks.detach().sum(-1), torch.ones(8, 2))


def test_cost_table_against_hand_count():
    cfg = ModelConfig(depth=8)  # blocks: 16->16 @28, 16->32 /2 @14, 32->64 /2 @7
    t = cost_table(cfg)
    assert t.stem == 1 * 16 * 9 * 28 * 28 * 64
    assert t.first_block == 2 * (16 * 16 * 9 * 28 * 28) * 64
    macs1 = 16 * 32 * 9 * 14 * 14 + 32 * 32 * 9 * 14 * 14 + 16 * 32 * 14 * 14
    macs2 = 32 * 64 * 9 * 7 * 7 + 64 * 64 * 9 * 7 * 7 + 32 * 64 * 7 * 7
    assert t.gated == [[16 * 32 * 14 * 14 * 64, macs1 * 4, macs1 * 16, macs1 * 64],
                       [32 * 64 * 7 * 7 * 64, macs2 * 4, macs2 * 16, macs2 * 64]]
    assert t.head == 64 * 10 * 64
    assert t.full == t.stem + t.first_block + macs1 * 64 + macs2 * 64 + t.head
    assert float(t.per_input(torch.tensor([[3, 3]]))[0]) == t.full


@pytest.mark.parametrize("k", range(4))
def test_every_bit_width_path_gives_finite_outputs(k):
    net = _calibrated(ModelConfig(depth=14))
    net.eval()
    x = torch.randint(0, 256, (4, 1, 28, 28)).float()
    with torch.no_grad():
        out = net(x, choices=torch.full((4, 5), k))
        others = [net(x, choices=torch.full((4, 5), j)).logits for j in range(4) if j != k]
    assert torch.isfinite(out.logits).all()
    assert (out.choices == k).all()
    assert all(not torch.allclose(out.logits, o) for o in others)  # each forced path runs at its own width


def test_paper_resnet38_on_cifar_shaped_data():
    cfg = ModelConfig(depth=38, in_channels=3, image_size=32)
    net = DFSNet(cfg)
    ev = evaluate(net, D.synthetic(8, channels=3, size=32), batch_size=4, progress=False)
    assert ev["n"] == 8 and len(ev["choices"]) == 17
    assert 0 < ev["compute_pct"] <= 100


def test_bad_depth_and_menu_are_refused():
    with pytest.raises(FracskipError, match="6n\\+2"):
        ModelConfig(depth=15)
    with pytest.raises(FracskipError, match="bit menu"):
        ModelConfig(bit_menu=(0, 16))

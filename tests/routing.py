"""A test network whose gates use every menu entry, skip included, within one batch.

A few training steps on synthetic data leave a tiny network's gates constant (every input takes the same path),
so nothing downstream would see a batch split across paths. This rewrites the gates' shared output layer as a
binning of one direction of the LSTM state: logit_k = k*u - (t_1 + ... + t_k) with u = v . h, whose argmax is the
number of thresholds t_j below u. Thresholds at quantiles of u spread a batch over all K entries; the direction v
is searched until every gate uses every entry. The integer gate then quantizes these weights as it would any.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fracskip.training.checkpoint import atomic_save, load_model, load_raw

ROUTED_IMAGES = 64  # the tiny test network's first 64 synthetic test images use every menu entry at every gate


@torch.no_grad()
def _gate_trace(net, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Run the network; per gate, the pooled block input it saw and the hidden state it produced; the choices."""
    pooled: list[torch.Tensor] = []
    hidden: list[torch.Tensor] = []
    gate_forward = net.gate.forward

    def record(i, x, state):
        pooled.append(x.mean(dim=(2, 3), keepdim=True))
        logits, (h, c) = gate_forward(i, x, state)
        hidden.append(h.clone())
        return logits, (h, c)

    net.gate.forward = record
    try:
        out = net(images)
    finally:
        del net.gate.forward
    return pooled, hidden, out.choices


@torch.no_grad()
def _spread_embeddings(net, images: torch.Tensor, std: float = 0.4) -> None:
    """Scale each gate's embedding to a spread of ``std`` over the batch (on its int8 grid's +-1 range), so that
    the LSTM state depends visibly on the input."""
    feats, _, _ = _gate_trace(net, images)
    for emb, f in zip(net.gate.embed, feats):
        e = emb(f.float()).flatten(1)
        scale = std / e.std(0).clamp_min(1e-6)
        emb.weight.mul_(scale[:, None, None, None])
        emb.bias.copy_((emb.bias - e.mean(0)) * scale)


@torch.no_grad()
def diversify_gates(checkpoint: Path, images: torch.Tensor, seed: int = 0, min_share: float = 1 / 16) -> torch.Tensor:
    """Rewrite ``checkpoint`` in place; returns the (N, gates) choices on ``images``, every entry used by every gate."""
    net, _ = load_model(checkpoint)
    K, H = len(net.cfg.bit_menu), net.gate.hidden
    k = torch.arange(K, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    need = max(1, int(min_share * len(images)))
    for _ in range(200):
        v = torch.randn(H, generator=gen)
        for _ in range(3):
            _spread_embeddings(net, images.float())  # the later gates' states depend on the earlier gates' routing: iterate
            _, hs, _ = _gate_trace(net, images.float())
            u = torch.cat([h.float() @ v for h in hs])
            t = torch.quantile(u, torch.linspace(0, 1, K + 1)[1:-1])
            net.gate.proj.weight.copy_(k[:, None] * v[None, :])
            net.gate.proj.bias.copy_(-torch.cat([torch.zeros(1), torch.cumsum(t, 0)]))
        _, _, choices = _gate_trace(net, images.float())
        counts = [torch.bincount(choices[:, g], minlength=K) for g in range(choices.shape[1])]
        if all(int(c.min()) >= need for c in counts):
            ck = load_raw(checkpoint)
            ck["state_dict"] = net.state_dict()
            ck.pop("path", None)
            if "eval" in ck:  # the figures of the network as it now is, on the run's own test images
                from fracskip.training import data as D
                from fracskip.training.evaluate import evaluate

                cfg = ck["train_config"]
                ck["eval"] = evaluate(net, D.load(cfg["dataset"], "test", cfg.get("data_dir"), cfg.get("test_limit")),
                                      progress=False)
            atomic_save(ck, Path(checkpoint))
            return choices
    raise RuntimeError("no gate direction found that routes the batch down every path")

"""Run under ``torch.distributed.run --nproc_per_node 2``: train the tiny network with DDP and save each rank's
parameters as ``OUT/rank<r>.pt``. With ``--local-gradients`` DDP is replaced by the bare model, so that each
rank keeps the gradients of its own shard: the control that shows the replica test can fail.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/training/ddp_replicas.py OUT [--local-gradients]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from fracskip.training import train as T

nets: list = []
_build = T.build


def recorded(cfg):
    """train()'s model factory, keeping the network it trains (the replica whose parameters are saved)."""
    nets.append(_build(cfg))
    return nets[-1]


def main() -> None:
    out = Path(sys.argv[1])
    T.build = recorded
    if "--local-gradients" in sys.argv:
        torch.nn.parallel.DistributedDataParallel = lambda module, **kw: module  # no all-reduce
    cfg = T.TrainConfig(dataset="synthetic", train_limit=256, test_limit=32, depth=8, batch_size=32,
                        epochs={"backbone": 1, "gates": 1, "joint": 1}, recalibration_images=64)
    T.train(cfg, out / "run")
    rank = dist.get_rank()
    torch.save({k: v.detach().clone() for k, v in nets[-1].named_parameters()}, out / f"rank{rank}.pt")
    dist.barrier()


if __name__ == "__main__":
    main()

"""Run under ``torch.distributed.run --nproc_per_node 2``: the cost term of one gates-stage step of the shipped default
on each rank's half of one batch of 256 training images; each rank writes the cost ``_step`` compared with the
target as ``OUT/rank<r>.json``.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/training/ddp_cost.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from fracskip.training import data as D
from fracskip.training import train as T
from fracskip.training.channels import table_for
from fracskip.training.checkpoint import load_model


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    net, _ = load_model("default")
    cfg = T.TrainConfig(target=0.25)
    train = D.load("fashion-mnist", "train", limit=512)  # images 256..511: the halves fall either side of 0.25
    half = slice(256, 384) if rank == 0 else slice(384, 512)
    x, y = train.images[half].float(), train.labels[half]
    with torch.no_grad():
        _, _, c = T._step(net, net, "gates", x, y, cfg, table_for(net.cfg), 0)
    (Path(sys.argv[1]) / f"rank{rank}.json").write_text(json.dumps(c))
    dist.barrier()


if __name__ == "__main__":
    main()

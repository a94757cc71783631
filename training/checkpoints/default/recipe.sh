#!/bin/bash
# The training recipe of the shipped default (run from the repo root).
# Stage 1 (backbone): fracskip train -o runs/backbone --stages backbone --epochs backbone=8, stopped after 2.8
# epochs; runs/backbone2: 1.5 annealing epochs from it (--init runs/backbone/checkpoint.pt --stages backbone
# --epochs backbone=1.5 --lr backbone=1e-3); its BatchNorm statistics recalibrated path by path
# (recalibrate_bn(every_path=True)) -> runs/backbone2/model-recal.pt. Then stages 2 and 3:
set -e
.venv/bin/fracskip train -o runs/dfs-0.45 --init runs/backbone2/model-recal.pt --stages gates,joint \
  --epochs gates=0.2,joint=0.5 --target 0.45 --resume

#!/bin/bash
# The training recipe of the shipped default and of the comparison table beside it (run from the repo root,
# about 2 h on one CPU core; OMP_NUM_THREADS=1 is much faster than two threads on shared cores).
set -e
export OMP_NUM_THREADS=1
F=.venv/bin/fracskip

# Stage 1, the shared backbone (every block draws a random bit-menu entry per batch), in four legs because it
# was trained across sessions: 2.8 + 1.5 epochs (uniform draws, the second leg annealing at lr 1e-3), then 8 epochs
# from there (lr 2e-3, uniform), then 6 epochs drawing the 4- and 8-bit paths more often. Each leg ends with the
# BatchNorm statistics recalibrated path by path. Fixed-precision test accuracy after leg 3: 4-bit 0.909, 8-bit 0.909.
$F train -o runs/backbone --stages backbone --epochs backbone=8          # stopped after 2.8 epochs
$F train -o runs/backbone2 --init runs/backbone/checkpoint.pt --stages backbone --epochs backbone=1.5 --lr backbone=1e-3
$F train -o runs/backbone3 --init runs/backbone2/checkpoint.pt --stages backbone --epochs backbone=8 --lr backbone=2e-3
$F train -o runs/backbone4 --init runs/backbone3/model.pt --stages backbone --epochs backbone=6 --lr backbone=1e-3 \
  --path-probs 0.1,0.2,0.35,0.35
B=runs/backbone4/model.pt

# Stages 2 and 3 (gates alone, then joint) at three compute targets. The default is the 0.48 run with its joint
# stage continued for 0.6 epoch (0.9197 -> 0.9204 on the test set); the other two had no such continuation.
for T in 0.48 0.30 0.65; do
  $F train -o runs/dfs-$T --init $B --stages gates,joint --epochs gates=0.2,joint=0.5 --target $T
done
$F train -o runs/dfs-0.48b --init runs/dfs-0.48/model.pt --stages joint --epochs joint=0.6 --target 0.48
# Baselines from the same backbone, fine-tuned for as many epochs (0.7): static W2A2/W4A4/W8A8, skip-only {skip, 8}.
for b in 2 4 8; do
  $F train -o runs/w${b}a${b} --init $B --bit-menu $b --stages backbone --epochs backbone=0.7 --lr backbone=2e-4
done
$F train -o runs/skip-only-0.48 --init $B --bit-menu 0,8 --stages gates,joint --epochs gates=0.2,joint=0.5 --target 0.48

# The comparison table (compare.json) and its plot, all on the full test set:
$F compare runs/dfs-0.30 runs/dfs-0.48b runs/dfs-0.65 runs/w2a2 runs/w4a4 runs/w8a8 runs/skip-only-0.48 \
  --json --plot training/checkpoints/default/accuracy_vs_compute.png > training/checkpoints/default/compare.json
cp runs/dfs-0.48b/model.pt training/checkpoints/default/model.pt
$F eval default --json > training/checkpoints/default/eval.json

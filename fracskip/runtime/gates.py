"""The DFS gates in numpy: they run on the host (the PYNQ's ARM core or the Alveo host), not on the FPGA.

GAP -> 1x1 conv -> LSTM cell shared by all gates -> Linear -> argmax; the same arithmetic as
``fracskip.training.model.Gate``, from weights exported as a plain .npz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Gates:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.hidden = int(self.w["lstm_weight_hh"].shape[1])
        self.n_gates = sum(1 for k in self.w if k.startswith("embed") and k.endswith("_weight"))

    @classmethod
    def load(cls, path: str | Path) -> "Gates":
        with np.load(path) as z:
            return cls({k: z[k] for k in z.files})

    def init_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((n, self.hidden), dtype=np.float32)
        return z, z.copy()

    def __call__(self, g: int, x: np.ndarray, state: tuple[np.ndarray, np.ndarray]):
        """x: (N, C, H, W) float feature map (interface integers times the interface scale) -> logits, state."""
        w = self.w
        pooled = x.mean(axis=(2, 3), dtype=np.float32)  # (N, C)
        e = pooled @ w[f"embed{g}_weight"].reshape(self.hidden, -1).T + w[f"embed{g}_bias"]
        h, c = state
        gates = e @ w["lstm_weight_ih"].T + w["lstm_bias_ih"] + h @ w["lstm_weight_hh"].T + w["lstm_bias_hh"]
        i, f, gg, o = np.split(gates, 4, axis=1)  # PyTorch's LSTMCell gate order
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        h = _sigmoid(o) * np.tanh(c)
        logits = h @ w["proj_weight"].T + w["proj_bias"]
        return logits.astype(np.float32), (h.astype(np.float32), c.astype(np.float32))

"""The DFS gate trained in the integer arithmetic it runs in (docs/integer-gate.md).

Same structure and parameter names as the float ``Gate`` (GAP -> 1x1 conv -> LSTM cell shared by all gates ->
Linear), so a float gate's weights initialise it. The forward pass computes, in float64, exactly the integers of
``fracskip.runtime.intgate`` times their power-of-two scales (all such products and sums are exact in float64):
weights are rounded to int8 with a power-of-two scale, every activation is rounded half up and saturated,
sigmoid and tanh are the specification's tables. Gradients pass the roundings straight through and take the
float sigmoid/tanh slopes, so training is quantization-aware and the trained gate *is* the integer gate.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from ..runtime import intgate as spec


def _round_half_up(v: torch.Tensor) -> torch.Tensor:
    return torch.floor(v + 0.5)


def fake_quant(v: torch.Tensor, exp: int, lo_hi: tuple[int, int]) -> torch.Tensor:
    """v on the grid 2**-exp, rounded half up and saturated; gradient straight through."""
    y = torch.clamp(_round_half_up(v * 2.0**exp), *lo_hi) * 2.0**-exp
    return v + (y - v).detach()


def weight_exponent(w: torch.Tensor) -> int:
    """The largest power-of-two scale 2**-f that keeps every weight within int8's narrow range."""
    m = float(w.detach().abs().max())
    return 0 if m == 0 else int(math.floor(math.log2(spec.WEIGHT[1] / m)))


def int_weight(w: torch.Tensor, exp: int) -> torch.Tensor:
    """Integer codes of a weight at exponent ``exp`` (round half to even, as Brevitas rounds weights)."""
    return torch.clamp(torch.round(w.detach().double() * 2.0**exp), *spec.WEIGHT)


def int_bias(b: torch.Tensor, exp: int) -> torch.Tensor:
    return torch.clamp(torch.round(b.detach().double() * 2.0**exp), -(2.0**31), 2.0**31 - 1)


def _fq_weight(w: torch.Tensor, exp: int) -> torch.Tensor:
    w = w.double()
    return w + (int_weight(w, exp) * 2.0**-exp - w).detach()


def _fq_bias(b: torch.Tensor, exp: int) -> torch.Tensor:
    b = b.double()
    return b + (int_bias(b, exp) * 2.0**-exp - b).detach()


class IntGate(nn.Module):
    """The gates of a DFS network, integer-exact. ``forward(i, x, state)`` as the float ``Gate``: x is the block
    input's real values (interface codes times 2**-5), state the real values of (h, c); logits are real values
    of the integer logits."""

    def __init__(self, in_channels: list[int], hidden: int, n_choices: int, feature_hw: list[int]):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.ModuleList(nn.Conv2d(c, hidden, 1) for c in in_channels)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.proj = nn.Linear(hidden, n_choices)
        self.pool_mult = [spec.pool_multiplier(hw) for hw in feature_hw]
        # exponent of the LSTM input, set from the float embeddings' range by ``calibrate`` (-128: not yet)
        self.register_buffer("x_exp", torch.tensor(-128, dtype=torch.int64))
        self.register_buffer("sig_table", torch.from_numpy(spec.sigmoid_table()).double() * 2.0**-spec.SIG_EXP,
                             persistent=False)
        self.register_buffer("tanh_table", torch.from_numpy(spec.tanh_table()).double() * 2.0**-spec.TANH_EXP,
                             persistent=False)

    @property
    def calibrated(self) -> bool:
        return int(self.x_exp) != -128

    def init_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(batch, self.hidden, dtype=torch.float64, device=like.device)
        return z, z.clone()

    @torch.no_grad()
    def calibrate(self, features: list[torch.Tensor | None]) -> int:
        """Pick the LSTM input's exponent from the float embeddings of block inputs (one tensor per gate)."""
        m = max(float(self.embed[g](f.mean(dim=(2, 3), keepdim=True).to(self.embed[g].weight.dtype)).abs().max())
                for g, f in enumerate(features) if f is not None)
        self.x_exp.fill_(int(math.floor(math.log2(127.0 / max(m, 1e-6)))))
        return int(self.x_exp)

    # -- the exponents, fixed by the current weights ---------------------------------------------------
    def exponents(self) -> dict:
        e_ih, e_hh = weight_exponent(self.lstm.weight_ih), weight_exponent(self.lstm.weight_hh)
        return {"embed": [weight_exponent(e.weight) for e in self.embed], "ih": e_ih, "hh": e_hh,
                "lstm": spec.lstm_exponent(e_ih, e_hh, int(self.x_exp)), "proj": weight_exponent(self.proj.weight)}

    def _table(self, table: torch.Tensor, z: torch.Tensor, slope_fn) -> torch.Tensor:
        """Table lookup at the int8 code of z (z already on the 2**-4 grid); gradient of the float function."""
        idx = (z.detach() * 2.0**spec.Z_EXP).round().long() + 128
        soft = slope_fn(z)
        return soft + (table[idx] - soft).detach()

    def forward(self, i: int, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        if not self.calibrated:  # a fresh network used before training calibrated it: take this input's range
            self.calibrate([x if g == i else None for g in range(len(self.embed))])
        ex = self.exponents()
        x = x.double()
        # pooled mean code, exactly as the hardware computes it; the gradient is the float mean's
        codes_sum = torch.round(x.detach() * 2.0**spec.IFACE_EXP).sum(dim=(2, 3))
        pooled_int = torch.clamp(torch.floor((codes_sum * self.pool_mult[i] + 2.0 ** (spec.POOL_SHIFT - 1))
                                             * 2.0**-spec.POOL_SHIFT), max=255)
        soft = x.mean(dim=(2, 3))
        pooled = soft + (pooled_int * 2.0**-spec.IFACE_EXP - soft).detach()
        emb = self.embed[i]
        we, ee = emb.weight.flatten(1), ex["embed"][i]
        e = pooled @ _fq_weight(we, ee).T + _fq_bias(emb.bias, ee + spec.IFACE_EXP)
        e = fake_quant(e, int(self.x_exp), spec.INT8)
        h, c = state
        L = self.lstm
        z = (e @ _fq_weight(L.weight_ih, ex["ih"]).T + h @ _fq_weight(L.weight_hh, ex["hh"]).T
             + _fq_bias(L.bias_ih + L.bias_hh, ex["lstm"]))
        z = fake_quant(z, spec.Z_EXP, spec.INT8)
        zi, zf, zg, zo = z.chunk(4, dim=1)
        ig, fg, og = (self._table(self.sig_table, t, torch.sigmoid) for t in (zi, zf, zo))
        gg = self._table(self.tanh_table, zg, torch.tanh)
        lo, hi = spec.INT16
        c = torch.clamp(fake_quant(fg * c, spec.C_EXP, (-(2**62), 2**62)) + fake_quant(ig * gg, spec.C_EXP, (-(2**62), 2**62)),
                        lo * 2.0**-spec.C_EXP, hi * 2.0**-spec.C_EXP)
        tc = self._table(self.tanh_table, fake_quant(c, spec.Z_EXP, spec.INT8), torch.tanh)
        h = fake_quant(og * tc, spec.H_EXP, spec.INT8)
        logits = h @ _fq_weight(self.proj.weight, ex["proj"]).T + _fq_bias(self.proj.bias, ex["proj"] + spec.H_EXP)
        return logits, (h, c)

    # -- export ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def integer_params(self) -> spec.IntGateParams:
        ex = self.exponents()
        n = lambda t: t.numpy().astype(np.int64)  # noqa: E731
        L = self.lstm
        return spec.IntGateParams(
            hidden=self.hidden, x_exp=int(self.x_exp), pool_mult=list(self.pool_mult),
            embed_w=[n(int_weight(e.weight.flatten(1), x)) for e, x in zip(self.embed, ex["embed"])],
            embed_exp=list(ex["embed"]),
            embed_b=[n(int_bias(e.bias, x + spec.IFACE_EXP)) for e, x in zip(self.embed, ex["embed"])],
            w_ih=n(int_weight(L.weight_ih, ex["ih"])), w_ih_exp=ex["ih"],
            w_hh=n(int_weight(L.weight_hh, ex["hh"])), w_hh_exp=ex["hh"],
            lstm_b=n(int_bias(L.bias_ih + L.bias_hh, ex["lstm"])),
            proj_w=n(int_weight(self.proj.weight, ex["proj"])), proj_exp=ex["proj"],
            proj_b=n(int_bias(self.proj.bias, ex["proj"] + spec.H_EXP)),
            sigmoid=spec.sigmoid_table(), tanh=spec.tanh_table())


def feature_hw(cfg) -> list[int]:
    """H*W of every gate's input: the gate of block i reads block i-1's output."""
    size, out = cfg.image_size, []
    for _, _, stride in cfg.block_specs():
        size = (size + stride - 1) // stride
        out.append(size * size)
    return out[:-1]

"""The DFS network: a CIFAR-style ResNet whose residual blocks are run, per input, at a bit-width chosen by a gate.

Read top to bottom: ``BlockPath`` is one (block, bit-width) path, i.e. exactly what one FINN core computes;
``DFSBlock`` holds a block's shared float weights and one path per entry of the bit menu; ``Gate`` is the
recurrent gate of the DFS code; ``DFSNet`` strings stem, blocks, gates and head together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.quant_tensor import IntQuantTensor

from . import quant as q
from .intgate import IntGate, feature_hw
from ..errors import FracskipError
from ..runtime.intgate import MAX_GROUPS


@dataclass
class ModelConfig:
    depth: int = 14  # 6n+2: 14 is the Fashion-MNIST default; 38 and 74 are the paper's CIFAR-10 ResNets
    widths: tuple[int, int, int] = (16, 32, 64)
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    bit_menu: tuple[int, ...] = q.DEFAULT_BIT_MENU  # 0 = skip
    gate_hidden: int = 10
    # "int": the integer gate of docs/integer-gate.md (trained as it runs on chip); "float": the reference code's
    # float gate (checkpoints written before the integer gate; they can be trained on but not exported)
    gate: str = "int"
    # Paths that exist in the backbone (a sub-menu model, e.g. skip-only {0, 8}, loads a subset of them)
    path_bits: tuple[int, ...] = field(default=())
    # channels per group of per-input channel skipping (training/channels.py); 0 = none (DFS)
    channel_group: int = 0

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        self.bit_menu = tuple(int(b) for b in self.bit_menu)
        if (self.depth - 2) % 6 or self.depth < 8:
            raise FracskipError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 38, 74, ...), got {self.depth}")
        # 1 bit: the signed narrow-range weight quantizer has no code but 0 (its scale divides by 0: NaN weights)
        if not self.bit_menu or any(b not in (0, 2, 3, 4, 5, 6, 7, 8) for b in self.bit_menu):
            raise FracskipError(f"bit menu entries must be 0 (skip) or 2..8 bits, got {self.bit_menu}")
        if not any(self.bit_menu):
            raise FracskipError(f"bit menu {self.bit_menu} has no width above 0: the blocks would have no path to run")
        if len(set(self.bit_menu)) != len(self.bit_menu):
            raise FracskipError(f"bit menu has duplicates: {self.bit_menu}")
        if list(self.bit_menu) != sorted(self.bit_menu):
            # the gate's decision d is entry d, and the hardware routes decision d to the d-th narrowest path
            raise FracskipError(f"bit menu {self.bit_menu} must be in ascending order (skip first), e.g. "
                                f"{','.join(map(str, sorted(self.bit_menu)))}")
        if self.gate not in ("int", "float"):
            raise FracskipError(f"gate arithmetic is 'int' or 'float', got {self.gate!r}")
        if not self.path_bits:
            self.path_bits = tuple(sorted(b for b in self.bit_menu if b))
        self.path_bits = tuple(int(b) for b in self.path_bits)
        if self.channel_group:
            inner = sorted({cout for _, cout, _ in self.block_specs()[1:]})
            if self.channel_group < 1 or any(c % self.channel_group for c in inner):
                raise FracskipError(f"channel group size {self.channel_group} must divide every gated block's "
                                    f"width {inner}")
            if self.gate != "int":
                raise FracskipError("channel skipping needs the integer gate (gate='int')")

    def too_many_groups(self) -> str | None:
        """Why no export of this network can hold its channel groups (a block's keep bits are one 16-bit word), if
        it cannot: training refuses it before it starts (a checkpoint that has it still loads)."""
        inner = sorted({cout for _, cout, _ in self.block_specs()[1:]})
        widest = max(inner)
        if not self.channel_group or widest // self.channel_group <= MAX_GROUPS:
            return None
        fits = [g for g in range(-(-widest // MAX_GROUPS), widest + 1) if all(c % g == 0 for c in inner)]
        return (f"channel group size {self.channel_group} makes {widest // self.channel_group} channel groups in a "
                f"block of {widest} channels: at most {MAX_GROUPS} (a block's keep bits are one {MAX_GROUPS}-bit "
                f"word); use a larger --channel-group that divides {inner}"
                + (f", e.g. --channel-group {fits[0]}" if fits else ""))

    @property
    def routes(self) -> tuple[int, ...]:
        """What a forced choice index names: the menu's entries, then the path widths no gate chooses (a menu cut
        by ``fracskip budget --menu`` keeps its dropped widths' paths for the static networks)."""
        return self.bit_menu + tuple(b for b in self.path_bits if b not in self.bit_menu)

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6

    def block_specs(self) -> list[tuple[int, int, int]]:
        """(in channels, out channels, stride) of every residual block."""
        specs, cin = [], self.widths[0]
        for s, w in enumerate(self.widths):
            for i in range(self.blocks_per_stage):
                stride = 2 if (s > 0 and i == 0) else 1
                specs.append((cin, w, stride))
                cin = w
        return specs

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["channel_group"]:
            del d["channel_group"]  # DFS checkpoints stay as they were
        return d


def value(t) -> torch.Tensor:
    """The float value of a quant tensor; during QONNX export Brevitas layers return plain tensors."""
    return t.value if isinstance(t, IntQuantTensor) else t


def iface_tensor(value: torch.Tensor) -> IntQuantTensor:
    """Wrap a float tensor that lies on the block-interface grid as the quant tensor the blocks exchange."""
    return IntQuantTensor(value, value.new_tensor(q.IFACE_SCALE), value.new_tensor(0.0), value.new_tensor(8.0),
                          signed=False, training=torch.is_grad_enabled())


class BlockPath(nn.Module):
    """One residual block at one bit-width: 8-bit interface in, 8-bit interface out. One FINN core.

    The branch is quantized into the interface format before the add (ReLU'd branch, as in Brevitas'
    QuantBasicBlock for FINN), so that the residual add is an integer add of two UINT8 streams of equal
    scale and the output requant is a clip to 255.
    """

    def __init__(self, cin: int, cout: int, stride: int, bits: int, weights: nn.ParameterDict):
        super().__init__()
        self.bits = bits
        self.q_in = q.requant(bits) if bits < q.FULL_BITS else None
        self.conv1 = _tied(q.conv(cin, cout, 3, stride, bits), weights["conv1"])
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = q.act(bits)
        self.conv2 = _tied(q.conv(cout, cout, 3, 1, bits), weights["conv2"])
        self.bn2 = nn.BatchNorm2d(cout)
        self.q_branch = q.iface()
        self.shortcut = None
        if "shortcut" in weights:
            self.shortcut = _tied(q.conv(cin, cout, 1, stride, bits), weights["shortcut"])
            self.bn_sc = nn.BatchNorm2d(cout)
            self.q_sc = q.iface()
        self.q_out = q.iface()

    def forward(self, x: IntQuantTensor, keep: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> IntQuantTensor:
        """keep, scale: (B, cout) channel skipping of conv1's outputs (training/channels.py): the retained
        channels scaled before relu1's quantizer (a per-mode constant that folds into its thresholds), the
        dropped ones zero codes, so that conv2 reads exactly what skipping their folds leaves."""
        h = self.q_in(x) if self.q_in is not None else x
        if keep is None:
            branch = self.q_branch(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(h))))))
        else:
            a = self.relu1(self.bn1(self.conv1(h)) * scale[:, :, None, None])
            k = keep[:, :, None, None]
            # exported (plain tensors), the mask is a Mul by the graph's keep input
            a = IntQuantTensor(a.value * k, a.scale, a.zero_point, a.bit_width, a.signed,
                               a.training) if isinstance(a, IntQuantTensor) else a * k
            branch = self.q_branch(self.bn2(self.conv2(a)))
        skip = self.q_sc(self.bn_sc(self.shortcut(h))) if self.shortcut is not None else x
        return self.q_out(branch + skip)


class ShortcutPath(nn.Module):
    """'Skip' for a downsampling block: only its 1x1 strided shortcut runs (at 8 bits), as in SkipNet."""

    def __init__(self, cin: int, cout: int, stride: int, weights: nn.ParameterDict):
        super().__init__()
        self.bits = 0
        self.shortcut = _tied(q.conv(cin, cout, 1, stride, q.FULL_BITS), weights["shortcut"])
        self.bn_sc = nn.BatchNorm2d(cout)
        self.q_out = q.iface()

    def forward(self, x: IntQuantTensor) -> IntQuantTensor:
        return self.q_out(self.bn_sc(self.shortcut(x)))


def _tied(layer: nn.Module, weight: nn.Parameter) -> nn.Module:
    """One float weight shared by every bit-width; each path keeps its own quantizer."""
    layer.weight = weight
    layer.weight_quant.init_tensor_quant()  # re-bind the quantizer's weight statistics to the shared tensor
    return layer


class DFSBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, path_bits: tuple[int, ...], gated: bool):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.downsample = stride != 1 or cin != cout
        w = nn.ParameterDict({
            "conv1": nn.Parameter(torch.empty(cout, cin, 3, 3)),
            "conv2": nn.Parameter(torch.empty(cout, cout, 3, 3)),
        })
        if self.downsample:
            w["shortcut"] = nn.Parameter(torch.empty(cout, cin, 1, 1))
        for p in w.values():
            nn.init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
        self.weights = w
        self.paths = nn.ModuleDict({f"b{b}": BlockPath(cin, cout, stride, b, w) for b in path_bits})
        if gated and self.downsample:
            self.paths["b0"] = ShortcutPath(cin, cout, stride, w)

    def path(self, bits: int) -> nn.Module | None:
        """The module of a path; None for skipping an identity block (the input passes on unchanged)."""
        if bits == 0 and not self.downsample:
            return None
        return self.paths[f"b{bits}"]

    def run(self, x: IntQuantTensor, bits: int, keep: torch.Tensor | None = None,
            scale: torch.Tensor | None = None) -> IntQuantTensor:
        p = self.path(bits)
        if p is None:
            return x
        return p(x) if keep is None or isinstance(p, ShortcutPath) else p(x, keep, scale)


class Gate(nn.Module):
    """The DFS/SkipNet recurrent gate: GAP -> 1x1 conv to ``hidden`` -> one LSTM shared by all gates -> Linear.

    Returns logits over the bit menu; the decision is their hard argmax, trained straight-through.
    Works at batch size 1 (no squeeze of the batch dimension, unlike the reference code).
    """

    def __init__(self, in_channels: list[int], hidden: int, n_choices: int):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.ModuleList(nn.Conv2d(c, hidden, 1) for c in in_channels)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.proj = nn.Linear(hidden, n_choices)

    def init_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = like.new_zeros(batch, self.hidden)
        return z, z.clone()

    def forward(self, i: int, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        e = self.embed[i](x.mean(dim=(2, 3), keepdim=True)).flatten(1)
        h, c = self.lstm(e, state)
        return self.proj(h), (h, c)


class DFSOutput(NamedTuple):
    logits: torch.Tensor  # (B, classes)
    choices: torch.Tensor  # (B, gated blocks): index into the bit menu
    masks: torch.Tensor | None  # (B, gated blocks, menu): straight-through one-hot, when trained through the gates


class DFSNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.widths[0]
        self.inp = q.image_input()
        self.stem_conv = q.conv(cfg.in_channels, c0, 3, 1, q.FULL_BITS)
        self.stem_bn = nn.BatchNorm2d(c0)
        self.stem_act = q.iface()
        specs = cfg.block_specs()
        self.blocks = nn.ModuleList()
        for i, (cin, cout, stride) in enumerate(specs):
            bits = (q.FULL_BITS,) if i == 0 else cfg.path_bits
            self.blocks.append(DFSBlock(cin, cout, stride, bits, gated=i > 0 and 0 in cfg.bit_menu))
        gate_in = [cin for cin, _, _ in specs[1:]]
        if cfg.gate == "int":
            self.gate = IntGate(gate_in, cfg.gate_hidden, len(cfg.bit_menu), feature_hw(cfg))
        else:
            self.gate = Gate(gate_in, cfg.gate_hidden, len(cfg.bit_menu))
        self.head_act = q.act(q.FULL_BITS)
        self.head_fc = q.linear(cfg.widths[-1], cfg.num_classes, q.FULL_BITS)

    @property
    def n_gated(self) -> int:
        return len(self.blocks) - 1

    # -- the pieces that become separate hardware ------------------------------------------------
    def stem(self, images: torch.Tensor) -> IntQuantTensor:
        """uint8 pixel values (as float, 0..255) -> 8-bit interface."""
        return self.stem_act(self.stem_bn(self.stem_conv(self.inp(images / 255.0))))

    def head(self, x: IntQuantTensor) -> torch.Tensor:
        v = value(x)
        # the integer sum over H, W times scale/(H*W): the arithmetic of the exported head core, whose input
        # the host computes as that exact integer sum (``export.cores.HeadCore``)
        pooled = (v.sum(dim=(2, 3)) / q.IFACE_SCALE) * q.pool_scale(v.shape[2] * v.shape[3])
        return self.head_fc(self.head_act(pooled))

    # -- whole network ---------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, choices: torch.Tensor | None = None,
                straight_through: bool = False) -> DFSOutput:
        """Run the network.

        choices: (B, gated blocks) indices into ``cfg.routes`` (the menu's, then widths beyond it) to force
        (static baselines, stage 1 sampling, golden checks); None lets the gates decide. straight_through: make the
        gate decisions differentiable (stages 2 and 3).
        """
        if images.dim() != 4:
            raise FracskipError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        x = self.blocks[0].run(self.stem(images), q.FULL_BITS)
        n = images.shape[0]
        state = self.gate.init_state(n, images)
        picked, masks = [], []
        for g, blk in enumerate(self.blocks[1:]):
            choice, mask, state = self._choose(g, x, state, choices, straight_through)
            picked.append(choice)
            if mask is not None:
                masks.append(mask)
            x = self._route(blk, x, choice, mask)
        return DFSOutput(self.head(x), torch.stack(picked, 1) if picked else torch.zeros(n, 0, dtype=torch.long),
                         torch.stack(masks, 1) if masks else None)

    @torch.no_grad()
    def gate_inputs(self, images: torch.Tensor, bits: int) -> list[torch.Tensor]:
        """The input of every gate (block i-1's output) with every gated block at ``bits``."""
        x = self.blocks[0].run(self.stem(images), q.FULL_BITS)
        out = []
        for blk in self.blocks[1:]:
            out.append(x.value)
            x = blk.run(x, bits)
        return out

    def _choose(self, g: int, x: IntQuantTensor, state, choices: torch.Tensor | None, straight_through: bool):
        """Gated block g's choice (B,), its straight-through mask (None unless the gate decided and is trained) and
        the gate's state: the forced ``choices[:, g]`` without running the gate, else the gate's argmax."""
        if choices is not None:
            return choices[:, g], None, state
        logits, state = self.gate(g, x.value, state)
        choice = logits.argmax(dim=1)
        if not straight_through:
            return choice, None, state
        soft = logits.float().softmax(dim=1)
        hard = F.one_hot(choice, len(self.cfg.bit_menu)).to(soft.dtype)
        return choice, hard - soft.detach() + soft, state

    def _route(self, blk: DFSBlock, x: IntQuantTensor, choice: torch.Tensor, mask: torch.Tensor | None,
               run=None) -> IntQuantTensor:
        """Send every input through its chosen path only; with a straight-through mask, let the gradient
        reach the gate through every path's output (their values enter with weight mask - mask = 0).
        ``run(x, bits, rows)``: a path's output values on the inputs ``rows`` (None: all), ``blk.run``'s by default."""
        menu, routes = self.cfg.bit_menu, self.cfg.routes
        if run is None:
            run = lambda xs, bits, rows: blk.run(xs, bits).value  # noqa: E731
        used = torch.unique(choice).tolist()
        if len(used) == 1:
            y = run(x, routes[used[0]], None)
        else:
            y = torch.zeros(x.value.shape[0], blk.cout, *self._out_hw(blk, x), dtype=x.value.dtype,
                            device=x.value.device)
            for k in used:
                idx = (choice == k).nonzero(as_tuple=True)[0]
                y = y.index_copy(0, idx, run(_take(x, idx), routes[k], idx))
        if mask is not None:
            with torch.no_grad():
                outs = [run(x, b, None) for b in menu]
            for k, out in enumerate(outs):
                w = mask[:, k] - mask[:, k].detach()
                y = y + w.view(-1, 1, 1, 1) * out
        return iface_tensor(y)

    @staticmethod
    def _out_hw(blk: DFSBlock, x: IntQuantTensor) -> tuple[int, int]:
        h, w = x.value.shape[-2:]
        return (h + blk.stride - 1) // blk.stride, (w + blk.stride - 1) // blk.stride


def _take(x: IntQuantTensor, idx: torch.Tensor) -> IntQuantTensor:
    return iface_tensor(x.value.index_select(0, idx))

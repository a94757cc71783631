"""``fracskip export``: a trained checkpoint -> one QONNX graph per core, the gate weights, and a manifest."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import torch
from brevitas.export import export_qonnx
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.inference_cost import inference_cost
from tqdm import tqdm

from ..errors import FracskipError
from ..hls.transforms import RemoveKeepMask
from ..outdir import staged
from ..runtime.manifest import FORMAT, Manifest, sha256
from ..training import quant as q
from ..training.channels import LCNet
from ..training.checkpoint import load_model, read_bytes
from ..training.cost import cost_table
from ..training.intgate import IntGate
from ..training.model import DFSNet
from .cores import ChannelPathCore, HeadCore, PathCore, StemCore

SOURCE_CHECKPOINT = "source_checkpoint.pt"
# brevitas follows torch >= 2.9 to its dynamo exporter; the TorchScript one writes the default's 20 cores in a fifth
# of the time (7 s against 35 s), and FINN makes the same cores of them, node for node and weight for weight
DYNAMO = False


def export(checkpoint: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True) -> Manifest:
    """Export every core of ``checkpoint`` into folder ``out``.

    The folder is written under a temporary name and renamed when complete, so an interrupted export never
    leaves a folder that looks valid; a non-empty ``out`` is refused unless ``overwrite``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FracskipError(f"{out} exists and is not empty: pass --force to replace it, or choose another -o folder")
    # the export carries its own torch reference: the network and that copy are of one read of the file, so
    # that a checkpoint a training run replaces meanwhile cannot give cores and a reference of two points of
    # training; a checkpoint that cannot be loaded is refused before any folder is made
    raw = read_bytes(checkpoint)
    net, ck = load_model(checkpoint, raw)
    with staged(out) as tmp:
        (tmp / SOURCE_CHECKPOINT).write_bytes(raw)
        digest = hashlib.sha256(raw).hexdigest()
        data = _export_into(net, tmp, progress)
        data["source_checkpoint"] = {"ref": str(checkpoint), "file": SOURCE_CHECKPOINT, "sha256": digest,
                                     "eval": ck.get("eval")}
        data["files"] = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.name != "manifest.json"}
        m = Manifest(tmp, data)
        m.check_schema()
        m.save()
    return Manifest.load(out)


def _export_into(net: DFSNet, folder: Path, progress: bool) -> dict:
    if not isinstance(net.gate, IntGate):  # refused before any core is written (the default's take 7 s or more)
        raise FracskipError("this checkpoint has a float gate (written before the integer gate), which no "
                            "hardware runs: train its gates again, e.g. "
                            "`fracskip train --init CKPT --stages gates,joint -o RUN`")
    cfg = net.cfg
    table = cost_table(cfg)
    menu = list(cfg.bit_menu)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g).float()
    jobs = [("stem", StemCore(net), images, table.stem)]
    shapes = [list(images.shape)]
    with torch.no_grad():
        x = StemCore(net)(images)
    shapes.append(list(x.shape))
    blocks = []
    route_bitops = table.route_bitops()
    for i, blk in enumerate(net.blocks):
        gated = i > 0
        # a gated block: the menu's paths, then any width no gate chooses (for the static networks)
        bits_list = list(cfg.routes) if gated else [q.FULL_BITS]
        paths = {}
        with torch.no_grad():
            y = PathCore(blk, bits_list[-1] if bits_list[-1] else q.FULL_BITS)(x)
        for k, bits in enumerate(bits_list):
            bitops = route_bitops[i - 1][k] if gated else table.first_block
            if blk.path(bits) is None:
                paths[str(bits)] = {"core": None, "kind": "identity", "bitops": 0}
                continue
            name = f"block{i}_b{bits}"
            kind = "shortcut" if bits == 0 else "residual"
            if isinstance(net, LCNet) and gated and bits:
                paths[str(bits)] = _channel_path(net, table, i, bits, bitops, x, jobs)
                continue
            paths[str(bits)] = {"core": name, "file": f"{name}.onnx", "kind": kind, "bits": bits, "bitops": bitops}
            jobs.append((name, PathCore(blk, bits), x.clone(), bitops))
        blocks.append({"index": i, "gated": gated, "gate": i - 1 if gated else None,
                       "in": {"shape": list(x.shape), "datatype": "UINT8"},
                       "out": {"shape": list(y.shape), "datatype": "UINT8"},
                       "stride": blk.stride, "channels": [blk.cin, blk.cout], "paths": paths})
        x = y
    hw = int(x.shape[2] * x.shape[3])
    head_in = x.sum(dim=(2, 3))
    head_dt = f"UINT{int(np.ceil(np.log2(255 * hw + 1)))}"
    jobs.append(("head", HeadCore(net, hw), head_in, table.head))
    qonnx_bops = {}
    for name, module, example, _ in tqdm(jobs, desc="export", unit="core", disable=None if progress else True):
        path = folder / f"{name}.onnx"
        module.eval()
        masked = isinstance(example, tuple)  # a channel path: (x, keep)
        if masked:
            export_qonnx(module, args=example, export_path=str(path), dynamo=DYNAMO)
        else:
            export_qonnx(module, input_t=example, export_path=str(path), dynamo=DYNAMO)
        mw = ModelWrapper(str(path))
        mw.set_tensor_datatype(mw.graph.input[0].name, DataType[head_dt if name == "head" else "UINT8"])
        if masked:
            mw.set_tensor_datatype(mw.graph.input[1].name, DataType["BINARY"])
        mw.save(str(path))  # weights inline: one self-contained file per core
        Path(f"{path}.data").unlink(missing_ok=True)
        counted = path
        if masked:  # qonnx types the mask's Mul as 32-bit, and would count conv2 at 32 bits
            counted = folder / f"{name}.all_kept.onnx"
            ModelWrapper(copy.deepcopy(mw.model)).transform(RemoveKeepMask()).save(str(counted))
        qonnx_bops[name] = int(inference_cost(str(counted), discount_sparsity=False)["total_cost"]["total_bops"])
        if counted != path:
            counted.unlink()
    for name, _, _, bitops in jobs:
        if qonnx_bops[name] != bitops:
            raise FracskipError(f"internal error: BitOPs of {name} are {bitops} by fracskip's count but "
                                f"{qonnx_bops[name]} by qonnx-inference-cost")
    gates = net.gate.integer_params()
    if isinstance(net, LCNet):
        heads = net.channel_head.integer_params()
        gates.chan_w, gates.chan_b = [h["w"] for h in heads], [h["b"] for h in heads]
        gates.check()
    return {
        "format": FORMAT,
        "model_config": cfg.to_dict(),
        "bit_menu": menu,
        "interface": {"datatype": "UINT8", "scale": q.IFACE_SCALE, "layout": "NCHW",
                      "note": "every block input and output: uint8 integers; real value = integer * scale"},
        "input": {"shape": shapes[0], "datatype": "UINT8", "scale": q.INPUT_SCALE},
        "stem": {"core": "stem", "file": "stem.onnx", "bitops": table.stem,
                 "in": {"shape": shapes[0], "datatype": "UINT8"}, "out": {"shape": shapes[1], "datatype": "UINT8"}},
        "blocks": blocks,
        "head": {"core": "head", "file": "head.onnx", "bitops": table.head, "pool": "sum",
                 "in": {"shape": list(head_in.shape), "datatype": head_dt,
                        "host": "sum over H and W of the last block's output integers"},
                 "out": {"shape": [1, cfg.num_classes], "datatype": "FLOAT32"}},
        "gates": {**gates.to_json(), "doc": "docs/integer-gate.md",
                  "params": sum(p.numel() for p in net.gate.parameters())},
        **({"channels": {"group": cfg.channel_group, "doc": "docs/channel-skipping.md"}}
           if isinstance(net, LCNet) else {}),
        "bitops": {"full_8bit": table.full, "counted_as": "qonnx-inference-cost total_bops, discount_sparsity=False",
                   "qonnx_inference_cost": qonnx_bops},
    }


def _channel_path(net: LCNet, table, i: int, bits: int, bitops: int, x: torch.Tensor, jobs: list) -> dict:
    """A residual path of a channel-skipping block: one core per number of groups kept (its scale differs), each
    taking the keep mask as a second input. conv1 and conv2 compute only the kept channels' MACs, so a path
    keeping ``k`` of ``G`` groups costs ``bits**2 * (conv1 + conv2) MACs * (G - k) / G`` less than all of it."""
    g, blk = i - 1, net.blocks[i]
    n_groups = net.groups[g]
    chan = table.block_macs[i]["conv1"] + table.block_macs[i]["conv2"]
    scales = net.mode_scales(g)[list(net.cfg.path_bits).index(bits)]  # (groups kept 0..G, channels)
    kept = {}
    for k in range(1, n_groups + 1):
        name = f"block{i}_b{bits}_k{k}"
        cost = bitops - chan * (n_groups - k) // n_groups * bits * bits
        kept[str(k)] = {"core": name, "file": f"{name}.onnx", "bitops": cost}
        # qonnx counts the graph's BitOPs, every channel kept
        jobs.append((name, ChannelPathCore(blk, bits, scales[k]), (x.clone(), torch.ones(1, blk.cout)), bitops))
    return {**kept[str(n_groups)], "kind": "residual", "bits": bits,
            "channels": {"group": net.cfg.channel_group, "groups": n_groups, "kept": kept,
                         "keep_input": "second graph input: (N, C) 0/1 per output channel of conv1 (relu1's codes "
                                       "of a dropped group are 0); the core of k groups kept runs inputs keeping k"}}


"""A channel-skipping block's runtime datapath (issue #16): its cores, one per (bit-width, groups kept), built by
the FINN flow (the keep mask taken out: the hardware gets the keep bits in the token) and merged into one graph
(hls/modal.py ``ChannelPaths``): conv1's bit-serial unit skips its dropped output groups, conv2's its dropped
input groups, relu1's ModalActivation holds a threshold set per (bit-width, groups kept) and gives the dropped
channels 0, and the ModeFork hands each the gate's [d, keep] token.

1. FINN's python execution of the merged graph equals the golden, the frame's channel core of the export run
   with the frame's keep mask (FINN's streamlined QONNX), for random frames of random modes and keeps.
2. Verilator: the graph as hardware, frames of different bit-widths and keeps back to back, bit-exact against the
   python execution, each frame's cycles those of the units' model for its bits and groups kept (within 2 %).
"""

from __future__ import annotations

import numpy as np
import pytest

BLOCK = 1  # the tiny network's first gated block: 32 channels, 4 groups of 8
FOLD = {f"modal_mvau{i}": {"PE": 8, "SIMD": 8} for i in range(3)}  # conv1, conv2, shortcut: a group is one fold


@pytest.fixture(scope="module")
def lc_block(tiny_lc_export, tmp_path_factory):
    """Block 1's channel cores built to FINN's folded dataflow graphs (hls/core.py's analyse and finish, the
    slowest folding), as ``ChannelPaths``, with the export's manifest."""
    from fracskip.hls import core, finn_env
    from fracskip.hls.accelerator import CORE_MODEL
    from fracskip.hls.modal import ChannelPaths
    from fracskip.runtime.manifest import Manifest
    from qonnx.core.modelwrapper import ModelWrapper

    man = Manifest.load(tiny_lc_export)
    blk = man.blocks[BLOCK]
    out = tmp_path_factory.mktemp("lc_cores")
    by_kept: dict[int, dict[int, object]] = {}
    with finn_env.scratch() as work:
        for bits, path in blk["paths"].items():
            if "channels" not in path:
                continue  # skip: the 8-bit shortcut, not part of the modal datapath
            for k, c in path["channels"]["kept"].items():
                onnx, folder = str(man.file(c["file"])), out / c["core"]
                ladder = core.analyse(onnx, str(folder), "xc7z020clg400-1", 10.0, str(work / "finn_build"))["ladder"]
                core.finish(onnx, str(folder), "xc7z020clg400-1", 10.0, str(work / "finn_build"),
                            ladder[0]["folding"], "estimates")
                by_kept.setdefault(int(bits), {})[int(k)] = ModelWrapper(
                    str(folder / "intermediate_models" / CORE_MODEL))
    groups = next(p["channels"]["groups"] for p in blk["paths"].values() if "channels" in p)
    channels = ChannelPaths(man.channel_group, groups, by_kept)
    return {"man": man, "channels": channels, "paths": {b: m[groups] for b, m in by_kept.items()}}


def _token(mode: int, keep: int) -> list[int]:
    return [mode, keep - (1 << 16) if keep >= 1 << 15 else keep]  # two INT16 elements


def _golden(lc_block, x_nhwc: np.ndarray, mode: int, keep: int) -> np.ndarray:
    from fracskip.runtime.qonnx_backend import QONNXBackend

    ch = lc_block["channels"]
    bits = sorted(ch.by_kept)[mode]
    qb = lc_block.setdefault("qonnx", QONNXBackend(lc_block["man"], progress=False))
    mask = np.repeat([(keep >> g) & 1 for g in range(ch.groups)], ch.group).astype(np.float32)[None]
    core = lc_block["man"].path_core(BLOCK, bits, bin(keep).count("1"))
    return qb.run(core, x_nhwc.transpose(0, 3, 1, 2), mask).transpose(0, 2, 3, 1)


def _run(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx

    return execute_onnx(model, feeds)[model.graph.output[0].name]


def test_channel_modal_graph_equals_the_channel_cores(lc_block):
    """One graph for every (bit-width, groups kept): FINN's python execution of each frame equals the export's
    core of that many groups at that width, run with the frame's mask; different keeps give different results."""
    from fracskip.hls.accelerator import python_model
    from fracskip.hls.modal import modal_graph
    from qonnx.custom_op.registry import getCustomOp

    ch = lc_block["channels"]
    graph = modal_graph(lc_block["paths"], folding=FOLD, channels=ch)
    nodes = {n.name: getCustomOp(n) for n in graph.graph.node}
    units = [u for u in nodes.values() if u.onnx_node.op_type == "MVAU_bitserial"]
    assert [s for u in units if (s := u.get_nodeattr("channelSkip"))] == ["out", "in"]  # and the shortcut's none
    grouped = [u for u in nodes.values() if u.onnx_node.op_type == "ModalActivation_rtl"
               and u.get_nodeattr("channelGroup")]
    assert len(grouped) == 1 and len(grouped[0].mode_functions()) == len(ch.by_kept) * ch.groups
    fork = next(u for u in nodes.values() if u.onnx_node.op_type == "ModeFork_rtl")
    assert sum(fork.keep_out()) == 3 and fork.get_nodeattr("Groups") == ch.groups

    pm = python_model(graph)
    rng = np.random.default_rng(7)
    shape = graph.get_tensor_shape("block_in")
    full = (1 << ch.groups) - 1
    frames = [(m, full if f < 3 else int(rng.integers(1, full))) for f, m in enumerate(rng.integers(0, 3, 9))]
    for f, (mode, keep) in enumerate(frames):
        x = rng.integers(0, 256, shape).astype(np.float32)
        got = _run(pm, {"block_in": x, "mode": np.array([_token(mode, keep)], np.float32)})
        np.testing.assert_array_equal(got, _golden(lc_block, x, mode, keep), err_msg=f"frame {f}: {mode}, {keep:#x}")
    outs = [_run(pm, {"block_in": x, "mode": np.array([_token(1, k)], np.float32)}) for k in (full, 1, 2)]
    assert all(not np.array_equal(outs[i], outs[j]) for i in range(3) for j in range(i)), "keeps must matter"


@pytest.mark.slow
@pytest.mark.rtlsim
def test_channel_block_rtl_bit_exact_and_cycles_follow_the_kept_groups(lc_block, finn_rtlsim):
    """The merged graph as hardware (width converters, FIFOs, HDL; groups of 8 = the units' PE and SIMD, 2 weight
    planes per cycle) in Verilator: frames of 2, 4 and 8 bits keeping 1 to 4 groups, back to back, equal FINN's
    python execution, and from the second frame on each takes the cycles of the slower unit's model for its bits
    and groups kept, within 2 %."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.modal import modal_graph
    from fracskip.hls.rtlsim import RTLSimCore, setup_finn
    from qonnx.custom_op.registry import getCustomOp

    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")
    ch = lc_block["channels"]
    hw = A.to_hw(modal_graph(lc_block["paths"], wbp=2, folding=FOLD, channels=ch), "xc7z020clg400-1", 10.0)
    frames = [(1, 0xF), (1, 0x1), (0, 0x5), (1, 0x7), (2, 0x2), (0, 0xF), (1, 0x8)]
    tokens = np.array([_token(m, k) for m, k in frames], np.float32)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (len(frames), *hw.get_tensor_shape("block_in")[1:])).astype(np.float32)
    pm = A.python_model(hw)
    want = np.concatenate([_run(pm, {"block_in": x[i:i + 1], "mode": tokens[i:i + 1]}) for i in range(len(frames))])
    units = [getCustomOp(n).bs_params() for n in hw.graph.node if n.op_type == "MVAU_bitserial"]
    model = [max(u.frame_cycles(m, k) for u in units) for m, k in frames]
    with RTLSimCore(hw, cache_dir=finn_rtlsim / "cache", progress=False, sizing_fifos=True,
                    cycle_limit=4 * sum(model) + 100_000) as sim:
        res = sim.run([x, tokens], fifo_depths=[s.max_depth + 1 for s in sim.fifos])
    np.testing.assert_array_equal(res.outputs[0].reshape(want.shape), want)
    measured = np.diff(res.frame_cycles)
    print("cycles per frame, measured against the model:", list(zip(measured.tolist(), model[1:])))
    np.testing.assert_allclose(measured, model[1:], rtol=0.02)
    assert len(set(model[1:])) > 3  # the frames differ in bits and groups: the figures are not one number

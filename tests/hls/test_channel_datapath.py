"""A channel-skipping block's runtime datapath (issue #16): its cores, one per (bit-width, groups kept), built by
the FINN flow (the keep mask taken out: the hardware gets the keep bits in the token) and merged into one graph
(hls/modal.py ``ChannelPaths``): conv1's bit-serial unit skips its dropped output groups, conv2's its dropped
input groups, relu1's ModalActivation holds a threshold set per (bit-width, groups kept) and gives the dropped
channels 0, and the ModeFork hands each the gate's [d, keep] token.

1. FINN's python execution of the merged graph equals the golden, the frame's channel core of the export run
   with the frame's keep mask (FINN's streamlined QONNX), for random frames of random modes and keeps.
2. Verilator: the graph as hardware, frames of different bit-widths and keeps back to back, bit-exact against the
   python execution, each frame's cycles those of the units' model for its bits and groups kept (within 2 %).
3. The whole network as one accelerator graph (``hls.accelerator.compose`` with these datapaths, the gates' channel
   heads, [d, keep] tokens): FINN's python execution equals the numpy controller, decisions, keep bits and the
   head's input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

# one worker builds the tiny channel network's export and build (session fixtures) for every test that reads them
pytestmark = pytest.mark.xdist_group("tiny_lc")

BLOCK = 2  # the tiny network's second gated block: 64 channels, 4 groups of 16
# a group is 4 folds: the units are the block's slowest nodes, whose cycles per frame the test follows
FOLD = {f"block{b}_modal_mvau{i}": {"PE": 4, "SIMD": 4} for b in (1, 2) for i in range(3)}


@pytest.fixture(scope="module")
def lc_block(tiny_lc_build):
    """The block's channel cores (built by ``fracskip build``, ``tiny_lc_build``) as ``ChannelPaths``, with the
    manifest."""
    from fracskip.hls.accelerator import load_core
    from fracskip.hls.modal import ChannelPaths
    from fracskip.runtime.manifest import Manifest

    man = Manifest.load(tiny_lc_build / "export")
    blk = man.blocks[BLOCK]
    kept = {int(b): p["channels"] for b, p in blk["paths"].items() if "channels" in p}
    groups = next(iter(kept.values()))["groups"]
    by_kept = {b: {int(k): load_core(tiny_lc_build, c["core"]) for k, c in ch["kept"].items()}
               for b, ch in kept.items()}
    return {"man": man, "channels": ChannelPaths(man.channel_group, groups, by_kept),
            "paths": {b: m[groups] for b, m in by_kept.items()},
            "fold": {k.replace(f"block{BLOCK}_", ""): v for k, v in FOLD.items() if k.startswith(f"block{BLOCK}_")}}


def _token(mode: int, keep: int) -> list[int]:
    return [mode, keep - (1 << 16) if keep >= 1 << 15 else keep]  # two INT16 elements


def _golden(lc_block, x_nhwc: np.ndarray, mode: int, keep: int) -> np.ndarray:
    from fracskip.backends.qonnx_backend import QONNXBackend

    ch = lc_block["channels"]
    bits = sorted(ch.by_kept)[mode]
    qb = lc_block.setdefault("qonnx", QONNXBackend(lc_block["man"], progress=False))
    mask = np.repeat([(keep >> g) & 1 for g in range(ch.groups)], ch.group).astype(np.float32)[None]
    core = lc_block["man"].path_core(BLOCK, bits, bin(keep).count("1"))
    return qb.run(core, x_nhwc.transpose(0, 3, 1, 2), mask).transpose(0, 2, 3, 1)


def _run(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx

    return execute_onnx(model, feeds)[model.graph.output[0].name]


@pytest.mark.slow
@pytest.mark.rtlsim  # the tiny channel build sizes its FIFOs in Verilator
def test_channel_modal_graph_equals_the_channel_cores(lc_block):
    """One graph for every (bit-width, groups kept): FINN's python execution of each frame equals the export's
    core of that many groups at that width, run with the frame's mask; different keeps give different results."""
    from fracskip.hls.accelerator import python_model
    from fracskip.hls.modal import modal_graph
    from qonnx.custom_op.registry import getCustomOp

    ch = lc_block["channels"]
    graph = modal_graph(lc_block["paths"], folding=lc_block["fold"], channels=ch)
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
    modes = rng.integers(0, len(ch.by_kept), 9)
    frames = [(m, full if f < 3 else int(rng.integers(1, full))) for f, m in enumerate(modes)]
    for f, (mode, keep) in enumerate(frames):
        x = rng.integers(0, 256, shape).astype(np.float32)
        got = _run(pm, {"block_in": x, "mode": np.array([_token(mode, keep)], np.float32)})
        np.testing.assert_array_equal(got, _golden(lc_block, x, mode, keep), err_msg=f"frame {f}: {mode}, {keep:#x}")
    outs = [_run(pm, {"block_in": x, "mode": np.array([_token(1, k)], np.float32)}) for k in (full, 1, 2)]
    assert all(not np.array_equal(outs[i], outs[j]) for i in range(3) for j in range(i)), "keeps must matter"


@pytest.mark.slow
@pytest.mark.rtlsim
def test_channel_block_rtl_bit_exact_and_cycles_follow_the_kept_groups(lc_block, finn_rtlsim):
    """The merged graph as hardware (width converters, FIFOs, HDL; units at PE = SIMD = 4, 2 weight
    planes per cycle) in Verilator: frames of 2, 4 and 8 bits keeping 1 to 4 groups, back to back, equal FINN's
    python execution, and from the second frame on each takes the cycles of the slower unit's model for its bits
    and groups kept, within 2 %."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.modal import modal_graph
    from fracskip.hls.rtlsim import RTLSimCore, setup_finn
    from qonnx.custom_op.registry import getCustomOp

    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")
    ch = lc_block["channels"]
    hw = A.to_hw(modal_graph(lc_block["paths"], wbp=2, folding=lc_block["fold"], channels=ch), "xc7z020clg400-1",
                 10.0)
    frames = [(1, 0xF), (1, 0x1), (0, 0x5), (1, 0x7), (2, 0x2), (0, 0xF), (1, 0x8)]
    tokens = np.array([_token(m, k) for m, k in frames], np.float32)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (len(frames), *hw.get_tensor_shape("block_in")[1:])).astype(np.float32)
    pm = A.python_model(hw)
    want = np.concatenate([_run(pm, {"block_in": x[i:i + 1], "mode": tokens[i:i + 1]}) for i in range(len(frames))])
    units = [getCustomOp(n).bs_params() for n in hw.graph.node if n.op_type == "MVAU_bitserial"]
    model = [max(u.frame_cycles(m, k) for u in units) for m, k in frames]
    others = max(getCustomOp(n).get_exp_cycles() for n in hw.graph.node if n.op_type != "MVAU_bitserial")
    assert min(model) > others, (model, others)  # the units set the pace of every frame
    with RTLSimCore(hw, cache_dir=finn_rtlsim / "cache", progress=False, sizing_fifos=True,
                    cycle_limit=4 * sum(model) + 100_000) as sim:
        res = sim.run([x, tokens], fifo_depths=[s.max_depth + 1 for s in sim.fifos])
    np.testing.assert_array_equal(res.outputs[0].reshape(want.shape), want)
    measured = np.diff(res.frame_cycles)
    print("cycles per frame, measured against the model:", list(zip(measured.tolist(), model[1:])))
    np.testing.assert_allclose(measured, model[1:], rtol=0.02)
    assert len(set(model[1:])) > 3  # the frames differ in bits and groups: the figures are not one number


@pytest.mark.slow
@pytest.mark.rtlsim  # the tiny channel build sizes its FIFOs in Verilator
def test_channel_accelerator_python_equals_the_controller(tiny_lc_build):
    """The whole channel-skipping network as one accelerator graph: the gates with their channel heads ([d, keep, h,
    c] tokens), each gated block's channel datapath behind its router (skip: the shortcut core), the decision output
    [d, keep] per block. FINN's python execution on test images equals the numpy controller on the export: every
    decision and keep bit, the pooled sums the head reads, and the head's output."""
    import functools

    from fracskip.hls import accelerator as A
    from fracskip.hls.modal import bitserial_datapath
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend
    from fracskip.training import data as D

    man = Manifest.load(tiny_lc_build / "export")
    model = A.compose(tiny_lc_build, datapath=functools.partial(bitserial_datapath, folding=FOLD))
    assert A.decision_words(model) == 2
    images = D.load("synthetic", "test", limit=12).images.numpy()
    _, trace = Controller(man, QONNXBackend(man, progress=False), record=True).run(images)
    full = [(1 << len(w)) - 1 for w in Controller(man, None).gates.p.chan_w]
    assert (trace.keep != full).any() and len(np.unique(trace.keep[:, 0])) > 1  # groups dropped, keeps vary
    assert len(np.unique(trace.choices)) > 2  # and widths
    out = A.run_python(model, images.transpose(0, 2, 3, 1).astype(np.float32), trace=["pooled"])
    run = A._run(out, len(images), 2)
    np.testing.assert_array_equal(run.decisions, trace.choices)
    np.testing.assert_array_equal(run.keep, trace.keep)
    head_in = next(c for c in trace.calls if c["core"] == "head")["in"]
    np.testing.assert_array_equal(out["pooled"].reshape(len(images), -1), head_in.reshape(len(images), -1))
    head = A.python_model(A.load_core(tiny_lc_build, "head"))
    want = np.concatenate([_run(head, {head.graph.input[0].name: p[None].astype(np.float32)}) for p in head_in])
    np.testing.assert_array_equal(run.head_out, want.reshape(run.head_out.shape))


@pytest.mark.slow
@pytest.mark.rtlsim
def test_channel_accelerator_built_and_simulated(tiny_lc_build, monkeypatch):
    """What ``fracskip build`` emits for a channel-skipping export, in Verilator (``fracskip simulate --backend
    rtlsim``): test images back to back, logits, decisions and keep bits 100 % equal to the numpy controller and the
    torch model, cycles between the model of these images' own widths and groups kept with FIFOs that hold anything
    (nothing runs faster) and 1.25 times the model through the sized FIFOs. That model's FIFO blocking is approximate
    where every input takes its own groups, as here (random channel heads), and the trained network varies with the
    CPU: measured within 1.1 times it on one, 1.15 on 16 images and 1.23 on 48 on another. A datapath that did not
    skip the dropped groups would be far slower (on that other CPU, 65 % and 32 % of the two blocks' groups kept)."""
    from fracskip.simulate import simulate
    from fracskip.training import data as D

    split = D.load("synthetic", "test", limit=16)
    res, trace = simulate(tiny_lc_build, "rtlsim", split.images.numpy(), split.labels.numpy(), progress=False)
    assert res["bit_exact_pct"] == res["decisions_match_pct"] == res["decisions_match_torch_pct"] == 100.0, res
    assert res["keep_decisions_match_pct"] == 100.0 and trace.keep is not None
    assert all(f is None or 0 < f <= 1 for f in res["kept_channel_fraction"]) and min(
        f for f in res["kept_channel_fraction"] if f is not None) < 1  # groups are dropped
    print(f"channel accelerator: {res['cycles_per_image_measured']:.0f} cycles per image measured, "
          f"{res['cycles_per_image_model_these_images']:.0f} modelled; kept {res['kept_channel_fraction']}")
    measured = res["cycles_per_image_measured"]
    assert 0.95 * res["cycles_per_image_model_these_images_fifos_unbounded"] <= measured
    assert measured <= 1.25 * res["cycles_per_image_model_these_images"]
    # two Verilator models side by side (`fracskip simulate --jobs 2`), eight images each: the same results in
    # input order, and the steady state of each share against the model of that share, pooled; their C++ at -O2,
    # as a run long enough to repay its compile has it (the same integers whatever the compiler makes of it); the
    # progress bar advanced by each share's images as they are done
    from fracskip.hls import accelerator as A
    from fracskip.hls.rtlsim import verilator

    monkeypatch.setattr(verilator, "LONG_RUN_CYCLES", 1)
    shares_run, advanced = A.run_rtlsim_shares, []
    monkeypatch.setattr(A, "run_rtlsim_shares", lambda sims, x, per_block, advance: shares_run(
        sims, x, per_block, lambda k: (advanced.append(k), advance(k))))
    two, two_trace = simulate(tiny_lc_build, "rtlsim", split.images.numpy(), split.labels.numpy(), progress=False,
                              jobs=2)
    assert res["sim_cxx_opt"] == verilator.CXX_OPT and two["sim_cxx_opt"] == verilator.CXX_OPT_LONG
    assert sum(advanced) == len(split.images) and min(advanced) > 0, advanced
    assert two["sim_jobs"] == 2 and two["bit_exact_pct"] == two["decisions_match_torch_pct"] == 100.0, two
    np.testing.assert_array_equal(two_trace.choices, trace.choices)
    np.testing.assert_array_equal(two_trace.keep, trace.keep)
    assert two["accuracy"] == res["accuracy"] and two["latency_cycles"] == res["latency_cycles"]
    assert 0.95 * two["cycles_per_image_model_these_images_fifos_unbounded"] <= two["cycles_per_image_measured"]
    assert two["cycles_per_image_measured"] <= 1.25 * two["cycles_per_image_model_these_images"]


@pytest.mark.slow
@pytest.mark.rtlsim
def test_channel_accelerator_deploys(tiny_lc_build, tmp_path, capsys):
    """The board driver on that accelerator's deployment package, through the simulated overlay (``fracskip deploy
    PACKAGE --simulate``): it reads [d, keep] per block, its decisions, keep bits and head integers equal the
    golden's, and it counts the kept groups' BitOPs as the controller does."""
    from fracskip.cli import main
    from fracskip.hls import deploy_package as DP
    from fracskip.runtime import accelerator_driver as ad
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend
    from fracskip.simulate import kept_fraction
    from fracskip.training import data as D

    pkg = DP.package_from_build(tiny_lc_build, tmp_path / "package")
    layout = ad.load_package(pkg).extra["decisions"]
    assert layout["words_per_gate"] == 2 and layout["channels"]["groups"] == [2, 4]
    split = D.load("synthetic", "test", limit=6)
    np.save(tmp_path / "x.npy", split.images.numpy())
    np.save(tmp_path / "y.npy", split.labels.numpy())
    rc = main(["deploy", str(pkg), "--simulate", "--images", str(tmp_path / "x.npy"), "--labels",
               str(tmp_path / "y.npy"), "--json", "--batch-size", "4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    r = json.loads(out)
    assert r["decisions_match_pct"] == r["keep_decisions_match_pct"] == r["bit_exact_pct"] == 100.0, r
    assert r["accuracy"] == r["accuracy_golden"]
    man = Manifest.load(tiny_lc_build / "export")
    _, trace = Controller(man, QONNXBackend(man, progress=False)).run(split.images.numpy())
    assert r["bitops_per_input"] == pytest.approx(float(trace.bitops.mean()), rel=1e-9)
    assert r["kept_channel_fraction"] == pytest.approx(kept_fraction(man, trace.choices, trace.keep))


@pytest.mark.slow
@pytest.mark.rtlsim
def test_build_prints_the_accelerators_own_figures(tiny_lc_build):
    """`fracskip build` (the session's build went through the CLI) prints the accelerator's figures from its summary,
    the cycles measured on the HDL as emitted (not while sizing), and labels the per-path cores' sums as theirs."""
    s = json.loads((tiny_lc_build / "summary.json").read_text())
    r = s["accelerator"]
    printed = (tiny_lc_build.parent / "build_stdout.txt").read_text()
    assert (f"accelerator ({r['nodes']} nodes): {r['cycles_per_image_model']:.0f} cycles per image expected "
            f"(folding, bottleneck {r['bottleneck_model']}), {r['cycles_per_image_emitted']:.0f} measured in "
            f"Verilator as emitted on 8 images") in printed
    assert "per-path cores (one at a time from the host; not the accelerator): LUT" in printed
    assert s["accelerator"]["sizing_images"] == 8 and s["calibration"]["images"] == 64

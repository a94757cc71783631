"""hls/accelerator.py and its token plumbing ops: FINN python execution and Verilator, bit for bit.

1. The ops alone (StreamRoute_rtl, StreamMerge_rtl, TokenFork_rtl, TokenJoin_rtl, GlobalSum_rtl) in one small
   graph: frames routed to paths of different latency and arithmetic, back to back, decisions out of range
   included; python twin = numpy expectation = Verilator.
2. The tiny network's accelerator as ``fracskip build`` emits it (design dfs: bit-serial datapaths, every node
   folded by the pipeline allocator; tests/hil.py's, shared with tests/runtime/test_deploy.py), on images that take
   every path of every gated block (tests/routing.py): FINN python execution = the numpy controller on the exported
   graphs (decisions, pooled sums, logits); Verilator of the stitched graph, FIFOs sized on the images = python
   execution, integer for integer, images back to back, near the allocator's cycle model. Design routed (the
   build's path cores, a debugging aid): its composition, and one gated block's routed datapath in python.
3. The dfs graph through FINN's own CreateStitchedIP up to its Vivado call, with a recording stand-in for Vivado:
   the IPI script complete, before and after FINN's node renaming. No Vivado runs; nothing here is a bitstream.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import hil  # tests/hil.py: the shared tiny HDL build

pytestmark = [pytest.mark.rtlsim, pytest.mark.xdist_group(__name__)]

N_FRAMES = 12
H, W, C, PE = 4, 4, 8, 2


def _plumbing_graph():
    """x -> route(K=3) -> [clip 0..50 | deep FIFO then clip 20..200 | wire] -> merge; tok -> fork -> route, merge,
    join; z -> global sum. Outputs: merged frames, joined tokens, sums."""
    from fracskip.hls.accelerator import GraphBuilder

    g = GraphBuilder()
    x = g.tensor("x", (1, H, W, C), "UINT8")
    tok = g.tensor("tok", (1, 3), "INT16")
    z = g.tensor("z", (1, H, W, C), "UINT8")
    tr, tm, tj0, tj1 = (g.tensor(f"t{i}", (1, n), "INT16") for i, n in enumerate([1, 1, 3, 2]))
    g.node("TokenFork_rtl", [tok], [tr, tm, tj0, tj1], "tokfork", TokenLen=3, OutLens=[1, 1, 3, 2])
    routed = [g.tensor(f"r{k}", (1, H, W, C), "UINT8") for k in range(3)]
    g.node("StreamRoute_rtl", [x, tr], routed, "router", NumChannels=C, PE=PE, dataType="UINT8",
           numInputVectors=[1, H, W], K=3, TokenLen=1)
    p0, p1 = g.tensor("p0", (1, H, W, C), "UINT8"), g.tensor("p1", (1, H, W, C), "UINT8")
    clip = dict(NumChannels=C, PE=PE, inputDataType="UINT8", outputDataType="UINT8", numInputVectors=[1, H, W])
    g.node("Clip_rtl", [routed[0]], [p0], "clip0", lo=0, hi=50, **clip)
    g.node("Clip_rtl", [routed[1]], [p1], "clip1", lo=20, hi=200, **clip)
    y = g.tensor("y", (1, H, W, C), "UINT8")
    g.node("StreamMerge_rtl", [p0, p1, routed[2], tm], [y], "merger", NumChannels=C, PE=PE, dataType="UINT8",
           numInputVectors=[1, H, W], K=3, TokenLen=1)
    j = g.tensor("j", (1, 5), "INT16")
    g.node("TokenJoin_rtl", [tj0, tj1], [j], "tokjoin", InLens=[3, 2])
    s = g.tensor("s", (1, C), "UINT12")
    g.node("GlobalSum_rtl", [z], [s], "gsum", NumChannels=C, PE=PE, inputDataType="UINT8", outputDataType="UINT12",
           numInputVectors=[1, H, W])
    return g.model(["x", "tok", "z"], ["y", "j", "s"])


def _plumbing_expected(x, tok, z):
    d = np.clip(tok[:, 0], 0, 2).astype(int)
    y = np.where(d[:, None, None, None] == 0, np.clip(x, 0, 50),
                 np.where(d[:, None, None, None] == 1, np.clip(x, 20, 200), x))
    return y, np.concatenate([tok, tok[:, :2]], axis=1), z.reshape(len(z), -1, C).sum(axis=1)


def test_token_plumbing_python_and_rtl(finn_rtlsim):
    from fracskip.hls.accelerator import python_model, to_hw
    from fracskip.hls.rtlsim import RTLSimCore
    from finn.core.onnx_exec import execute_onnx

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N_FRAMES, H, W, C)).astype(np.float32)
    z = rng.integers(0, 256, (N_FRAMES, H, W, C)).astype(np.float32)
    d = np.array([0, 1, 2, 2, 1, 0, 0, -3, 7, 1, 2, 0])  # back-to-back switches, repeats, out-of-range decisions
    tok = np.stack([d, rng.integers(-30000, 30000, N_FRAMES), rng.integers(-30000, 30000, N_FRAMES)], 1)
    tok = tok.astype(np.float32)
    want = _plumbing_expected(x, tok, z)
    assert len(set(np.clip(d, 0, 2))) == 3

    model = _plumbing_graph()
    pm = python_model(model)
    for i in range(N_FRAMES):
        out = execute_onnx(pm, {"x": x[i:i + 1], "tok": tok[i:i + 1], "z": z[i:i + 1]})
        for name, w in zip("yjs", want):
            np.testing.assert_array_equal(out[name].reshape(w[i].shape), w[i], err_msg=f"python {name}, frame {i}")

    hw = to_hw(model, "xc7z020clg400-1", 10.0, depths={"router_o1_fifo": 64})  # path 1 slower to drain
    with RTLSimCore(hw, cache_dir=finn_rtlsim / "cache", progress=False, cycle_limit=200_000) as sim:
        res = sim.run([x, tok, z])
    for name, got, w in zip("yjs", res.outputs, want):
        np.testing.assert_array_equal(got.reshape(w.shape), w, err_msg=f"Verilator {name}")
    # the slowest node is GlobalSum (64 words in, 4 out per frame): frames stream at its pace, no stall elsewhere
    assert sim.estimate["max_cycles_node_name"] == "gsum" and sim.estimate["max_cycles"] == 68
    assert res.cycles_per_frame < 1.03 * 68, res.cycles_per_frame


# ---------------------------------------------------------------------------------------------- the whole network
N_IMAGES = hil.ACCELERATOR_IMAGES  # chosen so that every path of both gated blocks is taken


@pytest.fixture(scope="module")
def network(tiny_export, tmp_path_factory, finn_rtlsim):
    """The accelerator ``fracskip build`` emits for the tiny network (design dfs, tests/hil.py's, shared with
    tests/runtime/test_deploy.py), FINN's python execution of it, and the golden controller's results."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.rtlsim import setup_finn
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.backends.qonnx_backend import QONNXBackend

    hil.tiny_build(tiny_export, tmp_path_factory)
    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")  # the build re-initialised FINN
    acc = hil.dfs_accelerator(tiny_export, tmp_path_factory, finn_rtlsim / "cache")
    man = Manifest.load(acc["build_dir"] / "export")
    logits, trace = Controller(man, QONNXBackend(man, progress=False), record=True).run(acc["images"])
    pooled = next(c["in"] for c in trace.calls if c["core"] == "head")
    python = A.run_python(acc["hw"], acc["x"], trace=["pooled"])  # FINN's python execution, image by image
    return dict(acc, acc=acc, man=man, logits=logits, trace=trace, choices=trace.choices, pooled=pooled,
                python=python)


def _routing_is_diverse(choices: np.ndarray) -> None:
    """Every gate uses every path on these images, and consecutive images switch paths."""
    for g in range(choices.shape[1]):
        assert set(choices[:, g]) == {0, 1, 2, 3}, choices[:, g]
    assert (choices[1:] != choices[:-1]).any(axis=1).sum() >= len(choices) // 2


@pytest.mark.slow
def test_accelerator_graph_python_equals_controller(network):
    """FINN's python execution of the one accelerator graph (the build's design: bit-serial datapaths, skip routed
    past them) = the numpy controller on the exported graphs, every path of every gated block taken, skip included."""
    from fracskip.hls import accelerator as A

    _routing_is_diverse(network["choices"])
    hw = network["hw"]
    assert [i.name for i in hw.graph.input] == [A.INPUT] and [o.name for o in hw.graph.output][1] == A.DECISIONS
    ops = {n.op_type for n in hw.graph.node}
    assert {"DFSGate_rtl", "StreamRoute_rtl", "StreamMerge_rtl", "TokenFork_rtl", "GlobalSum_rtl", "MVAU_bitserial",
            "ModalActivation_rtl", "ModeFork_rtl"} <= ops
    gated = "|".join(str(b["index"]) for b in network["man"].blocks if b["gated"])
    assert not [n.name for n in hw.graph.node if re.match(rf"block({gated})_b[1-9]\d*__", n.name)]  # no path core
    out = network["python"]
    dec = out[A.DECISIONS].astype(np.int64)
    np.testing.assert_array_equal(dec, network["choices"])
    np.testing.assert_array_equal(out["pooled"].reshape(network["pooled"].shape), network["pooled"])
    head = next(v for k, v in out.items() if k not in (A.DECISIONS, "pooled"))
    logits = network["host"].logits(head.reshape(len(dec), -1))
    assert np.abs(logits - network["logits"]).max() < 1e-4
    np.testing.assert_array_equal(logits.argmax(1), network["logits"].argmax(1))


@pytest.mark.slow
@pytest.mark.parametrize("cycles, cap", [
    ({32: 1000, 64: 1000, 128: 1000, 256: 1000, 0: 1000}, 32),  # the least holds: no deeper
    ({32: 1016.5, 64: 1000, 128: 1000, 256: 1000, 0: 1000}, 64),  # static W8A8: 1.65 % at 32, nothing past 64
    ({32: None, 64: 1010, 128: 1000, 256: 1000, 0: 1000}, 128),  # a stall at 32 is passed over
    ({32: 1004.5, 64: 1004.3, 128: 1004.1, 256: 1003.6, 0: 1000}, 32),  # the default's DFS: doubling buys < 0.2 %
    ({32: 1100, 64: 1080, 128: 1060, 256: 1040, 0: 1000}, 0),  # every doubling pays: the capacities
])
def test_window_fifos_deepen_while_doubling_buys_throughput(cycles, cap):
    """The FIFOs behind the sliding windows start at 32 words and double while that buys more than
    WINDOW_CAP_GAIN; past 256 words, their capacities (two frames), as FINN's rule has them."""
    from types import SimpleNamespace as NS

    from fracskip.hls import accelerator as A

    fifos = [NS(node="win"), NS(node="other")]
    caps = [4096, 4096]
    runs = []

    def run(x, fifo_depths, reset, check=True):
        depth = fifo_depths[0]
        assert fifo_depths[1] == 4096 and not check
        runs.append(depth)
        c = cycles[depth]
        return NS(stalled=c is None, cycles_per_frame=float("nan") if c is None else c)

    best = NS(stalled=False, cycles_per_frame=cycles[0], cycles=cycles[0] * 4)
    got, window_cap = A.window_capped(NS(fifos=fifos, run=run), [None], caps, {"win"}, best)
    assert window_cap == cap, (window_cap, runs)
    assert got is best if cap == 0 else got.cycles_per_frame == cycles[cap]
    assert runs == [d for d in A.WINDOW_FIFO_DEPTHS if not cap or d <= 2 * cap]


def test_accelerator_rtl_sized_bit_exact(network):
    """Verilator of the whole stitched graph, FIFOs sized on the images, images back to back: the same integers as
    FINN's python execution; the frame buffers hold a frame; steady-state cycles per image near the allocator's
    model of the slowest node under these images' decisions."""
    from fracskip.hls import accelerator as A

    py = network["python"]
    np.testing.assert_array_equal(py[A.DECISIONS].astype(np.int64), network["choices"])
    sized, rep = hil.sized_dfs_accelerator(network["acc"])
    got = dict(zip([o.name for o in sized.graph.output], rep.sized_run.outputs))
    assert set(got) == {o.name for o in network["hw"].graph.output}
    for name, y in got.items():  # head integers and decisions, every image
        np.testing.assert_array_equal(y.reshape(py[name].shape), py[name], err_msg=name)
    from qonnx.custom_op.registry import getCustomOp

    # the buffer path of each gated block (its fork's second output to its router: the frame buffer, and any width
    # converters and FIFOs the folding puts around it) holds the whole frame until the gate has decided; which of
    # its FIFOs fills depends on the folding's stream widths
    gated = network["man"].gated_blocks
    assert len([n for n in sized.graph.node if n.name.endswith("_framebuf")]) == len(gated) == 2
    for b in gated:
        frame = int(np.prod(b["in"]["shape"][1:]))  # channels x height x width, the elements of one frame
        fifos, t = [], sized.get_node_from_name(f"block{b['index']}_fork").output[1]
        while (node := sized.find_consumer(t)).name != f"block{b['index']}_route":
            if node.op_type.startswith("StreamingFIFO"):
                fifos.append((node.name, int(getCustomOp(node).get_nodeattr("folded_shape")[-1])))
            t = node.output[0]
        assert f"block{b['index']}_framebuf" in {f for f, _ in fifos}, fifos
        held = sum(rep.peak_occupancy[f] * lanes for f, lanes in fifos)  # elements, at the peaks
        widest = max(lanes for _, lanes in fifos)
        assert held >= frame - 2 * widest, (b["index"], fifos, [rep.peak_occupancy[f] for f, _ in fifos], frame)
    assert rep.sized_cycles <= rep.unbounded_cycles * 1.03
    # at most half a frame or a frame per FIFO (and FRAME_FIFO_MIN words) where that keeps the throughput, else the
    # peaks: which one holds depends on the trained network's frame-to-frame variation (torch trains the tiny network
    # differently on different CPUs; one needed the peaks, another holds at a frame)
    assert rep.frame_bound in (0.0, *A.FRAME_BOUNDS)
    for node in sized.get_nodes_by_op_type("StreamingFIFO_rtl") if rep.frame_bound else ():
        if not node.name.endswith(A.FRAME_BUFFER):
            words = int(np.prod(getCustomOp(node).get_folded_output_shape()[:-1]))
            assert rep.depths[node.name] <= max(int(rep.frame_bound * words) + 1, A.FRAME_FIFO_MIN), node.name
    # the FIFOs behind the sliding windows carry the image unfolded k*k times: kept short, so that frames wait in
    # front of the window generators instead, which costs fewer bits than FINN's peak rule alone, and no throughput
    windows = A.window_fifos(sized)
    assert windows and rep.window_cap in A.WINDOW_FIFO_DEPTHS, rep.window_cap
    assert all(rep.depths[f] <= rep.window_cap for f in windows)
    assert rep.total_bits < rep.unbounded_bits, (rep.total_bits, rep.unbounded_bits)
    # the pipeline overlaps images. Its cycles per image (spacing of the completions of images 0 and N-1) are the
    # folding model's for this sequence of images (pipeline_folding.frame_sequence_cycles: every node its own cycles
    # in each frame's mode), within 5 %; the mean bound on these images' path frequencies is below it (blocks whose
    # modes change from frame to frame hold each other up), FINN's estimate (every unit at its slowest mode) above
    from fracskip.hls.pipeline_folding import decision_frequencies, frame_sequence_cycles, pipeline_cycles

    man, choices = network["man"], network["choices"]
    sequence, _ = frame_sequence_cycles(network["composed"], choices, man)
    mean, slowest = pipeline_cycles(network["composed"], decision_frequencies(choices[1:], man), list(man.bit_menu))
    print(f"cycles per image: measured {rep.sized_cycles:.0f}, frame-sequence model {sequence:.0f}, "
          f"mean bound {mean:.0f} ({slowest}), FINN's estimate {rep.estimate_cycles}")
    assert abs(rep.sized_cycles / sequence - 1) < 0.05, (rep.sized_cycles, sequence)
    assert 0 < mean <= sequence <= rep.estimate_cycles
    # the same model with the FIFOs holding what their sized depths say (in frames of their streams, a producer
    # held until its consumer has taken all but that): the graph's inserted FIFOs and converters take no time of
    # their own, and holding less only delays; the sizing run within 5 % of it
    unbounded, _ = frame_sequence_cycles(sized, choices, man)
    held, _ = frame_sequence_cycles(sized, choices, man, capacities=True)
    print(f"  with the sized FIFOs' capacities {held:.0f}")
    assert unbounded == pytest.approx(sequence) and held >= unbounded - 1e-6
    assert abs(rep.sized_cycles / held - 1) < 0.05, (rep.sized_cycles, held)
    # frame buffers two words deep: the gate never sees the end of a frame its router waits on (a deadlock)
    shallow = copy.deepcopy(sized)
    for node in shallow.graph.node:
        if node.name.endswith("_framebuf"):
            getCustomOp(node).set_nodeattr("depth", 2)
    assert frame_sequence_cycles(shallow, choices, man, capacities=True) == (float("inf"), float("inf"))


def test_sequence_model_trims_idle_fifos_and_deepens_the_frame_buffers(network):
    """``fifo_model`` on the sized accelerator and its images' decisions: trimming takes FIFOs to
    ``TRIM_DEPTH`` (or what an image alone left in them) only where the frame-sequence model loses at most
    ``TRIM_LOSS`` (never a frame buffer); ``covering`` picks images that take every mode of every gate; and a
    FIFO made many frames deep in front of the pipeline's slowest stage is one of them; deepening adds whole
    frames to every frame buffer (and their decisions' streams) only while each buys ``DEEPEN_GAIN`` and fits,
    nothing when nothing fits; the model's figures are left as they were."""
    from qonnx.custom_op.registry import getCustomOp

    from fracskip.hls import accelerator as A
    from fracskip.hls import fifo_model as F

    sized, _ = hil.sized_dfs_accelerator(network["acc"])
    choices = np.asarray(network["choices"])
    seq = F.SequenceModel(sized, network["man"], choices)
    depths = {k: int(i.get_nodeattr("depth")) for k, i in seq.fifos.items()}
    base = seq.cycles(depths)
    assert seq.cycles(None) <= base < np.inf
    # the FIFO into the first node after the stream input: images wait there for everything behind it
    first = sized.find_consumer(sized.graph.input[0].name)
    while not first.op_type.startswith("StreamingFIFO"):
        first = sized.find_consumer(first.output[0])
    waiting = {**depths, first.name: 4 * seq.words(first.name) + 1}
    floor = dict.fromkeys(depths, 2) | {first.name: 40}  # what an image passing alone left in each
    bits = waiting[first.name] * seq.fifos[first.name].get_instream_width()  # it, and any as large
    small, trimmed = F.trim(seq, waiting, spare=A.window_fifos(sized), min_bits=bits, floor=floor)
    assert first.name in trimmed and small[first.name] == 40
    assert all(small[k] == max(F.TRIM_DEPTH, floor[k]) < waiting[k] for k in trimmed)
    assert not any(k.endswith(A.FRAME_BUFFER) for k in trimmed)
    assert seq.cycles(small) <= seq.cycles(waiting) * (1 + F.TRIM_LOSS)
    assert {k: int(getCustomOp(n).get_nodeattr("depth")) for k, n in
            ((n.name, n) for n in sized.get_nodes_by_op_type("StreamingFIFO_rtl"))} == depths  # left as it was

    cover = F.covering(choices)
    assert len(cover) < len(choices) and {(g, m) for i in cover for g, m in enumerate(choices[i])} == {
        (g, m) for row in choices for g, m in enumerate(row)}

    deeper, steps = F.deepen(seq, depths, lambda d: True)
    assert steps[0][:2] == (0, base) and len(steps) <= F.DEEPEN_MAX + 1
    for (_, before, bits_before), (more, after, bits) in zip(steps, steps[1:]):
        assert after <= before * (1 - F.DEEPEN_GAIN) and bits > bits_before
    more = steps[-1][0]
    for k in (k for k in depths if k.endswith(A.FRAME_BUFFER)):
        assert deeper[k] == ((1 + more) * seq.words(k) + 1 if more else depths[k])
    assert F.deepen(seq, depths, lambda d: False) == (depths, steps[:1])
    # from depths that hold frames more already (a second deepening, judged by Yosys), it goes on from there
    assert F.frames_held(seq, deeper) == more and F.frames_held(seq, depths) == 0
    assert F.deepen(seq, deeper, lambda d: True) == (deeper, steps[-1:])


@pytest.mark.slow
def test_compose_design_dfs_is_the_allocators_folding(network):
    """The accelerator ``fracskip build`` emits (design dfs) is the pipeline allocator's design: bit-serial
    datapaths in place of the gated blocks' path cores, and every node the folding names folded as it says."""
    from qonnx.custom_op.registry import getCustomOp

    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A

    model, info, build_dir = network["composed"], network["info"], network["build_dir"]
    folding = {k: v for k, v in info["folding"].items() if k != "Defaults"}
    nodes = {n.name: n for n in model.graph.node}
    assert set(folding) == set(nodes)  # the allocator folded every node of this graph, and only those
    for name, f in folding.items():
        n = nodes[name]
        assert n.op_type == f.get("op_type", n.op_type), name
        inst = getCustomOp(n)
        for k, v in f.items():
            if k != "op_type":
                assert inst.get_nodeattr(k) == v, (name, k, inst.get_nodeattr(k), v)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MVAU_bitserial") >= 2 and "StreamMerge_rtl" in ops
    gated = [b["index"] for b in network["man"].gated_blocks]
    assert not [n for n in nodes if re.match(rf"block({'|'.join(map(str, gated))})_b[1-9]\d*__", n)]
    assert info["cycles_per_image_model"] > 0 and info["units"] == list(A.FOLDED_UNITS)
    with pytest.raises(FracskipError, match="unknown accelerator design"):
        A.compose_design(build_dir, "static")


@pytest.mark.slow
def test_static_baseline_emitted_and_measured(network, monkeypatch):
    """A static baseline as ``fracskip build --baselines`` emits it (``build_accelerator``, design static_W4A4:
    every block at 4 bits, folded by the same allocator on the same budget, FIFOs sized in Verilator) and as the
    bench measures it (``rtlsim_run``): its logits equal the controller's with every gate forced to 4 bits, bit for
    bit; it has no decision output; its steady-state cycles per image are the folding's model within 5 %."""
    from fracskip.hls import accelerator as A

    from fracskip.errors import FracskipError

    hil.keep_finn_env(monkeypatch)  # rtlsim_run sets FINN up in the baseline's folder
    build_dir, design = network["build_dir"], "static_W4A4"
    rep = A.build_accelerator(build_dir, network["images"], design=design, cache_dir=network["cache"])
    out = A.design_dir(build_dir, design)
    assert out == build_dir / "baselines" / design and (out / "report" / "accelerator.json").is_file()
    model = A.accelerator_model(build_dir, design)
    assert [o.name for o in model.graph.output] != [A.DECISIONS] and len(model.graph.output) == 1
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"DFSGate_rtl", "StreamRoute_rtl", "MVAU_bitserial", "ModalActivation_rtl"}, ops
    assert rep["design"] == design and rep["fits_estimate"]
    assert rep["throughput_table"].keys() >= {design} and "dfs" not in rep["throughput_table"]
    res, run = A.rtlsim_run(build_dir, network["images"], network["labels"], cache_dir=network["cache"],
                            design=design)
    assert res["n"] == len(network["images"]) and res["bit_exact_pct"] == 100.0, res
    assert res["decisions_match_pct"] is None and run.decisions.shape == (len(network["images"]), 0)
    assert res["argmax_agreement_pct"] == 100.0
    print(f"{design}: measured {res['cycles_per_image_measured']:.0f} cycles per image, model "
          f"{res['cycles_per_image_model']:.0f}")
    assert abs(res["measured_vs_model"] - 1) < 0.05, res["measured_vs_model"]
    # the same model evaluated on two threads (`fracskip simulate --threads 2`): a Verilator model of its own (made
    # now, or by an earlier run into the same cache), the same outputs cycle for cycle
    two, _ = A.rtlsim_run(build_dir, network["images"], network["labels"], cache_dir=network["cache"],
                          design=design, threads=2)
    assert (two["sim_threads"], res["sim_threads"]) == (2, 1) and two["sim_model"] != res["sim_model"]
    assert two["bit_exact_pct"] == 100.0 and two["cycles"] == res["cycles"] and two["latency_cycles"] == res[
        "latency_cycles"]
    # the golden is the forced network, not the gated one: forcing changes some image's logits on these images
    from fracskip.runtime.controller import Controller
    from fracskip.backends.qonnx_backend import QONNXBackend

    forced, _ = Controller(network["man"], QONNXBackend(network["man"], progress=False)).run(network["images"], bits=4)
    assert not np.array_equal(forced, network["logits"])
    with pytest.raises(FracskipError, match="3 bits: the gated blocks have paths at 0, 2, 4, 8"):
        Controller(network["man"], None).run(network["images"], bits=3)


@pytest.mark.slow
def test_emitted_hdl_synthesizes_node_by_node(network, tmp_path):
    """Yosys of the emitted HDL (hls/synth/hdl.py: each node cut out, stitched, read by read_slang): FINN's own RTL
    (MVAU_rtl with its DSP48E1 and LUT6_2, FIFOs, sliding windows) and fracskip's (bit-serial unit, gate) map to
    7-series cells; MVAU_rtl's DSP slices are what its RTL's lane packing gives (``mvau_rtl_dsp``), its LUTs near
    ``mvau_rtl_lut``'s; a FIFO a frame deep takes block RAM, one 2 deep none; the width converter model ``dwc_lut``
    is Yosys's figure within 35 %; identical nodes are synthesized once and the totals are the sum over the
    nodes."""
    from qonnx.custom_op.registry import getCustomOp

    from fracskip.hls.pipeline_folding import dwc_lut, mvau_rtl_dsp, mvau_rtl_lut, narrow_weights
    from fracskip.hls.synth import hdl

    hw, part = network["hw"], network["part"]
    by_type: dict[str, list] = {}
    for n in hw.graph.node:
        by_type.setdefault(n.op_type, []).append(n)
    fifos = sorted(by_type["StreamingFIFO_rtl"], key=lambda n: getCustomOp(n).get_nodeattr("depth"))
    framebuf = next(n for n in fifos if n.name.endswith("_framebuf"))
    picked = [by_type["MVAU_rtl"][0], by_type["MVAU_bitserial"][0], by_type["DFSGate_rtl"][0],
              by_type["ConvolutionInputGenerator_rtl"][0], fifos[0], framebuf]
    figs = {n.name: hdl.synthesize_node(hw, n) for n in picked}
    for n in picked:
        f = figs[n.name]
        print(n.op_type, n.name, {k: f[k] for k in hdl.RESOURCES}, f"{f['seconds']} s")
        assert f["LUT"] > 0 and f["FF"] > 0, n.name
    mvau = picked[0]
    assert figs[picked[1].name]["DSP"] == 0  # the bit-serial unit's RTL says use_dsp "no", as Vivado would keep it
    assert figs[mvau.name]["DSP"] == mvau_rtl_dsp(getCustomOp(mvau), part, narrow_weights(hw, mvau)) > 0
    assert figs[mvau.name]["cells"]["DSP48E1"] == figs[mvau.name]["DSP"]  # mvu.sv's primitive, kept as a cell
    # its LUTs, which FINN's estimate leaves out, by the model fitted to this flow (within 15 %, a little above
    # on the smallest nodes)
    got, model = figs[mvau.name]["LUT"], mvau_rtl_lut(getCustomOp(mvau), part)
    assert getCustomOp(mvau).lut_estimation(part) < 0.5 * got and 0.85 * got <= model <= 1.2 * got + 200, (got, model)
    shallow = getCustomOp(fifos[0])
    assert shallow.get_nodeattr("depth") <= 32 and figs[fifos[0].name]["BRAM_18K"] == 0
    # fifo.sv's shift-register FIFO in SRLs, as Vivado builds it: one per bit, not its words in flip-flops
    srl = sum(v for c, v in figs[fifos[0].name]["cells"].items() if c.startswith("SRL"))
    assert srl >= shallow.get_instream_width(), figs[fifos[0].name]["cells"]
    assert figs[fifos[0].name]["FF"] < 2 * shallow.get_instream_width() + 32
    assert figs[framebuf.name]["BRAM_18K"] > 0
    # moved into LUT RAM (fifo_memory), it is built there, as Vivado would: Yosys reads fifo.sv's RAM_STYLE
    from fracskip.hls import fifo_memory

    fb = getCustomOp(framebuf)
    move = fifo_memory.Move(framebuf.name, fb.get_nodeattr("depth"), fb.get_instream_width_padded(), "distributed",
                            0.0, 0.0)
    moved = fifo_memory.apply(hw, [move], part, 10.0)
    lutram = hdl.synthesize_node(moved, moved.get_node_from_name(framebuf.name))
    assert lutram["BRAM_18K"] == 0 and any(c.startswith("RAM") for c in lutram["cells"]), lutram["cells"]
    # the allocator's width converter model (fitted to Yosys of dwc_axi), on the widest converter each way here
    dwcs = [getCustomOp(n) for n in by_type["StreamingDataWidthConverter_rtl"]]
    for narrowing in (True, False):
        way = [d for d in dwcs if (d.get_instream_width() > d.get_outstream_width()) == narrowing]
        d = max(way, key=lambda d: max(d.get_instream_width(), d.get_outstream_width()))
        got = hdl.synthesize_node(hw, d.onnx_node)["LUT"]
        model = dwc_lut(d.get_instream_width(), d.get_outstream_width())
        print(d.onnx_node.name, d.get_instream_width(), "->", d.get_outstream_width(), "LUT", got, "model", model)
        assert abs(model / got - 1) < 0.35
    # the whole-graph sum, cached by content: a second graph with the same nodes synthesizes nothing new
    sub = copy.deepcopy(hw)
    for n in list(sub.graph.node):
        if n.name not in {picked[3].name, fifos[0].name}:
            sub.graph.node.remove(n)
    res = hdl.synthesize_graph(sub, {"LUT": 53200, "FF": 106400, "BRAM_18K": 280, "DSP": 220}, tmp_path)
    assert res["distinct_nodes"] == 2 and res["fits"]
    assert res["total"] == {r: sum(res["nodes"][k][r] for k in res["nodes"]) for r in hdl.RESOURCES}
    assert res["total"]["LUT"] == figs[picked[3].name]["LUT"] + figs[fifos[0].name]["LUT"]
    again = hdl.synthesize_graph(sub, None, tmp_path)
    assert again["total"] == res["total"] and "fits" not in again and again["seconds"] < res["seconds"]


@pytest.mark.slow
def test_design_over_the_device_by_yosys_is_folded_again(network, tmp_path, monkeypatch):
    """The fit judged on Yosys (``build_accelerator(synth=True)``, ``fracskip build --synth``): a design whose emitted
    HDL synthesizes to more than the device is folded again, with what synthesis found beyond the folding's
    estimate kept out of its budget, until it fits. Yosys of the tiny network's static pipeline takes a quarter of
    an hour on a cold cache (test_emitted_hdl_synthesizes_node_by_node synthesizes its kinds of node): here synthesis
    reports the emitted graph's FINN estimate plus a fixed excess, so that the first folding is over the device by
    one LUT. The loop must then fold once more, smaller and no faster, and stop when that fits; and where synthesis
    takes more beyond the folding than the device holds, stop with an error that says so."""
    from fracskip import bitstreams
    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A
    from fracskip.hls.pipeline_folding import emitted_resources
    from fracskip.hls.synth import hdl

    hil.keep_finn_env(monkeypatch)
    build_dir = tmp_path / "build"
    shutil.copytree(network["build_dir"], build_dir, ignore=shutil.ignore_patterns("accelerator", "baselines"))
    board = json.loads((build_dir / "summary.json").read_text())["board"]
    device = bitstreams.load(board["name"]).resources["LUT"]
    excess = {"LUT": 0}
    calls = []

    def estimate_plus_excess(model, board, design, path, *args, **kwargs):
        total = dict(emitted_resources(model, board["part"])["total"], FF=0)
        total = {r: int(total[r]) + (excess["LUT"] if r == "LUT" else 0) for r in hdl.RESOURCES}
        calls.append(total["LUT"])
        path.write_text(json.dumps({"design": design, "total": total}))
        return {"total": total, "fits": all(total[r] <= board["resources"][r] for r in hdl.RESOURCES)}

    monkeypatch.setattr(hdl, "synth_report", estimate_plus_excess)
    design = "static_W2A2"
    first = A.build_accelerator(build_dir, None, design=design, cache_dir=network["cache"], synth=True)
    assert first["fit_attempts"] == 1 and first["fits_device_synth"] and first["fit_reserve"] == {} and calls
    emitted, folded = first["resources_estimate_emitted"]["total"]["LUT"], first["resources_estimate_inserted"]["LUT"]
    excess["LUT"] = device + 1 - int(emitted)
    again = A.build_accelerator(build_dir, None, design=design, cache_dir=network["cache"], synth=True)
    print(f"{design}: {folded:.0f} LUT by the folding, {emitted:.0f} as emitted; over the device by one LUT: "
          f"{again['fit_attempts']} foldings, reserve {again['fit_reserve']}, "
          f"{again['resources_estimate_inserted']['LUT']:.0f} LUT by the folding, "
          f"{again['cycles_per_image_model']:.0f} cycles per image (was {first['cycles_per_image_model']:.0f})")
    assert len(calls) == 3 and calls[1] == device + 1  # the first folding again, over by one
    assert again["fit_attempts"] == 2 and again["fits_device_synth"] and calls[-1] <= device
    assert again["fit_reserve"] == {"LUT": device + 1 - folded}  # what synthesis took beyond the folding
    assert again["resources_estimate_inserted"]["LUT"] <= folded - 1
    # the first folding was the fastest within the looser budget (the tiny network's first block bounds both)
    assert again["cycles_per_image_model"] >= first["cycles_per_image_model"]
    report = json.loads((A.design_dir(build_dir, design) / "report" / "accelerator.json").read_text())
    saved = json.loads((A.design_dir(build_dir, design) / "report" / "synth.json").read_text())
    assert report["resources_synth"] == saved["total"] and saved["total"]["LUT"] == calls[-1]
    # what synthesis takes beyond the folding is more than the device holds: no folding can fit, and it says so
    excess["LUT"] = 2 * device
    with pytest.raises(FracskipError, match="cannot be folded to fit this device"):
        A.build_accelerator(build_dir, None, design=design, cache_dir=network["cache"], synth=True)


@pytest.mark.slow
def test_routed_design_block_equals_its_path_cores(network):
    """Design ``routed`` (``compose_design(BUILD, "routed")``, ``python -m fracskip.hls.accelerator --design
    routed``: the build's path cores as they were folded, a debugging aid; ``fracskip build`` emits dfs): every
    gated block a StreamRoute to its K paths (each path core in the graph) and a StreamMerge. One gated block's
    routed datapath alone, a real block input in every mode: FINN's python execution = the path core of the frame's
    mode (skip: the input itself, or the downsampling shortcut core), and the modes differ."""
    from finn.core.onnx_exec import execute_onnx

    from fracskip.hls import accelerator as A

    man, build_dir = network["man"], network["build_dir"]
    menu = list(man.bit_menu)
    model, info = A.compose_design(build_dir, "routed")
    assert info == {"design": "routed"}
    names = [n.name for n in model.graph.node]
    assert "MVAU_bitserial" not in {n.op_type for n in model.graph.node}
    for b in man.gated_blocks:
        route = model.get_node_from_name(f"block{b['index']}_route")
        assert route.op_type == "StreamRoute_rtl" and len(route.output) == len(menu), b["index"]
        merge = model.get_node_from_name(f"block{b['index']}_merge")
        assert merge.op_type == "StreamMerge_rtl" and len(merge.input) == len(menu) + 1, b["index"]
        for bits in menu:
            if man.path_core(b["index"], bits):
                assert any(n.startswith(f"block{b['index']}_b{bits}__") for n in names), (b["index"], bits)

    blk = man.gated_blocks[-1]
    index = blk["index"]
    _, ci, hi, wi = blk["in"]["shape"]
    _, co, ho, wo = blk["out"]["shape"]
    paths = {bits: None if (c := man.path_core(index, bits)) is None else A.load_core(build_dir, c) for bits in menu}
    spec = A.BlockSpec(index=index, gate=blk["gate"], channels=ci, hw=(hi, wi), out_channels=co, out_hw=(ho, wo),
                       pe=1, paths=paths)
    g = A.GraphBuilder()
    x, mode = g.tensor("block_in", (1, hi, wi, ci), "UINT8"), g.tensor("mode", (1, 1), "INT16")
    y = A.routed_paths(g, spec, x, mode)
    pm = A.python_model(g.model([x, mode], [y], opset_from=next(c for c in paths.values() if c is not None)))
    frame = next(c["in"] for c in network["trace"].calls if c["core"].startswith(f"block{index}_b"))[:1]
    frame = frame.transpose(0, 2, 3, 1).astype(np.float32)  # a real input of the block (NCHW there, NHWC here)
    outs = []
    for d, bits in enumerate(menu):
        got = execute_onnx(pm, {x: frame, mode: np.array([[d]], np.float32)})[y]
        core = paths[bits]
        want = frame if core is None else \
            execute_onnx(A.python_model(core), {core.graph.input[0].name: frame})[core.graph.output[0].name]
        np.testing.assert_array_equal(got, want, err_msg=f"block {index}, {bits}-bit path")
        outs.append(got)
    assert all(not np.array_equal(outs[i], outs[j]) for i in range(len(outs)) for j in range(i)), "modes must matter"


# ---------------------------------------------------------------------------------------------- stitched IP
def _stitch_until_vivado(model, part: str, clk: float, calls: Path) -> str:
    """FINN's CreateStitchedIP of ``model``, which must call the stand-in exactly once, in its project folder, the
    way FINN's make_project.sh calls Vivado, and then stop for want of Vivado's output; returns the IPI script."""
    from fracskip.hls.stitch_ip import TCL, create_stitched_ip

    before = len(hil.tool_calls(calls))
    with pytest.raises(Exception, match=hil.FINN_STOPS_AFTER_VIVADO):
        create_stitched_ip(model, part, clk)
    (call,) = hil.tool_calls(calls)[before:]
    proj = call.cwd
    assert call.tool == "vivado" and proj.name.startswith("vivado_stitch_proj_"), call
    assert call.args == f"-mode batch -source {TCL}", call
    assert f"create_project finn_vivado_stitch_proj {proj} " in (proj / TCL).read_text()
    assert (call.rtllib / "memstream").is_dir(), call  # ip_repo_paths: $::env(FINN_RTLLIB)/memstream
    return (proj / TCL).read_text()


@pytest.mark.slow
def test_stitched_ip_script_is_complete(network, tmp_path, monkeypatch):
    """FINN's own CreateStitchedIP of the accelerator graph, up to its Vivado call (a recording stand-in; nothing
    here is a bitstream), after FINN's node renaming (GiveUniqueNodeNames with a partition prefix, as ZynqBuild does
    once the HDL exists: the custom ops must still name their files and modules), checked by ``stitch_problems``:
    every RTL file of every node added and present, every library module an added file instantiates declared,
    every node's cell, its module declared in the added files with the ports of every AXI-stream interface the node
    names, clock and reset connected and associated with every stream (ASSOCIATED_BUSIF/RESET), every stream
    connected producer to consumer, the graph's streams external."""
    import finn.transformation.fpgadataflow.create_stitched_ip as csi
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames

    from fracskip.hls.stitch_ip import stitch_problems

    calls = hil.recording_stand_ins(tmp_path, monkeypatch)
    # FINN polls each of the ~1,100 added files until its size and mtime hold still for 50 ms (for slow shared file
    # systems), about a minute here; these were all written before the stitch, so being there is what counts
    monkeypatch.setattr(csi, "wait_for_file", functools.partial(csi.wait_for_file, stable_for=0))
    hw = copy.deepcopy(network["hw"]).transform(GiveUniqueNodeNames("sdp_0_"))
    hw = hw.transform(PrepareIP(network["part"], network["clk"]))  # keeps the HDL already generated, as FINN does
    assert all(n.name.startswith("sdp_0_") for n in hw.graph.node)
    ours = {n.op_type for n in hw.graph.node if type(getCustomOp(n)).__module__.startswith("fracskip.")}
    assert {"DFSGate_rtl", "TokenFork_rtl", "StreamRoute_rtl", "StreamMerge_rtl", "TokenJoin_rtl", "GlobalSum_rtl",
            "DuplicateStreams_rtl", "MVAU_bitserial", "ModalActivation_rtl", "ModeFork_rtl"} <= ours  # fracskip's ops
    assert "StreamingFIFO_rtl" in {n.op_type for n in hw.graph.node}
    for n in hw.graph.node:  # each of ours knows the module it was generated as, no longer its node's name
        if n.op_type in ours:
            assert getCustomOp(n).get_nodeattr("gen_top_module") not in ("", n.name), n.name
    tcl = _stitch_until_vivado(hw, network["part"], network["clk"], calls)
    assert f"-part {network['part']}" in tcl
    assert stitch_problems(hw, tcl) == []

    # the check can fail: one node's file, one stream, one clock, one clock association taken away
    lines = tcl.splitlines()
    gate_node = next(n for n in hw.graph.node if n.op_type == "DFSGate_rtl")
    gate = gate_node.name
    first_file = f"add_files -norecurse {getCustomOp(gate_node).get_rtl_file_list(abspath=True)[0]}"  # its wrapper
    assert first_file in lines
    assert any(p.startswith(f"{gate}: RTL file") for p in stitch_problems(hw, tcl.replace(first_file + "\n", "")))
    names = {n.name for n in hw.graph.node}
    pins = re.compile(r"connect_bd_intf_net \[get_bd_intf_pins (\w+)/\w+\] \[get_bd_intf_pins (\w+)/\w+\]")
    link = next(ln for ln in lines  # node to node, not inside a node's hierarchy (its weight streamer)
                if (m := pins.fullmatch(ln)) and {m[1], m[2]} <= names)
    assert any("not connected" in p for p in stitch_problems(hw, tcl.replace(link + "\n", "")))
    clock = f"connect_bd_net [get_bd_ports ap_clk] [get_bd_pins {gate}/ap_clk]"
    assert clock in lines
    assert f"{gate}: clock ap_clk not connected" in stitch_problems(hw, tcl.replace(clock + "\n", ""))
    wrapper = Path(first_file.split()[-1])
    unassociated = tmp_path / wrapper.name
    unassociated.write_text(re.sub(r"\(\* X_INTERFACE_PARAMETER[^*]*\*\)", "", wrapper.read_text()))
    problems = stitch_problems(hw, tcl.replace(str(wrapper), str(unassociated)))
    assert any(p.startswith(f"{gate}: module") and "ASSOCIATED_BUSIF" in p for p in problems), problems
    core = next(ln for ln in lines if ln.endswith("/dfsgate.v"))  # the gate's core, which its wrapper instantiates
    assert any("module dfsgate," in p for p in stitch_problems(hw, tcl.replace(core + "\n", "")))


@pytest.mark.slow
def test_set_fifo_depths_leaves_its_input_stitchable(finn_rtlsim, tmp_path, monkeypatch):
    """Sizing FIFOs returns a new model and leaves the one it was given intact: clearing a FIFO's
    code_gen_dir_ipgen in the caller's model made FINN's CreateStitchedIP of that model stop before Vivado
    ("Expected file /<fifo>.v ... not found"), which is how the stitched-IP test failed after the sizing test."""
    from fracskip.hls.accelerator import to_hw
    from fracskip.hls.rtlsim import set_fifo_depths
    from fracskip.hls.stitch_ip import stitch_problems
    from qonnx.custom_op.registry import getCustomOp

    part, clk = "xc7z020clg400-1", 10.0
    calls = hil.recording_stand_ins(tmp_path, monkeypatch)
    hw = to_hw(_plumbing_graph(), part, clk)
    attrs = {n.name: (getCustomOp(n).get_nodeattr("depth"), getCustomOp(n).get_nodeattr("code_gen_dir_ipgen"))
             for n in hw.get_nodes_by_op_type("StreamingFIFO_rtl")}
    sized = set_fifo_depths(hw, {"router_o1_fifo": 64}, part, clk)
    assert {n.name: (getCustomOp(n).get_nodeattr("depth"), getCustomOp(n).get_nodeattr("code_gen_dir_ipgen"))
            for n in hw.get_nodes_by_op_type("StreamingFIFO_rtl")} == attrs
    assert getCustomOp(sized.get_node_from_name("router_o1_fifo")).get_nodeattr("depth") == 64
    for m in (hw, sized):
        m = copy.deepcopy(m)
        assert stitch_problems(m, _stitch_until_vivado(m, part, clk, calls)) == []


@pytest.mark.slow
def test_model_on_images_is_the_emitted_graphs_frame_sequence_model(network, monkeypatch):
    """The bench's figure for the whole test set (``model_on_images``): the frame-sequence model of the sized graph,
    with its FIFOs' capacities, on the decisions the hardware takes (torch's, taken batch by batch), and those
    decisions' BitOPs."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.pipeline_folding import frame_sequence_cycles
    from fracskip.runtime.controller import Controller

    sized, _ = hil.sized_dfs_accelerator(network["acc"])
    hil.keep_finn_env(monkeypatch)  # model_on_images sets FINN up in the build's folder
    monkeypatch.setattr(A, "accelerator_model", lambda build_dir, design="dfs": sized)  # the tiny build emits none
    got = A.model_on_images(network["build_dir"], network["images"], batch=3)
    want = frame_sequence_cycles(sized, network["choices"], network["man"], capacities=True)
    assert got["n"] == len(network["images"])
    assert (got["cycles_per_image_model"], got["latency_cycles_model"]) == pytest.approx(want)
    assert got["bitops_per_image"] == pytest.approx(Controller(network["man"], None).bitops(network["choices"]).mean())

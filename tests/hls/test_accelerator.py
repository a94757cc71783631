"""hls/accelerator.py and its token plumbing ops: FINN python execution and Verilator, bit for bit.

1. The ops alone (StreamRoute_rtl, StreamMerge_rtl, TokenFork_rtl, TokenJoin_rtl, GlobalSum_rtl) in one small
   graph: frames routed to paths of different latency and arithmetic, back to back, decisions out of range
   included; python twin = numpy expectation = Verilator.
2. The whole tiny routed network (tests/routing.py: every path of every gated block taken within the batch) as one
   accelerator graph: FINN python execution = the numpy controller on the exported graphs (decisions, pooled sums,
   logits); Verilator of the stitched graph = python execution, integer for integer, images back to back.
3. The same graph through FINN's own CreateStitchedIP up to its Vivado call, with a recording stand-in for Vivado:
   the IPI script complete, before and after FINN's node renaming. No Vivado runs; nothing here is a bitstream.
"""

from __future__ import annotations

import copy
import functools
import os
import re
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
N_IMAGES = 8  # chosen so that every path of both gated blocks is taken; FINN's python execution, ~7 s an image


@pytest.fixture(scope="module")
def network(tiny_export, tmp_path_factory, finn_rtlsim):
    """The tiny routed network's HDL build, its accelerator graph (HW, FIFOs, HDL), the golden controller's results."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.rtlsim import setup_finn
    from fracskip.runtime.controller import Controller
    from fracskip.runtime.manifest import Manifest
    from fracskip.runtime.qonnx_backend import QONNXBackend

    build_dir = hil.tiny_build(tiny_export, tmp_path_factory)
    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")  # the build re-initialised FINN
    images, _ = hil.covering_images(build_dir, N_IMAGES)
    man = Manifest.load(build_dir / "export")
    logits, trace = Controller(man, QONNXBackend(man, progress=False), record=True).run(images)
    pooled = next(c["in"] for c in trace.calls if c["core"] == "head")
    summary = __import__("json").loads((build_dir / "summary.json").read_text())
    hw = A.to_hw(A.compose(build_dir), summary["board"]["part"], summary["board"]["clk_ns"])
    host = A.Host(build_dir)
    x = host.stream(images)
    python = A.run_python(hw, x, trace=["pooled"])  # FINN's python execution, image by image (about 7 s each)
    return dict(build_dir=build_dir, images=images, logits=logits, choices=trace.choices, pooled=pooled, hw=hw,
                host=host, x=x, python=python, part=summary["board"]["part"], clk=summary["board"]["clk_ns"],
                cache=finn_rtlsim / "cache")


def _routing_is_diverse(choices: np.ndarray) -> None:
    """Every gate uses every path on these images, and consecutive images switch paths."""
    for g in range(choices.shape[1]):
        assert set(choices[:, g]) == {0, 1, 2, 3}, choices[:, g]
    assert (choices[1:] != choices[:-1]).any(axis=1).sum() >= len(choices) // 2


@pytest.mark.slow
def test_accelerator_graph_python_equals_controller(network):
    """FINN's python execution of the one accelerator graph = the numpy controller on the exported graphs."""
    from fracskip.hls import accelerator as A

    _routing_is_diverse(network["choices"])
    hw = network["hw"]
    assert [i.name for i in hw.graph.input] == [A.INPUT] and [o.name for o in hw.graph.output][1] == A.DECISIONS
    ops = {n.op_type for n in hw.graph.node}
    assert {"DFSGate_rtl", "StreamRoute_rtl", "StreamMerge_rtl", "TokenFork_rtl", "GlobalSum_rtl"} <= ops
    out = network["python"]
    dec = out[A.DECISIONS].astype(np.int64)
    np.testing.assert_array_equal(dec, network["choices"])
    np.testing.assert_array_equal(out["pooled"].reshape(network["pooled"].shape), network["pooled"])
    head = next(v for k, v in out.items() if k not in (A.DECISIONS, "pooled"))
    logits = network["host"].logits(head.reshape(len(dec), -1))
    assert np.abs(logits - network["logits"]).max() < 1e-4
    np.testing.assert_array_equal(logits.argmax(1), network["logits"].argmax(1))


@pytest.mark.slow
def test_accelerator_rtl_sized_bit_exact(network):
    """Verilator of the whole stitched graph, FIFOs sized on the images, images back to back: the same integers as
    FINN's python execution; the frame buffers hold a frame; steady-state cycles per image near the slowest node."""
    from fracskip.hls import accelerator as A

    py = network["python"]
    np.testing.assert_array_equal(py[A.DECISIONS].astype(np.int64), network["choices"])
    sized, rep = A.size_fifos(network["hw"], network["x"], network["part"], network["clk"], cache_dir=network["cache"])
    got = dict(zip([o.name for o in sized.graph.output], rep.sized_run.outputs))
    assert set(got) == {o.name for o in network["hw"].graph.output}
    for name, y in got.items():  # head integers and decisions, every image
        np.testing.assert_array_equal(y.reshape(py[name].shape), py[name], err_msg=name)
    from qonnx.custom_op.registry import getCustomOp

    buffers = {n.name: int(np.prod(getCustomOp(n).get_nodeattr("folded_shape")[:-1]))
               for n in sized.graph.node if n.name.endswith("_framebuf")}
    assert len(buffers) == 2  # one per gated block, each holds the whole frame until the gate has decided
    for name, words in buffers.items():
        assert rep.depths[name] > rep.peak_occupancy[name] >= words - 2, (name, rep.peak_occupancy[name], words)
    assert rep.sized_cycles <= rep.unbounded_cycles * 1.03
    # the pipeline overlaps images: far below the sum of the stages, near the slowest one
    assert rep.sized_cycles < 1.5 * rep.estimate_cycles, (rep.sized_cycles, rep.estimate_cycles)


@pytest.mark.slow
def test_compose_design_dfs_is_the_allocators_folding(tiny_export, tmp_path_factory, finn_rtlsim):
    """The accelerator ``fracskip build`` emits (design dfs) is the pipeline allocator's design: bit-serial
    datapaths in place of the gated blocks' path cores, and every node the folding names folded as it says."""
    from qonnx.custom_op.registry import getCustomOp

    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A
    from fracskip.hls.rtlsim import setup_finn
    from fracskip.runtime.manifest import Manifest

    build_dir = hil.tiny_build(tiny_export, tmp_path_factory)
    setup_finn(finn_rtlsim / "finn_build", cache_dir=finn_rtlsim / "cache")  # the build re-initialised FINN
    model, info = A.compose_design(build_dir, "dfs")
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
    gated = [b["index"] for b in Manifest.load(build_dir / "export").gated_blocks]
    assert not [n for n in nodes if re.match(rf"block({'|'.join(map(str, gated))})_b[1-9]\d*__", n)]
    assert info["cycles_per_image_model"] > 0 and info["units"] == list(A.FOLDED_UNITS)
    with pytest.raises(FracskipError, match="unknown accelerator design"):
        A.compose_design(build_dir, "static")


# ---------------------------------------------------------------------------------------------- stitched IP
FINN_STOPS_AFTER_VIVADO = "no wrapper HDL found"  # FINN's error when the block design Vivado writes is absent


def _recording_vivado(root: Path, monkeypatch) -> Path:
    """A clearly named stand-in for ``vivado``, found by FINN through FINN_TOOL_DIR_OVERRIDE: it appends its
    working folder, its arguments and the FINN_RTLLIB it was given (the IPI script reads $::env(FINN_RTLLIB)) to
    the returned file, and does nothing else."""
    shim = root / "recording-stand-in-not-vivado"
    shim.mkdir()
    calls = root / "vivado_calls.txt"
    (shim / "vivado").write_text("#!/bin/sh\n# a recording stand-in for Vivado: it records how it was called, and "
                                 f"does nothing\necho \"$PWD|$*|$FINN_RTLLIB\" >> {calls}\n")
    os.chmod(shim / "vivado", 0o755)
    monkeypatch.setenv("FINN_TOOL_DIR_OVERRIDE", str(shim))
    return calls


def _stitch_until_vivado(model, part: str, clk: float, calls: Path) -> str:
    """FINN's CreateStitchedIP of ``model``, which must call the stand-in exactly once, in its project folder, the
    way FINN's make_project.sh calls Vivado, and then stop for want of Vivado's output; returns the IPI script."""
    from fracskip.hls.stitch_ip import TCL, create_stitched_ip

    before = calls.read_text().splitlines() if calls.exists() else []
    with pytest.raises(Exception, match=FINN_STOPS_AFTER_VIVADO):
        create_stitched_ip(model, part, clk)
    (call,) = calls.read_text().splitlines()[len(before):]
    cwd, args, rtllib = call.split("|")
    proj = Path(cwd)
    assert proj.name.startswith("vivado_stitch_proj_") and args == f"-mode batch -source {TCL}", call
    assert f"create_project finn_vivado_stitch_proj {proj} " in (proj / TCL).read_text()
    assert (Path(rtllib) / "memstream").is_dir(), rtllib  # ip_repo_paths: $::env(FINN_RTLLIB)/memstream
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

    calls = _recording_vivado(tmp_path, monkeypatch)
    # FINN polls each of the ~1,100 added files until its size and mtime hold still for 50 ms (for slow shared file
    # systems), about a minute here; these were all written before the stitch, so being there is what counts
    monkeypatch.setattr(csi, "wait_for_file", functools.partial(csi.wait_for_file, stable_for=0))
    hw = copy.deepcopy(network["hw"]).transform(GiveUniqueNodeNames("sdp_0_"))
    hw = hw.transform(PrepareIP(network["part"], network["clk"]))  # keeps the HDL already generated, as FINN does
    assert all(n.name.startswith("sdp_0_") for n in hw.graph.node)
    ours = {"DFSGate_rtl", "TokenFork_rtl", "StreamRoute_rtl", "StreamMerge_rtl", "TokenJoin_rtl", "GlobalSum_rtl",
            "DuplicateStreams_rtl", "Clip_rtl", "IntRequant_rtl", "MVAU_lut"}  # fracskip's ops in this graph
    assert ours | {"StreamingFIFO_rtl"} <= {n.op_type for n in hw.graph.node}
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
    calls = _recording_vivado(tmp_path, monkeypatch)
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

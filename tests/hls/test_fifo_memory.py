"""fracskip.hls.fifo_memory: sized FIFOs moved between block RAM and LUT RAM so that an emitted design fits.

A chain of FINN StreamingFIFO_rtl nodes of known depths and widths stands for an emitted design's FIFOs; the device
is set just below what they take, in block RAM or in LUTs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from fracskip.hls import fifo_memory as FM
from fracskip.hls.pipeline_folding import emitted_resources

PART = "xc7z020clg400-1"  # no UltraRAM: a FIFO fifo.sv would put in UltraRAM is built in block RAM
# (depth, channels of 8 bits): deep narrow FIFOs (block RAM, cheap in LUT RAM per block RAM freed), a deep wide one
# (block RAM, dear in LUT RAM), one deep enough for UltraRAM, and shallow wide ones (LUT RAM, cheap in block RAM)
FIFOS = [(1024, 1), (600, 2), (1000, 16), (3000, 1), (200, 8), (256, 4), (20, 4)]


@pytest.fixture(scope="module", autouse=True)
def finn(tmp_path_factory):
    """FINN set up below a fresh folder (its estimates and HDL generation need it), its environment restored."""
    from fracskip.hls import finn_env

    saved = {k: os.environ.get(k) for k in ("FINN_SETTINGS", "FINN_BUILD_DIR", "FINN_RTLLIB")}
    finn_env.setup(tmp_path_factory.mktemp("finn"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _chain(fifos=FIFOS) -> ModelWrapper:
    nodes, tensors = [], []
    for k, (depth, ch) in enumerate(fifos):
        src, dst = ("x" if k == 0 else f"t{k}"), ("y" if k == len(fifos) - 1 else f"t{k + 1}")
        nodes.append(helper.make_node("StreamingFIFO_rtl", [src], [dst], name=f"fifo{k}",
                                      domain="finn.custom_op.fpgadataflow.rtl", backend="fpgadataflow",
                                      depth=depth, folded_shape=[1, 64, ch], normal_shape=[1, 64 * ch],
                                      dataType="UINT8"))
        tensors.append(helper.make_tensor_value_info(dst, TensorProto.FLOAT, [1, 64 * ch]))
    # one width for the whole chain is not needed: each FIFO's width is its own folded shape
    graph = helper.make_graph(nodes, "fifos", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [tensors[-1]], value_info=tensors[:-1])
    return ModelWrapper(qonnx_make_model(graph))


def _total(model):
    return emitted_resources(model, PART, uram=False)["total"]


def _styles(model):
    return {n.name: getCustomOp(n).get_nodeattr("ram_style") for n in model.graph.node}


def test_block_ram_over_the_device_moves_the_cheapest_fifos_to_lut_ram():
    model = _chain()
    total = _total(model)
    device = {"LUT": total["LUT"] + 2000, "BRAM_18K": total["BRAM_18K"] - 2, "DSP": 220, "URAM": 0}
    moves = FM.plan(model, PART, device, uram=False)
    assert moves and all(m.style == "distributed" and m.bram < 0 for m in moves)
    # cheapest first: no FIFO left in block RAM frees a block RAM for fewer LUTs than a moved one
    ratio = {m.node: m.lut / -m.bram for m in FM._candidates(model, PART, "distributed", False)}
    assert "fifo3" in ratio  # fifo.sv asks UltraRAM for it; on this part it is block RAM, and can move
    moved = {m.node for m in moves}
    assert max(ratio[n] for n in moved) <= min(r for n, r in ratio.items() if n not in moved)
    assert "fifo2" not in moved  # 16 bytes wide: the dearest in LUT RAM
    after = _total(FM.apply(model, moves, PART, 10.0))
    assert after["BRAM_18K"] <= device["BRAM_18K"] < total["BRAM_18K"]
    assert total["LUT"] < after["LUT"] <= device["LUT"]
    assert after["BRAM_18K"] == total["BRAM_18K"] + sum(m.bram for m in moves)
    assert after["LUT"] == total["LUT"] + sum(m.lut for m in moves)
    # no FIFO moved beyond the need: without the last move, block RAM is over the device
    assert total["BRAM_18K"] + sum(m.bram for m in moves[:-1]) > device["BRAM_18K"]


def test_luts_over_the_device_move_fifos_to_block_ram():
    model = _chain()
    total = _total(model)
    device = {"LUT": total["LUT"] - 50, "BRAM_18K": total["BRAM_18K"] + 10, "DSP": 220, "URAM": 0}
    moves = FM.plan(model, PART, device, uram=False)
    assert moves and all(m.style == "block" and m.lut < 0 for m in moves)
    assert "fifo6" not in {m.node for m in moves}  # 20 words: a shift register whatever its ram_style
    assert [m.node for m in FM._candidates(_chain([(33, 8), (34, 8)]), PART, "block", False)] == ["fifo1"]  # 33 too
    after = _total(FM.apply(model, moves, PART, 10.0))
    assert after["LUT"] <= device["LUT"] and after["BRAM_18K"] <= device["BRAM_18K"]


def test_no_move_when_the_design_fits_or_moving_fifos_cannot_make_it_fit():
    model = _chain()
    total = _total(model)
    fits = {"LUT": total["LUT"], "BRAM_18K": total["BRAM_18K"], "DSP": 220, "URAM": 0}
    assert FM.plan(model, PART, fits, uram=False) == []
    # block RAM over by more than the LUTs free could hold
    tight = dict(fits, LUT=total["LUT"] + 100, BRAM_18K=total["BRAM_18K"] - 4)
    assert FM.plan(model, PART, tight, uram=False) == []
    both = dict(fits, LUT=total["LUT"] - 1, BRAM_18K=total["BRAM_18K"] - 1)
    assert FM.plan(model, PART, both, uram=False) == []
    placed, moves = FM.place(model, PART, 10.0, both)
    assert placed is model and moves == []


def test_a_move_too_dear_for_the_room_left_is_skipped_and_the_search_goes_on(monkeypatch):
    """Moves are tried by cost per resource freed, but one too dear in absolute terms for the room left does not end
    the search: a later move, worse per block RAM but cheaper, may still fit. Stand-ins give the totals and moves."""
    total = {"LUT": 1000.0, "BRAM_18K": 10.0, "URAM": 0.0, "DSP": 0.0}
    monkeypatch.setattr(FM, "emitted_resources", lambda model, part, uram: {"total": total})
    wide = FM.Move("wide", 1000, 128, "distributed", lut=3082.0, bram=-8.0)  # 385 LUT per block RAM
    narrow = FM.Move("narrow", 3000, 8, "distributed", lut=779.0, bram=-2.0)  # 390 LUT per block RAM
    monkeypatch.setattr(FM, "_candidates", lambda model, part, to, uram: [narrow, wide] if to == "distributed" else [])
    device = {"LUT": 2000.0, "BRAM_18K": 8.0}  # 2 block RAM over, 1000 LUTs free: the wide FIFO does not fit
    assert FM.plan(None, PART, device, uram=False) == [narrow]
    # the same for LUTs over the device, into block RAM
    big = FM.Move("big", 200, 512, "block", lut=-4000.0, bram=8.0)
    small = FM.Move("small", 200, 64, "block", lut=-400.0, bram=2.0)
    monkeypatch.setattr(FM, "_candidates", lambda model, part, to, uram: [small, big] if to == "block" else [])
    device = {"LUT": 700.0, "BRAM_18K": 14.0}  # 300 LUTs over, 4 block RAM free: the big FIFO does not fit
    assert FM.plan(None, PART, device, uram=False) == [small]


def test_apply_regenerates_the_moved_fifos_hdl():
    model = _chain()
    total = _total(model)
    device = {"LUT": total["LUT"] + 2000, "BRAM_18K": total["BRAM_18K"] - 1, "DSP": 220, "URAM": 0}
    placed, moves = FM.place(model, PART, 10.0, device)
    assert moves and _styles(model) == dict.fromkeys(_styles(model), "auto")  # the caller's model unchanged
    for m in moves:
        inst = getCustomOp(placed.get_node_from_name(m["node"]))
        assert inst.get_nodeattr("ram_style") == "distributed" and inst.get_ram_style() == "distributed"
        assert inst.get_nodeattr("code_gen_dir_ipgen")
        # the style reaches fifo.sv's parameter in the wrapper FINN generated
        wrappers = list(Path(inst.get_nodeattr("code_gen_dir_ipgen")).glob("*.v"))
        assert any('"distributed"' in w.read_text() for w in wrappers), wrappers


def test_fifo_bits_are_each_fifos_depth_times_its_width():
    """``accelerator.fifo_bits``, the emitted design's figure: depth x padded stream width, summed."""
    from fracskip.hls.accelerator import fifo_bits

    assert fifo_bits(_chain([(1024, 1), (20, 4), (300, 2)])) == 1024 * 8 + 20 * 32 + 300 * 16


def test_the_sequence_model_judges_each_set_of_depths_written_into_the_graph(monkeypatch):
    """``fifo_model.SequenceModel``: the frame-sequence model runs on the graph with a trial's depths written into
    its FIFOs (the others as the graph has them), once per set of depths, and the graph keeps its own depths. A
    stand-in for the model reads the depths back."""
    import numpy as np

    from fracskip.hls import fifo_model as F
    from fracskip.hls import pipeline_folding as PF

    model, calls = _chain(), []

    def frame_sequence_cycles(model, decisions, man, capacities=False, keep=None, sweeps=None):
        depths = [int(getCustomOp(n).get_nodeattr("depth")) for n in model.graph.node]
        calls.append(capacities)
        return (float(sum(depths)) if capacities else 0.0), 0.0

    monkeypatch.setattr(PF, "frame_sequence_cycles", frame_sequence_cycles)
    seq = F.SequenceModel(model, None, np.zeros((4, 2), np.int64))
    depths = [d for d, _ in FIFOS]
    assert seq.cycles(None) == 0.0 and calls == [False]  # unbounded FIFOs
    assert seq.cycles({"fifo0": 10}) == sum(depths) - depths[0] + 10
    assert seq.cycles({"fifo0": 20, "fifo1": 30}) == sum(depths) - depths[0] - depths[1] + 50
    assert seq.cycles({"fifo0": 20}) == sum(depths) - depths[0] + 20
    assert seq.cycles({"fifo0": 10}) == sum(depths) - depths[0] + 10 and len(calls) == 4  # judged once
    assert [getCustomOp(n).get_nodeattr("depth") for n in model.graph.node] == depths
    assert seq.bits({"fifo0": 10}) == 10 * 8 + sum(d * ch * 8 for d, ch in FIFOS[1:])

"""FINN's own Zynq shell step (``step_synthesize_bitfile``: ``ZynqBuild`` for Pynq-Z2, as ``hls.shell.synthesize`` runs
it for ``--until bitstream``) on a graph of fracskip's RTL ops, run up to its first call
of a Xilinx tool, which a recording stand-in answers. No Xilinx tool runs here. Nothing here is a bitstream.

What runs: InsertIODMA, InsertDWC, SpecializeLayers, Floorplan and CreateDataflowPartition on the whole graph, each
followed by GiveUniqueNodeNames (every node is renamed after its HDL exists); then, in the first partition (an input
IODMA), InsertFIFO, SpecializeLayers, GiveUniqueNodeNames with the partition's prefix and PrepareIP. The first tool
call is ``vitis_hls``, which synthesises FINN's IODMA_hls: the Zynq shell needs Vitis HLS as well as Vivado, even
when every compute node is RTL. The compute partitions are not reached.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hil  # tests/hil.py: the recording stand-ins for AMD's tools

pytestmark = pytest.mark.rtlsim  # the graph's HDL is generated with the Verilator-compatible FINN setup

PART, CLK = "xc7z020clg400-1", 10.0


@pytest.mark.slow
def test_zynq_build_runs_to_its_first_tool_call(finn_rtlsim, tmp_path, monkeypatch):
    from fracskip import bitstreams
    from fracskip.hls import shell
    from fracskip.hls.accelerator import to_hw
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from test_accelerator import _plumbing_graph

    calls = hil.recording_stand_ins(tmp_path, monkeypatch)

    hw = to_hw(_plumbing_graph(), PART, CLK)  # route, merge, token fork and join, global sum, clips, FIFOs
    monkeypatch.setenv("NUM_DEFAULT_WORKERS", "2")  # a FINN user's setting; the shell step keeps one worker
    out = tmp_path / "finn_output"
    with pytest.raises(Exception, match=hil.FINN_STOPS_AFTER_HLS):
        shell.synthesize(hw, shell.dataflow_config(out, bitstreams.load("Pynq-Z2")))
    assert os.environ["NUM_DEFAULT_WORKERS"] == "2"
    (call,) = hil.tool_calls(calls)
    tool, cwd, args, _ = call
    assert tool == "vitis_hls" and "IODMA_hls" in cwd.name, call
    script = Path(args.split()[-1])
    assert script.parent == cwd and script.name.startswith("hls_syn_") and script.is_file(), args

    # the partitions FINN saved: one per IODMA (3 inputs, 3 outputs), the compute in the others, every node renamed
    # by FINN after its HDL was generated; each of fracskip's ops still names the module and the files it was
    # generated with, and they exist (what the partition's PrepareIP and CreateStitchedIP will use)
    models = [ModelWrapper(str(f)) for f in
              sorted((out / "intermediate_models" / "kernel_partitions").glob("partition_*.onnx"))]
    assert sum(1 for m in models if [n.op_type for n in m.graph.node] == ["IODMA_hls"]) == 6
    ours = [n for m in models for n in m.graph.node if n.op_type in (
        "StreamRoute_rtl", "StreamMerge_rtl", "TokenFork_rtl", "TokenJoin_rtl", "GlobalSum_rtl", "Clip_rtl")]
    assert len(ours) == 7, [n.name for n in ours]
    for n in ours:
        inst = getCustomOp(n)
        top = inst.get_nodeattr("gen_top_module")
        assert top not in ("", n.name), n.name  # renamed after HDL generation
        for f in inst.get_rtl_file_list(abspath=True):
            assert Path(f).is_file(), (n.name, f)
        assert f"create_bd_cell -type module -reference {top} {n.name}" in inst.code_generation_ipi()

"""fracskip.hls.clip / hls.ops.clip_rtl: threshold tables that are a clip become a Clip_rtl layer.

- Clip_rtl alone in Verilator against Clip's python execution, with random valid/ready gaps;
- ThresholdsToClip takes exactly the tables that are a clip;
- a real residual path core (``tiny_export``'s block1_b4) built with and without the step: FINN's LUT
  estimate drops, and the whole core in Verilator is bit-exact with FINN's python execution.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from fracskip.hls.clip import ThresholdsToClip, clip_bounds

PART = "xc7z020clg400-1"
CLK_NS = 10.0
HW = "finn.custom_op.fpgadataflow"


def _clip_node(name, idt, odt, lo, hi, pe, channels, vectors):
    return helper.make_node("Clip_rtl", ["x"], ["y"], name=name, domain=HW + ".rtl", NumChannels=channels, PE=pe,
                            inputDataType=idt, outputDataType=odt, lo=lo, hi=hi, numInputVectors=[vectors],
                            backend="fpgadataflow")


# ---------------------------------------------------------------- (a) Clip_rtl in Verilator

CASES = [  # idt, odt, lo, hi, PE, channels
    ("UINT9", "UINT8", 0, 255, 1, 6),  # the residual output requant
    ("UINT9", "UINT8", 0, 255, 2, 6),
    ("UINT9", "UINT8", 0, 255, 4, 8),
    ("INT8", "INT4", -8, 7, 2, 4),
    ("INT10", "UINT8", 0, 200, 4, 8),  # ReLU and an upper bound below the type's maximum
    ("UINT4", "UINT4", 3, 12, 1, 3),
    ("INT6", "INT6", -32, 31, 2, 2),  # bounds at the type's limits: identity
]


@pytest.mark.rtlsim
def test_clip_rtl_matches_python_under_backpressure(tmp_path):
    from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy

    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness

    vectors = 97
    insts, duts, sources = [], [], []
    for k, (idt, odt, lo, hi, pe, ch) in enumerate(CASES):
        inst = getCustomOp(_clip_node(f"clip{k}", idt, odt, lo, hi, pe, ch, vectors))
        src = tmp_path / f"clip{k}.v"
        src.write_text(inst.verilog())
        words = vectors * ch // pe
        insts.append(inst)
        duts.append(StreamDut(f"clip{k}", inst.get_instream_width_padded(), inst.get_outstream_width_padded(),
                              n_in=words, n_out=words, exp_cycles=inst.get_exp_cycles()))
        sources.append(src)
    harness = StreamHarness(duts, sources, tmp_path / "sim", jobs=1)
    rng = np.random.default_rng(0)
    xs = [rng.integers(DataType[c[0]].min(), DataType[c[0]].max() + 1, (vectors, c[5])).astype(np.float32)
          for c in CASES]
    words = [npy_to_rtlsim_input(x.reshape(i.get_folded_input_shape()), i.get_input_datatype(),
                                 i.get_instream_width_padded()) for x, i in zip(xs, insts)]
    for stall in (False, True):
        runs = harness.run(words, stall=stall, seed=3)
        for x, inst, run, case in zip(xs, insts, runs, CASES):
            assert run.finished, (case, len(run.outputs), run.n_expected)
            odt = inst.get_output_datatype()
            y = rtlsim_output_to_npy(run.outputs, None, odt, inst.get_folded_output_shape(),
                                     inst.get_outstream_width_padded(), odt.bitwidth()).reshape(x.shape)
            ctx = {"x": x}
            inst.execute_node(ctx, None)
            np.testing.assert_array_equal(y, ctx["y"], err_msg=str(case))
            if not stall:  # a pass-through: one word per cycle, no latency
                assert run.cycles == inst.get_exp_cycles(), (case, run.cycles)
            else:
                assert run.cycles > inst.get_exp_cycles()
        y0 = np.clip(xs[0], 0, 255)
        assert (y0 == 255).any() and (y0 < 255).any()  # the saturation is exercised


def test_clip_estimates_and_folding_attribute():
    inst = getCustomOp(_clip_node("c", "UINT9", "UINT8", 0, 255, 4, 64, 49))
    assert inst.get_exp_cycles() == 49 * 64 // 4
    assert inst.bram_estimation() == inst.dsp_estimation() == inst.uram_estimation() == 0
    assert 4 * 8 <= inst.lut_estimation() <= 4 * 16
    from finn.util.config import extract_model_config

    g = helper.make_graph([inst.onnx_node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    cfg = extract_model_config(ModelWrapper(qonnx_make_model(g)), None, ["PE", "SIMD"])
    assert cfg["c"] == {"PE": 4}  # a folding config carries it; ApplyConfig sets it back by name


def test_clip_refuses_a_bipolar_input():
    """FINN packs BIPOLAR -1/+1 as bits 0/1, which the RTL's sign extension would read as 0/-1 (Verilator gave
    [-1, 0] for [1, -1]): the node is invalid, as IntRequant's is, and generates no HDL."""
    from fracskip.errors import FracskipError

    inst = getCustomOp(_clip_node("c", "BIPOLAR", "INT2", -1, 1, 2, 2, 1))
    assert any("BIPOLAR" in p for p in inst.verify_node())
    with pytest.raises(FracskipError, match="BIPOLAR"):
        inst.verilog()


# ---------------------------------------------------------------- (b) ThresholdsToClip


def _thresholding_model(thresholds: np.ndarray, idt: str, odt: str, act_val: int = 0, op_type="Thresholding"):
    ch, steps = 4, thresholds.shape[1]
    domain = HW + (".rtl" if op_type.endswith("_rtl") else "")
    node = helper.make_node(op_type, ["x", "T"], ["y"], name=f"{op_type}_0", domain=domain, NumChannels=ch, PE=2,
                            numSteps=steps, inputDataType=idt, weightDataType="INT32", outputDataType=odt,
                            numInputVectors=[1, 3], ActVal=act_val, backend="fpgadataflow")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, ch])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, ch])])
    m = ModelWrapper(qonnx_make_model(g))
    m.set_initializer("T", thresholds.astype(np.float32))
    m.set_tensor_datatype("x", DataType[idt])
    m.set_tensor_datatype("y", DataType[odt])
    return m


def _all_inputs(idt: str) -> np.ndarray:
    dt = DataType[idt]
    v = np.arange(dt.min(), dt.max() + 1, dtype=np.float32)
    return np.resize(v, (-(-v.size // 12) * 12,)).reshape(-1, 1, 3, 4)


def _abstract(model: ModelWrapper) -> ModelWrapper:
    """The graph with specialized nodes mapped back to the abstract HW ops, whose execute_node is FINN's
    python model (Thresholding_rtl itself executes only in cppsim/rtlsim)."""
    model = copy.deepcopy(model)
    for n in model.graph.node:
        if n.op_type.endswith("_rtl"):
            n.op_type, n.domain = n.op_type[:-4], HW
    return model


def _same_function(a: ModelWrapper, b: ModelWrapper, idt: str) -> bool:
    from finn.core.onnx_exec import execute_onnx

    a, b = _abstract(a), _abstract(b)
    return all(np.array_equal(execute_onnx(a, {"x": x})["y"], execute_onnx(b, {"x": x})["y"]) for x in _all_inputs(idt))


@pytest.mark.parametrize("op_type", ["Thresholding", "Thresholding_rtl"])
def test_min_255_table_becomes_clip(op_type):
    m = _thresholding_model(np.arange(1, 256)[None, :], "UINT9", "UINT8", op_type=op_type)
    out = m.transform(ThresholdsToClip())
    (n,) = out.graph.node
    assert n.op_type == op_type.replace("Thresholding", "Clip") and list(n.input) == ["x"] and list(n.output) == ["y"]
    inst = getCustomOp(n)
    assert (inst.get_nodeattr("lo"), inst.get_nodeattr("hi"), inst.get_nodeattr("PE")) == (0, 255, 2)
    assert out.get_initializer("T") is None
    assert _same_function(m, out, "UINT9")


def test_signed_clip_with_bias_and_half_integer_thresholds():
    # INT8 -> clamp(x, -4, 5): thresholds -3.5 .. 4.5 (FINN before RoundAndClipThresholds), bias -4
    thr = np.tile(np.arange(-3, 6) - 0.5, (4, 1))
    m = _thresholding_model(thr, "INT8", "INT4", act_val=-4)
    out = m.transform(ThresholdsToClip())
    assert [n.op_type for n in out.graph.node] == ["Clip"]
    inst = getCustomOp(out.graph.node[0])
    assert (inst.get_nodeattr("lo"), inst.get_nodeattr("hi")) == (-4, 5)
    assert _same_function(m, out, "INT8")


def test_wide_placeholder_input_type_is_checked_on_the_threshold_window():
    assert clip_bounds(np.arange(1, 256)[None, :] - 0.5, DataType["INT32"]) == (0, 255)
    assert clip_bounds(np.arange(1, 256)[None, :] - 0.5, DataType["UINT9"]) == (0, 255)


@pytest.mark.parametrize("change", ["moved", "one_channel", "requant", "gap", "bias"])
def test_near_clip_tables_are_left_alone(change):
    thr = np.tile(np.arange(1, 256), (4, 1)).astype(np.float64)
    act_val, idt = 0, "UINT9"
    if change == "moved":
        thr[:, 100] += 1  # x = 101 -> 100: not the identity there
    elif change == "one_channel":
        thr[2, 37] -= 1  # two equal thresholds in one channel
    elif change == "requant":
        thr = np.tile(np.arange(1, 256) * 2.0, (4, 1))  # x / 2: a real requantizer
    elif change == "gap":
        thr = np.tile(np.concatenate([np.arange(1, 128), np.arange(129, 257)]), (4, 1))
    elif change == "bias":
        act_val = 1  # clamp(x, 0, 255) + 1 does not fit UINT8 and is no clamp of x
    m = _thresholding_model(thr, idt, "UINT8" if change != "bias" else "UINT9", act_val=act_val)
    out = m.transform(ThresholdsToClip())
    assert [n.op_type for n in out.graph.node] == ["Thresholding"]
    assert out.get_initializer("T") is not None


# ---------------------------------------------------------------- (c) a real residual path core


def _build(onnx, out, steps) -> ModelWrapper:
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as bc

    cfg = bc.DataflowBuildConfig(output_dir=str(out), synth_clk_period_ns=CLK_NS, fpga_part=PART, steps=steps,
                                 generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
                                 save_intermediate_models=True, standalone_thresholds=True, target_fps=1000,
                                 console_log_level=bc.LogLevel.ERROR)
    assert build.build_dataflow_cfg(str(onnx), cfg) == 0
    return ModelWrapper(str(out / "intermediate_models" / "step_fracskip_hdl.onnx"))


def _lut(out) -> dict[str, float]:
    res = json.loads((out / "report" / "estimate_layer_resources.json").read_text())
    return {k: v["LUT"] for k, v in res.items()}


def _python_reference(model, x: np.ndarray) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx

    py = _abstract(model)
    i, o = py.graph.input[0].name, py.graph.output[0].name
    return np.concatenate([execute_onnx(py, {i: x[f:f + 1]})[o] for f in range(x.shape[0])])


@pytest.mark.rtlsim
def test_path_core_with_clip_is_smaller_and_bit_exact(tiny_export, finn_rtlsim, yosys_synth):
    from fracskip.hls.clip import step_fracskip_clip_outputs
    from fracskip.hls.requant import step_fracskip_requant_outputs
    from fracskip.hls.rtlsim import RTLSimCore, set_fifo_depths
    from fracskip.hls.steps import hdl_steps

    onnx = tiny_export / "block1_b4.onnx"
    # the clip alone: without IntRequant, which would take the min(sum, 255) table in the baseline too
    with_clip = [s for s in hdl_steps() if s is not step_fracskip_requant_outputs]
    assert step_fracskip_clip_outputs in with_clip
    without = [s for s in with_clip if s is not step_fracskip_clip_outputs]
    base = _build(onnx, finn_rtlsim / "base", without)
    model = _build(onnx, finn_rtlsim / "clip", with_clip)

    (clip,) = model.get_nodes_by_op_type("Clip_rtl")
    inst = getCustomOp(clip)
    assert (inst.get_nodeattr("lo"), inst.get_nodeattr("hi")) == (0, 255)
    assert inst.get_input_datatype().name == "UINT9" and inst.get_output_datatype().name == "UINT8"
    assert model.find_producer(model.find_producer(clip.input[0]).input[0]).op_type == "ElementwiseAdd_rtl"
    n_tables = len(base.get_nodes_by_op_type("Thresholding_rtl"))
    assert len(model.get_nodes_by_op_type("Thresholding_rtl")) == n_tables - 1

    lut_base, lut_clip = _lut(finn_rtlsim / "base"), _lut(finn_rtlsim / "clip")
    (removed,) = set(lut_base) - set(lut_clip)  # the output table, by name
    assert lut_base[removed] >= 20 * inst.get_nodeattr("NumChannels")
    # smaller, by an independent count: Yosys' synthesis of the Clip's own Verilog against FINN's estimate of the
    # table it replaces (neither is fracskip's LUT formula)
    synth = yosys_synth(inst.verilog(), inst.get_verilog_top_module_name())
    assert synth.bram18 == 0 and synth.dsp == 0
    assert synth.lut < lut_base[removed] / 2, (synth, lut_base[removed])

    # the skip FIFO must hold about two feature-map rows (FINN-NOTES §3b); 1024 everywhere runs at full speed
    model = set_fifo_depths(model, {n.name: 1024 for n in model.get_nodes_by_op_type("StreamingFIFO_rtl")},
                            PART, CLK_NS)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    x = np.random.default_rng(1).integers(0, 256, (2, *shape[1:])).astype(np.float32)
    with RTLSimCore(model, cache_dir=finn_rtlsim / "cache", jobs=1, progress=False) as core:
        result = core.run(x)
    ref = _python_reference(model, x)
    np.testing.assert_array_equal(result.outputs[0], ref)
    # not all zeros; the tiny net's sums stay below 256, so saturation is covered by the unit test above
    assert ref.max() > 0

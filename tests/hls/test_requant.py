"""fracskip.hls.requant / hls.ops.requant_rtl: affine threshold tables become an exact IntRequant_rtl layer.

- the fit is exact on random per-channel affine tables (clipped ends, signed and unsigned inputs, dense
  and sparse steps, 2/4/8-bit outputs, output bias), checked value by value against FINN's MultiThreshold,
  and refuses tables that are not affine;
- ThresholdsToRequant takes exactly the tables it can prove, carrying PE over;
- IntRequant_rtl alone in Verilator equals its python execution and the table, with random valid/ready gaps;
- a real residual path core (``tiny_export``'s block1_b4) gets smaller and stays bit-exact in Verilator.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from fracskip.hls.requant import Requant, ThresholdsToRequant, fit_requant, requant_is_exact

PART = "xc7z020clg400-1"
CLK_NS = 10.0
HW = "finn.custom_op.fpgadataflow"


def affine_table(rng, channels: int, steps: int, idt: str, dense: bool = False) -> np.ndarray:
    """ceil(t0_c + k * d_c) per channel as FINN derives it from a BatchNorm, clipped to the input range like
    RoundAndClipThresholds; the random offsets push some tables past either end of the range."""
    dt = DataType[idt]
    span = dt.max() - dt.min()
    d = rng.uniform(0.2, 0.9, channels) if dense else rng.uniform(1.0, 1.6 * span / steps, channels)
    t0 = dt.min() + rng.uniform(-0.3, 1.0, channels) * (span - steps * d)
    t = t0[:, None] + np.arange(steps) * d[:, None]
    return np.clip(np.ceil(t), dt.min(), dt.max() + 1)


def table_out(thresholds: np.ndarray, acc: np.ndarray, act_val: int = 0) -> np.ndarray:
    """FINN's MultiThreshold (qonnx's reference implementation) on (values, channels)."""
    return multithreshold(acc.astype(np.float64), thresholds, out_bias=act_val)


def all_values(idt: str, channels: int) -> np.ndarray:
    dt = DataType[idt]
    return np.repeat(np.arange(dt.min(), dt.max() + 1)[:, None], channels, axis=1)


# ---------------------------------------------------------------- (a) the fit

FIT_CASES = [  # idt, output bits, act_val, dense
    ("INT12", 8, 0, False),
    ("INT16", 8, 0, False),  # wide steps: a multiplier wider than one DSP48
    ("UINT10", 8, 0, False),
    ("INT7", 8, 0, True),  # more output steps than input values: M > 2^S, repeated thresholds
    ("INT12", 4, 0, False),
    ("UINT9", 2, 0, False),
    ("INT10", 4, -8, False),  # signed output, INT4
]


@pytest.mark.parametrize("idt,bits,act_val,dense", FIT_CASES)
def test_fit_is_exact_on_every_input_value(idt, bits, act_val, dense):
    rng = np.random.default_rng(bits * 100 + len(idt))
    thr = affine_table(rng, 24, 2**bits - 1, idt, dense)
    rq = fit_requant(thr, DataType[idt], act_val)
    assert isinstance(rq, Requant), rq
    acc = all_values(idt, thr.shape[0])
    np.testing.assert_array_equal(rq(acc), table_out(thr, acc, act_val))
    assert (rq.lo, rq.hi) == (act_val, act_val + 2**bits - 1)
    dt = DataType[idt]
    assert (thr == dt.min()).any() and (thr == dt.max() + 1).any()  # both clipped ends are exercised


def test_fit_on_a_wide_input_type_is_proved_at_the_boundaries():
    rng = np.random.default_rng(5)
    thr = affine_table(rng, 16, 255, "INT22")
    rq = fit_requant(thr, DataType["INT22"])
    assert isinstance(rq, Requant), rq
    assert int(rq.mul.max()).bit_length() > 17  # beyond a single DSP48's 18-bit port
    acc = np.concatenate([np.arange(-(1 << 21), -(1 << 21) + 3000), rng.integers(-(1 << 21), 1 << 21, 20000),
                          np.unique(thr) - 1, np.unique(thr), np.arange((1 << 21) - 3000, 1 << 21)])
    acc = np.repeat(np.clip(acc, -(1 << 21), (1 << 21) - 1)[:, None], 16, axis=1)
    np.testing.assert_array_equal(rq(acc), table_out(thr, acc))


@pytest.mark.parametrize("change", ["quadratic", "one_moved", "two_slopes"])
def test_tables_that_are_not_affine_are_refused(change):
    k = np.arange(255, dtype=np.float64)
    if change == "quadratic":
        thr = (k**2 / 8)[None, :]
    elif change == "one_moved":
        thr = (100 + 10 * k)[None, :]
        thr[0, 120] += 5
    else:  # affine in two pieces
        thr = np.where(k < 128, 10 * k, 1280 + 12 * (k - 128))[None, :]
    assert "not affine" in fit_requant(np.ceil(thr), DataType["INT16"])


def test_refusals_and_the_proof_itself():
    assert "not an integer" in fit_requant(np.arange(1.0, 256)[None, :], DataType["FLOAT32"])
    thr = np.arange(0, 2550, 10.0)[None, :]
    rq = fit_requant(thr, DataType["INT13"])
    assert requant_is_exact(rq, thr, DataType["INT13"])
    off = Requant(rq.mul, rq.bias + (1 << rq.shift) // 4 + 1, rq.shift, rq.lo, rq.hi)  # steps a little early
    assert not requant_is_exact(off, thr, DataType["INT13"])
    # INT18 has too many values to be checked one by one: the proof checks both sides of every threshold.
    # Against the exhaustive check, it accepts the fit and rejects it with a bias off by one or two.
    wide = affine_table(np.random.default_rng(2), 4, 255, "INT18")
    rq = fit_requant(wide, DataType["INT18"])
    acc = all_values("INT18", 4)
    for db in (0, -2, -1, 1, 2):
        nudged = Requant(rq.mul, rq.bias + db, rq.shift, rq.lo, rq.hi)
        truth = np.array_equal(nudged(acc), table_out(wide, acc))
        assert requant_is_exact(nudged, wide, DataType["INT18"]) == truth
        assert truth == (db == 0) or db > 0  # the fit takes the least bias: one lower misses a step


# ---------------------------------------------------------------- (b) ThresholdsToRequant


def _thresholding_model(thresholds: np.ndarray, idt: str, odt: str, act_val=0, op_type="Thresholding_rtl", pe=2):
    ch, steps = thresholds.shape
    domain = HW + (".rtl" if op_type.endswith("_rtl") else "")
    node = helper.make_node(op_type, ["x", "T"], ["y"], name=f"{op_type}_0", domain=domain, NumChannels=ch, PE=pe,
                            numSteps=steps, inputDataType=idt, weightDataType="INT32", outputDataType=odt,
                            numInputVectors=[1, 3], ActVal=act_val, backend="fpgadataflow")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, ch])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, ch])])
    m = ModelWrapper(qonnx_make_model(g))
    m.set_initializer("T", thresholds.astype(np.float32))
    m.set_tensor_datatype("x", DataType[idt])
    m.set_tensor_datatype("y", DataType[odt])
    return m


def _abstract(model: ModelWrapper) -> ModelWrapper:
    """Specialized nodes mapped back to the abstract HW ops, whose execute_node is the python model."""
    model = copy.deepcopy(model)
    for n in model.graph.node:
        if n.op_type.endswith("_rtl"):
            n.op_type, n.domain = n.op_type[:-4], HW
    return model


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx

    model = _abstract(model)
    return np.stack([execute_onnx(model, {"x": frame})["y"] for frame in x])


@pytest.mark.parametrize("op_type", ["Thresholding", "Thresholding_rtl"])
def test_affine_8bit_table_becomes_requant(op_type):
    thr = affine_table(np.random.default_rng(3), 4, 255, "INT12")
    m = _thresholding_model(thr, "INT12", "UINT8", op_type=op_type)
    out = m.transform(ThresholdsToRequant())
    (n,) = out.graph.node
    assert n.op_type == op_type.replace("Thresholding", "IntRequant") and list(n.input) == ["x"]
    assert getCustomOp(n).get_nodeattr("PE") == 2 and out.get_initializer("T") is None
    x = all_values("INT12", 12).reshape(-1, 1, 3, 4).astype(np.float32)
    np.testing.assert_array_equal(_run(out, x), _run(m, x))


def test_small_and_unprovable_tables_stay():
    rng = np.random.default_rng(4)
    small = _thresholding_model(affine_table(rng, 4, 15, "INT12"), "INT12", "UINT4")
    assert [n.op_type for n in small.transform(ThresholdsToRequant()).graph.node] == ["Thresholding_rtl"]
    assert [n.op_type for n in small.transform(ThresholdsToRequant(min_steps=15)).graph.node] == ["IntRequant_rtl"]
    thr = affine_table(rng, 4, 255, "INT12")
    thr[1, 17:] += 3  # one channel is no longer affine
    bent = _thresholding_model(thr, "INT12", "UINT8")
    out = bent.transform(ThresholdsToRequant())
    assert [n.op_type for n in out.graph.node] == ["Thresholding_rtl"] and out.get_initializer("T") is not None


# ---------------------------------------------------------------- (c) IntRequant_rtl in Verilator

RTL_CASES = [  # idt, output bits, act_val, dense, PE, channels
    ("INT12", 8, 0, False, 2, 6),
    ("UINT10", 8, 0, False, 1, 3),
    ("INT20", 8, 0, False, 4, 8),  # multiplier wider than 18 bits
    ("INT7", 8, 0, True, 3, 3),  # PE = NumChannels: constants, no ROM
    ("INT10", 4, -8, False, 2, 4),  # INT4 output
]


def _requant_node(name, thr, idt, bits, act_val, pe, vectors):
    rq = fit_requant(thr, DataType[idt], act_val)
    odt = f"UINT{bits}" if act_val >= 0 else f"INT{bits}"
    return helper.make_node("IntRequant_rtl", ["x"], ["y"], name=name, domain=HW + ".rtl", NumChannels=thr.shape[0],
                            PE=pe, inputDataType=idt, outputDataType=odt, numInputVectors=[vectors],
                            mul=rq.mul.tolist(), bias=rq.bias.tolist(), shift=rq.shift, lo=rq.lo, hi=rq.hi,
                            backend="fpgadataflow")


@pytest.mark.rtlsim
def test_requant_rtl_matches_python_and_table_under_backpressure(tmp_path):
    from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy

    from fracskip.hls.rtlsim.harness import StreamDut, StreamHarness

    rng = np.random.default_rng(0)
    vectors = 80
    cases = []
    for k, (idt, bits, act_val, dense, pe, ch) in enumerate(RTL_CASES):
        thr = affine_table(rng, ch, 2**bits - 1, idt, dense)
        inst = getCustomOp(_requant_node(f"rq{k}", thr, idt, bits, act_val, pe, vectors))
        dt = DataType[idt]
        # half uniform over the range, half on and just below the thresholds: every step is exercised
        near = rng.choice(np.unique(thr), (vectors // 2, ch)) - rng.integers(0, 2, (vectors // 2, ch))
        uniform = rng.integers(dt.min(), dt.max() + 1, (vectors // 2, ch))
        x = np.concatenate([uniform, np.clip(near, dt.min(), dt.max())])
        cases.append((thr, act_val, inst, x.astype(np.float32)))
    srcs, duts = [], []
    for thr, _, inst, _ in cases:
        name = inst.onnx_node.name
        (tmp_path / f"{name}.v").write_text(inst.verilog(name))
        words = vectors * inst.get_nodeattr("NumChannels") // inst.get_nodeattr("PE")
        srcs.append(tmp_path / f"{name}.v")
        duts.append(StreamDut(name, inst.get_instream_width_padded(), inst.get_outstream_width_padded(),
                              n_in=words, n_out=words, exp_cycles=inst.get_exp_cycles()))
    harness = StreamHarness(duts, srcs, tmp_path / "sim", jobs=1)
    words = [npy_to_rtlsim_input(x.reshape(i.get_folded_input_shape()), i.get_input_datatype(),
                                 i.get_instream_width_padded()) for _, _, i, x in cases]
    for stall in (False, True):
        for (thr, act_val, inst, x), run in zip(cases, harness.run(words, stall=stall, seed=7)):
            name = inst.onnx_node.name
            assert run.finished, (name, len(run.outputs), run.n_expected)
            odt = inst.get_output_datatype()
            y = rtlsim_output_to_npy(run.outputs, None, odt, inst.get_folded_output_shape(),
                                     inst.get_outstream_width_padded(), odt.bitwidth()).reshape(x.shape)
            ctx = {"x": x}
            inst.execute_node(ctx, None)
            np.testing.assert_array_equal(y, ctx["y"], err_msg=name)
            np.testing.assert_array_equal(y, table_out(thr, x, act_val), err_msg=name)
            if stall:
                assert run.cycles > inst.get_exp_cycles()
            else:  # one word per cycle after the two-stage pipeline fills
                assert run.cycles == inst.get_exp_cycles() + 2, (name, run.cycles)


def test_requant_estimates():
    thr = affine_table(np.random.default_rng(1), 64, 255, "INT14")
    inst = getCustomOp(_requant_node("r", thr, "INT14", 8, 0, 4, 49))
    assert inst.get_exp_cycles() == 49 * 64 // 4
    assert inst.bram_estimation() == inst.uram_estimation() == 0
    assert inst.dsp_estimation() in (4, 8)  # one or two DSP48 per PE
    assert 4 * 30 <= inst.lut_estimation() <= 4 * 100  # FINN estimates such a table at ~3k LUT
    # a shift past the whole sum (a valid node, a constant output) leaves the clip no bits: not fewer than none
    inst.set_nodeattr("shift", inst.widths()["sw"])
    least = inst.lut_estimation()
    inst.set_nodeattr("shift", 80)
    assert inst.verify_node() == [] and inst.lut_estimation() == least > 0


# ---------------------------------------------------------------- (d) a real residual path core


@pytest.mark.rtlsim
def test_path_core_with_requant_is_smaller_and_bit_exact(tiny_export, finn_rtlsim, yosys_synth):
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as bc
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.core.onnx_exec import execute_onnx

    from fracskip.hls.requant import step_fracskip_requant_outputs
    from fracskip.hls.rtlsim import RTLSimCore, set_fifo_depths
    from fracskip.hls.steps import hdl_steps

    out = finn_rtlsim / "requant"
    steps = hdl_steps()
    assert step_fracskip_requant_outputs in steps
    cfg = bc.DataflowBuildConfig(output_dir=str(out), synth_clk_period_ns=CLK_NS, fpga_part=PART, steps=steps,
                                 generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
                                 save_intermediate_models=True, standalone_thresholds=True, target_fps=1000,
                                 console_log_level=bc.LogLevel.ERROR)
    assert build.build_dataflow_cfg(str(tiny_export / "block1_b4.onnx"), cfg) == 0
    models = out / "intermediate_models"
    before = ModelWrapper(str(models / "step_minimize_bit_width.onnx"))  # the same folding, with the tables
    model = ModelWrapper(str(models / "step_fracskip_hdl.onnx"))

    requants = model.get_nodes_by_op_type("IntRequant_rtl")
    assert requants, "no table was converted"
    assert all(getCustomOp(n).get_output_datatype().name == "UINT8" for n in requants)
    # smaller, by independent counts: Yosys' synthesis of every IntRequant's own Verilog (LUTs; its multiply-add
    # may take DSPs) against FINN's estimate of the threshold tables they replace (not fracskip's formulas)
    lut_before = res_estimation(before, PART)
    replaced = [n.name for n in before.graph.node if n.op_type.startswith("Thresholding")
                and n.name not in {m.name for m in model.graph.node}]
    assert len(replaced) >= len(requants)
    synth = [yosys_synth(getCustomOp(n).verilog(), getCustomOp(n).get_verilog_top_module_name()) for n in requants]
    assert all(r.bram18 == 0 for r in synth)
    assert sum(r.lut for r in synth) < sum(lut_before[n]["LUT"] for n in replaced) / 2, (
        [r.lut for r in synth], {n: lut_before[n]["LUT"] for n in replaced})

    model = set_fifo_depths(model, {n.name: 1024 for n in model.get_nodes_by_op_type("StreamingFIFO_rtl")},
                            PART, CLK_NS)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    x = np.random.default_rng(1).integers(0, 256, (2, *shape[1:])).astype(np.float32)
    with RTLSimCore(model, cache_dir=finn_rtlsim / "cache", jobs=1, progress=False) as core:
        result = core.run(x)
    i, o = before.graph.input[0].name, before.graph.output[0].name
    ref = np.concatenate([execute_onnx(_abstract(before), {i: x[f:f + 1]})[o] for f in range(x.shape[0])])
    np.testing.assert_array_equal(result.outputs[0], ref)  # against the thresholds the layers replaced
    assert ref.max() > 0

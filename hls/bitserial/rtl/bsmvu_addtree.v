// Unsigned balanced adder tree over N inputs of IW bits (fracskip.hls.bitserial), by recursion on halves:
// each partial sum is only as wide as its inputs need (capped at OW), zero-extended to OW bits.
// Verilog-2005.
module bsmvu_addtree #(
    parameter integer N = 4,
    parameter integer IW = 2,
    parameter integer OW = 4
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
            if (OW > IW) begin : g_ext
                assign y = {{(OW - IW){1'b0}}, x};
            end else begin : g_cut
                assign y = x[OW-1:0];
            end
        end else begin : g_node
            wire [SW-1:0] sl, sr;
            bsmvu_addtree #(.N(NL), .IW(IW), .OW(SW)) u_l (.x(x[0 +: NL*IW]), .y(sl));
            bsmvu_addtree #(.N(NR), .IW(IW), .OW(SW)) u_r (.x(x[NL*IW +: NR*IW]), .y(sr));
            if (OW > SW) begin : g_wide
                assign y = {{(OW - SW){1'b0}}, sl} + {{(OW - SW){1'b0}}, sr};
            end else begin : g_same
                assign y = sl + sr;
            end
        end
    endgenerate
endmodule

// LUT-based matrix-vector unit (fracskip.hls.lutmvu).
//
// Computes y = W x for a MH x MW integer matrix held in an on-chip ROM, with PE rows and SIMD columns
// per cycle: one multiply-accumulate per PE x SIMD lane per cycle, all in LUT fabric (no DSP), so a
// 2-bit layer costs far less than an 8-bit one. Optionally followed by FINN's multi-threshold
// activation: y' = ACT_VAL + #{i : y >= T[row][i]}. The AXI streams have exactly the layout of FINN's
// MVAU with mem_mode internal_embedded:
//   input  word: SIMD activations, element s at bits [s*AW +: AW]; MW/SIMD words per vector;
//   output word: PE outputs (accumulators, or activations of OUT_WIDTH bits), element p = row nf*PE + p
//   at the p-th lowest field; MH/PE output words per vector, MH/PE * MW/SIMD cycles per vector.
// Weight ROM word nf*SF + sf holds W[nf*PE + p][sf*SIMD + s] at bits [(p*SIMD + s)*WW +: WW];
// threshold ROM word nf holds T[nf*PE + p][i] at bits [(p*N_THRES + i)*(ACCU_WIDTH+1) +: ACCU_WIDTH+1]
// (read like the accumulator, signed or not, with one more bit so that "never" fits). Hex, $readmemh.
//
// Pipeline: issue (counters) -> fetch (ROM address, input buffer) -> read (ROM) -> multiply + adder
// tree -> accumulate [-> threshold] -> 2-entry output buffer. Backpressure stalls the whole pipeline
// through one enable that depends on registers only: neither TREADY depends combinationally on the
// other side.
// Accumulation is modulo 2^ACCU_WIDTH, hence exact whenever the true result fits ACCU_WIDTH (what
// FINN's MinimizeAccumulatorWidth guarantees); intermediate sums are kept no wider than needed.
// Verilog-2005; the multiplier and the extension are in this file, the adder tree and the output buffer
// are fracskip's shared modules (hls/rtl/).

(* use_dsp = "no" *)
module lutmvu #(
    parameter integer MW = 8,
    parameter integer MH = 8,
    parameter integer PE = 1,
    parameter integer SIMD = 1,
    parameter integer WEIGHT_WIDTH = 4,
    parameter integer WEIGHT_SIGNED = 1,
    parameter integer ACTIVATION_WIDTH = 4,
    parameter integer ACTIVATION_SIGNED = 0,
    parameter integer ACCU_WIDTH = 16,
    parameter integer ACCU_SIGNED = 1,  // how thresholds read the accumulator
    parameter WEIGHT_FILE = "weights.dat",
    parameter integer ROM_STYLE = 0,  // weights: 0 tool decides, 1 distributed (LUT), 2 block RAM
    parameter integer N_THRES = 0,  // thresholds per row; 0: no activation, the output is the accumulator
    parameter integer OUT_WIDTH = ACCU_WIDTH,  // output element width (= ACCU_WIDTH without activation)
    parameter integer ACT_VAL = 0,  // activation offset (FINN's ActVal)
    parameter THRESH_FILE = "thresholds.dat"
) (
    input  wire                             ap_clk,
    input  wire                             ap_rst_n,
    input  wire [SIMD*ACTIVATION_WIDTH-1:0] s_axis_tdata,
    input  wire                             s_axis_tvalid,
    output wire                             s_axis_tready,
    output wire [PE*OUT_WIDTH-1:0]          m_axis_tdata,
    output wire                             m_axis_tvalid,
    input  wire                             m_axis_tready
);
    function integer clog2(input integer n);  // ceil(log2(n)), 0 for n <= 1
        integer v;
        begin
            clog2 = 0;
            for (v = n - 1; v > 0; v = v >> 1) clog2 = clog2 + 1;
        end
    endfunction

    function integer cw(input integer n);  // counter width for values 0..n-1 (at least 1 bit)
        cw = (n > 1) ? clog2(n) : 1;
    endfunction

    localparam integer SF = MW / SIMD;
    localparam integer NF = MH / PE;
    localparam integer WMEM = SF * NF;
    localparam integer WW = WEIGHT_WIDTH;
    localparam integer AW = ACTIVATION_WIDTH;
    localparam integer PW = WW + AW;                         // a product always fits WW + AW bits
    localparam integer SGN = (WEIGHT_SIGNED != 0 || ACTIVATION_SIGNED != 0) ? 1 : 0;
    localparam integer DW = (PW + clog2(SIMD) < ACCU_WIDTH) ? PW + clog2(SIMD) : ACCU_WIDTH;

    /* verilator lint_off WIDTHTRUNC */
    localparam [cw(SF)-1:0] SF_LAST = SF - 1;
    localparam [cw(NF)-1:0] NF_LAST = NF - 1;
    localparam [cw(WMEM)-1:0] WA_LAST = WMEM - 1;
    /* verilator lint_on WIDTHTRUNC */

    // ---------------------------------------------------------------- issue
    reg  [cw(SF)-1:0]   sf;
    reg  [cw(NF)-1:0]   nf;
    reg  [cw(WMEM)-1:0] wa;
    wire en;  // the whole pipeline advances (output buffer not full)
    wire need_in = (nf == {cw(NF){1'b0}});  // the first row fold reads the stream, later folds replay it
    wire issue = en && (!need_in || s_axis_tvalid);
    assign s_axis_tready = en && need_in;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            sf <= {cw(SF){1'b0}};
            nf <= {cw(NF){1'b0}};
            wa <= {cw(WMEM){1'b0}};
        end else if (issue) begin
            if (sf == SF_LAST) begin
                sf <= {cw(SF){1'b0}};
                nf <= (nf == NF_LAST) ? {cw(NF){1'b0}} : nf + 1'b1;
            end else begin
                sf <= sf + 1'b1;
            end
            wa <= (wa == WA_LAST) ? {cw(WMEM){1'b0}} : wa + 1'b1;
        end
    end

    // ---------------------------------------------------------------- fetch: ROM address, activations
    reg                     v1, first1, last1;
    reg [cw(WMEM)-1:0]      ra;
    reg [cw(NF)-1:0]        ta1;  // row fold: threshold ROM address, travels with the data
    reg [SIMD*AW-1:0]       act1;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) v1 <= 1'b0;
        else if (en) v1 <= issue;
    end
    always @(posedge ap_clk) begin
        if (en) begin
            first1 <= (sf == {cw(SF){1'b0}});
            last1 <= (sf == SF_LAST);
            // A registered copy of the address: the ROM then reads from a plain register (block RAM's
            // address register; in LUTs, one LUT6 per 64 words and bit), not from the counter logic.
            ra <= wa;
            ta1 <= nf;
        end
    end

    generate
        if (NF > 1) begin : g_ibuf
            // one input vector, replayed for the NF-1 later row folds
            reg [SIMD*AW-1:0] ibuf[0:SF-1];
            always @(posedge ap_clk) begin
                if (issue && need_in) ibuf[sf] <= s_axis_tdata;
                if (en) act1 <= need_in ? s_axis_tdata : ibuf[sf];
            end
        end else begin : g_nobuf
            always @(posedge ap_clk) if (en) act1 <= s_axis_tdata;
        end
    endgenerate

    // ---------------------------------------------------------------- read: weight ROM
    reg                     v2, first2, last2;
    reg [cw(NF)-1:0]        ta2;
    reg [SIMD*AW-1:0]       act2;
    reg [PE*SIMD*WW-1:0]    w2;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) v2 <= 1'b0;
        else if (en) v2 <= v1;
    end
    always @(posedge ap_clk) begin
        if (en) begin
            first2 <= first1;
            last2 <= last1;
            ta2 <= ta1;
            act2 <= act1;
        end
    end

    generate
        if (ROM_STYLE == 2) begin : g_rom_block
            (* rom_style = "block", ram_style = "block" *)
            reg [PE*SIMD*WW-1:0] rom[0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, rom);
            always @(posedge ap_clk) if (en) w2 <= rom[ra];
        end else if (ROM_STYLE == 1) begin : g_rom_lut
`ifdef YOSYS
            (* logic_block *)  // Yosys's "distributed" means LUT-RAM; a ROM in LUTs is "logic" there
`else
            (* rom_style = "distributed" *)
`endif
            reg [PE*SIMD*WW-1:0] rom[0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, rom);
            always @(posedge ap_clk) if (en) w2 <= rom[ra];
        end else begin : g_rom_auto
            reg [PE*SIMD*WW-1:0] rom[0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, rom);
            always @(posedge ap_clk) if (en) w2 <= rom[ra];
        end
    endgenerate

    // ---------------------------------------------------------------- multiply and reduce
    wire [PE*DW-1:0] dot;
    reg  [PE*DW-1:0] dot3;
    reg              v3, last3;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [cw(NF)-1:0] ta3;  // unused without thresholds
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_off UNUSEDSIGNAL */
    reg              first3;  // unused when SF = 1
    /* verilator lint_on UNUSEDSIGNAL */

    genvar p, s;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire [SIMD*PW-1:0] prod;
            for (s = 0; s < SIMD; s = s + 1) begin : g_simd
                lutmvu_mul #(
                    .WW(WW), .WS(WEIGHT_SIGNED), .AW(AW), .AS(ACTIVATION_SIGNED)
                ) u_mul (
                    .w(w2[(p*SIMD+s)*WW +: WW]),
                    .a(act2[s*AW +: AW]),
                    .p(prod[s*PW +: PW])
                );
            end
            fracskip_addtree #(.N(SIMD), .IW(PW), .OW(DW), .SGN(SGN)) u_tree (.x(prod), .y(dot[p*DW +: DW]));
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) v3 <= 1'b0;
        else if (en) v3 <= v2;
    end
    always @(posedge ap_clk) begin
        if (en) begin
            dot3 <= dot;
            first3 <= first2;
            last3 <= last2;
            ta3 <= ta2;
        end
    end

    // ---------------------------------------------------------------- accumulate
    wire [PE*ACCU_WIDTH-1:0] res;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_acc
            wire [ACCU_WIDTH-1:0] dx;
            lutmvu_ext #(.IW(DW), .OW(ACCU_WIDTH), .SGN(SGN)) u_ext (.x(dot3[p*DW +: DW]), .y(dx));
            if (SF > 1) begin : g_fold
                reg [ACCU_WIDTH-1:0] acc;
                wire [ACCU_WIDTH-1:0] nxt = (first3 ? {ACCU_WIDTH{1'b0}} : acc) + dx;
                always @(posedge ap_clk) if (en && v3) acc <= nxt;
                assign res[p*ACCU_WIDTH +: ACCU_WIDTH] = nxt;
            end else begin : g_nofold
                assign res[p*ACCU_WIDTH +: ACCU_WIDTH] = dx;
            end
        end
    endgenerate

    // ---------------------------------------------------------------- threshold (optional)
    wire                    push;  // a finished output word enters the output buffer
    wire [PE*OUT_WIDTH-1:0] out;
    generate
        if (N_THRES == 0) begin : g_noact
            assign push = en && v3 && last3;
            assign out = res;
        end else begin : g_act
            localparam integer TW = ACCU_WIDTH + 1;
            localparam integer CNT = clog2(N_THRES + 1);
            reg                       v4;
            reg [PE*ACCU_WIDTH-1:0]   res4;
            reg [cw(NF)-1:0]          ta4;
            wire [PE*N_THRES*TW-1:0]  thr4;
`ifdef YOSYS
            (* logic_block *)
`else
            (* rom_style = "distributed" *)
`endif
            reg [PE*N_THRES*TW-1:0] trom[0:NF-1];
            initial $readmemh(THRESH_FILE, trom);
            // read from a registered address: LUTs only, no register as wide as all thresholds
            assign thr4 = trom[ta4];
            always @(posedge ap_clk) begin
                if (!ap_rst_n) v4 <= 1'b0;
                else if (en) v4 <= v3 && last3;
            end
            always @(posedge ap_clk) begin
                if (en) begin
                    res4 <= res;
                    ta4 <= ta3;
                end
            end
            assign push = en && v4;
            for (p = 0; p < PE; p = p + 1) begin : g_thr
                wire [TW-1:0] a;
                wire [N_THRES-1:0] ge;
                wire [CNT-1:0] cnt;
                lutmvu_ext #(.IW(ACCU_WIDTH), .OW(TW), .SGN(ACCU_SIGNED)) u_ext (
                    .x(res4[p*ACCU_WIDTH +: ACCU_WIDTH]), .y(a));
                for (s = 0; s < N_THRES; s = s + 1) begin : g_cmp
                    wire [TW-1:0] t = thr4[(p*N_THRES + s)*TW +: TW];
                    if (ACCU_SIGNED != 0) begin : g_s
                        assign ge[s] = $signed(a) >= $signed(t);
                    end else begin : g_u
                        assign ge[s] = a >= t;  // unsigned: TW bits hold 0 .. 2^ACCU_WIDTH ("never")
                    end
                end
                fracskip_addtree #(.N(N_THRES), .IW(1), .OW(CNT), .SGN(0)) u_count (.x(ge), .y(cnt));
                /* verilator lint_off WIDTHTRUNC */
                /* verilator lint_off WIDTHEXPAND */
                /* verilator lint_off UNUSEDSIGNAL */
                wire [31:0] act = ACT_VAL + cnt;  // modulo 2^OUT_WIDTH below: the output type's bits
                /* verilator lint_on UNUSEDSIGNAL */
                /* verilator lint_on WIDTHEXPAND */
                /* verilator lint_on WIDTHTRUNC */
                assign out[p*OUT_WIDTH +: OUT_WIDTH] = act[OUT_WIDTH-1:0];
            end
        end
    endgenerate

    // ---------------------------------------------------------------- output buffer (head + spare)
    // Two entries let the pipeline run at full rate while its enable depends on registers only.
    wire full;
    assign en = !full;
    /* verilator lint_off PINCONNECTEMPTY */
    fracskip_buf2 #(.W(PE * OUT_WIDTH)) u_out (
        .clk(ap_clk), .rst_n(ap_rst_n), .push(push), .din(out), .full(full), .count(),
        .valid(m_axis_tvalid), .dout(m_axis_tdata), .ready(m_axis_tready)
    );
    /* verilator lint_on PINCONNECTEMPTY */
endmodule


// One product in LUTs. A mixed-signedness product is taken as signed with the unsigned operand
// zero-extended by one bit; WW + AW bits always hold the result.
(* use_dsp = "no" *)
module lutmvu_mul #(
    parameter integer WW = 4,
    parameter integer WS = 1,
    parameter integer AW = 4,
    parameter integer AS = 0
) (
    input  wire [WW-1:0]    w,
    input  wire [AW-1:0]    a,
    output wire [WW+AW-1:0] p
);
    generate
        if (WS == 0 && AS == 0) begin : g_uu
            assign p = w * a;
        end else if (WS != 0 && AS != 0) begin : g_ss
            assign p = $signed(w) * $signed(a);
        end else if (WS != 0) begin : g_su
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [WW+AW:0] full = $signed(w) * $signed({1'b0, a});
            /* verilator lint_on UNUSEDSIGNAL */
            assign p = full[WW+AW-1:0];  // the top bit is a copy of the sign
        end else begin : g_us
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [WW+AW:0] full = $signed({1'b0, w}) * $signed(a);
            /* verilator lint_on UNUSEDSIGNAL */
            assign p = full[WW+AW-1:0];  // the top bit is a copy of the sign
        end
    endgenerate
endmodule


// Sign- or zero-extension (or truncation, modulo 2^OW) of IW to OW bits.
module lutmvu_ext #(
    parameter integer IW = 8,
    parameter integer OW = 8,
    parameter integer SGN = 1
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [IW-1:0] x,  // the top bits are unused when truncating
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [OW-1:0] y
);
    generate
        if (OW <= IW) begin : g_trunc
            assign y = x[OW-1:0];
        end else if (SGN != 0) begin : g_sext
            assign y = {{(OW - IW){x[IW-1]}}, x};
        end else begin : g_zext
            assign y = {{(OW - IW){1'b0}}, x};
        end
    endgenerate
endmodule

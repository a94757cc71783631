// Bit-serial, runtime-precision matrix-vector unit (fracskip.hls.bitserial).
//
// y = W_m x for the mode m of the frame, with W_m the MH x MW integer matrix of mode m (every mode has
// its own weights in the weight memory), computed one weight bit-plane group x one activation bit-plane
// at a time (BISMO's arithmetic): per cycle and PE, WBP popcounts of SIMD lanes of (weight plane AND
// activation plane). Cycles therefore follow b_w * b_a of the frame's mode:
//     per vector  NF * max(AB_m * WB_m / WBP * SF,  OB_m)     (OB_m: threshold steps, 0 without)
// Optionally followed by FINN's multi-threshold activation with the mode's own thresholds:
//     y' = ACT_VAL_m + #{i : y >= T_m[row][i]}, found by a binary search over the sorted thresholds
//     (one compare per output bit per cycle, one comparator per PE).
//
// Streams (FINN's MVAU layout): input word = IN_SIMD activations of ACTIVATION_WIDTH bits (element s at
// [s*AW +: AW]; a mode with fewer bits uses the low AB_m bits, two's complement if signed), MW/IN_SIMD words
// per vector, SIMD/IN_SIMD of them gathered into each SIMD word the loader takes (one input word per cycle:
// a width converter inside the unit, without the FIFO FINN puts behind one, a LUT per bit of the wide side);
// output word = PE elements (row nf*PE + p at the p-th lowest field), MH/PE words per vector.
// Mode stream: one token per frame of N_VEC vectors, taken before the frame's first input word
// (MODE_STREAM = 0: one fixed mode, no token).
//
// Channel groups (LC-Net's channel skipping, CSKIP != 0): the token also holds a keep bit per group of
// GROUP channels (s_mode_tdata[2 +: NG]); the frame's dropped groups take no dot products:
//     CSKIP = 1, output channels: a dropped row fold (GROUP/PE of them per group) gives zeros in one cycle;
//     CSKIP = 2, input channels: the column folds of dropped channels (channel c = (sf % CF) * SIMD + s of
//                each kernel position, GROUP/SIMD folds per group) are neither computed (they count as
//                zeros) nor loaded plane by plane (a dropped input word is taken in one cycle).
// A token keeps at least one group (the gates' channel heads always keep one; mode_token refuses none): with no
// input group kept, CSKIP = 2 would never close a row fold.
//
// Sign handling: two's complement planes; the weight MSB plane and (signed activations) the activation
// MSB plane count negatively. Accumulation is Horner's rule, MSB planes first: the inner sum T over
// weight plane groups and column folds (T <- T << WBP at each new group), the outer sum A over
// activation planes (A <- 2A +- T). All modulo 2^ACCU_WIDTH: exact when the result fits.
//
// Memories: weights (word = PE*WBP planes of SIMD bits), mode m from word WBASE_m, row fold nf, group g
// (MSB group first), column fold sf at WBASE_m + (nf*G_m + g)*SF + sf; bit (p*WBP + i)*SIMD + s is bit
// (G_m-1-g)*WBP + i of W_m[nf*PE + p][sf*SIMD + s]. Thresholds: one memory per PE (file
// THRESH_FILE_peNN.dat), word TBASE_m + nf*2^OB_m + i = T_m[nf*PE + p][i] (ascending, padded with
// "never"), ACCU_WIDTH+1 bits, signed. Activations: a two-bank buffer of bit-planes, written one plane
// per cycle while the other bank is computed on; 2*SF*2^clog2(AW) words of SIMD bits, in LUT RAM or (ABUF_BLOCK)
// block RAM (Yosys, PE 4 x SIMD 64 at SF 9 and 8 bits: 418 LUTs fewer for 2 RAMB18).
//
// Pipeline: issue -> read (memories) -> popcount -> T -> A -> [thresholds] -> output buffer. One enable
// that depends on registers only stalls it: no TREADY depends combinationally on another stream.
// Verilog-2005; one module per file.
(* use_dsp = "no" *)
module bsmvu #(
    parameter integer MW = 8,
    parameter integer MH = 4,
    parameter integer PE = 1,
    parameter integer SIMD = 4,
    parameter integer IN_SIMD = SIMD,          // activations per input word; divides SIMD
    parameter integer WBP = 1,                 // weight bit-planes per cycle; divides every WB_m (stored widths)
    parameter integer N_MODES = 1,             // 1..4
    parameter [31:0] WBITS = 32'h02,           // weight bits per mode, mode m at [8m +: 8]
    parameter [31:0] ABITS = 32'h02,           // activation bits per mode
    parameter [31:0] OBITS = 32'h00,           // output bits per mode (0 for all: no activation)
    parameter [127:0] ACT_VALS = 128'h0,       // activation offset per mode, 32-bit two's complement
    parameter [63:0] WBASE = 64'h0,            // first weight word per mode, 16-bit fields
    parameter [63:0] TBASE = 64'h0,            // first threshold word per mode, 16-bit fields
    parameter integer WMEM = 1,                // weight words
    parameter integer TMEM = 1,                // threshold words per PE
    parameter integer WEIGHT_SIGNED = 1,
    parameter integer ACTIVATION_SIGNED = 0,
    parameter integer ACTIVATION_WIDTH = 2,    // input element field: the widest mode's
    parameter integer ACCU_WIDTH = 16,
    parameter integer OUT_WIDTH = ACCU_WIDTH,  // output element field
    parameter integer N_VEC = 1,               // vectors per frame (one mode token each frame)
    parameter integer MODE_STREAM = 1,
    parameter integer RAM_STYLE = 0,           // weights: 0 tool decides, 1 distributed, 2 block
    parameter integer TRAM_BLOCK = 0,          // thresholds: 1 block RAM, 0 tool decides (the estimate's rule)
    parameter integer ABUF_BLOCK = 0,          // activation buffer: 1 block RAM, 0 LUT RAM
    parameter integer CSKIP = 0,               // channel groups: 0 none, 1 output channels, 2 input channels
    parameter integer NG = 1,                  // channel groups (keep bits in the token)
    parameter integer GPF = 1,                 // folds per group: GROUP/PE (CSKIP 1), GROUP/SIMD (CSKIP 2)
    parameter integer CF = 1,                  // column folds per kernel position (CSKIP 2): channels/SIMD
    parameter WEIGHT_FILE = "weights.dat",
    parameter THRESH_FILE = "thresholds"       // prefix: <prefix>_peNN.dat
) (
    input  wire                             ap_clk,
    input  wire                             ap_rst_n,
    input  wire [IN_SIMD*ACTIVATION_WIDTH-1:0] s_axis_tdata,
    input  wire                             s_axis_tvalid,
    output wire                             s_axis_tready,
    /* verilator lint_off UNUSEDSIGNAL */  // unused with MODE_STREAM = 0
    input  wire [NG+1:0]                    s_mode_tdata,   // [1:0] mode, [2 +: NG] keep bits (CSKIP)
    input  wire                             s_mode_tvalid,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire                             s_mode_tready,
    output wire [PE*OUT_WIDTH-1:0]          m_axis_tdata,
    output wire                             m_axis_tvalid,
    input  wire                             m_axis_tready
);
    // Per-mode fields are cut from packed parameters and counters compared with 8-bit mode values:
    // the widths differ on purpose throughout.
    /* verilator lint_off WIDTHTRUNC */
    /* verilator lint_off WIDTHEXPAND */
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

    function [15:0] dec2(input integer n);  // two decimal digits as a string
        dec2 = ((48 + n / 10) << 8) | (48 + n % 10);
    endfunction

    function integer f8(input [31:0] v, input integer m);
        f8 = (v >> (8 * m)) & 8'hff;
    endfunction

    function integer omax(input [31:0] v);
        integer m;
        begin
            omax = 0;
            for (m = 0; m < 4; m = m + 1) if (f8(v, m) > omax) omax = f8(v, m);
        end
    endfunction

    localparam integer SF = MW / SIMD;
    localparam integer NF = MH / PE;
    localparam integer AW = ACTIVATION_WIDTH;
    localparam integer GW = SIMD / IN_SIMD;      // input words gathered per SIMD word
    localparam integer JW = cw(AW);              // activation plane index bits
    localparam integer SW = cw(2 * SF);          // activation buffer word slot (bank * SF + sf)
    localparam integer ADEPTH = 2 * SF * (1 << JW);
    localparam integer WAW = cw(WMEM);
    localparam integer PCW = clog2(SIMD + 1);    // popcount
    localparam integer DW = PCW + WBP + 1;       // signed combination of WBP popcounts
    localparam integer OMAX = omax(OBITS);
    localparam integer HAS_ACT = (OMAX > 0) ? 1 : 0;
    localparam integer PW = (OMAX > 0) ? OMAX : 1;  // binary-search position bits
    localparam integer TW = ACCU_WIDTH + 1;
    localparam integer TAW = cw(TMEM);
    localparam integer AC = ACCU_WIDTH;

    // ================================================================ per-mode constants
    // Per-mode values are constants picked by the mode (a small mux); a mode token >= N_MODES is not
    // valid (skipping is decided outside the unit) and picks the last mode's values.
    localparam integer M1 = (N_MODES > 1) ? 1 : 0;
    localparam integer M2 = (N_MODES > 2) ? 2 : M1;
    localparam integer M3 = (N_MODES > 3) ? 3 : M2;
    localparam [7:0] AB0 = f8(ABITS, 0), AB1 = f8(ABITS, M1), AB2 = f8(ABITS, M2), AB3 = f8(ABITS, M3);
    localparam [7:0] GL0 = f8(WBITS, 0) / WBP - 1, GL1 = f8(WBITS, M1) / WBP - 1,
                     GL2 = f8(WBITS, M2) / WBP - 1, GL3 = f8(WBITS, M3) / WBP - 1;
    localparam [7:0] OB0 = f8(OBITS, 0), OB1 = f8(OBITS, M1), OB2 = f8(OBITS, M2), OB3 = f8(OBITS, M3);
    localparam [15:0] WB0 = WBASE >> 0, WB1 = WBASE >> (16 * M1), WB2 = WBASE >> (16 * M2),
                      WB3 = WBASE >> (16 * M3);
    localparam [15:0] TB0 = TBASE >> 0, TB1 = TBASE >> (16 * M1), TB2 = TBASE >> (16 * M2),
                      TB3 = TBASE >> (16 * M3);
    localparam [31:0] AV0 = ACT_VALS >> 0, AV1 = ACT_VALS >> (32 * M1), AV2 = ACT_VALS >> (32 * M2),
                      AV3 = ACT_VALS >> (32 * M3);

    function [31:0] pick(input [1:0] m, input [31:0] v0, input [31:0] v1, input [31:0] v2, input [31:0] v3);
        case (m)
            2'd0: pick = v0;
            2'd1: pick = v1;
            2'd2: pick = v2;
            default: pick = v3;
        endcase
    endfunction

    // ================================================================ loader: mode token, input words -> planes
    reg              has_mode;
    reg  [1:0]       lmode;
    reg  [NG-1:0]    lmask, smask, bmask0, bmask1;  // keep bits of the token, the staged word, each bank
    reg  [cw(SF)-1:0]    isf;   // input word position in the frame
    reg  [cw(N_VEC)-1:0] iv;
    reg              stage_v;
    reg  [1:0]       smode;
    reg  [SIMD*AW-1:0] stage;
    reg  [JW-1:0]    lj;        // plane being written
    reg  [cw(SF)-1:0] lsf;
    reg  [SW-1:0]    lslot;
    reg              lb;        // bank being filled
    reg  [1:0]       full;
    reg  [1:0]       bmode0, bmode1;
    wire             comp_done;  // compute side: the last step of bank cb issued
    reg              cb;

    wire [7:0] s_ab = pick(smode, AB0, AB1, AB2, AB3);
    // a word of dropped input channels is taken in one cycle: the compute never reads its planes
    wire l_drop = (CSKIP == 2) && !smask[(lsf % CF) / GPF];
    wire wr = stage_v && !full[lb];
    wire wr_last = wr && (l_drop || lj == s_ab - 1);
    wire fill_done = wr_last && (lsf == SF - 1);
    wire stage_free = !stage_v || wr_last;
    wire in_take = s_axis_tvalid && s_axis_tready;
    wire take;                 // a SIMD word enters the stage
    wire word_in;              // the last input word of a SIMD word taken
    wire [SIMD*AW-1:0] word;   // the SIMD word taken, its frame's mode and keep bits
    wire [1:0]       word_mode;
    wire [NG-1:0]    word_mask;
    /* verilator lint_off UNUSEDSIGNAL */
    wire frame_in_done = word_in && (isf == SF - 1) && (iv == N_VEC - 1);
    /* verilator lint_on UNUSEDSIGNAL */

    generate
        if (GW == 1) begin : g_direct
            assign s_axis_tready = has_mode && stage_free;
            assign take = in_take;
            assign word_in = in_take;
            assign word = s_axis_tdata;
            assign word_mode = lmode;
            assign word_mask = lmask;
        end else begin : g_gather
            // input words shift in from the top: after GW of them the first is element 0
            reg [SIMD*AW-1:0] gath;
            reg [cw(GW)-1:0]  gq;
            reg               gfull;
            reg [1:0]         gmode;
            reg [NG-1:0]      gmask;
            assign take = gfull && stage_free;
            assign s_axis_tready = has_mode && (!gfull || take);
            assign word_in = in_take && (gq == GW - 1);
            assign word = gath;
            assign word_mode = gmode;
            assign word_mask = gmask;
            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    gq <= 0;
                    gfull <= 1'b0;
                end else begin
                    if (in_take) gq <= (gq == GW - 1) ? 0 : gq + 1'b1;
                    if (word_in) gfull <= 1'b1;
                    else if (take) gfull <= 1'b0;
                end
            end
            always @(posedge ap_clk) begin
                if (in_take) gath <= {s_axis_tdata, gath[SIMD*AW-1:IN_SIMD*AW]};
                // the frame's mode is still lmode here: has_mode drops with this word at the frame's end
                if (word_in) begin
                    gmode <= lmode;
                    gmask <= lmask;
                end
            end
        end
    endgenerate

    generate
        if (MODE_STREAM != 0) begin : g_mode
            assign s_mode_tready = !has_mode;
            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    has_mode <= 1'b0;
                end else if (s_mode_tvalid && !has_mode) begin
                    has_mode <= 1'b1;
                    lmode <= s_mode_tdata[1:0];
                    lmask <= (CSKIP != 0) ? s_mode_tdata[2 +: NG] : {NG{1'b1}};
                end else if (frame_in_done) begin
                    has_mode <= 1'b0;
                end
            end
        end else begin : g_fixed
            assign s_mode_tready = 1'b0;
            always @(posedge ap_clk) begin
                has_mode <= 1'b1;
                lmode <= 2'd0;
                lmask <= {NG{1'b1}};
            end
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            isf <= 0;
            iv <= 0;
            stage_v <= 1'b0;
            lj <= 0;
            lsf <= 0;
            lslot <= 0;
            lb <= 1'b0;
            full <= 2'b00;
        end else begin
            if (word_in) begin
                isf <= (isf == SF - 1) ? 0 : isf + 1'b1;
                if (isf == SF - 1) iv <= (iv == N_VEC - 1) ? 0 : iv + 1'b1;
            end
            if (take) stage_v <= 1'b1;
            else if (wr_last) stage_v <= 1'b0;
            if (wr) lj <= wr_last ? 0 : lj + 1'b1;
            if (wr_last) begin
                lsf <= (lsf == SF - 1) ? 0 : lsf + 1'b1;
                lslot <= (lslot == 2 * SF - 1) ? 0 : lslot + 1'b1;
            end
            if (fill_done) lb <= !lb;
            if (fill_done) full[lb] <= 1'b1;
            if (comp_done) full[cb] <= 1'b0;
        end
    end
    always @(posedge ap_clk) begin
        if (take) begin
            stage <= word;
            smode <= word_mode;
            smask <= word_mask;
        end
        if (fill_done) begin
            if (lb) bmode1 <= smode;
            else bmode0 <= smode;
            if (lb) bmask1 <= smask;
            else bmask0 <= smask;
        end
    end

    // plane lj of every lane of the staged word: each lane's element first, then its bit (an AW:1 mux per lane;
    // written as stage[s*AW + lj], a frontend may build SIMD shifters of the whole word: Yosys's read_slang ran
    // out of memory at SIMD 288)
    wire [SIMD-1:0] plane;
    genvar s;
    generate
        for (s = 0; s < SIMD; s = s + 1) begin : g_lane
            wire [AW-1:0] el = stage[s * AW +: AW];
            assign plane[s] = el[lj];
        end
    endgenerate

    // ================================================================ compute: issue
    reg  [cw(SF)-1:0] csf;
    reg  [7:0]        cgu;   // weight plane groups done in this activation plane (MSB group first)
    reg  [7:0]        cju;   // activation planes done in this row fold (MSB plane first)
    reg  [cw(NF)-1:0] cnf;
    reg  [SW-1:0]     cslot;
    reg  [WAW-1:0]    wrow;  // first weight word of the row fold, relative to the mode's base
    reg  [WAW-1:0]    wt;    // weight word within the activation plane
    wire en;
    wire [1:0] cmode = cb ? bmode1 : bmode0;
    wire [7:0] c_ab = pick(cmode, AB0, AB1, AB2, AB3);
    wire [7:0] c_gl = pick(cmode, GL0, GL1, GL2, GL3);
    wire issue = en && full[cb];
    wire [NG-1:0] cmask = cb ? bmask1 : bmask0;
    // CSKIP 1: a dropped row fold is one step that gives zeros
    wire zrow = (CSKIP == 1) && !cmask[cnf / GPF];
    // CSKIP 2: the column folds of kept channels only, kernel position cp, kept fold cr of it
    reg  [cw(SF/CF)-1:0] cp;
    reg  [cw(CF)-1:0]    cr;
    reg  [CF-1:0]        fkeep;  // kept column folds of a kernel position
    reg  [cw(CF)-1:0]    cf_r;   // the column fold of kept rank cr
    reg  [cw(CF+1)-1:0]  n_kept;
    integer fq;
    always @* begin
        n_kept = 0;
        cf_r = 0;
        for (fq = 0; fq < CF; fq = fq + 1) begin
            fkeep[fq] = cmask[fq / GPF];
            if (fkeep[fq]) begin
                if (n_kept == cr) cf_r = fq;
                n_kept = n_kept + 1'b1;
            end
        end
    end
    wire [cw(SF)-1:0] sf_eff = (CSKIP == 2) ? cp * CF + cf_r : csf;
    wire fold_first = (CSKIP == 2) ? (cp == 0 && cr == 0) : (csf == 0);
    wire fold_last = (CSKIP == 2) ? (cp == SF / CF - 1 && cr == n_kept - 1) : (csf == SF - 1);
    wire t_last = zrow || ((cgu == c_gl) && fold_last);
    wire row_last = zrow || (t_last && (cju == c_ab - 1));
    assign comp_done = issue && row_last && (cnf == NF - 1);
    wire [JW-1:0] cj = c_ab - 1 - cju;
    wire [WAW-1:0] wa = pick(cmode, WB0, WB1, WB2, WB3) + wrow + ((CSKIP == 2) ? cgu * SF + sf_eff : wt);
    wire [SW-1:0] rslot = (CSKIP == 2) ? (cb ? SF : 0) + sf_eff : cslot;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            cb <= 1'b0;
            csf <= 0;
            cgu <= 0;
            cju <= 0;
            cnf <= 0;
            cslot <= 0;
            wrow <= 0;
            wt <= 0;
            cp <= 0;
            cr <= 0;
        end else if (issue) begin
            if (!zrow) begin
                csf <= (csf == SF - 1) ? 0 : csf + 1'b1;
                cslot <= cslot + 1'b1;
                wt <= wt + 1'b1;
                cr <= (cr == n_kept - 1) ? 0 : cr + 1'b1;
                if (cr == n_kept - 1) cp <= (cp == SF / CF - 1) ? 0 : cp + 1'b1;
            end
            if (fold_last) begin
                cgu <= cgu + 1'b1;
                cslot <= cb ? SF : 0;
            end
            if (t_last) begin
                cgu <= 0;
                cju <= cju + 1'b1;
                wt <= 0;
            end
            if (row_last) begin
                cju <= 0;
                cnf <= (cnf == NF - 1) ? 0 : cnf + 1'b1;
                wrow <= wrow + (c_gl + 1) * SF;
            end
            if (comp_done) begin
                cb <= !cb;
                cslot <= cb ? 0 : SF;
                wrow <= 0;
            end
        end
    end

    // ================================================================ read: weights, activation plane
    reg              v1;
    reg              tf1, gs1, nw1, tl1, jf1, na1, rl1, z1;
    reg  [1:0]       m1;
    reg  [cw(NF)-1:0] nf1;
    reg  [PE*WBP*SIMD-1:0] w1;
    reg  [SIMD-1:0]  a1;

    // a Verilog-2005 attribute takes no parameter: one branch per memory style, as for the weights below
    generate
        if (ABUF_BLOCK != 0) begin : g_ablock
            (* ram_style = "block" *)
            reg [SIMD-1:0] abuf [0:ADEPTH-1];
            always @(posedge ap_clk) begin
                if (wr) abuf[{lslot, lj}] <= plane;
                if (en) a1 <= abuf[{rslot, cj}];
            end
        end else begin : g_alut
            (* ram_style = "distributed" *)
            reg [SIMD-1:0] abuf [0:ADEPTH-1];
            always @(posedge ap_clk) begin
                if (wr) abuf[{lslot, lj}] <= plane;
                if (en) a1 <= abuf[{rslot, cj}];
            end
        end
    endgenerate

    generate
        if (RAM_STYLE == 2) begin : g_wblock
            (* rom_style = "block", ram_style = "block" *)
            reg [PE*WBP*SIMD-1:0] wmem [0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            always @(posedge ap_clk) if (en) w1 <= wmem[wa];
        end else if (RAM_STYLE == 1) begin : g_wlut
`ifdef YOSYS
            (* logic_block *)
`else
            (* rom_style = "distributed" *)
`endif
            reg [PE*WBP*SIMD-1:0] wmem [0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            always @(posedge ap_clk) if (en) w1 <= wmem[wa];
        end else begin : g_wauto
            reg [PE*WBP*SIMD-1:0] wmem [0:WMEM-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            always @(posedge ap_clk) if (en) w1 <= wmem[wa];
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) v1 <= 1'b0;
        else if (en) v1 <= issue;
    end
    always @(posedge ap_clk) begin
        if (en) begin
            tf1 <= (cgu == 0) && fold_first;
            gs1 <= fold_first;
            z1 <= zrow;
            nw1 <= (WEIGHT_SIGNED != 0) && (cgu == 0);
            tl1 <= t_last;
            jf1 <= (cju == 0);
            na1 <= (ACTIVATION_SIGNED != 0) && (cju == 0);
            rl1 <= row_last;
            m1 <= cmode;
            nf1 <= cnf;
        end
    end

    // ================================================================ popcount
    reg              v2, tf2, gs2, nw2, tl2, jf2, na2, rl2, z2;
    reg  [1:0]       m2;
    reg  [cw(NF)-1:0] nf2;
    reg  [PE*WBP*PCW-1:0] pc2;
    wire [PE*WBP*PCW-1:0] pc;
    genvar p, i;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            for (i = 0; i < WBP; i = i + 1) begin : g_plane
                bsmvu_popcount #(.N(SIMD), .OW(PCW)) u_pc (
                    .a(w1[(p * WBP + i) * SIMD +: SIMD]), .b(a1), .y(pc[(p * WBP + i) * PCW +: PCW]));
            end
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) v2 <= 1'b0;
        else if (en) v2 <= v1;
    end
    always @(posedge ap_clk) begin
        if (en) begin
            pc2 <= pc;
            {tf2, gs2, nw2, tl2, jf2, na2, rl2, z2, m2, nf2} <= {tf1, gs1, nw1, tl1, jf1, na1, rl1, z1, m1, nf1};
        end
    end

    // ================================================================ T: weight planes and column folds
    reg              v3, jf3, na3, rl3, z3;
    /* verilator lint_off UNUSEDSIGNAL */  // mode and row fold: used by the thresholds only
    reg  [1:0]       m3;
    reg  [cw(NF)-1:0] nf3;
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [PE*AC-1:0] t3;      // T of a finished activation plane
    wire [PE*AC-1:0] an;      // A after this plane: the row result on its last plane
    reg  [PE*AC-1:0] acc_a;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_acc
            reg signed [DW-1:0] d;
            integer k;
            always @* begin
                d = 0;
                for (k = 0; k < WBP; k = k + 1) begin
                    if (k == WBP - 1 && nw2)
                        d = d - ($signed({1'b0, pc2[(p * WBP + k) * PCW +: PCW]}) <<< k);
                    else
                        d = d + ($signed({1'b0, pc2[(p * WBP + k) * PCW +: PCW]}) <<< k);
                end
            end
            reg  [AC-1:0] t;
            wire [AC-1:0] t_base = tf2 ? {AC{1'b0}} : (gs2 ? (t << WBP) : t);
            wire signed [AC-1:0] dx = d;  // sign-extended
            wire [AC-1:0] t_next = t_base + dx;
            always @(posedge ap_clk) if (en && v2) t <= t_next;
            always @(posedge ap_clk) if (en) t3[p * AC +: AC] <= t_next;

            wire [AC-1:0] ti = t3[p * AC +: AC];
            wire [AC-1:0] a_base = jf3 ? {AC{1'b0}} : (acc_a[p * AC +: AC] << 1);
            assign an[p * AC +: AC] = z3 ? {AC{1'b0}} : (na3 ? a_base - ti : a_base + ti);
            always @(posedge ap_clk) if (en && v3) acc_a[p * AC +: AC] <= an[p * AC +: AC];
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) v3 <= 1'b0;
        else if (en) v3 <= v2 && tl2;
    end
    always @(posedge ap_clk) begin
        if (en) {jf3, na3, rl3, z3, m3, nf3} <= {jf2, na2, rl2, z2, m2, nf2};
    end
    wire push = en && v3 && rl3;  // a row fold's PE results are final

    // ================================================================ activation and output
    generate
        if (HAS_ACT == 0) begin : g_noact
            wire ob_full;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [1:0] ob_count;
            /* verilator lint_on UNUSEDSIGNAL */
            assign en = !ob_full;
            fracskip_buf2 #(.W(PE * OUT_WIDTH)) u_out (
                .clk(ap_clk), .rst_n(ap_rst_n), .push(push), .din(an), .full(ob_full), .count(ob_count),
                .valid(m_axis_tvalid), .dout(m_axis_tdata), .ready(m_axis_tready));
        end else begin : g_act
            // results wait in a two-entry queue; the threshold engine takes one, searches OB_m cycles
            localparam integer QW = PE * AC + 2 + cw(NF);
            wire rq_full, rq_valid;
            wire [1:0] ob_count;
            /* verilator lint_off UNUSEDSIGNAL */
            wire ob_full;  // the engine looks at the count
            wire [1:0] rq_count;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [QW-1:0] rq;
            wire rq_pop;
            assign en = !rq_full;
            fracskip_buf2 #(.W(QW)) u_rq (
                .clk(ap_clk), .rst_n(ap_rst_n), .push(push), .din({nf3, m3, an}), .full(rq_full),
                .count(rq_count), .valid(rq_valid), .dout(rq), .ready(rq_pop));
            wire [PE*AC-1:0] q_acc = rq[PE * AC - 1:0];
            wire [1:0] q_mode = rq[PE * AC +: 2];
            wire [cw(NF)-1:0] q_nf = rq[PE * AC + 2 +: cw(NF)];

            reg busy;
            reg [7:0] tb;  // bit of the position being decided
            reg [1:0] tmode;
            reg [TAW-1:0] tbase_r;
            reg [PE*AC-1:0] tacc;
            wire done = busy && (tb == 0);
            // start only if the output buffer still has room when this search ends
            wire start = rq_valid && (!busy || done) && ({1'b0, ob_count} + done <= 1);
            assign rq_pop = start;
            wire [7:0] q_ob = pick(q_mode, OB0, OB1, OB2, OB3);
            wire [TAW-1:0] q_base = pick(q_mode, TB0, TB1, TB2, TB3) + (q_nf << q_ob);
            wire [PW-1:0] first_idx = (1 << (q_ob - 1)) - 1;
            wire [PE*OUT_WIDTH-1:0] result;
            wire [31:0] act_val = pick(tmode, AV0, AV1, AV2, AV3);

            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    busy <= 1'b0;
                end else begin
                    if (start) busy <= 1'b1;
                    else if (done) busy <= 1'b0;
                end
            end
            always @(posedge ap_clk) begin
                if (start) begin
                    tb <= q_ob - 1;
                    tmode <= q_mode;
                    tbase_r <= q_base;
                    tacc <= q_acc;
                end else if (busy) begin
                    tb <= tb - 1;
                end
            end

            for (p = 0; p < PE; p = p + 1) begin : g_thr
                reg [TW-1:0] q;
                reg [PW-1:0] pos;
                wire [AC-1:0] a = tacc[p * AC +: AC];
                wire ge = $signed({a[AC-1], a}) >= $signed(q);
                wire [PW-1:0] pos_new = pos | (ge << tb);
                wire [PW-1:0] next_idx = pos_new | ((1 << (tb - 1)) - 1);
                wire [TAW-1:0] addr = start ? q_base + first_idx : tbase_r + next_idx;
                // left to the tool, Yosys made tables of 80 and 320 words LUT ROMs (up to 250 LUTs per PE)
                if (TRAM_BLOCK) begin : g_tblock
                    (* rom_style = "block", ram_style = "block" *)
                    reg [TW-1:0] tmem [0:TMEM-1];
                    initial $readmemh({THRESH_FILE, "_pe", dec2(p), ".dat"}, tmem);
                    always @(posedge ap_clk) q <= tmem[addr];
                end else begin : g_tauto
                    reg [TW-1:0] tmem [0:TMEM-1];
                    initial $readmemh({THRESH_FILE, "_pe", dec2(p), ".dat"}, tmem);
                    always @(posedge ap_clk) q <= tmem[addr];
                end
                always @(posedge ap_clk) begin
                    if (start) pos <= 0;
                    else if (busy) pos <= pos_new;
                end
                /* verilator lint_off UNUSEDSIGNAL */
                wire [31:0] y = act_val + pos_new;  // modulo 2^OUT_WIDTH: the output type's bits
                /* verilator lint_on UNUSEDSIGNAL */
                assign result[p * OUT_WIDTH +: OUT_WIDTH] = y[OUT_WIDTH-1:0];
            end

            fracskip_buf2 #(.W(PE * OUT_WIDTH)) u_out (
                .clk(ap_clk), .rst_n(ap_rst_n), .push(done), .din(result), .full(ob_full), .count(ob_count),
                .valid(m_axis_tvalid), .dout(m_axis_tdata), .ready(m_axis_tready));
        end
    endgenerate
    /* verilator lint_on WIDTHEXPAND */
    /* verilator lint_on WIDTHTRUNC */
endmodule

// fracskip DFSGate_rtl core: the integer DFS gate of docs/integer-gate.md (fracskip-integer-gate/1).
//
// Streams (FINN's names; one frame = one image at this gate):
//   in0_V   block-input feature map, NHWC order, PE uint8 codes per word (lane l = channel fold*PE + l),
//           HW*C/PE words per frame.
//   in1_V   state token of the previous gate (used when STATE_IN = 1): 1 + 2H int16 words per frame, in order
//           [d, h_0 .. h_{H-1}, c_0 .. c_{H-1}] (d is ignored here).
//   out0_V  this gate's token: [d, h'_0 .. h'_{H-1}, c'_0 .. c'_{H-1}] (int16 words, h' sign-extended) when
//           STATE_OUT = 1, else [d] alone.
// With LC-Net's channel head (NG > 0 groups), the token has the keep bits as its second word, [d, k, h', c']
// (or [d, k]); a state token with that word (KIN = 1) is read past it.
// The tokens move a word per cycle: a 336-bit token word cost every FIFO on its way 344 LUTs, and the 2H cycles
// it takes to read a state are nothing beside an evaluation.
//
// Datapath: per lane a read-modify-write pool-sum memory, two banks (the next frame accumulates while the
// previous one is evaluated); then one multiply-accumulate per cycle through
//   CONV  C cycles     p[c] = min(255, rsr(S[c] * PM, 20))
//   EMB   H*C          e[j] = sat8(rsr(bias + sum_c W[j,c] p[c], SH_E))
//   LSTM  4H*2H        z[r] = sat8(rsr(bias + (sum w_ih e << SH_IH) + (sum w_hh h << SH_HH), SH_Z)),
//                      rows unit by unit (i, f, g, o), each unit's cell and hidden update pipelined behind
//   PROJ  (K+NG)*H     y[k], argmax (lowest index on ties); channel logits y[K+j], group j kept iff > 0, the
//                      first largest when none is
// with fixed drain gaps between phases. One evaluation takes C + H*C + 8H^2 + (K+NG)*H + 18 cycles, and 2H
// (+ KIN) more reading a state token (EVAL_CYCLES);
// a frame takes max(HW*C/PE, EVAL_CYCLES) cycles in steady state (no back-pressure).
// Weights are one sequential ROM (read in issue order), biases another; tables are 256-entry ROMs.
module dfsgate #(
  parameter integer C = 16,         // channels
  parameter integer PE = 1,         // channels per in0 word (divides C)
  parameter integer HW = 49,        // pixels per frame
  parameter integer H = 10,         // hidden units (>= 2)
  parameter integer K = 4,          // menu entries (>= 2)
  parameter integer SW = 14,        // pool-sum bits: bit length of 255*HW
  parameter integer PM = 21400,     // pool multiplier round(2^20 / HW)
  parameter integer PMW = 15,       // its bits
  parameter integer SH_E = 8,       // embed_exp + IFACE_EXP - x_exp (may be <= 0)
  parameter integer SH_IH = 0,      // F - w_ih_exp - x_exp (>= 0)
  parameter integer SH_HH = 0,      // F - w_hh_exp - H_EXP (>= 0)
  parameter integer SH_Z = 8,       // F - Z_EXP (may be <= 0)
  parameter integer ACCW = 40,      // accumulator bits (signed)
  parameter integer STATE_IN = 1,
  parameter integer STATE_OUT = 1,
  parameter integer NG = 0,         // channel groups of the channel head (0: none; at most 16)
  parameter integer KIN = 0,        // the state token has a keep word (the previous gate has a channel head)
  parameter WEIGHT_FILE = "weights.mem",
  parameter BIAS_FILE = "bias.mem",
  parameter SIG_FILE = "sigmoid.mem",
  parameter TANH_FILE = "tanh.mem"
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [8*PE-1:0] in0_V_TDATA,
  input  wire in0_V_TVALID,
  output wire in0_V_TREADY,
  input  wire [15:0] in1_V_TDATA,
  input  wire in1_V_TVALID,
  output wire in1_V_TREADY,
  output wire [15:0] out0_V_TDATA,
  output wire out0_V_TVALID,
  input  wire out0_V_TREADY
);
  localparam integer NF = C / PE;                          // words per pixel
  localparam integer FB = (NF > 1) ? $clog2(NF) : 1;
  localparam integer LB = (PE > 1) ? $clog2(PE) : 1;
  localparam integer PB = (HW > 1) ? $clog2(HW) : 1;
  localparam integer CB = $clog2(C + 1);
  localparam integer NCOL = (C > 2*H) ? C : 2*H;
  localparam integer COLW = $clog2(NCOL + 1);
  localparam integer KR = K + NG;                          // projection rows: the menu, then the groups
  localparam integer NROW = (4*H > KR) ? 4*H : KR;
  localparam integer ROWW = $clog2(NROW + 1);
  localparam integer NW = H*C + 8*H*H + KR*H;             // weight ROM words
  localparam integer NB = 5*H + KR;                       // bias ROM words
  localparam integer WAW = $clog2(NW + 1);
  localparam integer BAW = $clog2(NB + 1);
  localparam integer DW = (K > 2) ? $clog2(K) : 1;
  localparam integer HB = (H > 1) ? $clog2(H) : 1;
  localparam integer KW = (NG > 0) ? 1 : 0;                // this gate's token has a keep word
  localparam integer TL = 1 + KW + 2*H;                   // words of this gate's token with state
  localparam integer TLI = 1 + KIN + 2*H;                 // words of the state token read
  localparam integer NOUT = STATE_OUT ? TL : 1 + KW;       // words of this gate's token
  localparam integer TB = $clog2(((TL > TLI) ? TL : TLI) + 1);
  localparam integer NGW = (NG > 0) ? NG : 1;
  localparam integer D1 = 2, D2 = 3, D3 = 7, D4 = 3;      // drain gaps (see the cycle model)

  localparam [3:0] S_IDLE = 4'd0, S_CONV = 4'd1, S_D1 = 4'd2, S_EMB = 4'd3, S_D2 = 4'd4, S_LWAIT = 4'd5,
                   S_LSTM = 4'd6, S_D3 = 4'd7, S_PROJ = 4'd8, S_D4 = 4'd9, S_DONE = 4'd10;

  // ------------------------------------------------------------------ pooling: two banks of sums per lane
  reg wb, rb;              // bank written by in0, bank read by the evaluation
  reg [1:0] full;          // bank holds a whole frame not yet converted
  reg [FB-1:0] in_fold;
  reg [PB-1:0] in_pix;
  assign in0_V_TREADY = ap_rst_n && !full[wb];
  wire in_hs = in0_V_TVALID && in0_V_TREADY;
  wire in_last = (in_fold == NF - 1) && (in_pix == HW - 1);

  reg [3:0] st;
  reg [2:0] dcnt;
  reg [FB-1:0] cv_fold;
  reg [LB-1:0] cv_lane;
  reg [CB-1:0] cv_c;
  wire [SW*PE-1:0] conv_rd;

  genvar l;
  generate
    for (l = 0; l < PE; l = l + 1) begin : g_lane
      reg [SW-1:0] sums [0:(2 << FB) - 1];
      wire [SW-1:0] cur = sums[{wb, in_fold}];
      always @(posedge ap_clk)
        if (in_hs) sums[{wb, in_fold}] <= ((in_pix == 0) ? {SW{1'b0}} : cur) + in0_V_TDATA[8*l +: 8];
      assign conv_rd[SW*l +: SW] = sums[{rb, cv_fold}];
    end
  endgenerate

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      wb <= 1'b0; in_fold <= 0; in_pix <= 0;
    end else if (in_hs) begin
      if (in_fold == NF - 1) begin
        in_fold <= 0;
        in_pix <= (in_pix == HW - 1) ? {PB{1'b0}} : in_pix + 1'b1;
      end else
        in_fold <= in_fold + 1'b1;
      if (in_last) wb <= ~wb;
    end
  end

  // ------------------------------------------------------------------ CONV: pooled means into pbuf
  reg cs1_v, cs2_v;
  reg [SW-1:0] cs1_sum;
  reg [CB-1:0] cs1_c, cs2_c;
  reg [SW+PMW-1:0] cs2_prod;
  reg [7:0] pbuf [0:C-1];
  wire [SW+PMW:0] cs_rnd = cs2_prod + (1 << 19);
  wire [SW+PMW:0] cs_q = cs_rnd >> 20;
  wire [7:0] pooled = (cs_q > 255) ? 8'd255 : cs_q[7:0];
  wire [PMW-1:0] pm = PM;
  always @(posedge ap_clk) begin
    cs1_v <= ap_rst_n && (st == S_CONV);
    cs1_sum <= conv_rd[SW*cv_lane +: SW];
    cs1_c <= cv_c;
    cs2_v <= ap_rst_n && cs1_v;
    cs2_prod <= cs1_sum * pm;
    cs2_c <= cs1_c;
    if (cs2_v) pbuf[cs2_c] <= pooled;
  end

  // ------------------------------------------------------------------ parameters
  (* rom_style = "block", ram_style = "block" *) reg signed [7:0] wrom [0:NW-1];  // read in issue order
  reg signed [31:0] brom [0:NB-1];
  reg [7:0] sig_rom [0:255];
  reg [7:0] tanh_rom [0:255];
  initial begin
    $readmemh(WEIGHT_FILE, wrom);
    $readmemh(BIAS_FILE, brom);
    $readmemh(SIG_FILE, sig_rom);
    $readmemh(TANH_FILE, tanh_rom);
  end

  // ------------------------------------------------------------------ state registers
  reg signed [7:0] e [0:H-1];
  reg signed [7:0] h_old [0:H-1];
  reg signed [7:0] h_new [0:H-1];
  reg signed [15:0] c [0:H-1];

  // ------------------------------------------------------------------ MAC sequencer
  reg [COLW-1:0] col;
  reg [ROWW-1:0] row;
  reg [WAW-1:0] wa;
  reg [BAW-1:0] ba;
  wire issue = (st == S_EMB) || (st == S_LSTM) || (st == S_PROJ);
  wire [COLW-1:0] col_max = (st == S_EMB) ? C - 1 : ((st == S_LSTM) ? 2*H - 1 : H - 1);
  wire [ROWW-1:0] row_max = (st == S_EMB) ? H - 1 : ((st == S_LSTM) ? 4*H - 1 : KR - 1);
  wire col_last = (col == col_max);
  wire row_last = (row == row_max);

  reg signed [8:0] opnd;
  reg [1:0] osel;  // 1: input-to-hidden product (<< SH_IH), 2: hidden-to-hidden (<< SH_HH)
  always @* begin
    opnd = 9'sd0;
    osel = 2'd0;
    if (st == S_EMB)
      opnd = {1'b0, pbuf[col]};
    else if (st == S_LSTM) begin
      if (col < H) begin opnd = e[col]; osel = 2'd1; end
      else begin opnd = h_old[col - H]; osel = 2'd2; end
    end else if (st == S_PROJ)
      opnd = h_new[col];
  end

  reg out_v;
  reg [DW-1:0] out_d;
  reg [DW-1:0] bestk;
  reg signed [ACCW-1:0] best;
  reg [NGW-1:0] keep, out_k;  // channel groups with a logit > 0; the token's keep bits
  reg [ROWW-1:0] cbestk;
  reg signed [ACCW-1:0] cbest;
  wire [NGW-1:0] k_one = 1;
  integer i;

  reg [TB-1:0] iw, ow;  // word of the state token being read, of the token being sent
  wire lwait_go = (STATE_OUT == 0 || !out_v);  // the last token has left: its state registers may change
  assign in1_V_TREADY = (STATE_IN != 0) && ap_rst_n && (st == S_LWAIT) && lwait_go;
  wire in1_hs = in1_V_TVALID && in1_V_TREADY;
  wire [TB-1:0] iw_h = iw - 1'b1 - KIN, iw_c = iw - 1'b1 - KIN - H;


  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      st <= S_IDLE; rb <= 1'b0; full <= 2'b00; out_v <= 1'b0; iw <= 0; ow <= 0;
      cv_fold <= 0; cv_lane <= 0; cv_c <= 0; dcnt <= 0;
      col <= 0; row <= 0; wa <= 0; ba <= 0;
    end else begin
      if (in_hs && in_last) full[wb] <= 1'b1;
      if (out_v && out0_V_TREADY) begin
        if (ow == NOUT - 1) begin out_v <= 1'b0; ow <= 0; end
        else ow <= ow + 1'b1;
      end
      case (st)
        S_IDLE: if (full[rb]) begin
          st <= S_CONV; cv_fold <= 0; cv_lane <= 0; cv_c <= 0;
        end
        S_CONV: begin
          cv_c <= cv_c + 1'b1;
          if (cv_lane == PE - 1) begin cv_lane <= 0; cv_fold <= cv_fold + 1'b1; end
          else cv_lane <= cv_lane + 1'b1;
          if (cv_c == C - 1) begin
            full[rb] <= 1'b0; rb <= ~rb;
            st <= S_D1; dcnt <= D1 - 1;
          end
        end
        S_D1: if (dcnt == 0) begin st <= S_EMB; col <= 0; row <= 0; wa <= 0; ba <= 0; end
              else dcnt <= dcnt - 1'b1;
        S_D2: if (dcnt == 0) st <= S_LWAIT; else dcnt <= dcnt - 1'b1;
        S_LWAIT: if (STATE_IN == 0) begin
          if (lwait_go) begin
            for (i = 0; i < H; i = i + 1) begin h_old[i] <= 8'sd0; c[i] <= 16'sd0; end
            st <= S_LSTM;
          end
        end else if (in1_hs) begin  // word iw of the state token: d, then h, then c
          if (iw >= 1 + KIN && iw <= H + KIN) h_old[iw_h] <= in1_V_TDATA[7:0];
          if (iw > H + KIN) c[iw_c] <= in1_V_TDATA;
          if (iw == TLI - 1) begin iw <= 0; st <= S_LSTM; end
          else iw <= iw + 1'b1;
        end
        S_D3: if (dcnt == 0) st <= S_PROJ; else dcnt <= dcnt - 1'b1;
        S_D4: if (dcnt == 0) st <= S_DONE; else dcnt <= dcnt - 1'b1;
        S_DONE: if (!out_v) begin
          out_d <= bestk;
          out_k <= (keep != 0) ? keep : (k_one << cbestk);
          out_v <= 1'b1;
          st <= S_IDLE;
        end
        default: ;  // S_EMB, S_LSTM, S_PROJ: below
      endcase
      if (issue) begin
        wa <= wa + 1'b1;
        if (col_last) begin
          col <= 0;
          ba <= ba + 1'b1;
          if (row_last) begin
            row <= 0;
            if (st == S_EMB) begin st <= S_D2; dcnt <= D2 - 1; end
            else if (st == S_LSTM) begin st <= S_D3; dcnt <= D3 - 1; end
            else begin st <= S_D4; dcnt <= D4 - 1; end
          end else
            row <= row + 1'b1;
        end else
          col <= col + 1'b1;
      end
    end
  end

  // ------------------------------------------------------------------ MAC pipeline: ROM read, multiply, accumulate
  reg m1_v, m1_first, m1_last, m2_v, m2_first, m2_last;
  reg [1:0] m1_sel, m2_sel, m1_ph, m2_ph, res_ph;
  reg [ROWW-1:0] m1_row, m2_row, res_row;
  reg signed [7:0] m1_w;
  reg signed [8:0] m1_x;
  reg signed [31:0] m1_b, m2_b;
  reg signed [16:0] m2_p;
  reg signed [ACCW-1:0] acc, res;
  reg res_v;
  wire signed [ACCW-1:0] p_ext = m2_p;
  wire signed [ACCW-1:0] p_sh = (m2_sel == 2'd1) ? (p_ext <<< SH_IH) : ((m2_sel == 2'd2) ? (p_ext <<< SH_HH) : p_ext);
  wire signed [ACCW-1:0] b_ext = m2_b;
  wire signed [ACCW-1:0] acc_next = (m2_first ? b_ext : acc) + p_sh;

  always @(posedge ap_clk) begin
    m1_w <= wrom[wa];
    m1_b <= brom[ba];
    m1_x <= opnd;
    m1_sel <= osel;
    m1_first <= (col == 0);
    m1_last <= col_last;
    m1_row <= row;
    m1_ph <= (st == S_EMB) ? 2'd1 : ((st == S_LSTM) ? 2'd2 : 2'd3);
    m1_v <= ap_rst_n && issue;
    m2_p <= m1_w * m1_x;
    m2_b <= m1_b;
    m2_sel <= m1_sel; m2_first <= m1_first; m2_last <= m1_last; m2_row <= m1_row; m2_ph <= m1_ph;
    m2_v <= ap_rst_n && m1_v;
    if (m2_v) acc <= acc_next;
    res_v <= ap_rst_n && m2_v && m2_last;
    if (m2_v && m2_last) begin res <= acc_next; res_row <= m2_row; res_ph <= m2_ph; end
  end

  // ------------------------------------------------------------------ results: embedding, LSTM cell, argmax
  wire signed [7:0] e_val, z_val, tz, h_val;
  dfsgate_rsrsat #(.IW(ACCW), .S(SH_E), .OW(8)) u_e (.x(res), .y(e_val));
  dfsgate_rsrsat #(.IW(ACCW), .S(SH_Z), .OW(8)) u_z (.x(res), .y(z_val));

  reg z_v, cell_v, t_v, hv_v;
  reg signed [7:0] zr;
  reg [1:0] z_ut;
  reg [HB-1:0] z_uj, cell_j, t_j, hv_j;
  reg [7:0] iv, fv, ov;
  reg signed [7:0] uv, tv;
  reg signed [15:0] cn_r;
  wire [7:0] z_idx = {~zr[7], zr[6:0]};  // z + 128
  wire signed [8:0] fv_s = {1'b0, fv};
  wire signed [8:0] iv_s = {1'b0, iv};
  wire signed [8:0] ov_s = {1'b0, ov};
  wire signed [15:0] c_cur = c[cell_j];
  wire signed [24:0] fc = fv_s * c_cur;
  wire signed [16:0] iu = iv_s * uv;
  wire signed [25:0] fc_r, iu_r;
  dfsgate_rsrsat #(.IW(25), .S(8), .OW(26)) u_fc (.x(fc), .y(fc_r));
  dfsgate_rsrsat #(.IW(17), .S(7), .OW(26)) u_iu (.x(iu), .y(iu_r));
  wire signed [26:0] c_sum = fc_r + iu_r;
  wire signed [15:0] c_val;
  dfsgate_rsrsat #(.IW(27), .S(0), .OW(16)) u_c (.x(c_sum), .y(c_val));
  dfsgate_rsrsat #(.IW(16), .S(4), .OW(8)) u_t (.x(cn_r), .y(tz));
  wire [7:0] t_idx = {~tz[7], tz[6:0]};
  wire signed [16:0] ot = ov_s * tv;
  dfsgate_rsrsat #(.IW(17), .S(8), .OW(8)) u_h (.x(ot), .y(h_val));

  always @(posedge ap_clk) begin
    z_v <= ap_rst_n && res_v && (res_ph == 2'd2);
    cell_v <= ap_rst_n && z_v && (z_ut == 2'd3);
    t_v <= ap_rst_n && cell_v;
    hv_v <= ap_rst_n && t_v;
    if (res_v && res_ph == 2'd1) e[res_row] <= e_val;
    if (res_v && res_ph == 2'd2) begin zr <= z_val; z_ut <= res_row[1:0]; z_uj <= res_row >> 2; end
    if (res_v && res_ph == 2'd3 && res_row < K && (res_row == 0 || res > best)) begin best <= res; bestk <= res_row; end
    if (NG > 0 && res_v && res_ph == 2'd3 && res_row >= K) begin
      keep[res_row - K] <= res > 0;
      if (res_row == K || res > cbest) begin cbest <= res; cbestk <= res_row - K; end
    end
    if (z_v) begin
      case (z_ut)
        2'd0: iv <= sig_rom[z_idx];
        2'd1: fv <= sig_rom[z_idx];
        2'd2: uv <= tanh_rom[z_idx];
        default: ov <= sig_rom[z_idx];
      endcase
      cell_j <= z_uj;
    end
    if (cell_v) begin c[cell_j] <= c_val; cn_r <= c_val; t_j <= cell_j; end
    if (t_v) begin tv <= tanh_rom[t_idx]; hv_j <= t_j; end
    if (hv_v) h_new[hv_j] <= h_val;
  end

  // ------------------------------------------------------------------ output token, a word per cycle
  wire [TB-1:0] ow_h = ow - 1'b1 - KW, ow_c = ow - 1'b1 - KW - H;
  reg [15:0] out_word;
  always @* begin
    if (ow == 0) out_word = {{(16-DW){1'b0}}, out_d};
    else if (KW != 0 && ow == 1) begin out_word = 16'd0; out_word[NGW-1:0] = out_k; end
    else if (ow <= H + KW) out_word = {{8{h_new[ow_h][7]}}, h_new[ow_h]};
    else out_word = c[ow_c];
  end
  assign out0_V_TVALID = out_v;
  assign out0_V_TDATA = out_word;
endmodule

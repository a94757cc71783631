// fracskip StreamMerge: per frame, one token word selects the input a whole frame is taken from.
//
// The token's low 16 bits are a signed decision d; the next WORDS words on out0 come from input clamp(d, 0, K-1).
// Tokens arrive in frame order, so frames leave in that order whatever the latency of each input's path.
`timescale 1ns / 1ps
module fracskip_stream_merge #(
  parameter integer W = 8,
  parameter integer K = 2,
  parameter integer WORDS = 1,
  parameter integer TW = 16
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [K*W-1:0] in_TDATA,
  input  wire [K-1:0] in_TVALID,
  output wire [K-1:0] in_TREADY,
  input  wire [TW-1:0] tok_TDATA,
  input  wire tok_TVALID,
  output wire tok_TREADY,
  output wire [W-1:0] out0_TDATA,
  output wire out0_TVALID,
  input  wire out0_TREADY
);
  localparam integer SW = K > 1 ? $clog2(K) : 1;
  localparam integer CW = WORDS > 1 ? $clog2(WORDS) : 1;
  localparam integer LAST = WORDS - 1;
  localparam integer KMAX = K - 1;

  reg have;
  reg [SW-1:0] sel;
  reg [CW-1:0] cnt;
  wire signed [15:0] d = tok_TDATA[15:0];
  wire signed [31:0] dl = {{16{d[15]}}, d};
  wire [31:0] d_clamped = dl < 0 ? 32'd0 : (dl > KMAX ? KMAX : dl);

  assign tok_TREADY = !have;
  assign out0_TDATA = in_TDATA[sel*W +: W];
  assign out0_TVALID = have && in_TVALID[sel];

  genvar k;
  generate
    for (k = 0; k < K; k = k + 1) begin : g_in
      assign in_TREADY[k] = have && (sel == k) && out0_TREADY;
    end
  endgenerate

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      have <= 1'b0;
      sel <= 0;
      cnt <= 0;
    end else if (!have) begin
      if (tok_TVALID) begin
        have <= 1'b1;
        sel <= d_clamped[SW-1:0];
        cnt <= 0;
      end
    end else if (in_TVALID[sel] && out0_TREADY) begin
      if (cnt == LAST[CW-1:0]) begin
        have <= 1'b0;
        cnt <= 0;
      end else begin
        cnt <= cnt + 1'b1;
      end
    end
  end
endmodule

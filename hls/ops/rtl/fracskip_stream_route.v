// fracskip StreamRoute: per frame, one token word selects the output that receives the frame.
//
// The token's low 16 bits are a signed decision d; the frame (WORDS words of W bits) that follows on in0 goes,
// word by word, to output clamp(d, 0, K-1). The token is read before the first word of its frame (one cycle per
// frame); the data lines of every output are the input's, only TVALID is steered.
`timescale 1ns / 1ps
module fracskip_stream_route #(
  parameter integer W = 8,      // data word bits
  parameter integer K = 2,      // outputs
  parameter integer WORDS = 1,  // words per frame
  parameter integer TW = 16     // token word bits (decision in bits 15:0)
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [W-1:0] in0_TDATA,
  input  wire in0_TVALID,
  output wire in0_TREADY,
  input  wire [TW-1:0] tok_TDATA,
  input  wire tok_TVALID,
  output wire tok_TREADY,
  output wire [K*W-1:0] out_TDATA,
  output wire [K-1:0] out_TVALID,
  input  wire [K-1:0] out_TREADY
);
  localparam integer SW = K > 1 ? $clog2(K) : 1;
  localparam integer CW = WORDS > 1 ? $clog2(WORDS) : 1;
  localparam integer LAST = WORDS - 1;
  localparam integer KMAX = K - 1;

  reg have;  // the current frame's token has been read
  reg [SW-1:0] sel;
  reg [CW-1:0] cnt;
  wire signed [15:0] d = tok_TDATA[15:0];
  wire signed [31:0] dl = {{16{d[15]}}, d};
  wire [31:0] d_clamped = dl < 0 ? 32'd0 : (dl > KMAX ? KMAX : dl);

  wire sel_ready = out_TREADY[sel];
  assign tok_TREADY = !have;
  assign in0_TREADY = have && sel_ready;

  genvar k;
  generate
    for (k = 0; k < K; k = k + 1) begin : g_out
      assign out_TDATA[k*W +: W] = in0_TDATA;
      assign out_TVALID[k] = have && in0_TVALID && (sel == k);
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
    end else if (in0_TVALID && sel_ready) begin
      if (cnt == LAST[CW-1:0]) begin
        have <= 1'b0;
        cnt <= 0;
      end else begin
        cnt <= cnt + 1'b1;
      end
    end
  end
endmodule

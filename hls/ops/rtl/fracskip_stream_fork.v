// fracskip StreamFork: AXI-stream eager fork of one stream to N outputs (the data lines are wires).
// Each output takes the current word when it is ready; the input advances once every output has taken it.
`timescale 1ns / 1ps
module fracskip_stream_fork #(
  parameter integer W = 16,
  parameter integer N = 2
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [W-1:0] in0_TDATA,
  input  wire in0_TVALID,
  output wire in0_TREADY,
  output wire [W-1:0] out_TDATA,
  output wire [N-1:0] out_TVALID,
  input  wire [N-1:0] out_TREADY
);
  reg  [N-1:0] taken;  // output i has already taken the current word
  wire [N-1:0] valid = {N{in0_TVALID}} & ~taken;
  wire [N-1:0] now = valid & out_TREADY;
  wire all_taken = &(taken | now);
  assign in0_TREADY = all_taken;
  assign out_TDATA = in0_TDATA;
  assign out_TVALID = valid;
  always @(posedge ap_clk) begin
    if (!ap_rst_n) taken <= 0;
    else if (in0_TVALID && all_taken) taken <= 0;
    else taken <= taken | now;
  end
endmodule

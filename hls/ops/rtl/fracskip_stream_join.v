// fracskip StreamJoin: one word from each of N inputs becomes one output word (their concatenation, input 0 in
// the low bits). Combinational: the output is valid when every input is, and all inputs advance together.
`timescale 1ns / 1ps
module fracskip_stream_join #(
  parameter integer W = 16,  // total bits of the N input words
  parameter integer N = 2
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [W-1:0] in_TDATA,
  input  wire [N-1:0] in_TVALID,
  output wire [N-1:0] in_TREADY,
  output wire [W-1:0] out0_TDATA,
  output wire out0_TVALID,
  input  wire out0_TREADY
);
  wire all_valid = &in_TVALID;
  assign out0_TDATA = in_TDATA;
  assign out0_TVALID = all_valid;
  assign in_TREADY = {N{all_valid && out0_TREADY}};
endmodule

// fracskip GlobalSum: per frame, the sum over all PIX pixels of each of FOLD*PE channels of an unsigned NHWC
// stream (PE channels per word), then FOLD output words of PE sums (OW bits each). The sums live in a FOLD-deep
// memory of PE*OW-bit words (LUT RAM); the input stalls while the FOLD sums of a frame are emitted.
`timescale 1ns / 1ps
module fracskip_global_sum #(
  parameter integer PE = 1,
  parameter integer IW = 8,    // input element bits (unsigned)
  parameter integer OW = 16,   // output element bits: IW + clog2(PIX) at least
  parameter integer FOLD = 1,  // channels / PE
  parameter integer PIX = 1    // pixels per frame
) (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [PE*IW-1:0] in0_V_TDATA,
  input  wire in0_V_TVALID,
  output wire in0_V_TREADY,
  output wire [PE*OW-1:0] out0_V_TDATA,
  output wire out0_V_TVALID,
  input  wire out0_V_TREADY
);
  localparam integer FW = FOLD > 1 ? $clog2(FOLD) : 1;
  localparam integer PW = PIX > 1 ? $clog2(PIX) : 1;
  localparam integer FLAST = FOLD - 1;
  localparam integer PLAST = PIX - 1;

  reg [PE*OW-1:0] acc [0:FOLD-1];
  reg [FW-1:0] f;
  reg [PW-1:0] p;
  reg emit;  // the frame is summed: its FOLD words go out

  wire [PE*OW-1:0] cur = acc[f];
  wire [PE*OW-1:0] nxt;
  genvar l;
  generate
    for (l = 0; l < PE; l = l + 1) begin : g_lane
      wire [OW-1:0] x = {{(OW-IW){1'b0}}, in0_V_TDATA[l*IW +: IW]};
      assign nxt[l*OW +: OW] = (p == 0 ? {OW{1'b0}} : cur[l*OW +: OW]) + x;
    end
  endgenerate

  assign in0_V_TREADY = !emit;
  assign out0_V_TDATA = cur;
  assign out0_V_TVALID = emit;

  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      f <= 0;
      p <= 0;
      emit <= 1'b0;
    end else if (!emit) begin
      if (in0_V_TVALID) begin
        acc[f] <= nxt;
        if (f == FLAST[FW-1:0]) begin
          f <= 0;
          if (p == PLAST[PW-1:0]) begin
            p <= 0;
            emit <= 1'b1;
          end else begin
            p <= p + 1'b1;
          end
        end else begin
          f <= f + 1'b1;
        end
      end
    end else if (out0_V_TREADY) begin
      if (f == FLAST[FW-1:0]) begin
        f <= 0;
        emit <= 1'b0;
      end else begin
        f <= f + 1'b1;
      end
    end
  end
endmodule

// Two-entry buffer (head + spare) between a pipeline and a stream (the output of the bit-serial unit and of
// MVAU_lut). `full` is a register: the pipeline in front may stall on it without any combinational path from
// the downstream TREADY; two entries let it run at full rate regardless. Verilog-2005.
module fracskip_buf2 #(
    parameter integer W = 8
) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         push,
    input  wire [W-1:0] din,
    output wire         full,
    output wire [1:0]   count,
    output wire         valid,
    output wire [W-1:0] dout,
    input  wire         ready
);
    reg head_v, spare_v;
    reg [W-1:0] head, spare;
    wire pop = head_v && ready;
    wire head_free = !head_v || pop;
    assign full = head_v && spare_v;
    assign count = {1'b0, head_v} + {1'b0, spare_v};
    assign valid = head_v;
    assign dout = head;

    always @(posedge clk) begin
        if (!rst_n) begin
            head_v <= 1'b0;
            spare_v <= 1'b0;
        end else if (head_free) begin
            head_v <= spare_v || push;
            spare_v <= spare_v && push;
        end else begin
            spare_v <= spare_v || push;
        end
    end
    always @(posedge clk) begin
        if (head_free) begin
            if (spare_v) head <= spare;
            else if (push) head <= din;
        end
        if (push && (spare_v || !head_free)) spare <= din;
    end
endmodule

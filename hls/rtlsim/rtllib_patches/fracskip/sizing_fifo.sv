// fracskip: a FIFO whose depth is an input port, for FIFO sizing by simulation (one Verilator build
// serves every set of depths). Handshake timing as finn-rtllib fifo.sv's shift-register path: an
// output register B in front of the storage, input ready while the storage holds fewer than
// DEPTH_IMPL = (depth > 4 ? depth-1 : 4) words, so its capacity is that of fifo.sv at the same DEPTH.
// maxcount: highest occupancy (accepted, not yet delivered) since reset, as fifo.sv counts it.
module fracskip_sizing_fifo #(
	int unsigned  WIDTH,
	int unsigned  MAX_DEPTH   // storage words; depths beyond MAX_DEPTH+1 act as MAX_DEPTH+1
)(
	input	logic  ap_clk,
	input	logic  ap_rst_n,
	input	logic [31:0]  depth,
	output	logic [31:0]  maxcount,

	input	logic [WIDTH-1:0]  in0_V_TDATA,
	input	logic  in0_V_TVALID,
	output	logic  in0_V_TREADY,

	output	logic [WIDTH-1:0]  out0_V_TDATA,
	output	logic  out0_V_TVALID,
	input	logic  out0_V_TREADY
);
	localparam int unsigned  AW = MAX_DEPTH > 1? $clog2(MAX_DEPTH) : 1;

	uwire [31:0]  depth_impl0 = depth > 4? depth - 1 : 4;
	uwire [31:0]  depth_impl = depth_impl0 > MAX_DEPTH? MAX_DEPTH : depth_impl0;

	logic [WIDTH-1:0]  Mem[MAX_DEPTH];
	logic [AW-1:0]  WrPtr = 0;
	logic [AW-1:0]  RdPtr = 0;
	logic [31:0]  N = 0;  // words in Mem
	logic  Vld = 0;
	logic [WIDTH-1:0]  B = '0;
	logic [31:0]  Count = 0;
	logic [31:0]  MaxCount = 0;

	assign	in0_V_TREADY = N < depth_impl;
	assign	out0_V_TVALID = Vld;
	assign	out0_V_TDATA = B;
	assign	maxcount = MaxCount;

	uwire  push = in0_V_TVALID && in0_V_TREADY;
	uwire  bload = !Vld || out0_V_TREADY;
	uwire  pop = (N != 0) && bload;
	uwire  deliver = Vld && out0_V_TREADY;
	uwire [31:0]  count_nxt = Count + ((push == deliver)? 0 : push? 1 : -1);

	always_ff @(posedge ap_clk) begin
		if(!ap_rst_n) begin
			WrPtr <= 0;
			RdPtr <= 0;
			N <= 0;
			Vld <= 0;
			Count <= 0;
			MaxCount <= 0;
		end
		else begin
			if(push) begin
				Mem[WrPtr] <= in0_V_TDATA;
				WrPtr <= (WrPtr == AW'(MAX_DEPTH-1))? 0 : WrPtr + 1;
			end
			if(pop)  RdPtr <= (RdPtr == AW'(MAX_DEPTH-1))? 0 : RdPtr + 1;
			N <= N + (push? 1 : 0) - (pop? 1 : 0);
			if(bload) begin
				Vld <= N != 0;
				B <= Mem[RdPtr];
			end
			Count <= count_nxt;
			if(count_nxt > MaxCount)  MaxCount <= count_nxt;
		end
	end
endmodule : fracskip_sizing_fifo

// fracskip DFS gate: y = sat(rsr(x, S)) of docs/integer-gate.md, combinational.
// rsr(x, S) = (x + 2^(S-1)) >>> S for S > 0 (round half up), x <<< -S for S <= 0; sat clamps to OW-bit signed.
module dfsgate_rsrsat #(
  parameter integer IW = 34,  // input bits (signed)
  parameter integer S = 8,    // shift right, rounding (may be zero or negative: exact shift left)
  parameter integer OW = 8    // output bits (signed, saturating)
) (
  input  wire signed [IW-1:0] x,
  output wire signed [OW-1:0] y
);
  localparam integer RS = (S > 0) ? S : 0;
  localparam integer LS = (S > 0) ? 0 : -S;
  localparam integer M0 = (IW > OW) ? IW : OW;
  localparam integer TW = ((M0 > RS) ? M0 : RS) + LS + 2;  // holds x + 2^(S-1) and x << -S
  wire signed [TW-1:0] xe = x;  // sign extension
  wire signed [TW-1:0] one = {{(TW-1){1'b0}}, 1'b1};
  wire signed [TW-1:0] half = (RS > 0) ? (one <<< (RS - 1)) : {TW{1'b0}};
  wire signed [TW-1:0] sum = xe + half;
  wire signed [TW-1:0] r = (RS > 0) ? (sum >>> RS) : (xe <<< LS);
  wire signed [TW-1:0] maxv = (one <<< (OW - 1)) - one;
  wire signed [TW-1:0] minv = -(one <<< (OW - 1));
  wire signed [TW-1:0] c = (r > maxv) ? maxv : ((r < minv) ? minv : r);
  assign y = c[OW-1:0];
endmodule

// fracskip RTL simulation driver: one Verilated FINN dataflow core, kept alive between calls.
//
// Python (fracskip.hls.rtlsim.sim) writes requests on stdin and reads answers on the original stdout;
// everything the RTL prints ($display, Verilator warnings) is moved to stderr so it cannot corrupt them.
// Per request, every input stream is offered back-to-back (TVALID whenever a word is left), every output
// is always ready, until all expected output words arrived and every input word was taken, or the cycle
// limit is reached. Both, as a DMA transfer on the board: a core may give a frame's last output before it
// has read the frame's end (a strided 1x1 sliding window drops the last row and column, and reads them
// after its last output). Stopping at the last output would leave those words unread, and the core, still
// waiting for them, would take the first words of the next request as the end of the old frame.
// Then the core is clocked on (not counted in the cycles) until no stream has moved a word for DRAIN_QUIET
// cycles: output words beyond the expected ones, then or before, are surplus (a core that gives more words than
// its frames have is broken), counted and reported instead of dropped or left for the next request to take as
// its own.
//
// tb_config.h (generated per core by sim.py) defines
//   TB_TOP                  the Verilated class, e.g. Vfracskip_top
//   TB_INPUTS(X)            X(index, port) for each input stream  (ports <port>_tdata/_tvalid/_tready)
//   TB_OUTPUTS(X)           X(index, port) for each output stream
//   TB_FIFOS(X)             X(index) for each run-time-depth sizing FIFO (fifo_depth_<i>, fifo_maxcount_<i>)
//   TB_N_INPUTS, TB_N_OUTPUTS, TB_N_FIFOS
//   TB_STATE_WORDS          32-bit words of the top's stream_state (TVALID, TREADY of every internal stream)
//
// Request  (little endian): u32 magic 'FSRQ', u32 n_frames, u64 cycle_limit, u32 flags (bit 0: reset first),
//   u64 progress_every (0: no progress records),
//   TB_N_INPUTS x {u32 bytes_per_word, u64 words_per_frame}, TB_N_OUTPUTS x {same},
//   TB_N_FIFOS x u32 depth, then per input n_frames*words_per_frame*bytes_per_word bytes of words.
// Progress, before the answer: u32 magic 'FSRP', u32 frames done; whenever more frames are done and at least
//   progress_every cycles have passed since the last record, and when the last frame is done.
// Answer: u32 magic 'FSRA', u32 status (0 done, 1 cycle limit reached), u64 cycles (of the whole request),
//   TB_N_INPUTS x u64 words consumed, TB_N_OUTPUTS x u64 words produced, TB_N_OUTPUTS x u64 surplus words
//   (beyond the words produced; not looked for once the cycle limit is reached), u32 frames done,
//   frames_done x u64 cycle at which the frame's last output word was taken (counted from 1),
//   TB_N_FIFOS x u32 maxcount, TB_STATE_WORDS x u32 stream_state at the last cycle,
//   then per output words_produced*bytes_per_word bytes.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "verilated.h"
#include "tb_config.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "words are exchanged as little-endian bytes");

static const uint32_t REQ_MAGIC = 0x51525346;  // "FSRQ"
static const uint32_t ANS_MAGIC = 0x41525346;  // "FSRA"
static const uint32_t PRG_MAGIC = 0x50525346;  // "FSRP"
// quiet cycles that end the look for surplus words: longer than a node's silent work between two words (an MVAU
// reusing its input vector gives a word every SF cycles, and no stream moves in between)
static const uint64_t DRAIN_QUIET = 4096;
static int g_answer_fd = 1;

static bool read_exact(void *dst, size_t n) {
  auto *p = static_cast<uint8_t *>(dst);
  while (n) {
    ssize_t r = read(0, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

static void read_or_die(void *dst, size_t n) {
  if (!read_exact(dst, n)) {
    std::fprintf(stderr, "fracskip testbench: truncated request\n");
    std::exit(2);
  }
}

static void write_exact(const void *src, size_t n) {
  auto *p = static_cast<const uint8_t *>(src);
  while (n) {
    ssize_t r = write(g_answer_fd, p, n);
    if (r <= 0) std::exit(3);  // Python went away
    p += r;
    n -= static_cast<size_t>(r);
  }
}

template <typename T> static void put(std::vector<uint8_t> &buf, T v) {
  const auto *p = reinterpret_cast<const uint8_t *>(&v);
  buf.insert(buf.end(), p, p + sizeof(T));
}

// AXI-stream words <-> Verilated port types (CData/SData/IData/QData or VlWide for > 64 bits)
template <typename T> static inline void load_word(T &port, const uint8_t *src, size_t nbytes) {
  uint64_t v = 0;
  std::memcpy(&v, src, nbytes);
  port = static_cast<T>(v);
}
template <std::size_t N> static inline void load_word(VlWide<N> &port, const uint8_t *src, size_t nbytes) {
  std::memset(port.data(), 0, sizeof(EData) * N);
  std::memcpy(port.data(), src, nbytes);
}
template <typename T> static inline void store_word(const T &port, uint8_t *dst, size_t nbytes) {
  uint64_t v = port;
  std::memcpy(dst, &v, nbytes);
}
template <std::size_t N> static inline void store_word(const VlWide<N> &port, uint8_t *dst, size_t nbytes) {
  std::memcpy(dst, port.data(), nbytes);
}

struct Stream {
  uint32_t bytes = 0;   // per word
  uint64_t per_frame = 0;
  uint64_t total = 0;   // words this request
  uint64_t pos = 0;     // words consumed / produced
  uint64_t surplus = 0; // output words beyond total
  std::vector<uint8_t> data;
};

static void reset(TB_TOP *top) {
  top->ap_rst_n = 0;
  for (int i = 0; i < 16; i++) {
    top->ap_clk = !top->ap_clk;
    top->eval();
  }
  top->ap_rst_n = 1;
}

int main(int argc, char **argv) {
  // answers go to the original stdout; stdout itself now points at stderr for anything the RTL prints
  g_answer_fd = dup(1);
  dup2(2, 1);
  auto ctx = std::make_unique<VerilatedContext>();
  ctx->commandArgs(argc, argv);
  auto top = std::make_unique<TB_TOP>(ctx.get());
  top->ap_clk = 0;
#define TB_IDLE_IN(i, port) top->port##_tvalid = 0;
#define TB_IDLE_OUT(i, port) top->port##_tready = 1;
  TB_INPUTS(TB_IDLE_IN)
  TB_OUTPUTS(TB_IDLE_OUT)
  reset(top.get());
  {  // ready: the model is built and its memory files are read
    std::vector<uint8_t> hello;
    put<uint32_t>(hello, ANS_MAGIC);
    write_exact(hello.data(), hello.size());
  }

  Stream in[TB_N_INPUTS + 1], out[TB_N_OUTPUTS + 1];
  uint32_t depth[TB_N_FIFOS + 1] = {0};
  for (;;) {
    uint32_t magic, n_frames, flags;
    uint64_t limit, progress_every;
    if (!read_exact(&magic, 4)) break;  // EOF: Python closed the core
    if (magic != REQ_MAGIC) {
      std::fprintf(stderr, "fracskip testbench: malformed request\n");
      return 2;
    }
    read_or_die(&n_frames, 4);
    read_or_die(&limit, 8);
    read_or_die(&flags, 4);
    read_or_die(&progress_every, 8);
    for (int i = 0; i < TB_N_INPUTS; i++) {
      read_or_die(&in[i].bytes, 4);
      read_or_die(&in[i].per_frame, 8);
    }
    for (int i = 0; i < TB_N_OUTPUTS; i++) {
      read_or_die(&out[i].bytes, 4);
      read_or_die(&out[i].per_frame, 8);
    }
    for (int i = 0; i < TB_N_FIFOS; i++) read_or_die(&depth[i], 4);
    for (int i = 0; i < TB_N_INPUTS; i++) {
      in[i].total = in[i].per_frame * n_frames;
      in[i].pos = 0;
      in[i].data.resize(in[i].total * in[i].bytes);
      read_or_die(in[i].data.data(), in[i].data.size());
    }
    for (int i = 0; i < TB_N_OUTPUTS; i++) {
      out[i].total = out[i].per_frame * n_frames;
      out[i].pos = 0;
      out[i].surplus = 0;
      out[i].data.assign(out[i].total * out[i].bytes, 0);
    }
#define TB_SET_DEPTH(i) top->fifo_depth_##i = depth[i];
    TB_FIFOS(TB_SET_DEPTH)
    if (flags & 1) reset(top.get());

    std::vector<uint64_t> frame_done;
    uint64_t cyc = 0, reported_cyc = 0;
    uint32_t status = 0, reported = 0;
    for (;;) {
      uint64_t frames = n_frames;
      for (int i = 0; i < TB_N_OUTPUTS; i++) frames = std::min<uint64_t>(frames, out[i].pos / out[i].per_frame);
      while (frame_done.size() < frames) frame_done.push_back(cyc);
      if (progress_every && frames > reported && (cyc - reported_cyc >= progress_every || frames == n_frames)) {
        reported = static_cast<uint32_t>(frames);
        reported_cyc = cyc;
        const uint32_t rec[2] = {PRG_MAGIC, reported};
        write_exact(rec, sizeof(rec));
      }
      bool inputs_taken = true;
      for (int i = 0; i < TB_N_INPUTS; i++) inputs_taken = inputs_taken && in[i].pos == in[i].total;
      if (frames == n_frames && inputs_taken) break;
      if (cyc >= limit) {
        status = 1;
        break;
      }
      top->ap_clk = 0;
#define TB_DRIVE(i, port)                                                      \
  {                                                                            \
    bool v = in[i].pos < in[i].total;                                          \
    top->port##_tvalid = v;                                                    \
    if (v) load_word(top->port##_tdata, &in[i].data[in[i].pos * in[i].bytes], in[i].bytes); \
  }
      TB_INPUTS(TB_DRIVE)
      top->eval();
      // handshakes are sampled before the rising edge that completes them
#define TB_TAKE_IN(i, port) \
  if (top->port##_tvalid && top->port##_tready) in[i].pos++;
#define TB_TAKE_OUT(i, port)                                                              \
  if (top->port##_tvalid) {                                                               \
    if (out[i].pos < out[i].total) {                                                      \
      store_word(top->port##_tdata, &out[i].data[out[i].pos * out[i].bytes], out[i].bytes); \
      out[i].pos++;                                                                       \
    } else {                                                                              \
      out[i].surplus++;                                                                   \
    }                                                                                     \
  }
      TB_INPUTS(TB_TAKE_IN)
      TB_OUTPUTS(TB_TAKE_OUT)
      top->ap_clk = 1;
      top->eval();
      cyc++;
    }

    std::vector<uint8_t> tail;  // as at the request's last cycle, before the look for surplus words
#define TB_MAXCOUNT(i) put<uint32_t>(tail, top->fifo_maxcount_##i);
    TB_FIFOS(TB_MAXCOUNT)
    for (int w = 0; w < TB_STATE_WORDS; w++) put<uint32_t>(tail, top->stream_state[w]);
    // a correct core is idle now; one that still moves words is clocked on until it stops (at most as long again
    // as the request), the output words it gives meanwhile counted as surplus
    for (uint64_t quiet = 0, extra = 0; status == 0 && quiet < DRAIN_QUIET && extra < std::max(cyc, DRAIN_QUIET);
         extra++) {
      top->ap_clk = 0;
      TB_INPUTS(TB_DRIVE)
      top->eval();
      bool moved = false;
      for (int w = 0; w < TB_STATE_WORDS; w++) {
        const uint32_t s = top->stream_state[w];
        moved = moved || (s & (s >> 1) & 0x55555555u);  // TVALID (even bit) and TREADY of an internal stream
      }
#define TB_SURPLUS(i, port) \
  if (top->port##_tvalid) { \
    out[i].surplus++;       \
    moved = true;           \
  }
      TB_OUTPUTS(TB_SURPLUS)
      top->ap_clk = 1;
      top->eval();
      quiet = moved ? 0 : quiet + 1;
    }

    std::vector<uint8_t> ans;
    put<uint32_t>(ans, ANS_MAGIC);
    put<uint32_t>(ans, status);
    put<uint64_t>(ans, cyc);
    for (int i = 0; i < TB_N_INPUTS; i++) put<uint64_t>(ans, in[i].pos);
    for (int i = 0; i < TB_N_OUTPUTS; i++) put<uint64_t>(ans, out[i].pos);
    for (int i = 0; i < TB_N_OUTPUTS; i++) put<uint64_t>(ans, out[i].surplus);
    put<uint32_t>(ans, static_cast<uint32_t>(frame_done.size()));
    for (auto c : frame_done) put<uint64_t>(ans, c);
    ans.insert(ans.end(), tail.begin(), tail.end());
    for (int i = 0; i < TB_N_OUTPUTS; i++)
      ans.insert(ans.end(), out[i].data.begin(), out[i].data.begin() + out[i].pos * out[i].bytes);
    write_exact(ans.data(), ans.size());
  }
  top->final();
  return 0;
}

// Free-running Verilator harness for any engine with tpesim's stream convention (no cocotb, no VPI).
//
//   vbench STIMULUS_FILE
//
// This file names no engine and no port: the design's port layout (its input streams with their
// valid/ready/last and payload ports, and its output stream) comes from tpsb_layout.h, generated from
// the config's streams() by cosim/bench/vcpp.py (layout_header) next to a copy of this file.
//
// The stimulus file (format in cosim/bench/stimulus.py, version 3) holds one block of beats per input
// stream; every block is offered `reps` times back to back, each stream at its own pace. Per cycle (the
// cycle model's convention: inputs applied, outputs sampled, then one rising edge):
//   <stream>_valid = beats of that stream remain; payload/last = its current beat; out_ready = 1;
//   eval with clk low; a beat is taken when valid & ready; an output row is taken when out_valid;
//   rising edge.
// Cycles are counted from the first stimulus cycle (after reset) to the cycle of the last output row,
// inclusive. The run stops as the model's drain does: every input beat is in and every block closed
// by an input `last` has come out (as many out_last rows taken as last beats taken; without `last`
// ports: the expected number of rows). Prints one JSON line: cycles, rows, checksum (see
// checksum_term), last_row_cycle, seconds (main loop only).
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

double sc_time_stamp() { return 0; }

namespace tpsb {

// ---- port <-> 32-bit word array, for any Verilator port type ------------------------------------
inline void set_port(CData& p, const uint32_t* w) { p = static_cast<CData>(w[0]); }
inline void set_port(SData& p, const uint32_t* w) { p = static_cast<SData>(w[0]); }
inline void set_port(IData& p, const uint32_t* w) { p = w[0]; }
inline void set_port(QData& p, const uint32_t* w) { p = static_cast<QData>(w[0]) | (static_cast<QData>(w[1]) << 32); }
template <std::size_t N>
inline void set_port(VlWide<N>& p, const uint32_t* w) { std::memcpy(p.data(), w, N * sizeof(uint32_t)); }

inline const uint32_t* port_words(const CData& p, uint32_t* tmp) { tmp[0] = p; return tmp; }
inline const uint32_t* port_words(const SData& p, uint32_t* tmp) { tmp[0] = p; return tmp; }
inline const uint32_t* port_words(const IData& p, uint32_t* tmp) { tmp[0] = p; return tmp; }
inline const uint32_t* port_words(const QData& p, uint32_t* tmp) {
    tmp[0] = static_cast<uint32_t>(p); tmp[1] = static_cast<uint32_t>(p >> 32); return tmp;
}
template <std::size_t N>
inline const uint32_t* port_words(const VlWide<N>& p, uint32_t*) { return p.data(); }

template <typename T> constexpr int port_nwords(const T&) { return sizeof(T) <= 4 ? 1 : 2; }
template <std::size_t N> constexpr int port_nwords(const VlWide<N>&) { return static_cast<int>(N); }

inline uint64_t get_bits(const uint32_t* w, int lo, int n) {
    uint64_t v = 0;
    for (int b = 0; b < n;) {
        int wi = (lo + b) >> 5, bi = (lo + b) & 31;
        int take = 32 - bi < n - b ? 32 - bi : n - b;
        uint64_t chunk = (static_cast<uint64_t>(w[wi]) >> bi) & (take == 32 ? 0xffffffffull : ((1ull << take) - 1));
        v |= chunk << b;
        b += take;
    }
    return v;
}

// Checksum of the result stream; cosim/bench/stimulus.py (checksum_rows) computes the same from the
// cycle model's rows. k = global lane index (row number * out_lanes + lane), u = lane value as an
// unsigned lane_bits pattern.
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul = 0xBF58476D1CE4E5B9ull;
inline uint64_t checksum_term(uint64_t k, uint64_t u) { return (u ^ (k * kGolden)) * kMul; }

// The checksum terms of one payload port of the output row: LANES lanes of BITS bits, the first at
// global lane index k0.
template <int LANES, int BITS>
inline uint64_t lanes_checksum(const uint32_t* w, uint64_t k0) {
    uint64_t h = 0;
    if (BITS == 32) {
        for (int j = 0; j < LANES; ++j) h += checksum_term(k0 + j, w[j]);
    } else {
        constexpr uint64_t mask = BITS >= 64 ? ~0ull : ((1ull << (BITS & 63)) - 1);
        for (int j = 0; j < LANES; ++j)
            h += checksum_term(k0 + j, get_bits(w, j * BITS, BITS) & mask);
    }
    return h;
}

[[noreturn]] void die(const char* msg) { std::fprintf(stderr, "vbench: %s\n", msg); std::exit(2); }

// One input stream: its block of beats (payload words and last bits), offered `reps` times.
struct InStream {
    std::vector<uint32_t> words;   // nbeats x nwords: the payload ports of each beat
    std::vector<uint8_t> last;     // nbeats, empty when the stream has no last port
    uint64_t nbeats = 0, nwords = 0, reps = 0, i = 0, rep = 0;
    bool have() const { return rep < reps && nbeats > 0; }
    const uint32_t* beat() const { return &words[i * nwords]; }
    uint8_t last_bit() const { return last.empty() ? 0 : last[i]; }
    void advance() { if (++i == nbeats) { i = 0; ++rep; } }
    uint64_t total_lasts() const {
        uint64_t n = 0;
        for (uint8_t b : last) n += b ? 1 : 0;
        return n * reps;
    }
};

inline uint64_t u64(const uint32_t* w) {
    return static_cast<uint64_t>(w[0]) | (static_cast<uint64_t>(w[1]) << 32);
}

}  // namespace tpsb

using namespace tpsb;

// The design's streams: kLayoutId, kNumIn, kInWords[], kInHasLast[], kOutLanes, kTrackLast and
// ports_match / reset_inputs / drive / take / out_valid / out_last / out_row_checksum.
#include "tpsb_layout.h"

int main(int argc, char** argv) {
    if (argc < 2) die("usage: vbench STIMULUS_FILE");
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) die("cannot open the stimulus file");
    uint32_t hdr[16];
    if (std::fread(hdr, sizeof(uint32_t), 16, f) != 16) die("short header");
    if (hdr[0] != 0x42535054u || hdr[1] != 3) die("not a version-3 TPSB stimulus file");
    if (hdr[2] != static_cast<uint32_t>(layout::kNumIn) ||
        hdr[7] != static_cast<uint32_t>(layout::kOutLanes) || hdr[8] != layout::kLayoutId)
        die("the stimulus file was written for another port layout than this harness's");
    const uint64_t reps = u64(&hdr[3]), expected_rows = u64(&hdr[5]);
    InStream in[layout::kNumIn];
    uint32_t desc[4 * layout::kNumIn];
    if (std::fread(desc, sizeof(uint32_t), 4 * layout::kNumIn, f) != 4u * layout::kNumIn)
        die("short header");
    for (int s = 0; s < layout::kNumIn; ++s) {
        InStream& st = in[s];
        st.nbeats = u64(&desc[4 * s]);
        st.nwords = desc[4 * s + 2];
        st.reps = reps;
        if (st.nwords != static_cast<uint64_t>(layout::kInWords[s]) ||
            (desc[4 * s + 3] != 0) != layout::kInHasLast[s])
            die("the stimulus file's beats differ from the layout's");
    }
    for (int s = 0; s < layout::kNumIn; ++s) {
        InStream& st = in[s];
        st.words.resize(st.nbeats * st.nwords);
        if (std::fread(st.words.data(), sizeof(uint32_t), st.words.size(), f) != st.words.size())
            die("short stimulus file");
        if (layout::kInHasLast[s]) {
            st.last.resize(st.nbeats);
            if (std::fread(st.last.data(), 1, st.last.size(), f) != st.last.size())
                die("short stimulus file");
        }
    }
    std::fclose(f);

    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vtop> top{new Vtop{ctx.get(), "top"}};
    if (!layout::ports_match(*top)) die("port widths of the design differ from the layout's");

    uint64_t total_lasts = 0;
    for (int s = 0; s < layout::kNumIn; ++s) total_lasts += in[s].total_lasts();

    // reset: two cycles with rst high, every valid/last low, out_ready low
    top->clk = 0; top->rst = 1;
    layout::reset_inputs(*top);
    top->eval();
    for (int i = 0; i < 2; ++i) { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
    top->rst = 0;
    layout::set_out_ready(*top, 1);
    top->eval();

    uint64_t cycle = 0, rows = 0, last_row_cycle = 0, h = 0, lasts_in = 0, lasts_out = 0, idle = 0;
    constexpr uint64_t kMaxIdle = 1u << 22;   // cycles without a beat taken or a row out: a hang
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const bool have = layout::any_have(in);
        if (!have && (layout::kTrackLast ? lasts_out == lasts_in : rows >= expected_rows)) break;
        top->clk = 0;
        layout::drive(*top, in);
        top->eval();
        bool progress = false;
        if (layout::out_valid(*top)) {
            h += layout::out_row_checksum(*top, rows);
            ++rows;
            last_row_cycle = cycle;
            if (layout::out_last(*top)) ++lasts_out;
            progress = true;
        }
        if (have) progress |= layout::take(*top, in, lasts_in);
        top->clk = 1;
        top->eval();
        ++cycle;
        if (progress) idle = 0;
        else if (++idle > kMaxIdle) die("no beat taken and no row out for 4M cycles: the design hangs");
    }
    const auto t1 = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    top->final();
    if (layout::kTrackLast && lasts_out != total_lasts)
        die("the number of finished blocks (out_last rows) differs from the stimulus's (last beats)");
    if (expected_rows && rows != expected_rows) die("the number of output rows differs from the expected");
    std::printf("{\"cycles\": %" PRIu64 ", \"rows\": %" PRIu64 ", \"checksum\": %" PRIu64
                ", \"last_row_cycle\": %" PRIu64 ", \"seconds\": %.9f}\n",
                cycle, rows, h, last_row_cycle, secs);
    return 0;
}

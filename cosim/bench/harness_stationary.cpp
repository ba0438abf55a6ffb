// Free-running Verilator harness for the stationary-operand systolic array (WS/IS dataflows; no cocotb,
// no VPI). Two input streams: the load port (rows of the stationary tiles) and the stream port.
//
//   vbench STIMULUS_FILE
//
// The stimulus file is written by cosim/bench/stimulus.py (write_fold_stimulus_file; little-endian):
//   header, 16 x uint32: magic "TPSB" (0x42535054), version (2), nloads, nbeats, reps, load_words,
//                        in_words, out_words, out_lanes, lane_bits, 6 x reserved
//   LOAD: nloads x load_words uint32   raw bit pattern of load_data for each load beat
//   IN:   nbeats x in_words uint32     raw bit pattern of in_data for each stream beat
//   LAST: nbeats x uint8               in_last of each stream beat
// Both blocks are streamed `reps` times back to back, each at its own pace. Per cycle (the cycle model's
// convention: inputs applied, outputs sampled, then one rising edge):
//   load_valid = load beats remain; in_valid = stream beats remain; data/last = the current beats;
//   out_ready = 1; eval with clk low; a load beat is taken when load_valid & load_ready, a stream beat
//   when in_valid & in_ready; an out_c row is taken when out_valid; rising edge.
// Cycles are counted from the first stimulus cycle (after reset) to the cycle of the last output row,
// inclusive. Prints one JSON line: cycles, rows, checksum (as harness.cpp), seconds (main loop only).
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

namespace {

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

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul = 0xBF58476D1CE4E5B9ull;
inline uint64_t checksum_term(uint64_t k, uint64_t u) { return (u ^ (k * kGolden)) * kMul; }

[[noreturn]] void die(const char* msg) { std::fprintf(stderr, "vbench: %s\n", msg); std::exit(2); }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) die("usage: vbench STIMULUS_FILE");
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) die("cannot open the stimulus file");
    uint32_t hdr[16];
    if (std::fread(hdr, sizeof(uint32_t), 16, f) != 16) die("short header");
    if (hdr[0] != 0x42535054u || hdr[1] != 2) die("not a version-2 TPSB stimulus file");
    const uint64_t nloads = hdr[2], nbeats = hdr[3], reps = hdr[4];
    const int load_words = hdr[5], in_words = hdr[6], out_words = hdr[7], out_lanes = hdr[8], lane_bits = hdr[9];
    std::vector<uint32_t> W(nloads * load_words), A(nbeats * in_words);
    std::vector<uint8_t> L(nbeats);
    if (std::fread(W.data(), sizeof(uint32_t), W.size(), f) != W.size() ||
        std::fread(A.data(), sizeof(uint32_t), A.size(), f) != A.size() ||
        std::fread(L.data(), 1, L.size(), f) != L.size())
        die("short stimulus file");
    std::fclose(f);

    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vtop> top{new Vtop{ctx.get(), "top"}};
    if (port_nwords(top->load_data) != load_words || port_nwords(top->in_data) != in_words ||
        port_nwords(top->out_c) != out_words)
        die("port widths of the design differ from the stimulus file's");

    uint64_t total_folds = 0;
    for (uint64_t i = 0; i < nbeats; ++i) total_folds += L[i] ? 1 : 0;
    total_folds *= reps;

    top->clk = 0; top->rst = 1; top->in_valid = 0; top->in_last = 0; top->load_valid = 0; top->out_ready = 0;
    top->eval();
    for (int i = 0; i < 2; ++i) { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
    top->rst = 0;
    top->out_ready = 1;
    top->eval();

    uint64_t cycle = 0, rows = 0, last_row_cycle = 0, h = 0;
    uint64_t wi = 0, wrep = 0, bi = 0, rep = 0, folds_in = 0, folds_out = 0;
    uint32_t tmp[2];
    const bool fast_lanes = lane_bits == 32;
    const uint64_t lane_mask = lane_bits >= 64 ? ~0ull : ((1ull << lane_bits) - 1);
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const bool have_w = wrep < reps && nloads > 0;
        const bool have = rep < reps;
        // stop as the model's drain does: every beat is in and no fold is left in the engine
        if (!have_w && !have && folds_out == folds_in) break;
        top->clk = 0;
        if (have_w) {
            top->load_valid = 1;
            set_port(top->load_data, &W[wi * load_words]);
        } else {
            top->load_valid = 0;
        }
        if (have) {
            top->in_valid = 1;
            set_port(top->in_data, &A[bi * in_words]);
            top->in_last = L[bi];
        } else {
            top->in_valid = 0;
            top->in_last = 0;
        }
        top->eval();
        if (top->out_valid) {
            const uint32_t* w = port_words(top->out_c, tmp);
            const uint64_t k0 = rows * static_cast<uint64_t>(out_lanes);
            if (fast_lanes) {
                for (int j = 0; j < out_lanes; ++j) h += checksum_term(k0 + j, w[j]);
            } else {
                for (int j = 0; j < out_lanes; ++j)
                    h += checksum_term(k0 + j, get_bits(w, j * lane_bits, lane_bits) & lane_mask);
            }
            ++rows;
            last_row_cycle = cycle;
            if (top->out_last) ++folds_out;
        }
        if (have_w && top->load_ready) {
            if (++wi == nloads) { wi = 0; ++wrep; }
        }
        if (have && top->in_ready) {
            if (L[bi]) ++folds_in;
            if (++bi == nbeats) { bi = 0; ++rep; }
        }
        top->clk = 1;
        top->eval();
        ++cycle;
    }
    const auto t1 = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    top->final();
    if (folds_out != total_folds) die("the number of finished folds differs from the stimulus's");
    std::printf("{\"cycles\": %" PRIu64 ", \"rows\": %" PRIu64 ", \"checksum\": %" PRIu64
                ", \"last_row_cycle\": %" PRIu64 ", \"seconds\": %.9f}\n",
                cycle, rows, h, last_row_cycle, secs);
    return 0;
}

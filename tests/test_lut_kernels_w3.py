"""W3 (and any LUT config whose peak is not an integer) beside the systolic array of the nearest
integer peak: both peaks reported, the memory-bound decode cycle ratio against its closed form."""

import math

import pytest

from tpesim.engines.lut import LutConfig
from tpesim.engines.systolic import SystolicConfig
from tpesim.errors import ConfigError
from tpesim.kernels import lut as L
from tpesim.memory import MemoryConfig


def test_systolic_peak():
    assert L.systolic_peak(256) == 256 and L.systolic_peak(128) == 128
    assert L.systolic_peak(512 / 3) == 171                 # 170.67: W3 at 2 x 64, group 4
    assert L.systolic_peak(2 * 32 * 4 / 3) == 85           # 85.33
    with pytest.raises(ConfigError, match="peak MACs/cycle must be at least 1, not 0.5"):
        L.systolic_peak(0.5)


def _link_cycles(bw: float, a_bytes: int, tiles_b: list[int], tiles_c: list[int]) -> int:
    """Busy cycles of the one DRAM link: every transfer takes ceil(bytes / bw)."""
    return (math.ceil(a_bytes / bw) + sum(math.ceil(x / bw) for x in tiles_b)
            + sum(math.ceil(x / bw) for x in tiles_c))


def test_w3_decode_ratio_is_the_weight_traffic_ratio():
    """Decode (M = 1) of a 4096 x 4096 linear, W3 on the 2 x 64 LUT engine (peak 170.67) against
    int8 on the 9 x 19 array (peak 171, the nearest integer), DRAM at 8 B/cycle.

    Closed form of a memory-bound OS GEMM with unbounded SRAM: every read is issued at cycle 0
    and the FIFO link serves them back to back (A once, then each tile's B block); each tile's
    result block is written after its rows leave. A tile's compute (G P + lat + M cycles: LUT
    G = K/g, P = 3 planes, lat = P + stages, M = tile_m; systolic G = K, P = 1, lat = R + C, M = R)
    is shorter than its B transfer here, so the link never idles until the last B block has
    arrived, and after it the engine adds at most one tile's compute. Hence
        link <= cycles <= link + E,   link = ceil(A/bw) + sum ceil(B_t/bw) + sum ceil(C_t/bw),
    and the cycle ratio lies in [link_s / (link_l + E_l), (link_s + E_s) / link_l], which holds
    the weight-traffic ratio 8/3 (int8 vs 3-bit codes, every weight read once in decode)."""
    cfg = L._lut_config(3, "int8")
    assert cfg.peak_macs_per_cycle == pytest.approx(512 / 3)
    m, n, k, bw = 1, 4096, 4096, 8.0
    row = L.lut_layer(cfg, m, n, k, memory=MemoryConfig(dram_bw=bw))
    assert row["systolic"] == "9x19" and row["systolic_peak_macs_per_cycle"] == 171
    assert row["peak_macs_per_cycle"] == pytest.approx(512 / 3)

    # LUT: 64 tiles of 64 columns; 3-bit codes; one int32 result row per tile
    lut_b = [math.ceil(64 * k * 3 / 8)] * (n // 64)
    lut_c = [64 * 4] * (n // 64)
    link_l = _link_cycles(bw, m * k, lut_b, lut_c)
    e_l = (k // 4) * 3 + (3 + 1) + 2
    # systolic: ceil(4096 / 19) = 216 tiles, the last 11 columns wide; int8 weights
    cols = [19] * 215 + [n - 215 * 19]
    link_s = _link_cycles(bw, m * k, [k * c for c in cols], [4 * c for c in cols])
    e_s = k + (9 + 19) + 9
    assert e_l < lut_b[0] / bw and e_s < k * 19 / bw        # memory bound: compute < transfer
    assert link_l <= row["cycles"] <= link_l + e_l
    assert link_s <= row["systolic_cycles"] <= link_s + e_s
    lo, hi = link_s / (link_l + e_l), (link_s + e_s) / link_l
    assert lo <= row["cycle_ratio"] <= hi
    assert row["weight_traffic_ratio"] == pytest.approx(8 / 3)
    assert lo <= 8 / 3 * 0.995 and hi >= 8 / 3 * 0.995      # the closed form: ~8/3 (A, C ~0.5%)
    assert row["cycle_ratio"] == pytest.approx(8 / 3, rel=0.01)
    # peak-normalized: cycles weighed by each engine's peak
    assert row["cycle_ratio_peak_normalized"] == pytest.approx(
        row["cycle_ratio"] * 171 / (512 / 3))


def test_w3_layer_totals_and_table():
    """The CLI path (llm_layers) runs W3: totals carry both peaks, utilizations against each
    engine's own peak."""
    rows = L.llm_layers("llama2-7b", w_bits=3, phase="decode")
    tot = rows[-2]
    assert tot["systolic_peak_macs_per_cycle"] == 171
    assert tot["systolic_utilization"] == pytest.approx(
        tot["macs"] / (tot["systolic_cycles"] * 171))
    assert tot["utilization"] == pytest.approx(tot["macs"] / (tot["cycles"] * 512 / 3))
    assert "ratio x peak" in L.format_table(rows)


def test_equal_peaks_unchanged():
    """An integer LUT peak keeps the equal-peak array: the two ratios coincide."""
    row = L.lut_layer(LutConfig(), 2, 128, 64)
    assert row["systolic_peak_macs_per_cycle"] == row["peak_macs_per_cycle"] == 256   # 2x64x4/2
    assert row["cycle_ratio_peak_normalized"] == pytest.approx(row["cycle_ratio"])


def test_unequal_systolic_peak_refused():
    with pytest.raises(ConfigError, match=r"systolic peak must equal the LUT engine's rounded to "
                                          r"the nearest integer \(171 for 170.667 MAC/cycle\), "
                                          r"not 64"):
        L.lut_layer(L._lut_config(3, "int8"), 2, 64, 64, systolic=SystolicConfig(rows=8, cols=8))

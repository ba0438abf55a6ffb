"""Tile-level timing of the N:M sparse engine (sim/tile_nm_sparse.py) against its cycle model and
against closed forms derived from the contract (docs/nm_sparse.md).

Random engines (sparsity, mode, banks), GEMM shapes and memories: the tile level's cycles, stall
cycles, per-row output cycles and bytes equal the cycle level's; stall-free cycles equal the
closed form F*(rows + m + 1) + 3 (one bank); sparse modes hold M/N times more K per fold than dense.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from tpesim.cli import main
from tpesim.engines.nm_sparse import NmSparseConfig
from tpesim.kernels.gemm import run_gemm, time_gemm
from tpesim.memory import MemoryConfig

C = NmSparseConfig
SPARSITIES = ("dense", "1:4", "2:4", "1:8", "2:8", "4:8", "3:5")


def _random_case(rng):
    sparsity = str(rng.choice(SPARSITIES))
    load = "dense" if sparsity != "dense" and rng.random() < 0.4 else "compressed"
    cfg = C(rows=int(rng.integers(1, 6)), cols=int(rng.integers(1, 5)),
            sparsity=sparsity, mode=str(rng.choice(["ff", "bp", "wg"])),
            double_buffer=bool(rng.integers(0, 2)), in_bits=int(rng.choice([8, 16])), load=load)
    m, n, k = (int(x) for x in rng.integers(1, 30, 3))
    mem = None
    if rng.random() < 0.5:
        mem = MemoryConfig(sram_kib_a=12, sram_kib_b=2, sram_kib_c=2,
                           dram_bw=int(rng.integers(1, 9)), dram_latency=int(rng.integers(0, 20)))
    return cfg, m, n, k, mem


@pytest.mark.parametrize("i", range(12))
def test_tile_equals_cycle(i, seed):
    rng = np.random.default_rng(seed + i)
    cfg, m, n, k, mem = _random_case(rng)
    lo, hi = cfg.in_range
    a = rng.integers(lo, hi + 1, (m, k))
    b = rng.integers(lo, hi + 1, (k, n))
    ctx = f"{cfg.name} {m}x{n}x{k} {mem}"
    cyc = run_gemm(cfg, a, b, fidelity="cycle", memory=mem)
    tile = run_gemm(cfg, a, b, fidelity="tile", memory=mem, verify=True)
    assert cyc.matched is True and tile.matched is True, ctx
    for f in ("cycles", "compute_cycles", "stall_cycles", "blocks", "sram_read_bytes_b",
              "dram_read_bytes_a", "dram_read_bytes_b", "dram_write_bytes_c"):
        assert getattr(tile, f) == getattr(cyc, f), f"{f}: {ctx}"
    assert np.array_equal(tile.out_cycles, cyc.out_cycles), ctx
    timed = time_gemm(cfg, m, n, k, memory=mem)
    assert timed.cycles == cyc.cycles, ctx


@pytest.mark.parametrize("db", [False, True])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_folds_shorter_than_the_latency(m, db):
    """Folds of fewer rows than the 4-cycle latency, behind a double-buffered (or a one-lane)
    reload: the previous fold's last row is still in flight when the next fold's last beat is
    taken; the cycle level says when it leaves (flight_exits) and equals the tile level."""
    rng = np.random.default_rng(m)
    for rows in (1, 3):
        cfg = C(rows=rows, cols=2, sparsity="2:4", double_buffer=db)
        a = rng.integers(-128, 128, (m, 4 * rows * 3))
        b = rng.integers(-128, 128, (4 * rows * 3, 5))
        cyc = run_gemm(cfg, a, b)
        tile = run_gemm(cfg, a, b, fidelity="tile")
        assert cyc.matched is True
        assert cyc.cycles == tile.cycles and np.array_equal(cyc.out_cycles, tile.out_cycles)


@pytest.mark.parametrize("sparsity, mode", [("2:8", "ff"), ("2:8", "wg"), ("1:4", "bp"),
                                            ("dense", "ff")])
def test_single_bank_closed_form(sparsity, mode):
    """One bank, F folds of m rows: a block's `rows` load beats, then its m rows (in_ready from the
    cycle after the last load), its last row at X; drain = 1 holds the next load off for one cycle
    (load_ready again at X + 2); a row leaves 4 cycles after its beat. So fold f starts at
    f*(rows + m + 1) and the run ends after F*(rows + m + 1) + 3 cycles."""
    cfg = C(rows=4, cols=3, sparsity=sparsity, mode=mode)
    K = cfg.block_shape[0]
    for m, nf, kf in ((5, 1, 1), (7, 2, 3), (1, 3, 2)):
        res = time_gemm(cfg, m, 3 * nf, K * kf)
        F = nf * kf
        assert res.cycles == F * (cfg.rows + m + 1) + 3, (m, nf, kf)


@pytest.mark.parametrize(("sparsity", "mode"), [("2:8", "ff"), ("2:4", "wg"), ("1:4", "bp")])
def test_single_bank_closed_form_compressing_on_the_fly(sparsity, mode):
    """load "dense", one bank: as above, but a load beat reaches its lane one cycle after the port
    took it (the compressors' register), so a fold's first row is taken two cycles after its last
    load beat, not one: each fold is one cycle longer, F*(rows + m + 2) + 3 cycles; the memory
    moves the dense block (rows*M x cols values, no indices) in sparse modes."""
    cfg = C(rows=4, cols=3, sparsity=sparsity, mode=mode, load="dense")
    pre = C(rows=4, cols=3, sparsity=sparsity, mode=mode)
    K = cfg.block_shape[0]
    for m, nf, kf in ((5, 1, 1), (7, 2, 3), (1, 3, 2)):
        res = time_gemm(cfg, m, 3 * nf, K * kf)
        F = nf * kf
        assert res.cycles == F * (cfg.rows + m + 2) + 3, (m, nf, kf)
        assert res.cycles - time_gemm(pre, m, 3 * nf, K * kf).cycles == F
        assert res.sram_read_bytes_b == K * kf * 3 * nf          # int8, every weight of B
        assert cfg.report_fields(res) == {"b_value_bytes": K * kf * 3 * nf, "b_meta_bytes": 0}


@pytest.mark.parametrize(("sparsity", "mode"), [("2:8", "ff"), ("2:4", "wg")])
def test_double_buffer_hides_the_compressors(sparsity, mode):
    """load "dense", two banks, m >= rows + 2 rows per fold: fold 0's first row waits for its last
    lane (rows load beats + 1 register: cycle rows + 1); fold f+1's loads end at most at
    S_f + rows + 1 and its bank is readable two cycles later, before fold f's m rows end; so the
    rows stream back to back from cycle rows + 1 and the run ends after rows + F*m + 5 cycles:
    one cycle more than with compressed loads, whatever F."""
    cfg = C(rows=3, cols=2, sparsity=sparsity, mode=mode, double_buffer=True, load="dense")
    K = cfg.block_shape[0]
    for m, nf, kf in ((5, 1, 3), (9, 2, 2), (6, 3, 1)):
        res = time_gemm(cfg, m, 2 * nf, K * kf)
        assert res.cycles == cfg.rows + nf * kf * m + 5, (m, nf, kf)


@pytest.mark.parametrize(("sparsity", "mode"), [("2:8", "ff"), ("2:4", "wg")])
def test_double_buffer_streams_back_to_back(sparsity, mode):
    """Two banks, m >= rows + 1 rows per fold: fold f+1's loads overlap fold f's rows (other
    bank), and fold f+2's bank is free D + 1 = 2 cycles after fold f's last row, which is before
    fold f+1's m rows end; so the rows stream back to back from cycle `rows` on and the run ends
    after rows + F*m + 4 cycles (the last row's result 4 cycles after its beat)."""
    cfg = C(rows=3, cols=2, sparsity=sparsity, mode=mode, double_buffer=True)
    K = cfg.block_shape[0]
    for m, nf, kf in ((4, 1, 3), (9, 2, 2), (5, 3, 1)):
        res = time_gemm(cfg, m, 2 * nf, K * kf)
        assert res.cycles == cfg.rows + nf * kf * m + 4, (m, nf, kf)


def test_sparse_folds_hold_m_over_n_times_more_k():
    """At 2:8 a fold holds rows*8 K positions (sparse) against rows*2 (dense, the same multipliers):
    4x fewer folds for the same GEMM; with the closed form above, 4x fewer cycles up to the
    constant."""
    m, n, k = 50, 8, 8 * 8 * 6
    ff = time_gemm(C(rows=8, cols=8, sparsity="2:8", mode="ff"), m, n, k)
    wg = time_gemm(C(rows=8, cols=8, sparsity="2:8", mode="wg"), m, n, k)
    assert (ff.blocks, wg.blocks) == (6, 24)
    assert ff.cycles == 6 * (8 + m + 1) + 3 and wg.cycles == 24 * (8 + m + 1) + 3
    # utilization is against the dense-equivalent peak rows*M*cols (sparse) / rows*N*cols (dense)
    assert ff.utilization == pytest.approx(m * n * k / (ff.cycles * 8 * 8 * 8))
    assert wg.utilization == pytest.approx(m * n * k / (wg.cycles * 8 * 2 * 8))


def test_b_moves_compressed():
    """Sparse modes read B as N values of in_bits plus N indices of ceil(log2 M) bits per M-group:
    K x N at 2:8 int8 is K/8*2*N*(8 + 3)/8 bytes (K/4*N values, 3-bit indices); dense reads K*N."""
    m, n, k = 4, 8, 256
    sp = time_gemm(C(rows=4, cols=8, sparsity="2:8"), m, n, k)
    dn = time_gemm(C(rows=4, cols=8, sparsity="2:8", mode="wg"), m, n, k)
    groups = k // 8 * n
    assert sp.dram_read_bytes_b == groups * 2 * 8 // 8 + groups * 2 * 3 // 8
    assert dn.dram_read_bytes_b == k * n


@pytest.mark.parametrize(("sparsity", "in_bits", "k"), [
    ("2:8", 8, 256), ("2:4", 8, 100), ("1:4", 16, 64), ("4:8", 8, 77), ("3:6", 16, 90),
    ("1:8", 8, 300)])
@pytest.mark.parametrize("fidelity", ["tile", "cycle"])
def test_b_traffic_split_into_values_and_metadata(sparsity, in_bits, k, fidelity, seed):
    """The report's b_value_bytes / b_meta_bytes (engine report_fields, through the CLI) against the
    closed form of docs/nm_format.md: a K x N weight at N:M keeps ceil(K/M)*N values per column;
    each is in_bits wide and has one ceil(log2 M)-bit index, packed densely. N = 8 columns per
    block, so every block's bits are whole bytes and the closed form needs no rounding. Every
    fold reads its block once (one block of A rows), so the two add up to sram_read_bytes_b."""
    nk, mg = (int(x) for x in sparsity.split(":"))
    n, m = 16, 3
    argv = ["run", "gemm", "--engine", "nm_sparse", "--rows", "3", "--cols", "8",
            "--sparsity", sparsity, "--in-bits", str(in_bits), "--m", str(m), "--n", str(n),
            "--k", str(k), "--fidelity", fidelity, "--seed", str(seed), "--json"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    rep = json.loads(buf.getvalue())
    kept = -(-k // mg) * nk * n
    ib = (mg - 1).bit_length()
    assert rep["b_value_bytes"] == kept * in_bits // 8
    assert rep["b_meta_bytes"] == kept * ib // 8
    assert rep["b_value_bytes"] + rep["b_meta_bytes"] == rep["sram_read_bytes_b"]
    assert rep["dram_read_bytes_b"] == rep["sram_read_bytes_b"]


def test_b_traffic_dense_mode_has_no_metadata():
    """wg (and a dense engine) hold B uncompressed: K*N values, no indices."""
    for cfg in (C(rows=4, cols=8, sparsity="2:8", mode="wg"), C(rows=4, cols=8, sparsity="dense")):
        res = time_gemm(cfg, 5, 16, 40)
        f = cfg.report_fields(res)
        assert f == {"b_value_bytes": 40 * 16, "b_meta_bytes": 0}
        assert f["b_value_bytes"] == res.sram_read_bytes_b


@pytest.mark.regress
@pytest.mark.parametrize("i", range(200))
def test_tile_equals_cycle_sweep(i, seed):
    test_tile_equals_cycle(i, seed)


def test_k_folds_wrap_at_acc_bits():
    """K-fold partial sums add in an acc_bits accumulator that wraps like a register: with acc_bits
    = result_bits (20 for 8 lanes x 2 kept, int8), a long K of most-negative values overflows it;
    the result is the exact Python-int product reduced mod 2^20 into the signed range."""
    cfg = C(rows=8, cols=2, sparsity="2:8", acc_bits=20)
    a = np.full((3, 8 * 8 * 6), -128, np.int64)
    b = np.full((8 * 8 * 6, 2), -128, np.int64)
    res = run_gemm(cfg, a, b)
    exact = 6 * 16 * 128 * 128                 # 6 folds x 16 kept products of +16384
    wrapped = (exact + (1 << 19)) % (1 << 20) - (1 << 19)
    assert exact >= 1 << 19 and res.matched is True
    assert (res.c == wrapped).all()

"""The memory model (sim/memory.py): configuration, the DRAM link, fetch/write-back policy, stalls.

Stall timing is checked against hand-computed cases and against tests/lockstep_reference.py (the
cycle model clocked one cycle at a time with per-cycle memory state), which shares no code with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lockstep_reference import lockstep_gemm

from tpesim.kernels.gemm import random_operands, run_gemm
from tpesim.engines.systolic import SystolicConfig
from tpesim.errors import ConfigError, ConfigTypeError, WorkloadError
from tpesim.memory import TRAFFIC_FIELDS, DramLink, MemoryConfig, static_traffic
from tpesim.timing import OsTiming, tile_gemm


# -- configuration ---------------------------------------------------------------------------------
def test_defaults_are_ideal():
    mem = MemoryConfig()
    assert mem.ideal
    assert not MemoryConfig(dram_latency=1).ideal
    assert not MemoryConfig(sram_kib_c=64).ideal
    assert mem.half_bytes("a") is None
    assert MemoryConfig(sram_kib_b=3).half_bytes("b") == 1536
    assert MemoryConfig.from_json(MemoryConfig(sram_kib_a=0.5, dram_bw=2.5).to_json()) == \
        MemoryConfig(sram_kib_a=0.5, dram_bw=2.5)
    assert MemoryConfig(dram_bw=8, dram_latency=3).report_fields() == {
        "sram_kib_a": None, "sram_kib_b": None, "sram_kib_c": None,
        "dram_bw_bytes_per_cycle": 8, "dram_latency_cycles": 3}


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"sram_kib_a": 0}, ConfigError, "sram_kib_a must be a positive number, not 0"),
    ({"sram_kib_c": -1.5}, ConfigError, "sram_kib_c must be a positive number, not -1.5"),
    ({"sram_kib_b": "64"}, ConfigTypeError, "sram_kib_b must be a number, not '64'"),
    ({"dram_bw": float("inf")}, ConfigError, "dram_bw must be a positive number, not inf"),
    ({"dram_bw": True}, ConfigTypeError, "dram_bw must be a number, not True"),
    ({"dram_latency": -1}, ConfigError, "dram_latency must be an integer >= 0, not -1"),
    ({"dram_latency": 2.0}, ConfigTypeError, "dram_latency must be an integer, not 2.0"),
])
def test_config_validation(kwargs, exc, message):
    with pytest.raises(exc) as info:
        MemoryConfig(**kwargs)
    assert str(info.value) == message


# -- the DRAM link ---------------------------------------------------------------------------------
def test_link_fifo_bandwidth_latency():
    link = DramLink(bw=4, latency=10)
    assert link.read("a", 10, 0) == 3 + 10        # ceil(10/4) = 3 cycles, then the latency
    assert link.read("b", 4, 1) == 4 + 10         # waits for the link: starts at 3
    assert link.write("c", 8, 20) == 22           # link idle: starts at 20; posted, no latency
    assert link.read("a", 1, 21) == 23 + 10       # behind the write
    assert link.busy_cycles == 3 + 1 + 2 + 1
    assert link.read_bytes == {"a": 11, "b": 4} and link.write_bytes == {"c": 8}
    assert link.done_cycle == 33
    with pytest.raises(RuntimeError, match="time order"):
        link.read("a", 1, 5)


def test_link_fractional_and_unbounded_bandwidth():
    assert DramLink(bw=0.5, latency=0).read("a", 3, 0) == 6
    assert DramLink(bw=0.3, latency=0).transfer_cycles(3) == 10  # exact, not 10.000000000000002
    free = DramLink(bw=None, latency=7)
    assert free.read("a", 10**9, 5) == 12 and free.read("a", 1, 5) == 12
    assert free.write("c", 10**9, 6) == 6 and free.busy_cycles == 0


# -- fetch and write-back policy -------------------------------------------------------------------
def test_gemm_traffic_reuses_a_row_block():
    # 2 x 3 tiles (M=8, N=9 on 4x4; the last column block is 1 wide), K=5, int8, acc 32
    r = tile_gemm(8, 9, 5, 4, 4)
    assert r.blocks == 6
    assert r.dram_read_bytes_a == 8 * 5                  # each A row block fetched once
    assert r.sram_read_bytes_a == 3 * 8 * 5              # ... and read by 3 tiles each
    assert r.dram_read_bytes_b == 9 * 5                  # unbounded SRAM: every block once
    assert r.sram_read_bytes_b == 2 * 9 * 5              # ... read by the 2 row blocks of tiles
    assert r.sram_write_bytes_b == r.dram_read_bytes_b
    assert r.sram_write_bytes_a == r.dram_read_bytes_a
    # an SRAM of two B blocks (4x5 bytes each) only double-buffers: B fetched again per tile
    r2 = tile_gemm(8, 9, 5, 4, 4, memory=MemoryConfig(sram_kib_b=2 * 4 * 5 / 1024))
    assert r2.dram_read_bytes_b == r2.sram_read_bytes_b == 2 * 9 * 5
    # three blocks: a resident set; the 3 B blocks stay in SRAM, fetched once
    r3 = tile_gemm(8, 9, 5, 4, 4, memory=MemoryConfig(sram_kib_b=3 * 4 * 5 / 1024))
    assert r3.dram_read_bytes_b == 9 * 5
    assert r.dram_write_bytes_c == r.sram_write_bytes_c == r.sram_read_bytes_c == 8 * 9 * 4
    assert r.dram_read_bytes_c == r.dram_write_bytes_a == r.dram_write_bytes_b == 0


def test_gemm_traffic_one_column_block_fetched_once():
    r = tile_gemm(40, 3, 7, 4, 4, in_bits=4, acc_bits=20)
    assert r.dram_read_bytes_b == math.ceil(3 * 7 * 4 / 8)  # B resident for every tile
    assert r.sram_read_bytes_b == 10 * math.ceil(3 * 7 * 4 / 8)
    assert r.dram_read_bytes_a == 10 * math.ceil(4 * 7 * 4 / 8)
    assert r.dram_write_bytes_c == 10 * math.ceil(4 * 3 * 20 / 8)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 30), rows=st.integers(1, 8),
       cols=st.integers(1, 8), bw=st.sampled_from([0.5, 3, 64]))
def test_event_counters_equal_static_traffic(m, n, k, rows, cols, bw):
    ev = tile_gemm(m, n, k, rows, cols, memory=MemoryConfig(dram_bw=bw, sram_kib_a=64,
                                                            sram_kib_b=64, sram_kib_c=64))
    fast = tile_gemm(m, n, k, rows, cols)
    static = static_traffic(OsTiming(rows, cols).gemm_stream(m, n, k))
    for f in TRAFFIC_FIELDS:
        assert getattr(ev, f) == getattr(fast, f) == static[f], f


# -- stalls: hand-computed ------------------------------------------------------------------------
def test_bandwidth_stall_by_hand():
    # 2x2 array, M=4 N=2 K=4: tiles (0,0), (1,0); 8-byte A blocks, one 8-byte B block, 16-byte C.
    # 1 B/cycle: A0 in at 8, B0 at 16, A1 at 24. Tile 0 streams 16..19; tile 1 starts at 24,
    # its last beat waits for tile 0's rows (23, 24): L_1 = 27; rows of tile 1 at 31, 32.
    # Write-backs: tile 0 issued at 25 (link free at 24) -> 41; tile 1 at 33 -> 41 + 16 = 57.
    r = tile_gemm(4, 2, 4, 2, 2, memory=MemoryConfig(dram_bw=1), record_rows=True)
    assert r.out_cycles.tolist() == [23, 24, 31, 32]
    assert (r.engine_done_cycle, r.compute_cycles) == (33, 15)
    assert r.writeback_done_cycle == 57 and r.dram_busy_cycles == 8 + 8 + 8 + 16 + 16
    assert (r.cycles, r.stall_cycles) == (57, 57 - 15)   # the end of all the work: the write-back


def test_double_buffer_refill_waits_for_streaming_by_hand():
    # 2x1 array, M=6 N=1 K=4: three A row blocks of 8 bytes, one B block; A's halves hold 8 bytes.
    # Latency 100: A0, B0, A1 arrive at 100; A2 must wait until tile 0 (cycles 100..103) has
    # streamed: issued at 104, arrives at 204.
    mem = MemoryConfig(sram_kib_a=16 / 1024, dram_latency=100)
    r = tile_gemm(6, 1, 4, 2, 1, memory=mem, record_rows=True)
    assert r.out_cycles.tolist() == [106, 107, 111, 112, 210, 211]
    assert (r.cycles, r.compute_cycles, r.stall_cycles) == (212, 18, 194)
    # with unbounded SRAM all three fetches go at once: only the latency remains
    r = tile_gemm(6, 1, 4, 2, 1, memory=MemoryConfig(dram_latency=100), record_rows=True)
    assert r.out_cycles.tolist() == [106, 107, 111, 112, 116, 117]
    assert r.stall_cycles == 100


def test_output_space_stall_by_hand():
    # 1x1 array, M=3 N=1 K=1, 32-bit results: 4 bytes per tile, output halves of 4 bytes.
    # Link 0.5 B/cycle; A blocks of 1 byte take 2 cycles, the B block 2 cycles, a write-back 8.
    # Fetches: A0 [0,2) B0 [2,4) A1 [4,6) A2 [6,8). Tile t's beat at L_t; its row 2 cycles later.
    # tile 0: L=4, row at 6, write-back issued 7, link [8,16) (free from 16).
    # tile 1: starts 5, waits for tile 0's row: L=7, row at 9, write-back [16,24).
    # tile 2: starts 8, L = max(8, 10) = 10; its row needs tile 0's half: free at 16 -> row at 16.
    mem = MemoryConfig(sram_kib_c=8 / 1024, dram_bw=0.5)
    r = tile_gemm(3, 1, 1, 1, 1, memory=mem, record_rows=True)
    assert r.out_cycles.tolist() == [6, 9, 16]
    assert r.engine_done_cycle == 17 and r.compute_cycles == 0 + 2 * 3 + 3  # L_t = 0, 3, 6; + 2R + C
    assert r.writeback_done_cycle == r.cycles == 32  # tile 2's write-back: issued 17, link busy until 24
    unbounded = tile_gemm(3, 1, 1, 1, 1, memory=MemoryConfig(dram_bw=0.5), record_rows=True)
    assert unbounded.out_cycles.tolist() == [6, 9, 12]


def test_ws_bandwidth_stall_by_hand():
    # WS on 2x2, M=3 N=2 K=4: folds (kf=0, kf=1) of one output block; A blocks A[:, kf] 6 bytes,
    # B blocks B[kf, 0:2] 4 bytes, C block 3 x 2 x 4 = 24 bytes. 1 B/cycle, fetch order A0 B0 A1
    # B1: in SRAM at 6, 10, 16, 20.
    # Fold 0 loads B0 at 10, 11 (W_0 = 11), streams 12..14 (L_0), rows leave at 16, 17, 18;
    # its token leaves the array after 14 + R + C - 1 = 17, so fold 1 may load from 18, but B1
    # is there at 20: loads 20, 21, stream 22..24, rows 26, 27, 28. Write-back of C: issued 29,
    # 24 cycles. Stall-free: 2 folds of 2R + C + M - 1 = 8 cycles, + 1.
    r = tile_gemm(3, 2, 4, 2, 2, dataflow="ws", memory=MemoryConfig(dram_bw=1), record_rows=True)
    assert r.out_cycles.tolist() == [16, 17, 18, 26, 27, 28]
    assert (r.engine_done_cycle, r.compute_cycles) == (29, 17)
    assert r.writeback_done_cycle == r.cycles == 29 + 24 and r.stall_cycles == 53 - 17
    assert (r.dram_read_bytes_a, r.dram_read_bytes_b, r.dram_write_bytes_c) == (12, 8, 24)
    # double buffer: B0 loaded at 10, 11 and copied into the PEs at 12, fold 0 streams 13..15;
    # fold 1's loads (looked ahead: B1 in SRAM at 20) at 20, 21 are too late for a swap by fold
    # 0's token, so a global copy at 22 and fold 1 streams 23..25.
    r = tile_gemm(3, 2, 4, 2, 2, dataflow="ws", double_buffer=True,
                  memory=MemoryConfig(dram_bw=1), record_rows=True)
    assert r.out_cycles.tolist() == [17, 18, 19, 27, 28, 29]
    assert (r.engine_done_cycle, r.compute_cycles) == (30, 14)
    # C's write-back (24 bytes at 1 B/cycle) is issued at 30 and ends at 54: the end of all the work
    assert r.cycles == r.writeback_done_cycle == 30 + 24 and r.stall_cycles == 54 - 14


def test_ws_output_space_gates_the_stream_by_hand():
    # WS on 2x2, M=2 N=6 K=2: three folds, one per output block (C[:, 0:2], C[:, 2:4], C[:, 4:6],
    # 16 bytes each); output halves of 16 bytes; 1 B/cycle. A (4 bytes, one block) in at 4, B0,
    # B1, B2 (4 bytes each) at 8, 12, 16.
    # Fold 0: loads 8, 9, stream 10, 11, rows 14, 15; write-back issued 16, link busy until 16:
    # [16, 32) -- block 0's half is free from 32. Fold 1: loads 15, 16, stream 17, 18, rows 21,
    # 22; write-back [32, 48). Fold 2 writes block 2 into block 0's half: loaded at 22, 23, but
    # its first beat waits for that half (32): stream 32, 33, rows 36, 37.
    mem = MemoryConfig(dram_bw=1, sram_kib_c=32 / 1024)
    r = tile_gemm(2, 6, 2, 2, 2, dataflow="ws", memory=mem, record_rows=True)
    assert r.out_cycles.tolist() == [14, 15, 21, 22, 36, 37]
    assert (r.engine_done_cycle, r.compute_cycles) == (38, 22)
    assert r.writeback_done_cycle == r.cycles == 64 and r.stall_cycles == 64 - 22


@pytest.mark.parametrize(("dataflow", "db"), [("ws", False), ("ws", True), ("is", False),
                                              ("is", True)])
def test_stationary_traffic(dataflow, db):
    # 40 x 30 x 50 on 8 x 4: 7 K-slices; WS: 8 output column blocks (56 folds), IS: 10 output row
    # blocks (70 folds); int8 operands, int32 results
    r = tile_gemm(40, 30, 50, 8, 4, dataflow=dataflow, double_buffer=db)
    stat, strm, outer = ("b", "a", 8) if dataflow == "ws" else ("a", "b", 10)
    assert r.blocks == 7 * outer
    assert getattr(r, f"dram_read_bytes_{stat}") == getattr(r, f"sram_read_bytes_{stat}") == \
        (30 if dataflow == "ws" else 40) * 50          # every stationary block once
    streamed = (40 if dataflow == "ws" else 30) * 50
    assert getattr(r, f"dram_read_bytes_{strm}") == streamed            # unbounded: once
    assert getattr(r, f"sram_read_bytes_{strm}") == outer * streamed    # read per output block
    # an SRAM of two streamed blocks (8 K-rows x 40 or 30) double-buffers: fetched per output block
    two = 2 * 8 * (40 if dataflow == "ws" else 30) / 1024
    r2 = tile_gemm(40, 30, 50, 8, 4, dataflow=dataflow, double_buffer=db,
                   memory=MemoryConfig(**{f"sram_kib_{strm}": two}))
    assert getattr(r2, f"dram_read_bytes_{strm}") == outer * streamed
    assert r.dram_write_bytes_c == r.sram_read_bytes_c == 40 * 30 * 4  # one write-back per block
    assert r.sram_write_bytes_c == 7 * 40 * 30 * 4     # every K-fold writes its partial sums
    # K <= R: the streamed operand is one block, resident for the whole run
    r = tile_gemm(40, 30, 5, 8, 4, dataflow=dataflow)
    assert getattr(r, f"dram_read_bytes_{strm}") == (40 if dataflow == "ws" else 30) * 5
    assert getattr(r, f"sram_read_bytes_{strm}") == r.blocks * (40 if dataflow == "ws" else 30) * 5


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 30), rows=st.integers(1, 8),
       cols=st.integers(1, 8), bw=st.sampled_from([0.5, 3, 64]),
       df=st.sampled_from([("ws", False), ("ws", True), ("is", False), ("is", True)]))
def test_stationary_event_counters_equal_static_traffic(m, n, k, rows, cols, bw, df):
    kw = {"dataflow": df[0], "double_buffer": df[1]}
    ev = tile_gemm(m, n, k, rows, cols, memory=MemoryConfig(dram_bw=bw, sram_kib_a=64,
                                                            sram_kib_b=64, sram_kib_c=64), **kw)
    fast = tile_gemm(m, n, k, rows, cols, **kw)
    for f in TRAFFIC_FIELDS:
        assert getattr(ev, f) == getattr(fast, f), f


def test_latency_alone_delays_by_exactly_the_latency():
    for lat in (1, 17, 500):
        r = tile_gemm(50, 30, 20, 8, 4, memory=MemoryConfig(dram_latency=lat))
        assert r.stall_cycles == lat


def test_unbounded_memory_has_no_stalls():
    r = tile_gemm(50, 30, 20, 8, 4, memory=MemoryConfig(), events=True)
    assert r.stall_cycles == 0 and r.cycles == tile_gemm(50, 30, 20, 8, 4).cycles


# -- fit ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sram_kib_a": 1}, "sram_kib_a must hold two blocks: a tile's block of operand a (8 x 300 of 8 bits, 2400 bytes) does not fit "
                        "half of its 1 KiB SRAM (512 bytes); give operand a at least 4.688 KiB"),
    ({"sram_kib_b": 2}, "sram_kib_b must hold two blocks: a tile's block of operand b (300 x 4 of 8 bits, 1200 bytes) does not fit "
                        "half of its 2 KiB SRAM (1024 bytes); give operand b at least 2.344 KiB"),
    ({"sram_kib_c": 0.0625}, "sram_kib_c must hold two blocks: a tile's block of operand c (8 x 4 of 32 bits, 128 bytes) does not "
                             "fit half of its 0.0625 KiB SRAM (32 bytes); give operand c at least "
                             "0.25 KiB"),
])
@pytest.mark.parametrize("fidelity", ["cycle", "tile"])
def test_tile_does_not_fit(kwargs, message, fidelity):
    cfg = SystolicConfig(rows=8, cols=4)
    a, b = random_operands(cfg, 10, 6, 300, seed=0)
    with pytest.raises(WorkloadError) as info:
        run_gemm(cfg, a, b, memory=MemoryConfig(**kwargs), fidelity=fidelity)
    assert str(info.value) == message


def test_exact_fit_is_accepted():
    # 8 x 4 x 32-bit = 128 bytes: exactly half of 0.25 KiB
    r = tile_gemm(8, 4, 3, 8, 4, memory=MemoryConfig(sram_kib_c=0.25))
    assert r.stall_cycles == 0


# -- against the per-cycle lockstep reference ------------------------------------------------------
MEMORY = st.fixed_dictionaries({
    "sram_kib_a": st.sampled_from([None, 1, 0.25]),
    "sram_kib_b": st.sampled_from([None, 1, 0.25]),
    "sram_kib_c": st.sampled_from([None, 0.5, 0.125]),
    "dram_bw": st.sampled_from([None, 0.3, 1, 2.5, 16]),
    "dram_latency": st.sampled_from([0, 1, 9, 60]),
})


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), m=st.integers(1, 14), n=st.integers(1, 14),
       k=st.integers(1, 20), in_bits=st.sampled_from([4, 8, 16]), mem=MEMORY,
       seed=st.integers(0, 2**32 - 1),
       df=st.sampled_from([("os", False), ("ws", False), ("ws", True), ("is", False),
                           ("is", True)]))
def test_tile_level_equals_lockstep_reference(rows, cols, m, n, k, in_bits, mem, seed, df):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, dataflow=df[0],
                         double_buffer=df[1])
    a, b = random_operands(cfg, m, n, k, seed)
    try:
        r = run_gemm(cfg, a, b, memory=MemoryConfig(**mem), fidelity="tile", verify=True)
    except WorkloadError as e:
        assert "does not fit" in str(e)
        return
    ref = lockstep_gemm(cfg, a, b, **mem)
    assert r.engine_done_cycle == ref["cycles"]
    assert r.out_cycles.tolist() == ref["out_cycles"].tolist()
    np.testing.assert_array_equal(r.c, ref["c"])
    assert r.cycles == r.writeback_done_cycle == ref["writeback_done_cycle"]
    for f in ("dram_read_bytes_a", "dram_read_bytes_b", "dram_write_bytes_c"):
        assert getattr(r, f) == ref[f], f


def test_per_operand_release():
    """A backend may release each input operand at its own cycle (e.g. a stationary operand once
    loaded): here B is released at the first beat, so B's next fetch is not held up by A."""
    from tpesim.timing import OsTileBackend, run_stream

    class EarlyB(OsTileBackend):
        def stream(self, t, now, ready, out_free):
            last, prev_done, nxt = super().stream(t, now, ready, out_free)
            return (last, last - self.beats[t] + 1), prev_done, nxt

    stream = OsTiming(2, 2).gemm_stream(2, 8, 40)  # four tiles, one A block, four B blocks
    mem = MemoryConfig(sram_kib_b=160 / 1024, dram_latency=50)
    plain = run_stream(stream, OsTileBackend(2, 2, stream.beats), mem)
    early = run_stream(stream, EarlyB(2, 2, stream.beats), mem)
    assert early.cycles < plain.cycles
    assert early.traffic == plain.traffic

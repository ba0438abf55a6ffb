"""The N:M sparse engine's config, functional reference and cycle model (sim/engines/nm_sparse.py,
sim/engines/_nm_sparse_core.py) against docs/nm_sparse.md.

The core (compiled and interpreted) is stepped beside a literal register-transfer model written from
the contract (tests/nm_sparse_reference.py): every port every cycle, random valid gaps and ready
stalls, blocks in both modes and blocks with broken metadata; result rows against numpy on the
pruned weights (tpesim.nm.prune); the free-running path against the lockstep one.
"""

from __future__ import annotations

import numpy as np
import pytest

from nm_sparse_reference import NmSparseRT, drive
from tpesim import nm
from tpesim.cosim.stimulus.nm_sparse import (CORRUPTIONS, beat_ports, corrupt, make_blocks,
                                             make_case)
from tpesim.engines.nm_sparse import (NmSparseConfig, NmSparseModel, compress_block,
                                      compress_cycles, reference)
from tpesim.errors import ConfigError, ConfigTypeError, WorkloadError

C = NmSparseConfig

CFGS = [
    C(rows=3, cols=2, sparsity="2:8"),
    C(rows=2, cols=3, sparsity="2:4", mode="bp", double_buffer=True),
    C(rows=4, cols=2, sparsity="2:4", mode="wg"),
    C(rows=3, cols=3, sparsity="dense"),
    C(rows=2, cols=2, sparsity="3:6", in_bits=16, double_buffer=True),
    C(rows=5, cols=1, sparsity="1:8"),
    C(rows=1, cols=4, sparsity="4:8", double_buffer=True),
    C(rows=2, cols=2, sparsity="7:16", in_bits=16, acc_bits=64),
    # load "dense": the compressors in front of the banks (one more register on the load path)
    C(rows=3, cols=2, sparsity="2:8", load="dense"),
    C(rows=2, cols=3, sparsity="2:4", mode="bp", double_buffer=True, load="dense"),
    C(rows=2, cols=2, sparsity="3:6", mode="wg", in_bits=16, double_buffer=True, load="dense"),
    C(rows=1, cols=2, sparsity="1:4", load="dense"),
]
LOAD_DENSE = CFGS[-4:]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
@pytest.mark.parametrize("stalls", [(1.0, 1.0), (0.6, 0.6), (0.3, 0.25)], ids=["free", "gaps", "heavy"])
def test_core_equals_register_transfer(cfg, stalls, seed):
    """Core compiled, core interpreted and the register-transfer model: the same ports every cycle;
    the result rows are numpy's (A @ prune(W) sparse, A @ W dense, zeros for broken metadata)."""
    rng = np.random.default_rng(seed)
    case = make_case(cfg, rng, 5, 9, p_invalid=0.3)
    models = [NmSparseRT(cfg), NmSparseModel(cfg), NmSparseModel(cfg, interpreted=True)]
    rows, errs, cycles = drive(cfg, case, rng, models, p_valid=stalls[0], p_ready=stalls[1])
    assert np.array_equal(np.array(rows, np.int64), np.concatenate(case.expected))
    assert models[1].err_rows == models[2].err_rows == sum(errs)


def test_invalid_metadata_flags_every_row_of_its_block(seed):
    """Each kind of broken metadata (duplicate, descending, out-of-range index, a beat whose mode
    differs from the block's first) makes every row of that block leave with out_err = 1 and zeros,
    and only those rows: the next block (valid metadata) computes normally again."""
    cfg = C(rows=3, cols=2, sparsity="3:6")      # 3-bit indices: 6 and 7 are out of range
    rng = np.random.default_rng(seed)
    for kind in CORRUPTIONS:
        blocks = make_blocks(cfg, rng, 3, 4, p_invalid=0.0, p_dense=0.0)
        assert corrupt(cfg, blocks[1].beats, kind, rng), kind
        # the broken block's metadata is rejected by the API's checker too (for index faults)
        if kind != "mode_flip":
            n = cfg.cols * cfg.keep
            with pytest.raises(nm.NmMetadataError):
                nm.check_indices(blocks[1].beats[:, n:2 * n].reshape(-1), cfg.keep, cfg.group)
        from tpesim.cosim.stimulus import Case
        from tpesim.cosim.stimulus.nm_sparse import beat_ports
        from tpesim.numerics import pack

        loads = [beat_ports(cfg, b) for blk in blocks for b in blk.beats]
        rows = [{"in_data": pack(blk.x[r], cfg.in_bits), "in_last": int(r == len(blk.x) - 1)}
                for blk in blocks for r in range(len(blk.x))]
        case = Case(beats={"load": loads, "in": rows}, expected=[], latency_bound=20)
        object.__setattr__(case, "expected", [b.expected for b in blocks])
        m = NmSparseModel(cfg)
        got, errs, _ = drive(cfg, case, rng, [NmSparseRT(cfg), m], p_valid=0.8, p_ready=0.8)
        n0, n1 = len(blocks[0].x), len(blocks[1].x)
        assert errs == [0] * n0 + [1] * n1 + [0] * len(blocks[2].x), kind
        got = np.array(got)
        assert not got[n0:n0 + n1].any(), kind
        assert np.array_equal(got[:n0], blocks[0].expected), kind
        assert np.array_equal(got[n0 + n1:], blocks[2].expected), kind


@pytest.mark.parametrize("cfg", CFGS[:5] + LOAD_DENSE, ids=lambda c: c.name)
def test_free_running_equals_lockstep(cfg, seed):
    """run_folds (compiled, free-running) gives the rows, their cycles and the run length that the
    register-transfer model gives when driven cycle by cycle with the same availability and sink
    schedule."""
    rng = np.random.default_rng(seed)
    R, win = cfg.rows, cfg.window
    ms = [int(x) for x in rng.integers(1, 9, 4)]
    lo, hi = cfg.in_range
    ws = [rng.integers(lo, hi + 1, (R * win, cfg.cols)) for _ in ms]
    xs = [rng.integers(lo, hi + 1, (m, R * win)) for m in ms]
    model = NmSparseModel(cfg)
    loads = np.concatenate([model.load_order(w) for w in ws])
    rows = np.concatenate(xs)
    lasts = np.zeros(len(rows), np.int64)
    lasts[np.cumsum(ms) - 1] = 1
    lav = np.sort(rng.integers(0, 30, len(loads)))
    iav = np.sort(rng.integers(0, 60, len(rows)))
    ready = (rng.random(200) < 0.7).astype(np.uint8)
    out, stamps, cycles = model.run_folds(loads, rows, lasts, load_avail=lav, in_avail=iav,
                                          ready=ready)
    want = np.concatenate([x @ nm.prune(w, cfg.keep, cfg.group, axis=0) if cfg.sparse else x @ w
                           for w, x in zip(ws, xs)])
    assert np.array_equal(out, want)

    rt = NmSparseRT(cfg)
    beats_in = model.in_beats(rows)
    li = bi = 0
    got_stamps = []
    t = 0
    while len(got_stamps) < len(rows):
        ins = {"out_ready": int(ready[t]) if t < len(ready) else 1}
        if li < len(loads) and t >= lav[li]:
            ins.update(load_valid=1, **beat_ports(cfg, loads[li]))
        if bi < len(rows) and t >= iav[bi]:
            ins.update(in_valid=1, in_data=nm_pack(beats_in[bi], cfg.in_bits),
                       in_last=int(lasts[bi]))
        o = rt.step(ins)
        li += ins.get("load_valid", 0) and o["load_ready"]
        bi += ins.get("in_valid", 0) and o["in_ready"]
        if o["out_valid"] and ins["out_ready"]:
            got_stamps.append(t)
        t += 1
    assert np.array_equal(stamps, got_stamps)
    assert cycles == t


def nm_pack(values, bits):
    from tpesim.numerics import pack

    return pack(values, bits)


def test_step_by_step_equals_free_running_interpreted(seed):
    """The interpreted core's free-running path equals the compiled one (rows, cycles)."""
    cfg = C(rows=3, cols=2, sparsity="2:4", double_buffer=True)
    rng = np.random.default_rng(seed)
    ws = [rng.integers(-128, 128, (12, 2)) for _ in range(3)]
    xs = [rng.integers(-128, 128, (5, 12)) for _ in range(3)]
    res = []
    for interp in (False, True):
        m = NmSparseModel(cfg, interpreted=interp)
        loads = np.concatenate([m.load_order(w) for w in ws])
        lasts = np.tile([0, 0, 0, 0, 1], 3)
        res.append(m.run_folds(loads, np.concatenate(xs), lasts))
    assert np.array_equal(res[0][0], res[1][0]) and np.array_equal(res[0][1], res[1][1])
    assert res[0][2] == res[1][2]


# -- load layout, reference ----------------------------------------------------------------------
def test_load_order_is_the_compressor_output():
    """A sparse block's beat i carries lane i's M-group of every column compressed by tpesim.nm
    (values, ascending indices) and dense bit 0; a dense block's lane i carries N consecutive K
    positions, indices 0..N-1, dense bit 1."""
    rng = np.random.default_rng(3)
    cfg = C(rows=3, cols=2, sparsity="2:8")
    w = rng.integers(-128, 128, (24, 2))
    beats = compress_block(cfg, w)
    vals, idx = nm.compress(w, 2, 8, axis=0)      # (6, 2): lane i's slots at rows 2i, 2i+1
    for i in range(3):
        for j in range(2):
            assert list(beats[i, j * 2:j * 2 + 2]) == list(vals[2 * i:2 * i + 2, j])
            assert list(beats[i, 4 + j * 2:4 + j * 2 + 2]) == list(idx[2 * i:2 * i + 2, j])
        assert beats[i, -1] == 0
    dcfg = C(rows=3, cols=2, sparsity="2:8", mode="wg")
    wd = rng.integers(-128, 128, (6, 2))
    bd = compress_block(dcfg, wd)
    assert list(bd[1, :4]) == [wd[2, 0], wd[3, 0], wd[2, 1], wd[3, 1]]
    assert list(bd[1, 4:8]) == [0, 1, 0, 1] and bd[1, -1] == 1
    with pytest.raises(WorkloadError, match="a weight block must be 24 x 2"):
        compress_block(cfg, wd)
    with pytest.raises(ConfigError, match="dense must be True for sparsity 'dense'"):
        compress_block(C(rows=3, cols=2, sparsity="dense"), np.zeros((3, 2)), dense=False)


@pytest.mark.parametrize("mode", ["ff", "bp", "wg"])
def test_reference_is_numpy_on_pruned_b(mode):
    rng = np.random.default_rng(5)
    cfg = C(rows=2, cols=2, sparsity="2:8", mode=mode)
    a = rng.integers(-128, 128, (7, 19))
    b = rng.integers(-128, 128, (19, 5))
    want = a @ (b if mode == "wg" else nm.prune(b, 2, 8, axis=0))
    assert np.array_equal(reference(cfg, a, b), want)
    # the pruned B keeps at most 2 of every 8 consecutive K positions of each column
    pb = cfg.operand_as_used("b", b)
    if mode != "wg":
        padded = np.zeros((24, 5), np.int64)
        padded[:19] = pb
        assert ((padded.reshape(3, 8, 5) != 0).sum(axis=1) <= 2).all()


@pytest.mark.parametrize("mode", ["ff", "bp", "wg"])
def test_load_dense_computes_what_the_compressed_path_computes(mode):
    """The engine with its compressors in front of the banks (load "dense") gives, at the cycle
    level, the compressed path's results: numpy on the magnitude-pruned B (sparse modes) or on B
    (wg); only the cycles differ (one per fold on a single bank, the compressors' register)."""
    from tpesim.kernels.gemm import run_gemm

    rng = np.random.default_rng(13)
    a = rng.integers(-128, 128, (6, 45))
    b = rng.integers(-128, 128, (45, 7))
    pre = C(rows=2, cols=3, sparsity="2:8", mode=mode)
    fly = C(rows=2, cols=3, sparsity="2:8", mode=mode, load="dense")
    r0 = run_gemm(pre, a, b, fidelity="cycle")
    r1 = run_gemm(fly, a, b, fidelity="cycle")
    want = a @ (b if mode == "wg" else nm.prune(b, 2, 8, axis=0))
    assert r0.matched is True and r1.matched is True
    assert np.array_equal(r0.c, want) and np.array_equal(r1.c, want)
    assert r1.cycles == r0.cycles + r0.blocks


def test_dense_block_layout():
    """load "dense": beat i carries lane i's M-group of every column whole (sparse) or its N
    values then zeros (dense mode), and the dense bit."""
    rng = np.random.default_rng(4)
    cfg = C(rows=3, cols=2, sparsity="2:8", load="dense")
    w = rng.integers(-128, 128, (24, 2))
    beats = NmSparseModel(cfg).load_order(w)
    assert beats.shape == (3, 2 * 8 + 1) and not beats[:, -1].any()
    for i in range(3):
        for j in range(2):
            assert list(beats[i, j * 8:(j + 1) * 8]) == list(w[i * 8:(i + 1) * 8, j])
    wd = rng.integers(-128, 128, (6, 2))
    bd = NmSparseModel(C(rows=3, cols=2, sparsity="2:8", mode="wg", load="dense")).load_order(wd)
    assert list(bd[1, :8]) == [wd[2, 0], wd[3, 0]] + [0] * 6 and bd[1, -1] == 1


def test_run_gemm_every_mode_matches():
    from tpesim.kernels.gemm import run_gemm

    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (9, 37))
    b = rng.integers(-128, 128, (37, 5))
    for mode in ("ff", "bp", "wg"):
        cfg = C(rows=2, cols=3, sparsity="2:4", mode=mode)
        res = run_gemm(cfg, a, b)
        assert res.matched is True
        want = a @ (b if mode == "wg" else nm.prune(b, 2, 4, axis=0))
        assert np.array_equal(res.c, want)


# -- config validation and the compression cost ---------------------------------------------------
@pytest.mark.parametrize("kw, exc, msg", [
    ({"rows": 0}, ConfigError, "rows must be a positive integer, not 0"),
    ({"cols": 65}, ConfigError, "cols must be at most 64, not 65"),
    ({"sparsity": "4:4"}, ConfigError, "sparsity must be N:M with 1 <= N < M <= 16, not '4:4'"),
    ({"sparsity": "2:17"}, ConfigError, "sparsity must be N:M with 1 <= N < M <= 16"),
    ({"sparsity": "two:four"}, ConfigError, "sparsity must be 'dense' or 'N:M'"),
    ({"sparsity": 2}, ConfigTypeError, "sparsity must be a string"),
    ({"mode": "fw"}, ConfigError, "mode must be one of 'ff', 'bp', 'wg', not 'fw'"),
    ({"in_bits": 4}, ConfigError, "in_bits must be one of 8, 16, not 4"),
    # 8 lanes x 2 kept = 16 products of 16 bits: result_bits = 16 + 4
    ({"acc_bits": 18}, ConfigError, "acc_bits must be an integer from 20 (result_bits) to 64, not 18"),
    ({"double_buffer": 1}, ConfigTypeError, "double_buffer must be a bool, not 1"),
    ({"load": "fast"}, ConfigError, "load must be one of 'compressed', 'dense', not 'fast'"),
    ({"sparsity": "dense", "load": "dense"}, ConfigError,
     "load 'dense' needs an N:M sparsity (its compressors prune M-groups), not sparsity 'dense'"),
])
def test_config_errors(kw, exc, msg):
    with pytest.raises(exc, match=msg.replace("(", r"\(").replace(")", r"\)")):
        C(**{"rows": 8, "cols": 8, "sparsity": "2:8", **kw})


def test_config_geometry_and_round_trip():
    from tpesim.config import config_from_json

    cfg = C(rows=16, cols=16, sparsity="2:8")
    assert (cfg.keep, cfg.group, cfg.idx_bits, cfg.window) == (2, 8, 3, 8)
    assert cfg.block_shape == (128, 16)                    # rows*M K positions held (sparse)
    assert C(rows=16, cols=16, sparsity="2:8", mode="wg").block_shape == (32, 16)   # rows*N
    assert cfg.result_bits == 16 + 5                       # 32 products of 16 bits
    assert cfg.peak_macs_per_cycle == 16 * 8 * 16
    assert config_from_json(cfg.to_json()) == cfg
    widths = {p.name: p.width for p in cfg.ports()}
    assert widths["load_val"] == 16 * 2 * 8 and widths["load_idx"] == 16 * 2 * 3
    assert widths["in_data"] == 16 * 8 * 8 and widths["out_c"] == 16 * 21
    assert widths["out_err"] == 1 and widths["load_dense"] == 1


def test_compress_cycles():
    """ceil(K/M)*N M-groups over `compressors` pipelined compressors (one group per cycle each)
    plus the output register; nothing to compress in dense mode."""
    cfg = C(rows=4, cols=8, sparsity="2:8")
    assert compress_cycles(cfg, 64, 16) == 8 * 16 // 8 + 1         # 128 groups, 8 compressors
    assert compress_cycles(cfg, 65, 16) == 9 * 16 // 8 + 1         # a partial last group counts
    assert compress_cycles(cfg, 64, 16, compressors=3) == -(-128 // 3) + 1
    assert compress_cycles(C(rows=4, cols=8, sparsity="2:8", mode="wg"), 64, 16) == 0
    with pytest.raises(WorkloadError, match="k must be a positive integer, not 0"):
        compress_cycles(cfg, 0, 16)
    with pytest.raises(ConfigError, match="compressors must be a positive integer, not 0"):
        compress_cycles(cfg, 8, 8, compressors=0)


@pytest.mark.parametrize("mode", ["ff", "wg"])
def test_cli_run_gemm(mode, capsys):
    """`tpesim run gemm --engine nm_sparse ...`: random weights pruned N:M (ff) along K, matched
    against numpy; the config's rows stay the lanes, the held block's K extent is block_rows; a
    sparse fold holds rows*M K positions (K/(rows*M) folds per column block), dense rows*N."""
    import json

    from tpesim.cli import main

    rc = main(["run", "gemm", "--engine", "nm_sparse", "--sparsity", "2:8", "--rows", "4",
               "--cols", "4", "--m", "9", "--n", "8", "--k", "64", "--mode", mode, "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["matched"] is True and d["rows"] == 4 and d["mode"] == mode
    assert d["block_rows"] == (32 if mode == "ff" else 8)
    assert d["blocks"] == 2 * 64 // d["block_rows"]


def test_cli_bad_sparsity_is_one_line(capsys):
    from tpesim.cli import main

    assert main(["run", "gemm", "--engine", "nm_sparse", "--sparsity", "3:2", "--m", "2",
                 "--n", "2", "--k", "2"]) == 2
    assert capsys.readouterr().err == ("tpesim: error: sparsity must be N:M with 1 <= N < M <= 16,"
                                       " not '3:2'\n")


@pytest.mark.parametrize("db", [False, True])
def test_bench_adapter_chunked_stream_equals_one_call(db):
    """The bench's model path (cosim/bench/nm_sparse.py): a block of folds streamed `reps` times in
    chunked run_folds calls gives what one call on the whole streams gives, rows equal to numpy on
    the compressed blocks, and the checksum over out_c (result_bits lanes) plus the out_err lane
    that the Verilator harness computes from the same port layout."""
    from tpesim.cosim.bench.nm_sparse import NmSparseBenchAdapter
    from tpesim.cosim.bench.stimulus import checksum_rows

    cfg = C(rows=3, cols=2, sparsity="2:8", double_buffer=db)
    ad = NmSparseBenchAdapter()
    s = ad.make_stream(cfg, k=5, tiles_per_block=3, reps=4, seed=7)
    run = ad.run_model(cfg, s, keep_rows=True)
    loads = np.concatenate([s.loads] * s.reps)
    oc, st, cyc = NmSparseModel(cfg).run_folds(loads, np.concatenate([s.a] * s.reps),
                                               np.concatenate([s.last] * s.reps))
    assert run.cycles == cyc and run.rows == len(oc) == s.nbeats
    # numpy: fold f's rows times the dense block its compressed beats stand for
    K = cfg.block_shape[0]
    for f in range(3):
        beats = s.loads[f * 3:(f + 1) * 3]
        w = np.zeros((K, cfg.cols), np.int64)
        for i in range(3):
            for j in range(2):
                for t in range(2):
                    w[i * 8 + beats[i, 4 + j * 2 + t], j] = beats[i, j * 2 + t]
        assert np.array_equal(oc[f * 5:(f + 1) * 5], s.a[f * 5:(f + 1) * 5] @ w)
    full = np.zeros((len(oc), cfg.cols + 1), np.int64)
    full[:, :-1] = oc & ((1 << cfg.result_bits) - 1)
    assert run.checksum == checksum_rows(full, 64)
    ports = ad.in_beats(cfg, s)
    assert [p.shape[1] for p in ports["load"][0]] == [4, 4, 1]
    assert ports["in"][0][0].shape[1] == 24

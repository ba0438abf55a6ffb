"""An independent, per-cycle reference for GEMM timing with memory: the cycle model driven one
clock at a time in lockstep (as cosim drives it), with the memory rules of sim/memory.py's docstring
re-implemented as per-cycle state (a FIFO link that moves one cycle of the head request per clock,
halves freed by the beats the engine actually took, output space checked row by row for OS, before
a fold's stream beats for WS/IS). `lockstep_gemm` dispatches on the dataflow.

It shares no code with sim/timing.py or sim/memory.py: it is the specification the event-driven
levels are tested against. Slow (Python per cycle): small cases only.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

import numpy as np

from tpesim.engines.systolic import SystolicConfig, SystolicModel
from tpesim.numerics import wrap_array


def _nbytes(elements: int, bits: int) -> int:
    return -(-elements * bits // 8)


def _fetch_plan(blocks: dict, sizes: dict, kib: dict, n: int):
    """The SRAM policy of sim/memory.py, tile by tile: returns (fetches, fetch_of) where fetches[i]
    = [operand, bytes, last tile reading it, fetch whose space it takes or None] in issue order (per
    tile: operand a, then b) and fetch_of[op][t] is the fetch tile t reads.

    An operand's SRAM holds `slots` = floor(bytes / biggest block) blocks. Unbounded: a block is
    fetched the first time only. 2 slots (double buffering): a block is fetched again whenever the
    previous tile read another one, into the space of the operand's fetch before the previous one.
    3 or more: blocks stay resident; a new block, when the SRAM is full, evicts the resident block
    whose next reader comes last (never, first; ties: the one read longest ago), except the block
    of the previous tile, and takes its space."""
    fetches, fetch_of = [], {}
    for op in blocks:
        fetch_of[op] = []
    slots = {op: None if kib[op] is None else max(2, int(kib[op] * 1024 // max(sizes[op])))
             for op in blocks}
    recent = {op: [] for op in blocks}          # resident [block, fetch]
    mine = {op: [] for op in blocks}            # the operand's fetches, in order
    for t in range(n):
        for op in blocks:
            blk = blocks[op][t]
            hit = None
            if slots[op] == 2:
                if t > 0 and blocks[op][t - 1] == blk:
                    hit = fetch_of[op][t - 1]
            else:
                for entry in recent[op]:
                    if entry[0] == blk:
                        hit = entry[1]
                        entry[2] = t
                        break
            if hit is None:
                victim = None
                if slots[op] == 2 and len(mine[op]) >= 2:
                    victim = mine[op][-2]
                elif slots[op] is not None and slots[op] > 2 and len(recent[op]) >= slots[op]:
                    def rank(entry, op=op, t=t):
                        later = [u for u in range(t + 1, n) if blocks[op][u] == entry[0]]
                        return (later[0] if later else n, -entry[2])
                    far = max((e for e in recent[op] if e[0] != blocks[op][t - 1]), key=rank)
                    recent[op].remove(far)
                    victim = far[1]
                fetches.append([op, sizes[op][t], t, victim])
                hit = len(fetches) - 1
                mine[op].append(hit)
            fetches[hit][2] = t
            if slots[op] != 2 and all(entry[0] != blk for entry in recent[op]):
                recent[op].append([blk, hit, t])
            fetch_of[op].append(hit)
    return fetches, fetch_of


def lockstep_gemm(cfg: SystolicConfig, a: np.ndarray, b: np.ndarray, *, sram_kib_a=None,
                  sram_kib_b=None, sram_kib_c=None, dram_bw=None, dram_latency=0,
                  max_cycles=2_000_000) -> dict:
    if cfg.dataflow != "os":
        return lockstep_stationary_gemm(cfg, a, b, sram_kib_a=sram_kib_a, sram_kib_b=sram_kib_b,
                                        sram_kib_c=sram_kib_c, dram_bw=dram_bw,
                                        dram_latency=dram_latency, max_cycles=max_cycles)
    R, C = cfg.rows, cfg.cols
    m, k = a.shape
    n = b.shape[1]
    gm, gn = -(-m // R), -(-n // C)
    T = gm * gn
    tiles = [(t // gn, t % gn) for t in range(T)]

    # the fetch list, in tile order: for each tile, its A row block, then its B column block
    blocks = {"a": [mi for mi, _ in tiles], "b": [ni for _, ni in tiles]}
    sizes = {"a": [_nbytes(min(R, m - mi * R) * k, cfg.in_bits) for mi, _ in tiles],
             "b": [_nbytes(min(C, n - ni * C) * k, cfg.in_bits) for _, ni in tiles]}
    fetches, fetch_of = _fetch_plan(blocks, sizes, {"a": sram_kib_a, "b": sram_kib_b}, T)
    half = {op: None if kib is None else kib * 1024 / 2
            for op, kib in (("a", sram_kib_a), ("b", sram_kib_b), ("c", sram_kib_c))}
    c_bytes = [_nbytes(min(R, m - mi * R) * min(C, n - ni * C), cfg.acc_bits) for mi, ni in tiles]

    xfer = (lambda nb: 0) if dram_bw is None else (lambda nb: math.ceil(Fraction(nb) /
                                                                        Fraction(repr(dram_bw))))
    queue: deque = deque()       # [kind, id, cycles left]
    arrived = [None] * len(fetches)
    freed = [None] * len(fetches)
    wb_done = [None] * T
    issued = 0
    pending_wb: list[int] = []   # tiles whose last row left last cycle
    pending_free: list[int] = []
    traffic = {"dram_read_bytes_a": 0, "dram_read_bytes_b": 0, "dram_write_bytes_c": 0}
    last_done = 0

    model = SystolicModel(cfg)
    core = model.core
    at = np.zeros((k, gm * R), np.int64)
    at[:, :m] = a.T
    bp = np.zeros((k, gn * C), np.int64)
    bp[:, :n] = b
    out = np.zeros((gm * R, gn * C), np.int64)
    out_cycles = []
    bi = 0
    ri = 0
    nbeats = T * k
    x = 0
    while x < max_cycles:
        # (1) requests issued this cycle: write-backs of tiles drained last cycle, then fetches
        for u in pending_wb:
            queue.append(["w", u, xfer(c_bytes[u])])
            traffic["dram_write_bytes_c"] += c_bytes[u]
        pending_wb = []
        for t in pending_free:
            for op in "ab":
                f = fetch_of[op][t]
                if fetches[f][2] == t:
                    freed[f] = x
        pending_free = []
        while issued < len(fetches):
            op, nb, _, victim = fetches[issued]
            if victim is not None and freed[victim] is None:
                break
            queue.append(["r", issued, xfer(nb)])
            traffic[f"dram_read_bytes_{op}"] += nb
            issued += 1
        # (2) the link: finished requests complete at the start of the cycle
        while queue and queue[0][2] == 0:
            kind, i, _ = queue.popleft()
            if kind == "r":
                arrived[i] = x + dram_latency
            else:
                wb_done[i] = x
            last_done = max(last_done, x + (dram_latency if kind == "r" else 0))
        # (3) the engine's ports this cycle
        t = bi // k if bi < nbeats else None
        valid = 0
        if t is not None:
            fa, fb = fetch_of["a"][t], fetch_of["b"][t]
            valid = int(arrived[fa] is not None and arrived[fa] <= x and
                        arrived[fb] is not None and arrived[fb] <= x)
        last = int(t is not None and bi % k == k - 1)
        u = ri // R
        out_ready = 1
        if half["c"] is not None and u >= 2 and ri < T * R:
            out_ready = int(wb_done[u - 2] is not None and wb_done[u - 2] <= x)
        if t is not None:
            mi, ni = tiles[t]
            lanes_a = at[bi % k, mi * R:(mi + 1) * R].tolist()
            lanes_b = bp[bi % k, ni * C:(ni + 1) * C].tolist()
        else:
            lanes_a, lanes_b = [0] * R, [0] * C
        rdy, ov, _, oc = core.step(valid, lanes_a, lanes_b, last, out_ready)
        if valid and rdy:
            bi += 1
            if last:
                pending_free.append(t)
        if ov and out_ready:
            mi, ni = tiles[u]
            out[mi * R + ri % R, ni * C:(ni + 1) * C] = oc
            out_cycles.append(x)
            ri += 1
            if ri % R == 0:
                pending_wb.append(u)
        # (4) one cycle of transfer for the request at the head of the link
        if queue:
            queue[0][2] -= 1
        x += 1
        if bi == nbeats and ri == T * R:
            break
    else:
        raise RuntimeError(f"no end after {max_cycles} cycles")
    cycles = x
    # drain the link: the write-back(s) issued after the engine went idle
    while pending_wb or queue:
        for u in pending_wb:
            queue.append(["w", u, xfer(c_bytes[u])])
            traffic["dram_write_bytes_c"] += c_bytes[u]
        pending_wb = []
        while queue and queue[0][2] == 0:
            kind, i, _ = queue.popleft()
            last_done = max(last_done, x)
        if queue:
            queue[0][2] -= 1
        x += 1
    return {"c": out[:m, :n], "cycles": cycles, "out_cycles": np.array(out_cycles, np.int64),
            "writeback_done_cycle": max(cycles, last_done), **traffic}


def lockstep_stationary_gemm(cfg: SystolicConfig, a: np.ndarray, b: np.ndarray, *,
                             sram_kib_a=None, sram_kib_b=None, sram_kib_c=None, dram_bw=None,
                             dram_latency=0, max_cycles=2_000_000) -> dict:
    """The WS/IS array clocked one cycle at a time with the memory policy of sim.timing.WsTiming's
    docstring, re-implemented as per-cycle state:

    * folds (o, kf), o-major; WS: stationary B[kf, o] block, streamed A[:, kf] block, output block
      C[:, o]; IS: stationary A[o, kf]^T, streamed B[kf, :], output C[o, :];
    * fetches in fold order (A block, then B block; `_fetch_plan`'s policy), each issued once the
      space it takes is free; a streamed block is freed the cycle after the
      last fold reading it took its last beat, a stationary block the cycle after its last row
      was loaded;
    * a load beat is offered once its block is in SRAM; a stream beat once its block is in SRAM
      and its output block's half is free (block k-2 written back); the sink is always ready;
    * an output block is written back the cycle after its last fold's last row left.
    """
    R, C = cfg.rows, cfg.cols
    ws = cfg.dataflow == "ws"
    m, k = a.shape
    n = b.shape[1]
    gk = -(-k // R)
    odim = n if ws else m
    go = -(-odim // C)
    T = m if ws else n
    F = go * gk
    folds = [(f // gk, f % gk) for f in range(F)]
    kr = [min(R, k - kf * R) for _, kf in folds]
    oc = [min(C, odim - o * C) for o, _ in folds]
    stat, strm = ("b", "a") if ws else ("a", "b")
    # block ids per fold and operand; bytes per fetch
    block = {stat: list(range(F)), strm: [kf for _, kf in folds]}
    size = {stat: [_nbytes(kr[f] * oc[f], cfg.in_bits) for f in range(F)],
            strm: [_nbytes(T * kr[f], cfg.in_bits) for f in range(F)]}
    fetches, fetch_of = _fetch_plan({op: block[op] for op in "ab"}, {op: size[op] for op in "ab"},
                                    {"a": sram_kib_a, "b": sram_kib_b}, F)
    half = {op: None if kib is None else kib * 1024 / 2
            for op, kib in (("a", sram_kib_a), ("b", sram_kib_b), ("c", sram_kib_c))}
    out_block = [o for o, _ in folds]
    last_fold_of_block = {}
    for f, o in enumerate(out_block):
        last_fold_of_block[o] = f
    c_bytes = [_nbytes(T * min(C, odim - o * C), cfg.acc_bits) for o in range(go)]

    xfer = (lambda nb: 0) if dram_bw is None else (lambda nb: math.ceil(Fraction(nb) /
                                                                        Fraction(repr(dram_bw))))
    queue: deque = deque()
    arrived = [None] * len(fetches)
    freed = [None] * len(fetches)
    wb_done = [None] * go
    issued = 0
    pending_wb: list[int] = []
    pending_free: list[int] = []     # fetch indices freed from the next cycle
    traffic = {"dram_read_bytes_a": 0, "dram_read_bytes_b": 0, "dram_write_bytes_c": 0}
    last_done = 0

    def stationary_tile(f):
        o, kf = folds[f]
        w = np.zeros((R, C), np.int64)
        blk = (b[kf * R:(kf + 1) * R, o * C:(o + 1) * C] if ws
               else a[o * C:(o + 1) * C, kf * R:(kf + 1) * R].T)
        w[:blk.shape[0], :blk.shape[1]] = blk
        return w

    def stream_row(f, i):
        _, kf = folds[f]
        x = np.zeros(R, np.int64)
        src = a[i, kf * R:(kf + 1) * R] if ws else b[kf * R:(kf + 1) * R, i]
        x[:len(src)] = src
        return x.tolist()

    model = SystolicModel(cfg)
    core = model.core
    out = np.zeros((m, n), np.int64)
    out_cycles = []
    li = bi = ri = 0
    nloads, nbeats = F * R, F * T
    w_cur, w_fold = None, -1
    x = 0
    while x < max_cycles:
        # (1) requests issued this cycle: write-backs of blocks completed last cycle, then fetches
        for u in pending_wb:
            queue.append(["w", u, xfer(c_bytes[u])])
            traffic["dram_write_bytes_c"] += c_bytes[u]
        pending_wb = []
        for i in pending_free:
            freed[i] = x
        pending_free = []
        while issued < len(fetches):
            op, nb, _, victim = fetches[issued]
            if victim is not None and freed[victim] is None:
                break
            queue.append(["r", issued, xfer(nb)])
            traffic[f"dram_read_bytes_{op}"] += nb
            issued += 1
        # (2) the link: finished requests complete at the start of the cycle
        while queue and queue[0][2] == 0:
            kind, i, _ = queue.popleft()
            if kind == "r":
                arrived[i] = x + dram_latency
            else:
                wb_done[i] = x
            last_done = max(last_done, x + (dram_latency if kind == "r" else 0))
        # (3) the engine's ports this cycle
        g = li // R if li < nloads else None
        lvalid = 0
        ldata = [0] * C
        if g is not None:
            fa = fetch_of[stat][g]
            lvalid = int(arrived[fa] is not None and arrived[fa] <= x)
            if w_fold != g:
                w_cur, w_fold = stationary_tile(g), g
            ldata = w_cur[R - 1 - li % R].tolist()
        f = bi // T if bi < nbeats else None
        ivalid = 0
        idata = [0] * R
        last = 0
        if f is not None:
            fs = fetch_of[strm][f]
            ivalid = int(arrived[fs] is not None and arrived[fs] <= x)
            kb = out_block[f]
            if half["c"] is not None and kb >= 2:
                ivalid &= int(wb_done[kb - 2] is not None and wb_done[kb - 2] <= x)
            idata = stream_row(f, bi % T)
            last = int(bi % T == T - 1)
        lr, ir, ov, _, oc_row = core.step(lvalid, ldata, ivalid, idata, last, 1)
        if lvalid and lr:
            li += 1
            if li % R == 0:
                pending_free.append(fetch_of[stat][g])
        if ivalid and ir:
            bi += 1
            if last and fetches[fetch_of[strm][f]][2] == f:
                pending_free.append(fetch_of[strm][f])
        if ov:
            fo, i = divmod(ri, T)
            o = out_block[fo]
            if ws:
                lanes = out[i, o * C:(o + 1) * C]
                out[i, o * C:(o + 1) * C] = lanes + np.asarray(oc_row[:len(lanes)], np.int64)
            else:
                lanes = out[o * C:(o + 1) * C, i]
                out[o * C:(o + 1) * C, i] = lanes + np.asarray(oc_row[:len(lanes)], np.int64)
            out_cycles.append(x)
            ri += 1
            if ri % T == 0 and last_fold_of_block[o] == fo:
                pending_wb.append(o)
        # (4) one cycle of transfer for the request at the head of the link
        if queue:
            queue[0][2] -= 1
        x += 1
        if li == nloads and bi == nbeats and ri == nbeats:
            break
    else:
        raise RuntimeError(f"no end after {max_cycles} cycles")
    cycles = x
    while pending_wb or queue:
        for u in pending_wb:
            queue.append(["w", u, xfer(c_bytes[u])])
            traffic["dram_write_bytes_c"] += c_bytes[u]
        pending_wb = []
        while queue and queue[0][2] == 0:
            queue.popleft()
            last_done = max(last_done, x)
        if queue:
            queue[0][2] -= 1
        x += 1
    c = wrap_array(out, cfg.acc_bits, cfg.signed)
    return {"c": c, "cycles": cycles, "out_cycles": np.array(out_cycles, np.int64),
            "writeback_done_cycle": max(cycles, last_done), **traffic}

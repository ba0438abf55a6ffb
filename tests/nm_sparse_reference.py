"""A literal register-transfer model of docs/nm_sparse.md, written plainly (every register a Python
value, every cycle computed from the previous registers): the independent reference of the core.

Ports are raw values as in `NmSparseModel.step` (dict in, dict out); used by
tests/test_nm_sparse_model.py (beside the Cython core) and tests/test_nm_sparse_rtl.py.
"""

from __future__ import annotations

import numpy as np

from tpesim import nm
from tpesim.numerics import pack, unpack


class NmSparseRT:
    def __init__(self, cfg):
        self.cfg = cfg
        R, C, N = cfg.rows, cfg.cols, cfg.keep
        nb = cfg.banks
        self.val = [[[[0] * N for _ in range(C)] for _ in range(R)] for _ in range(nb)]
        self.idx = [[[[0] * N for _ in range(C)] for _ in range(R)] for _ in range(nb)]
        self.cnt = [0] * nb
        self.drain = [0] * nb
        self.dense = [0] * nb
        self.err = [0] * nb
        self.lsel = 0
        self.rsel = 0
        # pipeline: input register, product, lane-sum, column-sum registers
        self.in_a = [0] * (R * cfg.group)
        self.in_bank = 0
        self.prod = [[[0] * N for _ in range(R)] for _ in range(C)]
        self.lsum = [[0] * R for _ in range(C)]
        self.csum = [0] * C
        self.vp = [0] * cfg.latency
        self.lp = [0] * cfg.latency
        self.ep = [0] * (cfg.latency - 1)     # from the product stage on
        # load "dense": the compressors' output register (a beat on its way into bank wr_bank)
        self.wr = None                         # (bank, first, dense bit, values, indices) or None

    def step(self, ins: dict) -> dict:
        cfg = self.cfg
        R, C, N, M = cfg.rows, cfg.cols, cfg.keep, cfg.group
        nb = cfg.banks
        # combinational outputs of the current registers
        ov, ol, oe = self.vp[-1], self.lp[-1], self.ep[-1]
        out_ready = ins.get("out_ready", 0)
        adv = (not ov) or out_ready
        load_ready = self.cnt[self.lsel] < R and self.drain[self.lsel] == 0
        in_ready = adv and self.cnt[self.rsel] == R
        if self.wr is not None and self.wr[0] == self.rsel:
            in_ready = False                   # the bank's last beat is still on its way in
        outs = {"load_ready": int(load_ready), "in_ready": int(in_ready), "out_valid": ov,
                "out_last": ol, "out_err": oe,
                "out_c": 0 if oe else pack(self.csum, cfg.result_bits)}
        fire_load = bool(ins.get("load_valid", 0)) and load_ready
        fire_in = bool(ins.get("in_valid", 0)) and in_ready
        last = bool(ins.get("in_last", 0))

        # next state: everything below reads only the registers as they were
        if adv:
            b = self.in_bank
            dense = self.dense[b]
            prod = [[[0] * N for _ in range(R)] for _ in range(C)]
            for j in range(C):
                for i in range(R):
                    window = self.in_a[i * M:(i + 1) * M]
                    for s in range(N):
                        sel = s if dense else self.idx[b][i][j][s]
                        act = window[sel] if sel < M else 0   # out of range: never visible (err)
                        prod[j][i][s] = act * self.val[b][i][j][s]
            lsum = [[sum(self.prod[j][i]) for i in range(R)] for j in range(C)]
            csum = [sum(self.lsum[j]) for j in range(C)]
            ep0 = self.vp[0] and self.err[b]
            new_ep = [int(ep0)] + self.ep[:-1]
            new_vp = [int(fire_in)] + self.vp[:-1]
            new_lp = [int(fire_in and last)] + self.lp[:-1]
            if fire_in:
                new_in = unpack(ins["in_data"], R * M, cfg.in_bits, True)
                new_bank = self.rsel
            else:
                new_in, new_bank = [0] * (R * M), 0
        cnt, drain = list(self.cnt), list(self.drain)
        dense_r, err_r = list(self.dense), list(self.err)
        lsel, rsel = self.lsel, self.rsel
        for b in range(nb):
            if adv and self.drain[b] > 0:
                drain[b] = self.drain[b] - 1
        write = None                           # (bank, first, dense bit, values, indices)
        if cfg.load == "dense":
            write = self.wr
            self.wr = None
            if fire_load:
                # the column compressors: top-N by magnitude of each M-group (tpesim.nm's rule),
                # values and ascending indices; a dense beat's values are the group's first N
                raw = unpack(ins["load_val"], C * M, cfg.in_bits, True)
                bit = ins.get("load_dense", 0) & 1
                vals, idxs = [], []
                for j in range(C):
                    g = np.array(raw[j * M:(j + 1) * M], np.int64)
                    v, x = nm.compress(g, N, M)
                    vals += [int(t) for t in (g[:N] if bit else v)]
                    idxs += [int(t) for t in x]
                self.wr = (self.lsel, self.cnt[self.lsel] == 0, bit, vals, idxs)
        elif fire_load:
            cn = C * N
            write = (self.lsel, self.cnt[self.lsel] == 0, ins.get("load_dense", 0) & 1,
                     unpack(ins["load_val"], cn, cfg.in_bits, True),
                     unpack(ins["load_idx"], cn, cfg.idx_bits, False))
        if fire_load:
            b = self.lsel
            cnt[b] = self.cnt[b] + 1
            if nb == 2 and self.cnt[b] == R - 1:
                lsel = b ^ 1
        if write is not None:
            b, first, bit, vals, idxs = write
            mode = bit if first else self.dense[b]
            bad = (not first) and bit != self.dense[b]
            if not mode:
                for j in range(C):
                    g = idxs[j * N:(j + 1) * N]
                    if any(x >= M for x in g) or any(g[s] <= g[s - 1] for s in range(1, N)):
                        bad = True
            # shift register: lane R-1 takes the beat, lane i takes lane i+1
            for i in range(R - 1):
                self.val[b][i] = self.val[b][i + 1]
                self.idx[b][i] = self.idx[b][i + 1]
            self.val[b][R - 1] = [vals[j * N:(j + 1) * N] for j in range(C)]
            self.idx[b][R - 1] = [idxs[j * N:(j + 1) * N] for j in range(C)]
            dense_r[b] = mode
            err_r[b] = int(bad) if first else int(self.err[b] or bad)
        if fire_in and last:
            cnt[self.rsel] = 0
            drain[self.rsel] = cfg.drain_cycles
            if nb == 2:
                rsel = self.rsel ^ 1
        if adv:
            self.prod, self.lsum, self.csum = prod, lsum, csum
            self.vp, self.lp, self.ep = new_vp, new_lp, new_ep
            self.in_a, self.in_bank = new_in, new_bank
        self.cnt, self.drain, self.dense, self.err = cnt, drain, dense_r, err_r
        self.lsel, self.rsel = lsel, rsel
        return outs


def drive(cfg, case, rng, models, *, p_valid=0.7, p_ready=0.7, limit=None, on_cycle=None):
    """Drive a cosim `Case` (cosim/stimulus) into `models` (each with `step(ins) -> outs`) in
    lockstep, as cosim/lockstep.py does: random valid gaps (random junk on the payload while not
    valid), random ready stalls. Every model must give the same outputs every cycle (else an
    AssertionError naming the cycle and port). Returns (result rows, their out_err bits, cycles)."""
    from tpesim.numerics import value_range

    streams_in = [s for s in cfg.streams() if s.direction == "in"]
    out = next(s for s in cfg.streams() if s.direction == "out")
    pos = {s.name: 0 for s in streams_in}
    valid = {s.name: 0 for s in streams_in}
    want = case.rows
    rows, errs = [], []
    cycle = 0
    limit = limit or 50 + 20 * (want + len(case.beats.get("load", []))) * (cfg.latency + 4)
    while len(rows) < want:
        assert cycle < limit, f"no progress: {len(rows)} of {want} rows after {cycle} cycles"
        ins = {}
        for s in streams_in:
            beats = case.beats.get(s.name, [])
            if not valid[s.name] and pos[s.name] < len(beats):
                valid[s.name] = int(rng.random() < p_valid)
            if valid[s.name]:
                ins.update({s.valid: 1, **beats[pos[s.name]]})
            else:
                ins[s.valid] = 0
                for lanes in s.payload:
                    lo, hi = value_range(lanes.bits, lanes.signed)
                    ins[lanes.port] = pack(rng.integers(lo, hi + 1, size=lanes.lanes), lanes.bits)
                if s.last:
                    ins[s.last] = int(rng.random() < 0.5)
        ins[out.ready] = int(rng.random() < p_ready)
        outs = [mdl.step(dict(ins)) for mdl in models]
        for k in range(1, len(outs)):
            for p, v in outs[0].items():
                assert outs[k][p] == v, f"cycle {cycle}: port {p}: model 0 {v}, model {k} {outs[k][p]}"
        o = outs[0]
        if on_cycle is not None:
            on_cycle(cycle, ins, o)
        for s in streams_in:
            if valid[s.name] and o[s.ready]:
                pos[s.name] += 1
                valid[s.name] = 0
        if o[out.valid] and ins[out.ready]:
            rows.append(unpack(o["out_c"], cfg.cols, cfg.result_bits, True))
            errs.append(o["out_err"])
        cycle += 1
    return rows, errs, cycle

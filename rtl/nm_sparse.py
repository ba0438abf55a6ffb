"""Amaranth RTL of the N:M sparse engine (NmSparse: ModeCtl, Column, SparseLane, ColumnTree) and the
standalone NMCompressor, from the same NmSparseConfig as the model; hierarchy in docs/nm_sparse.md."""

from __future__ import annotations

from functools import reduce
from pathlib import Path

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tpesim.engines.nm_sparse import NmSparseConfig
from tpesim.rtl import _common
from tpesim.rtl._banks import bank_control, pick

__all__ = ["NmSparse", "ModeCtl", "Column", "SparseLane", "ColumnTree", "NMCompressor",
           "component", "signature", "to_verilog", "write_verilog", "compressor_to_verilog"]


def signature(cfg: NmSparseConfig) -> wiring.Signature:
    """The component signature, from the config's port list (the contract shared with the model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width)
                             for p in cfg.ports()})


def _clog2(n: int) -> int:
    return (n - 1).bit_length()


def _field(bus, idx: int, bits: int, is_signed: bool):
    raw = bus[idx * bits:(idx + 1) * bits]
    return raw.as_signed() if is_signed else raw


def _sum(values):
    return reduce(lambda x, y: x + y, values)


class ModeCtl(wiring.Component):
    """Mode control: per bank, the mode register (1 = dense) and the error register, and the
    metadata checker of the load beat.

    On a load beat into bank b (``shift[b]``): first = (bank b empty); mode = first ? load_dense :
    dense[b]; the beat is bad if (not first and load_dense != dense[b]) or (mode sparse and some
    column's indices are not strictly ascending or reach M); dense[b] <- mode; err[b] <- first ?
    bad : err[b] | bad. Rows read a bank's err into the pipeline; a row with err leaves as zeros.

    Attributes
    ----------
    shift, first : In(banks)
        Bank b takes this load beat; bank b holds no lane yet.
    load_idx : In(cols*N*idx_bits)
    load_dense : In(1)
    dense, err : Out(banks)
        The registers.
    """

    def __init__(self, cfg: NmSparseConfig):
        self.cfg = cfg
        nb = cfg.banks
        super().__init__({"shift": In(nb), "first": In(nb),
                          "load_idx": In(cfg.cols * cfg.keep * cfg.idx_bits),
                          "load_dense": In(1), "dense": Out(nb), "err": Out(nb)})

    def elaborate(self, platform):
        cfg = self.cfg
        N, M, ib = cfg.keep, cfg.group, cfg.idx_bits
        m = Module()
        idx_bad = Signal()
        terms = []
        for j in range(cfg.cols):
            idx = [_field(self.load_idx, j * N + s, ib, False) for s in range(N)]
            for s in range(N):
                if (1 << ib) > M:                     # an index field can name a lane >= M
                    terms.append(idx[s] >= M)
                if s:
                    terms.append(idx[s] <= idx[s - 1])
        m.d.comb += idx_bad.eq(Cat(*terms).any() if terms else 0)
        dense = [Signal(name=f"dense_{b}") for b in range(cfg.banks)]
        err = [Signal(name=f"err_{b}") for b in range(cfg.banks)]
        for b in range(cfg.banks):
            mode = Signal(name=f"mode_{b}")
            bad = Signal(name=f"bad_{b}")
            m.d.comb += [
                mode.eq(Mux(self.first[b], self.load_dense, dense[b])),
                bad.eq((~self.first[b] & (self.load_dense != dense[b])) | (~mode & idx_bad)),
            ]
            with m.If(self.shift[b]):
                m.d.sync += [dense[b].eq(mode), err[b].eq(Mux(self.first[b], bad, err[b] | bad))]
        m.d.comb += [self.dense.eq(Cat(*dense)), self.err.eq(Cat(*err))]
        return m


class SparseLane(wiring.Component):
    """One sparse lane of one column: the M-wide activation window, N index muxes (slot s reads
    window[index_s], or window[s] in dense mode: the muxes bypassed, N consecutive K positions), N
    multipliers into the product registers, the lane adder into the lane-sum register.

    Attributes
    ----------
    adv : In(1)
    window : In(M*in_bits)
        Lanes i*M .. i*M+M-1 of the input register.
    weight : In(N*in_bits), index : In(N*idx_bits), dense : In(1)
        This lane of the bank the row reads, and that bank's mode.
    lane_sum : Out(2*in_bits + ceil(log2 N))
    """

    def __init__(self, cfg: NmSparseConfig):
        self.cfg = cfg
        self.sum_bits = 2 * cfg.in_bits + _clog2(cfg.keep)
        super().__init__({"adv": In(1), "window": In(cfg.group * cfg.in_bits),
                          "weight": In(cfg.keep * cfg.in_bits),
                          "index": In(cfg.keep * cfg.idx_bits), "dense": In(1),
                          "lane_sum": Out(signed(self.sum_bits))})

    def elaborate(self, platform):
        cfg = self.cfg
        w, N, M, ib = cfg.in_bits, cfg.keep, cfg.group, cfg.idx_bits
        m = Module()
        win = [_field(self.window, k, w, True) for k in range(M)]
        prods = []
        for s in range(N):
            sel = Signal(range(max(M, 1 << ib)), name=f"sel_{s}")
            act = Signal(signed(w), name=f"act_{s}")
            prod = Signal(signed(2 * w), name=f"prod_{s}")
            m.d.comb += sel.eq(Mux(self.dense, s, _field(self.index, s, ib, False)))
            # the M:1 index mux; an index >= M (invalid metadata: the row leaves as err) reads 0
            with m.Switch(sel):
                for k in range(M):
                    with m.Case(k):
                        m.d.comb += act.eq(win[k])
                with m.Default():
                    m.d.comb += act.eq(0)
            with m.If(self.adv):
                m.d.sync += prod.eq(act * _field(self.weight, s, w, True))
            prods.append(prod)
        lane_sum = Signal(signed(self.sum_bits))
        with m.If(self.adv):
            m.d.sync += lane_sum.eq(_sum(prods))
        m.d.comb += self.lane_sum.eq(lane_sum)
        return m


class ColumnTree(wiring.Component):
    """A column's reduction: the sum of its `rows` lane sums into the column-sum register
    (result_bits: exact for rows*N products).

    Attributes
    ----------
    adv : In(1)
    lane_sums : In(rows * lane_bits)
    out : Out(result_bits)
    """

    def __init__(self, cfg: NmSparseConfig, lane_bits: int):
        self.cfg = cfg
        self.lane_bits = lane_bits
        super().__init__({"adv": In(1), "lane_sums": In(cfg.rows * lane_bits),
                          "out": Out(signed(cfg.result_bits))})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        total = Signal(signed(cfg.result_bits))
        with m.If(self.adv):
            m.d.sync += total.eq(_sum(_field(self.lane_sums, i, self.lane_bits, True)
                                      for i in range(cfg.rows)))
        m.d.comb += self.out.eq(total)
        return m


class Column(wiring.Component):
    """Output column j: column j of every weight bank (per lane N values and N indices, a shift
    register: a load beat enters lane rows-1, lane i takes lane i+1, so the block's first beat
    ends in lane 0), `rows` SparseLanes reading the bank the row carries, and the column tree.

    Attributes
    ----------
    adv : In(1)
    a : In(rows*M*in_bits)
        The input register's row.
    bank : In(1)
        The bank the row in the input register reads (two banks only; else 0).
    dense : In(1)
        That bank's mode.
    shift : In(banks)
    wdata : In(N*in_bits), widx : In(N*idx_bits)
        Column j's N values and indices of the load beat.
    result : Out(result_bits)
    """

    def __init__(self, cfg: NmSparseConfig, index: int):
        self.cfg = cfg
        self.index = index
        self.lanes = [SparseLane(cfg) for _ in range(cfg.rows)]
        super().__init__({"adv": In(1), "a": In(cfg.rows * cfg.group * cfg.in_bits),
                          "bank": In(1), "dense": In(1), "shift": In(cfg.banks),
                          "wdata": In(cfg.keep * cfg.in_bits),
                          "widx": In(cfg.keep * cfg.idx_bits),
                          "result": Out(signed(cfg.result_bits))})

    def elaborate(self, platform):
        cfg = self.cfg
        R, M, w = cfg.rows, cfg.group, cfg.in_bits
        vb, ixb = cfg.keep * w, cfg.keep * cfg.idx_bits
        m = Module()
        wv = [[Signal(vb, name=f"w_{b}_{i}") for i in range(R)] for b in range(cfg.banks)]
        wi = [[Signal(ixb, name=f"idx_{b}_{i}") for i in range(R)] for b in range(cfg.banks)]
        for b in range(cfg.banks):
            with m.If(self.shift[b]):
                m.d.sync += [wv[b][R - 1].eq(self.wdata), wi[b][R - 1].eq(self.widx)]
                for i in range(R - 1):
                    m.d.sync += [wv[b][i].eq(wv[b][i + 1]), wi[b][i].eq(wi[b][i + 1])]
        tree = ColumnTree(cfg, self.lanes[0].sum_bits)
        m.submodules.tree = tree
        sums = []
        for i, lane in enumerate(self.lanes):
            m.submodules[f"lane_{i}"] = lane
            m.d.comb += [
                lane.adv.eq(self.adv),
                lane.window.eq(self.a[i * M * w:(i + 1) * M * w]),
                lane.weight.eq(pick(self.bank, [wv[b][i] for b in range(cfg.banks)])),
                lane.index.eq(pick(self.bank, [wi[b][i] for b in range(cfg.banks)])),
                lane.dense.eq(self.dense),
            ]
            sums.append(lane.lane_sum)
        m.d.comb += [tree.adv.eq(self.adv), tree.lane_sums.eq(Cat(*sums)),
                     self.result.eq(tree.out)]
        return m


class NmSparse(wiring.Component):
    """The N:M sparse engine: a stationary block of rows sparse lanes x cols columns per bank, one
    A row of rows*M activations per beat, one result row per beat after `cfg.latency` cycles.

    Parameters
    ----------
    cfg : NmSparseConfig
        Ports are ``cfg.ports()``.

    Attributes
    ----------
    load_valid, load_val, load_idx, load_dense : In
        One sparse lane of the block per beat (lane 0 first): column j's N values and N indices at
        lanes j*N..j*N+N-1, the block's mode (the first beat's bit sets it).
    load_ready : Out
        The bank being loaded is not full and no longer read by rows in flight.
    in_valid, in_data, in_last : In
        One A row (rows*M lanes) per beat; ``in_last`` on a block's last row.
    in_ready : Out
    out_valid, out_c, out_err, out_last : Out
        One result row per beat; ``out_err`` (and out_c all 0) for a row whose block had invalid
        metadata.
    out_ready : In
        Low stalls the whole compute pipeline (one global enable).
    """

    def __init__(self, cfg: NmSparseConfig):
        if not isinstance(cfg, NmSparseConfig):
            raise TypeError(f"cfg must be an NmSparseConfig, not {cfg!r}")
        self.cfg = cfg
        self.mode_ctl = ModeCtl(cfg)
        self.columns = [Column(cfg, j) for j in range(cfg.cols)]
        # load "dense": one compressor per column between the load port and the bank
        self.compressors = ([NMCompressor(cfg.keep, cfg.group, cfg.in_bits) for _ in range(cfg.cols)]
                            if cfg.load == "dense" else [])
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, N, nb = cfg.rows, cfg.keep, cfg.banks
        lat = cfg.latency
        m = Module()
        vb, ixb = N * cfg.in_bits, N * cfg.idx_bits
        if cfg.load == "dense":
            # the compressors' output register is a stage of the load path: a beat taken in cycle t
            # is written into its bank at the end of t+1, and rows wait while it is on its way
            wr_shift = [Signal(name=f"wr_shift_{b}") for b in range(nb)]
            bc = bank_control(m, self, depth=R, banks=nb, drain_cycles=cfg.drain_cycles,
                              hold=wr_shift)
        else:
            bc = bank_control(m, self, depth=R, banks=nb, drain_cycles=cfg.drain_cycles)
        adv, fire_in, cnt, shift, rsel = bc.adv, bc.fire_in, bc.cnt, bc.shift, bc.rsel
        first = [~c.any() for c in cnt]
        if cfg.load == "dense":
            gb = cfg.group * cfg.in_bits
            wr_first = [Signal(name=f"wr_first_{b}") for b in range(nb)]
            wr_dense = Signal()
            m.d.sync += [wr_dense.eq(self.load_dense)]
            m.d.sync += [wr_shift[b].eq(shift[b]) for b in range(nb)]
            m.d.sync += [wr_first[b].eq(first[b]) for b in range(nb)]
            wdata, widx = [], []
            for j, comp in enumerate(self.compressors):
                m.submodules[f"compressor_{j}"] = comp
                # a dense-mode beat bypasses the compressor: its N values are the group's first N
                raw = Signal(vb, name=f"wr_raw_{j}")
                m.d.sync += raw.eq(self.load_val[j * gb:j * gb + vb])
                m.d.comb += [comp.in_valid.eq(bc.fire_load),
                             comp.in_data.eq(self.load_val[j * gb:(j + 1) * gb])]
                wdata.append(Mux(wr_dense, raw, comp.out_val))
                widx.append(comp.out_idx)
            w_shift, w_first, w_dense = wr_shift, wr_first, wr_dense
            w_idx = Cat(*widx)
        else:
            wdata = [self.load_val[j * vb:(j + 1) * vb] for j in range(cfg.cols)]
            widx = [self.load_idx[j * ixb:(j + 1) * ixb] for j in range(cfg.cols)]
            w_shift, w_first, w_dense, w_idx = shift, first, self.load_dense, self.load_idx

        mc = self.mode_ctl
        m.submodules.mode_ctl = mc
        m.d.comb += [mc.shift.eq(Cat(*w_shift)), mc.first.eq(Cat(*w_first)),
                     mc.load_idx.eq(w_idx), mc.load_dense.eq(w_dense)]

        # input register (zeros when no beat is accepted), the bank bit it reads; valid/last ride
        # in pipes of `latency` registers, err (read from the bank with the products) in a pipe
        # from the product stage on
        in_a = Signal(len(self.in_data))
        in_bank = Signal() if nb == 2 else Const(0, 1)
        vp = [Signal(name=f"valid_pipe_{d}") for d in range(lat)]
        lp = [Signal(name=f"last_pipe_{d}") for d in range(lat)]
        ep = [Signal(name=f"err_pipe_{d}") for d in range(1, lat)]
        with m.If(adv):
            m.d.sync += [in_a.eq(Mux(fire_in, self.in_data, 0)), vp[0].eq(fire_in),
                         lp[0].eq(fire_in & self.in_last)]
            if nb == 2:
                m.d.sync += in_bank.eq(fire_in & rsel)
            m.d.sync += ep[0].eq(vp[0] & pick(in_bank, [mc.err[b] for b in range(nb)]))
            for d in range(1, lat):
                m.d.sync += [vp[d].eq(vp[d - 1]), lp[d].eq(lp[d - 1])]
            for d in range(1, lat - 1):
                m.d.sync += ep[d].eq(ep[d - 1])

        dense = pick(in_bank, [mc.dense[b] for b in range(nb)])
        for j, col in enumerate(self.columns):
            m.submodules[f"col_{j}"] = col
            m.d.comb += [
                col.adv.eq(adv), col.a.eq(in_a), col.bank.eq(in_bank), col.dense.eq(dense),
                col.shift.eq(Cat(*w_shift)), col.wdata.eq(wdata[j]), col.widx.eq(widx[j]),
            ]
        err = ep[-1]
        m.d.comb += [
            self.out_c.eq(Mux(err, 0, Cat(*(col.result for col in self.columns)))),
            self.out_err.eq(err),
            self.out_valid.eq(vp[-1]),
            self.out_last.eq(lp[-1]),
        ]
        return m


class NMCompressor(wiring.Component):
    """The hardware N:M compressor: one M-group of signed `bits`-bit values in per cycle, its top-N
    by magnitude (ties to the lower index) out one cycle later as N values and N ascending indices.

    Element i is kept when fewer than N elements beat it (|x_j| > |x_i|, or equal with j < i);
    output slot s takes the kept element with exactly s kept elements before it.

    Attributes
    ----------
    in_valid : In(1)
    in_data : In(M*bits)
    out_valid : Out(1)
    out_val : Out(N*bits)
    out_idx : Out(N*idx_bits)
    """

    def __init__(self, n: int, m: int, bits: int = 8):
        if not (isinstance(n, int) and isinstance(m, int) and 1 <= n < m <= 16):
            raise ValueError(f"n:m must satisfy 1 <= n < m <= 16, not {n}:{m}")
        self.n, self.m, self.bits = n, m, bits
        self.idx_bits = max(1, _clog2(m))
        super().__init__({"in_valid": In(1), "in_data": In(m * bits), "out_valid": Out(1),
                          "out_val": Out(n * bits), "out_idx": Out(n * self.idx_bits)})

    def elaborate(self, platform):
        n, M, w, ib = self.n, self.m, self.bits, self.idx_bits
        m = Module()
        x = [_field(self.in_data, i, w, True) for i in range(M)]
        mag = [Signal(unsigned(w), name=f"mag_{i}") for i in range(M)]   # |-2^(w-1)| fits w bits
        for i in range(M):
            m.d.comb += mag[i].eq(Mux(x[i] < 0, -x[i], x[i]))
        rank_bits = _clog2(M + 1)
        keep = []
        for i in range(M):
            beats = [(mag[j] > mag[i]) if j > i else (mag[j] >= mag[i]) for j in range(M) if j != i]
            rank = Signal(rank_bits, name=f"rank_{i}")
            m.d.comb += rank.eq(_sum(b.as_unsigned() for b in beats) if beats else 0)
            k = Signal(name=f"keep_{i}")
            m.d.comb += k.eq(rank < n)
            keep.append(k)
        vals, idxs = [], []
        for s in range(n):
            v = Signal(signed(w), name=f"val_{s}")
            ix = Signal(ib, name=f"idx_{s}")
            hit = []
            for i in range(M):
                before = _sum(keep[j].as_unsigned() for j in range(i)) if i else Const(0, 1)
                # (a zero test as ~x.any(): Amaranth writes x == 0 as !x, which Verilator flags)
                hit.append(keep[i] & ((~before.any()) if s == 0 else (before == s)))
            m.d.comb += [v.eq(_sum(Mux(hit[i], x[i], 0) for i in range(M))),
                         ix.eq(_sum(Mux(hit[i], i, 0) for i in range(M)))]
            vals.append(v)
            idxs.append(ix)
        ov = Signal()
        oval = Signal(n * w)
        oidx = Signal(n * ib)
        m.d.sync += [ov.eq(self.in_valid), oval.eq(Cat(*vals)), oidx.eq(Cat(*idxs))]
        m.d.comb += [self.out_valid.eq(ov), self.out_val.eq(oval), self.out_idx.eq(oidx)]
        return m


def component(cfg: NmSparseConfig) -> wiring.Component:
    """The engine's RTL."""
    return NmSparse(cfg)


def to_verilog(cfg: NmSparseConfig, name: str | None = None) -> str:
    """Synthesizable Verilog of the engine; the top module is named `name` or `cfg.name`."""
    return _common.convert(lambda: component(cfg), cfg.name, name)


def write_verilog(cfg: NmSparseConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    return _common.write(to_verilog(cfg, name), path)


def compressor_to_verilog(n: int, m: int, bits: int = 8, name: str | None = None) -> str:
    """Synthesizable Verilog of one NMCompressor."""
    return _common.convert(lambda: NMCompressor(n, m, bits), f"nm_compressor_{n}of{m}_s{bits}",
                           name)

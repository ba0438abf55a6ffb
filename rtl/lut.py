"""Amaranth RTL of the LUT Tensor Core engine (bit-serial table lookups), built from the same
LutConfig as the cycle model; the register-level contract is docs/lut.md.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tpesim.engines.lut import LutConfig, fp_shifts, plane_bits
from tpesim.errors import ConfigError
from tpesim.rtl import _common
from tpesim.rtl.fp16 import Fp16Add, Fp16Pow2, Fp16Pow2Signed, Fp16ToFp32, Fp32Add

__all__ = ["Lut", "TablePrecompute", "IndexGen", "SignedMux", "Pow2Scale", "Accumulator",
           "BitSerialControl", "component", "signature", "to_verilog", "write_verilog"]

# Amaranth emits `x == 0` as `!x`, which Verilator flags (WIDTHTRUNC): zero tests use `~x.any()`.


def signature(cfg: LutConfig) -> wiring.Signature:
    """The component signature, derived from the config's port list (the contract with the model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width)
                             for p in cfg.ports()})


def _widths(cfg: LutConfig) -> tuple[int, int, int, int]:
    """(entry bits, largest plane shift, scaled-term bits, bias bits) of the datapath (fp16: every
    entry, scaled term and offset term a binary16 pattern)."""
    if not cfg.int_mode:
        return 16, 0, 16, 16
    shifts, _, _ = plane_bits(cfg)
    emax = max(shifts)
    return cfg.entry_bits, emax, cfg.entry_bits + emax, cfg.bias_bits


def _array(items: list) -> Array:
    """Array padded to a power-of-two length with its last item (indices past the end never occur;
    the padding keeps the emitted case statement complete, which Verilator's lint asks for)."""
    n = 1 << max(0, (len(items) - 1).bit_length())
    return Array(list(items) + [items[-1]] * (n - len(items)))


ACC2_BITS = 33   # the accumulator holds 2*C mod 2^33; out_c is its bits 32..1 (C mod 2^32)


class TablePrecompute(wiring.Component):
    """Builds and holds the tables of one activation beat: per row m, the stored entries (sym:
    S[x] = -a_0 + sum_{k>=1} (bit k-1 of x ? +a_k : -a_k); else T[i] = sum_k (bit k of i ? +a_k :
    -a_k)) and the offset term o * sum_k a_k; loaded when `load` is high. fp16: the binary16
    entries; the offset term o/2 * S is formed from the stored T[0] = -S after the register
    (signed: T[0] * 2^-1; unsigned: T[0] * 2^-1 - T[0] * 2^(B-1); none for pm1 and ternary).

    Attributes
    ----------
    load : In(1)
    a : In(tile_m * group * 8), lane m*group + k
    table : Out(tile_m * entries * entry_bits), entry x of row m at lane m*entries + x
    bias : Out(tile_m * bias_bits)
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        eb, _, _, bb = _widths(cfg)
        M, g = cfg.tile_m, cfg.group
        super().__init__({"load": In(1), "a": In(M * g * cfg.act_bits),
                          "table": Out(M * cfg.entries * eb), "bias": Out(M * bb)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        eb, _, _, bb = _widths(cfg)
        M, g, E = cfg.tile_m, cfg.group, cfg.entries
        _, o, _ = plane_bits(cfg)
        regs, biases = [], []
        if not cfg.int_mode:
            # binary16 entries: (+-a_0) + (+-a_1) + ... left to right, one adder per +; the
            # negation is a sign flip; no offset term (+-1 weights)
            for r in range(M):
                a = [self.a[(r * g + k) * 16:(r * g + k + 1) * 16] for k in range(g)]
                for x in range(E):
                    idx = (x << 1) if cfg.sym else x
                    terms = [a[k] if (idx >> k) & 1 else a[k] ^ 0x8000 for k in range(g)]
                    t = terms[0]
                    for k in range(1, g):
                        add = Fp16Add()
                        m.submodules[f"add_{r}_{x}_{k}"] = add
                        m.d.comb += [add.a.eq(t), add.b.eq(terms[k])]
                        t = add.s
                    e = Signal(16, name=f"t_{r}_{x}")
                    with m.If(self.load):
                        m.d.sync += e.eq(t)
                    regs.append(e)
                biases.append(self._fp_offset(m, regs[r * E], o, r))
            m.d.comb += [self.table.eq(Cat(*regs)), self.bias.eq(Cat(*biases))]
            return m
        for r in range(M):
            a = [self.a[(r * g + k) * 8:(r * g + k + 1) * 8].as_signed() for k in range(g)]
            # (integer entries and the offset term o * sum(a), registered with the beat)
            for x in range(E):
                idx = (x << 1) if cfg.sym else x
                e = Signal(signed(eb), name=f"t_{r}_{x}")
                terms = [a[k] if (idx >> k) & 1 else -a[k] for k in range(g)]
                s = terms[0]
                for t in terms[1:]:
                    s = s + t
                with m.If(self.load):
                    m.d.sync += e.eq(s)
                regs.append(e)
            bias = Signal(signed(bb), name=f"bias_{r}")
            total = a[0]
            for t in a[1:]:
                total = total + t
            with m.If(self.load):
                m.d.sync += bias.eq(total * o)
            biases.append(bias)
        m.d.comb += [self.table.eq(Cat(*regs)), self.bias.eq(Cat(*biases))]
        return m


    def _fp_offset(self, m: Module, t0, o: int, r: int):
        """Row r's binary16 offset term from its stored T[0] (see the class docstring); 0 when the
        format has none."""
        if o == 0:
            return Const(0, 16)
        half = Fp16Pow2Signed()
        m.submodules[f"off_half_{r}"] = half
        m.d.comb += [half.x.eq(t0), half.e.eq(-1)]
        if o < 0:
            return half.y
        big = Fp16Pow2Signed()
        sub = Fp16Add()
        m.submodules[f"off_big_{r}"] = big
        m.submodules[f"off_sub_{r}"] = sub
        m.d.comb += [big.x.eq(t0), big.e.eq(self.cfg.planes - 1),
                     sub.a.eq(half.y), sub.b.eq(big.y ^ 0x8000)]
        return sub.s


class IndexGen(wiring.Component):
    """Bit-plane slicing: column n's table index in plane b is bit b of its `group` weight codes
    (bit k from weight k), all bits inverted on the planes where the interpretation says so (the
    two's-complement MSB plane: offset binary).

    Attributes
    ----------
    w : In(group * tile_n * planes), lane k*tile_n + n
    b : In(2), the plane
    idx : Out(tile_n * group), column n's index at lane n
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        super().__init__({"w": In(cfg.group * cfg.tile_n * cfg.planes), "b": In(2),
                          "idx": Out(cfg.tile_n * cfg.group)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        P, g, N = cfg.planes, cfg.group, cfg.tile_n
        _, _, inv = plane_bits(cfg)
        lanes = []
        for n in range(N):
            codes = [self.w[(k * N + n) * P:(k * N + n + 1) * P] for k in range(g)]
            if not cfg.int_mode and cfg.w_bits == "ternary":
                # fp16 ternary: the code's bits sorted (c0 | c1, c0 & c1), so the zero weight's two
                # codes 01 and 10 read alike and the rounded result depends on the value only
                codes = [Cat(c[0] | c[1], c[0] & c[1]) for c in codes]
            # plane p's index: bit p of each code (constant slices), inverted on inverted planes
            per_plane = [Cat(*(c[p] for c in codes)) ^ Const((1 << g) - 1 if inv[p] else 0, g)
                         for p in range(P)]
            sel = Signal(g, name=f"idx_{n}")
            if P == 1:
                m.d.comb += sel.eq(per_plane[0])
            else:
                m.d.comb += sel.eq(_array(per_plane)[self.b[:(P - 1).bit_length()]])
            lanes.append(sel)
        m.d.comb += self.idx.eq(Cat(*lanes))
        return m


class SignedMux(wiring.Component):
    """One column's lookup: sym: idx[0] ? -S[(~idx) >> 1] : S[idx >> 1]; else T[idx].

    Attributes
    ----------
    table : In(entries * entry_bits)
    idx : In(group)
    entry : Out(signed(entry_bits))
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        eb = _widths(cfg)[0]
        super().__init__({"table": In(cfg.entries * eb), "idx": In(cfg.group),
                          "entry": Out(signed(eb) if cfg.int_mode else unsigned(eb))})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        eb, g, E = _widths(cfg)[0], cfg.group, cfg.entries
        if not cfg.int_mode:
            ents = Array(self.table[x * eb:(x + 1) * eb] for x in range(E))
            if not cfg.sym:
                m.d.comb += self.entry.eq(ents[self.idx])
            else:
                neg = self.idx[0]
                sel = ents[0] if g == 1 else ents[Mux(neg, ~self.idx[1:], self.idx[1:])]
                e = Signal(16, name="stored")
                m.d.comb += [e.eq(sel), self.entry.eq(e ^ Cat(Const(0, 15), neg))]
            return m
        ents = Array(self.table[x * eb:(x + 1) * eb].as_signed() for x in range(E))
        if not cfg.sym:
            m.d.comb += self.entry.eq(ents[self.idx])
        elif g == 1:
            m.d.comb += self.entry.eq(Mux(self.idx[0], -ents[0], ents[0]))
        else:
            neg = self.idx[0]
            sel = Mux(neg, ~self.idx[1:], self.idx[1:])
            e = Signal(signed(eb), name="stored")
            m.d.comb += [e.eq(ents[sel]), self.entry.eq(Mux(neg, -e, e))]
        return m


class Pow2Scale(wiring.Component):
    """x * 2^e_b for plane b (a shift: integers are exact); fp16: x * 2^(e_b - 1) by a binary16
    scaler (a halving on the planes with e_b = 0, RNE below the normals).

    Attributes
    ----------
    x : In(signed(entry_bits)), b : In(2), y : Out(signed(entry_bits + max shift))
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        eb, _, tb, _ = _widths(cfg)
        sh = signed if cfg.int_mode else unsigned
        super().__init__({"x": In(sh(eb)), "b": In(2), "y": Out(sh(tb))})

    def elaborate(self, platform):
        m = Module()
        if not self.cfg.int_mode:
            # binary16 x * 2^(e_b - 1): exact (subnormals, zero, inf, NaN handled), overflow to
            # inf; a halving rounds to nearest even below the normals
            sh = fp_shifts(self.cfg)
            P = len(sh)
            if sh == tuple(range(P)):                # pm1: the step is the plane number
                m.submodules.pow2 = p = Fp16Pow2()
                m.d.comb += [p.x.eq(self.x), p.e.eq(self.b), self.y.eq(p.y)]
                return m
            m.submodules.pow2 = p = Fp16Pow2Signed()
            steps = [Const(e, signed(3)) for e in sh]
            step = steps[0] if P == 1 else _array(steps)[self.b[:(P - 1).bit_length()]]
            m.d.comb += [p.x.eq(self.x), self.y.eq(p.y), p.e.eq(step)]
            return m
        shifts, _, _ = plane_bits(self.cfg)
        m.d.comb += self.y.eq(_array([self.x << e for e in shifts])[self.b[:max(1, (len(shifts) - 1).bit_length())]]
                              if len(shifts) > 1 else self.x << shifts[0])
        return m


class Accumulator(wiring.Component):
    """One output's accumulator: acc <- (zero ? 0 : acc) + (with_bias ? bias : 0) + term, mod 2^33,
    on `en`; `total` is the value being written (the shadow bank takes its bits 32..1).

    Attributes
    ----------
    en, zero, with_bias : In(1); term : In(signed(term bits)); bias : In(signed(bias bits));
    total : Out(signed(33)); acc : Out(signed(33)), the register
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        _, _, tb, bb = _widths(cfg)
        if cfg.int_mode:
            super().__init__({"en": In(1), "zero": In(1), "with_bias": In(1),
                              "term": In(signed(tb)), "bias": In(signed(bb)),
                              "total": Out(signed(ACC2_BITS)), "acc": Out(signed(ACC2_BITS))})
        else:
            ab = cfg.out_bits
            super().__init__({"en": In(1), "zero": In(1), "with_bias": In(1), "term": In(16),
                              "bias": In(16), "total": Out(ab), "acc": Out(ab)})

    def elaborate(self, platform):
        m = Module()
        if not self.cfg.int_mode:
            # acc <- ((zero ? +0 : acc) + (with_bias ? offset : nothing)) + term: binary16, or
            # binary32 after exact promotions; the offset's adder exists only for the formats
            # with one (signed, unsigned)
            base = Mux(self.zero, 0, self.acc)
            wide = self.cfg.acc != "fp16"
            adder = Fp32Add if wide else Fp16Add

            def promoted(x, name):
                if not wide:
                    return x
                m.submodules[name] = pr = Fp16ToFp32()
                m.d.comb += pr.x.eq(x)
                return pr.y

            if plane_bits(self.cfg)[1] != 0:
                m.submodules.add_off = addo = adder()
                m.d.comb += [addo.a.eq(base), addo.b.eq(promoted(self.bias, "promote_off"))]
                base = Mux(self.with_bias, addo.s, base)
            m.submodules.add = add = adder()
            m.d.comb += [add.a.eq(base), add.b.eq(promoted(self.term, "promote"))]
            m.d.comb += self.total.eq(add.s)
            with m.If(self.en):
                m.d.sync += self.acc.eq(self.total)
            return m
        base = Mux(self.zero, 0, self.acc)
        add = Mux(self.with_bias, self.bias, 0)
        m.d.comb += self.total.eq(base + add + self.term)
        with m.If(self.en):
            m.d.sync += self.acc.eq(self.total)
        return m


class BitSerialControl(wiring.Component):
    """The bit-serial control (docs/lut.md "Control"): stage-1 register state (full, plane b,
    tlast, tfirst, newtile), stage-2 valid/final (pipe_stages = 2), shadow bank (sfull, rptr).

    Attributes
    ----------
    in_valid, in_last, out_ready : In(1)
    in_ready, load, exec_, b, first, last_plane, final, out_valid, out_last, rptr, v2 : Out
    """

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        rb = max(1, (cfg.tile_m - 1).bit_length())
        super().__init__({"in_valid": In(1), "in_last": In(1), "out_ready": In(1),
                          "in_ready": Out(1), "load": Out(1), "exec_": Out(1), "b": Out(2),
                          "first": Out(1), "last_plane": Out(1), "final": Out(1),
                          "out_valid": Out(1), "out_last": Out(1), "rptr": Out(rb),
                          "v2": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        P, M, S = cfg.planes, cfg.tile_m, cfg.pipe_stages
        full = Signal(name="full")
        tlast = Signal(name="tlast")
        tfirst = Signal(name="tfirst")
        newtile = Signal(init=1, name="newtile")
        fin2 = Signal(name="fin2")
        sfull = Signal(name="sfull")
        b = self.b
        v2 = self.v2
        rptr = self.rptr
        lastp = Signal(name="lastp")
        m.d.comb += lastp.eq(~b.any() if P == 1 else b == P - 1)
        busy = Signal(name="busy")
        m.d.comb += busy.eq(sfull | (full & tlast) | (v2 & fin2))
        m.d.comb += [
            self.exec_.eq(full),
            self.first.eq(tfirst),
            self.last_plane.eq(lastp),
            self.in_ready.eq((~full | lastp) & ~(self.in_last & busy)),
            self.out_valid.eq(sfull),
            self.out_last.eq(sfull & (rptr == M - 1)),
        ]
        fire_in = self.in_valid & self.in_ready
        m.d.comb += self.load.eq(fire_in)
        if S == 1:
            m.d.comb += self.final.eq(full & lastp & tlast)
        else:
            m.d.comb += self.final.eq(v2 & fin2)
            m.d.sync += [v2.eq(full), fin2.eq(full & lastp & tlast)]
        # shadow bank: drained one row per accepted beat, refilled by a tile's final write (it is
        # empty then: a tile's last beat waits for `busy` to clear)
        with m.If(sfull & self.out_ready):
            with m.If(rptr == M - 1):
                m.d.sync += [rptr.eq(0), sfull.eq(0)]
            with m.Else():
                m.d.sync += rptr.eq(rptr + 1)
        with m.If(self.final):
            m.d.sync += [sfull.eq(1), rptr.eq(0)]
        with m.If(full):
            with m.If(lastp):
                m.d.sync += full.eq(0)
            with m.Else():
                m.d.sync += b.eq(b + 1)
        with m.If(fire_in):
            m.d.sync += [full.eq(1), b.eq(0), tlast.eq(self.in_last), tfirst.eq(newtile),
                         newtile.eq(self.in_last)]
        return m


class Lut(wiring.Component):
    """The LUT engine (docs/lut.md): table precompute -> index generation -> signed 8:1 mux ->
    pow2 scale -> [stage-2 register] -> accumulators -> shadow bank -> one C row per beat; integer
    or binary16 datapath (tpesim.rtl.fp16's adders and scaler) from the same config."""

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise ConfigError(f"cfg must be a LutConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        M, N, g, P, S = cfg.tile_m, cfg.tile_n, cfg.group, cfg.planes, cfg.pipe_stages
        eb, _, tb, bb = _widths(cfg)
        E = cfg.entries

        m.submodules.control = ctl = BitSerialControl(cfg)
        m.d.comb += [ctl.in_valid.eq(self.in_valid), ctl.in_last.eq(self.in_last),
                     ctl.out_ready.eq(self.out_ready), self.in_ready.eq(ctl.in_ready),
                     self.out_valid.eq(ctl.out_valid), self.out_last.eq(ctl.out_last)]

        m.submodules.precompute = pre = TablePrecompute(cfg)
        m.d.comb += [pre.load.eq(ctl.load), pre.a.eq(self.in_a)]

        wreg = Signal(g * N * P, name="wcodes")
        with m.If(ctl.load):
            m.d.sync += wreg.eq(self.in_w)
        m.submodules.indexgen = ig = IndexGen(cfg)
        m.d.comb += [ig.w.eq(wreg), ig.b.eq(ctl.b)]

        # stage 1: lookup and scale, per (row, column)
        terms = [[None] * N for _ in range(M)]
        for r in range(M):
            for n in range(N):
                mux = SignedMux(cfg)
                sc = Pow2Scale(cfg)
                m.submodules[f"mux_{r}_{n}"] = mux
                m.submodules[f"scale_{r}_{n}"] = sc
                m.d.comb += [mux.table.eq(pre.table[r * E * eb:(r + 1) * E * eb]),
                             mux.idx.eq(ig.idx[n * g:(n + 1) * g]),
                             sc.x.eq(mux.entry), sc.b.eq(ctl.b)]
                terms[r][n] = sc.y
        biases = [pre.bias[r * bb:(r + 1) * bb].as_signed() if cfg.int_mode else
                  pre.bias[r * bb:(r + 1) * bb] for r in range(M)]
        plane0 = Signal(name="plane0")
        m.d.comb += plane0.eq(~ctl.b.any())
        en, zero, with_bias = ctl.exec_, ctl.first & plane0, plane0
        if S == 2:
            # stage-2 register between the lookup/scale and the accumulators
            zero2 = Signal(name="zero2")
            wb2 = Signal(name="with_bias2")
            m.d.sync += [zero2.eq(zero), wb2.eq(with_bias)]
            sh = signed if cfg.int_mode else unsigned
            t2 = [[Signal(sh(tb), name=f"term2_{r}_{n}") for n in range(N)] for r in range(M)]
            b2 = [Signal(sh(bb), name=f"bias2_{r}") for r in range(M)]
            for r in range(M):
                m.d.sync += b2[r].eq(biases[r])
                for n in range(N):
                    m.d.sync += t2[r][n].eq(terms[r][n])
            terms, biases = t2, b2
            en, zero, with_bias = ctl.v2, zero2, wb2

        # accumulators and the shadow bank (C = total >> 1 on a tile's final write)
        ob = cfg.out_bits
        shadow = [[Signal(signed(32) if cfg.int_mode else unsigned(ob), name=f"shadow_{r}_{n}")
                   for n in range(N)] for r in range(M)]
        for r in range(M):
            for n in range(N):
                acc = Accumulator(cfg)
                m.submodules[f"acc_{r}_{n}"] = acc
                m.d.comb += [acc.en.eq(en), acc.zero.eq(zero), acc.with_bias.eq(with_bias),
                             acc.term.eq(terms[r][n]), acc.bias.eq(biases[r])]
                with m.If(ctl.final):
                    m.d.sync += shadow[r][n].eq(acc.total[1:ACC2_BITS] if cfg.int_mode
                                                else acc.total)
        rows = _array([Cat(*shadow[r]) for r in range(M)])
        m.d.comb += self.out_c.eq(Mux(ctl.out_valid, rows[ctl.rptr] if M > 1 else rows[0], 0))
        return m


def component(cfg: LutConfig) -> wiring.Component:
    """The engine's RTL."""
    return Lut(cfg)


def to_verilog(cfg: LutConfig, name: str | None = None) -> str:
    """Synthesizable Verilog of the engine; the top module is named `name` or `cfg.name`."""
    return _common.convert(lambda: component(cfg), cfg.name, name)


def write_verilog(cfg: LutConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    return _common.write(to_verilog(cfg, name), path)

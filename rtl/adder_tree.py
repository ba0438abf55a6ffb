"""Amaranth RTL of the multiplier-adder-tree engine (HPCA'25 OPT2), built from the same
AdderTreeConfig as the cycle model.

Notes and derivations: docs/internals.md, section `rtl/adder_tree.py`.

Written for simulator speed as well as synthesis (docs/adder_tree.md, "Verilator speed"): every
enabled register is `reg <= Mux(en, next, reg)` (`_hold`), never `with m.If(en)`, and the EN-T
datapath has no data-dependent selects (the partial-product select and the encoder's sign handling
are and/or/xor/add). Same registers, same values, every cycle.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tpesim.rtl import _common
from tpesim.rtl._banks import bank_control, pick
from tpesim.engines.adder_tree import AdderTreeConfig

__all__ = ["AdderTree", "Column", "ReductionTree", "VectorEncoder", "EntEncoder", "component",
           "signature", "to_verilog", "write_verilog"]

ENT_DIGITS = 4     # radix-4 digits of an int8 operand (bit weights 0..3)
DIGIT_BITS = 3     # one EN-T digit in -2..2, two's complement
# Amaranth emits `x == 0` as `!x`, which Verilator flags (WIDTHTRUNC): zero tests use `~x.any()`.


def signature(cfg: AdderTreeConfig) -> wiring.Signature:
    """The component signature, derived from the config's port list (the contract shared with the
    model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width)
                             for p in cfg.ports()})


def _clog2(n: int) -> int:
    """ceil(log2(n)) for n >= 1: the bit growth of a sum of n terms."""
    return (n - 1).bit_length()


def _shape(bits: int, is_signed: bool) -> Shape:
    return signed(bits) if is_signed else unsigned(bits)


def _lane(cfg: AdderTreeConfig, bus, idx: int):
    """Lane `idx` of a packed operand bus (lane 0 in the low bits, as sim.numerics.pack)."""
    raw = bus[idx * cfg.in_bits:(idx + 1) * cfg.in_bits]
    return raw.as_signed() if cfg.signed else raw


def _row_bits(cfg: AdderTreeConfig) -> int:
    """Width of the A row that moves through the column registers: L lanes, or L x 4 EN-T digits."""
    if cfg.encoding == "ent":
        return cfg.lanes * ENT_DIGITS * DIGIT_BITS
    return cfg.lanes * cfg.in_bits


def _hold(m: Module, en, reg, value) -> None:
    """reg <= value in cycles with `en`, else reg keeps its value.

    Written as one mux expression on purpose. `with m.If(en): m.d.sync += reg.eq(value)` is the
    same hardware, but the Verilog is a procedural block `always @* begin $d = reg; if (en) $d =
    value; if (rst) $d = 0; end`, which Verilator keeps as a combinational process; `en` (adv)
    depends on the input out_ready and every register on the input rst, so all of that logic, the
    whole datapath, sits in Verilator's input-combinational ('ico') region and runs on every eval()
    (twice per clock cycle in a testbench), besides once after the clock edge. The mux becomes
    `assign $x = en ? value : reg;` plus a process that only applies rst, which Verilator folds
    into the clocked assignment: the datapath runs once per clock edge.
    """
    m.d.sync += reg.eq(Mux(en, value, reg))


def _ent_select(d, one, two):
    """The EN-T partial-product select d * B for a 3-bit two's-complement digit d (-2..2), with
    `one` = B and `two` = 2B as equally wide bit patterns: and/or/xor/add only (no multiplier, no
    data-dependent select). d0 picks B, a non-zero digit without d0 picks 2B, d2 negates (xor + 1);
    equal to `Mux(d != 0, Mux(d2, -mag, mag), 0)`, `mag = Mux(d0, B, 2B)`, for all 8 codes."""
    n = len(one)
    # masks from the digit bits themselves (replicating an expression would copy it per bit)
    r0, r1, r2 = (d[k].replicate(n) for k in range(DIGIT_BITS))
    return (((one & r0) | (two & ~r0 & (r1 | r2))) ^ r2) + d[2]


class EntEncoder(wiring.Component):
    """EN-T recoding of one signed int8 into four radix-4 digits in -2..2 (combinational).

    v = s * m (sign-magnitude, m in 0..128); m's bit pairs p_i with carry c_0 = 0:
    x = p_i + c_i, c_{i+1} = (x >= 3), e_i = x - 4 c_{i+1}, d_i = s * e_i (sim.numerics.ent_digits).

    Attributes
    ----------
    a : In(signed(8))
    digits : Out(12)
        Digit i (3-bit two's complement) in bits [3i, 3i+3).
    """

    def __init__(self):
        super().__init__({"a": In(signed(8)), "digits": Out(ENT_DIGITS * DIGIT_BITS)})

    def elaborate(self, platform):
        m = Module()
        sign = Signal()
        mag = Signal(8)   # 0..128
        # negation by xor + add (two's complement), not Mux(sign, -x, x): no data-dependent select
        m.d.comb += [sign.eq(self.a[7]), mag.eq((self.a.as_unsigned() ^ sign.replicate(8)) + sign)]
        carry = Const(0, 1)
        digits = []
        for i in range(ENT_DIGITS):
            x = Signal(3, name=f"x_{i}")
            c_next = Signal(name=f"c_{i + 1}")
            e = Signal(signed(DIGIT_BITS), name=f"e_{i}")
            d = Signal(signed(DIGIT_BITS), name=f"d_{i}")
            m.d.comb += [
                x.eq(mag[2 * i:2 * i + 2] + carry),
                c_next.eq(x >= 3),
                e.eq(x - (c_next << 2)),
                d.eq((e.as_unsigned() ^ sign.replicate(DIGIT_BITS)) + sign),
            ]
            digits.append(d)
            carry = c_next
        m.d.comb += self.digits.eq(Cat(*digits))
        return m


class VectorEncoder(wiring.Component):
    """The engine's shared EN-T encoder: `lanes` EntEncoders, the digit register and the vector
    register (the encoder's output register), both under `adv`.

    Attributes
    ----------
    adv : In(1)
    a : In(lanes * 8)
        The input register's A row.
    digits : Out(lanes * 12)
        The vector register: lane i's digit b in bits [12i + 3b, 12i + 3b + 3).
    """

    def __init__(self, cfg: AdderTreeConfig):
        self.cfg = cfg
        super().__init__({"adv": In(1), "a": In(cfg.lanes * cfg.in_bits),
                          "digits": Out(_row_bits(cfg))})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        digit_reg = Signal(_row_bits(cfg))
        vector_reg = Signal(_row_bits(cfg))
        encs = []
        for i in range(cfg.lanes):
            enc = EntEncoder()
            m.submodules[f"lane_{i}"] = enc
            m.d.comb += enc.a.eq(_lane(cfg, self.a, i))
            encs.append(enc.digits)
        _hold(m, self.adv, digit_reg, Cat(*encs))
        _hold(m, self.adv, vector_reg, digit_reg)
        m.d.comb += self.digits.eq(vector_reg)
        return m


class ReductionTree(wiring.Component):
    """Radix-4 adder tree over the config's `lanes` leaves, a register after every
    `levels_per_stage` levels and after the last one (none for a single leaf).

    Levels group their nodes by four (the last group may be smaller: any lane count). Every node is
    sized exactly for the leaves it sums: leaf_bits + ceil(log2(leaves)); the root is
    leaf_bits + ceil(log2(lanes)) bits.

    Attributes
    ----------
    adv : In(1)
    leaves : In(lanes * leaf_bits)
        Leaf i in bits [i*leaf_bits, (i+1)*leaf_bits).
    out : Out(leaf_bits + ceil(log2(lanes)))
    """

    def __init__(self, cfg: AdderTreeConfig, leaf_bits: int, is_signed: bool):
        self.cfg = cfg
        self.leaf_bits = leaf_bits
        self.is_signed = is_signed
        self.out_bits = leaf_bits + _clog2(cfg.lanes)
        super().__init__({"adv": In(1), "leaves": In(cfg.lanes * leaf_bits),
                          "out": Out(_shape(self.out_bits, is_signed))})

    def elaborate(self, platform):
        cfg = self.cfg
        lb, sg = self.leaf_bits, self.is_signed
        m = Module()
        nodes = []   # (value, leaves covered)
        for i in range(cfg.lanes):
            raw = self.leaves[i * lb:(i + 1) * lb]
            nodes.append((raw.as_signed() if sg else raw, 1))
        level = regs = 0
        while len(nodes) > 1:
            level += 1
            last = len(nodes) <= 4
            registered = last or level % cfg.levels_per_stage == 0
            nxt = []
            for g in range(0, len(nodes), 4):
                group = nodes[g:g + 4]
                cover = sum(c for _, c in group)
                node = Signal(_shape(lb + _clog2(cover), sg), name=f"lvl{level}_{g // 4}")
                total = reduce(lambda x, y: x + y, (v for v, _ in group))
                if registered:
                    _hold(m, self.adv, node, total)
                else:
                    m.d.comb += node.eq(total)
                nxt.append((node, cover))
            regs += registered
            nodes = nxt
        assert level == cfg.tree_levels and regs == cfg.tree_stages, (level, regs)
        m.d.comb += self.out.eq(nodes[0][0])
        return m


class Column(wiring.Component):
    """One output column j: column register, column j of every weight bank, the product ("plain")
    or partial-product-select ("ent") register, the reduction tree(s) and ("ent") the shift-add
    register.

    Attributes
    ----------
    adv : In(1)
    a_in : In(row bits)
        The (encoded) A row of the previous stage: the front for column 0, column j-1's register.
    a_out : Out(row bits)
        This column's column register (feeds column j+1).
    bank_in, bank_out : In(1), Out(1)
        The bank bit riding with the row (two banks only).
    shift : In(banks)
        Bit b shifts this column of bank b: row L-1 <- wdata, row i <- row i+1 (not gated by adv).
    wdata : In(in_bits)
        Lane j of load_data.
    result : Out(result_bits)
        The column result register (the last tree register, the product register for one lane, or
        the shift-add register for "ent"): row m's result column_latency + j cycles after its beat.
    """

    def __init__(self, cfg: AdderTreeConfig, index: int):
        self.cfg = cfg
        self.index = index
        sg = cfg.signed
        members = {
            "adv": In(1),
            "a_in": In(_row_bits(cfg)),
            "a_out": Out(_row_bits(cfg)),
            "shift": In(cfg.banks),
            "wdata": In(_shape(cfg.in_bits, sg)),
            "result": Out(_shape(cfg.result_bits, sg)),
        }
        if cfg.banks == 2:
            members.update(bank_in=In(1), bank_out=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        L, w, sg = cfg.lanes, cfg.in_bits, cfg.signed
        lane_shape = _shape(w, sg)
        m = Module()

        # column register: the (encoded) row, one column per cycle
        col_a = Signal(_row_bits(cfg))
        _hold(m, self.adv, col_a, self.a_in)
        m.d.comb += self.a_out.eq(col_a)
        if cfg.banks == 2:
            col_bank = Signal()
            _hold(m, self.adv, col_bank, self.bank_in)
            m.d.comb += self.bank_out.eq(col_bank)
        else:
            col_bank = Const(0, 1)

        # this column of every weight bank: a shift register, the first row loaded ends in row 0
        wreg = [[Signal(lane_shape, name=f"w_{b}_{i}") for i in range(L)] for b in range(cfg.banks)]
        for b in range(cfg.banks):
            _hold(m, self.shift[b], wreg[b][L - 1], self.wdata)
            for i in range(L - 1):
                _hold(m, self.shift[b], wreg[b][i], wreg[b][i + 1])
        weight = [pick(col_bank, [wreg[b][i] for b in range(cfg.banks)]) for i in range(L)]

        if cfg.encoding == "plain":
            prod = [Signal(_shape(2 * w, sg), name=f"prod_{i}") for i in range(L)]
            for i in range(L):
                _hold(m, self.adv, prod[i], _lane(cfg, col_a, i) * weight[i])
            tree = ReductionTree(cfg, 2 * w, sg)
            m.submodules.tree = tree
            m.d.comb += [tree.adv.eq(self.adv), tree.leaves.eq(Cat(*prod)),
                         self.result.eq(tree.out)]
            return m

        # "ent": per bit weight b, L partial products d_b(A_i) * W[i][j] in {-2B, -B, 0, B, 2B}:
        # the select of the published design (no multiplier) as and/or/xor/add (`_ent_select`);
        # nested Mux(...) selects on the random digits compiled to data-dependent (unpredictable)
        # branches in Verilator's C++.
        pp_bits = w + 2
        pp = [[Signal(signed(pp_bits), name=f"pp_{b}_{i}") for i in range(L)]
              for b in range(ENT_DIGITS)]
        for i in range(L):
            wx = Signal(signed(pp_bits), name=f"wx_{i}")   # B sign-extended to the partial product
            m.d.comb += wx.eq(weight[i])
            one, two = wx.as_unsigned(), (wx << 1).as_unsigned()[:pp_bits]
            for b in range(ENT_DIGITS):
                lo = (i * ENT_DIGITS + b) * DIGIT_BITS
                _hold(m, self.adv, pp[b][i], _ent_select(col_a[lo:lo + DIGIT_BITS], one, two))
        trees = []
        for b in range(ENT_DIGITS):
            tree = ReductionTree(cfg, pp_bits, True)
            m.submodules[f"tree_b{b}"] = tree
            m.d.comb += [tree.adv.eq(self.adv), tree.leaves.eq(Cat(*pp[b]))]
            trees.append(tree.out)
        shift_add = Signal(_shape(cfg.result_bits, sg))
        _hold(m, self.adv, shift_add, reduce(lambda x, y: x + y,
                                             (t << (2 * b) for b, t in enumerate(trees))))
        m.d.comb += self.result.eq(shift_add)
        return m


class AdderTree(wiring.Component):
    """Multiplier-adder-tree engine: a stationary lanes x cols weight block, one A row per beat, one
    pipelined reduction tree (four for "ent") per output column.

    Parameters
    ----------
    cfg : AdderTreeConfig
        Geometry, encoding, widths and pipelining. Ports are ``cfg.ports()``.

    Attributes
    ----------
    load_valid, load_data : In
        One row of the weight block (cols lanes) per beat, row 0 first.
    load_ready : Out
        The bank being loaded is not full and no longer read by rows in flight.
    in_valid, in_data, in_last : In
        One A row (lanes lanes) per beat; ``in_last`` on a block's last row.
    in_ready : Out
    out_valid, out_c, out_last : Out
        One result row per beat, ``cfg.latency`` cycles after its row beat when never stalled.
    out_ready : In
        Low stalls the whole compute pipeline (a single global enable).
    encoder : VectorEncoder or None
        The shared EN-T encoder ("ent").
    columns : list of Column
        Column j computes out_c lane j (probe ``columns[j].result`` for the column result register).
    """

    def __init__(self, cfg: AdderTreeConfig):
        if not isinstance(cfg, AdderTreeConfig):
            raise TypeError(f"cfg must be an AdderTreeConfig, not {cfg!r}")
        self.cfg = cfg
        self.encoder = VectorEncoder(cfg) if cfg.encoding == "ent" else None
        self.columns = [Column(cfg, j) for j in range(cfg.cols)]
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        L, N, F = cfg.lanes, cfg.cols, cfg.front_stages
        nb = cfg.banks
        m = Module()
        bc = bank_control(m, self, depth=L, banks=nb, drain_cycles=cfg.drain_cycles)
        adv, fire_in, shift, rsel = bc.adv, bc.fire_in, bc.shift, bc.rsel

        # input register (zeros when no beat is accepted); valid/last ride along in a pipe of
        # `latency` registers, the bank bit through the front stages and then the column registers
        in_a = Signal(L * cfg.in_bits)
        vp = [Signal(name=f"valid_pipe_{d}") for d in range(cfg.latency)]
        lp = [Signal(name=f"last_pipe_{d}") for d in range(cfg.latency)]
        bank = [Signal(name=f"bank_pipe_{d}") for d in range(F)] if nb == 2 else None
        _hold(m, adv, in_a, Mux(fire_in, self.in_data, 0))
        _hold(m, adv, vp[0], fire_in)
        _hold(m, adv, lp[0], fire_in & self.in_last)
        for d in range(1, cfg.latency):
            _hold(m, adv, vp[d], vp[d - 1])
            _hold(m, adv, lp[d], lp[d - 1])
        if nb == 2:
            _hold(m, adv, bank[0], fire_in & rsel)
            for d in range(1, F):
                _hold(m, adv, bank[d], bank[d - 1])

        if self.encoder is not None:
            m.submodules.encoder = enc = self.encoder
            m.d.comb += [enc.adv.eq(adv), enc.a.eq(in_a)]
            front = enc.digits
        else:
            front = in_a

        # columns: column j's register takes column j-1's
        for j, col in enumerate(self.columns):
            m.submodules[f"col_{j}"] = col
            prev = self.columns[j - 1] if j else None
            m.d.comb += [
                col.adv.eq(adv),
                col.a_in.eq(prev.a_out if prev else front),
                col.shift.eq(Cat(*shift)),
                col.wdata.eq(_lane(cfg, self.load_data, j)),
            ]
            if nb == 2:
                m.d.comb += col.bank_in.eq(prev.bank_out if prev else bank[F - 1])

        # de-skew: N-1-j registers behind column j, so a row's columns leave together
        res_shape = _shape(cfg.result_bits, cfg.signed)
        dsk = [[Signal(res_shape, name=f"deskew_{j}_{d}") for d in range(N - 1 - j)]
               for j in range(N)]
        for j in range(N - 1):
            _hold(m, adv, dsk[j][0], self.columns[j].result)
            for d in range(1, N - 1 - j):
                _hold(m, adv, dsk[j][d], dsk[j][d - 1])
        out_lanes = [dsk[j][-1] if j < N - 1 else self.columns[j].result for j in range(N)]
        m.d.comb += [
            self.out_c.eq(Cat(*out_lanes)),
            self.out_valid.eq(vp[-1]),
            self.out_last.eq(lp[-1]),
        ]
        return m


def component(cfg: AdderTreeConfig) -> wiring.Component:
    """The engine's RTL."""
    return AdderTree(cfg)


def to_verilog(cfg: AdderTreeConfig, name: str | None = None) -> str:
    """Synthesizable Verilog of the engine; the top module is named `name` or `cfg.name`."""
    return _common.convert(lambda: component(cfg), cfg.name, name)


def write_verilog(cfg: AdderTreeConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    return _common.write(to_verilog(cfg, name), path)

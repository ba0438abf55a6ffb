"""Amaranth RTL of the systolic engine, built from the same SystolicConfig as the cycle model.

Notes and derivations: docs/internals.md, section `rtl/systolic.py`.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tpesim.rtl import _common
from tpesim.engines.systolic import SystolicConfig

__all__ = ["SystolicArray", "PreloadArray", "OsPE", "PreloadPE", "Skew", "Deskew",
           "component", "signature", "to_verilog", "write_verilog"]


def signature(cfg: SystolicConfig) -> wiring.Signature:
    """The component signature, derived from the config's port list (the contract shared with the
    model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width)
                             for p in cfg.ports()})


def _shapes(cfg: SystolicConfig):
    """(lane shape, accumulator shape) of the config's operands and results."""
    if cfg.signed:
        return signed(cfg.in_bits), signed(cfg.acc_bits)
    return unsigned(cfg.in_bits), unsigned(cfg.acc_bits)


def _field(bus, shape: Shape, idx: int):
    """Lane `idx` of a packed bus of `shape` lanes (lane 0 in the low bits, as
    sim.numerics.pack)."""
    w = shape.width
    raw = bus[idx * w:(idx + 1) * w]
    return raw.as_signed() if shape.signed else raw


def _lane(cfg: SystolicConfig, bus, idx: int):
    """Lane `idx` of a packed operand bus."""
    return _field(bus, _shapes(cfg)[0], idx)


def _net(m: Module, name: str, value) -> Signal:
    """A named wire carrying `value` between submodules. Declared before the consumers' ports are
    assigned from it, it names the net in the parent's Verilog (not a consumer's port name)."""
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


class Skew(wiring.Component):
    """Input skew lines: lane i passes i+1 registers, so lane i of a beat enters the array i cycles
    after lane 0. A cycle without a beat (``valid`` low) shifts in zeros.

    Parameters
    ----------
    lanes : int
    shape : Shape
        One lane.
    prefix : str
        Lane i's registers are ``<prefix>_<i>_<d>`` (d = 0 takes the input), the last one the
        output port ``out_<i>``.
    with_last : bool
        A `last` bit (``valid & last``) rides along with every lane: ``last_<i>_<d>``, then
        ``last_out_<i>``.
    enable : bool
        With an ``en`` port: every register holds while it is low.

    Attributes
    ----------
    en : In(1)
        Only with ``enable``.
    valid : In(1)
    data : In(lanes * width)
        Lane i in bits [i*width, (i+1)*width).
    last : In(1)
        Only with ``with_last``.
    out_<i> : Out(shape)
        Lane i's last register: lane i of the beat accepted i+1 cycles ago.
    last_out_<i> : Out(1)
        Only with ``with_last``.
    regs, last_regs : list of list of Signal
        ``regs[i][d]`` is lane i's register d (``regs[i][i]`` is ``out_<i>``), for probing.
    """

    def __init__(self, lanes: int, shape: Shape, *, prefix: str, with_last: bool, enable: bool):
        self.lanes, self.shape = lanes, Shape.cast(shape)
        self.with_last, self.enable = with_last, enable
        members = {"valid": In(1), "data": In(lanes * self.shape.width)}
        members.update({f"out_{i}": Out(self.shape) for i in range(lanes)})
        if with_last:
            members["last"] = In(1)
            members.update({f"last_out_{i}": Out(1) for i in range(lanes)})
        if enable:
            members["en"] = In(1)
        super().__init__(members)
        self.regs = [[Signal(self.shape, name=f"{prefix}_{i}_{d}") for d in range(i)]
                     + [self.out(i)] for i in range(lanes)]
        self.last_regs = ([[Signal(name=f"last_{i}_{d}") for d in range(i)] + [self.last_out(i)]
                           for i in range(lanes)] if with_last else None)

    def out(self, i: int):
        """Lane i's output port."""
        return getattr(self, f"out_{i}")

    def last_out(self, i: int):
        """Lane i's `last` output port."""
        return getattr(self, f"last_out_{i}")

    def elaborate(self, platform):
        m = Module()
        regs, lregs = self.regs, self.last_regs
        stmts = []
        for i in range(self.lanes):
            stmts.append(regs[i][0].eq(Mux(self.valid, _field(self.data, self.shape, i), 0)))
            stmts += [regs[i][d].eq(regs[i][d - 1]) for d in range(1, i + 1)]
            if self.with_last:
                stmts.append(lregs[i][0].eq(self.valid & self.last))
                stmts += [lregs[i][d].eq(lregs[i][d - 1]) for d in range(1, i + 1)]
        if self.enable:
            with m.If(self.en):
                m.d.sync += stmts
        else:
            m.d.sync += stmts
        return m


class Deskew(wiring.Component):
    """Output de-skew lines: lane j passes lanes-1-j registers, so the lanes of one result row,
    leaving the array one column per cycle, leave here together. The last lane needs no register
    and bypasses the de-skew. Every register holds while ``en`` is low.

    Attributes
    ----------
    en : In(1)
    psum_<j> : In(shape)
        Lane j < lanes-1: the psum of the bottom row's PE j.
    out_<j> : Out(shape)
        Lane j's last register.
    regs : list of list of Signal
        ``regs[j][d]`` is lane j's register d, ``c_<j>_<d>`` (``regs[j][-1]`` is ``out_<j>``),
        for probing.
    """

    def __init__(self, lanes: int, shape: Shape):
        self.lanes, self.shape = lanes, Shape.cast(shape)
        members = {"en": In(1)}
        for j in range(lanes - 1):
            members.update({f"psum_{j}": In(self.shape), f"out_{j}": Out(self.shape)})
        super().__init__(members)
        self.regs = [[Signal(self.shape, name=f"c_{j}_{d}") for d in range(lanes - 2 - j)]
                     + [self.out(j)] for j in range(lanes - 1)]

    def psum(self, j: int):
        """Lane j's input port."""
        return getattr(self, f"psum_{j}")

    def out(self, j: int):
        """Lane j's output port."""
        return getattr(self, f"out_{j}")

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            for j, regs in enumerate(self.regs):
                m.d.sync += regs[0].eq(self.psum(j))
                m.d.sync += [regs[d].eq(regs[d - 1]) for d in range(1, len(regs))]
        return m


class OsPE(wiring.Component):
    """One output-stationary MAC PE: acc += a * b (wrapped to acc_bits); a and last pass right, b
    down, through one register each. When `last` passes, acc + a * b goes to the shadow register
    and acc restarts from 0, so the next tile streams in right behind the wavefront.

    Attributes
    ----------
    a_in, b_in, last_in : In
        From the left neighbour (or skew_a) and the one above (or skew_b).
    a_out, b_out, last_out : Out
        The pass-through registers (to the right / below).
    shadow : Out(acc shape)
        The shadow (result) register: the PE's sum of the last finished tile.
    acc : Signal(acc shape)
        The accumulator register (internal; an attribute for probing).
    """

    def __init__(self, cfg: SystolicConfig):
        lane_shape, acc_shape = _shapes(cfg)
        self.acc = Signal(acc_shape, name="acc")
        super().__init__({
            "a_in": In(lane_shape), "b_in": In(lane_shape), "last_in": In(1),
            "a_out": Out(lane_shape), "b_out": Out(lane_shape), "last_out": Out(1),
            "shadow": Out(acc_shape),
        })

    def elaborate(self, platform):
        m = Module()
        total = Signal.like(self.acc, name="sum")
        # truncation to acc_bits is the two's-complement wrap of the accumulator register
        m.d.comb += total.eq(self.acc + self.a_in * self.b_in)
        with m.If(self.last_in):
            m.d.sync += [self.shadow.eq(total), self.acc.eq(0)]
        with m.Else():
            m.d.sync += self.acc.eq(total)
        m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                     self.last_out.eq(self.last_in)]
        return m


class PreloadPE(wiring.Component):
    """One preload-array PE: psum = psum_in + a * w (wrapped to acc_bits; the top row has no
    psum_in); a and last pass right through one register each. Everything but the weights advances
    only while ``en``.

    The weight load chain moves down one PE per load beat (``load``): into ``w`` itself, or with
    `double_buffer` into the shadow weight ``w_shadow``, which ``w`` copies when a token launched
    with a full shadow (``swap``) passes the PE, or when the whole array copies at once (``copy``).

    Attributes
    ----------
    en, load : In(1)
    w_in : In(lane shape)
        The chain register above (or lane j of load_data for the top row).
    w_out : Out(lane shape)
        This PE's chain register (``w_shadow``, or ``w`` single-buffered).
    a_in, last_in : In
    a_out, last_out : Out
        The pass-through registers (to the right).
    psum_in : In(acc shape)
        The psum of the PE above (not on the top row).
    psum : Out(acc shape)
        The psum register.
    swap, copy : In(1)
        Double buffer only: the token's swap flag, the all-PE copy.
    w, w_shadow : Signal(lane shape)
        The active (and, double-buffered, shadow) weight registers (internal; attributes for
        probing; single-buffered, ``w_shadow`` is ``w``).
    """

    def __init__(self, cfg: SystolicConfig, *, top_row: bool):
        lane_shape, acc_shape = _shapes(cfg)
        self.double_buffer = cfg.double_buffer
        self.top_row = top_row
        self.w = Signal(lane_shape, name="w")
        self.w_shadow = Signal(lane_shape, name="w_shadow") if cfg.double_buffer else self.w
        members = {
            "en": In(1), "load": In(1), "w_in": In(lane_shape), "w_out": Out(lane_shape),
            "a_in": In(lane_shape), "last_in": In(1), "a_out": Out(lane_shape), "last_out": Out(1),
            "psum": Out(acc_shape),
        }
        if not top_row:
            members["psum_in"] = In(acc_shape)
        if cfg.double_buffer:
            members.update(swap=In(1), copy=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.load):
            m.d.sync += self.w_shadow.eq(self.w_in)
        with m.If(self.en):
            if self.top_row:
                m.d.sync += self.psum.eq(self.a_in * self.w)
            else:
                m.d.sync += self.psum.eq(self.psum_in + self.a_in * self.w)
            if self.double_buffer:
                with m.If(self.last_in & self.swap):
                    m.d.sync += self.w.eq(self.w_shadow)
            m.d.sync += [self.a_out.eq(self.a_in), self.last_out.eq(self.last_in)]
        if self.double_buffer:
            with m.If(self.copy):
                m.d.sync += self.w.eq(self.w_shadow)
        m.d.comb += self.w_out.eq(self.w_shadow)
        return m


class SystolicArray(wiring.Component):
    """Output-stationary R x C systolic array with valid/ready operand and result streams.

    Parameters
    ----------
    cfg : SystolicConfig
        Geometry, dataflow and widths. Ports are ``cfg.ports()``.

    Attributes
    ----------
    in_valid, in_a, in_b, in_last : In
        Operand stream: one column slice of A (lane i = A[i, k]) and one row slice of B
        (lane j = B[k, j]) per beat; ``in_last`` marks the tile's last k.
    in_ready : Out
        Low only for a ``last`` beat while the previous tile still occupies the shadow bank.
    out_valid, out_c, out_last : Out
        Result stream: one row of C per beat (lane j = C[r, j]), R rows per tile, ``out_last`` on row R-1.
    out_ready : In
    skew_a, skew_b : Skew
    pes : list of list of OsPE
        ``pes[i][j]`` is instance ``pe_<i>_<j>``.
    """

    def __init__(self, cfg: SystolicConfig):
        if not isinstance(cfg, SystolicConfig) or cfg.dataflow != "os":
            raise TypeError(f"cfg must be a SystolicConfig with dataflow 'os', not {cfg!r}")
        self.cfg = cfg
        lane_shape, _ = _shapes(cfg)
        self.skew_a = Skew(cfg.rows, lane_shape, prefix="a", with_last=True, enable=False)
        self.skew_b = Skew(cfg.cols, lane_shape, prefix="b", with_last=False, enable=False)
        self.pes = [[OsPE(cfg) for _ in range(cfg.cols)] for _ in range(cfg.rows)]
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        pes = self.pes
        m = Module()

        pending = Signal()
        full = Signal()
        rptr = Signal(range(R)) if R > 1 else Signal(1)
        fire_in = Signal()
        fire_out = Signal()

        m.d.comb += [
            self.in_ready.eq(~self.in_last | ~(pending | full)),
            fire_in.eq(self.in_valid & self.in_ready),
            fire_out.eq(full & self.out_ready),
        ]

        # Skew lines: row i of A is delayed i+1 cycles, column j of B j+1 cycles. No beat -> zeros.
        m.submodules.skew_a = ska = self.skew_a
        m.submodules.skew_b = skb = self.skew_b
        m.d.comb += [
            ska.valid.eq(fire_in), ska.data.eq(self.in_a), ska.last.eq(self.in_last),
            skb.valid.eq(fire_in), skb.data.eq(self.in_b),
        ]

        # PE grid: a and last move right, b moves down
        a_net = [_net(m, f"skew_a_{i}", ska.out(i)) for i in range(R)]
        last_net = [_net(m, f"skew_last_{i}", ska.last_out(i)) for i in range(R)]
        b_net = [_net(m, f"skew_b_{j}", skb.out(j)) for j in range(C)]
        shadow = [[None] * C for _ in range(R)]
        for i in range(R):
            for j in range(C):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [pe.a_in.eq(a_net[i]), pe.last_in.eq(last_net[i]), pe.b_in.eq(b_net[j])]
                if j < C - 1:
                    a_net[i] = _net(m, f"pe_{i}_{j}_a", pe.a_out)
                    last_net[i] = _net(m, f"pe_{i}_{j}_last", pe.last_out)
                if i < R - 1:
                    b_net[j] = _net(m, f"pe_{i}_{j}_b", pe.b_out)
                shadow[i][j] = _net(m, f"pe_{i}_{j}_shadow", pe.shadow)
        l_end = pes[R - 1][C - 1].last_in

        # Drain control: the same statement order as the cycle model (later assignments win).
        with m.If(fire_out):
            with m.If(rptr == R - 1):
                m.d.sync += [rptr.eq(0), full.eq(0)]
            with m.Else():
                m.d.sync += rptr.eq(rptr + 1)
        with m.If(l_end):
            m.d.sync += [full.eq(1), pending.eq(0)]
        with m.If(fire_in & self.in_last):
            m.d.sync += pending.eq(1)

        # R:1 row mux. Whole-bus assignments only (Icarus re-resolves partial drivers of a wide net on
        # every change); the last row is the Default so the case is complete for any R.
        with m.Switch(rptr):
            for i in range(R - 1):
                with m.Case(i):
                    m.d.comb += self.out_c.eq(Cat(*shadow[i]))
            with m.Default():
                m.d.comb += self.out_c.eq(Cat(*shadow[R - 1]))
        m.d.comb += [
            self.out_valid.eq(full),
            self.out_last.eq(full & (rptr == R - 1) if R > 1 else full),
        ]
        return m


class PreloadArray(wiring.Component):
    """Preload R x C systolic array (an operand block preloaded through a shift chain, held while rows
    stream): the WS and IS dataflows (same hardware).

    Register for register the micro-architecture documented in sim/engines/_preload_core.py.

    Attributes
    ----------
    load_valid, load_data : In
        One row (C lanes) of the stationary tile per beat, tile row R-1 first.
    load_ready : Out
    in_valid, in_data, in_last : In
        One R-lane row of the moving operand per beat; ``in_last`` marks a fold's last row.
    in_ready : Out
    out_valid, out_c, out_last : Out
        One C-lane result row per beat, R+C cycles after its input beat.
    out_ready : In
        Low stalls the whole compute pipeline (a single global enable).
    skew : Skew
    pes : list of list of PreloadPE
        ``pes[i][j]`` is instance ``pe_<i>_<j>``.
    deskew : Deskew or None
        None for a single column (nothing to de-skew).
    """

    def __init__(self, cfg: SystolicConfig):
        if not isinstance(cfg, SystolicConfig) or cfg.dataflow == "os":
            raise TypeError(f"cfg must be a SystolicConfig with dataflow 'ws' or 'is', not {cfg!r}")
        self.cfg = cfg
        lane_shape, acc_shape = _shapes(cfg)
        self.skew = Skew(cfg.rows, lane_shape, prefix="a", with_last=True, enable=True)
        self.pes = [[PreloadPE(cfg, top_row=i == 0) for _ in range(cfg.cols)]
                    for i in range(cfg.rows)]
        self.deskew = Deskew(cfg.cols, acc_shape) if cfg.cols > 1 else None
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        L = R + C
        pes = self.pes
        m = Module()

        wcnt = Signal(range(R + 1))
        act_valid = Signal()
        tok_flight = Signal()
        tok_swap = Signal()
        adv = Signal()
        fire_w = Signal()
        fire_in = Signal()
        launch = Signal()
        wfull = Signal()
        vp = [Signal(name=f"valid_pipe_{d}") for d in range(L)]
        lp = [Signal(name=f"last_pipe_{d}") for d in range(L)]

        m.d.comb += [
            adv.eq(~vp[L - 1] | self.out_ready),
            self.in_ready.eq(adv & act_valid & (~self.in_last | ~tok_flight)),
            fire_in.eq(self.in_valid & self.in_ready),
            launch.eq(fire_in & self.in_last),
            wfull.eq(wcnt == R),
            fire_w.eq(self.load_valid & self.load_ready),
        ]
        if cfg.double_buffer:
            m.d.comb += self.load_ready.eq((wcnt < R) & ~(tok_flight & tok_swap))
        else:
            m.d.comb += self.load_ready.eq(~act_valid & ~tok_flight & (wcnt < R))

        # skew lines: lane i of the stream (and the fold's `last`) delayed i+1 cycles
        m.submodules.skew = sk = self.skew
        m.d.comb += [sk.en.eq(adv), sk.valid.eq(fire_in), sk.data.eq(self.in_data),
                     sk.last.eq(self.in_last)]

        # PE grid: a and last move right, psums move down; the load chain moves down (row 0 takes
        # the beat); double-buffered, the whole array copies the shadow weights when the active
        # ones are free (no valid beat in flight) and the shadow is full
        if cfg.double_buffer:
            copy = Signal()
            m.d.comb += copy.eq(~act_valid & wfull & ~tok_flight)
        a_net = [_net(m, f"skew_a_{i}", sk.out(i)) for i in range(R)]
        last_net = [_net(m, f"skew_last_{i}", sk.last_out(i)) for i in range(R)]
        w_net = [_lane(cfg, self.load_data, j) for j in range(C)]
        psum_net = [None] * C
        for i in range(R):
            for j in range(C):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [pe.en.eq(adv), pe.load.eq(fire_w), pe.w_in.eq(w_net[j]),
                             pe.a_in.eq(a_net[i]), pe.last_in.eq(last_net[i])]
                if i > 0:
                    m.d.comb += pe.psum_in.eq(psum_net[j])
                if cfg.double_buffer:
                    m.d.comb += [pe.swap.eq(tok_swap), pe.copy.eq(copy)]
                if j < C - 1:
                    a_net[i] = _net(m, f"pe_{i}_{j}_a", pe.a_out)
                    last_net[i] = _net(m, f"pe_{i}_{j}_last", pe.last_out)
                if i < R - 1:
                    w_net[j] = _net(m, f"pe_{i}_{j}_w", pe.w_out)
                psum_net[j] = _net(m, f"pe_{i}_{j}_psum", pe.psum)
        l_end = pes[R - 1][C - 1].last_in

        # de-skew: column j of the bottom row delayed C-1-j cycles, so a row leaves at once
        out_lanes = [psum_net[C - 1]]
        if self.deskew is not None:
            m.submodules.deskew = dsk = self.deskew
            m.d.comb += dsk.en.eq(adv)
            m.d.comb += [dsk.psum(j).eq(psum_net[j]) for j in range(C - 1)]
            out_lanes[:0] = [_net(m, f"deskew_{j}", dsk.out(j)) for j in range(C - 1)]

        # the valid/last pipe, alongside the data
        with m.If(adv):
            m.d.sync += [vp[0].eq(fire_in), lp[0].eq(launch)]
            for d in range(1, L):
                m.d.sync += [vp[d].eq(vp[d - 1]), lp[d].eq(lp[d - 1])]

        # control, in the cycle model's order (later assignments win)
        if cfg.double_buffer:
            with m.If(copy):
                m.d.sync += [act_valid.eq(1), wcnt.eq(0)]
            with m.If(fire_w):
                m.d.sync += wcnt.eq(wcnt + 1)
        else:
            with m.If(fire_w):
                with m.If(wcnt == R - 1):
                    m.d.sync += [act_valid.eq(1), wcnt.eq(0)]
                with m.Else():
                    m.d.sync += wcnt.eq(wcnt + 1)
        with m.If(adv & l_end):
            m.d.sync += tok_flight.eq(0)
        with m.If(launch):
            m.d.sync += tok_flight.eq(1)
            if cfg.double_buffer:
                m.d.sync += tok_swap.eq(wfull)
                with m.If(wfull):
                    m.d.sync += wcnt.eq(0)
                with m.Else():
                    m.d.sync += act_valid.eq(0)
            else:
                m.d.sync += act_valid.eq(0)

        m.d.comb += [
            self.out_c.eq(Cat(*out_lanes)),
            self.out_valid.eq(vp[L - 1]),
            self.out_last.eq(lp[L - 1]),
        ]
        return m


def component(cfg: SystolicConfig) -> wiring.Component:
    """The engine's RTL for its dataflow."""
    return SystolicArray(cfg) if cfg.dataflow == "os" else PreloadArray(cfg)


def to_verilog(cfg: SystolicConfig, name: str | None = None) -> str:
    """Synthesizable Verilog of the engine; the top module is named `name` or `cfg.name`."""
    return _common.convert(lambda: component(cfg), cfg.name, name)


def write_verilog(cfg: SystolicConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    return _common.write(to_verilog(cfg, name), path)

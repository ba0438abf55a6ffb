"""Amaranth RTL of the systolic engine, built from the same SystolicConfig as the cycle model.

Register for register the micro-architecture documented in sim/engines/_systolic_core.py: input skew
lines, an R x C grid of MAC PEs with a shadow (result) register each, a `last` wavefront that
moves a finished tile into the shadow bank, and an R:1 row mux that drains one row per output beat.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.engines.systolic import SystolicConfig

__all__ = ["SystolicArray", "StationaryArray", "component", "signature", "to_verilog",
           "write_verilog"]


def signature(cfg: SystolicConfig) -> wiring.Signature:
    """The component signature, derived from the config's port list (the contract shared with the model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width) for p in cfg.ports()})


def _shapes(cfg: SystolicConfig):
    """(lane shape, accumulator shape) of the config's operands and results."""
    if cfg.signed:
        return signed(cfg.in_bits), signed(cfg.acc_bits)
    return unsigned(cfg.in_bits), unsigned(cfg.acc_bits)


def _lane(cfg: SystolicConfig, bus, idx: int):
    """Lane `idx` of a packed operand bus (lane 0 in the low bits, as sim.numerics.pack)."""
    raw = bus[idx * cfg.in_bits:(idx + 1) * cfg.in_bits]
    return raw.as_signed() if cfg.signed else raw


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
    """

    def __init__(self, cfg: SystolicConfig):
        if not isinstance(cfg, SystolicConfig) or cfg.dataflow != "os":
            raise TypeError(f"cfg must be a SystolicConfig with dataflow 'os', not {cfg!r}")
        self.cfg = cfg
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        lane_shape, acc_shape = _shapes(cfg)
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
        ask = [[Signal(lane_shape, name=f"a_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        lsk = [[Signal(name=f"last_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        bsk = [[Signal(lane_shape, name=f"b_skew_{j}_{d}") for d in range(j + 1)] for j in range(C)]
        for i in range(R):
            m.d.sync += [ask[i][0].eq(Mux(fire_in, _lane(cfg, self.in_a, i), 0)),
                         lsk[i][0].eq(fire_in & self.in_last)]
            for d in range(1, i + 1):
                m.d.sync += [ask[i][d].eq(ask[i][d - 1]), lsk[i][d].eq(lsk[i][d - 1])]
        for j in range(C):
            m.d.sync += bsk[j][0].eq(Mux(fire_in, _lane(cfg, self.in_b, j), 0))
            for d in range(1, j + 1):
                m.d.sync += bsk[j][d].eq(bsk[j][d - 1])

        # PE grid
        pa = [[Signal(lane_shape, name=f"pe_{i}_{j}_a") for j in range(C)] for i in range(R)]
        pb = [[Signal(lane_shape, name=f"pe_{i}_{j}_b") for j in range(C)] for i in range(R)]
        pl = [[Signal(name=f"pe_{i}_{j}_last") for j in range(C)] for i in range(R)]
        acc = [[Signal(acc_shape, name=f"pe_{i}_{j}_acc") for j in range(C)] for i in range(R)]
        shadow = [[Signal(acc_shape, name=f"pe_{i}_{j}_shadow") for j in range(C)] for i in range(R)]
        l_end = None
        for i in range(R):
            for j in range(C):
                ain = ask[i][i] if j == 0 else pa[i][j - 1]
                lin = lsk[i][i] if j == 0 else pl[i][j - 1]
                bin_ = bsk[j][j] if i == 0 else pb[i - 1][j]
                total = Signal(acc_shape, name=f"pe_{i}_{j}_sum")
                # truncation to acc_bits is the two's-complement wrap of the accumulator register
                m.d.comb += total.eq(acc[i][j] + ain * bin_)
                with m.If(lin):
                    m.d.sync += [shadow[i][j].eq(total), acc[i][j].eq(0)]
                with m.Else():
                    m.d.sync += acc[i][j].eq(total)
                m.d.sync += [pa[i][j].eq(ain), pb[i][j].eq(bin_), pl[i][j].eq(lin)]
                if i == R - 1 and j == C - 1:
                    l_end = lin

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


class StationaryArray(wiring.Component):
    """Stationary-operand R x C systolic array: the WS and IS dataflows (same hardware).

    Register for register the micro-architecture documented in sim/engines/_stationary_core.py.

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
    """

    def __init__(self, cfg: SystolicConfig):
        if not isinstance(cfg, SystolicConfig) or cfg.dataflow == "os":
            raise TypeError(f"cfg must be a SystolicConfig with dataflow 'ws' or 'is', not {cfg!r}")
        self.cfg = cfg
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        L = R + C
        lane_shape, acc_shape = _shapes(cfg)
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

        wact = [[Signal(lane_shape, name=f"pe_{i}_{j}_w") for j in range(C)] for i in range(R)]
        wsh = ([[Signal(lane_shape, name=f"pe_{i}_{j}_wshadow") for j in range(C)] for i in range(R)]
               if cfg.double_buffer else wact)

        # the load chain: row 0 takes the beat, every row takes the one above
        with m.If(fire_w):
            for j in range(C):
                m.d.sync += wsh[0][j].eq(_lane(cfg, self.load_data, j))
            for i in range(1, R):
                for j in range(C):
                    m.d.sync += wsh[i][j].eq(wsh[i - 1][j])

        ask = [[Signal(lane_shape, name=f"a_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        lsk = [[Signal(name=f"last_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        pa = [[Signal(lane_shape, name=f"pe_{i}_{j}_a") for j in range(C)] for i in range(R)]
        pl = [[Signal(name=f"pe_{i}_{j}_last") for j in range(C)] for i in range(R)]
        ps = [[Signal(acc_shape, name=f"pe_{i}_{j}_psum") for j in range(C)] for i in range(R)]
        dsk = [[Signal(acc_shape, name=f"deskew_{j}_{d}") for d in range(C - 1 - j)] for j in range(C)]
        l_end = None
        with m.If(adv):
            for j in range(C - 1):
                m.d.sync += dsk[j][0].eq(ps[R - 1][j])
                for d in range(1, C - 1 - j):
                    m.d.sync += dsk[j][d].eq(dsk[j][d - 1])
            for i in range(R):
                for j in range(C):
                    ain = ask[i][i] if j == 0 else pa[i][j - 1]
                    lin = lsk[i][i] if j == 0 else pl[i][j - 1]
                    if i == 0:
                        m.d.sync += ps[i][j].eq(ain * wact[i][j])
                    else:
                        m.d.sync += ps[i][j].eq(ps[i - 1][j] + ain * wact[i][j])
                    if cfg.double_buffer:
                        with m.If(lin & tok_swap):
                            m.d.sync += wact[i][j].eq(wsh[i][j])
                    m.d.sync += [pa[i][j].eq(ain), pl[i][j].eq(lin)]
                    if i == R - 1 and j == C - 1:
                        l_end = lin
            for i in range(R):
                m.d.sync += [ask[i][0].eq(Mux(fire_in, _lane(cfg, self.in_data, i), 0)),
                             lsk[i][0].eq(launch)]
                for d in range(1, i + 1):
                    m.d.sync += [ask[i][d].eq(ask[i][d - 1]), lsk[i][d].eq(lsk[i][d - 1])]
            m.d.sync += [vp[0].eq(fire_in), lp[0].eq(launch)]
            for d in range(1, L):
                m.d.sync += [vp[d].eq(vp[d - 1]), lp[d].eq(lp[d - 1])]

        # control, in the cycle model's order (later assignments win)
        if cfg.double_buffer:
            with m.If(~act_valid & wfull & ~tok_flight):
                for i in range(R):
                    for j in range(C):
                        m.d.sync += wact[i][j].eq(wsh[i][j])
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

        out_lanes = [dsk[j][C - 2 - j] if j < C - 1 else ps[R - 1][C - 1] for j in range(C)]
        m.d.comb += [
            self.out_c.eq(Cat(*out_lanes)),
            self.out_valid.eq(vp[L - 1]),
            self.out_last.eq(lp[L - 1]),
        ]
        return m


def component(cfg: SystolicConfig) -> wiring.Component:
    """The engine's RTL for its dataflow."""
    return SystolicArray(cfg) if cfg.dataflow == "os" else StationaryArray(cfg)


def to_verilog(cfg: SystolicConfig, name: str | None = None) -> str:
    from amaranth.back import verilog

    comp = component(cfg)
    return verilog.convert(comp, name=name or cfg.name, emit_src=False)


def write_verilog(cfg: SystolicConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_verilog(cfg, name))
    return path

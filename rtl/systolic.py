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

__all__ = ["SystolicArray", "signature", "to_verilog", "write_verilog"]


def signature(cfg: SystolicConfig) -> wiring.Signature:
    """The component signature, derived from the config's port list (the contract shared with the model)."""
    return wiring.Signature({p.name: (In if p.direction == "in" else Out)(p.width) for p in cfg.ports()})


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
        if not isinstance(cfg, SystolicConfig):
            raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")
        self.cfg = cfg
        super().__init__(signature(cfg))

    def elaborate(self, platform):
        cfg = self.cfg
        R, C, w, accw = cfg.rows, cfg.cols, cfg.in_bits, cfg.acc_bits
        lane_shape = signed(w) if cfg.signed else unsigned(w)
        acc_shape = signed(accw) if cfg.signed else unsigned(accw)
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

        def lane(bus, idx):
            raw = bus[idx * w:(idx + 1) * w]
            return raw.as_signed() if cfg.signed else raw

        # Skew lines: row i of A is delayed i+1 cycles, column j of B j+1 cycles. No beat -> zeros.
        ask = [[Signal(lane_shape, name=f"a_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        lsk = [[Signal(name=f"last_skew_{i}_{d}") for d in range(i + 1)] for i in range(R)]
        bsk = [[Signal(lane_shape, name=f"b_skew_{j}_{d}") for d in range(j + 1)] for j in range(C)]
        for i in range(R):
            m.d.sync += [ask[i][0].eq(Mux(fire_in, lane(self.in_a, i), 0)),
                         lsk[i][0].eq(fire_in & self.in_last)]
            for d in range(1, i + 1):
                m.d.sync += [ask[i][d].eq(ask[i][d - 1]), lsk[i][d].eq(lsk[i][d - 1])]
        for j in range(C):
            m.d.sync += bsk[j][0].eq(Mux(fire_in, lane(self.in_b, j), 0))
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


def to_verilog(cfg: SystolicConfig, name: str | None = None) -> str:
    from amaranth.back import verilog

    comp = SystolicArray(cfg)
    return verilog.convert(comp, name=name or cfg.name, emit_src=False)


def write_verilog(cfg: SystolicConfig, path: str | Path, name: str | None = None) -> Path:
    """Write synthesizable Verilog of the engine; the module is named `name` or `cfg.name`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_verilog(cfg, name))
    return path

"""Bank control of a held-block engine's RTL (load/row handshakes, bank counts, drain counters, bank
selects), shared by the engines whose component holds a block of B; contract: docs/adder_tree.md."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Signal

__all__ = ["BankControl", "bank_control", "pick"]


def pick(sel, items):
    """items[sel] for one or two banks (one bank: the select is the constant 0)."""
    return items[0] if len(items) == 1 else Mux(sel, items[1], items[0])


@dataclass(frozen=True)
class BankControl:
    """The signals `bank_control` drives: the pipeline's global enable, the two handshakes, per bank
    its load-beat count, drain counter and load strobe, and the bank selects (constant 0 for one
    bank)."""

    adv: Signal
    fire_load: Signal
    fire_in: Signal
    cnt: list
    drain: list
    shift: list
    lsel: object
    rsel: object


def bank_control(m: Module, port, *, depth: int, banks: int, drain_cycles: int,
                 hold: list | None = None) -> BankControl:
    """Add to `m` the bank control of a component `port` with load_valid/load_ready,
    in_valid/in_ready/in_last and out_valid/out_ready: a load beat enters bank lsel while it holds
    fewer than `depth` beats and its drain counter is 0; a row is taken when the pipeline advances
    and bank rsel is full (and, with `hold`, hold[rsel] is low: e.g. a beat of that bank still on
    its way in); a block's last row empties its bank, sets the bank's drain counter to
    `drain_cycles` (counted down on advancing edges) and, with two banks, flips rsel."""
    adv = Signal()
    fire_load = Signal()
    fire_in = Signal()
    cnt = [Signal(range(depth + 1), name=f"cnt_{b}") for b in range(banks)]
    drain = [Signal(range(drain_cycles + 1), name=f"drain_{b}") for b in range(banks)]
    lsel = Signal() if banks == 2 else Const(0, 1)
    rsel = Signal() if banks == 2 else Const(0, 1)
    readable = adv & (pick(rsel, cnt) == depth)
    if hold is not None:
        readable = readable & ~pick(rsel, hold)
    m.d.comb += [
        adv.eq(~port.out_valid | port.out_ready),
        port.load_ready.eq((pick(lsel, cnt) < depth) & ~pick(lsel, drain).any()),
        port.in_ready.eq(readable),
        fire_load.eq(port.load_valid & port.load_ready),
        fire_in.eq(port.in_valid & port.in_ready),
    ]
    # in the contract's order (later assignments win)
    shift = [fire_load & (lsel == b) for b in range(banks)]
    for b in range(banks):
        with m.If(shift[b]):
            m.d.sync += cnt[b].eq(cnt[b] + 1)
            if banks == 2:
                with m.If(cnt[b] == depth - 1):
                    m.d.sync += lsel.eq(b ^ 1)
        with m.If(adv & drain[b].any()):
            m.d.sync += drain[b].eq(drain[b] - 1)
        with m.If(fire_in & port.in_last & (rsel == b)):
            m.d.sync += [cnt[b].eq(0), drain[b].eq(drain_cycles)]
    if banks == 2:
        with m.If(fire_in & port.in_last):
            m.d.sync += rsel.eq(~rsel)
    return BankControl(adv, fire_load, fire_in, cnt, drain, shift, lsel, rsel)

"""Memory model: per-operand double-buffered SRAMs and one DRAM link, as event-driven components.

Notes and derivations: docs/internals.md, section `sim/memory.py`.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from .config import ConfigMixin, check_int
from .errors import ConfigError, ConfigTypeError, WorkloadError

if TYPE_CHECKING:  # pragma: no cover
    from .timing import TileStream

__all__ = ["MemoryConfig", "DramLink", "InputBuffer", "OutputBuffer", "Prefetcher", "check_fits",
           "MemorySystem", "static_traffic", "TRAFFIC_FIELDS", "KIB"]

KIB = 1024
OPERANDS = ("a", "b", "c")
# Cycle counts are C longs in the event kernel: a latency stays far below their range.
MAX_LATENCY = 2**31 - 1
TRAFFIC_FIELDS = tuple(f"{kind}_{rw}_bytes_{op}" for op in OPERANDS
                       for kind in ("sram", "dram") for rw in ("read", "write"))


def _check_pos_number(name: str, value) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}")
    return value


@dataclass(frozen=True)
class MemoryConfig(ConfigMixin):
    """On-chip buffers and the DRAM link. Every default means "ideal": no stall from memory.

    Parameters
    ----------
    sram_kib_a, sram_kib_b, sram_kib_c : float or None
        Size of each operand's SRAM in KiB. None: unbounded (every input block fetched once). A
        tile's block of an operand must fit in half of that operand's SRAM; room for two blocks
        double-buffers, room for more keeps blocks resident for reuse (see `_input_plan`).
    dram_bw : float or None
        DRAM link bandwidth in bytes per cycle, shared by all operands. None: unbounded.
    dram_latency : int
        Cycles from the end of a read's transfer until its data is in SRAM.
    """

    sram_kib_a: float | None = None
    sram_kib_b: float | None = None
    sram_kib_c: float | None = None
    dram_bw: float | None = None
    dram_latency: int = 0

    def __post_init__(self):
        for op in OPERANDS:
            _check_pos_number(f"sram_kib_{op}", getattr(self, f"sram_kib_{op}"))
        _check_pos_number("dram_bw", self.dram_bw)
        check_int("dram_latency", self.dram_latency, lo=0, hi=MAX_LATENCY)

    @property
    def ideal(self) -> bool:
        """No component can stall the engine."""
        return (self.sram_kib_a is None and self.sram_kib_b is None and self.sram_kib_c is None
                and self.dram_bw is None and self.dram_latency == 0)

    def sram_kib(self, operand: str) -> float | None:
        return getattr(self, f"sram_kib_{operand}")

    def half_bytes(self, operand: str) -> float | None:
        kib = self.sram_kib(operand)
        return None if kib is None else kib * KIB / 2

    def slots(self, operand: str, block_bytes) -> int | None:
        """How many of the operand's biggest blocks its SRAM holds (None: unbounded)."""
        kib = self.sram_kib(operand)
        if kib is None:
            return None
        biggest = int(np.max(block_bytes)) if len(block_bytes) else 1
        return max(2, int(kib * KIB // max(biggest, 1)))

    def report_fields(self) -> dict:
        """The configuration with units in the field names, for JSON/CSV reports."""
        return {"sram_kib_a": self.sram_kib_a, "sram_kib_b": self.sram_kib_b,
                "sram_kib_c": self.sram_kib_c, "dram_bw_bytes_per_cycle": self.dram_bw,
                "dram_latency_cycles": self.dram_latency}


# -------------------------------------------------------------------------------------------------
# The static plan: which tiles share a fetch (vectorised; depends on the tile order only)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Plan:
    """Fetches (inputs) or write-backs (output) of one operand: arrays over blocks, stream order."""

    of_tile: np.ndarray      # int64[ntiles]: index of the fetch/write-back tile t belongs to
    first: np.ndarray        # int64[nblocks]: first tile of each
    last: np.ndarray         # int64[nblocks]: last tile of each
    nbytes: np.ndarray       # int64[nblocks]
    victim: np.ndarray | None = None   # int64[nblocks]: the fetch whose space this one takes, -1: none


def _plan(block: np.ndarray, block_bytes: np.ndarray) -> _Plan:
    """One fetch (or write-back) per run of consecutive tiles on the same block."""
    n = len(block)
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = block[1:] != block[:-1]
    first = np.flatnonzero(new).astype(np.int64)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = n - 1
    return _Plan(of_tile=np.cumsum(new, dtype=np.int64) - 1, first=first, last=last,
                 nbytes=np.asarray(block_bytes, dtype=np.int64)[first])


def _input_plan(block: np.ndarray, block_bytes: np.ndarray, slots: int | None) -> _Plan:
    """The fetches of an input operand whose SRAM holds `slots` blocks (None: unbounded).

    2 slots: double buffering, one fetch per run of equal blocks, fetch f refills fetch f-2's
    half. 3 or more: a resident set managed with the stream's known future (Belady's MIN, as a
    DMA schedule fixed ahead of time can be): a block still resident is read again without a
    fetch; a miss with a full SRAM evicts the resident block needed furthest ahead (or never; ties:
    the least recently read), never the block the previous tiles are reading, and takes its slot
    once the evicted block's last reader so far has finished. MIN is a stack algorithm, so
    DRAM traffic never grows with the SRAM. Unbounded: every block is fetched once."""
    p = _plan(block, block_bytes)
    if slots == 2:
        victim = np.arange(len(p.first), dtype=np.int64) - 2
        victim[victim < 0] = -1
        return dataclasses.replace(p, victim=victim)
    # runs of equal blocks (p.first) are the unit of reuse; a run hits or misses as a whole
    ids = np.asarray(block)[p.first].tolist()
    nruns = len(ids)
    next_use = [nruns] * nruns            # the next run reading the same block (nruns: never)
    seen: dict = {}
    for r in range(nruns - 1, -1, -1):
        next_use[r] = seen.get(ids[r], nruns)
        seen[ids[r]] = r
    run_last = p.last.tolist()
    run_bytes = p.nbytes.tolist()
    resident: dict = {}                   # block id -> (fetch index, its next use)
    heap: list = []                       # (-next use, run read, block id), stale entries pruned lazily
    of_run, first, last, nbytes, victim = [], [], [], [], []
    for r, b in enumerate(ids):
        if b in resident:
            f = resident[b][0]
            last[f] = run_last[r]
        else:
            f = len(first)
            v = -1
            if slots is not None and len(resident) >= slots:
                keep = []   # the previous run's block is being read: never its victim
                while True:
                    entry = heapq.heappop(heap)
                    out = entry[2]
                    if out not in resident or resident[out][1] != -entry[0]:
                        continue
                    if out == ids[r - 1]:
                        keep.append(entry)
                        continue
                    break
                for entry in keep:
                    heapq.heappush(heap, entry)
                v = resident.pop(out)[0]
            first.append(int(p.first[r]))
            last.append(run_last[r])
            nbytes.append(run_bytes[r])
            victim.append(v)
        resident[b] = (f, next_use[r])
        # ties (equal next use, e.g. never again): the least recently read goes first
        heapq.heappush(heap, (-next_use[r], r, b))
        of_run.append(f)
    of_tile = np.asarray(of_run, dtype=np.int64)[p.of_tile]
    return _Plan(of_tile=of_tile, first=np.asarray(first, np.int64), last=np.asarray(last, np.int64),
                 nbytes=np.asarray(nbytes, np.int64), victim=np.asarray(victim, np.int64))


def check_fits(stream: TileStream, cfg: MemoryConfig) -> None:
    """WorkloadError (one line: operand, block shape and size, SRAM size) if a block of some
    operand does not fit half of that operand's SRAM."""
    for use in (*stream.inputs, stream.output):
        half = cfg.half_bytes(use.name)
        if half is None:
            continue
        i = int(np.argmax(use.block_bytes))
        biggest = int(use.block_bytes[i])
        if biggest > half:
            raise WorkloadError(
                f"sram_kib_{use.name} must hold two blocks: a {getattr(stream, 'unit', 'tile')}'s "
                f"block of operand {use.name} "
                f"({use.describe(i)}, {biggest} bytes) does "
                f"not fit half of its {cfg.sram_kib(use.name):g} KiB SRAM ({half:g} bytes); "
                f"give operand {use.name} at least {math.ceil(2 * biggest / KIB * 1000) / 1000:g} "
                f"KiB")


def static_traffic(stream: TileStream, memory: MemoryConfig | None = None) -> dict[str, int]:
    """Bytes moved per operand for a stream, computed without simulating (the fetch policy does not
    depend on timing). The event-driven components count the same numbers as they run."""
    memory = MemoryConfig() if memory is None else memory
    out = dict.fromkeys(TRAFFIC_FIELDS, 0)
    for use in stream.inputs:
        p = _input_plan(use.block, use.block_bytes, memory.slots(use.name, use.block_bytes))
        fetched = int(p.nbytes.sum())
        out[f"sram_read_bytes_{use.name}"] = int(np.asarray(use.block_bytes).sum())
        out[f"sram_write_bytes_{use.name}"] = fetched
        out[f"dram_read_bytes_{use.name}"] = fetched
    use = stream.output
    p = _plan(use.block, use.block_bytes)
    written = int(p.nbytes.sum())
    out[f"sram_write_bytes_{use.name}"] = int(np.asarray(use.tile_bytes).sum())
    out[f"sram_read_bytes_{use.name}"] = written
    out[f"dram_write_bytes_{use.name}"] = written
    return out


# -------------------------------------------------------------------------------------------------
# Components
# -------------------------------------------------------------------------------------------------
class DramLink:
    """The DRAM link: FIFO in issue order, `bw` bytes per cycle, `latency` cycles on reads."""

    def __init__(self, bw: float | None, latency: int):
        # the decimal the user wrote (0.3 means 3/10, not the nearest binary double)
        self.bw = None if bw is None else Fraction(repr(bw))
        self.latency = int(latency)
        self.busy_until = 0
        self.busy_cycles = 0
        self.last_issue = 0
        self.done_cycle = 0       # when the last transfer (or read latency) completes
        self.read_bytes: dict[str, int] = {}
        self.write_bytes: dict[str, int] = {}
        self._xfer: dict[int, int] = {}

    def transfer_cycles(self, nbytes: int) -> int:
        if self.bw is None:
            return 0
        x = self._xfer.get(nbytes)
        if x is None:
            x = self._xfer[nbytes] = math.ceil(Fraction(nbytes) / self.bw)
        return x

    def _start(self, nbytes: int, at: int) -> int:
        if at < self.last_issue:
            raise RuntimeError(f"DRAM request issued at cycle {at} after one issued at "
                               f"{self.last_issue}: requests must arrive in time order")
        self.last_issue = at
        start = at if at > self.busy_until else self.busy_until
        x = self.transfer_cycles(nbytes)
        self.busy_until = start + x
        self.busy_cycles += x
        return start + x

    def read(self, operand: str, nbytes: int, at: int) -> int:
        """Issue a read at cycle `at`; returns the cycle from which the data can be used."""
        done = self._start(nbytes, at) + self.latency
        self.read_bytes[operand] = self.read_bytes.get(operand, 0) + nbytes
        self.done_cycle = max(self.done_cycle, done)
        return done

    def write(self, operand: str, nbytes: int, at: int) -> int:
        """Issue a write at cycle `at`; returns the cycle from which its SRAM space is free."""
        done = self._start(nbytes, at)
        self.write_bytes[operand] = self.write_bytes.get(operand, 0) + nbytes
        self.done_cycle = max(self.done_cycle, done)
        return done


class InputBuffer:
    """The SRAM of one input operand: which fetch has arrived, whose space is free again."""

    def __init__(self, use, slots: int | None):
        self.name = use.name
        self.bounded = slots is not None
        p = _input_plan(use.block, use.block_bytes, slots)
        self.of_tile = p.of_tile.tolist()
        self.last_tile = p.last.tolist()
        self.first_tile = p.first.tolist()
        self.nbytes = p.nbytes.tolist()
        self.victim = p.victim.tolist()
        self.tile_bytes = np.asarray(use.block_bytes, dtype=np.int64).tolist()
        n = len(self.nbytes)
        self.arrival = [-1] * n    # cycle from which fetch f's data is usable
        self.freed = [-1] * n      # cycle from which fetch f's half may be refilled
        self.sram_read_bytes = 0
        self.sram_write_bytes = 0

    def can_fill(self, f: int) -> bool:
        v = self.victim[f]
        return v < 0 or self.freed[v] >= 0

    def ready(self, t: int) -> int:
        f = self.of_tile[t]
        at = self.arrival[f]
        if at < 0:
            raise RuntimeError(f"tile {t} asked for operand {self.name} before its fetch {f} was "
                               f"issued (memory model causality)")
        return at

    def streamed(self, t: int, at: int) -> bool:
        """Tile t finished reading its block in cycle at-1. True if that frees a half."""
        self.sram_read_bytes += self.tile_bytes[t]
        f = self.of_tile[t]
        if self.last_tile[f] == t:
            self.freed[f] = at
            return True
        return False


class OutputBuffer:
    """Double-buffered SRAM of the output: where result rows wait for their write-back."""

    def __init__(self, use, half_bytes: float | None):
        self.name = use.name
        self.bounded = half_bytes is not None
        p = _plan(use.block, use.block_bytes)
        self.of_tile = p.of_tile.tolist()
        self.first_tile = p.first.tolist()
        self.last_tile = p.last.tolist()
        self.nbytes = p.nbytes.tolist()
        self.tile_bytes = np.asarray(use.tile_bytes, dtype=np.int64).tolist()
        self.written = [-1] * len(self.nbytes)  # cycle from which block k's half is free again
        self.sram_read_bytes = 0
        self.sram_write_bytes = 0

    def free(self, t: int) -> int:
        """Cycle from which tile t's result rows may leave the engine."""
        if not self.bounded:
            return 0
        k = self.of_tile[t]
        if k < 2 or self.first_tile[k] != t:
            return 0  # a block's later tiles find its half already theirs
        return self._written(k - 2, t)

    def _written(self, k: int, t: int) -> int:
        w = self.written[k]
        if w < 0:
            raise RuntimeError(f"tile {t} asked for output space before block {k}'s write-back "
                               f"was issued (memory model causality)")
        return w

    def drained(self, t: int, link: DramLink, at: int) -> None:
        """Tile t's last result row left the engine in cycle at-1."""
        self.sram_write_bytes += self.tile_bytes[t]
        k = self.of_tile[t]
        if self.last_tile[k] == t:
            nbytes = self.nbytes[k]
            self.sram_read_bytes += nbytes
            self.written[k] = link.write(self.name, nbytes, at)


class Prefetcher:
    """The DMA engine (an event-kernel component): issues fetches in tile order as halves free."""

    def __init__(self, buffers: list[InputBuffer], link: DramLink):
        self.link = link
        self.buffers = buffers
        order = sorted((b.first_tile[f], i, f) for i, b in enumerate(buffers)
                       for f in range(len(b.nbytes)))
        self._ops = [i for _, i, _ in order]
        self._fetch = [f for _, _, f in order]
        self._next = 0
        self.blocked = False
        self.scheduled = False

    def wake(self, sim, now: int) -> int:
        self.scheduled = False
        ops, fetch, bufs, link = self._ops, self._fetch, self.buffers, self.link
        i, n = self._next, len(ops)
        while i < n:
            buf = bufs[ops[i]]
            f = fetch[i]
            if not buf.can_fill(f):
                self.blocked = True
                break
            nbytes = buf.nbytes[f]
            buf.arrival[f] = link.read(buf.name, nbytes, now)
            buf.sram_write_bytes += nbytes
            i += 1
        else:
            self.blocked = False
        self._next = i
        return -1


class _Event:
    """A one-shot event-kernel component: calls fn(*args, now) when woken."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, *args):
        self.fn = fn
        self.args = args

    def wake(self, sim, now: int) -> int:
        self.fn(*self.args, now)
        return -1


class MemorySystem:
    """The buffers, the link and the prefetcher for one tile stream, wired to a Simulator.

    The engine asks `operands_ready(t)` (per input operand, the cycle from which tile t's block is
    in SRAM; `operand_ready(i, t)` for one operand, also of a later tile whose fetch is issued)
    and `output_free(t)` before streaming tile t, and reports `streamed(t, last_beat_cycle)` (or
    `release(t, i, cycle)` per operand) and `drained(t, last_row_cycle)`; these become events at
    the following cycle.
    """

    def __init__(self, cfg: MemoryConfig, stream: TileStream, sim):
        check_fits(stream, cfg)
        self.cfg = cfg
        self.sim = sim
        self.link = DramLink(cfg.dram_bw, cfg.dram_latency)
        self.inputs = [InputBuffer(u, cfg.slots(u.name, u.block_bytes)) for u in stream.inputs]
        self.output = OutputBuffer(stream.output, cfg.half_bytes(stream.output.name))
        self.prefetcher = Prefetcher(self.inputs, self.link)

    def start(self) -> None:
        self.prefetcher.scheduled = True
        self.sim.schedule(self.prefetcher, self.sim.now)

    def operands_ready(self, t: int) -> tuple[int, ...]:
        return tuple(b.ready(t) for b in self.inputs)

    def operand_ready(self, i: int, t: int) -> int:
        """Cycle from which tile t's block of input operand i is in SRAM (RuntimeError if its
        fetch has not been issued yet: the caller looked too far ahead)."""
        return self.inputs[i].ready(t)

    def output_free(self, t: int) -> int:
        return self.output.free(t)

    def streamed(self, t: int, last_cycle) -> None:
        """Tile t's last beat was taken in `last_cycle`; its halves free from the next cycle.
        `last_cycle` may be a tuple, one cycle per input operand (e.g. a stationary operand that
        is released once loaded, before the streamed one)."""
        if isinstance(last_cycle, tuple):
            for i, c in enumerate(last_cycle):
                self.sim.schedule(_Event(self._on_streamed, t, i), c + 1)
        else:
            self.sim.schedule(_Event(self._on_streamed, t, None), last_cycle + 1)

    def release(self, t: int, i: int, last_cycle: int) -> None:
        """Tile t's last read of input operand i was in `last_cycle`; its half (if tile t is the
        block's last reader) is free from the next cycle. Each (t, i) is released exactly once."""
        self.sim.schedule(_Event(self._on_streamed, t, i), last_cycle + 1)

    def drained(self, t: int, last_cycle: int) -> None:
        """Tile t's last result row left in `last_cycle`; its write-back may start next cycle."""
        self.sim.schedule(_Event(self.output.drained, t, self.link), last_cycle + 1)

    def _on_streamed(self, t: int, which: int | None, now: int) -> None:
        freed = False
        for b in self.inputs if which is None else (self.inputs[which],):
            freed |= b.streamed(t, now)
        p = self.prefetcher
        if freed and p.blocked and not p.scheduled:
            p.scheduled = True
            self.sim.schedule(p, now)

    def traffic(self) -> dict[str, int]:
        out = dict.fromkeys(TRAFFIC_FIELDS, 0)
        for b in self.inputs:
            out[f"sram_read_bytes_{b.name}"] = b.sram_read_bytes
            out[f"sram_write_bytes_{b.name}"] = b.sram_write_bytes
        o = self.output
        out[f"sram_read_bytes_{o.name}"] = o.sram_read_bytes
        out[f"sram_write_bytes_{o.name}"] = o.sram_write_bytes
        for op, n in self.link.read_bytes.items():
            out[f"dram_read_bytes_{op}"] = n
        for op, n in self.link.write_bytes.items():
            out[f"dram_write_bytes_{op}"] = n
        return out

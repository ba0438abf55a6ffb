"""Event-driven simulation kernel (Cython pure-Python mode; compiled by `make setup`).

Notes and derivations: docs/internals.md, section `sim/event/_core.py`.
"""

import heapq

import cython

i64 = cython.typedef(cython.longlong)


@cython.cclass
class Simulator:
    """Free-running scheduler. `schedule(comp, at)`; `run(until)` calls `comp.wake(sim, now)`."""

    now = cython.declare(i64, visibility="readonly")
    events = cython.declare(i64, visibility="readonly")
    _seq: i64
    _heap: list

    def __init__(self):
        self.now = 0
        self._seq = 0
        self._heap = []
        self.events = 0

    @cython.ccall
    def schedule(self, comp: object, at: i64) -> cython.void:
        if at < self.now:
            raise ValueError(f"wake-up time must be >= now ({self.now}), not {at}")
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, comp))

    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: i64 = -1) -> i64:
        """Process wake-ups in time order until the heap is empty or time would pass `until`.
        Returns the current time."""
        heap = self._heap
        at: i64
        nxt: i64
        while heap:
            at = heap[0][0]
            if until >= 0 and at > until:
                self.now = until
                break
            _, _, comp = heapq.heappop(heap)
            self.now = at
            self.events += 1
            nxt = comp.wake(self, at)
            if nxt >= 0:
                self.schedule(comp, nxt)
        return self.now


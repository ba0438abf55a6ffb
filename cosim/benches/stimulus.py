"""Random stimulus shared by the cosim testbenches: tiles of full-range operands and a valid/ready source."""

from __future__ import annotations

import numpy as np

from sim.numerics import pack


class Mismatch(Exception):
    """The RTL and the model (or numpy) disagree."""


def make_tiles(cfg, rng: np.random.Generator, tiles: int, kmax: int):
    """`tiles` (A[R,K], B[K,C], K) with random K in 1..kmax and full-range values; the first tile
    carries the extreme products (most negative x most negative, max x most negative)."""
    lo, hi = cfg.in_range
    out = []
    for t in range(tiles):
        k = int(rng.integers(1, kmax + 1))
        a = rng.integers(lo, hi + 1, size=(cfg.rows, k), dtype=np.int64)
        b = rng.integers(lo, hi + 1, size=(k, cfg.cols), dtype=np.int64)
        if t == 0:
            a[0, 0], b[0, 0] = lo, lo
            a[-1, -1], b[-1, -1] = hi, lo
        out.append((a, b, k))
    return out


class StreamSource:
    """Presents the tiles' beats with random gaps; holds a beat until it is accepted (valid/ready rules)."""

    def __init__(self, cfg, work, rng: np.random.Generator, p_valid: float):
        self.cfg, self.rng, self.p_valid = cfg, rng, p_valid
        self.beats = []
        for a, b, k in work:
            for kk in range(k):
                self.beats.append((pack(a[:, kk], cfg.in_bits), pack(b[kk, :], cfg.in_bits),
                                   int(kk == k - 1)))
        self.pos = 0
        self.valid = 0
        lo, hi = cfg.in_range
        self._junk = lambda n: pack(rng.integers(lo, hi + 1, size=n), cfg.in_bits)

    def drive(self) -> dict:
        if not self.valid and self.pos < len(self.beats):
            self.valid = int(self.rng.random() < self.p_valid)
        if self.valid:
            a, b, last = self.beats[self.pos]
            return {"in_valid": 1, "in_a": a, "in_b": b, "in_last": last}
        # not valid: random junk on the data lines, which the engine must ignore
        return {"in_valid": 0, "in_a": self._junk(self.cfg.rows), "in_b": self._junk(self.cfg.cols),
                "in_last": int(self.rng.random() < 0.5)}

    def observe(self, ready: int) -> None:
        if self.valid and ready:
            self.pos += 1
            self.valid = 0

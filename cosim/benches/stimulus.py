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


def make_folds(cfg, rng: np.random.Generator, folds: int, mmax: int):
    """`folds` (X[M,R], W[R,C], M) for the stationary (WS/IS) array: W is the stationary tile, X the
    streamed rows, with random M in 1..mmax and full-range values (extremes in the first fold)."""
    lo, hi = cfg.in_range
    out = []
    for f in range(folds):
        m = int(rng.integers(1, mmax + 1))
        x = rng.integers(lo, hi + 1, size=(m, cfg.rows), dtype=np.int64)
        w = rng.integers(lo, hi + 1, size=(cfg.rows, cfg.cols), dtype=np.int64)
        if f == 0:
            x[0, 0], w[0, 0] = lo, lo
            x[-1, -1], w[-1, -1] = hi, lo
        out.append((x, w, m))
    return out


class StreamSource:
    """Presents beats on one valid/ready port with random gaps; holds a beat until it is accepted.

    `beats` is a list of dicts of data-port values (raw bits); `valid` names the valid signal.
    While not valid, the data ports carry random junk, which the engine must ignore.
    """

    def __init__(self, beats: list[dict], junk: dict, valid: str, rng: np.random.Generator,
                 p_valid: float):
        self.beats, self.junk, self.valid_name = beats, junk, valid
        self.rng, self.p_valid = rng, p_valid
        self.pos = 0
        self.valid = 0

    def drive(self) -> dict:
        if not self.valid and self.pos < len(self.beats):
            self.valid = int(self.rng.random() < self.p_valid)
        if self.valid:
            return {self.valid_name: 1, **self.beats[self.pos]}
        return {self.valid_name: 0, **{k: f() for k, f in self.junk.items()}}

    def observe(self, ready: int) -> None:
        if self.valid and ready:
            self.pos += 1
            self.valid = 0


def _junk_lanes(cfg, rng, lanes):
    lo, hi = cfg.in_range
    return lambda: pack(rng.integers(lo, hi + 1, size=lanes), cfg.in_bits)


def os_sources(cfg, work, rng, p_valid):
    """OS engine: one operand stream (A column slice + B row slice per beat)."""
    beats = []
    for a, b, k in work:
        for kk in range(k):
            beats.append({"in_a": pack(a[:, kk], cfg.in_bits), "in_b": pack(b[kk, :], cfg.in_bits),
                          "in_last": int(kk == k - 1)})
    junk = {"in_a": _junk_lanes(cfg, rng, cfg.rows), "in_b": _junk_lanes(cfg, rng, cfg.cols),
            "in_last": lambda: int(rng.random() < 0.5)}
    return [(StreamSource(beats, junk, "in_valid", rng, p_valid), "in_ready")]


def stationary_sources(cfg, work, rng, p_valid):
    """WS/IS engine: the load stream (tile rows, row R-1 first) and the data stream."""
    loads, rows = [], []
    for x, w, m in work:
        for i in range(cfg.rows - 1, -1, -1):
            loads.append({"load_data": pack(w[i, :], cfg.in_bits)})
        for r in range(m):
            rows.append({"in_data": pack(x[r, :], cfg.in_bits), "in_last": int(r == m - 1)})
    ljunk = {"load_data": _junk_lanes(cfg, rng, cfg.cols)}
    ijunk = {"in_data": _junk_lanes(cfg, rng, cfg.rows), "in_last": lambda: int(rng.random() < 0.5)}
    return [(StreamSource(loads, ljunk, "load_valid", rng, p_valid), "load_ready"),
            (StreamSource(rows, ijunk, "in_valid", rng, p_valid), "in_ready")]

"""Per-engine cosim stimulus: each engine's module builds a `Case` (beats per input stream and the
expected result rows from its functional reference); cosim/lockstep.py drives any of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpesim.numerics import pack, value_range

__all__ = ["Case", "full_range", "lane_values"]


@dataclass(frozen=True)
class Case:
    """One cosim case.

    Attributes
    ----------
    beats : dict
        Input stream name -> list of beats, each a dict of raw port values (payload ports and the
        stream's `last`), in the order the engine must accept them.
    expected : list of np.ndarray
        Result blocks from the functional reference, in output order; their rows, concatenated, are
        the rows the output stream must deliver (lane values).
    latency_bound : int
        Most cycles the engine may go without a transfer on any stream while the testbench's
        sources are valid and its sink ready (sets the no-progress watchdog).
    """

    beats: dict[str, list[dict[str, int]]]
    expected: list[np.ndarray]
    latency_bound: int

    @property
    def rows(self) -> int:
        return sum(int(e.shape[0]) for e in self.expected)


def full_range(rng: np.random.Generator, shape, bits: int, signed: bool) -> np.ndarray:
    """Random full-range values of a `bits`-wide operand."""
    lo, hi = value_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def lane_values(values, bits: int) -> int:
    """Pack one beat's lane values (lane 0 in the low bits)."""
    return pack(values, bits)

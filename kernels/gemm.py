"""GEMM on the output-stationary systolic engine: tiling, stream beats, and an event-driven run.

`run_gemm` maps C = A @ B onto an R x C OS array tile by tile and drives the register-level cycle
model through the event kernel, touching Python once per tile; the result is checked against numpy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim.engines.systolic import SystolicConfig, SystolicModel, reference
from sim.errors import WorkloadError
from sim.kernel import Simulator

__all__ = ["GemmResult", "run_gemm", "random_operands", "tile_grid", "tile_beats"]

# Show a progress bar only when the run is worth watching: at least this many PE-updates
# (cycles * R * C, estimated before the run), about a second of compiled simulation.
PROGRESS_MIN_PE_UPDATES = 300_000_000


@dataclass(frozen=True, eq=False)
class GemmResult:
    """Outcome of one GEMM on the engine.

    Attributes
    ----------
    c : np.ndarray
        M x N result (int64), as the engine produced it.
    cycles : int
        Clock cycles from reset until the engine is idle after the last result row.
    macs : int
        Useful multiply-accumulates, M*N*K (padding lanes excluded).
    utilization : float
        macs / (cycles * R * C), from 0 to 1.
    matched : bool
        `c` equals the functional reference (exact numpy, wrapped to acc_bits).
    tiles : int
        Output tiles streamed through the array, ceil(M/R) * ceil(N/C).
    wall_s : float
        Wall-clock seconds of the simulation alone (operand checks and the reference excluded).
    out_cycles : np.ndarray
        Cycle in which each result row left the engine, in stream order (R rows per tile, padded
        rows included), for latency studies and cycle-exactness tests.
    """

    c: np.ndarray
    cycles: int
    macs: int
    utilization: float
    matched: bool
    tiles: int
    wall_s: float = 0.0
    out_cycles: np.ndarray | None = None


def _check_operand(name: str, x, cfg: SystolicConfig) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise WorkloadError(f"{name} must have an integer dtype, not {arr.dtype}")
    if arr.ndim != 2:
        raise WorkloadError(f"{name} must be a 2-D matrix, not an array of shape {arr.shape}")
    if 0 in arr.shape:
        raise WorkloadError(f"{name} must have at least one row and one column, "
                            f"not shape {arr.shape}")
    lo, hi = cfg.in_range
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        where = tuple(int(i) for i in np.argwhere(arr == bad)[0])
        kind = "signed" if cfg.signed else "unsigned"
        raise WorkloadError(f"{name} values must be in {lo}..{hi} ({kind} {cfg.in_bits}-bit), "
                            f"not {bad} at {list(where)}")
    return arr.astype(np.int64, copy=False)


def _check_dim(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise WorkloadError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise WorkloadError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def tile_grid(cfg: SystolicConfig, m: int, n: int) -> tuple[int, int]:
    """Number of output tiles along M and N: (ceil(M/R), ceil(N/C))."""
    return -(-m // cfg.rows), -(-n // cfg.cols)


def tile_beats(cfg: SystolicConfig, a: np.ndarray, b: np.ndarray, mi: int, ni: int):
    """Stream beats of output tile (mi, ni): K beats, lane i of in_a = A[mi*R+i, k],
    lane j of in_b = B[k, ni*C+j], zeros beyond M or N; `last` on beat K-1."""
    R, C = cfg.rows, cfg.cols
    k = a.shape[1]
    rows = a[mi * R:(mi + 1) * R, :]
    cols = b[:, ni * C:(ni + 1) * C]
    beats_a = np.zeros((k, R), np.int64)
    beats_a[:, :rows.shape[0]] = rows.T
    beats_b = np.zeros((k, C), np.int64)
    beats_b[:, :cols.shape[1]] = cols
    beats_last = np.zeros(k, np.int64)
    beats_last[-1] = 1
    return beats_a, beats_b, beats_last


class _GemmEngine:
    """Event-kernel component: each wake-up streams one whole tile through the compiled model.

    The engine is woken in the cycle after the previous tile's last beat was accepted, so simulator
    time and the model's clock are the same number.
    """

    def __init__(self, cfg: SystolicConfig, model: SystolicModel, a: np.ndarray, b: np.ndarray,
                 on_tile=None):
        self.cfg = cfg
        self.model = model
        self.out = np.zeros((a.shape[0], b.shape[1]), np.int64)
        gm, gn = tile_grid(cfg, a.shape[0], b.shape[1])
        self.ntiles = gm * gn
        # Operands padded to whole tiles, A transposed, so a tile's beats are one contiguous copy
        # of a column block (O(MK + KN) memory; the beats of other tiles are never built).
        k = a.shape[1]
        self._at = np.zeros((k, gm * cfg.rows), np.int64)
        self._at[:, :a.shape[0]] = a.T
        self._bp = np.zeros((k, gn * cfg.cols), np.int64)
        self._bp[:, :b.shape[1]] = b
        self._last = np.zeros(k, np.int64)
        self._last[-1] = 1
        self._tiles: Iterator[tuple[int, int]] = ((mi, ni) for mi in range(gm) for ni in range(gn))
        self._done_tiles: deque[tuple[int, int]] = deque()  # streamed, awaiting their rows
        self._pending = np.zeros((0, cfg.cols), np.int64)  # rows of the tile heading _done_tiles
        self.fed = 0
        # The engine's clock, counted here from run_beats' "cycles run" (a fresh model starts at 0).
        self.cycle = 0
        self.end_cycle = -1
        self._stamps: list[np.ndarray] = []  # cycle of every result row, in output order
        self._on_tile = on_tile

    def wake(self, sim, now: int) -> int:
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        mi, ni = next(self._tiles)
        self._done_tiles.append((mi, ni))
        self.fed += 1
        last_tile = self.fed == self.ntiles
        R, C = self.cfg.rows, self.cfg.cols
        beats_a = np.ascontiguousarray(self._at[:, mi * R:(mi + 1) * R])
        beats_b = np.ascontiguousarray(self._bp[:, ni * C:(ni + 1) * C])
        rows, stamps, ran = self.model.run_beats(beats_a, beats_b, self._last, drain=last_tile)
        self.cycle += ran
        self._collect(rows, stamps)
        if self._on_tile is not None:
            self._on_tile(self.fed)
        if last_tile:
            self.end_cycle = self.cycle
            return -1
        return self.cycle

    def _collect(self, rows: np.ndarray, stamps: np.ndarray) -> None:
        R, C = self.cfg.rows, self.cfg.cols
        self._stamps.append(stamps)
        pending = np.concatenate([self._pending, rows]) if len(self._pending) else rows
        while len(pending) >= R:
            mi, ni = self._done_tiles.popleft()
            m0, n0 = mi * R, ni * C
            m1, n1 = min(m0 + R, self.out.shape[0]), min(n0 + C, self.out.shape[1])
            self.out[m0:m1, n0:n1] = pending[:m1 - m0, :n1 - n0]
            pending = pending[R:]
        self._pending = pending

    def out_cycles(self) -> np.ndarray:
        return np.concatenate(self._stamps) if self._stamps else np.zeros(0, np.int64)


def _estimate_cycles(cfg: SystolicConfig, k: int, ntiles: int) -> int:
    return ntiles * max(k, 2 * cfg.rows + cfg.cols) + 2 * cfg.rows + cfg.cols


def run_gemm(cfg: SystolicConfig, a, b, *, interpreted: bool | None = None,
             progress: bool = False) -> GemmResult:
    """Run C = A @ B on the OS systolic cycle model, one event per tile.

    Parameters
    ----------
    cfg : SystolicConfig
        The engine (R x C, widths).
    a, b : array_like of int
        M x K and K x N operands, every value within ``cfg.in_range``.
    interpreted : bool or None
        Run the pure-Python source of the hot path instead of the compiled one (default: the
        TPESIM_INTERPRETED environment variable).
    progress : bool
        Show a progress bar on the terminal if the run is long.

    Raises
    ------
    WorkloadError
        Operands are not integer matrices, their shapes do not chain, or a value does not fit.
    """
    if not isinstance(cfg, SystolicConfig):
        raise WorkloadError(f"cfg must be a SystolicConfig, not {type(cfg).__name__}")
    a = _check_operand("a", a, cfg)
    b = _check_operand("b", b, cfg)
    if a.shape[1] != b.shape[0]:
        raise WorkloadError(f"a columns must equal b rows (K), not {a.shape[1]} and {b.shape[0]} "
                            f"(a is {a.shape[0]}x{a.shape[1]}, b is {b.shape[0]}x{b.shape[1]})")
    m, k = a.shape
    n = b.shape[1]
    model = SystolicModel(cfg, interpreted=interpreted)
    gm, gn = tile_grid(cfg, m, n)
    ntiles = gm * gn

    bar = None
    on_tile = None
    if progress and ntiles > 1 and \
            _estimate_cycles(cfg, k, ntiles) * cfg.rows * cfg.cols >= PROGRESS_MIN_PE_UPDATES:
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=True)
        task = bar.add_task(f"gemm {m}x{n}x{k} on {cfg.name}", total=ntiles)
        on_tile = lambda done: bar.update(task, completed=done)  # noqa: E731

    t0 = time.perf_counter()
    engine = _GemmEngine(cfg, model, a, b, on_tile)
    sim = Simulator()
    sim.schedule(engine, 0)
    if bar is not None:
        with bar:
            sim.run()
    else:
        sim.run()
    wall_s = time.perf_counter() - t0

    cycles = engine.end_cycle
    macs = m * n * k
    c = engine.out
    matched = bool(np.array_equal(c, reference(cfg, a, b)))
    return GemmResult(c=c, cycles=cycles, macs=macs,
                      utilization=macs / (cycles * cfg.rows * cfg.cols), matched=matched,
                      tiles=ntiles, wall_s=wall_s, out_cycles=engine.out_cycles())


def random_operands(cfg: SystolicConfig, m: int, n: int, k: int,
                    seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random M x K and K x N int64 operands over the whole input range of `cfg`.

    The range's extremes (e.g. -128 and 127 for signed 8-bit) are always present, at random
    positions, because the most negative value is where wrap-around bugs hide.
    """
    m, n, k = _check_dim("m", m), _check_dim("n", n), _check_dim("k", k)
    rng = np.random.default_rng(seed)
    lo, hi = cfg.in_range
    a = rng.integers(lo, hi, size=(m, k), endpoint=True, dtype=np.int64)
    b = rng.integers(lo, hi, size=(k, n), endpoint=True, dtype=np.int64)
    for x in (a, b):
        flat = x.reshape(-1)
        idx = rng.permutation(flat.size)
        flat[idx[0]] = lo
        if flat.size > 1:
            flat[idx[1]] = hi
    return a, b

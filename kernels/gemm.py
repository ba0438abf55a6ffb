"""GEMM (and conv2d lowered to a GEMM) on any registered engine, at two fidelities.

`run_gemm` maps C = A @ B onto the engine tile by tile (or fold by fold) and runs it on the event
kernel through `sim.timing.TileEngine` with the memory model; the engine's registry entry supplies
its tile timing, its cycle-level backend (one register-model run per tile) and its reference.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from tpesim.kernels.stationary import StationaryCycleBackend
from tpesim.config import EngineConfig, check_int
from tpesim.engines.systolic import SystolicConfig, SystolicModel, reference
from tpesim.errors import TpesimError, WorkloadError
from tpesim.memory import MemoryConfig, static_traffic
from tpesim.numerics import value_range
from tpesim.registry import engine_of
from tpesim.timing import (FIDELITIES, TileStream, TimingReport, check_gemm_shape, make_report,
                        run_stream, time_stream)

__all__ = ["GemmResult", "run_gemm", "time_gemm", "run_conv", "time_conv", "random_operands",
           "tile_grid", "tile_beats", "OsStreamBackend", "OsCycleBackend", "CYCLE_BACKENDS",
           "register_cycle_backend", "systolic_cycle_backend", "engine_faces"]

# Show a progress bar (stderr) once a run has lasted this long and is not about to finish.
PROGRESS_AFTER_S = 1.5


@dataclass(frozen=True, eq=False, kw_only=True)
class GemmResult(TimingReport):
    """Outcome of one GEMM on the engine: a `sim.timing.TimingReport` plus values.

    Besides the report's fields (cycles, compute_cycles, stall_cycles, macs, utilization, tiles,
    per-operand SRAM/DRAM bytes, ...):

    Attributes
    ----------
    c : np.ndarray or None
        M x N result (int64): at cycle fidelity as the engine produced it; at tile fidelity from
        numpy when verified; None otherwise.
    matched : bool or None
        `c` equals the functional reference (exact numpy, wrapped to acc_bits); None when not
        checked.
    wall_s : float
        Wall-clock seconds of the simulation alone (operand checks and the reference excluded).
    out_cycles : np.ndarray
        Cycle in which each result row left the engine, in stream order (R rows per tile, padded
        rows included, for OS; M or N partial-sum rows per fold for WS/IS), for latency studies
        and cycle-exactness tests.
    """

    c: np.ndarray | None = None
    matched: bool | None = None


def _operand(cfg: EngineConfig, role: str):
    for op in cfg.operands():
        if op.role == role:
            return op
    raise WorkloadError(f"engine {cfg.engine!r} has no operand with role {role!r}")


def _check_operand(name: str, x, cfg: EngineConfig) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise WorkloadError(f"{name} must have an integer dtype, not {arr.dtype}")
    if arr.ndim != 2:
        raise WorkloadError(f"{name} must be a 2-D matrix, not an array of shape {arr.shape}")
    if 0 in arr.shape:
        raise WorkloadError(f"{name} must have at least one row and one column, "
                            f"not shape {arr.shape}")
    op = _operand(cfg, name)
    lo, hi = value_range(op.bits, op.signed)
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        where = tuple(int(i) for i in np.argwhere(arr == bad)[0])
        kind = "signed" if op.signed else "unsigned"
        raise WorkloadError(f"{name} values must be in {lo}..{hi} ({kind} {op.bits}-bit), "
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


class OsStreamBackend:
    """Shared part of the output-stationary cycle backends of `sim.timing.TileEngine`: one
    free-running `model.run_beats(beats_a, beats_b, last, valid_from=, ready_from=, drain=)` per
    output tile, tiles row-block-major.

    `stream(t, ...)` streams tile t's beats (source valid from the cycle its operands are in SRAM)
    while tile t-1's rows drain (sink ready from the cycle the output buffer has room); `drain`
    empties the last tile. Holds reach the model as the cycle they end, never as per-cycle arrays
    (the cores skip frozen stretches: a very slow DRAM costs neither memory nor time).

    A subclass names its register model (`model_cls`), the config fields of an output tile's
    (rows, cols) (`shape_fields`) and its reference (`reference`), and defines `_layout(k, a, b)`
    (the operands as beats; it sets `_last`, one tile's last flags, and `_no_beats`, empty beat
    arrays) and `_beats(mi, ni)` (tile (mi, ni)'s beat arrays).
    """

    model_cls: type
    shape_fields: tuple[str, str]

    def __init__(self, cfg, m: int, n: int, k: int, a: np.ndarray | None = None,
                 b: np.ndarray | None = None, *, interpreted: bool | None = None):
        self.cfg = cfg
        self.model = self.model_cls(cfg, interpreted=interpreted)
        rows, cols = self.tile_shape(cfg)
        self.m, self.n = m, n
        self.gm, self.gn = -(-m // rows), -(-n // cols)
        self.values = a is not None
        self.out = np.zeros((m, n), np.int64) if self.values else None
        self.cycle = 0  # the model's clock (a fresh model starts at 0)
        self._stamps: list[np.ndarray] = []
        self._layout(k, a, b)

    @classmethod
    def tile_shape(cls, cfg) -> tuple[int, int]:
        return getattr(cfg, cls.shape_fields[0]), getattr(cfg, cls.shape_fields[1])

    def stream(self, t, now, ready, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        rows, stamps, ran = self.model.run_beats(
            *self._beats(*divmod(t, self.gn)), self._last, valid_from=max(ready) - now,
            ready_from=out_free - now if t else 0, drain=False)
        self.cycle += ran
        prev_done = -1
        if t:
            prev_done = self._collect(t - 1, rows, stamps)
        elif len(rows):
            raise RuntimeError(f"{len(rows)} result rows before the first tile finished")
        return self.cycle - 1, prev_done, self.cycle

    def drain(self, now, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        rows, stamps, ran = self.model.run_beats(*self._no_beats, ready_from=out_free - now,
                                                 drain=True)
        self.cycle += ran
        return self._collect(self.gm * self.gn - 1, rows, stamps)

    def _collect(self, t: int, rows: np.ndarray, stamps: np.ndarray) -> int:
        R, C = self.tile_shape(self.cfg)
        if len(rows) != R:
            raise RuntimeError(f"tile {t} delivered {len(rows)} result rows, not {R}")
        self._stamps.append(stamps)
        if self.values:
            mi, ni = divmod(t, self.gn)
            m0, n0 = mi * R, ni * C
            m1, n1 = min(m0 + R, self.m), min(n0 + C, self.n)
            self.out[m0:m1, n0:n1] = rows[:m1 - m0, :n1 - n0]
        return int(stamps[-1])

    def row_cycles(self) -> np.ndarray:
        return np.concatenate(self._stamps) if self._stamps else np.zeros(0, np.int64)

    @classmethod
    def tile_values(cls, cfg, stream: TileStream, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """C assembled from per-tile references along the tile stream's blocks (tile-level
        values: checks that the stream the timing used covers C exactly)."""
        R, C = cls.tile_shape(cfg)
        m, n = a.shape[0], b.shape[1]
        c = np.full((m, n), np.iinfo(np.int64).min, np.int64)
        for mi, ni in zip(stream.inputs[0].block.tolist(), stream.inputs[1].block.tolist()):
            c[mi * R:(mi + 1) * R, ni * C:(ni + 1) * C] = cls.reference(
                cfg, a[mi * R:(mi + 1) * R], b[:, ni * C:(ni + 1) * C])
        return c


class OsCycleBackend(OsStreamBackend):
    """Cycle-level backend of `sim.timing.TileEngine` for the OS array (`OsStreamBackend`): a
    tile's K beats carry A's rows and B's columns of its block. With a and b None the beats are
    zeros (timing only)."""

    model_cls = SystolicModel
    shape_fields = ("rows", "cols")
    reference = staticmethod(reference)

    def _layout(self, k: int, a: np.ndarray | None, b: np.ndarray | None) -> None:
        cfg = self.cfg
        # Operands padded to whole tiles, A transposed, so a tile's beats are one contiguous copy
        # of a column block (O(MK + KN) memory; the beats of other tiles are never built).
        self._at = np.zeros((k, self.gm * cfg.rows), np.int64)
        self._bp = np.zeros((k, self.gn * cfg.cols), np.int64)
        if self.values:
            self._at[:, :self.m] = a.T
            self._bp[:, :self.n] = b
        self._last = np.zeros(k, np.int64)
        self._last[-1] = 1
        self._no_beats = (np.zeros((0, cfg.rows), np.int64), np.zeros((0, cfg.cols), np.int64),
                          np.zeros(0, np.int64))

    def _beats(self, mi: int, ni: int) -> tuple[np.ndarray, np.ndarray]:
        R, C = self.cfg.rows, self.cfg.cols
        return (np.ascontiguousarray(self._at[:, mi * R:(mi + 1) * R]),
                np.ascontiguousarray(self._bp[:, ni * C:(ni + 1) * C]))


CYCLE_BACKENDS: dict[str, type] = {"os": OsCycleBackend}


def register_cycle_backend(dataflow: str, cls: type) -> type:
    """Give a systolic dataflow its cycle-level backend (interface of `OsCycleBackend`:
    constructor (cfg, m, n, k, a, b, interpreted=...), stream, drain, row_cycles, `out`, and
    `tile_values(cfg, stream, a, b)`)."""
    CYCLE_BACKENDS[dataflow] = cls
    return cls


register_cycle_backend("ws", StationaryCycleBackend)
register_cycle_backend("is", StationaryCycleBackend)


def systolic_cycle_backend(cfg: SystolicConfig) -> type:
    """The systolic engine's cycle-level backend for its dataflow (registry face `cycle_backend`)."""
    return _cycle_backend_class(cfg.dataflow)


def _cycle_backend_class(dataflow: str) -> type:
    try:
        return CYCLE_BACKENDS[dataflow]
    except KeyError:
        raise TpesimError(f"dataflow {dataflow!r} is not supported at cycle level in this version "
                          f"(supported: {', '.join(map(repr, CYCLE_BACKENDS))})") from None


class _Progress:
    """A rich progress bar on stderr that appears only once a run has lasted PROGRESS_AFTER_S."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.bar = None
        self.task = None
        self.offset = 0  # tiles done in earlier passes
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.t0 < PROGRESS_AFTER_S or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=self.total or total)
            self.bar.start()
        self.bar.update(self.task, completed=self.offset + done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _check_engine(cfg) -> None:
    if not isinstance(cfg, EngineConfig):
        raise WorkloadError(f"cfg must be an engine config (e.g. SystolicConfig), not "
                            f"{type(cfg).__name__}")
    engine_of(cfg)


def _check_fidelity(fidelity: str) -> str:
    if fidelity not in FIDELITIES:
        raise TpesimError(f"fidelity must be one of {', '.join(map(repr, FIDELITIES))}, "
                          f"not {fidelity!r}")
    return fidelity


def _check_memory(memory) -> MemoryConfig:
    if memory is None:
        return MemoryConfig()
    if not isinstance(memory, MemoryConfig):
        raise WorkloadError(f"memory must be a MemoryConfig, not {type(memory).__name__}")
    return memory


def engine_faces(cfg: EngineConfig, fidelity: str):
    """(tile timing, cycle backend class or None, reference) of the config's engine."""
    eng = engine_of(cfg)
    backend_cls = eng.load("cycle_backend")(cfg) if fidelity == "cycle" else None
    return eng.load("timing")(cfg), backend_cls, eng.load("reference")


def _tile_values(cfg: EngineConfig, stream: TileStream, a: np.ndarray, b: np.ndarray):
    return engine_of(cfg).load("cycle_backend")(cfg).tile_values(cfg, stream, a, b)


# The cycle level steps every cycle the engine runs (idle ones included): a run that must take
# longer than this is refused up front, pointing at the tile level (the same cycles, proven equal).
MAX_CYCLES = 1 << 34


def check_cycle_budget(timing, stream: TileStream, memory: MemoryConfig, macs: int,
                       max_cycles: int) -> None:
    """Refuse a cycle-level run whose cycles are bound to exceed `max_cycles`: at least MACs / the
    engine's peak, and at least the DRAM link's busy time (its bytes do not depend on timing)."""
    check_int("max_cycles", max_cycles)
    bound = -(-macs // timing.peak_macs_per_cycle)
    hint = "use fidelity 'tile' (the same cycles, proven equal to the cycle level) or raise max_cycles"
    if memory.dram_bw is not None:
        tr = static_traffic(stream, memory)
        dram = sum(v for f, v in tr.items() if f.startswith("dram_"))
        link = math.ceil(dram / memory.dram_bw)
        if link > max_cycles and link > bound:
            raise WorkloadError(f"dram_bw must let the run end within max_cycles {max_cycles:,} at "
                                f"cycle fidelity, not {memory.dram_bw:g} bytes/cycle ({dram:,} DRAM "
                                f"bytes take {_count(link)} cycles): {hint}")
    if bound > max_cycles:
        raise WorkloadError(f"max_cycles must be at least the run's {_count(bound)} cycles (MACs at "
                            f"the engine's peak) at cycle fidelity, not {max_cycles:,}: {hint}")


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"{n:.3e}"


def _run(cfg: EngineConfig, m: int, n: int, k: int, a, b, *, fidelity: str,
         memory: MemoryConfig, verify: bool, interpreted, progress: bool, label: str,
         record_rows: bool = True, max_cycles: int = MAX_CYCLES) -> GemmResult:
    """The shared driver of run_gemm and time_gemm (a, b may be None for timing only)."""
    timing, backend_cls, reference_fn = engine_faces(cfg, fidelity)
    stream = timing.gemm_stream(m, n, k)
    if fidelity == "cycle":
        check_cycle_budget(timing, stream, memory, m * n * k, max_cycles)
    bar = _Progress(label, progress)
    c = None
    try:
        t0 = time.perf_counter()
        if fidelity == "tile":
            compute_cycles, run, out_cycles = time_stream(timing, stream, memory,
                                                          record_rows=record_rows, on_tile=bar)
        else:
            passes = 1 if memory.ideal else 2
            bar.total = passes * stream.ntiles
            backend = backend_cls(cfg, m, n, k, a, b, interpreted=interpreted)
            run = run_stream(stream, backend, memory, bar)
            out_cycles = backend.row_cycles()
            c = backend.out
            if memory.ideal:
                compute_cycles = run.cycles
            else:
                # the stall-free count from the register model too: a second, value-free pass
                bar.offset = stream.ntiles
                ideal = backend_cls(cfg, m, n, k, interpreted=interpreted)
                compute_cycles = run_stream(stream, ideal, MemoryConfig(), bar).cycles
        wall_s = time.perf_counter() - t0
    finally:
        bar.close()
    matched = None
    if verify and a is not None:
        if fidelity == "tile":
            c = _tile_values(cfg, stream, a, b)
        matched = bool(np.array_equal(c, reference_fn(cfg, a, b)))
    return make_report(timing=timing, fidelity=fidelity, m=m, n=n, k=k, stream=stream, run=run,
                       compute_cycles=compute_cycles, memory=memory, wall_s=wall_s,
                       out_cycles=out_cycles, cls=GemmResult, c=c, matched=matched)


def run_gemm(cfg: EngineConfig, a, b, *, fidelity: str = "cycle",
             memory: MemoryConfig | None = None, verify: bool | None = None,
             interpreted: bool | None = None, progress: bool = False,
             max_cycles: int = MAX_CYCLES) -> GemmResult:
    """Run C = A @ B on the engine of `cfg`, one event per tile.

    Parameters
    ----------
    cfg : SystolicConfig
        The engine (R x C, dataflow, widths).
    a, b : array_like of int
        M x K and K x N operands, every value within ``cfg.in_range``.
    fidelity : {"cycle", "tile"}
        "cycle": the register-level model computes C. "tile": tile-level timing; C from numpy
        (only if `verify`).
    memory : MemoryConfig or None
        SRAM buffers and DRAM link (default: ideal, no stalls).
    verify : bool or None
        Check C against the functional reference (`matched`); at tile fidelity this is what
        produces C at all. Default: True at cycle fidelity, False at tile fidelity.
    interpreted : bool or None
        Run the pure-Python source of the hot path instead of the compiled one (default: the
        TPESIM_INTERPRETED environment variable).
    progress : bool
        Show a progress bar on stderr if the run lasts more than a second or two.
    max_cycles : int
        Cycle fidelity refuses (up front) a run bound to take longer (default 2**34).

    Raises
    ------
    WorkloadError
        Operands are not integer matrices, their shapes do not chain, a value does not fit, a
        tile's operand does not fit its SRAM, or the run exceeds max_cycles (cycle fidelity) or
        the tile level's block budget.
    TpesimError
        The dataflow is not supported at this fidelity.
    """
    _check_engine(cfg)
    _check_fidelity(fidelity)
    memory = _check_memory(memory)
    a = _check_operand("a", a, cfg)
    b = _check_operand("b", b, cfg)
    if a.shape[1] != b.shape[0]:
        raise WorkloadError(f"a columns must equal b rows (K), not {a.shape[1]} and {b.shape[0]} "
                            f"(a is {a.shape[0]}x{a.shape[1]}, b is {b.shape[0]}x{b.shape[1]})")
    m, k = a.shape
    n = b.shape[1]
    if verify is None:
        verify = fidelity == "cycle"
    return _run(cfg, m, n, k, a, b, fidelity=fidelity, memory=memory, verify=verify,
                interpreted=interpreted, progress=progress, max_cycles=max_cycles,
                label=f"gemm {m}x{n}x{k} on {cfg.name} ({fidelity})")


def time_gemm(cfg: EngineConfig, m: int, n: int, k: int, *, memory: MemoryConfig | None = None,
              progress: bool = False, record_rows: bool = False) -> GemmResult:
    """Tile-level timing of an M x N x K GEMM without operand values (c and matched are None)."""
    _check_engine(cfg)
    m, n, k = check_gemm_shape(m, n, k)
    engine_faces(cfg, "tile")
    return _run(cfg, m, n, k, None, None, fidelity="tile", memory=_check_memory(memory),
                verify=False, interpreted=None, progress=progress, record_rows=record_rows,
                label=f"gemm {m}x{n}x{k} on {cfg.name} (tile)")


# -- conv2d, lowered by im2col (kernels/conv.py) onto the same GEMM --------------------------------
def _conv_reference(cfg: EngineConfig, layer, x, w) -> np.ndarray:
    from tpesim.kernels.conv import conv2d_direct
    from tpesim.numerics import wrap_array

    return wrap_array(conv2d_direct(x, w, layer), cfg.acc_bits, cfg.signed)


def run_conv(cfg: EngineConfig, layer, x, w, *, fidelity: str = "cycle",
             memory: MemoryConfig | None = None, verify: bool | None = None,
             interpreted: bool | None = None, progress: bool = False,
             max_cycles: int = MAX_CYCLES) -> GemmResult:
    """conv2d (NHWC x, HWIO w) as im2col + GEMM on the engine; `c` is the NHWC output and
    `matched` compares it with the direct numpy convolution (wrapped to acc_bits). m, n, k are the
    lowered GEMM's. `verify` defaults to True at cycle fidelity, False at tile fidelity."""
    from tpesim.kernels.conv import fold_output, im2col, weights_to_b

    _check_fidelity(fidelity)
    if verify is None:
        verify = fidelity == "cycle"

    a = im2col(x, layer)
    b = weights_to_b(w, layer)
    res = run_gemm(cfg, a, b, fidelity=fidelity, memory=memory, verify=False,
                   interpreted=interpreted, progress=progress, max_cycles=max_cycles)
    c, matched = res.c, None
    if verify:
        if c is None:  # tile fidelity: numpy values along the tile stream
            timing, _, _ = engine_faces(cfg, "tile")
            c = _tile_values(cfg, timing.gemm_stream(*layer.gemm_shape()), _check_operand(
                "a", a, cfg), _check_operand("b", b, cfg))
        c = fold_output(c, layer)
        # the weights as the engine uses them (an N:M engine prunes B along K: im2col's K order)
        w_used = np.asarray(cfg.operand_as_used("b", b)).reshape(np.shape(w))
        matched = bool(np.array_equal(c, _conv_reference(cfg, layer, x, w_used)))
    elif c is not None:
        c = fold_output(c, layer)
    return dataclasses.replace(res, c=c, matched=matched)


def time_conv(cfg: EngineConfig, layer, *, memory: MemoryConfig | None = None,
              progress: bool = False) -> GemmResult:
    """Tile-level timing of a conv2d layer (its im2col GEMM), without values."""
    m, n, k = layer.gemm_shape()
    return time_gemm(cfg, m, n, k, memory=memory, progress=progress)


def random_operands(cfg: EngineConfig, m: int, n: int, k: int,
                    seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random M x K and K x N int64 operands over the whole input range of `cfg`.

    The range's extremes (e.g. -128 and 127 for signed 8-bit) are always present, at random
    positions, because the most negative value is where wrap-around bugs hide.
    """
    m, n, k = _check_dim("m", m), _check_dim("n", n), _check_dim("k", k)
    rng = np.random.default_rng(seed)
    a = rng.integers(*value_range(_operand(cfg, "a").bits, _operand(cfg, "a").signed),
                     size=(m, k), endpoint=True, dtype=np.int64)
    b = rng.integers(*value_range(_operand(cfg, "b").bits, _operand(cfg, "b").signed),
                     size=(k, n), endpoint=True, dtype=np.int64)
    for x, role in ((a, "a"), (b, "b")):
        lo, hi = value_range(_operand(cfg, role).bits, _operand(cfg, role).signed)
        flat = x.reshape(-1)
        idx = rng.permutation(flat.size)
        flat[idx[0]] = lo
        if flat.size > 1:
            flat[idx[1]] = hi
    return a, b

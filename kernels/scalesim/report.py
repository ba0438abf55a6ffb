"""Per-layer reports: SCALE-Sim-compatible timing beside tpesim's own, with the reason for the delta."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from tpesim.errors import ConfigError, TpesimError

from .compat import ScaleSimCompute, scalesim_compute, tpesim_memory_fields
from .parse import Layer, ScaleSimConfig

# -------------------------------------------------------------------------------------------------
# Report: SCALE-Sim-compatible timing side by side with tpesim's own
# -------------------------------------------------------------------------------------------------
REPORT_COLUMNS = (
    "layer", "M", "N", "K", "dataflow", "rows", "cols", "folds", "per_fold_cycles",
    "compute_cycles", "stall_cycles", "total_cycles", "timing", "scalesim_compute_cycles",
    "tpesim_compute_cycles", "delta_cycles", "reason", "macs", "utilization",
    "mapping_efficiency", "compute_utilization", "ifmap_sram_read_bytes",
    "filter_sram_read_bytes", "ofmap_sram_write_bytes", "sram_read_bytes", "sram_write_bytes",
)
# tpesim's timing of the layer with the config's memory (`tpesim run gemm --json` names, prefixed
# `tpesim_`: cycles, stall_cycles, sram/dram bytes per operand a = ifmap, b = filter, c = ofmap),
# and the memory it assumed (run gemm's names; None = unbounded).
TRAFFIC_FIELDS = tuple(f"{kind}_{rw}_bytes_{op}" for op in "abc" for kind in ("sram", "dram")
                       for rw in ("read", "write"))
MEMORY_FIELDS = ("sram_kib_a", "sram_kib_b", "sram_kib_c", "dram_bw_bytes_per_cycle",
                 "dram_latency_cycles")
TPESIM_MEMORY_COLUMNS = ("tpesim_cycles", "tpesim_stall_cycles",
                         *(f"tpesim_{f}" for f in TRAFFIC_FIELDS), *MEMORY_FIELDS)
REPORT_COLUMNS += TPESIM_MEMORY_COLUMNS

# The engine tpesim times a SCALE-Sim layer on: int8 operands (SCALE-Sim's 1-byte words) and the
# systolic engine's default accumulator for int8, whose width is what C's bytes count.
TPESIM_IN_BITS = 8
TPESIM_ACC_BITS = 32

TileTiming = Callable[[int, int, int, int, int, str], Any]
MemoryTiming = Callable[[int, int, int, int, int, str, dict], Any]


def load_tile_timing() -> tuple[TileTiming | None, str]:
    """tpesim's tile-level GEMM timing if present, else (None, why not)."""
    try:
        from tpesim.timing import tile_gemm_cycles
    except ImportError as e:
        return None, f"tpesim tile timing unavailable ({e}); SCALE-Sim-compatible timing only"
    return tile_gemm_cycles, ""


def load_memory_timing() -> tuple[MemoryTiming | None, str]:
    """tpesim's tile-level GEMM timing with a memory (`tile_gemm` + `MemoryConfig`), else
    (None, why not). The callable takes (M, N, K, rows, cols, dataflow, MemoryConfig fields) and
    returns tpesim's TimingReport."""
    try:
        from tpesim.memory import MemoryConfig
        from tpesim.timing import tile_gemm
    except ImportError as e:
        return None, f"tpesim memory timing unavailable ({e})"

    def memory_timing(M, N, K, rows, cols, dataflow, memory):  # noqa: N803
        return tile_gemm(M, N, K, rows, cols, dataflow=dataflow, in_bits=TPESIM_IN_BITS,
                         acc_bits=TPESIM_ACC_BITS, memory=MemoryConfig(**memory))

    return memory_timing, ""


def memory_fields_report(memory: dict) -> dict[str, Any]:
    """MemoryConfig keyword arguments -> the report's MEMORY_FIELDS (run gemm's names)."""
    return {"sram_kib_a": memory["sram_kib_a"], "sram_kib_b": memory["sram_kib_b"],
            "sram_kib_c": memory["sram_kib_c"], "dram_bw_bytes_per_cycle": memory["dram_bw"],
            "dram_latency_cycles": memory["dram_latency"]}


def describe_memory(cfg: ScaleSimConfig) -> str:
    """One phrase: the memory tpesim's stall cycles assume for this config."""
    m = tpesim_memory_fields(cfg)
    if m["dram_bw"] is None:
        return ("tpesim memory: ideal (CALC: SCALE-Sim assumes the bandwidth it needs; tpesim "
                "unbounded SRAMs and DRAM link, 0 stall cycles)")
    return (f"tpesim memory: SRAM a/b/c {m['sram_kib_a']:g}/{m['sram_kib_b']:g}/"
            f"{m['sram_kib_c']:g} KiB, one DRAM link of {m['dram_bw']:g} B/cycle shared by all "
            f"operands, latency {m['dram_latency']} cycle")


def _cycles_of(value: Any) -> int:
    if isinstance(value, dict):
        value = value.get("compute_cycles", value.get("cycles"))
    elif hasattr(value, "compute_cycles") or hasattr(value, "cycles"):
        value = getattr(value, "compute_cycles", getattr(value, "cycles", None))
    try:
        if isinstance(value, bool):
            raise TypeError
        return int(operator.index(value))
    except TypeError:
        raise TypeError(f"tile_gemm_cycles must return a number of cycles, not {value!r}") from None


def explain_delta(sc: ScaleSimCompute, tpesim_cycles: int | None) -> str:
    """Why tpesim's cycles differ from SCALE-Sim's for this layer (SCALE-Sim modelling choices)."""
    if tpesim_cycles is None:
        return ""
    delta = tpesim_cycles - sc.compute_cycles
    if delta == 0:
        return "same"
    if sc.mapping.preload:
        return _explain_stationary(sc, tpesim_cycles, delta)
    return _explain_pipelined(sc, tpesim_cycles, delta)


def _sparsity_note(sc: ScaleSimCompute) -> list[str]:
    if sc.k_eff == sc.K:
        return []
    return [f"SCALE-Sim streams the N:M-compressed reduction ({sc.k_eff} of {sc.K} rows), tpesim the "
            f"dense one"]


def _explain_pipelined(sc: ScaleSimCompute, ours: int, delta: int) -> str:
    """OS. tpesim's array takes a fold's last beat once the previous fold's wavefront has reached the
    corner PE and its results have drained, so folds overlap (docs/architecture.md):
        tpesim     K - 1 + (F - 1) max(K, 2R + C) + 2R + C
        SCALE-Sim  F (R + C + K - 2) - 1               (folds serialized; -1: last 0-based cycle)
    with F = ceil(M/R) ceil(N/C) and tpesim's dense K. Long reductions gain from the overlap, short
    ones (K < 2R + C) pay the drain per fold: the sign of the delta follows from these two forms."""
    R, C, K = sc.rows, sc.cols, sc.K
    F = math.ceil(sc.M / R) * math.ceil(sc.N / C)
    step = max(K, 2 * R + C)
    serial = R + C + sc.k_eff - 2
    parts = [f"{delta:+d} ({'tpesim slower' if delta > 0 else 'tpesim faster'})"]
    if ours == K - 1 + (F - 1) * step + 2 * R + C:
        bound = (f"its K = {K} beats" if K >= 2 * R + C else
                 f"the previous fold's wavefront and drain, 2R+C = {2 * R + C} > K = {K}")
        parts.append(f"tpesim overlaps its {F} folds: after the first, each costs max(K, 2R+C) = {step} "
                     f"cycles (bound by {bound}), plus 2R+C = {2 * R + C} to drain the last; SCALE-Sim "
                     f"serializes them at R+C+K-2 = {serial} each and reports its last 0-based cycle "
                     f"(-1, issue #125)")
    else:
        parts.append(f"SCALE-Sim serializes its {sc.folds} folds at {serial} cycles each and reports "
                     f"its last 0-based cycle (-1, issue #125); tpesim overlaps folds")
    return "; ".join(parts + _sparsity_note(sc))


def _explain_stationary(sc: ScaleSimCompute, ours: int, delta: int) -> str:
    """WS/IS. Both models serialize the folds (tpesim's single-buffered array loads a fold's
    stationary tile only once the previous fold's last row has passed the last PE) and pad partial
    folds to the whole array, so with the same folds the two closed forms differ by a constant:
        tpesim     F (2R + C + T - 1) + 1    (R loads, T rows, R + C - 1 until the last MAC; +1)
        SCALE-Sim  F (2R + C + T - 2) - 1    (R loads, T rows, R + C - 2 skew and drain; -1)
    delta = F + 2: +1 per fold because tpesim's stream lanes enter through an input register
    (lane i is delayed i + 1 cycles, SCALE-Sim's skew is i), +1 because the last result row is
    read from the last PE's register the cycle after its MAC, +1 for SCALE-Sim's -1."""
    R, C, T, F = sc.rows, sc.cols, sc.temporal, sc.folds
    per = 2 * R + C + T - 1
    if ours == F * per + 1 and delta == F + 2:
        return (f"{delta:+d} = {F} folds x 1 + 1 + 1: an input register on our stream lanes "
                f"({per} cycles per fold, SCALE-Sim {per - 1}; folds serialized in both); our last "
                f"result row leaves the cycle after its MAC; SCALE-Sim reports its last 0-based "
                f"cycle (-1, issue #125)")
    parts = [f"{delta:+d}: SCALE-Sim reports its last 0-based cycle (-1, issue #125)"]
    parts += _sparsity_note(sc)
    parts.append(f"SCALE-Sim's {F} folds take {sc.per_fold_cycles} cycles each (2R+C+T-2); a "
                 f"single-buffered "
                 f"tpesim fold takes 2R+C+T-1 (input register), a double-buffered one overlaps "
                 f"the next fold's load with this one's rows")
    return "; ".join(parts)


def layer_report(cfg: ScaleSimConfig, layer: Layer, *, tile_timing: TileTiming | None = None,
                 compat: bool = False, memory_timing: MemoryTiming | None = None
                 ) -> dict[str, Any]:
    """One report row: SCALE-Sim-compatible numbers, tpesim's timing, and why they differ.

    `compute_cycles` is tpesim's when available and `compat` is False, else SCALE-Sim's;
    `stall_cycles` and `total_cycles` belong to the same timing (tpesim's stalls with the config's
    memory; SCALE-Sim's are 0 in CALC mode and not modelled in USER mode). `tpesim_cycles` and
    `tpesim_stall_cycles` are always tpesim's, with the memory `tpesim_memory_fields(cfg)`.
    """
    sparsity = layer.sparsity if cfg.sparsity_support else (1, 1)
    sc = scalesim_compute(layer.M, layer.N, layer.K, cfg.rows, cfg.cols, cfg.dataflow,
                          sparsity=sparsity)
    ours, why_not = None, ""
    if tile_timing is not None:
        try:
            ours = _cycles_of(tile_timing(layer.M, layer.N, layer.K, cfg.rows, cfg.cols,
                                          cfg.dataflow))
        except (TpesimError, NotImplementedError) as e:
            why_not = f"tpesim timing: {' '.join(str(e).split())}"
    memory = tpesim_memory_fields(cfg)
    tp, mem_why = None, ""
    if memory_timing is not None:
        try:
            tp = memory_timing(layer.M, layer.N, layer.K, cfg.rows, cfg.cols, cfg.dataflow, memory)
        except (TpesimError, NotImplementedError) as e:
            mem_why = f"tpesim memory: {' '.join(str(e).split())}"
    user = cfg.interface_bandwidth == "USER"
    use_ours = ours is not None and not compat
    compute = ours if use_ours else sc.compute_cycles
    # SCALE-Sim's CALC mode is stall-free (reads always hit), and so is tpesim's ideal memory.
    stall = None if user else 0
    if use_ours and tp is not None:
        stall = tp.stall_cycles
    total = compute + stall if stall is not None else None
    reason = "; ".join(filter(None, [explain_delta(sc, ours) or why_not, mem_why]))
    if user and not use_ours:
        reason = "; ".join(filter(None, [reason, "SCALE-Sim's USER-mode stalls not modelled"]))
    elif user and tp is None and not mem_why:
        reason = "; ".join(filter(None, [reason, "USER-mode memory stalls not modelled"]))
    traffic = {f"tpesim_{f}": None if tp is None else getattr(tp, f) for f in TRAFFIC_FIELDS}
    return {
        "layer": layer.name, "M": layer.M, "N": layer.N, "K": layer.K,
        "dataflow": cfg.dataflow, "rows": cfg.rows, "cols": cfg.cols, "folds": sc.folds,
        "per_fold_cycles": sc.per_fold_cycles, "compute_cycles": compute, "stall_cycles": stall,
        "total_cycles": total, "timing": "tpesim" if use_ours else "scalesim",
        "scalesim_compute_cycles": sc.compute_cycles, "tpesim_compute_cycles": ours,
        "delta_cycles": None if ours is None else ours - sc.compute_cycles, "reason": reason,
        "macs": sc.macs, "utilization": sc.macs / (compute * cfg.rows * cfg.cols),
        "mapping_efficiency": sc.mapping_efficiency,
        "compute_utilization": sc.compute_utilization,
        "ifmap_sram_read_bytes": sc.ifmap_sram_read_bytes,
        "filter_sram_read_bytes": sc.filter_sram_read_bytes,
        "ofmap_sram_write_bytes": sc.ofmap_sram_write_bytes,
        "sram_read_bytes": sc.ifmap_sram_read_bytes + sc.filter_sram_read_bytes,
        "sram_write_bytes": sc.ofmap_sram_write_bytes,
        "tpesim_cycles": None if tp is None else tp.cycles,
        "tpesim_stall_cycles": None if tp is None else tp.stall_cycles,
        **traffic, **memory_fields_report(memory),
    }


def report(cfg: ScaleSimConfig, layers: Sequence[Layer], *, compat: bool = False,
           tile_timing: TileTiming | None | bool = True,
           memory_timing: MemoryTiming | None | bool = True) -> tuple[list[dict[str, Any]], str]:
    """Report rows for every layer, and a note ("" or why tpesim's own timing is missing).

    `tile_timing=True` loads sim.timing lazily; None/False means SCALE-Sim-compatible timing only.
    `memory_timing=True` loads tpesim's timing with a memory (if tile timing is on), for the
    `tpesim_*` memory columns; None/False leaves them empty.
    """
    if cfg.optimized_mapping and cfg.sparsity_support:
        raise ConfigError("OptimizedMapping (row-wise sparsity) must be false for tpesim's "
                          "SCALE-Sim timing, not true")
    note = ""
    if tile_timing is True:
        tile_timing, note = load_tile_timing()
    elif not tile_timing:
        tile_timing = None
    if memory_timing is True:
        memory_timing = load_memory_timing()[0] if tile_timing is not None else None
    elif not memory_timing:
        memory_timing = None
    rows = [layer_report(cfg, ly, tile_timing=tile_timing, compat=compat,
                         memory_timing=memory_timing) for ly in layers]
    if tile_timing is not None and all(r["tpesim_compute_cycles"] is None for r in rows):
        note = "tpesim tile timing supports none of these layers; SCALE-Sim-compatible timing only"
    if tile_timing is None and note:
        # Say so in every row too, so a CSV or JSON consumer cannot miss it.
        for r in rows:
            r["reason"] = "; ".join(filter(None, [note, r["reason"]]))
    return rows, note

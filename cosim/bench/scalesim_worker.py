"""Runs the real SCALE-Sim v3.0.0 on prepared cases; executed by the SCALE-Sim venv's Python, not tpesim's.

Notes and derivations: docs/internals.md, section `cosim/bench/scalesim_worker.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Run by path, Python puts this directory first on sys.path, where cosim/bench/scalesim.py would
# shadow the real `scalesim` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _read_report(path: Path) -> list[list[str]]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return [[v.strip() for v in row if v.strip() != ""] for row in rows[1:] if any(row)]


def _peak_rss_bytes() -> int:
    """VmHWM of this process image (ru_maxrss would include the parent's peak: Linux keeps it across
    fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_job(job: dict) -> dict:
    t0 = time.perf_counter()
    from scalesim.scale_sim import scalesim
    import_s = time.perf_counter() - t0

    d = Path(job["dir"])
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        s = scalesim(save_disk_space=True, verbose=False, config=job["cfg"], topology=job["topo"],
                     layout=job["layout"], input_type_gemm=bool(job["gemm"]))
        parse = [[int(v) for v in s.topo.get_spatiotemporal_dims(layer_id=i, df="os")]
                 for i in range(s.topo.get_num_layers())]
        s.run_scale(top_path=str(d))
    wall = time.perf_counter() - t0
    out = d / job["slug"]
    return {"slug": job["slug"], "compute": _read_report(out / "COMPUTE_REPORT.csv"),
            "detail": _read_report(out / "DETAILED_ACCESS_REPORT.csv"), "parse": parse,
            "wall_s": wall, "import_s": import_s,
            "peak_rss_bytes": _peak_rss_bytes()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jobs_json")
    ap.add_argument("results_json")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (1: run in this process)")
    args = ap.parse_args()
    jobs = json.loads(Path(args.jobs_json).read_text())
    if args.jobs <= 1:
        results = []
        for job in jobs:
            results.append(run_job(job))
            print(f"{job['slug']}: {results[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = []
            for job, res in zip(jobs, pool.map(run_job, jobs), strict=True):
                results.append(res)
                print(f"{job['slug']}: {res['wall_s']:.1f} s", file=sys.stderr, flush=True)
    Path(args.results_json).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

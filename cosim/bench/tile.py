"""Tile-level timing (`sim.timing.tile_gemm`) measured for wall time and peak memory, one fresh process per row.

Notes and derivations: docs/internals.md, section `cosim/bench/tile.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cases import TileCase, gemm_label

__all__ = ["TileCase", "TileRow", "measure_tile", "run_tile_suite", "memory_text"]

ROOT = Path(__file__).resolve().parents[2]

# Dataflows whose tile-level timing must work: an exception there is a failure of the bench, not
# "not available yet".


@dataclass
class TileRow:
    name: str
    m: int
    n: int
    k: int
    rows: int
    cols: int
    dataflow: str
    memory: dict | None
    events: bool | None
    target: bool
    options: dict | None = None
    status: str = "ok"                  # ok | not available yet | error
    error: str = ""
    tiles: int | None = None
    cycles: int | None = None
    compute_cycles: int | None = None
    stall_cycles: int | None = None
    utilization: float | None = None
    event_run: bool | None = None       # whether the event-driven run happened
    wall_first_s: float | None = None   # first call in the fresh process
    wall_median_s: float | None = None  # median of the calls after it
    wall_min_s: float | None = None
    reps: int = 0
    rss_base_bytes: int | None = None   # peak RSS (VmHWM) after the imports, before the first call
    rss_peak_bytes: int | None = None   # peak RSS (VmHWM) after the timed calls (whole process)
    ru_maxrss_bytes: int | None = None  # getrusage's ru_maxrss then (includes the parent's, see above)
    traced_peak_bytes: int | None = None  # tracemalloc peak of one call
    process_s: float | None = None      # the whole child process (start-up and imports included)
    targets: list[dict] = field(default_factory=list)

    @property
    def path(self) -> str:  # for cases.Target
        return "tile"

    def gemm(self) -> str:
        return gemm_label(self.m, self.n, self.k)


def memory_text(memory: dict | None) -> str:
    if not memory:
        return "ideal"
    parts = []
    kib = [memory.get(f"sram_kib_{op}") for op in "abc"]
    if any(v is not None for v in kib):
        parts.append("SRAM " + "/".join("∞" if v is None else f"{v:g}" for v in kib) + " KiB a/b/c")
    if memory.get("dram_bw") is not None:
        parts.append(f"DRAM {memory['dram_bw']:g} B/cycle")
    if memory.get("dram_latency"):
        parts.append(f"latency {memory['dram_latency']}")
    return ", ".join(parts)


# -- the child: one measurement in a fresh process -----------------------------------------------------
def peak_rss_bytes() -> int:
    """Peak RSS of this process image (VmHWM); the SCALE-Sim worker measures itself the same way."""
    from .scalesim_worker import _peak_rss_bytes

    return _peak_rss_bytes()


def _child(spec: dict) -> dict:
    import resource
    import tracemalloc

    from tpesim.memory import MemoryConfig
    from tpesim.timing import tile_gemm

    def maxrss() -> int:
        return peak_rss_bytes()

    base = maxrss()
    mem = MemoryConfig(**spec["memory"]) if spec.get("memory") else None
    opts = dict(spec.get("options") or {})
    kw = {"dataflow": spec["dataflow"], "memory": mem, **opts}
    if spec.get("events") is not None:
        kw["events"] = spec["events"]
    args = (spec["m"], spec["n"], spec["k"], spec["rows"], spec["cols"])
    t0 = time.perf_counter()
    try:
        rep = tile_gemm(*args, **kw)
    except Exception as e:  # noqa: BLE001 (reported, classified below)
        err = f"{type(e).__name__}: {e}"
        try:
            tile_gemm(8, 8, 8, 4, 4, dataflow=spec["dataflow"], **opts)
        except Exception as e2:  # noqa: BLE001
            return {"status": "unavailable", "error": f"{type(e2).__name__}: {e2}"}
        return {"status": "error", "error": err}
    first = time.perf_counter() - t0
    walls: list[float] = []
    t_end = time.perf_counter() + spec.get("seconds", 2.0)
    while len(walls) < spec.get("reps", 5) and (not walls or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        again = tile_gemm(*args, **kw)
        walls.append(time.perf_counter() - t0)
        if again.cycles != rep.cycles:
            return {"status": "error", "error": f"not deterministic: {rep.cycles} then {again.cycles} cycles"}
    peak = maxrss()
    ru_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    tile_gemm(*args, **kw)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"status": "ok", "tiles": rep.blocks, "cycles": rep.cycles, "compute_cycles": rep.compute_cycles,
            "stall_cycles": rep.stall_cycles, "utilization": rep.utilization,
            "event_run": bool(spec.get("events")) or (mem is not None and not mem.ideal),
            "wall_first_s": first, "wall_all_s": walls, "rss_base_bytes": base, "rss_peak_bytes": peak,
            "traced_peak_bytes": traced, "ru_maxrss_bytes": ru_peak}


# -- the parent -----------------------------------------------------------------------------------------
def measure_tile(case: TileCase, *, reps: int = 5, seconds: float = 2.0, python: str | None = None,
                 timeout: float = 300.0) -> TileRow:
    """Run one TileCase in a fresh `python -m tpesim.cosim.bench.tile` process and return its row."""
    row = TileRow(case.name, case.m, case.n, case.k, case.rows, case.cols, case.dataflow, case.memory,
                  case.events, case.target, case.options)
    cmd = [python or sys.executable, "-m", "tpesim.cosim.bench.tile", json.dumps(case.spec(reps, seconds))]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.status, row.error = "error", f"timed out after {timeout:.0f} s"
        return row
    row.process_s = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        row.status, row.error = "error", f"child exited {p.returncode}: {tail}"
        return row
    res = json.loads(lines[-1])
    if res["status"] == "unavailable":
        row.status = "error"    # every engine and dataflow has tile-level timing: always a failure
        row.error = res["error"]
        return row
    if res["status"] != "ok":
        row.status, row.error = "error", res["error"]
        return row
    walls = res.pop("wall_all_s")
    res.pop("status")
    for k, v in res.items():
        setattr(row, k, v)
    walls = walls or [row.wall_first_s]
    row.wall_median_s, row.wall_min_s, row.reps = statistics.median(walls), min(walls), len(walls)
    return row


def run_tile_suite(cases: list[TileCase], *, reps: int = 5, seconds: float = 2.0, log=print,
                   targets=()) -> list[TileRow]:
    rows = []
    for case in cases:
        log(f"[tile] {case.name} ...")
        r = measure_tile(case, reps=reps, seconds=seconds)
        if r.status == "ok":
            log(f"[tile] {case.name}: {r.cycles:,} cycles ({r.stall_cycles:,} stall) in "
                f"{r.wall_first_s * 1e3:.2f} ms first call, {r.wall_median_s * 1e3:.2f} ms median; "
                f"peak RSS {r.rss_peak_bytes / 2**20:.0f} MiB")
        else:
            log(f"[tile] {case.name}: {r.status}: {r.error}")
        if r.target:
            r.targets = [{"text": t.text, "metric": t.metric, "op": t.op, "goal": t.value,
                          "value": getattr(r, t.metric, None), "met": t.check(r)}
                         for t in targets if t.path == "tile"]
        rows.append(r)
    return rows


def row_dict(r: TileRow) -> dict:
    d = asdict(r)
    d["memory_text"] = memory_text(r.memory)
    return d


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(_child(json.loads(sys.argv[1]))), flush=True)

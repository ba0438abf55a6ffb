"""Whole-model LLM timing speed (`tpesim run llm`, kernels/llm): Llama-2-7B prefill 2048 + decode
256 at batch 1 and 16 on a 128x128 array with finite SRAM and DRAM, one fresh process per row.

`python -m tpesim.cosim.bench --suite llm` runs it beside the other suites; rows are kept in
docs/bench_llm.json and rendered as a section of docs/bench.md (carried over when not re-run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["LlmCase", "LlmRow", "llm_cases", "run_llm_suite", "llm_markdown", "append_llm_section",
           "TARGET_WALL_S"]

TARGET_WALL_S = 1.0
MEMORY = {"sram_kib_a": 4096, "sram_kib_b": 4096, "sram_kib_c": 4096, "dram_bw": 64,
          "dram_latency": 100}
SECTION = "## Whole-model LLM timing (`tpesim run llm`)"


@dataclass(frozen=True)
class LlmCase:
    name: str
    model: str
    prefill: int
    decode: int
    batch: int
    rows: int = 128
    cols: int = 128
    dataflow: str = "os"
    target: bool = True


@dataclass
class LlmRow:
    name: str
    model: str
    prefill: int
    decode: int
    batch: int
    engine: str = ""
    memory: dict = field(default_factory=dict)
    status: str = "ok"
    error: str = ""
    cycles: int | None = None
    ttft_cycles: int | None = None
    tpot_cycles: float | None = None
    gemms_timed: int | None = None
    gemm_instances: int | None = None
    wall_first_s: float | None = None   # first run_llm call in a fresh process (imports excluded)
    cpu_first_s: float | None = None    # its process CPU time
    wall_median_s: float | None = None  # median of the calls after it
    cpu_median_s: float | None = None
    reps: int = 0
    load_avg: str = ""
    target_met: bool | None = None


def llm_cases(quick: bool = False) -> list[LlmCase]:
    if quick:
        return [LlmCase("llama2-7b-p256-d16-b1", "llama2-7b", 256, 16, 1, target=False)]
    return [LlmCase(f"llama2-7b-p2048-d256-b{b}", "llama2-7b", 2048, 256, b) for b in (1, 16)]


def _child(spec: dict) -> dict:
    from tpesim import SystolicConfig
    from tpesim.kernels.llm import run_llm
    from tpesim.memory import MemoryConfig

    cfg = SystolicConfig(rows=spec["rows"], cols=spec["cols"], dataflow=spec["dataflow"])
    mem = MemoryConfig(**spec["memory"])
    kw = dict(prefill=spec["prefill"], decode=spec["decode"], batch=spec["batch"], engine=cfg,
              memory=mem)
    walls, cpus = [], []
    run = None
    for _ in range(1 + spec["reps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        run = run_llm(spec["model"], **kw)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    s = run.summary()
    return {"engine": cfg.name, "cycles": s["cycles"], "ttft_cycles": s["ttft_cycles"],
            "tpot_cycles": s["tpot_cycles"], "gemms_timed": s["gemms_timed"],
            "gemm_instances": s["gemm_instances"], "wall_first_s": walls[0],
            "cpu_first_s": cpus[0],
            "wall_median_s": statistics.median(walls[1:]) if walls[1:] else None,
            "cpu_median_s": statistics.median(cpus[1:]) if cpus[1:] else None,
            "reps": spec["reps"]}


def measure(case: LlmCase, reps: int = 3) -> LlmRow:
    spec = {**asdict(case), "memory": MEMORY, "reps": reps}
    row = LlmRow(case.name, case.model, case.prefill, case.decode, case.batch, memory=MEMORY)
    load0 = os.getloadavg()
    proc = subprocess.run([sys.executable, "-m", "tpesim.cosim.bench.llm", json.dumps(spec)],
                          capture_output=True, text=True)
    load1 = os.getloadavg()
    row.load_avg = f"{load0[0]:.2f} -> {load1[0]:.2f}"
    if proc.returncode != 0:
        row.status, row.error = "error", (proc.stderr.strip().splitlines() or ["?"])[-1]
        return row
    for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        setattr(row, k, v)
    if case.target:
        row.target_met = row.wall_first_s < TARGET_WALL_S
    return row


def run_llm_suite(cases: list[LlmCase], *, reps: int = 3, log=print,
                  json_path: Path | None = None) -> list[LlmRow]:
    rows = []
    for c in cases:
        log(f"[llm] {c.name} ...")
        r = measure(c, reps)
        rows.append(r)
        if r.status == "ok":
            log(f"[llm] {c.name}: {r.cycles:,} cycles; first call {r.wall_first_s:.3f} s wall, "
                f"{r.cpu_first_s:.3f} s CPU (load {r.load_avg})")
        else:
            log(f"[llm] {c.name}: error: {r.error}")
    if json_path is not None:
        json_path.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                               time.gmtime()),
                                         "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return rows


def llm_markdown(doc: dict, carried: bool = False) -> str:
    rows = doc.get("rows", [])
    out = [SECTION, ""]
    if carried:
        out.append(f"(carried over from the run of {doc.get('date', '?')}; not re-measured)\n")
    else:
        out.append(f"Run of {doc.get('date', '?')}.\n")
    out.append("Llama-2-7B (32 layers; every layer, every decode step and every attention head "
               "accounted for, each distinct GEMM timed once at the tile level), systolic OS "
               "128x128 int8, 4 MiB SRAM per operand, DRAM 64 B/cycle, latency 100. `first` is "
               "the first `run_llm` call in a fresh process (imports excluded), `median` the "
               "calls after it; wall and process CPU seconds; the machine is shared, so the CPU "
               f"time is the better speed figure. Target: first call under {TARGET_WALL_S:g} s "
               "wall.\n")
    out.append("| case | cycles | TTFT cycles | TPOT cycles | GEMMs timed / accounted "
               "| first wall s | first CPU s | median wall s | median CPU s | load (1 min) | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["status"] != "ok":
            out.append(f"| {r['name']} | error: {r['error']} |" + " |" * 9)
            continue
        met = {True: "met", False: "**not met**", None: "-"}[r["target_met"]]
        med = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        out.append(f"| {r['name']} | {r['cycles']:,} | {r['ttft_cycles']:,} | "
                   f"{r['tpot_cycles']:,.0f} | {r['gemms_timed']:,} / {r['gemm_instances']:,} | "
                   f"{r['wall_first_s']:.3f} | {r['cpu_first_s']:.3f} | "
                   f"{med(r['wall_median_s'])} | {med(r['cpu_median_s'])} | {r['load_avg']} | "
                   f"{met} |")
    return "\n".join(out) + "\n"


def append_llm_section(md_path: Path, json_path: Path, measured: bool) -> None:
    """Append the LLM section to the freshly written bench markdown, from this run's rows or the
    last run's (json_path), so a run without the llm suite keeps the last figures."""
    if not json_path.exists():
        return
    doc = json.loads(json_path.read_text())
    text = md_path.read_text() if md_path.exists() else ""
    if SECTION in text:
        text = text[:text.index(SECTION)].rstrip() + "\n"
    md_path.write_text(text.rstrip() + "\n\n" + llm_markdown(doc, carried=not measured))


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))

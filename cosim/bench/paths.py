"""The timed paths. Each is a function (case, ctx) -> Row registered in PATHS; add new ones there.

Cycles are counted the same way on every path: clock edges from the first stimulus cycle (after reset)
to the cycle of the last result row, inclusive.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cases import BenchCase, ModelRun, adapter_of
from .stimulus import Stream

__all__ = ["Row", "Context", "PATHS", "LABELS", "register_path"]


@dataclass
class Row:
    case: str
    engine: str
    size: str
    config: str
    path: str
    label: str
    cycles: int
    wall_s: float                    # the timed phase (median over `reps` for the fast paths)
    reps: int = 1
    wall_all_s: list[float] = field(default_factory=list)
    build_s: float | None = None     # separate from wall_s
    check: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)
    # filled in by run_bench once the case's rows are known
    cycles_per_s: float | None = None
    ratio_vs_verilator_cpp: float | None = None
    ratio_vs_interpreted: float | None = None
    # model rows: median over repetitions of (model cycles/s / Verilator C++ cycles/s) measured back to
    # back, so both sides of each ratio see the same machine load (the VM is shared)
    ratio_vs_verilator_cpp_paired: float | None = None
    targets: list[dict] = field(default_factory=list)
    carried_from: str = ""           # set when the report carries the row over from an earlier run


@dataclass
class Context:
    """Shared state of one `make bench` run: options, and per-case results later paths reuse."""

    out_dir: Path
    model_seconds: float = 1.0        # wall-time goal of one compiled-model repetition
    interp_seconds: float = 1.0
    reps: int = 3                     # repetitions of the fast paths (median reported)
    seed: int = 1
    quick: bool = False
    ccache: bool = False              # let the harness build use ccache (then build s is not a cold build)
    paired: bool = True               # re-run the model right after each Verilator run (paired ratio)
    log: Callable[[str], None] = print
    state: dict = field(default_factory=dict)   # (case name, key) -> value

    def get(self, case: BenchCase, key: str):
        return self.state.get((case.name, key))

    def put(self, case: BenchCase, key: str, value) -> None:
        self.state[(case.name, key)] = value


PATHS: dict[str, Callable[[BenchCase, Context], Row]] = {}
LABELS: dict[str, str] = {}


def register_path(name: str, label: str):
    def deco(fn):
        PATHS[name] = fn
        LABELS[name] = label
        return fn
    return deco


def _row(case: BenchCase, path: str, **kw) -> Row:
    ad = adapter_of(case.cfg)
    return Row(case=case.name, engine=case.engine, size=ad.size(case.cfg), config=ad.describe(case.cfg),
               path=path, label=LABELS[path], **kw)


# -- the free-running stream shared by the model and the Verilator harness ------------------------------
def stream_for(case: BenchCase, ctx: Context) -> Stream:
    """The case's stream, sized once so that one compiled-model repetition takes ~ctx.model_seconds."""
    s = ctx.get(case, "stream")
    if s is not None:
        return s
    ad = adapter_of(case.cfg)
    k = case.param("k", 64)
    tpb = case.param("tiles_per_block", 1024 if not ctx.quick else 64)
    if "tiles_per_block" in case.params and ctx.quick:
        tpb = min(tpb, 64)
    probe = ad.make_stream(case.cfg, k=k, tiles_per_block=tpb, reps=1, seed=ctx.seed)
    ad.run_model(case.cfg, probe)                      # warm-up (imports, caches)
    r = ad.run_model(case.cfg, probe)
    rate = r.cycles / max(r.seconds, 1e-9)
    reps = max(1, math.ceil(ctx.model_seconds * case.param("seconds_scale", 1.0) * rate / probe.nbeats))
    s = dataclasses.replace(probe, reps=reps)
    ctx.put(case, "stream", s)
    ctx.log(f"  [{case.name}] stream: {s.nblock} beats x {reps} = {s.nbeats} beats in tiles of K={k} "
            f"(probe: {rate / 1e6:.2f} M cycles/s)")
    return s


def reference_run(case: BenchCase, ctx: Context) -> ModelRun:
    ref = ctx.get(case, "reference")
    if ref is None:
        ref = adapter_of(case.cfg).run_model(case.cfg, stream_for(case, ctx))
        ctx.put(case, "reference", ref)
    return ref


@register_path("model", "cycle model, compiled (Cython), free-running")
def path_model(case: BenchCase, ctx: Context) -> Row:
    ad = adapter_of(case.cfg)
    s = stream_for(case, ctx)
    runs = [ad.run_model(case.cfg, s) for _ in range(ctx.reps)]
    first = runs[0]
    for r in runs[1:]:
        if (r.cycles, r.rows, r.checksum) != (first.cycles, first.rows, first.checksum):
            raise AssertionError(f"{case.name}: the compiled model is not deterministic across repetitions")
    ctx.put(case, "reference", first)
    walls = [r.seconds for r in runs]
    return _row(case, "model", cycles=first.cycles, wall_s=statistics.median(walls), reps=len(runs),
                wall_all_s=walls, check="reference",
                notes=f"{s.nbeats:,} beats, K={s.k}, one {ad.run_call} call per "
                      f"{s.nblock:,} beats",
                extra={"rows": first.rows, "checksum": f"{first.checksum:#018x}", "k": s.k,
                       "beats": s.nbeats})


@register_path("interpreted", "cycle model, interpreted (same .py source)")
def path_interpreted(case: BenchCase, ctx: Context) -> Row:
    ad = adapter_of(case.cfg)
    s = stream_for(case, ctx)
    probe = ad.run_model(case.cfg, s.prefix(2), interpreted=True)
    rate = probe.cycles / max(probe.seconds, 1e-9)
    tiles = max(2, min(s.nblock // s.k, round(ctx.interp_seconds * rate / s.k)))
    sub = s.prefix(tiles)
    r = ad.run_model(case.cfg, sub, interpreted=True, keep_rows=True)
    c = ad.run_model(case.cfg, sub, interpreted=False, keep_rows=True)
    if r.cycles != c.cycles or not np.array_equal(r.out_rows, c.out_rows):
        raise AssertionError(f"{case.name}: interpreted and compiled models differ on the same {tiles} tiles "
                             f"(cycles {r.cycles} vs {c.cycles})")
    return _row(case, "interpreted", cycles=r.cycles, wall_s=r.seconds, check="rows = compiled",
                notes=f"first {tiles} tiles of the stream",
                extra={"rows": r.rows, "tiles": tiles})


@register_path("verilator_cpp", "Verilator, own C++ harness (no cocotb)")
def path_verilator_cpp(case: BenchCase, ctx: Context) -> Row:
    from .vcpp import VERILATOR_FLAGS, build_harness, run_harness

    ad = adapter_of(case.cfg)
    s = stream_for(case, ctx)
    ref = reference_run(case, ctx)
    d = ctx.out_dir / case.name / "verilator_cpp"
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    top = ad.write_verilog(case.cfg, d / "top.v")
    gen_s = time.perf_counter() - t0
    extra_flags = case.param("verilator_extra_flags", [])
    exe, build_s = build_harness(d / "top.v", top, d, case.cfg.streams(), extra_flags=extra_flags,
                                 ccache=ctx.ccache)
    stim = ad.write_stimulus(case.cfg, s, d / "stimulus.bin")
    runs = []
    paired = []
    for _ in range(ctx.reps):
        h = run_harness(exe, stim)
        got, want = (h.cycles, h.rows, h.checksum), (ref.cycles, ref.rows, ref.checksum)
        if got != want:
            raise AssertionError(
                f"{case.name}: Verilator C++ harness and cycle model disagree on the same stream: "
                f"(cycles, rows, checksum) = {got} from Verilator, {want} from the model "
                f"(stimulus {stim}, executable {exe})")
        runs.append(h)
        if ctx.paired:
            m = ad.run_model(case.cfg, s)
            if (m.cycles, m.rows, m.checksum) != want:
                raise AssertionError(f"{case.name}: the compiled model is not deterministic across runs")
            paired.append((m.cycles / m.seconds) / (h.cycles / h.seconds))
    walls = [h.seconds for h in runs]
    # the stimulus file (one block per input stream + a repeat count, ~1 MB), the generated harness
    # sources and the executable stay for reproduction:
    #   build/bench/<case>/verilator_cpp/obj/vbench build/bench/<case>/verilator_cpp/stimulus.bin
    return _row(case, "verilator_cpp", cycles=runs[0].cycles, wall_s=statistics.median(walls),
                reps=len(runs), wall_all_s=walls, build_s=build_s,
                check="cycles, rows, checksum = model",
                notes=f"Verilog generation {gen_s:.1f} s (not in build s); clean build, ccache "
                      f"{'on' if ctx.ccache and os.environ.get('OBJCACHE') else 'off'}; same stream as "
                      f"the model, checked equal on all {len(runs)} runs",
                extra={"verilog_gen_s": gen_s, "rows": runs[0].rows, "checksum": f"{runs[0].checksum:#018x}",
                       "flags": " ".join(VERILATOR_FLAGS + list(extra_flags)),
                       "paired_model_ratios": paired})


def _cocotb(case: BenchCase, ctx: Context, sim: str, path: str, default_cycles: int) -> Row:
    from tpesim.cosim import runner as cr

    kmax = case.param("cocotb_kmax", 64)
    want_cycles = case.param(f"{sim}_cycles", default_cycles)
    if ctx.quick:
        want_cycles = min(want_cycles, 300)
    # tiles of random K in 1..kmax (mean (kmax+1)/2 beats), back to back since p_valid = p_ready = 1
    tiles = max(1, round(want_cycles / ((kmax + 1) / 2)))
    root = (ctx.out_dir / "cosim_build").resolve()   # the simulator runs in the case directory
    cached = (root / sim / case.cfg.name).exists()
    t0 = time.perf_counter()
    cr.build(case.cfg, sim, root, waves=False)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = cr.run_cosim(case.cfg, sim=sim, seed=ctx.seed,
                       tiles=tiles, kmax=kmax, p_valid=1.0, p_ready=1.0, waves=False, build_root=root)
    call_s = time.perf_counter() - t0
    if res.status != "pass":
        raise AssertionError(f"{case.name}: lockstep cosim under {sim} failed: {res.message}")
    test_s = _cocotb_test_time(res.case_dir / "results.xml")
    return _row(case, path, cycles=res.cycles, wall_s=test_s, build_s=build_s,
                check="lockstep: every port, every cycle",
                notes=f"{tiles} tiles, K in 1..{kmax}; wall = cocotb test time; whole call {call_s:.1f} s "
                      f"(incl. simulator start); build "
                      + ("reused from an earlier run (runner cache; delete the build dir for a cold build)"
                         if cached else "from scratch"),
                extra={"tiles": tiles, "kmax": kmax, "call_s": call_s, "case_dir": str(res.case_dir),
                       "build_cached": cached})


def _cocotb_test_time(xml: Path) -> float:
    """Wall time of the cocotb test itself, as cocotb measured it (excludes simulator and Python start)."""
    tc = ET.parse(xml).getroot().find(".//testcase")
    if tc is None:
        raise AssertionError(f"no testcase in {xml}")
    return float(tc.get("time"))


@register_path("cocotb_verilator", "cocotb + Verilator, lockstep with model.step()")
def path_cocotb_verilator(case: BenchCase, ctx: Context) -> Row:
    return _cocotb(case, ctx, "verilator", "cocotb_verilator", 4000)


@register_path("cocotb_icarus", "cocotb + Icarus, lockstep with model.step()")
def path_cocotb_icarus(case: BenchCase, ctx: Context) -> Row:
    return _cocotb(case, ctx, "icarus", "cocotb_icarus", 400)

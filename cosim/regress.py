"""Cosim regression at scale: random configs drawn from each engine's declared space, many random
cases per simulator process (one build and one start-up per config), seeds logged, 0 mismatches.

    python -m tpesim.cosim.regress --cases 10000 --sim verilator --jobs 2      (`make regress`)

Every case is a lockstep case of cosim/lockstep.py with its own seed, block count, block length and
valid/ready probabilities, run from a reset with a fresh model; a failing case's line names the
single-case command that reproduces it (with waveforms). Notes: docs/sweep.md, "Cosim regression".
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tpesim.config import EngineConfig, MAX_SEED, check_seed
from tpesim.errors import ConfigError, ConfigTypeError, TpesimError
from tpesim.registry import ENGINES, engine_names, get_engine

__all__ = ["field_space", "sample_configs", "draw_cases", "run_batch", "BatchResult",
           "regress", "main"]

# A drawn config's peak MACs/cycle at most this (keeps builds and lockstep runs short); the
# registry's own examples are all below it.
MAX_PEAK = 64
_CHOICES = re.compile(r" must be one of (.+), not ")


def field_space(cls: type[EngineConfig], examples: tuple[dict, ...] = ()) -> dict[str, tuple]:
    """Candidate values of each field of an engine config, from its declaration, its validation
    and the registry's `examples` of it.

    Booleans: both. A field whose validation names its choices ("x must be one of 'a', 'b', not
    ..."), found by offering it an impossible value: those choices (and None when the default is
    None). Integers: 1 .. max(4, 2 x default). A field with neither keeps its default. Plus every
value an example gives the field. Which
    combinations are valid is left to the config (`sample_configs` keeps those it accepts).
    """
    out: dict[str, tuple] = {}
    default = cls()
    for f in dataclasses.fields(cls):
        d = getattr(default, f.name)
        if isinstance(d, bool):
            out[f.name] = (False, True)
            continue
        choices: list = []
        for probe in ("\x00?", -7, 10**9):
            try:
                cls(**{f.name: probe})
            except (ConfigError, ConfigTypeError) as e:
                m = _CHOICES.search(str(e))
                if m and str(e).startswith(f.name):
                    try:
                        choices = list(ast.literal_eval(f"[{m.group(1)}]"))
                    except (ValueError, SyntaxError):
                        choices = []
                    if choices:
                        break
        if choices:
            out[f.name] = tuple(choices) + ((None,) if d is None else ())
        elif isinstance(d, int):
            out[f.name] = tuple(range(1, max(4, 2 * d) + 1))
        elif d is None and "int" in str(f.type):
            out[f.name] = (None, *range(1, 65))
        else:
            out[f.name] = (d,)
        # values the registry's examples use (formats a validation message does not list)
        for v in [ex[f.name] for ex in examples if f.name in ex] + [f.default]:
            if v is not dataclasses.MISSING and v not in out[f.name]:
                out[f.name] += (v,)
    return out


def sample_configs(engine: str, rng: np.random.Generator, n: int, *,
                   max_peak: float = MAX_PEAK, tries: int = 20000) -> list[EngineConfig]:
    """`n` distinct random configs of `engine` its config accepts, with peak MACs/cycle at most
    `max_peak` (drawn per field from `field_space`, invalid combinations rejected)."""
    eng = get_engine(engine)
    cls = eng.config
    space = field_space(cls, eng.examples)
    out: dict[str, EngineConfig] = {}
    for _ in range(tries):
        if len(out) == n:
            break
        d = {k: v[int(rng.integers(len(v)))] for k, v in space.items()}
        try:
            cfg = cls(**d)
        except (ConfigError, ConfigTypeError):
            continue
        if cfg.peak_macs_per_cycle <= max_peak:
            out.setdefault(cfg.name, cfg)  # the name is the build directory: one config each
    if len(out) < n:
        raise ConfigError(f"engine {engine!r}: only {len(out)} distinct valid configs with peak "
                          f"<= {max_peak} MACs/cycle found in {tries} draws, not {n}")
    return list(out.values())


def draw_cases(cfg: EngineConfig, rng: np.random.Generator, n: int) -> list[dict]:
    """`n` random lockstep cases: seed, 1-4 blocks, block length bound 1..the engine's default,
    and valid/ready probabilities (a quarter of the cases without any gap or stall)."""
    kdef = get_engine(cfg.engine).load("stimulus").default_max_rows(cfg)
    cases = []
    for _ in range(n):
        free = rng.random() < 0.25
        cases.append({"seed": int(rng.integers(0, MAX_SEED + 1)),
                      "tiles": int(rng.integers(1, 5)),
                      "kmax": int(rng.integers(1, kdef + 1)),
                      "p_valid": 1.0 if free else round(float(rng.uniform(0.2, 1.0)), 3),
                      "p_ready": 1.0 if free else round(float(rng.uniform(0.2, 1.0)), 3)})
    return cases


@dataclass
class BatchResult:
    """One simulator process: `passed` of `cases` cases; on failure the case and its repro."""

    config: dict
    sim: str
    cases: int
    passed: int
    cycles: int
    case_cycles: list[int]
    wall_s: float
    build_s: float
    status: str
    message: str = ""
    failed_case: dict | None = None
    repro: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_batch(cfg: EngineConfig, cases: list[dict], *, sim: str = "verilator",
              build_root: str | Path | None = None, inject_fault: int = -1) -> BatchResult:
    """Run `cases` back to back in one simulator process on one build of `cfg`'s RTL."""
    import contextlib

    from tpesim.cosim.runner import ROOT, TESTBENCH, _check_case, _last_error, build, \
        repro_command

    if not cases:
        raise ConfigError("cases must list at least one case, not none")
    for c in cases:
        _check_case(c["tiles"], c["kmax"], c["seed"], c["p_valid"], c["p_ready"])
    build_root = Path(build_root) if build_root is not None else Path.cwd() / "cosim_build"
    t0 = time.perf_counter()
    runner, bdir, top = build(cfg, sim, build_root, waves=False)
    t1 = time.perf_counter()
    run_dir = bdir / f"batch_{cases[0]['seed']}_{len(cases)}_{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cases.json").write_text(json.dumps(cases))
    report = run_dir / "report.json"
    report.unlink(missing_ok=True)
    env = {"TPESIM_CFG": cfg.to_json(), "TPESIM_BATCH": str(run_dir / "cases.json"),
           "TPESIM_REPORT": str(report), "TPESIM_INJECT_FAULT": str(inject_fault),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with contextlib.suppress(SystemExit):
        runner.test(test_module=TESTBENCH, hdl_toplevel=top, build_dir=bdir, test_dir=run_dir,
                    extra_env=env, waves=False, seed=cases[0]["seed"],
                    results_xml=str(run_dir / "results.xml"), log_file=run_dir / "sim.log")
    wall = time.perf_counter() - t1
    if report.exists():
        r = json.loads(report.read_text())
    else:
        r = {"status": "error", "passed": 0, "cycles": 0, "case_cycles": [],
             "message": f"the testbench ended without a report: {_last_error(run_dir / 'sim.log')}"}
    res = BatchResult(config=cfg.to_dict(), sim=sim, cases=len(cases),
                      passed=int(r.get("passed", 0)), cycles=int(r.get("cycles", 0)),
                      case_cycles=list(r.get("case_cycles", [])), wall_s=wall, build_s=t1 - t0,
                      status=r["status"], message=r.get("message", ""))
    if res.status != "pass":
        i = int(r.get("case", 0))
        c = cases[i]
        res.failed_case = {"index": i, **c}
        res.repro = repro_command(cfg, sim, c["seed"], c["tiles"], c["kmax"], c["p_valid"],
                                  c["p_ready"])
    return res


def _batch_job(cfg_json: str, cases: list[dict], sim: str, build_root: str) -> dict:
    from tpesim.config import config_from_json

    try:
        return run_batch(config_from_json(cfg_json), cases, sim=sim,
                         build_root=build_root).to_dict()
    except TpesimError as e:  # a build failure: reported like a failed batch
        return {"config": json.loads(cfg_json), "sim": sim, "cases": len(cases), "passed": 0,
                "cycles": 0, "case_cycles": [], "wall_s": 0.0, "build_s": 0.0,
                "status": "error", "message": " ".join(str(e).split()), "failed_case": None,
                "repro": ""}


def plan(engines: list[str], cases: int, configs: int, seed: int) -> list[tuple]:
    """(engine, config, cases) batches: per engine `configs` drawn configs sharing `cases` cases,
    all from `seed` (one child seed per engine, so adding an engine changes no other's draw)."""
    check_seed("seed", seed)
    jobs = []
    for name in engines:
        child = np.random.default_rng([seed, *name.encode()])
        cfgs = sample_configs(name, child, configs)
        share = [cases // configs + (i < cases % configs) for i in range(configs)]
        for cfg, k in zip(cfgs, share):
            if k:
                jobs.append((name, cfg, draw_cases(cfg, child, k)))
    return jobs


def regress(engines: list[str] | None = None, *, cases: int = 10000, configs: int = 8,
            sim: str = "verilator", seed: int = 1, jobs: int = 2,
            build_root: str | Path | None = None, log: str | Path | None = None,
            echo=print) -> dict:
    """Run the regression; every batch's config, case list (seeds) and outcome go to `log`
    (JSONL) as it finishes. Returns the summary (cases, mismatches, wall seconds per engine)."""
    engines = list(engine_names()) if not engines else engines
    for name in engines:
        get_engine(name)
    for name, v in (("cases", cases), ("configs", configs), ("jobs", jobs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, not {v!r}")
    build_root = str(Path(build_root) if build_root is not None
                     else Path.cwd() / "cosim_build" / "regress")
    t0 = time.perf_counter()
    batches = plan(engines, cases, configs, seed)
    # biggest designs first, so the long builds overlap the small ones
    batches.sort(key=lambda b: -b[1].peak_macs_per_cycle)
    summary = {name: {"cases": 0, "passed": 0, "failed": 0, "errors": 0, "configs": 0,
                      "cycles": 0, "sim_s": 0.0, "build_s": 0.0} for name in engines}
    logf = open(log, "a") if log else None
    if logf:
        logf.write(json.dumps({"regress": {"engines": engines, "cases": cases,
                                           "configs": configs, "sim": sim, "seed": seed}}) + "\n")
    failures = []
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = {pool.submit(_batch_job, cfg.to_json(), cs, sim, build_root): (name, cfg, cs)
                    for name, cfg, cs in batches}
            for fut in as_completed(futs):
                name, cfg, cs = futs[fut]
                r = fut.result()
                s = summary[name]
                s["cases"] += r["cases"]
                s["passed"] += r["passed"]
                s["configs"] += 1
                s["cycles"] += r["cycles"]
                s["sim_s"] += r["wall_s"]
                s["build_s"] += r["build_s"]
                if r["status"] == "fail":
                    s["failed"] += 1
                elif r["status"] != "pass":
                    s["errors"] += 1
                if r["status"] != "pass":
                    failures.append(r)
                echo(f"{r['status'].upper()} {sim} {cfg.name}: {r['passed']}/{r['cases']} cases, "
                     f"{r['cycles']} cycles, build {r['build_s']:.0f} s, run {r['wall_s']:.0f} s"
                     + (f"; {r['message']} (reproduce: {r['repro']})" if r["status"] != "pass"
                        else ""))
                if logf:
                    logf.write(json.dumps({**r, "engine": name, "case_list": cs}) + "\n")
                    logf.flush()
    finally:
        if logf:
            logf.close()
    return {"engines": summary, "wall_s": time.perf_counter() - t0, "failures": failures,
            "sim": sim, "seed": seed}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m tpesim.cosim.regress", description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default=None, metavar="A,B",
                   help=f"engines (default all: {', '.join(engine_names())})")
    p.add_argument("--cases", type=int, default=10000, help="cases per engine (default 10000)")
    p.add_argument("--configs", type=int, default=8,
                   help="random configs per engine, one simulator process each (default 8)")
    p.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    p.add_argument("--seed", type=int, default=None,
                   help="master seed (default: a fresh one, printed and logged)")
    p.add_argument("--jobs", type=int, default=2, help="simulator processes at once (default 2)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="builds and batch directories (default ./cosim_build/regress)")
    p.add_argument("--log", default="regress_log.jsonl", metavar="FILE",
                   help="JSONL log: every batch's config, case seeds and outcome "
                        "(default regress_log.jsonl)")
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        engines = args.engines.split(",") if args.engines else None
        print(f"cosim regression: seed {seed}, {args.cases} cases per engine, {args.configs} "
              f"configs per engine, {args.sim}, {args.jobs} jobs; log {args.log}", flush=True)
        res = regress(engines, cases=args.cases, configs=args.configs, sim=args.sim, seed=seed,
                      jobs=args.jobs, build_root=args.out_dir, log=args.log,
                      echo=lambda s: print(s, flush=True))
    except TpesimError as e:
        print(f"tpesim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for name, s in res["engines"].items():
        print(f"{name}: {s['passed']}/{s['cases']} cases passed on {s['configs']} configs, "
              f"{s['failed']} failed, {s['errors']} errors, {s['cycles']} cycles; "
              f"builds {s['build_s']:.0f} s, runs {s['sim_s']:.0f} s (wall of each batch, "
              f"summed)")
    print(f"wall {res['wall_s']:.0f} s; seed {seed}")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""`tpesim sweep SPEC.toml`: engine configs x memories x workloads, run on a local process pool or a
Dask cluster, resumable (every finished point is appended at once to a JSONL file keyed by its hash).

The spec format, the output files and the resume rules: docs/sweep.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fcntl
import hashlib
import importlib
import io
import itertools
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import EngineConfig, config_from_dict
from .errors import ConfigError, ConfigTypeError, FileFormatError, TpesimError, WorkloadError

__all__ = ["Kind", "KINDS", "register_kind", "Point", "SweepSpec", "load_spec", "parse_spec",
           "expand", "run_point", "run_sweep", "SweepResult", "read_results", "point_key",
           "pareto_front", "main"]

RESULTS = "results.jsonl"
FIDELITIES = ("tile", "cycle")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tpesim")
    except Exception:  # noqa: BLE001 (a checkout without an installed distribution)
        return "unknown"


# -------------------------------------------------------------------------------------------------
# Workload kinds: a small registry of point runners
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One kind of workload.

    Attributes
    ----------
    name : str
        The `kind` of a `[[workloads]]` table.
    expand : str
        "module:attr" of `expand(table, base_dir) -> list[dict]`: the table's points (JSON-able
        workload descriptions; a list value of a parameter is a sweep axis).
    run : str
        "module:attr" of `run(cfg, workload, memory, fidelity, seed) -> dict`: one point's report
        fields (units in the names), run in a worker.
    requires : str
        Module that must be importable for the kind to exist (a kind built elsewhere: the hook
        says so in one line instead of failing inside a worker).
    """

    name: str
    expand: str
    run: str
    requires: str = ""

    def load(self, face: str) -> Callable:
        if self.requires:
            try:
                importlib.import_module(self.requires)
            except ModuleNotFoundError:
                raise WorkloadError(f"workload kind {self.name!r} needs {self.requires}, which "
                                    f"this installation does not have") from None
        module, _, attr = getattr(self, face).partition(":")
        return getattr(importlib.import_module(module), attr)


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def _get_kind(name: Any) -> Kind:
    if name not in KINDS:
        raise ConfigError(f"workload kind must be one of {', '.join(map(repr, KINDS))}, "
                          f"not {name!r}")
    return KINDS[name]


# The synthesis hook: `synth = true` (or a table of options) in [sweep] runs it once per config.
SYNTH = Kind("synth", expand="", run="tpesim.sweep:synth_point", requires="tpesim.kernels.synth")
SYNTH_OPTIONS = ("target", "seed", "freq_mhz", "pnr")


def _axes(table: dict, names: Iterable[str]) -> Iterator[dict]:
    """The cross product of a table's list-valued entries (scalars are single values)."""
    names = list(names)
    values = [table[n] if isinstance(table[n], list) else [table[n]] for n in names]
    for n, v in zip(names, values):
        if not v:
            raise ConfigError(f"{n} must list at least one value, not []")
    for combo in itertools.product(*values):
        yield dict(zip(names, combo))


def _only(table: dict, where: str, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    allowed = set(allowed)
    for k in table:
        if k not in allowed:
            raise ConfigError(f"{where} has no key {k!r} (keys: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in table:
            raise ConfigError(f"{where} needs the key {k!r}")


def gemm_expand(table: dict, base: Path) -> list[dict]:
    _only(table, "[[workloads]] kind gemm", ("kind", "m", "n", "k", "name"), ("m", "n", "k"))
    from .timing import check_gemm_shape

    out = []
    for p in _axes(table, ("m", "n", "k")):
        for d in "mnk":
            if isinstance(p[d], bool) or not isinstance(p[d], int):
                raise ConfigTypeError(f"gemm {d} must be an integer, not {p[d]!r}")
        check_gemm_shape(p["m"], p["n"], p["k"])
        name = table.get("name", "gemm")
        out.append({"kind": "gemm", "name": f"{name} {p['m']}x{p['n']}x{p['k']}", **p})
    return out


def gemm_run(cfg, w: dict, memory, fidelity: str, seed: int) -> dict:
    from tpesim.kernels.gemm import random_operands, run_gemm, time_gemm

    if fidelity == "tile":
        res = time_gemm(cfg, w["m"], w["n"], w["k"], memory=memory)
    else:
        a, b = random_operands(cfg, w["m"], w["n"], w["k"], seed)
        res = run_gemm(cfg, a, b, fidelity="cycle", memory=memory, verify=True)
        if res.matched is False:
            raise WorkloadError(f"result differs from the numpy reference (seed {seed})")
    out = res.to_dict()
    fields = getattr(cfg, "report_fields", None)
    if fields is not None:
        out.update(fields(res))
    return out


def scalesim_expand(table: dict, base: Path) -> list[dict]:
    _only(table, "[[workloads]] kind scalesim", ("kind", "topology", "format", "layers"),
          ("topology",))
    from tpesim.kernels.scalesim import read_topology

    fmt = table.get("format", "conv")
    if fmt not in ("conv", "gemm"):
        raise ConfigError(f"scalesim format must be 'conv' or 'gemm', not {fmt!r}")
    path = Path(table["topology"])
    if not path.is_absolute():
        path = base / path
    layers = read_topology(path, fmt)
    want = table.get("layers")
    if want is not None:
        if not isinstance(want, list) or not all(isinstance(x, str) for x in want):
            raise ConfigTypeError(f"scalesim layers must be a list of layer names, not {want!r}")
        names = {ly.name for ly in layers}
        missing = [x for x in want if x not in names]
        if missing:
            raise ConfigError(f"scalesim layers: {path.name} has no layer {missing[0]!r}")
        layers = [ly for ly in layers if ly.name in want]
    return [{"kind": "scalesim", "name": f"{path.stem}:{ly.name}", "topology": path.name,
             "layer": ly.name, "m": ly.M, "n": ly.N, "k": ly.K} for ly in layers]


def synth_point(cfg, options: dict) -> dict:
    """FPGA figures of one engine config (`tpesim.kernels.synth.resources`: luts, ffs, dsps,
    fmax_mhz, ...; cached by that module)."""
    synth = importlib.import_module("tpesim.kernels.synth")
    return dict(synth.resources(cfg, **options))


def llm_expand(table: dict, base: Path) -> list[dict]:
    """Whole-model prefill + decode runs (tpesim.kernels.llm, docs/llm.md): `model` a shipped
    name or a config.json (relative to the spec), `prefill`, `decode`, `batch`, `q_block`."""
    _only(table, "[[workloads]] kind llm", ("kind", "model", "prefill", "decode", "batch",
                                             "q_block", "attention_engine"),
          ("model", "prefill", "decode"))
    from tpesim.kernels.llm import SHIPPED, resolve_model

    table = {"batch": 1, "q_block": 128, **table}
    att = table.pop("attention_engine", None)
    if att is not None:  # an engine config table, e.g. {engine = "systolic", rows = 128}
        if not isinstance(att, dict):
            raise ConfigTypeError(f"llm attention_engine must be an engine config table, "
                                  f"not {att!r}")
        att = config_from_dict({"engine": "systolic", **att}).to_dict()
    out = []
    for p in _axes(table, ("model", "prefill", "decode", "batch", "q_block")):
        model = p["model"]
        if not isinstance(model, str):
            raise ConfigTypeError(f"llm model must be a shipped name or a config.json path, "
                                  f"not {model!r}")
        if model not in SHIPPED and model.lower().endswith((".json", ".onnx")) and \
                not Path(model).is_absolute():
            model = str(base / model)
        spec = resolve_model(model)  # a bad name or file fails here, before any point runs
        for f in ("prefill", "decode", "batch", "q_block"):
            if isinstance(p[f], bool) or not isinstance(p[f], int):
                raise ConfigTypeError(f"llm {f} must be an integer, not {p[f]!r}")
        # the key holds the model's shapes, not its path: a moved file keeps its results
        shapes = {k: v for k, v in spec.__dict__.items() if k != "name"}
        out.append({"kind": "llm", "name": f"{spec.name} p{p['prefill']} d{p['decode']} "
                                           f"b{p['batch']}", **p, "model": model,
                    "attention_engine": att,
                    "model_spec": json.loads(json.dumps(shapes, default=str))})
    return out


def llm_run(cfg, w: dict, memory, fidelity: str, seed: int) -> dict:
    from tpesim.kernels.llm import run_llm

    if fidelity != "tile":
        raise WorkloadError("llm workloads run at the tile level only, not at fidelity "
                            f"{fidelity!r}")
    att = w.get("attention_engine")
    run = run_llm(w["model"], prefill=w["prefill"], decode=w["decode"], batch=w["batch"],
                  q_block=w["q_block"], engine=cfg, memory=memory,
                  attention_engine=None if att is None else config_from_dict(att))
    return {k: v for k, v in run.summary().items() if k != "wall_s"}


register_kind(Kind("gemm", expand="tpesim.sweep:gemm_expand", run="tpesim.sweep:gemm_run"))
register_kind(Kind("scalesim", expand="tpesim.sweep:scalesim_expand",
                   run="tpesim.sweep:gemm_run"))
register_kind(Kind("llm", expand="tpesim.sweep:llm_expand", run="tpesim.sweep:llm_run",
                   requires="tpesim.kernels.llm"))


# -------------------------------------------------------------------------------------------------
# The spec
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One run: an engine config, a memory, a workload (or a synthesis of the config)."""

    key: str
    kind: str
    config: dict
    memory: dict
    workload: dict
    fidelity: str
    seed: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    configs: tuple[EngineConfig, ...]
    memories: tuple[Any, ...]
    workloads: tuple[dict, ...]
    fidelity: str = "tile"
    seed: int = 0
    synth: dict | None = None
    energy: str | bool = False
    skipped: tuple[str, ...] = ()

    def points(self) -> list[Point]:
        pts = []
        for cfg in self.configs:
            if self.synth is not None:
                pts.append(_point("synth", cfg, None, {"kind": "synth", "name": "synth",
                                                       **self.synth}, "synth", 0))
            for mem in self.memories:
                for w in self.workloads:
                    pts.append(_point(w["kind"], cfg, mem, w, self.fidelity, self.seed))
        uniq: dict[str, Point] = {}
        for p in pts:  # each point once, in spec order
            uniq.setdefault(p.key, p)
        return list(uniq.values())


def point_key(kind: str, config: dict, memory: dict, workload: dict, fidelity: str,
              seed: int, version: str | None = None) -> str:
    """The hash of everything a point's result depends on: engine config, memory, workload,
    fidelity, seed (cycle fidelity only) and the tool version."""
    ident = {"kind": kind, "config": config, "memory": memory, "workload": workload,
             "fidelity": fidelity, "seed": seed if fidelity == "cycle" else None,
             "version": _version() if version is None else version}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _point(kind: str, cfg: EngineConfig, mem, w: dict, fidelity: str, seed: int) -> Point:
    config = cfg.to_dict()
    memory = mem.to_dict() if mem is not None else {}
    return Point(key=point_key(kind, config, memory, w, fidelity, seed), kind=kind,
                 config=config, memory=memory, workload=w, fidelity=fidelity, seed=seed)


def load_spec(path: str | Path) -> SweepSpec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8").removeprefix("\ufeff")
    except FileNotFoundError:
        raise FileFormatError(f"sweep spec {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FileFormatError(f"sweep spec {str(path)!r}: cannot read it "
                              f"({getattr(e, 'strerror', None) or e})") from None
    try:
        return parse_spec(text, base=p.parent, name=p.stem)
    except tomllib.TOMLDecodeError as e:
        raise FileFormatError(f"sweep spec {str(path)!r}: malformed TOML: "
                              f"{' '.join(str(e).split())}") from None
    except TpesimError as e:
        if isinstance(e, FileFormatError) and str(path) in str(e):
            raise
        raise type(e)(f"sweep spec {str(path)!r}: {e}") from None


def parse_spec(text: str, *, base: Path = Path("."), name: str = "sweep") -> SweepSpec:
    """A sweep from TOML text: [sweep], [[engines]], optional [[memory]], [[workloads]]."""
    from .memory import MemoryConfig
    from .registry import get_engine

    d = tomllib.loads(text)
    _only(d, "the spec", ("sweep", "engines", "memory", "workloads"), ("engines", "workloads"))
    head = d.get("sweep", {})
    if not isinstance(head, dict):
        raise ConfigTypeError(f"[sweep] must be a table, not {head!r}")
    _only(head, "[sweep]", ("name", "fidelity", "seed", "synth", "energy"))
    if not isinstance(head.get("name", name), str) or not head.get("name", name).strip():
        raise ConfigTypeError(f"[sweep] name must be a non-empty string, not "
                              f"{head.get('name')!r}")
    fidelity = head.get("fidelity", "tile")
    if fidelity not in FIDELITIES:
        raise ConfigError(f"[sweep] fidelity must be 'tile' or 'cycle', not {fidelity!r}")
    seed = head.get("seed", 0)
    from .config import check_seed

    check_seed("[sweep] seed", seed)
    synth = head.get("synth", False)
    if isinstance(synth, dict):
        _only(synth, "[sweep] synth", SYNTH_OPTIONS)
    elif isinstance(synth, bool):
        synth = {} if synth else None
    else:
        raise ConfigTypeError(f"[sweep] synth must be true, false or a table of "
                              f"{', '.join(SYNTH_OPTIONS)}, not {synth!r}")
    energy = head.get("energy", False)
    if not isinstance(energy, (bool, str)) or energy == "":
        raise ConfigTypeError(f"[sweep] energy must be true, false or a table file, not "
                              f"{energy!r}")
    if isinstance(energy, str) and not Path(energy).is_absolute():
        energy = str(base / energy)

    for section in ("engines", "workloads", "memory"):
        v = d.get(section, [])
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            raise ConfigTypeError(f"[[{section}]] must be an array of tables, not {v!r}")
    if not d["engines"]:
        raise ConfigError("the spec needs at least one [[engines]] table")
    if not d["workloads"]:
        raise ConfigError("the spec needs at least one [[workloads]] table")

    configs, skipped = [], []
    for i, t in enumerate(d["engines"]):
        where = f"[[engines]] #{i + 1}"
        eng = get_engine(t.get("engine", "systolic"))
        names = [f.name for f in dataclasses.fields(eng.config)]
        _only(t, f"{where} ({eng.name})", ["engine", *names])
        got, errors = 0, []
        for combo in _axes(t, [n for n in names if n in t]):
            try:
                configs.append(eng.config(**combo))
                got += 1
            except (ConfigError, ConfigTypeError) as e:
                errors.append((combo, str(e)))
        if not got:  # every combination refused: the table itself is wrong
            raise ConfigError(f"{where} ({eng.name}): {errors[0][1]}")
        skipped += [f"{eng.name} {combo}: {msg}" for combo, msg in errors]
    memories = []
    for i, t in enumerate(d.get("memory", []) or [{}]):
        mnames = [f.name for f in dataclasses.fields(MemoryConfig)]
        _only(t, f"[[memory]] #{i + 1}", mnames)
        for combo in _axes(t, [n for n in mnames if n in t]):
            memories.append(MemoryConfig(**combo))
    workloads = []
    for i, t in enumerate(d["workloads"]):
        kind = _get_kind(t.get("kind"))
        workloads += kind.load("expand")(t, base)
    seen: set[str] = set()
    uniq = []
    for c in configs:  # two tables may name the same config: run it once
        if c.to_json() not in seen:
            seen.add(c.to_json())
            uniq.append(c)
    return SweepSpec(name=head.get("name", name), configs=tuple(uniq), memories=tuple(memories),
                     workloads=tuple(workloads), fidelity=fidelity, seed=seed, synth=synth,
                     energy=energy, skipped=tuple(skipped))


def expand(spec: SweepSpec) -> list[Point]:
    return spec.points()


# -------------------------------------------------------------------------------------------------
# Running points
# -------------------------------------------------------------------------------------------------
def run_point(point: dict) -> dict:
    """Run one point (a `Point.to_dict()`) and return its record for the results file. A
    TpesimError (the point does not fit the engine, ...) is recorded as status "error": it is a
    result and is not retried; any other exception propagates."""
    from .memory import MemoryConfig

    t0 = time.perf_counter()
    rec = {"key": point["key"], "kind": point["kind"], "config": point["config"],
           "memory": point["memory"], "workload": point["workload"],
           "fidelity": point["fidelity"], "seed": point["seed"], "version": _version()}
    try:
        cfg = config_from_dict(point["config"])
        if point["kind"] == "synth":
            opts = {k: v for k, v in point["workload"].items() if k in SYNTH_OPTIONS}
            result = SYNTH.load("run")(cfg, opts)
        else:
            mem = MemoryConfig(**point["memory"])
            result = _get_kind(point["kind"]).load("run")(cfg, point["workload"], mem,
                                                          point["fidelity"], point["seed"])
        rec.update(status="ok", result=result)
    except TpesimError as e:
        rec.update(status="error", error=f"{type(e).__name__}: {' '.join(str(e).split())}")
    rec.update(wall_s=time.perf_counter() - t0, host=os.uname().nodename,
               finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return rec


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


class ResultsFile:
    """The append-only JSONL store: one line per finished point, flushed and fsynced at once.

    Opening it takes an exclusive lock (two sweeps never write the same file) and truncates a torn
    last line (a run killed in the middle of a write) so the next append starts a clean line.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a+b")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise ConfigError(f"results file {str(path)!r} is in use by another sweep") from None
        self.records = self._load()

    def _load(self) -> dict[str, dict]:
        self.f.seek(0)
        data = self.f.read()
        good = data.rfind(b"\n") + 1
        if good < len(data):  # torn last line: no newline, so it was never a finished point
            self.f.truncate(good)
            self.f.flush()
            os.fsync(self.f.fileno())
        return _parse_jsonl(data[:good], self.path)

    def append(self, rec: dict) -> None:
        line = json.dumps(rec, sort_keys=True, default=_jsonable).encode() + b"\n"
        self.f.seek(0, os.SEEK_END)
        self.f.write(line)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.records[rec["key"]] = rec

    def close(self) -> None:
        self.f.close()


def _parse_jsonl(data: bytes, path: Path) -> dict[str, dict]:
    out = {}
    for i, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key = rec["key"]
        except (ValueError, KeyError, TypeError):
            raise FileFormatError(f"{path}: line {i} is not a sweep result (JSON with a key)") \
                from None
        out[key] = rec
    return out


def read_results(path: str | Path) -> dict[str, dict]:
    """Every finished point of a results file, by key (a torn last line is ignored)."""
    data = Path(path).read_bytes()
    return _parse_jsonl(data[:data.rfind(b"\n") + 1], Path(path))


@dataclass
class SweepResult:
    points: int
    skipped: int
    ran: int
    errors: int
    failed: list[str]
    rows: list[dict]
    out_dir: Path
    files: list[Path]
    wall_s: float


def _progress(total: int, done: int, enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task("sweep", total=total, completed=done)
    bar.start()
    return bar, task


def _execute(todo: list[dict], store: ResultsFile, *, workers: int, scheduler: str | None,
             on_done: Callable[[dict], None]) -> list[str]:
    """Run points, appending each record as it finishes; returns messages of points that raised."""
    failed: list[str] = []

    def take(point: dict, rec: dict | None, exc: BaseException | None) -> None:
        if exc is not None:
            failed.append(f"{point['workload'].get('name')} on {point['config']}: "
                          f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            return
        store.append(rec)
        on_done(rec)

    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="20s") as client:
            futures = {client.submit(run_point, p, key=f"tpesim-point-{p['key']}", pure=False): p
                       for p in todo}
            for fut in as_completed(futures):
                exc = fut.exception()
                take(futures[fut], None if exc else fut.result(), exc)
        return failed
    if workers == 1:
        for p in todo:
            try:
                rec = run_point(p)
            except Exception as e:  # noqa: BLE001 (reported, the sweep goes on)
                take(p, None, e)
            else:
                take(p, rec, None)
        return failed
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed as done_order

    # forkserver: workers never inherit the progress bar's thread (fork with threads can hang)
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_point, p): p for p in todo}
        for fut in done_order(futures):
            exc = fut.exception()
            take(futures[fut], None if exc else fut.result(), exc)
    return failed


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, energy: str | bool | None = None,
              progress: bool = False, pareto_x: str | None = None,
              plot: bool = True) -> SweepResult:
    """Run every point of `spec` not already in `out_dir/results.jsonl`, then write results.csv,
    results.json and (matplotlib) pareto.png + pareto.csv from the spec's points."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output directory must be a directory, not the file {str(out)!r}")
    if workers is None:
        workers = max(1, len(os.sched_getaffinity(0)))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, not {workers!r}")
    energy = spec.energy if energy is None else energy
    table = _energy_table(energy)
    points = spec.points()
    store = ResultsFile(out / RESULTS)
    try:
        todo = [p.to_dict() for p in points if p.key not in store.records]
        skipped = len(points) - len(todo)
        bar = _progress(len(points), skipped, progress)
        ran = 0

        def on_done(rec: dict) -> None:
            nonlocal ran
            ran += 1
            if bar is not None:
                bar[0].advance(bar[1])

        try:
            failed = _execute(todo, store, workers=workers, scheduler=scheduler, on_done=on_done)
        finally:
            if bar is not None:
                bar[0].stop()
        records = [store.records[p.key] for p in points if p.key in store.records]
    finally:
        store.close()
    rows = _rows(records, table)
    files = _write_outputs(out, spec, rows, table, pareto_x=pareto_x, plot=plot)
    return SweepResult(points=len(points), skipped=skipped, ran=ran,
                       errors=sum(r["status"] == "error" for r in records), failed=failed,
                       rows=rows, out_dir=out, files=files, wall_s=time.perf_counter() - t0)


def _energy_table(energy):
    if energy is False or energy is None:
        return None
    from .energy import load_table

    return load_table(None if energy is True else energy)


# -------------------------------------------------------------------------------------------------
# Outputs
# -------------------------------------------------------------------------------------------------
_ID_FIELDS = ("key", "status", "kind", "workload", "engine", "engine_name", "fidelity")


def _rows(records: list[dict], table) -> list[dict]:
    """One flat row per workload point (synthesis figures joined onto their config's rows)."""
    synth = {json.dumps(r["config"], sort_keys=True): r for r in records if r["kind"] == "synth"}
    rows = []
    for r in records:
        if r["kind"] == "synth":
            continue
        cfg = config_from_dict(r["config"])
        row = {"key": r["key"], "status": r["status"], "kind": r["kind"],
               "workload": r["workload"].get("name"), "engine": cfg.engine,
               "engine_name": cfg.name, "fidelity": r["fidelity"]}
        row.update({f"cfg_{k}": v for k, v in r["config"].items() if k != "engine"})
        row.update({f"wl_{k}": v for k, v in r["workload"].items() if k not in ("kind", "name")})
        row["peak_macs_per_cycle"] = cfg.peak_macs_per_cycle
        if r["status"] == "ok":
            res = r["result"]
            row.update({k: v for k, v in res.items() if k not in row})
            if table is not None:
                from .energy import energy_fields

                try:
                    row.update(energy_fields(cfg, res, table))
                except (KeyError, TpesimError) as e:  # a kind without the counts the engine uses
                    row["energy_table"] = table.name
                    row["energy_error"] = (f"missing report field {e}" if isinstance(e, KeyError)
                                           else " ".join(str(e).split()))
        else:
            row["error"] = r.get("error", "")
        s = synth.get(json.dumps(r["config"], sort_keys=True))
        if s is not None:
            if s["status"] == "ok":
                row.update({f"synth_{k}": v for k, v in s["result"].items()})
            else:
                row["synth_error"] = s.get("error", "")
        row["wall_s"] = r.get("wall_s")
        rows.append(row)
    return rows


def _csv_text(rows: list[dict]) -> str:
    from .outputs import csv_cell, provenance

    rows = [{**provenance(), **r} for r in rows]
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


def pareto_front(items: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both minimised)."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0], items[i][1]))
    front, best = [], float("inf")
    for i in order:
        if items[i][1] < best:
            front.append(i)
            best = items[i][1]
    return front


_PARETO_X = {"luts": ("synth_luts", "FPGA LUTs"), "energy": ("energy_pj", "energy (pJ)"),
             "peak": ("peak_macs_per_cycle", "peak MACs/cycle (no LUT or energy figure)")}


def _pareto(rows: list[dict], pareto_x: str | None) -> tuple[list[dict], str, str] | None:
    """Per (engine config, memory): total cycles over the spec's workloads against the chosen x
    (LUTs when synthesis ran, else energy when a table is in use, else peak MACs/cycle)."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    if pareto_x is None:
        pareto_x = next((x for x in ("luts", "energy") if _PARETO_X[x][0] in ok[0]), "peak")
    if pareto_x not in _PARETO_X:
        raise ConfigError(f"pareto x must be one of {', '.join(map(repr, _PARETO_X))}, "
                          f"not {pareto_x!r}")
    col, label = _PARETO_X[pareto_x]
    nwork = len({r["workload"] for r in rows})
    groups: dict[tuple, dict] = {}
    for r in rows:
        mem = tuple((k, r.get(k)) for k in ("sram_kib_a", "sram_kib_b", "sram_kib_c",
                                             "dram_bw_bytes_per_cycle", "dram_latency_cycles"))
        g = groups.setdefault((r["engine_name"], json.dumps([r.get(k) for k in r
                                                                if k.startswith("cfg_")]), mem),
                              {"engine_name": r["engine_name"], "memory": dict(mem),
                               "cycles": 0, "x": 0.0, "n": 0, "bad": False})
        if r["status"] != "ok" or r.get(col) is None:
            g["bad"] = True
            continue
        g["cycles"] += r["cycles"]
        g["n"] += 1
        # energy and cycles add up over workloads; a config's LUTs or peak do not
        g["x"] = g["x"] + r[col] if pareto_x == "energy" else r[col]
    pts = [g for g in groups.values() if not g["bad"] and g["n"] == nwork]
    if not pts:
        return None
    front = set(pareto_front([(g["x"], g["cycles"]) for g in pts]))
    out = [{"engine_name": g["engine_name"], **g["memory"], "total_cycles": g["cycles"],
            col if pareto_x != "energy" else "total_energy_pj": g["x"],
            "pareto": i in front} for i, g in enumerate(pts)]
    return out, label, pareto_x


def _write_outputs(out: Path, spec: SweepSpec, rows: list[dict], table, *,
                   pareto_x: str | None, plot: bool) -> list[Path]:
    from .outputs import provenance, write_text_atomic

    files = [write_text_atomic(out / "results.csv", _csv_text(rows), "results.csv")]
    meta = {**provenance(), "sweep": spec.name, "version": _version(), "fidelity": spec.fidelity,
            "points": len(rows), "skipped_configs": list(spec.skipped),
            "energy_table": None if table is None else table.to_dict(), "rows": rows}
    files.append(write_text_atomic(out / "results.json",
                                   json.dumps(meta, indent=1, default=_jsonable) + "\n",
                                   "results.json"))
    par = _pareto(rows, pareto_x)
    if par is not None:
        prow, label, x = par
        files.append(write_text_atomic(out / "pareto.csv", _csv_text(prow), "pareto.csv"))
        if plot:
            files.append(_plot(out / "pareto.png", prow, label, x, spec.name))
    return files


def _plot(path: Path, prow: list[dict], label: str, x: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xcol = next(k for k in prow[0] if k not in ("engine_name", "total_cycles", "pareto")
                and not k.startswith(("sram_kib", "dram_")))
    fig, ax = plt.subplots(figsize=(7, 5))
    for on, style in ((False, {"c": "0.6", "s": 18}), (True, {"c": "C3", "s": 30})):
        sel = [r for r in prow if r["pareto"] is on]
        ax.scatter([r[xcol] for r in sel], [r["total_cycles"] for r in sel],
                   label="Pareto front" if on else "dominated", **style)
    front = sorted((r for r in prow if r["pareto"]), key=lambda r: r[xcol])
    ax.step([r[xcol] for r in front], [r["total_cycles"] for r in front], where="post", c="C3")
    for r in front:
        ax.annotate(r["engine_name"], (r[xcol], r["total_cycles"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(label)
    ax.set_ylabel("cycles (sum over the workloads)")
    ax.set_xscale("log" if x != "peak" else "linear")
    ax.set_yscale("log")
    ax.set_title(f"{title}: cycles vs {label}")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# -------------------------------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tpesim sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep (docs/sweep.md)")
    p.add_argument("-o", "--out-dir", default=None, metavar="DIR",
                   help="results.jsonl (resume store), results.csv/.json, pareto.png/.csv "
                        "(default: sweep_out/<spec name>)")
    p.add_argument("-j", "--workers", type=int, default=None,
                   help="local worker processes (default: the CPUs this process may use)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the points on this Dask distributed scheduler instead")
    p.add_argument("--energy", nargs="?", const=True, default=None, metavar="FILE",
                   help="add energy_pj by component: the built-in table (Horowitz 45 nm), or "
                        "FILE (TOML/JSON) overriding it (docs/energy.md)")
    p.add_argument("--pareto-x", choices=tuple(_PARETO_X), default=None,
                   help="x axis of pareto.png (default: luts with synthesis, else energy with "
                        "a table, else peak)")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png (pareto.csv stays)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the points and which are already finished; run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
        if args.scheduler is not None and not args.scheduler.strip():
            raise ConfigError("--scheduler must be an address such as tcp://HOST:PORT, not ''")
        spec = load_spec(args.spec)
        out = Path(args.out_dir) if args.out_dir else Path("sweep_out") / Path(args.spec).stem
        if args.out_dir is not None and not args.out_dir.strip():
            raise ConfigError("--out-dir must name a directory, not an empty string")
        if args.energy not in (None, True):
            _energy_table(args.energy)  # a bad table fails before any point runs
        for note in spec.skipped:
            print(f"tpesim sweep: note: config skipped: {note}", file=sys.stderr)
        if args.dry_run:
            done = read_results(out / RESULTS) if (out / RESULTS).exists() else {}
            for p in spec.points():
                state = "done" if p.key in done else "todo"
                print(f"{state} {p.key} {p.kind} {config_from_dict(p.config).name} "
                      f"{p.workload.get('name')}")
            return 0
        res = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                        energy=args.energy, progress=sys.stderr.isatty(),
                        pareto_x=args.pareto_x, plot=not args.no_plot)
    except TpesimError as e:
        print(f"tpesim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    where = "on " + args.scheduler if args.scheduler else f"{_workers(args)} local worker(s)"
    print(f"sweep {spec.name}: {res.points} points, {res.skipped} already finished, {res.ran} "
          f"run {where}, {res.errors} recorded errors, {len(res.failed)} failed, "
          f"{res.wall_s:.1f} s; outputs: {', '.join(str(f) for f in res.files)}")
    for msg in res.failed:
        print(f"tpesim sweep: failed (not recorded; a rerun retries it): {msg}", file=sys.stderr)
    return 1 if res.failed else 0


def _workers(args) -> int:
    return args.workers if args.workers else max(1, len(os.sched_getaffinity(0)))


if __name__ == "__main__":
    sys.exit(main())

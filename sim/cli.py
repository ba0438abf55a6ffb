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

from .errors import TpesimError

__all__ = ["main"]

PROG = "tpesim"
# Subcommands whose arguments belong to another tool's own parser, forwarded untouched.
FORWARDED = {
    "cosim": ("tpesim.cosim.runner", "main", "co-simulate an engine's RTL against its cycle model"),
    "scalesim": ("tpesim.kernels.scalesim", "cli_main", "run SCALE-Sim config and topology files"),
    "train": ("tpesim.kernels.train_cli", "main", "BDWP N:M sparse training on the digits set"),
    "sweep": ("tpesim.sweep", "main", "engine configs x workloads, local pool or Dask, resumable"),
    "synth": ("tpesim.kernels.synth", "cli_main",
              "FPGA synthesis and place-and-route of an engine: LUTs, FFs, DSPs, BRAMs, Fmax"),
}
# `run` kernels that own their parser (in kernels/), forwarded untouched the same way.
RUN_FORWARDED = {
    "lut-layers": ("tpesim.kernels.lut", "cli_main",
                   "low-bit LLM linears on the LUT engine beside the systolic array at equal peak"),
    "llm": ("tpesim.kernels.llm.cli", "cli_main", "whole-model LLM prefill + decode timing"),
}


class UsageError(TpesimError):
    """A command line that argparse rejected."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting: main() owns the error format."""

    def error(self, message: str):
        raise UsageError(message)


def _engine_name(argv: Sequence[str]) -> str:
    """The `--engine` value of a command line (default systolic), read before the full parse
    because the engine decides which options exist."""
    for i, a in enumerate(argv):
        if a == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--engine="):
            return a.split("=", 1)[1]
    return "systolic"


def _engine_options(p: argparse.ArgumentParser, engine: str) -> None:
    from .options import add_engine_options
    from .registry import ENGINES, engine_names

    p.add_argument("--engine", default="systolic", choices=engine_names(),
                   help="the engine to run (default systolic; `tpesim engines` lists them)")
    if engine in ENGINES:
        add_engine_options(p, ENGINES[engine].config)


def _config(args: argparse.Namespace):
    from .options import config_from_args
    from .registry import get_engine

    return config_from_args(get_engine(args.engine).config, args)


def _max_cycles(args: argparse.Namespace) -> dict:
    return {} if args.max_cycles is None else {"max_cycles": args.max_cycles}


def _run_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every `run` kernel: fidelity, memory, outputs."""
    p.add_argument("--fidelity", default="cycle", choices=("cycle", "tile"),
                   help="cycle: the register-level model computes and checks the result (default); "
                        "tile: tile-level timing only (identical cycle counts), fast")
    p.add_argument("--verify", action="store_true",
                   help="at tile fidelity, also compute the result with numpy and check it "
                        "(cycle fidelity always checks)")
    p.add_argument("--max-cycles", type=int, default=None, metavar="CYCLES",
                   help="cycle fidelity refuses, up front, a run bound to take more cycles "
                        "(default 2**34; the tile level has no such limit)")
    for op, what in (("a", "A (M x K)"), ("b", "B (K x N)"),
                     ("c", "C, the results (held blocks: the accumulator buffer)")):
        p.add_argument(f"--sram-kib-{op}", type=float, default=None, metavar="KIB",
                       help=f"SRAM for {what} in KiB, two halves (default: unbounded)")
    p.add_argument("--dram-bw", type=float, default=None, metavar="BYTES_PER_CYCLE",
                   help="DRAM link bandwidth shared by all operands (default: unbounded)")
    p.add_argument("--dram-latency", type=int, default=0, metavar="CYCLES",
                   help="cycles from a read's transfer to its data in SRAM (default 0)")
    p.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    p.add_argument("--interpreted", action="store_true",
                   help="run the pure-Python source of the hot path (slow; for debugging)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="also write the report as CSV (header and one row) to FILE")
    p.add_argument("--energy", nargs="?", const=True, default=None, metavar="FILE",
                   help="add energy_pj by component from the built-in table (Horowitz ISSCC "
                        "2014, 45 nm) or FILE (TOML/JSON) overriding it (docs/energy.md)")


def _build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    from .registry import ENGINES

    engine = _engine_name(argv)
    parser = _Parser(prog=PROG,
                     description="Cycle-accurate simulator of tensor processing engines.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    eng = sub.add_parser("engines", help="list the engines and their options")
    eng.set_defaults(func=_cmd_engines)

    run = sub.add_parser("run", help="run a kernel on an engine (cycle model or tile-level timing)")
    run_sub = run.add_subparsers(dest="kernel", metavar="KERNEL", required=True)
    gemm = run_sub.add_parser("gemm", help="C = A @ B on an engine, random operands")
    gemm.add_argument("--m", type=int, required=True, help="rows of A and C")
    gemm.add_argument("--n", type=int, required=True, help="columns of B and C")
    gemm.add_argument("--k", type=int, required=True, help="columns of A, rows of B")
    _engine_options(gemm, engine)
    _run_args(gemm)
    gemm.set_defaults(func=_cmd_run_gemm)

    conv = run_sub.add_parser("conv", help="conv2d (NHWC, HWIO) lowered by im2col onto an "
                                           "engine, random operands")
    for name, what in (("in-h", "input height"), ("in-w", "input width"),
                       ("in-channels", "input channels"), ("out-channels", "filters"),
                       ("kernel-h", "filter height"), ("kernel-w", "filter width")):
        conv.add_argument(f"--{name}", type=int, required=True, help=what)
    for name, default, what in (("stride-h", 1, "vertical stride"),
                                ("stride-w", 1, "horizontal stride"),
                                ("pad-h", 0, "zero rows added at top and bottom"),
                                ("pad-w", 0, "zero columns added left and right"),
                                ("dilation-h", 1, "vertical tap spacing"),
                                ("dilation-w", 1, "horizontal tap spacing"),
                                ("batch", 1, "images")):
        conv.add_argument(f"--{name}", type=int, default=default,
                          help=f"{what} (default {default})")
    _engine_options(conv, engine)
    _run_args(conv)
    conv.set_defaults(func=_cmd_run_conv)
    for name, (_, _, helptext) in RUN_FORWARDED.items():
        run_sub.add_parser(name, help=f"{helptext} (`{PROG} run {name} --help`)", add_help=False)

    verilog = sub.add_parser("verilog", help="emit the Verilog of a configured engine")
    v_sub = verilog.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    from .options import add_engine_options

    for name, e in ENGINES.items():
        vs = v_sub.add_parser(name, help=e.summary)
        add_engine_options(vs, e.config)
        vs.add_argument("-o", "--output", required=True, metavar="FILE.v",
                        help="Verilog file to write")
        vs.add_argument("--name", default=None,
                        help="top module name (default: the config's name)")
        vs.set_defaults(func=_cmd_verilog)

    for name, (_, _, helptext) in FORWARDED.items():
        sub.add_parser(name, help=f"{helptext} (arguments: `{PROG} {name} --help`)", add_help=False)
    return parser


def _memory_config(args: argparse.Namespace):
    from .memory import MemoryConfig

    return MemoryConfig(sram_kib_a=args.sram_kib_a, sram_kib_b=args.sram_kib_b,
                        sram_kib_c=args.sram_kib_c, dram_bw=args.dram_bw,
                        dram_latency=args.dram_latency)


def _check_supported(args: argparse.Namespace, cfg) -> None:
    """An engine without a model at the asked fidelity is an error, never a silent wrong answer."""
    from tpesim.kernels.gemm import engine_faces

    engine_faces(cfg, args.fidelity)


def _interpreted_ran() -> bool:
    """Whether any hot path of this run ran as Python source (asked for, or not built)."""
    from .engines import cores_loaded

    return not all(cores_loaded().values())


def _run_report(kernel: str, args: argparse.Namespace, cfg, res, shape: dict,
                total_s: float) -> dict:
    from .outputs import provenance

    cycles_per_s = res.cycles / res.wall_s if res.wall_s > 0 else None
    report = {**provenance(), "kernel": kernel, "engine_name": cfg.name, **shape,
              "seed": args.seed,
              **cfg.to_dict(), "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
              "interpreted": _interpreted_ran()}
    cfg_fields = cfg.to_dict()
    for k, v in res.to_dict().items():
        # a config field keeps its value; the timing's own reading of a same-named field (the held
        # block's rows = K positions, which an N:M engine's `rows` lanes cover M each) is block_<k>
        if k in cfg_fields and cfg_fields[k] != v:
            report[f"block_{k}"] = v
        else:
            report[k] = v
    # fields an engine adds about its own units (the LUT engine: table precompute cycles, bytes)
    engine_fields = getattr(cfg, "report_fields", None)
    extra = engine_fields(res) if engine_fields is not None else {}
    report.update(extra)
    if getattr(args, "energy", None) is not None:  # only when a table is in use, named
        from .energy import energy_fields, load_table

        report.update(energy_fields(cfg, report, load_table(
            None if args.energy is True else args.energy)))
    report.update({"total_wall_s": total_s, "cycles_per_s": cycles_per_s})
    return report, tuple(extra)


def _emit(args: argparse.Namespace, report: dict, title: str, extra: tuple = ()) -> int:
    if args.csv is not None:
        import csv
        import io

        from .outputs import csv_cell, write_text_atomic

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(report), lineterminator="\n")
        w.writeheader()
        w.writerow({k: csv_cell(v) for k, v in report.items()})
        write_text_atomic(args.csv, buf.getvalue(), "--csv")
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report, title, extra)
    if report["matched"] is False:
        print(f"{PROG}: error: result differs from the numpy reference (seed {args.seed})",
              file=sys.stderr)
        return 1
    return 0


def _print_table(r: dict, title: str, extra: tuple = ()) -> None:
    """The report as aligned rows; `extra` names the engine's own fields (`report_fields`)."""
    matched = {True: "yes", False: "NO", None: "not checked (--verify)"}[r["matched"]]
    rows = [
        ("engine", r["engine_name"]),
        (r["kernel"], title),
        ("mapping / fidelity", f"{r['dataflow']}"
                               f"{' (double buffer)' if r.get('double_buffer') else ''}"
                               f" / {r['fidelity']}"),
        (f"{r['unit']}s", f"{r['blocks']:,}"),
        ("cycles", f"{r['cycles']:,}" + (" (end of the write-back)"
                                         if r["cycles"] != r["engine_done_cycle"] else "")),
    ]
    if r["cycles"] != r["engine_done_cycle"]:
        rows.append(("engine done at cycle", f"{r['engine_done_cycle']:,}"))
    rows += [
        ("compute cycles", f"{r['compute_cycles']:,}"),
        ("stall cycles", f"{r['stall_cycles']:,}"),
        ("macs", f"{r['macs']:,}"),
        ("utilization", f"{100 * r['utilization']:.2f} %"),
    ]
    rows += [(k.replace("_", " "), f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]))
             for k in extra]
    for op in "abc":
        parts = [f"{kind} {rw} {r[f'{kind}_{rw}_bytes_{op}']:,}"
                 for kind in ("sram", "dram") for rw in ("read", "write")
                 if r[f"{kind}_{rw}_bytes_{op}"]]
        rows.append((f"bytes {op.upper()}", ", ".join(parts) or "0"))
    if "energy_pj" in r:
        parts = ", ".join(f"{k[7:-3]} {r[k]:,.0f}" for k in r
                          if k.startswith("energy_") and k.endswith("_pj") and k != "energy_pj")
        rows.append(("energy (pJ)", f"{r['energy_pj']:,.0f} ({parts}; table "
                                    f"{r['energy_table']})"))
    rows += [
        ("matched numpy", matched),
        ("wall time (simulation)", _seconds(r["wall_s"])),
    ]
    if r["cycles_per_s"] is not None:
        rows.append(("simulated cycles/s", f"{r['cycles_per_s']:,.0f}"))
    width = max(len(k) for k, _ in rows)
    for key, val in rows:
        print(f"{key:<{width}}  {val}")


def _cmd_run_gemm(args: argparse.Namespace) -> int:
    from tpesim.kernels.gemm import random_operands, run_gemm, time_gemm

    from .timing import check_gemm_shape

    check_gemm_shape(args.m, args.n, args.k)
    from .outputs import check_output_path

    check_output_path("--csv", args.csv)
    _check_energy(args)
    cfg = _config(args)
    _check_supported(args, cfg)
    memory = _memory_config(args)
    progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    if args.fidelity == "tile" and not args.verify:
        res = time_gemm(cfg, args.m, args.n, args.k, memory=memory, progress=progress)
    else:
        a, b = random_operands(cfg, args.m, args.n, args.k, args.seed)
        res = run_gemm(cfg, a, b, fidelity=args.fidelity, memory=memory, verify=True,
                       interpreted=True if args.interpreted else None, progress=progress,
                       **_max_cycles(args))
    total_s = time.perf_counter() - t0
    report, extra = _run_report("gemm", args, cfg, res, {"m": args.m, "n": args.n, "k": args.k},
                                    total_s)
    return _emit(args, report, f"{args.m} x {args.n} x {args.k} (m x n x k)", extra)


def _cmd_run_conv(args: argparse.Namespace) -> int:
    from tpesim.kernels.conv import ConvLayer, random_operands
    from tpesim.kernels.gemm import run_conv, time_conv

    from .outputs import check_output_path

    check_output_path("--csv", args.csv)
    _check_energy(args)
    cfg = _config(args)
    _check_supported(args, cfg)
    layer = ConvLayer(in_h=args.in_h, in_w=args.in_w, in_channels=args.in_channels,
                      out_channels=args.out_channels, kernel_h=args.kernel_h,
                      kernel_w=args.kernel_w, stride_h=args.stride_h, stride_w=args.stride_w,
                      pad_h=args.pad_h, pad_w=args.pad_w, dilation_h=args.dilation_h,
                      dilation_w=args.dilation_w, batch=args.batch)
    memory = _memory_config(args)
    progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    if args.fidelity == "tile" and not args.verify:
        res = time_conv(cfg, layer, memory=memory, progress=progress)
    else:
        import numpy as np

        from .numerics import value_range

        ops = {op.role: op for op in cfg.operands()}
        lo, hi = value_range(ops["a"].bits, ops["a"].signed)
        x, w = random_operands(layer, np.random.default_rng(args.seed), lo, hi,
                               w_range=value_range(ops["b"].bits, ops["b"].signed))
        res = run_conv(cfg, layer, x, w, fidelity=args.fidelity, memory=memory, verify=True,
                       interpreted=True if args.interpreted else None, progress=progress,
                       **_max_cycles(args))
    total_s = time.perf_counter() - t0
    shape = {f: getattr(layer, f) for f in ("batch", "in_h", "in_w", "in_channels",
                                            "out_channels", "kernel_h", "kernel_w", "stride_h",
                                            "stride_w", "pad_h", "pad_w", "dilation_h",
                                            "dilation_w", "out_h", "out_w")}
    report, extra = _run_report("conv", args, cfg, res, shape, total_s)
    title = (f"{layer.batch}x{layer.in_h}x{layer.in_w}x{layer.in_channels} * "
             f"{layer.kernel_h}x{layer.kernel_w}x{layer.in_channels}x{layer.out_channels} -> "
             f"{layer.batch}x{layer.out_h}x{layer.out_w}x{layer.out_channels} "
             f"(gemm {res.m} x {res.n} x {res.k})")
    return _emit(args, report, title, extra)


def _check_energy(args: argparse.Namespace) -> None:
    """A bad energy table fails before any work."""
    if args.energy not in (None, True):
        from .energy import load_table

        load_table(args.energy)


def _seconds(s: float) -> str:
    return f"{s:.3f} s" if s >= 1 else f"{s * 1e3:.3f} ms"


def _cmd_verilog(args: argparse.Namespace) -> int:
    from .outputs import check_output_path
    from .registry import get_engine

    check_output_path("-o", args.output)
    cfg = _config(args)
    write_verilog = _lazy(get_engine(args.engine).rtl, "write_verilog")
    path = write_verilog(cfg, args.output, name=args.name)
    print(path if path is not None else args.output)
    return 0


def _cmd_engines(args: argparse.Namespace) -> int:
    import dataclasses

    from .options import NEGATING
    from .registry import ENGINES

    for name, e in ENGINES.items():
        cfg = e.config()
        print(f"{name}: {e.summary}")
        print(f"  config {e.config.__name__}; default {cfg.name}: peak "
              f"{cfg.peak_macs_per_cycle} MAC/cycle")
        opts = []
        for f in dataclasses.fields(e.config):
            if f.default is True:
                opts.append("--" + NEGATING.get(f.name, "no-" + f.name).replace("_", "-"))
            elif f.default is False:
                opts.append("--" + f.name.replace("_", "-"))
            else:
                opts.append(f"--{f.name.replace('_', '-')} (default {getattr(cfg, f.name)})")
        print("  options: " + ", ".join(opts))
        if e.variants:
            print(f"  variants: {e.variants[0]} in {', '.join(e.variants[1])}")
    return 0


def _commands() -> list[str]:
    return ["run", "verilog", "engines", *FORWARDED]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tpesim")
    except Exception:  # noqa: BLE001 (running from a checkout without an installed distribution)
        return "unknown"


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


def _check_shared(args: argparse.Namespace) -> None:
    """Options several commands share whose rule argparse cannot state, checked before any work."""
    from .config import check_int, check_seed

    if getattr(args, "seed", None) is not None:
        check_seed("seed", args.seed)
    if getattr(args, "max_cycles", None) is not None:  # also when the fidelity does not use it
        check_int("max_cycles", args.max_cycles)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tpesim` console script. Returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in FORWARDED:
            return _forward(argv[0], argv[1:])
        if len(argv) > 1 and argv[0] == "run" and argv[1] in RUN_FORWARDED:
            module, attr, _ = RUN_FORWARDED[argv[1]]
            rc = _lazy(module, attr)(argv[2:])
            return 0 if rc is None else int(rc)
        if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
            raise UsageError(f"unrecognized argument {argv[0]!r} (commands: "
                             f"{', '.join(_commands())}; `{PROG} --help`)")
        args = _build_parser(argv).parse_args(argv)
        _check_shared(args)
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

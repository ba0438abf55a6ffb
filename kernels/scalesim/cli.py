"""`tpesim scalesim -c CONFIG.cfg -t TOPOLOGY.csv ...`: the command line over parse/compat/report."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tpesim.outputs import check_output_path, write_text_atomic
from tpesim.errors import FileFormatError, TpesimError

from .parse import ScaleSimCompatWarning, ScaleSimConfig, read_config, read_topology
from .report import REPORT_COLUMNS, report

# -------------------------------------------------------------------------------------------------
# CLI: tpesim scalesim -c CONFIG.cfg -t TOPOLOGY.csv [-i conv|gemm] [--compat scalesim] ...
# -------------------------------------------------------------------------------------------------
class UsageError(TpesimError):
    """A `tpesim scalesim` command line that argparse rejected."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"scalesim: {message}")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tpesim scalesim",
                description="Per-layer report of a SCALE-Sim v3 config + topology: SCALE-Sim's "
                            "own timing (closed form of v3.0.0) beside tpesim's.")
    p.add_argument("-c", "--config", required=True, metavar="CONFIG.cfg",
                   help="SCALE-Sim architecture config")
    p.add_argument("-t", "--topology", required=True, metavar="TOPOLOGY.csv",
                   help="SCALE-Sim topology CSV")
    p.add_argument("-i", "--input-type", choices=("conv", "gemm"), default="conv",
                   help="topology format (default conv, as SCALE-Sim)")
    p.add_argument("-l", "--layout", default=None, metavar="LAYOUT.csv",
                   help="accepted for command-line compatibility with SCALE-Sim; not used")
    p.add_argument("--compat", choices=("scalesim",), default=None,
                   help="report SCALE-Sim's timing as compute_cycles (tpesim's stays beside it)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per layer")
    p.add_argument("-o", "--output", default=None, metavar="REPORT.csv",
                   help="also write the report as CSV")
    return p


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _table(rows: list[dict[str, Any]], note: str, cfg: ScaleSimConfig) -> str:
    cols = [("layer", "layer"), ("M", "M"), ("N", "N"), ("K", "K"),
            ("scalesim_compute_cycles", "scalesim_cycles"),
            ("tpesim_compute_cycles", "tpesim_cycles"), ("delta_cycles", "delta"),
            ("utilization", "util"), ("reason", "reason")]
    cells = [[h for _, h in cols]]
    for r in rows:
        line = []
        for key, _ in cols:
            v = r[key]
            if key == "utilization":
                line.append(f"{100 * v:.2f}%")
            elif key in ("tpesim_compute_cycles", "delta_cycles") and v is None:
                line.append("-")
            elif key == "reason" and note and v.startswith(note):
                line.append(v[len(note):].lstrip("; "))  # the note is printed once, above
            elif isinstance(v, int):
                line.append(f"{v:,}")
            else:
                line.append(str(v))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols) - 1)]
    out = [f"{cfg.rows}x{cfg.cols} {cfg.dataflow.upper()} array, {cfg.interface_bandwidth} mode, "
           f"{len(rows)} layers"]
    if note:
        out.append(f"note: {note}")
    for c in cells:
        out.append("  ".join(s.rjust(w) if i else s.ljust(w)
                             for i, (s, w) in enumerate(zip(c, widths, strict=False)))
                   + "  " + c[-1])
    total_sc = sum(r["scalesim_compute_cycles"] for r in rows)
    total = f"total: scalesim {total_sc:,} cycles"
    if rows and all(r["tpesim_compute_cycles"] is not None for r in rows):
        total += f", tpesim {sum(r['tpesim_compute_cycles'] for r in rows):,} cycles"
    out.append(total)
    return "\n".join(out)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """The report as CSV: REPORT_COLUMNS, units in the names (cycles, bytes), else fractions."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r[c]) for c in REPORT_COLUMNS])
    write_text_atomic(path, buf.getvalue(), "-o")


def cli_main(argv: Sequence[str]) -> int:
    """`tpesim scalesim ...`: print a per-layer report (table or --json), optionally write CSV."""
    args = _build_parser().parse_args(list(argv))
    check_output_path("-o", args.output, (args.config, args.topology))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScaleSimCompatWarning)
        cfg = read_config(args.config)
        layers = read_topology(args.topology, kind=args.input_type)
    for w in caught:
        print(f"tpesim scalesim: warning: {w.message}", file=sys.stderr)
    if not layers:
        raise FileFormatError(f"{Path(args.topology).name}: no layers after the header line")
    rows, note = report(cfg, layers, compat=args.compat == "scalesim")
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(_table(rows, note, cfg))
    if note and args.json:
        print(f"tpesim scalesim: note: {note}", file=sys.stderr)
    if args.output is not None:
        write_csv(rows, args.output)
    return 0

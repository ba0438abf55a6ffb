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

from tpesim.outputs import check_output_path, csv_cell, provenance, write_text_atomic
from tpesim.errors import FileFormatError, TpesimError

from .csv_reports import report_paths, write_scalesim_reports
from .parse import (ScaleSimCompatWarning, ScaleSimConfig, ScaleSimDefaultsNote, read_config,
                    read_topology)
from .report import REPORT_COLUMNS, describe_memory, report

# Every config key and what tpesim does with it (`tpesim scalesim --help`).
KEY_MAPPING = """config keys (SCALE-Sim v3.0.0 .cfg) and what tpesim does with them:
  [general] run_name                      read; not used
  [architecture_presets]
    ArrayHeight, ArrayWidth               rows, cols of the array (both timings)
    Dataflow                              os | ws | is (both timings)
    IfmapSramSzkB, FilterSramSzkB,        USER mode: tpesim's per-operand SRAMs --sram-kib-a/-b/-c
      OfmapSramSzkB                       (1 kB = 1024 one-byte words; A = ifmap, B = filter,
                                          C = ofmap; C holds 4-byte int32 results). CALC: not used
    Bandwidth                             USER mode: Bandwidth[0] words/cycle (1-byte words) ->
                                          tpesim's --dram-bw, ONE link shared by A, B and C
                                          (SCALE-Sim gives the ofmap this and ifmap/filter their
                                          own links from [layout]); CALC: not read, as SCALE-Sim
    IfmapOffset, FilterOffset, OfmapOffset  read (trace addresses); not used
    ReadRequestBuffer, WriteRequestBuffer  read (Ramulator queue depths); not used
    MemoryBanks                           not read (nor by SCALE-Sim 3.0.0)
    TopologyCsvLoc                        read; -t is used
  [layout] Ifmap/FilterCustomLayout       read; bank conflicts not modelled (warning if True)
    Ifmap/FilterSRAMBankBandwidth         read; SCALE-Sim's USER-mode ifmap/filter DRAM links;
                                          not used by tpesim (USER: warning if != Bandwidth)
    Ifmap/FilterSRAMBankNum, ...BankPort  read (USER: BankBandwidth must divide by BankNum)
  [sparsity] SparsitySupport              on: N:M layers shrink K in the compat numbers (tpesim
                                          times the dense GEMM); OptimizedMapping must be false
    SparseRep, BlockSize, RandomNumberGeneratorSeed  read when SparsitySupport is on; not used
  [run_presets] InterfaceBandwidth        CALC: SCALE-Sim assumes the bandwidth it needs (no
                                          stalls); tpesim assumes an ideal memory (unbounded SRAMs
                                          and link): 0 stall cycles. USER: tpesim's memory model
                                          as above, DRAM latency 1 cycle (SCALE-Sim's read port)
    UseRamulatorTrace                     read; Ramulator replay not modelled
v2 configs: keys v3 added ([layout], [sparsity], ReadRequestBuffer, WriteRequestBuffer,
  UseRamulatorTrace; InterfaceBandwidth) get defaults (USER mode: bank bandwidths = Bandwidth[0],
  as v2 used one bandwidth for all operands) and one note line naming them.
report columns: compute_cycles/stall_cycles/total_cycles follow `timing` (tpesim's unless
  --compat scalesim); tpesim_cycles, tpesim_stall_cycles and
  tpesim_{sram,dram}_{read,write}_bytes_{a,b,c} are tpesim's tile-level timing with that memory
  (names as in `tpesim run gemm --json`, as are sram_kib_a/b/c, dram_bw_bytes_per_cycle,
  dram_latency_cycles: the memory assumed, empty = unbounded), beside scalesim_compute_cycles
  (SCALE-Sim's stall-free closed form)."""

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
                            "own timing (closed form of v3.0.0) beside tpesim's, with tpesim's "
                            "stall cycles for the config's memory.",
                epilog=KEY_MAPPING, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("-o", "--output", "--csv", default=None, metavar="REPORT.csv",
                   help="also write the report as CSV (--csv, as for `tpesim run`)")
    p.add_argument("--scalesim-reports", default=None, metavar="DIR",
                   help="also write SCALE-Sim-style COMPUTE_REPORT.csv and BANDWIDTH_REPORT.csv "
                        "into DIR (created if missing): SCALE-Sim v3.0.0's columns, compat "
                        "numbers; USER-mode stalls and DRAM BW are tpesim's, incl. prefetch empty")
    return p


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return csv_cell(v)


def _table(rows: list[dict[str, Any]], note: str, cfg: ScaleSimConfig) -> str:
    cols = [("layer", "layer"), ("M", "M"), ("N", "N"), ("K", "K"),
            ("scalesim_compute_cycles", "scalesim_cycles"),
            ("tpesim_compute_cycles", "tpesim_cycles"), ("delta_cycles", "delta"),
            ("tpesim_stall_cycles", "tpesim_stalls"), ("utilization", "util"),
            ("reason", "reason")]
    cells = [[h for _, h in cols]]
    for r in rows:
        line = []
        for key, _ in cols:
            v = r[key]
            if key == "utilization":
                line.append(f"{100 * v:.2f}%")
            elif key in ("tpesim_compute_cycles", "delta_cycles", "tpesim_stall_cycles") \
                    and v is None:
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
           f"{len(rows)} layers; {describe_memory(cfg)}"]
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
    stalls = [r["tpesim_stall_cycles"] for r in rows]
    if rows and all(v is not None for v in stalls):
        total += f" + {sum(stalls):,} stall cycles"
    elif any(v is not None for v in stalls):
        total += (f"; tpesim stall cycles on {sum(v is not None for v in stalls)} of {len(rows)} "
                  f"layers: {sum(v for v in stalls if v is not None):,}")
    out.append(total)
    return "\n".join(out)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """The report as CSV: REPORT_COLUMNS, units in the names (cycles, bytes), else fractions."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = provenance()
    w.writerow((*head, *REPORT_COLUMNS))
    for r in rows:
        w.writerow([_fmt(v) for v in head.values()] + [_fmt(r[c]) for c in REPORT_COLUMNS])
    write_text_atomic(path, buf.getvalue(), "-o")


def cli_main(argv: Sequence[str]) -> int:
    """`tpesim scalesim ...`: print a per-layer report (table or --json), optionally write CSV."""
    args = _build_parser().parse_args(list(argv))
    inputs = (args.config, args.topology)
    if args.layout is not None and not args.layout.strip():  # unused, but a name, as in SCALE-Sim
        raise UsageError("scalesim: -l must name a file, not an empty string")
    check_output_path("-o", args.output, inputs)
    if args.scalesim_reports is not None:
        files = report_paths(args.scalesim_reports, inputs)
        if args.output is not None and Path(args.output).resolve() in {p.resolve() for p in files}:
            raise UsageError(f"scalesim: -o must not be one of the --scalesim-reports files, not "
                             f"{args.output!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScaleSimCompatWarning)
        cfg = read_config(args.config)
        layers = read_topology(args.topology, kind=args.input_type)
    for w in caught:
        kind = "note" if issubclass(w.category, ScaleSimDefaultsNote) else "warning"
        print(f"tpesim scalesim: {kind}: {w.message}", file=sys.stderr)
    if not layers:
        raise FileFormatError(f"{Path(args.topology).name}: no layers after the header line")
    rows, note = report(cfg, layers, compat=args.compat == "scalesim")
    if args.json:
        print(json.dumps([{**provenance(), **r} for r in rows], indent=1))
    else:
        print(_table(rows, note, cfg))
    if note and args.json:
        print(f"tpesim scalesim: note: {note}", file=sys.stderr)
    if args.output is not None:
        write_csv(rows, args.output)
    if args.scalesim_reports is not None:
        write_scalesim_reports(cfg, rows, args.scalesim_reports, inputs)
    return 0

"""SCALE-Sim-style COMPUTE_REPORT.csv and BANDWIDTH_REPORT.csv from `report()` rows.

Same file names, column names, column order and layout as SCALE-Sim v3.0.0 writes them
(simulator.py `generate_reports`: a header, then one line per layer, `, `-separated, every line
ending with a comma; LayerID counts from 0, depthwise layers split per channel as in SCALE-Sim).

Which numbers are whose:

* SCALE-Sim compat (its closed forms, equal to real SCALE-Sim 3.0.0 in CALC mode): `Total Cycles`
  minus `Stall Cycles`, `Mapping Efficiency %`, `Compute Util %`, and the SRAM reads/writes behind
  the three `Avg ... SRAM BW` columns (divided by `Total Cycles`, as SCALE-Sim does).
* `Stall Cycles`: 0 in CALC mode (SCALE-Sim's own number). In USER mode tpesim's stall cycles with
  the config's memory (`tpesim_stall_cycles`), not SCALE-Sim's: its trace replay is not
  reproduced. `Total Cycles` = compat stall-free cycles + `Stall Cycles`; `Overall Util %` is
  SCALE-Sim's formula MACs / (Total Cycles x R x C) on that total.
* `Avg IFMAP/FILTER/OFMAP DRAM BW`: tpesim's (its DRAM bytes of A, B, C over its cycles, in words
  per cycle: 1-byte A and B, C in accumulator words), not SCALE-Sim's prefetch-window estimate.
* Empty (not modelled): `Total Cycles (incl. prefetch)` (SCALE-Sim's prefetch before cycle 0),
  `Avg FILTER Metadata SRAM BW` (sparse configs), and any tpesim number tpesim could not give
  (e.g. a block that does not fit half an SRAM).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tpesim.errors import ConfigError
from tpesim.outputs import check_output_path, write_text_atomic

from .parse import ScaleSimConfig
from .report import TPESIM_ACC_BITS, TPESIM_IN_BITS

COMPUTE_REPORT = "COMPUTE_REPORT.csv"
BANDWIDTH_REPORT = "BANDWIDTH_REPORT.csv"
COMPUTE_REPORT_COLUMNS = ("LayerID", "Total Cycles (incl. prefetch)", "Total Cycles",
                          "Stall Cycles", "Overall Util %", "Mapping Efficiency %",
                          "Compute Util %")
BANDWIDTH_REPORT_COLUMNS = ("LayerID", "Avg IFMAP SRAM BW", "Avg FILTER SRAM BW",
                            "Avg OFMAP SRAM BW", "Avg IFMAP DRAM BW", "Avg FILTER DRAM BW",
                            "Avg OFMAP DRAM BW")
# With SparsitySupport on, SCALE-Sim 3.0.0 inserts this column after the filter's SRAM BW.
SPARSE_METADATA_COLUMN = "Avg FILTER Metadata SRAM BW"
OPTION = "--scalesim-reports"


def bandwidth_report_columns(cfg: ScaleSimConfig) -> tuple[str, ...]:
    if not cfg.sparsity_support:
        return BANDWIDTH_REPORT_COLUMNS
    return (*BANDWIDTH_REPORT_COLUMNS[:3], SPARSE_METADATA_COLUMN, *BANDWIDTH_REPORT_COLUMNS[3:])


def _stall(cfg: ScaleSimConfig, row: dict[str, Any]) -> int | None:
    return 0 if cfg.interface_bandwidth == "CALC" else row["tpesim_stall_cycles"]


def _total(cfg: ScaleSimConfig, row: dict[str, Any]) -> int:
    stall = _stall(cfg, row)
    return row["scalesim_compute_cycles"] + (stall or 0)


def compute_report_rows(cfg: ScaleSimConfig, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    out = []
    for lid, r in enumerate(rows):
        total = _total(cfg, r)
        out.append([lid, None, total, _stall(cfg, r),
                    r["macs"] * 100 / (total * cfg.rows * cfg.cols),
                    r["mapping_efficiency"] * 100, r["compute_utilization"] * 100])
    return out


def bandwidth_report_rows(cfg: ScaleSimConfig, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    in_bytes, c_bytes = TPESIM_IN_BITS // 8, TPESIM_ACC_BITS // 8
    out = []
    for lid, r in enumerate(rows):
        total = _total(cfg, r)
        sram = [r["ifmap_sram_read_bytes"] / total, r["filter_sram_read_bytes"] / total,
                r["ofmap_sram_write_bytes"] / total]
        if cfg.sparsity_support:
            sram.insert(2, None)
        cycles = r["tpesim_cycles"]
        dram: list[Any] = [None, None, None]
        if cycles:
            dram = [r["tpesim_dram_read_bytes_a"] / in_bytes / cycles,
                    r["tpesim_dram_read_bytes_b"] / in_bytes / cycles,
                    r["tpesim_dram_write_bytes_c"] / c_bytes / cycles]
        out.append([lid, *sram, *dram])
    return out


def _csv(columns: Sequence[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else str(v)

    lines = [", ".join(columns) + ",\n"]
    lines += [", ".join(cell(v) for v in row) + ",\n" for row in rows]
    return "".join(lines)


def compute_report_csv(cfg: ScaleSimConfig, rows: Sequence[dict[str, Any]]) -> str:
    return _csv(COMPUTE_REPORT_COLUMNS, compute_report_rows(cfg, rows))


def bandwidth_report_csv(cfg: ScaleSimConfig, rows: Sequence[dict[str, Any]]) -> str:
    return _csv(bandwidth_report_columns(cfg), bandwidth_report_rows(cfg, rows))


def report_paths(directory: str | Path, inputs: Sequence[str | Path] = ()) -> tuple[Path, Path]:
    """Check `--scalesim-reports DIR` before any work: a directory (created later if missing),
    neither report file one of the inputs. Returns the two file paths."""
    if str(directory).strip() == "":
        raise ConfigError(f"{OPTION} must name a directory, not an empty string")
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ConfigError(f"{OPTION} must name a directory, not the file {str(directory)!r}")
    paths = (d / COMPUTE_REPORT, d / BANDWIDTH_REPORT)
    for p in paths:
        check_output_path(OPTION, p, inputs)
    return paths


def write_scalesim_reports(cfg: ScaleSimConfig, rows: Sequence[dict[str, Any]],
                           directory: str | Path, inputs: Sequence[str | Path] = ()
                           ) -> tuple[Path, Path]:
    """Write COMPUTE_REPORT.csv and BANDWIDTH_REPORT.csv into `directory` (created if missing),
    each atomically; both texts are built before either file is written."""
    paths = report_paths(directory, inputs)
    texts = (compute_report_csv(cfg, rows), bandwidth_report_csv(cfg, rows))
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{OPTION} {str(directory)!r}: cannot create the directory "
                          f"({e.strerror or e})") from None
    for p, text in zip(paths, texts, strict=True):
        write_text_atomic(p, text, OPTION)
    return paths

"""SCALE-Sim v3 compatibility: read its config and topology files as-is, reproduce its timing.

Architects bring their existing `.cfg` / topology CSVs; `tpesim scalesim` reports every layer
with SCALE-Sim v3.0.0's stall-free `Total Cycles` (closed form, checked against the real tool in
cosim/bench/scalesim.py, docs/scalesim_compare.md) beside tpesim's own tile-level timing, and says why they differ.

Where SCALE-Sim 3.0.0 silently misreads a file, we read what the author meant and warn
(`ScaleSimCompatWarning`); where it would crash or print "ERROR" and go on, we raise
`FileFormatError` with one line naming the file, the line and the field.

Topology rows without a trailing comma
    SCALE-Sim parses a row with ``row.split(',')[:-1]``: it assumes every row ends with a comma and
    drops the last field otherwise. Without the comma it therefore crashes when the last field is
    a mandatory one (``Strides`` / ``K``), and silently ignores an ``N:M sparsity`` field. tpesim
    keeps every field of such a row (the evident intent) and emits one `ScaleSimCompatWarning` per
    file naming the first such line, because SCALE-Sim would read the same file differently.

tpesim's own timing
    ``sim.timing.tile_gemm_cycles(M, N, K, rows, cols, dataflow)`` is imported lazily; it returns
    an int (or an object/dict with ``compute_cycles`` or ``cycles``) and may raise a `TpesimError`
    (or NotImplementedError) for a case it does not support. Until it exists the report is
    SCALE-Sim-compatible only and says so. For WS and IS it times the single-buffered stationary
    array: SCALE-Sim's config has no weight double-buffering (it serializes folds), so neither do
    we here; `tpesim run --dataflow ws --double-buffer` gives the double-buffered figure.
"""

from __future__ import annotations

from .cli import cli_main, write_csv
from .compat import (ScaleSimCompute, effective_k, scalesim_compute, scalesim_compute_cycles,
                     scalesim_fold_shape)
from .parse import (DATAFLOWS, Layer, ScaleSimCompatWarning, ScaleSimConfig, format_config,
                    format_topology, parse_config, parse_topology, read_config, read_topology)
from .report import REPORT_COLUMNS, explain_delta, layer_report, load_tile_timing, report

__all__ = [
    "DATAFLOWS", "ScaleSimCompatWarning", "ScaleSimConfig", "Layer", "ScaleSimCompute",
    "read_config", "parse_config", "read_topology", "parse_topology", "format_config",
    "format_topology", "effective_k", "scalesim_fold_shape", "scalesim_compute_cycles",
    "scalesim_compute", "load_tile_timing", "explain_delta", "layer_report", "report",
    "REPORT_COLUMNS", "cli_main", "write_csv",
]

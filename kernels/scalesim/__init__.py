"""SCALE-Sim v3 compatibility: read its config and topology files as-is, reproduce its timing.

Notes and derivations: docs/internals.md, section `kernels/scalesim/__init__.py`.
"""

from __future__ import annotations

from .cli import cli_main, write_csv
from .compat import (ScaleSimCompute, effective_k, scalesim_compute, scalesim_compute_cycles,
                     scalesim_fold_shape, tpesim_memory_fields)
from .csv_reports import write_scalesim_reports
from .parse import (DATAFLOWS, Layer, ScaleSimCompatWarning, ScaleSimConfig, ScaleSimDefaultsNote,
                    format_config, format_topology, parse_config, parse_topology, read_config,
                    read_topology)
from .report import (REPORT_COLUMNS, TPESIM_MEMORY_COLUMNS, explain_delta, layer_report,
                     load_memory_timing, load_tile_timing, report)

__all__ = [
    "DATAFLOWS", "ScaleSimCompatWarning", "ScaleSimConfig", "Layer", "ScaleSimCompute",
    "read_config", "parse_config", "read_topology", "parse_topology", "format_config",
    "format_topology", "effective_k", "scalesim_fold_shape", "scalesim_compute_cycles",
    "scalesim_compute", "load_tile_timing", "explain_delta", "layer_report", "report",
    "REPORT_COLUMNS", "cli_main", "write_csv", "ScaleSimDefaultsNote", "tpesim_memory_fields",
    "load_memory_timing", "TPESIM_MEMORY_COLUMNS", "write_scalesim_reports",
]

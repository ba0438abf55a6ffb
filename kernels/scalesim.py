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

import argparse
import configparser
import csv
import io
import json
import math
import operator
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from sim.config import check_choice, check_int
from sim.errors import ConfigError, FileFormatError, TpesimError

__all__ = [
    "DATAFLOWS", "ScaleSimCompatWarning", "ScaleSimConfig", "Layer", "ScaleSimCompute",
    "read_config", "parse_config", "read_topology", "parse_topology", "format_config",
    "format_topology", "effective_k", "scalesim_fold_shape", "scalesim_compute_cycles",
    "scalesim_compute", "load_tile_timing", "explain_delta", "layer_report", "report",
    "REPORT_COLUMNS", "cli_main",
]

DATAFLOWS = ("os", "ws", "is")
INTERFACE_MODES = ("CALC", "USER")
SPARSE_REPS = ("csr", "csc", "ellpack_block")
# SCALE-Sim 3.0.0 hard-codes a 1-byte word, so its element counts are byte counts.
WORD_BYTES = 1
# CALC mode models DRAM->SRAM at fixed rates (single_layer_sim.py): 10 words/cycle for ifmap and
# filter ("the number 10 elems per cycle is arbitrary"), ArrayWidth words/cycle for the ofmap drain.
CALC_READ_BW_WORDS_PER_CYCLE = 10

CONV_FIELDS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides", "N:M sparsity")
GEMM_FIELDS = ("Layer", "M", "N", "K", "N:M sparsity")

_INT_RE = re.compile(r"\d+")
_SPARSITY_RE = re.compile(r"(\d+)\s*:\s*(\d+)")


class ScaleSimCompatWarning(UserWarning):
    """SCALE-Sim 3.0.0 would read this input differently from tpesim (or not at all)."""


def _warn(message: str) -> None:
    warnings.warn(message, ScaleSimCompatWarning, stacklevel=3)


# -------------------------------------------------------------------------------------------------
# Config (.cfg)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleSimConfig:
    """The architecture and run settings of a SCALE-Sim v3 `.cfg` file, as 3.0.0 uses them.

    Attributes
    ----------
    rows, cols : int
        ArrayHeight (R) and ArrayWidth (C).
    dataflow : {"os", "ws", "is"}
    ifmap_sram_kb, filter_sram_kb, ofmap_sram_kb : int
        Per-operand SRAM sizes in kB (double-buffered halves; 1-byte words).
    interface_bandwidth : {"CALC", "USER"}
        CALC: stall-free, SCALE-Sim estimates the DRAM bandwidth needed. USER: finite bandwidth.
    bandwidths : tuple of int
        The ``Bandwidth`` list as written. SCALE-Sim reads it only in USER mode and uses only [0].
    ifmap_bw_words_per_cycle, filter_bw_words_per_cycle, ofmap_bw_words_per_cycle : int
        The DRAM<->SRAM bandwidths SCALE-Sim actually simulates. USER mode takes ifmap and filter
        from ``[layout] Ifmap/FilterSRAMBankBandwidth`` (not from ``Bandwidth``), the ofmap from
        Bandwidth[0]; CALC mode uses 10, 10 and ArrayWidth.
    """

    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    run_name: str = "scale_run"
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    interface_bandwidth: str = "CALC"
    bandwidths: tuple[int, ...] = ()
    read_request_buffer: int = 32
    write_request_buffer: int = 32
    ifmap_custom_layout: bool = False
    ifmap_sram_bank_bandwidth: int = 10
    ifmap_sram_bank_num: int = 1
    ifmap_sram_bank_port: int = 2
    filter_custom_layout: bool = False
    filter_sram_bank_bandwidth: int = 10
    filter_sram_bank_num: int = 1
    filter_sram_bank_port: int = 2
    sparsity_support: bool = False
    sparse_rep: str = "ellpack_block"
    optimized_mapping: bool = False
    block_size: int = 8
    rng_seed: int = 40
    use_ramulator_trace: bool = False
    topology_path: str | None = None
    path: str | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb",
                     "read_request_buffer", "write_request_buffer", "ifmap_sram_bank_bandwidth",
                     "ifmap_sram_bank_num", "ifmap_sram_bank_port", "filter_sram_bank_bandwidth",
                     "filter_sram_bank_num", "filter_sram_bank_port", "block_size"):
            check_int(name, getattr(self, name))
        for name in ("ifmap_offset", "filter_offset", "ofmap_offset", "rng_seed"):
            check_int(name, getattr(self, name), lo=0)
        check_choice("dataflow", self.dataflow, DATAFLOWS)
        check_choice("interface_bandwidth", self.interface_bandwidth, INTERFACE_MODES)
        check_choice("sparse_rep", self.sparse_rep, SPARSE_REPS)
        for i, bw in enumerate(self.bandwidths):
            check_int(f"bandwidths[{i}]", bw)
        if self.interface_bandwidth == "USER" and not self.bandwidths:
            raise ConfigError("bandwidths must hold at least one value in USER mode, not ()")

    @property
    def word_bytes(self) -> int:
        return WORD_BYTES

    @property
    def ifmap_bw_words_per_cycle(self) -> int:
        if self.interface_bandwidth == "USER":
            return self.ifmap_sram_bank_bandwidth
        return CALC_READ_BW_WORDS_PER_CYCLE

    @property
    def filter_bw_words_per_cycle(self) -> int:
        if self.interface_bandwidth == "USER":
            return self.filter_sram_bank_bandwidth
        return CALC_READ_BW_WORDS_PER_CYCLE

    @property
    def ofmap_bw_words_per_cycle(self) -> int:
        if self.interface_bandwidth == "USER":
            return self.bandwidths[0]
        return self.cols


class _CfgSource:
    """Line numbers of sections and keys, which configparser does not keep."""

    _SECTION = re.compile(r"\s*\[([^\]]+)\]")
    _KEY = re.compile(r"([^\s:=][^:=]*?)\s*[:=]")

    def __init__(self, name: str, text: str):
        self.name = name
        self.sections: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        self.nlines = text.count("\n") + 1
        section = None
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip()[:1] in "#;":
                continue
            m = self._SECTION.match(line)
            if m:
                section = m.group(1)
                self.sections.setdefault(section, lineno)
                continue
            if section is not None and not line[:1].isspace():
                m = self._KEY.match(line)
                if m:
                    self.keys.setdefault((section, m.group(1).strip().lower()), lineno)

    def where(self, section: str, key: str | None = None) -> str:
        line = self.keys.get((section, key.lower())) if key else None
        if line is None:
            line = self.sections.get(section)
        return f"{self.name}:{line}" if line is not None else self.name


class _CfgReader:
    def __init__(self, parser: configparser.ConfigParser, src: _CfgSource):
        self.p = parser
        self.src = src

    def has(self, section: str, key: str) -> bool:
        return self.p.has_option(section, key)

    def raw(self, section: str, key: str) -> str:
        if not self.p.has_section(section):
            extra = " (SCALE-Sim 3.0.0 reads it even when custom layouts are off)" \
                if section == "layout" else ""
            raise FileFormatError(f"{self.src.name}: section [{section}] is missing{extra}")
        if not self.p.has_option(section, key):
            raise FileFormatError(f"{self.src.where(section)}: field '{key}' is missing from "
                                  f"section [{section}]")
        try:
            return self.p.get(section, key)
        except configparser.Error as e:
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}': "
                                  f"{' '.join(str(e).split())}") from None

    def integer(self, section: str, key: str, lo: int = 1) -> int:
        text = self.raw(section, key)
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo:
            rule = "a positive integer" if lo == 1 else f"an integer >= {lo}"
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be {rule}, "
                                  f"not {text!r}")
        return value

    def choice(self, section: str, key: str, choices: tuple[str, ...], note: str = "") -> str:
        text = self.raw(section, key)
        if text not in choices:
            opts = ", ".join(repr(c) for c in choices)
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be one of "
                                  f"{opts}, not {text!r}{note}")
        return text

    def boolean(self, section: str, key: str) -> bool:
        text = self.raw(section, key)
        try:
            return self.p.getboolean(section, key)
        except ValueError:
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be a "
                                  f"boolean (True or False), not {text!r}") from None

    def int_list(self, section: str, key: str) -> tuple[int, ...]:
        text = self.raw(section, key)
        out = []
        for part in text.strip().split(","):
            try:
                value = int(part)
            except ValueError:
                value = 0
            if value < 1:
                raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be a "
                                      f"comma-separated list of positive integers, not {text!r}")
            out.append(value)
        return tuple(out)


def read_config(path: str | Path) -> ScaleSimConfig:
    """Read a SCALE-Sim v3 `.cfg` file (configparser semantics, as SCALE-Sim 3.0.0 reads it)."""
    path = Path(path)
    return parse_config(_read_text(path), name=path.name, path=str(path))


def parse_config(text: str, *, name: str = "<config>", path: str | None = None) -> ScaleSimConfig:
    """Parse the text of a `.cfg` file; `name` is used in error messages."""
    src = _CfgSource(name, text)
    # Same parser settings as SCALE-Sim (configparser defaults): keys case-insensitive, ':' or '=',
    # section names case-sensitive, no inline comments, duplicate keys are an error.
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=name)
    except configparser.MissingSectionHeaderError as e:
        raise FileFormatError(f"{name}:{e.lineno}: expected a [section] header before "
                              f"{e.line.strip()!r}") from None
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as e:
        if isinstance(e, configparser.DuplicateOptionError):
            # configparser lower-cases the key; quote it as the file spells it.
            m = _CfgSource._KEY.match(_line(text, e.lineno).strip())
            what = f"field '{m.group(1).strip() if m else e.option}'"
        else:
            what = f"section [{e.section}]"
        raise FileFormatError(f"{name}:{e.lineno}: {what} appears twice") from None
    except configparser.ParsingError as e:
        lineno = e.errors[0][0]
        raise FileFormatError(f"{name}:{lineno}: cannot parse {_line(text, lineno).strip()!r} "
                              f"(expected 'key: value' or 'key = value')") from None
    r = _CfgReader(parser, src)

    run_name = r.raw("general", "run_name")
    mode = r.choice("run_presets", "InterfaceBandwidth", INTERFACE_MODES)
    ramulator_text = r.raw("run_presets", "UseRamulatorTrace")
    if ramulator_text.lower() == "true" and ramulator_text != "True":
        _warn(f"{src.where('run_presets', 'UseRamulatorTrace')}: SCALE-Sim 3.0.0 enables Ramulator "
              f"replay only for the exact string 'True'; {ramulator_text!r} leaves it off")

    arch = "architecture_presets"
    rows = r.integer(arch, "ArrayHeight")
    cols = r.integer(arch, "ArrayWidth")
    sram = [r.integer(arch, k) for k in ("IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB")]
    offsets = [r.integer(arch, k, lo=0) for k in ("IfmapOffset", "FilterOffset", "OfmapOffset")]
    dataflow = r.choice(arch, "Dataflow", DATAFLOWS, " (SCALE-Sim 3.0.0 is case-sensitive here)")
    rd_buf = r.integer(arch, "ReadRequestBuffer")
    wr_buf = r.integer(arch, "WriteRequestBuffer")

    lay = "layout"
    if_layout = r.boolean(lay, "IfmapCustomLayout")
    fl_layout = r.boolean(lay, "FilterCustomLayout")
    if_bank = [r.integer(lay, f"IfmapSRAMBank{k}") for k in ("Bandwidth", "Num", "Port")]
    fl_bank = [r.integer(lay, f"FilterSRAMBank{k}") for k in ("Bandwidth", "Num", "Port")]

    bandwidths: tuple[int, ...] = ()
    if mode == "USER":
        bandwidths = r.int_list(arch, "Bandwidth")
        # read_buffer.py asserts that the DRAM bandwidth splits evenly over the banks.
        for op, (bw, num, _) in (("Ifmap", if_bank), ("Filter", fl_bank)):
            if bw % num:
                raise FileFormatError(
                    f"{src.where(lay, f'{op}SRAMBankBandwidth')}: field '{op}SRAMBankBandwidth' "
                    f"must be a multiple of {op}SRAMBankNum ({num}) in USER mode, not {bw}")
        if len(bandwidths) > 1:
            _warn(f"{src.where(arch, 'Bandwidth')}: SCALE-Sim 3.0.0 uses only the first value of "
                  f"Bandwidth {list(bandwidths)}")
        if (if_bank[0], fl_bank[0]) != (bandwidths[0], bandwidths[0]):
            _warn(f"{src.where(arch, 'Bandwidth')}: in USER mode SCALE-Sim 3.0.0 takes the ifmap "
                  f"and filter DRAM bandwidths from [layout] IfmapSRAMBankBandwidth ({if_bank[0]}) "
                  f"and FilterSRAMBankBandwidth ({fl_bank[0]}); Bandwidth ({bandwidths[0]}) only "
                  f"sets the ofmap drain")
    if if_layout or fl_layout:
        _warn(f"{src.where(lay)}: custom SRAM layouts (bank conflicts) are not modelled by "
              f"tpesim's SCALE-Sim compat timing")

    sp = "sparsity"
    sp_text = r.raw(sp, "SparsitySupport")
    sparsity_support = sp_text.lower() == "true"
    if sp_text.lower() not in ("true", "false"):
        _warn(f"{src.where(sp, 'SparsitySupport')}: SCALE-Sim 3.0.0 treats {sp_text!r} as false")
    sparse_rep, optimized, block_size, seed = "ellpack_block", False, 8, 40
    if sparsity_support:
        sparse_rep = r.choice(sp, "SparseRep", SPARSE_REPS)
        optimized = r.raw(sp, "OptimizedMapping").lower() == "true"
        if optimized:
            block_size = r.integer(sp, "BlockSize")
            if block_size > rows:
                raise FileFormatError(f"{src.where(sp, 'BlockSize')}: field 'BlockSize' must not "
                                      f"exceed ArrayHeight ({rows}), not {block_size}")
        seed = r.integer(sp, "RandomNumberGeneratorSeed", lo=0)

    topology = None
    if parser.has_section("network_presets"):
        # 3.0.0 reads TopologyCsvLoc from [architecture_presets] (a bug) and needs it quoted.
        key_sec = "network_presets" if r.has("network_presets", "TopologyCsvLoc") else arch
        if r.has(key_sec, "TopologyCsvLoc"):
            topology = r.raw(key_sec, "TopologyCsvLoc").strip().strip('"').strip()
        if not r.has(arch, "TopologyCsvLoc"):
            _warn(f"{src.where('network_presets')}: SCALE-Sim 3.0.0 crashes on a [network_presets] "
                  f"section unless [architecture_presets] also has TopologyCsvLoc")

    return ScaleSimConfig(
        rows=rows, cols=cols, dataflow=dataflow, ifmap_sram_kb=sram[0], filter_sram_kb=sram[1],
        ofmap_sram_kb=sram[2], run_name=run_name, ifmap_offset=offsets[0],
        filter_offset=offsets[1], ofmap_offset=offsets[2], interface_bandwidth=mode,
        bandwidths=bandwidths, read_request_buffer=rd_buf, write_request_buffer=wr_buf,
        ifmap_custom_layout=if_layout, ifmap_sram_bank_bandwidth=if_bank[0],
        ifmap_sram_bank_num=if_bank[1], ifmap_sram_bank_port=if_bank[2],
        filter_custom_layout=fl_layout, filter_sram_bank_bandwidth=fl_bank[0],
        filter_sram_bank_num=fl_bank[1], filter_sram_bank_port=fl_bank[2],
        sparsity_support=sparsity_support, sparse_rep=sparse_rep, optimized_mapping=optimized,
        block_size=block_size, rng_seed=seed, use_ramulator_trace=ramulator_text == "True",
        topology_path=topology, path=path)


def _line(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


def format_config(cfg: ScaleSimConfig) -> str:
    """`.cfg` text that SCALE-Sim 3.0.0 reads as `cfg` (every mandatory key, [layout] included)."""
    bw = ",".join(str(b) for b in cfg.bandwidths) or str(cfg.ifmap_sram_bank_bandwidth)
    return "\n".join([
        "[general]",
        f"run_name = {cfg.run_name}",
        "",
        "[architecture_presets]",
        f"ArrayHeight: {cfg.rows}",
        f"ArrayWidth: {cfg.cols}",
        f"IfmapSramSzkB: {cfg.ifmap_sram_kb}",
        f"FilterSramSzkB: {cfg.filter_sram_kb}",
        f"OfmapSramSzkB: {cfg.ofmap_sram_kb}",
        f"IfmapOffset: {cfg.ifmap_offset}",
        f"FilterOffset: {cfg.filter_offset}",
        f"OfmapOffset: {cfg.ofmap_offset}",
        f"Bandwidth: {bw}",
        f"Dataflow: {cfg.dataflow}",
        f"ReadRequestBuffer: {cfg.read_request_buffer}",
        f"WriteRequestBuffer: {cfg.write_request_buffer}",
        "",
        "[layout]",
        f"IfmapCustomLayout: {cfg.ifmap_custom_layout}",
        f"IfmapSRAMBankBandwidth: {cfg.ifmap_sram_bank_bandwidth}",
        f"IfmapSRAMBankNum: {cfg.ifmap_sram_bank_num}",
        f"IfmapSRAMBankPort: {cfg.ifmap_sram_bank_port}",
        f"FilterCustomLayout: {cfg.filter_custom_layout}",
        f"FilterSRAMBankBandwidth: {cfg.filter_sram_bank_bandwidth}",
        f"FilterSRAMBankNum: {cfg.filter_sram_bank_num}",
        f"FilterSRAMBankPort: {cfg.filter_sram_bank_port}",
        "",
        "[sparsity]",
        f"SparsitySupport: {str(cfg.sparsity_support).lower()}",
        f"SparseRep: {cfg.sparse_rep}",
        f"OptimizedMapping: {str(cfg.optimized_mapping).lower()}",
        f"BlockSize: {cfg.block_size}",
        f"RandomNumberGeneratorSeed: {cfg.rng_seed}",
        "",
        "[run_presets]",
        f"InterfaceBandwidth: {cfg.interface_bandwidth}",
        f"UseRamulatorTrace: {cfg.use_ramulator_trace}",
        "",
    ])


# -------------------------------------------------------------------------------------------------
# Topology (.csv)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One layer of a SCALE-Sim topology, in SCALE-Sim's conv terms, with its im2col GEMM dims.

    A GEMM row ``M, N, K`` is the conv ``ifmap M x K, filter 1 x K, 1 channel, N filters, stride 1``
    as in SCALE-Sim, so A is M x K (ifmap), B is K x N (filter) and C is M x N (ofmap).
    ``ofmap = ceil((ifmap - filter + stride) / stride)``, no padding: this is SCALE-Sim's formula,
    which exceeds the usual ``floor((ifmap - filter) / stride) + 1`` by one when the stride does not
    divide ``ifmap - filter`` (its last window hangs off the edge).

    Attributes
    ----------
    M, N, K : int
        ofmap_h * ofmap_w, num_filters, filter_h * filter_w * channels.
    sparsity : (int, int)
        N:M structured sparsity of the filter, (1, 1) for dense.
    line : int
        1-based line of the row in its file (0 if built in code).
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride: int = 1
    sparsity: tuple[int, int] = (1, 1)
    kind: str = "conv"
    line: int = 0

    def __post_init__(self):
        for name in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters",
                     "stride"):
            check_int(name, getattr(self, name))
        check_choice("kind", self.kind, ("conv", "gemm"))
        if self.filter_h > self.ifmap_h or self.filter_w > self.ifmap_w:
            raise ConfigError(f"filter ({self.filter_h}x{self.filter_w}) must not exceed the ifmap "
                              f"({self.ifmap_h}x{self.ifmap_w})")
        n, m = self.sparsity
        check_int("sparsity N", n)
        check_int("sparsity M", m, lo=n, rule=f"an integer >= N ({n})")

    @classmethod
    def gemm(cls, name: str, M: int, N: int, K: int, *, sparsity: tuple[int, int] = (1, 1),
             line: int = 0) -> Layer:
        return cls(name, M, K, 1, K, 1, N, 1, sparsity, "gemm", line)

    @property
    def ofmap_h(self) -> int:
        return -(-(self.ifmap_h - self.filter_h + self.stride) // self.stride)

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride) // self.stride)

    @property
    def M(self) -> int:  # noqa: N802 - GEMM dimension names
        return self.ofmap_h * self.ofmap_w

    @property
    def N(self) -> int:  # noqa: N802
        return self.num_filters

    @property
    def K(self) -> int:  # noqa: N802
        return self.filter_h * self.filter_w * self.channels

    @property
    def macs(self) -> int:
        return self.M * self.N * self.K


def read_topology(path: str | Path, kind: str = "conv") -> list[Layer]:
    """Read a SCALE-Sim topology CSV: `kind` "conv" (SCALE-Sim's default) or "gemm" (`-i gemm`)."""
    path = Path(path)
    return parse_topology(_read_text(path), kind=kind, name=path.name)


def parse_topology(text: str, *, kind: str = "conv", name: str = "<topology>") -> list[Layer]:
    """Parse topology text. The first line is a header and is skipped; blank lines are skipped.

    Layers whose name contains ``DP`` (conv only) are depthwise and, as in SCALE-Sim, become one
    single-channel layer per channel, named ``<name>Channel_<i>``.
    """
    check_choice("kind", kind, ("conv", "gemm"))
    fields = CONV_FIELDS if kind == "conv" else GEMM_FIELDS
    nmin = len(fields) - 1
    lines = text.splitlines()
    if not lines:
        raise FileFormatError(f"{name}:1: empty file (expected a header line, then one row per "
                              f"layer)")
    header = [h.strip().lower() for h in lines[0].split(",")]
    hint = _kind_hint(header, kind)
    if len(header) > 1 and _INT_RE.fullmatch(header[1] or "x"):
        _warn(f"{name}:1: looks like a layer, not a header; SCALE-Sim skips line 1 unread, "
              f"and so does tpesim")

    layers: list[Layer] = []
    no_comma_line = None
    for lineno, raw in enumerate(lines[1:], 2):
        row = raw.strip()
        if not row:
            continue
        elems = row.split(",")
        if row.endswith(","):
            elems = elems[:-1]
        elif no_comma_line is None:
            no_comma_line = lineno
            dropped = elems[-1].strip()
            fate = ("silently ignores that sparsity field" if len(elems) == len(fields)
                    else "fails on this row")
            _warn(f"{name}:{lineno}: row does not end with a comma; SCALE-Sim 3.0.0 drops the last "
                  f"field ({dropped!r}) of such rows and {fate}; tpesim keeps it")
        elems = [e.strip() for e in elems]
        if len(elems) < nmin:
            raise FileFormatError(f"{name}:{lineno}: field '{fields[len(elems)]}' is missing "
                                  f"(a {kind} row has {nmin} fields, optionally a "
                                  f"'{fields[-1]}' field){hint}")
        if len(elems) > len(fields):
            raise FileFormatError(f"{name}:{lineno}: {len(elems)} fields, a {kind} row has at most "
                                  f"{len(fields)} ({', '.join(fields)}){hint}")
        layer_name = elems[0]
        if not layer_name:
            raise FileFormatError(f"{name}:{lineno}: field '{fields[0]}' must not be empty")
        nums = [_positive(name, lineno, f, e) for f, e in zip(fields[1:nmin], elems[1:nmin],
                                                                  strict=True)]
        sparsity = (1, 1)
        if len(elems) == len(fields):
            sparsity = _sparsity(name, lineno, fields[-1], elems[-1])
        if kind == "gemm":
            m, n, k = nums
            layers.append(Layer.gemm(layer_name, m, n, k, sparsity=sparsity, line=lineno))
            continue
        ih, iw, fh, fw, ch, nf, st = nums
        for f_name, f_val, i_name, i_val in ((fields[3], fh, fields[1], ih),
                                             (fields[4], fw, fields[2], iw)):
            if f_val > i_val:
                raise FileFormatError(f"{name}:{lineno}: field '{f_name}' must not exceed "
                                      f"'{i_name}' ({i_val}), not {f_val}")
        if "DP" in layer_name:
            layers.extend(Layer(f"{layer_name}Channel_{c}", ih, iw, fh, fw, 1, nf, st, sparsity,
                                "conv", lineno) for c in range(ch))
        else:
            layers.append(Layer(layer_name, ih, iw, fh, fw, ch, nf, st, sparsity, "conv", lineno))
    return layers


def _kind_hint(header: list[str], kind: str) -> str:
    looks_gemm = len(header) >= 4 and header[1:4] == ["m", "n", "k"]
    if kind == "conv" and looks_gemm:
        return " (the header looks like a GEMM topology: pass -i gemm)"
    if kind == "gemm" and not looks_gemm and len(header) >= 8:
        return " (the header looks like a conv topology: drop -i gemm)"
    return ""


def _positive(name: str, lineno: int, fld: str, text: str) -> int:
    if not _INT_RE.fullmatch(text) or int(text) < 1:
        raise FileFormatError(f"{name}:{lineno}: field '{fld}' must be a positive integer, "
                              f"not {text!r}")
    return int(text)


def _sparsity(name: str, lineno: int, fld: str, text: str) -> tuple[int, int]:
    m = _SPARSITY_RE.fullmatch(text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise FileFormatError(f"{name}:{lineno}: field '{fld}' must be N:M with 1 <= N <= M "
                              f"(e.g. 2:4), not {text!r}")
    return int(m.group(1)), int(m.group(2))


def format_topology(layers: Iterable[Layer], kind: str = "conv") -> str:
    """Topology CSV text SCALE-Sim 3.0.0 reads as `layers` (every row ends with a comma)."""
    check_choice("kind", kind, ("conv", "gemm"))
    fields = CONV_FIELDS if kind == "conv" else GEMM_FIELDS
    out = [", ".join(fields[:-1]) + ","]
    for ly in layers:
        if kind == "gemm":
            vals = [ly.name, ly.M, ly.N, ly.K]
        else:
            vals = [ly.name, ly.ifmap_h, ly.ifmap_w, ly.filter_h, ly.filter_w, ly.channels,
                    ly.num_filters, ly.stride]
        if ly.sparsity != (1, 1):
            vals.append(f"{ly.sparsity[0]}:{ly.sparsity[1]}")
        out.append(",".join(str(v) for v in vals) + ",")
    return "\n".join(out) + "\n"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{path}: not a UTF-8 text file ({e.reason} at byte "
                              f"{e.start})") from None


# -------------------------------------------------------------------------------------------------
# SCALE-Sim v3.0.0 compute timing (closed forms of compute/systolic_compute_{os,ws,is}.py)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleSimCompute:
    """What SCALE-Sim 3.0.0 reports for a stall-free layer (CALC mode), derived in closed form.

    Attributes
    ----------
    folds : int
        Array-sized pieces of the spatial dims, each padded to the full R x C array.
    per_fold_cycles : int
        Demand-matrix rows per fold: R+C+T-2 (OS), 2R+C+T-2 (WS, IS); folds never overlap.
    compute_cycles : int
        COMPUTE_REPORT `Total Cycles` with no stalls: folds * per_fold_cycles - 1.
    utilization, mapping_efficiency, compute_utilization : float
        `Overall Util %`, `Mapping Efficiency %` and `Compute Util %` divided by 100 (fractions).
    ifmap_sram_read_bytes, filter_sram_read_bytes, ofmap_sram_write_bytes : int
        DETAILED_ACCESS_REPORT `SRAM IFMAP Reads`, `SRAM Filter Reads`, `SRAM OFMAP Writes`
        (1-byte words). OS ofmap writes include SCALE-Sim's over-count of R+C per fold.
    """

    M: int
    N: int
    K: int
    rows: int
    cols: int
    dataflow: str
    k_eff: int
    folds: int
    per_fold_cycles: int
    compute_cycles: int
    macs: int
    utilization: float
    mapping_efficiency: float
    compute_utilization: float
    ifmap_sram_read_bytes: int
    filter_sram_read_bytes: int
    ofmap_sram_write_bytes: int

    @property
    def overhead_cycles_per_fold(self) -> int:
        """Fill, skew, preload and drain rows of a fold: per-fold cycles minus streamed rows T."""
        return self.per_fold_cycles - self.temporal

    @property
    def spatial(self) -> tuple[int, int]:
        """(Sr, Sc): the GEMM dims mapped onto array rows and columns."""
        return {"os": (self.M, self.N), "ws": (self.k_eff, self.N),
                "is": (self.k_eff, self.M)}[self.dataflow]

    @property
    def temporal(self) -> int:
        """T: the GEMM dim streamed through the array in time."""
        return {"os": self.k_eff, "ws": self.M, "is": self.N}[self.dataflow]


def effective_k(K: int, sparsity: tuple[int, int] = (1, 1)) -> int:  # noqa: N803
    """Rows of SCALE-Sim's compressed filter under layer-wise N:M sparsity (N of every M kept)."""
    n, m = sparsity
    return (K // m) * n + min(n, K % m)


def scalesim_fold_shape(M: int, N: int, K: int, R: int, C: int,  # noqa: N803
                        dataflow: str) -> tuple[int, int]:
    """(folds, per-fold cycles) of SCALE-Sim 3.0.0's compute model."""
    for name, v in (("M", M), ("N", N), ("K", K), ("R", R), ("C", C)):
        check_int(name, v)
    check_choice("dataflow", dataflow, DATAFLOWS)
    if dataflow == "os":
        return math.ceil(M / R) * math.ceil(N / C), R + C + K - 2
    if dataflow == "ws":
        return math.ceil(K / R) * math.ceil(N / C), 2 * R + C + M - 2
    return math.ceil(K / R) * math.ceil(M / C), 2 * R + C + N - 2


def scalesim_compute_cycles(M: int, N: int, K: int, R: int, C: int,  # noqa: N803
                            dataflow: str) -> int:
    """SCALE-Sim v3.0.0's stall-free `Total Cycles` for C[MxN] = A[MxK] @ B[KxN] on an R x C array.

    OS: ceil(M/R)ceil(N/C)(R+C+K-2) - 1; WS: ceil(K/R)ceil(N/C)(2R+C+M-2) - 1;
    IS: ceil(K/R)ceil(M/C)(2R+C+N-2) - 1. The -1 is SCALE-Sim's: it reports the largest 0-based
    cycle index of an ofmap write rather than a count (issue #125).
    """
    folds, per_fold = scalesim_fold_shape(M, N, K, R, C, dataflow)
    return folds * per_fold - 1


def scalesim_compute(M: int, N: int, K: int, R: int, C: int, dataflow: str, *,  # noqa: N803
                     sparsity: tuple[int, int] = (1, 1)) -> ScaleSimCompute:
    """Every COMPUTE_REPORT number (and the SRAM access counts) SCALE-Sim 3.0.0 gives a layer.

    `sparsity` is the layer's N:M ratio when the config has SparsitySupport on (layer-wise, not
    OptimizedMapping): the reduction dim shrinks to `effective_k`, while utilization still counts
    dense MACs (so it can exceed 1, as SCALE-Sim's does).
    """
    k_eff = effective_k(K, sparsity)
    folds, per_fold = scalesim_fold_shape(M, N, k_eff, R, C, dataflow)
    cycles = folds * per_fold - 1
    macs = M * N * K
    sr, sc, t = {"os": (M, N, k_eff), "ws": (k_eff, N, M), "is": (k_eff, M, N)}[dataflow]
    # Every fold adds used/(R*C); the used PEs of all folds sum to Sr*Sc.
    mapping = sr * sc / (folds * R * C)
    # Compute Util takes the fold length before the skew for WS/IS (2R+2C+T-3, C-1 too many).
    fold_len = per_fold if dataflow == "os" else per_fold + C - 1
    compute_util = mapping * t / fold_len
    row_folds, col_folds = math.ceil(sr / R), math.ceil(sc / C)
    if dataflow == "os":
        reads = (col_folds * M * k_eff, row_folds * k_eff * N, M * N + folds * (R + C))
    elif dataflow == "ws":
        # Sparse WS charges ifmap reads at M/N times the compressed rate (systolic_compute_ws.py).
        n_sp, m_sp = sparsity
        reads = (round(Fraction(col_folds * M * k_eff * m_sp, n_sp)), k_eff * N,
                 row_folds * M * N)
    else:
        reads = (M * k_eff, col_folds * k_eff * N, row_folds * M * N)
    return ScaleSimCompute(M, N, K, R, C, dataflow, k_eff, folds, per_fold, cycles, macs,
                           macs / (cycles * R * C), mapping, compute_util,
                           *(r * WORD_BYTES for r in reads))


# -------------------------------------------------------------------------------------------------
# Report: SCALE-Sim-compatible timing side by side with tpesim's own
# -------------------------------------------------------------------------------------------------
REPORT_COLUMNS = (
    "layer", "M", "N", "K", "dataflow", "rows", "cols", "folds", "per_fold_cycles",
    "compute_cycles", "stall_cycles", "total_cycles", "timing", "scalesim_compute_cycles",
    "tpesim_compute_cycles", "delta_cycles", "reason", "macs", "utilization",
    "mapping_efficiency", "compute_utilization", "ifmap_sram_read_bytes",
    "filter_sram_read_bytes", "ofmap_sram_write_bytes", "sram_read_bytes", "sram_write_bytes",
)

TileTiming = Callable[[int, int, int, int, int, str], Any]


def load_tile_timing() -> tuple[TileTiming | None, str]:
    """tpesim's tile-level GEMM timing if present, else (None, why not)."""
    try:
        from sim.timing import tile_gemm_cycles
    except ImportError as e:
        return None, f"tpesim tile timing unavailable ({e}); SCALE-Sim-compatible timing only"
    return tile_gemm_cycles, ""


def _cycles_of(value: Any) -> int:
    if isinstance(value, dict):
        value = value.get("compute_cycles", value.get("cycles"))
    elif hasattr(value, "compute_cycles") or hasattr(value, "cycles"):
        value = getattr(value, "compute_cycles", getattr(value, "cycles", None))
    try:
        if isinstance(value, bool):
            raise TypeError
        return int(operator.index(value))
    except TypeError:
        raise TypeError(f"tile_gemm_cycles must return a number of cycles, not {value!r}") from None


def explain_delta(sc: ScaleSimCompute, tpesim_cycles: int | None) -> str:
    """Why tpesim's cycles differ from SCALE-Sim's for this layer (SCALE-Sim modelling choices)."""
    if tpesim_cycles is None:
        return ""
    delta = tpesim_cycles - sc.compute_cycles
    if delta == 0:
        return "same"
    if sc.dataflow in ("ws", "is"):
        return _explain_stationary(sc, tpesim_cycles, delta)
    parts = [f"{delta:+d}: SCALE-Sim reports its last 0-based cycle (-1, issue #125)"]
    ovh = sc.overhead_cycles_per_fold
    what = "fill+skew+drain" if sc.dataflow == "os" else "preload+fill+skew+drain"
    if sc.folds > 1:
        parts.append(f"SCALE-Sim serializes its {sc.folds} folds: each pays {ovh} {what} cycles "
                     f"({sc.folds * ovh} in all), no preload/drain overlap")
    else:
        parts.append(f"its single fold pays {ovh} {what} cycles")
    sr, sc_ = sc.spatial
    if sr % sc.rows or sc_ % sc.cols:
        parts.append("partial folds cost a full fold in SCALE-Sim")
    return "; ".join(parts)


def _explain_stationary(sc: ScaleSimCompute, ours: int, delta: int) -> str:
    """WS/IS. Both models serialize the folds (tpesim's single-buffered array loads a fold's
    stationary tile only once the previous fold's last row has passed the last PE) and pad partial
    folds to the whole array, so with the same folds the two closed forms differ by a constant:
        tpesim     F (2R + C + T - 1) + 1    (R loads, T rows, R + C - 1 until the last MAC; +1)
        SCALE-Sim  F (2R + C + T - 2) - 1    (R loads, T rows, R + C - 2 skew and drain; -1)
    delta = F + 2: +1 per fold because tpesim's stream lanes enter through an input register
    (lane i is delayed i + 1 cycles, SCALE-Sim's skew is i), +1 because the last result row is
    read from the last PE's register the cycle after its MAC, +1 for SCALE-Sim's -1."""
    R, C, T, F = sc.rows, sc.cols, sc.temporal, sc.folds
    per = 2 * R + C + T - 1
    if ours == F * per + 1 and delta == F + 2:
        return (f"{delta:+d} = {F} folds x 1 + 1 + 1: an input register on our stream lanes "
                f"({per} cycles per fold, SCALE-Sim {per - 1}; folds serialized in both); our last "
                f"result row leaves the cycle after its MAC; SCALE-Sim reports its last 0-based "
                f"cycle (-1, issue #125)")
    parts = [f"{delta:+d}: SCALE-Sim reports its last 0-based cycle (-1, issue #125)"]
    if sc.k_eff != sc.K:
        parts.append(f"SCALE-Sim streams the N:M-compressed reduction ({sc.k_eff} of {sc.K} rows, "
                     f"{F} folds), tpesim the dense one")
    parts.append(f"SCALE-Sim's {F} folds take {sc.per_fold_cycles} cycles each (2R+C+T-2); a "
                 f"single-buffered "
                 f"tpesim fold takes 2R+C+T-1 (input register), a double-buffered one overlaps "
                 f"the next fold's load with this one's rows")
    return "; ".join(parts)


def layer_report(cfg: ScaleSimConfig, layer: Layer, *, tile_timing: TileTiming | None = None,
                 compat: bool = False) -> dict[str, Any]:
    """One report row: SCALE-Sim-compatible numbers, tpesim's timing, and why they differ.

    `compute_cycles` is tpesim's when available and `compat` is False, else SCALE-Sim's.
    """
    sparsity = layer.sparsity if cfg.sparsity_support else (1, 1)
    sc = scalesim_compute(layer.M, layer.N, layer.K, cfg.rows, cfg.cols, cfg.dataflow,
                          sparsity=sparsity)
    ours, why_not = None, ""
    if tile_timing is not None:
        try:
            ours = _cycles_of(tile_timing(layer.M, layer.N, layer.K, cfg.rows, cfg.cols,
                                          cfg.dataflow))
        except (TpesimError, NotImplementedError) as e:
            why_not = f"tpesim timing: {' '.join(str(e).split())}"
    use_ours = ours is not None and not compat
    compute = ours if use_ours else sc.compute_cycles
    # CALC mode is stall-free (reads always hit); USER-mode stalls are not modelled yet.
    stall = 0 if cfg.interface_bandwidth == "CALC" else None
    total = compute + stall if stall is not None else None
    reason = explain_delta(sc, ours) or why_not
    if stall is None:
        reason = "; ".join(filter(None, [reason, "USER-mode memory stalls not modelled"]))
    return {
        "layer": layer.name, "M": layer.M, "N": layer.N, "K": layer.K,
        "dataflow": cfg.dataflow, "rows": cfg.rows, "cols": cfg.cols, "folds": sc.folds,
        "per_fold_cycles": sc.per_fold_cycles, "compute_cycles": compute, "stall_cycles": stall,
        "total_cycles": total, "timing": "tpesim" if use_ours else "scalesim",
        "scalesim_compute_cycles": sc.compute_cycles, "tpesim_compute_cycles": ours,
        "delta_cycles": None if ours is None else ours - sc.compute_cycles, "reason": reason,
        "macs": sc.macs, "utilization": sc.macs / (compute * cfg.rows * cfg.cols),
        "mapping_efficiency": sc.mapping_efficiency,
        "compute_utilization": sc.compute_utilization,
        "ifmap_sram_read_bytes": sc.ifmap_sram_read_bytes,
        "filter_sram_read_bytes": sc.filter_sram_read_bytes,
        "ofmap_sram_write_bytes": sc.ofmap_sram_write_bytes,
        "sram_read_bytes": sc.ifmap_sram_read_bytes + sc.filter_sram_read_bytes,
        "sram_write_bytes": sc.ofmap_sram_write_bytes,
    }


def report(cfg: ScaleSimConfig, layers: Sequence[Layer], *, compat: bool = False,
           tile_timing: TileTiming | None | bool = True) -> tuple[list[dict[str, Any]], str]:
    """Report rows for every layer, and a note ("" or why tpesim's own timing is missing).

    `tile_timing=True` loads sim.timing lazily; None/False means SCALE-Sim-compatible timing only.
    """
    if cfg.optimized_mapping and cfg.sparsity_support:
        raise ConfigError("OptimizedMapping (row-wise sparsity) must be false for tpesim's "
                          "SCALE-Sim timing, not true")
    note = ""
    if tile_timing is True:
        tile_timing, note = load_tile_timing()
    elif not tile_timing:
        tile_timing = None
    rows = [layer_report(cfg, ly, tile_timing=tile_timing, compat=compat) for ly in layers]
    if tile_timing is not None and all(r["tpesim_compute_cycles"] is None for r in rows):
        note = "tpesim tile timing supports none of these layers; SCALE-Sim-compatible timing only"
    if tile_timing is None and note:
        # Say so in every row too, so a CSV or JSON consumer cannot miss it.
        for r in rows:
            r["reason"] = "; ".join(filter(None, [note, r["reason"]]))
    return rows, note


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
    Path(path).write_text(buf.getvalue())


def cli_main(argv: Sequence[str]) -> int:
    """`tpesim scalesim ...`: print a per-layer report (table or --json), optionally write CSV."""
    args = _build_parser().parse_args(list(argv))
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
    if args.output:
        try:
            write_csv(rows, args.output)
        except OSError as e:
            raise FileFormatError(f"{args.output}: cannot write the report "
                                  f"({e.strerror or e})") from None
    return 0

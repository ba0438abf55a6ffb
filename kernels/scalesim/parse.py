"""SCALE-Sim v3 config (.cfg) and topology (.csv) files: read as-is, one-line errors, compat warnings."""

from __future__ import annotations

import configparser
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tpesim.config import check_choice, check_int
from tpesim.errors import ConfigError, FileFormatError



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
# Largest value of a size/count field (a GEMM dimension's bound) and of an address offset (SCALE-Sim
# keeps addresses in int64 arrays): anything larger is refused in one line, never overflows later.
MAX_FIELD = 2**31 - 1
MAX_OFFSET = 2**63 - 1
_HI_NAMES = {MAX_FIELD: "2**31 - 1", MAX_OFFSET: "2**63 - 1"}
_SPARSITY_RE = re.compile(r"(\d+)\s*:\s*(\d+)")


class ScaleSimCompatWarning(UserWarning):
    """SCALE-Sim 3.0.0 would read this input differently from tpesim (or not at all)."""


class ScaleSimDefaultsNote(ScaleSimCompatWarning):
    """A config (e.g. SCALE-Sim v2's layout) lacks keys v3 added; tpesim used their defaults."""


# Keys SCALE-Sim v3 added over v2 (v2's scale_config.read_conf_file reads none of them), with the
# defaults tpesim uses when a config lacks them: v3's sample-config values, except the [layout]
# DRAM bandwidths, which in USER mode default to Bandwidth[0] -- v2 used that one bandwidth for
# every operand (single_layer_sim.py: ifmap/filter/ofmap_backing_bw = bws[0]).
# InterfaceBandwidth is read by v2 too, but older configs lack it; CALC is v2's own default mode.
V3_DEFAULTS: dict[tuple[str, str], object] = {
    ("architecture_presets", "ReadRequestBuffer"): 32,
    ("architecture_presets", "WriteRequestBuffer"): 32,
    ("layout", "IfmapCustomLayout"): False,
    ("layout", "IfmapSRAMBankBandwidth"): 10,
    ("layout", "IfmapSRAMBankNum"): 1,
    ("layout", "IfmapSRAMBankPort"): 2,
    ("layout", "FilterCustomLayout"): False,
    ("layout", "FilterSRAMBankBandwidth"): 10,
    ("layout", "FilterSRAMBankNum"): 1,
    ("layout", "FilterSRAMBankPort"): 2,
    ("sparsity", "SparsitySupport"): False,
    ("run_presets", "InterfaceBandwidth"): "CALC",
    ("run_presets", "UseRamulatorTrace"): False,
}


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
        self.defaults: dict[tuple[str, str], str] = {}  # v3-only keys the file lacks -> text used
        self.defaulted: list[tuple[str, str, str]] = []  # (section, key, value) in reading order

    def has(self, section: str, key: str) -> bool:
        return self.p.has_option(section, key)

    def raw(self, section: str, key: str) -> str:
        default = self.defaults.get((section, key))
        if default is not None and not self.p.has_option(section, key):
            if (section, key, default) not in self.defaulted:
                self.defaulted.append((section, key, default))
            return default
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

    def integer(self, section: str, key: str, lo: int = 1, hi: int = MAX_FIELD) -> int:
        text = self.raw(section, key)
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo:
            rule = "a positive integer" if lo == 1 else f"an integer >= {lo}"
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be {rule}, "
                                  f"not {text!r}")
        if value > hi:
            raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' must be at most "
                                  f"{hi} ({_HI_NAMES[hi]}), not {text!r}")
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
            return self.p.BOOLEAN_STATES[text.lower()]
        except KeyError:
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
            if value > MAX_FIELD:
                raise FileFormatError(f"{self.src.where(section, key)}: field '{key}' values must "
                                      f"be at most {MAX_FIELD} (2**31 - 1), not {text!r}")
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
    r.defaults = {k: str(v) for k, v in V3_DEFAULTS.items()}
    r.defaults[("sparsity", "SparsitySupport")] = "false"

    run_name = r.raw("general", "run_name")
    mode = r.choice("run_presets", "InterfaceBandwidth", INTERFACE_MODES)
    if mode == "USER" and r.has("architecture_presets", "Bandwidth"):
        # a v2 file's one bandwidth serves every operand, as in v2
        first = r.raw("architecture_presets", "Bandwidth").split(",")[0].strip()
        if _INT_RE.fullmatch(first) and int(first) > 0:  # else the Bandwidth check below fails
            for op in ("Ifmap", "Filter"):
                r.defaults[("layout", f"{op}SRAMBankBandwidth")] = first
    ramulator_text = r.raw("run_presets", "UseRamulatorTrace")
    if ramulator_text.lower() == "true" and ramulator_text != "True":
        _warn(f"{src.where('run_presets', 'UseRamulatorTrace')}: SCALE-Sim 3.0.0 enables Ramulator "
              f"replay only for the exact string 'True'; {ramulator_text!r} leaves it off")

    arch = "architecture_presets"
    rows = r.integer(arch, "ArrayHeight")
    cols = r.integer(arch, "ArrayWidth")
    sram = [r.integer(arch, k) for k in ("IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB")]
    offsets = [r.integer(arch, k, lo=0, hi=MAX_OFFSET)
               for k in ("IfmapOffset", "FilterOffset", "OfmapOffset")]
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

    if r.defaulted:
        _note_defaults(name, r.defaulted)

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


def _note_defaults(name: str, defaulted: list[tuple[str, str, str]]) -> None:
    """ONE note naming every key the file lacked and the value used (e.g. a SCALE-Sim v2 file)."""
    groups: dict[str, list[str]] = {}
    for section, key, value in defaulted:
        groups.setdefault(section, []).append(f"{key}={value}")
    keys = "; ".join(f"[{sec}] {', '.join(kv)}" for sec, kv in groups.items())
    v2 = ("SCALE-Sim v2-style config" if ("layout", "IfmapCustomLayout") in
          {(s, k) for s, k, _ in defaulted} else "config")
    warnings.warn(f"{name}: {v2}: defaulted {len(defaulted)} key"
                  f"{'s' if len(defaulted) != 1 else ''} it lacks: {keys}",
                  ScaleSimDefaultsNote, stacklevel=3)


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
    if int(text) > MAX_FIELD:
        raise FileFormatError(f"{name}:{lineno}: field '{fld}' must be at most {MAX_FIELD} "
                              f"(2**31 - 1), not {text!r}")
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

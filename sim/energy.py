"""Energy per action (pJ) with units and cited sources, and the energy of a run from its counts.

A report gets `energy_pj` and per-component fields only when a table is in use, and names it.
Figures, sources and derivations: docs/energy.md.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigTypeError, FileFormatError

__all__ = ["EnergyTable", "Action", "HOROWITZ_45NM", "load_table", "actions", "energy_fields",
           "COMPONENTS"]

# Report fields energy_<component>_pj, in this order.
COMPONENTS = ("mac", "lookup", "table", "sram", "dram")

HOROWITZ = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014, "
            "pp. 10-14, Figure 1.1.9 (45 nm, 0.9 V)")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action, all in picojoules (pJ).

    Parameters
    ----------
    name : str
        Named in every report that uses the table (`energy_table`).
    source : str
        Where the figures come from.
    int_add_pj, int_mult_pj : dict
        Integer add / multiply energy by operand width in bits. A width not listed is scaled from
        the nearest listed one: an adder's energy linearly in the width, a multiplier's with the
        product of its operand widths (an array multiplier's partial-product bits).
    fp_add_pj, fp_mult_pj : dict
        Floating-point add / multiply by format width (16: binary16, 32: binary32); not scaled.
    lookup_pj_per_bit : float
        A table lookup (a 2^(g-1):1 mux read with sign), per bit of the entry read.
    sram_pj_per_byte : dict
        SRAM access per byte by array capacity in KiB: an operand's SRAM is priced at the smallest
        listed capacity at least its size (unbounded SRAM: the largest).
    dram_pj_per_byte : float
        DRAM access per byte.
    notes : dict
        Where each figure comes from (field name -> text), printed by docs and `describe()`.
    """

    name: str
    source: str
    int_add_pj: dict[int, float]
    int_mult_pj: dict[int, float]
    fp_add_pj: dict[int, float]
    fp_mult_pj: dict[int, float]
    lookup_pj_per_bit: float
    sram_pj_per_byte: dict[int, float]
    dram_pj_per_byte: float
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        _check_text("name", self.name)
        _check_text("source", self.source)
        for f in ("int_add_pj", "int_mult_pj", "fp_add_pj", "fp_mult_pj", "sram_pj_per_byte"):
            object.__setattr__(self, f, _check_widths(f, getattr(self, f)))
        for f in ("int_add_pj", "int_mult_pj", "sram_pj_per_byte"):
            if not getattr(self, f):
                raise ConfigError(f"energy table {f} must list at least one entry, not none")
        _check_pj("lookup_pj_per_bit", self.lookup_pj_per_bit)
        _check_pj("dram_pj_per_byte", self.dram_pj_per_byte)
        if not isinstance(self.notes, dict):
            raise ConfigTypeError(f"energy table notes must be a table, not {self.notes!r}")

    # -- prices ------------------------------------------------------------------------------
    def int_add(self, bits: int) -> float:
        return _scaled(self.int_add_pj, bits, lambda w: w)

    def int_mult(self, bits_a: int, bits_b: int | None = None) -> float:
        """A bits_a x bits_b multiplier (square when bits_b is None)."""
        bits_b = bits_a if bits_b is None else bits_b
        if bits_a == bits_b and bits_a in self.int_mult_pj:
            return self.int_mult_pj[bits_a]
        # energy ~ partial-product bits: scale the nearest square entry by (a*b)/(w*w)
        w = min(self.int_mult_pj, key=lambda x: (abs(math.log(x * x / (bits_a * bits_b))), x))
        return self.int_mult_pj[w] * (bits_a * bits_b) / (w * w)

    def fp(self, op: str, bits: int) -> float:
        tab = self.fp_add_pj if op == "add" else self.fp_mult_pj
        if bits not in tab:
            raise ConfigError(f"energy table {self.name!r} has no fp_{op}_pj for {bits}-bit "
                              f"floats (has {sorted(tab) or 'none'})")
        return tab[bits]

    def sram(self, kib: float | None) -> float:
        sizes = sorted(self.sram_pj_per_byte)
        if kib is None:
            return self.sram_pj_per_byte[sizes[-1]]
        return self.sram_pj_per_byte[next((s for s in sizes if s >= kib), sizes[-1])]

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in d.items():
            if isinstance(v, dict) and k != "notes":
                d[k] = {str(w): p for w, p in v.items()}
        return d


def _scaled(tab: dict[int, float], bits: int, law) -> float:
    if bits in tab:
        return tab[bits]
    w = min(tab, key=lambda x: (abs(math.log(x / bits)), x))
    return tab[w] * law(bits) / law(w)


def _check_text(name: str, v: Any) -> None:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"energy table {name} must be a non-empty string, not {v!r}")


def _check_pj(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigTypeError(f"energy table {name} must be a number of pJ, not {v!r}")
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"energy table {name} must be a finite number >= 0 (pJ), not {v!r}")
    return float(v)


def _check_widths(name: str, tab: Any) -> dict[int, float]:
    if not isinstance(tab, dict):
        raise ConfigTypeError(f"energy table {name} must be a table of width = pJ, not {tab!r}")
    out = {}
    for k, v in tab.items():
        try:
            w = int(k)
        except (TypeError, ValueError):
            w = None
        if w is None or isinstance(k, bool) or w < 1 or str(w) != str(k).strip():
            raise ConfigError(f"energy table {name} keys must be positive integers (bits or KiB), "
                              f"not {k!r}")
        out[w] = _check_pj(f"{name}[{k}]", v)
    return out


HOROWITZ_45NM = EnergyTable(
    name="horowitz-45nm",
    source=HOROWITZ,
    int_add_pj={8: 0.03, 32: 0.1},
    int_mult_pj={8: 0.2, 32: 3.1},
    fp_add_pj={16: 0.4, 32: 0.9},
    fp_mult_pj={16: 1.1, 32: 3.7},
    lookup_pj_per_bit=0.1 / 32,
    sram_pj_per_byte={8: 10 / 8, 32: 20 / 8, 1024: 100 / 8},
    dram_pj_per_byte=1300 / 8,
    notes={
        "int_add_pj": "Horowitz ISSCC 2014 Fig. 1.1.9: 8-bit add 0.03 pJ, 32-bit add 0.1 pJ",
        "int_mult_pj": "Horowitz ISSCC 2014 Fig. 1.1.9: 8-bit mult 0.2 pJ, 32-bit mult 3.1 pJ",
        "fp_add_pj": "Horowitz ISSCC 2014 Fig. 1.1.9: 16-bit FP add 0.4 pJ, 32-bit FP add 0.9 pJ",
        "fp_mult_pj": "Horowitz ISSCC 2014 Fig. 1.1.9: 16-bit FP mult 1.1 pJ, 32-bit 3.7 pJ",
        "lookup_pj_per_bit": "assumption (no lookup figure in the source): a 2^(g-1):1 mux read "
                             "priced like an adder of the entry's width, 0.1 pJ / 32 bits",
        "sram_pj_per_byte": "Horowitz ISSCC 2014 Fig. 1.1.9: 64-bit cache access 10 pJ (8 KB), "
                            "20 pJ (32 KB), 100 pJ (1 MB), divided by 8 bytes",
        "dram_pj_per_byte": "Horowitz ISSCC 2014 Fig. 1.1.9: DRAM 1.3-2.6 nJ per 64 bits; the "
                            "low end, 1.3 nJ / 8 bytes",
    },
)

_OVERRIDABLE = tuple(f.name for f in fields(EnergyTable))


def load_table(path: str | Path | None = None) -> EnergyTable:
    """The built-in table (path None) or the built-in table overridden by a TOML or JSON file:
    any subset of the fields (a width table given in the file replaces the built-in one), and
    `name` (default: the file's name)."""
    if path is None:
        return HOROWITZ_45NM
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(f"energy table {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FileFormatError(f"energy table {str(path)!r}: cannot read it "
                              f"({getattr(e, 'strerror', None) or e})") from None
    text = text.removeprefix("\ufeff")
    try:
        d = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise FileFormatError(f"energy table {str(path)!r}: malformed {kind}: "
                              f"{' '.join(str(e).split())}") from None
    if not isinstance(d, dict):
        raise FileFormatError(f"energy table {str(path)!r} must hold a table, not "
                              f"{type(d).__name__}")
    unknown = sorted(set(d) - set(_OVERRIDABLE))
    if unknown:
        raise FileFormatError(f"energy table {str(path)!r} has no field {unknown[0]!r} "
                              f"(fields: {', '.join(_OVERRIDABLE)})")
    d.setdefault("name", p.stem)
    d.setdefault("source", f"{p.name} over {HOROWITZ_45NM.name}")
    if not isinstance(d.get("notes", {}), dict):
        raise FileFormatError(f"energy table {str(path)!r}: notes must be a table, not "
                              f"{d['notes']!r}")
    # a figure the file overrides is the file's, unless it says where it comes from
    d["notes"] = {**HOROWITZ_45NM.notes,
                  **{k: f"from {p.name}" for k in d if k not in ("name", "source", "notes")},
                  **d.get("notes", {})}
    try:
        return replace(HOROWITZ_45NM, **d)
    except (ConfigError, ConfigTypeError) as e:
        raise FileFormatError(f"energy table {str(path)!r}: {e}") from None


# -------------------------------------------------------------------------------------------------
# Actions: what a run did, counted from its report
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Action:
    """`count` actions of one kind, charged to `component` (one of COMPONENTS).

    kind: "int_add", "int_mult" (bits, bits_b), "fp_add", "fp_mult" (bits), "lookup" (bits of the
    entry read), "sram_byte" (bits = the SRAM's KiB or None), "dram_byte".
    """

    component: str
    kind: str
    count: int
    bits: float | None = None
    bits_b: int | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def actions(cfg, report: dict) -> list[Action]:
    """The actions of one run of `cfg` from its report fields (a `TimingReport.to_dict()` plus the
    engine's report fields). An engine whose datapath is not multiply-accumulate counts its own
    with `cfg.energy_actions(report)` (e.g. lookups); otherwise every MAC is a multiply of the A
    and B operand widths and an add of the C (accumulator) width."""
    custom = getattr(cfg, "energy_actions", None)
    if custom is not None:
        acts = list(custom(report))
    else:
        ops = {op.role: op for op in cfg.operands()}
        macs = int(report["macs"])
        acts = [Action("mac", "int_mult", macs, ops["a"].bits, ops["b"].bits),
                Action("mac", "int_add", macs, ops["c"].bits)]
    # per operand (a GEMM's report), else totals (a whole-model run), with the largest SRAM
    per_op = any(f"sram_read_bytes_{op}" in report for op in "abc")
    kibs = [report.get(f"sram_kib_{op}") for op in "abc"]
    for op in ("a", "b", "c") if per_op else ("",):
        sfx = f"_{op}" if op else ""
        sram = sum(int(report.get(f"sram_{rw}_bytes{sfx}", 0) or 0) for rw in ("read", "write"))
        dram = sum(int(report.get(f"dram_{rw}_bytes{sfx}", 0) or 0) for rw in ("read", "write"))
        kib = report.get(f"sram_kib{sfx}") if op else \
            (None if None in kibs else max(kibs))
        if sram:
            acts.append(Action("sram", "sram_byte", sram, kib))
        if dram:
            acts.append(Action("dram", "dram_byte", dram))
    return acts


def _price(table: EnergyTable, a: Action) -> float:
    if a.kind == "int_add":
        return table.int_add(int(a.bits))
    if a.kind == "int_mult":
        return table.int_mult(int(a.bits), a.bits_b)
    if a.kind in ("fp_add", "fp_mult"):
        return table.fp(a.kind[3:], int(a.bits))
    if a.kind == "lookup":
        return table.lookup_pj_per_bit * a.bits
    if a.kind == "sram_byte":
        return table.sram(a.bits)
    if a.kind == "dram_byte":
        return table.dram_pj_per_byte
    raise ConfigError(f"action kind must be one of int_add, int_mult, fp_add, fp_mult, lookup, "
                      f"sram_byte, dram_byte, not {a.kind!r}")


def energy_fields(cfg, report: dict, table: EnergyTable) -> dict:
    """`energy_table`, `energy_pj` and `energy_<component>_pj` for the components the engine has
    (those it counted actions for, plus sram and dram), in pJ."""
    acts = actions(cfg, report)
    comp = {c: 0.0 for c in COMPONENTS}
    seen = {"sram", "dram"}
    for a in acts:
        if a.component not in comp:
            raise ConfigError(f"action component must be one of {', '.join(COMPONENTS)}, "
                              f"not {a.component!r}")
        comp[a.component] += a.count * _price(table, a)
        seen.add(a.component)
    out = {"energy_table": table.name, "energy_pj": sum(comp.values())}
    out.update({f"energy_{c}_pj": comp[c] for c in COMPONENTS if c in seen})
    return out

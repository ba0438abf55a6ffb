"""The base of every engine config (streams, operands, JSON/TOML with an `engine` tag) and the
validation helpers shared by all of them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ConfigError, ConfigTypeError

__all__ = ["Port", "Lanes", "Stream", "Operand", "EngineConfig", "config_from_dict", "config_from_json",
           "config_from_toml", "check_int", "check_choice", "check_bool", "check_seed", "ConfigMixin",
           "MAX_SEED"]


@dataclass(frozen=True)
class Port:
    """One port of an engine: the same name and width in the cycle model, the RTL and the testbench."""

    name: str
    direction: str  # "in" or "out", seen from the engine
    width: int


def check_int(name: str, value: Any, *, lo: int | None = 1, hi: int | None = None,
              rule: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{name} must be an integer, not {value!r}")
    if rule is not None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{name} must be {rule}, not {value!r}")
        return value
    if lo is not None and value < lo:
        rule = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ConfigError(f"{name} must be {rule}, not {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi}, not {value!r}")
    return value


# Seeds are 32-bit everywhere (numpy takes more, simulators' seeds and repro lines take 32 bits).
MAX_SEED = 2**32 - 1


def check_seed(name: str, value: Any) -> int:
    return check_int(name, value, lo=0, hi=MAX_SEED, rule="an integer from 0 to 2**32 - 1")


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {opts}, not {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigTypeError(f"{name} must be a bool, not {value!r}")
    return value


class ConfigMixin:
    """JSON round-trip for frozen config dataclasses."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field {unknown[0]!r} (fields: {', '.join(sorted(names))})")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str):
        return cls.from_dict(_load_json(s, cls.__name__))

    def to_toml(self) -> str:
        """Flat `key = value` TOML (None fields are left out: they take their defaults)."""
        lines = []
        for k, v in self.to_dict().items():
            if v is None:
                continue
            lines.append(f"{k} = {json.dumps(v)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str):

        return cls.from_dict(_load_toml(text, cls.__name__))


# -- streams and operands: what every engine declares ---------------------------------------------
@dataclass(frozen=True)
class Lanes:
    """A payload port of a stream: `lanes` values of `bits` bits each, lane 0 in the low bits."""

    port: str
    lanes: int
    bits: int
    signed: bool

    @property
    def width(self) -> int:
        return self.lanes * self.bits


@dataclass(frozen=True)
class Stream:
    """One valid/ready stream of an engine (after `amaranth.lib.stream.Signature`).

    `direction` is seen from the engine: "in" streams are driven by the testbench (valid, payload,
    last in; ready out), "out" streams by the engine. `valid`/`ready`/`last` name the handshake
    ports (`last` may be None); `payload` the data ports.
    """

    name: str
    direction: str
    valid: str
    ready: str
    payload: tuple[Lanes, ...]
    last: str | None = None

    def ports(self) -> tuple[Port, ...]:
        fwd = "in" if self.direction == "in" else "out"
        back = "out" if fwd == "in" else "in"
        ps = [Port(self.valid, fwd, 1), Port(self.ready, back, 1)]
        ps += [Port(p.port, fwd, p.width) for p in self.payload]
        if self.last is not None:
            ps.append(Port(self.last, fwd, 1))
        return tuple(ps)


@dataclass(frozen=True)
class Operand:
    """A named operand of an engine's GEMM: its role ("a", "b" or "c"), element width and dtype.
    The tile, memory and report layers count bytes per named operand with these widths."""

    name: str
    role: str
    bits: int
    signed: bool
    kind: str = "int"   # "int" (two's complement or unsigned) or "float" (IEEE binary<bits>)


_ENGINE_CONFIGS: dict[str, type] = {}


class EngineConfig(ConfigMixin):
    """Base of every engine config: frozen, keyword-only dataclasses validated at construction.

    A subclass sets `engine` (its registry name) and implements `streams()`, `operands()`,
    `peak_macs_per_cycle` and `name`. `to_dict()` carries the `engine` tag, so
    `config_from_dict` / `config_from_json` / `config_from_toml` load any saved config back into
    its class.
    """

    engine: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("engine"):
            _ENGINE_CONFIGS[cls.engine] = cls

    def streams(self) -> tuple[Stream, ...]:
        raise NotImplementedError

    def operands(self) -> tuple[Operand, ...]:
        raise NotImplementedError

    @property
    def peak_macs_per_cycle(self) -> int:
        raise NotImplementedError

    def operand_as_used(self, role: str, x):
        """Operand `role` ("a" or "b") as the engine multiplies it: the identity, except for an
        engine that imposes a structure on an operand (an N:M engine prunes B)."""
        return x

    def ports(self) -> tuple[Port, ...]:
        """Every port but clk/rst, in stream order: the contract of model, RTL and testbench."""
        return tuple(p for s in self.streams() for p in s.ports())

    def stream(self, name: str) -> Stream:
        for s in self.streams():
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"engine": self.engine, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise ConfigTypeError(f"{cls.__name__} must be given a mapping, not {type(d).__name__}")
        d = dict(d)
        tag = d.pop("engine", cls.engine)
        if tag != cls.engine:
            raise ConfigError(f"engine must be {cls.engine!r} for {cls.__name__}, not {tag!r}")
        return super().from_dict(d)


def _engine_class(d: Any) -> type:
    if not isinstance(d, dict):
        raise ConfigTypeError(f"an engine config must be a mapping, not {type(d).__name__}")
    from . import registry  # noqa: F401 (registers the built-in engines' configs)

    tag = d.get("engine")
    if tag not in _ENGINE_CONFIGS:
        known = ", ".join(repr(k) for k in sorted(_ENGINE_CONFIGS))
        raise ConfigError(f"engine must be one of {known}, not {tag!r}")
    return _ENGINE_CONFIGS[tag]


def config_from_dict(d: dict) -> EngineConfig:
    """The config of whichever engine `d["engine"]` names."""
    return _engine_class(d).from_dict(d)


def config_from_json(s: str) -> EngineConfig:
    """The engine config saved by `to_json()` (any engine: its `engine` tag picks the class)."""
    return config_from_dict(_load_json(s, "engine config"))


def config_from_toml(text: str) -> EngineConfig:
    return config_from_dict(_load_toml(text, "engine config"))


def _text(s: Any, what: str, kind: str) -> str:
    if isinstance(s, bytes):
        raise ConfigTypeError(f"{what} {kind} must be a str, not bytes (decode it first)")
    if not isinstance(s, str):
        raise ConfigTypeError(f"{what} {kind} must be a str, not {type(s).__name__}")
    s = s.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors write
    if not s.strip():
        raise ConfigError(f"{what} {kind} must not be empty")
    return s


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ConfigError(f"config JSON has the key {k!r} twice")
        d[k] = v
    return d


def _load_json(s: Any, what: str) -> dict:
    s = _text(s, what, "JSON")
    try:
        d = json.loads(s, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        hint = " (a file path? pass the file's text)" if "\n" not in s and len(s) < 4096 and \
            s.strip().endswith((".json", ".toml")) else ""
        raise ConfigError(f"{what} JSON is malformed: {e}{hint}") from None
    except RecursionError:
        raise ConfigError(f"{what} JSON is nested too deeply") from None
    if not isinstance(d, dict):
        raise ConfigTypeError(f"{what} JSON must be an object, not {type(d).__name__}")
    return d


def _load_toml(s: Any, what: str) -> dict:
    import tomllib

    s = _text(s, what, "TOML")
    try:
        return tomllib.loads(s)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} TOML is malformed: {e}") from None
    except RecursionError:
        raise ConfigError(f"{what} TOML is nested too deeply") from None

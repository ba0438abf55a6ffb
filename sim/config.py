"""Validation helpers shared by every engine config, and the port description used by model and RTL."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, ConfigTypeError

__all__ = ["Port", "check_int", "check_choice", "check_bool", "ConfigMixin"]


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
        return cls.from_dict(json.loads(s))

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
        import tomllib

        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cls.__name__} TOML is malformed: {e}") from None
        return cls.from_dict(d)

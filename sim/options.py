"""Command-line options of an engine, derived from its config's fields (one spelling everywhere).

`--field-name VALUE` for int/str fields; a bool field defaulting to False is a flag
(`--double-buffer`); one defaulting to True is a negating flag named in the field's metadata
(`signed` -> `--unsigned`). `config_argv(cfg)` gives the options that rebuild `cfg` (repro lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from .config import EngineConfig

__all__ = ["add_engine_options", "config_from_args", "config_argv"]

# bool fields that default to True and the flag that turns them off
NEGATING = {"signed": "unsigned"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dest(engine: str, name: str) -> str:
    return f"cfg__{name}"


def _value_type(cls: type, f: dataclasses.Field):
    """The argparse type of a non-bool field: its metadata's "parse", else from its annotation
    (`str | None` takes text, `int | None` an int), else from its default."""
    if "parse" in f.metadata:
        return f.metadata["parse"]
    try:
        tp = typing.get_type_hints(cls)[f.name]
    except Exception:  # noqa: BLE001 (an unresolvable annotation: fall back to the default)
        tp = type(f.default)
    kinds = set(typing.get_args(tp)) if isinstance(tp, types.UnionType) or \
        typing.get_origin(tp) is typing.Union else {tp}
    kinds.discard(type(None))
    if kinds == {str}:
        return None
    return int


def add_engine_options(p: argparse.ArgumentParser, cls: type[EngineConfig],
                       title: str | None = None) -> None:
    """Add one option per config field (defaults are left to the config: None means 'default')."""
    g = p.add_argument_group(title or f"{cls.engine} options ({cls.__name__} fields)")
    for f in dataclasses.fields(cls):
        default = f.default
        doc = f.metadata.get("help", "")
        if isinstance(default, bool):
            if default:
                neg = NEGATING.get(f.name, f"no_{f.name}")
                g.add_argument(_flag(neg), dest=_dest(cls.engine, f.name), action="store_false",
                               default=None, help=doc or f"{f.name} = False")
            else:
                g.add_argument(_flag(f.name), dest=_dest(cls.engine, f.name), action="store_true",
                               default=None, help=doc or f"{f.name} = True")
        elif isinstance(default, str):
            g.add_argument(_flag(f.name), dest=_dest(cls.engine, f.name), default=None,
                           metavar=f.name.upper(), help=doc or f"(default {default})")
        else:
            # a field whose values are not all ints names its parser in its metadata ("parse")
            parse = _value_type(cls, f)
            g.add_argument(_flag(f.name), dest=_dest(cls.engine, f.name), type=parse,
                           default=None, metavar="N" if parse is int else f.name.upper(),
                           help=doc or f"(default {default})")


def config_from_args(cls: type[EngineConfig], args: argparse.Namespace, **override):
    """The config named by the parsed options (unset options take the config's defaults)."""
    kw = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, _dest(cls.engine, f.name), None)
        if v is not None:
            kw[f.name] = v
    kw.update(override)
    return cls(**kw)


def config_argv(cfg: EngineConfig) -> list[str]:
    """Options that rebuild `cfg` (every field, so the line is exact even if defaults change)."""
    argv: list[str] = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(f.default, bool):
            if v != f.default:
                argv.append(_flag(NEGATING.get(f.name, f"no_{f.name}") if f.default else f.name))
        elif v is not None:
            argv += [_flag(f.name), str(v)]
    return argv

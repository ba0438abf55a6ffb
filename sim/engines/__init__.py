"""Engine cycle models. `load_core(name)` returns a hot-path module, compiled unless interpreted is asked for.

Set TPESIM_INTERPRETED=1 (or call `load_core(name, interpreted=True)`) to run the pure-Python source of
the same module, for debugging and for the compiled-vs-interpreted benchmark.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["load_core", "interpreted_default", "is_compiled"]


def interpreted_default() -> bool:
    return os.environ.get("TPESIM_INTERPRETED", "") not in ("", "0")


def load_core(name: str, interpreted: bool | None = None):
    """Import sim.engines.<name> (compiled if built) or its .py source run by the interpreter."""
    if interpreted is None:
        interpreted = interpreted_default()
    full = f"{__name__}.{name}"
    if not interpreted:
        return importlib.import_module(full)
    alias = f"{full}__interpreted"
    if alias in sys.modules:
        return sys.modules[alias]
    path = Path(__file__).with_name(name + ".py")
    loader = importlib.machinery.SourceFileLoader(alias, str(path))
    spec = importlib.util.spec_from_loader(alias, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    loader.exec_module(mod)
    return mod


def is_compiled(module) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")

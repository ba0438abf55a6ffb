"""Output files written safely: never over an input, atomically (temp file + rename), so a failure
leaves no partial file; one-line errors naming the option and the path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError, FileFormatError

__all__ = ["check_output_path", "write_text_atomic", "provenance", "csv_cell", "SCHEMA_VERSION"]

# Version of the report fields (JSON objects and CSV columns of every command): bumped when a
# field changes name or meaning. 2: cycles is the end of all the work (write-back included).
SCHEMA_VERSION = 2


def provenance() -> dict:
    """The fields every JSON/CSV report starts with: which tool and report schema wrote it."""
    from . import __version__

    return {"tool": "tpesim", "tool_version": __version__, "schema_version": SCHEMA_VERSION}


def csv_cell(value) -> str:
    """One CSV cell, the same in every report: empty for None, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_output_path(option: str, path: str | Path | None, inputs: Iterable[str | Path] = ()
                      ) -> Path | None:
    """Validate an output path given on the command line before any work is done."""
    if path is None:
        return None
    if str(path).strip() == "":
        raise ConfigError(f"{option} must name a file, not an empty string")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} must name a file, not the directory {str(path)!r}")
    for inp in inputs:
        try:
            same = p.exists() and Path(inp).exists() and os.path.samefile(p, inp)
        except OSError:
            same = False
        if same or p.resolve() == Path(inp).resolve():
            raise ConfigError(f"{option} must not be one of the inputs, not {str(path)!r}")
    _check_writable_parent(option, p)
    return p


def _check_writable_parent(option: str, p: Path) -> None:
    """The nearest existing ancestor of `p` must be a directory we may write into (missing
    directories below it may be created by the writer), so a bad path fails before any work."""
    parent = p.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} must name a file in a directory, not {str(p)!r} "
                          f"({str(parent)!r} is not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} must name a file in a writable directory, not {str(p)!r} "
                          f"({str(parent)!r} is not writable)")


def write_text_atomic(path: str | Path, text: str, option: str = "output") -> Path:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    except OSError as e:
        raise FileFormatError(f"{option} {str(path)!r}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, p)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise FileFormatError(f"{option} {str(path)!r}: cannot write ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p

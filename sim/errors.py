"""Typed exceptions of tpesim. Every message is one line naming the parameter, the rule and the value."""

__all__ = ["TpesimError", "ConfigError", "ConfigTypeError", "WorkloadError", "FileFormatError",
           "StreamError", "CosimMismatch"]


class TpesimError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(TpesimError, ValueError):
    """A parameter has a value outside its rule (`rows must be a positive integer, not 0`)."""


class ConfigTypeError(TpesimError, TypeError):
    """A parameter has the wrong type."""


class WorkloadError(TpesimError, ValueError):
    """A workload (shape, operand array) does not fit the engine or is malformed."""


class FileFormatError(TpesimError, ValueError):
    """An input file (SCALE-Sim cfg/topology, workload CSV) is malformed; names file, line and field."""


class StreamError(TpesimError, RuntimeError):
    """A stream protocol was violated (e.g. valid dropped before ready)."""


class CosimMismatch(TpesimError, AssertionError):
    """The cycle model and the RTL disagree on a port at a cycle."""

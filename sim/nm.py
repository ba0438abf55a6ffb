"""N:M structured sparsity: the pruner/compressor, index metadata (with NVIDIA's 2:4 codes)
and the `.npz` format of compressed tensors (docs/nm_format.md), shared by engine and kernels.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, ConfigTypeError, FileFormatError, WorkloadError

__all__ = ["MAX_M", "FORMAT", "FORMAT_VERSION", "NVIDIA_2_4_CODES", "NmMetadataError",
           "NmTensor", "parse_sparsity", "format_sparsity", "mask", "prune", "compress",
           "decompress", "check_indices", "to_nvidia_2_4", "from_nvidia_2_4", "save", "load"]

MAX_M = 16
FORMAT = "tpesim-nm"
FORMAT_VERSION = 1
# mma.sp::ordered_metadata 2:4 chunk codes idx0 | idx1 << 2 with idx0 < idx1 (PTX ISA 9.7.14.6.1).
NVIDIA_2_4_CODES = (0b0100, 0b1000, 0b1001, 0b1100, 0b1101, 0b1110)


class NmMetadataError(ConfigError):
    """N:M index metadata breaks a rule (duplicate, descending or out-of-range index, bad code)."""


# --------------------------------------------------------------------------------------------------
# sparsity strings


def parse_sparsity(s) -> tuple[int, int] | None:
    """"dense" -> None; "N:M" -> (N, M) with 1 <= N < M <= MAX_M."""
    if not isinstance(s, str):
        raise ConfigTypeError(f"sparsity must be a string ('dense' or 'N:M'), not {s!r}")
    text = s.strip().lower()
    if text == "dense":
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"sparsity must be 'dense' or 'N:M' (two integers), not {s!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 1 <= n < m <= MAX_M:
        raise ConfigError(f"sparsity must be N:M with 1 <= N < M <= {MAX_M}, not {s!r}")
    return n, m


def format_sparsity(nm: tuple[int, int] | None) -> str:
    """The inverse of `parse_sparsity`."""
    return "dense" if nm is None else f"{nm[0]}:{nm[1]}"


# --------------------------------------------------------------------------------------------------
# argument checks


def _check_nm(n, m) -> tuple[int, int]:
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigTypeError(f"{name} must be an integer, not {v!r}")
    n, m = int(n), int(m)
    if not 1 <= n < m <= MAX_M:
        raise ConfigError(f"n:m must satisfy 1 <= n < m <= {MAX_M}, not {n}:{m}")
    return n, m


def _check_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ConfigTypeError(f"axis must be an integer, not {axis!r}")
    if not -ndim <= axis < ndim:
        raise ConfigError(f"axis must be in {-ndim}..{ndim - 1} for a {ndim}-D array, not {axis}")
    return int(axis) % ndim


def _check_dense(w) -> np.ndarray:
    arr = np.asarray(w)
    if arr.dtype.kind not in "iuf":
        raise WorkloadError(f"w must have an integer or float dtype, not {arr.dtype}")
    if arr.ndim == 0:
        raise WorkloadError("w must have at least one dimension, not a scalar")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise WorkloadError(f"w must be finite to rank by magnitude, not {arr[bad]} at "
                            f"{list(bad)}")
    return arr


def _groups(arr: np.ndarray, m: int, axis: int) -> tuple[np.ndarray, int]:
    """`arr` with `axis` moved last, zero-padded to whole groups and split into (..., G, m)."""
    x = np.moveaxis(arr, axis, -1)
    k = x.shape[-1]
    g = -(-k // m)
    if g * m != k:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (g * m - k,), x.dtype)], axis=-1)
    return x.reshape(x.shape[:-1] + (g, m)), k


def _kept(arr: np.ndarray, n: int, m: int, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(groups (..., G, m), kept in-group indices (..., G, n) ascending, axis length)."""
    grp, k = _groups(arr, m, axis)
    mag = np.abs(grp.astype(np.float64) if grp.dtype.kind != "f" else grp)
    # Stable sort of -|x|: the N largest magnitudes first, equal magnitudes in index order, so a
    # tie goes to the lower index.
    order = np.argsort(-mag, axis=-1, kind="stable")[..., :n]
    return grp, np.sort(order, axis=-1).astype(np.uint8), k


# --------------------------------------------------------------------------------------------------
# prune / compress / decompress


def mask(w, n: int, m: int, axis: int = 0) -> np.ndarray:
    """Boolean N:M mask of `w` along `axis` (True = kept): top-N |value| of every M-group, ties to
    the lower index; a last partial group is padded with zeros for the selection."""
    n, m = _check_nm(n, m)
    arr = _check_dense(w)
    axis = _check_axis(axis, arr.ndim)
    grp, idx, k = _kept(arr, n, m, axis)
    keep = np.zeros(grp.shape, bool)
    np.put_along_axis(keep, idx.astype(np.intp), True, axis=-1)
    keep = keep.reshape(keep.shape[:-2] + (-1,))[..., :k]
    return np.moveaxis(keep, -1, axis)


def prune(w, n: int, m: int, axis: int = 0) -> np.ndarray:
    """`w` (same shape and dtype) with all but the top-N |value| of every M-group along `axis` set
    to zero (ties to the lower index)."""
    arr = np.asarray(w)
    return np.where(mask(arr, n, m, axis), arr, np.zeros((), arr.dtype))


def compress(w, n: int, m: int, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the N:M-pruned `w` along `axis`: that axis becomes ceil(K/M)*N long,
    values keep w's dtype, indices are uint8 in-group positions (0..M-1), ascending per group."""
    n, m = _check_nm(n, m)
    arr = _check_dense(w)
    axis = _check_axis(axis, arr.ndim)
    grp, idx, _ = _kept(arr, n, m, axis)
    vals = np.take_along_axis(grp, idx.astype(np.intp), axis=-1)
    flat = vals.shape[:-2] + (-1,)
    return (np.moveaxis(vals.reshape(flat), -1, axis),
            np.moveaxis(idx.reshape(flat), -1, axis))


def check_indices(indices, n: int, m: int, axis: int = 0) -> np.ndarray:
    """Check N:M index metadata along `axis` (length a multiple of N; each group of N in 0..M-1,
    strictly ascending) and return it as uint8; one-line NmMetadataError otherwise."""
    n, m = _check_nm(n, m)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise NmMetadataError(f"indices must have an integer dtype, not {idx.dtype}")
    if idx.ndim == 0:
        raise NmMetadataError("indices must have at least one dimension, not a scalar")
    axis = _check_axis(axis, idx.ndim)
    length = idx.shape[axis]
    if length % n:
        raise NmMetadataError(f"indices length along axis {axis} must be a multiple of n={n}, "
                              f"not {length}")
    x = np.moveaxis(idx, axis, -1).astype(np.int64)
    bad = np.argwhere((x < 0) | (x >= m))
    if len(bad):
        where = tuple(int(i) for i in bad[0])
        raise NmMetadataError(f"indices must be in 0..{m - 1} (m={m}), not {x[where]} at "
                              f"{_where(where[:-1], where[-1], axis)}")
    g = x.reshape(x.shape[:-1] + (length // n, n))
    if n > 1:
        step = np.diff(g, axis=-1)
        bad = np.argwhere(step <= 0)  # row-major: the first bad pair of the first bad group
        if len(bad):
            first = tuple(int(i) for i in bad[0])
            rule = "distinct" if step[first] == 0 else "ascending"
            where = first[:-1]
            raise NmMetadataError(f"indices within a group must be {rule}, not "
                                  f"{g[where].tolist()} in the group at "
                                  f"{_where(where[:-1], where[-1] * n, axis)}")
    return idx.astype(np.uint8)


def _where(lead: tuple, j: int, axis: int) -> str:
    """Position `j` along `axis` with the other coordinates `lead`, in the caller's axis order."""
    pos = list(lead)
    pos.insert(axis, j)
    return str(pos)


def decompress(values, indices, n: int, m: int, k: int, axis: int = 0) -> np.ndarray:
    """The dense array (axis length `k`) of compressed (values, indices); inverse of `compress`
    on the pruned tensor. Kept positions beyond `k` (padding) must hold zero."""
    n, m = _check_nm(n, m)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, not {k!r}")
    vals = np.asarray(values)
    if vals.dtype.kind not in "iuf":
        raise WorkloadError(f"values must have an integer or float dtype, not {vals.dtype}")
    idx = np.asarray(indices)
    if vals.shape != idx.shape:
        raise WorkloadError(f"values and indices must have the same shape, not {vals.shape} and "
                            f"{idx.shape}")
    if vals.ndim == 0:
        raise WorkloadError("values must have at least one dimension, not a scalar")
    axis = _check_axis(axis, vals.ndim)
    idx = check_indices(idx, n, m, axis)
    g = -(-int(k) // m)
    if vals.shape[axis] != g * n:
        raise WorkloadError(f"compressed axis {axis} must have ceil(k/m)*n = {g * n} entries for "
                            f"k={k}, {n}:{m}, not {vals.shape[axis]}")
    v = np.moveaxis(vals, axis, -1)
    i = np.moveaxis(idx, axis, -1).astype(np.intp)
    lead = v.shape[:-1]
    dense = np.zeros(lead + (g, m), vals.dtype)
    np.put_along_axis(dense, i.reshape(lead + (g, n)), v.reshape(lead + (g, n)), axis=-1)
    dense = dense.reshape(lead + (g * m,))
    if g * m != k and np.any(dense[..., k:] != 0):
        pos = tuple(int(x) for x in np.argwhere(dense[..., k:] != 0)[0])
        raise NmMetadataError(f"a kept value beyond k={k} (padding) must be zero, not "
                              f"{dense[..., k:][pos]} at position {pos[-1] + k} of compressed "
                              f"axis {axis}")
    return np.moveaxis(dense[..., :k], -1, axis)


# --------------------------------------------------------------------------------------------------
# NVIDIA 2:4 metadata


def to_nvidia_2_4(indices, axis: int = -1) -> np.ndarray:
    """NVIDIA 2:4 chunk codes (uint8, idx0 | idx1 << 2) of 2:4 indices; `axis` (default the last,
    NVIDIA's K) halves in length: one 4-bit code per 4-element chunk."""
    idx = check_indices(indices, 2, 4, axis)
    axis = _check_axis(axis, idx.ndim)
    x = np.moveaxis(idx, axis, -1)
    pairs = x.reshape(x.shape[:-1] + (-1, 2))
    codes = (pairs[..., 0] | (pairs[..., 1] << 2)).astype(np.uint8)
    return np.moveaxis(codes, -1, axis)


def from_nvidia_2_4(codes, axis: int = -1) -> np.ndarray:
    """2:4 indices (uint8, two per code, ascending) of NVIDIA chunk codes; a code outside
    NVIDIA_2_4_CODES (e.g. 0b0000, 0b0101, 0b1010, 0b1111, or wider than 4 bits) is rejected."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise NmMetadataError(f"NVIDIA 2:4 codes must have an integer dtype, not {c.dtype}")
    if c.ndim == 0:
        raise NmMetadataError("NVIDIA 2:4 codes must have at least one dimension, not a scalar")
    axis = _check_axis(axis, c.ndim)
    valid = np.isin(c, NVIDIA_2_4_CODES)
    if not valid.all():
        where = tuple(int(i) for i in np.argwhere(~valid)[0])
        bad = int(c[where])
        shown = f"0b{bad:04b}" if 0 <= bad < 16 else str(bad)
        raise NmMetadataError(f"NVIDIA 2:4 metadata code must be one of "
                              f"{', '.join(f'0b{v:04b}' for v in NVIDIA_2_4_CODES)}, not {shown} "
                              f"at {list(where)}")
    x = np.moveaxis(c.astype(np.uint8), axis, -1)
    idx = np.stack([x & 3, x >> 2], axis=-1).reshape(x.shape[:-1] + (-1,))
    return np.moveaxis(idx, -1, axis)


# --------------------------------------------------------------------------------------------------
# file format


@dataclass(frozen=True)
class NmTensor:
    """A compressed N:M tensor as stored on disk (docs/nm_format.md).

    Attributes
    ----------
    values : np.ndarray
        Kept values; `axis` has ceil(k/m)*n entries.
    indices : np.ndarray
        uint8 in-group positions of the values (same shape), ascending within each group of n.
    n, m : int
        The sparsity N:M.
    k : int
        Dense length of the compressed axis.
    axis : int
        The compressed axis (non-negative).
    """

    values: np.ndarray
    indices: np.ndarray
    n: int
    m: int
    k: int
    axis: int

    def dense(self) -> np.ndarray:
        return decompress(self.values, self.indices, self.n, self.m, self.k, self.axis)


_KEYS = ("format", "version", "values", "indices", "n", "m", "k", "axis", "dtype")


def save(path, values, indices, n: int, m: int, k: int, axis: int = 0) -> None:
    """Write compressed (values, indices) to `path` (.npz, no pickles); checked first, so a file
    written is always loadable."""
    vals = np.asarray(values)
    idx = np.asarray(indices)
    ax = _check_axis(axis, max(vals.ndim, 1))
    decompress(vals, idx, n, m, k, ax)  # every rule of the format, before anything is written
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, format=np.array(FORMAT), version=np.array(FORMAT_VERSION, np.int64),
                 values=vals, indices=idx.astype(np.uint8), n=np.array(n, np.int64),
                 m=np.array(m, np.int64), k=np.array(k, np.int64), axis=np.array(ax, np.int64),
                 dtype=np.array(vals.dtype.str))
    os.replace(tmp, path)


def load(path) -> NmTensor:
    """Read a file written by `save`; anything malformed is a one-line FileFormatError naming the
    file and the field."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {key: z[key] for key in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FileFormatError(f"{path}: not a {FORMAT} .npz file ({' '.join(str(e).split())})"
                              ) from None
    missing = [key for key in _KEYS if key not in data]
    if missing:
        raise FileFormatError(f"{path}: field {missing[0]!r} missing (a {FORMAT} file has "
                              f"{', '.join(_KEYS)})")
    if data["format"].shape != () or str(data["format"]) != FORMAT:
        raise FileFormatError(f"{path}: field 'format' must be {FORMAT!r}, not {data['format']!r}")
    scal = {}
    for key in ("version", "n", "m", "k", "axis"):
        v = data[key]
        if v.shape != () or v.dtype.kind not in "iu":
            raise FileFormatError(f"{path}: field {key!r} must be an integer scalar, not {v!r}")
        scal[key] = int(v)
    if scal["version"] != FORMAT_VERSION:
        raise FileFormatError(f"{path}: field 'version' must be {FORMAT_VERSION}, not "
                              f"{scal['version']}")
    vals, idx = data["values"], data["indices"]
    if data["dtype"].shape != () or str(data["dtype"]) != vals.dtype.str:
        raise FileFormatError(f"{path}: field 'dtype' ({data['dtype']}) must name the values' "
                              f"dtype {vals.dtype.str!r}")
    if idx.dtype != np.uint8:
        raise FileFormatError(f"{path}: field 'indices' must be uint8, not {idx.dtype}")
    try:
        if not 0 <= scal["axis"] < max(vals.ndim, 1):
            raise ConfigError(f"axis must be in 0..{vals.ndim - 1}, not {scal['axis']}")
        decompress(vals, idx, scal["n"], scal["m"], scal["k"], scal["axis"])
    except (ConfigError, ConfigTypeError, WorkloadError) as e:
        raise FileFormatError(f"{path}: {e}") from None
    return NmTensor(vals, idx, scal["n"], scal["m"], scal["k"], scal["axis"])

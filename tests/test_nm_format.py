"""tpesim.nm: the N:M pruner/compressor, index metadata, NVIDIA's 2:4 chunk codes and the .npz
format, checked exhaustively over small groups against the selection rule stated as a property.
"""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pytest

from tpesim import nm
from tpesim.errors import ConfigError, ConfigTypeError, FileFormatError, WorkloadError

SMALL = [(n, m) for m in range(2, 7) for n in range(1, m)]


def _all_groups(m: int) -> np.ndarray:
    """Every vector of length m over {-2..2}: ties, zeros and negative values in all positions."""
    return np.array(list(itertools.product(range(-2, 3), repeat=m)), np.int64)


def _rule_holds(x: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """Per row: exactly n kept, and every kept i beats every dropped j: |x_i| > |x_j|, or equal
    magnitudes and i < j (the tie goes to the lower index). Independent of how prune sorts."""
    a = np.abs(x)
    m = x.shape[1]
    i = np.arange(m)
    beats = (a[:, :, None] > a[:, None, :]) | ((a[:, :, None] == a[:, None, :])
                                               & (i[:, None] < i[None, :]))
    pair = keep[:, :, None] & ~keep[:, None, :]
    return (keep.sum(axis=1) == n) & np.all(~pair | beats, axis=(1, 2))


# --------------------------------------------------------------------------------------------------
# sparsity strings


@pytest.mark.parametrize("text, expect", [("dense", None), ("DENSE", None), ("2:4", (2, 4)),
                                          ("2:8", (2, 8)), ("1:2", (1, 2)), ("15:16", (15, 16)),
                                          (" 1:8 ", (1, 8))])
def test_parse_sparsity(text, expect):
    assert nm.parse_sparsity(text) == expect
    if expect is not None:
        assert nm.parse_sparsity(nm.format_sparsity(expect)) == expect


@pytest.mark.parametrize("text, rule", [("4:4", "1 <= N < M <= 16"), ("0:4", "1 <= N < M"),
                                        ("2:17", "M <= 16"), ("5:3", "N < M"),
                                        ("2-4", "'N:M'"), ("a:b", "'N:M'"), ("2:4:8", "'N:M'"),
                                        ("", "'N:M'"), ("-1:4", "'N:M'")])
def test_parse_sparsity_rejects(text, rule):
    with pytest.raises(ConfigError, match="^sparsity must be") as e:
        nm.parse_sparsity(text)
    assert rule in str(e.value) and repr(text) in str(e.value) and "\n" not in str(e.value)


def test_parse_sparsity_type():
    with pytest.raises(ConfigTypeError, match="sparsity must be a string"):
        nm.parse_sparsity((2, 4))


# --------------------------------------------------------------------------------------------------
# selection rule, exhaustive


@pytest.mark.parametrize("n, m", SMALL)
def test_mask_rule_exhaustive(n, m):
    x = _all_groups(m)
    keep = nm.mask(x, n, m, axis=1)
    assert keep.shape == x.shape and keep.dtype == bool
    assert _rule_holds(x, keep, n).all()
    # prune keeps exactly the masked values, in place, with the input's dtype
    p = nm.prune(x, n, m, axis=1)
    assert p.dtype == x.dtype
    np.testing.assert_array_equal(p, np.where(keep, x, 0))


@pytest.mark.parametrize("n, m", SMALL)
def test_compress_exhaustive(n, m):
    x = _all_groups(m).astype(np.int8)
    vals, idx = nm.compress(x, n, m, axis=1)
    assert vals.shape == (len(x), n) and idx.shape == (len(x), n)
    assert vals.dtype == np.int8 and idx.dtype == np.uint8
    assert np.all(np.diff(idx.astype(int), axis=1) > 0)  # ascending, distinct
    np.testing.assert_array_equal(vals, np.take_along_axis(x, idx.astype(np.intp), axis=1))
    keep = np.zeros(x.shape, bool)
    np.put_along_axis(keep, idx.astype(np.intp), True, axis=1)
    assert _rule_holds(x.astype(np.int64), keep, n).all()
    np.testing.assert_array_equal(nm.decompress(vals, idx, n, m, m, axis=1),
                                  nm.prune(x, n, m, axis=1))


def test_ties_go_to_lower_index():
    # hand cases: all equal, equal magnitudes of opposite sign, zeros only, int8 -128
    np.testing.assert_array_equal(nm.prune(np.array([5, 5, 5, 5]), 2, 4), [5, 5, 0, 0])
    np.testing.assert_array_equal(nm.prune(np.array([1, -3, 3, 2]), 2, 4), [0, -3, 3, 0])
    np.testing.assert_array_equal(nm.prune(np.array([3, 1, 2, -3]), 2, 4), [3, 0, 0, -3])
    np.testing.assert_array_equal(nm.compress(np.zeros(8), 2, 8)[1], [0, 1])
    w = np.array([127, -128, 0, -127], np.int8)
    np.testing.assert_array_equal(nm.prune(w, 1, 4), [0, -128, 0, 0])
    np.testing.assert_array_equal(nm.prune(w, 2, 4), [127, -128, 0, 0])


# --------------------------------------------------------------------------------------------------
# random shapes, axes, dtypes, partial groups


def _reference_prune(w: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Loop reference: each 1-D fibre along `axis`, padded with zeros, group by group."""
    x = np.moveaxis(w, axis, -1)
    out = np.zeros_like(x)
    for pos in np.ndindex(x.shape[:-1]):
        fibre = x[pos]
        for g0 in range(0, len(fibre), m):
            grp = list(fibre[g0:g0 + m]) + [0] * (m - len(fibre[g0:g0 + m]))
            kept = sorted(range(m), key=lambda i: (-abs(float(grp[i])), i))[:n]
            for i in kept:
                if g0 + i < len(fibre):
                    out[pos + (g0 + i,)] = fibre[g0 + i]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32, np.float64])
def test_random_shapes_axes(rng, dtype):
    for _ in range(12):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(s) for s in rng.integers(1, 12, ndim))
        axis = int(rng.integers(-ndim, ndim))
        m = int(rng.integers(2, 9))
        n = int(rng.integers(1, m))
        if np.dtype(dtype).kind == "f":
            w = rng.normal(size=shape).astype(dtype)
            w[rng.random(shape) < 0.2] = 0  # zeros and ties among them
        else:
            w = rng.integers(-4, 5, shape).astype(dtype)
        p = nm.prune(w, n, m, axis)
        np.testing.assert_array_equal(p, _reference_prune(w, n, m, axis))
        vals, idx = nm.compress(w, n, m, axis)
        k = shape[axis]
        expect = list(shape)
        expect[axis] = -(-k // m) * n
        assert vals.shape == tuple(expect) == idx.shape
        assert vals.dtype == w.dtype and idx.dtype == np.uint8
        np.testing.assert_array_equal(nm.decompress(vals, idx, n, m, k, axis), p)
        # the mask along `axis` is the mask of the transposed array along axis 0
        np.testing.assert_array_equal(np.moveaxis(nm.mask(w, n, m, axis), axis, 0),
                                      nm.mask(np.moveaxis(w, axis, 0), n, m, 0))


def test_partial_group_padding():
    # k=9 with 2:8: the last group holds one real element and seven pad zeros; the second kept
    # slot lands on padding (index 1 -> position 9 >= k) and carries a zero.
    w = np.arange(1, 10, dtype=np.int64)
    vals, idx = nm.compress(w, 2, 8)
    np.testing.assert_array_equal(vals, [7, 8, 9, 0])
    np.testing.assert_array_equal(idx, [6, 7, 0, 1])
    np.testing.assert_array_equal(nm.decompress(vals, idx, 2, 8, 9), nm.prune(w, 2, 8))
    with pytest.raises(nm.NmMetadataError, match="beyond k=9 .* must be zero, not 5"):
        nm.decompress(np.array([7, 8, 9, 5]), idx, 2, 8, 9)


# --------------------------------------------------------------------------------------------------
# index metadata: every small case accepted or rejected by the right rule


@pytest.mark.parametrize("n, m", [(1, 2), (2, 4), (3, 4), (2, 5), (3, 6)])
def test_check_indices_exhaustive(n, m):
    for combo in itertools.product(range(-1, m + 1), repeat=n):
        idx = np.array([combo, combo], np.int64)  # two rows, groups along axis 1
        in_range = all(0 <= v < m for v in combo)
        diffs = np.diff(combo)
        if in_range and np.all(diffs > 0):
            out = nm.check_indices(idx, n, m, axis=1)
            assert out.dtype == np.uint8
            np.testing.assert_array_equal(out, idx)
            continue
        with pytest.raises(nm.NmMetadataError) as e:
            nm.check_indices(idx, n, m, axis=1)
        msg = str(e.value)
        assert "\n" not in msg and isinstance(e.value, ConfigError)
        if not in_range:
            assert msg.startswith(f"indices must be in 0..{m - 1}")
        elif diffs[np.argmax(diffs <= 0)] == 0:  # the first out-of-order pair names the rule
            assert msg.startswith("indices within a group must be distinct")
        else:
            assert msg.startswith("indices within a group must be ascending")


def test_check_indices_shape_and_dtype():
    with pytest.raises(nm.NmMetadataError, match="multiple of n=2, not 3"):
        nm.check_indices(np.array([0, 1, 2]), 2, 4)
    with pytest.raises(nm.NmMetadataError, match="integer dtype, not float64"):
        nm.check_indices(np.array([0.0, 1.0]), 2, 4)
    with pytest.raises(nm.NmMetadataError, match=r"ascending, not \[3, 1\] in the group at "
                                                  r"\[2, 1\]"):
        nm.check_indices(np.array([[0, 0], [1, 1], [2, 3], [3, 1]]), 2, 4, axis=0)


def test_decompress_rejects_bad_metadata():
    vals = np.array([1, 2, 3, 4])
    for bad, rule in (([1, 1, 0, 1], "distinct"), ([2, 1, 0, 1], "ascending"),
                      ([0, 4, 0, 1], "in 0..3")):
        with pytest.raises(nm.NmMetadataError, match=rule):
            nm.decompress(vals, np.array(bad), 2, 4, 8)
    with pytest.raises(WorkloadError, match="ceil\\(k/m\\)\\*n = 2 entries"):
        nm.decompress(vals, np.array([0, 1, 0, 1]), 2, 4, 4)
    with pytest.raises(WorkloadError, match="same shape"):
        nm.decompress(vals, np.array([0, 1]), 2, 4, 8)


# --------------------------------------------------------------------------------------------------
# NVIDIA 2:4 chunk codes


def test_nvidia_codes_exhaustive():
    # every 4-bit code: valid exactly when idx0 = code & 3 < idx1 = code >> 2 (PTX ordered metadata)
    valid = []
    for code in range(16):
        lo, hi = code & 3, code >> 2
        if lo < hi:
            valid.append(code)
            np.testing.assert_array_equal(nm.from_nvidia_2_4(np.array([code])), [lo, hi])
        else:
            with pytest.raises(nm.NmMetadataError, match=f"not 0b{code:04b} at \\[0\\]"):
                nm.from_nvidia_2_4(np.array([code]))
    assert tuple(valid) == nm.NVIDIA_2_4_CODES == (0b0100, 0b1000, 0b1001, 0b1100, 0b1101,
                                                   0b1110)
    for bad in (16, 0x44, 255, -1):
        with pytest.raises(nm.NmMetadataError, match="must be one of"):
            nm.from_nvidia_2_4(np.array([4, bad]))
    # the six ascending pairs map onto the six codes
    pairs = list(itertools.combinations(range(4), 2))
    codes = nm.to_nvidia_2_4(np.array(pairs, np.uint8).reshape(-1))
    assert [int(c) for c in codes] == [i0 | i1 << 2 for i0, i1 in pairs]
    assert sorted(codes.tolist()) == sorted(nm.NVIDIA_2_4_CODES)
    with pytest.raises(nm.NmMetadataError, match="ascending"):
        nm.to_nvidia_2_4(np.array([1, 0]))


def test_nvidia_round_trip_matrix(rng):
    # A (M x K) compressed 2:4 along K as for mma.sp: values M x K/2, one code per 4-chunk
    a = rng.integers(-128, 128, (16, 64)).astype(np.int8)
    vals, idx = nm.compress(a, 2, 4, axis=1)
    codes = nm.to_nvidia_2_4(idx)
    assert codes.shape == (16, 16) and set(np.unique(codes)) <= set(nm.NVIDIA_2_4_CODES)
    np.testing.assert_array_equal(nm.from_nvidia_2_4(codes), idx)
    np.testing.assert_array_equal(nm.decompress(vals, nm.from_nvidia_2_4(codes), 2, 4, 64,
                                                axis=1), nm.prune(a, 2, 4, axis=1))
    # along axis 0 too
    codes0 = nm.to_nvidia_2_4(nm.compress(a.T, 2, 4, axis=0)[1], axis=0)
    np.testing.assert_array_equal(codes0, codes.T)


# --------------------------------------------------------------------------------------------------
# file format


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float16, np.float32])
def test_save_load_round_trip(tmp_path, rng, dtype):
    w = (rng.normal(size=(13, 6)) * 20).astype(dtype)
    for (n, m), axis in itertools.product([(2, 4), (2, 8), (1, 3)], (0, 1)):
        vals, idx = nm.compress(w, n, m, axis)
        path = tmp_path / f"w_{n}_{m}_{axis}.npz"
        nm.save(path, vals, idx, n, m, w.shape[axis], axis)
        t = nm.load(path)
        assert (t.n, t.m, t.k, t.axis) == (n, m, w.shape[axis], axis)
        assert t.values.dtype == w.dtype and t.indices.dtype == np.uint8
        np.testing.assert_array_equal(t.values, vals)
        np.testing.assert_array_equal(t.indices, idx)
        np.testing.assert_array_equal(t.dense(), nm.prune(w, n, m, axis))


def test_save_rejects_bad_metadata(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(nm.NmMetadataError, match="ascending"):
        nm.save(path, np.ones(4), np.array([1, 0, 0, 1]), 2, 4, 8)
    assert not path.exists()


def _write_npz(path, **fields):
    with open(path, "wb") as f:
        np.savez(f, **fields)


def _good_fields():
    w = np.arange(16, dtype=np.int8).reshape(8, 2)
    vals, idx = nm.compress(w, 2, 4, 0)
    return dict(format=np.array(nm.FORMAT), version=np.array(1), values=vals, indices=idx,
                n=np.array(2), m=np.array(4), k=np.array(8), axis=np.array(0),
                dtype=np.array(vals.dtype.str))


@pytest.mark.parametrize("change, message", [
    ({"format": np.array("other")}, "field 'format' must be 'tpesim-nm'"),
    ({"version": np.array(2)}, "field 'version' must be 1, not 2"),
    ({"version": np.array([1])}, "field 'version' must be an integer scalar"),
    ({"n": np.array(2.0)}, "field 'n' must be an integer scalar"),
    ({"dtype": np.array("<f4")}, "field 'dtype' (<f4) must name the values' dtype '|i1'"),
    # indices along axis 0 (groups are pairs of rows): column 0 is [1, 0 | 0, 1]
    ({"indices": np.array([[1, 0], [0, 1], [0, 0], [1, 1]], np.uint8)}, "must be ascending"),
    ({"indices": np.array([[0, 0], [1, 1], [0, 1], [0, 1]], np.uint8)}, "must be distinct"),
    ({"indices": np.array([[0, 0], [1, 4], [0, 0], [1, 1]], np.uint8)}, "must be in 0..3"),
    ({"indices": np.array([[0, 1], [0, 1], [0, 1], [0, 1]], np.int64)}, "must be uint8"),
    ({"k": np.array(12)}, "ceil(k/m)*n = 6 entries"),
    ({"m": np.array(2)}, "n:m must satisfy"),
    ({"axis": np.array(2)}, "axis must be in 0..1, not 2"),
])
def test_load_rejects_corrupt(tmp_path, change, message):
    fields = {**_good_fields(), **change}
    path = tmp_path / "x.npz"
    _write_npz(path, **fields)
    with pytest.raises(FileFormatError) as e:
        nm.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path) + ": ") and message in msg and "\n" not in msg


def test_load_rejects_missing_field_and_garbage(tmp_path):
    fields = _good_fields()
    del fields["axis"]
    path = tmp_path / "x.npz"
    _write_npz(path, **fields)
    with pytest.raises(FileFormatError, match="field 'axis' missing"):
        nm.load(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(FileFormatError, match="not a tpesim-nm .npz file"):
        nm.load(junk)
    # a truncated archive
    good = tmp_path / "good.npz"
    _write_npz(good, **_good_fields())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(FileFormatError, match="not a tpesim-nm .npz file"):
        nm.load(cut)
    # a pickled object array is refused, not unpickled
    pick = tmp_path / "pickle.npz"
    with zipfile.ZipFile(pick, "w") as z:
        with z.open("values.npy", "w") as f:
            np.lib.format.write_array(f, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="not a tpesim-nm .npz file"):
        nm.load(pick)


# --------------------------------------------------------------------------------------------------
# bad arguments


def test_bad_arguments():
    w = np.ones((8, 2))
    with pytest.raises(ConfigError, match="n:m must satisfy 1 <= n < m <= 16, not 4:4"):
        nm.prune(w, 4, 4)
    with pytest.raises(ConfigError, match="not 2:17"):
        nm.compress(w, 2, 17)
    with pytest.raises(ConfigTypeError, match="n must be an integer, not 2.0"):
        nm.mask(w, 2.0, 4)
    with pytest.raises(ConfigError, match="axis must be in -2..1 for a 2-D array, not 2"):
        nm.prune(w, 2, 4, axis=2)
    with pytest.raises(WorkloadError, match="w must be finite .* not nan at \\[1, 0\\]"):
        bad = w.copy()
        bad[1, 0] = np.nan
        nm.prune(bad, 2, 4)
    with pytest.raises(WorkloadError, match="integer or float dtype, not bool"):
        nm.prune(np.ones(4, bool), 2, 4)
    with pytest.raises(ConfigError, match="k must be a positive integer, not 0"):
        nm.decompress(np.ones(2), np.array([0, 1]), 2, 4, 0)

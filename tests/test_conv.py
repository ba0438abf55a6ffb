"""conv2d by im2col + GEMM + fold against a direct window-by-window numpy convolution, the layer's
validation messages, and its link to SCALE-Sim's no-padding conv rows."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim.kernels.conv import (
    ConvLayer, conv2d_direct, conv2d_im2col, fold_output, im2col, random_operands, weights_to_b,
)
from tpesim.kernels.scalesim import Layer, scalesim_compute_cycles
from tpesim.errors import ConfigTypeError, TpesimError, WorkloadError
from tpesim.numerics import matmul_wrapped, wrap_array


def _random_layer(rng: np.random.Generator) -> ConvLayer:
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        dh, dw = (int(v) for v in rng.integers(1, 4, 2))
        ph, pw = (int(v) for v in rng.integers(0, 4, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = (int(v) for v in rng.integers(1, 13, 2))
        if dh * (kh - 1) + 1 <= h + 2 * ph and dw * (kw - 1) + 1 <= w + 2 * pw:
            return ConvLayer(h, w, int(rng.integers(1, 6)), int(rng.integers(1, 7)), kh, kw,
                             sh, sw, ph, pw, dh, dw, batch=int(rng.integers(1, 4)))


@pytest.mark.parametrize("case", range(40))
def test_im2col_matches_direct(case, seed):
    rng = np.random.default_rng([seed, case])
    layer = _random_layer(rng)
    x, w = random_operands(layer, rng)
    ref = conv2d_direct(x, w, layer)
    assert ref.shape == layer.output_shape
    np.testing.assert_array_equal(conv2d_im2col(x, w, layer), ref, err_msg=repr(layer))
    a, b = im2col(x, layer), weights_to_b(w, layer)
    m, n, k = layer.gemm_shape()
    assert a.shape == (m, k) and b.shape == (k, n)
    np.testing.assert_array_equal(fold_output(a @ b, layer), ref)


def test_float_operands(seed):
    rng = np.random.default_rng(seed)
    layer = ConvLayer(9, 7, 3, 4, 3, 2, 2, 1, 1, 2, 2, 1, batch=2)
    x = rng.standard_normal(layer.input_shape)
    w = rng.standard_normal(layer.weight_shape)
    np.testing.assert_allclose(conv2d_im2col(x, w, layer), conv2d_direct(x, w, layer),
                               rtol=1e-12, atol=1e-12)


def test_engine_accumulator_wraps_like_the_direct_reference(seed):
    # int8 operands, K = 3*3*64 = 576 taps: a 16-bit accumulator wraps; the result must equal the
    # exact convolution wrapped once (wrap-around is a ring homomorphism).
    rng = np.random.default_rng(seed)
    layer = ConvLayer(6, 6, 64, 5, 3, 3, pad_h=1, pad_w=1)
    x, w = random_operands(layer, rng)
    got = conv2d_im2col(x, w, layer, matmul=lambda a, b: matmul_wrapped(a, b, 16))
    np.testing.assert_array_equal(got, wrap_array(conv2d_direct(x, w, layer), 16))


def test_small_known_answer():
    # 1 image, 3x3 input 1..9, 2x2 all-ones filter, stride 1, no padding: window sums.
    layer = ConvLayer(3, 3, 1, 1, 2, 2)
    x = np.arange(1, 10).reshape(1, 3, 3, 1)
    w = np.ones((2, 2, 1, 1), dtype=np.int64)
    expect = np.array([[12, 16], [24, 28]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(conv2d_direct(x, w, layer), expect)
    np.testing.assert_array_equal(conv2d_im2col(x, w, layer), expect)
    # Padding 1, stride 2, dilation 2: taps at offsets 0 and 2 of the zero-padded 5x5 input.
    layer = ConvLayer(3, 3, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2)
    xp = np.pad(np.arange(1, 10).reshape(3, 3), 1)
    expect = np.array([[xp[i, j] + xp[i, j + 2] + xp[i + 2, j] + xp[i + 2, j + 2]
                        for j in (0, 2)] for i in (0, 2)]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(conv2d_direct(x, w, layer), expect)
    np.testing.assert_array_equal(conv2d_im2col(x, w, layer), expect)


def test_im2col_row_and_column_order():
    # Rows (n, oh, ow), columns (kh, kw, c): NHWC makes B a plain reshape of HWIO weights.
    layer = ConvLayer(3, 3, 2, 1, 2, 2, batch=2)
    x = np.arange(np.prod(layer.input_shape)).reshape(layer.input_shape)
    a = im2col(x, layer)
    row = 1 * 4 + 0 * 2 + 1  # image 1, oh 0, ow 1
    expect = [x[1, 0 + kh, 1 + kw, c] for kh in range(2) for kw in range(2) for c in range(2)]
    assert a[row].tolist() == expect
    w = np.arange(8).reshape(layer.weight_shape)
    assert weights_to_b(w, layer)[:, 0].tolist() == list(range(8))


def test_shapes_and_gemm_shape():
    # ResNet-50 conv1: 224x224x3, 7x7x64, stride 2, pad 3 -> 112x112, batch 8.
    layer = ConvLayer(224, 224, 3, 64, 7, 7, 2, 2, 3, 3, batch=8)
    assert (layer.out_h, layer.out_w) == (112, 112)
    assert layer.gemm_shape() == (8 * 112 * 112, 64, 147)
    assert layer.macs == 8 * 112 * 112 * 64 * 147
    assert layer.output_shape == (8, 112, 112, 64)
    # Dilation 2 makes a 3x3 kernel span 5: 10 -> 6 with no padding.
    assert ConvLayer(10, 10, 1, 1, 3, 3, dilation_h=2, dilation_w=2).out_h == 6


@pytest.mark.parametrize(("kwargs", "exc", "msg"), [
    ({"kernel_h": 0}, WorkloadError, "kernel_h must be a positive integer, not 0"),
    ({"stride_w": -2}, WorkloadError, "stride_w must be a positive integer, not -2"),
    ({"pad_h": -1}, WorkloadError, "pad_h must be an integer >= 0, not -1"),
    ({"batch": 0}, WorkloadError, "batch must be a positive integer, not 0"),
    ({"in_channels": 2.0}, ConfigTypeError, "in_channels must be an integer, not 2.0"),
    ({"dilation_w": True}, ConfigTypeError, "dilation_w must be an integer, not True"),
    ({"kernel_h": 5}, WorkloadError,
     "kernel_h (5) with dilation_h (1) spans 5 pixels, more than the padded input "
     "in_h + 2*pad_h (4)"),
    ({"kernel_w": 2, "dilation_w": 4}, WorkloadError,
     "kernel_w (2) with dilation_w (4) spans 5 pixels, more than the padded input "
     "in_w + 2*pad_w (4)"),
])
def test_validation_messages(kwargs, exc, msg):
    base = {"in_h": 4, "in_w": 4, "in_channels": 2, "out_channels": 3, "kernel_h": 3,
            "kernel_w": 3}
    with pytest.raises(exc) as e:
        ConvLayer(**{**base, **kwargs})
    assert str(e.value) == msg
    assert isinstance(e.value, TpesimError)


def test_operand_shape_errors():
    layer = ConvLayer(4, 4, 2, 3, 3, 3)
    with pytest.raises(WorkloadError) as e:
        im2col(np.zeros((1, 2, 4, 4)), layer)
    assert str(e.value) == ("x must have shape (batch, in_h, in_w, in_channels) = (1, 4, 4, 2) "
                            "(NHWC), not (1, 2, 4, 4)")
    with pytest.raises(WorkloadError, match=r"^w must have shape .* \(HWIO\), not \(3, 2, 3, 3\)$"):
        weights_to_b(np.zeros((3, 2, 3, 3)), layer)
    with pytest.raises(WorkloadError,
                       match=r"^c must have shape \(M, N\) = \(4, 3\), not \(3, 4\)$"):
        fold_output(np.zeros((3, 4)), layer)


@pytest.mark.parametrize("case", range(20))
def test_to_scalesim_preserves_the_gemm(case, seed):
    # Padding folded into the ifmap size, so SCALE-Sim's ceil ofmap equals the true output size.
    rng = np.random.default_rng([seed, case])
    layer = _random_layer(rng)
    s = int(rng.integers(1, 4))
    layer = ConvLayer(layer.in_h + 3, layer.in_w + 3, layer.in_channels, layer.out_channels,
                      layer.kernel_h, layer.kernel_w, s, s, layer.pad_h, layer.pad_w)
    sl = layer.to_scalesim()
    assert isinstance(sl, Layer)
    assert (sl.ofmap_h, sl.ofmap_w) == (layer.out_h, layer.out_w)
    assert (sl.M, sl.N, sl.K) == layer.gemm_shape()


def test_scalesim_rows_without_padding_are_the_same_gemm():
    # With no padding and a stride that divides (in - kernel), a SCALE-Sim row is this layer.
    layer = ConvLayer(56, 56, 64, 64, 3, 3)
    assert Layer("c", 56, 56, 3, 3, 64, 64, 1).M == layer.gemm_shape()[0] == 2916
    assert scalesim_compute_cycles(*layer.gemm_shape(), 32, 32, "os") == 117_391


def test_to_scalesim_limits():
    with pytest.raises(WorkloadError, match="batch and dilation must be 1, not 2 and \\(1, 1\\)$"):
        ConvLayer(8, 8, 1, 1, 3, 3, batch=2, name="b").to_scalesim()
    with pytest.raises(WorkloadError, match=r"stride_h \(1\) must equal stride_w \(2\)$"):
        ConvLayer(8, 8, 1, 1, 3, 3, 1, 2).to_scalesim()

"""2-D convolution lowered to a GEMM by im2col (padding, stride, dilation, batch), and its golden.

Notes and derivations: docs/internals.md, section `kernels/conv.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tpesim.errors import ConfigTypeError, WorkloadError
from tpesim.tile_stream import MAX_GEMM_DIM, MAX_GEMM_MACS

__all__ = ["ConvLayer", "im2col", "weights_to_b", "fold_output", "conv2d_im2col", "conv2d_direct",
           "random_operands"]


def _check(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigTypeError(f"{name} must be an integer, not {value!r}")
    if value < lo:
        rule = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise WorkloadError(f"{name} must be {rule}, not {value!r}")
    if value > MAX_GEMM_DIM:
        raise WorkloadError(f"{name} must be at most {MAX_GEMM_DIM} (2**31 - 1), not {value!r}")
    return int(value)


@dataclass(frozen=True)
class ConvLayer:
    """One conv2d layer: NHWC input, HWIO weights, symmetric zero padding.

    Parameters
    ----------
    in_h, in_w, in_channels : int
        Input height, width and channels C.
    out_channels : int
        Number of filters F (the GEMM's N).
    kernel_h, kernel_w : int
        Filter height and width.
    stride_h, stride_w : int
        Step between windows (default 1).
    pad_h, pad_w : int
        Zeros added on *each* side (top and bottom, left and right); default 0.
    dilation_h, dilation_w : int
        Spacing between filter taps (default 1); a tap spans dilation*(kernel-1)+1 input pixels.
    batch : int
        Images per call (default 1); they stack along the GEMM's M.
    name : str
        For reports.

    Attributes
    ----------
    out_h, out_w : int
        floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1, as in PyTorch and TensorFlow.
    """

    in_h: int
    in_w: int
    in_channels: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    batch: int = 1
    name: str = "conv"

    def __post_init__(self):
        for f in ("in_h", "in_w", "in_channels", "out_channels", "kernel_h", "kernel_w",
                  "stride_h", "stride_w", "dilation_h", "dilation_w", "batch"):
            object.__setattr__(self, f, _check(f, getattr(self, f), 1))
        for f in ("pad_h", "pad_w"):
            object.__setattr__(self, f, _check(f, getattr(self, f), 0))
        if not isinstance(self.name, str):
            raise ConfigTypeError(f"name must be a string, not {self.name!r}")
        for ax, size in (("h", self.in_h), ("w", self.in_w)):
            k, d, p = (getattr(self, f"{f}_{ax}") for f in ("kernel", "dilation", "pad"))
            span = d * (k - 1) + 1
            if span > size + 2 * p:
                raise WorkloadError(
                    f"kernel_{ax} ({k}) with dilation_{ax} ({d}) spans {span} pixels, more than "
                    f"the padded input in_{ax} + 2*pad_{ax} ({size + 2 * p})")
        m = self.batch * self.out_h * self.out_w
        k = self.kernel_h * self.kernel_w * self.in_channels
        for what, v in ((f"batch*out_h*out_w = {self.batch}*{self.out_h}*{self.out_w}", m),
                        (f"kernel_h*kernel_w*in_channels = {self.kernel_h}*{self.kernel_w}*"
                         f"{self.in_channels}", k)):
            if v > MAX_GEMM_DIM:
                raise WorkloadError(f"the im2col GEMM dimension {what} must be at most "
                                    f"{MAX_GEMM_DIM} (2**31 - 1), not {v}")
        if m * k * self.out_channels > MAX_GEMM_MACS:
            raise WorkloadError(f"the im2col GEMM's m*n*k (batch*out_h*out_w * out_channels * "
                                f"kernel_h*kernel_w*in_channels) must be at most 2**52, not "
                                f"{m}*{self.out_channels}*{k}")

    @property
    def out_h(self) -> int:
        return (self.in_h + 2 * self.pad_h - self.dilation_h * (self.kernel_h - 1) - 1) \
            // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + 2 * self.pad_w - self.dilation_w * (self.kernel_w - 1) - 1) \
            // self.stride_w + 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_h, self.in_w, self.in_channels)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.kernel_h, self.kernel_w, self.in_channels, self.out_channels)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_h, self.out_w, self.out_channels)

    def gemm_shape(self) -> tuple[int, int, int]:
        """(M, N, K) of the lowered GEMM: A is M x K, B is K x N.

        M = batch * out_h * out_w, N = out_channels, K = kernel_h * kernel_w * in_channels.
        """
        return (self.batch * self.out_h * self.out_w, self.out_channels,
                self.kernel_h * self.kernel_w * self.in_channels)

    @property
    def macs(self) -> int:
        m, n, k = self.gemm_shape()
        return m * n * k

    def to_scalesim(self):
        """The SCALE-Sim topology layer with the same GEMM: padding folded into the ifmap size.

        SCALE-Sim has no padding, batch or dilation, one stride, and its ofmap is
        ceil((ifmap - filter + stride) / stride). Listing the input extent the windows actually
        read, (out - 1) * stride + kernel, makes its ofmap (and so M) equal ours exactly.
        """
        from .scalesim import Layer

        if self.batch != 1 or self.dilation_h != 1 or self.dilation_w != 1:
            raise WorkloadError(f"{self.name}: SCALE-Sim has no batch or dilation; batch and "
                                f"dilation must be 1, not {self.batch} and "
                                f"({self.dilation_h}, {self.dilation_w})")
        if self.stride_h != self.stride_w:
            raise WorkloadError(f"{self.name}: SCALE-Sim has one stride for H and W; stride_h "
                                f"({self.stride_h}) must equal stride_w ({self.stride_w})")
        s = self.stride_h
        return Layer(self.name, (self.out_h - 1) * s + self.kernel_h,
                     (self.out_w - 1) * s + self.kernel_w, self.kernel_h, self.kernel_w,
                     self.in_channels, self.out_channels, s)


def _as_input(x: np.ndarray, layer: ConvLayer) -> np.ndarray:
    x = np.asarray(x)
    if x.shape != layer.input_shape:
        raise WorkloadError(f"x must have shape (batch, in_h, in_w, in_channels) = "
                            f"{layer.input_shape} (NHWC), not {x.shape}")
    return x


def _as_weights(w: np.ndarray, layer: ConvLayer) -> np.ndarray:
    w = np.asarray(w)
    if w.shape != layer.weight_shape:
        raise WorkloadError(f"w must have shape (kernel_h, kernel_w, in_channels, out_channels) = "
                            f"{layer.weight_shape} (HWIO), not {w.shape}")
    return w


def _padded(x: np.ndarray, layer: ConvLayer) -> np.ndarray:
    p = ((0, 0), (layer.pad_h, layer.pad_h), (layer.pad_w, layer.pad_w), (0, 0))
    return np.pad(x, p)


def _acc_dtype(*arrays: np.ndarray) -> np.dtype:
    if all(np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_ for a in arrays):
        return np.dtype(np.int64)
    return np.result_type(np.float64, *arrays)


def im2col(x: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """The GEMM's A operand (M x K): one row per output pixel (n, oh, ow), columns (kh, kw, c)."""
    xp = _padded(_as_input(x, layer), layer)
    oh, ow = layer.out_h, layer.out_w
    taps = []
    for kh in range(layer.kernel_h):
        h0 = kh * layer.dilation_h
        for kw in range(layer.kernel_w):
            w0 = kw * layer.dilation_w
            taps.append(xp[:, h0:h0 + (oh - 1) * layer.stride_h + 1:layer.stride_h,
                           w0:w0 + (ow - 1) * layer.stride_w + 1:layer.stride_w, :])
    m, _, k = layer.gemm_shape()
    # (taps, n, oh, ow, c) -> (n, oh, ow, taps, c): column index = tap * C + c = (kh, kw, c).
    return np.stack(taps, axis=3).reshape(m, k)


def weights_to_b(w: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """The GEMM's B operand (K x N): HWIO weights with rows (kh, kw, c), a plain reshape."""
    _, n, k = layer.gemm_shape()
    return _as_weights(w, layer).reshape(k, n)


def fold_output(c: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """Fold the GEMM result C (M x N) back to the NHWC output tensor."""
    c = np.asarray(c)
    m, n, _ = layer.gemm_shape()
    if c.shape != (m, n):
        raise WorkloadError(f"c must have shape (M, N) = {(m, n)}, not {c.shape}")
    return c.reshape(layer.output_shape)


def conv2d_im2col(x: np.ndarray, w: np.ndarray, layer: ConvLayer,
                  matmul: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                  ) -> np.ndarray:
    """conv2d as im2col, a GEMM and a fold. `matmul(A, B)` defaults to exact numpy (int64 for ints).

    Pass e.g. ``lambda a, b: sim.numerics.matmul_wrapped(a, b, 32)`` for an engine's accumulator.
    """
    a = im2col(x, layer)
    b = weights_to_b(w, layer)
    if matmul is None:
        acc = _acc_dtype(a, b)
        c = a.astype(acc) @ b.astype(acc)
    else:
        c = matmul(a, b)
    return fold_output(c, layer)


def conv2d_direct(x: np.ndarray, w: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """Reference conv2d, output pixel by output pixel: each window of the padded input, dilated,
    contracted with the weights. Exact int64 for integer operands. NHWC in, NHWC out."""
    x = _as_input(x, layer)
    w = _as_weights(w, layer)
    acc = _acc_dtype(x, w)
    xp = _padded(x, layer).astype(acc)
    wa = w.astype(acc)
    out = np.zeros(layer.output_shape, dtype=acc)
    dh, dw = layer.dilation_h, layer.dilation_w
    span_h = dh * (layer.kernel_h - 1) + 1
    span_w = dw * (layer.kernel_w - 1) + 1
    for i in range(layer.out_h):
        top = i * layer.stride_h
        for j in range(layer.out_w):
            left = j * layer.stride_w
            window = xp[:, top:top + span_h:dh, left:left + span_w:dw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwcf->nf", window, wa)
    return out


def random_operands(layer: ConvLayer, rng: np.random.Generator, lo: int = -128,
                    hi: int = 127, w_range: tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random integer x (NHWC) in [lo, hi] and w (HWIO) in `w_range` (default the same),
    int64: an engine's B operand (the weights) may be narrower than its A."""
    w_lo, w_hi = (lo, hi) if w_range is None else w_range
    x = rng.integers(lo, hi, size=layer.input_shape, endpoint=True, dtype=np.int64)
    w = rng.integers(w_lo, w_hi, size=layer.weight_shape, endpoint=True, dtype=np.int64)
    return x, w

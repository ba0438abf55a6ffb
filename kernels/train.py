"""BDWP N:M sparse training (SAT, engines.md §4.2) of an MLP and a small CNN on sklearn's digits,
every FF/BP/WG GEMM in the N:M engine's int8 arithmetic, with the engine's cycles per iteration.

Method, the iteration's cycle model (the dataflow switches) and results: docs/training.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tpesim import nm
from tpesim.config import check_bool, check_choice, check_int
from tpesim.errors import ConfigError, ConfigTypeError, WorkloadError
from tpesim.kernels.conv import ConvLayer, im2col

__all__ = ["MODELS", "PASSES", "TrainConfig", "Dataset", "load_dataset", "quantize", "int_gemm",
           "EngineArithmetic", "Linear", "Conv", "build_model", "TrainResult", "train",
           "GemmShape", "gemm_shapes", "IterationCycles", "iteration_cycles", "col2im", "Network"]

MODELS = ("mlp", "cnn")
PASSES = ("ff", "bp", "wg")
# The digits split: fixed for every run (a different training seed changes the initial weights and
# the batch order, never the test set), stratified, a quarter held out.
SPLIT_SEED = 0
TEST_FRACTION = 0.25
QMAX = 127  # symmetric int8: -127..127 (the engine takes -128 too; symmetric keeps -x exact)


# --------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.

    Parameters
    ----------
    model : {"mlp", "cnn"}
        MLP 64-256-128-10, or CNN conv3x3(1->8) - conv3x3/2(8->16) - fc(256->10).
    sparsity : str
        "dense" or "N:M" (tpesim.nm.parse_sparsity): the BDWP pruning of FF and BP weights.
    epochs, batch : int
        Passes over the training set; batch size (the last partial batch of an epoch is dropped,
        so every iteration has the same GEMM shapes and cycles).
    lr, momentum, weight_decay : float
        SGD with momentum on the float master weights (host); the learning rate follows a cosine
        from `lr` at the first step to 0 after the last.
    dense_first : bool
        Keep the first layer (the one reading the pixels) dense in every pass (N:M training often
        does); False (default, BDWP as defined) prunes every layer.
    seed : int
        Initial weights and batch order (the train/test split is fixed, SPLIT_SEED).
    mask_interval : int
        Recompute mask_f / mask_b from |W| every this many steps (1 = every step).
    train_subset : int or None
        Use only the first this-many training samples (fast tests); None = all.
    pre_generate, interleave, offline_schedule : bool
        The SAT dataflow switches of the cycle model (`iteration_cycles`, docs/training.md).
    """

    model: str = "mlp"
    sparsity: str = "2:8"
    epochs: int = 30
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    dense_first: bool = False
    seed: int = 0
    mask_interval: int = 1
    train_subset: int | None = None
    pre_generate: bool = True
    interleave: bool = True
    offline_schedule: bool = True

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        nm.parse_sparsity(self.sparsity)
        check_int("epochs", self.epochs)
        check_int("batch", self.batch)
        check_int("mask_interval", self.mask_interval)
        check_int("seed", self.seed, lo=0)
        if self.train_subset is not None:
            check_int("train_subset", self.train_subset, lo=self.batch,
                      rule=f"an integer >= batch ({self.batch})")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigTypeError(f"{name} must be a number, not {v!r}")
            if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                rule = "a positive number" if name == "lr" else "a non-negative number"
                raise ConfigError(f"{name} must be {rule}, not {v!r}")
        for name in ("dense_first", "pre_generate", "interleave", "offline_schedule"):
            check_bool(name, getattr(self, name))

    @property
    def nm(self) -> tuple[int, int] | None:
        return nm.parse_sparsity(self.sparsity)


# --------------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n, 8, 8, 1) float in [0, 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_dataset(train_subset: int | None = None) -> Dataset:
    """scikit-learn's digits (1,797 8x8 images, shipped inside the package: no download), pixel
    values 0..16 scaled to [0, 1], split SPLIT_SEED-stratified into 75 % train and 25 % test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float64) / 16.0)[..., None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=TEST_FRACTION,
                                          random_state=SPLIT_SEED, stratify=d.target)
    if train_subset is not None:
        xtr, ytr = xtr[:train_subset], ytr[:train_subset]
    return Dataset(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))


# --------------------------------------------------------------------------------------------------
# the engine's arithmetic


def quantize(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric int8: q = round(x / s), s = max|x| / 127 (s = 1 for an all-zero x)."""
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    s = amax / QMAX if amax > 0 else 1.0
    q = np.clip(np.rint(x / s), -QMAX, QMAX).astype(np.int8)
    return q, s


def int_gemm(qa: np.ndarray, qb: np.ndarray, acc_bits: int) -> np.ndarray:
    """Exact integer A @ B of int8 operands, computed by float64 BLAS.

    Exact because every partial sum is an integer of magnitude <= K * 128 * 128 < 2**53 (float64
    holds every such integer); and no accumulator of `acc_bits` wraps while K * 128**2 < 2**(acc-1),
    which is checked, so the result equals the engine's reference (wrapped to acc_bits) exactly
    (tests/test_train.py compares it with `reference` on GEMMs sampled from training).
    """
    k = qa.shape[1]
    if k * 128 * 128 >= 2 ** (acc_bits - 1) or k * 128 * 128 >= 2 ** 53:
        raise WorkloadError(f"a GEMM with K={k} could overflow the {acc_bits}-bit accumulator; "
                            f"K must be below {2 ** (acc_bits - 1) // (128 * 128)}")
    return (qa.astype(np.float64) @ qb.astype(np.float64)).astype(np.int64)


class EngineArithmetic:
    """FF/BP/WG GEMMs as the N:M engine computes them: both operands quantised to int8 per tensor,
    the exact integer product (`int_gemm`, equal to the engine's `reference`), dequantised.

    B must already be pruned along K in the sparse modes (BDWP's masks come from the float master
    |W|); the engine's own pruning of an already-pruned B keeps it unchanged (at most N non-zeros
    per M-group survive quantisation). `record` keeps the first `record_limit` GEMMs' integer
    operands and results per pass, for the equality test against the engine's reference.
    """

    def __init__(self, engine_cfg, *, record_limit: int = 0):
        self.cfg = engine_cfg
        self.record_limit = record_limit
        self.records: dict[str, list] = {p: [] for p in PASSES}
        self.calls = dict.fromkeys(PASSES, 0)
        self.macs = dict.fromkeys(PASSES, 0)

    def gemm(self, mode: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        qa, sa = quantize(a)
        qb, sb = quantize(b)
        c = int_gemm(qa, qb, self.cfg.acc_bits)
        self.calls[mode] += 1
        self.macs[mode] += qa.shape[0] * qa.shape[1] * qb.shape[1]
        if len(self.records[mode]) < self.record_limit:
            self.records[mode].append((qa, qb, c))
        return c * (sa * sb)


# --------------------------------------------------------------------------------------------------
# layers: every weight is a GEMM B operand (K_in x Cout); FF y = A @ B, BP dA = dY @ B^T,
# WG dB = A^T @ dY, where A is the layer's lowered input (the input itself, or im2col for a conv).


def col2im(cols: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """The adjoint of `im2col`: scatter-add a (M x K) column matrix back onto the NHWC input."""
    b, oh, ow = layer.batch, layer.out_h, layer.out_w
    c = layer.in_channels
    t = cols.reshape(b, oh, ow, layer.kernel_h * layer.kernel_w, c)
    xp = np.zeros((b, layer.in_h + 2 * layer.pad_h, layer.in_w + 2 * layer.pad_w, c), cols.dtype)
    tap = 0
    for kh in range(layer.kernel_h):
        h0 = kh * layer.dilation_h
        for kw in range(layer.kernel_w):
            w0 = kw * layer.dilation_w
            xp[:, h0:h0 + (oh - 1) * layer.stride_h + 1:layer.stride_h,
               w0:w0 + (ow - 1) * layer.stride_w + 1:layer.stride_w, :] += t[:, :, :, tap, :]
            tap += 1
    return xp[:, layer.pad_h:layer.pad_h + layer.in_h, layer.pad_w:layer.pad_w + layer.in_w, :]


@dataclass
class Linear:
    cin: int
    cout: int
    name: str = "fc"

    @property
    def k(self) -> int:
        return self.cin

    def lower(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def rows(self, batch: int) -> int:
        return batch

    def fold(self, c: np.ndarray, batch: int) -> np.ndarray:
        return c

    def unlower(self, da: np.ndarray, x_shape: tuple) -> np.ndarray:
        return da.reshape(x_shape)


@dataclass
class Conv:
    geometry: ConvLayer  # batch 1: the per-image geometry
    name: str = "conv"

    @property
    def cin(self) -> int:
        return self.geometry.in_channels

    @property
    def cout(self) -> int:
        return self.geometry.out_channels

    @property
    def k(self) -> int:
        g = self.geometry
        return g.kernel_h * g.kernel_w * g.in_channels

    def _at(self, batch: int) -> ConvLayer:
        return dataclasses.replace(self.geometry, batch=batch)

    def lower(self, x: np.ndarray) -> np.ndarray:
        return im2col(x, self._at(x.shape[0]))

    def rows(self, batch: int) -> int:
        return batch * self.geometry.out_h * self.geometry.out_w

    def fold(self, c: np.ndarray, batch: int) -> np.ndarray:
        g = self.geometry
        return c.reshape(batch, g.out_h, g.out_w, g.out_channels)

    def unlower(self, da: np.ndarray, x_shape: tuple) -> np.ndarray:
        return col2im(da, self._at(x_shape[0]))


def build_model(name: str) -> list:
    """The layers of "mlp" (64-256-128-10) or "cnn" (8x8x1 -> conv 3x3 pad 1 -> 8x8x8 ->
    conv 3x3 stride 2 pad 1 -> 4x4x16 -> fc 256 -> 10); ReLU between layers."""
    check_choice("model", name, MODELS)
    if name == "mlp":
        return [Linear(64, 256, "fc1"), Linear(256, 128, "fc2"), Linear(128, 10, "fc3")]
    c1 = ConvLayer(in_h=8, in_w=8, in_channels=1, out_channels=8, kernel_h=3, kernel_w=3,
                   pad_h=1, pad_w=1, name="conv1")
    c2 = ConvLayer(in_h=8, in_w=8, in_channels=8, out_channels=16, kernel_h=3, kernel_w=3,
                   stride_h=2, stride_w=2, pad_h=1, pad_w=1, name="conv2")
    return [Conv(c1, "conv1"), Conv(c2, "conv2"), Linear(4 * 4 * 16, 10, "fc")]


# --------------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class TrainResult:
    """Outcome of `train`: test accuracy after every epoch (the last is the result), the final
    training loss, the mask densities actually trained with, and the arithmetic's call counts."""

    accuracy: float
    epoch_accuracy: tuple[float, ...]
    loss: float
    steps: int
    density_f: float
    density_b: float
    gemm_calls: dict
    arithmetic: EngineArithmetic = field(repr=False, compare=False)


def _softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean())
    p[np.arange(n), y] -= 1.0
    return loss, p / n


class Network:
    """Float master weights (B form, K_in x Cout) and biases; BDWP masks; the BDWP step."""

    def __init__(self, layers: list, cfg: TrainConfig, arith: EngineArithmetic,
                 rng: np.random.Generator):
        self.layers = layers
        self.cfg = cfg
        self.arith = arith
        self.nm = cfg.nm
        self.w = [rng.normal(0.0, math.sqrt(2.0 / ly.k), (ly.k, ly.cout)) for ly in layers]
        self.bias = [np.zeros(ly.cout) for ly in layers]
        self.vel_w = [np.zeros_like(w) for w in self.w]
        self.vel_b = [np.zeros_like(b) for b in self.bias]
        self.mask_f: list = [None] * len(layers)
        self.mask_b: list = [None] * len(layers)
        self.steps = 0

    def refresh_masks(self) -> None:
        if self.nm is None:
            return
        n, m = self.nm
        for i, w in enumerate(self.w):
            if i == 0 and self.cfg.dense_first:
                self.mask_f[i] = self.mask_b[i] = np.ones(w.shape, bool)
                continue
            self.mask_f[i] = nm.mask(w, n, m, axis=0)  # along Cin (the K of FF)
            self.mask_b[i] = nm.mask(w, n, m, axis=1)  # along Cout (the K of BP)

    def _wf(self, i: int) -> np.ndarray:
        return self.w[i] if self.mask_f[i] is None else np.where(self.mask_f[i], self.w[i], 0.0)

    def _wb(self, i: int) -> np.ndarray:
        return self.w[i] if self.mask_b[i] is None else np.where(self.mask_b[i], self.w[i], 0.0)

    def forward(self, x: np.ndarray, keep: bool) -> tuple[np.ndarray, list]:
        saved = []
        h = x
        last = len(self.layers) - 1
        for i, ly in enumerate(self.layers):
            a = ly.lower(h)
            c = self.arith.gemm("ff", a, self._wf(i)) + self.bias[i]
            y = ly.fold(c, h.shape[0])
            if keep:
                saved.append((h.shape, a, y))
            h = np.maximum(y, 0.0) if i < last else y
        return h, saved

    def gradients(self, x: np.ndarray, yt: np.ndarray) -> tuple[float, list, list]:
        """(loss, dW per layer, db per layer) of one batch: FF with W_f, BP with W_b (none for
        the first layer), WG dense; the masks as they are."""
        logits, saved = self.forward(x, keep=True)
        loss, dy = _softmax_xent(logits, yt)
        dws: list = [None] * len(self.layers)
        dbs: list = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            ly = self.layers[i]
            x_shape, a, y = saved[i]
            if i < len(self.layers) - 1:
                dy = dy * (y > 0)
            dy2 = dy.reshape(-1, ly.cout)
            dws[i] = self.arith.gemm("wg", a.T, dy2)
            dbs[i] = dy2.sum(axis=0)
            if i > 0:  # the first layer's input gradient is never used: no BP GEMM
                dy = ly.unlower(self.arith.gemm("bp", dy2, self._wb(i).T), x_shape)
        return loss, dws, dbs

    def step(self, x: np.ndarray, yt: np.ndarray, lr: float) -> float:
        """One BDWP step: masks refreshed (every mask_interval steps), gradients, SGD update of
        the dense master weights."""
        if self.nm is not None and self.steps % self.cfg.mask_interval == 0:
            self.refresh_masks()
        loss, dws, dbs = self.gradients(x, yt)
        cfg = self.cfg
        for i in range(len(self.layers)):
            self.vel_w[i] = cfg.momentum * self.vel_w[i] + dws[i] + cfg.weight_decay * self.w[i]
            self.vel_b[i] = cfg.momentum * self.vel_b[i] + dbs[i]
            self.w[i] -= lr * self.vel_w[i]
            self.bias[i] -= lr * self.vel_b[i]
        self.steps += 1
        return loss

    def accuracy(self, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
        if self.nm is not None and self.mask_f[0] is None:
            self.refresh_masks()
        hits = 0
        for s in range(0, len(x), batch):
            logits, _ = self.forward(x[s:s + batch], keep=False)
            hits += int((logits.argmax(axis=1) == y[s:s + batch]).sum())
        return hits / len(x)


def train(cfg: TrainConfig, engine_cfg=None, *, data: Dataset | None = None,
          on_step: Callable[[int, int], None] | None = None, record_limit: int = 0) -> TrainResult:
    """Train `cfg.model` with BDWP at `cfg.sparsity`, every GEMM in the engine's arithmetic.

    `engine_cfg` is the N:M engine config (default NmSparseConfig with cfg.sparsity); its mode is
    set per pass. `on_step(done, total)` is called after every step (progress bars).
    """
    from threadpoolctl import threadpool_limits

    engine_cfg = _engine_for(cfg, engine_cfg)
    data = load_dataset(cfg.train_subset) if data is None else data
    # Single-threaded BLAS: these GEMMs are small, and a thread pool on a shared machine spends
    # more time waiting for its threads than computing (2.5x slower measured on 2 busy cores).
    with threadpool_limits(1):
        return _train(cfg, engine_cfg, data, on_step, record_limit)


def _train(cfg, engine_cfg, data, on_step, record_limit) -> TrainResult:
    if len(data.x_train) < cfg.batch:
        raise WorkloadError(f"batch ({cfg.batch}) must not exceed the training set "
                            f"({len(data.x_train)} samples)")
    rng = np.random.default_rng(cfg.seed)
    arith = EngineArithmetic(engine_cfg, record_limit=record_limit)
    net = Network(build_model(cfg.model), cfg, arith, rng)
    per_epoch = len(data.x_train) // cfg.batch
    total = cfg.epochs * per_epoch
    accs, loss = [], float("nan")
    for _ in range(cfg.epochs):
        order = rng.permutation(len(data.x_train))
        for j in range(per_epoch):
            idx = order[j * cfg.batch:(j + 1) * cfg.batch]
            lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * net.steps / total))
            loss = net.step(data.x_train[idx], data.y_train[idx], lr)
            if on_step is not None:
                on_step(net.steps, total)
        accs.append(net.accuracy(data.x_test, data.y_test))
    if net.nm is not None:
        net.refresh_masks()  # the masks of the final weights (what FF/BP would use next)
        dens_f = float(np.mean([m.mean() for m in net.mask_f]))
        dens_b = float(np.mean([m.mean() for m in net.mask_b]))
    else:
        dens_f = dens_b = 1.0
    return TrainResult(accs[-1], tuple(accs), loss, net.steps, dens_f, dens_b, dict(arith.calls),
                       arith)


def _engine_for(cfg: TrainConfig, engine_cfg):
    from tpesim.engines.nm_sparse import NmSparseConfig

    if engine_cfg is None:
        return NmSparseConfig(sparsity=cfg.sparsity)
    if not all(hasattr(engine_cfg, f) for f in ("sparsity", "mode", "nm")):
        raise ConfigTypeError(f"engine_cfg must be an engine config with N:M training modes "
                              f"(fields sparsity and mode: BDWP needs ff/bp/wg), not "
                              f"{type(engine_cfg).__name__}")
    if engine_cfg.nm != cfg.nm and engine_cfg.nm is not None and cfg.nm is not None:
        raise ConfigError(f"sparsity of the training ({cfg.sparsity}) must match the engine's "
                          f"({engine_cfg.sparsity})")
    return engine_cfg


# --------------------------------------------------------------------------------------------------
# cycles of one training iteration


@dataclass(frozen=True)
class GemmShape:
    """One GEMM of an iteration: C (m x n) = A (m x k) @ B (k x n) of `layer` in `mode`, and the
    weight matrix the engine compresses for it (B, k x n) in the sparse modes."""

    layer: int
    name: str
    mode: str
    m: int
    n: int
    k: int


def gemm_shapes(model: str, batch: int) -> list[GemmShape]:
    """Every GEMM of one iteration, in program order: FF of each layer, then per layer from the
    last: BP (not for the first layer, whose input gradient is unused) and WG."""
    layers = build_model(model)
    out = []
    for i, ly in enumerate(layers):
        out.append(GemmShape(i, ly.name, "ff", ly.rows(batch), ly.cout, ly.k))
    for i in range(len(layers) - 1, -1, -1):
        ly = layers[i]
        if i > 0:
            out.append(GemmShape(i, ly.name, "bp", ly.rows(batch), ly.k, ly.cout))
        out.append(GemmShape(i, ly.name, "wg", ly.k, ly.cout, ly.rows(batch)))
    return out


@dataclass(frozen=True)
class IterationCycles:
    """Engine cycles of one training iteration.

    Attributes
    ----------
    cycles : int
        Steady-state cycles per iteration (the schedule's period).
    ff_cycles, bp_cycles, wg_cycles : int
        Sums of the GEMMs' tile-level cycles (`time_gemm`) per pass.
    compress_cycles : int
        Compressor cycles on the critical path (exposed): cycles - ff - bp - wg.
    compressor_busy_cycles : int
        All compressor work of an iteration (hidden or not).
    per_gemm : tuple
        (GemmShape, gemm cycles, compressor cycles of its weight) per GEMM.
    array_order, compressor_order : tuple of str
        The job orders the schedule used.
    """

    cycles: int
    ff_cycles: int
    bp_cycles: int
    wg_cycles: int
    compress_cycles: int
    compressor_busy_cycles: int
    per_gemm: tuple
    array_order: tuple
    compressor_order: tuple

    def to_dict(self) -> dict:
        return {"cycles_per_iteration": self.cycles, "ff_cycles": self.ff_cycles,
                "bp_cycles": self.bp_cycles, "wg_cycles": self.wg_cycles,
                "compress_cycles": self.compress_cycles,
                "compressor_busy_cycles": self.compressor_busy_cycles,
                "per_gemm": [{"layer": s.name, "mode": s.mode, "m": s.m, "n": s.n, "k": s.k,
                              "gemm_cycles": g, "compress_cycles": c}
                             for s, g, c in self.per_gemm]}


def _weight_compress_cycles(cfg, shape: GemmShape, interleave: bool) -> int:
    """Compressor cycles to produce this GEMM's compressed B (k x n, groups along k).

    The dense master W is stored Cin-major (FF's groups, along Cin, are contiguous words). With
    interleave mapping the FF and BP streams are both laid out contiguously, so both compress at
    the engine's rate (`compress_cycles`). Without it, BP's groups (along Cout) are strided: each
    word read delivers one element of a group, so the compressors fill at 1/M of the rate
    (kernel-modelled; the engine's compressor itself is unchanged)."""
    from tpesim.engines.nm_sparse import compress_cycles

    if not cfg.sparse:  # WG, a dense layer, a dense engine: nothing to compress
        return 0
    c = compress_cycles(cfg, shape.k, shape.n)
    if shape.mode == "bp" and not interleave and c:
        from tpesim.engines.nm_sparse import COMPRESSOR_LATENCY

        c = (c - COMPRESSOR_LATENCY) * cfg.group + COMPRESSOR_LATENCY
    return c


def _inline_compress_cycles(cfg, shape: GemmShape, interleave: bool, gemm_cycles, g: int) -> int:
    """Cycles that compressing on the fly adds to this GEMM: the engine built with its compressors
    in front of the banks (`load="dense"`, docs/nm_sparse.md) runs it in `gemm_cycles(cfg with
    load "dense")`, against `g` with compressed loads; the difference is the cost of the in-line
    path (its register on the load path, one cycle per fold when the loads are exposed, and the
    dense block's DRAM traffic when memory-bound). Without interleave mapping, BP's strided
    groups take M word reads per load beat: M - 1 more cycles per load beat (kernel-modelled,
    all exposed)."""
    g_inline = int(gemm_cycles(dataclasses.replace(cfg, load="dense"), shape.m, shape.n, shape.k))
    c = g_inline - g
    if shape.mode == "bp" and not interleave and cfg.sparse:
        from tpesim.tile_nm_sparse import NmSparseTiming

        beats = NmSparseTiming(cfg).gemm_stream(shape.m, shape.n, shape.k).ntiles * cfg.rows
        c += (cfg.group - 1) * beats
    return c


def _simulate(jobs: dict, array_order: list, comp_order: list, iterations: int) -> list[int]:
    """In-order issue on two resources (array, compressor); a job starts when its resource is
    free and its dependencies (job, iteration offset) have finished; returns each iteration's
    finish cycle. Dependencies on iteration -1 are satisfied at cycle 0 (weights compressed
    before training starts)."""
    finish: dict = {}
    free = {"array": 0, "comp": 0}
    ends = []
    for it in range(iterations):
        queues = {"array": list(array_order), "comp": list(comp_order)}
        while queues["array"] or queues["comp"]:
            progressed = False
            for res in ("array", "comp"):
                while queues[res]:
                    name = queues[res][0]
                    deps = jobs[name][2]
                    if any((d, it + off) not in finish and it + off >= 0 for d, off in deps):
                        break
                    start = max([free[res]] + [finish[(d, it + off)] for d, off in deps
                                               if it + off >= 0])
                    finish[(name, it)] = start + jobs[name][1]
                    free[res] = finish[(name, it)]
                    queues[res].pop(0)
                    progressed = True
            if not progressed:
                raise RuntimeError(f"schedule deadlock: array {queues['array']}, compressor "
                                   f"{queues['comp']}")
        ends.append(max(finish[(n, it)] for n in jobs))
    return ends


def _period(jobs, array_order, comp_order) -> int:
    ends = _simulate(jobs, array_order, comp_order, 4)
    return ends[-1] - ends[-2]


def _backward_orders(shapes: list[GemmShape]) -> list[list[str]]:
    """Every order of the backward GEMMs that respects the data dependencies: BP_l and WG_l need
    dY_l, produced by BP_{l+1} (the loss for the last layer)."""
    back = [s for s in shapes if s.mode != "ff"]
    names = [f"{s.mode}{s.layer}" for s in back]
    last = max(s.layer for s in shapes)

    def ok(order):
        done = set()
        for nm_ in order:
            layer = int(nm_[2:])
            if layer < last and f"bp{layer + 1}" not in done:
                return False
            done.add(nm_)
        return True

    return [list(p) for p in itertools.permutations(names) if ok(p)]


def iteration_cycles(engine_cfg, model: str, batch: int, *, pre_generate: bool = True,
                     interleave: bool = True, offline_schedule: bool = True,
                     dense_first: bool = False, dense: bool = False,
                     gemm_cycles: Callable | None = None) -> IterationCycles:
    """Steady-state engine cycles of one BDWP training iteration (docs/training.md).

    Each GEMM's cycles come from the engine's tile-level timing, `time_gemm(cfg with mode, m, n,
    k)`; each compressed weight's from the engine's `compress_cycles`. The switches:

    - pre_generate: True, the compressor produces W_f and W_b of layer l right after its
      update (after WG_l), into a buffer, concurrently with the array; False, on the fly: the
      engine's compressors sit between its load port and its banks (`load="dense"`) and every
      GEMM runs on that path: its compression cost is `_inline_compress_cycles` (serial).
    - offline_schedule: True, the orders of the backward GEMMs on the array and of the jobs on
      the compressor are chosen offline (exhaustively) for the shortest period; False, the
      autograd order (BP_l then WG_l, from the last layer) and compressions in update order.
    - interleave: see `_weight_compress_cycles`.

    `dense_first` runs the first layer's GEMMs in the dense mode (as training keeps it dense);
    `dense` runs every GEMM in the dense mode: the dense baseline on the same hardware (the mode
    "wg" datapath: N multipliers per lane on N consecutive K positions, nothing compressed).
    """
    from tpesim.kernels.gemm import time_gemm

    if gemm_cycles is None:
        def gemm_cycles(c, m, n, k):
            return time_gemm(c, m, n, k).cycles
    shapes = gemm_shapes(model, batch)
    per = []
    jobs: dict = {}
    last = max(s.layer for s in shapes)
    for s in shapes:
        run_dense = dense or (dense_first and s.layer == 0)
        c = dataclasses.replace(engine_cfg, mode="wg" if run_dense else s.mode)
        g = int(gemm_cycles(c, s.m, s.n, s.k))
        if pre_generate or engine_cfg.nm is None:
            comp = _weight_compress_cycles(c, s, interleave)
        else:
            comp = _inline_compress_cycles(c, s, interleave, gemm_cycles, g)
        per.append((s, g, comp))
        name = f"{s.mode}{s.layer}"
        if s.mode == "ff":
            deps = [(f"ff{s.layer - 1}", 0)] if s.layer else []
        else:
            deps = [(f"bp{s.layer + 1}", 0)] if s.layer < last else [(f"ff{last}", 0)]
        if comp and pre_generate:
            deps.append((f"c{name}", -1))  # last iteration's pre-generated weight
            # the compressed buffer is rewritten after this GEMM read it, from the updated W
            jobs[f"c{name}"] = ("comp", comp, [(f"wg{s.layer}", 0), (name, 0)])
        jobs[name] = ("array", g if pre_generate else g + comp, deps)
    fwd = [f"ff{s.layer}" for s in shapes if s.mode == "ff"]
    comp_jobs = [n for n in jobs if jobs[n][0] == "comp"]
    naive_back = [f"{s.mode}{s.layer}" for s in shapes if s.mode != "ff"]
    # compressions in the order their weights are updated (that of the WGs), FF's first
    naive_comp = [f"c{p}{w[2:]}" for w in naive_back if w.startswith("wg") for p in ("ff", "bp")
                  if f"c{p}{w[2:]}" in jobs]
    best = (fwd + naive_back, naive_comp)
    period = _period(jobs, *best)
    if offline_schedule:
        comp_orders = [list(p) for p in itertools.permutations(comp_jobs)] or [[]]
        for back in _backward_orders(shapes):
            for co in comp_orders:
                p = _period(jobs, fwd + back, co)
                if p < period:
                    period, best = p, (fwd + back, co)
    sums = {p: sum(g for s, g, _ in per if s.mode == p) for p in PASSES}
    busy = sum(c for _, _, c in per)
    return IterationCycles(period, sums["ff"], sums["bp"], sums["wg"],
                           period - sums["ff"] - sums["bp"] - sums["wg"], busy, tuple(per),
                           tuple(best[0]), tuple(best[1]))

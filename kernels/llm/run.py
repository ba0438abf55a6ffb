"""Whole-model LLM timing: prefill then decode, every layer and decode step accounted for; GEMMs at
the tile level (RTL-proven) with the memory model, vector ops on a vector unit (docs/llm.md)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tpesim.config import ConfigMixin, EngineConfig, check_int
from tpesim.errors import ConfigError, TpesimError, WorkloadError
from tpesim.memory import MemoryConfig
from tpesim.tile_stream import MAX_BLOCKS

from .model import (Gemm, ModelSpec, VectorOp, head_ops, layer_ops, resolve_model, tail_ops)

__all__ = ["VectorUnit", "Placement", "Stage", "LlmRun", "FIELDS", "run_llm", "run_graph",
           "gemm_cost", "vector_cost", "decoder_stages", "holds_dense_b"]

# The cost vector of an op (all its instances); units in the names.
FIELDS = ("cycles", "compute_cycles", "stall_cycles", "macs", "dram_read_bytes",
          "dram_write_bytes", "sram_read_bytes", "sram_write_bytes", "b_dram_read_bytes",
          "roofline_cycles", "instances")
F = {name: i for i, name in enumerate(FIELDS)}


@dataclass(frozen=True)
class VectorUnit(ConfigMixin):
    """The vector unit that runs norms, softmax, activations, rotary and residual adds.

    An op of `passes` passes over E output elements reading `inputs` tensors of E elements and
    writing one costs ``latency + max(ceil(passes*E / lanes), ceil(bytes / dram_bw))`` cycles with
    bytes = (inputs + 1) * E * elem_bytes moved over the DRAM link (no DRAM term when the link is
    unbounded): the pipeline fills once per op, streaming overlaps compute.

    Parameters
    ----------
    lanes : int
        Elements processed per cycle (per pass).
    latency : int
        Pipeline latency in cycles, paid once per op.
    elem_bytes : int
        Bytes per element read or written (2: fp16).
    """

    lanes: int = 256
    latency: int = 8
    elem_bytes: int = 2

    def __post_init__(self):
        check_int("vector_lanes", self.lanes)
        check_int("vector_latency", self.latency, lo=0)
        check_int("vector_elem_bytes", self.elem_bytes)


@dataclass(frozen=True)
class Placement:
    """Which engine runs which op class, the vector unit, and the memory every op sees."""

    linear: EngineConfig
    attention: EngineConfig
    vector: VectorUnit = field(default_factory=VectorUnit)
    memory: MemoryConfig = field(default_factory=MemoryConfig)

    def engine(self, op_class: str) -> EngineConfig:
        return self.linear if op_class == "linear" else self.attention


def holds_dense_b(cfg: EngineConfig) -> bool:
    """Whether the engine multiplies any B in A's value range as given (so it can take a K or V
    cache): B as wide as A and not restructured (a LUT engine's low-bit codes, an N:M engine's
    pruning fail this)."""
    ops = {o.role: o for o in cfg.operands()}
    a, b = ops["a"], ops["b"]
    if b.bits < a.bits or b.signed != a.signed:
        return False
    rng = np.random.default_rng(0)
    lo, hi = (-(1 << (a.bits - 1)), (1 << (a.bits - 1)) - 1) if a.signed else (0, (1 << a.bits) - 1)
    x = rng.integers(lo, hi, (16, 16), endpoint=True)
    x[0, 0] = 1
    used = np.asarray(cfg.operand_as_used("b", x))
    return used.shape == x.shape and bool(np.array_equal(used, x))


# -- the cost of one op ---------------------------------------------------------------------------
def _timing(cfg: EngineConfig):
    from tpesim.kernels.gemm import engine_faces

    return engine_faces(cfg, "tile")[0]


def _splits(cfg: EngineConfig, m: int, n: int, k: int) -> list[int]:
    """M of each sequential part of a GEMM the tile level takes whole (one part unless the GEMM
    makes more than MAX_BLOCKS blocks: then M is cut into equal parts that fit)."""
    blocks = _timing(cfg).blocks(m, n, k)
    if blocks <= MAX_BLOCKS:
        return [m]
    parts = -(-blocks // MAX_BLOCKS)
    while True:
        step = -(-m // parts)
        sizes = [step] * (m // step) + ([m % step] if m % step else [])
        if all(_timing(cfg).blocks(s, n, k) <= MAX_BLOCKS for s in sizes):
            return sizes
        parts += 1


def gemm_cost(cfg: EngineConfig, m: int, n: int, k: int, memory: MemoryConfig) -> np.ndarray:
    """Cost vector (FIELDS) of ONE m x n x k GEMM on `cfg` at the tile level, memory empty at its
    start; a GEMM past the tile level's block budget runs as sequential M parts."""
    from tpesim.kernels.gemm import time_gemm

    v = np.zeros(len(FIELDS), np.int64)
    for part in _splits(cfg, m, n, k):
        r = time_gemm(cfg, part, n, k, memory=memory)
        rd = r.dram_read_bytes_a + r.dram_read_bytes_b + r.dram_read_bytes_c
        wr = r.dram_write_bytes_a + r.dram_write_bytes_b + r.dram_write_bytes_c
        v += (r.cycles, r.compute_cycles, r.stall_cycles, r.macs, rd, wr,
              r.sram_read_bytes_a + r.sram_read_bytes_b + r.sram_read_bytes_c,
              r.sram_write_bytes_a + r.sram_write_bytes_b + r.sram_write_bytes_c,
              r.dram_read_bytes_b, 0, 0)
        v[F["roofline_cycles"]] += _bound(r.macs, cfg.peak_macs_per_cycle, rd + wr, memory)
    v[F["instances"]] = 1
    return v


def _bound(work: int, rate: int, dram_bytes: int, memory: MemoryConfig) -> int:
    """Roofline: max(work at the peak rate, DRAM bytes at the link bandwidth)."""
    b = -(-work // rate)
    if memory.dram_bw is not None:
        b = max(b, math.ceil(dram_bytes / memory.dram_bw))
    return b


def vector_cost(op: VectorOp, unit: VectorUnit, memory: MemoryConfig) -> np.ndarray:
    """Cost vector of ONE instance of a vector op (formula in VectorUnit's docstring)."""
    e = op.elems
    compute = -(-op.passes * e // unit.lanes)
    rd, wr = op.inputs * e * unit.elem_bytes, e * unit.elem_bytes
    xfer = 0 if memory.dram_bw is None else math.ceil((rd + wr) / memory.dram_bw)
    cycles = unit.latency + max(compute, xfer)
    ideal = unit.latency + compute
    v = np.zeros(len(FIELDS), np.int64)
    v[[F["cycles"], F["compute_cycles"], F["stall_cycles"], F["dram_read_bytes"],
       F["dram_write_bytes"], F["roofline_cycles"], F["instances"]]] = (
        cycles, ideal, cycles - ideal, rd, wr, max(compute, xfer), 1)
    return v


class _Costs:
    """Cost of an op's instances, each distinct (engine, m, n, k, memory) timed once (`cache`) or
    every instance timed separately (`cache=False`: the proof that the cache changes nothing)."""

    def __init__(self, placement: Placement, cache: bool = True):
        self.p = placement
        self.cache = cache
        self.memo: dict = {}
        self.timed = 0      # GEMMs actually timed
        self.lookups = 0    # GEMM instances accounted

    def __call__(self, op) -> np.ndarray:
        """Cost of all `count` instances of `op` (a fresh array)."""
        if isinstance(op, VectorOp):
            one = self.memo.get(op)
            if one is None:
                one = self.memo[op] = vector_cost(op, self.p.vector, self.p.memory)
            return one * op.count
        cfg = self.p.engine(op.op_class)
        if not self.cache:
            total = np.zeros(len(FIELDS), np.int64)
            for _ in range(op.count):
                total += self._time(op, cfg)
                self.timed += 1
                self.lookups += 1
            return total
        key = (cfg, op.m, op.n, op.k, self.p.memory)
        one = self.memo.get(key)
        if one is None:
            one = self.memo[key] = self._time(op, cfg)
            self.timed += 1
        return one * op.count

    def _time(self, op: Gemm, cfg: EngineConfig) -> np.ndarray:
        try:
            return gemm_cost(cfg, op.m, op.n, op.k, self.p.memory)
        except TpesimError as e:  # name the op: the GEMM alone does not say where it came from
            raise type(e)(f"op {op.name} ({op.m} x {op.n} x {op.k} on {cfg.name}): {e}") \
                from None


# -- stages: what runs, in order ------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One pass through the model: groups of (layer labels, ops) — every label runs those ops."""

    phase: str          # "prefill", "decode" or "forward"
    step: int           # decode step (0 for prefill/forward)
    groups: tuple       # ((labels tuple, ops tuple), ...)


def decoder_stages(spec: ModelSpec, *, batch: int, prefill: int, decode: int, q_block: int):
    """Prefill (P tokens per sequence) then `decode` steps; step s attends over P + s + 1 keys (at
    most the model's sliding window)."""
    labels = tuple(f"layer{i}" for i in range(spec.layers))
    yield Stage("prefill", 0, (
        (("embedding",), tuple(head_ops(spec, batch=batch, tokens=prefill))),
        (labels, tuple(layer_ops(spec, batch=batch, tokens=prefill, past=0, q_block=q_block))),
        (("lm_head",), tuple(tail_ops(spec, batch=batch)))))
    head = tuple(head_ops(spec, batch=batch, tokens=1))
    tail = tuple(tail_ops(spec, batch=batch))
    for s in range(decode):
        yield Stage("decode", s, (
            (("embedding",), head),
            (labels, tuple(layer_ops(spec, batch=batch, tokens=1, past=prefill + s,
                                     q_block=q_block))),
            (("lm_head",), tail)))


_BASE = re.compile(r"\[\d+\]$")


@dataclass
class LlmRun:
    """A whole-model run's accounting (units in the names; cycles of the engines' clock).

    Attributes
    ----------
    ops : dict
        op name ([i] of a prefill's query blocks dropped) -> {"op_class", "engine", "peak",
        "prefill"/"decode": cost vectors (FIELDS) summed over every layer and step}.
    layers : dict
        layer label -> {"prefill": cycles, "decode": cycles}.
    steps : np.ndarray
        [decode, FIELDS] cost of each decode step (all layers, embedding and LM head).
    step_kv_read_bytes : np.ndarray
        [decode] DRAM bytes of the K and V caches read by each decode step (every layer).
    phases : dict
        "prefill" / "decode" / "forward" -> cost vector.
    """

    model: ModelSpec | str
    placement: Placement
    batch: int
    prefill: int
    decode: int
    q_block: int
    ops: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    steps: np.ndarray | None = None
    step_kv_read_bytes: np.ndarray | None = None
    phases: dict = field(default_factory=dict)
    gemms_timed: int = 0
    gemm_instances: int = 0
    wall_s: float = 0.0

    def total(self) -> np.ndarray:
        return sum(self.phases.values(), np.zeros(len(FIELDS), np.int64))

    def get(self, phase: str, name: str) -> int:
        v = self.phases.get(phase)
        return 0 if v is None else int(v[F[name]])

    def summary(self, clock_ghz: float = 1.0) -> dict:
        """Headline figures: TTFT, TPOT, tokens/s at `clock_ghz`, bytes, stalls, utilization."""
        hz = clock_ghz * 1e9
        tot = self.total()
        out = {"model": getattr(self.model, "name", self.model), "batch": self.batch,
               "prefill_tokens": self.prefill, "decode_steps": self.decode,
               "clock_ghz": clock_ghz, "cycles": int(tot[F["cycles"]]),
               "seconds": tot[F["cycles"]] / hz}
        if "forward" in self.phases:
            out["forward_cycles"] = self.get("forward", "cycles")
        else:
            ttft = self.get("prefill", "cycles")
            dec = self.get("decode", "cycles")
            out.update(prefill_cycles=ttft, decode_cycles=dec, ttft_cycles=ttft,
                       ttft_ms=1e3 * ttft / hz,
                       tpot_cycles=dec / self.decode if self.decode else None,
                       tpot_ms=1e3 * dec / self.decode / hz if self.decode else None,
                       decode_tokens_per_s=(self.batch * self.decode * hz / dec
                                            if dec else None),
                       prefill_tokens_per_s=self.batch * self.prefill * hz / ttft if ttft else None)
            if self.decode and self.ops_of_class("attention"):
                # the K and V caches are the attention GEMMs' B operand: their DRAM reads
                out.update(kv_read_bytes_decode=int(self.step_kv_read_bytes.sum()),
                           kv_read_bytes_first_step=int(self.step_kv_read_bytes[0]),
                           kv_read_bytes_last_step=int(self.step_kv_read_bytes[-1]))
        for name in FIELDS:
            if name not in ("cycles", "instances", "roofline_cycles", "b_dram_read_bytes"):
                out[f"{name}"] = int(tot[F[name]])
        for cls in ("linear", "attention"):
            names = self.ops_of_class(cls)
            if not names:
                continue
            macs = sum(int(self._op_total(n)[F["macs"]]) for n in names)
            cyc = sum(int(self._op_total(n)[F["cycles"]]) for n in names)
            peak = self.ops[names[0]]["peak"]
            out[f"{cls}_cycles"] = cyc
            out[f"{cls}_utilization"] = macs / (cyc * peak) if cyc else 0.0
        vec = self.ops_of_class("vector")
        out["vector_cycles"] = sum(int(self._op_total(n)[F["cycles"]]) for n in vec)
        out["gemms_timed"] = self.gemms_timed
        out["gemm_instances"] = self.gemm_instances
        out["wall_s"] = self.wall_s
        return out

    def ops_of_class(self, cls: str) -> list[str]:
        return [n for n, o in self.ops.items() if o["op_class"] == cls]

    def _op_total(self, name: str) -> np.ndarray:
        o = self.ops[name]
        return sum((o[p] for p in ("prefill", "decode", "forward") if p in o),
                   np.zeros(len(FIELDS), np.int64))

    def op_rows(self) -> list[dict]:
        """One row per op and phase: cycles, share of the phase, MACs, utilization, bytes."""
        rows = []
        for phase, ptot in self.phases.items():
            pc = int(ptot[F["cycles"]]) or 1
            for name, o in self.ops.items():
                v = o.get(phase)
                if v is None or not v[F["instances"]]:
                    continue
                cyc = int(v[F["cycles"]])
                rows.append({
                    "phase": phase, "op": name, "op_class": o["op_class"], "engine": o["engine"],
                    "instances": int(v[F["instances"]]), "cycles": cyc, "share": cyc / pc,
                    "macs": int(v[F["macs"]]),
                    "utilization": (int(v[F["macs"]]) / (cyc * o["peak"])
                                    if o["peak"] and cyc else 0.0),
                    "compute_cycles": int(v[F["compute_cycles"]]),
                    "stall_cycles": int(v[F["stall_cycles"]]),
                    "roofline_cycles": int(v[F["roofline_cycles"]]),
                    "dram_read_bytes": int(v[F["dram_read_bytes"]]),
                    "dram_write_bytes": int(v[F["dram_write_bytes"]]),
                    "sram_read_bytes": int(v[F["sram_read_bytes"]]),
                    "sram_write_bytes": int(v[F["sram_write_bytes"]]),
                    "b_dram_read_bytes": int(v[F["b_dram_read_bytes"]])})
        return rows


def _op_entry(run: LlmRun, op) -> dict:
    name = _BASE.sub("", op.name)
    o = run.ops.get(name)
    if o is None:
        cfg = None if isinstance(op, VectorOp) else run.placement.engine(op.op_class)
        o = run.ops[name] = {"op_class": op.op_class,
                             "engine": "vector" if cfg is None else cfg.name,
                             "peak": 0 if cfg is None else cfg.peak_macs_per_cycle,
                             "roles": getattr(op, "roles", None)}
    return o


def _add(o: dict, phase: str, v: np.ndarray) -> None:
    acc = o.get(phase)
    if acc is None:
        o[phase] = v.copy()
    else:
        acc += v


def _accumulate(run: LlmRun, stages, costs: _Costs, on_stage: Callable | None,
                n_stages: int) -> None:
    """Add every stage's groups: each label (layer) of a group runs the group's ops. Cached: one
    cost per op, added once per layer (per-op totals as cost x layer-instances at the end).
    Uncached: every layer's every GEMM instance timed on its own."""
    nf = len(FIELDS)
    kv_col = F["b_dram_read_bytes"]
    uses: dict = {}         # (phase, op) -> layer-instances (cached path)
    step_rows, step_kv = [], []
    for i, st in enumerate(stages):
        stage_total = np.zeros(nf, np.int64)
        kv = 0
        for labels, ops in st.groups:
            if costs.cache:
                cs = [costs(op) for op in ops]
                per_label = [np.sum(cs, axis=0)] * len(labels)
                for op, c in zip(ops, cs):
                    key = (st.phase, op)
                    uses[key] = uses.get(key, 0) + len(labels)
                    if op.op_class == "attention":
                        kv += int(c[kv_col]) * len(labels)
            else:
                per_label = []
                for _ in labels:
                    cs = [costs(op) for op in ops]
                    per_label.append(np.sum(cs, axis=0))
                    for op, c in zip(ops, cs):
                        _add(_op_entry(run, op), st.phase, c)
                        if op.op_class == "attention":
                            kv += int(c[kv_col])
            for lab, total in zip(labels, per_label):
                lay = run.layers.setdefault(lab, {})
                lay[st.phase] = lay.get(st.phase, 0) + int(total[0])
                stage_total += total
        run.phases[st.phase] = run.phases.get(st.phase, np.zeros(nf, np.int64)) + stage_total
        if st.phase == "decode":
            step_rows.append(stage_total)
            step_kv.append(kv)
        if on_stage is not None:
            on_stage(i + 1, n_stages)
    for (phase, op), n in uses.items():
        _add(_op_entry(run, op), phase, costs(op) * n)
    run.steps = np.array(step_rows, np.int64).reshape(-1, nf)
    run.step_kv_read_bytes = np.array(step_kv, np.int64)
    run.gemms_timed = costs.timed
    run.gemm_instances = costs.lookups + sum(op.count * n for (_, op), n in uses.items()
                                             if isinstance(op, Gemm))


def _check_pos(name: str, v, lo: int = 1) -> int:
    return check_int(name, v, lo=lo)


def run_llm(model, *, prefill: int, decode: int, batch: int = 1, engine: EngineConfig,
            attention_engine: EngineConfig | None = None, vector: VectorUnit | None = None,
            memory: MemoryConfig | None = None, q_block: int = 128, cache: bool = True,
            on_stage: Callable[[int, int], None] | None = None) -> LlmRun:
    """Prefill `prefill` tokens then decode `decode` tokens, `batch` sequences, on the engines.

    Parameters
    ----------
    model : str, path or ModelSpec
        A shipped name (model.SHIPPED), a Hugging Face config.json.
    engine : EngineConfig
        Runs the linears, and the attention GEMMs unless `attention_engine` is given.
    attention_engine : EngineConfig or None
        Runs QK^T and PV (must hold a dense B: the K and V caches).
    vector : VectorUnit or None
    memory : MemoryConfig or None
        Seen by every op, empty at each op's start (docs/llm.md, "Memory").
    q_block : int
        Query rows per causal block of the prefill's attention.
    cache : bool
        Time each distinct GEMM once (False: every instance separately; the same cycles).
    """
    spec = resolve_model(model)
    prefill = _check_pos("prefill", prefill)
    decode = _check_pos("decode", decode, lo=0)
    batch = _check_pos("batch", batch)
    q_block = _check_pos("q_block", q_block)
    placement = _placement(engine, attention_engine, vector, memory)
    run = LlmRun(model=spec, placement=placement, batch=batch, prefill=prefill, decode=decode,
                 q_block=q_block)
    t0 = time.perf_counter()
    stages = decoder_stages(spec, batch=batch, prefill=prefill, decode=decode, q_block=q_block)
    _accumulate(run, stages, _Costs(placement, cache), on_stage, 1 + decode)
    run.wall_s = time.perf_counter() - t0
    return run


def run_graph(name: str, layers: list[tuple[str, list]], *, engine: EngineConfig,
              attention_engine: EngineConfig | None = None, vector: VectorUnit | None = None,
              memory: MemoryConfig | None = None, cache: bool = True) -> LlmRun:
    """One forward pass of an op graph given as [(layer label, ops)] (ONNX, SCALE-Sim files)."""
    placement = _placement(engine, attention_engine, vector, memory)
    run = LlmRun(model=name, placement=placement, batch=1, prefill=0, decode=0, q_block=0)
    t0 = time.perf_counter()
    st = Stage("forward", 0, tuple(((lab,), tuple(ops)) for lab, ops in layers))
    _accumulate(run, [st], _Costs(placement, cache), None, 1)
    run.wall_s = time.perf_counter() - t0
    return run


def _placement(engine, attention_engine, vector, memory) -> Placement:
    if not isinstance(engine, EngineConfig):
        raise ConfigError(f"engine must be an engine config, not {type(engine).__name__}")
    att = engine if attention_engine is None else attention_engine
    if not isinstance(att, EngineConfig):
        raise ConfigError(f"attention_engine must be an engine config, not "
                          f"{type(att).__name__}")
    if not holds_dense_b(att):
        which = "attention_engine" if attention_engine is not None else "engine"
        raise WorkloadError(
            f"{which} {att.name} cannot run attention (its B operand is restructured or narrower "
            f"than A, and B here is the K/V cache): give an attention engine (e.g. "
            f"--attention-engine systolic:rows=128,cols=128)")
    memory = MemoryConfig() if memory is None else memory
    if not isinstance(memory, MemoryConfig):
        raise ConfigError(f"memory must be a MemoryConfig, not {type(memory).__name__}")
    vector = VectorUnit() if vector is None else vector
    if not isinstance(vector, VectorUnit):
        raise ConfigError(f"vector must be a VectorUnit, not {type(vector).__name__}")
    return Placement(linear=engine, attention=att, vector=vector, memory=memory)

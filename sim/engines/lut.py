"""LUT Tensor Core engine (ISCA'25, T-MAC algebra): its config (the single source of truth), the
functional reference and the cycle model; micro-architecture and derivations in docs/lut.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import EngineConfig, Lanes, Operand, Stream, check_bool, check_choice, check_int
from ..errors import ConfigError, ConfigTypeError, WorkloadError
from ..numerics import matmul_wrapped, pack, unpack

__all__ = ["LutConfig", "LutModel", "reference", "W_INTERPS", "ACTS", "parse_w_bits",
           "encode_weights", "decode_weights", "weight_values", "weights_of", "check_b",
           "codes_are_operand", "table", "sym_table", "lookup",
           "plane_bits", "fp_shifts"]

W_INTERPS = ("signed", "unsigned", "pm1")
ACTS = ("int8", "fp16")
ACCS = {"int8": ("int32",), "fp16": ("fp16", "fp32")}
MAX_TILE_M = 16
MAX_TILE_N = 256
MAX_GROUP = 4


def parse_w_bits(text: str):
    """CLI spelling of w_bits: an integer, else the text as given (LutConfig validates either,
    with its one-line message)."""
    t = str(text).strip()
    try:
        return int(t)
    except ValueError:
        return t.lower() if t.lower() == "ternary" else t


@dataclass(frozen=True, kw_only=True)
class LutConfig(EngineConfig):
    """A LUT Tensor Core unit: C[tile_m x tile_n] += A[tile_m x group] @ W[group x tile_n] per
    K-group, weights bit-serial (one bit-plane per cycle), no multipliers.

    Parameters
    ----------
    tile_m : int
        Activation rows per tile (1..16; the paper's M = 2): one table per row and K-group.
    tile_n : int
        Output columns per tile (1..256; N = 64): the table is broadcast to all of them.
    group : int
        Activations per table, g (1..4; K = 4): 2^g signed sums, 2^(g-1) stored when symmetrized.
    w_bits : int or "ternary"
        Weight bits 1..4 (one bit-plane per cycle), or "ternary" (BitNet b1.58 {-1, 0, +1} as
        2-bit two's complement codes: 2 planes).
    w_interp : {"signed", "unsigned", "pm1"}
        How a w_bits code is read: two's complement, unsigned (the offset term folded in), or
        +-1 bits (T-MAC/BitNet: w = sum_b 2^b (2 bit_b - 1), odd values). "signed" for ternary.
    act : {"int8", "fp16"}
        Activation type (fp16 as IEEE binary16 bit patterns; every weight format, docs/lut.md
        "fp16 mode").
    sym : bool
        Symmetrized tables: 2^(g-1) stored entries per (row, group), one index bit selects negation.
    pipe_stages : {1, 2}
        2 adds a register between the lookup/scale and the accumulator (+1 cycle latency).
    acc : str or None
        Accumulator: "int32" for int8 activations (the default); "fp16" (default, as the published
        RTL) or "fp32" for fp16 activations.
    """

    tile_m: int = 2
    tile_n: int = 64
    group: int = 4
    w_bits: int | str = field(default=2, metadata={
        "parse": parse_w_bits, "help": "weight bits 1..4 or 'ternary' (default 2)"})
    w_interp: str = "signed"
    act: str = "int8"
    sym: bool = True
    pipe_stages: int = 1
    acc: str | None = None

    engine = "lut"

    def __post_init__(self):
        check_int("tile_m", self.tile_m, lo=1, hi=MAX_TILE_M)
        check_int("tile_n", self.tile_n, lo=1, hi=MAX_TILE_N)
        check_int("group", self.group, lo=1, hi=MAX_GROUP)
        if self.w_bits != "ternary":
            if isinstance(self.w_bits, bool) or not isinstance(self.w_bits, int):
                raise ConfigTypeError(f"w_bits must be an integer 1..4 or 'ternary', "
                                      f"not {self.w_bits!r}")
            check_int("w_bits", self.w_bits, lo=1, hi=4, rule="1, 2, 3, 4 or 'ternary'")
        check_choice("w_interp", self.w_interp, W_INTERPS)
        if self.w_bits == "ternary" and self.w_interp != "signed":
            raise ConfigError(f"w_interp must be 'signed' for ternary weights (2-bit two's "
                              f"complement codes), not {self.w_interp!r}")
        check_choice("act", self.act, ACTS)
        check_bool("sym", self.sym)
        check_int("pipe_stages", self.pipe_stages, lo=1, hi=2, rule="1 or 2")
        if self.acc is None:
            object.__setattr__(self, "acc", ACCS[self.act][0])
        check_choice("acc", self.acc, ACCS[self.act])

    # -- weight format ----------------------------------------------------------------------------
    @property
    def planes(self) -> int:
        """Bit-planes per weight (cycles per K-group): w_bits, 2 for ternary."""
        return 2 if self.w_bits == "ternary" else self.w_bits

    @property
    def code_bits(self) -> int:
        return self.planes

    def operand_as_used(self, role: str, x):
        """B as the engine multiplies it: the weight values of pm1/ternary codes (identity else)."""
        return weights_of(self, x) if role == "b" else x

    @property
    def w_values(self) -> tuple[int, ...]:
        """Every weight value a code can stand for, ascending."""
        return tuple(sorted(set(decode_weights(self, np.arange(1 << self.code_bits)).tolist())))

    @property
    def int_mode(self) -> bool:
        return self.act == "int8"

    # -- derived widths and timing -------------------------------------------------------------
    @property
    def act_bits(self) -> int:
        return 8 if self.act == "int8" else 16

    @property
    def out_bits(self) -> int:
        return 16 if self.acc == "fp16" else 32

    @property
    def acc_bits(self) -> int:
        """Width of a result element (int32 wraps; fp results are bit patterns)."""
        return self.out_bits

    @property
    def signed(self) -> bool:
        """Results are two's-complement integers (int mode) or raw fp bit patterns."""
        return self.int_mode

    @property
    def entries(self) -> int:
        """Stored table entries per (row, group)."""
        return 1 << (self.group - 1) if self.sym else 1 << self.group

    @property
    def entry_bits(self) -> int:
        """Width of a table entry: int sums of g int8 values (+-g*128 needs 8 + ceil(log2 g) + 1
        bits with the sign), fp16 entries 16 bits."""
        if not self.int_mode:
            return 16
        return 9 + (self.group - 1).bit_length()

    @property
    def table_bytes(self) -> int:
        """Table storage of the unit: tile_m tables of `entries` entries (+ the offset term per row
        when the interpretation has one; fp16 derives it from the stored entry T[0]), in bytes."""
        bias = 1 if plane_bits(self)[1] != 0 and self.int_mode else 0
        bits = self.tile_m * (self.entries * self.entry_bits + bias * self.bias_bits)
        return (bits + 7) // 8

    @property
    def bias_bits(self) -> int:
        """Width of the per-row offset term (int mode: o * sum(a); fp: the binary16 o/2 * S)."""
        if not self.int_mode:
            return 16
        return 9 + (self.group - 1).bit_length() + self.planes

    @property
    def precompute_cycles(self) -> int:
        """Cycles the table-precompute unit spends on one (tile_m rows x group) activation beat:
        one (it is registered with the beat, overlapped with the previous beat's planes)."""
        return 1

    @property
    def latency(self) -> int:
        """Cycles from a single-beat tile accepted to its first result row (stall free):
        1 (table register) + planes + pipe_stages - 1."""
        return self.planes + self.pipe_stages

    # -- streams and operands ---------------------------------------------------------------------
    def streams(self) -> tuple[Stream, ...]:
        M, N, g = self.tile_m, self.tile_n, self.group
        return (
            Stream("in", "in", "in_valid", "in_ready",
                   (Lanes("in_a", M * g, self.act_bits, self.int_mode),
                    Lanes("in_w", g * N, self.code_bits, False)), last="in_last"),
            Stream("out", "out", "out_valid", "out_ready",
                   (Lanes("out_c", N, self.out_bits, self.int_mode),), last="out_last"),
        )

    def operands(self) -> tuple[Operand, ...]:
        wsig = not codes_are_operand(self) and self.w_interp == "signed"
        kind = "int" if self.int_mode else "float"
        return (Operand("a", "a", self.act_bits, self.int_mode, kind),
                Operand("b", "b", self.code_bits, wsig),
                Operand("c", "c", self.out_bits, self.int_mode, kind))

    @property
    def peak_macs_per_cycle(self) -> float:
        p = self.tile_m * self.tile_n * self.group
        return p // self.planes if p % self.planes == 0 else p / self.planes

    def report_fields(self, res) -> dict:
        """Report fields of a GEMM run (`tpesim run ... --json`): the table-precompute unit's cycles
        (one per K-group beat: tiles x ceil(K/g)), its table storage in bytes, and K as the engine
        runs it (`k_padded`: K rounded up to whole groups of g, the pad being zero activations)."""
        groups = -(-int(res.k) // self.group)
        return {"table_precompute_cycles": int(res.blocks) * groups,
                "table_bytes": self.table_bytes,
                "k_padded": groups * self.group}

    def energy_actions(self, report: dict) -> list:
        """What a GEMM run did, for `tpesim.energy` (no multipliers): per useful output element,
        K-group and plane one lookup of an entry and one accumulate; per table built (tile_m per
        K-group beat) `entries` sums of g activations, g - 1 adds each."""
        from ..energy import Action

        groups = -(-int(report["k"]) // self.group)
        lookups = int(report["m"]) * int(report["n"]) * groups * self.planes
        beats = int(report["blocks"]) * groups
        builds = beats * self.tile_m * self.entries * (self.group - 1)
        if self.int_mode:  # the 33-bit accumulator of 2C, entry-wide table adds
            acc = Action("mac", "int_add", lookups, self.out_bits + 1)
            table = Action("table", "int_add", builds, self.entry_bits)
        else:
            acc = Action("mac", "fp_add", lookups, self.out_bits)
            table = Action("table", "fp_add", builds, 16)
        return [Action("lookup", "lookup", lookups, self.entry_bits), acc, table]

    @property
    def mapping(self) -> str:
        """How a GEMM maps onto the engine: output-stationary tiles."""
        return "os"

    @property
    def block_shape(self) -> tuple[int, int]:
        """(rows, columns) of an output tile."""
        return self.tile_m, self.tile_n

    @property
    def name(self) -> str:
        w = "t" if self.w_bits == "ternary" else f"w{self.w_bits}{self.w_interp[0]}"
        sym = "" if self.sym else "_nosym"
        st = f"_s{self.pipe_stages}" if self.pipe_stages != 1 else ""
        return (f"lut_{self.tile_m}x{self.tile_n}g{self.group}_{w}_{self.act}_{self.acc}"
                f"{sym}{st}")


# -- weight codes and the table algebra (docs/lut.md "Algebra") ------------------------------------
def plane_bits(cfg: LutConfig) -> tuple[tuple[int, ...], int, tuple[bool, ...]]:
    """(shift e_b per plane, offset coefficient o, index inversion per plane) with
    2*w = sum_b 2^e_b * s_b + o, s_b = +-1 from the (possibly inverted) plane bit c_b (s = 2c - 1).

    signed (two's complement; inverting the MSB plane gives offset binary u = w + 2^(B-1)):
        2w = sum_b 2^b s_b - 1;   unsigned: 2w = sum_b 2^b s_b + 2^B - 1;
    pm1 (w = sum_b 2^b s_b): 2w = sum_b 2^(b+1) s_b;   ternary (w = c_0 + c_1 - 1): 2w = s_0 + s_1.
    The integer datapath accumulates 2C with these; the fp16 one accumulates C (`fp_shifts`)."""
    B = cfg.planes
    if cfg.w_bits == "ternary":
        return (0, 0), 0, (False, False)
    if cfg.w_interp == "pm1":
        return tuple(b + 1 for b in range(B)), 0, (False,) * B
    if cfg.w_interp == "unsigned":
        return tuple(range(B)), (1 << B) - 1, (False,) * B
    return tuple(range(B)), -1, tuple(b == B - 1 for b in range(B))


def fp_shifts(cfg: LutConfig) -> tuple[int, ...]:
    """The fp16 datapath's scale per plane, e_b - 1 (w = sum_b 2^(e_b - 1) s_b + o/2): -1 (a
    halving) on plane 0 of signed/unsigned and both ternary planes, b for pm1."""
    return tuple(e - 1 for e in plane_bits(cfg)[0])


def codes_are_operand(cfg: LutConfig) -> bool:
    """True when the GEMM's B operand holds weight codes (pm1, ternary: not every integer of a range
    is a weight) rather than weight values (signed, unsigned: the code is the value's bits)."""
    return cfg.w_bits == "ternary" or cfg.w_interp == "pm1"


def decode_weights(cfg: LutConfig, codes) -> np.ndarray:
    """Weight values of code_bits-wide codes (unsigned bit patterns, as on the in_w lanes)."""
    c = np.asarray(codes, dtype=np.int64)
    B = cfg.code_bits
    if cfg.w_bits == "ternary":
        return (c & 1) + ((c >> 1) & 1) - 1
    if cfg.w_interp == "signed":
        return np.where(c >= 1 << (B - 1), c - (1 << B), c)
    if cfg.w_interp == "unsigned":
        return c
    return 2 * c - ((1 << B) - 1)


def check_b(cfg: LutConfig, b) -> np.ndarray:
    """The B operand (values, or codes for pm1/ternary) as int64, or a one-line WorkloadError."""
    b = np.asarray(b)
    if b.dtype.kind not in "iu":
        raise WorkloadError(f"b must have an integer dtype, not {b.dtype}")
    b = b.astype(np.int64)
    op = cfg.operands()[1]
    lo, hi = (-(1 << (op.bits - 1)), (1 << (op.bits - 1)) - 1) if op.signed else (0, (1 << op.bits) - 1)
    if b.size and (int(b.min()) < lo or int(b.max()) > hi):
        bad = int(b.min()) if int(b.min()) < lo else int(b.max())
        where = [int(i) for i in np.argwhere(b == bad)[0]]
        what = "weight codes" if codes_are_operand(cfg) else "weights"
        kind = "ternary" if cfg.w_bits == "ternary" else f"{cfg.w_interp} {cfg.w_bits}-bit"
        raise WorkloadError(f"b {what} must be in {lo}..{hi} ({kind}), not {bad} at {where}")
    return b


def weights_of(cfg: LutConfig, b) -> np.ndarray:
    """Weight values of the B operand (checked)."""
    b = check_b(cfg, b)
    return decode_weights(cfg, b) if codes_are_operand(cfg) else b


def encode_weights(cfg: LutConfig, b) -> np.ndarray:
    """in_w lane codes of the B operand (checked)."""
    b = check_b(cfg, b)
    return b & ((1 << cfg.code_bits) - 1)


def weight_values(cfg: LutConfig) -> tuple[int, ...]:
    """Every weight value the format holds, ascending."""
    return cfg.w_values


def table(a) -> np.ndarray:
    """Full table of one group per row: T[..., idx] = sum_k (bit k of idx ? +a_k : -a_k)."""
    a = np.asarray(a, dtype=np.int64)
    g = a.shape[-1]
    idx = np.arange(1 << g)
    s = np.where((idx[:, None] >> np.arange(g)) & 1, 1, -1)           # [2^g, g]
    return a @ s.T


def sym_table(a) -> np.ndarray:
    """Stored half (idx[0] = 0): S[..., x] = T[..., x << 1] = -a_0 + sum_{k>=1} +-a_k."""
    return table(a)[..., 0::2]


def lookup(stored: np.ndarray, idx: np.ndarray, g: int, sym: bool) -> np.ndarray:
    """Entry of each index: T[idx] (not symmetrized) or idx[0] ? -S[(~idx)>>1] : S[idx>>1]."""
    if not sym:
        return np.take_along_axis(stored, idx, axis=-1)
    mask = (1 << g) - 1
    neg = (idx & 1) == 1
    x = np.where(neg, (~idx & mask) >> 1, idx >> 1)
    e = np.take_along_axis(stored, x, axis=-1)
    return np.where(neg, -e, e)


def _check_a(cfg: LutConfig, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise WorkloadError(f"a must have an integer dtype, not {a.dtype}")
    lo, hi = (-128, 127) if cfg.int_mode else (0, 0xFFFF)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise WorkloadError(f"a values must be in {lo}..{hi} ({cfg.act}), not "
                            f"{int(a.min()) if int(a.min()) < lo else int(a.max())}")
    return a.astype(np.int64)


def reference(cfg: LutConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Functional model (b: the B operand, weight values or pm1/ternary codes). Integer mode: exact
    A @ W wrapped to int32 (the engine's result, whatever the interpretation, symmetrization or K
    padding). fp16 mode: the contract's fp16 operations
    in the contract's order (sim/engines/lut.py `fp_reference`)."""
    a = _check_a(cfg, a)
    b = weights_of(cfg, b)
    if cfg.int_mode:
        return matmul_wrapped(a, b, 32, True)
    from ._lut_fp import fp_reference

    return fp_reference(cfg, a, b)


# -- cycle model ----------------------------------------------------------------------------------
from . import load_core  # noqa: E402
from ._vcd import VcdMixin  # noqa: E402


class LutModel(VcdMixin):
    """Cycle model of the LUT engine with the RTL's ports (sim/engines/_lut_core.py).

    `step(inputs)` advances one clock in lockstep (cosim); `run_beats(...)` advances many cycles in
    compiled code (kernels). Port values in `step` are raw bit patterns, as on the RTL's wires:
    in_w carries weight codes, which the model decodes to values.
    """

    def __init__(self, cfg: LutConfig, *, interpreted: bool | None = None,
                 vcd_path: str | Path | None = None):
        self.cfg = cfg
        self.core_module = load_core("_lut_core", interpreted)
        beat_fn = None
        if not cfg.int_mode:
            from ._lut_fp import beat_update

            def beat_fn(acc, a, w, fresh, _cfg=cfg):
                beat_update(_cfg, acc, a, w, fresh)
        self.core = self.core_module.LutCore(cfg.tile_m, cfg.tile_n, cfg.group, cfg.planes,
                                             cfg.pipe_stages, beat_fn)
        self._codes = decode_weights(cfg, np.arange(1 << cfg.code_bits)).tolist()
        self._init_waves(vcd_path)

    def step(self, ins: dict[str, int]) -> dict[str, int]:
        """Apply this cycle's inputs, return this cycle's outputs, then clock once."""
        cfg = self.cfg
        M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
        a = unpack(ins.get("in_a", 0), M * g, cfg.act_bits, cfg.int_mode)
        codes = unpack(ins.get("in_w", 0), g * N, cfg.code_bits, False)
        w = [self._codes[c] for c in codes]
        t = self.cycle
        ir, ov, ol, oc = self.core.step(int(ins.get("in_valid", 0)), a, w,
                                        int(ins.get("in_last", 0)), int(ins.get("out_ready", 0)))
        outs = {"in_ready": int(ir), "out_valid": int(ov), "out_last": int(ol),
                "out_c": pack(oc, cfg.out_bits)}
        if self._vcd is not None:
            self._dump(t, ins, outs)
        return outs

    def run_beats(self, beats_a: np.ndarray, beats_w: np.ndarray, lasts: np.ndarray, *,
                  valid: np.ndarray | None = None, ready: np.ndarray | None = None,
                  valid_from: int = 0, ready_from: int = 0, max_cycles: int = 1 << 62,
                  drain: bool = True):
        """Stream beats (activation values [n, tile_m*g], weight values [n, g*tile_n], lasts) through
        the engine. Returns (result rows, their cycles, cycles run); without `drain` the run stops
        right after the cycle that takes the last beat. The source is valid from cycle `valid_from`
        of this call on, the sink ready from `ready_from` on (holds cost O(1)); `valid`/`ready` are
        per-cycle schedules on top (0 = not valid/ready)."""
        cfg = self.cfg
        A = np.ascontiguousarray(beats_a, dtype=np.int32).reshape(-1, cfg.tile_m * cfg.group)
        W = np.ascontiguousarray(beats_w, dtype=np.int16).reshape(-1, cfg.group * cfg.tile_n)
        L = np.ascontiguousarray(lasts, dtype=np.int64).reshape(-1)
        n = A.shape[0]
        ntiles = int(L.sum()) + 2
        out_c = np.zeros((ntiles * cfg.tile_m, cfg.tile_n), np.int32)
        stamp = np.zeros(ntiles * cfg.tile_m, np.int64)
        empty = np.zeros(0, np.uint8)
        valid = empty if valid is None else np.ascontiguousarray(valid, dtype=np.uint8)
        ready = empty if ready is None else np.ascontiguousarray(ready, dtype=np.uint8)
        taken, nout, cycles = self.core.run(A, W, L, out_c, stamp, valid, ready, max_cycles,
                                            1 if drain else 0, max(0, int(valid_from)),
                                            max(0, int(ready_from)))
        if taken != n:
            raise WorkloadError(f"max_cycles ({max_cycles}) ended the run after {taken} of {n} beats")
        rows = out_c[:nout].astype(np.int64)
        if not cfg.int_mode:
            rows &= (1 << cfg.out_bits) - 1          # fp results are bit patterns
        return rows, stamp[:nout], int(cycles)

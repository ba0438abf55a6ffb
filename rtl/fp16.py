"""Amaranth RTL of IEEE binary16/binary32 arithmetic (adder, x 2**e scaling, fp16 -> fp32 promotion):
combinational, synthesizable, bit-exact with tpesim.fp16 (RNE, subnormals, inf, canonical NaN)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tpesim.rtl import _common

__all__ = ["FpFormat", "FP16", "FP32", "FpAdd", "FpPow2", "FpPromote", "Fp16Add", "Fp32Add",
           "Fp16Pow2", "Fp32Pow2", "Fp16Pow2Signed", "Fp32Pow2Signed", "Fp16ToFp32",
           "leading_zeros", "to_verilog"]

# Amaranth emits `x == 0` as `!x`, which Verilator flags (WIDTHTRUNC): zero tests use `~x.any()`.


class FpFormat:
    """An IEEE binary interchange format: `exp_bits` exponent bits, `man_bits` stored fraction bits."""

    def __init__(self, exp_bits: int, man_bits: int):
        self.exp_bits = exp_bits
        self.man_bits = man_bits
        self.width = 1 + exp_bits + man_bits
        self.bias = (1 << (exp_bits - 1)) - 1
        self.exp_max = (1 << exp_bits) - 1        # the all-ones exponent field: inf / NaN

    def canonical_nan(self) -> int:
        """Quiet NaN with the sign clear and only the top fraction bit set (0x7E00, 0x7FC00000)."""
        return (self.exp_max << self.man_bits) | (1 << (self.man_bits - 1))

    def unpack(self, x):
        """(sign, exponent field, fraction field, is_nan, is_inf, is_zero) of a packed value."""
        man = x[:self.man_bits]
        exp = x[self.man_bits:self.man_bits + self.exp_bits]
        sign = x[self.width - 1]
        exp_ones = exp.all()
        return sign, exp, man, exp_ones & man.any(), exp_ones & ~man.any(), ~exp.any() & ~man.any()


FP16 = FpFormat(5, 10)
FP32 = FpFormat(8, 23)


def leading_zeros(m: Module, value, name: str) -> Signal:
    """Number of leading zeros of `value` (len(value) when it is 0): a priority encoder, the highest
    set bit wins."""
    n = len(value)
    lz = Signal(range(n + 1), name=name)
    count = Const(n, lz.shape())
    for i in range(n):                         # later (higher) bits override lower ones
        count = Mux(value[i], n - 1 - i, count)
    m.d.comb += lz.eq(count)
    return lz


def _normalize_left(m: Module, sig, exp, name: str):
    """Shift `sig` left until its top bit is set or the exponent reaches 1 (the subnormal floor).

    `exp` is the biased exponent of `sig`'s top bit position (>= 1). Returns (sig', exp'); the top
    bit of sig' is the hidden bit, clear only if exp' = 1 (a subnormal or zero). Exact: no bit is
    lost (the caller makes `sig` wide enough)."""
    lz = leading_zeros(m, sig, f"{name}_lz")
    room = Signal(len(exp), name=f"{name}_room")          # exp - 1: how far down the exponent may go
    shift = Signal(len(exp), name=f"{name}_shift")
    out_sig = Signal(len(sig), name=f"{name}_sig")
    out_exp = Signal(len(exp), name=f"{name}_exp")
    m.d.comb += [
        room.eq(exp - 1),
        shift.eq(Mux(lz < room, lz, room)),
        out_sig.eq((sig << shift)[:len(sig)]),
        out_exp.eq(exp - shift),
    ]
    return out_sig, out_exp


class FpAdd(wiring.Component):
    """Correctly rounded IEEE addition s = a + b of one binary format (combinational).

    Datapath: unpack, order the operands by magnitude, align the smaller significand with guard,
    round and sticky bits, add or subtract, normalize (carry: one right shift; cancellation: a left
    shift by the leading-zero count, floored at the subnormal exponent), round to nearest even,
    pack (overflow to inf). inf + -inf and any NaN give the canonical NaN; an exact zero from a
    subtraction is +0; -0 + -0 = -0.

    Parameters
    ----------
    fmt : FpFormat

    Attributes
    ----------
    a, b : In(fmt.width)
        Operands (bit patterns).
    s : Out(fmt.width)
        The sum.
    """

    def __init__(self, fmt: FpFormat):
        self.fmt = fmt
        super().__init__({"a": In(fmt.width), "b": In(fmt.width), "s": Out(fmt.width)})

    def elaborate(self, platform):
        f = self.fmt
        m = Module()
        frac_w, exp_w = f.man_bits, f.exp_bits
        sa, ea, ma, nan_a, inf_a, _ = f.unpack(self.a)
        sb, eb, mb, nan_b, inf_b, _ = f.unpack(self.b)

        # Order by magnitude: the low width-1 bits compare as unsigned integers exactly as the values.
        swap = Signal(name="swap")
        m.d.comb += swap.eq(self.b[:f.width - 1] > self.a[:f.width - 1])
        big_s, big_e, big_m = Mux(swap, sb, sa), Mux(swap, eb, ea), Mux(swap, mb, ma)
        sml_e, sml_m = Mux(swap, ea, eb), Mux(swap, ma, mb)
        sub = Signal(name="sub")                  # effective subtraction
        m.d.comb += sub.eq(sa ^ sb)

        # Significands with the hidden bit; a subnormal's exponent counts as 1.
        L = frac_w + 1
        big_sig = Signal(L, name="big_sig")
        sml_sig = Signal(L, name="sml_sig")
        e_big = Signal(exp_w, name="e_big")
        e_sml = Signal(exp_w, name="e_sml")
        m.d.comb += [
            big_sig.eq(Cat(big_m, big_e.any())),
            sml_sig.eq(Cat(sml_m, sml_e.any())),
            e_big.eq(Mux(big_e.any(), big_e, 1)),
            e_sml.eq(Mux(sml_e.any(), sml_e, 1)),
        ]

        # Alignment: the smaller significand shifted right by the exponent difference, kept to
        # three bits below its LSB (guard, round, and a sticky bit that ORs everything further
        # down). Beyond L + 3 positions every bit is sticky, so the shift is clamped there.
        diff = Signal(exp_w, name="diff")
        m.d.comb += diff.eq(e_big - e_sml)
        dmax = L + 3
        dcl = Signal(range(dmax + 1), name="diff_clamped")
        m.d.comb += dcl.eq(Mux(diff > dmax, dmax, diff))
        K = L + 3                                  # fraction bits below sml_sig: nothing falls off
        wide = Signal(L + K, name="sml_wide")
        m.d.comb += wide.eq(Cat(Const(0, K), sml_sig) >> dcl)
        sml_ext = Signal(L + 3, name="sml_ext")   # significand, guard, round, sticky
        m.d.comb += sml_ext.eq(Cat(wide[K - 3] | wide[:K - 3].any(), wide[K - 2:]))
        big_ext = Signal(L + 3, name="big_ext")
        m.d.comb += big_ext.eq(Cat(Const(0, 3), big_sig))

        # Add or subtract (|big| >= |sml|, so the difference is never negative).
        raw = Signal(L + 4, name="raw_sum")
        m.d.comb += raw.eq(Mux(sub, big_ext - sml_ext, big_ext + sml_ext))

        # Normalize. A carry out shifts right once (its LSB ORed into the sticky bit); otherwise
        # shift left by the leading zeros of the low L + 3 bits, floored at exponent 1.
        exp_ext_w = exp_w + 2              # exponent with room for the carry and the rounding
        e_wide = Signal(exp_ext_w, name="e_wide")
        m.d.comb += e_wide.eq(e_big)
        carry = raw[L + 3]
        right = Signal(L + 3, name="norm_right")
        m.d.comb += right.eq(Cat(raw[0] | raw[1], raw[2:L + 4]))
        left_sig, left_exp = _normalize_left(m, raw[:L + 3], e_wide, "norm")
        norm = Signal(L + 3, name="norm_sig")
        norm_e = Signal(exp_ext_w, name="norm_exp")
        m.d.comb += [
            norm.eq(Mux(carry, right, left_sig)),
            norm_e.eq(Mux(carry, e_wide + 1, left_exp)),
        ]

        # Round to nearest, ties to even: up if guard and (round or sticky or LSB).
        sig = norm[3:]
        guard, rest = norm[2], norm[1] | norm[0]
        up = guard & (rest | sig[0])
        rounded = Signal(L + 1, name="rounded")
        m.d.comb += rounded.eq(sig + up)
        fin_sig = Signal(L, name="fin_sig")
        fin_e = Signal(exp_ext_w, name="fin_exp")
        # A round-up carry (all ones + 1) leaves 1.000 x 2: shift right once, exactly.
        m.d.comb += [
            fin_sig.eq(Mux(rounded[L], rounded[1:], rounded[:L])),
            fin_e.eq(Mux(rounded[L], norm_e + 1, norm_e)),
        ]

        # Pack. A clear hidden bit means a subnormal (or zero): exponent field 0.
        overflow = fin_e >= f.exp_max
        exp_field = Mux(fin_sig[frac_w], fin_e[:exp_w], 0)
        zero_sum = ~raw.any()
        sign = Mux(zero_sum & sub, 0, big_s)
        finite = Signal(f.width, name="finite")
        m.d.comb += finite.eq(Mux(overflow, Cat(Const(0, frac_w), Const(f.exp_max, exp_w), sign),
                                  Cat(fin_sig[:frac_w], exp_field, sign)))

        is_nan = nan_a | nan_b | (inf_a & inf_b & sub)
        inf_sign = Mux(inf_a, sa, sb)
        with m.If(is_nan):
            m.d.comb += self.s.eq(f.canonical_nan())
        with m.Elif(inf_a | inf_b):
            m.d.comb += self.s.eq(Cat(Const(0, frac_w), Const(f.exp_max, exp_w), inf_sign))
        with m.Else():
            m.d.comb += self.s.eq(finite)
        return m


class FpPow2(wiring.Component):
    """y = x * 2**e for an `e_bits`-bit exponent step `e` (combinational): unsigned (0 .. 2^e_bits
    - 1), or two's complement when `e_signed` (-2^(e_bits-1) .. 2^(e_bits-1) - 1).

    The exponent is added to the biased exponent; a subnormal is first normalized by the same
    left shift as the adder's (floored at exponent 1), so it scales into the normals exactly.
    A negative step whose result falls below the normals shifts the significand right into the
    subnormal field with guard and sticky bits and rounds to nearest even (the one inexact case
    besides overflow). +-0 and +-inf pass unchanged, overflow gives +-inf, any NaN gives the
    canonical NaN.

    Attributes
    ----------
    x : In(fmt.width)
    e : In(e_bits), or In(signed(e_bits)) when e_signed
    y : Out(fmt.width)
    """

    def __init__(self, fmt: FpFormat, e_bits: int = 2, e_signed: bool = False):
        self.fmt = fmt
        self.e_bits = e_bits
        self.e_signed = e_signed
        super().__init__({"x": In(fmt.width), "e": In(signed(e_bits) if e_signed else e_bits),
                          "y": Out(fmt.width)})

    def elaborate(self, platform):
        f = self.fmt
        m = Module()
        mb, eb = f.man_bits, f.exp_bits
        sx, ex, mx, nan_x, inf_x, _ = f.unpack(self.x)
        ew = max(eb, self.e_bits) + 1
        sig = Signal(mb + 1, name="sig")
        m.d.comb += sig.eq(Cat(mx, ex.any()))
        if not self.e_signed:
            # biased exponent after scaling, before normalizing
            target = Signal(ew, name="target_exp")
            m.d.comb += target.eq(Mux(ex.any(), ex, 1) + self.e)
            nsig, nexp = _normalize_left(m, sig, target, "norm")
            finite = Cat(nsig[:mb], Mux(nsig[mb], nexp[:eb], 0), sx)
        else:
            # target = max(ex, 1) + e as a signed number; >= 1: the unsigned path (exact); < 1:
            # the value is sig * 2^(target - 1) subnormal units, i.e. sig >> (1 - target), rounded
            target = Signal(signed(ew + 1), name="target_exp")
            m.d.comb += target.eq(Mux(ex.any(), ex, 1) + self.e)
            up_exp = Signal(ew, name="target_pos")
            m.d.comb += up_exp.eq(target[:ew])
            nsig, nexp = _normalize_left(m, sig, up_exp, "norm")
            kmax = 1 << (self.e_bits - 1)          # 1 - target <= -min(e) = 2^(e_bits-1)
            k = Signal(range(kmax + 1), name="rshift")
            m.d.comb += k.eq((1 - target)[:len(k)])
            wide = Signal(mb + 1 + kmax, name="rshift_wide")
            m.d.comb += wide.eq(Cat(Const(0, kmax), sig) >> k)
            q = wide[kmax:]
            guard, sticky = wide[kmax - 1], wide[:kmax - 1].any() if kmax > 1 else Const(0, 1)
            rnd = Signal(mb + 1, name="rshift_rounded")   # <= 2^mb: a carry is the smallest normal
            m.d.comb += rnd.eq(q + (guard & (sticky | q[0])))
            below = Signal(name="below_normal")
            m.d.comb += below.eq(target < 1)
            finite = Mux(below, Cat(rnd[:mb], rnd[mb], Const(0, eb - 1), sx),
                         Cat(nsig[:mb], Mux(nsig[mb], nexp[:eb], 0), sx))
            nexp = Mux(below, 0, nexp)
        overflow = nexp >= f.exp_max
        with m.If(nan_x):
            m.d.comb += self.y.eq(f.canonical_nan())
        with m.Elif(inf_x | overflow):
            m.d.comb += self.y.eq(Cat(Const(0, mb), Const(f.exp_max, eb), sx))
        with m.Else():
            m.d.comb += self.y.eq(finite)
        return m


class FpPromote(wiring.Component):
    """Exact widening y = x from a narrow binary format to a wider one (combinational).

    A subnormal of the narrow format is normalized (every narrow subnormal is a wide normal when
    the wide exponent range is larger); +-0 and +-inf keep their sign, any NaN gives the wide
    canonical NaN.

    Attributes
    ----------
    x : In(src.width)
    y : Out(dst.width)
    """

    def __init__(self, src: FpFormat, dst: FpFormat):
        self.src = src
        self.dst = dst
        super().__init__({"x": In(src.width), "y": Out(dst.width)})

    def elaborate(self, platform):
        s, d = self.src, self.dst
        m = Module()
        sx, ex, mx, nan_x, inf_x, zero_x = s.unpack(self.x)
        lz = leading_zeros(m, mx, "lz")           # only used for subnormals (mx != 0 there)
        # A subnormal 0.mx x 2**(1 - bias_s): the leading one at fraction bit (man_bits - 1 - lz)
        # is the hidden bit, at unbiased exponent 1 - bias_s - (lz + 1).
        sub_exp = Signal(d.exp_bits, name="sub_exp")
        sub_man = Signal(d.man_bits, name="sub_man")
        shifted = Signal(s.man_bits, name="sub_frac")
        m.d.comb += [
            shifted.eq((mx << (lz + 1))[:s.man_bits]),
            sub_exp.eq(d.bias - s.bias - lz),
            sub_man.eq(Cat(Const(0, d.man_bits - s.man_bits), shifted)),
        ]
        wide_man = Cat(Const(0, d.man_bits - s.man_bits), mx)
        with m.If(nan_x):
            m.d.comb += self.y.eq(d.canonical_nan())
        with m.Elif(inf_x):
            m.d.comb += self.y.eq(Cat(Const(0, d.man_bits), Const(d.exp_max, d.exp_bits), sx))
        with m.Elif(zero_x):
            m.d.comb += self.y.eq(Cat(Const(0, d.width - 1), sx))
        with m.Elif(~ex.any()):
            m.d.comb += self.y.eq(Cat(sub_man, sub_exp, sx))
        with m.Else():
            m.d.comb += self.y.eq(Cat(wide_man, (ex + (d.bias - s.bias))[:d.exp_bits], sx))
        return m


def Fp16Add() -> FpAdd:
    """binary16 adder: a, b: In(16); s: Out(16)."""
    return FpAdd(FP16)


def Fp32Add() -> FpAdd:
    """binary32 adder: a, b: In(32); s: Out(32)."""
    return FpAdd(FP32)


def Fp16Pow2(e_bits: int = 2, e_signed: bool = False) -> FpPow2:
    """binary16 x * 2**e: x: In(16), e: In(e_bits) (signed when e_signed); y: Out(16)."""
    return FpPow2(FP16, e_bits, e_signed)


def Fp16Pow2Signed() -> FpPow2:
    """binary16 x * 2**e for e in -4..3 (a 3-bit two's-complement step: halving and more, RNE
    below the normals): x: In(16), e: In(signed(3)); y: Out(16)."""
    return FpPow2(FP16, 3, True)


def Fp32Pow2(e_bits: int = 2, e_signed: bool = False) -> FpPow2:
    """binary32 x * 2**e: x: In(32), e: In(e_bits) (signed when e_signed); y: Out(32)."""
    return FpPow2(FP32, e_bits, e_signed)


def Fp32Pow2Signed() -> FpPow2:
    """binary32 x * 2**e for e in -4..3: x: In(32), e: In(signed(3)); y: Out(32)."""
    return FpPow2(FP32, 3, True)


def Fp16ToFp32() -> FpPromote:
    """Exact binary16 -> binary32 promotion: x: In(16); y: Out(32)."""
    return FpPromote(FP16, FP32)


_BLOCKS = {"fp16_add": Fp16Add, "fp32_add": Fp32Add, "fp16_pow2": Fp16Pow2, "fp32_pow2": Fp32Pow2,
           "fp16_pow2s": Fp16Pow2Signed, "fp32_pow2s": Fp32Pow2Signed, "fp16_to_fp32": Fp16ToFp32}


def to_verilog(block: str, name: str | None = None) -> str:
    """Verilog of one block (`fp16_add`, `fp32_add`, `fp16_pow2`, `fp32_pow2`, `fp16_pow2s`,
    `fp32_pow2s` (signed step -4..3), `fp16_to_fp32`)."""
    if block not in _BLOCKS:
        from tpesim.errors import ConfigError
        raise ConfigError(f"block must be one of {', '.join(_BLOCKS)}, not {block!r}")
    return _common.convert(_BLOCKS[block], block, name)

"""A vectorisable ``exp`` for numba loops (libm's ``exp`` is an opaque call that stops LLVM from
vectorising a loop; this one is plain arithmetic and bit moves, so it does not).

Range reduction ``x = k ln2 + r`` after Cody & Waite (1980): Cody WJ, Waite W, Software Manual for
the Elementary Functions, Prentice-Hall. ``2**k`` is assembled in the exponent bits of a double
(IEEE 754), the integer ``k`` comes from the 1.5 * 2**52 rounding trick.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_EXP_CAP = 200.0  # exp(200) ~ 7e86: products of three stay finite, 1 / (1 + e) is already 0
_EXP_FLOOR = -700.0  # exp(-700) ~ 1e-304 (no subnormals); 1 + e is already 1
_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite 1980)
_LN2_LO = 1.90821492927058770002e-10
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the mantissa


@intrinsic
def _bits_to_float(typingctx, x):  # pragma: no cover - numba
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _float_to_bits(typingctx, x):  # pragma: no cover - numba
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})
def vexp(x):  # pragma: no cover - numba
    """``exp(x)`` to about 1 ulp, written so that LLVM vectorises the loops that call it.

    ``x = k ln2 + r`` with ``|r| <= ln2 / 2`` (``k`` rounded with the 1.5 * 2**52 trick, ``ln 2``
    in two parts), ``exp(r)`` by its Taylor series to degree 12 (truncation < 2e-16), and ``2**k``
    built in the exponent bits. The argument is clipped to [-700, 200]: the merged fractions of the
    loops never form inf / inf at absurd voltages, and no subnormal number slows them down (the
    sigmoids are 0 or 1 to double precision long before either bound).
    """
    x = x if x < _EXP_CAP else _EXP_CAP
    x = x if x > _EXP_FLOOR else _EXP_FLOOR
    kd = x * _INV_LN2 + _ROUND_MAGIC
    bits = _float_to_bits(kd)
    kd = kd - _ROUND_MAGIC
    r = (x - kd * _LN2_HI) - kd * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # the low bits of ``bits`` hold k; shifted into the exponent field they make 2**k
    return p * _bits_to_float((bits + 1023) << 52)

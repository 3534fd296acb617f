"""Integer arithmetic with C++ semantics: the one truncating division of the project.

Python's ``//`` floors (``-7 // 3 == -3``); bitbay-core's C++ truncates toward zero (``-7 / 3 == -2``).
Fractions can be negative (pegshift vectors, removecoins results, delta encodings), so every division in
peg arithmetic goes through :func:`tdiv`.
"""

from __future__ import annotations

from halo_exchange.errors import PegError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class UndefinedInCpp(PegError):
    """The C++ would have no defined result here (memory it never wrote, an index outside its vector, a
    division trap or a signed overflow whose result matters): we refuse (docs/conformance.md)."""


def check_int64(value: int, what: str = "a sum") -> int:
    """``value`` if it fits int64; where the C++ computes it in int64 and it does not, its result is
    undefined (signed overflow), and we refuse."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise UndefinedInCpp(f"{what} {value} overflows int64")
    return value


def wrap64(value: int) -> int:
    """``value`` wrapped to int64 as two's complement, as the compiled C++ does when an int64 overflows.

    Signed overflow is undefined in C++, but where bitbay-core's bytes on disk depend on it (the delta
    codec of ``CFractions::Pack``) the compiled code wraps, and we must write and read the same bytes.
    """
    return ((value - INT64_MIN) & 0xFFFFFFFFFFFFFFFF) + INT64_MIN


def tdiv(a: int, b: int) -> int:
    """``a / b`` truncated toward zero, as C++ integer division. ``b`` must not be 0."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def ratio(value: int, part: int, total: int) -> int:
    """bitbay-core's scalar ``RatioPart(v, part, total)``: ``v * part / total`` truncated, 0 if part or total is 0.

    When ``v * part`` overflows int64 the C++ redoes it in Boost's ``uint128_t`` (Boost 1.74, as compiled):
    negative operands wrap modulo 2^128 there, the quotient is unsigned, and ``convert_to<int64_t>``
    saturates anything above INT64_MAX to INT64_MAX. This reproduces that, so a negative operand with a
    large product gives the C++'s answer rather than the mathematical one.
    """
    if part == 0 or total == 0:
        return 0
    product = value * part
    if INT64_MIN <= product <= INT64_MAX:
        if product == INT64_MIN and total == -1:
            raise UndefinedInCpp("INT64_MIN / -1 traps in the C++")
        return tdiv(product, total)
    quotient = ((value % _U128) * (part % _U128) % _U128) // (total % _U128)
    return min(quotient, INT64_MAX)


_U128 = 1 << 128

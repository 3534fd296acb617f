"""Integer arithmetic with C++ semantics: the one truncating division of the project.

Python's ``//`` floors (``-7 // 3 == -3``); bitbay-core's C++ truncates toward zero (``-7 / 3 == -2``).
Fractions can be negative (pegshift vectors, removecoins results, delta encodings), so every division in
peg arithmetic goes through :func:`tdiv`.
"""

from __future__ import annotations

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


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

    The product is exact here (Python ints). bitbay-core switches to uint128 when the int64 product
    overflows, which wraps for a negative ``value``; that corner (products beyond 9.2e18 with negative
    fractions) is the one place this port deliberately gives the mathematically exact answer instead.
    """
    if part == 0 or total == 0:
        return 0
    return tdiv(value * part, total)

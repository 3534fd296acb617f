"""Halo's liquidity rating of an exchange input, and the ``subpremium`` figure built on it.

The rating says how far above the supply an input's liquid sits: walking the liquid fractions upward, each
time the running share of the liquid first exceeds another tenth, the distance from the supply is noted; the
score is the sum of the first nine (distance × share) pairs (reference/halo-behaviour.md §1.6). A fresh split
scores 543 at any supply; liquid bunched just above the supply scores low, and inputs scoring below 200 count
as *subpremium*: information for the operator, no allocation depends on it.

The original computes this in floating point, and its float sums cross a threshold early in some cases (ten
equal fractions score 32 there, 33 exactly; fifty score 139 there, 147 exactly). This port is exact integer
arithmetic (halo-behaviour §5, B27): ``share > m/10`` is ``10 × running > m × total``.
"""

from __future__ import annotations

from halo_exchange.peg.fractions import Fractions

SUBPREMIUM_RATING = 200
_MAX_STEPS = 20  # the original's cap on m
_PAIRS = 9


def liquidity_rating(fractions: Fractions, supply: int) -> int:
    """The rating score of ``fractions`` at ``supply``; 0 when there is no liquid."""
    values = fractions.to_list()
    total = sum(values[supply:]) if supply >= 0 else fractions.total()
    if total <= 0:
        return 0
    pairs: list[tuple[int, int]] = []
    running = 0
    step = 1
    for index in range(max(supply, 0), len(values)):
        value = values[index]
        if not value:
            continue  # only present (non-zero) fractions are walked
        running += value
        while step <= _MAX_STEPS and 10 * running > step * total:
            pairs.append((index - supply, running))
            step += 1
    return sum(distance * running for distance, running in pairs[:_PAIRS]) // total


def is_subpremium(fractions: Fractions, supply: int) -> bool:
    return liquidity_rating(fractions, supply) < SUBPREMIUM_RATING

"""Peg cycles, vote weight and the supply index schedule (bitbay-core ``peg.cpp``; peg-spec §2).

A peg cycle is ``interval`` blocks. Stakers vote inflate, deflate or no change with a weight that grows
with how liquid their staked coins are; the votes of cycles c-3 and c-4 move the supply index of cycle c by
at most three steps. Pure: no I/O.
"""

from __future__ import annotations

from typing import Sequence

from halo_exchange.errors import PegError
from halo_exchange.peg.arith import tdiv
from halo_exchange.peg.fractions import Fractions

MAX_SUPPLY_INDEX = 1198  # nPegMaxSupplyIndex: the highest index the network can reach
MAINNET_INTERVAL = 200
TESTNET_INTERVAL = 20

# Positions of the three counters in a votes triple.
INFLATE, DEFLATE, NOCHANGE = 0, 1, 2


def cycle_of(height: int, interval: int) -> int:
    """The peg cycle a block height belongs to: ``height / interval``."""
    if interval <= 0:
        raise PegError("peg interval must be positive")
    return tdiv(height, interval)


def is_cycle_start(height: int, interval: int) -> bool:
    """True for the first block of a cycle, where the supply index may change."""
    return height % interval == 0


def vote_weight(fractions: Fractions, supply: int) -> int:
    """Weight of a stake's vote from the fractions of the coinstake's first input (``CalculatePegVotes``).

    With ``R`` the reserve and ``L`` the liquid at ``supply``, ``L' = L - trunc(L*supply/1198)`` and
    ``mult = supply/120 + 1``: the weight is 4, 3 or 2 times ``mult`` when ``L'`` exceeds 4, 3 or 2 times
    ``R``, and plain 1 otherwise.
    """
    reserve = fractions.low(supply)
    liquid = fractions.high(supply)
    adjusted = liquid - tdiv(liquid * supply, MAX_SUPPLY_INDEX)
    mult = tdiv(supply, 120) + 1
    for factor in (4, 3, 2):
        if adjusted > factor * reserve:
            return factor * mult
    return 1


def next_supply_index(base: int, votes: Sequence[int], votes_prev: Sequence[int]) -> int:
    """The supply index after one cycle's votes (``ComputeNextPegSupplyIndex``).

    ``votes`` and ``votes_prev`` are ``(inflate, deflate, nochange)`` totals of the deciding cycle and of
    the cycle before it. A strict winner moves the index one step (deflate up, inflate down), one more when
    it beats twice each other counter of the previous cycle, one more at three times; then the index is
    clamped to ``[0, 1198]``. Ties change nothing.
    """
    inflate, deflate, nochange = votes
    inflate_prev, deflate_prev, nochange_prev = votes_prev
    index = base
    if deflate > inflate and deflate > nochange:
        index += 1
        if deflate > 2 * inflate_prev and deflate > 2 * nochange_prev:
            index += 1
        if deflate > 3 * inflate_prev and deflate > 3 * nochange_prev:
            index += 1
    elif inflate > deflate and inflate > nochange:
        index -= 1
        if inflate > 2 * deflate_prev and inflate > 2 * nochange_prev:
            index -= 1
        if inflate > 3 * deflate_prev and inflate > 3 * nochange_prev:
            index -= 1
    return max(0, min(index, MAX_SUPPLY_INDEX))

"""Cycles and vote weights (bitbay-core CalculatePegVotes); the supply rule itself is in test_peg_vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halo_exchange.errors import PegError
from halo_exchange.peg import Fractions, cycle_of, next_supply_index, vote_weight
from halo_exchange.peg.votes import is_cycle_start


def test_cycle_of_and_cycle_start() -> None:
    """Cycle = height / interval; the first block of a cycle is height % interval == 0."""
    assert cycle_of(399, 200) == 1 and cycle_of(400, 200) == 2 and cycle_of(19, 20) == 0
    assert is_cycle_start(400, 200) and not is_cycle_start(401, 200)
    with pytest.raises(PegError):
        cycle_of(10, 0)


def test_vote_weight_thresholds() -> None:
    """Weight 4/3/2 x (S/120+1) when the adjusted liquid beats 4/3/2 x reserve, else plain 1."""
    # S = 240: R = 200, L = 1000, L' = 1000 - 1000*240/1198 = 800, mult = 3. 800 > 600 but not > 800.
    stake = Fractions([200] + [0] * 1198 + [1000])
    assert vote_weight(stake, 240) == 9
    # Everything liquid at S = 0: L' = L > 4 * 0.
    assert vote_weight(Fractions.std(10**8), 0) == 4
    # Everything reserve: L' = 0, weight is plain 1 (not 1 x mult).
    assert vote_weight(Fractions([10**8]), 600) == 1
    # L' = 2R exactly is not more than 2R.
    assert vote_weight(Fractions([100] + [0] * 1198 + [200]), 1) == 1


@given(st.integers(0, 1198), st.tuples(*[st.integers(0, 10**6)] * 3), st.tuples(*[st.integers(0, 10**6)] * 3))
def test_supply_moves_at_most_three_and_stays_in_range(base, votes, votes_prev) -> None:
    """Each cycle moves the index by at most 3 and keeps it within [0, 1198]."""
    nxt = next_supply_index(base, votes, votes_prev)
    assert 0 <= nxt <= 1198 and abs(nxt - base) <= 3

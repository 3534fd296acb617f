"""Halo's liquidity rating, exact in integers (halo-behaviour §1.6, §6.1 test 5, with the float artifacts fixed)."""

from __future__ import annotations

import pytest

from halo_exchange.ledger.rating import is_subpremium, liquidity_rating
from halo_exchange.peg import Fractions


@pytest.mark.parametrize("supply", [0, 3, 10])
def test_fresh_split_scores_543(supply: int) -> None:
    """A fresh split scores 543 whatever the supply (the original's 'goodscore')."""
    assert liquidity_rating(Fractions.std(100_000_000), supply) == 543


def test_bunched_and_top_heavy_liquid() -> None:
    """Liquid bunched just above the supply scores low (subpremium); all of it in the top fraction scores 10,755."""
    ten = Fractions([0, 0, 0] + [1000] * 10)
    fifty = Fractions([0, 0, 0] + [1000] * 50)
    top = Fractions([0] * 1198 + [5000])
    # Exactly: 33 and 147 (the original's float sums give 32 and 139).
    assert liquidity_rating(ten, 3) == 33 and liquidity_rating(fifty, 3) == 147
    assert liquidity_rating(top, 3) == 10755
    assert is_subpremium(ten, 3) and is_subpremium(fifty, 3) and not is_subpremium(top, 3)


def test_no_liquid_scores_zero() -> None:
    """An input with nothing above the supply scores 0."""
    assert liquidity_rating(Fractions([7] * 10), 10) == 0

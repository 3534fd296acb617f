"""The pooled-share book: credits split at the supply, trades move shares, cycle updates move only the band,
and every index of the book stays conserved; differential checks against the peg.ops reference."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain.params import COIN
from halo_exchange.ledger.book import Book, InsufficientFunds, LedgerError
from halo_exchange.peg import Fractions, PegData, PegLevel, ops
from tests import strategies as hs


def test_credit_splits_at_the_supply() -> None:
    """A deposit's fractions below the supply are reserve, the rest liquid (1 BAY at 100: peg-spec V01)."""
    book = Book(1, 100)
    assert book.credit("alice", Fractions.std(COIN)) == (36603265, 63396735)
    assert book.balance("alice") == (36603265, 63396735)
    assert book.check() == []


def test_liquid_trade_moves_shares_only() -> None:
    """A liquid trade changes two balances by the amount and leaves every index of the book alone."""
    book = Book(1, 100)
    book.credit("alice", Fractions.std(10 * COIN))
    book.credit("bob", Fractions.std(COIN))
    pool_before = list(book.pool)
    alice, bob = book.balance("alice"), book.balance("bob")
    book.move_liquid("alice", "bob", 12345)
    assert book.balance("alice") == (alice[0] - 12345, alice[1])
    assert book.balance("bob") == (bob[0] + 12345, bob[1])
    assert book.pool == pool_before and book.check() == []


def test_refused_operations_change_nothing() -> None:
    """Too much, negative or unknown: a clear error and an unchanged book."""
    book = Book(1, 100)
    book.credit("alice", Fractions.std(COIN))
    state = (book.balance("alice"), list(book.pool), list(book.book))
    with pytest.raises(InsufficientFunds):
        book.move_liquid("alice", "bob", 36603266)
    with pytest.raises(InsufficientFunds):
        book.move_reserve("alice", "bob", 63396736)
    with pytest.raises(LedgerError):
        book.move_liquid("alice", "bob", -1)
    with pytest.raises(LedgerError):
        book.move_liquid("carol", "alice", 1)
    with pytest.raises(InsufficientFunds):
        book.debit_liquid("alice", 10**9)
    assert (book.balance("alice"), list(book.pool), list(book.book)) == state
    assert "bob" not in book.accounts


def test_reserve_trade_moves_a_proportional_slice() -> None:
    """A reserve trade moves a slice of the source's own reserve fractions, per index."""
    book = Book(1, 10)
    book.credit("alice", Fractions([100] * 20))
    book.move_reserve("alice", "bob", 250)
    assert list(book.account("bob").reserve) == [25] * 10
    assert book.balance("alice") == (1000, 750) and book.balance("bob") == (0, 250)
    assert book.check() == []


def test_single_account_matches_its_own_fractions_across_cycles() -> None:
    """With one account the pooled form is exact: reserve is always Low(supply) of its fractions."""
    fractions = Fractions.std(123 * COIN + 45)
    book = Book(1, 50)
    book.credit("solo", fractions)
    for cycle, supply in enumerate([53, 56, 54, 51, 48, 49, 52], start=2):
        book.new_cycle(cycle, supply)
        assert book.balance("solo") == (fractions.high(supply), fractions.low(supply))
        assert book.check() == []


def test_deflation_apportions_the_band_by_liquid_share() -> None:
    """On deflation the band becomes reserve in proportion to liquid; the pool below the supply is empty."""
    book = Book(1, 0)
    book.credit("big", Fractions.std(300 * COIN))
    book.credit("small", Fractions.std(100 * COIN))
    book.new_cycle(2, 3)
    band = Fractions.std(400 * COIN).low(3)
    big, small = book.balance("big")[1], book.balance("small")[1]
    assert big + small == band and abs(big - 3 * small) <= 4
    assert book.pool[:3] == [0, 0, 0] and book.check() == []


def test_debits_remove_fractions_from_the_book() -> None:
    """Withdrawal debits take a slice of the pool (liquid) or of the account's reserve out of the book."""
    book = Book(1, 100)
    book.credit("alice", Fractions.std(COIN))
    liquid = book.debit_liquid("alice", 1000)
    reserve = book.debit_reserve("alice", 2000)
    assert liquid.total() == 1000 and liquid.low(100) == 0
    assert reserve.total() == 2000 and reserve.high(100) == 0
    assert book.balance("alice") == (36603265 - 1000, 63396735 - 2000)
    assert sum(book.book) == COIN - 3000 and book.check() == []


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1196), st.lists(hs.book_operations, max_size=40))
def test_random_operations_keep_every_invariant(supply: int, operations) -> None:
    """Any sequence of credits, trades, debits and cycle moves keeps per-index conservation, liquid +
    reserve = value, and nothing negative; refused operations change nothing."""
    book = Book(1, supply)
    value: dict[str, int] = {}
    for op in operations:
        try:
            for name, delta in hs.apply_book_operation(book, op).items():
                value[name] = value.get(name, 0) + delta
        except LedgerError:
            pass
        assert book.check() == []
    for name, expected in value.items():
        if name in book.accounts:
            assert book.account(name).value == expected


def _reference_cycle(ref: dict[str, PegData], level: PegLevel, cycle: int, supply: int):
    exchange = Fractions.zero()
    for balance in ref.values():
        exchange = exchange + balance.fractions
    level, pool = ops.get_peg_level(cycle, cycle - 1, 0, supply, supply, supply, PegData.at_level(exchange, level),
                                    PegData.from_base64(""))
    for name in ref:
        ref[name], pool = ops.update_peg_balance(ref[name], pool, level)
    assert pool.fractions.is_zero()
    return level


@pytest.mark.parametrize("seed", range(12))
def test_differential_against_pegops(seed: int) -> None:
    """Against peg.ops over cycles with trades: identical values per user, and per-user liquid within the
    documented bound (docs/ledger.md): band width x accounts + 1 satoshi per cycle, because the reference's
    remainder walk hands each rounding satoshi of the band to the users it updates first."""
    rng = random.Random(seed)
    supply = rng.randint(0, 600)
    level = PegLevel(1, 0, 0, supply, supply, supply)
    book = Book(1, supply)
    ref: dict[str, PegData] = {}
    for u in range(6):
        fractions = Fractions.std(rng.randint(10**6, 10**12))
        book.credit(f"user{u}", fractions)
        ref[f"user{u}"] = PegData.at_level(fractions, level, id=u + 1)
    # Every cycle starts from updated balances: one update at the same supply gives the reference balances
    # the pool's liquid shape, which the book's balances have from the start.
    level = _reference_cycle(ref, level, 2, supply)
    book.new_cycle(2, supply)
    deviation = {name: 0 for name in ref}
    for cycle in range(3, 9):
        for _ in range(rng.randint(0, 10)):
            a, b = rng.sample(list(ref), 2)
            amount = rng.randint(0, min(ref[a].liquid, book.balance(a)[0]))
            book.move_liquid(a, b, amount)
            ref[a], ref[b] = ops.move_liquid(amount, ref[a], ref[b], level)
        old = supply
        supply = max(0, min(1196, supply + rng.randint(-3, 3)))
        level = _reference_cycle(ref, level, cycle, supply)
        book.new_cycle(cycle, supply)
        assert book.check() == []
        bound = abs(supply - old) * len(ref) + 1
        for name, balance in ref.items():
            liquid, reserve = book.balance(name)
            assert liquid + reserve == balance.liquid + balance.reserve
            step = (liquid - balance.liquid) - deviation[name]
            assert abs(step) <= bound, (name, step, bound)
            deviation[name] += step


def test_reserve_entries_widen_to_64_bits_when_needed() -> None:
    """Small reserves are kept in 32-bit entries; an entry beyond 2^31 widens the array, values exact."""
    book = Book(1, 5)
    book.credit("small", Fractions.std(10 * COIN))
    book.credit("large", Fractions.std(10**6 * COIN))  # f[0] = 10^12, beyond 32 bits
    assert book.account("small").reserve.typecode == "i"
    assert book.account("large").reserve.typecode == "q"
    assert list(book.account("large").reserve) == Fractions.std(10**6 * COIN).to_list()[:5]
    # An entry pushed past 2^31 by a trade widens the receiving account's array.
    book = Book(1, 1)
    book.credit("edge", Fractions([2**31 - 1]))
    book.credit("give", Fractions([10]))
    assert book.account("edge").reserve.typecode == "i"
    book.move_reserve("give", "edge", 10)
    assert book.account("edge").reserve.typecode == "q" and list(book.account("edge").reserve) == [2**31 + 9]
    assert book.check() == []


def test_cycle_with_no_liquid_anywhere() -> None:
    """B15: a supply change when no account holds liquid divides by nothing and changes nothing."""
    book = Book(1, 5)
    book.credit("alice", Fractions([7] * 5))  # all reserve
    book.new_cycle(2, 8)
    book.new_cycle(3, 2)
    assert book.balance("alice") == (21, 14) and book.check() == []

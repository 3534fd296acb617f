"""The withdrawal records' rules: commission arithmetic, the cycle windows, escrow drift, expiry, coin reorgs."""

from __future__ import annotations

from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.ledger.coins import Coin, CoinIndex
from halo_exchange.ledger.withdrawals import (
    DEFAULT_COMMISSION,
    Window,
    Withdrawal,
    WithdrawalState,
    commission_for,
    window,
)
from halo_exchange.peg.fractions import Fractions

COIN = 100_000_000


def test_commission_is_clamped_integer_parts_per_million() -> None:
    """halo-behaviour §6.6 item 34: 0.1 % of 50 BAY is below the 1 BAY minimum; of 20,000 BAY above the 10 BAY
    maximum; {min 0.1 BAY} on 5 BAY gives the minimum; exact integers, never a float."""
    assert commission_for(50 * COIN, DEFAULT_COMMISSION) == COIN
    assert commission_for(20_000 * COIN, DEFAULT_COMMISSION) == 10 * COIN
    assert commission_for(5 * COIN, {"min": 10**7, "max": 10**9, "ppm": 1000}) == 10**7
    assert commission_for(123_456_789_012, {"min": 1, "max": 10**12, "ppm": 1234}) == 123_456_789_012 * 1234 // 10**6


def test_windows_scale_with_the_peg_interval() -> None:
    """The original's windows at interval 200 (liquid 10 < h < 75, reserve to 120, maintenance to 145,
    follow-up to 175) keep their proportions at the devnet's 20."""
    assert [window(h, 200) for h in (10, 11, 74, 75, 119, 120, 144, 145, 174, 175)] == [
        Window.NONE, Window.LIQUID, Window.LIQUID, Window.RESERVE, Window.RESERVE, Window.MAINTENANCE,
        Window.MAINTENANCE, Window.FOLLOW_UP, Window.FOLLOW_UP, Window.NONE]
    assert [h for h in range(20) if window(h, 20) is Window.LIQUID] == [2, 3, 4, 5, 6, 7]
    assert [h for h in range(20) if window(h, 20) is Window.RESERVE] == [8, 9, 10, 11]
    assert window(1_807_400 + 12, 200) is Window.LIQUID


def test_escrow_drift_returns_the_other_style_and_expiry_counts_cycles() -> None:
    """After a cycle moved part of a liquid escrow to reserve, the reserve part goes back and paid shrinks;
    a request of cycle c may still be batched in c + 1 and expires at c + 2."""
    liquid = Withdrawal("a" * 32, "karen", 10 * COIN, "B", "liquid", 100, cycle=5, commission=COIN, paid=10 * COIN)
    assert liquid.settle_drift(9 * COIN, COIN) == ("reserve", COIN)
    assert liquid.paid == 9 * COIN and liquid.payout == 8 * COIN
    reserve = Withdrawal("b" * 32, "karen", 3 * COIN, "B", "reserve", 100, cycle=5, commission=COIN, paid=3 * COIN)
    assert reserve.settle_drift(COIN // 2, 3 * COIN - COIN // 2) == ("liquid", COIN // 2)
    assert not liquid.expired_at(6) and liquid.expired_at(7)
    liquid.state = WithdrawalState.UNCONFIRMED
    assert not liquid.expired_at(9)  # a signed batch never expires: it is tracked to its end


def test_coin_index_undoes_a_disconnected_block_exactly() -> None:
    """A block's spends are undone and its change coins removed when it is disconnected; locks follow batches."""
    index = CoinIndex()
    deposit = Coin(OutPoint(b"\x01" * 32, 0), "Baddr", COIN, Fractions.from_value(COIN), 10, "deposit")
    index.add(deposit)
    index.lock([deposit.outpoint], "m" * 32)
    assert index.spendable() == []
    spender = Transaction(1, 0, (TxIn(deposit.outpoint),), (TxOut(COIN - 20_000, b"\x51"),))
    assert index.spend_inputs(spender, 12) == [deposit]
    index.add(Coin(OutPoint(spender.hash, 0), "Baddr", COIN - 20_000, Fractions.from_value(COIN - 20_000), 12,
                   "change"))
    index.block_disconnected(12)
    assert list(index.unspent()) == [deposit] and deposit.spent_height == -1
    index.unlock("m" * 32)
    assert index.spendable() == [deposit]
    index.spend_inputs(spender, 13)
    index.forget_spent_before(13 + 1001)
    assert index.coins == {}

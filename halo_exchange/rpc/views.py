"""The API's read models: ledger state shaped as the XML-RPC answers of reference/halo-behaviour.md §2.

Pure translation: each function takes the ledger's own objects (the deposit tracker, the book, a chain view,
a withdrawal record) and returns the dicts the calls answer, with the field names, types and string amounts
the original's clients expect. Nothing here decides or changes anything.
"""

from __future__ import annotations

from halo_exchange.chain.reader import ChainView
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.deposits import DepositState, DepositTracker
from halo_exchange.ledger.rating import is_subpremium
from halo_exchange.ledger.withdrawals import Withdrawal
from halo_exchange.peg.fractions import PEG_SIZE, Fractions


def spendable_entry(fractions: Fractions, supply: int, address: str, confirmations: int) -> dict:
    """One ``GetSpendable`` entry: amounts as strings (amount = ltotal + rtotal), supply as an int."""
    liquid, reserve = fractions.high(supply), fractions.low(supply)
    # nfreeze: the liquid a maximal deflation would freeze next (the three fractions above the supply, the
    # last fraction excluded as in the original).
    nfreeze = sum(fractions.to_list()[supply:min(supply + 3, PEG_SIZE - 1)])
    return {
        "amount": str(liquid + reserve),
        "ltotal": str(liquid),
        "rtotal": str(reserve),
        "nfreeze": str(nfreeze),
        "supply": supply,
        "address": address,
        "confirmations": str(confirmations),
    }


def spendable(view: ChainView, tracker: DepositTracker, address: str = "") -> dict[str, dict]:
    """``GetSpendable``: the exchange's unspent outputs valued at the network's supply, keyed ``txid:vout``:
    the deposits, and the change of transactions the exchange built itself (marked ``change: 1``)."""
    out = {}
    supply = view.peg_info().supply
    for d in tracker.deposits.values():
        if d.state is DepositState.REVERSED or (address and d.address != address):
            continue
        if view.utxo(d.txid, d.n) is None:
            continue
        out[str(d.outpoint)] = spendable_entry(d.fractions, supply, d.address, max(tracker.depth(d), 0))
    tip = view.height()
    for change in tracker.change_outputs(view):
        if address and change.address != address:
            continue
        entry = spendable_entry(change.fractions, supply, change.address, tip - change.height + 1)
        out[str(change.outpoint)] = {**entry, "change": 1}
    return out


def deposit_records(tracker: DepositTracker) -> dict[str, dict]:
    """``GetDeposits``: every deposit keyed ``txid:vout``."""
    return {
        str(d.outpoint): {
            "name": d.owner or "",
            "registered": int(d.state is DepositState.REGISTERED),
            "status": d.state.value,
            "confirmations": max(tracker.depth(d), 0),
            "amount": d.amount,
        }
        for d in tracker.deposits.values()
    }


def balance(book: Book, user: str) -> dict[str, int] | bool:
    """``GetBalance(user)``: liquid and reserve, or False for a name the book does not hold."""
    if user not in book.accounts:
        return False
    liquid, reserve = book.balance(user)
    return {"liquid": liquid, "reserve": reserve}


def exchange_balance(view: ChainView, book: Book, tracker: DepositTracker) -> dict[str, int]:
    """``GetBalance('exchange')``: the liquid and reserve the book holds, the liquid (at the network's supply)
    of registered unspent deposits rated subpremium (below 200, halo-behaviour §1.6), and the value of
    deposits still frozen."""
    supply = view.peg_info().supply
    liquid = book.pool_total
    return {
        "liquid": liquid,
        "reserve": sum(book.book) - liquid,
        "subpremium": sum(d.fractions.high(supply) for d in tracker.registered_unspent(view)
                          if is_subpremium(d.fractions, supply)),
        "frozen": tracker.frozen_total(),
    }


def withdrawal_status(withdrawal: Withdrawal) -> dict:
    """``CheckWithdraw``: the request's status record."""
    return {"ID": withdrawal.id, "status": withdrawal.state.value, "user": withdrawal.user,
            "amount": withdrawal.amount, "address": withdrawal.address, "style": withdrawal.style,
            "height": withdrawal.height}

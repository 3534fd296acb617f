"""The API's read models: ledger state shaped as the XML-RPC answers of reference/halo-behaviour.md §2.

Pure translation: each function takes the ledger's own objects (the deposit tracker, the book, a chain view,
a withdrawal record) and returns the dicts the calls answer, with the field names, types and string amounts
the original's clients expect. Nothing here decides or changes anything.
"""

from __future__ import annotations

from halo_exchange.chain.reader import ChainView
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.coins import CoinIndex
from halo_exchange.ledger.deposits import DepositState, DepositTracker
from halo_exchange.ledger.rating import is_subpremium
from halo_exchange.ledger.withdrawals import Batch, Withdrawal
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


def spendable(view: ChainView, tracker: DepositTracker, coins: CoinIndex, address: str = "") -> dict[str, dict]:
    """``GetSpendable``: the exchange's unspent outputs valued at the network's supply, keyed ``txid:vout``:
    the deposits not yet credited, the exchange's coins (credited deposits, and the change of transactions the
    exchange built itself, marked ``change: 1``), each marked ``locked: 1`` while a batch not yet confirmed
    spends it. Read from the indexes: no walk over every deposit ever seen."""
    out = {}
    supply = view.peg_info().supply
    for d in tracker.moving():
        if (address and d.address != address) or view.utxo(d.txid, d.n) is None:
            continue
        out[str(d.outpoint)] = spendable_entry(d.fractions, supply, d.address, max(tracker.depth(d), 0))
    tip = view.height()
    for coin in coins.unspent():
        if address and coin.address != address:
            continue
        entry = spendable_entry(coin.fractions, supply, coin.address, tip - coin.height + 1)
        if coin.origin == "change":
            entry["change"] = 1
        if coin.lock is not None:
            entry["locked"] = 1
        out[str(coin.outpoint)] = entry
    return dict(sorted(out.items()))


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


def exchange_balance(view: ChainView, book: Book, tracker: DepositTracker, coins: CoinIndex) -> dict[str, int]:
    """``GetBalance('exchange')``: the liquid and reserve the book holds, the liquid (at the network's supply)
    of the exchange's coins (credited deposits and change, as the original counted them) rated subpremium
    (below 200, halo-behaviour §1.6), and the value of deposits still frozen."""
    supply = view.peg_info().supply
    liquid = book.pool_total
    return {
        "liquid": liquid,
        "reserve": sum(book.book) - liquid,
        "subpremium": sum(coin.fractions.high(supply) for coin in coins.unspent()
                          if is_subpremium(coin.fractions, supply)),
        "frozen": tracker.frozen_total(),
    }


def batch_fields(batch: Batch | None) -> dict:
    """The master record of a batch, as the original's CheckWithdraw showed it: status, predicted txid, master
    ID, block (its height once mined, else the height it was built at), first input, and ``txid2`` when the
    transaction was malleated."""
    if batch is None:
        return {}
    fields = {"status": batch.state.value, "txid": batch.txid, "ID": batch.master_id,
              "block": batch.block if batch.block >= 0 else batch.built_height, "in0": batch.in0}
    if batch.txid2:
        fields["txid2"] = batch.txid2
    return fields


def withdrawal_status(withdrawal: Withdrawal, batch: Batch | None) -> dict:
    """``CheckWithdraw`` of a request: its own fields, then its batch's master record (status from the request)."""
    record = {
        "status": withdrawal.state.value, "user": withdrawal.user, "amount": withdrawal.amount,
        "paid": withdrawal.paid, "commission": withdrawal.commission, "address": withdrawal.address,
        "style": withdrawal.style, "withdrawID": withdrawal.id, "cycle": withdrawal.cycle,
        "height": withdrawal.height,
    }
    if withdrawal.client_id:
        record["clientID"] = withdrawal.client_id
    if withdrawal.note:
        record["note"] = withdrawal.note
    record.update({key: value for key, value in batch_fields(batch).items() if key != "status"})
    return record


def batch_status(batch: Batch) -> dict:
    """``CheckWithdraw`` of a master ID: the master record and the IDs of the requests it pays."""
    return {**batch_fields(batch), "kind": batch.kind.value, "withdraws": list(batch.members)}


def settings(stored: dict, commission: dict, confirmations: int, liquid_limit: int, reserve_limit: int) -> dict:
    """``GetSettings``: the settings in force, in ExchangeSettings' own terms (the commission's percent as the
    fraction it takes, 0.001 = 0.1 %), and whether a password is set. Never the password's hash."""
    return {
        "exchangeaccounts": list(stored.get("exchangeaccounts") or []),
        "exchangefeeaccount": stored.get("exchangefeeaccount") or "",
        "commission": {"min": commission["min"], "max": commission["max"],
                       "percent": commission["ppm"] / 1_000_000},
        "exchangeconfirmations": confirmations,
        "withdraw_liquid_limit": liquid_limit,
        "withdraw_reserve_limit": reserve_limit,
        "password": bool(stored.get("password")),
    }

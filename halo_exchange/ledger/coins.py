"""The exchange's coins: every output the exchange can spend, kept current block by block (no history scans).

A coin enters the index when a deposit is credited (its owner's balance now rests on it) or when a
transaction the exchange built pays an exchange address (change, a maintenance output). It leaves when a
block spends it; the spent record stays for :data:`~halo_exchange.ledger.deposits.REORG_DEPTH` blocks so a
disconnected block can put it back exactly. A coin may be *locked* by the master ID of the batch that spends
it, from the batch's commit until the batch confirms or fails, so two batches never pick the same coin.

Pure: the engine feeds it the block's transactions and writes what :meth:`take_changes` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from halo_exchange.chain.tx import OutPoint, Transaction
from halo_exchange.peg.fractions import Fractions

SPENT_MEMORY = 1000  # blocks a spent coin is remembered, for reorgs (as deep as the deposit tracker goes)


@dataclass
class Coin:
    """One exchange output. ``origin`` is "deposit" (a credited deposit) or "change" (an own transaction's)."""

    outpoint: OutPoint
    address: str
    value: int
    fractions: Fractions
    height: int
    origin: str
    lock: str | None = None  # master ID of the batch spending it
    spent_height: int = -1  # height of the block that spent it (-1: unspent)
    spent_by: bytes = b""  # txid of the transaction that spent it
    # The fractions' stored form, kept once made: a coin's fractions never change, while its lock and spent
    # marks do, and packing 1200 fractions is most of what rewriting a coin costs (a batch rewrites all its
    # inputs in the reactor turn that commits it).
    packed_fractions: bytes = field(default=b"", repr=False, compare=False)

    @property
    def spendable(self) -> bool:
        return self.spent_height < 0 and self.lock is None


class CoinIndex:
    """Every coin of the exchange, with locks and the spends a reorg may undo.

    Indexed so that a block, a lock change or a reorg touches only the coins concerned: unspent coins, change
    coins by the height of their block, spent coins by the height of the block that spent them, and locked
    coins by the batch that locks them.
    """

    def __init__(self) -> None:
        self.coins: dict[OutPoint, Coin] = {}
        self._changed: set[OutPoint] = set()
        self._unspent: set[OutPoint] = set()
        self._change_at: dict[int, set[OutPoint]] = {}
        self._spent_at: dict[int, set[OutPoint]] = {}
        self._locked: dict[str, set[OutPoint]] = {}

    def take_changes(self) -> set[OutPoint]:
        changed, self._changed = self._changed, set()
        return changed

    def restore(self, coins: Iterable[Coin]) -> None:
        self.__init__()
        for coin in coins:
            self._put(coin)

    def get(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)

    # -- the indexes ----------------------------------------------------------------------------------

    def _put(self, coin: Coin) -> None:
        self._take(coin.outpoint)
        self.coins[coin.outpoint] = coin
        if coin.spent_height < 0:
            self._unspent.add(coin.outpoint)
        else:
            self._spent_at.setdefault(coin.spent_height, set()).add(coin.outpoint)
        if coin.origin == "change":
            self._change_at.setdefault(coin.height, set()).add(coin.outpoint)
        if coin.lock is not None:
            self._locked.setdefault(coin.lock, set()).add(coin.outpoint)

    def _take(self, outpoint: OutPoint) -> Coin | None:
        coin = self.coins.pop(outpoint, None)
        if coin is None:
            return None
        self._unspent.discard(outpoint)
        _discard(self._spent_at, coin.spent_height, outpoint)
        _discard(self._change_at, coin.height, outpoint)
        if coin.lock is not None:
            _discard(self._locked, coin.lock, outpoint)
        return coin

    # -- changes --------------------------------------------------------------------------------------

    def add(self, coin: Coin) -> None:
        self._put(coin)
        self._changed.add(coin.outpoint)

    def remove(self, outpoint: OutPoint) -> None:
        if self._take(outpoint) is not None:
            self._changed.add(outpoint)

    def unspent(self) -> Iterator[Coin]:
        return (self.coins[outpoint] for outpoint in sorted(self._unspent))

    def spendable(self) -> list[Coin]:
        """Unspent, unlocked coins, in a stable order."""
        return [coin for coin in self.unspent() if coin.lock is None]

    def locked_by(self, master_id: str) -> list[Coin]:
        return [self.coins[outpoint] for outpoint in sorted(self._locked.get(master_id, ()))]

    def lock(self, outpoints: Iterable[OutPoint], master_id: str) -> None:
        for outpoint in outpoints:
            coin = self._take(outpoint)
            if coin is None:
                continue
            coin.lock = master_id
            self._put(coin)
            self._changed.add(outpoint)

    def unlock(self, master_id: str) -> None:
        for coin in self.locked_by(master_id):
            self._take(coin.outpoint)
            coin.lock = None
            self._put(coin)
            self._changed.add(coin.outpoint)

    # -- chain events ---------------------------------------------------------------------------------

    def spend_inputs(self, tx: Transaction, height: int) -> list[Coin]:
        """Mark the coins ``tx`` spends as spent at ``height``; return them."""
        spent = []
        for txin in tx.inputs:
            coin = self.coins.get(txin.prevout)
            if coin is not None and coin.spent_height < 0:
                self._take(coin.outpoint)
                coin.spent_height = height
                coin.spent_by = tx.hash
                self._put(coin)
                self._changed.add(coin.outpoint)
                spent.append(coin)
        return spent

    def block_disconnected(self, height: int) -> None:
        """Undo a block: its change coins leave, the coins it spent are unspent again."""
        for outpoint in sorted(self._change_at.get(height, set())):
            self.remove(outpoint)
        for outpoint in sorted(self._spent_at.get(height, set())):
            coin = self._take(outpoint)
            assert coin is not None
            coin.spent_height = -1
            coin.spent_by = b""
            self._put(coin)
            self._changed.add(outpoint)

    def forget_spent_before(self, height: int) -> None:
        """Drop spent coins older than the reorg memory."""
        limit = height - SPENT_MEMORY
        for spent_height in sorted(h for h in self._spent_at if h < limit):
            for outpoint in sorted(self._spent_at.get(spent_height, set())):
                self.remove(outpoint)


def _discard(index: dict, key: object, outpoint: OutPoint) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(outpoint)
        if not members:
            del index[key]

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
    """Every coin of the exchange, with locks and the spends a reorg may undo."""

    def __init__(self) -> None:
        self.coins: dict[OutPoint, Coin] = {}
        self._changed: set[OutPoint] = set()

    def take_changes(self) -> set[OutPoint]:
        changed, self._changed = self._changed, set()
        return changed

    def restore(self, coins: Iterable[Coin]) -> None:
        self.coins = {coin.outpoint: coin for coin in coins}

    def get(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)

    def add(self, coin: Coin) -> None:
        self.coins[coin.outpoint] = coin
        self._changed.add(coin.outpoint)

    def remove(self, outpoint: OutPoint) -> None:
        if self.coins.pop(outpoint, None) is not None:
            self._changed.add(outpoint)

    def unspent(self) -> Iterator[Coin]:
        return (coin for coin in self.coins.values() if coin.spent_height < 0)

    def spendable(self) -> list[Coin]:
        """Unspent, unlocked coins, in a stable order."""
        return sorted((c for c in self.coins.values() if c.spendable), key=lambda c: c.outpoint)

    def lock(self, outpoints: Iterable[OutPoint], master_id: str) -> None:
        for outpoint in outpoints:
            self.coins[outpoint].lock = master_id
            self._changed.add(outpoint)

    def unlock(self, master_id: str) -> None:
        for coin in self.coins.values():
            if coin.lock == master_id:
                coin.lock = None
                self._changed.add(coin.outpoint)

    # -- chain events ---------------------------------------------------------------------------------

    def spend_inputs(self, tx: Transaction, height: int) -> list[Coin]:
        """Mark the coins ``tx`` spends as spent at ``height``; return them."""
        spent = []
        for txin in tx.inputs:
            coin = self.coins.get(txin.prevout)
            if coin is not None and coin.spent_height < 0:
                coin.spent_height = height
                coin.spent_by = tx.hash
                self._changed.add(coin.outpoint)
                spent.append(coin)
        return spent

    def block_disconnected(self, height: int) -> None:
        """Undo a block: its change coins leave, the coins it spent are unspent again."""
        for outpoint, coin in list(self.coins.items()):
            if coin.origin == "change" and coin.height == height:
                del self.coins[outpoint]
                self._changed.add(outpoint)
            elif coin.spent_height == height:
                coin.spent_height = -1
                coin.spent_by = b""
                self._changed.add(outpoint)

    def forget_spent_before(self, height: int) -> None:
        """Drop spent coins older than the reorg memory (called once per block)."""
        limit = height - SPENT_MEMORY
        for outpoint, coin in list(self.coins.items()):
            if 0 <= coin.spent_height < limit:
                del self.coins[outpoint]
                self._changed.add(outpoint)

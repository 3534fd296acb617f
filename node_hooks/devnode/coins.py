"""Coin selection for the devnet wallet: which of its coins are free now, which one stakes a block, and which
fund a payment.

A wallet coin is free when the chain holds it unspent, no pending transaction spends it, it carries no
**C** (cold) mark, and any freeze on it has expired by the block being made. Payments (``sendtoaddress``,
``sendfrozen``) are built and signed here, and handed back for the mempool to admit; staking takes the
largest unmarked free coin. The wallet keeps the keys (:mod:`node_hooks.devnode.wallet`), the node the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from halo_exchange.chain import layout
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.script import notary_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.peg.fractions import MARKS, NOTARY_C, Fractions
from node_hooks.devnode.consensus import BlockContext
from node_hooks.devnode.errors import TxRejected
from node_hooks.devnode.mempool import Mempool
from node_hooks.devnode.wallet import DevWallet

FREEZE_NOTARY_VALUE = 5590  # PEG_MAKETX_FREEZE_VALUE: value of each **F** notary output


@dataclass(frozen=True, slots=True)
class WalletCoin:
    """An unspent output of the wallet, with its fractions."""

    txid: bytes
    n: int
    record: layout.UtxoRecord
    fractions: Fractions


class CoinSelector:
    """Chooses among the coins ``wallet`` owns in ``chain``, leaving alone those ``mempool`` spends."""

    def __init__(self, chain: ChainView, wallet: DevWallet, mempool: Mempool, params: ChainParams) -> None:
        self._chain = chain
        self._wallet = wallet
        self._mempool = mempool
        self._params = params

    def free_coins(self, block_time: int) -> list[WalletCoin]:
        """Spendable wallet coins: confirmed, not spent by a pending transaction, not locked at ``block_time``."""
        coins = []
        for txid, n, record in self._chain.iter_utxos():
            if self._mempool.spends(txid, n) or not self._wallet.owns_script(record.script):
                continue
            fractions = self._chain.fractions(txid, n, record.value)
            if fractions.flags & NOTARY_C:
                continue
            if fractions.flags & MARKS and fractions.lock_time > block_time:
                continue
            coins.append(WalletCoin(txid, n, record, fractions))
        return coins

    def stake(self, block_time: int, taken: set[tuple[bytes, int]]) -> WalletCoin | None:
        """The wallet's largest unmarked free coin outside ``taken`` (spent by the block being made)."""
        candidates = [
            c for c in self.free_coins(block_time)
            if (c.txid, c.n) not in taken and not c.fractions.flags & MARKS and c.record.value > 0
        ]
        # Ties break on the outpoint, so the choice does not depend on the UTXO set's iteration order.
        return max(candidates, key=lambda c: (c.record.value, c.txid, c.n), default=None)

    def payment(self, payee: bytes, amount: int, at: BlockContext, *, frozen: bool) -> Transaction:
        """A signed transaction paying ``amount`` to ``payee`` in block ``at``: liquid, or with ``frozen`` an
        ``**F**`` frozen reserve transfer (a notary output first, the payee's output locked by the rule).
        Change returns to the first input's script. Raise TxRejected("insufficient-funds") when the free
        coins cannot cover amount and fee (and, for liquid, the amount in liquid at ``at``'s supply)."""
        supply = at.supply
        coins = self.free_coins(at.time)
        if frozen:
            # Frozen sends take reserve first: prefer the coins with most reserve.
            coins.sort(key=lambda c: (-c.fractions.low(supply), -c.record.value))
        else:
            coins.sort(key=lambda c: (-c.fractions.high(supply), -c.record.value))
        fixed_outputs = 2 if frozen else 1  # notary + payee, or payee
        chosen: list[WalletCoin] = []
        value = liquid = 0
        for coin in coins:
            chosen.append(coin)
            value += coin.record.value
            liquid += coin.fractions.high(supply)
            # The fee counts a change output, whether or not one is made.
            fee = self._params.fee_per_input_output * (len(chosen) + fixed_outputs + 1)
            needed = amount + fee + (FREEZE_NOTARY_VALUE if frozen else 0)
            if value >= needed and (frozen or liquid >= amount):
                break
        else:
            raise TxRejected("insufficient-funds", f"the wallet cannot fund {amount} satoshis")
        outputs = []
        if frozen:
            outputs.append(TxOut(FREEZE_NOTARY_VALUE, notary_script("**F**1:1:1")))
        outputs.append(TxOut(amount, payee))
        change = value - needed
        if change > 0:
            outputs.append(TxOut(change, chosen[0].record.script))
        tx = Transaction(
            version=1,
            time=at.time,
            inputs=tuple(TxIn(OutPoint(c.txid, c.n)) for c in chosen),
            outputs=tuple(outputs),
            lock_time=0,
        )
        return self._wallet.sign(tx, [c.record.script for c in chosen])

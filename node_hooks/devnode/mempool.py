"""The devnet node's mempool: the transactions waiting for a block, kept valid as the chain moves.

It owns the pending transactions, in admission order (a parent is always admitted before its child), and
the outpoints they spend. It decides:

* **admission**: a transaction enters when the chain does not hold it yet, it spends nothing that the chain
  or another pending transaction already spent, and it passes
  :func:`~node_hooks.devnode.consensus.check_transaction` for the next block, spending chain coins or the
  outputs of pending transactions;
* **block candidates**: which pending transactions are still valid at the supply and time of the block
  being assembled (the rest leave);
* **block connected**: a block's transactions leave, and so does whatever conflicts with them;
* **reorg**: the transactions of disconnected blocks come back first (they are the parents), then the
  pending ones are re-checked against the new tip;
* **removal** (devnet helpers): a transaction and its pending descendants leave on request.

Every transaction that leaves without being mined is recorded with its reason (:data:`DROP_CONFLICT`,
:data:`DROP_REORG`, or the rule it broke at block assembly); the node collects them with
:meth:`Mempool.take_dropped` after each change and tells the hooks (``on_transaction_dropped``). Mined
transactions leave silently.

What it reads from the chain is :class:`MempoolChain` (the part of ElectrumX's ``MemPoolAPI`` idea that
fits here): :class:`~halo_exchange.chain.reader.ChainReader` provides it, and a unit test a dict-backed fake.
Memory only: a restarted node starts with an empty mempool. Not thread-safe on purpose: its owner, the
node, calls it under the node's one lock.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Protocol, Sequence

from halo_exchange.chain import layout
from halo_exchange.chain.block import is_coinstake
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.tx import Transaction
from halo_exchange.peg.fractions import Fractions
from node_hooks.devnode.consensus import BlockContext, CheckedTx, CoinLookup, SignatureCache, check_transaction
from node_hooks.devnode.errors import TxRejected

log = logging.getLogger(__name__)

DROP_CONFLICT = "conflict"  # it (or a pending ancestor) spent an output a connected block spent
DROP_REORG = "reorg"  # not readmitted after a reorg; the refusing rule follows


class MempoolChain(Protocol):
    """What the mempool needs to know about the active chain."""

    def utxo(self, txid: bytes, n: int) -> layout.UtxoRecord | None:
        """The unspent output ``txid:n``, or None when it is spent or was never created."""

    def fractions(self, txid: bytes, n: int, value: int) -> Fractions:
        """The fractions of output ``txid:n``, whose value is ``value``."""

    def output(self, txid: bytes, n: int) -> object | None:
        """Output ``txid:n`` of a transaction in the chain, spent or not; None when there is none."""

    def transaction(self, txid: bytes) -> object | None:
        """The transaction ``txid`` when the chain holds it, else None."""


def coin_lookup(chain: MempoolChain, pending: Mapping[bytes, CheckedTx], at: BlockContext) -> CoinLookup:
    """Coins a transaction may spend in block ``at``: the UTXO set, then outputs of ``pending`` (its
    unconfirmed parents), which count as created in that block."""

    def lookup(txid: bytes, n: int) -> tuple[layout.UtxoRecord, Fractions] | None:
        record = chain.utxo(txid, n)
        if record is not None:
            return record, chain.fractions(txid, n, record.value)
        parent = pending.get(txid)
        if parent is None or not 0 <= n < len(parent.tx.outputs):
            return None
        out = parent.tx.outputs[n]
        return layout.UtxoRecord(out.value, out.script_pubkey, at.height, at.time), parent.output_fractions[n]

    return lookup


class Mempool:
    """Pending transactions checked against ``chain`` by the rules of ``params``."""

    def __init__(self, chain: MempoolChain, params: ChainParams, signatures: SignatureCache | None = None) -> None:
        self._chain = chain
        self._params = params
        # Shared by admission and block assembly, so a transaction's signatures are verified once.
        self._signatures = signatures if signatures is not None else SignatureCache()
        self._pending: dict[bytes, CheckedTx] = {}  # insertion order is admission order
        self._spends: dict[tuple[bytes, int], bytes] = {}  # (txid, n) -> the pending transaction spending it
        self._dropped: list[tuple[Transaction, str]] = []  # left unmined since the last take_dropped()

    # -- reads ----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, txid: object) -> bool:
        return txid in self._pending

    def txids(self) -> list[bytes]:
        """Pending txids in admission order."""
        return list(self._pending)

    def transaction(self, txid: bytes) -> Transaction | None:
        checked = self._pending.get(txid)
        return None if checked is None else checked.tx

    def entry(self, txid: bytes) -> CheckedTx | None:
        """The pending transaction ``txid`` with what its outputs carry (frozen), or None."""
        return self._pending.get(txid)

    def spends(self, txid: bytes, n: int) -> bool:
        """Whether a pending transaction spends output ``txid:n``."""
        return (txid, n) in self._spends

    def take_dropped(self) -> list[tuple[Transaction, str]]:
        """The transactions that left without being mined since the last call, with why, oldest first."""
        dropped, self._dropped = self._dropped, []
        return dropped

    # -- admission ------------------------------------------------------------------------------------

    def accept(self, tx: Transaction, at: BlockContext) -> CheckedTx:
        """Admit ``tx`` as valid in block ``at``, or raise TxRejected naming the rule it breaks.

        A transaction already pending is accepted again without a second check (resubmitting is harmless).
        """
        txid = tx.hash
        known = self._pending.get(txid)
        if known is not None:
            return known
        if self._chain.transaction(txid) is not None:
            raise TxRejected("txn-already-in-chain", "the transaction is already in the chain")
        # Double spends are named here, before the full check, which would only call them missing inputs.
        for index, txin in enumerate(tx.inputs):
            outpoint = (txin.prevout.txid, txin.prevout.n)
            if outpoint in self._spends:
                raise TxRejected("double-spend", f"input {index} is already spent by a pending transaction")
            if self._chain.utxo(*outpoint) is None and self._chain.output(*outpoint) is not None:
                raise TxRejected("double-spend", f"input {index} is already spent in the chain")
        lookup = coin_lookup(self._chain, self._pending, at)
        checked = check_transaction(tx, lookup, at.supply, at.time, self._params, self._signatures)
        self._add(checked)
        log.info("accepted %s (fee %d) into the mempool", tx.txid, checked.fee)
        return checked

    def _add(self, checked: CheckedTx) -> None:
        txid = checked.tx.hash
        self._pending[txid] = checked
        for outpoint in checked.spent:
            self._spends[outpoint] = txid

    def _drop(self, txid: bytes) -> CheckedTx | None:
        checked = self._pending.pop(txid, None)
        if checked is not None:
            for outpoint in checked.spent:
                self._spends.pop(outpoint, None)
        return checked

    # -- the chain moves --------------------------------------------------------------------------------

    def block_candidates(self, at: BlockContext) -> list[CheckedTx]:
        """The pending transactions valid in block ``at``, in admission order, checked at its supply and
        time (their fractions may differ from admission's); the ones no longer valid leave the mempool."""
        included: list[CheckedTx] = []
        # One pass in admission order sees every parent before its child; a child whose parent was
        # dropped finds no coin and is dropped too.
        in_block: dict[bytes, CheckedTx] = {}
        lookup = coin_lookup(self._chain, in_block, at)
        for txid, pending in list(self._pending.items()):
            try:
                checked = check_transaction(pending.tx, lookup, at.supply, at.time, self._params, self._signatures)
            except TxRejected as exc:
                log.warning("dropping %s from the mempool: %s", pending.tx.txid, exc)
                self._drop(txid)
                self._dropped.append((pending.tx, str(exc)))
                continue
            included.append(checked)
            in_block[txid] = checked
        return included

    def block_connected(self, txs: Sequence[Transaction]) -> None:
        """A block with ``txs`` joined the chain: they leave the mempool, and so does every pending
        transaction that spends an output they spent (a conflict), with its descendants."""
        for tx in txs:
            self._drop(tx.hash)
        conflicts = [
            self._spends[outpoint]
            for tx in txs
            if not tx.is_coinbase()
            for outpoint in ((txin.prevout.txid, txin.prevout.n) for txin in tx.inputs)
            if outpoint in self._spends
        ]
        while conflicts:
            checked = self._drop(conflicts.pop())
            if checked is None:
                continue
            log.info("dropping %s from the mempool: it conflicts with a block", checked.tx.txid)
            self._dropped.append((checked.tx, f"{DROP_CONFLICT}: it or a pending parent spends what a block spent"))
            # Its children spend outputs that will never exist now.
            txid = checked.tx.hash
            conflicts.extend(
                child for n in range(len(checked.tx.outputs)) if (child := self._spends.get((txid, n))) is not None
            )

    def readmit(self, returned: Iterable[Transaction], at: BlockContext) -> None:
        """After a reorg, with ``at`` the next block on the new tip: admit ``returned`` (the disconnected
        blocks' transactions, oldest block first), then re-check the pending ones; whatever now spends a
        vanished output or breaks a rule at the new tip is dropped. Coinbases and coinstakes never come back."""
        pending = [checked.tx for checked in self._pending.values()]
        self._pending.clear()
        self._spends.clear()
        for tx in [*returned, *pending]:
            if tx.is_coinbase() or is_coinstake(tx):
                continue
            try:
                self.accept(tx, at)
            except TxRejected as exc:
                log.info("%s not readmitted after the reorg: %s", tx.txid, exc)
                if exc.rule != "txn-already-in-chain":  # still mined (it is in the new chain): not a drop
                    self._dropped.append((tx, f"{DROP_REORG}: {exc}"))

    # -- devnet helpers -----------------------------------------------------------------------------------

    def remove(self, txid: bytes) -> list[Transaction]:
        """Take ``txid`` and every pending descendant out of the mempool and return them, ``txid`` first (an
        unknown txid gives []). Not recorded as dropped: the caller knows why they left and says so."""
        if txid not in self._pending:
            return []
        removed: list[Transaction] = []
        queue = [txid]
        while queue:
            checked = self._drop(queue.pop(0))
            if checked is None:
                continue
            removed.append(checked.tx)
            parent = checked.tx.hash
            queue.extend(
                child for n in range(len(checked.tx.outputs)) if (child := self._spends.get((parent, n))) is not None
            )
        return removed

"""The chain store of a Halo-style node: the only writer of the node DB, shared by the devnet node and the
follower (``node_hooks.follower``).

Connecting a block writes the block record, the tx index, the UTXO changes, every new output's fractions
(``CFractions::Pack``, the pegdb value format) and the undo record in one atomic, synced LevelDB batch, then
moves the tip; disconnecting the tip restores exactly what its block consumed, in one batch too. A crash
therefore leaves the DB at the last committed block, never between two. Layout: ``halo_exchange.chain.layout``.

A DB need not start at the genesis block: a follower that starts at height S > 0 writes its first block with
no tip below it (:meth:`ChainStore.connect` accepts any height on an empty chain). Such a *partial* chain
lacks the outputs created before S; a block spending one of them (its creating transaction is not in the tx
index) has nothing to remove from the UTXO set and nothing to undo, so the spend is skipped. On a full chain
(first block at height 0) an unknown spent output is an error, as is, on any chain, spending an output whose
transaction is known but which is not unspent (a double spend). The first block held cannot be
disconnected: nothing below it to fall back to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import plyvel

from halo_exchange.chain import layout
from halo_exchange.chain.block import Block, is_coinstake
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.tx import Transaction
from halo_exchange.errors import DecodeError, HaloExchangeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.serialize import display_hex

log = logging.getLogger(__name__)


class ChainStoreError(HaloExchangeError):
    """The node DB refused a change: a block that does not extend the tip, spends a missing output, a
    disconnect below the first block held, a DB of another schema. Nothing was written."""


@dataclass(frozen=True, slots=True)
class ConnectedBlock:
    """What connecting a block needs besides the block: its height, peg fields and computed fractions."""

    block: Block
    height: int
    peg: layout.PegFields
    # (tx position, output index) -> fractions of that output; outputs not listed get none stored.
    fractions: Mapping[tuple[int, int], Fractions]


def _stores_utxo(tx: Transaction, n: int) -> bool:
    """OP_RETURN notaries, the empty coinstake marker and zero-value outputs (votes) are never worth
    spending, so they do not enter the UTXO set (their fractions are still stored)."""
    out = tx.outputs[n]
    return out.value > 0 and out.script_pubkey != b"" and out.script_pubkey[:1] != b"\x6a"


class ChainStore:
    """Opens (or creates) the node DB and applies blocks to it atomically."""

    # What a refusal raises: a node may name its own subclass (the devnode's is also a DevnodeError).
    error: type[ChainStoreError] = ChainStoreError

    def __init__(self, path: str) -> None:
        # compression=None: bitbay-core's LevelDB has no snappy (DESIGN.md §4).
        self.db = plyvel.DB(path, create_if_missing=True, compression=None)
        self.reader = ChainReader(self.db)
        schema = self.db.get(layout.SCHEMA)
        if schema is not None and layout.decode_schema(schema) != layout.SCHEMA_VERSION:
            self.db.close()
            raise self.error(f"node DB schema {layout.decode_schema(schema)} is not {layout.SCHEMA_VERSION}")

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    @property
    def initialised(self) -> bool:
        return self.db.get(layout.PARAMS) is not None

    def initialise(
        self, params: ChainParams, genesis: ConnectedBlock | None = None, wallet: Mapping[str, bytes] | None = None
    ) -> None:
        """Write the parameters, the devnet wallet's first keys and the genesis block in one batch.

        A follower writes the parameters alone (no genesis, no wallet): its first block comes from upstream."""
        if self.initialised:
            raise self.error("node DB is already initialised")
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(layout.SCHEMA, layout.encode_schema())
            batch.put(layout.PARAMS, layout.encode_params(params.to_dict()))
            for address, secret in (wallet or {}).items():
                batch.put(layout.wallet_key(address), secret)
            if genesis is not None:
                self._write_connect(batch, genesis)

    def put_wallet_key(self, address: str, secret: bytes) -> None:
        self.db.put(layout.wallet_key(address), secret, sync=True)

    def wallet_keys(self) -> dict[str, bytes]:
        return {key[1:].decode("ascii"): value for key, value in self.db.iterator(prefix=layout.WALLET)}

    # -- connect / disconnect ------------------------------------------------------------------------

    def connect(self, connected: ConnectedBlock) -> None:
        """Apply a block on top of the tip, atomically and durably."""
        tip = self.reader.tip()
        if tip is not None and connected.height != tip[0] + 1:
            raise self.error(f"block at height {connected.height} does not extend the tip ({tip[0]})")
        if tip is None and connected.height < 0:
            raise self.error(f"block height {connected.height} is negative")
        if tip is not None and connected.block.header.prev_hash != tip[1]:
            raise self.error("block does not build on the tip")
        with self.db.write_batch(transaction=True, sync=True) as batch:
            self._write_connect(batch, connected)

    def first_height(self) -> int | None:
        """The height of the lowest block held (0 on a full chain), None on an empty one."""
        return self.reader.first_height()

    def _write_connect(self, batch, connected: ConnectedBlock) -> None:
        block, height = connected.block, connected.height
        block_hash = block.hash
        time = block.header.time
        created: dict[tuple[bytes, int], layout.UtxoRecord] = {}
        first = self.reader.first_height()
        partial = (height if first is None else first) > 0  # the chain lacks the outputs made before it
        spent: list[tuple[bytes, int, layout.UtxoRecord]] = []
        txids = []
        for position, tx in enumerate(block.transactions):
            txid = tx.hash
            txids.append(txid)
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    outpoint = (txin.prevout.txid, txin.prevout.n)
                    if outpoint in created:
                        # Spent within the same block: it never reaches the UTXO set or the undo record.
                        del created[outpoint]
                        continue
                    record = self.reader.utxo(*outpoint)
                    if record is None:
                        if partial and self.reader.transaction(outpoint[0]) is None:
                            # Created before the first block held: not in the UTXO set, nothing to undo.
                            log.debug("block %d spends %s, created before the first block held", height,
                                      txin.prevout)
                            continue
                        raise self.error(f"block spends a missing output {txin.prevout}")
                    spent.append((outpoint[0], outpoint[1], record))
                    batch.delete(layout.utxo_key(*outpoint))
            kind = (
                layout.KIND_COINBASE if tx.is_coinbase()
                else layout.KIND_COINSTAKE if is_coinstake(tx)
                else layout.KIND_NORMAL
            )
            for n, out in enumerate(tx.outputs):
                fractions = connected.fractions.get((position, n))
                if fractions is not None:
                    batch.put(layout.fractions_key(txid, n), fractions.pack())
                if _stores_utxo(tx, n):
                    created[(txid, n)] = layout.UtxoRecord(out.value, out.script_pubkey, height, time, kind)
            batch.put(
                layout.tx_key(txid),
                layout.TxRecord(height, block_hash, position, tx.serialize()).pack(),
            )
        for (txid, n), record in created.items():
            batch.put(layout.utxo_key(txid, n), record.pack())
        record = layout.BlockRecord(height, block.header.serialize(), connected.peg, tuple(txids))
        batch.put(layout.block_key(block_hash), record.pack())
        batch.put(layout.height_key(height), block_hash)
        batch.put(layout.undo_key(block_hash), layout.UndoRecord(tuple(spent)).pack())
        batch.put(layout.TIP, layout.encode_tip(height, block_hash))

    def disconnect_tip(self) -> tuple[int, bytes, list[Transaction]]:
        """Undo the tip block atomically; return its height, hash and transactions."""
        tip = self.reader.tip()
        if tip is None or tip[0] == 0:
            raise self.error("cannot disconnect the genesis block")
        if tip[0] == self.reader.first_height():
            raise self.error(f"cannot disconnect block {tip[0]}: it is the first block this DB holds")
        height, block_hash = tip
        raw_undo = self.db.get(layout.undo_key(block_hash))
        if raw_undo is None:
            raise DecodeError(f"no undo record for block {display_hex(block_hash)}")
        undo = layout.UndoRecord.unpack(raw_undo)
        txs = self.reader.block_transactions(block_hash)
        previous = self.reader.block_hash(height - 1)
        assert previous is not None
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for tx in txs:
                txid = tx.hash
                for n in range(len(tx.outputs)):
                    batch.delete(layout.utxo_key(txid, n))
                    batch.delete(layout.fractions_key(txid, n))
                batch.delete(layout.tx_key(txid))
            for txid, n, record in undo.spent:
                batch.put(layout.utxo_key(txid, n), record.pack())
            batch.delete(layout.block_key(block_hash))
            batch.delete(layout.height_key(height))
            batch.delete(layout.undo_key(block_hash))
            batch.put(layout.TIP, layout.encode_tip(height - 1, previous))
        return height, block_hash, txs

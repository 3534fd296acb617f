"""The devnet node's chain store: the only writer of the node DB.

Connecting a block writes the block record, the tx index, the UTXO changes, every new output's fractions
(``CFractions::Pack``, the pegdb value format) and the undo record in one atomic, synced LevelDB batch, then
moves the tip; disconnecting the tip restores exactly what its block consumed, in one batch too. A crash
therefore leaves the DB at the last committed block, never between two. Layout: ``halo_exchange.chain.layout``.
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
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.serialize import display_hex
from node_hooks.devnode.errors import DevnodeError

log = logging.getLogger(__name__)


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

    def __init__(self, path: str) -> None:
        # compression=None: bitbay-core's LevelDB has no snappy (DESIGN.md §4).
        self.db = plyvel.DB(path, create_if_missing=True, compression=None)
        self.reader = ChainReader(self.db)
        schema = self.db.get(layout.SCHEMA)
        if schema is not None and layout.decode_schema(schema) != layout.SCHEMA_VERSION:
            self.db.close()
            raise DevnodeError(f"node DB schema {layout.decode_schema(schema)} is not {layout.SCHEMA_VERSION}")

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    @property
    def initialised(self) -> bool:
        return self.db.get(layout.PARAMS) is not None

    def initialise(self, params: ChainParams, genesis: ConnectedBlock, wallet: Mapping[str, bytes]) -> None:
        """Write the parameters, the devnet wallet's first keys and the genesis block in one batch."""
        if self.initialised:
            raise DevnodeError("node DB is already initialised")
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(layout.SCHEMA, layout.encode_schema())
            batch.put(layout.PARAMS, layout.encode_params(params.to_dict()))
            for address, secret in wallet.items():
                batch.put(layout.wallet_key(address), secret)
            self._write_connect(batch, genesis)

    def put_wallet_key(self, address: str, secret: bytes) -> None:
        self.db.put(layout.wallet_key(address), secret, sync=True)

    def wallet_keys(self) -> dict[str, bytes]:
        return {key[1:].decode("ascii"): value for key, value in self.db.iterator(prefix=layout.WALLET)}

    # -- connect / disconnect ------------------------------------------------------------------------

    def connect(self, connected: ConnectedBlock) -> None:
        """Apply a block on top of the tip, atomically and durably."""
        tip = self.reader.tip()
        expected_height = 0 if tip is None else tip[0] + 1
        if connected.height != expected_height:
            raise DevnodeError(f"block at height {connected.height} does not extend the tip ({expected_height - 1})")
        if tip is not None and connected.block.header.prev_hash != tip[1]:
            raise DevnodeError("block does not build on the tip")
        with self.db.write_batch(transaction=True, sync=True) as batch:
            self._write_connect(batch, connected)

    def _write_connect(self, batch, connected: ConnectedBlock) -> None:
        block, height = connected.block, connected.height
        block_hash = block.hash
        time = block.header.time
        created: dict[tuple[bytes, int], layout.UtxoRecord] = {}
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
                        raise DevnodeError(f"block spends a missing output {txin.prevout}")
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
            raise DevnodeError("cannot disconnect the genesis block")
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

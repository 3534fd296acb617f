"""``ChainReader``: read-only access to the node's chain DB, through LevelDB snapshots.

The exchange plugin never opens the node DB itself (a second ``plyvel.DB`` on the same path breaks
LevelDB's process lock, DESIGN.md §7); the node hands over its one handle and the plugin wraps it here.
Reads that must agree with each other (a block and its outputs' fractions, the tip and the supplies) go
through :meth:`ChainReader.snapshot`, a consistent view while the node keeps writing.

The supply index schedule (peg-spec §2.3) is computed here from the vote counters the node stores per
block, so the node (deciding a new block's supply) and the plugin (``supply_next`` for withdrawals) use
one implementation.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from halo_exchange.chain import layout
from halo_exchange.chain.block import BlockHeader
from halo_exchange.chain.keys import Network, network_for
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.script import parse_notary, script_to_address
from halo_exchange.chain.tx import Transaction
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.votes import cycle_of, next_supply_index
from halo_exchange.serialize import display_hex

_NO_VOTES = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """One transaction output as the chain knows it, spent or not, with its fractions."""

    txid: bytes
    n: int
    value: int
    script: bytes
    address: str | None
    notary: str | None
    height: int
    time: int
    fractions: Fractions
    spent: bool

    @property
    def lock_time(self) -> int:
        return self.fractions.lock_time

    @property
    def flags(self) -> int:
        return self.fractions.flags


@dataclass(frozen=True, slots=True)
class PegInfo:
    """The peg state at the chain tip: current cycle and the supplies of this and the next two cycles."""

    height: int
    cycle: int
    interval: int
    supply: int
    supply_next: int
    supply_next_next: int


class ChainView:
    """Reads over one getter: the live DB or a snapshot. All hashes are internal byte order."""

    def __init__(self, get: Callable[[bytes], bytes | None], iterator: Callable[..., Any]) -> None:
        self._get = get
        self._iterator = iterator
        self._params: ChainParams | None = None
        self._network: Network | None = None

    # -- basics -----------------------------------------------------------------------------------

    def params(self) -> ChainParams:
        if self._params is None:
            raw = self._get(layout.PARAMS)
            if raw is None:
                raise DecodeError("the node DB holds no chain parameters (not initialised)")
            self._params = ChainParams.from_dict(layout.decode_params(raw))
        return self._params

    def network(self) -> Network:
        """The address version bytes of this chain (its parameters name the network)."""
        if self._network is None:
            self._network = network_for(self.params().network)
        return self._network

    def tip(self) -> tuple[int, bytes] | None:
        raw = self._get(layout.TIP)
        return None if raw is None else layout.decode_tip(raw)

    def height(self) -> int:
        """Height of the tip, -1 for an empty chain."""
        tip = self.tip()
        return -1 if tip is None else tip[0]

    def first_height(self) -> int | None:
        """The height of the lowest block held: 0 on a full chain, the start height of a follower that began
        later (docs/follower.md), None when the chain is empty. Below it ``block_hash`` is None."""
        with self._iterator(prefix=layout.HEIGHT, include_value=False) as keys:
            key = next(keys, None)
        return None if key is None else struct.unpack(">I", key[1:5])[0]

    def block_hash(self, height: int) -> bytes | None:
        if height < 0:
            return None
        return self._get(layout.height_key(height))

    def block_record(self, height: int) -> layout.BlockRecord | None:
        block_hash = self.block_hash(height)
        return None if block_hash is None else self.block_record_by_hash(block_hash)

    def block_record_by_hash(self, block_hash: bytes) -> layout.BlockRecord | None:
        raw = self._get(layout.block_key(block_hash))
        return None if raw is None else layout.BlockRecord.unpack(raw)

    def block_header(self, height: int) -> BlockHeader | None:
        record = self.block_record(height)
        return None if record is None else BlockHeader.deserialize(record.header)

    def block_transactions(self, block_hash: bytes) -> list[Transaction]:
        record = self.block_record_by_hash(block_hash)
        if record is None:
            return []
        out = []
        for txid in record.txids:
            found = self.transaction(txid)
            if found is None:
                raise DecodeError(f"block {display_hex(block_hash)} lists a transaction the index lacks")
            out.append(found[0])
        return out

    def transaction(self, txid: bytes) -> tuple[Transaction, layout.TxRecord] | None:
        raw = self._get(layout.tx_key(txid))
        if raw is None:
            return None
        record = layout.TxRecord.unpack(raw)
        return Transaction.deserialize(record.raw), record

    def utxo(self, txid: bytes, n: int) -> layout.UtxoRecord | None:
        raw = self._get(layout.utxo_key(txid, n))
        return None if raw is None else layout.UtxoRecord.unpack(raw)

    def fractions(self, txid: bytes, n: int, value: int) -> Fractions:
        """The output's fractions; an output with no stored entry is ``Std(value)``, as bitbay-core reads it."""
        raw = self._get(layout.fractions_key(txid, n))
        if raw is None:
            return Fractions.from_value(value)
        return Fractions.unpack(raw)

    def stored_fractions(self, txid: bytes, n: int) -> Fractions | None:
        """The output's fractions as stored, or None when the DB holds none for it (bitbay-core's pegdb then
        answers "unknown": ``getfractions`` gives ``{}``)."""
        raw = self._get(layout.fractions_key(txid, n))
        return None if raw is None else Fractions.unpack(raw)

    def packed_fractions(self, txid: bytes, n: int) -> bytes | None:
        """The output's fractions exactly as stored (``CFractions::Pack`` bytes), or None when none are: for a
        reader that keeps them as they are (``recover`` stores them again without a repack)."""
        return self._get(layout.fractions_key(txid, n))

    def output(self, txid: bytes, n: int) -> OutputInfo | None:
        """An output of a transaction in the active chain (spent or unspent), with its fractions."""
        found = self.transaction(txid)
        if found is None:
            return None
        tx, record = found
        if not 0 <= n < len(tx.outputs):
            return None
        out = tx.outputs[n]
        header = self.block_header(record.height)
        return OutputInfo(
            txid=txid,
            n=n,
            value=out.value,
            script=out.script_pubkey,
            address=script_to_address(out.script_pubkey, self.network()),
            notary=parse_notary(out.script_pubkey),
            height=record.height,
            time=header.time if header else 0,
            fractions=self.fractions(txid, n, out.value),
            spent=self.utxo(txid, n) is None,
        )

    def iter_utxos(self) -> Iterator[tuple[bytes, int, layout.UtxoRecord]]:
        """Every unspent output (a full scan: for tools and the devnet wallet, not hot paths)."""
        for key, value in self._iterator(prefix=layout.UTXO):
            txid = key[1:33]
            (n,) = struct.unpack("<I", key[33:37])
            yield txid, n, layout.UtxoRecord.unpack(value)

    # -- the peg schedule --------------------------------------------------------------------------

    def peg_fields(self, height: int) -> layout.PegFields | None:
        record = self.block_record(height)
        return None if record is None else record.peg

    def cycle_votes(self, cycle: int) -> tuple[int, int, int]:
        """(inflate, deflate, nochange) totals of ``cycle``: the counters of its last block (zeros if none)."""
        if cycle < 0:
            return _NO_VOTES
        fields = self.peg_fields((cycle + 1) * self.params().peg_interval - 1)
        return _NO_VOTES if fields is None else fields.votes

    def supply_of_cycle(self, cycle: int) -> int:
        """The supply index in force during ``cycle`` (its first block's, once that block exists)."""
        if cycle < 0:
            return 0
        fields = self.peg_fields(cycle * self.params().peg_interval)
        return 0 if fields is None else fields.supply

    def supply_for_new_block(self, height: int) -> int:
        """The supply index a block at ``height`` must carry (``GetNextBlockPegSupplyIndex``).

        Within a cycle the index is constant. The first block of cycle ``c`` takes the index of cycle
        ``c-1`` moved by the votes of cycle ``c-3``, with those of ``c-4`` as the previous cycle's.
        """
        params = self.params()
        if height <= params.peg_start_height or height == 0:
            return 0
        interval = params.peg_interval
        if height % interval != 0:
            previous = self.peg_fields(height - 1)
            return 0 if previous is None else previous.supply
        cycle = height // interval
        base = self.supply_of_cycle(cycle - 1)
        return next_supply_index(base, self.cycle_votes(cycle - 3), self.cycle_votes(cycle - 4))

    def peg_info(self) -> PegInfo:
        """Supplies of the tip's cycle and of the next two, already fixed by votes cast (peg-spec §2.3)."""
        params = self.params()
        height = max(self.height(), 0)
        cycle = cycle_of(height, params.peg_interval)
        fields = self.peg_fields(height)
        supply = 0 if fields is None else fields.supply
        supply_next = next_supply_index(supply, self.cycle_votes(cycle - 2), self.cycle_votes(cycle - 3))
        supply_next_next = next_supply_index(supply_next, self.cycle_votes(cycle - 1), self.cycle_votes(cycle - 2))
        return PegInfo(height, cycle, params.peg_interval, supply, supply_next, supply_next_next)


class ChainReader(ChainView):
    """Reads the live node DB; :meth:`snapshot` gives a consistent :class:`ChainView` for a group of reads."""

    def __init__(self, db: Any) -> None:
        super().__init__(db.get, db.iterator)
        self._db = db

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[ChainView]:
        snap = self._db.snapshot()
        try:
            yield ChainView(snap.get, snap.iterator)
        finally:
            snap.close()

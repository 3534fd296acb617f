"""THE node DB layout: every key prefix and value codec of the node's LevelDB, in one module.

The devnet node writes this layout and the exchange plugin reads it (through
:class:`~halo_exchange.chain.reader.ChainReader`); nothing else may build a key or parse a value of the node
DB. The human description is ``docs/chain-layout.md``; keep the two in step.

Hashes are stored in internal byte order (as serialized in transactions); RPC shows them reversed. Heights in
keys are big-endian so that iteration follows the chain. Output fractions are stored exactly as bitbay-core's
pegdb stores them: ``CFractions::Pack`` bytes under ``txhash ‖ u64 LE output number`` (behind a prefix here,
since one DB holds everything), so the same decoder reads either.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from halo_exchange.errors import DecodeError
from halo_exchange.serialize import ByteReader, pack_bytes, pack_compact_size, pack_i16, pack_i64, pack_u8, pack_u32

SCHEMA_VERSION = 1

# -- key prefixes (one byte each; never reuse a retired one) -------------------------------------------------
SCHEMA = b"v"  # -> u32 schema version
PARAMS = b"p"  # -> chain parameters, JSON
TIP = b"t"  # -> u32 height ‖ block hash
HEIGHT = b"h"  # + u32 BE height -> block hash of the active chain
BLOCK = b"b"  # + block hash -> BlockRecord
TX = b"x"  # + txid -> TxRecord (height, position, raw transaction)
UTXO = b"u"  # + txid ‖ u32 LE n -> UtxoRecord (unspent outputs only)
FRACTIONS = b"f"  # + txid ‖ u64 LE n -> CFractions::Pack bytes (kept after the output is spent)
UNDO = b"d"  # + block hash -> UndoRecord (what disconnecting the block must restore)
WALLET = b"k"  # + address (ascii) -> 32-byte secret (devnet wallet only; never on a production node)

HASH_SIZE = 32

# Output kinds recorded with a UTXO.
KIND_NORMAL, KIND_COINBASE, KIND_COINSTAKE = 0, 1, 2


def _hash(value: bytes) -> bytes:
    if len(value) != HASH_SIZE:
        raise DecodeError(f"a hash has {HASH_SIZE} bytes, got {len(value)}")
    return value


def height_key(height: int) -> bytes:
    return HEIGHT + struct.pack(">I", height)


def block_key(block_hash: bytes) -> bytes:
    return BLOCK + _hash(block_hash)


def tx_key(txid: bytes) -> bytes:
    return TX + _hash(txid)


def utxo_key(txid: bytes, n: int) -> bytes:
    return UTXO + _hash(txid) + struct.pack("<I", n)


def utxo_prefix(txid: bytes) -> bytes:
    return UTXO + _hash(txid)


def fractions_key(txid: bytes, n: int) -> bytes:
    """``uint320(txhash, n)`` as bitbay-core's pegdb keys it: 32-byte hash then 8-byte LE output number."""
    return FRACTIONS + _hash(txid) + struct.pack("<Q", n)


def undo_key(block_hash: bytes) -> bytes:
    return UNDO + _hash(block_hash)


def wallet_key(address: str) -> bytes:
    return WALLET + address.encode("ascii")


# -- values ---------------------------------------------------------------------------------------------


def encode_schema() -> bytes:
    return pack_u32(SCHEMA_VERSION)


def decode_schema(value: bytes) -> int:
    reader = ByteReader(value)
    version = reader.u32()
    reader.expect_end("schema")
    return version


def encode_tip(height: int, block_hash: bytes) -> bytes:
    return pack_u32(height) + _hash(block_hash)


def decode_tip(value: bytes) -> tuple[int, bytes]:
    reader = ByteReader(value)
    height = reader.u32()
    block_hash = reader.read(HASH_SIZE)
    reader.expect_end("tip")
    return height, block_hash


def encode_params(params: dict[str, Any]) -> bytes:
    return json.dumps(params, sort_keys=True).encode("utf-8")


def decode_params(value: bytes) -> dict[str, Any]:
    try:
        params = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"chain parameters are not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise DecodeError("chain parameters are not a JSON object")
    return params


@dataclass(frozen=True, slots=True)
class PegFields:
    """The peg state a block carries (bitbay-core ``CBlockIndex`` peg fields, peg-spec §2.4).

    ``supply`` is the supply index in force for the block. The vote counters are the running totals of the
    block's cycle up to and including this block (reset at each cycle's first block), so the counters of a
    cycle's last block are that cycle's totals. ``vote`` is what this block cast (0 none, 1 inflate,
    2 deflate, 3 nochange) with ``vote_weight``.
    """

    supply: int
    votes_inflate: int
    votes_deflate: int
    votes_nochange: int
    vote: int = 0
    vote_weight: int = 0

    @property
    def votes(self) -> tuple[int, int, int]:
        return (self.votes_inflate, self.votes_deflate, self.votes_nochange)

    def pack(self) -> bytes:
        return (
            pack_i16(self.supply)
            + pack_u32(self.votes_inflate)
            + pack_u32(self.votes_deflate)
            + pack_u32(self.votes_nochange)
            + pack_u8(self.vote)
            + pack_u32(self.vote_weight)
        )

    @classmethod
    def read(cls, reader: ByteReader) -> PegFields:
        return cls(reader.i16(), reader.u32(), reader.u32(), reader.u32(), reader.u8(), reader.u32())


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A block of the active chain: its height, serialized header, peg fields and txids in block order."""

    height: int
    header: bytes
    peg: PegFields
    txids: tuple[bytes, ...]

    def pack(self) -> bytes:
        return (
            pack_u32(self.height)
            + pack_bytes(self.header)
            + self.peg.pack()
            + pack_compact_size(len(self.txids))
            + b"".join(_hash(t) for t in self.txids)
        )

    @classmethod
    def unpack(cls, value: bytes) -> BlockRecord:
        reader = ByteReader(value)
        height = reader.u32()
        header = reader.var_bytes()
        peg = PegFields.read(reader)
        txids = tuple(reader.read(HASH_SIZE) for _ in range(reader.compact_size()))
        reader.expect_end("block record")
        return cls(height, header, peg, txids)


@dataclass(frozen=True, slots=True)
class TxRecord:
    """Where a transaction sits in the active chain, and its raw bytes."""

    height: int
    block_hash: bytes
    position: int
    raw: bytes

    def pack(self) -> bytes:
        return pack_u32(self.height) + _hash(self.block_hash) + pack_u32(self.position) + pack_bytes(self.raw)

    @classmethod
    def unpack(cls, value: bytes) -> TxRecord:
        reader = ByteReader(value)
        record = cls(reader.u32(), reader.read(HASH_SIZE), reader.u32(), reader.var_bytes())
        reader.expect_end("tx record")
        return record


@dataclass(frozen=True, slots=True)
class UtxoRecord:
    """An unspent output: value, script, the height and time of its block, and its kind."""

    value: int
    script: bytes
    height: int
    time: int
    kind: int = KIND_NORMAL

    def pack(self) -> bytes:
        return (pack_i64(self.value) + pack_bytes(self.script) + pack_u32(self.height) + pack_u32(self.time)
                + pack_u8(self.kind))

    @classmethod
    def read(cls, reader: ByteReader) -> UtxoRecord:
        return cls(reader.i64(), reader.var_bytes(), reader.u32(), reader.u32(), reader.u8())

    @classmethod
    def unpack(cls, value: bytes) -> UtxoRecord:
        reader = ByteReader(value)
        record = cls.read(reader)
        reader.expect_end("utxo record")
        return record


@dataclass(frozen=True, slots=True)
class UndoRecord:
    """What a block consumed: each spent output's outpoint and record, in spending order."""

    spent: tuple[tuple[bytes, int, UtxoRecord], ...]

    def pack(self) -> bytes:
        parts = [pack_compact_size(len(self.spent))]
        for txid, n, record in self.spent:
            parts.append(_hash(txid) + pack_u32(n) + record.pack())
        return b"".join(parts)

    @classmethod
    def unpack(cls, value: bytes) -> UndoRecord:
        reader = ByteReader(value)
        spent = []
        for _ in range(reader.compact_size()):
            txid = reader.read(HASH_SIZE)
            n = reader.u32()
            spent.append((txid, n, UtxoRecord.read(reader)))
        reader.expect_end("undo record")
        return cls(tuple(spent))


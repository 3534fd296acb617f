"""Blocks: an 80-byte header (version, previous hash, merkle root, time, bits, nonce) and transactions.

A devnet block is a Bitcoin-shaped block of BitBay (PoS, timestamped) transactions: ``vtx[0]`` is the
coinbase and, on staked blocks, ``vtx[1]`` the coinstake (first output empty), which carries the block's
peg vote. The block hash is the double SHA-256 of the header, shown byte-reversed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from halo_exchange.chain.hashes import sha256d
from halo_exchange.chain.tx import Transaction
from halo_exchange.errors import DecodeError
from halo_exchange.serialize import ByteReader, display_hex, pack_compact_size, pack_i32, pack_u32

HEADER_SIZE = 80
NULL_HASH = b"\x00" * 32


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle root over transaction hashes (internal order), duplicating an odd last hash."""
    if not hashes:
        return NULL_HASH
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int = 0
    nonce: int = 0

    def serialize(self) -> bytes:
        return (
            pack_i32(self.version)
            + self.prev_hash
            + self.merkle_root
            + pack_u32(self.time)
            + pack_u32(self.bits)
            + pack_u32(self.nonce)
        )

    @classmethod
    def deserialize(cls, data: bytes) -> BlockHeader:
        reader = ByteReader(data)
        header = cls(reader.i32(), reader.read(32), reader.read(32), reader.u32(), reader.u32(), reader.u32())
        reader.expect_end("block header")
        return header

    @property
    def hash(self) -> bytes:
        return sha256d(self.serialize())

    @property
    def hash_hex(self) -> str:
        return display_hex(self.hash)


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @classmethod
    def assemble(cls, version: int, prev_hash: bytes, time: int, transactions: Sequence[Transaction]) -> Block:
        """A block over ``transactions`` with the matching merkle root."""
        txs = tuple(transactions)
        root = merkle_root([tx.hash for tx in txs])
        return cls(BlockHeader(version, prev_hash, root, time), txs)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def serialize(self) -> bytes:
        return (
            self.header.serialize()
            + pack_compact_size(len(self.transactions))
            + b"".join(tx.serialize() for tx in self.transactions)
        )

    @classmethod
    def deserialize(cls, data: bytes) -> Block:
        reader = ByteReader(data)
        header = BlockHeader.deserialize(reader.read(HEADER_SIZE))
        txs = tuple(Transaction.read_from(reader) for _ in range(reader.compact_size()))
        reader.expect_end("block")
        block = cls(header, txs)
        if merkle_root([tx.hash for tx in txs]) != header.merkle_root:
            raise DecodeError("block merkle root does not match its transactions")
        return block


def is_coinstake(tx: Transaction) -> bool:
    """Peercoin's rule: not coinbase, at least two outputs, the first one empty (value 0, no script)."""
    return (
        not tx.is_coinbase()
        and len(tx.outputs) >= 2
        and tx.outputs[0].value == 0
        and tx.outputs[0].script_pubkey == b""
    )

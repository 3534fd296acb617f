"""BitBay transactions: the immutable data model, Bitcoin-style serialization, txid and legacy signing.

BitBay is a Peercoin-style proof-of-stake chain, so a transaction carries ``time`` (nTime, u32) right after
its version. Owns :class:`OutPoint`, :class:`TxIn`, :class:`TxOut`, :class:`Transaction`, strict
(de)serialization, the legacy ``SIGHASH_ALL`` signature hash, and P2PKH input signing and verification.
Consensus rules beyond one input's signature (values, fees, fractions, locks) live elsewhere.

Pure: no I/O. Objects are frozen; ``with_*`` helpers return modified copies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Iterable

from halo_exchange.chain.hashes import hash160, sha256d
from halo_exchange.chain.keys import KeyFormatError, PrivateKey, PublicKey
from halo_exchange.chain.script import (
    OP_CODESEPARATOR,
    ScriptError,
    iter_ops,
    p2pkh_script_sig,
    parse_p2pkh,
    parse_p2pkh_script_sig,
)
from halo_exchange.errors import DecodeError, HaloExchangeError
from halo_exchange.serialize import (
    ByteReader,
    display_hex,
    from_display_hex,
    pack_bytes,
    pack_compact_size,
    pack_i32,
    pack_i64,
    pack_u32,
)

__all__ = [
    "TxError",
    "SIGHASH_ALL",
    "SEQUENCE_FINAL",
    "OutPoint",
    "TxIn",
    "TxOut",
    "Transaction",
    "signature_hash",
    "sign_input",
    "verify_input",
]

SIGHASH_ALL = 1
SEQUENCE_FINAL = 0xFFFFFFFF
_NULL_HASH = b"\x00" * 32
_U32_MAX = 0xFFFFFFFF
_I32_RANGE = range(-(2**31), 2**31)
_I64_RANGE = range(-(2**63), 2**63)


class TxError(HaloExchangeError, ValueError):
    """A transaction field is out of range, or an input cannot be signed as asked (bad index, key or script)."""


def _check_u32(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U32_MAX:
        raise TxError(f"{what} must be an int in [0, 2^32-1], got {value!r}")
    return value


def _check_bytes(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TxError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, order=True)
class OutPoint:
    """A reference to output ``n`` of the transaction whose hash (internal byte order) is ``txid``: the one
    outpoint type of the package (chain, ledger, engine and API). Ordered as ``(txid, n)``."""

    txid: bytes
    n: int

    def __post_init__(self) -> None:
        txid = _check_bytes(self.txid, "outpoint txid")
        if len(txid) != 32:
            raise TxError(f"outpoint txid is 32 bytes, got {len(txid)}")
        object.__setattr__(self, "txid", txid)
        _check_u32(self.n, "outpoint index")

    @classmethod
    def from_hex(cls, txid_hex: str, n: int) -> OutPoint:
        """From a displayed (byte-reversed) txid and an output number."""
        return cls(from_display_hex(txid_hex), n)

    @classmethod
    def null(cls) -> OutPoint:
        """The prevout of a coinbase input."""
        return cls(_NULL_HASH, _U32_MAX)

    @property
    def txid_hex(self) -> str:
        return display_hex(self.txid)

    def is_null(self) -> bool:
        return self.txid == _NULL_HASH and self.n == _U32_MAX

    def serialize(self) -> bytes:
        return self.txid + pack_u32(self.n)

    def __str__(self) -> str:
        return f"{self.txid_hex}:{self.n}"


@dataclass(frozen=True)
class TxIn:
    """An input: the outpoint it spends, its unlocking script and its sequence number."""

    prevout: OutPoint
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL

    def __post_init__(self) -> None:
        if not isinstance(self.prevout, OutPoint):
            raise TxError(f"prevout must be an OutPoint, got {type(self.prevout).__name__}")
        object.__setattr__(self, "script_sig", _check_bytes(self.script_sig, "scriptSig"))
        _check_u32(self.sequence, "sequence")

    def serialize(self) -> bytes:
        return self.prevout.serialize() + pack_bytes(self.script_sig) + pack_u32(self.sequence)


@dataclass(frozen=True)
class TxOut:
    """An output: a value in satoshis and the scriptPubKey that locks it."""

    value: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        # Only the wire width is enforced here; money range and dust rules belong to validation.
        if not isinstance(self.value, int) or isinstance(self.value, bool) or self.value not in _I64_RANGE:
            raise TxError(f"output value must be an int satoshi amount within i64, got {self.value!r}")
        object.__setattr__(self, "script_pubkey", _check_bytes(self.script_pubkey, "scriptPubKey"))

    def serialize(self) -> bytes:
        return pack_i64(self.value) + pack_bytes(self.script_pubkey)


@dataclass(frozen=True)
class Transaction:
    """A BitBay transaction: ``version, time, inputs, outputs, lock_time`` in wire order."""

    version: int
    time: int
    inputs: tuple[TxIn, ...] = field(default_factory=tuple)
    outputs: tuple[TxOut, ...] = field(default_factory=tuple)
    lock_time: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version not in _I32_RANGE:
            raise TxError(f"version must be an i32, got {self.version!r}")
        _check_u32(self.time, "time")
        _check_u32(self.lock_time, "lock_time")
        inputs = tuple(self.inputs)
        outputs = tuple(self.outputs)
        if not all(isinstance(i, TxIn) for i in inputs):
            raise TxError("inputs must be TxIn objects")
        if not all(isinstance(o, TxOut) for o in outputs):
            raise TxError("outputs must be TxOut objects")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", outputs)

    # -------------------------------------------------------------------------------- wire format

    def serialize(self) -> bytes:
        parts = [pack_i32(self.version), pack_u32(self.time), pack_compact_size(len(self.inputs))]
        parts.extend(i.serialize() for i in self.inputs)
        parts.append(pack_compact_size(len(self.outputs)))
        parts.extend(o.serialize() for o in self.outputs)
        parts.append(pack_u32(self.lock_time))
        return b"".join(parts)

    def to_hex(self) -> str:
        return self.serialize().hex()

    @classmethod
    def read_from(cls, reader: ByteReader) -> Transaction:
        """Read one transaction from ``reader`` (for blocks that hold several); truncation raises DecodeError."""
        version = reader.i32()
        time = reader.u32()
        inputs = []
        for _ in range(reader.compact_size()):
            prevout = OutPoint(reader.read(32), reader.u32())
            script_sig = reader.var_bytes()
            inputs.append(TxIn(prevout, script_sig, reader.u32()))
        outputs = []
        for _ in range(reader.compact_size()):
            value = reader.i64()
            outputs.append(TxOut(value, reader.var_bytes()))
        lock_time = reader.u32()
        return cls(version, time, tuple(inputs), tuple(outputs), lock_time)

    @classmethod
    def deserialize(cls, data: bytes) -> Transaction:
        """Strict: the bytes must hold exactly one transaction (truncated or trailing data raise DecodeError)."""
        reader = ByteReader(data)
        tx = cls.read_from(reader)
        reader.expect_end("transaction")
        return tx

    @classmethod
    def from_hex(cls, text: str) -> Transaction:
        try:
            raw = bytes.fromhex(text)
        except (ValueError, TypeError) as exc:
            raise DecodeError("transaction hex is not hex") from exc
        return cls.deserialize(raw)

    # ------------------------------------------------------------------------------------ identity

    @functools.cached_property
    def hash(self) -> bytes:
        """Double SHA-256 of the serialization, internal byte order (what outpoints reference).

        Cached: the transaction is immutable, and validation asks for its hash many times."""
        return sha256d(self.serialize())

    @property
    def txid(self) -> str:
        """The hash shown byte-reversed as hex, as nodes and explorers print it."""
        return display_hex(self.hash)

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null()

    def outpoint(self, n: int) -> OutPoint:
        """The outpoint of this transaction's output ``n``."""
        if not 0 <= n < len(self.outputs):
            raise TxError(f"output {n} out of range (transaction has {len(self.outputs)})")
        return OutPoint(self.hash, n)

    # ------------------------------------------------------------------------------------- copies

    def with_inputs(self, inputs: Iterable[TxIn]) -> Transaction:
        return replace(self, inputs=tuple(inputs))

    def with_outputs(self, outputs: Iterable[TxOut]) -> Transaction:
        return replace(self, outputs=tuple(outputs))

    def with_script_sig(self, index: int, script_sig: bytes) -> Transaction:
        """A copy whose input ``index`` carries ``script_sig``."""
        self._check_input_index(index)
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], script_sig=script_sig)
        return replace(self, inputs=tuple(inputs))

    def with_output_value(self, index: int, value: int) -> Transaction:
        """A copy whose output ``index`` has ``value``."""
        if not 0 <= index < len(self.outputs):
            raise TxError(f"output {index} out of range (transaction has {len(self.outputs)})")
        outputs = list(self.outputs)
        outputs[index] = replace(outputs[index], value=value)
        return replace(self, outputs=tuple(outputs))

    def _check_input_index(self, index: int) -> None:
        if not isinstance(index, int) or not 0 <= index < len(self.inputs):
            raise TxError(f"input {index!r} out of range (transaction has {len(self.inputs)})")


# ---------------------------------------------------------------------------------------- signing


def _strip_codeseparators(script: bytes) -> bytes:
    # Original Bitcoin SignatureHash: scriptCode.FindAndDelete(CScript(OP_CODESEPARATOR)), which removes
    # only whole ops; a script that stops parsing keeps its unparsed tail as is.
    if OP_CODESEPARATOR not in script:
        return script
    kept = []
    pos = 0
    try:
        for op in iter_ops(script):
            if op.opcode != OP_CODESEPARATOR:
                kept.append(script[op.start : op.end])
            pos = op.end
    except ScriptError:
        pass
    return b"".join(kept) + script[pos:]


def signature_hash(tx: Transaction, index: int, prev_script: bytes, hashtype: int = SIGHASH_ALL) -> bytes:
    """Legacy ``SIGHASH_ALL`` digest for input ``index`` (Bitcoin's original algorithm, as bitbay-core).

    Every other input's scriptSig is blanked, the signed input carries ``prev_script`` (the scriptPubKey it
    spends, OP_CODESEPARATORs removed), the u32 hashtype is appended and the whole is double SHA-256'd.
    Only SIGHASH_ALL is supported; the original's "return 1" for an out-of-range index is an error here.
    """
    if hashtype != SIGHASH_ALL:
        raise TxError(f"only SIGHASH_ALL is supported, got hashtype {hashtype}")
    tx._check_input_index(index)
    script_code = _strip_codeseparators(bytes(prev_script))
    inputs = tuple(
        replace(txin, script_sig=script_code if i == index else b"") for i, txin in enumerate(tx.inputs)
    )
    return sha256d(replace(tx, inputs=inputs).serialize() + pack_u32(hashtype))


def sign_input(tx: Transaction, index: int, private_key: PrivateKey, prev_script: bytes) -> Transaction:
    """A copy of ``tx`` whose input ``index`` spends the P2PKH output ``prev_script`` with ``private_key``.

    Refuses (TxError) a ``prev_script`` that is not P2PKH or does not pay this key's hash.
    """
    want = parse_p2pkh(prev_script)
    if want is None:
        raise TxError("can only sign inputs that spend P2PKH outputs")
    pub = private_key.public_key()
    if pub.hash160() != want:
        raise TxError(f"key {pub.address()} does not own the output being spent")
    digest = signature_hash(tx, index, prev_script, SIGHASH_ALL)
    sig = private_key.sign(digest) + bytes([SIGHASH_ALL])
    return tx.with_script_sig(index, p2pkh_script_sig(sig, pub.to_bytes()))


def verify_input(tx: Transaction, index: int, prev_script: bytes) -> bool:
    """True when input ``index`` validly spends the P2PKH output ``prev_script``.

    Checks: the scriptSig is exactly ``<sig+hashtype> <pubkey>``, the hashtype is SIGHASH_ALL, the key hashes
    to the one in ``prev_script``, and the DER signature (low or high S) signs the legacy signature hash.
    Other script templates are not spendable here and give ``False``; an out-of-range ``index`` raises TxError.
    """
    tx._check_input_index(index)
    want = parse_p2pkh(prev_script)
    if want is None:
        return False
    parsed = parse_p2pkh_script_sig(tx.inputs[index].script_sig)
    if parsed is None:
        return False
    sig, pub_bytes = parsed
    # OP_CHECKSIG would honour other hashtypes; this chain code only ever signs SIGHASH_ALL.
    if sig[-1] != SIGHASH_ALL or hash160(pub_bytes) != want:
        return False
    try:
        pub = PublicKey.from_bytes(pub_bytes)
    except KeyFormatError:
        return False
    return pub.verify(signature_hash(tx, index, prev_script, SIGHASH_ALL), sig[:-1])

"""Transactions: BitBay wire format (with nTime), strict decoding, txid, legacy SIGHASH_ALL sign/verify."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest
from ecdsa.util import sigdecode_der, sigencode_der
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain.keys import CURVE_ORDER, PrivateKey
from halo_exchange.chain.script import (
    OP_CODESEPARATOR,
    notary_script,
    p2pkh_script,
    p2pkh_script_sig,
    parse_p2pkh_script_sig,
)
from halo_exchange.chain.tx import (
    SIGHASH_ALL,
    OutPoint,
    Transaction,
    TxError,
    TxIn,
    TxOut,
    sign_input,
    signature_hash,
    verify_input,
)
from halo_exchange.errors import DecodeError

KEY_A = PrivateKey.from_int(1)
KEY_B = PrivateKey.from_int(2)
SCRIPT_A = p2pkh_script(KEY_A.public_key().hash160())
SCRIPT_B = p2pkh_script(KEY_B.public_key().hash160())
PREV_TXID = bytes(range(32))


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _sample_tx() -> Transaction:
    return Transaction(
        version=1,
        time=1_600_000_000,
        inputs=(
            TxIn(OutPoint(PREV_TXID, 0)),
            TxIn(OutPoint(PREV_TXID[::-1], 3), sequence=0xFFFFFFFE),
        ),
        outputs=(
            TxOut(150_000_000, SCRIPT_B),
            TxOut(5590, notary_script("**F**1:1:1")),
        ),
        lock_time=199,
    )


def _hand_serialized(tx_inputs_scripts: tuple[bytes, bytes] = (b"", b"")) -> bytes:
    # Built field by field from the wire layout, independently of Transaction.serialize.
    out = struct.pack("<iI", 1, 1_600_000_000) + b"\x02"
    out += PREV_TXID + struct.pack("<I", 0) + bytes([len(tx_inputs_scripts[0])]) + tx_inputs_scripts[0]
    out += struct.pack("<I", 0xFFFFFFFF)
    out += PREV_TXID[::-1] + struct.pack("<I", 3) + bytes([len(tx_inputs_scripts[1])]) + tx_inputs_scripts[1]
    out += struct.pack("<I", 0xFFFFFFFE)
    notary = bytes([0x6A, 10]) + b"**F**1:1:1"
    out += b"\x02" + struct.pack("<q", 150_000_000) + bytes([25]) + SCRIPT_B
    out += struct.pack("<q", 5590) + bytes([len(notary)]) + notary
    out += struct.pack("<I", 199)
    return out


def test_serialization_matches_wire_layout() -> None:
    """A transaction serializes as version, nTime, inputs, outputs, lock time in Bitcoin encoding."""
    assert _sample_tx().serialize() == _hand_serialized()


def test_round_trip() -> None:
    """deserialize(serialize(tx)) == tx, also through hex."""
    tx = _sample_tx()
    assert Transaction.deserialize(tx.serialize()) == tx
    assert Transaction.from_hex(tx.to_hex()) == tx


def test_txid_is_reversed_double_sha256() -> None:
    """txid is sha256d of the serialization shown byte-reversed; outpoints use the internal order."""
    tx = _sample_tx()
    digest = _dsha(_hand_serialized())
    assert tx.hash == digest
    assert tx.txid == digest[::-1].hex()
    op = tx.outpoint(1)
    assert op.txid == digest and op.txid_hex == tx.txid and str(op) == f"{tx.txid}:1"
    assert OutPoint.from_hex(tx.txid, 1) == op


def test_time_is_part_of_identity() -> None:
    """Changing nTime changes the txid (BitBay's PoS field is serialized and hashed)."""
    tx = _sample_tx()
    assert dataclasses.replace(tx, time=tx.time + 1).txid != tx.txid


def test_truncated_bytes_raise_decode_error() -> None:
    """Every strict prefix of a serialized transaction raises DecodeError."""
    raw = _sample_tx().serialize()
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            Transaction.deserialize(raw[:cut])


def test_trailing_bytes_raise_decode_error() -> None:
    """A serialized transaction followed by extra bytes raises DecodeError."""
    with pytest.raises(DecodeError, match="trailing"):
        Transaction.deserialize(_sample_tx().serialize() + b"\x00")


def test_bad_hex_raises_decode_error() -> None:
    """from_hex refuses text that is not hex with DecodeError."""
    with pytest.raises(DecodeError):
        Transaction.from_hex("zz")


def test_transaction_is_immutable_and_copies() -> None:
    """Fields cannot be assigned; with_* helpers return changed copies and leave the original alone."""
    tx = _sample_tx()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.time = 5  # type: ignore[misc]
    changed = tx.with_output_value(0, 1)
    assert changed.outputs[0].value == 1 and tx.outputs[0].value == 150_000_000
    assert tx.with_script_sig(1, b"\x51").inputs[1].script_sig == b"\x51"
    assert tx.inputs[1].script_sig == b""


def test_field_ranges_are_checked() -> None:
    """Out-of-range fields and wrong types raise TxError."""
    with pytest.raises(TxError):
        Transaction(version=2**31, time=0)
    with pytest.raises(TxError):
        Transaction(version=1, time=-1)
    with pytest.raises(TxError):
        OutPoint(bytes(31), 0)
    with pytest.raises(TxError):
        TxIn(OutPoint(PREV_TXID, 0), sequence=2**32)
    with pytest.raises(TxError):
        TxOut(1.5, b"")  # type: ignore[arg-type]
    with pytest.raises(TxError):
        TxOut(2**63, b"")
    with pytest.raises(TxError):
        Transaction(version=1, time=0, inputs=("not an input",))  # type: ignore[arg-type]


def test_coinbase_detection() -> None:
    """A single input spending the null outpoint is a coinbase."""
    cb = Transaction(1, 0, (TxIn(OutPoint.null(), b"\x01\x01"),), (TxOut(0, b""),))
    assert cb.is_coinbase() and not _sample_tx().is_coinbase()


def test_signature_hash_matches_original_algorithm() -> None:
    """The sighash of input 1 is sha256d of the tx with input 0 blanked, input 1 holding the prev script, + u32 1."""
    preimage = _hand_serialized((b"", SCRIPT_A)) + struct.pack("<I", 1)
    assert signature_hash(_sample_tx(), 1, SCRIPT_A) == _dsha(preimage)
    # Existing scriptSigs of other inputs must not influence the digest.
    dirty = _sample_tx().with_script_sig(0, b"\x51\x52")
    assert signature_hash(dirty, 1, SCRIPT_A) == _dsha(preimage)


def test_signature_hash_drops_codeseparators() -> None:
    """OP_CODESEPARATOR ops in the prev script are removed before hashing, as in the original algorithm."""
    with_sep = bytes([OP_CODESEPARATOR]) + SCRIPT_A
    assert signature_hash(_sample_tx(), 0, with_sep) == signature_hash(_sample_tx(), 0, SCRIPT_A)


def test_signature_hash_refuses_other_hashtypes_and_indexes() -> None:
    """Only SIGHASH_ALL and existing input indexes are accepted."""
    with pytest.raises(TxError):
        signature_hash(_sample_tx(), 0, SCRIPT_A, hashtype=2)
    with pytest.raises(TxError):
        signature_hash(_sample_tx(), 2, SCRIPT_A)


def _signed() -> Transaction:
    tx = sign_input(_sample_tx(), 0, KEY_A, SCRIPT_A)
    return sign_input(tx, 1, KEY_B, SCRIPT_B)


def test_sign_then_verify() -> None:
    """Both inputs verify after signing, and signing input 1 leaves input 0's signature valid."""
    tx = _signed()
    assert verify_input(tx, 0, SCRIPT_A)
    assert verify_input(tx, 1, SCRIPT_B)
    assert Transaction.deserialize(tx.serialize()) == tx


def test_signing_is_deterministic_and_low_s() -> None:
    """Signing twice gives the same bytes (RFC 6979), the hashtype byte is 0x01 and S is low."""
    a, b = _signed(), _signed()
    assert a.serialize() == b.serialize()
    sig, pub = parse_p2pkh_script_sig(a.inputs[0].script_sig)  # type: ignore[misc]
    assert sig[-1] == SIGHASH_ALL and pub == KEY_A.public_key().to_bytes()
    _r, s = sigdecode_der(sig[:-1], CURVE_ORDER)
    assert s <= CURVE_ORDER // 2


def test_unsigned_input_does_not_verify() -> None:
    """An input with an empty scriptSig does not verify."""
    assert not verify_input(_sample_tx(), 0, SCRIPT_A)


def test_tampered_output_value_fails() -> None:
    """Changing an output value after signing makes every input's verification fail."""
    tx = _signed().with_output_value(0, 150_000_001)
    assert not verify_input(tx, 0, SCRIPT_A)
    assert not verify_input(tx, 1, SCRIPT_B)


def test_tampered_time_fails() -> None:
    """Changing nTime after signing makes verification fail (nTime is covered by the sighash)."""
    tx = dataclasses.replace(_signed(), time=1_600_000_001)
    assert not verify_input(tx, 0, SCRIPT_A)


def test_wrong_key_fails() -> None:
    """Signing with a key that does not own the output is refused, and a foreign signature does not verify."""
    with pytest.raises(TxError, match="does not own"):
        sign_input(_sample_tx(), 0, KEY_B, SCRIPT_A)
    # Key B's own valid spend presented against key A's output: the pubkey hash does not match.
    by_b = sign_input(_sample_tx(), 0, KEY_B, SCRIPT_B)
    assert not verify_input(by_b, 0, SCRIPT_A)
    # Key B's signature with key A's pubkey: the hash matches but the signature does not.
    sig_b, _pub_b = parse_p2pkh_script_sig(by_b.inputs[0].script_sig)  # type: ignore[misc]
    forged = _sample_tx().with_script_sig(0, p2pkh_script_sig(sig_b, KEY_A.public_key().to_bytes()))
    assert not verify_input(forged, 0, SCRIPT_A)


def test_signature_for_another_input_fails() -> None:
    """A signature made for input 0 does not verify when moved to input 1."""
    tx = sign_input(_sample_tx(), 0, KEY_A, SCRIPT_A)
    moved = tx.with_script_sig(1, tx.inputs[0].script_sig)
    assert not verify_input(moved, 1, SCRIPT_A)


def test_high_s_twin_verifies() -> None:
    """Verification accepts the high-S twin of a valid signature (bitbay-core does not enforce low S)."""
    tx = sign_input(_sample_tx(), 0, KEY_A, SCRIPT_A)
    sig, pub = parse_p2pkh_script_sig(tx.inputs[0].script_sig)  # type: ignore[misc]
    r, s = sigdecode_der(sig[:-1], CURVE_ORDER)
    twin = sigencode_der(r, CURVE_ORDER - s, CURVE_ORDER) + bytes([SIGHASH_ALL])
    assert verify_input(tx.with_script_sig(0, p2pkh_script_sig(twin, pub)), 0, SCRIPT_A)


def test_other_hashtype_byte_fails() -> None:
    """A valid DER signature tagged with a hashtype other than SIGHASH_ALL does not verify."""
    tx = sign_input(_sample_tx(), 0, KEY_A, SCRIPT_A)
    sig, pub = parse_p2pkh_script_sig(tx.inputs[0].script_sig)  # type: ignore[misc]
    retagged = tx.with_script_sig(0, p2pkh_script_sig(sig[:-1] + b"\x02", pub))
    assert not verify_input(retagged, 0, SCRIPT_A)


def test_non_p2pkh_prev_script() -> None:
    """Signing against a non-P2PKH script is refused and verifying against one is False."""
    with pytest.raises(TxError):
        sign_input(_sample_tx(), 0, KEY_A, notary_script("x"))
    assert not verify_input(_signed(), 0, notary_script("x"))


def test_uncompressed_key_signs_and_verifies() -> None:
    """A key used uncompressed signs an output paying its uncompressed hash160, and that verifies."""
    key = PrivateKey.from_int(1, compressed=False)
    script = p2pkh_script(key.public_key().hash160())
    tx = sign_input(_sample_tx(), 1, key, script)
    assert verify_input(tx, 1, script)
    assert not verify_input(tx, 1, SCRIPT_A)


_scripts = st.binary(max_size=120)
_txins = st.builds(
    TxIn,
    prevout=st.builds(OutPoint, txid=st.binary(min_size=32, max_size=32), n=st.integers(0, 2**32 - 1)),
    script_sig=_scripts,
    sequence=st.integers(0, 2**32 - 1),
)
_txouts = st.builds(TxOut, value=st.integers(-(2**63), 2**63 - 1), script_pubkey=st.binary(max_size=300))
_txs = st.builds(
    Transaction,
    version=st.integers(-(2**31), 2**31 - 1),
    time=st.integers(0, 2**32 - 1),
    inputs=st.lists(_txins, max_size=5).map(tuple),
    outputs=st.lists(_txouts, max_size=5).map(tuple),
    lock_time=st.integers(0, 2**32 - 1),
)


@settings(max_examples=150, deadline=None)
@given(_txs)
def test_random_transactions_round_trip(tx: Transaction) -> None:
    """Any transaction survives serialize/deserialize unchanged, and its txid is the reversed sha256d."""
    raw = tx.serialize()
    assert Transaction.deserialize(raw) == tx
    assert tx.txid == _dsha(raw)[::-1].hex()


@settings(max_examples=60, deadline=None)
@given(_txs, st.data())
def test_random_truncation_raises(tx: Transaction, data: st.DataObject) -> None:
    """Any strict prefix of a random transaction's bytes raises DecodeError."""
    raw = tx.serialize()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        Transaction.deserialize(raw[:cut])

"""Scripts: P2PKH/P2SH templates, OP_RETURN notaries with each push form, address mapping and scriptSigs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain.keys import AddressError, PrivateKey
from halo_exchange.chain.script import (
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_RETURN,
    ScriptError,
    address_to_script,
    notary_script,
    p2pkh_script,
    p2pkh_script_sig,
    p2sh_script,
    parse_notary,
    parse_notary_payload,
    parse_ops,
    parse_p2pkh,
    parse_p2pkh_script_sig,
    parse_p2sh,
    push_data,
    script_to_address,
)

KEY1_H160 = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
KEY1_ADDRESS = "BF8MAsLp7aSfb9g9qGSHwzDerit8nAZAJX"
BURN_ADDRESS = "bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3"


def test_p2pkh_script_bytes() -> None:
    """The P2PKH script of key 1 is the textbook 76a914<h160>88ac and parses back to the hash."""
    script = p2pkh_script(KEY1_H160)
    assert script.hex() == "76a914" + KEY1_H160.hex() + "88ac"
    assert parse_p2pkh(script) == KEY1_H160
    assert parse_p2sh(script) is None


def test_p2sh_script_bytes() -> None:
    """The P2SH script is a914<h160>87 and parses back to the hash."""
    script = p2sh_script(KEY1_H160)
    assert script.hex() == "a914" + KEY1_H160.hex() + "87"
    assert parse_p2sh(script) == KEY1_H160
    assert parse_p2pkh(script) is None


def test_template_builders_refuse_bad_hash_length() -> None:
    """P2PKH and P2SH builders refuse hashes that are not 20 bytes."""
    with pytest.raises(ScriptError):
        p2pkh_script(bytes(19))
    with pytest.raises(ScriptError):
        p2sh_script(bytes(21))


def test_near_miss_scripts_are_not_templates() -> None:
    """A P2PKH with a wrong opcode or extra byte is neither P2PKH nor an address."""
    script = p2pkh_script(KEY1_H160)
    for bad in (script + b"\x00", script[:-1] + b"\xad", b"", b"\x76"):
        assert parse_p2pkh(bad) is None
        assert script_to_address(bad) is None


def test_script_address_round_trip() -> None:
    """address -> script -> address holds for a P2PKH ('B') and a P2SH ('b') address."""
    assert address_to_script(KEY1_ADDRESS) == p2pkh_script(KEY1_H160)
    assert script_to_address(p2pkh_script(KEY1_H160)) == KEY1_ADDRESS
    assert script_to_address(address_to_script(BURN_ADDRESS)) == BURN_ADDRESS
    assert parse_p2sh(address_to_script(BURN_ADDRESS)) is not None


def test_address_to_script_refuses_bad_address() -> None:
    """address_to_script raises AddressError for a Bitcoin address and for junk."""
    with pytest.raises(AddressError):
        address_to_script("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH")
    with pytest.raises(AddressError):
        address_to_script("not an address")


def test_notary_short_payload_uses_direct_push() -> None:
    """A notary below 76 bytes is OP_RETURN, one length byte, then the text."""
    script = notary_script("**F**1:1:1")
    assert script == bytes([OP_RETURN, 10]) + b"**F**1:1:1"
    assert parse_notary(script) == "**F**1:1:1"


def test_notary_pushdata1_and_pushdata2() -> None:
    """Payloads of 76..255 bytes use OP_PUSHDATA1, larger ones OP_PUSHDATA2, and both parse back."""
    text76 = "XCH:0:" + "a" * 70
    script = notary_script(text76)
    assert script[:3] == bytes([OP_RETURN, OP_PUSHDATA1, 76])
    assert parse_notary(script) == text76
    text300 = "V" * 300
    script = notary_script(text300)
    assert script[:4] == bytes([OP_RETURN, OP_PUSHDATA2]) + (300).to_bytes(2, "little")
    assert parse_notary(script) == text300


def test_push_boundaries() -> None:
    """push_data switches form exactly at 76 and 256 bytes and refuses more than 65535."""
    assert push_data(bytes(75))[0] == 75
    assert push_data(bytes(76))[:2] == bytes([OP_PUSHDATA1, 76])
    assert push_data(bytes(255))[:2] == bytes([OP_PUSHDATA1, 255])
    assert push_data(bytes(256))[:3] == bytes([OP_PUSHDATA2, 0, 1])
    with pytest.raises(ScriptError):
        push_data(bytes(65536))


def test_notary_raw_id_and_non_notaries() -> None:
    """A raw 32-byte id round-trips as bytes; non-OP_RETURN and truncated scripts are not notaries."""
    raw = bytes(range(32))
    assert parse_notary_payload(notary_script(raw)) == raw
    assert parse_notary_payload(bytes([OP_RETURN])) == b""
    assert parse_notary(p2pkh_script(KEY1_H160)) is None
    assert parse_notary_payload(bytes([OP_RETURN, 10]) + b"short") is None
    assert parse_notary_payload(b"") is None


def test_notary_is_not_an_address() -> None:
    """An OP_RETURN notary script maps to no address."""
    assert script_to_address(notary_script("**V**0")) is None


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=400))
def test_notary_text_round_trip(text: str) -> None:
    """Any text built into a notary script parses back unchanged."""
    assert parse_notary(notary_script(text)) == text


def test_parse_ops_reports_truncation() -> None:
    """parse_ops raises ScriptError for a push whose data or length runs past the end."""
    with pytest.raises(ScriptError):
        parse_ops(b"\x05abc")
    with pytest.raises(ScriptError):
        parse_ops(bytes([OP_PUSHDATA2, 1]))
    ops = parse_ops(bytes([0x76, 0x02, 0xAA, 0xBB]))
    assert [(op.opcode, op.data) for op in ops] == [(0x76, None), (0x02, b"\xaa\xbb")]


def test_p2pkh_script_sig_round_trip() -> None:
    """A P2PKH scriptSig is <sig+hashtype> <pubkey> and parses back to both parts."""
    pub = PrivateKey.from_int(1).public_key().to_bytes()
    sig = bytes.fromhex("3006020101020101") + b"\x01"
    script = p2pkh_script_sig(sig, pub)
    assert script == bytes([len(sig)]) + sig + bytes([33]) + pub
    assert parse_p2pkh_script_sig(script) == (sig, pub)


def test_p2pkh_script_sig_malformed() -> None:
    """Malformed scriptSigs (one push, three pushes, bad key size, non-push op) parse to None."""
    pub = PrivateKey.from_int(1).public_key().to_bytes()
    sig = b"\x30\x01"
    assert parse_p2pkh_script_sig(push_data(sig)) is None
    assert parse_p2pkh_script_sig(push_data(sig) + push_data(pub) + push_data(b"x")) is None
    assert parse_p2pkh_script_sig(push_data(sig) + push_data(pub[:-1])) is None
    assert parse_p2pkh_script_sig(push_data(sig) + b"\x76") is None
    with pytest.raises(ScriptError):
        p2pkh_script_sig(sig, pub[:-1])

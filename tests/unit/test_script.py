"""Scripts: P2PKH/P2SH templates, OP_RETURN notaries with each push form, address mapping and scriptSigs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain.hashes import hash160
from halo_exchange.chain.keys import AddressError, PrivateKey, hash160_to_address
from halo_exchange.chain.script import (
    OP_CHECKMULTISIG,
    OP_CHECKSIG,
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_RETURN,
    ScriptError,
    address_to_script,
    notary_script,
    owner_is_address,
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
    script_owner,
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
    """A raw 32-byte id round-trips as bytes; scripts not starting with OP_RETURN are not notaries."""
    raw = bytes(range(32))
    assert parse_notary_payload(notary_script(raw)) == raw
    assert parse_notary_payload(bytes([OP_RETURN])) == b""
    assert parse_notary(p2pkh_script(KEY1_H160)) is None
    assert parse_notary_payload(b"") is None
    assert parse_notary_payload(b"\x00\x6a\x01x") is None


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


# -- bitbay-core's readings: CScript::ToNotary and CScript::ToAddress (issue 10 item 17) ---------------------


@pytest.mark.parametrize(
    ("script", "text"),
    [
        (bytes([OP_RETURN, OP_PUSHDATA1, 6]) + b"**F**1", b"\x06**F**1"),  # short script: byte 1 is a length
        (bytes([OP_RETURN, 0x10]) + b"**F**", b"**F**"),  # truncated push: as many bytes as there are
        (bytes([OP_RETURN, 10]) + b"short", b"short"),
        (bytes([OP_RETURN, 3]) + b"abcdef", b"abc"),  # bytes after the push are not read
        (bytes([OP_RETURN, 0]), b""),
        (bytes([OP_RETURN, OP_RETURN, 5]) + b"hello", b"\x05hello"),  # a non-push op is read as a length
        (bytes([OP_RETURN, 75]) + b"x" * 75, b"x" * 75),  # 77 bytes: the push itself
        (bytes([OP_RETURN, OP_PUSHDATA1, 76]) + b"y" * 76, b"y" * 76),
        # An unreadable push: byte 1 (OP_PUSHDATA1, 76) read as a length.
        (bytes([OP_RETURN, OP_PUSHDATA1, 200]) + b"z" * 80, b"\xc8" + b"z" * 75),
        (bytes([OP_RETURN, 0]) + b"w" * 80, b""),  # empty push: length byte 0
    ],
)
def test_notary_reading_is_bitbay_cores(script: bytes, text: bytes) -> None:
    """Issue 10 item 17: notary bytes as CScript::ToNotary reads them. Below 77 bytes it reads byte 1 as a
    length (the push-length byte of an OP_PUSHDATA1 push becomes text; a truncated push gives what is
    there); from 77 bytes on it takes the push after OP_RETURN, falling back to that reading when the push
    is empty or unreadable."""
    assert parse_notary_payload(script) == text


KEY = PrivateKey.from_int(3)


def test_p2pk_is_owned_by_the_p2pkh_address_of_its_key() -> None:
    """Issue 10 item 17: a P2PK script (compressed or not) belongs to the P2PKH address of its key bytes."""
    pub = KEY.public_key()
    for key_bytes in (pub.to_bytes(), PrivateKey.from_int(3).public_key().to_bytes(compressed=False)):
        p2pk = push_data(key_bytes) + bytes([OP_CHECKSIG])
        assert script_owner(p2pk) == hash160_to_address(hash160(key_bytes), 25)
    assert script_owner(push_data(pub.to_bytes()) + bytes([OP_CHECKSIG])) == script_owner(
        address_to_script(pub.address())
    )


def test_owner_of_keys_that_do_not_parse_is_the_hash_of_nothing() -> None:
    """A 33..120-byte push whose first byte announces another length is still a P2PK template to Solver,
    and CPubKey invalidates it: the owner is the address of hash160(b"")."""
    odd = push_data(b"\x05" + bytes(40)) + bytes([OP_CHECKSIG])
    assert script_owner(odd) == hash160_to_address(hash160(b""), 25)


def test_owner_reads_any_push_form_of_a_key_hash() -> None:
    """Solver matches the P2PKH template on any push of 20 bytes (here OP_PUSHDATA1), P2SH only exact."""
    odd = bytes([0x76, 0xA9, OP_PUSHDATA1, 20]) + KEY1_H160 + bytes([0x88, OP_CHECKSIG])
    assert script_to_address(odd) is None
    assert script_owner(odd) == KEY1_ADDRESS
    assert script_owner(p2sh_script(KEY1_H160)) == script_to_address(p2sh_script(KEY1_H160))


def test_multisig_owner_is_its_addresses_joined_by_newlines() -> None:
    """A valid m-of-n multisig is owned by its keys' addresses, one per line; m > n or a wrong key count is
    a non-standard script, owned by its bytes."""
    keys = [PrivateKey.from_int(n).public_key().to_bytes() for n in (3, 4)]
    body = b"".join(push_data(k) for k in keys)
    one_of_two = bytes([0x51]) + body + bytes([0x52, OP_CHECKMULTISIG])
    assert script_owner(one_of_two) == "\n".join(hash160_to_address(hash160(k), 25) for k in keys)
    for bad in (bytes([0x53]) + body + bytes([0x52, OP_CHECKMULTISIG]),  # 3-of-2
                bytes([0x51]) + body + bytes([0x53, OP_CHECKMULTISIG]),  # n = 3 with two keys
                bytes([0x00]) + body + bytes([0x52, OP_CHECKMULTISIG])):  # 0-of-2
        assert script_owner(bad) == bad.decode("latin-1")


def test_other_scripts_are_owned_by_their_bytes() -> None:
    """Notaries, truncated and non-standard scripts are owned by their own bytes (latin-1), which sort as
    bitbay-core's std::string keys do."""
    for script in (notary_script("**F**1"), b"\x51", b"\x05abc", b"", bytes([0xFF, 0x00])):
        assert script_owner(script) == script.decode("latin-1")
    assert sorted([script_owner(b"\xff"), script_owner(b"\x51"), KEY1_ADDRESS]) == [KEY1_ADDRESS, "Q", "\xff"]


def test_owner_is_address_reads_as_cbitcoinaddress_does() -> None:
    """CBitcoinAddress(owner).IsValid(): base58check of a known version, white space around it allowed,
    stopping at a NUL byte; multisig owners and script bytes are not addresses."""
    assert owner_is_address(KEY1_ADDRESS)
    assert owner_is_address(" \t" + KEY1_ADDRESS + "\n ")
    assert owner_is_address(KEY1_ADDRESS + "\x00junk")
    assert not owner_is_address(KEY1_ADDRESS + "\n" + BURN_ADDRESS)
    assert not owner_is_address(KEY1_ADDRESS + "x!")
    assert not owner_is_address(notary_script("**F**1").decode("latin-1"))
    assert not owner_is_address("")

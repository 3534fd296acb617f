"""Keys, WIF, base58check and BitBay addresses, pinned to published Bitcoin facts and BitBay version bytes."""

from __future__ import annotations

import hashlib

import pytest
from ecdsa.util import sigdecode_der, sigencode_der

from halo_exchange.chain.keys import (
    CURVE_ORDER,
    DEVNET,
    MAINNET,
    AddressError,
    Base58Error,
    KeyFormatError,
    Network,
    PrivateKey,
    PublicKey,
    address_to_hash160,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    hash160_to_address,
    is_low_s,
    is_valid_address,
)

KEY1_PUB_COMPRESSED = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
KEY1_PUB_UNCOMPRESSED = (
    "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)
KEY1_H160_COMPRESSED = "751e76e8199196d454941c45d1b3a323f1433bd6"
KEY1_H160_UNCOMPRESSED = "91b24bf9f5288532960ac687abb035127b1d28a5"
KEY1_SECRET = (1).to_bytes(32, "big")

# Derived for this project from the facts above; reproduced independently in the tests below.
KEY1_BITBAY_ADDRESS = "BF8MAsLp7aSfb9g9qGSHwzDerit8nAZAJX"
KEY1_BITBAY_WIF = "PdiUUh8dnXB36B2XcbPdodUX5Ujoj2VDubJwcW1V8DJu69XHZWGg"

# Bitcoin's own version bytes, to check WIF and address logic against Bitcoin's published strings.
BITCOIN = Network(name="bitcoin", p2pkh_version=0, p2sh_version=5, wif_version=0x80)

# Bitcoin Core's src/test/data/base58_encode_decode.json.
BASE58_VECTORS = [
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
]


def _reference_b58check(payload: bytes) -> str:
    # A deliberately separate, textbook base58check so vectors are not derived from the code under test.
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n > 0:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    for byte in data:
        if byte != 0:
            break
        out = "1" + out
    return out


def test_reference_b58check_reproduces_bitcoin_address() -> None:
    """The test's reference base58check gives Bitcoin's published address of key 1 (1BgGZ9...)."""
    assert _reference_b58check(b"\x00" + bytes.fromhex(KEY1_H160_COMPRESSED)) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


@pytest.mark.parametrize("hex_data,text", BASE58_VECTORS)
def test_base58_matches_bitcoin_vectors(hex_data: str, text: str) -> None:
    """b58encode/b58decode reproduce Bitcoin Core's base58 vectors in both directions."""
    assert b58encode(bytes.fromhex(hex_data)) == text
    assert b58decode(text) == bytes.fromhex(hex_data)


def test_base58_rejects_characters_outside_alphabet() -> None:
    """0, O, I and l are not base58 and raise Base58Error."""
    for bad in ("0", "O", "I", "l", "abc!"):
        with pytest.raises(Base58Error):
            b58decode(bad)


def test_base58check_detects_corruption() -> None:
    """Changing one character of a base58check string fails the checksum."""
    text = b58check_encode(b"\x19" + bytes(20))
    assert b58check_decode(text) == b"\x19" + bytes(20)
    corrupted = text[:-1] + ("2" if text[-1] != "2" else "3")
    with pytest.raises(Base58Error, match="checksum"):
        b58check_decode(corrupted)


def test_bitcoin_address_vector() -> None:
    """hash160 751e...3bd6 with version 0 is Bitcoin's 1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH."""
    assert hash160_to_address(bytes.fromhex(KEY1_H160_COMPRESSED), 0) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    assert PrivateKey.from_int(1).public_key().address(BITCOIN) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


def test_key_one_public_key_and_hash160() -> None:
    """Private key 1 gives the published compressed and uncompressed pubkeys and their hash160s."""
    compressed = PrivateKey.from_bytes(KEY1_SECRET).public_key()
    uncompressed = PrivateKey.from_bytes(KEY1_SECRET, compressed=False).public_key()
    assert compressed.hex() == KEY1_PUB_COMPRESSED
    assert compressed.hash160().hex() == KEY1_H160_COMPRESSED
    assert uncompressed.hex() == KEY1_PUB_UNCOMPRESSED
    assert uncompressed.hash160().hex() == KEY1_H160_UNCOMPRESSED
    assert uncompressed.address(BITCOIN) == "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"


def test_key_one_bitbay_address() -> None:
    """Key 1's BitBay address is base58check(25 || hash160), starts with 'B' and matches the pinned string."""
    address = PrivateKey.from_int(1).public_key().address()
    expected = _reference_b58check(bytes([25]) + bytes.fromhex(KEY1_H160_COMPRESSED))
    assert address == expected == KEY1_BITBAY_ADDRESS
    assert address.startswith("B")
    assert address_to_hash160(address) == (25, bytes.fromhex(KEY1_H160_COMPRESSED))
    assert PrivateKey.from_int(1).public_key().address(DEVNET) == address


def test_key_one_bitbay_wif() -> None:
    """Key 1's compressed WIF is base58check(0x99 || key || 0x01) and round-trips to the same key."""
    key = PrivateKey.from_int(1)
    expected = _reference_b58check(bytes([0x99]) + KEY1_SECRET + b"\x01")
    assert key.to_wif() == expected == KEY1_BITBAY_WIF
    back = PrivateKey.from_wif(KEY1_BITBAY_WIF)
    assert back == key and back.compressed and back.to_bytes() == KEY1_SECRET


def test_bitcoin_wif_vectors() -> None:
    """With Bitcoin's 0x80 version, key 1 gives Bitcoin's published compressed and uncompressed WIFs."""
    assert PrivateKey.from_int(1).to_wif(BITCOIN) == "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
    uncompressed = "5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDf"
    assert PrivateKey.from_int(1, compressed=False).to_wif(BITCOIN) == uncompressed
    assert not PrivateKey.from_wif(uncompressed, BITCOIN).compressed


def test_wif_of_other_network_is_refused() -> None:
    """A Bitcoin WIF is refused as a BitBay WIF with a version error."""
    with pytest.raises(KeyFormatError, match="version"):
        PrivateKey.from_wif("KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn")


def test_wif_errors_do_not_echo_the_secret() -> None:
    """A corrupted WIF raises KeyFormatError whose message does not contain the WIF text."""
    bad = KEY1_BITBAY_WIF[:-1] + ("a" if KEY1_BITBAY_WIF[-1] != "a" else "b")
    with pytest.raises(KeyFormatError) as info:
        PrivateKey.from_wif(bad)
    assert bad not in str(info.value)


def test_private_key_range_is_checked() -> None:
    """Zero, the curve order and wrong lengths are not private keys."""
    for secret in (bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(KeyFormatError):
            PrivateKey.from_bytes(secret)


def test_private_key_repr_hides_secret() -> None:
    """repr(PrivateKey) shows neither the secret bytes nor the WIF."""
    key = PrivateKey.from_int(0xDEADBEEF)
    text = repr(key)
    assert key.to_bytes().hex() not in text and key.to_wif() not in text and "deadbeef" not in text


def test_rfc6979_signature_vector() -> None:
    """Key 1 signing sha256('Satoshi Nakamoto') gives the well-known RFC 6979 low-S signature, every time."""
    key = PrivateKey.from_int(1)
    digest = hashlib.sha256(b"Satoshi Nakamoto").digest()
    sig = key.sign(digest)
    assert sig.hex() == (
        "3045022100934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8"
        "02202442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5"
    )
    assert key.sign(digest) == sig
    assert key.public_key().verify(digest, sig)


def test_signatures_are_low_s_and_high_s_twin_verifies() -> None:
    """sign() always emits low S; verify() accepts both the signature and its high-S twin."""
    key = PrivateKey.from_int(0x1234567890ABCDEF)
    pub = key.public_key()
    for i in range(16):
        digest = hashlib.sha256(b"msg %d" % i).digest()
        sig = key.sign(digest)
        assert is_low_s(sig)
        r, s = sigdecode_der(sig, CURVE_ORDER)
        twin = sigencode_der(r, CURVE_ORDER - s, CURVE_ORDER)
        assert not is_low_s(twin)
        assert pub.verify(digest, sig) and pub.verify(digest, twin)
    with pytest.raises(KeyFormatError):
        is_low_s(b"\x30\x00")


def test_verify_rejects_wrong_digest_key_and_garbage() -> None:
    """verify() is False for another digest, another key, trailing junk and non-DER bytes."""
    key = PrivateKey.from_int(7)
    digest = hashlib.sha256(b"x").digest()
    sig = key.sign(digest)
    assert not key.public_key().verify(hashlib.sha256(b"y").digest(), sig)
    assert not PrivateKey.from_int(8).public_key().verify(digest, sig)
    assert not key.public_key().verify(digest, sig + b"\x00")
    assert not key.public_key().verify(digest, b"\x30\x00")
    assert not key.public_key().verify(digest, b"")


def test_sign_requires_a_32_byte_digest() -> None:
    """sign() and verify() refuse digests that are not 32 bytes."""
    key = PrivateKey.from_int(3)
    with pytest.raises(ValueError):
        key.sign(b"short")
    with pytest.raises(ValueError):
        key.public_key().verify(b"short", b"")


def test_public_key_parsing() -> None:
    """SEC keys parse in both forms and keep their form; off-curve points and bad prefixes are refused."""
    pub_c = PublicKey.from_hex(KEY1_PUB_COMPRESSED)
    pub_u = PublicKey.from_hex(KEY1_PUB_UNCOMPRESSED)
    assert pub_c.compressed and not pub_u.compressed
    assert pub_c.to_bytes(compressed=False).hex() == KEY1_PUB_UNCOMPRESSED
    assert pub_u.to_bytes(compressed=True).hex() == KEY1_PUB_COMPRESSED
    off_curve = bytes.fromhex(KEY1_PUB_UNCOMPRESSED[:-2] + "b9")
    for bad in (off_curve, b"\x05" + bytes(32), b"\x02" + bytes(31), b""):
        with pytest.raises(KeyFormatError):
            PublicKey.from_bytes(bad)


def test_generate_gives_distinct_working_keys() -> None:
    """generate() returns distinct keys that sign verifiably and round-trip through WIF."""
    a, b = PrivateKey.generate(), PrivateKey.generate()
    assert a != b
    digest = bytes(range(32))
    assert a.public_key().verify(digest, a.sign(digest))
    assert PrivateKey.from_wif(a.to_wif()) == a


def test_p2sh_burn_address_decodes() -> None:
    """The BitBay burn address bJnV8J... is a valid mainnet P2SH (version 85) address starting with 'b'."""
    version, h160 = address_to_hash160("bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3")
    assert version == MAINNET.p2sh_version == 85
    assert hash160_to_address(h160, 85) == "bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3"


def test_address_errors_are_clear() -> None:
    """Bad checksum, foreign version, wrong length and junk each raise AddressError saying why."""
    bad_checksum = KEY1_BITBAY_ADDRESS[:-1] + ("Y" if KEY1_BITBAY_ADDRESS[-1] != "Y" else "Z")
    with pytest.raises(AddressError, match="checksum"):
        address_to_hash160(bad_checksum)
    with pytest.raises(AddressError, match="version 0"):
        address_to_hash160("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH")
    with pytest.raises(AddressError, match="expected 21"):
        address_to_hash160(_reference_b58check(bytes([25]) + bytes(19)))
    with pytest.raises(AddressError):
        address_to_hash160("B0OIl")
    with pytest.raises(AddressError):
        address_to_hash160("")


def test_is_valid_address() -> None:
    """is_valid_address is True only for well-formed BitBay P2PKH/P2SH addresses."""
    assert is_valid_address(KEY1_BITBAY_ADDRESS)
    assert is_valid_address("bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3")
    assert not is_valid_address("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH")
    assert not is_valid_address(KEY1_BITBAY_ADDRESS.lower())
    assert not is_valid_address(None)
    assert not is_valid_address(12345)
    assert not is_valid_address("B" * 500)

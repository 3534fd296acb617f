"""Chain hashes: SHA-256d and HASH160, and the pure-Python RIPEMD-160 fallback against published vectors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain import hashes
from halo_exchange.chain.hashes import hash160, ripemd160, ripemd160_pure, sha256d

# The RIPEMD-160 authors' test vectors (Dobbertin, Bosselaers, Preneel).
RIPEMD160_VECTORS = [
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "b0e20b6e3116640286ed3a87a5713079b21f5189"),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
]


@pytest.mark.parametrize("message,digest", RIPEMD160_VECTORS)
def test_ripemd160_pure_matches_published_vectors(message: bytes, digest: str) -> None:
    """The pure-Python RIPEMD-160 reproduces each published test vector."""
    assert ripemd160_pure(message).hex() == digest


@pytest.mark.parametrize("message,digest", RIPEMD160_VECTORS)
def test_ripemd160_matches_published_vectors(message: bytes, digest: str) -> None:
    """ripemd160(), whichever backend it uses here, reproduces each published test vector."""
    assert ripemd160(message).hex() == digest


@pytest.mark.parametrize("length", [55, 56, 63, 64, 65, 119, 120, 128])
def test_ripemd160_pure_padding_boundaries(length: int) -> None:
    """Messages around the 64-byte block and 56-byte padding boundaries hash like hashlib's RIPEMD-160."""
    if not hashes.HASHLIB_HAS_RIPEMD160:
        pytest.skip("hashlib has no ripemd160 on this OpenSSL")
    data = bytes(range(length))
    assert ripemd160_pure(data) == hashlib.new("ripemd160", data).digest()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_ripemd160_pure_agrees_with_hashlib(data: bytes) -> None:
    """On random inputs the fallback agrees with hashlib's RIPEMD-160."""
    if not hashes.HASHLIB_HAS_RIPEMD160:
        pytest.skip("hashlib has no ripemd160 on this OpenSSL")
    assert ripemd160_pure(data) == hashlib.new("ripemd160", data).digest()


def test_hash160_uses_fallback_when_hashlib_lacks_ripemd160(monkeypatch: pytest.MonkeyPatch) -> None:
    """With hashlib's RIPEMD-160 unavailable, hash160 still gives the published value for key 1's pubkey."""
    monkeypatch.setattr(hashes, "HASHLIB_HAS_RIPEMD160", False)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("hashlib.new must not be called when the fallback is active")

    monkeypatch.setattr(hashes.hashlib, "new", refuse)
    pub = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert hash160(pub).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"


def test_hash160_of_key_one() -> None:
    """hash160 of secp256k1 key 1's compressed pubkey is Bitcoin's published 751e76e8...3bd6."""
    pub = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert hash160(pub).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"


def test_sha256d_is_double_sha256() -> None:
    """sha256d of b'' is SHA-256 applied twice (5df6e0e2...9456)."""
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
    assert sha256d(b"abc") == hashlib.sha256(hashlib.sha256(b"abc").digest()).digest()

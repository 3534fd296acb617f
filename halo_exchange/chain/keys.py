"""secp256k1 keys, WIF secrets, base58check and BitBay addresses.

Owns the network version bytes (:class:`Network`), base58/base58check, :class:`PrivateKey` (WIF, RFC 6979
deterministic signing with low-S DER output) and :class:`PublicKey` (SEC encodings, HASH160, addresses,
verification). Signatures sign a 32-byte digest the caller computed (a transaction's signature hash), so
nothing here hashes a message.

The ``ecdsa`` package defaults to SHA-1 and raw ``r||s`` signatures (DESIGN.md §7), so every call passes
the hash function and the DER codecs explicitly. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ecdsa import BadSignatureError, SECP256k1, SigningKey, VerifyingKey
from ecdsa.der import UnexpectedDER
from ecdsa.errors import MalformedPointError
from ecdsa.util import sigdecode_der, sigencode_der_canonize

from halo_exchange.chain.hashes import hash160, sha256d
from halo_exchange.errors import DecodeError

__all__ = [
    "Network",
    "MAINNET",
    "DEVNET",
    "Base58Error",
    "AddressError",
    "KeyFormatError",
    "b58encode",
    "b58decode",
    "b58check_encode",
    "b58check_decode",
    "PrivateKey",
    "PublicKey",
    "hash160_to_address",
    "address_to_hash160",
    "is_valid_address",
    "CURVE_ORDER",
    "is_low_s",
]

CURVE_ORDER = SECP256k1.order
_HALF_ORDER = CURVE_ORDER // 2


class Base58Error(DecodeError):
    """Text is not base58, or its base58check checksum does not match."""


class AddressError(DecodeError):
    """An address is malformed, has a bad checksum, or belongs to another network or address type."""


class KeyFormatError(DecodeError):
    """A private key, WIF string or public key encoding is invalid."""


@dataclass(frozen=True)
class Network:
    """Version bytes of one network's base58check encodings."""

    name: str
    p2pkh_version: int
    p2sh_version: int
    wif_version: int

    def address_versions(self) -> tuple[int, int]:
        return (self.p2pkh_version, self.p2sh_version)


# bitbay-core chainparams (mainnet): PUBKEY_ADDRESS 25 ('B...'), SCRIPT_ADDRESS 85 ('b...'), SECRET_KEY 0x99.
MAINNET = Network(name="mainnet", p2pkh_version=25, p2sh_version=85, wif_version=0x99)
# The devnet reuses mainnet versions so devnet addresses look exactly like the ones exchanges handle.
DEVNET = Network(name="devnet", p2pkh_version=25, p2sh_version=85, wif_version=0x99)
# bitbay-core chainparams (testnet): PUBKEY_ADDRESS 111 ('m'/'n'), SCRIPT_ADDRESS 196, SECRET_KEY 239.
TESTNET = Network(name="testnet", p2pkh_version=111, p2sh_version=196, wif_version=239)
NETWORKS = {net.name: net for net in (MAINNET, TESTNET, DEVNET)}


def network_for(name: str) -> Network:
    """The version bytes of the chain named ``name`` (``ChainParams.network``): every address the exchange
    reads or writes uses the chain's own, whatever they happen to share with another network."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise KeyFormatError(f"unknown network {name!r}") from None


# --------------------------------------------------------------------------------------------- base58

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a leading '1'."""
    data = bytes(data)
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; raises :class:`Base58Error` on characters outside the alphabet."""
    if not isinstance(text, str):
        raise Base58Error(f"base58 text must be str, not {type(text).__name__}")
    n = 0
    for pos, ch in enumerate(text):
        digit = _INDEX.get(ch)
        if digit is None:
            raise Base58Error(f"invalid base58 character {ch!r} at position {pos}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def b58check_encode(payload: bytes) -> str:
    """Base58 of ``payload`` followed by the first 4 bytes of its double SHA-256."""
    payload = bytes(payload)
    return b58encode(payload + sha256d(payload)[:4])


def b58check_decode(text: str) -> bytes:
    """Inverse of :func:`b58check_encode`: the payload, after checking the 4-byte checksum."""
    raw = b58decode(text)
    if len(raw) < 4:
        raise Base58Error("base58check text too short for a checksum")
    payload, checksum = raw[:-4], raw[-4:]
    if not hmac.compare_digest(sha256d(payload)[:4], checksum):
        raise Base58Error("base58check checksum mismatch")
    return payload


# ------------------------------------------------------------------------------------------- addresses


def hash160_to_address(h160: bytes, version: int) -> str:
    """The base58check address of a 20-byte hash under a one-byte version."""
    if len(h160) != 20:
        raise AddressError(f"an address hash is 20 bytes, not {len(h160)}")
    if not 0 <= version <= 255:
        raise AddressError(f"address version {version} is not one byte")
    return b58check_encode(bytes([version]) + bytes(h160))


def address_to_hash160(address: str, network: Network = MAINNET) -> tuple[int, bytes]:
    """``(version, hash160)`` of a P2PKH or P2SH address of ``network``; :class:`AddressError` otherwise."""
    if not isinstance(address, str):
        raise AddressError(f"an address must be a string, not {type(address).__name__}")
    if not address:
        raise AddressError("empty address")
    # Far longer than any address: refuse before base58's quadratic big-int work.
    if len(address) > 64:
        raise AddressError(f"address too long ({len(address)} characters)")
    try:
        payload = b58check_decode(address)
    except Base58Error as exc:
        raise AddressError(f"invalid address {address!r}: {exc}") from exc
    if len(payload) != 21:
        raise AddressError(f"invalid address {address!r}: payload is {len(payload)} bytes, expected 21")
    version = payload[0]
    if version not in network.address_versions():
        raise AddressError(
            f"invalid address {address!r}: version {version} is not a {network.name} address version "
            f"({network.p2pkh_version} or {network.p2sh_version})"
        )
    return version, payload[1:]


def is_valid_address(address: object, network: Network = MAINNET) -> bool:
    """True when ``address`` is a well-formed P2PKH or P2SH address of ``network``."""
    if not isinstance(address, str):
        return False
    try:
        address_to_hash160(address, network)
    except AddressError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ keys


def _check_digest(digest: bytes) -> bytes:
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise ValueError("a signature digest must be 32 bytes")
    return bytes(digest)


class PublicKey:
    """A secp256k1 point with its preferred SEC encoding (compressed or not), as a script would carry it."""

    __slots__ = ("_vk", "_compressed", "_sec")

    def __init__(self, verifying_key: VerifyingKey, compressed: bool = True) -> None:
        self._vk = verifying_key
        self._compressed = bool(compressed)
        self._sec = verifying_key.to_string("compressed" if compressed else "uncompressed")

    @classmethod
    def from_bytes(cls, sec: bytes) -> PublicKey:
        """Parse a 33-byte compressed (02/03) or 65-byte uncompressed (04) SEC key; the point is validated."""
        sec = bytes(sec)
        if len(sec) == 33 and sec[0] in (2, 3):
            compressed = True
        elif len(sec) == 65 and sec[0] == 4:
            compressed = False
        else:
            raise KeyFormatError(f"not a SEC public key ({len(sec)} bytes)")
        try:
            vk = VerifyingKey.from_string(sec, curve=SECP256k1, hashfunc=hashlib.sha256)
        except (MalformedPointError, ValueError, AssertionError) as exc:
            raise KeyFormatError(f"public key is not a point on secp256k1: {exc}") from exc
        return cls(vk, compressed)

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        try:
            raw = bytes.fromhex(text)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError("public key hex is not hex") from exc
        return cls.from_bytes(raw)

    @property
    def compressed(self) -> bool:
        return self._compressed

    def to_bytes(self, compressed: bool | None = None) -> bytes:
        """The SEC encoding; by default in the form this key was made with."""
        if compressed is None or compressed == self._compressed:
            return self._sec
        return self._vk.to_string("compressed" if compressed else "uncompressed")

    def hex(self) -> str:
        return self._sec.hex()

    def hash160(self) -> bytes:
        """HASH160 of the SEC encoding in use: what a P2PKH script and address commit to."""
        return hash160(self._sec)

    def address(self, network: Network = MAINNET) -> str:
        """The P2PKH address of this key on ``network`` (mainnet: starts with 'B')."""
        return hash160_to_address(self.hash160(), network.p2pkh_version)

    def verify(self, digest: bytes, der_sig: bytes) -> bool:
        """True when ``der_sig`` (strict DER, low or high S) signs the 32-byte ``digest`` under this key."""
        digest = _check_digest(digest)
        try:
            return bool(self._vk.verify_digest(bytes(der_sig), digest, sigdecode=sigdecode_der))
        except (BadSignatureError, ValueError, AssertionError):
            # ecdsa signals malformed DER with several exception types; all mean "not a valid signature".
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._sec == other._sec

    def __hash__(self) -> int:
        return hash(self._sec)

    def __repr__(self) -> str:
        return f"PublicKey({self._sec.hex()})"


class PrivateKey:
    """A secp256k1 secret and whether its public key is used compressed (WIF suffix 0x01)."""

    __slots__ = ("_sk", "_secret", "_compressed", "_pub")

    def __init__(self, secret: bytes, compressed: bool = True) -> None:
        secret = bytes(secret)
        if len(secret) != 32:
            raise KeyFormatError(f"a private key is 32 bytes, not {len(secret)}")
        k = int.from_bytes(secret, "big")
        if not 1 <= k < CURVE_ORDER:
            raise KeyFormatError("private key out of range [1, n-1]")
        self._secret = secret
        self._compressed = bool(compressed)
        self._sk = SigningKey.from_string(secret, curve=SECP256k1, hashfunc=hashlib.sha256)
        self._pub: PublicKey | None = None

    @classmethod
    def from_bytes(cls, secret: bytes, compressed: bool = True) -> PrivateKey:
        return cls(secret, compressed)

    @classmethod
    def from_int(cls, k: int, compressed: bool = True) -> PrivateKey:
        if not 1 <= k < CURVE_ORDER:
            raise KeyFormatError("private key out of range [1, n-1]")
        return cls(k.to_bytes(32, "big"), compressed)

    @classmethod
    def generate(cls, compressed: bool = True) -> PrivateKey:
        """A fresh key from the OS CSPRNG."""
        return cls.from_int(1 + secrets.randbelow(CURVE_ORDER - 1), compressed)

    @classmethod
    def from_wif(cls, wif: str, network: Network = MAINNET) -> PrivateKey:
        """Parse a WIF secret of ``network``: version, 32-byte key, optional 0x01 compression flag."""
        if not isinstance(wif, str) or len(wif) > 64:
            raise KeyFormatError("not a WIF string")
        try:
            payload = b58check_decode(wif)
        except Base58Error as exc:
            # The WIF itself is secret, so it stays out of the message.
            raise KeyFormatError(f"invalid WIF: {exc}") from exc
        if len(payload) == 34 and payload[-1] == 0x01:
            compressed = True
        elif len(payload) == 33:
            compressed = False
        else:
            raise KeyFormatError(f"invalid WIF: payload of {len(payload)} bytes")
        if payload[0] != network.wif_version:
            raise KeyFormatError(
                f"invalid WIF: version {payload[0]} is not {network.name}'s secret version {network.wif_version}"
            )
        return cls(payload[1:33], compressed)

    def to_wif(self, network: Network = MAINNET) -> str:
        suffix = b"\x01" if self._compressed else b""
        return b58check_encode(bytes([network.wif_version]) + self._secret + suffix)

    @property
    def compressed(self) -> bool:
        return self._compressed

    def to_bytes(self) -> bytes:
        """The 32-byte big-endian secret."""
        return self._secret

    def public_key(self) -> PublicKey:
        if self._pub is None:
            self._pub = PublicKey(self._sk.get_verifying_key(), self._compressed)
        return self._pub

    def sign(self, digest: bytes) -> bytes:
        """DER signature of a 32-byte digest: RFC 6979 nonce, S normalised to the low half (BIP 62)."""
        digest = _check_digest(digest)
        sig = self._sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_der_canonize)
        return bytes(sig)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret) and self._compressed == other._compressed

    def __hash__(self) -> int:
        return hash(self.public_key())

    def __repr__(self) -> str:
        # Never render the secret: reprs end up in logs and tracebacks.
        return f"PrivateKey(<secret>, compressed={self._compressed}, address={self.public_key().address()})"


def is_low_s(der_sig: bytes) -> bool:
    """True when a DER signature's S is in the lower half of the curve order (the form :meth:`sign` makes)."""
    try:
        _r, s = sigdecode_der(bytes(der_sig), CURVE_ORDER)
    except (UnexpectedDER, ValueError) as exc:  # ecdsa's UnexpectedDER is no ValueError
        raise KeyFormatError(f"not a DER signature: {exc}") from exc
    return s <= _HALF_ORDER

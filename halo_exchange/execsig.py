"""The cryptography of Halo's signed exec commands: the command hash, exec keys, signing and verifying.

A command is a piece of Python source. Halo names it by ``txhash(source)`` and its owner signs that name, so
that an exchange which installed the owner's public key runs only the owner's commands. The scheme is the
original's, bit for bit, so a command signed for the original runs here unchanged:

- **hash**: a source made of hex digits only is first read as a big-endian number (``'00ab'`` and ``'ab'`` are
  the same command), anything else is taken as its UTF-8 bytes; then double SHA-256, byte-reversed, as 64
  lower-case hex characters;
- **signature**: ECDSA on secp256k1 over SHA-256 of those 64 ASCII characters, DER-encoded, sent as base64.
  High-S signatures verify (OpenSSL, which made the original's, does not normalise them);
- **public key**: hex SEC1, uncompressed ``04…`` (130 characters) as the original, or compressed (66).

This module has no state and imports nothing of the exchange beyond its errors, so the configuration (which
checks ``exec_pubkey`` at start-up) and the command-line tools can use it as well as the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import xmlrpc.client
from pathlib import Path
from typing import Any

from ecdsa import BadSignatureError, SECP256k1, SigningKey, VerifyingKey
from ecdsa.der import UnexpectedDER
from ecdsa.errors import MalformedPointError
from ecdsa.util import sigdecode_der, sigencode_der

from halo_exchange.errors import HaloExchangeError

_HEX_ONLY = re.compile(r"[0-9a-fA-F]*")
_WHITESPACE = re.compile(rb"\s+")


class ExecKeyError(HaloExchangeError, ValueError):
    """An exec key (the public key in the configuration, or a private key file) cannot be read; the message
    says what was expected."""


class SignatureEncodingError(HaloExchangeError, ValueError):
    """A command's signature is not base64 (or XML-RPC base64 bytes) at all: refused before any check."""


def txhash(source: str) -> str:
    """Halo's name for a command: see the module docstring. ``txhash('pause')`` is ``8991…0506``."""
    if _HEX_ONLY.fullmatch(source):
        number = int(source, 16) if source else 0
        data = number.to_bytes((number.bit_length() + 7) // 8, "big")
    else:
        data = source.encode("utf-8")
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()[::-1].hex()


def parse_public_key(text: str) -> VerifyingKey:
    """The exec public key from its hex SEC1 form (``04`` + X + Y, or ``02``/``03`` + X)."""
    cleaned = text.strip().lower()
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise ExecKeyError("not hex: an exec public key is the hex SEC1 key `halo-exchange exec-keygen` prints "
                           "(130 characters starting 04, or 66 starting 02 or 03)") from None
    if not ((len(raw) == 65 and raw[0] == 4) or (len(raw) == 33 and raw[0] in (2, 3))):
        raise ExecKeyError(f"not a SEC1 public key ({len(cleaned)} hex characters): expected 130 starting 04 "
                           "(uncompressed, as the original) or 66 starting 02 or 03 (compressed)")
    try:
        return VerifyingKey.from_string(raw, curve=SECP256k1, hashfunc=hashlib.sha256)
    except MalformedPointError:
        raise ExecKeyError("not a point of secp256k1: check that the key was copied whole") from None


def public_key_hex(key: VerifyingKey) -> str:
    """The uncompressed hex form the original installs (130 characters, ``04…``)."""
    return key.to_string("uncompressed").hex()


def new_private_key() -> SigningKey:
    return SigningKey.generate(curve=SECP256k1, hashfunc=hashlib.sha256)


def private_key_text(key: SigningKey) -> str:
    """A key file's contents: the private key as 64 hex characters (the original's form), and a comment."""
    return (f"{key.to_string().hex()}\n"
            f"# halo-exchange exec key; public key (exec_pubkey): {public_key_hex(key.get_verifying_key())}\n")


def read_private_key(path: Path) -> SigningKey:
    """The private key of a key file: its first line that is not a comment, 64 hex characters."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExecKeyError(f"cannot read the key file {path}: {exc}") from None
    secret = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    try:
        raw = bytes.fromhex(secret)
        if len(raw) != 32:
            raise ValueError
        return SigningKey.from_string(raw, curve=SECP256k1, hashfunc=hashlib.sha256)
    except (ValueError, MalformedPointError):
        raise ExecKeyError(f"{path} does not hold an exec private key (64 hex characters on its first line; "
                           "`halo-exchange exec-keygen --out FILE` makes one)") from None


def sign_command(source: str, key: SigningKey) -> dict[str, str]:
    """The command struct the API takes: ``{'exec': source, 'sig': base64 DER}`` (RFC 6979, so signing the same
    source twice gives the same signature)."""
    signature = key.sign_deterministic(txhash(source).encode("ascii"), hashfunc=hashlib.sha256,
                                       sigencode=sigencode_der)
    return {"exec": source, "sig": base64.b64encode(signature).decode("ascii")}


def decode_signature(sig: Any) -> bytes:
    """A command's ``sig``: base64 text (whitespace ignored, as the original's ``b64decode`` did), or the raw
    DER bytes of an XML-RPC ``<base64>`` value."""
    if isinstance(sig, xmlrpc.client.Binary):
        return bytes(sig.data)
    if not isinstance(sig, str):
        raise SignatureEncodingError("the signature must be base64 text")
    try:
        return base64.b64decode(_WHITESPACE.sub(b"", sig.encode("ascii")), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SignatureEncodingError("the signature is not valid base64") from None


def verify(key: VerifyingKey, command_hash: str, signature: bytes) -> bool:
    """Whether ``signature`` (DER) signs the 64 hex characters of ``command_hash`` with ``key``."""
    try:
        return bool(key.verify(signature, command_hash.encode("ascii"), hashfunc=hashlib.sha256,
                               sigdecode=sigdecode_der))
    except (BadSignatureError, UnexpectedDER, ValueError, AssertionError):
        return False

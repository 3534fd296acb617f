"""Scripts the chain and the exchange use: P2PKH, P2SH, OP_RETURN notaries and P2PKH scriptSigs.

Owns opcode constants, push encoding, the op parser, and the mapping between scriptPubKeys and addresses.
Recognisers (``parse_*``, :func:`script_to_address`) return ``None`` for any script that is not of their
template, malformed ones included, because any bytes can sit in a scriptPubKey on chain; builders and
:func:`parse_ops` raise :class:`ScriptError`. Pure: no I/O.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

from halo_exchange.chain.keys import MAINNET, Network, address_to_hash160, hash160_to_address
from halo_exchange.errors import DecodeError

__all__ = [
    "ScriptError",
    "Op",
    "OP_0",
    "OP_PUSHDATA1",
    "OP_PUSHDATA2",
    "OP_PUSHDATA4",
    "OP_RETURN",
    "OP_DUP",
    "OP_EQUAL",
    "OP_EQUALVERIFY",
    "OP_HASH160",
    "OP_CODESEPARATOR",
    "OP_CHECKSIG",
    "MAX_SCRIPT_SIZE",
    "push_data",
    "iter_ops",
    "parse_ops",
    "p2pkh_script",
    "parse_p2pkh",
    "p2sh_script",
    "parse_p2sh",
    "notary_script",
    "parse_notary_payload",
    "parse_notary",
    "script_to_address",
    "address_to_script",
    "p2pkh_script_sig",
    "parse_p2pkh_script_sig",
]

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_RETURN = 0x6A
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CODESEPARATOR = 0xAB
OP_CHECKSIG = 0xAC

# Bitcoin's (and bitbay-core's) limit on a script the interpreter will run.
MAX_SCRIPT_SIZE = 10_000


class ScriptError(DecodeError):
    """A script could not be built or parsed: a truncated push, an oversized payload, a bad hash length."""


class Op(NamedTuple):
    """One parsed op: its opcode, its pushed data (``None`` for non-push opcodes) and its byte span."""

    opcode: int
    data: bytes | None
    start: int
    end: int


def push_data(data: bytes) -> bytes:
    """The push of ``data`` as bitbay-core's ``CScript << vector`` writes it: length byte below 76, then
    OP_PUSHDATA1 up to 255 bytes, OP_PUSHDATA2 up to 65535."""
    data = bytes(data)
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([OP_PUSHDATA1, n]) + data
    if n <= 0xFFFF:
        return bytes([OP_PUSHDATA2]) + n.to_bytes(2, "little") + data
    raise ScriptError(f"push of {n} bytes exceeds OP_PUSHDATA2")


def iter_ops(script: bytes) -> Iterator[Op]:
    """Yield the ops of ``script``; raises :class:`ScriptError` on a push that runs past the end."""
    script = bytes(script)
    pos, end = 0, len(script)
    while pos < end:
        start = pos
        opcode = script[pos]
        pos += 1
        if opcode > OP_PUSHDATA4:
            yield Op(opcode, None, start, pos)
            continue
        if opcode < OP_PUSHDATA1:
            size, width = opcode, 0
        else:
            width = {OP_PUSHDATA1: 1, OP_PUSHDATA2: 2, OP_PUSHDATA4: 4}[opcode]
            if pos + width > end:
                raise ScriptError(f"truncated push length at offset {start}")
            size = int.from_bytes(script[pos : pos + width], "little")
        pos += width
        if pos + size > end:
            raise ScriptError(f"push of {size} bytes at offset {start} runs past the end of the script")
        yield Op(opcode, script[pos : pos + size], start, pos + size)
        pos += size


def parse_ops(script: bytes) -> list[Op]:
    """All ops of ``script`` (see :func:`iter_ops`)."""
    return list(iter_ops(script))


def _check_hash(h160: bytes) -> bytes:
    h160 = bytes(h160)
    if len(h160) != 20:
        raise ScriptError(f"a script hash is 20 bytes, not {len(h160)}")
    return h160


def p2pkh_script(h160: bytes) -> bytes:
    """``OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG``."""
    return bytes([OP_DUP, OP_HASH160, 20]) + _check_hash(h160) + bytes([OP_EQUALVERIFY, OP_CHECKSIG])


def parse_p2pkh(script: bytes) -> bytes | None:
    """The 20-byte key hash of a P2PKH scriptPubKey, else ``None``."""
    s = bytes(script)
    if len(s) == 25 and s[:3] == bytes([OP_DUP, OP_HASH160, 20]) and s[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG]):
        return s[3:23]
    return None


def p2sh_script(h160: bytes) -> bytes:
    """``OP_HASH160 <20 bytes> OP_EQUAL``."""
    return bytes([OP_HASH160, 20]) + _check_hash(h160) + bytes([OP_EQUAL])


def parse_p2sh(script: bytes) -> bytes | None:
    """The 20-byte script hash of a P2SH scriptPubKey, else ``None``."""
    s = bytes(script)
    if len(s) == 23 and s[0] == OP_HASH160 and s[1] == 20 and s[22] == OP_EQUAL:
        return s[2:22]
    return None


def notary_script(payload: str | bytes) -> bytes:
    """``OP_RETURN <payload>``: a notary output such as ``**F**1:1:1``, ``XCH:0:<id>`` or a raw id.

    Text is encoded as UTF-8 (``surrogateescape``, so :func:`parse_notary` gives it back exactly).
    """
    raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload)
    script = bytes([OP_RETURN]) + push_data(raw)
    if len(script) > MAX_SCRIPT_SIZE:
        raise ScriptError(f"notary payload of {len(raw)} bytes makes a script above {MAX_SCRIPT_SIZE} bytes")
    return script


def parse_notary_payload(script: bytes) -> bytes | None:
    """The bytes of a notary output: the first push after OP_RETURN (``b""`` for a bare OP_RETURN).

    ``None`` when the script does not start with OP_RETURN or does not parse.
    """
    s = bytes(script)
    if not s or s[0] != OP_RETURN:
        return None
    try:
        for op in iter_ops(s[1:]):
            # bitbay-core takes the first pushed string as the notary text.
            if op.data is not None:
                return op.data
    except ScriptError:
        return None
    return b""


def parse_notary(script: bytes) -> str | None:
    """The notary text of an OP_RETURN output (UTF-8, ``surrogateescape`` for non-UTF-8 bytes), else ``None``."""
    payload = parse_notary_payload(script)
    return None if payload is None else payload.decode("utf-8", "surrogateescape")


def script_to_address(script: bytes, network: Network = MAINNET) -> str | None:
    """The address a P2PKH or P2SH scriptPubKey pays, else ``None`` (notaries, bare or odd scripts)."""
    h = parse_p2pkh(script)
    if h is not None:
        return hash160_to_address(h, network.p2pkh_version)
    h = parse_p2sh(script)
    if h is not None:
        return hash160_to_address(h, network.p2sh_version)
    return None


def address_to_script(address: str, network: Network = MAINNET) -> bytes:
    """The scriptPubKey paying ``address``; raises :class:`~halo_exchange.chain.keys.AddressError` if invalid."""
    version, h160 = address_to_hash160(address, network)
    if version == network.p2pkh_version:
        return p2pkh_script(h160)
    return p2sh_script(h160)


def p2pkh_script_sig(sig_with_hashtype: bytes, pubkey: bytes) -> bytes:
    """``<DER signature + hashtype byte> <SEC public key>``: the scriptSig that spends a P2PKH output."""
    sig_with_hashtype, pubkey = bytes(sig_with_hashtype), bytes(pubkey)
    if not sig_with_hashtype:
        raise ScriptError("empty signature")
    if len(pubkey) not in (33, 65):
        raise ScriptError(f"a SEC public key is 33 or 65 bytes, not {len(pubkey)}")
    return push_data(sig_with_hashtype) + push_data(pubkey)


def parse_p2pkh_script_sig(script: bytes) -> tuple[bytes, bytes] | None:
    """``(signature + hashtype, public key)`` of a two-push P2PKH scriptSig, else ``None``."""
    try:
        ops = parse_ops(script)
    except ScriptError:
        return None
    if len(ops) != 2 or ops[0].data is None or ops[1].data is None:
        return None
    sig, pub = ops[0].data, ops[1].data
    if not sig or len(pub) not in (33, 65):
        return None
    return sig, pub

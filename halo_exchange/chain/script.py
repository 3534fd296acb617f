"""Scripts the chain and the exchange use: P2PKH, P2SH, OP_RETURN notaries and P2PKH scriptSigs.

Owns opcode constants, push encoding, the op parser, and the mapping between scriptPubKeys and addresses.
Recognisers (``parse_*``, :func:`script_to_address`) return ``None`` for any script that is not of their
template, malformed ones included, because any bytes can sit in a scriptPubKey on chain; builders and
:func:`parse_ops` raise :class:`ScriptError`. Pure: no I/O.

Two readings are bitbay-core's own, because consensus depends on them (the fraction transfer rule,
``halo_exchange.peg.transfer``): :func:`parse_notary_payload` reads a notary as ``CScript::ToNotary`` does,
and :func:`script_owner` names the owner of any script as ``CScript::ToAddress`` does (with
:func:`owner_is_address` for ``CBitcoinAddress::IsValid`` on that name).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

from halo_exchange.chain.hashes import hash160
from halo_exchange.chain.keys import MAINNET, Network, address_to_hash160, hash160_to_address, is_valid_address
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.transfer import TransferInput, TransferOutput

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
    "script_owner",
    "owner_is_address",
    "address_to_script",
    "p2pkh_script_sig",
    "parse_p2pkh_script_sig",
    "transfer_input",
    "transfer_output",
]

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1 = 0x51
OP_16 = 0x60
OP_RETURN = 0x6A
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CODESEPARATOR = 0xAB
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE

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
    """The notary bytes of an ``OP_RETURN`` script as bitbay-core reads them (``CScript::ToNotary``), else ``None``.

    Any script whose first byte is OP_RETURN is a notary. bitbay-core takes the push after OP_RETURN only in
    scripts of 77 bytes or more; in shorter ones, and whenever that push is empty or unreadable, it reads
    byte 1 as a length and takes that many bytes from byte 2 on, as many as there are. For the pushes
    :func:`notary_script` writes both readings agree; they differ on other scripts: ``6a 4c 06 "**F**1"``
    reads ``b"\x06**F**1"`` (the push-length byte included: not a freeze), a truncated ``6a 10 "**F**"``
    reads ``b"**F**"``, and a bare ``6a`` reads ``b""``.
    """
    s = bytes(script)
    if not s or s[0] != OP_RETURN:
        return None
    if len(s) == 1:
        return b""
    data = b""
    if len(s) > OP_PUSHDATA1:  # 77 bytes or more: the first op after OP_RETURN, if it reads
        try:
            op = next(iter_ops(s[1:]))
        except ScriptError:
            op = None
        if op is not None and op.data:
            data = op.data
    if not data:
        data = s[2 : 2 + min(s[1], len(s) - 2)]
    return data


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


def _key_id(pubkey: bytes) -> bytes:
    """``CPubKey(bytes).GetID()``: the key's hash160, or hash160 of nothing when the bytes are not a key of
    the length their first byte announces (33 for 02/03, 65 for 04/06/07)."""
    size = {2: 33, 3: 33, 4: 65, 6: 65, 7: 65}.get(pubkey[0], 0) if pubkey else 0
    return hash160(pubkey if size and len(pubkey) == size else b"")


def _small_int(op: Op) -> int | None:
    """The number an OP_0 or OP_1..OP_16 op pushes, else ``None``."""
    if op.opcode == OP_0:
        return 0
    if OP_1 <= op.opcode <= OP_16:
        return op.opcode - OP_1 + 1
    return None


def _is_key_push(op: Op) -> bool:
    return op.data is not None and 33 <= len(op.data) <= 120


def _destinations(script: bytes) -> list[tuple[bool, bytes]] | None:
    """bitbay-core ``ExtractDestinations``: ``(is_script_hash, hash160)`` of each address a script pays, or
    ``None`` for scripts that pay no address (``Solver``'s templates; notaries and odd scripts)."""
    if len(script) == 23 and script[0] == OP_HASH160 and script[1] == 20 and script[22] == OP_EQUAL:
        return [(True, script[2:22])]
    try:
        ops = parse_ops(script)
    except ScriptError:
        return None
    codes = [op.opcode for op in ops]
    if len(ops) == 2 and _is_key_push(ops[0]) and codes[1] == OP_CHECKSIG:
        return [(False, _key_id(ops[0].data))]  # type: ignore[arg-type]
    if (
        len(ops) == 5
        and codes[:2] == [OP_DUP, OP_HASH160]
        and ops[2].data is not None
        and len(ops[2].data) == 20
        and codes[3:] == [OP_EQUALVERIFY, OP_CHECKSIG]
    ):
        return [(False, ops[2].data)]
    # Multisig: <m> <key>... <n> OP_CHECKMULTISIG, keys being pushes of 33..120 bytes, 1 <= m <= n = keys.
    if len(ops) >= 3 and codes[-1] == OP_CHECKMULTISIG:
        keys = 1
        while keys < len(ops) and _is_key_push(ops[keys]):
            keys += 1
        m, n = _small_int(ops[0]), _small_int(ops[keys]) if keys < len(ops) else None
        if keys + 2 == len(ops) and m is not None and n is not None and 1 <= m <= n == keys - 1:
            return [(False, _key_id(op.data)) for op in ops[1:keys]]  # type: ignore[arg-type]
    return None


def script_owner(script: bytes, network: Network = MAINNET) -> str:
    """Who owns an output, as bitbay-core's ``CScript::ToAddress`` names it (the transfer rule's grouping).

    The address a script pays (P2PKH, P2SH, and a P2PK script as the P2PKH address of its key), a multisig
    script's addresses joined by newlines, and for any other script (notaries included) the script's own
    bytes, one character per byte (latin-1), so that owners compare and sort as bitbay-core's strings do.
    Unlike :func:`script_to_address` it reads the templates as bitbay-core's ``Solver`` does: any push form
    of a key hash, a key that fails to parse counted as the hash of nothing.
    """
    script = bytes(script)
    found = _destinations(script)
    if not found:
        return script.decode("latin-1")
    return "\n".join(
        hash160_to_address(h160, network.p2sh_version if p2sh else network.p2pkh_version) for p2sh, h160 in found
    )


_BASE58 = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
_C_SPACE = frozenset(" \t\n\v\f\r")


def owner_is_address(owner: str, network: Network = MAINNET) -> bool:
    """bitbay-core's ``CBitcoinAddress(owner).IsValid()`` for an owner string of :func:`script_owner`.

    As its base58 reading does: the string ends at a NUL byte, white space (C locale) around the base58
    characters is skipped, anything else after them makes it invalid; what is read must be a checksummed
    20-byte hash under the network's P2PKH or P2SH version. A multisig owner (addresses joined by
    newlines) is not an address.
    """
    text = owner.split("\x00", 1)[0]
    start = 0
    while start < len(text) and text[start] in _C_SPACE:
        start += 1
    end = start
    while end < len(text) and text[end] in _BASE58:
        end += 1
    if any(ch not in _C_SPACE for ch in text[end:]):
        return False
    return is_valid_address(text[start:end], network)


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


# -- how the transfer rule sees a transaction's inputs and outputs ------------------------------------------


def transfer_input(value: int, fractions: Fractions, script: bytes, network: Network = MAINNET) -> TransferInput:
    """A spent output as the transfer rule reads it: grouped under :func:`script_owner` of the script it
    spent, with :func:`owner_is_address` for the ``**C**`` notary's address check. The one place both the
    node (validation) and the exchange (building payouts) turn a coin into a rule input."""
    owner = script_owner(script, network)
    return TransferInput(value, fractions, owner, owner_is_address(owner, network))


def transfer_output(value: int, script: bytes, network: Network = MAINNET) -> TransferOutput:
    """An output as the transfer rule reads it: its owner (:func:`script_owner`), and its notary text if it
    is an OP_RETURN script (read as bitbay-core's ``CScript::ToNotary`` reads it)."""
    return TransferOutput(value, address=script_owner(script, network), notary=parse_notary(script))

"""Chain hash functions: SHA-256, double SHA-256 (txids, checksums, sighashes) and HASH160 (addresses).

Owns the RIPEMD-160 fallback: ``hashlib.new("ripemd160")`` is missing where OpenSSL 3 runs without its
legacy provider (DESIGN.md §7), so a pure-Python RIPEMD-160 takes over when the probe at import fails.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["sha256", "sha256d", "ripemd160", "hash160", "ripemd160_pure", "HASHLIB_HAS_RIPEMD160"]


def sha256(data: bytes) -> bytes:
    """Single SHA-256."""
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256 (bitbay-core ``Hash``), in internal byte order; display order is its reverse."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _probe_hashlib_ripemd160() -> bool:
    try:
        hashlib.new("ripemd160", b"")
    except (ValueError, TypeError):
        return False
    return True


HASHLIB_HAS_RIPEMD160 = _probe_hashlib_ripemd160()


def ripemd160(data: bytes) -> bytes:
    """RIPEMD-160, from hashlib when OpenSSL provides it, else from :func:`ripemd160_pure`."""
    if HASHLIB_HAS_RIPEMD160:
        return hashlib.new("ripemd160", data).digest()
    return ripemd160_pure(data)


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (Bitcoin ``Hash160``): the 20 bytes inside a P2PKH or P2SH address."""
    return ripemd160(hashlib.sha256(data).digest())


# RIPEMD-160 constants (Dobbertin, Bosselaers, Preneel 1996): message word order, rotations and round
# constants of the left and right lines.
_R_LEFT = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
    3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
    1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
    4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
)  # fmt: skip
_R_RIGHT = (
    5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
    6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
    15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
    8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
    12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
)  # fmt: skip
_S_LEFT = (
    11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
    7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
    11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
    11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
    9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
)  # fmt: skip
_S_RIGHT = (
    8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
    9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
    9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
    15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
    8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
)  # fmt: skip
_K_LEFT = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_K_RIGHT = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_MASK = 0xFFFFFFFF
_BLOCK = struct.Struct("<16I")


def _f(round_: int, x: int, y: int, z: int) -> int:
    if round_ == 0:
        return x ^ y ^ z
    if round_ == 1:
        return (x & y) | (~x & z)
    if round_ == 2:
        return (x | ~y) ^ z
    if round_ == 3:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


def _rol(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(h: list[int], block: bytes) -> None:
    x = _BLOCK.unpack(block)
    al, bl, cl, dl, el = h
    ar, br, cr, dr, er = h
    for j in range(80):
        rnd = j >> 4
        t = _rol(al + _f(rnd, bl, cl, dl) + x[_R_LEFT[j]] + _K_LEFT[rnd], _S_LEFT[j]) + el
        al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t & _MASK
        # The right line runs the same boolean functions in reverse round order.
        t = _rol(ar + _f(4 - rnd, br, cr, dr) + x[_R_RIGHT[j]] + _K_RIGHT[rnd], _S_RIGHT[j]) + er
        ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t & _MASK
    t = (h[1] + cl + dr) & _MASK
    h[1] = (h[2] + dl + er) & _MASK
    h[2] = (h[3] + el + ar) & _MASK
    h[3] = (h[4] + al + br) & _MASK
    h[4] = (h[0] + bl + cr) & _MASK
    h[0] = t


def ripemd160_pure(data: bytes) -> bytes:
    """RIPEMD-160 in pure Python: slow (tens of microseconds per block) but always available."""
    data = bytes(data)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    # MD4-style padding: 0x80, zeros to 56 mod 64, then the bit length as little-endian u64.
    bit_length = struct.pack("<Q", (8 * len(data)) & 0xFFFFFFFFFFFFFFFF)
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + bit_length
    for off in range(0, len(padded), 64):
        _compress(h, padded[off : off + 64])
    return struct.pack("<5I", *h)

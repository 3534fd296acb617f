"""A BitBay address from the WIF key GenerateDepositAddress answers, with Python's standard library alone.

GenerateDepositAddress(passw) answers ``[WIF, True]``, as the original did: the address to show the customer is
the key's pay-to-public-key-hash address. This file derives it with nothing but the standard library, so an
exchange's client can copy it as it is (docs/api.md, "Deposit addresses"):

    from bitbay_address import address_from_wif
    key, ok = HaloRPC.GenerateDepositAddress("pw")
    address = address_from_wif(key)          # "B..." on mainnet and the devnet

The steps: base58check-decode the WIF (version byte, 32-byte secret, 0x01 when the public key is compressed);
multiply the secp256k1 generator by the secret; encode the public key (02/03 + x when compressed, 04 + x + y
otherwise); hash160 it (RIPEMD-160 of SHA-256); base58check-encode (WIF version - 128) + those 20 bytes. The
WIF's version byte is 128 + the network's address version (0x99 = 128 + 25, "B..." addresses), so the WIF
names its own network.

Not constant-time: use it to show addresses, not to sign. RIPEMD-160 comes from hashlib where OpenSSL still
provides it, else from the pure-Python version below.
"""

import hashlib
import struct

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# secp256k1: the field prime, the group order and the generator.
_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
      0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def b58check_decode(text):
    """The payload of a base58check string; ValueError if it is not one."""
    number = 0
    for char in text:
        if char not in _B58:
            raise ValueError("not base58")
        number = number * 58 + _B58.index(char)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    payload, checksum = raw[:-4], raw[-4:]
    if len(raw) < 5 or hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise ValueError("bad base58 checksum")
    return payload


def b58check_encode(payload):
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number, text = int.from_bytes(raw, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + text


def _add(p, q):
    """Point addition on secp256k1 (None is the point at infinity)."""
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % _P == 0:
        return None
    if p == q:
        slope = 3 * p[0] * p[0] * pow(2 * p[1], -1, _P) % _P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, _P) % _P
    x = (slope * slope - p[0] - q[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


def _multiply(k, point):
    result = None
    while k:
        if k & 1:
            result = _add(result, point)
        point, k = _add(point, point), k >> 1
    return result


def ripemd160(data):
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 without its legacy provider
        return _ripemd160_pure(data)


def address_from_wif(wif):
    """The P2PKH address of a WIF private key, on the network the WIF names."""
    payload = b58check_decode(wif)
    if len(payload) == 34 and payload[-1] == 1:
        compressed = True
    elif len(payload) == 33:
        compressed = False
    else:
        raise ValueError("not a WIF key")
    secret = int.from_bytes(payload[1:33], "big")
    if not 0 < secret < _N or payload[0] < 128:
        raise ValueError("not a WIF key")
    x, y = _multiply(secret, _G)
    if compressed:
        public = bytes([2 + (y & 1)]) + x.to_bytes(32, "big")
    else:
        public = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return b58check_encode(bytes([payload[0] - 128]) + ripemd160(hashlib.sha256(public).digest()))


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


def _ripemd160_pure(data: bytes) -> bytes:
    """RIPEMD-160 in pure Python: slow (tens of microseconds per block) but always available."""
    data = bytes(data)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    # MD4-style padding: 0x80, zeros to 56 mod 64, then the bit length as little-endian u64.
    bit_length = struct.pack("<Q", (8 * len(data)) & 0xFFFFFFFFFFFFFFFF)
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + bit_length
    for off in range(0, len(padded), 64):
        _compress(h, padded[off : off + 64])
    return struct.pack("<5I", *h)


if __name__ == "__main__":
    import sys

    for wif in sys.argv[1:]:
        print(address_from_wif(wif))

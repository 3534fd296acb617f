"""Bitcoin-style byte codecs shared by ``peg`` and ``chain``: little-endian integers and CompactSize strings.

Pure: no I/O. :class:`ByteReader` raises :class:`~halo_exchange.errors.DecodeError` on truncation, so a
decoder built on it cannot read past its input or return half a value.
"""

from __future__ import annotations

import struct

from halo_exchange.errors import DecodeError

# bitbay-core (like Bitcoin) refuses CompactSize lengths above this.
MAX_SIZE = 0x02000000

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


def _packer(fmt: struct.Struct, name: str):
    def pack(value: int) -> bytes:
        try:
            return fmt.pack(value)
        except struct.error as exc:
            raise DecodeError(f"{value} does not fit in {name}") from exc

    pack.__name__ = f"pack_{name}"
    return pack


pack_u8 = _packer(_U8, "u8")
pack_u16 = _packer(_U16, "u16")
pack_i16 = _packer(_I16, "i16")
pack_u32 = _packer(_U32, "u32")
pack_i32 = _packer(_I32, "i32")
pack_u64 = _packer(_U64, "u64")
pack_i64 = _packer(_I64, "i64")


def display_hex(raw: bytes) -> str:
    """A hash (txid, block hash) as people and RPCs show it: its bytes reversed, in hex."""
    return raw[::-1].hex()


def from_display_hex(text: str, size: int = 32) -> bytes:
    """The internal byte order of a hash shown by :func:`display_hex`; DecodeError unless ``size`` bytes of hex."""
    try:
        raw = bytes.fromhex(text)
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"not a hex hash: {text!r}") from exc
    if len(raw) != size:
        raise DecodeError(f"a hash is {size} bytes, got {len(raw)}")
    return raw[::-1]


def pack_compact_size(n: int) -> bytes:
    """Bitcoin's variable-length size prefix."""
    if n < 0:
        raise DecodeError("a size cannot be negative")
    if n < 253:
        return _U8.pack(n)
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def pack_bytes(data: bytes) -> bytes:
    """A CompactSize length followed by the bytes (Bitcoin's string/vector encoding)."""
    return pack_compact_size(len(data)) + data


class ByteReader:
    """Sequential reader over a bytes object; every read checks the remaining length."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self._data = bytes(data)
        self._pos = pos

    @property
    def pos(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def expect_end(self, what: str) -> None:
        if not self.at_end():
            raise DecodeError(f"{what}: {self.remaining()} unexpected trailing bytes")

    def read(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise DecodeError(f"truncated: wanted {n} bytes at offset {self._pos}, have {self.remaining()}")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def _unpack(self, fmt: struct.Struct) -> int:
        return fmt.unpack(self.read(fmt.size))[0]

    def u8(self) -> int:
        return self._unpack(_U8)

    def u16(self) -> int:
        return self._unpack(_U16)

    def i16(self) -> int:
        return self._unpack(_I16)

    def u32(self) -> int:
        return self._unpack(_U32)

    def i32(self) -> int:
        return self._unpack(_I32)

    def u64(self) -> int:
        return self._unpack(_U64)

    def i64(self) -> int:
        return self._unpack(_I64)

    def compact_size(self) -> int:
        first = self.u8()
        if first < 253:
            return first
        if first == 253:
            n, minimum = self.u16(), 253
        elif first == 254:
            n, minimum = self.u32(), 0x10000
        else:
            n, minimum = self.u64(), 0x100000000
        if n < minimum:
            raise DecodeError("non-canonical CompactSize")
        if n > MAX_SIZE:
            raise DecodeError("CompactSize too large")
        return n

    def var_bytes(self) -> bytes:
        return self.read(self.compact_size())

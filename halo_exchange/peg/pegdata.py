"""``PegData``: one balance as bitbay-core's pegops keeps it (``CPegData``, the "pegdata" base64 blob).

A pegdata is fractions plus the level they were last valued at, with *explicit* liquid and reserve: on a
partial level a balance's share of the split fraction is not derivable from its fractions alone. This
module owns validity (peg-spec §1.9) and the three wire formats (§1.10): the current one is written; the
current one, then ``Unpack2`` and ``Unpack1`` legacy layouts, are tried in bitbay-core's order when reading.

Reading follows ``CPegData(std::string)`` step by step, because what the C++ node accepts and writes back
depends on its details: base64 is read leniently, the three attempts fill *one* object so a later format
keeps what an earlier failed attempt left in the fields it does not read, and a decoded balance's
fractions are always the full vector (``Std()``). Where the C++ would go on with memory it never wrote,
the string is refused (docs/conformance.md).

Pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from halo_exchange.errors import DecodeError
from halo_exchange.peg.arith import INT64_MAX, INT64_MIN, check_int64
from halo_exchange.peg.fractions import (
    FRACTIONS_VERSION,
    PEG_SIZE,
    SER_MASK,
    SER_RAW,
    SER_VALUE,
    SER_ZDELTA,
    STD,
    VALUE,
    Fractions,
    UndefinedInCpp,
    from_deltas,
    uncompress_deltas,
    unpack_raw,
)
from halo_exchange.peg.level import LevelState, PegLevel
from halo_exchange.serialize import ByteReader, pack_i32, pack_i64

PEGDATA_VERSION = 1
_MAX_ZLEN = 2 * PEG_SIZE * 8  # CFractions::Unpack refuses longer compressed payloads
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def _int64(value: int) -> int:
    """A sum the C++ computes in int64: outside that range it overflows (undefined), and we refuse."""
    return check_int64(value)


@dataclass(slots=True)
class PegData:
    """Fractions, their level, explicit liquid/reserve and the update id (``nId``) of one balance.

    ``PegData.from_base64("")`` is a valid zero balance at ``PegLevel(0,0,0,0,0,0)`` (its fractions in the
    compact VALUE form, as bitbay-core writes it back); an object built by hand is valid only when
    :meth:`is_valid` says so (pegops functions refuse invalid input). ``version`` is the pegdata version
    (``nVersion``, int64) the balance was read with, written back as read.
    """

    fractions: Fractions
    level: PegLevel
    liquid: int
    reserve: int
    id: int = 0
    version: int = field(default=PEGDATA_VERSION, compare=False)

    @classmethod
    def empty(cls, level: PegLevel | None = None) -> PegData:
        """A zero balance; at ``PegLevel(0,0,0,0,0,0)`` unless a level is given (what ``""`` decodes to)."""
        return cls(Fractions.from_value(0), level if level is not None else PegLevel(0, 0, 0, 0, 0, 0), 0, 0, 0)

    @classmethod
    def at_level(cls, fractions: Fractions, level: PegLevel, id: int = 0) -> PegData:
        """Fractions valued at ``level``: liquid and reserve computed with the level's (partial) split."""
        return cls(fractions, level, fractions.high_at(level), fractions.low_at(level), id)

    def copy(self) -> PegData:
        return PegData(self.fractions.copy(), self.level, self.liquid, self.reserve, self.id, self.version)

    @property
    def value(self) -> int:
        return self.fractions.total()

    def is_valid(self) -> bool:
        """bitbay-core ``CPegData::IsValid`` (pegdata.cpp:83-112).

        The level is valid and liquid + reserve equals the total. On a plain level liquid and reserve are
        exactly the level's split; on a partial level they only bound it: ``liquid >= High(eff+1)`` and
        ``reserve >= Low(eff)``, the two sides of the partial fraction.

        Every field must fit its C++ type, and a sum the C++ computes in int64 (the total, liquid +
        reserve, the liquid and reserve of the split) must not overflow it: such a balance is not valid
        here (the C++ result would be undefined; docs/conformance.md).
        """
        if not self._fits():
            return False
        level = self.level
        if not level.is_valid():
            return False
        fractions = self.fractions
        try:
            if _int64(self.liquid + self.reserve) != _int64(fractions.total()):
                return False
            eff = level.effective_supply
            if not level.is_partial():
                return self.liquid == _int64(fractions.high(eff)) and self.reserve == _int64(fractions.low(eff))
            return self.liquid >= _int64(fractions.high(eff + 1)) and self.reserve >= _int64(fractions.low(eff))
        except UndefinedInCpp:
            return False

    def _fits(self) -> bool:
        fractions = self.fractions
        if fractions.is_value_form:
            values_fit = INT64_MIN <= fractions.total() <= INT64_MAX
        else:
            vector = fractions.to_list()
            values_fit = INT64_MIN <= min(vector) and max(vector) <= INT64_MAX
        return (
            values_fit
            and all(INT64_MIN <= v <= INT64_MAX for v in (self.liquid, self.reserve, self.version))
            and _INT32_MIN <= self.id <= _INT32_MAX
        )

    def is_empty(self) -> bool:
        """No value at all (gopegops ``Isempty``)."""
        return self.fractions.is_zero() and self.liquid == 0 and self.reserve == 0

    def is_positive(self) -> bool:
        """No negative fraction, liquid or reserve (gopegops ``Ispositive``)."""
        return not self.fractions.has_negative() and self.liquid >= 0 and self.reserve >= 0

    # -- codecs ---------------------------------------------------------------------------------------

    def pack(self) -> bytes:
        """``i64 version | CFractions | CPegLevel (v2) | i64 reserve | i64 liquid | i32 id`` (reserve first)."""
        return b"".join(
            (
                pack_i64(self.version),
                self.fractions.pack(),
                self.level.pack(),
                pack_i64(self.reserve),
                pack_i64(self.liquid),
                pack_i32(self.id),
            )
        )

    def to_base64(self) -> str:
        return base64.b64encode(self.pack()).decode("ascii")

    @classmethod
    def from_base64(cls, text: str) -> PegData:
        """Decode a pegdata string as ``CPegData(std::string)``; never raises.

        ``""`` is a zero balance. Otherwise the text is read as bitbay-core's ``DecodeBase64`` reads it
        (up to the first character outside the base64 alphabet; padding, a newline or junk after that
        are ignored, a missing padding is not needed) and the bytes are tried as the current format
        (which must be valid), then ``Unpack2``, then ``Unpack1``, all three filling one object: a legacy
        string keeps the pegdata version, fractions version byte, ``nId`` and (for ``Unpack1``) return
        address that the failed current-format attempt read. The fractions of a decoded balance are the
        full vector, so it re-encodes in the ZDELTA form. Undecodable input gives a pegdata with an
        invalid level (check :meth:`is_valid`).
        """
        if text == "":
            return cls.empty()
        data = decode_base64(text)
        state = _CppPegData()
        try:
            if state.unpack(data) or state.unpack_legacy(data, "after") or state.unpack_legacy(data, "none"):
                return state.to_pegdata()
        except UndefinedInCpp:
            pass
        return cls._undecodable()

    @classmethod
    def _undecodable(cls) -> PegData:
        return cls(Fractions.zero(), PegLevel.invalid(), 0, 0, 0)


_BASE64_PREFIX = re.compile(rb"[A-Za-z0-9+/]*")


def decode_base64(text: str) -> bytes:
    """bitbay-core's ``DecodeBase64``: the bytes of the longest prefix in the base64 alphabet.

    Whatever follows (``=`` padding, a newline, junk) is ignored; a group of 2 or 3 characters gives 1 or
    2 bytes, a lone last character nothing; unused low bits are not checked.
    """
    chars = _BASE64_PREFIX.match(text.encode("utf-8", "surrogatepass")).group()  # type: ignore[union-attr]
    whole = len(chars) - len(chars) % 4
    out = base64.b64decode(chars[:whole])
    tail = chars[whole:]
    if len(tail) >= 2:
        out += base64.b64decode(tail + b"=" * (4 - len(tail)))
    return out


class _CppFractions:
    """A ``CFractions`` being read by the C++ readers, with its leftovers; ``f`` holds None where the C++
    array was never written (reading one is refused as undefined)."""

    __slots__ = ("version", "flags", "lock_time", "return_addr", "f")

    def __init__(self) -> None:
        self.version = FRACTIONS_VERSION
        self.flags = VALUE
        self.lock_time = 0
        self.return_addr = b""
        self.f: list[int | None] = [0] + [None] * (PEG_SIZE - 1)

    def unpack(self, reader: ByteReader, *, version: bool, return_addr: str) -> bool:
        """``CFractions::Unpack`` (``version``, return address ``"before"`` the payload), ``Unpack2`` (no
        version, ``"after"``) or ``Unpack1`` (no version, ``"none"``). A truncation raises DecodeError,
        leaving the fields read so far; a bad zlib payload returns False."""
        if version:
            self.version = reader.u8()
        ser_flags = reader.u32()
        self.lock_time = reader.u64()
        if return_addr == "before":
            self._read_return_addr(reader)
        if ser_flags & SER_VALUE:
            self.flags = ser_flags | VALUE
            self.f[0] = reader.i64()
        elif ser_flags & SER_ZDELTA:
            zlen = reader.u64()
            if zlen > _MAX_ZLEN:
                return False
            deltas = uncompress_deltas(reader.read(zlen))
            if deltas is None:
                return False
            self.f = list(from_deltas(deltas))
            self.flags = ser_flags | STD
        elif ser_flags & SER_RAW:
            self.f = list(unpack_raw(reader.read(PEG_SIZE * 8)))
            self.flags = ser_flags | STD
        self.flags &= SER_MASK
        if return_addr == "after":
            self._read_return_addr(reader)
        return True

    def _read_return_addr(self, reader: ByteReader) -> None:
        size = reader.compact_size()
        try:
            self.return_addr = reader.read(size)
        except DecodeError:
            # std::string::resize(size) ran before the read failed: old bytes kept, the rest NUL.
            self.return_addr = (self.return_addr + b"\0" * size)[:size]
            raise

    def vector(self) -> list[int]:
        """What the C++ reads as the vector: ``Std(f[0])`` in the VALUE form, else the array itself."""
        if self.flags & VALUE:
            return Fractions.std(self.f[0]).to_list()  # type: ignore[arg-type]
        if None in self.f:
            raise UndefinedInCpp("fractions never written are read")
        return self.f  # type: ignore[return-value]

    def total(self) -> int:
        if self.flags & VALUE:
            return self.f[0]  # type: ignore[return-value]
        return _int64(sum(self.vector()))

    def high(self, supply: int) -> int:
        """``CFractions::High(int)``: reads below index 0 for a negative supply (refused)."""
        if supply < 0:
            raise UndefinedInCpp(f"High({supply}) reads before the vector")
        return _int64(sum(self.vector()[supply:])) if supply < PEG_SIZE else 0

    def low(self, supply: int) -> int:
        """``CFractions::Low(int)``: reads past index 1199 for a supply above 1200 (refused)."""
        if supply > PEG_SIZE:
            raise UndefinedInCpp(f"Low({supply}) reads past the vector")
        return _int64(sum(self.vector()[:supply])) if supply > 0 else 0

    def to_std(self) -> None:
        """``fractions = fractions.Std()``: the VALUE form becomes its full vector."""
        if self.flags & VALUE:
            self.f = list(self.vector())
            self.flags = (self.flags & ~VALUE) | STD

    def to_fractions(self) -> Fractions:
        out = Fractions._wrap(list(self.vector()), self.flags, self.lock_time, self.return_addr.decode("latin-1"))
        out.version = self.version
        return out


class _CppPegData:
    """The one ``CPegData`` object ``CPegData(std::string)`` fills through its three read attempts."""

    __slots__ = ("version", "fractions", "level", "reserve", "liquid", "id")

    def __init__(self) -> None:
        self.version = PEGDATA_VERSION
        self.fractions = _CppFractions()
        self.level = LevelState.unset()
        self.reserve = self.liquid = self.id = 0

    def unpack(self, data: bytes) -> bool:
        """``CPegData::Unpack``: the current format, then ``IsValid``."""
        reader = ByteReader(data)
        try:
            self.version = reader.i64()
            if not self.fractions.unpack(reader, version=True, return_addr="before"):
                return False
            if not self.level.unpack(reader):
                return False
            self.reserve = reader.i64()
            self.liquid = reader.i64()
            self.id = reader.i32()
            if not self._is_valid():
                return False
        except DecodeError:
            return False
        self.fractions.to_std()
        return True

    def unpack_legacy(self, data: bytes, return_addr: str) -> bool:
        """``CPegData::Unpack2`` (return address ``"after"`` the payload) or ``Unpack1`` (``"none"``): the
        legacy level, reserve, liquid and no id; the level's validity is not checked here."""
        reader = ByteReader(data)
        try:
            if not self.fractions.unpack(reader, version=False, return_addr=return_addr):
                return False
            if not self.level.unpack_legacy(reader):
                return False
            self.reserve = reader.i64()
            self.liquid = reader.i64()
            if not self._split_matches():
                return False
        except DecodeError:
            return False
        self.fractions.to_std()
        return True

    def _is_valid(self) -> bool:
        """``CPegData::IsValid`` on the object as read so far."""
        return self.to_level().is_valid() and self._split_matches()

    def _split_matches(self) -> bool:
        fractions, level = self.fractions, self.level
        if _int64(self.reserve + self.liquid) != fractions.total():
            return False
        eff = level.supply + level.shift
        if level.shift_last_part > 0 and level.shift_last_total > 0:
            return self.liquid >= fractions.high(eff + 1) and self.reserve >= fractions.low(eff)
        return self.liquid == fractions.high(eff) and self.reserve == fractions.low(eff)

    def to_level(self) -> PegLevel:
        return self.level.to_level()

    def to_pegdata(self) -> PegData:
        return PegData(
            self.fractions.to_fractions(), self.to_level(), self.liquid, self.reserve, self.id, self.version
        )

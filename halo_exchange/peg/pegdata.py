"""``PegData``: one balance as bitbay-core's pegops keeps it (``CPegData``, the "pegdata" base64 blob).

A pegdata is fractions plus the level they were last valued at, with *explicit* liquid and reserve: on a
partial level a balance's share of the split fraction is not derivable from its fractions alone. This
module owns validity (peg-spec §1.9) and the three wire formats (§1.10): the current one is written; the
current one, then ``Unpack2`` and ``Unpack1`` legacy layouts, are tried in bitbay-core's order when reading.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.level import PegLevel
from halo_exchange.serialize import ByteReader, pack_i32, pack_i64

PEGDATA_VERSION = 1


@dataclass(slots=True)
class PegData:
    """Fractions, their level, explicit liquid/reserve and the update id (``nId``) of one balance.

    ``PegData.from_base64("")`` is a valid zero balance at ``PegLevel(0,0,0,0,0,0)``; an object built by
    hand is valid only when :meth:`is_valid` says so (pegops functions refuse invalid input).
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
        return cls(Fractions.zero(), level if level is not None else PegLevel(0, 0, 0, 0, 0, 0), 0, 0, 0)

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
        """
        level = self.level
        if not level.is_valid():
            return False
        if self.liquid + self.reserve != self.fractions.total():
            return False
        eff = level.effective_supply
        if not level.is_partial():
            return self.liquid == self.fractions.high_at(level) and self.reserve == self.fractions.low_at(level)
        return self.liquid >= self.fractions.high(eff + 1) and self.reserve >= self.fractions.low(eff)

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
        """Decode a pegdata string: ``""`` is a zero balance; then the current format (which must be valid),
        ``Unpack2`` and ``Unpack1``, in bitbay-core's order. Undecodable input gives a pegdata with an
        invalid level (check :meth:`is_valid`), never an exception."""
        if text == "":
            return cls.empty()
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return cls._undecodable()
        for decode in (cls._unpack_current, cls._unpack_legacy2, cls._unpack_legacy1):
            try:
                return decode(data)
            except DecodeError:
                continue
        return cls._undecodable()

    @classmethod
    def _undecodable(cls) -> PegData:
        return cls(Fractions.zero(), PegLevel.invalid(), 0, 0, 0)

    @classmethod
    def _unpack_current(cls, data: bytes) -> PegData:
        reader = ByteReader(data)
        version = reader.i64()
        fractions = Fractions.read(reader)
        level = PegLevel.read(reader)
        reserve = reader.i64()
        liquid = reader.i64()
        pegdata = cls(fractions, level, liquid, reserve, reader.i32(), version)
        if not pegdata.is_valid():
            raise DecodeError("decoded pegdata is not valid")
        return pegdata

    @classmethod
    def _unpack_legacy(cls, data: bytes, return_addr: str) -> PegData:
        """``pegdata_compat.cpp``: fractions without a version byte, the 40-byte level, reserve, liquid; no id."""
        reader = ByteReader(data)
        fractions = Fractions.read(reader, with_version=False, with_return_addr=return_addr)
        level = PegLevel.read_legacy(reader)
        reserve = reader.i64()
        liquid = reader.i64()
        return cls(fractions, level, liquid, reserve, 0)

    @classmethod
    def _unpack_legacy2(cls, data: bytes) -> PegData:
        return cls._unpack_legacy(data, "after")

    @classmethod
    def _unpack_legacy1(cls, data: bytes) -> PegData:
        return cls._unpack_legacy(data, "none")

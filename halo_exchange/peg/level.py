"""``PegLevel``: the supply indexes a set of balances is valued at (bitbay-core ``CPegLevel``).

A level holds the current and the next two supply indexes (each already raised by the exchange's buffer),
the cycle it belongs to and the cycle balances were last updated at, and an optional *shift*: when the
exchange's books promise more liquid than its wallet holds (the pegshift distortion), the effective supply
moves up by whole fractions and then by a partial fraction ``shift_last_part / shift_last_total``.

This module owns the constructor arithmetic (buffer, cap, shift), validity, the comparison bitbay-core
uses to detect outdated balances, and the hex codecs (v2 written; v2, v1 and the 80-hex legacy form read
as leniently as bitbay-core's ``CPegLevel(std::string)`` reads them, see :meth:`PegLevel.from_hex`).
Pure: no I/O. Spec: reference/peg-spec.md §1.7-§1.8; where it and the C++ differ, docs/conformance.md.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass, field

from halo_exchange.errors import DecodeError
from halo_exchange.peg.arith import INT64_MAX, INT64_MIN, UndefinedInCpp, check_int64
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.serialize import ByteReader, pack_i16, pack_i64, pack_u8

# The highest index a buffered level may hold (PEG_SIZE - 1); the network itself stops at 1198.
MAX_LEVEL_INDEX = PEG_SIZE - 1
DEFAULT_BUFFER = 3
LEVEL_VERSION = 2
_LEGACY_SIZE = 40  # bytes of the legacy form (80 hex characters)


@dataclass(frozen=True, slots=True, init=False)
class PegLevel:
    """Supply indexes of one peg cycle as an exchange values balances at them.

    ``PegLevel(cycle, cycle_prev, buffer, supply, supply_next, supply_next_next)`` adds ``buffer`` to each
    network supply and caps the result at 1199, as bitbay-core's constructor does; the stored
    ``supply``/``supply_next``/``supply_next_next`` are the buffered values. Use
    :meth:`with_distortion` to compute the shift from the exchange book and pegshift, and
    :meth:`from_fields` to rebuild a level from stored fields without adding the buffer again.

    ``==`` compares every field but ``version``. bitbay-core's own ``operator==`` (which ignores the cycle)
    is :meth:`same_effective_level`.

    ``version`` is the version byte the level was read with (bitbay-core keeps it in memory and
    ``getpeglevelinfo`` reports it); a level always packs as version 2.
    """

    cycle: int
    cycle_prev: int
    buffer: int
    supply: int
    supply_next: int
    supply_next_next: int
    shift: int
    shift_last_part: int
    shift_last_total: int
    version: int = field(default=LEVEL_VERSION, compare=False)

    def __init__(
        self, cycle: int, cycle_prev: int, buffer: int, supply: int, supply_next: int, supply_next_next: int
    ) -> None:
        self._set(
            cycle=cycle,
            cycle_prev=cycle_prev,
            buffer=buffer,
            supply=min(supply + buffer, MAX_LEVEL_INDEX),
            supply_next=min(supply_next + buffer, MAX_LEVEL_INDEX),
            supply_next_next=min(supply_next_next + buffer, MAX_LEVEL_INDEX),
            shift=0,
            shift_last_part=0,
            shift_last_total=0,
            version=LEVEL_VERSION,
        )

    def _set(self, **fields: int) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, operator.index(value))

    @classmethod
    def from_fields(
        cls,
        *,
        cycle: int,
        cycle_prev: int,
        buffer: int,
        supply: int,
        supply_next: int,
        supply_next_next: int,
        shift: int = 0,
        shift_last_part: int = 0,
        shift_last_total: int = 0,
        version: int = LEVEL_VERSION,
    ) -> PegLevel:
        """A level with exactly these stored fields (the supplies already include the buffer)."""
        level = cls.__new__(cls)
        level._set(
            cycle=cycle,
            cycle_prev=cycle_prev,
            buffer=buffer,
            supply=supply,
            supply_next=supply_next,
            supply_next_next=supply_next_next,
            shift=shift,
            shift_last_part=shift_last_part,
            shift_last_total=shift_last_total,
            version=version,
        )
        return level

    @classmethod
    def invalid(cls) -> PegLevel:
        """What bitbay-core's default constructor and unparsable hex produce: supply -1, never valid."""
        return cls.from_fields(
            cycle=0, cycle_prev=0, buffer=DEFAULT_BUFFER, supply=-1, supply_next=-1, supply_next_next=-1
        )

    @classmethod
    def with_distortion(
        cls,
        cycle: int,
        cycle_prev: int,
        buffer: int,
        supply: int,
        supply_next: int,
        supply_next_next: int,
        exchange: Fractions,
        pegshift: Fractions,
    ) -> PegLevel:
        """The level whose shift keeps the exchange's reported liquid within what its wallet really holds.

        bitbay-core's distortion constructor of ``CPegLevel``. The wallet holds ``exchange + pegshift``.
        If the book's liquid at ``supply`` exceeds the wallet's, the effective supply walks up through the
        book's fractions while some difference is left: a fraction that does not exceed what is left adds
        one to ``shift`` and is subtracted; the first that exceeds it becomes the partial fraction
        (``shift_last_total`` = that fraction). ``shift_last_part`` is what is left when the walk stops:
        0 when whole fractions used the difference up exactly (the walk stops there, total 0, however
        many zero fractions follow), or the remainder with total 0 when the walk ran off the end (a level
        that is then invalid, supply + shift = 1200).

        A buffered supply below 0 gives the plain (invalid) level: bitbay-core would read the book below
        index 0 there. An entry of ``exchange + pegshift`` or a liquid sum beyond int64 is refused
        (UndefinedInCpp): the C++ overflows there (docs/conformance.md).
        """
        level = cls(cycle, cycle_prev, buffer, supply, supply_next, supply_next_next)
        start = level.supply
        if start < 0 or start >= PEG_SIZE:
            return level
        book = exchange.to_list()
        wallet = (exchange + pegshift).to_list()
        if not (INT64_MIN <= min(wallet) and max(wallet) <= INT64_MAX):
            raise UndefinedInCpp("exchange + pegshift overflows int64")
        left = check_int64(sum(book[start:])) - check_int64(sum(wallet[start:]))
        if left <= 0:
            return level
        shift, last_total, i = 0, 0, start
        while left > 0 and i < PEG_SIZE:
            fraction = book[i]
            if fraction > left:
                last_total = fraction
                break
            shift += 1
            left -= fraction
            i += 1
        return level.evolve(shift=shift, shift_last_part=left, shift_last_total=last_total)

    def evolve(self, **changes: int) -> PegLevel:
        """A copy with some stored fields changed (no buffer arithmetic)."""
        return PegLevel.from_fields(**{**asdict(self), **changes})

    # -- queries --------------------------------------------------------------------------------------

    @property
    def effective_supply(self) -> int:
        """``supply + shift``: the index at which the reserve ends (the partial fraction sits here)."""
        return self.supply + self.shift

    def is_partial(self) -> bool:
        return self.shift_last_part > 0 and self.shift_last_total > 0

    def is_valid(self) -> bool:
        return (
            self.buffer >= 0
            and all(0 <= s <= MAX_LEVEL_INDEX for s in (self.supply, self.supply_next, self.supply_next_next))
            and self.shift >= 0
            and self.supply + self.shift < PEG_SIZE
            and self.shift_last_part >= 0
            and self.shift_last_total >= 0
        )

    def same_effective_level(self, other: PegLevel) -> bool:
        """bitbay-core ``CPegLevel::operator==``: same effective supply and same partial ratio; cycles ignored.

        ``moveliquid`` and friends accept a balance whose level passes this test, so a balance left at the
        previous cycle still trades when the effective level did not move.
        """
        return (
            self.effective_supply == other.effective_supply
            and self.shift_last_part * other.shift_last_total == other.shift_last_part * self.shift_last_total
        )

    def shifted_one_cycle(self) -> PegLevel:
        """The same level one cycle later: next supply becomes current (shift kept), as ``NChange`` uses."""
        return self.evolve(supply=self.supply_next, supply_next=self.supply_next_next)

    def network_level(self) -> PegLevel:
        """The network's supplies: the buffer taken off again, buffer 0 (bitbay-core's ``peglevel_net``)."""
        return self.evolve(
            buffer=0,
            supply=self.supply - self.buffer,
            supply_next=self.supply_next - self.buffer,
            supply_next_next=self.supply_next_next - self.buffer,
        )

    # -- codecs ---------------------------------------------------------------------------------------

    def pack(self) -> bytes:
        """The 43-byte v2 form: ``u8 2 | i64 cycle | i64 prev | i16 buffer, supply, next, nextnext, shift |
        i64 part | i64 total``."""
        return b"".join(
            (
                pack_u8(LEVEL_VERSION),
                pack_i64(self.cycle),
                pack_i64(self.cycle_prev),
                pack_i16(self.buffer),
                pack_i16(self.supply),
                pack_i16(self.supply_next),
                pack_i16(self.supply_next_next),
                pack_i16(self.shift),
                pack_i64(self.shift_last_part),
                pack_i64(self.shift_last_total),
            )
        )

    def to_hex(self) -> str:
        return self.pack().hex()

    @classmethod
    def read(cls, reader: ByteReader) -> PegLevel:
        """Read a versioned level from ``reader`` as ``CPegLevel::Unpack`` reads a fresh level.

        Version 1 has no buffer field (it reads as 3), 2 and above read as v2, and 0 reads nothing more
        and leaves the defaults (a valid level at cycle 0, supplies 0, buffer 3). Raises DecodeError when
        the data end too soon.
        """
        state = LevelState.defaults()
        if not state.unpack(reader):
            raise DecodeError("truncated peglevel")
        return state.to_level()

    @classmethod
    def read_legacy(cls, reader: ByteReader) -> PegLevel:
        """Read the 40-byte legacy level (no version byte, no buffer; the buffer reads as 3)."""
        state = LevelState.defaults()
        if not state.unpack_legacy(reader):
            raise DecodeError("truncated legacy peglevel")
        return state.to_level()

    @classmethod
    def from_hex(cls, text: str) -> PegLevel:
        """Decode a peglevel hex string exactly as bitbay-core's ``CPegLevel(std::string)``; never raises.

        * The text is read by ``ParseHex``: white space before each byte is skipped, and reading stops at
          the first character that does not complete a hex byte (an odd last nibble, any other suffix).
        * A text of exactly 80 characters (bytes, as C++ counts them) is the legacy 40-byte form.
        * Any other text is read by :meth:`read` (versions 0, 1, 2-255) and, if its bytes run out, read
          again from the start as legacy; the version byte of the first attempt is kept.
        * If that fails too the level is invalid: supplies -1, shift and partial 0, and the fields the
          failed attempts managed to read (cycle, previous cycle, buffer) as they left them.
        Trailing bytes after a complete level are ignored.
        """
        raw = text.encode("utf-8", "surrogatepass")
        data = parse_hex(raw)
        state = LevelState.defaults()
        if len(raw) == 2 * _LEGACY_SIZE:
            if not state.unpack_legacy(ByteReader(data)):
                state.make_invalid()
            return state.to_level()
        if not state.unpack(ByteReader(data)) and not state.unpack_legacy(ByteReader(data)):
            state.make_invalid()
        return state.to_level()


_HEX_BYTES = re.compile(rb"(?:[\t\n\v\f\r ]*[0-9A-Fa-f]{2})*")
_SPACE = re.compile(rb"[\t\n\v\f\r ]")


def parse_hex(raw: bytes) -> bytes:
    """bitbay-core's ``ParseHex``: skip C white space before each byte, stop at the first incomplete byte."""
    prefix = _HEX_BYTES.match(raw).group()  # type: ignore[union-attr]
    return bytes.fromhex(_SPACE.sub(b"", prefix).decode("ascii"))


_FIELDS = (
    "cycle", "cycle_prev", "buffer", "supply", "supply_next", "supply_next_next",
    "shift", "shift_last_part", "shift_last_total",
)


class LevelState:
    """A ``CPegLevel`` being read, field by field, as the C++ object is: a read that fails half way leaves
    the fields before it set. Shared by :meth:`PegLevel.from_hex` and the pegdata readers."""

    __slots__ = ("version",) + _FIELDS

    def __init__(self, supply: int) -> None:
        self.version = LEVEL_VERSION
        self.cycle = self.cycle_prev = 0
        self.buffer = DEFAULT_BUFFER
        self.supply = self.supply_next = self.supply_next_next = supply
        self.shift = self.shift_last_part = self.shift_last_total = 0

    @classmethod
    def defaults(cls) -> LevelState:
        """The in-class defaults a ``CPegLevel(std::string)`` starts from (valid: supplies 0, buffer 3)."""
        return cls(0)

    @classmethod
    def unset(cls) -> LevelState:
        """``CPegLevel()``, as a ``CPegData`` holds before it reads one: supplies -1, invalid."""
        return cls(-1)

    def make_invalid(self) -> None:
        self.supply = self.supply_next = self.supply_next_next = -1
        self.shift = self.shift_last_part = self.shift_last_total = 0

    def unpack(self, reader: ByteReader) -> bool:
        """``CPegLevel::Unpack``: the version byte, then v1 (no buffer) or v2 fields; version 0 reads nothing."""
        try:
            self.version = reader.u8()
            if self.version == 1:
                self._read(reader, with_buffer=False)
            elif self.version > 1:
                self._read(reader, with_buffer=True)
        except DecodeError:
            return False
        return True

    def unpack_legacy(self, reader: ByteReader) -> bool:
        """``CPegLevel::Unpack1``: the 40-byte legacy fields; the version byte is left as it was."""
        try:
            self._read(reader, with_buffer=False)
        except DecodeError:
            return False
        return True

    def _read(self, reader: ByteReader, *, with_buffer: bool) -> None:
        self.cycle = reader.i64()
        self.cycle_prev = reader.i64()
        if with_buffer:
            self.buffer = reader.i16()
        self.supply = reader.i16()
        self.supply_next = reader.i16()
        self.supply_next_next = reader.i16()
        self.shift = reader.i16()
        self.shift_last_part = reader.i64()
        self.shift_last_total = reader.i64()
        if not with_buffer:
            self.buffer = DEFAULT_BUFFER

    def to_level(self) -> PegLevel:
        return PegLevel.from_fields(version=self.version, **{name: getattr(self, name) for name in _FIELDS})

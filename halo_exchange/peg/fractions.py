"""``Fractions``: the 1200 integer fractions every BitBay amount carries (bitbay-core ``CFractions``).

A value is split into ``PEG_SIZE`` fractions by the standard geometric series (:meth:`Fractions.std`);
at supply index ``S`` the fractions below ``S`` are *reserve* and the rest *liquid*. This module owns that
vector, its exact integer arithmetic (truncating division, the ``+1`` remainder walks of ``RatioPart`` and
``MoveRatioPartTo``), the peglevel-aware split with a partial fraction, and the ``CFractions::Pack`` codec
that bitbay-core's pegdb stores. Bit-exact with bitbay-core (reference/peg-spec.md §1.2-§1.6, §1.10).

Pure: no I/O. Fractions can be negative (pegshift, removecoins), so every division truncates toward zero.
"""

from __future__ import annotations

import operator
import struct
import zlib
from itertools import accumulate
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from halo_exchange.errors import DecodeError, PegCodecError, PegError
from halo_exchange.peg.arith import INT64_MAX, INT64_MIN, UndefinedInCpp, check_int64, ratio, tdiv, wrap64
from halo_exchange.serialize import ByteReader, pack_bytes, pack_i64, pack_u8, pack_u32, pack_u64

if TYPE_CHECKING:  # pragma: no cover
    from halo_exchange.peg.level import PegLevel

PEG_SIZE = 1200
PEG_RATE = 100

# In-memory flags (CFractions::nFlags, pegdata.h:88-95).
VALUE = 1 << 0  # compact form: only the total is known; the vector is Std(total)
STD = 1 << 1  # full 1200-entry vector
NOTARY_F = 1 << 2  # frozen reserve
NOTARY_L = 1 << 3
NOTARY_V = 1 << 4  # voluntarily frozen liquid
NOTARY_C = 1 << 5  # cold
MARKS = NOTARY_F | NOTARY_L | NOTARY_V | NOTARY_C

# Serialization-only flags and the mask applied after unpacking.
SER_VALUE = 1 << 16
SER_ZDELTA = 1 << 17
SER_RAW = 1 << 18
SER_MASK = 0xFFFF

FRACTIONS_VERSION = 1
_ZLIB_LEVEL = 1  # bitbay-core since 51023835 (gopegops used 9; readers accept both)
_MAX_ZLEN = 19200  # Unpack refuses longer compressed payloads
_RAW = struct.Struct("<%dq" % PEG_SIZE)
_DECAY_SAFE = ((1 << 63) - 1) // (PEG_RATE - 1)  # above this, fp * 99 overflows int64


def _std_list(value: int) -> list[int]:
    """The standard split: each fraction takes 1/100 (truncated) of what is left; the last takes the rest."""
    out = [0] * PEG_SIZE
    v = value
    if v >= 0:
        for i in range(PEG_SIZE - 1):
            if v < PEG_RATE:  # every further fraction would be 0: all of it stays for the last one
                break
            q = v // PEG_RATE
            out[i] = q
            v -= q
    else:
        for i in range(PEG_SIZE - 1):
            q = tdiv(v, PEG_RATE)
            if q == 0:
                break
            out[i] = q
            v -= q
    out[PEG_SIZE - 1] = v
    return out


def _decay(prev: int) -> int:
    """``fp * 99 / 100`` in int64: the delta codec's prediction of the next fraction.

    bitbay-core computes ``fp * (PEG_RATE - 1)`` in int64, so for a fraction above 2^63/99 (about
    9.32e16 satoshi) the product wraps before the truncating division; the bytes it stores depend on it.
    """
    if 0 <= prev <= _DECAY_SAFE:
        return prev * (PEG_RATE - 1) // PEG_RATE
    return tdiv(wrap64(prev * (PEG_RATE - 1)), PEG_RATE)


def to_deltas(values: Sequence[int]) -> list[int]:
    """``d[0] = f[0]``, ``d[i] = f[i] - f[i-1]*99/100`` in int64 (``CFractions::ToDeltas``).

    Std vectors become mostly 0 and 1. The arithmetic is int64 as in the C++ (see :func:`_decay`), and
    :func:`from_deltas` undoes it exactly, wrap included.
    """
    return [values[0]] + [wrap64(cur - _decay(prev)) for prev, cur in zip(values, values[1:])]


def from_deltas(deltas: Sequence[int]) -> list[int]:
    """Inverse of :func:`to_deltas` (``CFractions::FromDeltas``, int64 arithmetic)."""
    out = [0] * len(deltas)
    prev = 0
    for i, d in enumerate(deltas):
        prev = d if i == 0 else wrap64(d + _decay(prev))
        out[i] = prev
    return out


class Fractions:
    """A value split into ``PEG_SIZE`` integer fractions, with bitbay-core's mark, lock time and return address.

    Build one with :meth:`std` (a value never seen before), :meth:`from_value` (the compact ``VALUE`` form
    bitbay-core uses for outputs without pegdb data), or ``Fractions(list)`` (a full vector; a shorter list
    is zero-padded). Supply-index queries take an ``int`` index (:meth:`low`, :meth:`high`, ...) or a
    :class:`~halo_exchange.peg.level.PegLevel` (the ``*_at`` methods), whose partial fraction is split.

    Instances are mutable only through :meth:`move_ratio_part_to`, which by definition moves value from one
    vector into another; every other operation returns a new object.

    ``version`` is the version byte ``Pack`` writes (1 unless the vector was read with another: bitbay-core
    keeps the byte it read, and its arithmetic results, being copies, start again at 1).
    """

    __slots__ = ("_f", "_value", "flags", "lock_time", "return_addr", "version")

    def __init__(
        self,
        values: Iterable[int] = (),
        *,
        flags: int = STD,
        lock_time: int = 0,
        return_addr: str = "",
    ) -> None:
        f = [operator.index(v) for v in values]
        if len(f) > PEG_SIZE:
            raise PegError(f"fractions have {len(f)} entries, at most {PEG_SIZE} allowed")
        if len(f) < PEG_SIZE:
            f.extend([0] * (PEG_SIZE - len(f)))
        self._f: list[int] | None = f
        self._value = 0
        self.flags = (flags & ~VALUE) | STD
        self.lock_time = lock_time
        self.return_addr = return_addr
        self.version = FRACTIONS_VERSION

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def _wrap(cls, f: list[int], flags: int = STD, lock_time: int = 0, return_addr: str = "") -> Fractions:
        """Adopt ``f`` (exactly PEG_SIZE ints) without copying or validating it."""
        obj = cls.__new__(cls)
        obj._f = f
        obj._value = 0
        obj.flags = (flags & ~VALUE) | STD
        obj.lock_time = lock_time
        obj.return_addr = return_addr
        obj.version = FRACTIONS_VERSION
        return obj

    @classmethod
    def std(cls, value: int, *, flags: int = STD, lock_time: int = 0, return_addr: str = "") -> Fractions:
        """The standard split of ``value`` (bitbay-core ``Std()``), as new coins and stake rewards get."""
        return cls._wrap(_std_list(int(value)), flags, lock_time, return_addr)

    @classmethod
    def from_value(cls, value: int, *, flags: int = 0, lock_time: int = 0, return_addr: str = "") -> Fractions:
        """The compact ``VALUE`` form: only the total is stored and the vector reads as ``Std(value)``."""
        obj = cls.__new__(cls)
        obj._f = None
        obj._value = int(value)
        obj.flags = flags | VALUE
        obj.lock_time = lock_time
        obj.return_addr = return_addr
        obj.version = FRACTIONS_VERSION
        return obj

    @classmethod
    def zero(cls) -> Fractions:
        return cls._wrap([0] * PEG_SIZE)

    def copy(self) -> Fractions:
        """A duplicate, version byte included (C++'s copy constructor would reset it; see ``version``)."""
        if self._f is None:
            out = Fractions.from_value(
                self._value, flags=self.flags, lock_time=self.lock_time, return_addr=self.return_addr
            )
        else:
            out = Fractions._wrap(list(self._f), self.flags, self.lock_time, self.return_addr)
        out.version = self.version
        return out

    def _vec(self) -> list[int]:
        """The full vector; a VALUE-form object materialises (and caches) its Std split."""
        if self._f is None:
            self._f = _std_list(self._value)
        return self._f

    def _to_std(self) -> list[int]:
        """Convert in place to the STD form (before an in-place modification), returning the vector."""
        f = self._vec()
        self.flags = (self.flags & ~VALUE) | STD
        return f

    # -- plain views ------------------------------------------------------------------------------------

    @property
    def is_value_form(self) -> bool:
        return bool(self.flags & VALUE)

    def to_list(self) -> list[int]:
        return list(self._vec())

    def __len__(self) -> int:
        return PEG_SIZE

    def __getitem__(self, index: int) -> int:
        return self._vec()[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._vec())

    def total(self) -> int:
        if self.flags & VALUE:
            return self._value
        return sum(self._f)  # type: ignore[arg-type]

    def is_zero(self) -> bool:
        if self._f is None:
            return self._value == 0
        return not any(self._f)

    def has_negative(self) -> bool:
        return any(v < 0 for v in self._vec())

    def __eq__(self, other: object) -> bool:
        """Same fractions, same marks, lock time and return address (the VALUE/STD form is not compared)."""
        if not isinstance(other, Fractions):
            return NotImplemented
        return (
            self._vec() == other._vec()
            and (self.flags & ~(VALUE | STD)) == (other.flags & ~(VALUE | STD))
            and self.lock_time == other.lock_time
            and self.return_addr == other.return_addr
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Fractions(total={self.total()}, flags={self.flags:#x}, lock_time={self.lock_time})"

    # -- reserve / liquid at a plain supply index ---------------------------------------------------------

    @staticmethod
    def _clamp(supply: int) -> int:
        return 0 if supply < 0 else PEG_SIZE if supply > PEG_SIZE else supply

    def low(self, supply: int | PegLevel) -> int:
        """Reserve at ``supply``: the sum of the fractions below it. A PegLevel delegates to :meth:`low_at`.

        Liquid and reserve are int64 in the C++: every such query here refuses (UndefinedInCpp) a result
        beyond int64, which would be a signed overflow there.
        """
        if not isinstance(supply, int):
            return self.low_at(supply)
        return check_int64(sum(self._vec()[: self._clamp(supply)]), "reserve")

    def high(self, supply: int | PegLevel) -> int:
        """Liquid at ``supply``: the sum of the fractions at and above it. A PegLevel delegates to :meth:`high_at`."""
        if not isinstance(supply, int):
            return self.high_at(supply)
        return check_int64(sum(self._vec()[self._clamp(supply) :]), "liquid")

    def low_part(self, supply: int | PegLevel) -> Fractions:
        """The reserve fractions at ``supply`` (zeros from ``supply`` up)."""
        if not isinstance(supply, int):
            return self.low_part_at(supply)
        s = self._clamp(supply)
        f = self._vec()
        return Fractions._wrap(f[:s] + [0] * (PEG_SIZE - s))

    def high_part(self, supply: int | PegLevel) -> Fractions:
        """The liquid fractions at ``supply`` (zeros below it)."""
        if not isinstance(supply, int):
            return self.high_part_at(supply)
        s = self._clamp(supply)
        f = self._vec()
        return Fractions._wrap([0] * s + f[s:])

    # -- reserve / liquid at a peglevel (supply + shift, partial fraction) ----------------------------------

    def partial_reserve_piece(self, level: PegLevel) -> int:
        """The reserve share of the fraction at a partial level's effective index.

        ``RatioPart(f[idx], part, total)``, plus one satoshi if that is still below ``f[idx]``: bitbay-core's
        "better rounding", which gives the rounding satoshi to reserve.
        """
        v = self._vec()[level.supply + level.shift]
        piece = ratio(v, level.shift_last_part, level.shift_last_total)
        return piece + 1 if piece < v else piece

    def _effective(self, level: PegLevel) -> tuple[int, bool] | None:
        idx = level.supply + level.shift
        if idx < 0 or idx >= PEG_SIZE:
            return None
        return idx, level.shift_last_part > 0 and level.shift_last_total > 0

    def low_at(self, level: PegLevel) -> int:
        """Reserve at ``level``; 0 when its effective index is outside ``[0, 1199]`` (as bitbay-core)."""
        eff = self._effective(level)
        if eff is None:
            return 0
        idx, partial = eff
        below = sum(self._vec()[:idx])
        return check_int64(below + self.partial_reserve_piece(level) if partial else below, "reserve")

    def high_at(self, level: PegLevel) -> int:
        """Liquid at ``level``; 0 when its effective index is outside ``[0, 1199]`` (as bitbay-core)."""
        eff = self._effective(level)
        if eff is None:
            return 0
        idx, partial = eff
        f = self._vec()
        if partial:
            return check_int64(sum(f[idx + 1 :]) + f[idx] - self.partial_reserve_piece(level), "liquid")
        return check_int64(sum(f[idx:]), "liquid")

    def low_part_at(self, level: PegLevel) -> Fractions:
        """The reserve fractions at ``level`` (``LowPart(level)``): the partial piece included.

        As bitbay-core: an effective index below 0 gives zeros, exactly 1200 the whole vector (its copy
        loop runs to the index); above 1200 the C++ reads past the vector, which is refused.
        """
        idx = level.supply + level.shift
        if idx > PEG_SIZE:
            raise UndefinedInCpp(f"LowPart at effective index {idx} reads past the vector")
        if idx == PEG_SIZE:
            return Fractions._wrap(list(self._vec()))
        eff = self._effective(level)
        if eff is None:
            return Fractions.zero()
        idx, partial = eff
        f = self._vec()
        out = f[:idx] + [0] * (PEG_SIZE - idx)
        if partial:
            out[idx] = self.partial_reserve_piece(level)
        return Fractions._wrap(out)

    def high_part_at(self, level: PegLevel) -> Fractions:
        """The liquid fractions at ``level`` (``HighPart(level)``): what the partial piece leaves included.

        As bitbay-core: an effective index of 1200 or more gives zeros; below 0 the C++ reads before the
        vector, which is refused.
        """
        idx = level.supply + level.shift
        if idx < 0:
            raise UndefinedInCpp(f"HighPart at effective index {idx} reads before the vector")
        eff = self._effective(level)
        if eff is None:
            return Fractions.zero()
        idx, partial = eff
        f = self._vec()
        out = [0] * idx + f[idx:]
        if partial:
            out[idx] = check_int64(f[idx] - self.partial_reserve_piece(level), "the liquid piece")
        return Fractions._wrap(out)

    def n_change(self, level: PegLevel) -> int:
        """How the liquid at ``level`` changes when the next cycle's supply takes effect (``NChange``)."""
        return check_int64(self.high_at(level.shifted_one_cycle()) - self.high_at(level), "NChange")

    # -- proportional slices ------------------------------------------------------------------------------

    def ratio_part(self, part: int) -> Fractions:
        """A slice proportional to this vector whose sum is exactly ``part`` (bitbay-core ``RatioPart``).

        Each entry is ``trunc(f[i]*part/total)``; a shortfall is made up one satoshi at a time, walking
        cyclically from the first non-zero entry over entries whose slice is still below the entry. A
        ``part`` above the total gives a full copy (``Std()``: marks, lock time and return address kept).
        With negative entries the sum can exceed ``part``; like bitbay-core, that excess is left as is.

        Raises PegError where the C++ has no defined result: a non-zero ``part`` of a vector whose total
        is 0 (it divides by zero), or a shortfall the walk can never make up (it loops forever).
        """
        f = self._vec()
        if part == 0:
            return Fractions.zero()
        total = self.total()
        if part > total:
            return Fractions._wrap(list(f), self.flags, self.lock_time, self.return_addr)
        if total == 0:
            raise PegError("RatioPart of a vector whose total is 0 divides by zero in bitbay-core")
        out = _scaled(f, part, total)
        deficit = part - sum(out)
        if deficit > 0:
            start = _first_non_zero(f)
            room = [v - p if v > p else 0 for v, p in zip(f, out)]
            for i, extra in _walk_remainder(room, deficit, start):
                out[i] += extra
        return Fractions._wrap(out)

    def move_ratio_part_to(self, value: int, dst: Fractions) -> int:
        """Move a proportional slice of ``value`` from this vector into ``dst`` (bitbay-core ``MoveRatioPartTo``).

        Returns the part not moved. With a total of 0 nothing moves and ``value`` is returned; a ``value``
        of 0 moves nothing and returns 0 (whatever the total); a ``value`` of at least the total moves
        everything and returns ``value - total``. Otherwise each entry gives ``trunc(f[i]*value/total)``;
        if those pieces sum to ``value`` or more (a negative ``value``, or negative entries) that is all
        and 0 is returned; a shortfall is taken one satoshi at a time from every entry still positive,
        walking cyclically from the first non-zero entry, and 0 is returned.

        Raises PegError, with nothing moved, where that walk could never finish (bitbay-core loops forever)
        or an entry of either vector would overflow int64 (undefined in the C++).
        """
        total = self.total()
        if total == 0:
            return value
        if value == 0:
            return 0
        src, out = self._vec(), dst._vec()
        if value >= total:
            after, received = [0] * PEG_SIZE, [a + b for a, b in zip(out, src)]
            remain = value - total
        else:
            pieces = _scaled(src, value, total)
            after = [v - p for v, p in zip(src, pieces)]
            received = [v + p for v, p in zip(out, pieces)]
            short = value - sum(pieces)
            if short > 0:
                room = [v if v > 0 else 0 for v in after]
                for i, extra in _walk_remainder(room, short, _first_non_zero(src)):
                    after[i] -= extra
                    received[i] += extra
            remain = 0
        _check_entries(after)
        _check_entries(received)
        self._to_std()[:] = after
        dst._to_std()[:] = received
        return remain

    # -- other helpers bitbay-core exposes -------------------------------------------------------------

    def hli(self) -> int:
        """Half liquidity index: the first index where the running sum exceeds ``trunc(total/2)`` (0 if none).

        A vector whose total is 0 (an empty one, or any pegshift) has HLI 0 whatever its entries, as
        bitbay-core's ``CFractions::HLI`` returns before walking it.
        """
        total = self.total()
        if total == 0:
            return 0
        half = tdiv(total, 2)
        for i, running in enumerate(accumulate(self._vec())):
            if running > half:
                return i
        return 0

    def positive(self) -> Fractions:
        return Fractions._wrap([v if v > 0 else 0 for v in self._vec()])

    def negative(self) -> Fractions:
        return Fractions._wrap([v if v < 0 else 0 for v in self._vec()])

    def __and__(self, other: Fractions) -> Fractions:
        """Element-wise minimum by magnitude: min of two non-negatives, max of two negatives, else 0."""
        out = []
        for a, b in zip(self._vec(), other._vec()):
            if a >= 0 and b >= 0:
                out.append(min(a, b))
            elif a < 0 and b < 0:
                out.append(max(a, b))
            else:
                out.append(0)
        return Fractions._wrap(out)

    # -- arithmetic (the left operand keeps its marks, lock time and return address) -----------------------

    def __add__(self, other: Fractions) -> Fractions:
        if not isinstance(other, Fractions):
            return NotImplemented
        return Fractions._wrap(
            [a + b for a, b in zip(self._vec(), other._vec())], self.flags, self.lock_time, self.return_addr
        )

    def __sub__(self, other: Fractions) -> Fractions:
        if not isinstance(other, Fractions):
            return NotImplemented
        return Fractions._wrap(
            [a - b for a, b in zip(self._vec(), other._vec())], self.flags, self.lock_time, self.return_addr
        )

    def __neg__(self) -> Fractions:
        return Fractions._wrap([-a for a in self._vec()], self.flags, self.lock_time, self.return_addr)

    # -- CFractions::Pack / Unpack --------------------------------------------------------------------------

    def pack(self) -> bytes:
        """``u8 version | u32 flags|SER_x | u64 lock_time | string return_addr | payload`` (pegdb value format).

        The payload is the total for the VALUE form, else the zlib-compressed (level 1, as bitbay-core)
        little-endian int64 deltas.
        """
        if self.lock_time < 0:
            raise PegCodecError("lock time cannot be negative")
        head_flags = self.flags & SER_MASK
        if self.flags & VALUE:
            header = pack_u8(self.version) + pack_u32(head_flags | SER_VALUE) + pack_u64(self.lock_time)
            return header + pack_bytes(self.return_addr.encode("latin-1")) + pack_i64(self._value)
        deltas = to_deltas(self._vec())
        try:
            raw = _RAW.pack(*deltas)
        except struct.error as exc:
            raise PegCodecError("a fraction delta does not fit in int64") from exc
        payload = zlib.compress(raw, _ZLIB_LEVEL)
        header = pack_u8(self.version) + pack_u32(head_flags | SER_ZDELTA) + pack_u64(self.lock_time)
        return header + pack_bytes(self.return_addr.encode("latin-1")) + pack_u64(len(payload)) + payload

    @classmethod
    def unpack(cls, data: bytes) -> Fractions:
        """Decode ``CFractions::Pack`` bytes (see :meth:`read`); trailing data raises PegCodecError too."""
        reader = ByteReader(data)
        try:
            fractions = cls.read(reader)
            reader.expect_end("fractions")
        except (DecodeError, UndefinedInCpp) as exc:
            raise PegCodecError(f"bad fractions: {exc}") from exc
        return fractions

    @classmethod
    def read(cls, reader: ByteReader) -> Fractions:
        """Read one packed vector from ``reader`` as ``CFractions::Unpack`` reads it into a fresh object.

        The version byte is kept. Flags without a payload format read no payload and leave the fresh
        object's VALUE-form 0; a VALUE payload keeps all of its flags (STD included); a ZDELTA or RAW
        payload whose flags have the VALUE bit is a VALUE form of its first fraction, as the C++ then reads
        it. Bytes after the end of the zlib stream are ignored, as ``uncompress`` does. Truncated data,
        a compressed payload over 19200 bytes or a corrupt one raise PegCodecError; one inflating to fewer
        than 9600 bytes raises UndefinedInCpp (the C++ would use uninitialised deltas).
        """
        version = reader.u8()
        ser_flags = reader.u32()
        lock_time = reader.u64()
        return_addr = reader.var_bytes().decode("latin-1")
        flags = VALUE  # a fresh CFractions, as the C++ reader fills one
        vector: list[int] | None = None
        value = 0
        if ser_flags & SER_VALUE:
            flags = ser_flags | VALUE
            value = reader.i64()
        elif ser_flags & SER_ZDELTA:
            zlen = reader.u64()
            if zlen > _MAX_ZLEN:
                raise PegCodecError(f"compressed fractions of {zlen} bytes exceed {_MAX_ZLEN}")
            deltas = uncompress_deltas(reader.read(zlen))
            if deltas is None:
                raise PegCodecError("corrupt compressed fractions")
            vector, flags = from_deltas(deltas), ser_flags | STD
        elif ser_flags & SER_RAW:
            vector, flags = list(_RAW.unpack(reader.read(_RAW.size))), ser_flags | STD
        flags &= SER_MASK
        if vector is None or flags & VALUE:
            fractions = cls.from_value(vector[0] if vector is not None else value, flags=flags)
        else:
            fractions = cls._wrap(vector, flags)
        fractions.lock_time = lock_time
        fractions.return_addr = return_addr
        fractions.version = version
        return fractions


def _scaled(values: list[int], part: int, total: int) -> list[int]:
    """``[trunc(v * part / total) for v in values]``; floor division is the same when nothing is negative."""
    if part > 0 and total > 0 and min(values) >= 0:
        return [v * part // total for v in values]
    return [ratio(v, part, total) for v in values]


def _inflate(blob: bytes) -> list[int]:
    """Decompress exactly 1200 int64 deltas; anything shorter, longer or corrupt is refused."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, _RAW.size + 1)
    except zlib.error as exc:
        raise PegCodecError(f"corrupt compressed fractions: {exc}") from exc
    if len(raw) != _RAW.size or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise PegCodecError(f"compressed fractions must hold exactly {_RAW.size} bytes")
    return list(_RAW.unpack(raw))


def uncompress_deltas(blob: bytes) -> list[int] | None:
    """The deltas as ``CFractions::Unpack`` gets them from zlib's ``uncompress``; None where it fails.

    ``uncompress`` stops at the end of the zlib stream and ignores bytes after it, and fails on a corrupt
    or truncated stream or one that inflates to more than 9600 bytes. One that inflates to fewer leaves
    the rest of the C++ buffer uninitialised: :class:`UndefinedInCpp`.
    """
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, _RAW.size + 1)
    except zlib.error:
        return None
    if not inflater.eof or len(raw) > _RAW.size:
        return None
    if len(raw) < _RAW.size:
        raise UndefinedInCpp(f"compressed fractions inflate to {len(raw)} bytes, fewer than {_RAW.size}")
    return list(_RAW.unpack(raw))


def unpack_raw(data: bytes) -> list[int]:
    """The 1200 little-endian int64 of a RAW payload."""
    return list(_RAW.unpack(data))


def _check_entries(values: list[int]) -> None:
    """Fraction entries are int64 in the C++: one that would overflow has no defined value there."""
    if min(values) < INT64_MIN or max(values) > INT64_MAX:
        raise UndefinedInCpp("a fraction would overflow int64")


def _first_non_zero(values: list[int]) -> int:
    """bitbay-core's ``adjust_from``: where the remainder walks start (PEG_SIZE for an all-zero vector)."""
    return next((i for i, v in enumerate(values) if v != 0), PEG_SIZE)


def _walk_remainder(room: list[int], remaining: int, start: int) -> list[tuple[int, int]]:
    """The remainder walk of RatioPart / MoveRatioPartTo: ``(index, satoshi)`` pairs it hands out.

    bitbay-core cycles over ``start..1199`` again and again, giving one satoshi to each index that still
    has ``room`` until ``remaining`` is used up. Where all the room there is less than ``remaining`` it
    never stops: that is refused (PegError) before anything is changed.
    """
    order = [i for i in range(start, PEG_SIZE) if room[i] > 0]
    if sum(room[i] for i in order) < remaining:
        raise PegError("the remainder walk of RatioPart/MoveRatioPartTo would never end in bitbay-core")
    given = dict.fromkeys(order, 0)
    while remaining > 0:
        for i in order:
            if remaining == 0:
                break
            given[i] += 1
            remaining -= 1
        order = [i for i in order if given[i] < room[i]]
    return [(i, n) for i, n in given.items() if n]

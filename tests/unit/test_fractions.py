"""Fractions: the standard split, supply queries, proportional slices and the CFractions::Pack codec."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halo_exchange.errors import PegCodecError, PegError
from halo_exchange.peg import NOTARY_F, PEG_SIZE, VALUE, Fractions, PegLevel
from halo_exchange.peg.fractions import SER_RAW, SER_ZDELTA, from_deltas, to_deltas
from halo_exchange.serialize import ByteReader, pack_bytes, pack_u8, pack_u32, pack_u64
from tests import strategies as hs


def test_std_of_negative_value_truncates() -> None:
    """Std of a negative value mirrors the positive split (C++ truncation, not flooring)."""
    assert Fractions.std(-12345).to_list() == [-v for v in Fractions.std(12345).to_list()]


def test_short_list_is_zero_padded_and_long_list_refused() -> None:
    """A shorter list is padded with zeros; more than 1200 entries is an error."""
    assert Fractions([1, 2]).to_list() == [1, 2] + [0] * (PEG_SIZE - 2)
    with pytest.raises(PegError):
        Fractions([0] * (PEG_SIZE + 1))


def test_value_form_reads_as_std_and_packs_compactly() -> None:
    """The VALUE form behaves as Std(value) and packs as 8 bytes of value, not a vector."""
    compact = Fractions.from_value(100_000_000)
    assert compact.to_list() == Fractions.std(100_000_000).to_list()
    assert compact.is_value_form
    packed = compact.pack()
    assert len(packed) == 1 + 4 + 8 + 1 + 8
    again = Fractions.unpack(packed)
    assert again.is_value_form and again.total() == 100_000_000


def test_supply_out_of_range_clamps_for_plain_index() -> None:
    """A plain index below 0 counts everything liquid; above 1200 everything reserve."""
    fractions = Fractions.std(10**8)
    assert fractions.high(-5) == 10**8 and fractions.low(-5) == 0
    assert fractions.low(5000) == 10**8 and fractions.high(5000) == 0


def test_level_outside_range_gives_zero() -> None:
    """A level whose effective index is outside [0, 1199] reports 0 liquid and 0 reserve (as bitbay-core)."""
    level = PegLevel.from_fields(cycle=1, cycle_prev=0, buffer=0, supply=1199, supply_next=0, supply_next_next=0,
                                 shift=3)
    fractions = Fractions.std(10**8)
    assert fractions.high_at(level) == 0 and fractions.low_at(level) == 0
    assert fractions.high_part_at(level).is_zero()


def test_low_part_at_effective_index_1200_is_the_whole_vector() -> None:
    """LowPart(level) copies every index below the effective one: at 1200 (an invalid level) that is the whole
    vector, though Low(level) is 0 there; beyond 1200 the C++ reads past the vector (refused), and HighPart
    below index 0 reads before it (refused)."""
    level = PegLevel.from_fields(cycle=0, cycle_prev=0, buffer=0, supply=853, supply_next=0, supply_next_next=0,
                                 shift=347)
    fractions = Fractions([0] * 866 + [1])
    assert fractions.low_part_at(level).to_list() == fractions.to_list()
    assert fractions.low_at(level) == 0 and fractions.high_part_at(level).is_zero()
    with pytest.raises(PegError):
        fractions.low_part_at(level.evolve(shift=348))
    with pytest.raises(PegError):
        fractions.high_part_at(level.evolve(supply=-1, shift=0))


def test_hli_of_one_bay_and_of_empty() -> None:
    """HLI is 68 for 1 BAY (peg-spec V01) and 0 for an empty vector."""
    assert Fractions.std(100_000_000).hli() == 68
    assert Fractions.zero().hli() == 0


def test_hli_of_zero_total_vector_is_zero() -> None:
    """CFractions::HLI returns 0 for a total of 0 before walking: [0, 5, -5] (and any pegshift) gives 0, not 1."""
    assert Fractions([0, 5, -5]).hli() == 0
    assert Fractions([50, 0, 0, 0, 0, -50]).hli() == 0
    assert Fractions([0, 5, -4]).hli() == 1  # total 1: the running sum 5 exceeds 0 at index 1


def test_ratio_part_larger_than_total_copies_and_zero_is_empty() -> None:
    """A part above the total returns the whole vector; a part of 0 returns zeros."""
    fractions = Fractions([5, 5, 5])
    assert fractions.ratio_part(100).to_list() == fractions.to_list()
    assert fractions.ratio_part(0).is_zero()


def test_move_everything_returns_excess() -> None:
    """Moving more than the total moves all of it and returns what was not covered."""
    src, dst = Fractions([5, 5, 5]), Fractions([1])
    assert src.move_ratio_part_to(20, dst) == 5
    assert src.is_zero() and dst.to_list()[:3] == [6, 5, 5]


def test_move_from_empty_moves_nothing() -> None:
    """A source with total 0 moves nothing and returns the requested value."""
    src, dst = Fractions.zero(), Fractions.zero()
    assert src.move_ratio_part_to(7, dst) == 7 and dst.is_zero()


def test_move_of_a_negative_value_moves_negative_pieces_and_returns_zero() -> None:
    """MoveRatioPartTo(-7) of [10, 20, 30]: pieces trunc(f*-7/60) = -1, -2, -3 sum to -6 >= -7, so the C++
    stops there and returns 0 (the source grows, the destination gets the negative pieces)."""
    src, dst = Fractions([10, 20, 30]), Fractions.zero()
    assert src.move_ratio_part_to(-7, dst) == 0
    assert src.to_list()[:3] == [11, 22, 33] and dst.to_list()[:3] == [-1, -2, -3]


def test_move_whose_pieces_exceed_the_value_returns_zero() -> None:
    """Negative entries truncate toward zero: of [-5, -5, 22] (total 12), 6 moves pieces -2, -2, 11 (sum
    7); bitbay-core keeps them and returns 0, not -1."""
    src, dst = Fractions([-5, -5, 22]), Fractions.zero()
    assert src.move_ratio_part_to(6, dst) == 0
    assert src.to_list()[:3] == [-3, -3, 11] and dst.to_list()[:3] == [-2, -2, 11]


def test_move_of_zero_from_a_negative_total_moves_nothing() -> None:
    """A value of 0 returns 0 before anything else: [0, 5, -6] (total -1) keeps its entries and the
    destination stays empty (and in the VALUE form), where 0 >= -1 would otherwise move everything."""
    src, dst = Fractions([0, 5, -6]), Fractions.from_value(0)
    assert src.move_ratio_part_to(0, dst) == 0
    assert src.to_list()[:3] == [0, 5, -6] and dst.is_zero() and dst.is_value_form


def test_ratio_part_refuses_what_divides_by_zero_in_the_cpp() -> None:
    """A non-zero part of a vector whose total is 0 would divide by zero in RatioPart: refused."""
    with pytest.raises(PegError):
        Fractions([5, -5]).ratio_part(-1)
    assert Fractions([5, -5]).ratio_part(3).to_list()[:2] == [5, -5]  # part > total: the whole vector
    assert Fractions([5, -5]).ratio_part(0).is_zero()


def test_ratio_part_above_total_keeps_attributes() -> None:
    """A part above the total returns Std() of the vector: marks, lock time and return address kept."""
    fractions = Fractions([5, 5], flags=NOTARY_F, lock_time=9, return_addr="ra")
    copy = fractions.ratio_part(11)
    assert copy == fractions


def test_arithmetic_keeps_left_operand_attributes() -> None:
    """+ and - keep the left operand's mark, lock time and return address."""
    left = Fractions([1, 2], flags=NOTARY_F, lock_time=99, return_addr="Baddr")
    out = left + Fractions([3])
    assert out.to_list()[:2] == [4, 2]
    assert out.lock_time == 99 and out.return_addr == "Baddr" and out.flags & NOTARY_F
    assert (left - left).is_zero()


def test_n_change_is_liquid_lost_at_next_supply() -> None:
    """NChange is the liquid difference between the next cycle's supply and the current one."""
    level = PegLevel(5, 4, 0, 10, 13, 13)
    fractions = Fractions.std(10**8)
    assert fractions.n_change(level) == fractions.high(13) - fractions.high(10)


def test_and_positive_negative() -> None:
    """& keeps the smaller magnitude of same-signed entries; positive/negative split by sign."""
    a, b = Fractions([5, -5, 5, -2]), Fractions([3, -7, -1, -9])
    assert (a & b).to_list()[:4] == [3, -5, 0, -2]
    assert a.positive().to_list()[:4] == [5, 0, 5, 0]
    assert a.negative().to_list()[:4] == [0, -5, 0, -2]


def test_pack_layout_of_std_vector() -> None:
    """Pack writes version 1, flags|SER_ZDELTA, lock time, return address, zlen and level-1 zlib deltas."""
    fractions = Fractions.std(10**8, lock_time=7, return_addr="ab")
    packed = fractions.pack()
    assert packed[0] == 1
    assert int.from_bytes(packed[1:5], "little") == 2 | SER_ZDELTA
    assert int.from_bytes(packed[5:13], "little") == 7
    assert packed[13:16] == b"\x02ab"
    zlen = int.from_bytes(packed[16:24], "little")
    assert len(packed) == 24 + zlen
    deltas = b"".join(d.to_bytes(8, "little", signed=True) for d in to_deltas(fractions.to_list()))
    assert packed[24:] == zlib.compress(deltas, 1)


def test_deltas_wrap_in_int64_as_the_cpp() -> None:
    """ToDeltas computes ``fp * 99`` in int64: above 2^63/99 it wraps, and the stored deltas are the wrapped
    ones. 10**17 * 99 wraps to -8546744073709551616, so the delta after it is 0 + 85467440737095516, not
    -99e15; FromDeltas undoes it exactly."""
    vector = [10**17] + [0] * (PEG_SIZE - 1)
    deltas = to_deltas(vector)
    assert deltas[:3] == [10**17, 85467440737095516, 0]
    assert from_deltas(deltas) == vector
    # The subtraction wraps too: -2^63 * 99 wraps to -2^63, /100 gives -92233720368547758, and
    # (2^63 - 1) + 92233720368547758 wraps to -9131138316486228051.
    edge = [-(2**63), 2**63 - 1] + [0] * (PEG_SIZE - 2)
    assert to_deltas(edge)[1] == -9131138316486228051
    assert from_deltas(to_deltas(edge)) == edge


def test_pack_of_a_large_fraction_writes_the_wrapped_deltas() -> None:
    """The pegdb bytes of [1e17, 0, ...] are bitbay-core's: level-1 zlib of the wrapped int64 deltas; they
    decode back to the same vector (and the exact, unwrapped deltas would decode to another one)."""
    vector = [10**17] + [0] * (PEG_SIZE - 1)
    cpp_deltas = [10**17, 85467440737095516] + [0] * (PEG_SIZE - 2)
    payload = zlib.compress(b"".join(d.to_bytes(8, "little", signed=True) for d in cpp_deltas), 1)
    cpp_bytes = _header(2 | SER_ZDELTA) + pack_u64(len(payload)) + payload
    assert Fractions(vector).pack() == cpp_bytes
    assert Fractions.unpack(cpp_bytes).to_list() == vector
    exact = [10**17, -99 * 10**15] + [0] * (PEG_SIZE - 2)
    blob = zlib.compress(b"".join(d.to_bytes(8, "little", signed=True) for d in exact), 1)
    other = Fractions.unpack(_header(2 | SER_ZDELTA) + pack_u64(len(blob)) + blob).to_list()
    assert other[:2] == [10**17, -184467440737095516]


def _header(flags: int) -> bytes:
    return pack_u8(1) + pack_u32(flags) + pack_u64(0) + pack_bytes(b"")


def test_unpack_reads_level_nine_and_raw() -> None:
    """Readers accept zlib level 9 (gopegops) and the RAW payload."""
    vector = Fractions.std(12345).to_list()
    raw = b"".join(v.to_bytes(8, "little", signed=True) for v in to_deltas(vector))
    level9 = zlib.compress(raw, 9)
    assert Fractions.unpack(_header(2 | SER_ZDELTA) + pack_u64(len(level9)) + level9).to_list() == vector
    plain = b"".join(v.to_bytes(8, "little", signed=True) for v in vector)
    assert Fractions.unpack(_header(2 | SER_RAW) + plain).to_list() == vector


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1],  # truncated payload
        lambda b: b + b"\x00",  # trailing data
        lambda b: b[:10],  # truncated header
    ],
    ids=["truncated-payload", "trailing", "truncated-header"],
)
def test_unpack_rejects_truncated_or_oversized(mutate) -> None:
    """Truncated or over-long packed fractions are refused, not half-read."""
    with pytest.raises(PegCodecError):
        Fractions.unpack(mutate(Fractions.std(10**8).pack()))


def test_unpack_rejects_short_and_long_decompressed_streams() -> None:
    """A compressed stream must inflate to exactly 9600 bytes; zlen above 19200 is refused."""
    for size in (9592, 9608):
        blob = zlib.compress(b"\x00" * size, 1)
        with pytest.raises(PegCodecError):
            Fractions.unpack(_header(2 | SER_ZDELTA) + pack_u64(len(blob)) + blob)
    with pytest.raises(PegCodecError):
        Fractions.unpack(_header(2 | SER_ZDELTA) + pack_u64(19201) + b"\x00" * 19201)
    with pytest.raises(PegCodecError):
        Fractions.unpack(_header(2 | SER_ZDELTA) + pack_u64(10) + b"not zlib!!")


def test_unpack_masks_serialization_flags() -> None:
    """After unpacking, only the in-memory flags remain (SER_* bits are masked off)."""
    again = Fractions.unpack(Fractions([1], flags=NOTARY_F).pack())
    assert again.flags == 2 | NOTARY_F


# -- properties -----------------------------------------------------------------------------------------


@given(hs.values)
def test_std_total_equals_value(value: int) -> None:
    """The standard split always sums to the value exactly."""
    assert Fractions.std(value).total() == value


@given(hs.fractions(allow_negative=True), st.integers(-5, PEG_SIZE + 5))
def test_low_plus_high_is_total(fractions: Fractions, supply: int) -> None:
    """Reserve + liquid = total at every supply index."""
    assert fractions.low(supply) + fractions.high(supply) == fractions.total()
    assert (fractions.low_part(supply) + fractions.high_part(supply)).to_list() == fractions.to_list()


@given(hs.fractions(), st.integers(0, PEG_SIZE - 1), st.integers(1, 10**9), st.integers(1, 10**9))
def test_low_plus_high_is_total_on_partial_levels(fractions: Fractions, supply: int, a: int, b: int) -> None:
    """On a partial level the split fraction is divided, never duplicated or lost."""
    part, total = min(a, b), max(a, b)
    level = PegLevel(0, 0, 0, supply, supply, supply).evolve(shift_last_part=part, shift_last_total=total)
    assert fractions.low_at(level) + fractions.high_at(level) == fractions.total()
    assert (fractions.low_part_at(level) + fractions.high_part_at(level)).to_list() == fractions.to_list()


@given(hs.fractions(), st.data())
def test_ratio_part_sums_exactly_to_part(fractions: Fractions, data) -> None:
    """For non-negative vectors the slice sums to exactly ``part`` and never exceeds an entry."""
    total = fractions.total()
    part = data.draw(st.integers(0, total))
    piece = fractions.ratio_part(part)
    assert piece.total() == part
    assert all(0 <= p <= f for p, f in zip(piece, fractions))


@given(hs.fractions(), hs.fractions(), st.data())
def test_move_ratio_part_conserves_per_index(src: Fractions, dst: Fractions, data) -> None:
    """Moving a slice conserves every index and moves exactly the requested value when it is available."""
    before = (src + dst).to_list()
    value = data.draw(st.integers(0, src.total() + 10))
    src_total = src.total()
    left = src.move_ratio_part_to(value, dst)
    assert (src + dst).to_list() == before
    assert left == max(0, value - src_total) if src_total else left == value
    assert not src.has_negative()


@given(hs.fractions(allow_negative=True), st.integers(0, 2**63 - 1),
       st.text(max_size=40).map(lambda t: t.encode("utf-8").decode("latin-1")))
def test_pack_round_trip(fractions: Fractions, lock_time: int, return_addr: str) -> None:
    """Pack/unpack round-trips any vector, negatives included, with lock time and return address."""
    fractions.lock_time = lock_time
    fractions.return_addr = return_addr
    assert Fractions.unpack(fractions.pack()) == fractions


@given(hs.sparse_vectors(min_value=-(10**15), max_value=10**15))
def test_deltas_round_trip(vector: list[int]) -> None:
    """The delta transform is exactly invertible, negatives included."""
    assert from_deltas(to_deltas(vector)) == vector



def test_float_fractions_refused() -> None:
    """Amounts are integers: a float fraction is a TypeError, never silently truncated."""
    with pytest.raises(TypeError):
        Fractions([1.5])
    with pytest.raises(TypeError):
        PegLevel(1, 0, 0, 2.0, 2, 2)


@pytest.mark.parametrize("value, part, total, expected", [
    (10, 7, 3, 23),  # no overflow: 70 / 3 truncated
    (-10, 7, 3, -23),  # truncation toward zero
    (2**40, 2**40, 3, 2**63 - 1),  # uint128 quotient above INT64_MAX saturates
    (-(2**40), 2**40, 7, 2**63 - 1),  # a negative operand wraps modulo 2^128 first
    (2**40, 2**40, -7, 0),  # so does a negative total: the quotient is 0
    (-(2**62), 4, 3, 2**63 - 1),
    (2**40, 2**30, 2**31, 2**39),  # an overflowing product of positives is exact
])
def test_scalar_ratio_part_overflows_into_uint128_as_the_cpp(value: int, part: int, total: int, expected: int) -> None:
    """::RatioPart switches to Boost uint128 when v*part overflows int64: negative operands wrap, the result
    saturates at INT64_MAX (bitbay-core's answers)."""
    from halo_exchange.peg.arith import ratio

    assert ratio(value, part, total) == expected


# -- CFractions::Unpack as the C++ reads into a fresh object (bitbay-core's answers) ----------------------


def test_read_of_flags_without_a_payload_format_is_value_zero() -> None:
    """Flags naming no payload (here STD only) read no payload: the fresh object's VALUE-form 0 remains,
    with the lock time read; the C++ leaves the 8 bytes after it unread."""
    reader = ByteReader(bytes.fromhex("010200000000105e5f0000000000da19000000000000"))
    fractions = Fractions.read(reader)
    assert fractions.is_value_form and fractions.total() == 0 and fractions.flags == VALUE
    assert fractions.lock_time == 1600000000 and reader.remaining() == 8


def test_read_of_a_value_payload_keeps_every_flag() -> None:
    """A VALUE payload with flags 0xffffffff keeps all sixteen in-memory bits, STD included (65535)."""
    fractions = Fractions.read(ByteReader(bytes.fromhex("01ffffffffce22246800000000006c3c0a0c00000000")))
    assert fractions.flags == 0xFFFF and fractions.is_value_form
    assert (fractions.total(), fractions.lock_time) == (201997420, 1747198670)


def _zdelta(vector: list[int], flags: int, version: int = 1, tail: bytes = b"", addr: bytes = b"") -> bytes:
    blob = zlib.compress(b"".join(d.to_bytes(8, "little", signed=True) for d in to_deltas(vector)), 1) + tail
    return (pack_u8(version) + pack_u32(flags) + pack_u64(9) + pack_bytes(addr) + pack_u64(len(blob)) + blob)


def test_read_ignores_bytes_after_the_zlib_stream() -> None:
    """zlib's uncompress stops at the end of the stream: bytes after it, within zlen, are ignored."""
    vector = [7, 5, 3] + [0] * (PEG_SIZE - 3)
    assert Fractions.unpack(_zdelta(vector, 2 | SER_ZDELTA, tail=b"tail")).to_list() == vector


def test_read_of_a_vector_with_the_value_bit_is_its_first_fraction() -> None:
    """ZDELTA with the VALUE bit set: the C++ decodes the vector but, VALUE being set, reads the object as
    the VALUE form of f[0] (7 here); the version byte (3) and return address are kept."""
    vector = [7, 5, 3] + [0] * (PEG_SIZE - 3)
    fractions = Fractions.unpack(_zdelta(vector, 1 | SER_ZDELTA, version=3, addr=b"A"))
    assert fractions.is_value_form and fractions.total() == 7 and fractions.flags == 3
    assert (fractions.version, fractions.return_addr, fractions.lock_time) == (3, "A", 9)


def test_move_that_would_overflow_an_entry_is_refused_and_moves_nothing() -> None:
    """MoveRatioPartTo adds into int64 entries: an entry beyond int64 is a signed overflow (undefined in the
    C++, whose compiled code wraps). Refused, both vectors unchanged."""
    src, dst = Fractions([10, 0]), Fractions([2**63 - 1, 5])
    with pytest.raises(PegError):
        src.move_ratio_part_to(20, dst)
    assert src.to_list()[:2] == [10, 0] and dst.to_list()[:2] == [2**63 - 1, 5]
    src = Fractions.from_value(31675488)
    with pytest.raises(PegError):
        src.move_ratio_part_to(-31946539366793, Fractions.std(486))
    assert src.is_value_form


def test_liquid_and_reserve_beyond_int64_are_refused() -> None:
    """High/Low (plain or at a level) and NChange are int64 sums in the C++; a result beyond int64 is a
    signed overflow there (the compiled code wraps): refused rather than answered exactly."""
    fractions = Fractions([2**62, 2**62, 5])
    level = PegLevel(1, 0, 0, 0, 1, 1)
    for query in (lambda: fractions.high(0), lambda: fractions.low(2), lambda: fractions.high_at(level),
                  lambda: fractions.low_at(level.evolve(supply=2)), lambda: fractions.n_change(level)):
        with pytest.raises(PegError):
            query()
    assert fractions.high(1) == 2**62 + 5  # what fits is answered

"""PegLevel: buffer and cap, the shift from a pegshift, validity, bitbay-core equality and the hex codecs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halo_exchange.errors import PegError
from halo_exchange.peg import Fractions, PegLevel
from tests import strategies as hs


def _fields(cycle, prev, supply, nxt, nxtnxt, shift, part, total) -> bytes:
    return struct.pack("<qqhhhhqq", cycle, prev, supply, nxt, nxtnxt, shift, part, total)


def test_buffer_is_added_and_capped() -> None:
    """The constructor adds the buffer to each supply and caps at 1199."""
    level = PegLevel(1, 0, 3, 1198, 10, 1196)
    assert (level.supply, level.supply_next, level.supply_next_next) == (1199, 13, 1199)
    assert level.buffer == 3 and level.is_valid()


def test_legacy_80_hex_decodes_with_buffer_three() -> None:
    """The 40-byte legacy form (no version, no buffer) decodes with buffer 3 and the stored supplies."""
    data = _fields(7, 6, 13, 16, 19, 2, 5, 9)
    level = PegLevel.from_hex(data.hex())
    assert level == PegLevel.from_fields(
        cycle=7, cycle_prev=6, buffer=3, supply=13, supply_next=16, supply_next_next=19,
        shift=2, shift_last_part=5, shift_last_total=9,
    )
    assert level.is_partial() and level.effective_supply == 15


def test_v1_hex_decodes_with_buffer_three() -> None:
    """v1 (version byte 1, no buffer field) decodes with buffer 3; re-encoding writes v2."""
    data = b"\x01" + _fields(7, 6, 13, 16, 19, 0, 0, 0)
    level = PegLevel.from_hex(data.hex())
    assert (level.cycle, level.buffer, level.supply, level.supply_next_next) == (7, 3, 13, 19)
    assert level.to_hex().startswith("02") and len(level.to_hex()) == 86
    assert PegLevel.from_hex(level.to_hex()) == level


@pytest.mark.parametrize("text", ["", "zz", "0", "02" + "00" * 10, "05" + "00" * 20, "not hex at all"])
def test_unparsable_hex_is_invalid_not_an_exception(text: str) -> None:
    """Garbage gives an invalid level (supply -1), never an exception."""
    level = PegLevel.from_hex(text)
    assert not level.is_valid() and level.supply == -1


def test_unknown_version_of_legacy_length_or_more_reads_as_legacy() -> None:
    """As bitbay-core: a string that is not a known versioned level is tried as legacy (first 40 bytes)."""
    level = PegLevel.from_hex((b"\x05" + _fields(9, 8, 1, 2, 3, 0, 0, 0)[:42]).hex())
    assert level.cycle == int.from_bytes(b"\x05" + _fields(9, 8, 1, 2, 3, 0, 0, 0)[:7], "little")
    assert level.buffer == 3


def test_version_zero_is_the_valid_default_level() -> None:
    """CPegLevel::Unpack reads nothing after a version byte 0: the in-class defaults remain (cycle 0, buffer 3,
    supplies 0), a valid level that remembers version 0 and packs as v2."""
    for text in ("00", "00ff", "00" + "11" * 50):
        level = PegLevel.from_hex(text)
        assert level.is_valid() and level.version == 0
        assert (level.cycle, level.buffer, level.supply, level.shift) == (0, 3, 0, 0)
        assert level.to_hex() == "02" + "00" * 16 + "0300" + "00" * 24


@pytest.mark.parametrize("version", [3, 7, 255])
def test_versions_above_two_read_as_v2(version: int) -> None:
    """Any version byte above 1 reads the v2 layout (buffer included) and is remembered as read."""
    fields = struct.pack("<qqhhhhhqq", 9, 8, 2, 13, 14, 15, 1, 2, 5)
    level = PegLevel.from_hex((bytes([version]) + fields).hex())
    assert level == PegLevel.from_fields(
        cycle=9, cycle_prev=8, buffer=2, supply=13, supply_next=14, supply_next_next=15,
        shift=1, shift_last_part=2, shift_last_total=5,
    )
    assert level.version == version and level.to_hex() == "02" + fields.hex()


@pytest.mark.parametrize("wrap", [
    lambda h: h + "0",  # an odd trailing nibble
    lambda h: h + "zz",  # a non-hex suffix
    lambda h: h + " 1",  # white space, then half a byte
    lambda h: " \n\t" + h,  # white space before the first byte
    lambda h: " ".join(h[i:i + 2] for i in range(0, len(h), 2)),  # white space before every byte
], ids=["odd-nibble", "junk-suffix", "space-half-byte", "leading-space", "spaced-bytes"])
def test_hex_is_parsed_as_parsehex_does(wrap) -> None:
    """ParseHex skips white space before each byte and stops at the first incomplete one; the rest is ignored."""
    level = PegLevel(5, 4, 3, 10, 11, 12)
    assert PegLevel.from_hex(wrap(level.to_hex())) == level


def test_hex_split_inside_a_byte_stops_there() -> None:
    """White space between the two nibbles of a byte ends the hex: what came before is all there is."""
    text = PegLevel(5, 4, 3, 10, 11, 12).to_hex()
    assert not PegLevel.from_hex(text[:1] + " " + text[1:]).is_valid()


def test_failed_reads_leave_what_they_read() -> None:
    """02 + ten zero bytes: the v2 read stops after the cycle; read again as legacy, the cycle is the first
    eight bytes (2) before the previous cycle runs out. The level is invalid and keeps cycle 2."""
    level = PegLevel.from_hex("02" + "00" * 10)
    assert not level.is_valid()
    assert (level.version, level.cycle, level.buffer, level.supply) == (2, 2, 3, -1)


def test_eighty_characters_are_legacy_even_when_not_all_hex() -> None:
    """C++ decides by the string's length: 80 characters are the legacy form, read from the bytes ParseHex
    gives; fewer than 40 bytes make an invalid level."""
    text = PegLevel(5, 4, 0, 10, 11, 12).to_hex()[:78] + "zz"
    assert len(text) == 80 and not PegLevel.from_hex(text).is_valid()


def test_validity_rules() -> None:
    """Buffer >= 0, supplies in range, supply + shift < 1200, part and total >= 0."""
    good = PegLevel(1, 0, 0, 10, 10, 10)
    assert good.is_valid()
    assert not good.evolve(buffer=-1).is_valid()
    assert not good.evolve(supply_next=1200).is_valid()
    assert not good.evolve(shift=1190).is_valid()
    assert not good.evolve(shift=-1).is_valid()
    assert not good.evolve(shift_last_part=-1).is_valid()


def test_shift_from_pegshift_gives_partial_level() -> None:
    """Liquid the wallet lacks shifts the effective supply by whole fractions, then a partial one."""
    book = Fractions([23] * 1200)
    # Withdrawals took 50 of liquid (index 5) and 50 of reserve (index 0) less than booked: the wallet
    # holds 50 less liquid than the book promises.
    pegshift = Fractions([50, 0, 0, 0, 0, -50])
    level = PegLevel.with_distortion(1, 0, 0, 3, 3, 3, book, pegshift)
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (2, 4, 23)
    assert level.is_partial() and level.effective_supply == 5
    # The book's liquid at the shifted level is what the wallet holds, less the rounding satoshi that
    # the partial fraction gives to reserve.
    assert book.high_at(level) == (book + pegshift).high(3) - 1


def test_no_shift_when_wallet_has_enough_liquid() -> None:
    """A pegshift that adds liquid to the wallet leaves the level unshifted."""
    level = PegLevel.with_distortion(1, 0, 0, 3, 3, 3, Fractions([23] * 1200), Fractions([-50, 0, 0, 0, 0, 50]))
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (0, 0, 0)


def test_exact_whole_fraction_shift_is_not_partial() -> None:
    """A difference of exactly two fractions shifts by two with no partial fraction left."""
    level = PegLevel.with_distortion(1, 0, 0, 3, 3, 3, Fractions([23] * 1200), Fractions([46, 0, 0, 0, -46]))
    assert level.shift == 2 and not level.is_partial()


def _sparse(entries: dict[int, int]) -> Fractions:
    out = [0] * 1200
    for index, value in entries.items():
        out[index] = value
    return Fractions(out)


def test_difference_used_up_exactly_stops_the_walk() -> None:
    """CPegLevel's walk stops as soon as nothing is left: book [100, 100, 100], pegshift {0: 100, 1: -100} at
    supply 1 gives shift 1, part 0, total 0 (not total 100, the next fraction)."""
    pegshift = _sparse({0: 100, 1: -100})
    level = PegLevel.with_distortion(1, 0, 0, 1, 1, 1, Fractions([100, 100, 100]), pegshift)
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (1, 0, 0)
    assert level.to_hex() == "02" + "01" + "00" * 7 + "00" * 8 + "0000" + "0100" * 4 + "00" * 16
    # Zero fractions after the exact fit are not counted into the shift (the walk would make it 3).
    level = PegLevel.with_distortion(1, 0, 0, 1, 1, 1, Fractions([100, 100, 0, 0, 100]), pegshift)
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (1, 0, 0)


def test_exact_fit_before_trailing_zeros_keeps_the_level_valid() -> None:
    """Book {1: 100} with pegshift {0: 100, 1: -100}: the C++ stops at shift 1 (valid); walking on through
    the zero fractions would reach supply + shift = 1200, an invalid level."""
    level = PegLevel.with_distortion(1, 0, 0, 1, 1, 1, _sparse({1: 100}), _sparse({0: 100, 1: -100}))
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (1, 0, 0) and level.is_valid()


def test_walk_off_the_end_keeps_the_remainder_as_part() -> None:
    """When the book's fractions run out before the difference does, the C++ leaves shift = 1200 - supply,
    part = what is left and total 0 (an invalid level)."""
    level = PegLevel.with_distortion(1, 0, 0, 1, 1, 1, _sparse({1: 50}), _sparse({0: 100, 1: -100}))
    assert (level.shift, level.shift_last_part, level.shift_last_total) == (1199, 50, 0)
    assert not level.is_valid()


def test_same_effective_level_ignores_cycle_but_not_ratio() -> None:
    """bitbay-core equality: cycles ignored, effective supply and partial ratio compared."""
    a = PegLevel(5, 4, 0, 10, 11, 12).evolve(shift=1, shift_last_part=1, shift_last_total=3)
    b = PegLevel(6, 5, 0, 9, 20, 20).evolve(shift=2, shift_last_part=2, shift_last_total=6)
    assert a.same_effective_level(b) and a != b
    assert not a.same_effective_level(b.evolve(shift_last_part=3))


def test_network_level_removes_buffer() -> None:
    """The network level is the exchange level without its buffer."""
    net = PegLevel(5, 4, 3, 10, 11, 12).network_level()
    assert (net.buffer, net.supply, net.supply_next, net.supply_next_next) == (0, 10, 11, 12)


@given(
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**15 - 1),
    hs.supplies, hs.supplies, hs.supplies, st.integers(0, 2**15 - 1),
    st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
)
def test_hex_round_trip(cycle, prev, buffer, s1, s2, s3, shift, part, total) -> None:
    """Any level's v2 hex decodes to the same level."""
    level = PegLevel.from_fields(
        cycle=cycle, cycle_prev=prev, buffer=buffer, supply=s1, supply_next=s2, supply_next_next=s3,
        shift=shift, shift_last_part=part, shift_last_total=total,
    )
    assert len(level.to_hex()) == 86
    assert PegLevel.from_hex(level.to_hex()) == level


def test_pegshift_overflowing_int64_is_refused() -> None:
    """The wallet vector (book + pegshift) is int64 in the C++: an entry beyond it overflows (undefined)."""
    with pytest.raises(PegError):
        PegLevel.with_distortion(1, 0, 0, 0, 0, 0, Fractions([2**63 - 1]), Fractions([1, -1]))

"""PegData: validity rules, the current base64 format and the two legacy formats bitbay-core still reads."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from hypothesis import given

from halo_exchange.peg import Fractions, PegData, PegLevel
from halo_exchange.peg.fractions import SER_VALUE, VALUE, to_deltas
from tests import strategies as hs


def test_empty_string_is_valid_zero_balance() -> None:
    """"" decodes to a valid zero balance at PegLevel(0,0,0,0,0,0)."""
    empty = PegData.from_base64("")
    assert empty.is_valid() and empty.is_empty()
    assert empty.level == PegLevel(0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("text", ["%%%", "AQAAAAAAAAAB", base64.b64encode(b"\x00" * 60).decode()])
def test_garbage_decodes_to_invalid(text: str) -> None:
    """Undecodable strings give an invalid pegdata, not an exception."""
    assert not PegData.from_base64(text).is_valid()


def test_current_format_starts_as_bitbay_core_strings() -> None:
    """Current strings start with i64 version 1 then fractions version 1: 'AQAAAAAAAAAB'."""
    balance = PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3))
    text = balance.to_base64()
    assert text.startswith("AQAAAAAAAAAB")
    assert PegData.from_base64(text) == balance


def test_pack_writes_reserve_before_liquid() -> None:
    """The binary layout ends with i64 reserve, i64 liquid, i32 id."""
    balance = PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3), id=7)
    reserve, liquid, nid = struct.unpack("<qqi", balance.pack()[-20:])
    assert (reserve, liquid, nid) == (balance.reserve, balance.liquid, 7)
    assert reserve == 2970100


def _legacy(
    fractions: list[int], level_fields: tuple, reserve: int, liquid: int, return_addr: bytes | None, zlevel: int = 9
) -> str:
    payload = zlib.compress(struct.pack("<1200q", *to_deltas(fractions)), zlevel)
    out = struct.pack("<IQ", 2 | (1 << 17), 0) + struct.pack("<Q", len(payload)) + payload
    if return_addr is not None:
        out += bytes([len(return_addr)]) + return_addr
    out += struct.pack("<qqhhhhqq", *level_fields) + struct.pack("<qq", reserve, liquid)
    return base64.b64encode(out).decode()


def test_legacy_unpack2_with_return_address_after_payload() -> None:
    """Unpack2 strings (return address after the payload, 40-byte level, no id) decode; they start 'AgAC'."""
    fractions = Fractions.std(10**8)
    text = _legacy(fractions.to_list(), (4, 3, 6, 6, 6, 0, 0, 0), fractions.low(6), fractions.high(6), b"\x00\x00")
    assert text.startswith("AgAC")
    decoded = PegData.from_base64(text)
    assert decoded.is_valid()
    assert decoded.fractions.to_list() == fractions.to_list()
    assert decoded.fractions.return_addr == "\x00\x00"
    assert (decoded.level.cycle, decoded.level.buffer, decoded.level.supply) == (4, 3, 6)
    assert (decoded.liquid, decoded.reserve) == (fractions.high(6), fractions.low(6))
    # The id is not in the legacy layout: it is what the failed current-format attempt read into the same
    # object (bitbay-core's answer for this string).
    assert decoded.id == 2102393509


def test_legacy_unpack1_without_return_address() -> None:
    """Unpack1 strings (no return address at all) decode after the other two readers fail."""
    fractions = Fractions.std(5 * 10**8)
    text = _legacy(fractions.to_list(), (9, 8, 20, 21, 22, 0, 0, 0), fractions.low(20), fractions.high(20), None)
    decoded = PegData.from_base64(text)
    assert decoded.is_valid() and decoded.level.supply == 20
    assert decoded.fractions.to_list() == fractions.to_list()


def test_validity_on_plain_level_requires_exact_split() -> None:
    """On a plain level liquid/reserve must be exactly High/Low."""
    level = PegLevel(1, 0, 0, 3, 3, 3)
    fractions = Fractions.std(10**8)
    good = PegData.at_level(fractions, level)
    assert good.is_valid()
    assert not PegData(fractions, level, good.liquid - 1, good.reserve + 1).is_valid()
    assert not PegData(fractions, level, good.liquid, good.reserve + 1).is_valid()
    assert not PegData(fractions, PegLevel.invalid(), good.liquid, good.reserve).is_valid()


def test_validity_on_partial_level_only_bounds_split() -> None:
    """On a partial level the split fraction may be shared either way, within its bounds."""
    level = PegLevel(1, 0, 0, 3, 3, 3).evolve(shift=1, shift_last_part=1, shift_last_total=2)
    fractions = Fractions([10] * 1200)
    low, high = fractions.low(4), fractions.high(5)  # 40 below, 11950 above the split fraction at 4
    for reserve in (low, low + 4, low + 10):
        assert PegData(fractions, level, fractions.total() - reserve, reserve).is_valid()
    assert not PegData(fractions, level, high - 1, fractions.total() - high + 1).is_valid()
    assert not PegData(fractions, level, fractions.total() - low + 1, low - 1).is_valid()


@given(hs.fractions(allow_negative=True), hs.levels())
def test_base64_round_trip(fractions: Fractions, level: PegLevel) -> None:
    """Any valid pegdata round-trips through base64, negatives included."""
    balance = PegData.at_level(fractions, level, id=5)
    assert balance.is_valid()
    assert PegData.from_base64(balance.to_base64()) == balance


# -- what bitbay-core reads and writes back (issue 10, items 6-8) ------------------------------------------

_LEVEL_ZERO_HEX = "02" + "00" * 16 + "0000" + "00" * 24  # CPegLevel(0,0,0,0,0,0): buffer 0, supplies 0


def test_empty_string_reencodes_as_value_form_zero() -> None:
    """CPegData("") keeps its default fractions, the VALUE form of 0, and writes them back so: version 1,
    flags VALUE|SER_VALUE, lock time 0, no return address, value 0, the zero level, reserve, liquid, id 0."""
    empty = PegData.from_base64("")
    assert empty.fractions.is_value_form
    expected = (
        struct.pack("<q", 1)
        + bytes([1]) + struct.pack("<IQ", VALUE | SER_VALUE, 0) + b"\x00" + struct.pack("<q", 0)
        + bytes.fromhex(_LEVEL_ZERO_HEX)
        + struct.pack("<qqi", 0, 0, 0)
    )
    assert empty.to_base64() == base64.b64encode(expected).decode()
    assert empty.to_base64().startswith("AQAAAAAAAAABAQABAAAAAAAAAAAA")


def test_value_form_pegdata_reencodes_as_zdelta() -> None:
    """Unpack ends with fractions = fractions.Std(): a VALUE-form pegdata decodes to the full vector and is
    written back in the ZDELTA form, as the same balance built from Std(value)."""
    level = PegLevel(1, 0, 0, 3, 3, 3)
    compact = PegData.at_level(Fractions.from_value(10**8), level)
    text = compact.to_base64()
    assert int.from_bytes(base64.b64decode(text)[9:13], "little") & SER_VALUE
    decoded = PegData.from_base64(text)
    assert not decoded.fractions.is_value_form
    assert decoded.to_base64() == PegData.at_level(Fractions.std(10**8), level).to_base64()


@pytest.mark.parametrize("wrap", [
    lambda t: t.rstrip("="),  # no padding
    lambda t: t + "\n",  # a trailing newline
    lambda t: t + "!junk",  # junk after the last valid character
    lambda t: t.rstrip("=") + "=#==",  # junk after a padding character
], ids=["unpadded", "newline", "junk", "junk-after-pad"])
def test_base64_is_read_as_decodebase64_does(wrap) -> None:
    """DecodeBase64 stops at the first character outside the alphabet and needs no padding."""
    balance = PegData.at_level(Fractions.std(12345), PegLevel(2, 1, 3, 5, 6, 7), id=4)
    text = balance.to_base64()
    assert len(text.rstrip("=")) % 4  # the string needs padding
    decoded = PegData.from_base64(wrap(text))
    assert decoded.is_valid() and decoded == balance and decoded.to_base64() == text


def test_base64_stops_at_the_first_bad_character() -> None:
    """A bad character in the middle cuts the data there: what is left is too short, so invalid."""
    text = PegData.at_level(Fractions.std(12345), PegLevel(2, 1, 3, 5, 6, 7)).to_base64()
    assert not PegData.from_base64(text[:40] + "*" + text[40:]).is_valid()


def test_fractions_version_byte_is_written_back() -> None:
    """Unpack keeps the fractions version byte it read and Pack writes it again."""
    raw = bytearray(PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3)).pack())
    raw[8] = 7  # the fractions version follows the i64 pegdata version
    decoded = PegData.from_base64(base64.b64encode(bytes(raw)).decode())
    assert decoded.fractions.version == 7 and decoded.pack() == bytes(raw)


def test_cpp_test4a_legacy_strings_keep_the_leftovers() -> None:
    """bitbay-core's pegops_tests.cpp test4a strings (Unpack2 layout). The failed current-format attempt
    read the first eight bytes as the pegdata version (131074) and byte 8 as the fractions version (0);
    they stay, so the string written back starts with them (as test4a's expected outputs do)."""
    src = (
        "AgACAAAAAAAAAAAAUgAAAAAAAAB42u3WMQ4AIQgEQOX/j/YDWhgKhcw0G4srLi6RMQAAAIDfTdk6Md+7PmT79LrP+k1mHrLz0f39"
        "jKL/GZf3F4fz7fdV9wJ7kpT2ZwCgjgWk0QEZAgAAAAAAAAABAAAAAAAAAPcB9wH3AQAAtAAAAAAAAABLAQAAAAAAAAAAAAAAAAAA"
        "OwEAAAAAAAA="
    )
    decoded = PegData.from_base64(src)
    assert decoded.is_valid()
    assert (decoded.version, decoded.fractions.version, decoded.id) == (131074, 0, 0)
    assert decoded.fractions.return_addr == "\x00\x00"
    assert (decoded.level.cycle, decoded.level.supply, decoded.level.shift_last_part) == (2, 503, 180)
    assert (decoded.liquid, decoded.reserve) == (315, 0)
    assert decoded.to_base64() == (
        "AgACAAAAAAAAAgACAAAAAAAAAAAAAgAAlQAAAAAAAAB4Ae3TQQrAIAwAQdv/P7oH3UtATCmFKNtLiEaMo23NTwEFFFBAAQUUUEAB"
        "BRRQQAEFqgtco0FjhzjNofr7s79/BeJ7Zrc4ns2/rs/uM6uL+5MbFcgI8K6oJSfOxpknZuuo3y3eHHDEXfqn71W/HI/6mL9dv6qv"
        "Ns95q/VlP/1mdKjhwH9iVEABBRRQQAEFqgg8pNEBGQICAAAAAAAAAAEAAAAAAAAAAwD3AfcB9wEAALQAAAAAAAAASwEAAAAAAAAA"
        "AAAAAAAAADsBAAAAAAAAAAAAAA=="
    )


def test_legacy_unpack1_keeps_the_return_address_of_a_failed_attempt() -> None:
    """Unpack1 reads no return address: the one the earlier attempts left is kept and written back. For
    this level-1 string the Unpack2 attempt read nine bytes there before failing (bitbay-core's answer)."""
    fractions = Fractions.std(5 * 10**8)
    text = _legacy(fractions.to_list(), (9, 8, 20, 21, 22, 0, 0, 0), fractions.low(20), fractions.high(20), None, 1)
    decoded = PegData.from_base64(text)
    assert decoded.is_valid() and decoded.fractions.to_list() == fractions.to_list()
    assert decoded.fractions.return_addr == "\x00" * 7 + "\x08\x00"
    assert (decoded.version, decoded.id, decoded.level.version) == (131074, -88123461, 209)


def test_sums_that_overflow_int64_are_not_valid() -> None:
    """A total beyond int64 would overflow in the C++ (undefined): such a balance is not valid here."""
    big = Fractions([2**62, 2**62])
    level = PegLevel(1, 0, 0, 0, 0, 0)
    assert not PegData(big, level, 2**63, 0).is_valid()
    assert not PegData(Fractions([1]), level, 1, 0, id=2**31).is_valid()

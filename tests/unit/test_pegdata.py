"""PegData: validity rules, the current base64 format and the two legacy formats bitbay-core still reads."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given

from halo_exchange.peg import Fractions, PegData, PegLevel
from halo_exchange.peg.fractions import to_deltas
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


def _legacy(fractions: list[int], level_fields: tuple, reserve: int, liquid: int, return_addr: bytes | None) -> str:
    import zlib

    payload = zlib.compress(struct.pack("<1200q", *to_deltas(fractions)), 9)
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
    assert (decoded.liquid, decoded.reserve, decoded.id) == (fractions.high(6), fractions.low(6), 0)


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

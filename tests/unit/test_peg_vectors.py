"""The public conformance vectors (tests/vectors/peg_public.json, a copy of shared/vectors) against
halo_exchange.peg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_exchange.peg import PEG_SIZE, Fractions, PegLevel, next_supply_index
from halo_exchange.peg.fractions import to_deltas

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "peg_public.json").read_text())


def _dense(entry: dict, key: str) -> list[int]:
    """A vector given densely (``key``) or sparsely (``key_sparse``), padded to PEG_SIZE."""
    if key in entry:
        return list(entry[key]) + [0] * (PEG_SIZE - len(entry[key]))
    out = [0] * PEG_SIZE
    for index, value in entry[f"{key}_sparse"].items():
        out[int(index)] = value
    return out


@pytest.mark.parametrize("case", VECTORS["std_split"], ids=lambda c: str(c["value"]))
def test_std_split(case: dict) -> None:
    """Std(value) has the published first four and last fractions and liquid/reserve at each supply."""
    fractions = Fractions.std(case["value"])
    assert fractions.to_list()[:4] == case["first4"]
    assert fractions[PEG_SIZE - 1] == case["last"]
    assert fractions.total() == case["value"]
    for point in case["at"]:
        assert fractions.high(point["supply"]) == point["liquid"], point
        assert fractions.low(point["supply"]) == point["reserve"], point


@pytest.mark.parametrize("case", VECTORS["ratio_part"], ids=lambda c: str(c["part"]))
def test_ratio_part(case: dict) -> None:
    """RatioPart gives the published slice, truncating toward zero."""
    fractions = Fractions(_dense(case, "fractions"))
    assert fractions.ratio_part(case["part"]).to_list() == _dense(case, "result")


@pytest.mark.parametrize("case", VECTORS["move_ratio_part_to"])
def test_move_ratio_part_to(case: dict) -> None:
    """MoveRatioPartTo leaves the published source and destination and returns the unmoved part."""
    src = Fractions(_dense(case, "src"))
    dst = Fractions.zero()
    assert src.move_ratio_part_to(case["value"], dst) == case["returned"]
    assert dst.to_list() == _dense(case, "dst_after")
    assert src.to_list() == _dense(case, "src_after")


@pytest.mark.parametrize("case", VECTORS["to_deltas"])
def test_to_deltas(case: dict) -> None:
    """The pack codec's deltas use truncating division."""
    deltas = to_deltas(_dense(case, "fractions_prefix"))
    assert deltas[: len(case["deltas_prefix"])] == case["deltas_prefix"]


def test_partial_level() -> None:
    """A partial level gives the rounding satoshi of the split fraction to reserve."""
    case = VECTORS["partial_level"]
    fractions = Fractions([7] * PEG_SIZE)
    level = PegLevel(0, 0, 0, case["supply"], case["supply"], case["supply"]).evolve(
        shift=case["shift"], shift_last_part=case["shift_last_part"], shift_last_total=case["shift_last_total"]
    )
    index = case["supply"] + case["shift"]
    assert fractions.low_part_at(level)[index] == case["reserve_piece_of_f11"]
    assert fractions.high_part_at(level)[index] == case["liquid_piece_of_f11"]
    assert fractions.low_at(level) == case["low"]
    assert fractions.high_at(level) == case["high"]


@pytest.mark.parametrize("case", VECTORS["peglevel_hex_v2"], ids=lambda c: c["hex"][-40:-30])
def test_peglevel_hex_v2(case: dict) -> None:
    """The v2 hex of a level built from network supplies and a buffer, and its decoding."""
    args = case["args"]
    level = PegLevel(
        args["cycle"], args["cycle_prev"], args["buffer"], args["supply"], args["supply_next"], args["supply_next_next"]
    )
    assert level.to_hex() == case["hex"]
    assert PegLevel.from_hex(case["hex"]) == level


@pytest.mark.parametrize("case", VECTORS["next_supply_index"],
                         ids=lambda c: f"{c['base']}-{c['votes']}-{c['votes_prev']}")
def test_next_supply_index(case: dict) -> None:
    """The supply index rule with votes ordered (inflate, deflate, nochange)."""
    assert VECTORS["votes_order"] == "[inflate, deflate, nochange]"
    assert next_supply_index(case["base"], case["votes"], case["votes_prev"]) == case["result"]

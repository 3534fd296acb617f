"""The halo-exchange command: overview and the peg inspection tools an operator uses."""

from __future__ import annotations

import json

from halo_exchange.cli import main
from halo_exchange.peg import Fractions, PegData, PegLevel


def test_overview_lists_commands(capsys) -> None:
    """Without arguments the command says what is available."""
    assert main([]) == 0
    assert "peg split" in capsys.readouterr().out


def test_split_json(capsys) -> None:
    """`peg split` reports liquid/reserve at the asked supplies."""
    main(["peg", "split", "100000000", "--supply", "3", "--json"])
    facts = json.loads(capsys.readouterr().out)
    assert facts["at"] == [{"supply": 3, "liquid": 97029900, "reserve": 2970100}]
    assert facts["hli"] == 68


def test_decode_level_and_pegdata(capsys) -> None:
    """`peg level` and `peg pegdata` decode what the library encodes, and refuse garbage (exit code 1)."""
    level = PegLevel(12, 11, 3, 10, 20, 30)
    main(["peg", "level", level.to_hex(), "--json"])
    assert json.loads(capsys.readouterr().out)["supply"] == 13
    balance = PegData.at_level(Fractions.std(10**8), level)
    main(["peg", "pegdata", balance.to_base64(), "--json"])
    facts = json.loads(capsys.readouterr().out)
    assert (facts["valid"], facts["liquid"], facts["reserve"]) == (True, balance.liquid, balance.reserve)
    assert main(["peg", "level", "garbage"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "'garbage' is not a valid peglevel" in captured.err


def test_next_supply(capsys) -> None:
    """`peg next-supply` applies the supply rule with the previous cycle's votes."""
    main(["peg", "next-supply", "100", "0", "10", "0", "--prev", "0", "4", "4", "--json"])
    assert json.loads(capsys.readouterr().out)["next"] == 102

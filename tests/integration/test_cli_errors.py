"""`halo-exchange` tools given what they cannot use (issue 13, items 4, 5, 6 and 18): one clear line and a
non-zero exit code, never a traceback or a zero exit after printing nonsense; help without repeats or markup."""

from __future__ import annotations

import argparse
import re

import pytest

from halo_exchange.cli import build_parser
from halo_exchange.ledger.store import ExchangeStore
from tests.framework import ROOT, run_cli


@pytest.mark.parametrize("args, message", [
    (["level", "zz"], "'zz' is not a valid peglevel"),
    (["pegdata", "junk"], "'junk' is not a valid pegdata"),
    (["split", "-5"], "VALUE -5: an amount is 0 or more satoshis"),
    (["split", "1", "--supply", "1300"], "--supply 1300: a supply index is 0 to 1199"),
    (["split", "1", "--supply", "-1", "--json"], "--supply -1: a supply index is 0 to 1199"),
    (["split", str(2**63)], f"liquid {2**63} overflows int64"),
    (["next-supply", "1300", "1", "2", "3"], "BASE 1300: a supply index is 0 to 1199"),
    (["next-supply", "10", "1", "-2", "3"], "a vote count is 0 or more"),
])
def test_peg_tools_refuse_invalid_input_with_exit_1(args: list[str], message: str) -> None:
    """Input the peg tools cannot use: exit 1, one line on stderr naming the tool and what is wrong, nothing on
    stdout (they used to print `valid: False` or a negative liquid and exit 0)."""
    result = run_cli("peg", *args)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"halo-exchange peg {args[0]}: ")
    assert message in result.stderr


def test_peg_tools_still_answer_valid_input() -> None:
    """The checks refuse nothing valid: the edges of the supply range and a zero amount."""
    result = run_cli("peg", "split", "0", "--supply", "0", "--supply", "1199")
    assert result.returncode == 0 and "supply 1199, liquid 0, reserve 0" in result.stdout


def test_audit_of_a_missing_datadir_says_there_is_no_exchange_data(tmp_path) -> None:
    """`audit --datadir /nonexistent`: "no exchange data in /nonexistent", exit 2 (not LevelDB's NotFound)."""
    missing = tmp_path / "nonexistent"
    result = run_cli("audit", "--datadir", str(missing))
    assert result.returncode == 2
    assert result.stderr == f"no exchange data in {missing}\n"
    assert not missing.exists()


def test_encrypt_wallet_without_a_terminal_says_use_passphrase_file(tmp_path) -> None:
    """`echo x | halo-exchange encrypt-wallet --datadir D`: "no terminal: use --passphrase-file", exit 1, no
    traceback (it used to end in getpass's EOFError)."""
    ExchangeStore(str(tmp_path / "exchange")).close()
    result = run_cli("encrypt-wallet", "--datadir", str(tmp_path), input="x\n")
    assert result.returncode == 1
    assert result.stderr == "no terminal: use --passphrase-file\n"


def _helps(parser: argparse.ArgumentParser, name: str = "halo-exchange") -> dict[str, str]:
    """The --help text of the command and of every subcommand under it."""
    helps = {name: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                helps.update(_helps(sub, f"{name} {sub_name}"))
    return helps


def test_no_help_text_shows_markup() -> None:
    """No --help shows reStructuredText or Markdown markup (``halo-exchange``, **F**)."""
    for name, text in _helps(build_parser()).items():
        assert "``" not in text and "**" not in text, f"{name}: {text}"


def test_next_supply_help_names_each_vote_once() -> None:
    """`peg next-supply --help` (a real process) names INFLATE DEFLATE NOCHANGE once in its usage, not three
    times over, and lists each vote once."""
    result = run_cli("peg", "next-supply", "--help")
    assert result.returncode == 0
    assert "NOCHANGE INFLATE" not in result.stdout
    usage = result.stdout.split("\n\n")[0]
    assert re.sub(r"\s+", " ", usage).endswith("BASE INFLATE DEFLATE NOCHANGE")
    assert result.stdout.count("INFLATE") == 2  # the usage and its own line


def test_make_run_installs_without_setuptools_warning_box() -> None:
    """Every editable install in the Makefile (what `make run` does first) runs with setuptools' "Editable
    installation" warning filtered: that box told a new user nothing they could act on."""
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs
    assert 'QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"' in makefile
    for line in installs:
        assert line.strip().startswith("$(QUIET_EDITABLE) "), line

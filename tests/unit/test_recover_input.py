"""The input files of `halo-exchange recover`: what each parser accepts, and the file-and-line report of what it
refuses; the pro-rata share-out and the rescan's progress line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from halo_exchange.chain.keys import DEVNET, TESTNET, PrivateKey
from halo_exchange.recover import ScanProgress, share_out
from halo_exchange.recover_input import (
    BalanceRecord,
    DepositRecord,
    check_deposits,
    parse_balances,
    parse_deposits,
    parse_keys,
    read_text,
)

TXID = "ab" * 32


def _messages(problems) -> list[str]:
    return [str(problem) for problem in problems]


# -- BALANCES.csv -------------------------------------------------------------------------------------------------

def test_balances_in_file_order_with_or_without_a_header() -> None:
    """A header line is optional; blank lines are skipped; amounts may carry spaces; file order is kept."""
    text = "user,liquid,reserve\r\nzoe_1,100, 5\n\nalice,0,0\n"
    records, problems = parse_balances(text, "b.csv")
    assert problems == []
    assert records == [BalanceRecord("zoe_1", 100, 5, 2), BalanceRecord("alice", 0, 0, 4)]
    assert parse_balances("alice,1,2\n", "b.csv")[0] == [BalanceRecord("alice", 1, 2, 1)]


def test_a_quoted_name_may_hold_a_comma() -> None:
    records, problems = parse_balances('"smith, j",10,20\n', "b.csv")
    assert problems == [] and records[0].user == "smith, j"


@pytest.mark.parametrize("line, message", [
    ("alice,1.5,0", "b.csv:1: user 'alice': liquid '1.5' is not a whole number of satoshis"),
    ("alice,1,-3", "b.csv:1: user 'alice': reserve -3 is negative"),
    ("alice,,3", "b.csv:1: user 'alice': liquid is empty"),
    ("alice,1e8,0", "b.csv:1: user 'alice': liquid '1e8' is not a whole number of satoshis"),
    ("alice,9223372036854775808,0", "b.csv:1: user 'alice': liquid 9223372036854775808 is larger than any"),
    ("alice,1", "b.csv:1: expected 3 fields user,liquid,reserve, found 2"),
    ("alice,1,2,3", "b.csv:1: expected 3 fields user,liquid,reserve, found 4"),
    ("pool,1,2", "b.csv:1: user 'pool': "),
    ("ab,1,2", "b.csv:1: user 'ab': "),
    ("user,liquid,reservx", "b.csv:1: user 'user': liquid 'liquid' is not a whole number"),
])
def test_each_bad_balance_line_is_named(line: str, message: str) -> None:
    """A typo, a negative or fractional amount, a missing field, a name the API refuses: file, line and why."""
    records, problems = parse_balances(line + "\n", "b.csv")
    assert records == []
    assert len(problems) >= 1 and _messages(problems)[0].startswith(message), _messages(problems)


def test_every_problem_is_reported_at_once() -> None:
    text = "alice,1,2\nbobby,x,2\nalice,3,4\ncarol,5,-1\n"
    _, problems = parse_balances(text, "b.csv")
    assert [p.line for p in problems] == [2, 3, 4]
    assert "listed twice (first on line 1)" in str(problems[1])


def test_an_empty_balances_file_is_refused() -> None:
    assert _messages(parse_balances("user,liquid,reserve\n", "b.csv")[1]) == ["b.csv: holds no balances"]
    assert _messages(parse_balances("", "b.csv")[1]) == ["b.csv: holds no balances"]


# -- DEPOSITS.csv -------------------------------------------------------------------------------------------------

def test_deposits_parse_to_outpoints() -> None:
    records, problems = parse_deposits(f"user,txid:n\nalice,{TXID}:1\nbobby, {TXID.upper()}:0 \n", "d.csv")
    assert problems == []
    assert [(r.user, r.outpoint.txid_hex, r.outpoint.n, r.line) for r in records] == [
        ("alice", TXID, 1, 2), ("bobby", TXID, 0, 3)]


@pytest.mark.parametrize("line, message", [
    (f"alice,{TXID}", "is not an outpoint txid:n"),
    (f"alice,{TXID[:-2]}:0", "is not an outpoint txid:n"),
    (f"alice,{TXID}:x", "is not an outpoint txid:n"),
    (f"alice,{TXID}:4294967296", "outpoint index"),
    ("alice", "expected 2 fields user,txid:n, found 1"),
])
def test_each_bad_deposit_line_is_named(line: str, message: str) -> None:
    records, problems = parse_deposits(line + "\n", "d.csv")
    assert records == [] and str(problems[0]).startswith("d.csv:1: ") and message in str(problems[0])


def test_a_deposit_twice_and_a_deposit_of_an_unknown_user() -> None:
    records, problems = parse_deposits(f"alice,{TXID}:0\nalice,{TXID}:0\nzelda,{TXID}:1\n", "d.csv")
    assert _messages(problems) == [f"d.csv:2: deposit {TXID}:0 is listed twice (first on line 1)"]
    unknown = check_deposits(records, [BalanceRecord("alice", 1, 1, 1)], "d.csv")
    assert _messages(unknown) == ["d.csv:3: user 'zelda' is not in the balances file"]
    assert isinstance(records[0], DepositRecord)


# -- KEYS.txt -----------------------------------------------------------------------------------------------------

def test_keys_one_a_line_comments_and_repeats_allowed() -> None:
    keys = [PrivateKey.generate() for _ in range(3)]
    wifs = [key.to_wif(DEVNET) for key in keys]
    text = f"# the exchange's keys\n{wifs[0]}\n\n  {wifs[1]}  \n{wifs[2]}\n{wifs[0]}\n"
    records, problems = parse_keys(text, "k.txt", DEVNET)
    assert problems == []
    assert [r.key for r in records] == keys and [r.line for r in records] == [2, 4, 5]


def test_a_bad_wif_is_named_by_line_and_never_quoted() -> None:
    """A typo (checksum), another network's key, an uncompressed key: refused by line; no secret in the text."""
    good = PrivateKey.generate().to_wif(DEVNET)
    typo = good[:-1] + ("2" if good[-1] != "2" else "3")
    other_network = PrivateKey.generate().to_wif(TESTNET)
    uncompressed = PrivateKey(PrivateKey.generate().to_bytes(), compressed=False).to_wif(DEVNET)
    records, problems = parse_keys("\n".join([good, typo, other_network, uncompressed, "hello"]), "k.txt", DEVNET)
    assert len(records) == 1 and [p.line for p in problems] == [2, 3, 4, 5]
    assert "not a devnet WIF private key" in str(problems[0]) and "uncompressed" in str(problems[2])
    report = "\n".join(_messages(problems))
    for secret in (typo, other_network, uncompressed):
        assert secret[4:-4] not in report


def test_an_empty_keys_file_is_refused() -> None:
    assert _messages(parse_keys("# nothing\n", "k.txt", DEVNET)[1]) == ["k.txt: holds no keys"]


def test_unreadable_files_are_problems_not_tracebacks(tmp_path: Path) -> None:
    problems: list = []
    (tmp_path / "latin1.csv").write_bytes(b"caf\xe9,1,2\n")
    assert read_text(tmp_path / "latin1.csv", problems) is None
    assert read_text(tmp_path / "missing.csv", problems) is None
    assert "not UTF-8" in str(problems[0]) and "cannot be read" in str(problems[1])


# -- the share-out and the progress line -------------------------------------------------------------------------

def test_share_out_is_whole_when_covered_and_pro_rata_when_not() -> None:
    assert share_out(100, [10, 20, 0]) == [10, 20, 0]
    assert share_out(90, [30, 60]) == [30, 60]
    assert share_out(45, [30, 60]) == [15, 30]
    given = share_out(10, [3, 3, 3, 3])
    assert sum(given) == 10 and all(2 <= g <= 3 for g in given)
    assert share_out(0, [5, 5]) == [0, 0] and share_out(7, []) == []


def test_progress_shows_rate_and_eta_only_for_long_scans() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = ScanProgress(stream, clock=lambda: now[0])
    progress.update(1000, (2**30).to_bytes(4, "big") + bytes(28))
    assert stream.getvalue() == ""  # under a second: quiet
    now[0] = 2.0
    progress.update(50_000, (2**31).to_bytes(4, "big") + bytes(28))  # half the key space in 2 s
    line = stream.getvalue()
    assert "50.0% of the UTXO set" in line and "25,000/s" in line and "ETA 2 s" in line
    progress.finish(100_000)
    assert "done, 100,000 outputs read" in stream.getvalue()

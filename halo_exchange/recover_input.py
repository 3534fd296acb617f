"""The input files of ``halo-exchange recover``, parsed and checked before anything is read from the chain.

Three files, the exchange's own records (docs/recovery.md):

* ``BALANCES.csv``: ``user,liquid,reserve`` per line, whole satoshis, each user once;
* ``KEYS.txt``: one WIF private key per line (the keys GenerateDepositAddress handed out, the exchange accounts');
* ``DEPOSITS.csv`` (optional): ``user,txid:n`` per line, the original deposits of the users of ``BALANCES.csv``.

A header line is allowed as the first line of each CSV (``user,liquid,reserve`` and ``user,deposit``, or
``user,txid:n``, ``user,outpoint``); blank lines are skipped, and so are KEYS.txt lines starting with ``#``.
Every problem is collected with its file and line, so one run reports them all; a WIF never appears in a
message (it is a secret), only its line number.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from halo_exchange.chain.keys import Network, PrivateKey
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import check_user_name
from halo_exchange.errors import CommandRefused, DecodeError, HaloExchangeError

INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")
_OUTPOINT = re.compile(r"([0-9a-fA-F]{64}):([0-9]+)")
BALANCES_HEADER = ("user", "liquid", "reserve")
DEPOSITS_HEADERS = frozenset({("user", "deposit"), ("user", "txid:n"), ("user", "outpoint")})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where, and what."""

    path: str
    line: int  # 1-based; 0 for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class RecoveryInputError(HaloExchangeError):
    """The recovery's input files are wrong (every problem listed, with file and line); nothing was written.
    Correct the files and run ``recover`` again."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class BalanceRecord:
    """A user's recorded balance, and the line that gave it."""

    user: str
    liquid: int
    reserve: int
    line: int


@dataclass(frozen=True)
class DepositRecord:
    """An original deposit of a user, and the line that named it."""

    user: str
    outpoint: OutPoint
    line: int


@dataclass(frozen=True)
class KeyRecord:
    """An exchange key, and the line that gave it."""

    key: PrivateKey
    line: int


def read_text(path: Path, problems: list[Problem]) -> str | None:
    """The file's text (UTF-8), or None with a problem recorded when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
    except OSError as exc:
        problems.append(Problem(str(path), 0, f"cannot be read: {exc.strerror or exc}"))
    return None


def _amount(text: str, column: str) -> tuple[int | None, str]:
    """A whole, non-negative number of satoshis, or (None, why not)."""
    value = text.strip()
    if not value:
        return None, f"{column} is empty"
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        return None, f"{column} {value} is negative"
    if not _DIGITS.fullmatch(value):
        return None, f"{column} {value!r} is not a whole number of satoshis"
    amount = int(value)
    if amount > INT64_MAX:
        return None, f"{column} {value} is larger than any balance can be (2^63 - 1)"
    return amount, ""


def _rows(text: str, path: str, problems: list[Problem]) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank CSV line (quotes allowed around a name holding a comma)."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for fields in reader:
            if not fields or all(not field.strip() for field in fields):
                continue
            rows.append((reader.line_num, fields))
    except csv.Error as exc:
        problems.append(Problem(path, reader.line_num, f"not CSV: {exc}"))
    return rows


def _is_header(fields: list[str], headers: frozenset[tuple[str, ...]]) -> bool:
    return tuple(field.strip().lower() for field in fields) in headers


def _user(name: str) -> str:
    """The name if the API would accept it as a user (else the API's own words, raised as ValueError)."""
    try:
        return check_user_name(name)
    except CommandRefused as exc:
        raise ValueError(f"user {name!r}: {exc}") from None


def parse_balances(text: str, path: str) -> tuple[list[BalanceRecord], list[Problem]]:
    """The records of BALANCES.csv in file order, and every problem found."""
    problems: list[Problem] = []
    records: list[BalanceRecord] = []
    seen: dict[str, int] = {}
    rows = _rows(text, path, problems)
    for index, (line, fields) in enumerate(rows):
        if index == 0 and _is_header(fields, frozenset({BALANCES_HEADER})):
            continue
        if len(fields) != 3:
            problems.append(Problem(path, line, f"expected 3 fields user,liquid,reserve, found {len(fields)}"))
            continue
        try:
            user = _user(fields[0])
        except ValueError as exc:
            problems.append(Problem(path, line, str(exc)))
            continue
        liquid, why_liquid = _amount(fields[1], "liquid")
        reserve, why_reserve = _amount(fields[2], "reserve")
        for why in (why_liquid, why_reserve):
            if why:
                problems.append(Problem(path, line, f"user {user!r}: {why}"))
        if user in seen:
            problems.append(Problem(path, line, f"user {user!r} is listed twice (first on line {seen[user]})"))
            continue
        seen[user] = line
        if liquid is not None and reserve is not None:
            if liquid + reserve > INT64_MAX:
                problems.append(Problem(path, line, f"user {user!r}: liquid + reserve exceeds 2^63 - 1"))
                continue
            records.append(BalanceRecord(user, liquid, reserve, line))
    if not records and not problems:
        problems.append(Problem(path, 0, "holds no balances"))
    return records, problems


def parse_deposits(text: str, path: str) -> tuple[list[DepositRecord], list[Problem]]:
    """The records of DEPOSITS.csv in file order, and every problem found in the file itself (whether the
    users are in BALANCES.csv and the outputs the exchange's is checked by :func:`check_deposits` and the
    chain scan)."""
    problems: list[Problem] = []
    records: list[DepositRecord] = []
    seen: dict[OutPoint, int] = {}
    for index, (line, fields) in enumerate(_rows(text, path, problems)):
        if index == 0 and _is_header(fields, DEPOSITS_HEADERS):
            continue
        if len(fields) != 2:
            problems.append(Problem(path, line, f"expected 2 fields user,txid:n, found {len(fields)}"))
            continue
        try:
            user = _user(fields[0])
        except ValueError as exc:
            problems.append(Problem(path, line, str(exc)))
            continue
        match = _OUTPOINT.fullmatch(fields[1].strip())
        if match is None:
            problems.append(Problem(path, line, f"{fields[1].strip()!r} is not an outpoint txid:n "
                                                "(64 hex digits, a colon, the output number)"))
            continue
        try:
            outpoint = OutPoint.from_hex(match.group(1), int(match.group(2)))
        except (DecodeError, ValueError) as exc:
            problems.append(Problem(path, line, f"{fields[1].strip()!r}: {exc}"))
            continue
        if outpoint in seen:
            problems.append(Problem(path, line, f"deposit {fields[1].strip()} is listed twice "
                                                f"(first on line {seen[outpoint]})"))
            continue
        seen[outpoint] = line
        records.append(DepositRecord(user, outpoint, line))
    return records, problems


def check_deposits(deposits: list[DepositRecord], balances: list[BalanceRecord], path: str) -> list[Problem]:
    """A deposit must belong to a user whose balance is recorded (else the records disagree: which is right?)."""
    users = {record.user for record in balances}
    return [Problem(path, record.line, f"user {record.user!r} is not in the balances file")
            for record in deposits if record.user not in users]


def parse_keys(text: str, path: str, network: Network) -> tuple[list[KeyRecord], list[Problem]]:
    """The keys of KEYS.txt (each once, in file order), and every problem found; a WIF is never quoted."""
    problems: list[Problem] = []
    keys: list[KeyRecord] = []
    seen: set[bytes] = set()
    for line, raw in enumerate(text.splitlines(), start=1):
        wif = raw.strip()
        if not wif or wif.startswith("#"):
            continue
        try:
            key = PrivateKey.from_wif(wif, network)
        except DecodeError as exc:
            problems.append(Problem(path, line, f"not a {network.name} WIF private key ({exc})"))
            continue
        if not key.compressed:
            # The exchange wallet stores compressed keys only, and GenerateDepositAddress hands out no other.
            problems.append(Problem(path, line, "an uncompressed WIF: the exchange wallet never made one"))
            continue
        if key.to_bytes() in seen:
            continue  # the same key twice is harmless
        seen.add(key.to_bytes())
        keys.append(KeyRecord(key, line))
    if not keys and not problems:
        problems.append(Problem(path, 0, "holds no keys"))
    return keys, problems

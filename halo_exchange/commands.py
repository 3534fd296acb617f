"""Commands as the exchange's software states them, checked before they touch any state.

What a command may say is decided here, once, without looking at balances: user names (4..64 printable
characters, the pseudo accounts reserved), styles (liquid or reserve), amounts (whole satoshis: an ``int``
and never a ``bool``), and the shape of a trade (a one-sided trade goes to or from the pool). A refusal raises
:class:`~halo_exchange.errors.CommandRefused` with the API's documented string (reference/halo-behaviour.md
§2, with the fixes of §5: zero amounts refused, names are keys not paths). What needs the ledger (an unknown
payer, an insufficient balance) is the engine's to refuse.
"""

from __future__ import annotations

from typing import NamedTuple, TypeGuard

from halo_exchange.errors import CommandRefused

# The book's pseudo accounts, and the names no user may take (case-insensitive).
POOL, WITHDRAWS, EXCHANGE = "pool", "withdraws", "exchange"
RESERVED_NAMES = frozenset({"total", POOL, "frozen", "x", EXCHANGE, WITHDRAWS})
MIN_NAME, MAX_NAME = 4, 64
LIQUID, RESERVE = "liquid", "reserve"
STYLES = (LIQUID, RESERVE)

# The API's strings (halo-behaviour §2.7-§2.10).
NAME_RESERVED = "Name reserved for exchange operations. Please use different name."
NAME_TOO_SHORT = "Name is too short in length."
NAME_INVALID = f"Name must be printable text of at most {MAX_NAME} characters."
NEGATIVE_BETWEEN_USERS = "Amount can not be negative if both users are known"
ZERO_AMOUNT = "Amount must not be zero."
BAD_AMOUNT = "Amount must be a whole number of satoshis"
MAX_AMOUNT = 2**63 - 1  # an int64, as the chain's amounts
AMOUNT_OUT_OF_RANGE = f"Amount is out of range (at most {MAX_AMOUNT} satoshis)"
NEGATIVE_WITHDRAW = "Withdraw amount can not be negative"
WITHDRAW_TOO_LOW = "Withdraw amount is too low"
BAD_STYLE = "Style must be 'liquid' or 'reserve'."
UNKNOWN_USER = "Unknown user"
# The flags of StartExchange and CheckWithdraw: 1/0, True/False, or the digit strings "1"/"0".
FLAG_VALUES = (0, 1, "0", "1")  # (False == 0 and True == 1 are in it too)
BAD_START = "start must be 1 (start) or 0 (stop)."
BAD_ISRUNNING = "isrunning must be 1 (ask whether the exchange is started and loaded) or 0."
# API(command), the signed exec hook (halo-behaviour §4).
SENT_PREVIOUSLY = "Command sent previously"
SIGNATURE_FAILED = "Signature failed"
BAD_CLEAR = "clear must be 0 (look) or 1 (look, then forget a finished record)."
BAD_ADDRESS_FILTER = "Address must be text ('' for every address)."


def is_flag(value: object) -> bool:
    """A flag as the API takes one: 1/0, True/False or "1"/"0" (never 1.0, 2, "yes")."""
    return (is_whole(value) or isinstance(value, (bool, str))) and value in FLAG_VALUES


def flag_set(value: object) -> bool:
    """Whether a flag (see :func:`is_flag`) is on."""
    return value in (1, "1")


def is_whole(value: object) -> TypeGuard[int]:
    """An integer that is not a bool (``True`` is an ``int`` to Python, never an amount or a count here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_user_name(name: object) -> str:
    """A user name: text, 4..64 printable characters, not reserved (case-insensitive). Case-sensitive otherwise."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.isprintable():
        raise CommandRefused(NAME_INVALID)
    if name.lower() in RESERVED_NAMES:
        raise CommandRefused(NAME_RESERVED)
    if len(name) < MIN_NAME:
        raise CommandRefused(NAME_TOO_SHORT)
    return name


def check_style(style: object) -> str:
    if not isinstance(style, str) or style not in STYLES:
        raise CommandRefused(BAD_STYLE)
    return style


def check_positive_amount(amount: object) -> int:
    """A whole, positive number of satoshis."""
    if not is_whole(amount):
        raise CommandRefused(BAD_AMOUNT)
    if amount <= 0:
        raise CommandRefused(ZERO_AMOUNT if amount == 0 else BAD_AMOUNT)
    return amount


class Transfer(NamedTuple):
    """``amount`` (> 0) of ``style`` from ``source`` to ``destination``; either may be the pool. (A NamedTuple:
    immutable like a frozen dataclass, and built several times faster on the trade path.)"""

    source: str
    destination: str
    amount: int
    style: str


def trade(user1: object, amount: object, user2: object, style: object = LIQUID) -> Transfer:
    """``Trade``: ``user1`` pays ``amount`` to ``user2``. With ``user2 == ''`` a one-sided trade: a negative
    amount debits ``user1`` into the pool, a positive one credits ``user1`` from it."""
    payer = check_user_name(user1)
    # "withdraws" is reserved: escrow moves only through Withdraw.
    payee = "" if user2 == "" else check_user_name(user2)
    style = check_style(style)
    if not is_whole(amount):
        raise CommandRefused(BAD_AMOUNT)
    if amount == 0:
        raise CommandRefused(ZERO_AMOUNT)
    if payee == "":
        return Transfer(payer, POOL, -amount, style) if amount < 0 else Transfer(POOL, payer, amount, style)
    if amount < 0:
        raise CommandRefused(NEGATIVE_BETWEEN_USERS)
    return Transfer(payer, payee, amount, style)


def escrow(user: object, amount: object, style: object) -> Transfer:
    """A withdrawal's escrow: ``user``'s amount into the ``withdraws`` escrow (the engine names the request's
    own escrow account)."""
    name, style, amount = check_user_name(user), check_style(style), check_positive_amount(amount)
    return Transfer(name, WITHDRAWS, amount, style)

"""Withdrawals: each request from acceptance to payment, and the batch transactions that pay them.

Two explicit state machines. A **request** (what ``Withdraw`` accepted, keyed by the 32-hex-digit ID the API
hands out)::

    QUEUED ──batched──▶ UNCONFIRMED ──seen in a block──▶ PROCESSING ──confirmations──▶ COMPLETE
      │                      ▲   │                          │   ▲                        │
      │                      └───┼──── block left chain ────┘   └──── block left chain ──┘
      ▼                          ▼
    EXPIRED (not batched       FAILED (an input of its transaction was spent by another transaction with
    within two cycles:          the confirmation setting's depth: it can never confirm; refunded)
    refunded)

A **batch** (one signed transaction, keyed by its *master ID*, carried in its final OP_RETURN) has the same
states from UNCONFIRMED on. Its members follow it. A refund happens only at EXPIRED (never batched) and at
FAILED (provably unpayable), never while a signed transaction could still confirm (the original's B19).

The escrow of a request is its own book account (:func:`escrow_account`): a cycle change re-values it like
any account, and :meth:`Withdrawal.settle_drift` says what goes back to the user, so the escrow never drifts
from what the record says (``paid``). The commission is fixed at request time (B29).

This module is pure: records, rules and arithmetic. The engine applies the book moves and writes the records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from halo_exchange.chain.tx import OutPoint

LIQUID_LIMIT, RESERVE_LIMIT = 300, 45  # outstanding requests per style (the original allowed one more, B4)
# Default commission (the original's): 0.1 % of the amount, at least 1 BAY, at most 10 BAY; ppm = parts per million.
DEFAULT_COMMISSION = {"min": 100_000_000, "max": 1_000_000_000, "ppm": 1000}
MIN_ABOVE_COMMISSION = 10_000  # a request must exceed the minimum commission by more than this (the original's)
EXPIRY_CYCLES = 2  # a request accepted in cycle c may be batched in c and c + 1
# The escrow accounts' names start with a character no user name can hold (names are printable text).
ESCROW_PREFIX = "\x00withdraw:"
CLIENT_ID_MAX = 64


class WithdrawalState(enum.Enum):
    QUEUED = "queued"
    UNCONFIRMED = "unconfirmed"
    PROCESSING = "processing"
    COMPLETE = "complete"
    EXPIRED = "expired"
    FAILED = "failed"


OUTSTANDING = (WithdrawalState.QUEUED, WithdrawalState.UNCONFIRMED, WithdrawalState.PROCESSING)
FINISHED = (WithdrawalState.COMPLETE, WithdrawalState.EXPIRED, WithdrawalState.FAILED)


class BatchKind(enum.Enum):
    LIQUID = "liquid"
    RESERVE = "reserve"
    MAINTENANCE = "maintenance"


def escrow_account(withdrawal_id: str) -> str:
    return ESCROW_PREFIX + withdrawal_id


def commission_for(amount: int, commission: dict) -> int:
    """The commission on ``amount``: ``ppm`` parts per million of it, clamped to [min, max] (integer math)."""
    return min(max(amount * commission["ppm"] // 1_000_000, commission["min"]), commission["max"])


@dataclass
class Withdrawal:
    """One accepted request. ``amount`` is what was asked (commission included); ``paid`` what its escrow
    holds in the requested style now (less than ``amount`` after a cycle moved part of it to the other style);
    the payee receives ``paid - commission``."""

    id: str
    user: str
    amount: int
    address: str
    style: str
    height: int  # chain height when it was accepted
    cycle: int = 0  # the peg cycle it was accepted in (expiry counts from it)
    commission: int = 0
    paid: int = 0
    state: WithdrawalState = WithdrawalState.QUEUED
    batch: str | None = None  # master ID of the batch that pays it
    client_id: str | None = None  # the optional ID the client chose (repeat calls answer the first answer)
    note: str = ""  # why a queued request waits (a locked wallet, funds, fees), for CheckWithdraw
    seq: int = 0  # acceptance order: batches take the oldest requests first, across restarts too

    @property
    def escrow(self) -> str:
        return escrow_account(self.id)

    @property
    def payout(self) -> int:
        """What the payee's output carries."""
        return self.paid - self.commission

    def expired_at(self, cycle: int) -> bool:
        return self.state is WithdrawalState.QUEUED and cycle >= self.cycle + EXPIRY_CYCLES

    def settle_drift(self, liquid: int, reserve: int) -> tuple[str, int]:
        """After a cycle re-valued the escrow to (``liquid``, ``reserve``): the style and amount that must go
        back to the user (the part no longer in the requested style), and ``paid`` updated."""
        if self.style == "liquid":
            self.paid = liquid
            return "reserve", reserve
        self.paid = reserve
        return "liquid", liquid


class BatchState(enum.Enum):
    UNCONFIRMED = "unconfirmed"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"


_REQUEST_STATE = {
    BatchState.UNCONFIRMED: WithdrawalState.UNCONFIRMED,
    BatchState.PROCESSING: WithdrawalState.PROCESSING,
    BatchState.COMPLETE: WithdrawalState.COMPLETE,
    BatchState.FAILED: WithdrawalState.FAILED,
}


@dataclass
class Batch:
    """One transaction the exchange signed: a withdrawal batch or an account maintenance.

    ``txid`` is the predicted txid (display hex); ``txid2`` the one seen on chain when it differs (the
    transaction was malleated); ``in0`` its first input: a transaction spending ``in0`` whose last output
    carries ``master_id`` is this batch, whatever its txid. ``outflow`` is the value that leaves the exchange
    when it confirms (payees, fee account, network fee, burns); ``cost`` the network fee and burns;
    ``recovered`` what it withheld from the fee account to repay earlier maintenance costs.
    """

    master_id: str
    kind: BatchKind
    raw: str
    txid: str
    in0: str
    inputs: list[str]
    members: list[str] = field(default_factory=list)
    # Indexes of the outputs that are the exchange's change (they become coins); every other output is a
    # payment, even to an address of the exchange's wallet (a user paying another user of the exchange).
    change: list[int] = field(default_factory=list)
    state: BatchState = BatchState.UNCONFIRMED
    built_height: int = 0
    block: int = -1  # height of the block that holds it (-1: none)
    txid2: str | None = None
    outflow: int = 0
    cost: int = 0
    recovered: int = 0
    submissions: int = 0
    conflict: str | None = None  # "txid" of a transaction that spent one of its inputs
    conflict_height: int = -1
    # Fractions debited from each member's escrow at COMPLETE (hex of their pack), to re-credit on a reorg.
    debited: dict[str, str] = field(default_factory=dict)

    @property
    def request_state(self) -> WithdrawalState:
        return _REQUEST_STATE[self.state]

    @property
    def seen_txid(self) -> str:
        return self.txid2 or self.txid

    @property
    def input_outpoints(self) -> list[OutPoint]:
        return [parse_outpoint(text) for text in self.inputs]


def parse_outpoint(text: str) -> OutPoint:
    txid, _, n = text.partition(":")
    return OutPoint.from_hex(txid, int(n))


class Window(enum.Enum):
    """Which payout work a block of the cycle may start (the original's windows at interval 200, scaled)."""

    NONE = "none"
    LIQUID = "liquid"
    RESERVE = "reserve"
    MAINTENANCE = "maintenance"
    FOLLOW_UP = "follow-up"


# (start, end) out of 200: liquid 10 < h < 75, reserve 75 <= h < 120, maintenance 120 <= h < 145, follow-up
# 145 <= h < 175 (halo-behaviour §3.1). Liquid first, so a batch lands in the cycle it was built for.
_WINDOWS = ((Window.LIQUID, 10, 75), (Window.RESERVE, 75, 120), (Window.MAINTENANCE, 120, 145),
            (Window.FOLLOW_UP, 145, 175))


def window(height: int, interval: int) -> Window:
    """The window of the block at ``height``; position p in the cycle is compared as 200·p against the
    original's bounds times the interval, so short devnet cycles keep the proportions."""
    scaled = 200 * (height % interval)
    for kind, start, end in _WINDOWS:
        low_ok = scaled > start * interval if kind is Window.LIQUID else scaled >= start * interval
        if low_ok and scaled < end * interval:
            return kind
    return Window.NONE

"""Withdrawal requests: accepted, escrowed and recorded; their processing is the withdrawals issue.

States (an explicit state machine; only the first exists until transactions are built):

``QUEUED``     accepted: the amount sits in the ``withdraws`` escrow, waiting for the cycle's batch
``BATCHED``    in a signed transaction not yet confirmed                          (withdrawals issue)
``CONFIRMED``  paid on chain with the confirmation setting                       (withdrawals issue)
``DECLINED``   could not be paid; the escrow went back to the user              (withdrawals issue)

A record is keyed by a 32-hex-digit ID the API hands out, and is written in the same batch as the escrow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

LIQUID_LIMIT, RESERVE_LIMIT = 300, 45  # outstanding requests per style (the original allowed one more, B4)


class WithdrawalState(enum.Enum):
    QUEUED = "queued"
    BATCHED = "batched"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


OUTSTANDING = (WithdrawalState.QUEUED, WithdrawalState.BATCHED)


@dataclass
class Withdrawal:
    id: str
    user: str
    amount: int
    address: str
    style: str
    height: int  # chain height when it was accepted
    state: WithdrawalState = WithdrawalState.QUEUED

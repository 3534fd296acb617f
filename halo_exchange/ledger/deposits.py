"""Deposits: from an output paying the exchange to a credited balance, reorg-aware (an explicit state machine).

States of a deposit (one exchange output):

``SEEN``        its block is connected; confirmations still below the setting
``CONFIRMED``   deep enough; waiting for an owner, or (frozen outputs) for its lock time
``REGISTERED``  credited to its owner's balance (a terminal state while its block stays in the chain)
``REVERSED``    it was registered, then its block left the chain: the credit must be taken back (ERROR)

The owner is named by ``Deposit(name, outpoints)`` at any time after the output is seen; the credit happens
as soon as the deposit is confirmed, named and unlocked, whichever comes last. Naming is idempotent: the same
owner again is fine, another owner is refused and nothing changes. Outputs of transactions the exchange built
itself (change) are never deposits: they are recognised by txid, not by an OP_RETURN heuristic (the original's
bug W-C).

The tracker is pure: it reads blocks through a :class:`~halo_exchange.chain.reader.ChainView` and returns
the credits and reversals for the engine to apply to the book, in the same batch.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

from halo_exchange.chain.block import BlockHeader, is_coinstake
from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import is_whole
from halo_exchange.errors import HaloExchangeError
from halo_exchange.peg.fractions import MARKS, NOTARY_C, Fractions
from halo_exchange.serialize import display_hex

log = logging.getLogger(__name__)

MIN_CONFIRMATIONS, MAX_CONFIRMATIONS, DEFAULT_CONFIRMATIONS = 7, 15, 7
# How many applied blocks are remembered for undoing a reorg. Deeper reorgs than this are not undone
# block by block (a chain reorganising 1000 blocks has bigger problems than deposits).
REORG_DEPTH = 1000


class DepositState(enum.Enum):
    SEEN = "seen"
    CONFIRMED = "confirmed"
    REGISTERED = "registered"
    REVERSED = "reversed"


class DepositError(HaloExchangeError):
    """A deposit cannot be named as asked (unknown outpoint, another owner already); nothing changed."""


@dataclass
class Deposit:
    """One output paying an exchange address."""

    txid: bytes
    n: int
    address: str
    amount: int
    height: int
    fractions: Fractions
    state: DepositState = DepositState.SEEN
    owner: str | None = None

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(self.txid, self.n)

    @property
    def lock_time(self) -> int:
        """A frozen (F/V marked) output is credited once a block is later than this (as bitbay-core's wallet
        treats ``lock_time >= last block time`` as frozen); 0 for ordinary outputs."""
        return self.fractions.lock_time if self.fractions.flags & MARKS else 0


@dataclass(frozen=True)
class Credit:
    """A deposit to add to ``owner``'s balance (or, for a reversal, to take back)."""

    owner: str
    deposit: Deposit


@dataclass
class DepositEvents:
    """What one chain event or naming did: credits to apply, reversals to take back."""

    credits: list[Credit] = field(default_factory=list)
    reversals: list[Credit] = field(default_factory=list)


class DepositTracker:
    """Every deposit the exchange has seen, and the rules that move them through their states."""

    def __init__(self, confirmations: int = DEFAULT_CONFIRMATIONS) -> None:
        self.confirmations = check_confirmations(confirmations)
        self.addresses: set[str] = set()
        self.own_txids: set[bytes] = set()
        # Which outputs of the exchange's own transactions are its change (never deposits); the others are
        # payments like any, and a payment to an exchange address is a deposit. The engine answers from its
        # coin index; alone, the tracker treats every output of an own transaction as change.
        self.is_change: Callable[[OutPoint], bool] = lambda outpoint: True
        self.deposits: dict[OutPoint, Deposit] = {}
        # Indexes, so that no block or call walks every deposit ever seen: the deposits still moving (seen or
        # confirmed), and every deposit by txid and by height.
        self._moving: dict[OutPoint, None] = {}  # an ordered set: discovery order, as credits are applied
        self._by_txid: dict[bytes, set[OutPoint]] = {}
        self._by_height: dict[int, set[OutPoint]] = {}
        # Owners named for outputs whose block was disconnected: kept until the transaction is mined again.
        self._owners_waiting: dict[OutPoint, str] = {}
        self._tip_height = -1
        self._tip_time = 0
        # (hash, time) of every block applied, by height: a disconnect undoes only what was applied.
        self._applied: dict[int, tuple[bytes, int]] = {}
        self._changed: set[OutPoint] = set()  # what take_changes() hands to the store
        self._heights_changed: set[int] = set()

    def take_changes(self) -> tuple[set[OutPoint], set[int]]:
        """(outpoints whose record or waiting owner changed, heights whose applied block changed) since the
        last call."""
        changes = (self._changed, self._heights_changed)
        self._changed, self._heights_changed = set(), set()
        return changes

    def rewind_to(self, height: int) -> None:
        """Set the tip back to ``height`` after its successors were undone (catching up after a restart)."""
        if height < self._tip_height:
            self._tip_height = height
            self._tip_time = self._applied.get(height, (None, 0))[1]

    @property
    def tip(self) -> tuple[int, int]:
        """(height, time) of the last block applied."""
        return self._tip_height, self._tip_time

    def applied_block(self, height: int) -> tuple[bytes, int] | None:
        return self._applied.get(height)

    def owner_waiting(self, outpoint: OutPoint) -> str | None:
        return self._owners_waiting.get(outpoint)

    def owners_waiting(self) -> dict[OutPoint, str]:
        """Every owner named for an output whose block left the chain (a copy)."""
        return dict(self._owners_waiting)

    def applied_blocks(self) -> dict[int, tuple[bytes, int]]:
        """(hash, time) of every block remembered as applied, by height (a copy)."""
        return dict(self._applied)

    def restore(
        self,
        deposits: Iterable[Deposit],
        owners_waiting: dict[OutPoint, str],
        applied: dict[int, tuple[bytes, int]],
        tip: tuple[int, int],
    ) -> None:
        """Load the state a store kept (the store's codec calls this at start-up)."""
        self.deposits = {}
        self._moving, self._by_txid, self._by_height = {}, {}, {}
        for deposit in deposits:
            self._put(deposit)
        self._owners_waiting = dict(owners_waiting)
        self._applied = dict(applied)
        self._tip_height, self._tip_time = tip

    # -- the indexes ------------------------------------------------------------------------------------

    def _put(self, deposit: Deposit) -> None:
        outpoint = deposit.outpoint
        old = self.deposits.get(outpoint)
        if old is not None:
            self._drop(old)
        self.deposits[outpoint] = deposit
        self._by_txid.setdefault(deposit.txid, set()).add(outpoint)
        self._by_height.setdefault(deposit.height, set()).add(outpoint)
        self._track(deposit)

    def _drop(self, deposit: Deposit) -> None:
        outpoint = deposit.outpoint
        self.deposits.pop(outpoint, None)
        self._moving.pop(outpoint, None)
        for index, key in ((self._by_txid, deposit.txid), (self._by_height, deposit.height)):
            members = index.get(key)
            if members is not None:
                members.discard(outpoint)
                if not members:
                    del index[key]

    def _track(self, deposit: Deposit) -> None:
        """Keep the set of moving deposits in step with ``deposit.state``."""
        if deposit.state in (DepositState.SEEN, DepositState.CONFIRMED):
            self._moving.setdefault(deposit.outpoint, None)
        else:
            self._moving.pop(deposit.outpoint, None)

    # -- chain events -----------------------------------------------------------------------------------

    def block_connected(self, view: ChainView, height: int, block_hash: bytes) -> DepositEvents:
        """Record the exchange outputs of block ``block_hash``, then confirm and credit what is due.

        Events reach the plugin after the node wrote them, so the block may already be gone again (a quick
        reorg): then nothing is recorded, and its disconnect event will be ignored too.
        """
        record = view.block_record_by_hash(block_hash)
        if record is None or record.height != height:
            log.info("block %d %s left the chain before it was processed", height, display_hex(block_hash))
            return DepositEvents()
        header = BlockHeader.deserialize(record.header)
        for tx in view.block_transactions(block_hash):
            if tx.is_coinbase() or is_coinstake(tx):
                continue
            own = tx.hash in self.own_txids
            for n, out in enumerate(tx.outputs):
                if own and self.is_change(OutPoint(tx.hash, n)):
                    continue
                info = None
                if out.value > 0:
                    info = view.output(tx.hash, n)
                if info is None or info.address not in self.addresses:
                    continue
                deposit = Deposit(tx.hash, n, info.address, out.value, height, info.fractions)
                deposit.owner = self._owners_waiting.pop(deposit.outpoint, None)
                self._put(deposit)
                self._changed.add(deposit.outpoint)
        self._applied[height] = (block_hash, header.time)
        self._heights_changed.add(height)
        if self._applied.pop(height - REORG_DEPTH, None) is not None:
            self._heights_changed.add(height - REORG_DEPTH)
        self._tip_height, self._tip_time = height, header.time
        return self._advance()

    def block_disconnected(self, height: int, block_hash: bytes) -> DepositEvents:
        """Undo a block: its deposits leave (registered ones are reversed); shallower ones may unconfirm."""
        events = DepositEvents()
        if self._applied.get(height, (None, 0))[0] != block_hash:
            return events  # never applied (it left the chain before it was processed)
        del self._applied[height]
        self._heights_changed.add(height)
        for outpoint in sorted(self._by_height.get(height, ())):
            deposit = self.deposits[outpoint]
            self._changed.add(outpoint)
            if deposit.state is DepositState.REVERSED:
                continue  # reversed by an earlier reorg: it stays for the operator to see
            if deposit.state is DepositState.REGISTERED:
                deposit.state = DepositState.REVERSED
                log.error(
                    "registered deposit %s of %d to %r left the chain with block %d: reversing the credit",
                    deposit.outpoint, deposit.amount, deposit.owner, height,
                )
                events.reversals.append(Credit(deposit.owner or "", deposit))
                if deposit.owner is not None:  # mined again later, it is credited again
                    self._owners_waiting[outpoint] = deposit.owner
            else:
                self._drop(deposit)
                if deposit.owner is not None:
                    self._owners_waiting[outpoint] = deposit.owner
        self._tip_height = height - 1
        self._tip_time = self._applied.get(height - 1, (None, self._tip_time))[1]
        for outpoint in self._moving:
            deposit = self.deposits[outpoint]
            if deposit.state is DepositState.CONFIRMED and self.depth(deposit) < self.confirmations:
                deposit.state = DepositState.SEEN
                self._changed.add(deposit.outpoint)
        return events

    # -- naming -----------------------------------------------------------------------------------------

    def name(self, owner: str, outpoints: Iterable[OutPoint]) -> DepositEvents:
        """Name ``owner`` for the given outputs (:meth:`outpoints_of` lists those of a transaction).

        All or nothing: an unknown output, a change output or one already named for someone else refuses the
        whole call. Naming the same owner again is accepted and changes nothing.
        """
        targets: list[Deposit] = []
        for outpoint in outpoints:
            deposit = self.deposits.get(outpoint)
            if deposit is None or deposit.state is DepositState.REVERSED:
                raise DepositError(f"no deposit {outpoint}")
            targets.append(deposit)
        for deposit in targets:
            if deposit.owner is not None and deposit.owner != owner:
                raise DepositError(f"deposit {deposit.outpoint} belongs to another user")
        for deposit in targets:
            if deposit.owner != owner:
                deposit.owner = owner
                self._changed.add(deposit.outpoint)
        return self._advance()

    # -- queries ----------------------------------------------------------------------------------------

    def depth(self, deposit: Deposit) -> int:
        return self._tip_height - deposit.height + 1

    def knows(self, outpoint: OutPoint) -> bool:
        """Whether ``outpoint`` is a deposit (one not reversed)."""
        deposit = self.deposits.get(outpoint)
        return deposit is not None and deposit.state is not DepositState.REVERSED

    def outpoints_of(self, txid: bytes) -> list[OutPoint]:
        """The deposits (not reversed) among the outputs of transaction ``txid``."""
        return sorted(outpoint for outpoint in self._by_txid.get(txid, ())
                      if self.deposits[outpoint].state is not DepositState.REVERSED)

    def moving(self) -> list[Deposit]:
        """The deposits still moving (seen, or confirmed and waiting for an owner or a lock time)."""
        return [self.deposits[outpoint] for outpoint in self._moving]

    def registered_unspent(self, view: ChainView) -> list[Deposit]:
        """Registered deposits whose output is still unspent in ``view``."""
        return [d for d in self.deposits.values()
                if d.state is DepositState.REGISTERED and view.utxo(d.txid, d.n) is not None]

    def due(self, deposit: Deposit) -> bool:
        """Whether nothing but an owner and its confirmations stands between ``deposit`` and its credit: it is no
        C-notary output and its lock time (a frozen output's) has passed at the tip."""
        return not deposit.fractions.flags & NOTARY_C and deposit.lock_time < self._tip_time

    def frozen_total(self) -> int:
        """Value of confirmed-or-seen deposits still locked at the tip (the exchange's ``frozen`` figure)."""
        return sum(
            d.amount for d in map(self.deposits.__getitem__, self._moving)
            if d.state in (DepositState.SEEN, DepositState.CONFIRMED) and d.lock_time >= self._tip_time
        )

    def reconsider(self) -> DepositEvents:
        """Re-run the transitions (after the confirmation setting changed)."""
        self.confirmations = check_confirmations(self.confirmations)
        return self._advance()

    # -- the state machine ------------------------------------------------------------------------------

    def _advance(self) -> DepositEvents:
        events = DepositEvents()
        for outpoint in list(self._moving):
            deposit = self.deposits[outpoint]
            if deposit.state is DepositState.SEEN and self.depth(deposit) >= self.confirmations:
                deposit.state = DepositState.CONFIRMED
                self._changed.add(deposit.outpoint)
            if deposit.state is DepositState.CONFIRMED and deposit.owner is not None and self.due(deposit):
                deposit.state = DepositState.REGISTERED
                self._track(deposit)
                self._changed.add(deposit.outpoint)
                events.credits.append(Credit(deposit.owner, deposit))
        return events


def check_confirmations(value: int) -> int:
    if not is_whole(value) or not MIN_CONFIRMATIONS <= value <= MAX_CONFIRMATIONS:
        raise DepositError(f"confirmations must be between {MIN_CONFIRMATIONS} and {MAX_CONFIRMATIONS}")
    return value

"""``ExchangeEngine``: the single writer of exchange state. Chain events and commands in, durable batches out.

It runs on the reactor thread and nowhere else. Each chain event (a block connected or disconnected) and each
command (a trade, naming a deposit, a new deposit address) changes the book and the deposits in memory, then
hands exactly the changed keys to :class:`~halo_exchange.ledger.store.GroupCommit`; the Deferred it returns
fires with the command's answer only once that batch is on disk. What a command may say is checked by
:mod:`halo_exchange.commands`; what needs the ledger (an unknown payer, a balance too small, a limit reached)
is checked here. Either refusal is raised before anything changes, as
:class:`~halo_exchange.errors.CommandRefused` carrying the API's documented string. The XML-RPC shapes of
what the engine holds are :mod:`halo_exchange.rpc.views`.

At a block that starts a new peg cycle the book is re-valued at the cycle's supply plus the exchange's buffer
(3 steps, peg-spec §1.7), and the escrow of every queued withdrawal is settled (the part a cycle moved out of
the requested style goes back to the user). The exchange's coins (``ledger/coins.py``) follow every block.
Paying withdrawals is :class:`~halo_exchange.payouts.PayoutDesk`'s, a part of this engine. The pegshift and
partial levels are not modelled.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Generator, Iterable

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed

from halo_exchange import commands
from halo_exchange.chain.keys import network_for
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import LIQUID, POOL, RESERVE, UNKNOWN_USER, Transfer
from halo_exchange.errors import CommandRefused
from halo_exchange.ledger.book import Book, CycleUpdate, LedgerError
from halo_exchange.ledger.coins import Coin
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, DepositError, DepositEvents, DepositState
from halo_exchange.ledger.store import (
    BatchCodec,
    BookCodec,
    CoinCodec,
    CycleUpdateCodec,
    DepositCodec,
    ExchangeStore,
    ExecRecordCodec,
    GroupCommit,
    Op,
    PayoutStateCodec,
    SettingsCodec,
    StoreError,
    WalletCodec,
    WatchCodec,
    WithdrawalCodec,
    load_state,
)
from halo_exchange.ledger.wallet import WalletError
from halo_exchange.ledger.withdrawals import (
    CLIENT_ID_MAX,
    FINISHED,
    LIQUID_LIMIT,
    OUTSTANDING,
    RESERVE_LIMIT,
    Batch,
    BatchState,
    Withdrawal,
    WithdrawalState,
    commission_for,
)
from halo_exchange.payouts import PayoutDesk, commission_setting
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.serialize import display_hex, from_display_hex

log = logging.getLogger(__name__)

EXCHANGE_BUFFER = 3
CYCLE_CHUNK = 4000  # accounts re-valued a reactor turn at most, in a book larger than this
CYCLE_STEP_SECONDS = 0.008  # and no longer than this a turn (its write takes another: ~2-6 ms)
CYCLE_SLICE = 250  # accounts between two looks at the clock
TIDY_PER_TURN = 100  # accounts re-packed a reactor turn after a cycle update (~25 ms at supply 1198)


class ExchangeEngine:
    """Book, deposits and store of one exchange, driven from the reactor thread."""

    def __init__(
        self,
        store: ExchangeStore,
        reader: ChainReader,
        call_later: Callable[..., object],
        *,
        confirmations: int = DEFAULT_CONFIRMATIONS,
        buffer: int = EXCHANGE_BUFFER,
        liquid_limit: int = LIQUID_LIMIT,
        reserve_limit: int = RESERVE_LIMIT,
        run_in_thread: Callable[..., Deferred] | None = None,
        cycle_chunk: int = CYCLE_CHUNK,
    ) -> None:
        self.store = store
        self.reader = reader
        self.params = reader.params()
        self.network = network_for(self.params.network)
        self.buffer = buffer
        self.liquid_limit, self.reserve_limit = liquid_limit, reserve_limit
        self.commit = GroupCommit(store, call_later)
        self.commit.collect = self._change_ops
        self._call_later = call_later
        self._tidying = False
        self.cycle_chunk = cycle_chunk
        self._update: CycleUpdate | None = None  # a cycle update under way (in steps)
        self._update_began = 0.0
        self._waiting: list[Deferred] = []  # what waits for it to finish
        self._update_writing: Deferred | None = None  # a step's write in flight (in a thread)
        self._stopping = False
        state = load_state(store, confirmations=confirmations)
        book = state.book
        if book is None:
            info = reader.peg_info()
            book = Book(info.cycle, self._effective(info.supply))
            store.write(BookCodec.full_ops(book))
            book.take_changes()
        self.book = book
        self.deposits = state.deposits
        self.wallet = state.wallet
        self.wallet.network = self.network  # addresses and WIFs in the chain's own version bytes
        self.withdrawals = state.withdrawals
        self.settings = state.settings
        self.batches: dict[str, Batch] = state.batches
        self.coins = state.coins
        self.payout_state = state.payout_state
        self._by_client_id = {w.client_id: w.id for w in self.withdrawals.values() if w.client_id}
        # What changed since the last write, beyond the book and the deposits (the store writes exactly this).
        self.dirty_withdrawals: set[str] = set()
        self.dirty_batches: set[str] = set()
        self.payout_state_dirty = False
        self.extra_ops: list[Op] = []
        # The node's services (submit a transaction, ask for its status); None where no node offers them.
        self.node: Any = None
        self._run_in_thread = run_in_thread or (lambda fn, *args: maybeDeferred(fn, *args))
        self.payouts = PayoutDesk(self, self._run_in_thread)
        self.deposits.is_change = self._is_change
        if not self.coins.coins and any(d.state is DepositState.REGISTERED for d in self.deposits.deposits.values()):
            self._index_registered_deposits()
        if state.cycle_update is not None:  # a stop interrupted a cycle update: it resumes before anything else
            progress = state.cycle_update
            update = self.book.cycle_update(progress["cycle"], progress["new"], progress)
            log.warning("cycle %d: resuming the update a stop interrupted, at account %d of %d", update.cycle,
                        update.position, len(update.names))
            self._run_update(update, None)
        self._tidy_later()  # accounts stored whole or out of shape are re-packed once the reactor runs

    def _effective(self, network_supply: int) -> int:
        return min(network_supply + self.buffer, PEG_SIZE - 1)

    def _is_change(self, outpoint: OutPoint) -> bool:
        coin = self.coins.get(outpoint)
        return coin is not None and coin.origin == "change"

    def _index_registered_deposits(self) -> None:
        """A DB written before the coin index existed: its unspent registered deposits are the exchange's coins."""
        with self.reader.snapshot() as view:
            for deposit in self.deposits.registered_unspent(view):
                self.coins.add(Coin(deposit.outpoint, deposit.address, deposit.amount, deposit.fractions,
                                    deposit.height, "deposit"))

    def _persist(self, answer: object, extra: Iterable[Op] = ()) -> Deferred:
        """``answer`` once ``extra`` and everything changed so far are on disk: the batch of this turn writes
        the change records as they are when it is flushed (:meth:`_change_ops`)."""
        done = self.commit.submit(list(extra))
        done.addCallback(lambda _: answer)
        return done

    def _change_ops(self) -> list[Op]:
        """The writes that bring the store level with memory (consumes the change records): the group commit
        reads them once per batch."""
        return BookCodec.change_ops(self.book) + DepositCodec.change_ops(self.deposits) + self._payout_ops()

    def _payout_ops(self) -> list[Op]:
        ops: list[Op] = []
        for withdrawal_id in sorted(self.dirty_withdrawals):
            withdrawal = self.withdrawals.get(withdrawal_id)
            ops.append(WithdrawalCodec.delete_op(withdrawal_id) if withdrawal is None
                       else WithdrawalCodec.op(withdrawal))
        for master_id in sorted(self.dirty_batches):
            batch = self.batches.get(master_id)
            ops.append(BatchCodec.delete_op(master_id) if batch is None else BatchCodec.op(batch))
        self.dirty_withdrawals, self.dirty_batches = set(), set()
        ops += CoinCodec.change_ops(self.coins)
        if self.payout_state_dirty:
            ops.append(PayoutStateCodec.op(self.payout_state))
            self.payout_state_dirty = False
        ops += self.extra_ops
        self.extra_ops = []
        return ops

    def persist_payouts(self) -> Deferred:
        """Write what the payout desk changed (and anything else pending), as one batch."""
        return self._persist(None)

    @staticmethod
    def own_tx_op(txid: bytes) -> Op:
        return WatchCodec.own_tx_op(txid)

    # -- chain events ------------------------------------------------------------------------------------

    def block_connected(self, height: int, block_hash: str) -> Deferred:
        """A block joined the chain: new cycle first (balances current before credits), then deposits."""
        waiting = self.idle()
        if waiting is not None:  # a cycle update in steps runs: this block after it
            return waiting.addCallback(lambda _: self.block_connected(height, block_hash))
        raw_hash = from_display_hex(block_hash)
        with self.reader.snapshot() as view:
            record = view.block_record_by_hash(raw_hash)
            current = record is not None and record.height == height
            if current:
                cycle = height // self.params.peg_interval
                if cycle != self.book.cycle:
                    stepping = self._change_cycle(cycle, self._effective(record.peg.supply), record.peg.supply)
                    if stepping is not None:  # a big book, updated in steps: the rest of the block follows it
                        return stepping.addCallback(lambda _: self.block_connected(height, block_hash))
                # Own transactions first: their outputs are change, never deposits.
                self.payouts.block_connected(view, height, view.block_transactions(raw_hash))
            events = self.deposits.block_connected(view, height, raw_hash)
        self._apply(events)
        if current:
            self.payouts.after_block(height)
        return self._persist(None)

    def block_disconnected(self, height: int, block_hash: str) -> Deferred:
        """A block left the chain: its deposits go (registered ones are taken back); a cycle may go back."""
        waiting = self.idle()
        if waiting is not None:
            return waiting.addCallback(lambda _: self.block_disconnected(height, block_hash))
        applied = self.deposits.applied_block(height)
        events = self.deposits.block_disconnected(height, from_display_hex(block_hash))
        self._apply(events)
        if applied is not None and applied[0] == from_display_hex(block_hash):
            self.payouts.block_disconnected(height)
        cycle = (height - 1) // self.params.peg_interval
        if cycle != self.book.cycle:
            with self.reader.snapshot() as view:
                network = view.supply_of_cycle(cycle)
            if len(self.book.accounts) > self.cycle_chunk:
                # The block's own changes first, in their own batch: a crash during the update then resumes it
                # with the block already gone, as it was when the update began.
                self._persist(None)
            stepping = self._change_cycle(cycle, self._effective(network), network)
            if stepping is not None:
                return stepping.addCallback(lambda _: self._persist(None))
        return self._persist(None)

    # -- the cycle update ----------------------------------------------------------------------------------

    def idle(self) -> Deferred | None:
        """None when no cycle update is under way; else a Deferred that fires once it has finished, in the
        order of asking. Everything that reads or changes balances waits for it (the API's calls, the chain's
        events, a batch built meanwhile), so nothing sees or changes a half re-valued book."""
        if self._update is None:
            return None
        waiting: Deferred = Deferred()
        self._waiting.append(waiting)
        return waiting

    def when_idle(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` now, or once the cycle update under way has finished (a Deferred of its answer)."""
        waiting = self.idle()
        if waiting is None:
            return fn(*args)
        return waiting.addCallback(lambda _: self.when_idle(fn, *args))

    def updating(self) -> dict | None:
        """The cycle update under way, for reports: cycle, supplies, accounts done and in all; None if none."""
        update = self._update
        if update is None:
            return None
        return {"cycle": update.cycle, "old_supply": update.old, "new_supply": update.new,
                "done": update.position, "accounts": len(update.names)}

    def _change_cycle(self, cycle: int, supply: int, network_supply: int) -> Deferred | None:
        """Re-value the book at a new cycle's effective supply: at once for a book of up to ``cycle_chunk``
        accounts (None), else in steps of that many accounts a reactor turn (a Deferred that fires once done)."""
        update = self.book.cycle_update(cycle, supply)
        if len(update.names) <= self.cycle_chunk or not update.moves:
            update.step(len(update.names))
            update.finish()
            if update.moves:
                self.book.mark_all_changed()
            self._cycle_changed(update, network_supply)
            return None
        return self._run_update(update, network_supply)

    def _run_update(self, update: CycleUpdate, network_supply: int | None) -> Deferred:
        self._update = update
        self._update_began = time.monotonic()
        finished = self.idle()
        assert finished is not None
        log.info("cycle %d: re-valuing %d accounts at effective supply %d, %d a turn", update.cycle,
                 len(update.names), update.new, self.cycle_chunk)
        # The batch gathered before the update (the balances as they were) reaches the disk before the first
        # step's: the steps are written from a thread, and the store takes batches in the order they come.
        before = self.pending_writes()
        if before is None:
            self._call_later(0, self._update_step, network_supply)
        else:
            before.addBoth(lambda _: self._update_step(network_supply))
        return finished

    def _update_step(self, network_supply: int | None) -> None:
        """One step of the update under way, written with where it stopped (the last one with the book's new
        cycle and supply); then the next step, or the waiting work."""
        update = self._update
        if update is None or self._stopping:
            return  # stopping: a restart resumes the update from its last written step
        if self.commit.failure is not None:  # the batch before it failed: stop here too, the same way
            self._fail_waiting(self.commit.failure)
            return
        try:
            # Up to cycle_chunk accounts, and no longer than CYCLE_STEP_SECONDS: the reactor serves between steps.
            deadline = time.monotonic() + CYCLE_STEP_SECONDS
            names: list[str] = []
            done_before = update.position
            while not update.done and update.position - done_before < self.cycle_chunk:
                names += update.step(min(CYCLE_SLICE, self.cycle_chunk - (update.position - done_before)))
                if time.monotonic() > deadline:
                    break
            if update.done:
                # The last step's accounts are written once, as the escrow settlement leaves them, with the
                # book's new cycle, supply and pool, in the batch that deletes the update's record.
                self.book.mark_changed(names)
                update.finish()
                self._update = None
                self._cycle_changed(update, network_supply, time.monotonic() - self._update_began)
        except Exception as exc:  # a bug, or a damaged record: stop here rather than go on from a half-updated book
            log.exception("cycle %d: the update failed at account %d", update.cycle, update.position)
            self._update_failed(exc)
            return
        if self._update is not None:
            # Packed and written off the reactor (LevelDB lets go of the GIL while it writes): nothing else
            # touches these accounts until the next step, which begins once this batch is on disk.
            book, progress, store = self.book, update.progress(), self.store
            written = self._run_in_thread(
                lambda: store.write(BookCodec.account_ops(book, names) + [CycleUpdateCodec.op(progress)]))
            self._update_writing = written
            written.addCallbacks(lambda _: self._update_written(network_supply),
                                 lambda failure: self._update_failed(failure.value))
            return
        self._persist(None, [CycleUpdateCodec.delete_op()]).addErrback(lambda _: None)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:  # in the order they came; the first may start another update: the rest wait again
            waiter.callback(None)

    def _update_written(self, network_supply: int | None) -> None:
        self._update_writing = None
        self.commit.wrote()
        if not self._stopping:
            self._call_later(0, self._update_step, network_supply)

    def _update_failed(self, exc: BaseException) -> None:
        """A step could not be made or written: exchange mode stops (the DB keeps the last written step, from
        which a restart resumes), and what waited for the update is answered with the failure. The update stays
        marked as under way, so nothing touches the half-updated book meanwhile."""
        self._update_writing = None
        self.commit.failed(exc if isinstance(exc, Exception) else RuntimeError(str(exc)), 0)
        self._fail_waiting(exc)

    def _fail_waiting(self, exc: BaseException) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.errback(StoreError(f"the cycle update failed: {exc}"))

    def stop_updates(self) -> Deferred | None:
        """No further step of an update under way (the node stops: the next start resumes it); the write of the
        step in flight, to wait for before the DB closes, or None."""
        self._stopping = True
        return self._update_writing

    def _cycle_changed(self, update: CycleUpdate, network_supply: int | None, seconds: float | None = None) -> None:
        self._settle_escrows()
        self._tidy_later()
        took = f", in steps: {seconds:.2f} s" if seconds is not None else ""
        network = f"network supply {network_supply} + buffer {self.buffer}" if network_supply is not None else (
            f"buffer {self.buffer}")  # a resumed update: the network's supply is not at hand
        log.info("cycle %d: balances re-valued at effective supply %d (%s), %d accounts%s", update.cycle, update.new,
                 network, len(update.names), took)

    def _tidy_later(self) -> None:
        """Re-pack the reserves a cycle update left out of shape, ``TIDY_PER_TURN`` accounts a reactor turn, so
        that no call waits long for it (balances do not change: nothing is written)."""
        if self._tidying or not self.book.untidy():
            return
        self._tidying = True

        def step() -> None:
            if self._update is not None:  # a cycle update began: it tidies afterwards
                self._tidying = False
                return
            if self.book.tidy(TIDY_PER_TURN):
                self._call_later(0, step)
            else:
                self._tidying = False

        self._call_later(0, step)

    @inlineCallbacks
    def catch_up(self) -> Generator[Deferred, Any, Any]:
        """Bring the engine level with the node's chain after a restart (or a first start).

        Blocks the engine applied that the chain no longer holds are disconnected (newest first); blocks
        the node connected while the plugin was down are then connected in order. One batch per block, as
        if the events had arrived live. Returns a Deferred that fires when all of it is durable. A cycle update
        under way (resumed after a stop, or begun by a block here) is waited for before the next block.
        """
        last: Deferred | None = None
        height, _ = self.deposits.tip
        while height >= 0:
            if self._update is not None:
                yield self.idle()
            applied = self.deposits.applied_block(height)
            if applied is None or self.reader.block_hash(height) == applied[0]:
                break  # in agreement with the chain (or older than the remembered reorg depth)
            last = self.block_disconnected(height, display_hex(applied[0]))
            height -= 1
            self.deposits.rewind_to(height)
        tip = self.reader.height()
        # A node that began after the genesis block (a follower's start height) holds nothing below its first.
        first = self.reader.first_height() or 0
        for h in range(max(height + 1, first), tip + 1):
            block_hash = self.reader.block_hash(h)
            if block_hash is None:
                break
            last = self.block_connected(h, display_hex(block_hash))  # behind an update under way, in order
        result = yield (self._persist(None) if last is None else last)
        return result

    def _apply(self, events: DepositEvents) -> None:
        for credit in events.credits:
            deposit = credit.deposit
            self.book.credit(credit.owner, deposit.fractions)
            self.coins.add(Coin(deposit.outpoint, deposit.address, deposit.amount, deposit.fractions, deposit.height,
                                "deposit", self.payouts.lock_of(deposit.outpoint)))
            log.info("credited %d to %r from deposit %s", deposit.amount, credit.owner, deposit.outpoint)
        for reversal in events.reversals:
            self.book.reverse_credit(reversal.owner, reversal.deposit.fractions)
            self.coins.remove(reversal.deposit.outpoint)

    def _settle_escrows(self) -> None:
        """After a cycle re-valued the book: the part of a queued request's escrow no longer in its style goes
        back to the user, and the payout shrinks to what the escrow still holds (a batch already signed pays
        what it signed; its whole escrow leaves the book when it completes)."""
        for withdrawal_id in list(self.payouts.queued):
            withdrawal = self.withdrawals[withdrawal_id]
            liquid, reserve = self.book.balance(withdrawal.escrow)
            style, amount = withdrawal.settle_drift(liquid, reserve)
            if amount:
                move = self.book.move_liquid if style == LIQUID else self.book.move_reserve
                move(withdrawal.escrow, withdrawal.user, amount)
                log.info("withdrawal %s: %d of its escrow became %s at the new cycle and went back to %r",
                         withdrawal.id, amount, style, withdrawal.user)
            if withdrawal.payout <= 0:
                withdrawal.state = WithdrawalState.EXPIRED
                self.payouts.queued.pop(withdrawal.id, None)
                withdrawal.note = "the new cycle left less than the commission in the requested style: refunded"
                self.refund_escrow(withdrawal)
            self.dirty_withdrawals.add(withdrawal.id)

    def refund_escrow(self, withdrawal: Withdrawal) -> None:
        """Everything the request's escrow holds goes back to its user; the escrow account closes."""
        escrow = withdrawal.escrow
        if escrow not in self.book.accounts:
            return
        liquid, reserve = self.book.balance(escrow)
        if liquid:
            self.book.move_liquid(escrow, withdrawal.user, liquid)
        if reserve:
            self.book.move_reserve(escrow, withdrawal.user, reserve)
        self.book.close_account(escrow)
        self.dirty_withdrawals.add(withdrawal.id)

    def debit_escrow(self, withdrawal: Withdrawal) -> Fractions:
        """A paid request's escrow leaves the book (its coins left the exchange); returns what was debited."""
        escrow = withdrawal.escrow
        if escrow not in self.book.accounts:
            return Fractions.zero()
        liquid, reserve = self.book.balance(escrow)
        taken = Fractions.zero()
        if liquid:
            taken = taken + self.book.debit_liquid(escrow, liquid)
        if reserve:
            taken = taken + self.book.debit_reserve(escrow, reserve)
        self.book.close_account(escrow)
        self.dirty_withdrawals.add(withdrawal.id)
        return taken

    # -- commands ---------------------------------------------------------------------------------------

    def trade(self, user1: str, amount: int, user2: str, style: str = LIQUID) -> Deferred:
        """``user1`` pays ``amount`` of ``style`` to ``user2``; with ``user2 == ''`` a one-sided trade:
        a negative amount debits ``user1`` into the pool, a positive one credits ``user1`` from it.
        Answers True once durable."""
        transfer = commands.trade(user1, amount, user2, style)
        if transfer.source != POOL and transfer.source not in self.book.accounts:
            raise CommandRefused(UNKNOWN_USER)  # Halo raised a KeyError Fault here (halo-behaviour §6.3)
        self._check_funds(transfer)
        self._move(transfer)
        return self._persist(True)

    def request_withdrawal(self, user: str, amount: int, address: str, style: str = LIQUID,
                           client_id: str | None = None) -> Deferred:
        """Accept a withdrawal: escrow the amount in its own account and record the request (its cycle and
        commission fixed now), in one batch; answers the new ID. A repeated ``client_id`` answers the ID of
        the request it first made and withdraws nothing more.

        Limits count only outstanding, accepted requests (300 liquid, 45 reserve by default)."""
        if client_id is not None:
            if not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID_MAX or not client_id.isprintable():
                raise CommandRefused(f"ID must be printable text of 1 to {CLIENT_ID_MAX} characters.")
            known = self._by_client_id.get(client_id)
            if known is not None:
                if self.withdrawals[known].user != user:
                    raise CommandRefused("ID already used by another withdrawal.")
                pending = self.pending_writes()
                return pending.addCallback(lambda _: known) if pending is not None else succeed(known)
        outstanding = sum(1 for w in self.payouts.outstanding() if w.style == style and w.state in OUTSTANDING)
        if style == LIQUID and outstanding >= self.liquid_limit:
            raise CommandRefused("Withdraw limit reached, please wait until transactions clear.")
        if style == RESERVE and outstanding >= self.reserve_limit:
            raise CommandRefused("Reserve withdraw limit reached, please wait until transactions clear.")
        transfer = self._checked_escrow(commands.escrow(user, amount, style))
        withdrawal_id = os.urandom(16).hex()
        withdrawal = Withdrawal(
            withdrawal_id, user, amount, address, style, self.reader.height(), cycle=self.book.cycle,
            commission=commission_for(amount, commission_setting(self.settings)), paid=amount, client_id=client_id,
            seq=self.payout_state.get("seq", 0),
        )
        self.payout_state["seq"] = withdrawal.seq + 1
        self.payout_state_dirty = True
        self._move(transfer._replace(destination=withdrawal.escrow))
        self.withdrawals[withdrawal.id] = withdrawal
        self.payouts.queued[withdrawal.id] = None
        if client_id is not None:
            self._by_client_id[client_id] = withdrawal.id
        self.dirty_withdrawals.add(withdrawal.id)
        return self._persist(withdrawal.id)

    def clear_withdrawal(self, withdrawal_id: str) -> Withdrawal | Batch | None:
        """``CheckWithdraw(ID, 1)``: forget a finished request (or a finished batch and its requests); returns
        what it was, or None when nothing finished has that ID. Unfinished records are never deleted."""
        withdrawal = self.withdrawals.get(withdrawal_id)
        if withdrawal is not None:
            if withdrawal.state in FINISHED:
                del self.withdrawals[withdrawal_id]
                self._by_client_id.pop(withdrawal.client_id or "", None)
                self.dirty_withdrawals.add(withdrawal_id)
            return withdrawal
        batch = self.batches.get(withdrawal_id)
        if batch is not None and batch.state in (BatchState.COMPLETE, BatchState.FAILED):
            del self.batches[withdrawal_id]
            self.payouts.forget(withdrawal_id)
            self.dirty_batches.add(withdrawal_id)
            for member in batch.members:
                done = self.withdrawals.get(member)
                if done is not None and done.state in FINISHED:
                    del self.withdrawals[member]
                    self._by_client_id.pop(done.client_id or "", None)
                    self.dirty_withdrawals.add(member)
        return batch

    def find_withdrawal(self, some_id: str) -> Withdrawal | Batch | None:
        """A request by its ID or the client's ID, or a batch by its master ID."""
        found = self.withdrawals.get(some_id) or self.batches.get(some_id)
        if found is None and some_id in self._by_client_id:
            found = self.withdrawals.get(self._by_client_id[some_id])
        return found

    def transaction_event(self, kind: str, txid_hex: str, reason: str) -> Any:
        """The node dropped or refused a transaction (node services event, on the reactor)."""
        waiting = self.idle()
        if waiting is not None:
            return waiting.addCallback(lambda _: self.transaction_event(kind, txid_hex, reason))
        self.payouts.transaction_event(kind, txid_hex, reason)
        return self.persist_payouts()

    def start_payouts(self) -> None:
        """After catching up: hand the node every committed batch it does not know (it may have restarted)."""
        self.payouts.resubmit_unknown(self.reader.height())
        self.persist_payouts()

    def _checked_escrow(self, transfer: Transfer) -> Transfer:
        if transfer.destination == commands.WITHDRAWS and transfer.source not in self.book.accounts:
            raise CommandRefused(UNKNOWN_USER)
        self._check_funds(transfer)
        return transfer

    def _check_funds(self, transfer: Transfer) -> None:
        source = transfer.source
        liquid, reserve = self.book.balance(source) if source in self.book.accounts else (0, 0)
        if transfer.amount > (liquid if transfer.style == LIQUID else reserve):
            if source == POOL:
                raise CommandRefused(f"Insufficient funds in {transfer.style} pool. "
                                     "Please make the debit before the credit.")
            raise CommandRefused(f"Insufficient {transfer.style} balance")

    def _move(self, transfer: Transfer) -> None:
        move = self.book.move_liquid if transfer.style == LIQUID else self.book.move_reserve
        try:
            move(transfer.source, transfer.destination, transfer.amount)
        except LedgerError as exc:  # the checks before make this unreachable; never half-apply
            raise CommandRefused(str(exc)) from exc

    def name_deposit(self, name: str, outpoints: Iterable[OutPoint]) -> Deferred:
        """Name the owner of deposits (``Deposit``); credits at once what is confirmed and unlocked."""
        commands.check_user_name(name)
        try:
            events = self.deposits.name(name, list(outpoints))
        except DepositError as exc:
            raise CommandRefused(str(exc)) from exc
        self._apply(events)
        return self._persist(True)

    def generate_deposit_address(self) -> Deferred:
        """A new deposit key: stored (sealed when the wallet is encrypted) and watched, both durable before
        the answer ``(wif, address)``."""
        try:
            key, address, record = self.wallet.new_key()
        except WalletError as exc:
            raise CommandRefused(str(exc)) from exc
        self.deposits.addresses.add(address)
        ops = WalletCodec.key_ops({address: record}) + [WatchCodec.address_op(address)]
        return self._persist((key.to_wif(self.wallet.network), address), ops)

    def unlock_wallet(self, passphrase: str) -> None:
        """``ExchangePassword``: keep the wallet key in memory; a wrong passphrase is refused."""
        try:
            self.wallet.unlock(passphrase)
        except WalletError as exc:
            raise CommandRefused(str(exc)) from exc

    def encrypt_wallet(self, passphrase: str) -> Deferred:
        """Encrypt the exchange wallet at rest with ``passphrase`` (durable before the answer)."""
        try:
            sealing = self.wallet.encrypt(passphrase)
        except WalletError as exc:
            raise CommandRefused(str(exc)) from exc
        return self._persist(True, [WalletCodec.meta_op(sealing.meta)] + WalletCodec.key_ops(sealing.records))

    def add_deposit_address(self, address: str) -> Deferred:
        """Watch ``address`` for deposits from now on (durable before the answer)."""
        self.deposits.addresses.add(address)
        return self._persist(True, [WatchCodec.address_op(address)])

    def update_settings(self, changes: dict) -> Deferred:
        """Store settings changes together (validated by the caller); confirmations apply at once."""
        for address in changes.get("exchangeaccounts") or []:
            if address not in self.wallet.addresses:
                raise CommandRefused(f"Exchange accounts must be addresses of this exchange's wallet "
                                     f"(GenerateDepositAddress makes one): {address} is not.")
        settings = {**self.settings, **changes}
        settings = {key: value for key, value in settings.items() if value is not None}
        self.settings = settings
        if "exchangeconfirmations" in changes:
            self.deposits.confirmations = changes["exchangeconfirmations"]
            self._apply(self.deposits.reconsider())
        return self._persist(True, SettingsCodec.ops(settings))

    def record_exec(self, command_hash: str, record: dict) -> Deferred:
        """Keep the exec hook's record of a signed command (its replay guard and outcome), durable before the
        Deferred fires."""
        return self._persist(True, [ExecRecordCodec.op(command_hash, record)])

    # -- what the API reads ----------------------------------------------------------------------------------

    def exec_record(self, command_hash: str) -> dict | None:
        """The exec hook's record of the command with this hash, or None if it never ran."""
        return ExecRecordCodec.get(self.store, command_hash)

    def exec_records(self) -> list[dict]:
        """Every exec record, oldest first (a few a day: read from the DB when asked)."""
        return ExecRecordCodec.load(self.store)

    def pending_writes(self) -> Deferred | None:
        """A Deferred that fires once the writes waiting for this turn's batch are on disk, or None if none
        wait: an answer computed from memory is sent only after it, so no client sees what a crash could take
        back."""
        return self.commit.submit([]) if self.commit.pending else None

    def setting(self, name: str, default: Any = None) -> Any:
        """A stored exchange setting (``password``, ``commission``, ``exchangeconfirmations``, ...)."""
        return self.settings.get(name, default)

    def balance(self, user: str) -> tuple[int, int] | None:
        """(liquid, reserve) of a user or pseudo account; None when unknown."""
        return self.book.balance(user) if user in self.book.accounts else None

    def withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        return self.withdrawals.get(withdrawal_id)

    def escrow_total(self) -> tuple[int, int]:
        """(liquid, reserve) held in every withdrawal escrow together (``GetBalance('withdraws')``): those of the
        requests not finished (a finished request's escrow is closed)."""
        liquid = reserve = 0
        for withdrawal in self.payouts.outstanding():
            account = self.book.accounts.get(withdrawal.escrow)
            if account is not None:
                liquid += account.liquid
                reserve += account.reserve_total
        return liquid, reserve

    @property
    def cycle(self) -> int:
        """The cycle whose balances are current."""
        return self.book.cycle

"""``PayoutDesk``: pays withdrawals. Batches built per cycle window, committed before they are sent, tracked to
the end on chain. Part of the engine: it runs on the reactor thread and changes the engine's state only
there (the engine persists what it changed in the same batch as the event that caused it).

What happens at each block (:meth:`block_connected`, before the deposit scan sees the block):

1. **Own transactions** are recognised by predicted txid, or by (first input, master ID in the last output's
   OP_RETURN), so a malleated batch is still ours: its outputs to exchange addresses become change coins,
   never deposits, and the observed txid is kept as ``txid2``. The coins every transaction spends leave the
   coin index; a coin locked by a batch but spent by another transaction records a *conflict*.
2. (:meth:`after_block`) Batches whose transaction has the confirmation setting's depth are **complete**: the
   members' escrow leaves the book. Batches whose conflict has that depth have **failed**: the members are
   refunded and the batch's other coins unlocked. Requests not batched within two cycles **expire** and are
   refunded. Unconfirmed batches the node no longer knows are **resubmitted**.
3. In the cycle's windows (liquid, reserve, maintenance) a new batch is **built** off the reactor thread from a
   snapshot, then **committed** on the reactor after checking that its coins are still free and its requests
   still queued: ONE batch writes the records, the raw transaction, the predicted txid, the master ID, the
   first input and the coin locks. Only once that is durable is the transaction handed to the node. A crash
   at any point therefore either left nothing (the build is redone) or left a committed batch that is
   resubmitted at start-up: each withdrawal is paid exactly once.

A disconnected block moves every status back exactly (:meth:`block_disconnected`); a completed batch's
escrow debit is re-credited from the fractions it recorded. A refund after a conflict deeper than the
confirmation setting is not undone (as a registered deposit is, such a reorg is reported in the log).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred

from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.script import address_to_script, parse_notary_payload
from halo_exchange.chain.tx import OutPoint, Transaction
from halo_exchange.commands import LIQUID, RESERVE
from halo_exchange.errors import HaloExchangeError
from halo_exchange.ledger import payout
from halo_exchange.ledger.coins import SPENT_MEMORY, Coin
from halo_exchange.ledger.withdrawals import (
    DEFAULT_COMMISSION,
    Batch,
    BatchKind,
    BatchState,
    Window,
    Withdrawal,
    WithdrawalState,
    window,
)
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.transfer import FreezeTimes

if TYPE_CHECKING:
    from halo_exchange.engine import ExchangeEngine

log = logging.getLogger(__name__)

_OPEN = (BatchState.UNCONFIRMED, BatchState.PROCESSING)
# Reserve batches: the fee account is a recipient too, and a batch pays at most this many distinct addresses.
RESERVE_RECIPIENTS = 45
WALLET_LOCKED_NOTE = "waiting: the exchange wallet is locked (ExchangePassword unlocks it)"
NO_ACCOUNTS_NOTE = "waiting: ExchangeSettings has not set exchangeaccounts and exchangefeeaccount"


class PayoutDesk:
    """The withdrawal batches of one engine."""

    def __init__(self, engine: ExchangeEngine, run_in_thread: Callable[..., Deferred]) -> None:
        self.engine = engine
        self.run_in_thread = run_in_thread
        self.building: str | None = None  # the kind of the batch being built off the reactor, if any
        self._resubmitted_at: dict[str, int] = {}
        # Indexes, so that no block walks every request or batch ever recorded (finished ones stay until a
        # client clears them): queued requests in acceptance order, open (unconfirmed or processing) batches,
        # and batches by the height of the block that holds them.
        queued = sorted((w for w in engine.withdrawals.values() if w.state is WithdrawalState.QUEUED),
                        key=lambda w: (w.seq, w.height, w.id))
        self.queued: dict[str, None] = dict.fromkeys(w.id for w in queued)
        self.open: set[str] = {b.master_id for b in engine.batches.values() if b.state in _OPEN}
        self.by_block: dict[int, set[str]] = {}
        for batch in engine.batches.values():
            if batch.block >= 0:
                self.by_block.setdefault(batch.block, set()).add(batch.master_id)

    # -- shortcuts -------------------------------------------------------------------------------------

    @property
    def batches(self) -> dict[str, Batch]:
        return self.engine.batches

    @property
    def withdrawals(self) -> dict[str, Withdrawal]:
        return self.engine.withdrawals

    def _dirty_withdrawal(self, withdrawal: Withdrawal) -> None:
        self.engine.dirty_withdrawals.add(withdrawal.id)

    def _dirty_batch(self, batch: Batch) -> None:
        self.engine.dirty_batches.add(batch.master_id)

    # -- chain events ----------------------------------------------------------------------------------

    def block_connected(self, view: ChainView, height: int, txs: list[Transaction]) -> None:
        """Recognise own transactions and spends in a new block (before the deposit scan)."""
        coins = self.engine.coins
        for tx in txs:
            if tx.is_coinbase():
                continue
            batch = self._batch_of(tx)
            for coin in coins.spend_inputs(tx, height):
                if coin.lock is not None and (batch is None or coin.lock != batch.master_id):
                    self._conflict(coin.lock, coin, tx, height)
            if batch is None:
                continue
            self._seen(batch, tx, height)
            for n in batch.change:
                info = view.output(tx.hash, n)
                if info is None or info.value <= 0:
                    continue
                outpoint = OutPoint(tx.hash, n)
                coins.add(Coin(outpoint, info.address or "", info.value, info.fractions, height, "change",
                               self.lock_of(outpoint)))

    def _conflict(self, master_id: str, coin: Coin, tx: Transaction, height: int) -> None:
        """Another transaction (ours or not) spent a coin that batch ``master_id`` spends: that batch can never
        confirm once this spend is deep enough."""
        other = self.batches.get(master_id)
        if other is None or other.state is not BatchState.UNCONFIRMED or other.conflict is not None:
            return
        other.conflict, other.conflict_height = f"{tx.txid}:{height}", height
        self._dirty_batch(other)
        log.warning("batch %s: its input %s was spent by %s", other.master_id, coin.outpoint, tx.txid)

    def lock_of(self, outpoint: OutPoint) -> str | None:
        """The open batch that spends ``outpoint``, if any: a coin that comes back (its block connected
        again after a reorg) keeps the lock of the batch that signed for it."""
        text = str(outpoint)
        for master_id in sorted(self.open):
            if text in self.batches[master_id].inputs:
                return master_id
        return None

    def _batch_of(self, tx: Transaction) -> Batch | None:
        # Only an unconfirmed batch can be mined now (a reorg puts a mined one back to unconfirmed first).
        for master_id in self.open:
            batch = self.batches[master_id]
            if batch.state is BatchState.UNCONFIRMED and tx.txid == batch.txid:
                return batch
        if not tx.inputs or not tx.outputs:
            return None
        master = parse_notary_payload(tx.outputs[-1].script_pubkey)
        if master is None:
            return None
        batch = self.batches.get(master.decode("latin-1"))
        if (batch is not None and batch.state is BatchState.UNCONFIRMED
                and batch.in0 == str(tx.inputs[0].prevout)):
            return batch
        return None

    def _seen(self, batch: Batch, tx: Transaction, height: int) -> None:
        self.engine.deposits.own_txids.add(tx.hash)
        self.engine.extra_ops.append(self.engine.own_tx_op(tx.hash))
        if tx.txid != batch.txid:
            batch.txid2 = tx.txid
            log.warning("batch %s was malleated: mined as %s, predicted %s", batch.master_id, tx.txid, batch.txid)
        batch.block = height
        self.by_block.setdefault(height, set()).add(batch.master_id)
        if batch.state is BatchState.UNCONFIRMED:
            self._set_state(batch, BatchState.PROCESSING)
        log.info("batch %s seen in block %d", batch.master_id, height)

    def block_disconnected(self, height: int) -> None:
        """Undo a block: batches it held go back to unconfirmed (a completed one's debit is re-credited)."""
        self.engine.coins.block_disconnected(height)
        for master_id in self.open:
            batch = self.batches[master_id]
            if batch.conflict_height == height:
                batch.conflict, batch.conflict_height = None, -1
                self._dirty_batch(batch)
        for master_id in sorted(self.by_block.pop(height, ())):
            batch = self.batches.get(master_id)
            if batch is None or batch.block != height:
                continue
            if batch.state is BatchState.COMPLETE:
                self._undo_complete(batch)
            batch.block = -1
            batch.txid2 = None
            if batch.state is not BatchState.FAILED:
                self._set_state(batch, BatchState.UNCONFIRMED)
                self.engine.coins.lock(
                    [op for op in batch.input_outpoints if self.engine.coins.get(op) is not None], batch.master_id)

    def after_block(self, height: int) -> None:
        """Complete, fail, expire and resubmit what this block decided; then maybe start a batch."""
        confirmations = self.engine.deposits.confirmations
        for batch in [self.batches[master_id] for master_id in sorted(self.open)]:
            if batch.state is BatchState.PROCESSING and height - batch.block + 1 >= confirmations:
                self._complete(batch)
            elif (batch.state is BatchState.UNCONFIRMED and batch.conflict is not None
                  and height - batch.conflict_height + 1 >= confirmations):
                self._fail(batch)
        cycle = self.engine.book.cycle
        for withdrawal in self._queued():
            if withdrawal.expired_at(cycle):
                withdrawal.state = WithdrawalState.EXPIRED
                self.queued.pop(withdrawal.id, None)
                withdrawal.note = f"not paid within {cycle - withdrawal.cycle} cycles: refunded"
                self.engine.refund_escrow(withdrawal)
                self._dirty_withdrawal(withdrawal)
                log.info("withdrawal %s expired: refunded to %r", withdrawal.id, withdrawal.user)
        self.resubmit_unknown(height)
        if height % 100 == 0:
            self._forget_before(height - SPENT_MEMORY)
        self._maybe_build(height)

    def _forget_before(self, height: int) -> None:
        """What only a reorg deeper than the coins' memory could need again."""
        self.engine.coins.forget_spent_before(height + SPENT_MEMORY)
        for old in [h for h in self.by_block if h < height]:
            del self.by_block[old]
        self._resubmitted_at = {m: h for m, h in self._resubmitted_at.items() if m in self.open}

    def forget(self, master_id: str) -> None:
        """A finished batch was cleared (CheckWithdraw clear): drop it from the indexes."""
        self.open.discard(master_id)
        for members in self.by_block.values():
            members.discard(master_id)

    # -- transitions -----------------------------------------------------------------------------------

    def _set_state(self, batch: Batch, state: BatchState) -> None:
        batch.state = state
        self._dirty_batch(batch)
        if state in _OPEN:
            self.open.add(batch.master_id)
        else:
            self.open.discard(batch.master_id)
        for member in batch.members:
            withdrawal = self.withdrawals.get(member)
            if withdrawal is not None and withdrawal.state is not WithdrawalState.EXPIRED:
                withdrawal.state = batch.request_state
                self.queued.pop(member, None)
                self._dirty_withdrawal(withdrawal)

    def _complete(self, batch: Batch) -> None:
        engine = self.engine
        for member in batch.members:
            withdrawal = self.withdrawals.get(member)
            if withdrawal is None:
                continue
            debited = engine.debit_escrow(withdrawal)
            batch.debited[member] = debited.pack().hex()
        if batch.kind is BatchKind.MAINTENANCE:
            engine.payout_state["debt"] += batch.cost
        else:
            engine.payout_state["debt"] -= batch.recovered
        engine.payout_state_dirty = True
        self._set_state(batch, BatchState.COMPLETE)
        log.info("batch %s complete (%s)", batch.master_id, batch.seen_txid)

    def _undo_complete(self, batch: Batch) -> None:
        engine = self.engine
        for member, packed in batch.debited.items():
            withdrawal = self.withdrawals.get(member)
            if withdrawal is not None:
                engine.book.credit(withdrawal.escrow, Fractions.unpack(bytes.fromhex(packed)))
        batch.debited = {}
        if batch.kind is BatchKind.MAINTENANCE:
            engine.payout_state["debt"] -= batch.cost
        else:
            engine.payout_state["debt"] += batch.recovered
        engine.payout_state_dirty = True
        log.error("completed batch %s left the chain: its payouts are pending again", batch.master_id)

    def _fail(self, batch: Batch) -> None:
        for member in batch.members:
            withdrawal = self.withdrawals.get(member)
            if withdrawal is not None and withdrawal.state in (WithdrawalState.UNCONFIRMED,):
                self.engine.refund_escrow(withdrawal)
                withdrawal.note = f"its transaction can never confirm (input spent by {batch.conflict}): refunded"
        self.engine.coins.unlock(batch.master_id)
        self._set_state(batch, BatchState.FAILED)
        log.error("batch %s failed: an input was spent by %s; members refunded", batch.master_id, batch.conflict)

    # -- the node --------------------------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        node = self.engine.node
        if node is None:
            return
        batch.submissions += 1
        self._dirty_batch(batch)
        node.submit_transaction(bytes.fromhex(batch.raw))
        log.info("batch %s (%s) handed to the node", batch.master_id, batch.txid)

    def resubmit_unknown(self, height: int) -> None:
        """Hand again to the node every unconfirmed batch it no longer knows (dropped, rejected, a restart)."""
        node = self.engine.node
        if node is None:
            return
        for batch in [self.batches[master_id] for master_id in sorted(self.open)]:
            if batch.state is not BatchState.UNCONFIRMED or self._resubmitted_at.get(batch.master_id) == height:
                continue
            status = node.transaction_status(bytes.fromhex(batch.txid)[::-1])
            if getattr(status, "name", str(status)) == "UNKNOWN":
                self._resubmitted_at[batch.master_id] = height
                log.info("batch %s is unknown to the node: resubmitting", batch.master_id)
                self.submit(batch)

    def transaction_event(self, kind: str, txid_hex: str, reason: str) -> None:
        """The node dropped or refused one of our transactions: resubmit it at once (once per block)."""
        for batch in [self.batches[master_id] for master_id in sorted(self.open)]:
            if batch.txid == txid_hex and batch.state is BatchState.UNCONFIRMED:
                log.warning("batch %s %s by the node: %s", batch.master_id, kind, reason)
                height = self.engine.reader.height()
                if self._resubmitted_at.get(batch.master_id) != height and "double-spend" not in reason:
                    self._resubmitted_at[batch.master_id] = height
                    self.submit(batch)

    # -- building --------------------------------------------------------------------------------------

    def _queued(self, style: str | None = None) -> list[Withdrawal]:
        """Queued requests of ``style`` (or all), oldest first."""
        found = (self.withdrawals[withdrawal_id] for withdrawal_id in self.queued)
        return [w for w in found if style is None or w.style == style]

    def outstanding(self) -> list[Withdrawal]:
        """Every request not yet finished: queued, or in an open batch."""
        members = [self.withdrawals[m] for master_id in sorted(self.open)
                   for m in self.batches[master_id].members if m in self.withdrawals]
        return self._queued() + members

    def _maybe_build(self, height: int) -> None:
        # Not while catching up with blocks the node connected meanwhile: the coins are those of an older tip.
        if self.building is not None or self.engine.reader.height() != height:
            return
        which = window(height, self.engine.params.peg_interval)
        if which is Window.LIQUID and self._queued(LIQUID):
            self.build(LIQUID, height)
        elif which is Window.RESERVE and self._queued(RESERVE):
            self.build(RESERVE, height)
        elif which is Window.MAINTENANCE and not any(
                self.batches[master_id].kind is BatchKind.MAINTENANCE for master_id in self.open):
            self.build("maintenance", height)

    def build(self, kind: str, height: int) -> Deferred | None:
        """Start building one batch of ``kind`` ("liquid", "reserve" or "maintenance") off the reactor."""
        engine = self.engine
        accounts = engine.setting("exchangeaccounts") or []
        fee_account = engine.setting("exchangefeeaccount") or ""
        if not accounts or (kind != "maintenance" and not fee_account):
            for withdrawal in self._queued(None if kind == "maintenance" else kind):
                self._note(withdrawal, NO_ACCOUNTS_NOTE)
            return None
        members = [] if kind == "maintenance" else self._select(kind, fee_account)
        if kind != "maintenance" and not members:
            return None
        master_id = os.urandom(16).hex()
        with engine.reader.snapshot() as view:
            info = view.peg_info()
            tip = view.height()
            header = view.block_header(tip)
            block_time = (header.time if header is not None else 0) + engine.params.block_spacing
            supplies = tuple(sorted({view.supply_for_new_block(tip + 1), info.supply_next}))
        coins = [payout.Coin(c.outpoint, c.address, c.value, c.fractions,
                             address_to_script(c.address, engine.network))
                 for c in engine.coins.spendable()]
        freeze = FreezeTimes(engine.params.frozen_time, engine.params.vfrozen_time)
        wallet = engine.wallet
        # The debt not already withheld by a batch still open (it is repaid only when that batch completes).
        withheld = sum(self.batches[master_id].recovered for master_id in self.open)
        debt = max(engine.payout_state.get("debt", 0) - withheld, 0)
        plan_args: dict[str, Any] = {}
        if kind != "maintenance":
            commission = sum(w.commission for w in members)
            plan_args = dict(
                style=kind, payees=[payout.Payee(w.address, w.payout) for w in members], fee_account=fee_account,
                commission=commission, change_address=accounts[0], master_id=bytes.fromhex(master_id),
                supplies=supplies, block_time=block_time, freeze_times=freeze, network=engine.network,
                fee_per_input_output=engine.params.fee_per_input_output,
            )

        def work() -> tuple[payout.BuiltBatch | None, Transaction | None, int]:
            """Off the reactor: build, check at every supply, sign. Touches no engine state."""
            if kind == "maintenance":
                built = payout.build_maintenance(
                    coins, accounts[0], bytes.fromhex(master_id), supplies, block_time, freeze, engine.network,
                    engine.params.fee_per_input_output)
                if built is None:
                    return None, None, 0
                return built, payout.sign_batch(built, wallet.private_key), 0
            recovered = 0
            try:
                plan = payout.BatchPlan(**{**plan_args, "commission": plan_args["commission"] - debt})
                built = payout.build_batch(plan, coins) if debt else None
                recovered = debt if built is not None else 0
            except payout.PayoutError:
                built = None
            if built is None:
                built = payout.build_batch(payout.BatchPlan(**plan_args), coins)
            return built, payout.sign_batch(built, wallet.private_key), recovered

        self.building = kind
        done = self.run_in_thread(work)
        payouts_at_build = {w.id: w.payout for w in members}
        cycle_at_build = engine.book.cycle
        # Back on the reactor, after any cycle update that began meanwhile (it then finds the cycle changed).
        done.addCallbacks(lambda result: engine.when_idle(self._commit, kind, master_id, members, height,
                                                          payouts_at_build, cycle_at_build, *result),
                          lambda failure: self._build_failed(kind, members, failure))
        done.addBoth(self._build_ended)
        return done

    def _build_ended(self, result: Any) -> Any:
        self.building = None
        return result

    def _select(self, style: str, fee_account: str) -> list[Withdrawal]:
        """The requests of one batch, oldest first: up to the style's limit, and for reserve at most 45
        distinct recipients (the fee account included)."""
        chosen: list[Withdrawal] = []
        addresses = {fee_account}
        limit = self.engine.liquid_limit if style == LIQUID else self.engine.reserve_limit
        for withdrawal in self._queued(style):
            if len(chosen) >= limit:
                break
            if style == RESERVE and withdrawal.address not in addresses and len(addresses) >= RESERVE_RECIPIENTS:
                break
            if withdrawal.payout <= 0:
                continue
            chosen.append(withdrawal)
            addresses.add(withdrawal.address)
        return chosen

    def _note(self, withdrawal: Withdrawal, note: str) -> None:
        if withdrawal.note != note:
            withdrawal.note = note
            self._dirty_withdrawal(withdrawal)

    def _build_failed(self, kind: str, members: list[Withdrawal], failure: Any) -> None:
        exc = failure.value
        if isinstance(exc, payout.PayoutError):
            note = f"waiting: {exc.answer}"
        elif isinstance(exc, HaloExchangeError) and "locked" in str(exc):
            note = WALLET_LOCKED_NOTE
        else:
            log.error("building a %s batch failed: %s", kind, failure.getTraceback())
            note = f"waiting: batch build failed ({exc})"
        log.info("no %s batch this block: %s", kind, note)
        for withdrawal in members:
            self._note(withdrawal, note)
        self.engine.persist_payouts()

    def _commit(self, kind: str, master_id: str, members: list[Withdrawal], height: int,
                payouts_at_build: dict[str, int], cycle_at_build: int,
                built: payout.BuiltBatch | None, tx: Transaction | None, recovered: int) -> None:
        """Back on the reactor: record the signed batch in one durable write, then hand it to the node."""
        engine = self.engine
        if built is None or tx is None:
            return
        for coin in built.inputs:
            current = engine.coins.get(coin.outpoint)
            if current is None or not current.spendable:
                log.info("a coin of the %s batch was spent or locked meanwhile: rebuilding later", kind)
                return
        for withdrawal in members:
            if (self.withdrawals.get(withdrawal.id) is not withdrawal or withdrawal.state is not WithdrawalState.QUEUED
                    or withdrawal.payout != payouts_at_build[withdrawal.id]):
                log.info("a request of the %s batch changed meanwhile: rebuilding later", kind)
                return
        if engine.book.cycle != cycle_at_build:
            log.info("a new cycle began while the %s batch was built: rebuilding for it", kind)
            return
        outflow = sum(c.value for c in built.inputs) - sum(tx.outputs[n].value for n in built.change_outputs)
        batch = Batch(
            master_id=master_id, kind=BatchKind(kind), raw=tx.serialize().hex(), txid=tx.txid,
            in0=str(tx.inputs[0].prevout), inputs=[str(c.outpoint) for c in built.inputs],
            members=[w.id for w in members], change=list(built.change_outputs), built_height=height, outflow=outflow,
            cost=built.network_fee + built.burns, recovered=recovered,
        )
        self.batches[master_id] = batch
        self._dirty_batch(batch)
        engine.coins.lock([c.outpoint for c in built.inputs], master_id)
        engine.deposits.own_txids.add(tx.hash)
        engine.extra_ops.append(engine.own_tx_op(tx.hash))
        for withdrawal in members:
            withdrawal.batch = master_id
            withdrawal.note = ""
        self._set_state(batch, BatchState.UNCONFIRMED)
        log.info("batch %s: %s, %d payouts, %d inputs, txid %s", master_id, kind, len(members), len(built.inputs),
                 tx.txid)
        durable = engine.persist_payouts()
        durable.addCallback(lambda _: self.submit(batch))
        durable.addCallback(lambda _: engine.persist_payouts())


def commission_setting(settings: dict) -> dict:
    """The commission ExchangeSettings stored ({min, max, ppm}), or the original's default."""
    return settings.get("commission") or DEFAULT_COMMISSION

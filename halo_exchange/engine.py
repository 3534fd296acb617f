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
(3 steps, peg-spec §1.7). Withdrawals, the exchange's own UTXOs, the pegshift and partial levels arrive with
their own issue.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred

from halo_exchange import commands
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import LIQUID, POOL, RESERVE, UNKNOWN_USER, Transfer
from halo_exchange.errors import CommandRefused
from halo_exchange.ledger.book import Book, LedgerError
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, DepositError, DepositEvents
from halo_exchange.ledger.store import (
    BookCodec,
    DepositCodec,
    ExchangeStore,
    GroupCommit,
    Op,
    SettingsCodec,
    WalletCodec,
    WatchCodec,
    WithdrawalCodec,
    load_state,
)
from halo_exchange.ledger.wallet import WalletError
from halo_exchange.ledger.withdrawals import LIQUID_LIMIT, OUTSTANDING, RESERVE_LIMIT, Withdrawal
from halo_exchange.peg.fractions import PEG_SIZE
from halo_exchange.serialize import display_hex, from_display_hex

log = logging.getLogger(__name__)

EXCHANGE_BUFFER = 3


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
    ) -> None:
        self.store = store
        self.reader = reader
        self.params = reader.params()
        self.buffer = buffer
        self.commit = GroupCommit(store, call_later)
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
        self.withdrawals = state.withdrawals
        self.settings = state.settings

    def _effective(self, network_supply: int) -> int:
        return min(network_supply + self.buffer, PEG_SIZE - 1)

    def _persist(self, answer: object, extra: Iterable[Op] = ()) -> Deferred:
        ops = BookCodec.change_ops(self.book) + DepositCodec.change_ops(self.deposits) + list(extra)
        done = self.commit.submit(ops)
        done.addCallback(lambda _: answer)
        return done

    # -- chain events ------------------------------------------------------------------------------------

    def block_connected(self, height: int, block_hash: str) -> Deferred:
        """A block joined the chain: new cycle first (balances current before credits), then deposits."""
        raw_hash = from_display_hex(block_hash)
        with self.reader.snapshot() as view:
            record = view.block_record_by_hash(raw_hash)
            if record is not None and record.height == height:
                cycle = height // self.params.peg_interval
                if cycle != self.book.cycle:
                    self.book.new_cycle(cycle, self._effective(record.peg.supply))
                    log.info("cycle %d: balances re-valued at supply %d", cycle, self.book.supply)
            events = self.deposits.block_connected(view, height, raw_hash)
        self._apply(events)
        return self._persist(None)

    def block_disconnected(self, height: int, block_hash: str) -> Deferred:
        """A block left the chain: its deposits go (registered ones are taken back); a cycle may go back."""
        events = self.deposits.block_disconnected(height, from_display_hex(block_hash))
        self._apply(events)
        cycle = (height - 1) // self.params.peg_interval
        if cycle != self.book.cycle:
            with self.reader.snapshot() as view:
                self.book.new_cycle(cycle, self._effective(view.supply_of_cycle(cycle)))
        return self._persist(None)

    def catch_up(self) -> Deferred:
        """Bring the engine level with the node's chain after a restart (or a first start).

        Blocks the engine applied that the chain no longer holds are disconnected (newest first); blocks
        the node connected while the plugin was down are then connected in order. One batch per block, as
        if the events had arrived live. Returns a Deferred that fires when all of it is durable.
        """
        last: Deferred | None = None
        height, _ = self.deposits.tip
        while height >= 0:
            applied = self.deposits.applied_block(height)
            if applied is None or self.reader.block_hash(height) == applied[0]:
                break  # in agreement with the chain (or older than the remembered reorg depth)
            last = self.block_disconnected(height, display_hex(applied[0]))
            height -= 1
            self.deposits.rewind_to(height)
        tip = self.reader.height()
        for h in range(height + 1, tip + 1):
            block_hash = self.reader.block_hash(h)
            if block_hash is None:
                break
            last = self.block_connected(h, display_hex(block_hash))
        if last is None:
            return self._persist(None)
        return last

    def _apply(self, events: DepositEvents) -> None:
        for credit in events.credits:
            self.book.credit(credit.owner, credit.deposit.fractions)
            log.info("credited %d to %r from deposit %s", credit.deposit.amount, credit.owner, credit.deposit.outpoint)
        for reversal in events.reversals:
            self.book.reverse_credit(reversal.owner, reversal.deposit.fractions)

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

    def escrow_withdrawal(self, user: str, amount: int, style: str = LIQUID) -> Deferred:
        """Move ``amount`` of ``user``'s ``style`` into the ``withdraws`` escrow (a withdrawal accepted)."""
        self._move(self._checked_escrow(commands.escrow(user, amount, style)))
        return self._persist(True)

    def request_withdrawal(self, user: str, amount: int, address: str, style: str = LIQUID) -> Deferred:
        """Accept a withdrawal: escrow the amount and record it, in one batch; answers the new ID.

        Limits count only outstanding, accepted requests: 300 liquid, 45 reserve."""
        outstanding = sum(1 for w in self.withdrawals.values() if w.style == style and w.state in OUTSTANDING)
        if style == LIQUID and outstanding >= LIQUID_LIMIT:
            raise CommandRefused("Withdraw limit reached, please wait until transactions clear.")
        if style == RESERVE and outstanding >= RESERVE_LIMIT:
            raise CommandRefused("Reserve withdraw limit reached, please wait until transactions clear.")
        self._move(self._checked_escrow(commands.escrow(user, amount, style)))
        withdrawal = Withdrawal(os.urandom(16).hex(), user, amount, address, style, self.reader.height())
        self.withdrawals[withdrawal.id] = withdrawal
        return self._persist(withdrawal.id, [WithdrawalCodec.op(withdrawal)])

    def return_escrow(self, user: str, amount: int, style: str = LIQUID) -> Deferred:
        """Give escrowed funds back to ``user`` (a withdrawal declined before it could be paid)."""
        self._move(self._checked_escrow(commands.escrow(user, amount, style, returning=True)))
        return self._persist(True)

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

    def mark_own_transaction(self, txid: bytes) -> Deferred:
        """Remember a transaction the exchange built: its outputs are change, never deposits."""
        self.deposits.own_txids.add(txid)
        return self._persist(True, [WatchCodec.own_tx_op(txid)])

    def update_settings(self, changes: dict) -> Deferred:
        """Store settings changes together (validated by the caller); confirmations apply at once."""
        settings = {**self.settings, **changes}
        settings = {key: value for key, value in settings.items() if value is not None}
        self.settings = settings
        if "exchangeconfirmations" in changes:
            self.deposits.confirmations = changes["exchangeconfirmations"]
            self._apply(self.deposits.reconsider())
        return self._persist(True, SettingsCodec.ops(settings))

    # -- what the API reads ----------------------------------------------------------------------------------

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

    @property
    def cycle(self) -> int:
        """The cycle whose balances are current."""
        return self.book.cycle

"""``ExchangeEngine``: the single writer of exchange state. Chain events and commands in, durable batches out.

It runs on the reactor thread and nowhere else. Each chain event (a block connected or disconnected) and each
command (a trade, naming a deposit, a new deposit address) changes the book and the deposits in memory, then
hands exactly the changed keys to :class:`~halo_exchange.ledger.store.GroupCommit`; the Deferred it returns
fires with the command's answer only once that batch is on disk. Refusals are raised before anything changes,
as :class:`CommandRefused` carrying the API's documented string (reference/halo-behaviour.md §2, with the
fixes of §5: zero amounts refused, no hidden parameters, names are keys not paths).

At a block that starts a new peg cycle the book is re-valued at the cycle's supply plus the exchange's buffer
(3 steps, peg-spec §1.7). Withdrawals, the exchange's own UTXOs, the pegshift and partial levels arrive with
their own issue.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable

from twisted.internet.defer import Deferred

from halo_exchange.chain.reader import ChainReader, ChainView
from halo_exchange.chain.script import script_to_address
from halo_exchange.errors import HaloExchangeError
from halo_exchange.ledger.book import Book, LedgerError
from halo_exchange.ledger.deposits import DepositError, DepositEvents, DepositState, DepositTracker, Outpoint
from halo_exchange.ledger.rating import is_subpremium
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
from halo_exchange.peg.fractions import PEG_SIZE, Fractions

log = logging.getLogger(__name__)

EXCHANGE_BUFFER = 3
POOL, WITHDRAWS, EXCHANGE = "pool", "withdraws", "exchange"
RESERVED_NAMES = frozenset({"total", "pool", "frozen", "x", "exchange", "withdraws"})
MIN_NAME, MAX_NAME = 4, 64
STYLES = ("liquid", "reserve")

# The API's strings (halo-behaviour §2.7-§2.10).
NAME_RESERVED = "Name reserved for exchange operations. Please use different name."
NAME_TOO_SHORT = "Name is too short in length."
NAME_INVALID = f"Name must be printable text of at most {MAX_NAME} characters."
NEGATIVE_BETWEEN_USERS = "Amount can not be negative if both users are known"
ZERO_AMOUNT = "Amount must not be zero."
BAD_STYLE = "Style must be 'liquid' or 'reserve'."
UNKNOWN_USER = "Unknown user"


def _spendable_entry(fractions: Fractions, supply: int, address: str, confirmations: int) -> dict:
    """One ``GetSpendable`` entry: amounts as strings (amount = ltotal + rtotal), supply as an int."""
    liquid, reserve = fractions.high(supply), fractions.low(supply)
    # nfreeze: the liquid a maximal deflation would freeze next (the three fractions above the supply, the
    # last fraction excluded as in the original).
    nfreeze = sum(fractions.to_list()[supply:min(supply + 3, PEG_SIZE - 1)])
    return {
        "amount": str(liquid + reserve),
        "ltotal": str(liquid),
        "rtotal": str(reserve),
        "nfreeze": str(nfreeze),
        "supply": supply,
        "address": address,
        "confirmations": str(confirmations),
    }


class CommandRefused(HaloExchangeError):
    """A command refused before anything changed; the message is the string the API answers."""


def check_user_name(name: object) -> str:
    """A user name: text, 4..64 printable characters, not reserved (case-insensitive). Case-sensitive otherwise."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.isprintable():
        raise CommandRefused(NAME_INVALID)
    if name.lower() in RESERVED_NAMES:
        raise CommandRefused(NAME_RESERVED)
    if len(name) < MIN_NAME:
        raise CommandRefused(NAME_TOO_SHORT)
    return name


class ExchangeEngine:
    """Book, deposits and store of one exchange, driven from the reactor thread."""

    def __init__(
        self,
        store: ExchangeStore,
        reader: ChainReader,
        call_later: Callable[..., object],
        *,
        confirmations: int = 7,
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
        raw_hash = bytes.fromhex(block_hash)[::-1]
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
        events = self.deposits.block_disconnected(height, bytes.fromhex(block_hash)[::-1])
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
            last = self.block_disconnected(height, applied[0][::-1].hex())
            height -= 1
            self.deposits.rewind_to(height)
        tip = self.reader.height()
        for h in range(height + 1, tip + 1):
            block_hash = self.reader.block_hash(h)
            if block_hash is None:
                break
            last = self.block_connected(h, block_hash[::-1].hex())
        if last is None:
            return self._persist(None)
        return last

    def _apply(self, events: DepositEvents) -> None:
        for credit in events.credits:
            self.book.credit(credit.owner, credit.deposit.fractions)
            log.info("credited %d to %r from deposit %s:%d", credit.deposit.amount, credit.owner,
                     credit.deposit.txid[::-1].hex(), credit.deposit.n)
        for reversal in events.reversals:
            self.book.reverse_credit(reversal.owner, reversal.deposit.fractions)

    # -- commands ---------------------------------------------------------------------------------------

    def trade(self, user1: str, amount: int, user2: str, style: str = "liquid") -> Deferred:
        """``user1`` pays ``amount`` of ``style`` to ``user2``; with ``user2 == ''`` a one-sided trade:
        a negative amount debits ``user1`` into the pool, a positive one credits ``user1`` from it.
        Answers True once durable; refusals raise CommandRefused with the API string and change nothing."""
        check_user_name(user1)
        if user2 != "":
            check_user_name(user2)  # "withdraws" is reserved: escrow moves only through Withdraw
        if style not in STYLES:
            raise CommandRefused(BAD_STYLE)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise CommandRefused("Amount must be a whole number of satoshis")
        if amount == 0:
            raise CommandRefused(ZERO_AMOUNT)
        if user2 == "":
            src, dst = (user1, POOL) if amount < 0 else (POOL, user1)
            amount = abs(amount)
        elif amount < 0:
            raise CommandRefused(NEGATIVE_BETWEEN_USERS)
        else:
            src, dst = user1, user2
        if src != POOL and src not in self.book.accounts:
            raise CommandRefused(UNKNOWN_USER)  # Halo raised a KeyError Fault here (halo-behaviour §6.3)
        liquid, reserve = self.book.balance(src) if src in self.book.accounts else (0, 0)
        if amount > (liquid if style == "liquid" else reserve):
            if src == POOL:
                raise CommandRefused(f"Insufficient funds in {style} pool. Please make the debit before the credit.")
            raise CommandRefused(f"Insufficient {style} balance")
        try:
            (self.book.move_liquid if style == "liquid" else self.book.move_reserve)(src, dst, amount)
        except LedgerError as exc:  # the checks above make this unreachable; never half-apply
            raise CommandRefused(str(exc)) from exc
        return self._persist(True)

    def escrow_withdrawal(self, user: str, amount: int, style: str = "liquid") -> Deferred:
        """Move ``amount`` of ``user``'s ``style`` into the ``withdraws`` escrow (a withdrawal accepted)."""
        self._check_escrow(user, amount, style, user)
        (self.book.move_liquid if style == "liquid" else self.book.move_reserve)(user, WITHDRAWS, amount)
        return self._persist(True)

    def request_withdrawal(self, user: str, amount: int, address: str, style: str = "liquid") -> Deferred:
        """Accept a withdrawal: escrow the amount and record it, in one batch; answers the new ID.

        Limits count only outstanding, accepted requests: 300 liquid, 45 reserve."""
        outstanding = sum(1 for w in self.withdrawals.values() if w.style == style and w.state in OUTSTANDING)
        if style == "liquid" and outstanding >= LIQUID_LIMIT:
            raise CommandRefused("Withdraw limit reached, please wait until transactions clear.")
        if style == "reserve" and outstanding >= RESERVE_LIMIT:
            raise CommandRefused("Reserve withdraw limit reached, please wait until transactions clear.")
        self._check_escrow(user, amount, style, user)
        (self.book.move_liquid if style == "liquid" else self.book.move_reserve)(user, WITHDRAWS, amount)
        withdrawal = Withdrawal(os.urandom(16).hex(), user, amount, address, style, self.reader.height())
        self.withdrawals[withdrawal.id] = withdrawal
        return self._persist(withdrawal.id, [WithdrawalCodec.op(withdrawal)])

    def return_escrow(self, user: str, amount: int, style: str = "liquid") -> Deferred:
        """Give escrowed funds back to ``user`` (a withdrawal declined before it could be paid)."""
        self._check_escrow(user, amount, style, WITHDRAWS)
        (self.book.move_liquid if style == "liquid" else self.book.move_reserve)(WITHDRAWS, user, amount)
        return self._persist(True)

    def _check_escrow(self, user: str, amount: int, style: str, source: str) -> None:
        check_user_name(user)
        if style not in STYLES:
            raise CommandRefused(BAD_STYLE)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise CommandRefused(ZERO_AMOUNT if amount == 0 else "Amount must be a whole number of satoshis")
        if source == user and user not in self.book.accounts:
            raise CommandRefused(UNKNOWN_USER)
        liquid, reserve = self.book.balance(source) if source in self.book.accounts else (0, 0)
        if amount > (liquid if style == "liquid" else reserve):
            raise CommandRefused(f"Insufficient {style} balance")

    def name_deposit(self, name: str, outpoints: Iterable[Outpoint | bytes]) -> Deferred:
        """Name the owner of deposits (``Deposit``); credits at once what is confirmed and unlocked."""
        check_user_name(name)
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

    # -- queries ----------------------------------------------------------------------------------------

    def knows_deposit(self, outpoint: Outpoint | bytes) -> bool:
        if isinstance(outpoint, bytes):
            return any(d.txid == outpoint and d.state is not DepositState.REVERSED for d in self.deposits.deposits.values())
        deposit = self.deposits.deposits.get(outpoint)
        return deposit is not None and deposit.state is not DepositState.REVERSED

    def deposit_records(self) -> dict[str, dict]:
        """Every deposit as ``GetDeposits`` shows it, keyed ``txid:vout``."""
        return {
            f"{d.txid[::-1].hex()}:{d.n}": {
                "name": d.owner or "",
                "registered": int(d.state is DepositState.REGISTERED),
                "status": d.state.value,
                "confirmations": max(self.deposits.depth(d), 0),
                "amount": d.amount,
            }
            for d in self.deposits.deposits.values()
        }

    def spendable(self, address: str = "") -> dict[str, dict]:
        """The exchange's unspent outputs (``GetSpendable``), valued at the network's supply: the deposits,
        and the change of transactions the exchange built itself (marked ``change: 1``)."""
        out = {}
        with self.reader.snapshot() as view:
            supply = view.peg_info().supply
            for d in self.deposits.deposits.values():
                if d.state is DepositState.REVERSED or (address and d.address != address):
                    continue
                if view.utxo(d.txid, d.n) is None:
                    continue
                out[f"{d.txid[::-1].hex()}:{d.n}"] = _spendable_entry(
                    d.fractions, supply, d.address, max(self.deposits.depth(d), 0))
            tip = view.height()
            for txid, n, owner, fractions, height in self._change_outputs(view):
                if address and owner != address:
                    continue
                out[f"{txid[::-1].hex()}:{n}"] = {**_spendable_entry(fractions, supply, owner, tip - height + 1),
                                                  "change": 1}
        return out

    def _change_outputs(self, view: ChainView, txids: Iterable[bytes] | None = None,
                        ) -> list[tuple[bytes, int, str, Fractions, int]]:
        """Unspent outputs on exchange addresses of the transactions the exchange built (its change), as
        ``(txid, n, address, fractions, height)``; only those of ``txids`` when given."""
        found = []
        for txid in self.deposits.own_txids if txids is None else txids:
            located = view.transaction(txid)
            if located is None:
                continue  # not (or no longer) in the active chain
            tx, record = located
            for n, output in enumerate(tx.outputs):
                if output.value <= 0:
                    continue
                address = script_to_address(output.script_pubkey)
                if address in self.deposits.addresses and view.utxo(txid, n) is not None:
                    found.append((txid, n, address, view.fractions(txid, n, output.value), record.height))
        return found

    def is_spendable_change(self, outpoint: Outpoint | bytes) -> bool:
        """Whether ``outpoint`` (or, for a bare txid, any of its outputs) is change the exchange can spend."""
        txid = outpoint if isinstance(outpoint, bytes) else outpoint[0]
        if txid not in self.deposits.own_txids:
            return False
        with self.reader.snapshot() as view:
            return any(isinstance(outpoint, bytes) or n == outpoint[1]
                       for _, n, _, _, _ in self._change_outputs(view, [txid]))

    def balance(self, user: str) -> tuple[int, int] | None:
        """(liquid, reserve) of a user or pseudo account; None when unknown."""
        if user not in self.book.accounts:
            return None
        return self.book.balance(user)

    def exchange_figures(self) -> dict[str, int]:
        """``GetBalance('exchange')``: the liquid and reserve the book holds, the liquid of inputs rated
        subpremium (below 200, halo-behaviour §1.6) and the value of deposits still frozen."""
        liquid = self.book.pool_total
        return {
            "liquid": liquid,
            "reserve": sum(self.book.book) - liquid,
            "subpremium": self._subpremium(),
            "frozen": self.deposits.frozen_total(),
        }

    def _subpremium(self) -> int:
        """Liquid, at the network's supply, of the exchange's unspent inputs whose rating is below 200."""
        total = 0
        with self.reader.snapshot() as view:
            supply = view.peg_info().supply
            for deposit in self.deposits.deposits.values():
                if deposit.state is not DepositState.REGISTERED or view.utxo(deposit.txid, deposit.n) is None:
                    continue
                if is_subpremium(deposit.fractions, supply):
                    total += deposit.fractions.high(supply)
        return total

    @property
    def cycle(self) -> int:
        """The cycle whose balances are current."""
        return self.book.cycle

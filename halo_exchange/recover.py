"""``halo-exchange recover``: rebuild the exchange DB from the exchange's own records when it and its backup are lost.

The seed's procedure (its API notes, last section), automated, on a stopped node (docs/recovery.md):

1. check every input first (:mod:`halo_exchange.recover_input`; then that each named deposit is an output of
   the chain paying one of the keys): any problem is reported with file and line, and nothing is written;
2. rescan the node's unspent outputs for those paying the exchange's keys (progress on stderr);
3. put them through the deposit tracker's own rules: each deposit named in DEPOSITS.csv is registered to its
   user; everything else the exchange owns (unspent, change included) is registered to an exchange-owned
   account, :data:`RECOVERY_ACCOUNT`, and traded into the pool; what the exchange would not have credited yet
   (too few confirmations, frozen) stays a deposit in waiting, as it was;
4. trade the pool back to the users, in each style, so that each holds exactly its recorded liquid and reserve
   at the book's supply (the network's plus the exchange's buffer, as GetBalance reports): first every debit
   (a user whose re-registered deposits exceed the record pays the excess into the pool), then every credit
   from the pool. Where what is held in a style cannot cover every record, each user gets the same proportion
   of its record (pro rata, exact to the satoshi: a sequential drain in file order), named deposits or not;
   ``--cover-reserve-with-liquid`` pays reserve the chain no longer holds from leftover liquid;
5. the new DB is written as one synced batch into ``<exchange>.recovering`` and renamed into place: a crash at
   any point leaves either no new DB or the whole of it.

The planning (:func:`plan_recovery`) is pure: it reads the chain through a view and returns the rebuilt
ledger and its report; the command around it (arguments, messages, exit codes) is
``halo_exchange.cli.run_recover``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TextIO

from halo_exchange.chain.layout import KIND_NORMAL
from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.script import address_to_script, script_to_address
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import EXCHANGE, POOL
from halo_exchange.engine import EXCHANGE_BUFFER
from halo_exchange.errors import HaloExchangeError
from halo_exchange.files import fsync_dir
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.coins import Coin, CoinIndex
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, Deposit, DepositState, DepositTracker
from halo_exchange.ledger.store import (
    BookCodec,
    CoinCodec,
    DepositCodec,
    ExchangeStore,
    Op,
    WalletCodec,
    WatchCodec,
)
from halo_exchange.ledger.wallet import ExchangeWallet
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.recover_input import (
    BalanceRecord,
    DepositRecord,
    KeyRecord,
    Problem,
    RecoveryInputError,
)

# The exchange-owned account the funds that are no user's known deposit are registered to before they go to the
# pool: "exchange", a name the API reserves (no user can have it), printable (GetDeposits shows it as the owner,
# and XML cannot carry a control character), and what it means.
RECOVERY_ACCOUNT = EXCHANGE

MAX_NOTICES = 50  # notices shown in the report (every short user is always listed)

# Exit codes (docs/recovery.md).
EXIT_OK, EXIT_INPUT, EXIT_CANNOT_OPEN, EXIT_SHORT = 0, 1, 2, 3


class RecoveryRefused(HaloExchangeError):
    """``recover`` cannot rebuild from this chain (it holds no block); nothing was written."""


# -- progress ---------------------------------------------------------------------------------------------------

class ScanProgress:
    """Progress of the UTXO rescan on stderr: outputs read, rate and ETA, at most once a second, and only once
    the scan has run a second (short scans stay quiet).

    The total is not known without a second pass; txids are uniform hashes and the UTXO keys are ordered by
    txid, so the first bytes of the current txid tell how far through the key space the scan is.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic, every: float = 1.0) -> None:
        self.stream = stream
        self.clock = clock
        self.every = every
        self.start = clock()
        self.last = self.start
        self.printed = False

    def update(self, done: int, txid: bytes) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        # Keys compare bytewise, so the txid's first stored byte is the most significant: big-endian.
        fraction = max(int.from_bytes(txid[:4], "big"), 1) / 2**32
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = elapsed * (1 - fraction) / fraction
        self.stream.write(f"rescan: {fraction:6.1%} of the UTXO set, {done:,} outputs read, {rate:,.0f}/s, "
                          f"ETA {eta:,.0f} s\n")
        self.stream.flush()
        self.printed = True

    def finish(self, done: int) -> None:
        if self.printed:
            elapsed = self.clock() - self.start
            self.stream.write(f"rescan: done, {done:,} outputs read in {elapsed:,.1f} s\n")
            self.stream.flush()


# -- the report -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserOutcome:
    """What one user was recorded with and what the recovery gave back."""

    user: str
    liquid: int
    reserve: int
    got_liquid: int
    got_reserve: int
    paid_as_liquid: int = 0  # reserve the chain no longer holds, paid in liquid (--cover-reserve-with-liquid)

    @property
    def exact(self) -> bool:
        return self.got_liquid == self.liquid and self.got_reserve == self.reserve

    @property
    def covered(self) -> bool:
        """Not exact, but whole in value: the reserve missing was paid in liquid."""
        return (not self.exact and self.paid_as_liquid > 0 and self.got_liquid == self.liquid + self.paid_as_liquid
                and self.got_reserve + self.paid_as_liquid == self.reserve)

    @property
    def short_liquid(self) -> int:
        return self.liquid - self.got_liquid

    @property
    def short_reserve(self) -> int:
        return self.reserve - self.got_reserve


@dataclass
class RecoveryReport:
    """What the recovery found and did; rendered for the operator."""

    tip: int = -1
    cycle: int = 0
    network_supply: int = 0
    supply: int = 0
    keys: int = 0
    outputs: int = 0
    outputs_value: int = 0
    outputs_liquid: int = 0
    outputs_reserve: int = 0
    named: int = 0
    named_users: int = 0
    waiting: int = 0
    waiting_value: int = 0
    notices: list[str] = field(default_factory=list)
    users: list[UserOutcome] = field(default_factory=list)
    leftover_liquid: int = 0
    leftover_reserve: int = 0
    outcome: str = ""

    @property
    def short(self) -> list[UserOutcome]:
        """Users the recovery could not make whole (neither exactly nor in value)."""
        return [user for user in self.users if not user.exact and not user.covered]

    @property
    def covered(self) -> list[UserOutcome]:
        return [user for user in self.users if user.covered]

    def render(self) -> str:
        short, covered = self.short, self.covered
        lines = [
            "halo-exchange recover",
            f"  chain: tip {self.tip}, cycle {self.cycle}, network supply {self.network_supply}; balances at the "
            f"exchange's supply {self.supply}",
            f"  keys: {self.keys} imported; exchange outputs counted: {self.outputs}, value {self.outputs_value} "
            f"(liquid {self.outputs_liquid}, reserve {self.outputs_reserve}); deposits in waiting: {self.waiting}, "
            f"value {self.waiting_value}",
            f"  deposits re-registered to their users: {self.named} (of {self.named_users} users); the rest "
            f"went to the pool",
        ]
        lines += [f"  notice: {notice}" for notice in self.notices[:MAX_NOTICES]]
        if len(self.notices) > MAX_NOTICES:
            lines.append(f"  ... and {len(self.notices) - MAX_NOTICES} more notices like these")
        exact = len(self.users) - len(short) - len(covered)
        lines.append(f"  users: {len(self.users)} in the balances file, {exact} restored exactly, "
                     + (f"{len(covered)} restored in value (reserve paid as liquid), " if covered else "")
                     + f"{len(short)} short")
        for user in covered:
            lines.append(f"  COVERED: {user.user!r}: reserve short {user.paid_as_liquid} paid as liquid (liquid "
                         f"{user.got_liquid}, reserve {user.got_reserve}; recorded {user.liquid}, {user.reserve})")
        for user in short:
            lines.append(f"  SHORT: {user.user!r}: liquid short {user.short_liquid} (recorded {user.liquid}, "
                         f"restored {user.got_liquid}), reserve short {user.short_reserve} (recorded "
                         f"{user.reserve}, restored {user.got_reserve})")
        lines.append(f"  left over in the pool: liquid {self.leftover_liquid}, reserve {self.leftover_reserve}")
        if self.outcome:
            lines.append(f"  result: {self.outcome}")
        return "\n".join(lines)


# -- planning -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FoundOutput:
    """An unspent output paying one of the exchange's keys."""

    outpoint: OutPoint
    address: str
    value: int
    height: int
    fractions: Fractions
    packed: bytes  # the fractions as the chain stores them: written again as they are, never repacked


@dataclass
class Recovery:
    """The rebuilt ledger (book, deposits, coins, wallet records, watched addresses) and its report."""

    book: Book
    tracker: DepositTracker
    coins: CoinIndex
    wallet_records: dict[str, bytes]
    report: RecoveryReport
    packed: dict[OutPoint, bytes] = field(default_factory=dict)  # each coin's fractions as the chain stores them

    def ops(self) -> list[Op]:
        """Every write of the new exchange DB (one batch)."""
        ops = (BookCodec.full_ops(self.book) + DepositCodec.full_ops(self.tracker, self.packed)
               + CoinCodec.change_ops(self.coins))
        ops += WalletCodec.key_ops(self.wallet_records)
        ops += [WatchCodec.address_op(address) for address in sorted(self.tracker.addresses)]
        return ops


def scan_exchange_outputs(view: ChainView, addresses: set[str],
                          progress: ScanProgress | None = None) -> list[FoundOutput]:
    """Every unspent output paying one of ``addresses``, ordered by outpoint. Coinbase and coinstake outputs
    are left out, as the deposit tracker leaves them out: they were never the exchange's deposits."""
    # Matched by script: encoding every output's address in base58 would cost more than the rest of the scan.
    network = view.network()
    address_of = {address_to_script(address, network): address for address in addresses}
    found: list[FoundOutput] = []
    done = 0
    for txid, n, record in view.iter_utxos():
        done += 1
        if progress is not None and done % 4096 == 0:
            progress.update(done, txid)
        address = address_of.get(record.script)
        if address is None or record.kind != KIND_NORMAL or record.value <= 0:
            continue
        # Unpacked once for the book; the bytes themselves are what the new DB stores (a repack costs as much).
        packed = view.packed_fractions(txid, n)
        fractions = Fractions.from_value(record.value) if packed is None else Fractions.unpack(packed)
        found.append(FoundOutput(OutPoint(txid, n), address, record.value, record.height, fractions,
                                 packed or fractions.pack()))
    if progress is not None:
        progress.finish(done)
    return found


def share_out(available: int, needs: list[int]) -> list[int]:
    """What each need receives from ``available``: every need in full when it covers them all, else the same
    proportion of each (a sequential drain: each takes ``need × left // needed_left``, so the shares add up to
    ``available`` exactly and the last takes the rest)."""
    total = sum(needs)
    if total <= available:
        return list(needs)
    given: list[int] = []
    left, needed_left = available, total
    for need in needs:
        give = need * left // needed_left if needed_left else 0  # all non-negative: floor is truncation here
        left -= give
        needed_left -= need
        given.append(give)
    return given


def check_named_deposits(view: ChainView, deposits: list[DepositRecord], addresses: set[str],
                         path: str) -> tuple[list[Problem], list[str]]:
    """(problems, notices) of DEPOSITS.csv against the chain: each must be an output of the active chain paying
    one of the keys; one already spent is noted and not re-registered (its coins are no longer the exchange's)."""
    problems: list[Problem] = []
    notices: list[str] = []
    network = view.network()
    for record in deposits:
        label = f"{record.outpoint.txid_hex}:{record.outpoint.n}"
        found = view.transaction(record.outpoint.txid)
        if found is None or record.outpoint.n >= len(found[0].outputs):
            problems.append(Problem(path, record.line, f"deposit {label} is not an output of the chain"))
            continue
        script = found[0].outputs[record.outpoint.n].script_pubkey
        address = script_to_address(script, network)
        if address is None or address not in addresses:
            problems.append(Problem(path, record.line, f"deposit {label} pays {address or 'no address'}, not an "
                                                       "address of the keys file: not an exchange output"))
            continue
        if view.utxo(record.outpoint.txid, record.outpoint.n) is None:
            notices.append(f"deposit {label} of {record.user!r} ({path} line {record.line}) is spent: not "
                           "re-registered, its value is in what the exchange still holds")
    return problems, notices


def plan_recovery(view: ChainView, keys: list[KeyRecord], balances: list[BalanceRecord],
                  deposits: list[DepositRecord], *, deposits_path: str = "DEPOSITS.csv",
                  confirmations: int = DEFAULT_CONFIRMATIONS, buffer: int = EXCHANGE_BUFFER,
                  cover_reserve_with_liquid: bool = False, progress: ScanProgress | None = None) -> Recovery:
    """Rebuild the exchange's ledger in memory from the chain and the records; raises RecoveryInputError when
    DEPOSITS.csv disagrees with the chain. Writes nothing.

    With ``cover_reserve_with_liquid``, reserve the pool cannot give is paid from the liquid left over once every
    user has its liquid (pro rata again if that does not cover it all): the users are whole in value, with more
    liquid and less reserve than recorded. That is the case after withdrawals were paid: a payout takes its
    liquid at the network's supply, the book at its own supply (the network's + 3), so the fractions between
    the two left the chain as liquid while the old book still counted them as reserve."""
    wallet = ExchangeWallet({}, None, view.network())
    records: dict[str, bytes] = {}
    for key in keys:
        address, record = wallet.import_key(key.key)
        records[address] = record
    addresses = set(records)
    problems, notices = check_named_deposits(view, deposits, addresses, deposits_path)
    if problems:
        raise RecoveryInputError(problems)

    tip = view.height()
    tip_hash = view.block_hash(tip)
    header = view.block_header(tip)
    if tip_hash is None or header is None:
        raise RecoveryRefused("the node's chain is empty: nothing to recover")
    info = view.peg_info()
    book = Book(info.cycle, min(info.supply + buffer, PEG_SIZE - 1))
    report = RecoveryReport(tip=tip, cycle=info.cycle, network_supply=info.supply, supply=book.supply,
                            keys=len(addresses), notices=notices)

    # Users first, in file order: every recorded user has an account (zero balances too), created in the order
    # a cycle update will walk them.
    for balance in balances:
        book.open_account(balance.user)

    # Every output found enters the deposit tracker as the chain shows it, owned by the user DEPOSITS.csv names;
    # the tracker's own rules then say what would have been credited by now. What would not (fewer confirmations
    # than the setting, a frozen output still locked) was in nobody's recorded balance either: it stays a
    # deposit in waiting, credited to its named user when due, or to whoever Deposit names, like any new one.
    owner_of = {record.outpoint: record.user for record in deposits}
    found = scan_exchange_outputs(view, addresses, progress)
    tracker = DepositTracker(confirmations)
    tracker.addresses = set(addresses)
    # The exchange level with the chain's tip: a restarted engine catches up from here, not from the genesis.
    tracker.restore(
        [Deposit(o.outpoint.txid, o.outpoint.n, o.address, o.value, o.height, o.fractions, DepositState.SEEN,
                 owner_of.get(o.outpoint)) for o in found],
        {}, {tip: (tip_hash, header.time)}, (tip, header.time))
    credits = tracker.reconsider().credits
    unnamed = [d.outpoint for d in tracker.moving()
               if d.state is DepositState.CONFIRMED and d.owner is None and tracker.due(d)]
    credits += tracker.name(RECOVERY_ACCOUNT, unnamed).credits
    packed_of = {o.outpoint: o.packed for o in found}
    coins = CoinIndex()
    packed: dict[OutPoint, bytes] = {}
    named_users: set[str] = set()
    for credit in credits:
        deposit, owner = credit.deposit, credit.owner
        if owner != RECOVERY_ACCOUNT:
            report.named += 1
            named_users.add(owner)
        liquid, reserve = book.credit(owner, deposit.fractions)
        coins.add(Coin(deposit.outpoint, deposit.address, deposit.amount, deposit.fractions, deposit.height,
                       "deposit", packed_fractions=packed_of[deposit.outpoint]))
        packed[deposit.outpoint] = packed_of[deposit.outpoint]
        report.outputs += 1
        report.outputs_value += deposit.amount
        report.outputs_liquid += liquid
        report.outputs_reserve += reserve
    report.named_users = len(named_users)
    for deposit in tracker.moving():
        packed[deposit.outpoint] = packed_of[deposit.outpoint]
        report.waiting += 1
        report.waiting_value += deposit.amount
        why = "not due: frozen or a notary output" if deposit.state is DepositState.CONFIRMED else \
            f"{max(tracker.depth(deposit), 0)} of {confirmations} confirmations"
        owner = f"named for {deposit.owner!r}" if deposit.owner is not None else "not named"
        report.notices.append(f"output {deposit.outpoint} of {deposit.amount} ({why}, {owner}) is a deposit in "
                              "waiting, as it was before the loss: credited when due, in nobody's balance now. If it "
                              "is the change of a recent payout, run recover again once it is confirmed")

    # What is no user's known deposit goes to the pool (the seed's "trade them to the exchange pool").
    if RECOVERY_ACCOUNT in book.accounts:
        liquid, reserve = book.balance(RECOVERY_ACCOUNT)
        if liquid:
            book.move_liquid(RECOVERY_ACCOUNT, POOL, liquid)
        if reserve:
            book.move_reserve(RECOVERY_ACCOUNT, POOL, reserve)
        book.close_account(RECOVERY_ACCOUNT)
    book.open_account(POOL)

    # Each user's allotment of each style is its record when the funds cover every record, else the same
    # proportion of every record. The allotments add up to everything held, in the pool and in the users' own
    # registered deposits alike: so the deposits file decides which deposits show as whose, never a balance.
    # Then debits before credits (as the API asks of one-sided trades): what a user's deposits hold beyond its
    # allotment goes to the pool, and the pool pays each user what its deposits lack.
    pool_liquid, pool_reserve = book.balance(POOL)
    held = [book.balance(b.user) for b in balances]
    allot_liquid = share_out(pool_liquid + sum(h[0] for h in held), [b.liquid for b in balances])
    allot_reserve = share_out(pool_reserve + sum(h[1] for h in held), [b.reserve for b in balances])
    for balance, (liquid, reserve), want_liquid, want_reserve in zip(balances, held, allot_liquid, allot_reserve):
        if liquid > want_liquid:
            book.move_liquid(balance.user, POOL, liquid - want_liquid)
        if reserve > want_reserve:
            book.move_reserve(balance.user, POOL, reserve - want_reserve)
    for balance, (liquid, reserve), want_liquid, want_reserve in zip(balances, held, allot_liquid, allot_reserve):
        if liquid < want_liquid:
            book.move_liquid(POOL, balance.user, want_liquid - liquid)
        if reserve < want_reserve:
            book.move_reserve(POOL, balance.user, want_reserve - reserve)
    paid = [0] * len(balances)
    if cover_reserve_with_liquid:
        missing = [max(b.reserve - book.balance(b.user)[1], 0) for b in balances]
        paid = share_out(book.balance(POOL)[0], missing)
        for balance, amount in zip(balances, paid):
            if amount:
                book.move_liquid(POOL, balance.user, amount)
    for balance, paid_as_liquid in zip(balances, paid):
        got_liquid, got_reserve = book.balance(balance.user)
        report.users.append(UserOutcome(balance.user, balance.liquid, balance.reserve, got_liquid, got_reserve,
                                        paid_as_liquid))
    report.leftover_liquid, report.leftover_reserve = book.balance(POOL)
    problems_found = book.check()
    if problems_found:  # every step above is a checked book operation: this would be a bug, never written
        raise HaloExchangeError("the rebuilt book breaks its invariants: " + "; ".join(problems_found))
    return Recovery(book, tracker, coins, records, report, packed)


# -- the exchange DB on disk -----------------------------------------------------------------------------------

def exchange_db_has_data(path: Path) -> bool:
    """Whether ``path`` holds an exchange DB with anything beyond its schema version. Opening it fails (OSError,
    plyvel.Error) while a node holds it."""
    import plyvel

    if not (path / "CURRENT").exists():
        return False
    db = plyvel.DB(str(path), create_if_missing=False, compression=None)
    try:
        return any(key != b"v" for key in db.iterator(include_value=False))
    finally:
        db.close()


def write_exchange_db(path: Path, ops: list[Op]) -> Path | None:
    """Write ``ops`` as the exchange DB at ``path``: into ``<path>.recovering`` as one synced batch, then
    renamed into place (after whatever was at ``path`` is moved aside, never deleted). Returns where the old
    one went (None if there was none). A ``.recovering`` left by a crashed run is only ever this command's
    unfinished output: it is removed first."""
    staging = path.with_name(path.name + ".recovering")
    if staging.exists():
        shutil.rmtree(staging)
    store = ExchangeStore(str(staging))
    try:
        store.write(ops)
    finally:
        store.close()
    moved: Path | None = None
    if path.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        moved = path.with_name(f"{path.name}.before-recover-{stamp}")
        os.rename(path, moved)
    os.rename(staging, path)
    fsync_dir(path.parent)
    return moved


# -- the command ---------------------------------------------------------------------------------------------------

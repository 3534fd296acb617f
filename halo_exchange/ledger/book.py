"""The exchange book: every account's liquid and reserve, in the pooled-share form (DESIGN.md §5).

An account holds its **reserve** as its own fractions below the effective supply ``s`` (a short int64
array, indexes ``0..s-1``) and its **liquid** as one integer: a share of the book's *pool*, the liquid
fractions (indexes ``s..1199``) of all accounts together. Within a cycle every account's liquid has the
pool's shape, so a liquid trade is two integer updates, and a deposit's liquid joins the pool's shape at
once (the documented difference from the per-user pegops reference, ``halo_exchange.peg.ops``).

At a new cycle the supply moves by a few steps and only the band between the old and the new supply
changes hands: on deflation the pool's fractions in the band are apportioned to the accounts' reserves
by liquid share (a sequential drain, exact per index, so the band empties completely); on inflation each
account's reserve in the band returns to the pool and to its liquid. Cost per account is the band width,
not 1200.

Invariants kept after every operation (``check()`` verifies them):
* per index, Σ account reserves + pool == the book (what deposits brought in minus what left);
* Σ account liquid == Σ pool; liquid + reserve == value for every account; nothing negative.

Memory: an idle account's reserve is kept mostly packed. Its top ``KEEP`` indexes, the band next to the supply
that cycle updates move, stay an array (``Account.reserve``, indexes ``base..``); the deep part below them is
``Account.deep``, packed by ``ledger/packing.py`` (a 1,198-index reserve in about 250 bytes). An operation that
needs the deep part (a deposit, a reserve trade or debit) unpacks it; the ``HOT`` accounts that needed it last
stay whole, and the one that drops out of them is packed again, so an active trader pays no packing and memory
stays bounded. A cycle update only ever touches the top, except an inflation deeper than the top (the slow
path); accounts it left out of shape are re-packed afterwards, a few at a time (:meth:`Book.tidy`).

Pure bookkeeping: no I/O. Durability is ``ledger/store.py``'s job. Partial levels (a pegshift from
withdrawals) are not modelled yet: the effective supply is an integer here.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Iterator

from halo_exchange.commands import is_whole
from halo_exchange.errors import HaloExchangeError
from halo_exchange.ledger import packing
from halo_exchange.peg.fractions import PEG_SIZE, Fractions

# Reserve arrays start as 32-bit entries (half the memory; most fractions of most accounts fit) and become
# 64-bit the first time an entry would not fit.
_SMALL, _LARGE = "i", "q"
_SMALL_MAX = 2**31 - 1
# The packed form (measured: a packed reserve of n indexes takes ~n/5 bytes where its array takes 4n or 8n).
KEEP = 16  # indexes kept as an array above the packed part: more than a cycle update's 3 steps, both ways
KEEP_MIN, KEEP_MAX = 4, 48  # a top outside these after a cycle update is re-packed by tidy()
PACK_FROM = KEEP + 32  # shorter reserves stay whole arrays: packing them would save little
HOT = 1024  # accounts kept whole after an operation needed their deep reserve (at most ~10 MB at supply 1198)


def compact_reserve(values) -> array:
    """A reserve array in the smallest entry size that holds ``values``."""
    values = list(values)
    if values and (max(values) > _SMALL_MAX or min(values) < 0):
        return array(_LARGE, values)
    return array(_SMALL, values)


class LedgerError(HaloExchangeError):
    """A ledger operation was refused (unknown account, not enough funds, bad amount); nothing changed."""


class InsufficientFunds(LedgerError):
    """The account does not hold that much liquid (or reserve)."""


def _apportion(amount: int, band: list[int]) -> list[int]:
    """Split ``amount`` over ``band`` proportionally, exactly, never exceeding an entry (RatioPart's rule).

    ``band`` is non-negative and ``amount <= sum(band)``. Each share is ``floor(b*amount/total)``; the
    shortfall goes one satoshi at a time, from the first index, to entries with room left.
    """
    total = sum(band)
    if amount <= 0 or total == 0:
        return [0] * len(band)
    if amount >= total:
        return list(band)
    shares = [b * amount // total for b in band]
    missing = amount - sum(shares)
    i = 0
    while missing:
        if shares[i] < band[i]:
            shares[i] += 1
            missing -= 1
        i = (i + 1) % len(band)
    return shares


@dataclass(slots=True)
class Account:
    """One account: its own reserve fractions below the supply, and its share of the pooled liquid.

    The reserve is ``deep`` (indexes ``0..base-1``, packed) then ``reserve`` (indexes ``base..length-1``, an
    array in 32-bit entries until one needs 64); above ``length`` every fraction is 0, and ``length`` never
    exceeds the supply. ``base`` is 0 and ``deep`` empty for a reserve kept whole."""

    id: int
    liquid: int
    reserve: array
    reserve_total: int
    deep: bytes = b""
    base: int = 0

    def widen(self) -> array:
        """Switch the array part to 64-bit entries (before a value that may not fit in 32 bits)."""
        if self.reserve.typecode != _LARGE:
            self.reserve = array(_LARGE, self.reserve)
        return self.reserve

    @property
    def value(self) -> int:
        return self.liquid + self.reserve_total

    @property
    def length(self) -> int:
        return self.base + len(self.reserve)

    def reserve_list(self) -> list[int]:
        """The whole reserve, indexes ``0..length-1`` (the account itself is left as it is)."""
        if not self.base:
            return list(self.reserve)
        return packing.unpack(self.deep, self.base) + list(self.reserve)

    def unpack(self) -> array:
        """Make the reserve one whole array again (before an operation on its deep part); returns it."""
        if self.base:
            self.reserve = compact_reserve(packing.unpack(self.deep, self.base) + list(self.reserve))
            self.deep, self.base = b"", 0
        return self.reserve

    def pack(self) -> None:
        """Pack all but the top ``KEEP`` indexes (a short reserve stays whole)."""
        values = self.reserve_list()
        if len(values) < PACK_FROM:
            if self.base:
                self.reserve, self.deep, self.base = compact_reserve(values), b"", 0
            return
        base = len(values) - KEEP
        self.deep, self.base = packing.pack(values[:base]), base
        self.reserve = compact_reserve(values[base:])

    def in_shape(self) -> bool:
        """Whether the reserve is packed as :meth:`pack` leaves it (give or take a cycle update or two)."""
        if self.length < PACK_FROM:
            return not self.base
        return KEEP_MIN <= len(self.reserve) <= KEEP_MAX


class Book:
    """All accounts of the exchange at one cycle and effective supply."""

    def __init__(self, cycle: int = 0, supply: int = 0) -> None:
        if not 0 <= supply < PEG_SIZE:
            raise LedgerError(f"supply {supply} is outside [0, {PEG_SIZE - 1}]")
        self.cycle = cycle
        self.supply = supply
        self.pool = [0] * PEG_SIZE  # the liquid fractions of all accounts (zero below the supply)
        self.pool_total = 0
        self.book = [0] * PEG_SIZE  # Σ of everything credited minus everything debited, per index
        self.accounts: dict[str, Account] = {}
        self.next_id = 1
        # What changed since take_changes(): the store writes exactly this (plus the scalars).
        self._dirty: set[str] = set()
        self._vectors_dirty = False
        # Accounts a cycle update left out of their packed shape, for tidy() to re-pack later; the accounts
        # whose reserve an operation needed lately, kept whole (oldest first).
        self._untidy: set[str] = set()
        self._hot: OrderedDict[str, None] = OrderedDict()
        # A cycle update in steps under way: until it finishes nothing else may change the book.
        self.updating: CycleUpdate | None = None

    def _not_updating(self) -> None:
        if self.updating is not None:
            raise LedgerError(f"a cycle update is under way (to cycle {self.updating.cycle}): the book cannot "
                              "change until it has finished")

    # -- change tracking ----------------------------------------------------------------------------

    def take_changes(self) -> tuple[set[str], bool]:
        """(names of accounts changed, whether the pool/book vectors changed) since the last call."""
        changes = (self._dirty, self._vectors_dirty)
        self._dirty, self._vectors_dirty = set(), False
        return changes

    # -- accounts -----------------------------------------------------------------------------------

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise LedgerError(f"unknown account {name!r}") from None

    def open_account(self, name: str) -> Account:
        """The account ``name``, created empty if it does not exist yet."""
        account = self.accounts.get(name)
        if account is None:
            account = Account(self.next_id, 0, array(_SMALL), 0)
            self.next_id += 1
            self.accounts[name] = account
            self._dirty.add(name)
        return account

    def close_account(self, name: str) -> None:
        """Remove an empty account (a paid or refunded withdrawal escrow); one holding anything stays."""
        self._not_updating()
        account = self.accounts.get(name)
        if account is None or account.liquid or any(account.reserve) or any(account.reserve_list()):
            return
        del self.accounts[name]
        self._untidy.discard(name)
        self._hot.pop(name, None)
        self._dirty.add(name)

    def balance(self, name: str) -> tuple[int, int]:
        """(liquid, reserve) of an account."""
        account = self.account(name)
        return account.liquid, account.reserve_total

    def fractions(self, name: str) -> Fractions:
        """The account's fractions: its reserve plus its share of the pool's shape (for reports and audits).

        The liquid part is ``RatioPart`` of the pool; summed over all accounts it matches the pool's total
        exactly, but not necessarily every index (the pool is shared; per-index truth is the pool itself).
        """
        account = self.account(name)
        values = account.reserve_list()
        values += [0] * (PEG_SIZE - len(values))
        if account.liquid:
            share = Fractions(self.pool).ratio_part(account.liquid).to_list()
            values = [a + b for a, b in zip(values, share)]
        return Fractions(values)

    # -- credits and debits -------------------------------------------------------------------------

    def credit(self, name: str, fractions: Fractions) -> tuple[int, int]:
        """Add coins to an account (a deposit): the fractions below the supply join its reserve, the rest
        joins the pool and its liquid. Returns the (liquid, reserve) credited."""
        self._not_updating()
        values = fractions.to_list()
        if any(v < 0 for v in values):
            raise LedgerError("cannot credit negative fractions")
        s = self.supply
        account = self.open_account(name)
        reserve_part = values[:s]
        self._add_reserve(name, account, reserve_part)
        liquid = 0
        pool, book = self.pool, self.book
        for i in range(s, PEG_SIZE):
            v = values[i]
            if v:
                pool[i] += v
                liquid += v
        for i, v in enumerate(values):
            book[i] += v
        account.liquid += liquid
        self.pool_total += liquid
        self._dirty.add(name)
        self._vectors_dirty = True
        return liquid, sum(reserve_part)

    def _add_reserve(self, name: str, account: Account, part: list[int]) -> None:
        last = max((i for i, v in enumerate(part) if v), default=-1)
        if last < 0:
            return
        reserve = account.unpack()
        if last >= len(reserve):
            reserve.extend([0] * (last + 1 - len(reserve)))
        added = 0
        for i in range(last + 1):
            if part[i]:
                value = reserve[i] + part[i]
                if value > _SMALL_MAX:
                    reserve = account.widen()
                reserve[i] = value
                added += part[i]
        account.reserve_total += added
        self._touched(name, account)

    def reverse_credit(self, name: str, fractions: Fractions) -> None:
        """Take back a credit whose coins left the chain (a deep reorg): the same split as :meth:`credit`.

        Unlike every other operation this may leave the account, or a pool index, negative: the coins are
        gone whatever the account holds now. ``check()`` then reports it, and so does ``audit``.
        """
        self._not_updating()
        values = fractions.to_list()
        s = self.supply
        account = self.open_account(name)
        account.unpack()
        reserve = account.widen()  # a reversal may go negative and beyond 32 bits
        if len(reserve) < s:
            reserve.extend([0] * (s - len(reserve)))
        removed_reserve = 0
        for i in range(s):
            if values[i]:
                reserve[i] -= values[i]
                removed_reserve += values[i]
        account.reserve_total -= removed_reserve
        self._touched(name, account)
        liquid = 0
        for i in range(s, PEG_SIZE):
            if values[i]:
                self.pool[i] -= values[i]
                liquid += values[i]
        for i, v in enumerate(values):
            self.book[i] -= v
        account.liquid -= liquid
        self.pool_total -= liquid
        self._dirty.add(name)
        self._vectors_dirty = True

    def debit_liquid(self, name: str, amount: int) -> Fractions:
        """Take ``amount`` of liquid out of the book (a withdrawal): a slice of the pool's shape."""
        self._not_updating()
        account = self.account(name)
        _check_amount(amount)
        if amount > account.liquid:
            raise InsufficientFunds(f"{name} has {account.liquid} liquid, {amount} asked")
        taken = Fractions(self.pool).ratio_part(amount).to_list()
        for i, v in enumerate(taken):
            if v:
                self.pool[i] -= v
                self.book[i] -= v
        account.liquid -= amount
        self.pool_total -= amount
        self._dirty.add(name)
        self._vectors_dirty = True
        return Fractions(taken)

    def debit_reserve(self, name: str, amount: int) -> Fractions:
        """Take ``amount`` of reserve out of the book: a proportional slice of the account's own reserve."""
        self._not_updating()
        account = self.account(name)
        taken = self._reserve_slice(account, amount)
        self._remove_reserve(name, account, taken)
        for i, v in enumerate(taken):
            self.book[i] -= v
        self._dirty.add(name)
        self._vectors_dirty = True
        return Fractions(taken)

    def _reserve_slice(self, account: Account, amount: int) -> list[int]:
        _check_amount(amount)
        if amount > account.reserve_total:
            raise InsufficientFunds(f"account has {account.reserve_total} reserve, {amount} asked")
        values = account.reserve_list()
        return Fractions(values).ratio_part(amount).to_list()[: len(values)]

    def _remove_reserve(self, name: str, account: Account, taken: list[int]) -> None:
        reserve = account.unpack()
        for i, v in enumerate(taken):
            if v:
                reserve[i] -= v
        account.reserve_total -= sum(taken)
        self._touched(name, account)

    # -- trades -------------------------------------------------------------------------------------

    def move_liquid(self, src: str, dst: str, amount: int) -> None:
        """Move liquid between accounts: within a cycle both hold the pool's shape, so only shares move."""
        # The hot path of the whole exchange: its checks inline (each function call here cost ~5 % of a trade).
        if self.updating is not None:
            self._not_updating()
        if amount.__class__ is not int or amount < 0:  # not a bool either: its class is bool
            _check_amount(amount)
        accounts = self.accounts
        source = accounts.get(src)
        if source is None:
            raise LedgerError(f"unknown account {src!r}")
        if amount > source.liquid:
            raise InsufficientFunds(f"{src} has {source.liquid} liquid, {amount} asked")
        if src == dst:
            return
        target = accounts.get(dst)
        if target is None:
            target = self.open_account(dst)
        source.liquid -= amount
        target.liquid += amount
        dirty = self._dirty
        dirty.add(src)
        dirty.add(dst)

    def move_reserve(self, src: str, dst: str, amount: int) -> None:
        """Move a proportional slice of ``src``'s reserve fractions to ``dst``."""
        self._not_updating()
        source = self.account(src)
        taken = self._reserve_slice(source, amount)
        if src == dst:
            return
        target = self.open_account(dst)
        self._remove_reserve(src, source, taken)
        self._add_reserve(dst, target, taken)
        self._dirty.update((src, dst))

    # -- the cycle boundary ---------------------------------------------------------------------------

    def new_cycle(self, cycle: int, supply: int) -> None:
        """Re-value every account at a new cycle's effective supply (the band between old and new moves), in one
        go; :meth:`cycle_update` does the same in steps."""
        update = self.cycle_update(cycle, supply)
        update.step(len(update.names))
        update.finish()
        if update.moves:
            self.mark_all_changed()

    def mark_all_changed(self) -> None:
        """Every account is to be written (after a cycle update made at once)."""
        self._dirty.update(self.accounts)

    def mark_changed(self, names: Iterable[str]) -> None:
        """These accounts are to be written (the last step of a cycle update in steps)."""
        self._dirty.update(names)

    def cycle_update(self, cycle: int, supply: int, progress: dict | None = None) -> CycleUpdate:
        """A cycle update to run in steps (:class:`CycleUpdate`); ``progress``: where a stopped one was."""
        # A cycle may go back: a reorg across a cycle boundary returns the book to the previous supply.
        if not 0 <= supply < PEG_SIZE:
            raise LedgerError(f"supply {supply} is outside [0, {PEG_SIZE - 1}]")
        self._not_updating()
        update = CycleUpdate(self, cycle, supply, progress)
        self.updating = update
        return update

    # -- memory -----------------------------------------------------------------------------------------

    def _touched(self, name: str, account: Account) -> None:
        """``account`` was just unpacked for an operation: it stays whole while it is among the ``HOT`` accounts
        touched last (an active trader pays no packing), and is packed when it drops out of them."""
        if account.length < PACK_FROM:
            return
        hot = self._hot
        hot[name] = None
        hot.move_to_end(name)
        if len(hot) > HOT:
            coldest, _ = hot.popitem(last=False)
            cold = self.accounts.get(coldest)
            if cold is not None:
                cold.pack()

    def untidy(self) -> int:
        """How many accounts wait for :meth:`tidy`."""
        return len(self._untidy)

    def mark_untidy(self, name: str) -> None:
        """Have :meth:`tidy` re-pack ``name`` (an account loaded in another shape)."""
        self._untidy.add(name)

    def tidy(self, limit: int) -> int:
        """Re-pack up to ``limit`` of the accounts a cycle update left out of shape; returns how many are left.
        Balances do not change (nothing is marked for writing: the stored form is re-packed when next written)."""
        untidy = self._untidy
        for _ in range(min(limit, len(untidy))):
            name = untidy.pop()
            account = self.accounts.get(name)
            if account is not None and name not in self._hot and not account.in_shape():
                account.pack()
        return len(untidy)

    # -- invariants -------------------------------------------------------------------------------------

    def iter_accounts(self) -> Iterator[tuple[str, Account]]:
        return iter(self.accounts.items())

    def check(self) -> list[str]:
        """Every invariant violation, described (empty when the book is sound)."""
        problems = []
        reserves = [0] * PEG_SIZE
        liquid = 0
        for name, account in self.accounts.items():
            values = account.reserve_list()
            if len(values) > self.supply:
                problems.append(f"{name}: reserve reaches index {len(values) - 1} >= supply {self.supply}")
            if account.liquid < 0 or any(v < 0 for v in values):
                problems.append(f"{name}: negative balance")
            if sum(values) != account.reserve_total:
                problems.append(f"{name}: reserve total {account.reserve_total} != its fractions")
            for i, v in enumerate(values):
                reserves[i] += v
            liquid += account.liquid
        if liquid != self.pool_total or sum(self.pool) != self.pool_total:
            problems.append(f"liquid shares {liquid}, pool total {self.pool_total}, pool sum {sum(self.pool)}")
        if any(self.pool[: self.supply]):
            problems.append("pool holds fractions below the supply")
        for i in range(PEG_SIZE):
            if reserves[i] + self.pool[i] != self.book[i]:
                problems.append(f"index {i}: accounts {reserves[i] + self.pool[i]} != book {self.book[i]}")
                break
        return problems


class CycleUpdate:
    """Re-valuing every account at a new cycle's supply, in steps of a few thousand accounts, so that a book of a
    million accounts never holds the reactor for long, and resumable after a crash from :meth:`progress`.

    Only the band between the old and the new supply changes hands:

    * deflation (the supply rises): the pool's fractions in the band become reserve, apportioned by liquid share
      with a sequential drain: each account, in id order, takes ``liquid * band_left // liquid_left``, spread
      over the band by RatioPart's rule, so the last one takes exactly the rest and the band empties per index;
    * inflation (the supply falls): each account's reserve in the band returns to its liquid and to the pool.

    Until :meth:`finish` the book's cycle, supply and pool are the old ones, the accounts before ``position`` are
    re-valued and the rest are not; nothing else may touch the book meanwhile (the engine holds every other
    operation back). :meth:`step` does not mark the accounts it changes for writing: its caller writes them with
    :meth:`progress`, in one batch, so that the stored book always tells which accounts are done.
    """

    def __init__(self, book: Book, cycle: int, supply: int, progress: dict | None = None) -> None:
        self.book = book
        self.cycle = cycle
        self.old = book.supply
        self.new = supply
        self.low, self.high = min(self.old, supply), max(self.old, supply)
        self.names = list(book.accounts)  # id order, the order of the sequential drain
        progress = progress or {}
        self.position: int = progress.get("position", 0)
        # Deflation: what is left of the band, in total, and the liquid of the accounts not yet done.
        self.band: list[int] = progress.get("band", book.pool[self.low:self.high] if supply > self.old else [])
        self.band_total: int = progress.get("band_total", sum(self.band))
        self.remaining_liquid: int = progress.get("remaining_liquid", book.pool_total)
        # Inflation: what the accounts done so far gave back, per band index.
        self.gains: list[int] = progress.get("gains", [0] * (self.high - self.low) if supply < self.old else [])
        if progress and (progress.get("cycle"), progress.get("old"), progress.get("new")) != (cycle, self.old, supply):
            raise LedgerError(f"a stored cycle update ({progress.get('cycle')}: {progress.get('old')} -> "
                              f"{progress.get('new')}) does not match the book (supply {self.old}) or the cycle")

    @property
    def moves(self) -> bool:
        return self.new != self.old

    @property
    def done(self) -> bool:
        return self.position >= len(self.names) or not self.moves

    def progress(self) -> dict:
        """Where the update is, as the store keeps it: enough to resume it exactly."""
        return {"cycle": self.cycle, "old": self.old, "new": self.new, "position": self.position,
                "band": list(self.band), "band_total": self.band_total, "remaining_liquid": self.remaining_liquid,
                "gains": list(self.gains)}

    def step(self, limit: int) -> list[str]:
        """Re-value up to ``limit`` more accounts; the names of those changed."""
        if not self.moves:
            return []
        names = self.names[self.position:self.position + limit]
        self.position += len(names)
        if self.new > self.old:
            return self._deflate(names)
        return self._inflate(names)

    def _deflate(self, names: list[str]) -> list[str]:
        book, low, high, band = self.book, self.low, self.high, self.band
        changed = []
        for name in names:
            account = book.accounts[name]
            liquid = account.liquid
            if liquid == 0 or self.band_total == 0:
                continue
            amount = liquid * self.band_total // self.remaining_liquid
            self.remaining_liquid -= liquid
            if amount == 0:
                continue
            shares = _apportion(amount, band)
            reserve = account.reserve  # the band is above the packed part: only the array grows
            top = low - account.base
            if len(reserve) < high - account.base:
                reserve.extend([0] * (high - account.base - len(reserve)))
                if len(reserve) > KEEP_MAX or (not account.base and len(reserve) >= PACK_FROM):
                    book._untidy.add(name)
            for j, share in enumerate(shares):
                if share:
                    value = reserve[top + j] + share
                    if value > _SMALL_MAX:
                        reserve = account.widen()
                    reserve[top + j] = value
                    band[j] -= share
            self.band_total -= amount
            account.reserve_total += amount
            account.liquid -= amount
            changed.append(name)
        return changed

    def _inflate(self, names: list[str]) -> list[str]:
        book, low, high, gains = self.book, self.low, self.high, self.gains
        changed = []
        for name in names:
            account = book.accounts[name]
            if account.length <= low:
                continue
            if account.base > low:  # deeper than the array part: the slow path, the whole reserve unpacked
                account.unpack()
                book._untidy.add(name)
            reserve, base = account.reserve, account.base
            top = min(high, account.length)
            freed = 0
            for i in range(low, top):
                v = reserve[i - base]
                if v:
                    gains[i - low] += v
                    freed += v
            del reserve[low - base:]
            if base and len(reserve) < KEEP_MIN:
                book._untidy.add(name)
            if freed:
                account.reserve_total -= freed
                account.liquid += freed
            changed.append(name)
        return changed

    def finish(self) -> None:
        """After the last step: the pool takes the band's new shape, and the book its new cycle and supply."""
        book = self.book
        if self.position < len(self.names) and self.moves:
            raise LedgerError(f"cycle update finished at account {self.position} of {len(self.names)}")
        if self.new > self.old:
            if self.band_total != 0:
                raise LedgerError("deflation band must empty")
            moved = sum(book.pool[self.low:self.high])
            book.pool[self.low:self.high] = self.band
            book.pool_total -= moved
        elif self.new < self.old:
            for j, gain in enumerate(self.gains):
                book.pool[self.low + j] += gain
            book.pool_total += sum(self.gains)
        if self.moves:
            book._vectors_dirty = True
        book.cycle = self.cycle
        book.supply = self.new
        book.updating = None


def _check_amount(amount: int) -> None:
    if not is_whole(amount) or amount < 0:
        raise LedgerError(f"amount must be a non-negative number of satoshis, got {amount!r}")

"""The exchange DB: the plugin's own LevelDB, written only in atomic, synced batches, with group commit.

Every engine step becomes one ``write_batch(transaction=True, sync=True)``: all of it reaches the disk or
none of it does, and a caller is answered only once its batch is durable ("acknowledged means durable").
Steps that arrive in the same reactor turn share one batch (:class:`GroupCommit`), so throughput does not
pay one fsync per call. The key layout is documented in ``docs/exchange-db.md``; this module owns it:
every key prefix is in the table below, and each record kind has one codec here that builds its keys and
packs and parses its values. :func:`load_state` reads everything the engine, ``audit`` and
``encrypt-wallet`` need in one place.

A failed write leaves memory ahead of the disk; the engine must then stop and reload from the store (the
DB itself stays at its last good batch).
"""

from __future__ import annotations

import gc
import json
import logging
import struct
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import plyvel
from twisted.internet.defer import Deferred

from halo_exchange.chain.tx import OutPoint
from halo_exchange.errors import DecodeError, HaloExchangeError
from halo_exchange.ledger.book import Account, Book, compact_reserve
from halo_exchange.ledger.coins import Coin, CoinIndex
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, Deposit, DepositState, DepositTracker
from halo_exchange.ledger.wallet import ExchangeWallet, KdfParams
from halo_exchange.ledger.withdrawals import Batch, BatchKind, BatchState, Withdrawal, WithdrawalState
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.serialize import ByteReader, pack_bytes, pack_i64, pack_u8, pack_u32, pack_u64

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: accounts keep their deep reserve packed (ledger/packing.py); a schema-1 DB is upgraded

# Key prefixes (one byte; never reuse a retired one).
SCHEMA = b"v"  # -> u32 schema version
BOOK_STATE = b"s"  # -> i64 cycle, u16 supply, i64 pool total, u32 next account id
BOOK_POOL = b"p"  # -> 1200 x i64: the pooled liquid fractions
BOOK_TOTALS = b"b"  # -> 1200 x i64: the book (everything credited minus everything debited)
ACCOUNT = b"a"  # + utf-8 name -> an account: id, liquid, reserve total, the packed deep reserve and its top
DEPOSIT = b"d"  # + txid + u32 n -> a deposit record
OWNER_WAITING = b"w"  # + txid + u32 n -> utf-8 owner named for an output whose block left the chain
APPLIED = b"h"  # + u32 BE height -> block hash + u32 time of a block the deposits tracker applied
TRACKER_TIP = b"t"  # -> i64 height + u32 time of the tracker's last applied block
ADDRESS = b"A"  # + address -> b"" : a deposit address of the exchange wallet
OWN_TX = b"o"  # + txid -> b"" : a transaction the exchange built (its outputs are change)
SETTINGS = b"c"  # -> JSON object of exchange settings
WALLET_KEY = b"k"  # + address -> u8 kind ‖ (32-byte secret | 12-byte nonce ‖ AES-GCM ciphertext)
WALLET_META = b"W"  # -> JSON: wallet encryption parameters and the sealed check value
WITHDRAWAL = b"x"  # + ascii ID -> JSON withdrawal record
BATCH = b"B"  # + ascii master ID -> JSON batch record (a payout or maintenance transaction the exchange signed)
COIN = b"u"  # + txid + u32 n -> a coin record: an output the exchange can spend (or spent, kept for reorgs)
PAYOUT_STATE = b"P"  # -> JSON: payout counters (maintenance costs not yet recovered)
CYCLE_UPDATE = b"U"  # -> JSON: a cycle update under way (ledger/book.py CycleUpdate.progress), absent otherwise
EXEC_RECORD = b"e"  # + 32-byte command hash -> JSON: a signed exec command that ran (its replay guard and outcome)
SEQUENCE = b"n"  # -> u64 number of the last batch written (the backup journal numbers batches the same way)

Op = tuple[bytes, "bytes | None"]  # a put (value) or a delete (None)

_VECTOR = struct.Struct(f"<{PEG_SIZE}q")
_STATE = struct.Struct("<qHqI")
_ACCOUNT_HEAD = struct.Struct("<IqqHHIB")  # id, liquid, reserve total, length, base, len(deep), entry width
_ENTRY_CODES = {array("i").itemsize: "i", array("q").itemsize: "q"}
_BIG_ENDIAN = sys.byteorder == "big"  # stored little-endian, as every integer of the DB


class StoreError(HaloExchangeError):
    """The exchange DB cannot be opened or written (wrong schema, I/O failure)."""


Mirror = Callable[[int, "list[Op]"], None]


class ExchangeStore:
    """The plugin's LevelDB with its schema version checked on open.

    Every batch gets the next number of :attr:`sequence`, written in the batch itself (key ``SEQUENCE``), so
    the DB always says how many batches it holds; a continuous backup (``mirror``) receives each batch with
    its number just before it is written here, and numbers its journal the same way.
    """

    def __init__(self, path: str) -> None:
        self.db = plyvel.DB(path, create_if_missing=True, compression=None)
        raw_sequence = self.db.get(SEQUENCE)
        self.sequence = 0 if raw_sequence is None else int.from_bytes(raw_sequence, "little")
        # Told (number, ops) of each batch just before it is written here: the continuous backup. An
        # exception from it fails the write as the DB's own failure would (backup_failure = stop).
        self.mirror: Mirror | None = None
        # Told the number of a batch the mirror had and the DB then refused, so that the backup cancels it.
        self.mirror_abort: Callable[[int], None] | None = None
        # Batches come from the reactor thread and from a cycle update's writer (a thread): one at a time, so
        # that numbers, the mirror's journal and the DB agree on their order.
        self._writing = threading.RLock()
        raw = self.db.get(SCHEMA)
        if raw is None:
            if next(self.db.iterator(include_value=False), None) is not None:
                self.db.close()
                raise StoreError(f"{path} holds data but no schema version: not an exchange DB")
            self.db.put(SCHEMA, pack_u32(SCHEMA_VERSION), sync=True)
        elif raw == pack_u32(1):
            self._upgrade_from_1(path)
        elif raw != pack_u32(SCHEMA_VERSION):
            self.db.close()
            raise StoreError(f"{path} has exchange DB schema {int.from_bytes(raw, 'little')}, "
                             f"this code reads {SCHEMA_VERSION}")

    def _upgrade_from_1(self, path: str) -> None:
        """Schema 1 kept every reserve whole (u16 n, n x i64): re-write each account packed, in one batch with
        the new version (all or nothing: a crash leaves a schema-1 DB, upgraded at the next open)."""
        ops: list[Op] = []
        for key, value in self.db.iterator(prefix=ACCOUNT):
            account = BookCodec.unpack_account_v1(value)
            account.pack()
            ops.append((key, BookCodec.pack_account(account)))
        ops.append((SCHEMA, pack_u32(SCHEMA_VERSION)))
        self.write(ops)
        log.info("exchange DB %s upgraded from schema 1 to %d (%d accounts packed)", path, SCHEMA_VERSION,
                 len(ops) - 1)

    def close(self) -> None:
        with self._writing:  # never under a batch being written (a cycle update writes from a thread)
            if not self.db.closed:
                self.db.close()

    def exclusive(self) -> Any:
        """A context in which no batch is being written, nor begins: for what must see the DB, its sequence and
        the mirror agree (the backup's snapshot switches journal segments in one)."""
        return self._writing

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)

    def iterator(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.db.iterator(prefix=prefix)

    def write(self, ops: Iterable[Op]) -> None:
        """Apply ``ops`` in order as one atomic, synced batch, numbered; the mirror has it first."""
        batch_ops = list(ops)
        with self._writing:
            sequence = self.sequence + 1
            batch_ops.append((SEQUENCE, pack_u64(sequence)))
            if self.mirror is not None:
                # The backup first: a batch it refuses is written nowhere, so a call answered with that failure
                # did not happen. A kill between the two leaves the backup one unanswered batch ahead, which the
                # next start drops (docs/backup.md).
                self.mirror(sequence, batch_ops)
            try:
                with self.db.write_batch(transaction=True, sync=True) as batch:
                    for key, value in batch_ops:
                        if value is None:
                            batch.delete(key)
                        else:
                            batch.put(key, value)
            except Exception:
                if self.mirror is not None and self.mirror_abort is not None:
                    self.mirror_abort(sequence)  # its callers hear it was not made: nor will a restore make it
                raise
            self.sequence = sequence


class GroupCommit:
    """Collects the writes submitted in one reactor turn into one synced batch.

    ``submit(ops)`` returns a Deferred that fires once those ops are on disk. The first submission of a turn
    schedules a flush for the end of the turn (``call_later(0, ...)``, normally ``reactor.callLater``); every
    submission until then joins the same batch, in order. The write happens on the reactor thread: a synced
    LevelDB batch takes about 0.2 ms here, and handing it to a writer thread, or the fsync to a helper process,
    was measured slower (docs/api.md).

    ``collect``, when set, is called as a batch is flushed and returns the ops of what changed in memory since
    the last batch (the engine's change records), written after the submitted ops. Reading them once per
    batch rather than once per call packs a record that several calls of a turn changed (a payer's account,
    the book's scalars) once. The submitted ops and the collected ones never share a key (docs/exchange-db.md:
    settings, wallet, addresses, exec records and the cycle update's record are submitted; balances,
    deposits and payouts are collected). Whoever changes memory outside the turn's commands must not do it
    between a submission and its flush: a cycle update's first step waits for that batch (engine.py).

    A batch that cannot be written fails every caller waiting on it, and the commit stays ``failed`` for
    good: memory is then ahead of the disk, and a later batch (holding only the keys changed since) would
    leave the DB inconsistent, so every later submission fails too until the engine is reloaded from the store.
    """

    def __init__(self, store: ExchangeStore, call_later: Callable[..., object],
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._call_later = call_later
        self._clock = clock
        self._ops: list[Op] = []
        self._waiting: list[Deferred] = []
        self.failure: Exception | None = None
        self.on_failure: Callable[[Exception], object] | None = None  # told once, when the first batch fails
        self.collect: Callable[[], list[Op]] | None = None
        self.batches_written = 0
        self.last_write: float | None = None  # wall-clock time of the last batch written (the operator's status)

    def submit(self, ops: Sequence[Op]) -> Deferred:
        done: Deferred = Deferred()
        if self.failure is not None:
            done.errback(StoreError(f"the exchange DB failed earlier ({self.failure}); restart to reload"))
            return done
        if not self._waiting:
            self._call_later(0, self._flush)
        self._ops.extend(ops)
        self._waiting.append(done)
        return done

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def flush_now(self) -> None:
        """Write what is pending without waiting for the end of the turn (at shutdown)."""
        self._flush()

    def _flush(self) -> None:
        if not self._waiting or self.failure is not None:
            return  # already written by flush_now(), or failed before
        ops, waiting = self._ops, self._waiting
        self._ops, self._waiting = [], []
        try:
            if self.collect is not None:
                ops += self.collect()
            self._store.write(ops)
        except Exception as exc:  # every caller of this batch learns it failed
            self.failed(exc, len(ops))
            for done in waiting:
                done.errback(StoreError(f"write failed: {exc}"))
            return
        self.wrote()
        for done in waiting:
            done.callback(None)

    def wrote(self) -> None:
        """A batch reached the disk (this one's, or one written apart: a cycle update's step)."""
        self.batches_written += 1
        self.last_write = self._clock()

    def failed(self, exc: Exception, ops: int) -> None:
        """A batch could not be written (this one's, or one written apart): no later one may be."""
        log.error("exchange DB batch of %d ops not written: %s", ops, exc)  # the DB's failure or the backup's
        if self.failure is None:
            self.failure = exc
            if self.on_failure is not None:
                self.on_failure(exc)


class BookCodec:
    """How a :class:`Book` is kept in the exchange DB, and which keys a change touches."""

    @staticmethod
    def account_key(name: str) -> bytes:
        return ACCOUNT + name.encode("utf-8")

    @staticmethod
    def pack_account(account: Account) -> bytes:
        """``u32 id ‖ i64 liquid ‖ i64 reserve total ‖ u16 length ‖ u16 base ‖ u32 len(deep) ‖ u8 width ‖ deep ‖
        (length - base) x width-byte entries``: the reserve as it is in memory (packed deep part, then its top
        in 4- or 8-byte entries), so that loading a million accounts is slicing, not unpacking."""
        reserve = account.reserve
        if _BIG_ENDIAN:
            reserve = array(reserve.typecode, reserve)
            reserve.byteswap()
        return (_ACCOUNT_HEAD.pack(account.id, account.liquid, account.reserve_total, account.length, account.base,
                                   len(account.deep), reserve.itemsize) + account.deep + reserve.tobytes())

    @staticmethod
    def unpack_account(value: bytes) -> Account:
        try:
            account_id, liquid, total, length, base, deep_size, width = _ACCOUNT_HEAD.unpack_from(value)
            reserve = array(_ENTRY_CODES[width])
        except (struct.error, KeyError) as exc:
            raise DecodeError(f"account record is damaged: {exc}") from None
        start = _ACCOUNT_HEAD.size
        top = start + deep_size
        if base > length or (base == 0) != (deep_size == 0) or len(value) != top + width * (length - base):
            raise DecodeError("account record is damaged: its sizes do not add up")
        reserve.frombytes(value[top:])
        if _BIG_ENDIAN:
            reserve.byteswap()
        return Account(account_id, liquid, reserve, total, value[start:top], base)

    @staticmethod
    def unpack_account_v1(value: bytes) -> Account:
        """An account as schema 1 kept it (the whole reserve, n x i64)."""
        reader = ByteReader(value)
        account_id = reader.u32()
        liquid = reader.i64()
        n = reader.u16()
        stored = array("q")
        stored.frombytes(reader.read(8 * n))
        reader.expect_end("account")
        return Account(account_id, liquid, compact_reserve(stored), sum(stored))

    @classmethod
    def account_ops(cls, book: Book, names: Iterable[str]) -> list[Op]:
        """Puts of the named accounts as they are now (deletes for accounts that no longer exist)."""
        ops: list[Op] = []
        for name in names:
            account = book.accounts.get(name)
            ops.append((cls.account_key(name), None if account is None else cls.pack_account(account)))
        return ops

    @staticmethod
    def state_ops(book: Book, vectors: bool = True) -> list[Op]:
        """The book's scalars, and (``vectors``) its pool and totals vectors."""
        ops: list[Op] = [(BOOK_STATE, _STATE.pack(book.cycle, book.supply, book.pool_total, book.next_id))]
        if vectors:
            ops.append((BOOK_POOL, _VECTOR.pack(*book.pool)))
            ops.append((BOOK_TOTALS, _VECTOR.pack(*book.book)))
        return ops

    @classmethod
    def full_ops(cls, book: Book) -> list[Op]:
        return cls.state_ops(book) + cls.account_ops(book, book.accounts)

    @classmethod
    def change_ops(cls, book: Book) -> list[Op]:
        """The writes that bring the stored book up to date with ``book`` (consumes its change record)."""
        names, vectors = book.take_changes()
        return cls.state_ops(book, vectors) + cls.account_ops(book, sorted(names))

    @classmethod
    def load(cls, store: ExchangeStore) -> Book | None:
        """The book kept in ``store`` (accounts in creation order), or None for a new DB."""
        raw_state = store.get(BOOK_STATE)
        if raw_state is None:
            return None
        try:
            cycle, supply, pool_total, next_id = _STATE.unpack(raw_state)
            book = Book(cycle, supply)
            book.pool = list(_VECTOR.unpack(store.get(BOOK_POOL) or b""))
            book.book = list(_VECTOR.unpack(store.get(BOOK_TOTALS) or b""))
        except struct.error as exc:
            raise DecodeError(f"exchange DB book state is damaged: {exc}") from exc
        book.pool_total = pool_total
        book.next_id = next_id
        # A million new objects would run the cyclic collector over the whole heap again and again (measured:
        # most of the load's time); none of them can form a cycle, so it is off while they are made.
        collecting = gc.isenabled()
        gc.disable()
        try:
            unpack = cls.unpack_account
            accounts = [(key[1:].decode("utf-8"), unpack(value)) for key, value in store.iterator(ACCOUNT)]
        finally:
            if collecting:
                gc.enable()
        accounts.sort(key=lambda item: item[1].id)
        book.accounts = dict(accounts)
        for name, account in accounts:
            if not account.in_shape():  # stored whole (it was in use) or grown by cycle updates: re-pack later
                book.mark_untidy(name)
        return book


_STATES = list(DepositState)


class DepositCodec:
    """How the deposit tracker is kept in the exchange DB."""

    @staticmethod
    def outpoint_key(prefix: bytes, outpoint: OutPoint) -> bytes:
        return prefix + outpoint.txid + struct.pack("<I", outpoint.n)

    @staticmethod
    def outpoint_of(key: bytes) -> OutPoint:
        return OutPoint(key[1:33], struct.unpack("<I", key[33:37])[0])

    @staticmethod
    def pack_deposit(deposit: Deposit, packed_fractions: bytes | None = None) -> bytes:
        """``packed_fractions``: the deposit's fractions already packed (as the chain stores them), to skip the
        repack, most of what writing a deposit costs."""
        return (
            pack_bytes(deposit.address.encode("ascii"))
            + pack_i64(deposit.amount)
            + pack_u32(deposit.height)
            + pack_u8(_STATES.index(deposit.state))
            + pack_bytes((deposit.owner or "").encode("utf-8"))
            + pack_u8(deposit.owner is not None)
            + (packed_fractions or deposit.fractions.pack())
        )

    @staticmethod
    def unpack_deposit(outpoint: OutPoint, value: bytes) -> Deposit:
        reader = ByteReader(value)
        address = reader.var_bytes().decode("ascii")
        amount, height, state = reader.i64(), reader.u32(), _STATES[reader.u8()]
        owner = reader.var_bytes().decode("utf-8")
        named = reader.u8()
        fractions = Fractions.read(reader)
        reader.expect_end("deposit")
        return Deposit(outpoint.txid, outpoint.n, address, amount, height, fractions, state, owner if named else None)

    @classmethod
    def change_ops(cls, tracker: DepositTracker) -> list[Op]:
        """The writes that bring the stored tracker up to date (consumes its change record)."""
        outpoints, heights = tracker.take_changes()
        ops: list[Op] = []
        for outpoint in sorted(outpoints):
            deposit = tracker.deposits.get(outpoint)
            ops.append((cls.outpoint_key(DEPOSIT, outpoint), None if deposit is None else cls.pack_deposit(deposit)))
            owner = tracker.owner_waiting(outpoint)
            ops.append((cls.outpoint_key(OWNER_WAITING, outpoint), None if owner is None else owner.encode("utf-8")))
        for height in sorted(heights):
            applied = tracker.applied_block(height)
            key = APPLIED + struct.pack(">I", height)
            ops.append((key, None if applied is None else applied[0] + pack_u32(applied[1])))
        height, time = tracker.tip
        ops.append((TRACKER_TIP, pack_i64(height) + pack_u32(time)))
        return ops

    @classmethod
    def full_ops(cls, tracker: DepositTracker, packed: dict[OutPoint, bytes] | None = None) -> list[Op]:
        """The writes that store the whole tracker (a rebuilt one: ``recover``), whatever its change record says;
        ``packed``: fractions already packed, by outpoint (see :meth:`pack_deposit`)."""
        tracker.take_changes()
        packed = packed or {}
        ops: list[Op] = [(cls.outpoint_key(DEPOSIT, outpoint), cls.pack_deposit(deposit, packed.get(outpoint)))
                         for outpoint, deposit in sorted(tracker.deposits.items())]
        ops += [(cls.outpoint_key(OWNER_WAITING, outpoint), owner.encode("utf-8"))
                for outpoint, owner in sorted(tracker.owners_waiting().items())]
        for height, (block_hash, block_time) in sorted(tracker.applied_blocks().items()):
            ops.append((APPLIED + struct.pack(">I", height), block_hash + pack_u32(block_time)))
        tip_height, tip_time = tracker.tip
        ops.append((TRACKER_TIP, pack_i64(tip_height) + pack_u32(tip_time)))
        return ops

    @classmethod
    def load(cls, store: ExchangeStore, tracker: DepositTracker) -> None:
        """Fill ``tracker`` with what the store kept (nothing for a new DB)."""
        deposits = [
            cls.unpack_deposit(cls.outpoint_of(key), value)
            for key, value in store.iterator(DEPOSIT)
        ]
        waiting = {
            cls.outpoint_of(key): value.decode("utf-8")
            for key, value in store.iterator(OWNER_WAITING)
        }
        applied = {
            struct.unpack(">I", key[1:5])[0]: (value[:32], int.from_bytes(value[32:36], "little"))
            for key, value in store.iterator(APPLIED)
        }
        raw_tip = store.get(TRACKER_TIP)
        tip = (-1, 0)
        if raw_tip is not None:
            reader = ByteReader(raw_tip)
            tip = (reader.i64(), reader.u32())
        tracker.restore(deposits, waiting, applied, tip)


class SettingsCodec:
    """The exchange settings the API sets: one JSON object under ``SETTINGS``."""

    @staticmethod
    def ops(settings: dict) -> list[Op]:
        return [(SETTINGS, json.dumps(settings, sort_keys=True).encode())]

    @staticmethod
    def load(store: ExchangeStore) -> dict:
        raw = store.get(SETTINGS)
        return json.loads(raw) if raw else {}


class WatchCodec:
    """What the deposit tracker watches: the exchange's deposit addresses and its own transactions."""

    @staticmethod
    def address_op(address: str) -> Op:
        return (ADDRESS + address.encode("ascii"), b"")

    @staticmethod
    def own_tx_op(txid: bytes) -> Op:
        return (OWN_TX + txid, b"")

    @staticmethod
    def load(store: ExchangeStore, tracker: DepositTracker) -> None:
        tracker.addresses = {key[len(ADDRESS):].decode("ascii") for key, _ in store.iterator(ADDRESS)}
        tracker.own_txids = {key[len(OWN_TX):] for key, _ in store.iterator(OWN_TX)}


class WalletCodec:
    """The exchange wallet's key records (by address) and its encryption metadata."""

    @staticmethod
    def key_ops(records: dict[str, bytes]) -> list[Op]:
        return [(WALLET_KEY + address.encode("ascii"), record) for address, record in records.items()]

    @staticmethod
    def meta_op(meta: dict) -> Op:
        return (WALLET_META, json.dumps(meta, sort_keys=True).encode())

    @staticmethod
    def load(store: ExchangeStore) -> tuple[dict[str, bytes], dict | None]:
        """(key records by address, encryption metadata or None for a plain wallet)."""
        records = {key[len(WALLET_KEY):].decode("ascii"): value for key, value in store.iterator(WALLET_KEY)}
        raw_meta = store.get(WALLET_META)
        return records, json.loads(raw_meta) if raw_meta else None


class WithdrawalCodec:
    """Withdrawal requests, one JSON record per ID."""

    @staticmethod
    def key(withdrawal_id: str) -> bytes:
        return WITHDRAWAL + withdrawal_id.encode("ascii")

    @classmethod
    def op(cls, withdrawal: Withdrawal) -> Op:
        record = {
            "id": withdrawal.id, "user": withdrawal.user, "amount": withdrawal.amount, "address": withdrawal.address,
            "style": withdrawal.style, "height": withdrawal.height, "state": withdrawal.state.value,
            "cycle": withdrawal.cycle, "commission": withdrawal.commission, "paid": withdrawal.paid,
            "batch": withdrawal.batch, "client_id": withdrawal.client_id, "note": withdrawal.note,
            "seq": withdrawal.seq,
        }
        return (cls.key(withdrawal.id), json.dumps(record, sort_keys=True).encode())

    @classmethod
    def delete_op(cls, withdrawal_id: str) -> Op:
        return (cls.key(withdrawal_id), None)

    @staticmethod
    def unpack(value: bytes) -> Withdrawal:
        record = json.loads(value)
        record["state"] = WithdrawalState(record["state"])
        if "paid" not in record:  # a request accepted before payouts existed: nothing drifted yet
            record["paid"] = record["amount"]
        return Withdrawal(**record)

    @classmethod
    def load(cls, store: ExchangeStore) -> dict[str, Withdrawal]:
        return {key[len(WITHDRAWAL):].decode("ascii"): cls.unpack(value) for key, value in store.iterator(WITHDRAWAL)}


class BatchCodec:
    """The transactions the exchange signed, one JSON record per master ID."""

    @staticmethod
    def key(master_id: str) -> bytes:
        return BATCH + master_id.encode("ascii")

    @classmethod
    def op(cls, batch: Batch) -> Op:
        record = {
            "master_id": batch.master_id, "kind": batch.kind.value, "raw": batch.raw, "txid": batch.txid,
            "in0": batch.in0, "inputs": batch.inputs, "members": batch.members, "change": batch.change,
            "state": batch.state.value,
            "built_height": batch.built_height, "block": batch.block, "txid2": batch.txid2,
            "outflow": batch.outflow, "cost": batch.cost, "recovered": batch.recovered,
            "submissions": batch.submissions, "conflict": batch.conflict, "conflict_height": batch.conflict_height,
            "debited": batch.debited,
        }
        return (cls.key(batch.master_id), json.dumps(record, sort_keys=True).encode())

    @classmethod
    def delete_op(cls, master_id: str) -> Op:
        return (cls.key(master_id), None)

    @staticmethod
    def unpack(value: bytes) -> Batch:
        record = json.loads(value)
        record["kind"] = BatchKind(record["kind"])
        record["state"] = BatchState(record["state"])
        return Batch(**record)

    @classmethod
    def load(cls, store: ExchangeStore) -> dict[str, Batch]:
        return {key[len(BATCH):].decode("ascii"): cls.unpack(value) for key, value in store.iterator(BATCH)}


class CoinCodec:
    """The coin index: one record per outpoint."""

    @classmethod
    def pack(cls, coin: Coin) -> bytes:
        return (
            pack_bytes(coin.address.encode("ascii"))
            + pack_i64(coin.value)
            + pack_i64(coin.height)
            + pack_bytes(coin.origin.encode("ascii"))
            + pack_bytes((coin.lock or "").encode("ascii"))
            + pack_i64(coin.spent_height)
            + pack_bytes(coin.spent_by)
            + cls._fractions(coin)
        )

    @staticmethod
    def _fractions(coin: Coin) -> bytes:
        if not coin.packed_fractions:
            coin.packed_fractions = coin.fractions.pack()
        return coin.packed_fractions

    @staticmethod
    def unpack(outpoint: OutPoint, value: bytes) -> Coin:
        reader = ByteReader(value)
        address = reader.var_bytes().decode("ascii")
        amount, height = reader.i64(), reader.i64()
        origin = reader.var_bytes().decode("ascii")
        lock = reader.var_bytes().decode("ascii") or None
        spent_height = reader.i64()
        spent_by = reader.var_bytes()
        packed = value[len(value) - reader.remaining():]
        fractions = Fractions.read(reader)
        reader.expect_end("coin")
        return Coin(outpoint, address, amount, fractions, height, origin, lock, spent_height, spent_by, packed)

    @classmethod
    def change_ops(cls, index: CoinIndex) -> list[Op]:
        ops: list[Op] = []
        for outpoint in sorted(index.take_changes()):
            coin = index.get(outpoint)
            key = DepositCodec.outpoint_key(COIN, outpoint)
            ops.append((key, None if coin is None else cls.pack(coin)))
        return ops

    @classmethod
    def load(cls, store: ExchangeStore) -> CoinIndex:
        index = CoinIndex()
        index.restore(cls.unpack(DepositCodec.outpoint_of(key), value) for key, value in store.iterator(COIN))
        return index


class CycleUpdateCodec:
    """A cycle update done in steps: each step's batch holds the accounts it re-valued and where it stopped, so a
    restart resumes it exactly; the last step's batch deletes the record with the book's new cycle and supply."""

    @staticmethod
    def op(progress: dict) -> Op:
        return (CYCLE_UPDATE, json.dumps(progress, sort_keys=True).encode())

    @staticmethod
    def delete_op() -> Op:
        return (CYCLE_UPDATE, None)

    @staticmethod
    def load(store: ExchangeStore) -> dict | None:
        raw = store.get(CYCLE_UPDATE)
        return json.loads(raw) if raw else None


class PayoutStateCodec:
    """Counters of the payout machinery: one JSON object."""

    @staticmethod
    def op(state: dict) -> Op:
        return (PAYOUT_STATE, json.dumps(state, sort_keys=True).encode())

    @staticmethod
    def load(store: ExchangeStore) -> dict:
        raw = store.get(PAYOUT_STATE)
        return json.loads(raw) if raw else {"debt": 0}


class ExecRecordCodec:
    """The exec hook's durable log: one record per signed command whose signature verified, keyed by its hash
    (``txhash`` of the source). The key's presence is the replay guard; the value says how the command ended."""

    @staticmethod
    def key(command_hash: str) -> bytes:
        return EXEC_RECORD + bytes.fromhex(command_hash)

    @classmethod
    def op(cls, command_hash: str, record: dict) -> Op:
        return (cls.key(command_hash), json.dumps(record, sort_keys=True).encode())

    @classmethod
    def get(cls, store: ExchangeStore, command_hash: str) -> dict | None:
        raw = store.get(cls.key(command_hash))
        return None if raw is None else json.loads(raw)

    @staticmethod
    def load(store: ExchangeStore) -> list[dict]:
        """Every record, each with its ``hash``, oldest first."""
        records = [{**json.loads(value), "hash": key[len(EXEC_RECORD):].hex()}
                   for key, value in store.iterator(EXEC_RECORD)]
        return sorted(records, key=lambda record: (record.get("time", 0), record["hash"]))


@dataclass
class LedgerState:
    """Everything the exchange DB holds, loaded: what the engine runs on and what ``audit`` checks.

    ``book`` is None for a DB that has never held one (the engine then opens a book at the chain's cycle).
    """

    book: Book | None
    deposits: DepositTracker
    wallet: ExchangeWallet
    withdrawals: dict[str, Withdrawal]
    settings: dict
    batches: dict[str, Batch] = field(default_factory=dict)
    coins: CoinIndex = field(default_factory=CoinIndex)
    payout_state: dict = field(default_factory=lambda: {"debt": 0})
    cycle_update: dict | None = None  # a cycle update a stop interrupted (its progress), to resume first


def load_state(store: ExchangeStore, *, confirmations: int = DEFAULT_CONFIRMATIONS,
               kdf: KdfParams = KdfParams()) -> LedgerState:
    """Read the whole ledger state from ``store``. ``confirmations`` applies unless the settings stored one."""
    settings = SettingsCodec.load(store)
    deposits = DepositTracker(settings.get("exchangeconfirmations", confirmations))
    DepositCodec.load(store, deposits)
    WatchCodec.load(store, deposits)
    records, meta = WalletCodec.load(store)
    return LedgerState(
        book=BookCodec.load(store),
        deposits=deposits,
        wallet=ExchangeWallet(records, meta, kdf=kdf),
        withdrawals=WithdrawalCodec.load(store),
        settings=settings,
        batches=BatchCodec.load(store),
        coins=CoinCodec.load(store),
        payout_state=PayoutStateCodec.load(store),
        cycle_update=CycleUpdateCodec.load(store),
    )

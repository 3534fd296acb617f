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

import json
import logging
import struct
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

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
from halo_exchange.serialize import ByteReader, pack_bytes, pack_i64, pack_u8, pack_u32

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Key prefixes (one byte; never reuse a retired one).
SCHEMA = b"v"  # -> u32 schema version
BOOK_STATE = b"s"  # -> i64 cycle, u16 supply, i64 pool total, u32 next account id
BOOK_POOL = b"p"  # -> 1200 x i64: the pooled liquid fractions
BOOK_TOTALS = b"b"  # -> 1200 x i64: the book (everything credited minus everything debited)
ACCOUNT = b"a"  # + utf-8 name -> u32 id, i64 liquid, u16 n, n x i64 reserve fractions
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
EXEC_RECORD = b"e"  # + 32-byte command hash -> JSON: a signed exec command that ran (its replay guard and outcome)

Op = tuple[bytes, "bytes | None"]  # a put (value) or a delete (None)

_VECTOR = struct.Struct(f"<{PEG_SIZE}q")
_STATE = struct.Struct("<qHqI")


class StoreError(HaloExchangeError):
    """The exchange DB cannot be opened or written (wrong schema, I/O failure)."""


class ExchangeStore:
    """The plugin's LevelDB with its schema version checked on open."""

    def __init__(self, path: str) -> None:
        self.db = plyvel.DB(path, create_if_missing=True, compression=None)
        raw = self.db.get(SCHEMA)
        if raw is None:
            if next(self.db.iterator(include_value=False), None) is not None:
                self.db.close()
                raise StoreError(f"{path} holds data but no schema version: not an exchange DB")
            self.db.put(SCHEMA, pack_u32(SCHEMA_VERSION), sync=True)
        elif raw != pack_u32(SCHEMA_VERSION):
            self.db.close()
            raise StoreError(f"{path} has exchange DB schema {int.from_bytes(raw, 'little')}, "
                             f"this code reads {SCHEMA_VERSION}")

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)

    def iterator(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.db.iterator(prefix=prefix)

    def write(self, ops: Iterable[Op]) -> None:
        """Apply ``ops`` in order as one atomic, synced batch."""
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key, value in ops:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)


class GroupCommit:
    """Collects the writes submitted in one reactor turn into one synced batch.

    ``submit(ops)`` returns a Deferred that fires once those ops are on disk. The first submission of a turn
    schedules a flush for the end of the turn (``call_later(0, ...)``, normally ``reactor.callLater``); every
    submission until then joins the same batch, in order. The write happens on the reactor thread: a synced
    LevelDB batch takes about 0.2 ms here, and handing it to a writer thread was measured slower (the GIL
    hand-back costs more than the fsync it overlaps).

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
            self._store.write(ops)
        except Exception as exc:  # every caller of this batch learns it failed
            log.error("exchange DB write of %d ops failed: %s", len(ops), exc)
            self.failure = exc
            if self.on_failure is not None:
                self.on_failure(exc)
            for done in waiting:
                done.errback(StoreError(f"write failed: {exc}"))
            return
        self.batches_written += 1
        self.last_write = self._clock()
        for done in waiting:
            done.callback(None)


class BookCodec:
    """How a :class:`Book` is kept in the exchange DB, and which keys a change touches."""

    @staticmethod
    def account_key(name: str) -> bytes:
        return ACCOUNT + name.encode("utf-8")

    @staticmethod
    def pack_account(account: Account) -> bytes:
        reserve = account.reserve
        stored = reserve if reserve.typecode == "q" else array("q", reserve)  # always i64 on disk
        return pack_u32(account.id) + pack_i64(account.liquid) + struct.pack("<H", len(reserve)) + stored.tobytes()

    @staticmethod
    def unpack_account(value: bytes) -> Account:
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
        accounts = [(key[1:].decode("utf-8"), cls.unpack_account(value)) for key, value in store.iterator(ACCOUNT)]
        accounts.sort(key=lambda item: item[1].id)
        book.accounts = dict(accounts)
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
    def pack_deposit(deposit: Deposit) -> bytes:
        return (
            pack_bytes(deposit.address.encode("ascii"))
            + pack_i64(deposit.amount)
            + pack_u32(deposit.height)
            + pack_u8(_STATES.index(deposit.state))
            + pack_bytes((deposit.owner or "").encode("utf-8"))
            + pack_u8(deposit.owner is not None)
            + deposit.fractions.pack()
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
    )

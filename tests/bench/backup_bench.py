"""The continuous backup's cost and a restore's time.

* Durable Trade calls per second over XML-RPC with the backup on and off, 1 and 8 client processes, measured
  as ``api_bench`` does (the same client loop), both exchanges live in this process and the runs interleaved
  so that drift on the machine hits both alike; the note gives on/off.
* Trade-sized batches written by the store alone, backup on and off: the cost of the journal's sync without
  the API (whose figures swing with whatever else the machine runs); and the two syncs journal-first against
  overlapped, the measurement behind the order docs/backup.md explains.
* Restore of an exchange DB of 100,000 accounts, built directly through the store's codecs (each account a
  liquid share and 50 reserve fractions, the shape a mainnet supply gives): the snapshot written (what
  ``halo-exchange backup`` does), the restore from that snapshot alone, and the restore from it plus 10,000
  journal batches of two-account trades (what a day of trading between snapshots adds).

``python -m tests.bench.backup_bench`` runs it alone; ``make bench`` with the others.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from array import array
from pathlib import Path

from halo_exchange.backup.continuous import ContinuousBackup
from halo_exchange.backup.restore import backup_stopped, restore
from halo_exchange.backup.snapshot import ChainIdentity
from halo_exchange.ledger.book import Account, Book
from halo_exchange.ledger.store import BookCodec, ExchangeStore
from tests.bench.api_bench import _clients

USERS = 100_000
RESERVE_ENTRIES = 50
JOURNAL_BATCHES = 10_000
IDENTITY = ChainIdentity("devnet", None)


def _throughput(runs: int) -> list[tuple[str, float, str]]:
    from tests.framework import ServiceHarness

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        off = ServiceHarness(Path(tmp) / "off")
        on = ServiceHarness(Path(tmp) / "on", backup_dir=Path(tmp) / "backup")
        try:
            for harness in (off, on):
                harness.credit("trader00", 10**13)
            urls = {name: f"http://127.0.0.1:{h.service.api_port}/" for name, h in (("off", off), ("on", on))}
            for clients in (1, 8):
                measured: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(runs):
                    for name in ("off", "on"):
                        measured[name].append(_clients(urls[name], clients, None).calls_per_second)
                off_rate, on_rate = statistics.median(measured["off"]), statistics.median(measured["on"])
                rows.append((f"Trade, backup off, {clients} cl.", off_rate, "calls/s, durable (group commit)"))
                rows.append((f"Trade, backup on, {clients} cl.", on_rate,
                             f"calls/s, journaled + fdatasync; on/off {on_rate / off_rate:.2f}"))
            status = on.service.backup_status()
            assert status["state"] == "current" and status["last_sequence"] == status["primary_sequence"], status
        finally:
            on.close()
            off.close()
    return rows


def _store_writes(runs: int, batches: int = 1000) -> list[tuple[str, float, str]]:
    """Trade-sized batches (two accounts and the scalars) written one after another by ``ExchangeStore.write``,
    with the backup journaling them and without: the sync the backup adds, without the API around it."""
    from twisted.internet.defer import maybeDeferred
    from twisted.internet.task import Clock

    rates: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            for name in ("off", "on"):
                store = ExchangeStore(str(Path(tmp) / f"{name}{run}"))
                continuous = None
                if name == "on":
                    continuous = ContinuousBackup(Path(tmp) / f"backup{run}", store, IDENTITY,
                                                  call_later=Clock().callLater,
                                                  run_in_thread=lambda fn, *args: maybeDeferred(fn, *args))
                    continuous.open()
                ops = [(b"a" + bytes([i]), b"v" * 420) for i in range(2)] + [(b"s", b"x" * 22)]
                start = time.perf_counter()
                for _ in range(batches):
                    store.write(ops)
                rates[name].append(batches / (time.perf_counter() - start))
                if continuous is not None:
                    continuous.close()
                store.close()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    return [("store batches, backup off", off, "batches/s, one synced LevelDB write each"),
            ("store batches, backup on", on, f"batches/s, journal fdatasync first; on/off {on / off:.2f}")]


def _sync_orders(runs: int, batches: int = 1000) -> list[tuple[str, float, str]]:
    """The design choice in docs/backup.md: the journal synced before the DB's write (what the backup does)
    against the two syncs overlapped (the journal's in a thread while LevelDB syncs), raw files, no codecs."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import plyvel

    rates: dict[str, list[float]] = {"sequential": [], "overlapped": []}
    record = b"r" * 900
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(1) as syncer:
        for run in range(runs):
            for name in ("sequential", "overlapped"):
                db = plyvel.DB(str(Path(tmp) / f"{name}{run}"), create_if_missing=True, compression=None)
                fd = os.open(Path(tmp) / f"{name}{run}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                start = time.perf_counter()
                for i in range(batches):
                    os.write(fd, record)
                    pending = syncer.submit(os.fdatasync, fd) if name == "overlapped" else None
                    if pending is None:
                        os.fdatasync(fd)
                    with db.write_batch(transaction=True, sync=True) as batch:
                        batch.put(b"k%d" % (i % 50), record)
                    if pending is not None:
                        pending.result()
                rates[name].append(batches / (time.perf_counter() - start))
                os.close(fd)
                db.close()
    sequential, overlapped = statistics.median(rates["sequential"]), statistics.median(rates["overlapped"])
    return [("two syncs, journal first", sequential, "batches/s (what the backup does)"),
            ("two syncs, overlapped", overlapped, f"batches/s (not used: docs/backup.md); "
                                                   f"{overlapped / sequential:.2f}x")]


def build_db(path: Path, users: int = USERS, seed: int = 16) -> int:
    """An exchange DB of ``users`` accounts written through the store's codecs; its batch number."""
    rng = random.Random(seed)
    store = ExchangeStore(str(path))
    try:
        book = Book(0, 600)
        store.write(BookCodec.state_ops(book))
        ops = []
        for i in range(users):
            reserve = array("q", (rng.randrange(10**6) for _ in range(RESERVE_ENTRIES)))
            account = Account(i, rng.randrange(10**10), reserve, sum(reserve))
            ops.append((BookCodec.account_key(f"user{i:06d}"), BookCodec.pack_account(account)))
            if len(ops) == 10_000:
                store.write(ops)
                ops = []
        if ops:
            store.write(ops)
        return store.sequence
    finally:
        store.close()


def _journal(path: Path, backup: Path, batches: int, seed: int = 17) -> None:
    """``batches`` trade-sized batches (two accounts each) written with the continuous backup on."""
    from twisted.internet.defer import maybeDeferred
    from twisted.internet.task import Clock

    rng = random.Random(seed)
    store = ExchangeStore(str(path))
    continuous = ContinuousBackup(backup, store, IDENTITY, call_later=Clock().callLater,
                                  run_in_thread=lambda fn, *args: maybeDeferred(fn, *args))
    continuous.open()
    try:
        for _ in range(batches):
            ops = []
            for _ in range(2):
                reserve = array("q", (rng.randrange(10**6) for _ in range(RESERVE_ENTRIES)))
                account = Account(rng.randrange(USERS), rng.randrange(10**10), reserve, sum(reserve))
                ops.append((BookCodec.account_key(f"user{rng.randrange(USERS):06d}"), BookCodec.pack_account(account)))
            store.write(ops)
    finally:
        continuous.close()
        store.close()


def _restore_times(runs: int) -> list[tuple[str, float, str]]:
    snapshot_s, restore_s, replay_s = [], [], []
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_db(root / "exchange")
        for run in range(runs):
            copy = root / f"copy{run}"
            start = time.perf_counter()
            answer = backup_stopped(root / "exchange", copy, IDENTITY)
            snapshot_s.append(time.perf_counter() - start)
            size = answer["bytes"]
            start = time.perf_counter()
            done = restore(copy, root / f"restored{run}", IDENTITY)
            restore_s.append(time.perf_counter() - start)
            assert done.keys >= USERS
            shutil.rmtree(root / f"restored{run}")
            shutil.rmtree(copy)
        # The continuous backup: a snapshot at start-up, then JOURNAL_BATCHES journaled batches.
        _journal(root / "exchange", root / "backup", JOURNAL_BATCHES)
        for run in range(runs):
            start = time.perf_counter()
            done = restore(root / "backup", root / f"replayed{run}", IDENTITY)
            replay_s.append(time.perf_counter() - start)
            assert done.replayed == JOURNAL_BATCHES, done.render()
            shutil.rmtree(root / f"replayed{run}")
    return [
        ("snapshot, 100k accounts", statistics.median(snapshot_s), f"s ({size / 1e6:.0f} MB; halo-exchange backup)"),
        ("restore, 100k accounts", statistics.median(restore_s), "s, from the snapshot alone"),
        ("restore, 100k + 10k batches", statistics.median(replay_s), "s, snapshot + 10,000 journaled trades"),
    ]


def run(runs: int = 3) -> list[tuple[str, float, str]]:
    return _throughput(runs) + _store_writes(runs) + _sync_orders(runs) + _restore_times(runs)


if __name__ == "__main__":
    import os
    import sys

    for name, figure, note in run(3):
        print(f"{name:<32} {figure:>14,.3f}  {note}")
    sys.stdout.flush()
    os._exit(0)  # the reactor thread cannot be stopped and restarted: just exit

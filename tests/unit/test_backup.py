"""The backup's files and restore: journal records checked (torn tail, CRC mismatch, sequence gaps), snapshot
plus journal restoring the exchange DB key for key, and the refusals of restore (another chain, newer schema,
an existing DB)."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
from pathlib import Path

import pytest
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from halo_exchange.backup import journal
from halo_exchange.backup.continuous import BackupState, ContinuousBackup
from halo_exchange.backup.restore import backup_stopped, restore
from halo_exchange.backup.snapshot import MANIFEST, ChainIdentity, read_snapshot, snapshots
from halo_exchange.errors import BackupError, RestoreRefused
from halo_exchange.ledger.store import SEQUENCE, ExchangeStore, GroupCommit
from tests.framework import db_contents, fill, small_filesystem

DEVNET = ChainIdentity("devnet", "ab" * 32)


def _in_thread(fn, *args):
    """Runs the 'thread' work at once: what the engine does without a reactor (the files are the same)."""
    return maybeDeferred(fn, *args)


def _records(directory: Path, batches: dict[int, list]) -> None:
    first = min(batches)
    writer = journal.JournalWriter(directory, first)
    for sequence in sorted(batches):
        writer.append(sequence, batches[sequence])
    writer.close()


def _ops(i: int) -> list:
    return [(b"a%d" % i, b"value %d" % i), (b"a%d" % (i - 1), None), (SEQUENCE, i.to_bytes(8, "little"))]


def test_journal_round_trip_and_torn_tail_ignored(tmp_path) -> None:
    """Whole records replay in order; a record cut short at the end is reported and not applied."""
    _records(tmp_path, {i: _ops(i) for i in range(1, 6)})
    [(_, path)] = journal.segments(tmp_path)
    whole = journal.replay(tmp_path, 0)
    assert [r.sequence for r in whole.records] == [1, 2, 3, 4, 5] and whole.damage == []
    assert whole.records[2].ops == _ops(3)
    size = path.stat().st_size
    os.truncate(path, size - 3)  # the last write torn by a kill
    torn = journal.replay(tmp_path, 0)
    assert [r.sequence for r in torn.records] == [1, 2, 3, 4]
    assert len(torn.damage) == 1 and "torn record of batch 5" in str(torn.damage[0])
    assert [r.sequence for r in journal.replay(tmp_path, 2).records] == [3, 4]  # after a snapshot of batch 2


def test_journal_crc_mismatch_ends_the_segment(tmp_path) -> None:
    """A flipped byte in a record fails its CRC: reading stops there, the damage is named."""
    _records(tmp_path, {i: _ops(i) for i in range(1, 4)})
    [(_, path)] = journal.segments(tmp_path)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x40  # inside the last record's payload
    path.write_bytes(bytes(data))
    result = journal.replay(tmp_path, 0)
    assert [r.sequence for r in result.records] == [1, 2]
    assert "CRC mismatch" in str(result.damage[0])


def test_journal_gap_is_refused(tmp_path) -> None:
    """Batches missing between segments (or after damage in the middle) are refused, never skipped."""
    _records(tmp_path, {1: _ops(1), 2: _ops(2)})
    _records(tmp_path, {4: _ops(4), 5: _ops(5)})
    with pytest.raises(BackupError, match="misses batches 3 to 3"):
        journal.replay(tmp_path, 0)
    assert [r.sequence for r in journal.replay(tmp_path, 3).records] == [4, 5]  # a snapshot of 3 covers it


def test_journal_writer_refuses_out_of_order_batches(tmp_path) -> None:
    writer = journal.JournalWriter(tmp_path, 7)
    with pytest.raises(BackupError, match="expects batch 7"):
        writer.append(8, _ops(8))
    writer.close()
    assert stat.S_IMODE(journal.segments(tmp_path)[0][1].stat().st_mode) == 0o600


def _random_ops(rng: random.Random, keys: list[bytes]) -> list:
    ops = []
    for _ in range(rng.randint(1, 6)):
        if keys and rng.random() < 0.3:
            ops.append((rng.choice(keys), None))
        else:
            key = b"a" + rng.randbytes(rng.randint(1, 12))
            keys.append(key)
            ops.append((key, rng.randbytes(rng.randint(0, 300))))
    return ops




def _backed_store(tmp_path: Path, policy: str = "stop") -> tuple[ExchangeStore, ContinuousBackup, Clock]:
    store = ExchangeStore(str(tmp_path / "exchange"))
    clock = Clock()
    backup = ContinuousBackup(tmp_path / "backup", store, DEVNET, policy=policy, snapshot_interval=3600,
                              call_later=clock.callLater, run_in_thread=_in_thread)
    backup.open()
    return store, backup, clock


def test_snapshot_plus_journal_restores_the_db_key_for_key(tmp_path) -> None:
    """Group-committed batches with a snapshot between them: the restore equals the primary, key for key,
    and says how far it got; the backup's files are the operator's alone."""
    store, backup, clock = _backed_store(tmp_path)
    assert backup.state is BackupState.CURRENT
    commit = GroupCommit(store, clock.callLater)
    rng, keys = random.Random(16), []
    for turn in range(60):
        for _ in range(rng.randint(1, 4)):
            commit.submit(_random_ops(rng, keys))
        clock.advance(0)
        if turn == 25:
            assert backup.snapshot().result == store.sequence
        if turn == 40:
            clock.advance(3600)  # the periodic snapshot
    primary_sequence = store.sequence
    assert backup.status()["last_sequence"] == primary_sequence == 60  # one batch a turn; the schema put is none
    assert backup.status()["last_snapshot_sequence"] == 41
    assert len(snapshots(tmp_path / "backup")) == 1  # the older snapshot and its segments were pruned
    assert [first for first, _ in journal.segments(tmp_path / "backup")] == [42]
    backup.close()
    store.close()
    assert stat.S_IMODE((tmp_path / "backup").stat().st_mode) == 0o700
    for entry in (tmp_path / "backup").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry

    restored = restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert (restored.sequence, restored.snapshot_sequence, restored.replayed) == (60, 41, 19)
    assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "exchange")
    reopened = ExchangeStore(str(tmp_path / "restored"))
    assert reopened.sequence == primary_sequence
    reopened.close()


def test_restore_ignores_a_torn_tail_and_reports_it(tmp_path) -> None:
    """The journal's last record cut short (the process killed mid-append): restored up to the one before."""
    store, backup, clock = _backed_store(tmp_path)
    for i in range(5):
        store.write([(b"k%d" % i, b"v")])
    backup.close()
    store.close()
    [(_, segment)] = journal.segments(tmp_path / "backup")
    os.truncate(segment, segment.stat().st_size - 5)
    restored = restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert restored.sequence == 4 and restored.replayed == 4
    assert "torn record of batch 5" in restored.render()
    assert b"k3" in db_contents(tmp_path / "restored") and b"k4" not in db_contents(tmp_path / "restored")


def test_restore_refusals(tmp_path) -> None:
    """Another chain, a newer schema, an existing DB without --force (moved aside with it, never deleted)."""
    store, backup, _ = _backed_store(tmp_path)
    store.write([(b"k", b"v")])
    backup.close()
    store.close()
    with pytest.raises(RestoreRefused, match="another chain: the backup's network is devnet, this node's testnet"):
        restore(tmp_path / "backup", tmp_path / "restored", ChainIdentity("testnet", None))
    with pytest.raises(RestoreRefused, match="another chain: the backup's genesis block is abab"):
        restore(tmp_path / "backup", tmp_path / "restored", ChainIdentity("devnet", "cd" * 32))
    with pytest.raises(RestoreRefused, match="an exchange DB exists"):
        restore(tmp_path / "backup", tmp_path / "exchange", DEVNET)
    done = restore(tmp_path / "backup", tmp_path / "exchange", DEVNET, force=True)
    assert done.moved_aside is not None and (done.moved_aside / "CURRENT").exists()
    assert db_contents(tmp_path / "exchange") == db_contents(done.moved_aside)
    manifest = tmp_path / "backup" / MANIFEST
    record = json.loads(manifest.read_text())
    record["schema"] = 99
    manifest.write_text(json.dumps(record))
    with pytest.raises(RestoreRefused, match="schema 99, newer"):
        restore(tmp_path / "backup", tmp_path / "other", DEVNET)
    assert not (tmp_path / "other").exists()


def test_start_up_catches_a_lagging_backup_up_and_refuses_one_ahead(tmp_path) -> None:
    """A backup behind the DB (batches written without it) gets a fresh snapshot before anything else; a
    backup ahead of the DB (the DB replaced by an older one) stops the start."""
    store, backup, _ = _backed_store(tmp_path)
    store.write([(b"k1", b"v")])
    backup.close()
    store.write([(b"k2", b"v")])  # written with no backup attached: the backup is one batch behind
    store.close()
    store, backup, _ = _backed_store(tmp_path)
    assert backup.status()["last_snapshot_sequence"] == 2 == backup.status()["last_sequence"]
    # The files that held the older state are gone (after encrypt-wallet: the keys in the clear).
    assert [sequence for sequence, _ in snapshots(tmp_path / "backup")] == [2]
    assert [first for first, _ in journal.segments(tmp_path / "backup")] == [3]
    backup.close()
    store.close()
    restore(tmp_path / "backup", tmp_path / "older", DEVNET)
    store, backup, _ = _backed_store(tmp_path)
    store.write([(b"k3", b"v")])
    store.write([(b"k4", b"v")])
    backup.close()
    store.close()
    store = ExchangeStore(str(tmp_path / "older"))
    clock = Clock()
    ahead = ContinuousBackup(tmp_path / "backup", store, DEVNET, call_later=clock.callLater,
                             run_in_thread=_in_thread)
    with pytest.raises(BackupError, match="backup holds batches up to 4, the exchange DB only up to 2"):
        ahead.open()
    assert ahead.state is BackupState.FAILED
    store.close()


def test_a_batch_journaled_but_never_written_is_dropped_at_start(tmp_path) -> None:
    """Killed between the journal's write and the DB's: the backup is one unanswered batch ahead; the next
    start takes a snapshot of the DB as it is, and a restore then holds exactly what the DB holds."""
    store, backup, _ = _backed_store(tmp_path)
    store.write([(b"k1", b"v")])
    backup.record(2, [(b"k2", b"never written"), (SEQUENCE, (2).to_bytes(8, "little"))])  # then the kill
    backup.close()
    store.close()
    store, backup, _ = _backed_store(tmp_path)
    assert backup.status()["last_sequence"] == 1 == backup.status()["last_snapshot_sequence"]
    store.write([(b"k3", b"v")])
    backup.close()
    store.close()
    restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "exchange")
    assert b"k2" not in db_contents(tmp_path / "restored")


def test_backup_of_another_chain_is_refused_at_start(tmp_path) -> None:
    store, backup, _ = _backed_store(tmp_path)
    backup.close()
    other = ContinuousBackup(tmp_path / "backup", store, ChainIdentity("testnet", None),
                             call_later=Clock().callLater, run_in_thread=_in_thread)
    with pytest.raises(BackupError, match="another chain"):
        other.open()
    store.close()


def test_backup_of_a_stopped_db_is_a_whole_snapshot(tmp_path) -> None:
    """``halo-exchange backup`` of a stopped node: one snapshot holding every key; a non-empty target refused."""
    store = ExchangeStore(str(tmp_path / "exchange"))
    for i in range(3):
        store.write([(b"k%d" % i, b"v" * i)])
    store.close()
    answer = backup_stopped(tmp_path / "exchange", tmp_path / "copy", DEVNET)
    assert answer["sequence"] == 3
    [(sequence, path)] = snapshots(tmp_path / "copy")
    number, items = read_snapshot(path)
    assert number == 3 and dict(items) == db_contents(tmp_path / "exchange")
    with pytest.raises(RestoreRefused, match="not an empty directory"):
        backup_stopped(tmp_path / "exchange", tmp_path / "copy", DEVNET)


def test_full_backup_dir_stop_refuses_the_batch_and_degrade_heals_with_a_snapshot(tmp_path) -> None:
    """A real full disk under the backup (a 1 MiB tmpfs): under stop the batch is written nowhere and the
    backup is FAILED; under degrade the DB goes on, the backup is DEGRADED, and once space is back the
    minute's retry takes a snapshot and the backup is CURRENT again, restoring the DB key for key."""
    from tests.framework import fill, small_filesystem

    with small_filesystem(tmp_path / "backup", "1m"):
        store, backup, _ = _backed_store(tmp_path)
        filler = fill(tmp_path / "backup", 0)
        with pytest.raises(BackupError, match="No space left on device"):
            store.write([(b"k", b"v" * 5000)])
        assert store.get(b"k") is None and store.sequence == 0  # the refused batch happened nowhere
        assert backup.state is BackupState.FAILED and "No space left" in backup.status()["error"]
        backup.close()
        store.close()
        filler.unlink()
        shutil.rmtree(tmp_path / "exchange")
        for entry in (tmp_path / "backup").iterdir():
            entry.unlink()

        store, backup, clock = _backed_store(tmp_path, "degrade")
        store.write([(b"before", b"v")])
        filler = fill(tmp_path / "backup", 0)
        for i in range(5):
            store.write([(b"k%d" % i, b"v" * 5000)])  # answered: the DB has them, the backup does not
        assert store.sequence == 6 and backup.state is BackupState.DEGRADED
        status = backup.status()
        assert status["last_sequence"] == 1 and status["primary_sequence"] == 6 and status["error"]
        clock.advance(60)  # the retry fails too: still full
        assert backup.state is BackupState.DEGRADED
        filler.unlink()
        clock.advance(60)
        assert backup.state is BackupState.CURRENT and backup.status()["error"] is None
        store.write([(b"after", b"v")])
        assert backup.status()["last_sequence"] == store.sequence == 7
        backup.close()
        store.close()


def test_restore_after_heal_equals_the_db(tmp_path) -> None:
    """A backup healed after a full disk restores the DB key for key (the batches it missed are in the
    healing snapshot)."""
    from tests.framework import fill, small_filesystem

    with small_filesystem(tmp_path / "backup", "1m"):
        store, backup, clock = _backed_store(tmp_path, "degrade")
        filler = fill(tmp_path / "backup", 0)
        for i in range(3):
            store.write([(b"k%d" % i, b"v" * 5000)])
        assert backup.state is BackupState.DEGRADED
        filler.unlink()
        clock.advance(60)
        store.write([(b"after", b"v")])
        assert backup.state is BackupState.CURRENT
        backup.close()
        store.close()
        restored = restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
        assert restored.sequence == 4
        assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "exchange")


def test_start_up_sees_a_gap_in_the_journal_as_behind(tmp_path) -> None:
    """A journal with batches missing (a degraded run stopped before its healing snapshot was whole) is only
    as far as its gap: the start takes a snapshot, and a restore then equals the DB."""
    store, backup, _ = _backed_store(tmp_path)
    for i in range(3):
        store.write([(b"k%d" % i, b"v")])
    backup.close()
    for i in range(3, 9):
        store.write([(b"k%d" % i, b"v")])  # batches 4..9 never reach the backup
    healing = journal.JournalWriter(tmp_path / "backup", 10)
    store.mirror = healing.append
    store.write([(b"k9", b"v")])
    store.write([(b"k10", b"v")])
    healing.close()
    store.mirror = None
    (tmp_path / "backup" / ".snapshot-00000000000000000009.snap.tmp").write_bytes(b"cut short")
    store.close()
    store, backup, _ = _backed_store(tmp_path)
    assert backup.status()["last_snapshot_sequence"] == 11 == backup.status()["last_sequence"]
    assert not list((tmp_path / "backup").glob(".*.tmp"))
    backup.close()
    store.close()
    restored = restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert restored.sequence == 11 and restored.damage == []
    assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "exchange")


def test_a_journal_past_its_limit_starts_a_snapshot(tmp_path) -> None:
    """backup_journal_mb: once that much journal is written since the last snapshot, the next batch starts
    one, and the older segments go."""
    store, clock = ExchangeStore(str(tmp_path / "exchange")), Clock()
    backup = ContinuousBackup(tmp_path / "backup", store, DEVNET, journal_limit=4000, call_later=clock.callLater,
                              run_in_thread=_in_thread)
    backup.open()
    for i in range(10):
        store.write([(b"k%d" % i, b"v" * 1000)])
        clock.advance(0)  # the end of the reactor turn
    assert backup.status()["last_snapshot_sequence"] == 8  # batches 1-4 fill the first segment, 5-8 the next
    assert [first for first, _ in journal.segments(tmp_path / "backup")] == [9]
    backup.close()
    store.close()
    restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "exchange")


def test_a_batch_the_db_refused_after_the_journal_took_it_is_cancelled_and_never_restored(tmp_path) -> None:
    """The journal has a batch, then the DB refuses it (a full disk under the exchange DB only: its callers
    hear it was not made): an abort record cancels it, so a restore, after the DB's disk is lost, does not
    make it either."""
    with small_filesystem(tmp_path / "exchange", "4m") as exchange_dir:
        store, backup, clock = _backed_store(tmp_path)
        commit = GroupCommit(store, clock.callLater)
        commit.submit([(b"kept", b"1")])
        clock.advance(0)
        fill(exchange_dir, 64 * 1024)
        refused, n = None, 0
        while refused is None and n < 1000:
            n += 1
            done = commit.submit([(b"big%d" % n, os.urandom(32 * 1024))])
            clock.advance(0)
            if isinstance(done.result, Failure):
                refused = done
        assert refused is not None, "the disk never filled"
        refused.addErrback(lambda _: None)
        written = store.sequence  # the last batch the DB took
        assert backup.status()["last_sequence"] == written
        replayed = journal.replay(tmp_path / "backup", 0)
        assert replayed.records[-1].sequence == written
        assert all(key != b"big%d" % n for record in replayed.records for key, _ in record.ops)
        backup.close()
        store.close()
    restored = restore(tmp_path / "backup", tmp_path / "restored", DEVNET)
    assert restored.sequence == written
    contents = db_contents(tmp_path / "restored")
    assert contents[b"kept"] == b"1" and b"big%d" % n not in contents and b"big%d" % (n - 1) in contents

"""Continuous backup of the exchange DB: every committed batch journaled before its callers are answered.

:class:`ContinuousBackup` is the exchange store's ``mirror``: ``ExchangeStore.write`` hands it each batch,
numbered, just before writing it to the DB (and so before :class:`GroupCommit` answers the calls that caused
it). It appends the batch to the journal and ``fdatasync``\\ s it, so an acknowledged operation is in the
backup too (RPO zero). Backup first: a batch the backup refuses is written nowhere, so under ``stop`` the
calls answered with that failure did not happen; a kill between the two writes leaves the backup one
unanswered batch ahead of the DB, which the next start drops.

Snapshots bound the journal: periodically (and once the journal has grown past a limit) a plyvel snapshot of
the DB is written in a thread, off the reactor; the journal starts a new segment at the same moment, and once
the snapshot file is whole, older segments and snapshots are deleted.

The backup's lifecycle is an explicit state machine:

* ``STARTING``: opening the directory; if the backup is behind the DB (or empty), a snapshot is taken first,
  before the exchange answers anything, so that no acknowledged batch exists without a base to replay it on.
* ``CURRENT``: every committed batch is in the backup.
* ``DEGRADED`` (``backup_failure = degrade``): a write to the backup failed; the exchange runs on, the error is
  logged every minute, and each minute a fresh snapshot is tried: when it and the journal after it are written,
  the backup is ``CURRENT`` again.
* ``FAILED`` (``backup_failure = stop``, the default): a write to the backup failed; the write that found it
  fails as a failed DB write would, so exchange mode stops and calls answer Fault -32000 with the reason.
* ``CLOSED``: the node stopped.

Everything runs on the reactor thread except the writing of a snapshot file.
"""

from __future__ import annotations

import enum
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.python.threadable import isInIOThread

from halo_exchange.backup import journal as journal_mod
from halo_exchange.backup.journal import JournalWriter, Op
from halo_exchange.backup.snapshot import ChainIdentity, prepare_directory, snapshots, write_snapshot
from halo_exchange.errors import BackupError, public_error
from halo_exchange.files import fsync_dir
from halo_exchange.ledger.store import SCHEMA_VERSION, SEQUENCE, ExchangeStore

log = logging.getLogger(__name__)

STOP, DEGRADE = "stop", "degrade"
REMINDER_SECONDS = 60.0


class BackupState(enum.Enum):
    OFF = "off"  # no backup_dir: only ever reported, never a state of a ContinuousBackup
    STARTING = "starting"
    CURRENT = "current"
    DEGRADED = "degraded"
    FAILED = "failed"
    CLOSED = "closed"


_NEXT: dict[BackupState, set[BackupState]] = {
    BackupState.STARTING: {BackupState.CURRENT, BackupState.DEGRADED, BackupState.FAILED, BackupState.CLOSED},
    BackupState.CURRENT: {BackupState.DEGRADED, BackupState.FAILED, BackupState.CLOSED},
    BackupState.DEGRADED: {BackupState.CURRENT, BackupState.CLOSED},
    BackupState.FAILED: {BackupState.CLOSED},
    BackupState.CLOSED: set(),
}


def off_status(directory: Path | None = None) -> dict:
    """What ``backup_status`` says when no backup is configured."""
    return {"state": BackupState.OFF.value, "dir": str(directory) if directory else None, "last_sequence": None,
            "primary_sequence": None, "last_snapshot_time": None, "last_snapshot_sequence": None, "error": None,
            "policy": None}


class ContinuousBackup:
    """The continuous backup of one exchange store into ``directory``.

    ``call_later`` is the reactor's (``callLater``), ``run_in_thread`` Twisted's ``deferToThread``;
    ``call_from_thread`` the reactor's ``callFromThread``, for what :meth:`record` asks for when a batch comes from
    a thread (a cycle update's step); ``snapshot_interval`` seconds between snapshots, ``journal_limit`` journal
    bytes that start one sooner.
    """

    def __init__(self, directory: Path, store: ExchangeStore, identity: ChainIdentity, *, policy: str = STOP,
                 snapshot_interval: float = 3600.0, journal_limit: int = 64 << 20,
                 call_later: Callable[..., Any], run_in_thread: Callable[..., Deferred],
                 call_from_thread: Callable[..., Any] | None = None, clock: Callable[[], float] = time.time) -> None:
        if policy not in (STOP, DEGRADE):
            raise ValueError(f"backup_failure must be {STOP} or {DEGRADE}, not {policy!r}")
        self.directory = Path(directory)
        self.store = store
        self.identity = identity
        self.policy = policy
        self.snapshot_interval = snapshot_interval
        self.journal_limit = journal_limit
        self._call_later = call_later
        self._call_from_thread = call_from_thread
        self._run_in_thread = run_in_thread
        self._clock = clock
        self.state = BackupState.STARTING
        self.error: str | None = None
        self.last_sequence: int | None = None  # the last batch the backup holds
        self.last_snapshot_time: float | None = None
        self.last_snapshot_sequence: int | None = None
        self._journal: JournalWriter | None = None
        self._snapshotting: Deferred | None = None  # fires when the snapshot being written is done
        self._closing = False
        self._healing = False  # a snapshot under way will make a DEGRADED backup whole again
        self._soon = False  # a snapshot is asked for at the end of this turn (the journal reached its limit)
        self._timer: Any = None
        self._reminder: Any = None

    # -- the state machine ---------------------------------------------------------------------------------

    def _move(self, state: BackupState) -> None:
        if state is self.state:
            return
        if state not in _NEXT[self.state]:
            raise BackupError(f"backup state {self.state.value} cannot become {state.value}")
        log.info("backup %s -> %s", self.state.value, state.value)
        self.state = state

    # -- start-up ------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Prepare the directory, catch the backup up with the DB (a snapshot, taken here, before anything is
        answered) and start journaling; the store's batches come to :meth:`record` from now on. Under
        ``stop`` a failure raises (exchange mode does not start); under ``degrade`` it leaves the backup
        DEGRADED."""
        self.store.mirror = self.record
        self.store.mirror_abort = self.abort
        try:
            prepare_directory(self.directory, self.identity, SCHEMA_VERSION)
            primary = self.store.sequence
            held = self._held_sequence()
            if held is not None and held > primary + 1:
                raise BackupError(f"the backup holds batches up to {held}, the exchange DB only up to {primary}: "
                                  "the DB is older than its backup (restored from elsewhere?); restore from this "
                                  "backup, or point backup_dir at an empty directory")
            if held == primary + 1:
                # Journaled, then the node stopped before the DB wrote it: never answered, so dropped (the
                # snapshot below prunes the segment holding it).
                log.warning("backup: batch %d is in the journal but not in the exchange DB (the node stopped "
                            "between the two writes; nobody was answered): dropped", held)
            if held != primary:
                why = "empty" if held is None else f"at batch {held}"
                log.info("backup in %s is %s, the exchange DB at batch %d: taking a snapshot first",
                         self.directory, why, primary)
                self._snapshot_now()
            self._journal = self._new_segment(primary + 1)
            self.last_sequence = primary
        except (OSError, BackupError) as exc:
            self._failed(exc, "opening the backup")
            if self.state is BackupState.FAILED:
                self.store.mirror = None
                raise BackupError(self.error or str(exc)) from exc
            self._schedule_snapshot()
            return
        self._schedule_snapshot()
        self._move(BackupState.CURRENT)
        log.info("backup CURRENT in %s at batch %d (snapshot every %.0f s; on failure: %s)", self.directory,
                 primary, self.snapshot_interval, self.policy)

    def _new_segment(self, first: int) -> JournalWriter:
        """A journal segment for the batches from ``first`` on. A file of that name left by an earlier run can
        only hold a torn record (its batch is past the DB's last one, so it was never answered): dropped."""
        if self._journal is not None and self._journal.path.name == journal_mod.segment_name(first):
            self._journal.close()
            self._journal = None
        stale = self.directory / journal_mod.segment_name(first)
        if stale.exists():
            log.warning("backup: dropping %s, which holds no whole batch (a torn write of a stopped run)",
                        stale.name)
            stale.unlink()
        return JournalWriter(self.directory, first)

    def _held_sequence(self) -> int | None:
        """The last batch a restore from the backup directory would reach: its newest snapshot and the
        journal's batches after it, without a gap (None: no snapshot, so nothing restorable)."""
        for stale in self.directory.glob(".*.tmp"):  # a snapshot or manifest cut short by a stop
            stale.unlink()
        taken = snapshots(self.directory)
        if not taken:
            return None
        sequence, path = taken[-1]
        self.last_snapshot_sequence, self.last_snapshot_time = sequence, path.stat().st_mtime
        try:
            found = journal_mod.replay(self.directory, sequence, decode=False)
        except BackupError as exc:  # batches missing (a degraded run): restorable only up to the gap
            log.warning("backup: %s", exc)
            return sequence
        return found.records[-1].sequence if found.records else sequence

    def _snapshot_now(self) -> None:
        """A snapshot written on this thread (start-up only: nothing is answered until it is done)."""
        with self.store.db.snapshot() as view:
            sequence = int.from_bytes(view.get(SEQUENCE) or b"\0", "little")
            with view.iterator() as items:
                path, entries, size = write_snapshot(self.directory, sequence, items)
        self._snapshot_done(sequence)
        log.info("backup snapshot %s: %d keys, %d bytes", path.name, entries, size)

    # -- every batch -------------------------------------------------------------------------------------------

    def record(self, sequence: int, ops: Sequence[Op]) -> None:
        """The store's mirror: journal batch ``sequence`` durably, or handle the failure by the policy."""
        if self._journal is None:  # degraded (or failed): nothing is journaled until a snapshot heals it
            if self.state is BackupState.DEGRADED:
                return
            raise BackupError(f"the backup failed earlier: {self.error}")
        try:
            self._journal.append(sequence, ops)
        except (OSError, BackupError) as exc:
            self._failed(exc, f"journaling batch {sequence}")
            if self.state is BackupState.FAILED:
                raise BackupError(f"the backup failed: {self.error}") from exc
            return
        if not self._healing:
            self.last_sequence = sequence
        if self._journal.bytes_written >= self.journal_limit and self._snapshotting is None and not self._soon:
            # Not now: this batch is journaled but not yet in the DB, so a view taken now would miss it.
            self._soon = True
            self._later(self._snapshot_soon)

    def abort(self, sequence: int) -> None:
        """The store's mirror_abort: batch ``sequence``, journaled, was refused by the DB (its callers are told it
        was not made): cancel it in the journal, so that no restore makes it."""
        if self._journal is None or self._journal.next_sequence != sequence + 1:
            return  # not journaled (degraded, or the journal refused it first)
        try:
            self._journal.abort(sequence)
        except (OSError, BackupError) as exc:
            log.error("the backup journal holds batch %d, which the exchange DB refused, and could not cancel it "
                      "(%s): a restore from this backup would make it; take a fresh backup once the disk is "
                      "fixed", sequence, public_error(exc))
            self._failed(exc, f"cancelling batch {sequence}")
            return
        if not self._healing:
            self.last_sequence = sequence - 1

    def _failed(self, exc: BaseException, what: str) -> None:
        self.error = f"{what}: {public_error(exc)}"
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self.policy == STOP:
            log.error("BACKUP FAILED (%s in %s); backup_failure = stop: exchange mode stops. Fix the backup "
                      "directory (space, permissions, the disk), then restart the node: it takes a fresh snapshot",
                      self.error, self.directory)
            if self.state is not BackupState.CLOSED:
                self._move(BackupState.FAILED)
            return
        first = self.state is not BackupState.DEGRADED
        self._healing = False
        if self.state is not BackupState.CLOSED:
            self._move(BackupState.DEGRADED)
        if first:
            # After the write in progress (a snapshot now would be taken before its batch, which the journal
            # has just refused): said, and a heal tried, at the end of this turn, then every minute.
            self._later(self._remind)

    def _later(self, fn: Callable[[], Any]) -> None:
        """``fn`` on the reactor thread at the next turn, also when asked from a writer thread (record() runs in
        the thread of the batch: the reactor's, or a cycle update's writer)."""
        if self._call_from_thread is not None and not isInIOThread():
            self._call_from_thread(self._call_later, 0, fn)
        else:
            self._call_later(0, fn)

    def _remind(self) -> None:
        """Under ``degrade``: say it loudly every minute, and try to heal with a fresh snapshot."""
        self._reminder = None
        if self.state is not BackupState.DEGRADED:
            return
        log.error("BACKUP DEGRADED (%s in %s): the exchange runs WITHOUT a current backup; the backup holds "
                  "batches up to %s, the exchange DB %d. Fix the backup directory; a fresh snapshot is tried "
                  "every minute", self.error, self.directory, self.last_sequence, self.store.sequence)
        if self._snapshotting is None:
            self.snapshot()
        self._reminder = self._call_later(REMINDER_SECONDS, self._remind)

    # -- snapshots -----------------------------------------------------------------------------------------

    def _snapshot_soon(self) -> None:
        self._soon = False
        self.snapshot()

    def _schedule_snapshot(self) -> None:
        if self.snapshot_interval > 0 and not self._closing:
            self._timer = self._call_later(self.snapshot_interval, self._periodic)

    def _periodic(self) -> None:
        self._timer = None
        if self._snapshotting is None and self.state in (BackupState.CURRENT, BackupState.DEGRADED):
            self.snapshot()
        self._schedule_snapshot()

    def snapshot(self) -> Deferred:
        """Take a snapshot now: the DB's view and a new journal segment on this (the reactor) thread, the file
        written in a thread. Call it between batches (never from inside ``record``). Fires with the snapshot's
        batch number once the file is whole (or with None if it could not be written; the error is logged and
        kept in the status)."""
        if self._snapshotting is not None:
            return self._snapshotting
        if self.state not in (BackupState.CURRENT, BackupState.DEGRADED) or self._closing:
            return succeed(None)
        # No batch is written while the view is taken and the journal switches segments: a batch from a writer
        # thread could otherwise land in the old segment after the view (and be deleted with it).
        with self.store.exclusive():
            return self._snapshot_locked()

    def _snapshot_locked(self) -> Deferred:
        sequence = self.store.sequence
        healing = self.state is BackupState.DEGRADED
        if not healing and sequence == self.last_snapshot_sequence:
            return succeed(sequence)  # nothing was written since the last one
        view = self.store.db.snapshot()
        previous = self._journal
        try:
            # The batches after the snapshot go to a new segment, so that the older ones can be deleted whole.
            journal = self._new_segment(sequence + 1)
        except (OSError, BackupError) as exc:
            view.close()
            if self._journal is None and not healing:  # the old segment was closed: nothing journals now
                self._failed(exc, "starting a journal segment")
            else:
                self._snapshot_failed(exc, healing)
            return succeed(None)
        if previous is not None and previous is not self._journal:
            previous.close()
        self._journal = journal
        # While healing, last_sequence stays what the old snapshot and segments hold, until this one is whole.
        self._healing = healing

        def write() -> tuple[Path, int, int]:
            with view.iterator() as items:
                return write_snapshot(self.directory, sequence, items, lambda: self._closing)

        started = time.monotonic()
        done = self._run_in_thread(write)

        def written(result: tuple[Path, int, int]) -> int:
            view.close()
            path, entries, size = result
            log.info("backup snapshot %s: %d keys, %d bytes in %.2f s", path.name, entries, size,
                     time.monotonic() - started)
            self._snapshot_done(sequence)
            if healing and self._journal is journal and self.state is BackupState.DEGRADED:
                self._healing = False
                self.last_sequence = journal.next_sequence - 1
                self.error = None
                self._move(BackupState.CURRENT)
                log.warning("backup CURRENT again in %s from batch %d", self.directory, sequence)
            return sequence

        def failed(failure: Any) -> None:
            view.close()
            self._snapshot_failed(failure.value, healing)
            return None

        def finished(result: Any) -> Any:
            self._snapshotting = None
            if isinstance(result, Failure):  # a bug in the bookkeeping above: said, not left unhandled
                log.error("backup snapshot bookkeeping failed: %s", result.getTraceback())
                return None
            return result

        done.addCallbacks(written, failed)
        done.addBoth(finished)
        if self._snapshotting is None and not done.called:
            self._snapshotting = done
        return done

    def _snapshot_failed(self, exc: BaseException, healing: bool) -> None:
        if self._closing:
            return
        if healing:
            self._healing = False
            self.error = f"snapshot: {public_error(exc)}"
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            return
        # The journal is still whole (no segment was deleted): the backup remains complete; say so anyway.
        self.error = f"snapshot: {public_error(exc)}"
        log.error("backup snapshot in %s failed: %s (the journal still holds every batch)", self.directory, exc)

    def _snapshot_done(self, sequence: int) -> None:
        """A snapshot of batch ``sequence`` is whole: older snapshots and journal segments are not needed."""
        self.last_snapshot_time = self._clock()
        self.last_snapshot_sequence = sequence
        for taken, path in snapshots(self.directory):
            if taken < sequence:
                path.unlink(missing_ok=True)
        for first, path in journal_mod.segments(self.directory):
            if first <= sequence and (self._journal is None or path != self._journal.path):
                path.unlink(missing_ok=True)
        fsync_dir(self.directory)

    # -- status and close ----------------------------------------------------------------------------------

    def status(self) -> dict:
        return {"state": self.state.value, "dir": str(self.directory), "last_sequence": self.last_sequence,
                "primary_sequence": self.store.sequence, "last_snapshot_time": self.last_snapshot_time,
                "last_snapshot_sequence": self.last_snapshot_sequence, "error": self.error, "policy": self.policy}

    def close(self) -> Deferred:
        """Stop journaling and timers; fires once no snapshot thread reads the DB any more (the store may be
        closed then: closing a plyvel DB while another thread iterates it can crash the process)."""
        self._closing = True
        for timer in (self._timer, self._reminder):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._reminder = None
        if self.store.mirror == self.record:
            self.store.mirror = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self.state is not BackupState.CLOSED:
            self._move(BackupState.CLOSED)
        pending = self._snapshotting
        if pending is None:
            return succeed(None)
        waiting: Deferred = Deferred()
        pending.addBoth(lambda result: (waiting.callback(None), result)[1])
        return waiting


def start_backup(config: Any, store: ExchangeStore, reader: Any, call_later: Callable[..., Any],
                 run_in_thread: Callable[..., Deferred],
                 call_from_thread: Callable[..., Any] | None = None) -> ContinuousBackup | None:
    """The continuous backup an ExchangeConfig asks for, opened on ``store`` (None without ``backup_dir``).
    Called on the reactor thread at start-up, before the engine writes anything."""
    if config.backup_dir is None:
        return None
    backup = ContinuousBackup(config.backup_dir, store, ChainIdentity.of(reader), policy=config.backup_failure,
                              snapshot_interval=config.backup_snapshot_interval,
                              journal_limit=config.backup_journal_mb << 20, call_later=call_later,
                              run_in_thread=run_in_thread, call_from_thread=call_from_thread)
    backup.open()
    return backup

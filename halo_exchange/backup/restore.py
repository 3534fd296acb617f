"""One-off backups and restores: ``halo-exchange backup`` and ``halo-exchange restore``.

:func:`backup_stopped` copies the exchange DB of a stopped node into a new backup directory (a manifest and
one snapshot); :func:`backup_running` does the same through a running node's own store handle, the snapshot
read in a thread (never by opening the DB a second time: a failed second open of a LevelDB path silently
drops the process's lock). :func:`restore` rebuilds an exchange DB from a backup directory: the newest whole
snapshot, then the journal's batches after it, each exactly the next number, up to the last whole one (a torn
or damaged tail record is reported and ignored: its batch was never acknowledged). It builds the DB beside
the target and renames it into place, so a restore cut short leaves no half-built exchange DB behind.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import plyvel
from twisted.internet.defer import Deferred

from halo_exchange.backup import journal as journal_mod
from halo_exchange.backup.snapshot import (
    ChainIdentity,
    manifest_identity,
    read_manifest,
    read_snapshot,
    snapshots,
    write_manifest,
    write_snapshot,
)
from halo_exchange.errors import BackupError, RestoreRefused
from halo_exchange.files import fsync_dir, make_private_dir
from halo_exchange.ledger.store import SCHEMA, SCHEMA_VERSION, SEQUENCE, ExchangeStore
from halo_exchange.serialize import pack_u64

_BATCH_KEYS = 10_000  # snapshot keys per LevelDB batch while restoring (unsynced; the last write syncs)


def _check_new_directory(to_dir: Path) -> None:
    if to_dir.exists() and (not to_dir.is_dir() or any(to_dir.iterdir())):
        raise RestoreRefused(f"{to_dir} exists and is not an empty directory: give a new one")


def _sequence_of(get: Callable[[bytes], bytes | None]) -> int:
    raw = get(SEQUENCE)
    return 0 if raw is None else int.from_bytes(raw, "little")


def _copy(store: ExchangeStore) -> tuple[Any, int]:
    """The snapshot view of ``store`` and its batch number (on the store's writer thread); the caller writes it."""
    view = store.db.snapshot()
    return view, _sequence_of(view.get)


def _write_copy(view: Any, sequence: int, to_dir: Path, identity: ChainIdentity) -> dict:
    started = time.monotonic()
    make_private_dir(to_dir)
    write_manifest(to_dir, identity, SCHEMA_VERSION)
    with view.iterator() as items:
        path, entries, size = write_snapshot(to_dir, sequence, items)
    return {"to": str(to_dir), "sequence": sequence, "keys": entries, "bytes": size, "file": path.name,
            "seconds": round(time.monotonic() - started, 3)}


def backup_stopped(exchange_dir: Path, to_dir: Path, identity: ChainIdentity) -> dict:
    """A consistent copy of a stopped node's exchange DB in ``to_dir`` (new or empty): what was written."""
    _check_new_directory(to_dir)
    store = ExchangeStore(str(exchange_dir))
    try:
        view, sequence = _copy(store)
        try:
            return _write_copy(view, sequence, to_dir, identity)
        finally:
            view.close()
    finally:
        store.close()


def backup_running(store: ExchangeStore, to_dir: Path, identity: ChainIdentity,
                   run_in_thread: Callable[..., Deferred]) -> Deferred:
    """A consistent copy of a running exchange's DB in ``to_dir``, called on the reactor thread (the store's
    writer): the view is taken there, between two batches; the file is written in a thread. Fires with what
    was written (as :func:`backup_stopped`)."""
    _check_new_directory(to_dir)
    view, sequence = _copy(store)
    done = run_in_thread(_write_copy, view, sequence, to_dir, identity)

    def release(result: Any) -> Any:
        view.close()
        return result

    return done.addBoth(release)


@dataclass
class Restored:
    """What :func:`restore` did."""

    sequence: int  # the last batch the restored DB holds
    snapshot_sequence: int
    replayed: int  # journal batches applied after the snapshot
    keys: int  # keys the snapshot held
    damage: list[str] = field(default_factory=list)  # records ignored (a torn or damaged tail)
    moved_aside: Path | None = None
    seconds: float = 0.0

    def render(self) -> str:
        lines = [f"restored the exchange DB to batch {self.sequence}: snapshot of batch {self.snapshot_sequence} "
                 f"({self.keys} keys), {self.replayed} batches replayed from the journal, in {self.seconds:.2f} s"]
        lines += [f"ignored a damaged journal tail: {d} (a batch never acknowledged)" for d in self.damage]
        if self.moved_aside is not None:
            lines.append(f"the exchange DB that was there is kept as {self.moved_aside}")
        lines.append("start the node: it catches the exchange up with the chain")
        return "\n".join(lines)


def check_backup(from_dir: Path, identity: ChainIdentity | None) -> dict:
    """The manifest of backup directory ``from_dir``, or RestoreRefused (no backup, another chain, newer schema)."""
    if not from_dir.is_dir():
        raise RestoreRefused(f"{from_dir}: no such directory")
    manifest = read_manifest(from_dir)
    if manifest is None:
        raise RestoreRefused(f"{from_dir} holds no backup (no manifest.json)")
    if manifest.get("schema", 0) > SCHEMA_VERSION:
        raise RestoreRefused(f"the backup is of exchange DB schema {manifest['schema']}, newer than this code's "
                             f"{SCHEMA_VERSION}: restore it with the version that made it")
    if identity is not None:
        problem = manifest_identity(manifest).differs(identity)
        if problem:
            raise RestoreRefused(f"the backup is of another chain: {problem}; refusing to restore it here")
    return manifest


def restore(from_dir: Path, exchange_dir: Path, identity: ChainIdentity | None, *, force: bool = False) -> Restored:
    """Rebuild ``exchange_dir`` from the backup in ``from_dir`` (the node stopped; the caller checks that).

    An existing exchange DB is refused unless ``force``, and then moved aside (``<dir>.before-restore-<time>``),
    never deleted. ``identity``: the chain the node holds (None when it holds none yet: not checked).
    """
    started = time.monotonic()
    check_backup(from_dir, identity)
    if exchange_dir.exists() and any(exchange_dir.iterdir()) and not force:
        raise RestoreRefused(f"an exchange DB exists in {exchange_dir}: give --force to move it aside and restore")
    taken = snapshots(from_dir)
    if not taken:
        raise RestoreRefused(f"{from_dir} holds no snapshot")
    problems = []
    for snapshot_sequence, path in reversed(taken):  # the newest whole one
        try:
            snapshot_sequence, items = read_snapshot(path)
            break
        except BackupError as exc:
            problems.append(str(exc))
    else:
        raise RestoreRefused(f"no whole snapshot in {from_dir}: {'; '.join(problems)}")
    replay = journal_mod.replay(from_dir, snapshot_sequence)

    building = exchange_dir.with_name(f".{exchange_dir.name}.restoring")
    if building.exists():
        shutil.rmtree(building)  # a restore cut short: only ever ours
    make_private_dir(building.parent)
    db = plyvel.DB(str(building), create_if_missing=True, error_if_exists=True, compression=None)
    keys = 0
    try:
        batch = db.write_batch()
        for key, value in items:
            batch.put(key, value)
            keys += 1
            if keys % _BATCH_KEYS == 0:
                batch.write()
                batch = db.write_batch()
        batch.write()
        schema = db.get(SCHEMA)
        if schema is not None and int.from_bytes(schema, "little") > SCHEMA_VERSION:
            raise RestoreRefused(f"the snapshot holds exchange DB schema {int.from_bytes(schema, 'little')}, newer "
                                 f"than this code's {SCHEMA_VERSION}")
        for record in replay.records:
            with db.write_batch(transaction=True) as batch:
                for key, value in record.ops:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
        sequence = _sequence_of(db.get)
        expected = replay.records[-1].sequence if replay.records else snapshot_sequence
        if sequence != expected:
            raise BackupError(f"the restored DB says batch {sequence}, the backup ends at batch {expected}")
        db.put(SEQUENCE, pack_u64(sequence), sync=True)  # one synced write: everything before it is durable
    except BaseException:
        db.close()
        shutil.rmtree(building, ignore_errors=True)
        raise
    db.close()
    moved = None
    if exchange_dir.exists() and not any(exchange_dir.iterdir()):
        exchange_dir.rmdir()
    elif exchange_dir.exists():
        moved = exchange_dir.with_name(f"{exchange_dir.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
        os.rename(exchange_dir, moved)
    os.rename(building, exchange_dir)
    fsync_dir(exchange_dir.parent)
    return Restored(sequence, snapshot_sequence, len(replay.records), keys, [str(d) for d in replay.damage], moved,
                    time.monotonic() - started)


def chain_identity_of(chain_dir: Path) -> ChainIdentity | None:
    """The identity of the chain a stopped node holds in ``chain_dir`` (None: no chain there yet). Opens the
    node DB briefly: only for a process that holds no handle on it (the CLI, the node stopped)."""
    from halo_exchange.chain.reader import ChainReader

    if not (chain_dir / "CURRENT").exists():
        return None
    db = plyvel.DB(str(chain_dir), create_if_missing=False, compression=None)
    try:
        return ChainIdentity.of(ChainReader(db))
    finally:
        db.close()


def backup_command(engine: Any, args: dict, run_in_thread: Callable[..., Deferred]) -> Deferred:
    """The operator channel's ``backup`` command on a running exchange: ``args["to"]`` an absolute path of a
    new or empty directory. Fires with what was written (as :func:`backup_stopped`); a refusal raises
    RestoreRefused, whose text the operator reads."""
    to = args.get("to") if isinstance(args, dict) else None
    if not isinstance(to, str) or not Path(to).is_absolute():
        raise RestoreRefused("backup needs {\"to\": an absolute directory path}")
    return backup_running(engine.store, Path(to), ChainIdentity.of(engine.reader), run_in_thread)

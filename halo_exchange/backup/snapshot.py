"""Backup snapshots and the manifest: a whole exchange DB in one file, and what chain a backup belongs to.

A snapshot is ``snapshot-<sequence, 20 digits>.snap``: the magic ``HXSNAP1\\n``, ``u64 sequence`` (the last
batch it holds), then every key and value of the DB (``u32 length ‖ key ‖ u32 length ‖ value``), then the end
mark ``u32 0xFFFFFFFF ‖ u64 entries ‖ u32 CRC-32`` of everything before it. It is written from a plyvel
snapshot (a consistent view while the exchange keeps writing) to a temporary name, ``fsync``\\ ed, then renamed:
a snapshot under its final name is always whole. The keys are copied as they are, so a sealed wallet key is as
sealed in the backup as in the DB.

``manifest.json`` says whose backup a directory holds: the chain's network and genesis block hash (when the
node holds block 0), the exchange DB schema, the format. Restore refuses a backup of another chain or of a
newer schema.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from halo_exchange.errors import BackupError
from halo_exchange.files import fsync_dir, make_private_dir

log = logging.getLogger(__name__)

MAGIC = b"HXSNAP1\n"
END = 0xFFFFFFFF
_LEN = struct.Struct("<I")
_TRAILER = struct.Struct("<IQI")
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{20})\.snap$")
MANIFEST = "manifest.json"
FORMAT = 1
_CHUNK = 1 << 20


def snapshot_name(sequence: int) -> str:
    return f"snapshot-{sequence:020d}.snap"


def snapshots(directory: Path) -> list[tuple[int, Path]]:
    """The complete snapshots in ``directory`` (by name), oldest first."""
    found = []
    for entry in os.listdir(directory):
        match = SNAPSHOT_RE.match(entry)
        if match:
            found.append((int(match.group(1)), directory / entry))
    return sorted(found)


@dataclass(frozen=True)
class ChainIdentity:
    """Which chain an exchange DB follows: the network's name and, when the node holds it, block 0's hash."""

    network: str | None
    genesis: str | None  # hex, as stored

    @classmethod
    def of(cls, reader: Any) -> "ChainIdentity":
        """The identity a ChainReader (or anything with ``params()`` and ``block_hash(h)``) tells."""
        genesis = reader.block_hash(0)
        return cls(reader.params().network, genesis.hex() if genesis else None)

    def differs(self, node: "ChainIdentity") -> str | None:
        """Why this identity (a backup's) is of another chain than ``node``'s, or None when nothing known tells
        them apart."""
        if self.network and node.network and self.network != node.network:
            return f"the backup's network is {self.network}, this node's {node.network}"
        if self.genesis and node.genesis and self.genesis != node.genesis:
            return f"the backup's genesis block is {self.genesis[:16]}..., this node's {node.genesis[:16]}..."
        return None


def read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None


def write_manifest(directory: Path, identity: ChainIdentity, schema: int) -> None:
    record = {"format": FORMAT, "network": identity.network, "genesis": identity.genesis, "schema": schema,
              "created": int(time.time())}
    _write_atomically(directory / MANIFEST, [json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"])


def manifest_identity(manifest: dict) -> ChainIdentity:
    return ChainIdentity(manifest.get("network"), manifest.get("genesis"))


def prepare_directory(directory: Path, identity: ChainIdentity, schema: int) -> None:
    """Make ``directory`` a backup directory of this chain (mode 0700), or BackupError if it is another's."""
    make_private_dir(directory)
    if directory.stat().st_mode & 0o077:  # made by someone else beforehand: say so, leave it to the operator
        log.warning("the backup directory %s is open to other users (mode %o): chmod 700 it", directory,
                    directory.stat().st_mode & 0o777)
    manifest = read_manifest(directory)
    if manifest is None:
        write_manifest(directory, identity, schema)
        return
    problem = manifest_identity(manifest).differs(identity)
    if problem:
        raise BackupError(f"the backup directory holds a backup of another chain ({problem}); point backup_dir "
                          "at an empty directory")
    if manifest.get("schema", 0) > schema:
        raise BackupError(f"the backup directory holds exchange DB schema {manifest['schema']}, newer than this "
                          f"code's {schema}")


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to a temporary file beside ``path``, fsync it, rename it to ``path``; bytes written."""
    tmp = path.with_name(f".{path.name}.tmp")
    written = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                view = view[n:]
                written += n
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return written


def _snapshot_chunks(sequence: int, items: Iterable[tuple[bytes, bytes]], counted: list[int],
                     cancelled: Callable[[], bool]) -> Iterator[bytes]:
    crc = zlib.crc32(MAGIC + struct.pack("<Q", sequence))
    yield MAGIC + struct.pack("<Q", sequence)
    parts: list[bytes] = []
    size = entries = 0
    for key, value in items:
        parts.append(_LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
        size += len(key) + len(value) + 8
        entries += 1
        if size >= _CHUNK:
            if cancelled():
                raise BackupError("snapshot cancelled (the exchange is closing)")
            chunk = b"".join(parts)
            crc = zlib.crc32(chunk, crc)
            yield chunk
            parts, size = [], 0
    chunk = b"".join(parts) + struct.pack("<IQ", END, entries)
    crc = zlib.crc32(chunk, crc)
    yield chunk + _LEN.pack(crc)
    counted.append(entries)


def write_snapshot(directory: Path, sequence: int, items: Iterable[tuple[bytes, bytes]],
                   cancelled: Callable[[], bool] = lambda: False) -> tuple[Path, int, int]:
    """Write the DB's ``items`` (all of it, as of batch ``sequence``) as a snapshot in ``directory``: (path,
    entries, bytes). Safe in a thread: it touches only the files and the iterator it is given."""
    path = directory / snapshot_name(sequence)
    counted: list[int] = []
    size = _write_atomically(path, _snapshot_chunks(sequence, items, counted, cancelled))
    return path, counted[0], size


def read_snapshot(path: Path) -> tuple[int, Iterator[tuple[bytes, bytes]]]:
    """(sequence, its entries) of a snapshot file, the whole file checked first (BackupError if damaged)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8 + _TRAILER.size:
        raise BackupError(f"{path.name} is not a snapshot (no header)")
    if zlib.crc32(memoryview(data)[:-4]) != _LEN.unpack_from(data, len(data) - 4)[0]:
        raise BackupError(f"{path.name} is damaged (CRC mismatch)")
    mark, entries, _ = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    if mark != END:
        raise BackupError(f"{path.name} is damaged (no end mark)")
    (sequence,) = struct.unpack_from("<Q", data, len(MAGIC))

    def items() -> Iterator[tuple[bytes, bytes]]:
        view, at, end, seen = memoryview(data), len(MAGIC) + 8, len(data) - _TRAILER.size, 0
        while at < end:
            (klen,) = _LEN.unpack_from(view, at)
            key = bytes(view[at + 4:at + 4 + klen])
            at += 4 + klen
            (vlen,) = _LEN.unpack_from(view, at)
            yield key, bytes(view[at + 4:at + 4 + vlen])
            at += 4 + vlen
            seen += 1
        if seen != entries:
            raise BackupError(f"{path.name} is damaged ({seen} entries, its end mark says {entries})")

    return sequence, items()

"""The backup journal: every batch the exchange DB commits, appended to segment files, each record checked.

A record is ``u64 sequence ‖ u32 length ‖ u32 CRC-32 ‖ payload``; the CRC covers the sequence, the length and
the payload, so a torn write or a flipped bit anywhere in the record is caught. The payload is the batch's
ops in order: ``u8 kind (1 put, 0 delete) ‖ u32 key length ‖ key ‖ (u32 value length ‖ value, puts only)``.

A segment is ``journal-<first sequence, 20 digits>.log``. The writer appends one record per batch and
``fdatasync``\\ s it before the batch's callers are answered; a new segment starts at each snapshot (so that
whole segments older than a snapshot can be deleted) and at each start of the node. Sequence numbers are the
exchange DB's own batch numbers (``SEQUENCE`` in the store), so the two sides can always be compared.

An **abort** record (the payload ``ABORT``, which no ops payload can be: its first byte is no op kind) carries the
number of the batch just before it and cancels that batch: the journal had it, then the DB refused it (an I/O
error, a full disk), and its callers were told it was not made; a restore must not make it.

Reading stops at the first record that is incomplete or fails its CRC: in the last segment that is the torn
tail of a write the process did not finish (reported, and ignored: its batch was never acknowledged).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from halo_exchange.errors import BackupError
from halo_exchange.files import fsync_dir

Op = tuple[bytes, "bytes | None"]

HEADER = struct.Struct("<QII")  # sequence, payload length, CRC-32
_LEN = struct.Struct("<I")
MAX_RECORD = 1 << 30  # a length past this is damage, not a batch
SEGMENT_RE = re.compile(r"^journal-(\d{20})\.log$")


def segment_name(first_sequence: int) -> str:
    return f"journal-{first_sequence:020d}.log"


def encode_ops(ops: Sequence[Op]) -> bytes:
    parts: list[bytes] = []
    for key, value in ops:
        if value is None:
            parts.append(b"\x00" + _LEN.pack(len(key)) + key)
        else:
            parts.append(b"\x01" + _LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
    return b"".join(parts)


def decode_ops(payload: bytes) -> list[Op]:
    """The ops of a payload whose CRC already matched (a malformed one is still refused, not guessed)."""
    ops: list[Op] = []
    view, at, end = memoryview(payload), 0, len(payload)
    try:
        while at < end:
            kind = view[at]
            (klen,) = _LEN.unpack_from(view, at + 1)
            key = bytes(view[at + 5:at + 5 + klen])
            at += 5 + klen
            if kind == 1:
                (vlen,) = _LEN.unpack_from(view, at)
                value: bytes | None = bytes(view[at + 4:at + 4 + vlen])
                at += 4 + vlen
            elif kind == 0:
                value = None
            else:
                raise BackupError(f"journal record holds an op of unknown kind {kind}")
            if at > end:
                raise BackupError("journal record's ops run past its end")
            ops.append((key, value))
    except struct.error as exc:
        raise BackupError(f"journal record's ops are malformed: {exc}") from None
    return ops


ABORT = b"\xffabort"  # the payload of an abort record


def encode_record(sequence: int, ops: Sequence[Op], payload: bytes | None = None) -> bytes:
    payload = encode_ops(ops) if payload is None else payload
    head = struct.pack("<QI", sequence, len(payload))
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The journal segments in ``directory``, by first sequence."""
    found = []
    for entry in os.listdir(directory):
        match = SEGMENT_RE.match(entry)
        if match:
            found.append((int(match.group(1)), directory / entry))
    return sorted(found)


class JournalWriter:
    """Appends records to one segment, each durable (``fdatasync``) before :meth:`append` returns."""

    def __init__(self, directory: Path, first_sequence: int) -> None:
        self.path = directory / segment_name(first_sequence)
        self.next_sequence = first_sequence
        self.bytes_written = 0
        # O_EXCL: a segment is never appended to by two writers, nor reopened after a torn tail.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fsync_dir(directory)
        except OSError:
            self.close()
            raise

    def append(self, sequence: int, ops: Sequence[Op]) -> None:
        """Write one batch's record and make it durable; OSError (disk full, I/O error) as it comes."""
        if self._fd is None:
            raise BackupError(f"journal segment {self.path.name} is closed")
        if sequence != self.next_sequence:
            raise BackupError(f"journal expects batch {self.next_sequence}, was given {sequence}")
        record = memoryview(encode_record(sequence, ops))
        while record:
            written = os.write(self._fd, record)
            record = record[written:]
            self.bytes_written += written
        os.fdatasync(self._fd)
        self.next_sequence = sequence + 1

    def abort(self, sequence: int) -> None:
        """Cancel batch ``sequence``, the last one appended (the DB refused it), durably; its number is then free
        for the next batch."""
        if self._fd is None:
            raise BackupError(f"journal segment {self.path.name} is closed")
        if sequence != self.next_sequence - 1:
            raise BackupError(f"journal can cancel only batch {self.next_sequence - 1}, was asked {sequence}")
        record = memoryview(encode_record(sequence, (), ABORT))
        while record:
            written = os.write(self._fd, record)
            record = record[written:]
            self.bytes_written += written
        os.fdatasync(self._fd)
        self.next_sequence = sequence

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class Record:
    sequence: int
    ops: list[Op]
    aborted: bool = False  # an abort record: it cancels the batch of the same number before it


@dataclass
class Damage:
    """Where reading a segment stopped before its end: the segment, the byte offset and why."""

    segment: Path
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.segment.name} at byte {self.offset}: {self.reason}"


def read_segment(path: Path, damage: list[Damage], decode: bool = True) -> Iterator[Record]:
    """The records of one segment in order; the first bad one ends it and is added to ``damage``. Without
    ``decode`` the records' ops are left out (checked by their CRC only): for counting."""
    data = path.read_bytes()
    at, end = 0, len(data)
    while at < end:
        if end - at < HEADER.size:
            damage.append(Damage(path, at, f"torn record header ({end - at} of {HEADER.size} bytes)"))
            return
        sequence, length, crc = HEADER.unpack_from(data, at)
        if length > MAX_RECORD or at + HEADER.size + length > end:
            damage.append(Damage(path, at, f"torn record of batch {sequence} ({end - at - HEADER.size} of "
                                            f"{length} bytes)" if length <= MAX_RECORD else "impossible length"))
            return
        payload = data[at + HEADER.size:at + HEADER.size + length]
        if zlib.crc32(payload, zlib.crc32(data[at:at + 12])) != crc:
            damage.append(Damage(path, at, f"CRC mismatch (a record claiming batch {sequence})"))
            return
        if payload == ABORT:
            yield Record(sequence, [], aborted=True)
        else:
            yield Record(sequence, decode_ops(payload) if decode else [])
        at += HEADER.size + length


@dataclass
class Replay:
    """What :func:`replay` found after a snapshot: the batches, in order, and any damage it stopped at."""

    records: list[Record]
    damage: list[Damage]


def replay(directory: Path, after: int, decode: bool = True) -> Replay:
    """Every journal record after batch ``after`` (a snapshot's), in order, each exactly the next number.

    A damaged record ends its segment (reported in ``damage``); what follows must still continue the
    numbering, so damage anywhere but at the very end of the journal is a gap and refused.
    """
    records: list[Record] = []
    damage: list[Damage] = []
    expected = after + 1
    for _, path in segments(directory):
        for record in read_segment(path, damage, decode):
            if record.aborted:  # the batch before it never reached the DB: not replayed
                if records and records[-1].sequence == record.sequence:
                    records.pop()
                    expected = record.sequence
                continue
            if record.sequence <= after:
                continue
            if record.sequence != expected:
                raise BackupError(f"the journal misses batches {expected} to {record.sequence - 1} (found batch "
                                  f"{record.sequence} in {path.name}); this backup cannot restore past batch "
                                  f"{expected - 1}")
            records.append(record)
            expected += 1
    return Replay(records, damage)

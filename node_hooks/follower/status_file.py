"""The follower's status on disk, for ``halo-exchange status``: a small JSON file the running node rewrites.

The node process writes ``<datadir>/node-status.json`` every couple of seconds and when it stops (atomically:
a temporary file renamed over the old one), with its process ID and the wall-clock time of writing. Another
process reads it without touching the node's databases (LevelDB allows one process per DB). A file whose
writer is gone, or that has not been rewritten for a while, means the node is not running.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

STATUS_FILE_NAME = "node-status.json"
STALE_AFTER = 15.0  # seconds without a rewrite after which a status is not believed


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` (plus pid and time) to ``path`` atomically."""
    record = {**status, "pid": os.getpid(), "written_at": time.time()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, sort_keys=True))
    os.replace(temporary, path)


def read_status(path: Path, now: float | None = None) -> tuple[dict[str, Any] | None, str]:
    """(the status, "") when a running node wrote it recently; (the last status or None, why not) otherwise."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no node status in {path.parent} (is `halo-exchange node` running there?)"
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    now = time.time() if now is None else now
    age = now - float(record.get("written_at", 0))
    if record.get("state") == "stopped":
        return record, "the node stopped"
    if not _alive(int(record.get("pid", 0))) or age > STALE_AFTER:
        return record, f"the node is not running (its last status is {age:.0f} s old)"
    return record, ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatusWriter:
    """A daemon thread that writes ``status()`` to ``path`` every ``interval`` seconds, and once more at stop."""

    def __init__(self, status: Callable[[], dict[str, Any]], path: Path, interval: float = 2.0) -> None:
        self._status, self._path, self._interval = status, path, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._write()
            if self._stop.wait(self._interval):
                return

    def _write(self) -> None:
        try:
            write_status(self._path, self._status())
        except OSError as exc:  # a full disk must not stop the node; the log says why the status is old
            log.warning("cannot write %s: %s", self._path, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()

"""Private files: a node's data dir holds deposit keys, the wallet and the control RPC's cookie.

Node processes call :func:`private_umask` first thing, so that everything they and their libraries create
(LevelDB's files included, which have no mode option) is readable by the operator's user alone: folders 0700,
files 0600. :func:`make_private_dir` creates a data dir with mode 0700 even where the umask is another's (a
node built in code, in a test or a host process). :func:`fsync_dir` makes a file's creation, rename or removal
durable.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700


def private_umask() -> int:
    """Set the process umask to 0o077 (files 0600, folders 0700); returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; an existing folder is left as it is."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)
    return path


def fsync_dir(path: Path) -> None:
    """Make a file's creation, rename or removal in ``path`` durable (the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""What a node process checks before it writes anything: its data directory is not in use, its ports are free.

A node (``halo-exchange devnet``, ``halo-exchange node``) calls :func:`check_datadir_free` and
:func:`check_port_free` first thing, before its data directory is created or a new chain gets its genesis
block, so that a second node on the same data dir or a busy port costs one line on stderr and leaves the
disk as it was. Each raises :class:`StartupRefused`, whose text is that one line: what is wrong and which
option changes it ("port 55780 in use: --rpc-port", "a node is already running on DIR").

The checks are a courtesy, not a guarantee (a port can be taken between the check and the real listen): the
node still handles a failure of the real thing, with the same words where it can.

Only for a process that holds no LevelDB handle on the data dir yet: the lock check opens and closes the
``LOCK`` file, and closing any descriptor of a file drops this process's fcntl locks on it (DESIGN.md §7).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from halo_exchange.config import CHAIN_SUBDIR, EXCHANGE_SUBDIR


class StartupRefused(Exception):
    """The node cannot start; the text is the one line to show (what is wrong, which option changes it)."""


def port_refusal(host: str, port: int, option: str, exc: OSError) -> StartupRefused:
    """The one line for a listen on ``host:port`` that failed with ``exc``."""
    if exc.errno == errno.EADDRINUSE:
        return StartupRefused(f"port {port} in use: {option}")
    return StartupRefused(f"cannot listen on {host}:{port} ({exc.strerror or exc}): {option}")


def check_port_free(host: str, port: int | None, option: str) -> None:
    """StartupRefused unless a server could listen on ``host:port`` now (None or 0, any free port: nothing
    to check). ``option`` names the flag that changes it, for the message."""
    if not port:
        return
    try:
        # SO_REUSEADDR, as the real servers set it: a port in TIME_WAIT is free for them too.
        socket.create_server((host, port), reuse_port=False).close()
    except socket.gaierror as exc:
        raise StartupRefused(f"cannot listen on {host}:{port} ({exc.strerror or exc}): {option}") from None
    except OSError as exc:
        raise port_refusal(host, port, option, exc) from None


def _locked(lock_file: Path) -> bool:
    """True when another process holds LevelDB's lock on ``lock_file`` (an fcntl write lock)."""
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # releases the probe's lock at once
    return False


def check_datadir_free(datadir: str | os.PathLike[str]) -> None:
    """StartupRefused when another process has the node DB or the exchange DB of ``datadir`` open."""
    path = Path(datadir)
    if _locked(path / CHAIN_SUBDIR / "LOCK"):
        raise StartupRefused(f"a node is already running on {path}")
    if _locked(path / EXCHANGE_SUBDIR / "LOCK"):
        raise StartupRefused(f"the exchange DB in {path} is in use (a node, or halo-exchange audit, running on it)")


def is_lock_error(exc: BaseException) -> bool:
    """True when ``exc`` is LevelDB refusing a DB another process has open (plyvel's IOError "lock ...")."""
    text = str(exc)
    return "lock" in text.lower() and ("temporarily unavailable" in text or "already held" in text)

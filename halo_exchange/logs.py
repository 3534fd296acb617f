"""Logging of a halo-exchange process: the one set-up, and Twisted's log carried into it.

:func:`configure_logging` is what a process calls once it knows its configuration (``log_level``,
``log_file``). :func:`bridge_twisted_logging` sends Twisted's own log events to stdlib logging; the set-up
calls it, and so does the reactor's start (``service.ensure_reactor_running``), so that Twisted's events
reach stdlib logging also in a node or a test that never calls :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from halo_exchange.config import LOG_LEVELS, ConfigError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_handler: logging.Handler | None = None
_bridged = False
_lock = threading.Lock()


def configure_logging(level: str, file: str | Path | None = None) -> None:
    """Send every log record at ``level`` and above to ``file`` (appended) or, without one, to stderr.

    Calling it again replaces what the previous call installed and leaves other handlers alone (a test
    runner's, for one). A file that cannot be opened is a :class:`ConfigError` naming it.
    """
    global _handler
    if level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log level {level!r}: not one of {', '.join(LOG_LEVELS)}")
    try:
        handler = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler()
    except OSError as exc:
        raise ConfigError(f"log_file {file}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    _handler = handler
    bridge_twisted_logging()


def bridge_twisted_logging() -> None:
    """Route Twisted's log events to stdlib logging (logger ``twisted``), once per process."""
    global _bridged
    with _lock:
        if _bridged:
            return  # Twisted's log beginner takes its targets once; a second call would only warn
        from twisted.logger import STDLibLogObserver, globalLogBeginner

        globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
        _bridged = True

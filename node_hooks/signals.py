"""How a node process hears SIGINT and SIGTERM: both ask the node to stop, the same way, and the log says which.

The handler only records the signal and calls the node's ``request_stop`` (setting an event: safe in a
signal handler); the main loop logs "received SIGTERM, stopping" once it wakes (:meth:`log_received`),
outside the handler, where taking the logging lock is safe.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM both call ``request_stop``; :attr:`received` is the first one's name."""

    def __init__(self, request_stop: Callable[[], None]) -> None:
        self._request_stop = request_stop
        self.received: str | None = None

    def install(self) -> StopSignals:
        """Install the handlers (only the main thread can; elsewhere nothing is installed)."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
        self._request_stop()

    def log_received(self) -> None:
        """Log the signal that stopped the node, if one did."""
        if self.received is not None:
            log.info("received %s, stopping", self.received)

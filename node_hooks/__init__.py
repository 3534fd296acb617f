"""The node side of the plugin boundary: the hooks a Halo-style node calls to host exchange mode.

A node calls four events on its own thread: ``on_node_start(db, reader, params)`` once its chain DB is
open, ``on_block_connected(height, block_hash)`` after each block's atomic write, the matching
``on_block_disconnected`` after a block is undone, and ``on_node_stop()`` before it closes the DB. Block
hashes are display-order hex strings, as RPC shows them.

:class:`HookDispatcher` delivers each event to every registered hook and isolates failures: a hook that
raises is logged and counted, and block processing goes on. A hook must not block the node thread; the
exchange plugin only hands each event to its reactor (DESIGN.md §3).

Depends on ``halo_exchange``, never the reverse.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class NodeHook(Protocol):
    """What a node calls. Every method runs on the node's thread and must return quickly."""

    def on_node_start(self, db: Any, reader: Any, params: Any) -> None: ...

    def on_block_connected(self, height: int, block_hash: str) -> None: ...

    def on_block_disconnected(self, height: int, block_hash: str) -> None: ...

    def on_node_stop(self) -> None: ...


class HookDispatcher:
    """Fans node events out to the registered hooks, isolating each hook's failures from the node."""

    def __init__(self) -> None:
        self._hooks: list[NodeHook] = []
        self._lock = threading.Lock()
        self.failures: dict[int, int] = {}

    def register(self, hook: NodeHook) -> None:
        with self._lock:
            if hook not in self._hooks:
                self._hooks.append(hook)

    def unregister(self, hook: NodeHook) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    @property
    def hooks(self) -> tuple[NodeHook, ...]:
        with self._lock:
            return tuple(self._hooks)

    def failure_count(self, hook: NodeHook) -> int:
        return self.failures.get(id(hook), 0)

    def _deliver(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, event)(*args)
            except Exception:  # a plugin bug must never stop block processing
                self.failures[id(hook)] = self.failures.get(id(hook), 0) + 1
                log.exception("node hook %r failed in %s%r", hook, event, args)

    def node_started(self, db: Any, reader: Any, params: Any) -> None:
        self._deliver("on_node_start", db, reader, params)

    def block_connected(self, height: int, block_hash: str) -> None:
        self._deliver("on_block_connected", height, block_hash)

    def block_disconnected(self, height: int, block_hash: str) -> None:
        self._deliver("on_block_disconnected", height, block_hash)

    def node_stopped(self) -> None:
        self._deliver("on_node_stop")


@dataclass
class RecordingHook:
    """A hook that records the events it receives, in order: the exchange-mode stand-in and a test probe.

    With ``limit`` it keeps only the most recent events, so a long-running node does not grow without bound.
    """

    events: list[tuple] = field(default_factory=list)
    limit: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _record(self, event: tuple) -> None:
        with self._lock:
            self.events.append(event)
            if self.limit is not None and len(self.events) > self.limit:
                del self.events[: len(self.events) - self.limit]
        log.debug("node event %r", event)

    def on_node_start(self, db: Any, reader: Any, params: Any) -> None:
        self._record(("start",))

    def on_block_connected(self, height: int, block_hash: str) -> None:
        self._record(("connected", height, block_hash))

    def on_block_disconnected(self, height: int, block_hash: str) -> None:
        self._record(("disconnected", height, block_hash))

    def on_node_stop(self) -> None:
        self._record(("stop",))

    def of_kind(self, kind: str) -> list[tuple]:
        with self._lock:
            return [event for event in self.events if event[0] == kind]

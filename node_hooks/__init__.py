"""The node side of the plugin boundary: the hooks a Halo-style node calls to host exchange mode, and the
services it offers the plugin in return.

**Events** (the node calls them on its own thread, :class:`NodeHook`):

* ``on_node_start(db, reader, params, services=None)`` once its chain DB is open; ``services`` is the node's
  :class:`NodeServices` (None from a node that offers none);
* ``on_block_connected(height, block_hash)`` after each block's atomic write, and the matching
  ``on_block_disconnected`` after a block is undone;
* ``on_transaction_rejected(txid_hex, reason)``: a transaction handed over with
  :meth:`NodeServices.submit_transaction` was refused admission to the mempool;
* ``on_transaction_dropped(txid_hex, reason)``: a transaction left the mempool without being mined (it
  became invalid at block assembly, conflicted with a block, was not readmitted after a reorg, or a devnet
  helper dropped it). A transaction that leaves because a block mined it is never reported;
* ``on_node_stop()`` before it closes the DB.

Block hashes and txids are display-order hex strings, as RPC shows them. A ``reason`` starts with a short
code and may go on with ``": detail"`` for the log: a rejection's code is the consensus or mempool rule that
refused it (``bad-signature``, ``double-spend``, ``P-O-4``, ..., or ``decode-failed``, ``refused-by-devnet``,
``node-stopped``); a drop's code is ``conflict`` (it spent what a block spent, or descends from such a
transaction), ``reorg`` (not readmitted after a reorg; the refusing rule follows), the rule a transaction broke
when it became invalid at block assembly, ``dropped-by-devnet`` or ``parent-malleated`` (devnet helpers).
A plugin may act on the code; the detail is for people.

The two transaction events are optional: a hook without them is skipped, so hooks written before them keep
working; likewise a hook whose ``on_node_start`` takes only three arguments is called with three.

**Services** (:class:`NodeServices`, what the plugin may call, from any thread, its reactor included):

* ``submit_transaction(raw)`` queues a serialized signed transaction for the node's own thread and returns at
  once; it never blocks and never takes the node's lock, because the node holds that lock while it waits for
  the plugin to stop (DevNode.close). The outcome arrives as events: nothing when it is admitted (or was
  already pending), ``on_transaction_rejected`` when it is refused. A transaction the chain already holds is
  not reported at all (not a rejection: ``transaction_status`` answers CHAIN for it).
* ``transaction_status(txid)`` answers :class:`TxStatus` (MEMPOOL, CHAIN or UNKNOWN) for an internal-order
  txid (``Transaction.hash``) without the node's lock, from a snapshot of the mempool's txids and the chain
  DB. Not to be called after ``on_node_stop`` (the node then closes the DB). During a reorg a transaction
  about to be readmitted may briefly read UNKNOWN.

:class:`HookDispatcher` delivers each event to every registered hook and isolates failures: a hook that
raises is logged and counted, and block processing goes on. A hook must not block the node thread; the
exchange plugin only hands each event to its reactor (DESIGN.md §3).

Depends on ``halo_exchange``, never the reverse.
"""

from __future__ import annotations

import enum
import inspect
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


class TxStatus(enum.Enum):
    """Where the node knows a transaction to be."""

    MEMPOOL = "mempool"  # pending: admitted, not mined yet
    CHAIN = "chain"  # in a block of the active chain
    UNKNOWN = "unknown"  # neither: never seen, refused, dropped, malleated away, or disconnected


class NodeServices(Protocol):
    """What a node offers the plugin. Both calls are safe from any thread and never wait for the node."""

    def submit_transaction(self, raw: bytes) -> None:
        """Queue the serialized transaction ``raw`` for admission on the node's thread; return at once.

        A refusal comes back as ``on_transaction_rejected``; an admission, a resubmission of a pending
        transaction and a transaction already in the chain report nothing. Once the node is stopping,
        submissions are dropped (the node logs them): its mempool would not outlive it anyway."""

    def transaction_status(self, txid: bytes) -> TxStatus:
        """Where transaction ``txid`` (internal byte order) is now. A stopped node may raise instead."""


class ServicesOf:
    """A node's :class:`NodeServices` as its hooks get them: the two calls of the node and nothing else of it
    (the devnet node and the follower alike implement them; hooks must not reach the rest)."""

    def __init__(self, node: NodeServices) -> None:
        self._node = node

    def submit_transaction(self, raw: bytes) -> None:
        self._node.submit_transaction(raw)

    def transaction_status(self, txid: bytes) -> TxStatus:
        return self._node.transaction_status(txid)


@runtime_checkable
class NodeHook(Protocol):
    """What a node calls. Every method runs on the node's thread and must return quickly.

    ``on_transaction_rejected`` and ``on_transaction_dropped`` (see the module docstring) are optional and
    so not part of this protocol; the dispatcher calls them where a hook has them."""

    def on_node_start(self, db: Any, reader: Any, params: Any, services: NodeServices | None = None) -> None: ...

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

    def _deliver_optional(self, event: str, *args: Any) -> None:
        """Deliver to the hooks that have ``event``; the others predate it and are skipped."""
        for hook in self.hooks:
            method = getattr(hook, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:  # a plugin bug must never stop the node
                self.failures[id(hook)] = self.failures.get(id(hook), 0) + 1
                log.exception("node hook %r failed in %s%r", hook, event, args)

    def node_started(self, db: Any, reader: Any, params: Any, services: NodeServices | None = None) -> None:
        for hook in self.hooks:
            try:
                start = hook.on_node_start
                if _takes_services(start):
                    start(db, reader, params, services)
                else:  # a hook written before services existed
                    start(db, reader, params)
            except Exception:
                self.failures[id(hook)] = self.failures.get(id(hook), 0) + 1
                log.exception("node hook %r failed in on_node_start", hook)

    def block_connected(self, height: int, block_hash: str) -> None:
        self._deliver("on_block_connected", height, block_hash)

    def block_disconnected(self, height: int, block_hash: str) -> None:
        self._deliver("on_block_disconnected", height, block_hash)

    def transaction_rejected(self, txid_hex: str, reason: str) -> None:
        self._deliver_optional("on_transaction_rejected", txid_hex, reason)

    def transaction_dropped(self, txid_hex: str, reason: str) -> None:
        self._deliver_optional("on_transaction_dropped", txid_hex, reason)

    def node_stopped(self) -> None:
        self._deliver("on_node_stop")


def _takes_services(method: Any) -> bool:
    """Whether a bound ``on_node_start`` accepts a fourth argument (``services``)."""
    try:
        inspect.signature(method).bind(None, None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume the current protocol
        return True
    return True


@dataclass
class RecordingHook:
    """A hook that records the events it receives, in order: the exchange-mode stand-in and a test probe.

    With ``limit`` it keeps only the most recent events, so a long-running node does not grow without bound.
    """

    events: list[tuple] = field(default_factory=list)
    limit: int | None = None
    services: NodeServices | None = None  # what the node offered at start
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _record(self, event: tuple) -> None:
        with self._lock:
            self.events.append(event)
            if self.limit is not None and len(self.events) > self.limit:
                del self.events[: len(self.events) - self.limit]
        log.debug("node event %r", event)

    def on_node_start(self, db: Any, reader: Any, params: Any, services: NodeServices | None = None) -> None:
        self.services = services
        self._record(("start",))

    def on_block_connected(self, height: int, block_hash: str) -> None:
        self._record(("connected", height, block_hash))

    def on_block_disconnected(self, height: int, block_hash: str) -> None:
        self._record(("disconnected", height, block_hash))

    def on_transaction_rejected(self, txid_hex: str, reason: str) -> None:
        self._record(("rejected", txid_hex, reason))

    def on_transaction_dropped(self, txid_hex: str, reason: str) -> None:
        self._record(("dropped", txid_hex, reason))

    def on_node_stop(self) -> None:
        self._record(("stop",))

    def of_kind(self, kind: str) -> list[tuple]:
        with self._lock:
            return [event for event in self.events if event[0] == kind]

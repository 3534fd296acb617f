"""The plugin's lifecycle inside the node process: the reactor thread, the bridge, node events to the engine.

One Twisted reactor runs in a background thread (``installSignalHandlers=False``: the node owns signals),
started once per process and never stopped by exchange mode: a reactor cannot be restarted
(reference/ecosystem-notes.md §1.1). Node events enter with ``reactor.callFromThread`` (FIFO, never blocking
the node). Calls that need an answer go through :func:`call_in_reactor`, a guarded bridge with a timeout:
Twisted's own ``blockingCallFromThread`` hangs forever when called from the reactor thread, before the
reactor runs or after it stopped (DESIGN.md §7).

:class:`ExchangeService` is the node hook of exchange mode. Its lifecycle is an explicit state machine:
``STOPPED → STARTING → RUNNING → CLOSED``, or ``FAILED`` when a write to the exchange DB fails (memory is then
ahead of the disk, so it stops applying events; a restart catches up from the store and the chain).
Once running it also serves the operator channel (:mod:`halo_exchange.operator`, ``<datadir>/exchange.sock``)
with its ``status`` command (:mod:`halo_exchange.status`); the socket stays up after a failure, so that the
operator can read why, and goes at the close.
With ``backup_dir`` it opens the continuous backup (:mod:`halo_exchange.backup.continuous`) before the
engine, and a backup that cannot be written under ``backup_failure = stop`` fails exchange mode like a failed
DB write; the operator channel's ``backup`` command copies the running exchange's DB.
"""

from __future__ import annotations

import enum
import errno
import gc
import ipaddress
import logging
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.python.failure import Failure

from halo_exchange.backup.continuous import ContinuousBackup, off_status, start_backup
from halo_exchange.backup.restore import backup_command
from halo_exchange.config import ExchangeConfig
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import BackupError, HaloExchangeError, OperatorError, public_error
from halo_exchange.files import make_private_dir
from halo_exchange.ledger.store import ExchangeStore
from halo_exchange.ledger.wallet import WalletState
from halo_exchange.logs import bridge_twisted_logging
from halo_exchange.operator import OperatorServer
from halo_exchange.status import collect

log = logging.getLogger(__name__)


class ServiceError(HaloExchangeError):
    """The exchange service cannot do what was asked (not running, failed, called from the wrong thread)."""


class ServiceTimeout(ServiceError):
    """A call into the reactor did not answer in time."""


_reactor_thread: threading.Thread | None = None
_reactor_lock = threading.Lock()


def ensure_reactor_running(switch_interval: float = ExchangeConfig.switch_interval) -> None:
    """Start the process's reactor thread once (idempotent), with Twisted's logs sent to stdlib logging."""
    global _reactor_thread
    from twisted.internet import reactor

    with _reactor_lock:
        if _reactor_thread is not None:
            return
        bridge_twisted_logging()
        sys.setswitchinterval(switch_interval)
        _reactor_thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, name="exchange-reactor", daemon=True
        )
        _reactor_thread.start()
    started = threading.Event()
    reactor.callFromThread(started.set)
    if not started.wait(10):
        raise ServiceError("the reactor thread did not start")


def in_reactor_thread() -> bool:
    return _reactor_thread is not None and threading.current_thread() is _reactor_thread


def call_in_reactor(fn: Callable[..., Any], *args: Any, timeout: float = ExchangeConfig.bridge_timeout) -> Any:
    """Run ``fn(*args)`` on the reactor thread and return its result (a Deferred's result is waited for).

    Guarded where ``blockingCallFromThread`` would hang: on the reactor thread it raises, with no running
    reactor it raises, and it gives up with :class:`ServiceTimeout` after ``timeout`` seconds.
    """
    from twisted.internet import reactor

    if in_reactor_thread():
        raise ServiceError("call_in_reactor() from the reactor thread would wait on itself; call directly")
    if _reactor_thread is None or not _reactor_thread.is_alive() or not reactor.running:
        raise ServiceError("the reactor is not running")
    answers: queue.Queue = queue.Queue(maxsize=1)

    def run() -> None:
        maybeDeferred(fn, *args).addBoth(answers.put)

    reactor.callFromThread(run)
    try:
        result = answers.get(timeout=timeout)
    except queue.Empty:
        raise ServiceTimeout(f"{getattr(fn, '__name__', fn)} did not answer within {timeout} s") from None
    if isinstance(result, Failure):
        result.raiseException()
    return result


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it reaches beyond this machine


def _refuse_a_half_swapped_db(exchange_dir: Path) -> None:
    """Refuse to start on a missing exchange DB when a recover or a restore left its work beside it: they build
    the new DB aside and swap it in with two renames, and a crash between them leaves no DB where one belongs.
    Starting would make an empty one and serve from it."""
    if (exchange_dir / "CURRENT").exists():
        return
    parent, name = exchange_dir.parent, exchange_dir.name
    left = sorted(path.name for pattern in (f"{name}.recovering", f".{name}.restoring", f"{name}.before-*")
                  for path in parent.glob(pattern))
    if left:
        raise ServiceError(f"no exchange DB in {exchange_dir}, but {', '.join(left)} beside it: a recover or restore "
                           "was cut short. Run it again (or move the DB you want back into place); the node does "
                           "not start on an empty exchange DB meanwhile")


def _start_failure(exc: Exception, config: ExchangeConfig) -> str | None:
    """One line for a start-up failure an operator can fix (a busy API port, a DB in use); None for others."""
    from twisted.internet.error import CannotListenError

    if isinstance(exc, CannotListenError):
        error = exc.socketError
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            return f"port {exc.port} in use: --api-port"
        return f"cannot listen on {exc.interface or config.api_host}:{exc.port} ({error}): --api-host, --api-port"
    if isinstance(exc, (OperatorError, ServiceError)):
        return str(exc)  # it names the socket and the setting that moves it, or what was left half done
    if isinstance(exc, BackupError):
        return f"the backup in {config.backup_dir} cannot be used: {exc} (docs/backup.md)"
    if "lock" in str(exc).lower() and "temporarily unavailable" in str(exc):
        return f"the exchange DB {config.exchange_dir} is in use by another process"
    return None


class ServiceState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    CLOSED = "closed"


class ExchangeService:
    """Exchange mode as a node hook: owns the engine and its DB on the reactor thread.

    ``shutdown`` is how the API's ShutDown stops the node (a node may also set it after construction).
    """

    def __init__(self, config: ExchangeConfig, *, shutdown: Callable[[], None] | None = None) -> None:
        self.config = config
        # The port the API listens on once it runs (the configured one until then; 0 asks for any free port).
        self.api_port = config.api_port
        self.shutdown = shutdown or (lambda: log.warning("ShutDown asked, but this node gave no way to stop"))
        # Called (on the reactor thread) with one line saying why, when exchange mode cannot start; a node
        # process sets it to stop and exit non-zero (a node without the API it was asked for is not healthy).
        self.start_failed: Callable[[str], None] | None = None
        self.start_error: str | None = None
        self.failure_reason: str | None = None  # why exchange mode stopped (FAILED), as the API tells it
        self._listening: Any = None
        self.state = ServiceState.STOPPED
        self._store: ExchangeStore | None = None
        self._engine: ExchangeEngine | None = None
        self._backup: ContinuousBackup | None = None  # with backup_dir: docs/backup.md
        self._threads: set[Deferred] = set()  # work in threads not finished (see _in_thread)
        # The node's NodeServices (submit a transaction, ask its status), as on_node_start hands them over;
        # None until then, or from a node that offers none.
        self.node_services: Any = None
        self.reader: Any = None  # the node's ChainReader, from on_node_start (the status report reads the tip)
        self.api: Any = None  # the ExchangeAPI once it listens
        # The operator channel (halo_exchange/operator.py), served once exchange mode runs; other features add
        # their commands with self.operator.register(name, handler), before or after the start.
        self.operator = OperatorServer(config.operator_socket_path)
        self.operator.register("status", lambda args: collect(self))
        self.operator.register("execs", self._exec_log)
        self.operator.register("backup", self._backup_command)

    # -- node hooks (node thread: hand over and return) -------------------------------------------------

    def on_node_start(self, db: Any, reader: Any, params: Any, services: Any = None) -> None:
        from twisted.internet import reactor

        self.node_services = services
        self.reader = reader
        ensure_reactor_running(self.config.switch_interval)
        self.state = ServiceState.STARTING
        reactor.callFromThread(self._open, reader)

    def on_block_connected(self, height: int, block_hash: str) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(self._event, "block_connected", height, block_hash)

    def on_block_disconnected(self, height: int, block_hash: str) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(self._event, "block_disconnected", height, block_hash)

    def on_transaction_rejected(self, txid_hex: str, reason: str) -> None:
        """The node refused a transaction the plugin submitted."""
        from twisted.internet import reactor

        reactor.callFromThread(self._tx_event, "rejected", txid_hex, reason)

    def on_transaction_dropped(self, txid_hex: str, reason: str) -> None:
        """A transaction left the node's mempool without being mined."""
        from twisted.internet import reactor

        reactor.callFromThread(self._tx_event, "dropped", txid_hex, reason)

    def on_node_stop(self) -> None:
        """Wait for the events already handed over, write what is pending, close the DB (the node closes its
        own DB right after, so this must finish first)."""
        if self.state in (ServiceState.STOPPED, ServiceState.CLOSED):
            return
        try:
            call_in_reactor(self._close, timeout=self.config.bridge_timeout)
        except ServiceError:
            log.exception("exchange service did not close cleanly")

    # -- the bridge for callers on other threads ------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(engine, *args)`` on the reactor thread and return its (durable) answer."""
        return call_in_reactor(self._with_engine, fn, *args, timeout=self.config.bridge_timeout)

    def backup_status(self) -> dict:
        """The continuous backup as the status command shows it: state (off, starting, current, degraded,
        failed, closed), dir, last_sequence (the last batch it holds), primary_sequence (the DB's),
        last_snapshot_time (Unix seconds), last_snapshot_sequence, error, policy. Reads plain attributes the
        reactor thread sets, so any thread may ask."""
        if self._backup is None:
            return off_status(self.config.backup_dir)
        return self._backup.status()

    # -- reactor thread -----------------------------------------------------------------------------------

    @property
    def engine(self) -> ExchangeEngine:
        if self._engine is None or self.state is not ServiceState.RUNNING:
            raise ServiceError(f"the exchange is {self.state.value}")
        return self._engine

    @property
    def loaded_engine(self) -> ExchangeEngine | None:
        """The engine once loaded, also after a failure (for reports: its memory may then be ahead of the disk)."""
        return self._engine

    def _backup_command(self, args: dict) -> Any:
        """The operator command ``backup``: a consistent copy of the running exchange's DB in ``args["to"]``
        (``halo-exchange backup`` on a running node; docs/backup.md)."""
        return backup_command(self.engine, args, self._in_thread)

    def _exec_log(self, args: dict) -> dict:
        """The operator command ``execs``: the signed exec commands' records, newest last (``limit``, 50)."""
        engine = self._engine
        if engine is None:
            raise ServiceError(f"the exchange is {self.state.value}: its exec log is not loaded")
        api = getattr(self, "api", None)
        records = api.exec_hook.records(engine) if api is not None else engine.exec_records()
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ServiceError("limit must be a whole number of records, at least 1")
        return {"records": records[-limit:], "total": len(records),
                "enabled": bool(api is not None and api.exec_hook.enabled)}

    def _with_engine(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.engine, *args)

    def _open(self, reader: Any) -> None:
        from twisted.internet import reactor

        config = self.config
        try:
            _refuse_a_half_swapped_db(config.exchange_dir)
            make_private_dir(config.exchange_dir)
            self._store = ExchangeStore(str(config.exchange_dir))

            # Before the engine writes anything: every batch from now on reaches the backup before its answer.
            self._backup = start_backup(config, self._store, reader, reactor.callLater, self._in_thread,
                                        reactor.callFromThread)

            self._engine = ExchangeEngine(
                self._store, reader, reactor.callLater, confirmations=config.confirmations,
                liquid_limit=config.withdraw_liquid_limit, reserve_limit=config.withdraw_reserve_limit,
                run_in_thread=self._in_thread,
                cycle_chunk=config.cycle_step_accounts,
            )
            # The book's million objects live as long as the process: moved out of the collector's sight, so that
            # no full collection walks them (measured: one stalled the reactor ~40 ms at 50,000 accounts).
            gc.freeze()
            # Submitting transactions and asking for their status (None where the node offers no services).
            self._engine.node = getattr(self, "node_services", None)
            # Memory runs ahead of the disk after a lost batch: stop answering from it at once.
            self._engine.commit.on_failure = lambda exc: self._fail(
                "a write to the backup" if isinstance(exc, BackupError) else "a write to the exchange DB", error=exc)
            self.state = ServiceState.RUNNING
            caught_up = self._engine.catch_up()
            caught_up.addCallback(lambda _: self._engine.start_payouts() if self._engine is not None else None)
            self._watch(caught_up, "catching up with the chain")
            if self.api_port is not None:
                from halo_exchange.rpc.api import ExchangeAPI, make_factory
                from halo_exchange.rpc.http import HTTPLimits

                self.api = ExchangeAPI(lambda: self._engine if self.state is ServiceState.RUNNING else None,
                                       lambda: self.shutdown(),
                                       failed=lambda: self.failure_reason if self.state is ServiceState.FAILED
                                       else None, exec_pubkey=config.exec_pubkey)
                limits = HTTPLimits(max_body=config.max_body, max_head=config.max_head,
                                    idle_timeout=config.idle_timeout, max_connections=config.max_connections)
                self._listening = reactor.listenTCP(self.api_port, make_factory(self.api, limits),
                                                    interface=config.api_host)
                self.api_port = self._listening.getHost().port
                log.info("exchange API on http://%s:%d/", config.api_host, self.api_port)
                if not _is_loopback(config.api_host):
                    log.warning("the exchange API listens on %s, beyond this machine: its password and the deposit "
                                "keys travel unencrypted; keep it behind a firewall or a TLS proxy", config.api_host)
            self.operator.start()
            log.info("exchange mode running on %s (cycle %d)", config.exchange_dir, self._engine.cycle)
            if self._backup is not None and self._engine.wallet.state is WalletState.PLAIN:
                log.warning("the exchange wallet is not encrypted, so its deposit keys are in the backup in %s "
                            "in the clear too: halo-exchange encrypt-wallet seals them in both", config.backup_dir)
            if self._engine.wallet.state is WalletState.LOCKED:
                log.warning("the exchange wallet is encrypted and locked: ExchangePassword(passphrase, passw) "
                            "unlocks it; until then no deposit address is made and no withdrawal is signed")
        except Exception as exc:
            self.state = ServiceState.FAILED
            reason = _start_failure(exc, config)
            if reason is None:
                reason = f"exchange mode could not start: {exc}"
                log.exception("exchange mode could not start")
            else:
                log.error("exchange mode could not start: %s", reason)
            self.start_error = reason
            if self.start_failed is not None:
                self.start_failed(reason)

    def _event(self, name: str, height: int, block_hash: str) -> None:
        if self.state is not ServiceState.RUNNING or self._engine is None:
            return  # failed or closed: a restart catches up from the store and the chain
        try:
            self._watch(getattr(self._engine, name)(height, block_hash), f"{name} {height}")
        except Exception:
            self._fail(f"{name} {height}")

    def _tx_event(self, kind: str, txid_hex: str, reason: str) -> None:
        """A transaction event on the reactor thread, for the engine's withdrawal tracking when it has one."""
        engine = self._engine
        if self.state is not ServiceState.RUNNING or engine is None or not hasattr(engine, "transaction_event"):
            log.info("transaction %s %s (%s); not applied", txid_hex, kind, reason)
            return
        try:
            engine.transaction_event(kind, txid_hex, reason)
        except Exception:
            self._fail(f"transaction {kind} {txid_hex}")

    def _watch(self, done, what: str) -> None:
        done.addErrback(lambda failure: self._fail(what, failure))

    def _fail(self, what: str, failure: Failure | None = None, error: BaseException | None = None) -> None:
        """Stop applying anything: ``failure`` (a Deferred's), ``error`` (a failed write), or the exception
        being handled. The first reason is kept for the API's answers (:attr:`failure_reason`)."""
        first = self.state is not ServiceState.FAILED
        self.state = ServiceState.FAILED
        cause = error if error is not None else failure.value if failure is not None else sys.exc_info()[1]
        if first:
            self.failure_reason = f"{what} failed ({public_error(cause)})" if cause is not None else f"{what} failed"
        if error is not None:
            log.error("exchange mode stopped after %s failed: %s; free space or fix the disk, then restart the node "
                      "to reload from the store (every call answered before is on disk)", what, error)
        elif failure is not None:
            log.error("exchange mode stopped after %s failed: %s; restart the node to reload from the store",
                      what, failure.getErrorMessage())
        else:
            log.exception("exchange mode stopped after %s failed; restart the node to reload from the store", what)

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """``deferToThread``, remembered until done: work in threads (a cycle update's step write, a snapshot,
        a copy for the operator, a payout build) reads or writes the DB, which closes only once all of it is
        over (closing LevelDB under a thread that uses it can crash the process)."""
        from twisted.internet.threads import deferToThread

        done = deferToThread(fn, *args)
        self._threads.add(done)

        def forget(result: Any) -> Any:
            self._threads.discard(done)
            return result

        return done.addBoth(forget)

    def _close(self) -> Any:
        """Stop listening (never the reactor), write what is pending, close the exchange DB."""
        self.operator.stop()
        stopped = self._listening.stopListening() if self._listening is not None else None
        self._listening = None
        if self._engine is not None:
            self._engine.stop_updates()  # a cycle update under way stops at its last written step
            self._engine.commit.flush_now()
        # A snapshot being written in a thread reads the DB: the store closes only once it is done.
        closing = self._backup.close() if self._backup is not None else succeed(None)
        in_flight = DeferredList(list(self._threads), consumeErrors=True)
        return (closing.addCallback(lambda _: in_flight).addCallback(lambda _: self._close_store())
                .addCallback(lambda _: stopped))

    def _close_store(self) -> None:
        if self._engine is not None:
            self._engine.commit.flush_now()  # what the work in threads handed back meanwhile
        if self._store is not None:
            self._store.close()
        self._engine = None
        self.state = ServiceState.CLOSED
        log.info("exchange mode closed")

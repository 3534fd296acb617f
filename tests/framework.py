"""The test framework: a devnet node with the exchange following it, driven so that a test reads like a session.

In the manner of Bitcoin Core's ``test_framework`` (DESIGN.md §8). One family of harnesses, each a devnet node
(``node``, under ``<tmp_path>/node``) and the exchange in one of its forms (its DB under
``<tmp_path>/exchange``), sharing the node, key and credit logic of :class:`Harness`:

* :class:`EngineHarness`: the :class:`ExchangeEngine` alone, the reactor turn played by a twisted ``Clock``;
  the node's events are recorded and replayed to it in order, each settled (its batch written).
* :class:`ServiceHarness`: exchange mode as a node runs it: the service on the reactor thread, node events
  through the hooks, and the real XML-RPC API on a loopback port (``api``, a stdlib client).
* :class:`TrackerHarness`: the :class:`DepositTracker` alone, fed every block event; its credits and reversals
  collected as ``(owner, amount)``.

Each has ``generate(n, vote)``, which returns once the exchange applied every block, ``sync()`` for events the
node produced otherwise (``invalidate_block``), and ``credit(owner, amount)``. Beside them: the assertions
:func:`assert_refused` and :func:`assert_raises_fault`, :func:`wait_until`, and the process helpers
:func:`free_port`, :func:`running_devnet`, :func:`spawn_python`, :func:`run_python`, :func:`run_cli`, and
:func:`small_filesystem` with :func:`fill` for a disk that is full for real.

Building the engine, the exchange service and a hooked DevNode, feeding them block events, naming deposits
and the API's in-process dispatcher happen only here, so that when those interfaces change, this module is
what needs editing; test bodies call the engine or the API only for what they test. This is a helper, not a
test module: test modules import from it (and from ``tests.strategies``), never from one another.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from halo_exchange.chain import layout
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.tx import OutPoint, Transaction
from halo_exchange.config import ExchangeConfig
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import CommandRefused
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, DepositTracker
from halo_exchange.ledger.store import BookCodec, ExchangeStore
from halo_exchange.peg.fractions import Fractions
from halo_exchange.serialize import from_display_hex
from node_hooks import HookDispatcher, RecordingHook
from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import read_cookie
from node_hooks.exchange_mode import enable_exchange_mode

ROOT = Path(__file__).resolve().parents[1]
CONFIRMATIONS = DEFAULT_CONFIRMATIONS  # the exchange's default setting: a named deposit is credited at this depth


# -- keys -----------------------------------------------------------------------------------------------------

def new_address() -> str:
    """A fresh devnet address whose key nobody keeps: a payee, or an address for the exchange to watch."""
    return PrivateKey.generate().public_key().address(DEVNET_KEYS)


def address_of(wif: str) -> str:
    """The devnet address of a WIF private key (what GenerateDepositAddress answers)."""
    return PrivateKey.from_wif(wif, DEVNET_KEYS).public_key().address(DEVNET_KEYS)


# -- the harnesses --------------------------------------------------------------------------------------------

class Harness:
    """A devnet node and the exchange following it; the subclasses say which form of the exchange.

    Usable as a context manager: leaving it closes the exchange and the node.
    """

    node: DevNode

    def __init__(self, tmp_path: str | Path) -> None:
        self.tmp_path = Path(tmp_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.node.close()

    def generate(self, n: int, vote: str = "nochange") -> None:
        """Produce ``n`` blocks voting ``vote``; return once the exchange applied every one."""
        if n > 0:
            self.node.generate(n, vote)
        self.sync()

    def sync(self) -> None:
        """Return once the exchange applied every event the node produced so far."""
        raise NotImplementedError

    def pay(self, address: str, amount: int) -> str:
        """Pay ``amount`` from the node's wallet to ``address`` and confirm it in one block: the txid."""
        txid = self.node.send_to_address(address, amount)
        self.generate(1)
        return txid

    def credit(self, owner: str, amount: int, passw: str = "") -> str:
        """Deposit ``amount`` to a fresh exchange address, name ``owner``, and confirm it until credited:
        ``owner``'s balance then holds it. Answers the deposit's txid. ``passw``: the API password (service)."""
        address = self.deposit_address(passw)
        txid = self.pay(address, amount)
        self.name_deposit(owner, txid, passw)
        self.generate(CONFIRMATIONS - 1)
        return txid

    def deposit_address(self, passw: str = "") -> str:
        """A fresh address the exchange watches for deposits."""
        raise NotImplementedError

    def name_deposit(self, owner: str, txid: str, passw: str = "") -> Any:
        """Name ``owner`` for the exchange's outputs of transaction ``txid`` (display hex)."""
        raise NotImplementedError


class _ReplayHarness(Harness):
    """A node whose events a RecordingHook keeps, delivered to the exchange in order by :meth:`sync`."""

    def __init__(self, tmp_path: str | Path) -> None:
        super().__init__(tmp_path)
        self.hook = RecordingHook()
        dispatcher = HookDispatcher()
        dispatcher.register(self.hook)
        self.node = DevNode(self.tmp_path / "node", dispatcher=dispatcher)
        self._seen = 0

    def sync(self) -> None:
        """Deliver the node's block events the exchange has not heard yet, in order, each applied."""
        while self._seen < len(self.hook.events):
            event = self.hook.events[self._seen]
            self._seen += 1
            if event[0] == "connected":
                self._block_connected(event[1], event[2])
            elif event[0] == "disconnected":
                self._block_disconnected(event[1], event[2])

    def skip_events(self) -> None:
        """The exchange does not hear the node's events so far (it was down while they happened)."""
        self._seen = len(self.hook.events)

    def _block_connected(self, height: int, block_hash: str) -> None:
        raise NotImplementedError

    def _block_disconnected(self, height: int, block_hash: str) -> None:
        raise NotImplementedError


class EngineHarness(_ReplayHarness):
    """A devnet node, an engine on its own exchange DB, and the reactor turn played by a Clock (``clock``).

    With ``watch`` (the default) the engine watches one exchange address from the start, ``address``
    (None without). The engine and its DB are ``engine`` and ``store``.
    """

    def __init__(self, tmp_path: str | Path, *, watch: bool = True) -> None:
        super().__init__(tmp_path)
        self.clock = Clock()
        self._dispatcher: Any = None
        self.start_engine()
        self.address = self.deposit_address() if watch else None

    # the engine's life

    def start_engine(self) -> None:
        """Open the exchange DB and start an engine on it. It hears the node's events from now on; what
        happened while it was down it learns only from ``engine.catch_up()``."""
        self.store = ExchangeStore(str(self.tmp_path / "exchange"))
        self.engine = ExchangeEngine(self.store, self.node.reader, self.clock.callLater)
        self._dispatcher = None
        self.skip_events()

    def stop_engine(self) -> None:
        """Stop the engine: its DB is closed, and it hears nothing until :meth:`start_engine`."""
        self.store.close()

    def reopen(self) -> None:
        """Restart the engine on the same exchange DB (a node restart, as far as the exchange can tell)."""
        self.stop_engine()
        self.start_engine()

    def close(self) -> None:
        self.store.close()
        self.node.close()

    # the reactor turn

    def settle(self, deferred: Deferred) -> Any:
        """End the reactor turn (the group commit writes) and return the command's answer; a failure raises."""
        results: list = []
        deferred.addBoth(results.append)
        self.clock.advance(0)
        assert results, "the answer must come once the batch is written"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def _block_connected(self, height: int, block_hash: str) -> None:
        self.settle(self.engine.block_connected(height, block_hash))

    def _block_disconnected(self, height: int, block_hash: str) -> None:
        self.settle(self.engine.block_disconnected(height, block_hash))

    # commands and checks

    def deposit_address(self, passw: str = "") -> str:
        address = new_address()
        self.settle(self.engine.add_deposit_address(address))
        return address

    def name_deposit(self, owner: str, txid: str, passw: str = "") -> Any:
        """Name ``owner`` for every exchange output of ``txid`` (display hex), settled: the engine's answer."""
        return self.settle(self.engine.name_deposit(owner, self.engine.deposits.outpoints_of(from_display_hex(txid))))

    def audit(self):
        """What ``halo-exchange audit`` reports on this engine's book and deposits against the node's chain."""
        from halo_exchange.audit import audit

        engine = self.engine
        return audit(engine.book, engine.deposits, self.node.reader, engine.coins, engine.batches,
                     engine.payout_state.get("debt", 0))

    def api_call(self, method: str, *params: Any) -> Any:
        """One XML-RPC call through the API's dispatcher on this engine, in process, the exchange started:
        the response body, or a Deferred of it when the answer waits for the turn's batch."""
        from halo_exchange.rpc.api import ExchangeAPI
        from halo_exchange.rpc.dispatch import APIDispatcher

        if self._dispatcher is None:
            api = ExchangeAPI(lambda: self.engine, lambda: None)
            api.started = True
            self._dispatcher = APIDispatcher(api)
        return self._dispatcher.handle(xmlrpc.client.dumps(params, method).encode())

    def account_on_disk(self, name: str) -> bool:
        """Whether ``name``'s account record is in the exchange DB (written, not only in memory)."""
        return self.store.get(BookCodec.account_key(name)) is not None


def exchange_service(dispatcher: HookDispatcher, datadir: str | Path, *, api_host: str = "127.0.0.1",
                     api_port: int | None = 0, exec_pubkey: str | None = None, **settings: Any):
    """Exchange mode registered on ``dispatcher`` as a node's configuration turns it on: the service, not yet
    started (the node's start starts it). ``api_port`` 0: a free port; None: no API. ``exec_pubkey``: the
    signed exec hook's key (None: API(command) answers False). ``settings``: more ExchangeConfig keys
    (``backup_dir=...``)."""
    return enable_exchange_mode(dispatcher, ExchangeConfig(exchange_dir=Path(datadir), api_host=api_host,
                                                           api_port=api_port, exec_pubkey=exec_pubkey, **settings))


class ServiceHarness(Harness):
    """A devnet node with exchange mode on: the service on the reactor thread, node events through the hooks,
    the XML-RPC API on a free loopback port and ``api`` a stdlib client of it (None with ``api_port=None``).

    ``settings`` are more ExchangeConfig keys (``backup_dir=...``). Needs the reactor thread (the
    ``reactor_thread`` fixture; outside pytest the node's start starts it).
    ShutDown does not stop the node here: it is counted in ``stops``.
    """

    def __init__(self, tmp_path: str | Path, *, api_host: str = "127.0.0.1", api_port: int | None = 0,
                 exec_pubkey: str | None = None, **settings: Any) -> None:
        super().__init__(tmp_path)
        self.api_host, self.api_port, self.exec_pubkey = api_host, api_port, exec_pubkey
        self.settings = settings
        self.stops = 0
        self.open()

    def open(self) -> None:
        """Start the node with exchange mode on; return once the engine and the API are up."""
        dispatcher = HookDispatcher()
        self.service = exchange_service(dispatcher, self.tmp_path / "exchange", api_host=self.api_host,
                                        api_port=self.api_port, exec_pubkey=self.exec_pubkey, **self.settings)
        self.service.shutdown = self._count_stop
        self.node = DevNode(self.tmp_path / "node", dispatcher=dispatcher)
        self.node.start()
        try:
            self.service.call(lambda engine: engine.cycle)
        except BaseException:
            self.node.close()
            raise
        port = self.service.api_port
        self.api = None if port is None else xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")

    def _count_stop(self) -> None:
        self.stops += 1

    def audit(self):
        """``halo-exchange audit``'s checks on the running exchange (on the reactor thread, from memory)."""
        from halo_exchange.audit import audit

        def run(engine: ExchangeEngine):
            with engine.reader.snapshot() as view:
                return audit(engine.book, engine.deposits, view, engine.coins, engine.batches,
                             engine.payout_state.get("debt", 0))
        return self.service.call(run)

    def sync(self) -> None:
        self.service.call(lambda engine: None)  # the node's events before this call have been applied

    def credit(self, owner: str, amount: int, passw: str = "") -> str:
        """Start the exchange and credit ``owner`` with a confirmed deposit of ``amount``, all over the API."""
        self.api.StartExchange(passw)
        return super().credit(owner, amount, passw)

    def deposit_address(self, passw: str = "") -> str:
        wif, _ = self.api.GenerateDepositAddress(passw)
        return address_of(wif)

    def name_deposit(self, owner: str, txid: str, passw: str = "") -> Any:
        answer = self.api.Deposit(owner, [txid], passw)
        assert answer is True, answer
        return answer


class TrackerHarness(_ReplayHarness):
    """A devnet node, one exchange address (``address``), and a DepositTracker fed every block event in order;
    the credits and reversals it announces are collected in ``credits`` and ``reversals``."""

    def __init__(self, tmp_path: str | Path, confirmations: int = CONFIRMATIONS) -> None:
        super().__init__(tmp_path)
        self.tracker = DepositTracker(confirmations=confirmations)
        self.credits: list[tuple[str, int]] = []
        self.reversals: list[tuple[str, int]] = []
        self.address = self.deposit_address()

    def _collect(self, events) -> None:
        self.credits += [(c.owner, c.deposit.amount) for c in events.credits]
        self.reversals += [(c.owner, c.deposit.amount) for c in events.reversals]

    def _block_connected(self, height: int, block_hash: str) -> None:
        self._collect(self.tracker.block_connected(self.node.reader, height, from_display_hex(block_hash)))

    def _block_disconnected(self, height: int, block_hash: str) -> None:
        self._collect(self.tracker.block_disconnected(height, from_display_hex(block_hash)))

    def deposit_address(self, passw: str = "") -> str:
        address = new_address()
        self.tracker.addresses.add(address)
        return address

    def deposit(self, amount: int, frozen: bool = False) -> OutPoint:
        """Pay ``amount`` to ``address`` (an **F** transfer if ``frozen``), unconfirmed: the payee outpoint."""
        txid = (self.node.send_frozen if frozen else self.node.send_to_address)(self.address, amount)
        tx = Transaction.from_hex(self.node.get_raw_transaction(txid))
        return OutPoint(tx.hash, next(i for i, o in enumerate(tx.outputs) if o.value == amount))

    def name(self, owner: str, outpoints: list[OutPoint]) -> None:
        """Name ``owner`` for ``outpoints``, collecting what it credits at once."""
        self._collect(self.tracker.name(owner, outpoints))

    def name_deposit(self, owner: str, txid: str, passw: str = "") -> None:
        """Name ``owner`` for every exchange output of ``txid`` (display hex), as a bare txid does."""
        self.name(owner, self.tracker.outpoints_of(from_display_hex(txid)))


# -- assertions -----------------------------------------------------------------------------------------------

def assert_refused(message: str, call: Callable[..., Any], *args: Any, pair: bool = False) -> None:
    """``call(*args)`` refuses with the documented string ``message``, the way its layer refuses.

    The engine raises :class:`CommandRefused` (at once, or as the failure of an answered Deferred): its text
    must contain ``message``. An API call answers the string: it must be exactly ``message``, or with
    ``pair`` exactly ``[message, ""]`` (the calls that answer pairs).
    """
    try:
        answer = call(*args)
    except CommandRefused as refusal:
        assert message in str(refusal), f"refused with {str(refusal)!r}, not {message!r}"
        return
    if isinstance(answer, Deferred):
        results: list = []
        answer.addBoth(results.append)
        assert results, f"no answer yet, expected the refusal {message!r}"
        answer = results[0]
        if isinstance(answer, Failure):
            if not answer.check(CommandRefused):
                answer.raiseException()
            assert message in str(answer.value), f"refused with {str(answer.value)!r}, not {message!r}"
            return
    expected = [message, ""] if pair else message
    assert answer == expected, f"answered {answer!r}, not the refusal {expected!r}"


def assert_raises_fault(code: int, message: str, call: Callable[..., Any], *args: Any) -> None:
    """``call(*args)`` raises an XML-RPC Fault with ``code`` whose text contains ``message`` (Bitcoin Core's
    assert_raises_rpc_error)."""
    try:
        call(*args)
    except xmlrpc.client.Fault as fault:
        assert fault.faultCode == code, fault
        assert message in fault.faultString, fault
    else:
        raise AssertionError(f"no Fault {code} ({message!r})")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns a true value (returned) or ``timeout`` passes (AssertionError);
    connection errors while a server starts count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (ConnectionError, OSError, xmlrpc.client.ProtocolError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# -- processes ------------------------------------------------------------------------------------------------

def free_port() -> int:
    """A loopback TCP port free at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn_python(*args: str, **popen: Any) -> subprocess.Popen:
    """Start ``python *args`` in the repository, with the repository importable (``tests.framework`` too)."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            **popen)


def run_python(*args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python *args`` in the repository to its end: exit code, stdout and stderr as text. ``input``: what
    its standard input reads (a pipe), instead of this process's."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout, input=input)


def run_cli(*args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``halo-exchange *args`` in its own process to its end (``input``: piped to its standard input)."""
    return run_python("-m", "halo_exchange.cli", *args, timeout=timeout, input=input)


def control_rpc(datadir: Path, port: int) -> xmlrpc.client.ServerProxy:
    """A client of the control RPC of the devnet running on ``datadir``, with the credentials of its cookie
    file (OSError while the node has not written it yet)."""
    return xmlrpc.client.ServerProxy(f"http://{read_cookie(datadir)}@127.0.0.1:{port}")


def db_contents(path: Path) -> dict[bytes, bytes]:
    """Every key and value of the (closed) LevelDB at ``path``: to compare two DBs key for key."""
    import plyvel

    db = plyvel.DB(str(path), create_if_missing=False)
    try:
        return dict(db.iterator())
    finally:
        db.close()


def trade_until_refused(url: str, payer: str, payees: Sequence[str],
                        calls: int) -> tuple[dict[str, int], list[xmlrpc.client.Fault]]:
    """One client thread per payee, each paying it 1 satoshi of ``payer``'s liquid per Trade call, ``calls``
    times or until a call is refused (a fault, or the connection is lost): how many calls each had answered
    True, and the faults. Fails if a client is still calling after 120 s."""
    acknowledged = {payee: 0 for payee in payees}
    faults: list[xmlrpc.client.Fault] = []

    def client(payee: str) -> None:
        proxy = xmlrpc.client.ServerProxy(url)
        for _ in range(calls):
            try:
                answer = proxy.Trade(payer, 1, payee, "liquid", "")
            except xmlrpc.client.Fault as fault:
                faults.append(fault)
                return
            except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
                return
            assert answer is True, answer
            acknowledged[payee] += 1

    threads = [threading.Thread(target=client, args=(payee,), daemon=True) for payee in payees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "the clients were still calling after 120 s"
    return acknowledged, faults


def credit_over_api(node: xmlrpc.client.ServerProxy, api: xmlrpc.client.ServerProxy, owner: str, amount: int,
                    passw: str = "") -> str:
    """In a running devnet process: pay ``amount`` from the node's wallet to a new exchange deposit address,
    name ``owner`` and mine until it is credited, all over XML-RPC (the exchange started). The deposit's txid."""
    wif, _ = api.GenerateDepositAddress(passw)
    txid = node.sendtoaddress(address_of(wif), str(amount))  # a string of digits: past int32 too
    node.generate(1)
    wait_until(lambda: any(key.startswith(txid) for key in api.GetSpendable("", passw)))
    assert api.Deposit(owner, [txid], passw) is True
    node.generate(CONFIRMATIONS - 1)
    wait_until(lambda: api.GetBalance(owner, passw))
    return txid


def mine_to_a_supply_change(node: xmlrpc.client.ServerProxy) -> dict:
    """Mine (voting deflate) up to the last block of a cycle after which the supply moves: the next block
    starts a cycle whose balances are re-valued. The node's peg info then."""
    info = node.getpeginfo()
    interval = info["interval"]
    for _ in range(30):
        node.generate(interval - 1 - node.getblockcount() % interval, "deflate")
        info = node.getpeginfo()
        if info["pegnext"] != info["peg"]:
            return info
        node.generate(1, "deflate")
    raise AssertionError("the devnet supply never moved")


def wait_for_control_rpc(datadir: Path, port: int, timeout: float = 30.0) -> xmlrpc.client.ServerProxy:
    """The control RPC client of a devnet starting on ``datadir``, once it answers (a cookie left by a killed
    run is refused until the new one is written)."""
    def answering() -> xmlrpc.client.ServerProxy | None:
        node = control_rpc(datadir, port)
        return node if node.getblockcount() >= 0 else None

    return wait_until(answering, timeout)


@contextlib.contextmanager
def running_devnet(datadir: Path, port: int, api_port: int | None = None, extra_args: Sequence[str] = (),
                   ) -> Iterator[tuple[subprocess.Popen, xmlrpc.client.ServerProxy]]:
    """A `halo-exchange devnet` process with its control RPC answering (authenticated by the cookie file);
    killed if the test leaves it running. ``extra_args`` are more flags for the command
    (``--bitbayd-rpc-port P``, ...)."""
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(port),
                           "--api-port", str(api_port or free_port()), *extra_args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield process, wait_for_control_rpc(datadir, port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_follower(datadir: Path, bitbayd_url: str, api_port: int, *extra_args: str,
                     ) -> Iterator[tuple[subprocess.Popen, xmlrpc.client.ServerProxy, Path]]:
    """A `halo-exchange node` process following ``bitbayd_url`` with exchange mode on ``api_port``: (process,
    an API client, its log file). Its log goes to a file beside the data dir (a pipe nobody reads would
    fill up and stop it). Killed if the test leaves it running."""
    log_path = datadir.parent / f"{datadir.name}.log"
    with open(log_path, "a") as log_file:
        process = spawn_python("-m", "halo_exchange.cli", "node", "--datadir", str(datadir), "--bitbayd", bitbayd_url,
                               "--network", "devnet", "--api-port", str(api_port), *extra_args,
                               stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    try:
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: process.poll() is not None or api.GetCycle("") >= 0)
        assert process.poll() is None, log_path.read_text()
        yield process, api, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def exchange_lag(datadir: Path) -> int:
    """How many blocks the exchange DB of a stopped `halo-exchange devnet` under ``datadir`` is behind its
    node's chain (0: level). A process killed between the node's commit of a block and the exchange's is
    one block behind until its restart catches up; ``audit`` compares with the chain tip, so it is only
    meaningful when level."""
    import plyvel

    from halo_exchange.chain.reader import ChainReader
    from halo_exchange.config import CHAIN_SUBDIR, EXCHANGE_SUBDIR
    from halo_exchange.ledger.store import load_state

    chain_db = plyvel.DB(str(datadir / CHAIN_SUBDIR), create_if_missing=False, compression=None)
    try:
        store = ExchangeStore(str(datadir / EXCHANGE_SUBDIR))
        try:
            applied, _ = load_state(store).deposits.tip
        finally:
            store.close()
        return ChainReader(chain_db).height() - applied
    finally:
        chain_db.close()


# -- small filesystems (a full disk, for real) --------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "8m") -> Iterator[Path]:
    """A size-limited tmpfs mounted on ``path`` for the block, unmounted in any case; skips where it cannot be
    made (not root, or mounting not allowed in this container)."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("a small filesystem for a node or exchange DB needs root (mount -t tmpfs); not root here")
    path.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int) -> Path:
    """A file taking all the free space of ``path``'s filesystem but ``leave`` bytes."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    filler = path / "filler"
    with open(filler, "wb") as out:
        remaining = max(0, free - leave)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= out.write(chunk[:min(len(chunk), remaining)])
    return filler


# -- chain DBs --------------------------------------------------------------------------------------------------

def _dump(db, prefix: bytes) -> dict[bytes, bytes]:
    """Every key and value under ``prefix`` of a LevelDB."""
    return dict(db.iterator(prefix=prefix))


def read_undo(db, block_hash: bytes) -> layout.UndoRecord:
    """The undo record of ``block_hash`` in a node DB."""
    return layout.UndoRecord.unpack(db.get(layout.undo_key(block_hash)))


def assert_same_chain(follower_db, upstream_db, first: int = 0) -> None:
    """The follower's DB agrees key for key with the upstream's: heights, blocks (but the block's own vote, which
    getblock does not tell), tx index, UTXOs (from ``first`` on), undo records, fractions and tip."""
    up_heights = {k: v for k, v in _dump(upstream_db, layout.HEIGHT).items()
                  if int.from_bytes(k[1:], "big") >= first}
    assert _dump(follower_db, layout.HEIGHT) == up_heights
    assert follower_db.get(layout.TIP) == upstream_db.get(layout.TIP)
    for block_hash in up_heights.values():
        ours = layout.BlockRecord.unpack(follower_db.get(layout.block_key(block_hash)))
        theirs = layout.BlockRecord.unpack(upstream_db.get(layout.block_key(block_hash)))
        assert (ours.height, ours.header, ours.txids, ours.peg.supply, ours.peg.votes) == \
               (theirs.height, theirs.header, theirs.txids, theirs.peg.supply, theirs.peg.votes)
        if first == 0:
            assert follower_db.get(layout.undo_key(block_hash)) == upstream_db.get(layout.undo_key(block_hash))
    assert len(_dump(follower_db, layout.BLOCK)) == len(up_heights)
    up_txs = {k: v for k, v in _dump(upstream_db, layout.TX).items() if layout.TxRecord.unpack(v).height >= first}
    assert _dump(follower_db, layout.TX) == up_txs
    up_utxos = {k: v for k, v in _dump(upstream_db, layout.UTXO).items()
                if layout.UtxoRecord.unpack(v).height >= first}
    assert _dump(follower_db, layout.UTXO) == up_utxos
    ours_f = {k: Fractions.unpack(v) for k, v in _dump(follower_db, layout.FRACTIONS).items()}
    theirs_f = {k: Fractions.unpack(v) for k, v in _dump(upstream_db, layout.FRACTIONS).items()
                if layout.tx_key(k[1:33]) in up_txs}
    assert ours_f == theirs_f

"""The devnet node's control RPC: XML-RPC on 127.0.0.1:55780 for tests and operators.

Served by the stdlib ``SimpleXMLRPCServer`` in its own threads, as a node's RPC server is: the node is the
host process here, and the plugin's Twisted reactor stays the plugin's. Fixed against the stdlib's traps
(reference/ecosystem-notes.md §1.2, §1.4): a thread per request and a 64-deep backlog instead of a serial
server with 5; integers of 2^31 and more go out as ``<i8>``; request bodies over 64 KiB get HTTP 413;
arguments are validated before the node sees them; and an unexpected exception is logged, never sent: the
client gets ``Fault(-32603, "internal error")``.

The HTTP side holds to the API transport's limits (issue 14): every refusal has a status line (HTTP/2.0 and
later 505, a garbage request line 400); a Content-Length that is not plain digits is 400, over 64 KiB 413,
missing 411; a chunked body 411 and a compressed one (Content-Encoding) 415, unread; a request not complete
60 s after its first byte 408 (an idle connection just closes); beyond 256 connections 503; integers past
2^31-1 are -32602. close() gives calls in flight 1 s to answer, then cuts every connection.

Authentication, as bitcoind's: every request carries HTTP basic-auth credentials, or gets 401 and nothing
runs. ``halo-exchange devnet`` writes ``<datadir>/.cookie`` (mode 0600, ``__cookie__:<64 hex digits>``, new
at each start, deleted at a clean stop) unless ``rpc_user``/``rpc_password`` are configured; a script reads
it: ``ServerProxy(f"http://{cookie}@127.0.0.1:55780")``. ``--rpc-no-auth`` turns authentication off.

Fault codes follow Bitcoin Core's RPC where it has one and JSON-RPC's otherwise (the constants below).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import inspect
import io
import logging
import os
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from halo_exchange.commands import is_whole
from halo_exchange.config import DevnodeConfig, ExchangeConfig
from halo_exchange.rpc.codec import dump_response
from node_hooks.devnode.errors import DevnodeError, InvalidParameter, NodeStopped, NotFound, TxRejected
from node_hooks.devnode.node import VOTES, DevNode

log = logging.getLogger(__name__)
# How often serve_forever looks whether close() asked it to stop: the longest a stop waits for it (the
# stdlib default, 0.5 s, made every SIGTERM take half a second).
SHUTDOWN_POLL = 0.05

FAULT_NOT_FOUND = -5  # unknown block, transaction or output (Bitcoin Core RPC_INVALID_ADDRESS_OR_KEY)
FAULT_INVALID_PARAMETER = -8  # an argument the node refused (RPC_INVALID_PARAMETER)
FAULT_TX_REJECTED = -26  # a transaction refused by a named rule (RPC_VERIFY_REJECTED)
FAULT_NODE_STOPPED = -28  # the node is stopping
FAULT_PARSE_ERROR = -32700  # the request is not XML-RPC
FAULT_METHOD_NOT_FOUND = -32601
FAULT_INVALID_PARAMS = -32602  # wrong argument count or type
FAULT_INTERNAL = -32603

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = ExchangeConfig.idle_timeout  # from a request's first byte to its last, as the API's
MAX_CONNECTIONS = ExchangeConfig.max_connections  # as the API's; more are answered 503
CLOSE_GRACE = 1.0  # how long close() waits for calls in flight before cutting their connections
MAX_INT = 2**31 - 1  # the largest height or count a call takes
COOKIE_FILE_NAME = ".cookie"  # in the data dir, while the node runs
COOKIE_USER = "__cookie__"
_OUTPOINT = re.compile(r"^([0-9a-fA-F]{64}):([0-9]{1,9})$")
_TXID = re.compile(r"^[0-9a-fA-F]{64}$")


def _fault(code: int, message: str) -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(code, message)


def _int(name: str, value: Any, minimum: int | None = None) -> int:
    if not is_whole(value):
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be at least {minimum}")
    if value > MAX_INT:  # an <i8> or bigger: no height or count is that large, and the node's keys cannot hold it
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be at most {MAX_INT}")
    return value


def _amount(value: Any) -> int:
    """A positive satoshi amount: an int (``<int>``/``<i8>``) or a string of digits.

    Python's stdlib client refuses to send integers of 2^31 and more (it has no ``<i8>`` writer), so larger
    amounts may come as decimal strings, e.g. ``sendtoaddress(address, "3000000000")``.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not is_whole(value) or value <= 0:
        raise _fault(FAULT_INVALID_PARAMS, "amount must be a positive whole number of satoshis (int or digit string)")
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be a string")
    return value


class ControlMethods:
    """The control calls. Each docstring is what ``system.methodHelp`` returns."""

    def __init__(self, node: DevNode) -> None:
        self._node = node

    def getblockcount(self) -> int:
        """getblockcount() -> height of the chain tip."""
        return self._node.block_count()

    def getbestblockhash(self) -> str:
        """getbestblockhash() -> hash of the tip block (hex)."""
        return self._node.best_block_hash()

    def getblock(self, height: Any) -> dict:
        """getblock(height) -> {hash, height, time, previousblockhash, txids, supply, votes, vote, voteweight}."""
        return self._node.get_block(_int("height", height, 0))

    def generate(self, n: Any, vote: Any = "nochange") -> list:
        """generate(n, vote='nochange') -> hashes of n new blocks; vote is inflate, deflate or nochange."""
        n = _int("n", n, 1)
        if vote not in VOTES:
            raise _fault(FAULT_INVALID_PARAMS, f"vote must be one of {', '.join(VOTES)}")
        return self._node.generate(n, vote)

    def getnewaddress(self) -> str:
        """getnewaddress() -> a new address of the devnet wallet."""
        return self._node.get_new_address()

    def sendtoaddress(self, address: Any, amount: Any) -> str:
        """sendtoaddress(address, amount) -> txid; pays amount satoshis of liquid from the devnet wallet.

        amount is an integer or, for 2^31 and more from clients without <i8>, a string of digits."""
        return self._node.send_to_address(_str("address", address), _amount(amount))

    def sendfrozen(self, address: Any, amount: Any) -> str:
        """sendfrozen(address, amount) -> txid; an **F** frozen reserve transfer of amount satoshis."""
        return self._node.send_frozen(_str("address", address), _amount(amount))

    def sendrawtransaction(self, raw: Any) -> str:
        """sendrawtransaction(hex) -> txid of a signed transaction accepted into the mempool."""
        return self._node.send_raw_transaction(_str("hex", raw))

    def getrawtransaction(self, txid: Any) -> str:
        """getrawtransaction(txid) -> the transaction's hex, from the chain or the mempool."""
        return self._node.get_raw_transaction(self._txid(txid))

    def getrawmempool(self) -> list:
        """getrawmempool() -> the txids waiting in the mempool, in admission order."""
        return self._node.mempool_txids()

    def malleatetransaction(self, txid: Any) -> str:
        """malleatetransaction(txid) -> the new txid; devnet test helper: re-encodes the signature of input 0
        of a mempool transaction (S becomes N-S) so its txid changes while it stays valid. The original
        leaves the mempool silently; its mempool descendants are dropped ('parent-malleated')."""
        return self._node.malleate_transaction(self._txid(txid))

    def droptransaction(self, txid: Any) -> bool:
        """droptransaction(txid) -> True; devnet test helper: removes a mempool transaction and its mempool
        descendants, telling the node hooks they were dropped ('dropped-by-devnet')."""
        return self._node.drop_transaction(self._txid(txid))

    def refusetransactions(self, count: Any) -> bool:
        """refusetransactions(count) -> True; devnet test helper: the next count submitted transactions
        (sendrawtransaction, and the plugin's submissions) are refused with rule 'refused-by-devnet';
        0 cancels."""
        return self._node.refuse_transactions(_int("count", count, 0))

    @staticmethod
    def _txid(txid: Any) -> str:
        txid = _str("txid", txid)
        if not _TXID.match(txid):
            raise _fault(FAULT_INVALID_PARAMS, "txid must be 64 hex characters")
        return txid.lower()

    def listunspent(self, address: Any) -> list:
        """listunspent(address) -> the address's unspent outputs with amount, confirmations, liquidity,
        reserve (at the current supply), lock and flags."""
        return self._node.list_unspent(_str("address", address))

    def getpeginfo(self) -> dict:
        """getpeginfo() -> {cycle, interval, peg, pegnext, pegnextnext, steps}."""
        return self._node.peg_info()

    def getfractions(self, outpoint: Any) -> dict:
        """getfractions('txid:n') -> {total, reserve, liquidity, peg, lock, flags} of an output."""
        match = _OUTPOINT.match(_str("outpoint", outpoint))
        if match is None:
            raise _fault(FAULT_INVALID_PARAMS, "outpoint must be 'txid:n' with a 64-hex txid")
        return self._node.get_fractions(match.group(1).lower(), int(match.group(2)))

    def invalidateblock(self, height: Any) -> bool:
        """invalidateblock(height) -> True; disconnects blocks down to height (the chain ends at height-1)."""
        self._node.invalidate_block(_int("height", height, 1))
        return True

    def stop(self) -> bool:
        """stop() -> True; the node then stops cleanly (RPC closed, hooks told, DB closed)."""
        self._node.request_stop()
        return True


_NAMES = [name for name, _ in inspect.getmembers(ControlMethods, inspect.isfunction) if not name.startswith("_")]


def _node_fault(exc: DevnodeError) -> xmlrpc.client.Fault:
    if isinstance(exc, TxRejected):
        return _fault(FAULT_TX_REJECTED, str(exc))
    if isinstance(exc, NotFound):
        return _fault(FAULT_NOT_FOUND, str(exc))
    if isinstance(exc, InvalidParameter):
        return _fault(FAULT_INVALID_PARAMETER, str(exc))
    if isinstance(exc, NodeStopped):
        return _fault(FAULT_NODE_STOPPED, str(exc))
    return _fault(FAULT_INTERNAL, str(exc))


def new_cookie() -> str:
    """Fresh cookie credentials: ``__cookie__:<64 random hex digits>``."""
    return f"{COOKIE_USER}:{secrets.token_hex(32)}"


def write_cookie(datadir: Path, credentials: str) -> None:
    """Write ``credentials`` to ``<datadir>/.cookie`` (mode 0600, replaced atomically)."""
    path = Path(datadir) / COOKIE_FILE_NAME
    temporary = path.with_name(COOKIE_FILE_NAME + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(credentials)
    os.chmod(temporary, 0o600)  # an old file of that name kept its mode
    os.replace(temporary, path)


def read_cookie(datadir: Path) -> str:
    """The ``user:password`` of a running node's cookie file (OSError when it is not there)."""
    return (Path(datadir) / COOKIE_FILE_NAME).read_text(encoding="ascii").strip()


def remove_cookie(datadir: Path) -> None:
    """Delete the cookie file, if it is there (a clean stop)."""
    try:
        (Path(datadir) / COOKIE_FILE_NAME).unlink()
    except FileNotFoundError:
        pass


def _authorized(header: str | None, credentials: str) -> bool:
    """Whether an Authorization header carries exactly these basic-auth credentials (constant time)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, credentials.encode("utf-8"))


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side with a deadline for the whole request, not for each ``recv``: a client
    sending a byte now and then cannot hold a thread longer than ``REQUEST_TIMEOUT``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None
        self.received = 0  # bytes of the current request so far
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                raise TimeoutError("request timed out")
            self._sock.settimeout(remaining)
        try:
            count = self._sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise
        self.received += count
        return count


class _RequestHandler(SimpleXMLRPCRequestHandler):
    """The stdlib's handler, hardened as the API's transport (halo_exchange/rpc/http.py): a deadline for each
    request, a status line on every refusal (HTTP/2.0 and garbage request lines too), a strict Content-Length
    within ``MAX_BODY``, no transfer or content codings, and the body read here, never more than announced."""

    rpc_paths = ("/", "/RPC2")
    default_request_version = "HTTP/1.0"  # the stdlib's HTTP/0.9 default answers a bad request line with no status line
    encode_threshold = None  # answers are never gzipped

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # type: ignore[attr-defined]
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.server.request_timeout  # type: ignore[attr-defined]
        self._reader.received = 0
        self._reader.timed_out = False
        self._answered = False
        self.command, self.request_version, self.requestline = None, self.default_request_version, ""
        super().handle_one_request()
        if self._reader.timed_out:
            self.close_connection = True
            if self._reader.received and not self._answered:  # a partial request; an idle connection just closes
                self._refuse(408, "the request did not arrive in time")

    def parse_request(self) -> bool:
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split(" ")
        if len(words) == 3 and words[2].startswith("HTTP/") and words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.command, self.request_version = None, self.default_request_version
            self._refuse(505, "only HTTP/1.0 and HTTP/1.1 are served")
            return False
        return super().parse_request()

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response_only(code, message)

    def _refuse(self, code: int, message: str) -> None:
        self.close_connection = True
        try:
            self.send_error(code, message)
            self.wfile.flush()
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        super().send_error(code, message, explain)

    def end_headers(self) -> None:
        sent = b"\r\n".join(getattr(self, "_headers_buffer", [])).lower()
        if self.close_connection and b"\r\nconnection:" not in sent:
            self.send_header("Connection", "close")
        super().end_headers()

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's hook name)
        credentials = self.server.credentials  # type: ignore[attr-defined]
        if credentials is not None and not _authorized(self.headers.get("authorization"), credentials):
            log.warning("control rpc: request from %s refused (no or wrong credentials)", self.address_string())
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="halo-exchange devnet"')
            self.send_header("Content-Length", "0")
            self.close_connection = True
            self.end_headers()
            return
        if not self.is_rpc_path_valid():
            self._refuse(404, "XML-RPC is served at / and /RPC2")
            return
        if self.headers.get_all("transfer-encoding"):
            self._refuse(411, "send the body with a Content-Length (transfer codings are not served)")
            return
        encodings = [value.strip().lower() for header in self.headers.get_all("content-encoding") or []
                     for value in header.split(",") if value.strip()]
        if any(encoding != "identity" for encoding in encodings):
            self._refuse(415, "compressed request bodies are not served")
            return
        lengths = {value.strip() for header in self.headers.get_all("content-length") or []
                   for value in header.split(",")}
        if not lengths:
            self._refuse(411, "Content-Length required")
            return
        if len(lengths) != 1:
            self._refuse(400, "conflicting Content-Length values")
            return
        length = lengths.pop()
        if not (length.isascii() and length.isdigit()) or len(length) > 18:
            self._refuse(400, "malformed Content-Length")
            return
        size = int(length)
        if size > MAX_BODY:
            self._refuse(413, f"request body over {MAX_BODY} bytes")
            return
        body = self.rfile.read(size)
        if len(body) != size:  # the client went away, or timed out (handle_one_request answers 408)
            self.close_connection = True
            return
        self._reader.deadline = None  # the request is in; the call may take its time
        self.connection.settimeout(self.server.request_timeout)  # type: ignore[attr-defined]
        with self.server.calling():  # type: ignore[attr-defined]
            response = self.server._marshaled_dispatch(body)  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature, `format` included
        log.debug("control rpc %s: " + format, self.address_string(), *args)


class _Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    """A thread per connection, at most ``max_connections`` of them (more are answered 503 and closed); the
    threads are daemons and close() does not wait for held connections, only (briefly) for calls in flight."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    allow_reuse_address = True
    request_timeout = REQUEST_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], methods: ControlMethods, credentials: str | None) -> None:
        super().__init__(address, requestHandler=_RequestHandler, logRequests=False, allow_none=False)
        self.credentials = credentials
        self._methods = methods
        self._calls: dict[str, Callable[..., Any]] = {name: getattr(methods, name) for name in _NAMES}
        self._calls["system.listMethods"] = self._list_methods
        self._calls["system.methodHelp"] = self._method_help
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._lock = threading.Condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("control rpc: connection from %s refused (%d open)", client_address[0], self.max_connections)
            try:
                request.settimeout(0.1)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._lock:
            self._connections.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: Any) -> None:
        with self._lock:
            if request not in self._connections:
                return
            self._connections.discard(request)
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or was cut at close) is no error; anything else is logged, never printed."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("control rpc: connection from %s ended: %r", client_address[0], error)
        else:
            log.error("control rpc: connection from %s failed", client_address[0], exc_info=True)

    @contextlib.contextmanager
    def calling(self) -> Any:
        """Around a call and its answer: close() waits a little for these."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def end_connections(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for calls in flight to be answered (stop() reaches its caller), then cut
        every connection, whatever its client holds."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, grace)
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _list_methods(self) -> list[str]:
        """system.listMethods() -> the names of every call."""
        return sorted(self._calls)

    def _method_help(self, name: Any) -> str:
        """system.methodHelp(name) -> the call's documentation."""
        call = self._calls.get(name) if isinstance(name, str) else None
        if call is None:
            return ""
        return inspect.getdoc(call) or ""

    def _marshaled_dispatch(self, data: bytes, dispatch_method: Any = None, path: Any = None) -> bytes:
        try:
            params, method = xmlrpc.client.loads(data, use_builtin_types=True)
        except Exception:  # malformed XML or not a call: say so, change nothing
            return dump_response(_fault(FAULT_PARSE_ERROR, "request is not a valid XML-RPC call"))
        try:
            return dump_response((self._call(method, params),))
        except xmlrpc.client.Fault as fault:
            return dump_response(fault)
        except Exception:
            log.exception("control rpc %s failed", method)
            return dump_response(_fault(FAULT_INTERNAL, "internal error"))

    def _call(self, method: Any, params: tuple) -> Any:
        call = self._calls.get(method) if isinstance(method, str) else None
        if call is None:
            raise _fault(FAULT_METHOD_NOT_FOUND, f"method {method!r} not found")
        try:
            inspect.signature(call).bind(*params)
        except TypeError:
            raise _fault(FAULT_INVALID_PARAMS, f"wrong arguments for {method}") from None
        try:
            return call(*params)
        except DevnodeError as exc:
            raise _node_fault(exc) from None


class ControlRPCServer:
    """The control RPC of one node, served from background threads until :meth:`close`. ``credentials`` is
    the ``user:password`` every request must carry (HTTP basic auth), or None for no authentication (only
    ever asked for explicitly: ``--rpc-no-auth``)."""

    def __init__(self, node: DevNode, host: str = DevnodeConfig.rpc_host, port: int = DevnodeConfig.rpc_port, *,
                 credentials: str | None) -> None:
        self._server = _Server((host, port), ControlMethods(node), credentials)
        self.credentials = credentials
        self.host = host
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def auth_url(self) -> str:
        """The URL with the credentials in it, as ``xmlrpc.client.ServerProxy`` takes them."""
        if self.credentials is None:
            return self.url
        user, _, password = self.credentials.partition(":")
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), name="devnode-rpc",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening, let calls in flight answer (up to ``CLOSE_GRACE`` s), cut every connection, release
        the port. Idempotent, and quick whatever clients hold open."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.end_connections(CLOSE_GRACE)

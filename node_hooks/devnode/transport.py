"""The hardened HTTP/1.x transport both devnet RPC servers stand on: the control RPC (``rpc.py``, XML-RPC) and
the bitbayd-compatible JSON-RPC (``bitbayd_rpc.py``). The stdlib's ``http.server`` with the limits of the
API's own transport (``halo_exchange/rpc/http.py``):

* a deadline for each request, from its first byte to its last, not for each ``recv`` (a client dribbling a
  byte now and then cannot hold a thread): a partial request is answered 408 and closed, an idle
  connection closed quietly;
* a status line on every refusal, HTTP/2.0 (505) and garbage request lines (400) included (the stdlib's
  HTTP/0.9 default answers those with a bare page);
* a strict Content-Length: missing 411, negative, non-numeric or conflicting 400, over the server's
  ``max_body`` 413; transfer codings (chunked) 411 and content codings (gzip, deflate) 415; the body read
  here, never more than announced;
* at most ``max_connections`` connections, a daemon thread each; more are answered 503 and closed;
* ``end_connections``: close() waits briefly for calls in flight, then cuts every connection, whatever its
  client holds.

A server combines :class:`HardenedServer` with its stdlib server class and a handler derived from
:class:`HardenedHandler`; the handler's ``do_POST`` calls :meth:`HardenedHandler.read_body` and, when it gets
a body, answers inside ``self.server.calling()``. :class:`ServedInBackground` serves it from a thread until
``close()``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

from halo_exchange.config import ExchangeConfig

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = ExchangeConfig.idle_timeout  # from a request's first byte to its last, as the API's
MAX_CONNECTIONS = ExchangeConfig.max_connections  # as the API's; more are answered 503
CLOSE_GRACE = 1.0  # how long close() waits for calls in flight before cutting their connections
# How often serve_forever looks whether close() asked it to stop: the longest a stop waits for it (the
# stdlib default, 0.5 s, made every SIGTERM take half a second).
SHUTDOWN_POLL = 0.05
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def basic_auth_matches(header: str | None, credentials: bytes) -> bool:
    """Whether an Authorization header carries exactly these ``user:password`` basic-auth credentials
    (constant time; the scheme's case does not matter, as RFC 7617 says)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, credentials)


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side with a deadline for the whole request, not for each ``recv``."""

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


class HardenedHandler(BaseHTTPRequestHandler):
    """A request handler with a deadline for each request, a status line on every refusal and
    :meth:`read_body`'s strict Content-Length. Its server is a :class:`HardenedServer`."""

    default_request_version = "HTTP/1.0"  # the stdlib's HTTP/0.9 default answers a bad request line with no status line
    server: HardenedServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.server.request_timeout
        self._reader.received = 0
        self._reader.timed_out = False
        self._answered = False
        self.command, self.request_version, self.requestline = None, self.default_request_version, ""
        super().handle_one_request()
        if self._reader.timed_out:
            self.close_connection = True
            if self._reader.received and not self._answered:  # a partial request; an idle connection just closes
                self.refuse(408, "the request did not arrive in time")

    def parse_request(self) -> bool:
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split(" ")
        if len(words) == 3 and words[2].startswith("HTTP/") and words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.command, self.request_version = None, self.default_request_version
            self.refuse(505, "only HTTP/1.0 and HTTP/1.1 are served")
            return False
        return super().parse_request()

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response_only(code, message)

    def refuse(self, code: int, message: str) -> None:
        """Answer ``code`` (through :meth:`send_error`) and close the connection."""
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

    def read_body(self) -> bytes | None:
        """The request's body, or None when it was refused (answered and the connection closed) or did not
        arrive whole. Once it is in, the request's deadline no longer runs: the call may take its time."""
        if self.headers.get_all("transfer-encoding"):
            self.refuse(411, "send the body with a Content-Length (transfer codings are not served)")
            return None
        encodings = [value.strip().lower() for header in self.headers.get_all("content-encoding") or []
                     for value in header.split(",") if value.strip()]
        if any(encoding != "identity" for encoding in encodings):
            self.refuse(415, "compressed request bodies are not served")
            return None
        lengths = {value.strip() for header in self.headers.get_all("content-length") or []
                   for value in header.split(",")}
        if not lengths:
            self.refuse(411, "Content-Length required")
            return None
        if len(lengths) != 1:
            self.refuse(400, "conflicting Content-Length values")
            return None
        length = lengths.pop()
        if not (length.isascii() and length.isdigit()) or len(length) > 18:
            self.refuse(400, "malformed Content-Length")
            return None
        size = int(length)
        if size > self.server.max_body:
            self.refuse(413, f"request body over {self.server.max_body} bytes")
            return None
        body = self.rfile.read(size)
        if len(body) != size:  # the client went away, or timed out (handle_one_request answers 408)
            self.close_connection = True
            return None
        self._reader.deadline = None
        self.connection.settimeout(self.server.request_timeout)
        return body

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature, `format` included
        log.debug("%s %s: " + format, self.server.log_name, self.address_string(), *args)


class HardenedServer(socketserver.ThreadingMixIn):
    """A thread per connection, at most ``max_connections`` of them (more are answered 503 and closed); the
    threads are daemons and close() does not wait for held connections, only (briefly, :meth:`end_connections`)
    for calls in flight. Mixed in before the stdlib server class; ``log_name`` names the server in the log."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    allow_reuse_address = True
    request_timeout = REQUEST_TIMEOUT
    max_connections = MAX_CONNECTIONS
    max_body = 64 * 1024
    log_name = "rpc"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._lock = threading.Condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("%s: connection from %s refused (%d open)", self.log_name, client_address[0],
                        self.max_connections)
            try:
                request.settimeout(0.1)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)  # type: ignore[attr-defined]
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
            log.debug("%s: connection from %s ended: %r", self.log_name, client_address[0], error)
        else:
            log.error("%s: connection from %s failed", self.log_name, client_address[0], exc_info=True)

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """Around a call and its answer: close() waits a little for these."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def end_connections(self, grace: float = CLOSE_GRACE) -> None:
        """Wait up to ``grace`` seconds for calls in flight to be answered, then cut every connection,
        whatever its client holds."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, grace)
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServedInBackground:
    """A :class:`HardenedServer` (``self._server``) served from a daemon thread named ``thread_name`` between
    :meth:`start` and :meth:`close`."""

    thread_name = "devnode-rpc"
    _server: HardenedServer
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,),  # type: ignore[attr-defined]
                                        name=self.thread_name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening, let calls in flight answer (up to ``CLOSE_GRACE`` s), cut every connection, release
        the port. Idempotent, and quick whatever clients hold open."""
        if self._thread is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._thread.join()
            self._thread = None
        self._server.server_close()  # type: ignore[attr-defined]
        self._server.end_connections(CLOSE_GRACE)


__all__ = ["CLOSE_GRACE", "MAX_CONNECTIONS", "REQUEST_TIMEOUT", "SHUTDOWN_POLL", "HardenedHandler", "HardenedServer",
           "ServedInBackground", "basic_auth_matches"]

"""The API's HTTP/1.1 transport: the part of HTTP that XML-RPC clients use, on a plain Twisted protocol.

Why not ``twisted.web`` or h11: XML-RPC needs only ``POST`` with a ``Content-Length`` body, keep-alive and
in-order answers, and per-call transport cost decides the API's throughput. Measured here with 8 client
processes on 2 cores: a server on ``twisted.web`` spent about 0.25 ms per call in request objects, header
parsing through the ``email`` package and access-log formatting; h11 (a correct, well-kept parser) took an
in-memory echo server from 8,000 down to 4,900 calls/s. This module parses the subset strictly and refuses
everything else with a clear status:

* request line ``METHOD SP target SP HTTP/1.0|HTTP/1.1``, then header lines, then ``CRLF CRLF``; the head may
  not exceed ``max_head`` bytes (431), bad syntax gets 400, another HTTP version 505;
* only ``POST`` (405 with ``Allow: POST``) to ``/`` or ``/RPC2`` (404);
* the body is framed by one ``Content-Length`` (411 without it, also for ``Transfer-Encoding``; 413 above
  ``max_body``, answered before the body is read); ``Expect: 100-continue`` is honoured;
* keep-alive as HTTP/1.1 defines it (``Connection: close`` ends it; HTTP/1.0 needs ``keep-alive``);
  pipelined requests are answered one at a time, in order; an idle connection closes after ``idle_timeout``,
  and a request must arrive whole within that time from its first byte;
* at most ``max_connections`` connections at once; more are closed as they arrive.

Every refusal closes the connection, since what follows on the stream cannot be trusted. The protocol knows
nothing of XML-RPC: it hands each body to ``handle(body) -> bytes | Deferred[bytes]`` and sends the answer.
"""

from __future__ import annotations

import enum
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import formatdate
from typing import Callable

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from halo_exchange.config import ExchangeConfig
from halo_exchange.errors import HaloExchangeError

log = logging.getLogger(__name__)

Handler = Callable[[bytes], "bytes | Deferred"]

PATHS = frozenset({b"/", b"/RPC2"})
_REASONS = {
    200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
    411: b"Length Required", 413: b"Content Too Large", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 505: b"HTTP Version Not Supported",
}
# The client's address (its IP) while ``handle`` runs for one of its requests: the dispatcher's per-peer
# password back-off reads it. None outside a request (an in-process dispatcher).
REQUEST_PEER: ContextVar[str | None] = ContextVar("REQUEST_PEER", default=None)
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class HTTPLimits:
    """The transport's hard limits; the defaults are the exchange configuration's."""

    max_body: int = ExchangeConfig.max_body
    max_head: int = ExchangeConfig.max_head
    idle_timeout: float = ExchangeConfig.idle_timeout  # between requests, and for a request from first byte to last
    max_connections: int = ExchangeConfig.max_connections


class ChannelState(enum.Enum):
    READING_HEAD = "reading head"
    READING_BODY = "reading body"
    ANSWERING = "answering"  # the handler has the body; later input waits in the buffer
    CLOSING = "closing"
    CLOSED = "closed"


class Refusal(HaloExchangeError):
    """A request this transport does not serve: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str, extra_headers: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.extra_headers = extra_headers


@dataclass(frozen=True)
class RequestHead:
    keep_alive: bool
    content_length: int
    expects_continue: bool
    connection_header: bytes  # what the answer says about the connection (HTTP/1.0 keep-alive is echoed)


# Parsed heads by their bytes, per factory (so per set of limits). A client sends the same head for every
# call of the same length (xmlrpc.client's differ only in Content-Length), and parsing one costs ~10 µs of
# the API thread. Only heads that parsed are kept, at most this many; a flood of distinct heads only empties
# the cache now and then.
HEAD_CACHE_SIZE = 256

_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def parse_head(head: bytes, limits: HTTPLimits) -> RequestHead:
    """The request line and headers (without the final CRLF CRLF), or :class:`Refusal`."""
    lines = head.split(b"\r\n")
    if b"\0" in head or any(b"\r" in line or b"\n" in line for line in lines):
        raise Refusal(400, "bare CR, LF or NUL in the request head")  # RFC 9112 §2.2: never guess at these
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN or not parts[1]:
        raise Refusal(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/"):
            raise Refusal(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise Refusal(400, "malformed request line")
    lengths: set[bytes] = set()
    connection: list[bytes] = []
    expects_continue = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise Refusal(400, "malformed header line")  # also obsolete line folding (leading whitespace)
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            lengths.update(item.strip(b" \t") for item in value.split(b","))
        elif name == b"transfer-encoding":
            raise Refusal(411, "send the body with a Content-Length (transfer codings are not served)")
        elif name == b"connection":
            connection.extend(token.strip(b" \t").lower() for token in value.split(b","))
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise Refusal(400, "only 'Expect: 100-continue' is understood")
            expects_continue = version == b"HTTP/1.1"
    if method != b"POST":
        raise Refusal(405, "XML-RPC calls are POST requests", b"Allow: POST\r\n")
    if target.partition(b"?")[0] not in PATHS:
        raise Refusal(404, "XML-RPC is served at / and /RPC2")
    if not lengths:
        raise Refusal(411, "a Content-Length is required")
    if len(lengths) != 1:
        raise Refusal(400, "conflicting Content-Length values")
    raw_length = lengths.pop()
    if not raw_length.isdigit() or len(raw_length) > 18:
        raise Refusal(400, "malformed Content-Length")
    content_length = int(raw_length)
    if content_length > limits.max_body:
        raise Refusal(413, f"request body over {limits.max_body} bytes")
    if version == b"HTTP/1.1":
        keep_alive = b"close" not in connection
        connection_header = b"" if keep_alive else b"Connection: close\r\n"
    else:
        keep_alive = b"keep-alive" in connection
        connection_header = b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n"
    return RequestHead(keep_alive, content_length, expects_continue, connection_header)


@implementer(IPushProducer, IHalfCloseableProtocol)
class XMLRPCChannel(Protocol, TimeoutMixin):
    """One client connection: reads requests, hands their bodies to ``handle``, writes answers in order.

    Memory per connection is bounded both ways. Input: at most one request head and body are buffered ahead,
    then reading pauses. Output: the channel is the transport's producer, so when a client does not read its
    answers and the transport's buffer fills, the channel stops parsing (and reading) until it drains. A
    connection that stays stuck past the timeout, or does not finish closing, is aborted.

    A client may half-close (``shutdown(SHUT_WR)``) after its requests: what it sent whole is still answered,
    in order, and the connection is closed after the last answer (an incomplete request is dropped).
    """

    factory: XMLRPCFactory | None = None

    def __init__(self, handle: Handler, limits: HTTPLimits, heads: dict[bytes, RequestHead] | None = None) -> None:
        self._handle = handle
        self._limits = limits
        self._heads = {} if heads is None else heads  # see HEAD_CACHE_SIZE
        self._direct = False  # answers may go straight to the socket (see _send)
        self._buffer = bytearray()
        self._head: RequestHead | None = None
        self._request_started = False  # the first byte of the next request has arrived (its timer runs)
        self._output_blocked = False  # the transport asked us to stop producing (its buffer is full)
        self._reading_paused = False
        self._advancing = False  # inside _advance(): an answer given there must not parse re-entrantly
        self._peer: str | None = None
        self._read_closed = False  # the client half-closed: answer what arrived whole, then close
        self.state = ChannelState.READING_HEAD

    # -- Twisted's hooks --------------------------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's hook names)
        # An answer is one write; without this, a "100 Continue" followed by the answer could wait for the
        # client's delayed ACK (Nagle's algorithm).
        self.transport.setTcpNoDelay(True)
        # Straight writes need a TCP transport whose buffer _send can see (FileDescriptor's attributes, checked
        # here so that a Twisted that renames them only turns the shortcut off).
        self._direct = isinstance(self.transport, tcp.Connection) and all(
            hasattr(self.transport, name) for name in ("dataBuffer", "offset", "_tempDataLen", "writeSomeData"))
        self._peer = getattr(self.transport.getPeer(), "host", None)
        self.transport.registerProducer(self, True)
        self.setTimeout(self._limits.idle_timeout)

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802 (Twisted's interface name)
        self.state = ChannelState.CLOSED
        self.setTimeout(None)
        if self.factory is not None:
            self.factory.channel_closed(self)

    def readConnectionLost(self) -> None:  # noqa: N802 (IHalfCloseableProtocol: the client sent its EOF)
        if self._read_closed:
            return
        self._read_closed = True
        if self.state in (ChannelState.READING_HEAD, ChannelState.READING_BODY) and not self._advancing:
            self._close_if_done()
        # ANSWERING: the answer closes the connection once written (and any whole request after it is served)

    def writeConnectionLost(self) -> None:  # noqa: N802 (IHalfCloseableProtocol: not used by a server)
        pass

    def _close_if_done(self) -> None:
        """After the client's EOF: close once no whole request is left to answer and output is not blocked."""
        if (self._read_closed and not self._output_blocked
                and self.state in (ChannelState.READING_HEAD, ChannelState.READING_BODY)):
            self._close()

    def timeoutConnection(self) -> None:  # noqa: N802 (Twisted's interface name)
        if self.state is ChannelState.ANSWERING:
            # A call that waits for the disk is not an idle connection. The timer runs on meanwhile (cancelling
            # and re-creating it for every call cost the API thread more than this rare re-arm).
            self.setTimeout(self._limits.idle_timeout)
        elif self.state is ChannelState.CLOSING or self._output_blocked:
            self.transport.abortConnection()  # the peer reads nothing: do not wait for it
        elif self.state is ChannelState.READING_HEAD and not self._request_started:
            self.transport.loseConnection()  # idle between requests: close quietly
        else:
            self._refuse(Refusal(408, "the request did not arrive in time"))

    def pauseProducing(self) -> None:  # noqa: N802 (IPushProducer: the transport's output buffer is full)
        self._output_blocked = True
        self._update_reading()

    def resumeProducing(self) -> None:  # noqa: N802 (IPushProducer: the output buffer drained)
        self._output_blocked = False
        self._update_reading()
        if self.state is ChannelState.READING_HEAD and self._buffer and not self._advancing:
            self._advance()
        elif not self._advancing:
            self._close_if_done()

    def stopProducing(self) -> None:  # noqa: N802 (IPushProducer)
        self.state = ChannelState.CLOSED

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's interface name)
        if self.state in (ChannelState.CLOSING, ChannelState.CLOSED):
            return
        self._buffer += data
        self._update_reading()
        if self.state is ChannelState.ANSWERING or self._output_blocked:
            return
        self._advance()

    # -- reading ----------------------------------------------------------------------------------------

    def _update_reading(self) -> None:
        """Read from the socket only while output flows and at most one request waits in the buffer."""
        pause = self._output_blocked or len(self._buffer) > self._limits.max_head + self._limits.max_body
        if self._read_closed:
            return  # nothing more to read: resuming would only report the EOF again
        if pause != self._reading_paused and self.state not in (ChannelState.CLOSING, ChannelState.CLOSED):
            self._reading_paused = pause
            (self.transport.pauseProducing if pause else self.transport.resumeProducing)()

    def _advance(self) -> None:
        """Parse what the buffer holds until an answer is pending, output is blocked, or input runs out."""
        self._advancing = True
        try:
            while not self._output_blocked and self.state in (ChannelState.READING_HEAD, ChannelState.READING_BODY):
                if self.state is ChannelState.READING_HEAD:
                    if not self._read_head():
                        return
                elif not self._read_body():
                    return
        finally:
            self._advancing = False
            self._update_reading()
            self._close_if_done()

    def _read_head(self) -> bool:
        buffer = self._buffer
        while buffer[:2] == b"\r\n":  # empty lines before a request line are allowed (RFC 9112 §2.2)
            del buffer[:2]
        if not buffer:
            return False
        if not self._request_started:
            # A request gets the whole window from its first byte, and no more: trickling bytes (or empty
            # lines) does not keep a connection and its memory forever.
            self._request_started = True
            self.setTimeout(self._limits.idle_timeout)
        end = buffer.find(b"\r\n\r\n", 0, self._limits.max_head + 4)
        if end < 0:
            if len(buffer) >= self._limits.max_head + 4:  # a terminator within the limit would have been found
                self._refuse(Refusal(431, f"request head over {self._limits.max_head} bytes"))
            return False
        raw = bytes(buffer[:end])
        head = self._heads.get(raw)
        if head is None:
            try:
                head = parse_head(raw, self._limits)
            except Refusal as refusal:
                self._refuse(refusal)
                return False
            if len(self._heads) >= HEAD_CACHE_SIZE:
                self._heads.clear()
            self._heads[raw] = head
        self._head = head
        del buffer[: end + 4]
        if self._head.expects_continue and len(buffer) < self._head.content_length:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.state = ChannelState.READING_BODY
        return True

    def _read_body(self) -> bool:
        assert self._head is not None
        length = self._head.content_length
        if len(self._buffer) < length:
            return False
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self.state = ChannelState.ANSWERING  # (its timer runs on: timeoutConnection re-arms it meanwhile)
        peer = REQUEST_PEER.set(self._peer)
        try:
            answer = self._handle(body)
        except Exception:
            log.exception("the API handler failed outside its own error handling")
            self._refuse(Refusal(500, "internal error"))
            return False
        finally:
            REQUEST_PEER.reset(peer)
        if isinstance(answer, Deferred):
            answer.addCallback(self._answer).addErrback(self._handler_failed)
        else:
            self._answer(answer)
        return self.state is ChannelState.READING_HEAD  # answered already: go on with pipelined input

    # -- writing ----------------------------------------------------------------------------------------

    def _handler_failed(self, failure: object) -> None:
        log.error("the API handler's answer failed: %s", failure)
        if self.state is ChannelState.ANSWERING:
            self._refuse(Refusal(500, "internal error"))

    def _answer(self, body: bytes) -> None:
        if self.state is not ChannelState.ANSWERING:
            return  # the client went away meanwhile; the call itself has done its work
        assert self._head is not None
        self._send(
            b"HTTP/1.1 200 OK\r\nServer: halo-exchange\r\nDate: %s\r\nContent-Type: text/xml; charset=utf-8\r\n"
            b"Content-Length: %d\r\n%s\r\n%s"
            % (_http_date(), len(body), self._head.connection_header, body)
        )
        self.setTimeout(self._limits.idle_timeout)
        if not self._head.keep_alive:
            self._close()
            return
        self.state = ChannelState.READING_HEAD
        self._head = None
        self._request_started = False
        if self._buffer and not self._advancing and not self._output_blocked:
            self._advance()  # an answer that came later: go on with what was pipelined meanwhile
        else:
            self._update_reading()
            if not self._advancing:
                self._close_if_done()

    def _send(self, data: bytes) -> None:
        """Write one answer. On a TCP connection whose transport holds nothing unsent (the common case: answers
        are small and clients read them), it goes straight into the socket: ``transport.write`` would queue
        it, register the socket for writing (an epoll_ctl), wait for the next reactor iteration to send it,
        then unregister (another epoll_ctl), which cost the API thread ~20 µs per call. Whatever the socket
        does not take at once, or an error, is left to ``transport.write``, which handles both as usual."""
        transport = self.transport
        if (self._direct and transport.connected and not transport.disconnecting
                and transport.offset == len(transport.dataBuffer) and not transport._tempDataLen):
            sent = transport.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        transport.write(data)

    def _refuse(self, refusal: Refusal) -> None:
        message = str(refusal).encode("utf-8") + b"\n"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nServer: halo-exchange\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n%s\r\n%s"
            % (refusal.status, _REASONS.get(refusal.status, b"Error"), _http_date(), len(message),
               refusal.extra_headers, message)
        )
        self._close()

    def _close(self) -> None:
        """Close after the last answer; a peer that does not take it within the timeout is cut off."""
        self.state = ChannelState.CLOSING
        self._buffer.clear()
        self.setTimeout(self._limits.idle_timeout)
        self.transport.loseConnection()


class XMLRPCFactory(Factory):
    """Makes an :class:`XMLRPCChannel` per connection, all sharing one handler and one set of limits."""

    noisy = False  # no "Starting factory <... at 0x7f...>" lines in the log (service.py logs the listener)

    def __init__(self, handle: Handler, limits: HTTPLimits | None = None) -> None:
        self._handle = handle
        self.limits = limits or HTTPLimits()
        self.channels: set[XMLRPCChannel] = set()
        self._heads: dict[bytes, RequestHead] = {}  # shared by the channels (see HEAD_CACHE_SIZE)
        self._last_refusal_logged = 0.0

    def buildProtocol(self, addr: object) -> XMLRPCChannel | None:  # noqa: N802 (Twisted's interface name)
        if len(self.channels) >= self.limits.max_connections:
            now = time.monotonic()
            if now - self._last_refusal_logged > 60:  # under a flood, one line a minute
                self._last_refusal_logged = now
                log.warning("exchange API: %d connections open, refusing more (from %s)", len(self.channels), addr)
            return None  # Twisted closes the connection at once
        channel = XMLRPCChannel(self._handle, self.limits, self._heads)
        channel.factory = self
        self.channels.add(channel)
        return channel

    def channel_closed(self, channel: XMLRPCChannel) -> None:
        self.channels.discard(channel)

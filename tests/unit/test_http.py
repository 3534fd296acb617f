"""The API's HTTP transport: framing, keep-alive, pipelining in order, and every refusal with its status."""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from halo_exchange.rpc.http import HEAD_CACHE_SIZE, ChannelState, HTTPLimits, XMLRPCFactory


def _request(body: bytes = b"<call/>", path: bytes = b"/RPC2", version: bytes = b"HTTP/1.1",
             headers: bytes = b"") -> bytes:
    return (b"POST %s %s\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path, version, len(body), headers, body))


class TCPStringTransport(StringTransport):
    """An in-memory transport with the one TCP option the channel sets."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 (Twisted's interface name)
        self.no_delay = enabled


class Channel:
    """One server connection over an in-memory transport, with its own clock for timeouts."""

    def __init__(self, handle=None, limits: HTTPLimits | None = None) -> None:
        self.bodies: list[bytes] = []
        self.clock = Clock()
        self.protocol = XMLRPCFactory(handle or self._echo, limits).buildProtocol(None)
        self.protocol.callLater = self.clock.callLater
        self.transport = TCPStringTransport()
        self.protocol.makeConnection(self.transport)

    def _echo(self, body: bytes) -> bytes:
        self.bodies.append(body)
        return b"answer:" + body

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def output(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


def _status_lines(output: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", output)


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    channel = Channel()
    channel.send(_request(b"one") + _request(b"two"))
    output = channel.output()
    assert _status_lines(output) == [b"HTTP/1.1 200 OK"] * 2
    assert output.index(b"answer:one") < output.index(b"answer:two")
    assert b"Content-Length: 10\r\n" in output and not channel.closed
    assert channel.transport.no_delay  # answers are single writes: nothing to gain from Nagle's delay


def test_a_request_split_into_single_bytes_is_read_whole() -> None:
    channel = Channel()
    for byte in _request(b"<methodCall/>"):
        channel.send(bytes([byte]))
    assert channel.bodies == [b"<methodCall/>"]
    assert channel.output().endswith(b"\r\n\r\nanswer:<methodCall/>")


def test_a_later_answer_holds_back_the_next_pipelined_request() -> None:
    pending: list[Deferred] = []

    def handle(body: bytes) -> Deferred:
        pending.append(Deferred())
        pending[-1].addCallback(lambda _: b"late:" + body)
        return pending[-1]

    channel = Channel(handle)
    channel.send(_request(b"one") + _request(b"two"))
    assert len(pending) == 1 and channel.output() == b""
    assert channel.protocol.state is ChannelState.ANSWERING
    pending[0].callback(None)
    assert channel.output().endswith(b"late:one") and len(pending) == 2
    pending[1].callback(None)
    assert channel.output().endswith(b"late:two")
    assert channel.protocol.state is ChannelState.READING_HEAD


def test_an_answer_for_a_client_that_left_is_dropped() -> None:
    answer: Deferred = Deferred()
    channel = Channel(lambda body: answer)
    channel.send(_request())
    channel.protocol.connectionLost(None)
    answer.callback(b"too late")
    assert channel.output() == b""


def test_a_half_closed_client_gets_every_whole_request_answered_then_the_connection_closes() -> None:
    """shutdown(SHUT_WR) after the requests: the EOF reaches readConnectionLost (the channel is half-closeable),
    the pending and pipelined answers are still written in order, then the connection closes."""
    from twisted.internet.interfaces import IHalfCloseableProtocol

    pending: list[Deferred] = []

    def handle(body: bytes) -> Deferred:
        pending.append(Deferred())
        pending[-1].addCallback(lambda _: b"late:" + body)
        return pending[-1]

    channel = Channel(handle)
    assert IHalfCloseableProtocol.providedBy(channel.protocol)
    channel.send(_request(b"one") + _request(b"two") + b"POST / HTTP/1.1\r\nContent-Le")
    channel.protocol.readConnectionLost()
    assert not channel.closed and channel.output() == b""
    pending[0].callback(None)
    assert channel.output().endswith(b"late:one") and not channel.closed
    pending[1].callback(None)
    assert channel.output().endswith(b"late:two")
    assert channel.closed and len(pending) == 2  # the incomplete third request is dropped
    answered = Channel()  # an answer given at once: written, then closed at the EOF
    answered.send(_request(b"x"))
    answered.protocol.readConnectionLost()
    assert answered.output().endswith(b"answer:x") and answered.closed
    idle = Channel()
    idle.protocol.readConnectionLost()
    assert idle.closed and idle.output() == b""


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer() -> None:
    closing = Channel()
    closing.send(_request(headers=b"Connection: close\r\n"))
    assert b"Connection: close" in closing.output() and closing.closed
    old = Channel()
    old.send(_request(version=b"HTTP/1.0"))
    assert old.closed
    old_keep = Channel()
    old_keep.send(_request(version=b"HTTP/1.0", headers=b"Connection: Keep-Alive\r\n"))
    assert b"Connection: keep-alive\r\n" in old_keep.output() and not old_keep.closed


def test_expect_100_continue_gets_the_interim_answer() -> None:
    channel = Channel()
    request = _request(b"body", headers=b"Expect: 100-continue\r\n")
    head, body = request[: -len(b"body")], b"body"
    channel.send(head)
    assert channel.output() == b"HTTP/1.1 100 Continue\r\n\r\n"
    channel.send(body)
    assert channel.output().endswith(b"answer:body")


def _refused(data: bytes, limits: HTTPLimits | None = None) -> tuple[bytes, Channel]:
    channel = Channel(limits=limits)
    channel.send(data)
    output = channel.output()
    assert channel.closed and channel.bodies == [] and b"Connection: close" in output
    return _status_lines(output)[0], channel


def test_refusals_have_their_status_and_close_the_connection() -> None:
    assert _refused(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert _refused(_request(path=b"/admin"))[0] == b"HTTP/1.1 404 Not Found"
    assert _refused(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == b"HTTP/1.1 411 Length Required"
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert _refused(chunked)[0] == b"HTTP/1.1 411 Length Required"
    assert _refused(b"POST / HTTP/2.0\r\nContent-Length: 0\r\n\r\n")[0] == b"HTTP/1.1 505 HTTP Version Not Supported"
    assert _refused(b"POST  / HTTP/1.1\r\n\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert _refused(b"POST / HTTP/1.1\r\nBad Header: 1\r\n\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    folded = b"POST / HTTP/1.1\r\nX: 1\r\n folded\r\nContent-Length: 0\r\n\r\n"
    assert _refused(folded)[0] == b"HTTP/1.1 400 Bad Request"
    two_lengths = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    assert _refused(two_lengths)[0] == b"HTTP/1.1 400 Bad Request"
    assert _refused(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    for smuggled in (b"X: a\nContent-Length: 5", b"X: a\rb", b"X: a\0b"):
        assert _refused(b"POST / HTTP/1.1\r\n" + smuggled + b"\r\nContent-Length: 0\r\n\r\n")[0] == \
            b"HTTP/1.1 400 Bad Request"


def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    limits = HTTPLimits(max_body=100)
    status, channel = _refused(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", limits)
    assert status == b"HTTP/1.1 413 Content Too Large"
    fine = Channel(limits=limits)
    fine.send(_request(b"x" * 100))
    assert fine.bodies == [b"x" * 100]


def test_an_oversized_head_is_refused() -> None:
    status, _ = _refused(b"POST / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20_000, HTTPLimits(max_head=16 * 1024))
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_idle_connections_close_and_stalled_requests_time_out() -> None:
    idle = Channel(limits=HTTPLimits(idle_timeout=5))
    idle.clock.advance(5)
    assert idle.closed and idle.output() == b""
    stalled = Channel(limits=HTTPLimits(idle_timeout=5))
    stalled.send(_request(b"abcdef")[:-3])
    stalled.clock.advance(5)
    assert _status_lines(stalled.output()) == [b"HTTP/1.1 408 Request Timeout"] and stalled.closed


def test_a_call_waiting_for_the_disk_is_not_timed_out() -> None:
    answer: Deferred = Deferred()
    channel = Channel(lambda body: answer, HTTPLimits(idle_timeout=5))
    channel.send(_request())
    channel.clock.advance(60)
    assert not channel.closed
    answer.callback(b"done")
    assert channel.output().endswith(b"done") and not channel.closed


def test_a_handler_that_raises_gets_a_500_and_the_connection_closes() -> None:
    def handle(body: bytes) -> bytes:
        raise RuntimeError("bug")

    channel = Channel(handle)
    channel.send(_request())
    assert _status_lines(channel.output()) == [b"HTTP/1.1 500 Internal Server Error"] and channel.closed


def test_a_trickled_request_gets_its_window_from_the_first_byte_only() -> None:
    """Sending a byte now and then does not keep a half request open past the timeout (slowloris)."""
    channel = Channel(limits=HTTPLimits(idle_timeout=60))
    channel.clock.advance(30)  # idle: the window restarts with the first byte of a request
    request = _request(b"abcdef")
    channel.send(request[:10])
    channel.clock.advance(40)
    channel.send(request[10:20])
    channel.clock.advance(19)
    assert not channel.closed
    channel.clock.advance(1)
    assert _status_lines(channel.output()) == [b"HTTP/1.1 408 Request Timeout"] and channel.closed


def test_connections_beyond_the_limit_are_refused_until_one_closes() -> None:
    factory = XMLRPCFactory(lambda body: b"ok", HTTPLimits(max_connections=2))
    first, second = factory.buildProtocol(None), factory.buildProtocol(None)
    assert first is not None and second is not None
    assert factory.buildProtocol(None) is None
    first.connectionLost(None)
    assert factory.buildProtocol(None) is not None


def test_a_client_that_does_not_read_its_answers_is_not_served_more() -> None:
    """When the transport's output buffer is full, pipelined requests wait unparsed and reading pauses; when
    it drains, they are answered. A peer stuck like that past the timeout is cut off, not waited for."""
    channel = Channel(limits=HTTPLimits(idle_timeout=5))
    channel.send(_request(b"one"))
    channel.protocol.pauseProducing()  # what the transport does when its buffer fills
    channel.output()
    channel.send(_request(b"two") + _request(b"three"))
    assert channel.bodies == [b"one"] and channel.transport.producerState == "paused"
    channel.protocol.resumeProducing()
    assert channel.bodies == [b"one", b"two", b"three"] and channel.transport.producerState == "producing"
    channel.protocol.pauseProducing()
    channel.clock.advance(5)
    assert channel.transport.disconnected  # aborted: the unread output is dropped


def test_a_refused_connection_gets_one_answer_and_is_cut_off_if_it_lingers() -> None:
    channel = Channel(limits=HTTPLimits(idle_timeout=5))
    channel.send(b"GET / HTTP/1.1\r\n\r\n")
    assert _status_lines(channel.output()) == [b"HTTP/1.1 405 Method Not Allowed"]
    channel.clock.advance(5)
    assert channel.output() == b"" and channel.transport.disconnected


def test_the_head_limit_does_not_depend_on_how_tcp_splits_the_head() -> None:
    request = _request(b"x")
    head_length = request.index(b"\r\n\r\n")
    for split in range(head_length - 2, head_length + 5):
        channel = Channel(limits=HTTPLimits(max_head=head_length))
        channel.send(request[:split])
        channel.send(request[split:])
        assert channel.bodies == [b"x"], split


def test_empty_lines_do_not_keep_an_idle_connection_open() -> None:
    channel = Channel(limits=HTTPLimits(idle_timeout=60))
    for _ in range(3):
        channel.clock.advance(30)
        channel.send(b"\r\n")
    assert channel.closed


def test_parsed_heads_are_shared_by_the_connections_and_refused_heads_never_kept() -> None:
    """The head cache (one per listener) changes nothing a client sees: the same head read twice, by two
    connections, frames each body; a head refused once is refused again; a flood of distinct heads only
    empties the cache now and then."""
    factory = XMLRPCFactory(lambda body: b"ok:" + body)
    channels = []
    for _ in range(2):
        channel = factory.buildProtocol(None)
        transport = TCPStringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(_request(b"same") + _request(b"same"))
        channels.append(transport.value())
    assert channels[0] == channels[1] and channels[0].count(b"ok:same") == 2
    for _ in range(2):
        channel = factory.buildProtocol(None)
        transport = TCPStringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(_request(b"x", path=b"/admin"))
        assert _status_lines(transport.value()) == [b"HTTP/1.1 404 Not Found"] and transport.disconnecting
    channel = factory.buildProtocol(None)
    channel.makeConnection(TCPStringTransport())
    for n in range(HEAD_CACHE_SIZE * 2):
        channel.dataReceived(_request(b"b" * (n % 300 + 1), headers=b"X-N: %d\r\n" % n))
    assert 0 < len(factory._heads) <= HEAD_CACHE_SIZE


def test_after_a_long_call_the_idle_window_starts_at_the_answer() -> None:
    """The idle timer runs on through a call (it is re-armed if it fires meanwhile): the connection stays
    open however long the disk takes, and closes one idle window after the answer."""
    answer: Deferred = Deferred()
    channel = Channel(lambda body: answer, HTTPLimits(idle_timeout=5))
    channel.send(_request())
    channel.clock.advance(12)
    assert not channel.closed
    answer.callback(b"done")
    assert channel.output().endswith(b"done")
    channel.clock.advance(4.9)
    assert not channel.closed
    channel.clock.advance(0.1)
    assert channel.closed and channel.output() == b""

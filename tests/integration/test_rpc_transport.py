"""The devnet's two RPC ports against hostile clients (issue 14 #7, #9, #10, #11): the control RPC (XML-RPC)
and the bitbayd-compatible JSON-RPC stand on one hardened transport (node_hooks/devnode/transport.py), and
every test here runs against each: raw sockets against a real ControlRPCServer or BitbaydRPCServer, and
SIGTERM of a real `halo-exchange devnet` process serving both."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import signal
import socket
import threading
import time
import xmlrpc.client
from typing import Callable

import pytest

from node_hooks.devnode.bitbayd_rpc import BitbaydRPCServer
from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import ControlRPCServer
from tests.framework import free_port, running_devnet

USER, PASSWORD = "tester", "secret"
CREDENTIALS = f"{USER}:{PASSWORD}"
AUTH = "Authorization: Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


@dataclasses.dataclass(frozen=True)
class Port:
    """One RPC port: how to serve it, a getblockcount call and what its answer of 0 looks like, its body limit
    and whether it keeps a connection open after an answer (HTTP/1.1 keep-alive: bitbayd's does)."""

    name: str
    serve: Callable[[DevNode], ControlRPCServer | BitbaydRPCServer]
    call: bytes
    answer: bytes
    max_body: int
    keep_alive: bool


PORTS = {
    "control": Port("control", lambda node: ControlRPCServer(node, port=0, credentials=CREDENTIALS),
                    b"<?xml version='1.0'?><methodCall><methodName>getblockcount</methodName><params></params>"
                    b"</methodCall>", b"<int>0</int>", 64 * 1024, keep_alive=False),
    "bitbayd": Port("bitbayd", lambda node: BitbaydRPCServer(node, port=0, user=USER, password=PASSWORD),
                    b'{"method": "getblockcount", "params": [], "id": 1}', b'"result": 0', 4 * 1024 * 1024,
                    keep_alive=True),
}


@pytest.fixture(params=sorted(PORTS))
def port(request) -> Port:
    return PORTS[request.param]


@pytest.fixture
def node(tmp_path):
    node = DevNode(tmp_path / "node")
    yield node
    node.close()


def _start(node, port: Port, **limits) -> ControlRPCServer | BitbaydRPCServer:
    server = port.serve(node)
    for name, value in limits.items():
        setattr(server._server, name, value)
    if "max_connections" in limits:
        server._server._slots = threading.BoundedSemaphore(limits["max_connections"])
    server.start()
    return server


@pytest.fixture
def server(node, port):
    server = _start(node, port)
    yield server
    server.close()


def _connect(server, timeout: float = 10) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def _exchange(server, data: bytes, *, timeout: float = 10) -> bytes:
    """Send ``data``, read the answer until the server closes (or the timeout)."""
    with _connect(server, timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def _answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) from a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def _status(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), answer[:200]
    return int(line.split()[1])


def _post(headers: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join(["POST / HTTP/1.1", "Host: x", AUTH, *headers]) + "\r\n\r\n"
    return head.encode() + body


def _call(port: Port, *headers: str) -> bytes:
    return _post([f"Content-Length: {len(port.call)}", *headers], port.call)


def test_a_good_request_still_answers(server, port) -> None:
    answer = _exchange(server, _call(port, "Connection: close"))
    assert _status(answer) == 200 and port.answer in answer


def test_good_requests_share_a_keep_alive_connection(node) -> None:
    """Each request on a kept-alive connection has a deadline of its own: the second is answered too."""
    port = PORTS["bitbayd"]
    server = _start(node, port)
    try:
        with _connect(server) as sock:
            for _ in range(2):
                sock.sendall(_call(port))
                answer = _answer(sock)
                assert _status(answer) == 200 and port.answer in answer, answer
    finally:
        server.close()


@pytest.mark.parametrize("length", ["-1", "-2", "+5", " 1e3", "0x10", "abc", "١٢", "99999999999999999999999",
                                    "5, 6"])
def test_a_negative_or_non_numeric_length_is_400_at_once(server, length) -> None:
    """#7: no length header escapes the limit: -1 used to read 32 MiB to the end and answer 500."""
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(_post([f"Content-Length: {length}"], b"x" * 1024))
        answer = sock.recv(65536)
    assert _status(answer) == 400 and time.monotonic() - started < 5


def test_a_length_over_the_limit_is_413(server, port) -> None:
    assert _status(_exchange(server, _post([f"Content-Length: {port.max_body + 1}"]))) == 413
    answer = _exchange(server, _post([f"Content-Length: {port.max_body}"], b"x" * port.max_body))
    assert _status(answer) not in (400, 411, 413, 415), answer[:200]  # at the limit: read and answered


def test_conflicting_lengths_are_400(server) -> None:
    assert _status(_exchange(server, _post(["Content-Length: 5", "Content-Length: 6"], b"x" * 6))) == 400


def test_a_missing_length_is_411(server) -> None:
    assert _status(_exchange(server, _post([]))) == 411


@pytest.mark.parametrize("request_line", [b"POST / HTTP/2.0", b"POST / HTTP/3", b"\x16\x03\x01\x02\x00", b"GARBAGE",
                                          b"POST / HTTP/x.y", b"POST /", b"GET /"])
def test_bad_request_lines_get_a_status_line(server, request_line) -> None:
    """#9: HTTP/2.0 and garbage used to get a bare HTML page (the stdlib's HTTP/0.9 answer)."""
    answer = _exchange(server, request_line + b"\r\n" + AUTH.encode() + b"\r\n\r\n")
    status = _status(answer)
    assert status in (400, 405, 501, 505)  # GET: the control RPC has no GET (501), the bitbayd RPC says 405
    if request_line.startswith(b"POST / HTTP/2") or request_line == b"POST / HTTP/3":
        assert status == 505


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip", "identity, gzip"])
def test_compressed_bodies_are_415(server, encoding) -> None:
    """#10: a 20 KB gzip body used to be inflated to 20 MiB before the limit applied."""
    body = gzip.compress(b"\0" * (20 * 1024 * 1024))
    assert len(body) < 65536
    answer = _exchange(server, _post([f"Content-Length: {len(body)}", f"Content-Encoding: {encoding}"], body))
    assert _status(answer) == 415


def test_chunked_bodies_are_refused(server) -> None:
    assert _status(_exchange(server, _post(["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"))) == 411


def test_a_bitbayd_refusal_says_why_in_plain_text(node) -> None:
    """The bitbayd port's transport refusals carry their reason as a line of text (what a follower shows when
    it gets HTTP that is not JSON), not an HTML page."""
    server = _start(node, PORTS["bitbayd"])
    try:
        answer = _exchange(server, _post([f"Content-Length: {4 * 1024 * 1024 + 1}"]))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert _status(answer) == 413 and b"content-type: text/plain" in head.lower()
        assert body == b"request body over 4194304 bytes\n"
        assert b"connection: close" in head.lower()
    finally:
        server.close()


def test_a_held_partial_request_times_out_with_408(node, port) -> None:
    """#11: a partial request is answered 408 and closed at the request timeout, even dribbled a byte at a
    time; an idle connection is closed quietly."""
    server = _start(node, port, request_timeout=1.0)
    try:
        started = time.monotonic()
        assert _status(_exchange(server, b"POST / HTTP/1.1\r\nContent-Le")) == 408
        assert 0.9 < time.monotonic() - started < 5
        with _connect(server) as sock:  # a byte every 0.3 s: the deadline is for the whole request
            started = time.monotonic()
            answer = b""
            try:
                for byte in _post(["Content-Length: 200"]):
                    sock.sendall(bytes([byte]))
                    time.sleep(0.3)
            except OSError:
                pass
            answer = sock.recv(65536)
            assert _status(answer) == 408 and time.monotonic() - started < 3
        assert _exchange(server, b"") == b""  # idle: closed without an answer
        if not port.keep_alive:
            return
        with _connect(server) as sock:  # a kept-alive connection left idle after its answer: closed quietly
            sock.sendall(_call(port))
            assert _status(_answer(sock)) == 200
            started = time.monotonic()
            assert sock.recv(65536) == b"" and 0.5 < time.monotonic() - started < 3
    finally:
        server.close()


def test_connections_beyond_the_limit_are_refused(node, port) -> None:
    """#11: held connections cannot take a thread each without end: beyond the limit they are answered 503."""
    server = _start(node, port, max_connections=4)
    held = [_connect(server) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Le")
        time.sleep(0.2)
        threads = threading.active_count()
        assert _status(_exchange(server, _call(port))) == 503
        held.pop().close()
        time.sleep(0.2)
        answer = _exchange(server, _call(port, "Connection: close"))
        assert _status(answer) == 200 and threading.active_count() <= threads
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_close_is_quick_whatever_clients_hold(node, port) -> None:
    """#11: close() used to wait for every held connection; now it ends within the grace of 1 s."""
    server = _start(node, port)
    held = [_connect(server) for _ in range(20)]
    for sock in held:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Le")
    idle = _connect(server)  # a kept-alive connection between two requests, or one that sent nothing yet
    if port.keep_alive:
        idle.sendall(_call(port))
        assert _status(_answer(idle)) == 200
    time.sleep(0.2)
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    assert idle.recv(65536) == b""  # cut
    for sock in [*held, idle]:
        sock.close()


def test_stop_answers_its_caller_and_close_is_quick(node) -> None:
    server = _start(node, PORTS["control"])
    held = _connect(server)
    held.sendall(b"POST / HTTP/1.1\r\nContent-Le")
    rpc = xmlrpc.client.ServerProxy(server.auth_url)
    assert rpc.stop() is True
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    held.close()


@pytest.mark.parametrize("how", ["sigterm", "stop"])
def test_the_devnet_process_ends_within_2_s_whatever_clients_hold(tmp_path, how, port) -> None:
    """#11: after SIGTERM or stop(), the process used to stay up until a client holding a partial request left;
    the clients hold connections to the control port or to the bitbayd port."""
    control_port, bitbayd_port = free_port(), free_port()
    extra = ("--bitbayd-rpc-port", str(bitbayd_port), "--bitbayd-rpc-user", USER, "--bitbayd-rpc-password", PASSWORD)
    held_port = control_port if port.name == "control" else bitbayd_port
    with running_devnet(tmp_path / "devnet", control_port, extra_args=extra) as (process, rpc):
        held = []
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", held_port), timeout=10)
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Le")
            held.append(sock)
        time.sleep(0.3)
        started = time.monotonic()
        if how == "sigterm":
            process.send_signal(signal.SIGTERM)
        else:
            assert rpc.stop() is True
        try:
            code = process.wait(timeout=10)
        finally:
            for sock in held:
                sock.close()
        assert time.monotonic() - started < 2, "the process outlived its clients' patience"
        assert code == 0

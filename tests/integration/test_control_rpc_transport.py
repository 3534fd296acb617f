"""The devnet control RPC's HTTP transport against hostile clients (issue 14 #7, #9, #10, #11): raw sockets
against a real ControlRPCServer, and SIGTERM of a real `halo-exchange devnet` process."""

from __future__ import annotations

import base64
import gzip
import signal
import socket
import threading
import time
import xmlrpc.client

import pytest

from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import ControlRPCServer
from tests.framework import free_port, running_devnet

CREDENTIALS = "tester:secret"
AUTH = "Authorization: Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
CALL = b"<?xml version='1.0'?><methodCall><methodName>getblockcount</methodName><params></params></methodCall>"


@pytest.fixture
def node(tmp_path):
    node = DevNode(tmp_path / "node")
    yield node
    node.close()


def _start(node, **limits) -> ControlRPCServer:
    server = ControlRPCServer(node, port=0, credentials=CREDENTIALS)
    for name, value in limits.items():
        setattr(server._server, name, value)
    if "max_connections" in limits:
        server._server._slots = threading.BoundedSemaphore(limits["max_connections"])
    server.start()
    return server


@pytest.fixture
def server(node):
    server = _start(node)
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


def _status(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), answer[:200]
    return int(line.split()[1])


def _post(headers: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join(["POST / HTTP/1.1", "Host: x", AUTH, *headers]) + "\r\n\r\n"
    return head.encode() + body


def test_a_good_request_still_answers(server) -> None:
    answer = _exchange(server, _post([f"Content-Length: {len(CALL)}", "Connection: close"], CALL))
    assert _status(answer) == 200 and b"<int>0</int>" in answer


@pytest.mark.parametrize("length", ["-1", "-2", "+5", " 1e3", "0x10", "abc", "١٢", "99999999999999999999999",
                                    "5, 6"])
def test_a_negative_or_non_numeric_length_is_400_at_once(server, length) -> None:
    """#7: no length header escapes the limit: -1 used to read 32 MiB to the end and answer 500."""
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(_post([f"Content-Length: {length}"], b"x" * 1024))
        answer = sock.recv(65536)
    assert _status(answer) == 400 and time.monotonic() - started < 5


def test_a_length_over_the_limit_is_413(server) -> None:
    assert _status(_exchange(server, _post(["Content-Length: 65537"]))) == 413


def test_conflicting_lengths_are_400(server) -> None:
    assert _status(_exchange(server, _post(["Content-Length: 5", "Content-Length: 6"], b"x" * 6))) == 400


@pytest.mark.parametrize("request_line", [b"POST / HTTP/2.0", b"POST / HTTP/3", b"\x16\x03\x01\x02\x00", b"GARBAGE",
                                          b"POST / HTTP/x.y", b"POST /", b"GET /"])
def test_bad_request_lines_get_a_status_line(server, request_line) -> None:
    """#9: HTTP/2.0 and garbage used to get a bare HTML page (the stdlib's HTTP/0.9 answer)."""
    answer = _exchange(server, request_line + b"\r\n" + AUTH.encode() + b"\r\n\r\n")
    status = _status(answer)
    assert status in (400, 501, 505)
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


def test_a_held_partial_request_times_out_with_408(node) -> None:
    """#11: a partial request is answered 408 and closed at the request timeout, even dribbled a byte at a
    time; an idle connection is closed quietly."""
    server = _start(node, request_timeout=1.0)
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
    finally:
        server.close()


def test_connections_beyond_the_limit_are_refused(node) -> None:
    """#11: held connections cannot take a thread each without end: beyond the limit they are answered 503."""
    server = _start(node, max_connections=4)
    held = [_connect(server) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Le")
        time.sleep(0.2)
        threads = threading.active_count()
        assert _status(_exchange(server, _post([f"Content-Length: {len(CALL)}"], CALL))) == 503
        held.pop().close()
        time.sleep(0.2)
        answer = _exchange(server, _post([f"Content-Length: {len(CALL)}", "Connection: close"], CALL))
        assert _status(answer) == 200 and threading.active_count() <= threads
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_close_is_quick_whatever_clients_hold(node) -> None:
    """#11: close() used to wait for every held connection; now it ends within the grace of 1 s."""
    server = _start(node)
    held = [_connect(server) for _ in range(20)]
    for sock in held:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Le")
    time.sleep(0.2)
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    for sock in held:
        sock.close()


def test_stop_answers_its_caller_and_close_is_quick(node) -> None:
    server = _start(node)
    held = _connect(server)
    held.sendall(b"POST / HTTP/1.1\r\nContent-Le")
    rpc = xmlrpc.client.ServerProxy(server.auth_url)
    assert rpc.stop() is True
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    held.close()


@pytest.mark.parametrize("how", ["sigterm", "stop"])
def test_the_devnet_process_ends_within_2_s_whatever_clients_hold(tmp_path, how) -> None:
    """#11: after SIGTERM or stop(), the process used to stay up until a client holding a partial request left."""
    port = free_port()
    with running_devnet(tmp_path / "devnet", port) as (process, rpc):
        held = []
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
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

"""The operator channel (halo_exchange/operator.py): a real Unix socket in a temporary dir, served on the real
reactor thread, asked with the module's own client and with raw sockets."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from halo_exchange.errors import OperatorError, OperatorRefused, OperatorUnreachable, UnknownOperatorCommand
from halo_exchange.operator import MAX_REQUEST, UNIX_PATH_MAX, OperatorServer, ask
from halo_exchange.service import call_in_reactor


def _serve(path: Path, **options) -> OperatorServer:
    """A server on ``path`` with an ``echo`` command and a ``later`` command answering through a Deferred."""
    server = OperatorServer(path, **options)
    server.register("echo", lambda args: {"you said": args})

    def later(args: dict) -> Deferred:
        answer: Deferred = Deferred()
        reactor.callLater(0.05, answer.callback, args.get("n", 0) + 1)
        return answer

    server.register("later", later)
    call_in_reactor(server.start)
    return server


def _raw(path: Path, data: bytes) -> dict:
    """Send ``data`` on a plain socket and read the one answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(data)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            answer += chunk
    return json.loads(answer)


def test_a_command_is_answered_and_the_socket_is_the_operators_alone(tmp_path, reactor_thread) -> None:
    """A registered command answers its result (a Deferred's too); the socket file is 0600 and gone after stop,
    after which the client says nobody is there."""
    path = tmp_path / "exchange.sock"
    server = _serve(path)
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert ask(path, "echo", {"a": 1}) == {"you said": {"a": 1}}
        assert ask(path, "later", {"n": 41}) == 42
        assert ask(path, "echo") == {"you said": {}}
    finally:
        call_in_reactor(server.stop)
    assert not path.exists()
    with pytest.raises(OperatorUnreachable, match="no operator socket"):
        ask(path, "echo")


def test_a_data_dir_deeper_than_a_unix_socket_path_still_works(tmp_path, reactor_thread) -> None:
    """A socket path past the 107 bytes of sun_path is served and reached (through /proc/self/fd)."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "exchange.sock"
    assert len(os.fsencode(path)) > UNIX_PATH_MAX
    server = _serve(path)
    try:
        assert path.exists() and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert ask(path, "echo", {"deep": True}) == {"you said": {"deep": True}}
    finally:
        call_in_reactor(server.stop)
    assert not path.exists()


def test_a_stale_socket_is_replaced_but_a_live_one_or_a_plain_file_is_refused(tmp_path, reactor_thread) -> None:
    """A socket file left by a killed run (nobody answers) is removed and bound again; one a live process
    answers on is not touched, nor a file that is not a socket."""
    path = tmp_path / "exchange.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, as after SIGKILL
    with pytest.raises(OperatorUnreachable, match="nobody answers"):
        ask(path, "echo")
    server = _serve(path)
    try:
        assert ask(path, "echo") == {"you said": {}}
        second = OperatorServer(path)
        with pytest.raises(OperatorError, match="another process answers"):
            call_in_reactor(second.start)
        assert ask(path, "echo") == {"you said": {}}  # the first one still serves
    finally:
        call_in_reactor(server.stop)

    plain = tmp_path / "not-a-socket"
    plain.write_text("keep me")
    with pytest.raises(OperatorError, match="is not a socket"):
        call_in_reactor(OperatorServer(plain).start)
    assert plain.read_text() == "keep me"


def test_bad_requests_get_an_error_line_never_a_traceback(tmp_path, reactor_thread, caplog) -> None:
    """Oversized, not JSON, not a request, an unknown command, a handler that fails: each is one error answer;
    an unexpected failure is logged with its traceback and answered only "internal error"."""
    path = tmp_path / "exchange.sock"
    server = _serve(path)

    def broken(args: dict) -> None:
        raise RuntimeError("secret detail")

    def refusing(args: dict) -> None:
        raise OperatorRefused("no such record")

    server.register("broken", broken)
    server.register("refusing", refusing)
    try:
        answer = _raw(path, b"x" * (MAX_REQUEST + 10))
        assert answer["ok"] is False and "request too large" in answer["error"]
        assert _raw(path, b"{nope\n") == {"ok": False, "error": "bad request: not JSON"}
        assert _raw(path, b'["status"]\n')["error"].startswith("bad request")
        assert _raw(path, b'{"command": "echo", "args": 3}\n')["error"].startswith("bad request")
        with pytest.raises(UnknownOperatorCommand, match="'nothing'.*broken, echo, later, refusing"):
            ask(path, "nothing")
        with pytest.raises(OperatorRefused, match="no such record"):
            ask(path, "refusing")
        with caplog.at_level(logging.ERROR, logger="halo_exchange.operator"):
            with pytest.raises(OperatorRefused) as failed:
                ask(path, "broken")
        assert str(failed.value) == "internal error"
        assert "secret detail" in caplog.text and "Traceback" in caplog.text
        assert ask(path, "echo") == {"you said": {}}  # still serving
    finally:
        call_in_reactor(server.stop)


def test_a_client_that_closes_its_sending_side_still_gets_its_answer(tmp_path, reactor_thread) -> None:
    """`printf '{"command": ...}' | nc -U SOCKET`: the request, no newline, then EOF on the client's side; the
    answer comes all the same. A connection closed with nothing sent is simply closed."""
    path = tmp_path / "exchange.sock"
    server = _serve(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(path))
            client.sendall(b'{"command": "echo", "args": {"x": 1}}')
            client.shutdown(socket.SHUT_WR)
            assert json.loads(client.makefile("rb").readline()) == {"ok": True, "result": {"you said": {"x": 1}}}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(path))
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b""
        assert ask(path, "echo") == {"you said": {}}
    finally:
        call_in_reactor(server.stop)


def test_a_client_that_never_finishes_its_request_is_timed_out(tmp_path, reactor_thread) -> None:
    """A connection that sends half a request gets an error answer after the timeout, and is closed."""
    path = tmp_path / "exchange.sock"
    server = _serve(path, timeout=0.3)
    try:
        answer = _raw(path, b'{"command": "ec')
        assert answer == {"ok": False, "error": "no answer within 0.3 s"}
    finally:
        call_in_reactor(server.stop)


def test_a_command_is_registered_once() -> None:
    """Two features cannot silently take the same command name."""
    server = OperatorServer("/nonexistent/exchange.sock")
    server.register("status", lambda args: {})
    with pytest.raises(ValueError, match="registered already"):
        server.register("status", lambda args: {})

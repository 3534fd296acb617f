"""The operator channel: a local Unix-domain socket the running exchange answers operator commands on.

This module owns the channel, both ends of it: :class:`OperatorServer`, which exchange mode serves on the
Twisted reactor thread at ``<datadir>/exchange.sock`` (or the ``operator_socket`` setting), and :func:`ask`, the
client that ``halo-exchange status`` and other operator tools use from another process. What the commands
answer is their owners' (``status`` is :mod:`halo_exchange.status`); features add theirs with
:meth:`OperatorServer.register`.

Authentication is the filesystem: the socket file is 0600 inside the 0700 data dir, so only the node's user
can connect. Nothing on the channel is a secret and nothing crosses the machine.

Protocol: newline-delimited JSON, one request per connection::

    -> {"command": "status", "args": {}}
    <- {"ok": true, "result": ...}          or  {"ok": false, "error": "text"}

then the server closes. A request longer than :data:`MAX_REQUEST` bytes, or not complete within the timeout,
is answered with an error. A handler that fails unexpectedly is logged with its traceback; the client only
reads "internal error".

AF_UNIX paths are limited to 107 bytes (``sun_path``). A longer socket path is bound and connected through
``/proc/self/fd/<fd of its folder>/<name>`` (Linux), so a deep data dir works as well as a short one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from halo_exchange.errors import (
    HaloExchangeError,
    OperatorError,
    OperatorRefused,
    OperatorUnreachable,
    UnknownOperatorCommand,
)

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024  # bytes of one request line
REQUEST_TIMEOUT = 30.0  # seconds from connecting to the answer (a slow client, or a handler that never answers)
CLIENT_TIMEOUT = 30.0
MAX_RESPONSE = 64 * 1024 * 1024  # bytes the client reads at most: a bigger answer is not the exchange's
UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
UNKNOWN_COMMAND = "unknown command"  # how the answer to a command the server does not know begins
INTERNAL_ERROR = "internal error"

Handler = Callable[[dict[str, Any]], Any]  # args -> a JSON-able result, or a Deferred of one


@contextlib.contextmanager
def _sun_path(path: Path) -> Iterator[str]:
    """The address to bind or connect for ``path``: the path itself when it fits in ``sun_path``, else the same
    file reached through its folder's descriptor in /proc (open only while the caller binds or connects)."""
    if len(os.fsencode(path)) <= UNIX_PATH_MAX:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)  # FileNotFoundError: the callers say what it means
    try:
        short = f"/proc/self/fd/{folder}/{path.name}"
        if len(os.fsencode(short)) > UNIX_PATH_MAX:
            raise OperatorError(f"the operator socket's name {path.name!r} is too long for a Unix socket")
        yield short
    finally:
        os.close(folder)


def _answers(path: Path) -> bool:
    """Whether a live process accepts connections on the socket file ``path`` (a stale file refuses them)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        with _sun_path(path) as address:
            probe.connect(address)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # Busy (a full backlog) or not ours to connect to: either way a live socket that is not to be removed.
        return exc.errno in (errno.EAGAIN, errno.EACCES, errno.EPERM) or isinstance(exc, TimeoutError)
    finally:
        probe.close()


def bind_socket(path: Path) -> socket.socket:
    """A listening, non-blocking Unix socket bound at ``path``, its file 0600. A socket file left by a run that
    did not stop cleanly (nobody answers on it) is replaced; one a live process answers on, or a file that is
    not a socket, is refused with :class:`OperatorError`."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise OperatorError(f"{path} exists and is not a socket: move it away, or set operator_socket")
        if _answers(path):
            raise OperatorError(f"another process answers on the operator socket {path}: set operator_socket")
        os.unlink(path)
        log.info("removed the stale operator socket %s (left by a run that did not stop cleanly)", path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _sun_path(path) as address:
            listener.bind(address)
        # The node's umask (0077) already made it 0700 and the data dir is 0700: this makes the mode exact.
        os.chmod(path, 0o600)
        listener.listen(16)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


@implementer(IHalfCloseableProtocol)
class _Session(LineOnlyReceiver, TimeoutMixin):
    """One connection: one request line, one answer line, then close. A client may close its sending side after
    the request (``nc -U``, ``socat`` at the end of their input): the answer still comes, and a request
    without its final newline counts as complete then."""

    delimiter = b"\n"

    def __init__(self, server: OperatorServer) -> None:
        self._server = server
        self.MAX_LENGTH = server.max_request  # noqa: N815 (LineOnlyReceiver's name)
        self._answered = False
        self._asked = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's hook names)
        self.setTimeout(self._server.timeout)

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        self.setTimeout(None)
        self._answered = True  # a handler that answers after the client left has nobody to tell

    def readConnectionLost(self) -> None:  # noqa: N802 (IHalfCloseableProtocol: the client sent its EOF)
        if self._asked:
            return  # the answer is on its way
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self.lineReceived(rest)
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:  # noqa: N802 (IHalfCloseableProtocol: the client is gone)
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:  # noqa: N802
        self._answer({"ok": False, "error": f"no answer within {self._server.timeout:g} s"})

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802
        self._answer({"ok": False, "error": f"request too large (more than {self.MAX_LENGTH} bytes)"})

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        if self._asked:
            return  # one request per connection; anything after it is ignored
        self._asked = True
        self.transport.pauseProducing()
        try:
            request = json.loads(line)
        except ValueError:
            self._answer({"ok": False, "error": "bad request: not JSON"})
            return
        command = request.get("command") if isinstance(request, dict) else None
        args = request.get("args", {}) if isinstance(request, dict) else None
        if not isinstance(command, str) or not isinstance(args, (dict, type(None))):
            self._answer({"ok": False, "error": 'bad request: expected {"command": NAME, "args": {...}}'})
            return
        handler = self._server.handler(command)
        if handler is None:
            known = ", ".join(self._server.commands)
            self._answer({"ok": False, "error": f"{UNKNOWN_COMMAND} {command!r} (this exchange serves: {known})"})
            return
        done = maybeDeferred(handler, args or {})
        done.addCallbacks(lambda result: self._answer({"ok": True, "result": result}),
                          lambda failure: self._failed(command, failure))
        done.addErrback(lambda failure: log.error("operator command %s: %s", command, failure.getTraceback()))

    def _failed(self, command: str, failure: Failure) -> None:
        if failure.check(HaloExchangeError):  # a refusal the handler means the operator to read
            self._answer({"ok": False, "error": str(failure.value)})
            return
        log.error("operator command %s failed: %s", command, failure.getTraceback())
        self._answer({"ok": False, "error": INTERNAL_ERROR})

    def _answer(self, response: dict[str, Any]) -> None:
        if self._answered:
            return
        self._answered = True
        self.setTimeout(None)
        try:
            line = json.dumps(response, sort_keys=True).encode()
        except (TypeError, ValueError):  # a handler answered what JSON cannot carry: a bug here, not the client's
            log.exception("operator answer cannot be encoded as JSON")
            line = json.dumps({"ok": False, "error": INTERNAL_ERROR}).encode()
        self.transport.write(line + self.delimiter)
        self.transport.loseConnection()


class _SessionFactory(Factory):
    noisy = False  # no "Starting factory" lines: the server logs its socket once

    def __init__(self, server: OperatorServer) -> None:
        self._server = server

    def buildProtocol(self, addr: object) -> _Session:  # noqa: N802 (Twisted's interface name)
        session = _Session(self._server)
        session.factory = self
        return session


class _Listener:
    """The listening socket as a reactor reader: each connection accepted is handed to Twisted as a stream.

    Twisted's own UNIX port is not used: on stop it unlinks the address it was bound at, which for a long path
    is a /proc/self/fd name that no longer points at the data dir (this module removes its own file)."""

    def __init__(self, listener: socket.socket, factory: _SessionFactory) -> None:
        self._socket = listener
        self._factory = factory

    def fileno(self) -> int:
        return self._socket.fileno()

    def logPrefix(self) -> str:  # noqa: N802 (Twisted's interface name)
        return "operator"

    def doRead(self) -> None:  # noqa: N802 (Twisted's interface name)
        from twisted.internet import reactor

        for _ in range(64):  # a burst of connections is taken in turns, not all in one
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the client is dropped, the server stays
                log.warning("operator socket: cannot accept a connection: %s", exc)
                return
            try:
                connection.setblocking(False)
                reactor.adoptStreamConnection(connection.fileno(), socket.AF_UNIX, self._factory)
            finally:
                connection.close()  # Twisted holds its own duplicate

    def connectionLost(self, reason: object) -> None:  # noqa: N802 (Twisted's interface name)
        self.close()

    def close(self) -> None:
        self._socket.close()


class OperatorServer:
    """The operator socket of one exchange, served on the reactor thread; commands registered by name.

    :meth:`register` may be called at any time (before :meth:`start` too); :meth:`start` and :meth:`stop` run on
    the reactor thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = REQUEST_TIMEOUT,
                 max_request: int = MAX_REQUEST) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.max_request = max_request
        self._handlers: dict[str, Handler] = {}
        self._port: Any = None
        self._inode: tuple[int, int] | None = None  # (device, inode) of the socket file this server bound

    def register(self, name: str, handler: Handler) -> None:
        """Serve ``name``: ``handler(args)`` answers a JSON-able result or a Deferred of one, or raises a
        :class:`~halo_exchange.errors.HaloExchangeError` whose message is the answer's error."""
        if name in self._handlers:
            raise ValueError(f"operator command {name!r} is registered already")
        self._handlers[name] = handler

    def handler(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    @property
    def commands(self) -> list[str]:
        return sorted(self._handlers)

    @property
    def listening(self) -> bool:
        return self._port is not None

    def start(self) -> None:
        """Bind the socket and serve it (:func:`bind_socket` says what is refused)."""
        from twisted.internet import reactor

        try:
            listener = bind_socket(self.path)
        except OSError as exc:  # a folder that is not there or not writable: say which option moves it
            raise OperatorError(f"cannot serve the operator socket {self.path} ({exc}): set operator_socket") from exc
        info = os.stat(self.path)
        self._inode = (info.st_dev, info.st_ino)
        self._port = _Listener(listener, _SessionFactory(self))
        reactor.addReader(self._port)
        log.info("operator socket on %s", self.path)

    def stop(self) -> None:
        """Stop serving and remove the socket file (only if it is still the one this server bound); sessions
        already open finish."""
        from twisted.internet import reactor

        if self._port is None:
            return
        reactor.removeReader(self._port)
        self._port.close()
        self._port = None
        self._remove_file()

    def _remove_file(self) -> None:
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the operator socket %s: %s", self.path, exc)
        self._inode = None


def ask(socket_path: str | os.PathLike[str], command: str, args: dict[str, Any] | None = None,
        timeout: float = CLIENT_TIMEOUT) -> Any:
    """Send ``command`` to the exchange on ``socket_path`` and return its result.

    Raises :class:`~halo_exchange.errors.OperatorUnreachable` when no socket is there or nobody answers (in
    time), :class:`~halo_exchange.errors.UnknownOperatorCommand` for a command the exchange does not serve, and
    :class:`~halo_exchange.errors.OperatorRefused` for any other error it answers.
    """
    path = Path(socket_path)
    if not path.exists():
        raise OperatorUnreachable(f"no operator socket at {path} (is the node running on this data dir?)")
    request = json.dumps({"command": command, "args": args or {}}).encode() + b"\n"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        try:
            with _sun_path(path) as address:
                client.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            raise OperatorUnreachable(f"nobody answers on {path} (the node is not running; the socket is left "
                                      "from a run that did not stop cleanly)") from None
        except PermissionError:
            raise OperatorUnreachable(f"not allowed to connect to {path}: run this as the node's user") from None
        except OSError as exc:
            raise OperatorUnreachable(f"cannot connect to {path}: {exc}") from None
        try:
            client.sendall(request)
            line = _read_line(client)
        except TimeoutError:
            raise OperatorUnreachable(f"the exchange on {path} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise OperatorUnreachable(f"the exchange on {path} closed the connection: {exc}") from None
    finally:
        client.close()
    try:
        response = json.loads(line)
        ok, result, error = response["ok"], response.get("result"), response.get("error")
    except (ValueError, TypeError, KeyError):
        raise OperatorRefused(f"the exchange on {path} answered something that is not an answer") from None
    if ok is True:
        return result
    error = str(error)
    if error.startswith(UNKNOWN_COMMAND):
        raise UnknownOperatorCommand(error)
    raise OperatorRefused(error)


def _read_line(client: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_RESPONSE:
            break
    if not chunks:
        raise ConnectionResetError("no answer")
    return b"".join(chunks).split(b"\n", 1)[0]

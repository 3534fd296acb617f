"""A JSON-RPC 1.0 client for bitbayd (../shared/reference/bitbayd-rpc.md), on the stdlib's ``http.client``.

One :class:`BitbaydRPC` holds one keep-alive HTTP connection and is used by one thread at a time (the
follower gives each of its threads its own). Requests are ``POST /`` with HTTP basic auth, from the URL's
``user:password``, explicit credentials, or a cookie file (``user:password`` on its first line, re-read
when bitbayd refuses it, as a restarted daemon writes a new one). :meth:`BitbaydRPC.batch` sends a JSON
array of requests in one round trip.

Failures are typed (``node_hooks.follower.errors``): no answer at all is :class:`UpstreamUnreachable`,
refused credentials :class:`UpstreamAuthError`, an answer that is not JSON-RPC
:class:`UpstreamProtocolError`, and an error answer :class:`RPCError` with bitbayd's code and message.
A connection the server closed while idle is reopened once, transparently.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

from node_hooks.follower.errors import (
    RPCError,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamUnreachable,
)

DEFAULT_PORT = 19915  # bitbayd mainnet; testnet is 21915
DEFAULT_TIMEOUT = 30.0
MAX_ANSWER = 256 * 1024 * 1024  # an answer larger than this is refused (a batch of big blocks stays far below)

# Errors of a reused keep-alive connection that the server closed in the meantime: reconnect once.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


def _describe_url(url: str) -> str:
    """The URL without its credentials, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class BitbaydRPC:
    """JSON-RPC calls to one bitbayd; not thread-safe (one per thread)."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bitbayd URL {_describe_url(url)!r}: expected http://[user:password@]host[:port]/")
        self.url = _describe_url(parts.geturl())
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_PORT
        self._path = parts.path or "/"
        self._user = user if user is not None else (unquote(parts.username) if parts.username else None)
        self._password = password if password is not None else (unquote(parts.password) if parts.password else None)
        self._cookie_file = Path(cookie_file) if cookie_file else None
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)
        self._auth: str | None = None
        # Cumulative, for the follower's status: HTTP round trips made and the seconds spent in them (request
        # sent, answer read; JSON encoding and decoding not included).
        self.round_trips = 0
        self.round_trip_seconds = 0.0

    # -- calls ----------------------------------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """One call; its result, or RPCError with bitbayd's code and message."""
        request_id = next(self._ids)
        answer = self._post({"method": method, "params": list(params), "id": request_id})
        if not isinstance(answer, dict):
            raise UpstreamProtocolError(f"{method}: the answer is not a JSON-RPC object")
        return self._result(answer, method)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, errors_as_values: bool = False) -> list[Any]:
        """Several calls in one request (a JSON array), results in the order of ``calls``.

        An error answer raises its RPCError, or with ``errors_as_values`` takes its place in the list."""
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        requests = [{"method": m, "params": list(p), "id": first + i} for i, (m, p) in enumerate(calls)]
        answer = self._post(requests)
        if not isinstance(answer, list):
            if isinstance(answer, dict) and answer.get("error"):  # a server that refused the whole batch
                self._result(answer, "batch")
            raise UpstreamProtocolError("batch: the answer is not a JSON array")
        by_id: dict[int, dict] = {}
        for item in answer:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise UpstreamProtocolError("batch: an answer without an integer id")
            by_id[item["id"]] = item
        results = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first + i)
            if item is None:
                raise UpstreamProtocolError(f"batch: no answer to {method} (id {first + i})")
            try:
                results.append(self._result(item, method))
            except RPCError as exc:
                if not errors_as_values:
                    raise
                results.append(exc)
        return results

    @staticmethod
    def _result(answer: dict, method: str) -> Any:
        error = answer.get("error")
        if error is not None:
            if isinstance(error, dict) and isinstance(error.get("code"), int):
                raise RPCError(error["code"], str(error.get("message", "")), method)
            raise UpstreamProtocolError(f"{method}: malformed error {error!r}")
        if "result" not in answer:
            raise UpstreamProtocolError(f"{method}: an answer with neither result nor error")
        return answer["result"]

    # -- transport -------------------------------------------------------------------------------------

    def _authorization(self, reread: bool = False) -> str | None:
        if self._auth is not None and not reread:
            return self._auth
        user, password = self._user, self._password
        if self._cookie_file is not None and user is None:
            try:
                line = self._cookie_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError, UnicodeDecodeError) as exc:
                raise UpstreamAuthError(f"cannot read the cookie file {self._cookie_file}: {exc}") from None
            user, _, password = line.partition(":")
        if user is None:
            self._auth = None
        else:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
            self._auth = f"Basic {token}"
        return self._auth

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode("utf-8")
        for attempt in (1, 2):
            reused = self._conn is not None and self._conn.sock is not None
            started = time.perf_counter()
            try:
                status, data = self._exchange(body, reread_cookie=attempt == 2)
            except _STALE as exc:
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed our idle keep-alive connection: once more, afresh
                raise UpstreamUnreachable(f"bitbayd at {self.url}: {exc or type(exc).__name__}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise UpstreamUnreachable(f"bitbayd at {self.url}: {exc or type(exc).__name__}") from None
            finally:
                self.round_trips += 1
                self.round_trip_seconds += time.perf_counter() - started
            if status in (401, 403):
                if attempt == 1 and self._cookie_file is not None:
                    continue  # a restarted bitbayd wrote a new cookie
                raise UpstreamAuthError(f"bitbayd at {self.url} refused the credentials (HTTP {status})")
            try:
                return json.loads(data)
            except ValueError:
                raise UpstreamProtocolError(
                    f"bitbayd at {self.url} answered HTTP {status} that is not JSON: {data[:80]!r}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, body: bytes, *, reread_cookie: bool) -> tuple[int, bytes]:
        conn = self._connection()
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        auth = self._authorization(reread_cookie)
        if auth is not None:
            headers["Authorization"] = auth
        conn.request("POST", self._path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_ANSWER + 1)
        if len(data) > MAX_ANSWER:
            self.close()
            raise UpstreamProtocolError(f"bitbayd at {self.url}: answer larger than {MAX_ANSWER} bytes")
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """From another thread: end a call in progress at once (it raises UpstreamUnreachable)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

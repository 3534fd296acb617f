"""Client for a peg oracle: an executable that answers JSON requests, one per line (docs/conformance.md).

The executable is not part of this repository (it is built from bitbay-core's sources, which are not
committed here); its path comes from ``PEG_ORACLE``. A hung or crashed oracle is restarted and the request
is answered ``{"hang": true}`` or ``{"crash": ...}``, which the runner counts as excluded, not as a mismatch.
"""

from __future__ import annotations

import json
import os
import select
import subprocess


def _die_with_parent() -> None:
    """In the child: ask Linux to kill the oracle when the runner dies (an oracle stuck in a C++ endless loop
    would not notice its closed stdin)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: nothing to do
        pass


class OracleError(RuntimeError):
    """The oracle could not be started or speaks something other than the protocol."""


class Oracle:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        if not os.access(path, os.X_OK):
            raise OracleError(f"peg oracle {path!r} is not an executable file")
        self.path = path
        self.timeout = timeout
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._buf = b""
        self._next_id = 0
        self._start()
        if not self.call({"op": "ping"}).get("pong"):
            raise OracleError(f"peg oracle {path!r} does not answer ping")

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
            preexec_fn=_die_with_parent,
        )
        self._buf = b""

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._stop()
            self._proc = None

    def _readline(self, timeout: float) -> bytes | None:
        """The next answer line; None when the oracle stays silent for ``timeout`` seconds (a long answer that
        keeps arriving is waited for: a decoded return address can be megabytes)."""
        fd = self._proc.stdout.fileno()
        chunks = [self._buf]
        while b"\n" not in chunks[-1]:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                self._buf = b"".join(chunks)
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
        self._buf = b"".join(chunks)
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, request: dict, timeout: float | None = None) -> dict:
        """One request, one answer (``timeout`` overrides the default). ``seq`` is added and removed here."""
        self._next_id += 1
        msg = dict(request, seq=self._next_id)
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            self._proc.stdin.write(data)
            line = self._readline(self.timeout if timeout is None else timeout)
        except (BrokenPipeError, EOFError):
            code = self._proc.wait()
            self.restarts += 1
            self._start()
            return {"crash": f"oracle exited with {code}"}
        if line is None:
            self._stop()
            self.restarts += 1
            self._start()
            return {"hang": True}
        answer = json.loads(line)
        if answer.pop("seq", None) != self._next_id:
            raise OracleError(f"answer out of order: {line[:200]!r}")
        return answer

"""`halo-exchange devnet` as an operator runs it: a real process, driven over its control RPC, stopped and
restarted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns a true value (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (ConnectionError, OSError, xmlrpc.client.ProtocolError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def _start(datadir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_operator_session_votes_move_the_supply_then_stop_and_resume(tmp_path) -> None:
    """Generate deflate votes over RPC, watch the supply rise three cycles later, stop(), restart, resume."""
    port = _free_port()
    process = _start(tmp_path / "devnet", port)
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        wait_until(lambda: node.getblockcount() == 0)
        interval = node.getpeginfo()["interval"]
        node.generate(interval - 1, "deflate")
        node.generate(2 * interval, "nochange")
        assert node.getpeginfo()["peg"] == 0 and node.getpeginfo()["pegnext"] > 0
        node.generate(interval, "nochange")
        supply = node.getpeginfo()["peg"]
        assert supply == 3
        height = node.getblockcount()
        assert node.stop() is True
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr

    process = _start(tmp_path / "devnet", port)
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        assert wait_until(lambda: node.getblockcount() == height)
        assert node.getpeginfo()["peg"] == supply
        node.stop()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_stops_the_node_cleanly(tmp_path) -> None:
    """SIGTERM (what systemd and Ctrl-C's cousin send) stops the node with exit code 0 and its DB closed."""
    port = _free_port()
    process = _start(tmp_path / "devnet", port)
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        wait_until(lambda: node.getblockcount() == 0)
        node.generate(3)
        process.terminate()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The DB was closed cleanly: it opens again and holds the three blocks.
    from node_hooks.devnode.node import DevNode

    reopened = DevNode(tmp_path / "devnet")
    try:
        assert reopened.block_count() == 3
    finally:
        reopened.close()

"""`halo-exchange devnet` as an operator runs it: a real process, driven over its control RPC, stopped and
restarted."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Iterator

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from node_hooks.devnode.node import DevNode

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


@contextlib.contextmanager
def running_devnet(datadir: Path, port: int, api_port: int | None = None,
                   ) -> Iterator[tuple[subprocess.Popen, xmlrpc.client.ServerProxy]]:
    """A `halo-exchange devnet` process with its control RPC answering; killed if the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(port),
         "--api-port", str(api_port or _free_port())],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        wait_until(lambda: node.getblockcount() >= 0)
        yield process, node
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_operator_session_votes_move_the_supply_then_stop_and_resume(tmp_path) -> None:
    """Generate deflate votes over RPC, watch the supply rise three cycles later, stop(), restart, resume."""
    port = _free_port()
    with running_devnet(tmp_path / "devnet", port) as (process, node):
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
        assert "Traceback" not in process.stderr.read()

    with running_devnet(tmp_path / "devnet", port) as (process, node):
        assert node.getblockcount() == height and node.getpeginfo()["peg"] == supply
        node.stop()
        assert process.wait(timeout=5) == 0


def test_sigterm_stops_the_node_cleanly(tmp_path) -> None:
    """SIGTERM (what systemd sends) stops the node with exit code 0 and its DB closed."""
    with running_devnet(tmp_path / "devnet", _free_port()) as (process, node):
        node.generate(3)
        process.terminate()
        assert process.wait(timeout=5) == 0
    # The DB was closed cleanly: it opens again and holds the three blocks.
    reopened = DevNode(tmp_path / "devnet")
    try:
        assert reopened.block_count() == 3
    finally:
        reopened.close()


def test_api_shutdown_stops_the_process_and_everything_answered_survives(tmp_path) -> None:
    """ShutDown over the exchange API answers True, the node process exits 0 within 5 s, and after a restart
    the password, the deposit and the trades answered before are all there."""
    port, api_port = _free_port(), _free_port()
    with running_devnet(tmp_path / "devnet", port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.SetPassword("pw", "") is True and api.StartExchange("pw") is True
        wif, _ = api.GenerateDepositAddress("pw")
        address = PrivateKey.from_wif(wif, DEVNET_KEYS).public_key().address(DEVNET_KEYS)
        txid = node.sendtoaddress(address, "3000000000")
        node.generate(1)
        wait_until(lambda: any(key.startswith(txid) for key in api.GetSpendable("", "pw")))
        assert api.Deposit("karen", [txid], "pw") is True
        node.generate(6)
        wait_until(lambda: api.GetBalance("karen", "pw"))
        for _ in range(5):
            assert api.Trade("karen", 20_000_000, "dave", "liquid", "pw") is True
        assert api.ShutDown("pw") is True
        assert process.wait(timeout=5) == 0
        assert "Traceback" not in process.stderr.read()

    with running_devnet(tmp_path / "devnet", port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("pw") == 0)
        assert api.GetCycle("") == "Incorrect Password"
        assert api.GetBalance("dave", "pw") == {"liquid": 100_000_000, "reserve": 0}
        karen = api.GetBalance("karen", "pw")
        assert karen["liquid"] + karen["reserve"] == 3_000_000_000 - 100_000_000
        node.stop()
        assert process.wait(timeout=5) == 0


def test_encrypt_wallet_refuses_while_the_node_runs(tmp_path) -> None:
    """The wallet tool never touches the DB of a running node: it says so and exits 2."""
    with running_devnet(tmp_path / "devnet", _free_port()) as (process, node):
        secret = tmp_path / "passphrase"
        secret.write_text("pw\n")
        result = subprocess.run(
            [sys.executable, "-m", "halo_exchange.cli", "encrypt-wallet", "--datadir", str(tmp_path / "devnet"),
             "--passphrase-file", str(secret)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2 and "is the node running?" in result.stderr
        assert node.getblockcount() >= 0  # the node is unharmed
        node.stop()
        assert process.wait(timeout=5) == 0


def test_example_client_runs_unchanged_against_the_devnet(tmp_path) -> None:
    """contrib/example_client.py (Python 2 client code, only the import changed) runs its whole flow."""
    api_port = _free_port()
    rpc_port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "halo_exchange.cli", "devnet", "--datadir", str(tmp_path / "devnet"),
         "--rpc-port", str(rpc_port), "--api-port", str(api_port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{rpc_port}")
        wait_until(lambda: node.getblockcount() >= 0)
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        result = subprocess.run(
            [sys.executable, str(ROOT / "contrib" / "example_client.py"), f"http://127.0.0.1:{api_port}",
             f"http://127.0.0.1:{rpc_port}"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "Trade karen -> dave: True" in result.stdout
        assert "GetBalance dave: {'liquid': 100000000, 'reserve': 0}" in result.stdout
        node.stop()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""`halo-exchange devnet` as an operator runs it: a real process, driven over its control RPC, stopped and
restarted."""

from __future__ import annotations

import xmlrpc.client

from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import read_cookie
from tests.framework import ROOT, address_of, free_port, run_cli, run_python, running_devnet, wait_until


def test_operator_session_votes_move_the_supply_then_stop_and_resume(tmp_path) -> None:
    """Generate deflate votes over RPC, watch the supply rise three cycles later, stop(), restart, resume."""
    port = free_port()
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
    with running_devnet(tmp_path / "devnet", free_port()) as (process, node):
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
    port, api_port = free_port(), free_port()
    with running_devnet(tmp_path / "devnet", port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.SetPassword("pw", "") is True and api.StartExchange("pw") is True
        wif, _ = api.GenerateDepositAddress("pw")
        address = address_of(wif)
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
    with running_devnet(tmp_path / "devnet", free_port()) as (process, node):
        secret = tmp_path / "passphrase"
        secret.write_text("pw\n")
        result = run_cli("encrypt-wallet", "--datadir", str(tmp_path / "devnet"), "--passphrase-file", str(secret))
        assert result.returncode == 2 and "is the node running?" in result.stderr
        assert node.getblockcount() >= 0  # the node is unharmed
        node.stop()
        assert process.wait(timeout=5) == 0


def test_example_client_runs_unchanged_against_the_devnet(tmp_path) -> None:
    """contrib/example_client.py (Python 2 client code, only the import changed) runs its whole flow, a
    withdrawal paid and cleared included."""
    api_port = free_port()
    rpc_port = free_port()
    with running_devnet(tmp_path / "devnet", rpc_port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        result = run_python(str(ROOT / "contrib" / "example_client.py"), f"http://127.0.0.1:{api_port}",
                            f"http://{read_cookie(tmp_path / 'devnet')}@127.0.0.1:{rpc_port}", timeout=120)
        assert result.returncode == 0, result.stderr
        assert "Trade karen -> dave: True" in result.stdout
        assert "GetBalance dave: {'liquid': 100000000, 'reserve': 0}" in result.stdout
        assert "CheckWithdraw: complete" in result.stdout and "paid 190000000" in result.stdout
        assert "CheckWithdraw clear: complete ID not found" in result.stdout
        assert "GetSettings: {'exchangeaccounts': [" in result.stdout
        node.stop()
        assert process.wait(timeout=5) == 0

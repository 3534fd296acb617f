"""`halo-exchange status` against a running `halo-exchange devnet` process: the figures it shows are the ones the
exchange API answers, in text and JSON; its exit code says healthy (0), degraded (1) or not reachable (2). And the
node's side of the operator socket: a stale one is replaced, one another process serves stops the start."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.operator import ask
from tests.framework import (
    ServiceHarness,
    credit_over_api,
    free_port,
    run_cli,
    running_devnet,
    spawn_python,
    wait_until,
)

PASSPHRASE = "correct horse battery"


def _status(datadir: Path, *flags: str) -> tuple[int, str, str]:
    result = run_cli("status", "--datadir", str(datadir), *flags)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_status_shows_what_the_api_answers_then_not_reachable_once_stopped(tmp_path) -> None:
    """With two users, a deposit, a trade and a queued withdrawal, `status --json` gives the tip, cycle, users,
    book, escrow, deposit and withdrawal counts and API call counts the API itself reports; the text form lays
    the same figures out by section; after a clean stop the socket is gone and status exits 2."""
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        code, out, _ = _status(datadir)
        assert code == 1 and "the exchange is not started: StartExchange(passw, 1) starts it" in out
        assert api.StartExchange("", 1) is True
        credit_over_api(node, api, "karen", 5 * COIN)
        assert api.Trade("karen", COIN, "dave", "liquid", "") is True
        ok, withdraw_id = api.Withdraw("karen", 2 * COIN, node.getnewaddress(), "liquid", "")
        assert ok is True, withdraw_id
        socket_path = datadir / "exchange.sock"
        assert stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o600

        code, out, err = _status(datadir, "--json")
        assert code == 0, (out, err)
        report = json.loads(out)
        exchange_book = api.GetBalance("exchange", "")
        escrow = api.GetBalance("withdraws", "")
        withdrawal_state = api.CheckWithdraw(withdraw_id, 0, "")["status"]
        deposits = api.GetDeposits("", "")
        assert report["node"]["height"] == node.getblockcount()
        assert report["node"]["cycle"] == api.GetCycle("")
        assert report["node"]["blocks_to_next_cycle"] == 20 - report["node"]["height"] % 20
        assert re.fullmatch(r"[0-9a-f]{64}", report["node"]["tip_hash"])
        assert report["exchange"]["state"] == "running" and report["exchange"]["wallet"] == "plain"
        assert report["exchange"]["users"] == 2  # karen and dave; no pseudo account, no escrow
        assert report["exchange"]["last_write"]["batches"] > 0 and report["exchange"]["last_write"]["age_seconds"] < 60
        assert (report["book"]["liquid"], report["book"]["reserve"]) == (exchange_book["liquid"],
                                                                         exchange_book["reserve"])
        assert report["book"]["escrow"] == escrow and escrow["liquid"] + escrow["reserve"] > 0
        assert report["deposits"]["registered"] == len(deposits) == 1
        assert report["withdrawals"][withdrawal_state] == 1 and sum(report["withdrawals"].values()) == 1
        assert report["api"]["address"] == f"127.0.0.1:{api_port}"
        calls = report["api"]["calls"]
        assert (calls["Withdraw"], calls["Trade"], calls["Deposit"], calls["StartExchange"]) == (1, 1, 1, 1)
        assert report["health"] == {"code": 0, "problems": []}

        code, text, _ = _status(datadir)
        assert code == 0
        assert [line for line in text.splitlines() if line and not line.startswith(" ")] == [
            "Node", "Exchange", "Book (satoshis)", "Deposits", "Withdrawals", "API", "healthy"]
        assert re.search(rf"^  height +{report['node']['height']}$", text, re.M)
        assert re.search(r"^  users +2$", text, re.M)
        assert re.search(rf"^  liquid +{exchange_book['liquid']}$", text, re.M)
        assert re.search(rf"^  escrow +liquid {escrow['liquid']}, reserve {escrow['reserve']}$", text, re.M)
        assert re.search(rf"^  address +127\.0\.0\.1:{api_port}$", text, re.M)

        code, text, _ = _status(datadir, "--execs")
        assert code == 0 and "Execs" in text

        node.stop()
        assert process.wait(timeout=30) == 0
    assert not socket_path.exists()
    code, out, err = _status(datadir)
    assert code == 2 and out == ""
    assert f"not reachable: no operator socket at {socket_path}" in err


@pytest.mark.slow
def test_a_locked_wallet_with_a_withdrawal_waiting_is_degraded_and_a_killed_nodes_socket_is_replaced(
        tmp_path) -> None:
    """After encrypt-wallet the restarted exchange is locked; a withdrawal waiting for it makes status exit 1 and
    say why; ExchangePassword makes it healthy again. A SIGKILLed node leaves its socket behind: status says
    nobody answers (exit 2), and the next start replaces it."""
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.StartExchange("", 1) is True
        credit_over_api(node, api, "karen", 5 * COIN)
        payee = node.getnewaddress()
        process.kill()
        process.wait()
    assert (datadir / "exchange.sock").exists()
    code, _, err = _status(datadir)
    assert code == 2 and "nobody answers" in err

    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    assert run_cli("encrypt-wallet", "--datadir", str(datadir), "--passphrase-file", str(secret)).returncode == 0

    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.StartExchange("", 1) is True
        ok, withdraw_id = api.Withdraw("karen", 2 * COIN, payee, "liquid", "")
        assert ok is True, withdraw_id
        code, out, _ = _status(datadir)
        assert code == 1
        assert "degraded: the wallet is locked while 1 withdrawal(s) wait: ExchangePassword" in out
        assert re.search(r"^  wallet +locked$", out, re.M)
        report = json.loads(_status(datadir, "--json")[1])
        assert report["exchange"]["wallet_locked"] is True and report["health"]["code"] == 1

        assert api.ExchangePassword(PASSPHRASE, "") is True
        code, out, _ = _status(datadir)
        assert code == 0 and re.search(r"^  wallet +unlocked$", out, re.M)
        node.stop()
        assert process.wait(timeout=30) == 0


def test_a_node_whose_operator_socket_another_process_serves_exits_2_with_one_line(tmp_path) -> None:
    """`operator_socket` naming a socket a live process answers on: exchange mode cannot start, so the node stops,
    its last line naming the socket and the setting; that process's socket is left alone."""
    taken = tmp_path / "taken.sock"
    datadir = tmp_path / "devnet"
    datadir.mkdir(mode=0o700)
    (datadir / "halo-exchange.conf").write_text(f"[exchange]\noperator_socket = {taken}\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(taken))
        other.listen()
        process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port",
                               str(free_port()), "--api-port", str(free_port()), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        try:
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 2, err
        assert err.strip().splitlines()[-1] == (f"another process answers on the operator socket {taken}: "
                                                "set operator_socket")
        assert stat.S_ISSOCK(os.lstat(taken).st_mode)


def test_exchange_mode_without_an_api_still_reports_and_its_socket_goes_with_it(tmp_path, reactor_thread) -> None:
    """A node hosting exchange mode with no API port: the operator socket answers (state running, the API off,
    the tip as the node has it) while the node runs, and is gone once it stops."""
    exchange = ServiceHarness(tmp_path, api_port=None)
    socket_path = exchange.service.config.operator_socket_path
    try:
        exchange.generate(3)
        report = ask(socket_path, "status")
        assert report["exchange"]["state"] == "running" and report["exchange"]["users"] == 0
        assert report["api"] == {"address": None, "calls": {}}
        assert report["node"]["height"] == exchange.node.reader.height() == 3
    finally:
        exchange.close()
    assert not socket_path.exists()

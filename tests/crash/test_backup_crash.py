"""The exchange DB lost after a SIGKILL, rebuilt from the continuous backup: every acknowledged trade is there.

A real `halo-exchange devnet` process runs with ``--backup-dir``; two client threads trade over XML-RPC
(stdlib ``xmlrpc.client``), each counting the trades answered True. The node is killed with SIGKILL in the
middle of the load, its exchange DB deleted, and ``halo-exchange restore`` rebuilds it from the backup. Then
``halo-exchange audit`` passes, and the next start shows each payee holding exactly what its acknowledged
trades paid it (or one more: the call in flight at the kill may have been written, never answered), with
karen's value and theirs still her deposit. 20 trials on one data dir, the backup carried across them.
"""

from __future__ import annotations

import http.client
import random
import shutil
import signal
import threading
import time
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.cli import main as cli_main
from halo_exchange.config import EXCHANGE_SUBDIR
from tests.framework import credit_over_api, free_port, running_devnet, wait_until

TRIALS = 20
PAYEES = ["payee0", "payee1"]
DEPOSIT = 10 * COIN


def _trader(url: str, payee: str, stop: threading.Event, counts: dict[str, list[int]]) -> None:
    """Pays 1 satoshi from karen to ``payee`` per call until the node dies; counts [acknowledged, in flight]."""
    proxy = xmlrpc.client.ServerProxy(url)
    while not stop.is_set():
        counts[payee][1] = 1
        try:
            answer = proxy.Trade("karen", 1, payee, "liquid", "")
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
            return  # killed: the call in flight stays counted as such
        assert answer is True, answer
        counts[payee] = [counts[payee][0] + 1, 0]


def _balances(api: xmlrpc.client.ServerProxy) -> dict[str, int]:
    held = {}
    for user in PAYEES + ["karen"]:
        balance = api.GetBalance(user, "")
        held[user] = balance["liquid"] + balance["reserve"] if balance else 0
    return held


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``halo-exchange *args`` in this process (the node is stopped): exit code and what it printed."""
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 30 s
def test_acknowledged_trades_survive_sigkill_and_the_loss_of_the_exchange_db(tmp_path: Path, capsys) -> None:
    datadir, backup = tmp_path / "devnet", tmp_path / "backup"
    port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    flags = ["--backup-dir", str(backup)]
    rng = random.Random(16)

    with running_devnet(datadir, port, api_port, flags) as (process, node):
        api = xmlrpc.client.ServerProxy(url)
        wait_until(lambda: api.GetCycle("") == 0)
        api.StartExchange("")
        credit_over_api(node, api, "karen", DEPOSIT)
        node.stop()
        assert process.wait(timeout=30) == 0

    expected = {payee: 0 for payee in PAYEES}
    in_flight = {payee: 0 for payee in PAYEES}
    total_trades = 0
    for trial in range(TRIALS + 1):
        with running_devnet(datadir, port, api_port, flags) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda: isinstance(api.GetBalance("karen", ""), dict))
            held = _balances(api)
            for payee in PAYEES:  # what the acknowledged trades paid, and at most the one in flight
                assert expected[payee] <= held[payee] <= expected[payee] + in_flight[payee], (trial, held, expected)
                expected[payee] = held[payee]
            assert sum(held.values()) == DEPOSIT, held
            if trial == TRIALS:
                node.stop()
                assert process.wait(timeout=30) == 0
                break
            api.StartExchange("")
            counts = {payee: [0, 0] for payee in PAYEES}
            stop = threading.Event()
            traders = [threading.Thread(target=_trader, args=(url, payee, stop, counts), daemon=True)
                       for payee in PAYEES]
            for trader in traders:
                trader.start()
            time.sleep(rng.uniform(0.05, 0.3))
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            for trader in traders:
                trader.join(timeout=10)
            for payee in PAYEES:
                expected[payee] += counts[payee][0]
                in_flight[payee] = counts[payee][1]
                total_trades += counts[payee][0]

        # The exchange DB is lost; the backup rebuilds it, and the audit is clean before the node starts.
        shutil.rmtree(datadir / EXCHANGE_SUBDIR)
        code, text = _cli(capsys, "restore", "--from", str(backup), "--datadir", str(datadir))
        assert code == 0, text
        assert "restored the exchange DB to batch" in text, text
        code, text = _cli(capsys, "audit", "--datadir", str(datadir))
        assert code == 0 and "result: OK" in text, text
    assert total_trades > 20 * TRIALS, total_trades  # the kills did land in the middle of real load

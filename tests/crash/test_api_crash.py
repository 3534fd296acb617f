"""`halo-exchange devnet` killed with SIGKILL while exchange clients trade over XML-RPC: every trade answered
True is on disk after the restart, and at most the calls still in flight were applied without an answer.

This is the whole path an exchange relies on: the stdlib client, the HTTP transport, the dispatcher, the
engine and the group commit, in a real process that dies without any chance to flush.
"""

from __future__ import annotations

import http.client
import random
import signal
import threading
import xmlrpc.client

import pytest

from halo_exchange.chain.params import COIN
from tests.framework import credit_over_api, free_port, running_devnet, wait_until

CLIENTS = 4
KILLS = 10


def _trader(url: str, payee: str, acknowledged: list[int], stop: threading.Event) -> None:
    """Pays 1 satoshi to ``payee`` per call, counting the calls answered True, until the server dies."""
    proxy = xmlrpc.client.ServerProxy(url)
    while not stop.is_set():
        try:
            answer = proxy.Trade("karen", 1, payee, "liquid", "")
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
            return  # the server died under the call
        assert answer is True, answer
        acknowledged[0] += 1


@pytest.mark.slow
def test_acknowledged_trades_survive_sigkill(tmp_path) -> None:
    """Ten SIGKILLs while four clients trade: every trade answered True survives, at most one more per client
    was applied, and karen's value plus what she paid is still her deposit."""
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    payees = [f"payee{i}" for i in range(CLIENTS)]
    acknowledged_total = {payee: 0 for payee in payees}
    rng = random.Random(5)

    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(url)
        wait_until(lambda: api.GetCycle("") == 0)
        api.StartExchange("")
        credit_over_api(node, api, "karen", 10 * COIN)
        process.send_signal(signal.SIGKILL)
        process.wait()

    for _ in range(KILLS):
        with running_devnet(datadir, port, api_port) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda api=api: isinstance(api.GetBalance("karen", ""), dict))
            # Everything answered before the last kill is there; at most one call per client more.
            for payee in payees:
                held = api.GetBalance(payee, "")
                held = held["liquid"] if held else 0
                assert acknowledged_total[payee] <= held <= acknowledged_total[payee] + 1, (payee, held)
                acknowledged_total[payee] = held  # the unanswered one, if applied, is now known
            api.StartExchange("")
            stop = threading.Event()
            counters = {payee: [0] for payee in payees}
            threads = [threading.Thread(target=_trader, args=(url, payee, counters[payee], stop), daemon=True)
                       for payee in payees]
            for thread in threads:
                thread.start()
            wait_until(lambda counters=counters: all(counter[0] > 20 for counter in counters.values()),
                       timeout=30, interval=0.01)
            threading.Event().wait(rng.uniform(0.0, 0.3))
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            for payee in payees:
                acknowledged_total[payee] += counters[payee][0]

    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(url)
        wait_until(lambda: isinstance(api.GetBalance("karen", ""), dict))
        for payee in payees:
            held = api.GetBalance(payee, "")["liquid"]
            assert acknowledged_total[payee] <= held <= acknowledged_total[payee] + 1
        karen = api.GetBalance("karen", "")
        paid = sum(api.GetBalance(payee, "")["liquid"] for payee in payees)
        assert karen["liquid"] + karen["reserve"] + paid == 10 * COIN
        node.stop()
        assert process.wait(timeout=5) == 0

"""The exchange API under load (issue 5): durable Trade calls per second with 1 and 8 client processes, next to
a baseline measured in the same run (a single-threaded stdlib SimpleXMLRPCServer doing the same trades on an
in-memory dict, as the original served them, not durable), and GetBalance latency while blocks connect."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xmlrpc.client

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from node_hooks import HookDispatcher
from node_hooks.devnode.node import DevNode
from node_hooks.exchange_mode import enable_exchange_mode

CALLS_PER_CLIENT = 400

CLIENT = textwrap.dedent(
    """
    import sys, time, xmlrpc.client
    url, calls, me = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    proxy = xmlrpc.client.ServerProxy(url)
    start = time.perf_counter()
    for i in range(calls):
        answer = proxy.Trade("trader00", 1, f"user{me:02d}{i % 10}", "liquid", "")
        assert answer is True, answer
    print(calls / (time.perf_counter() - start))
    """
)

BASELINE = textwrap.dedent(
    """
    import sys
    from xmlrpc.server import SimpleXMLRPCServer
    balances = {"trader00": {"liquid": 10**15, "reserve": 0}}
    def Trade(user1, amount, user2, style="liquid", passw=""):
        balances.setdefault(user2, {"liquid": 0, "reserve": 0})
        if amount > balances[user1][style]:
            return "Insufficient " + style + " balance"
        balances[user1][style] -= amount
        balances[user2][style] += amount
        return True
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.register_function(Trade)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def _clients(url: str, count: int) -> float:
    """Total calls per second of ``count`` client processes hitting ``url`` together."""
    env = {**os.environ}
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, url, str(CALLS_PER_CLIENT), str(i)], stdout=subprocess.PIPE,
                         text=True, env=env)
        for i in range(count)
    ]
    start = time.perf_counter()
    for proc in procs:
        proc.wait()
    elapsed = time.perf_counter() - start
    return count * CALLS_PER_CLIENT / elapsed


def run(runs: int = 3) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        dispatcher = HookDispatcher()
        service = enable_exchange_mode(dispatcher, {"exchange": 1, "exchange_datadir": f"{tmp}/exchange",
                                                    "exchange_api_port": 0})
        node = DevNode(f"{tmp}/node", dispatcher=dispatcher)
        node.start()
        try:
            service.call(lambda engine: None)
            url = f"http://127.0.0.1:{service.api_port}/"
            api = xmlrpc.client.ServerProxy(url)
            api.StartExchange("")
            wif, _ = api.GenerateDepositAddress("")
            address = PrivateKey.from_wif(wif, DEVNET_KEYS).public_key().address(DEVNET_KEYS)
            txid = node.send_to_address(address, 10**13)
            node.generate(1)
            service.call(lambda engine: None)
            api.Deposit("trader00", [txid], "")
            node.generate(7)
            service.call(lambda engine: None)

            baseline_proc = subprocess.Popen([sys.executable, "-c", BASELINE], stdout=subprocess.PIPE, text=True)
            try:
                baseline_url = f"http://127.0.0.1:{int(baseline_proc.stdout.readline())}/"
                for clients in (1, 8):
                    ours = statistics.median(_clients(url, clients) for _ in range(runs))
                    base = statistics.median(_clients(baseline_url, clients) for _ in range(runs))
                    rows.append((f"API Trade, {clients} client(s)", ours, "calls/s, durable (group commit)"))
                    rows.append((f"baseline, {clients} client(s)", base,
                                 f"calls/s, stdlib single-threaded, memory only; ours/baseline {ours / base:.2f}"
                                 + (" (target >= 1.5)" if clients == 8 else "")))
            finally:
                baseline_proc.kill()
                baseline_proc.wait()

            # GetBalance latency while the node connects blocks without pause.
            stop = threading.Event()

            def produce() -> None:
                while not stop.is_set():
                    node.generate(1)

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            latencies = []
            try:
                for _ in range(500):
                    start = time.perf_counter()
                    api.GetBalance("trader00", "")
                    latencies.append(time.perf_counter() - start)
            finally:
                stop.set()
                producer.join()
            latencies.sort()
            rows.append(("GetBalance p50 under blocks", latencies[len(latencies) // 2] * 1000, "ms"))
            rows.append(("GetBalance p99 under blocks", latencies[int(len(latencies) * 0.99)] * 1000,
                         "ms (target < 20)"))
        finally:
            node.close()
    return rows

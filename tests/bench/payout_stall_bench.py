"""The reactor while a payout batch is built (issue 11): how long the reactor stalls while the exchange builds,
checks and signs a liquid batch of 300 withdrawals off the reactor thread (target: GetBalance p99 under 50 ms
during the build), and how long the build takes end to end (target: under 2 s).

Each run is a fresh devnet node with exchange mode on (:class:`ServiceHarness`, in this process): 50 confirmed
deposits of 150..199 BAY spread over 10 users, ExchangeSettings (a wallet deposit address as the exchange
account, a fee account, the commission of the integration tests), then 300 liquid withdrawals of 25 BAY over
XML-RPC while the tip is just before the liquid window. A client in its own process calls GetBalance in a
tight loop, recording when each call started and how long it took. The next block opens the liquid window
and starts the build; the build duration runs from that block's return to the first CheckWithdraw (polled
every 5 ms) that answers ``unconfirmed``, and the GetBalance calls that overlap that span are its latencies.
The figures are medians over the runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import xmlrpc.client
from dataclasses import dataclass

from halo_exchange.chain.params import DEVNET
from halo_exchange.ledger.withdrawals import Window, window
from tests.framework import CONFIRMATIONS, ServiceHarness, new_address

COIN = 100_000_000
COMMISSION = {"min": 10_000_000, "max": 10**9, "percent": 0.001}
USERS = 10
DEPOSITS = 50
WITHDRAWALS = 300
AMOUNT = 25 * COIN
PREMINE_OUTPUTS = 8  # the devnet wallet's spendable coins per block: one payment each, change unconfirmed

# Calls GetBalance until a line arrives on stdin, then prints [[start, seconds], ...] as JSON. time.monotonic
# is CLOCK_MONOTONIC, the same clock in every process, so the bench can place each call against the build.
CLIENT = textwrap.dedent(
    """
    import json, sys, threading, time, xmlrpc.client
    proxy = xmlrpc.client.ServerProxy(sys.argv[1])
    proxy.GetBalance("user0", "")
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    samples = []
    while not stop.is_set():
        start = time.monotonic()
        proxy.GetBalance("user0", "")
        samples.append((start, time.monotonic() - start))
    print(json.dumps(samples), flush=True)
    """
)


@dataclass
class Run:
    build: float  # seconds from the window block to the batch unconfirmed
    p50: float  # GetBalance latency during the build, seconds
    p99: float
    worst: float
    calls: int  # GetBalance calls overlapping the build
    inputs: int  # coins the batch spends


def _set_up(exchange: ServiceHarness) -> None:
    """50 confirmed deposits over 10 users, and the exchange's accounts and commission."""
    api, node = exchange.api, exchange.node
    api.StartExchange("")
    deposits = []
    for n in range(DEPOSITS):
        deposits.append((f"user{n % USERS}", node.send_to_address(exchange.deposit_address(), (150 + n) * COIN)))
        if n % PREMINE_OUTPUTS == PREMINE_OUTPUTS - 1:
            exchange.generate(1)
    exchange.generate(1)
    for owner, txid in deposits:
        exchange.name_deposit(owner, txid)
    exchange.generate(CONFIRMATIONS - 1)
    assert api.ExchangeSettings([exchange.deposit_address()], new_address(), COMMISSION, "", "") is True


def _until_before_window(exchange: ServiceHarness) -> None:
    """Produce blocks until the next one is the first of a liquid window (no window, so no batch, on the way
    but the maintenance merge, which has nothing to merge here)."""
    interval = DEVNET.peg_interval
    while not (window(exchange.node.reader.height() + 1, interval) is Window.LIQUID
               and window(exchange.node.reader.height(), interval) is not Window.LIQUID):
        exchange.generate(1)


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def _once(tmp: str) -> Run:
    with ServiceHarness(tmp) as exchange:
        api = exchange.api
        url = f"http://127.0.0.1:{exchange.service.api_port}/"
        _set_up(exchange)
        _until_before_window(exchange)
        ids = []
        for n in range(WITHDRAWALS):  # amounts as strings: XML-RPC's int is 32-bit (DESIGN.md §7)
            ok, withdraw_id = api.Withdraw(f"user{n % USERS}", str(AMOUNT + n), new_address(), "liquid", "")
            assert ok is True, withdraw_id
            ids.append(withdraw_id)
        poll = xmlrpc.client.ServerProxy(url)

        client = subprocess.Popen([sys.executable, "-c", CLIENT, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert client.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # the client's loop is running
            exchange.node.generate(1)  # the first block of the liquid window: the build starts
            start = time.monotonic()
            deadline = start + 60
            while True:
                status = poll.CheckWithdraw(ids[0], 0, "")
                if isinstance(status, dict) and status["status"] == "unconfirmed":
                    end = time.monotonic()
                    break
                assert time.monotonic() < deadline, f"no batch within 60 s: {status}"
                time.sleep(0.005)
            time.sleep(0.1)
            client.stdin.write("stop\n")
            client.stdin.flush()
            samples = json.loads(client.stdout.readline())
        finally:
            client.kill()
            client.wait()
        statuses = [poll.CheckWithdraw(i, 0, "")["status"] for i in ids]
        assert statuses.count("unconfirmed") == WITHDRAWALS, "one batch pays every request"
        batch = exchange.service.call(lambda engine: next(iter(engine.batches.values())))
    during = sorted(seconds for at, seconds in samples if at < end and at + seconds > start)
    assert len(during) >= 20, f"only {len(during)} GetBalance calls during the build"
    return Run(end - start, _percentile(during, 0.5), _percentile(during, 0.99), during[-1], len(during),
               len(batch.inputs))


def run(runs: int = 5) -> list[tuple[str, float, str]]:
    """Rows of (operation, median figure, note)."""
    measured = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            measured.append(_once(tmp))
    inputs = sorted({r.inputs for r in measured})
    calls = statistics.median(r.calls for r in measured)
    return [
        ("payout build, 300 liquid", statistics.median(r.build for r in measured),
         f"s window block to unconfirmed (target < 2); {'/'.join(map(str, inputs))} of {DEPOSITS} coins"),
        ("GetBalance p50 in build", statistics.median(r.p50 for r in measured) * 1000,
         f"ms, {calls:.0f} calls overlap the build"),
        ("GetBalance p99 in build", statistics.median(r.p99 for r in measured) * 1000,
         "ms (target < 50): the reactor's stall"),
        ("GetBalance max in build", statistics.median(r.worst for r in measured) * 1000,
         f"ms; worst of {runs} runs {max(r.worst for r in measured) * 1000:.1f} ms"),
    ]


if __name__ == "__main__":
    for name, figure, note in run():
        print(f"{name:<28} {figure:>14.3f}  {note}")
    sys.stdout.flush()
    os._exit(0)  # the reactor thread cannot be stopped and restarted; just leave

"""An exchange of a million users in a real `halo-exchange devnet` process: cold start to the first answered
call (target under 10 s) and memory after start-up against the steady state (target within 10 %), then the
reactor's unavailability while the million accounts are re-valued at a cycle change (target: never 50 ms),
measured by a client calling ``system.listMethods`` (answered by the reactor without waiting for the update)
in a loop: its p99 and max latency during the update; and how long the update takes. Calls whose answer
depends on balances wait for the update by design: a second client's GetBalance shows that wait.

Set-up (not measured): a devnet chain is mined until its next cycle moves the supply (deflate votes), without
exchange mode; an exchange DB is then written directly with ``SCALE_USERS`` (default 1,000,000) idle accounts
at the current cycle's effective supply (the four deposit shapes of book_bench, packed as the book keeps them)
and the deposit tracker level with the tip; the node is started on both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import xmlrpc.client
from pathlib import Path

from halo_exchange.ledger.store import TRACKER_TIP, BookCodec, ExchangeStore
from halo_exchange.serialize import pack_i64, pack_u32
from tests.bench.book_bench import populate
from tests.framework import free_port, mine_to_a_supply_change, spawn_python, wait_for_control_rpc, wait_until

USERS = int(os.environ.get("SCALE_USERS", "1000000"))
BUFFER = 3

CLIENT = textwrap.dedent(
    """
    import json, sys, threading, time, xmlrpc.client
    proxy = xmlrpc.client.ServerProxy(sys.argv[1])
    call = (lambda: proxy.system.listMethods()) if sys.argv[2] == "reactor" else (
        lambda: proxy.GetBalance("user0000001", ""))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    call()
    print("ready", flush=True)
    samples = []
    while not stop.is_set():
        start = time.monotonic()
        call()
        samples.append((start, time.monotonic() - start))
    print(json.dumps(samples), flush=True)
    """
)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _devnet(datadir: Path, rpc_port: int, api_port: int, *flags: str) -> subprocess.Popen:
    log = open(os.environ.get("SCALE_LOG", str(datadir.parent / "node.log")), "a")
    return spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(rpc_port),
                        "--api-port", str(api_port), *flags, stdout=subprocess.DEVNULL, stderr=log)


def _chain_before_a_supply_change(datadir: Path) -> dict:
    """Mine without exchange mode until the next block starts a cycle whose supply differs; the peg info."""
    port = free_port()
    process = _devnet(datadir, port, free_port(), "--no-exchange")
    try:
        node = wait_for_control_rpc(datadir, port)
        info = mine_to_a_supply_change(node)
        tip = node.getblockcount()
        info["tip"], info["time"] = tip, node.getblock(tip)["time"]
        node.stop()
        process.wait(timeout=60)
        return info
    finally:
        if process.poll() is None:
            process.kill()


def _exchange_db(datadir: Path, info: dict) -> None:
    book = populate(USERS, info["peg"] + BUFFER)
    book.cycle = info["cycle"]
    store = ExchangeStore(str(datadir / "exchange"))
    ops = BookCodec.full_ops(book)
    del book
    for start in range(0, len(ops), 100_000):
        store.write(ops[start:start + 100_000])
    store.write([(TRACKER_TIP, pack_i64(info["tip"]) + pack_u32(info["time"]))])
    store.close()


def run(runs: int = 1) -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        datadir = Path(tmp) / "devnet"
        info = _chain_before_a_supply_change(datadir)
        _exchange_db(datadir, info)
        rpc_port, api_port = free_port(), free_port()
        began = time.monotonic()
        process = _devnet(datadir, rpc_port, api_port)
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        try:
            wait_until(lambda: process.poll() is not None or api.GetCycle("") == info["cycle"], timeout=300,
                       interval=0.02)
            cold_start = time.monotonic() - began
            rss_started = _rss_mb(process.pid)
            node = wait_for_control_rpc(datadir, rpc_port)
            clients = [subprocess.Popen([sys.executable, "-c", CLIENT, f"http://127.0.0.1:{api_port}", kind],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                       for kind in ("reactor", "balance")]
            for client in clients:
                assert client.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            block_at = time.monotonic()
            node.generate(1, "nochange")  # the first block of the next cycle: the update begins
            wait_until(lambda: api.GetCycle("") == info["cycle"] + 1, timeout=600, interval=0.01)
            updated_at = time.monotonic()
            time.sleep(1.0)
            reactor_samples, balance_samples = [], []
            for client, samples in zip(clients, (reactor_samples, balance_samples)):
                client.stdin.write("stop\n")
                client.stdin.flush()
                samples.extend(json.loads(client.stdout.readline()))
                client.wait(timeout=30)
            time.sleep(5.0)  # the re-pack after the update
            rss_steady = _rss_mb(process.pid)
            node.stop()
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    during = sorted(seconds for start, seconds in reactor_samples if block_at <= start <= updated_at)
    p99 = during[int(len(during) * 0.99)] if during else 0.0
    waits = [seconds for start, seconds in balance_samples if block_at - 0.05 <= start <= updated_at]
    return [
        ("scale: cold start, 1M users" if USERS == 1_000_000 else f"scale: cold start, {USERS} users", cold_start,
         "seconds to the first answered call (target < 10)"),
        ("scale: RSS after start", rss_started, f"MB; steady state {rss_steady:.0f} MB (target within 10 %)"),
        ("scale: cycle update", updated_at - block_at, f"seconds for {USERS} users, in steps (target <= 10)"),
        ("scale: reactor stall, p99", p99, f"seconds in the update ({len(during)} calls; target max < 0.05)"),
        ("scale: reactor stall, max", during[-1] if during else 0.0, "seconds, system.listMethods in the update"),
        ("scale: GetBalance wait", max(waits) if waits else 0.0,
         "seconds, longest (balance calls wait for the update, by design)"),
    ]


if __name__ == "__main__":
    for name, figure, note in run():
        print(f"{name:<34} {figure:>10.3f}  {note}")

"""The follower's initial sync (issue 12): blocks/s and tx/s of a fresh FollowerNode syncing a devnet chain of
blocks with 20 ordinary transactions each, served as bitbayd (``BitbaydRPCServer``) on loopback, and the share
of its wall time spent in RPC round trips vs chain store writes vs the rest (JSON decoding, checks, hooks).

The upstream chain is built once per run of the benchmark, in-process, through the devnet wallet
(``send_to_address`` to fresh addresses, then ``generate(1)``), and each sync goes into a fresh data dir. The
named target is 2,000 blocks x 20 transactions, but the devnet wallet builds a block of 20 payments in about
0.4-0.8 s, growing with the UTXO set (``send_to_address`` scans it and decodes every wallet coin's fractions), so
2,000 blocks take over an hour: by default the chain is ``FOLLOWER_BENCH_BLOCKS`` = 300 blocks (about 3
minutes of building), synced at ``FOLLOWER_BENCH_QUICK`` = 100 blocks first (a quick figure, the chain's first
part) and then in full. ``FOLLOWER_BENCH_BLOCKS=2000 make bench`` runs the named scenario for whoever has the
hour. The upstream serves from this process's threads: the follower waits while it answers, so RPC time
includes bitbayd's (the devnet's) own work, as it does against a real bitbayd.

Run alone: ``.venv/bin/python -m tests.bench.follower_bench [runs]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.config import ExchangeConfig
from node_hooks import HookDispatcher
from node_hooks.devnode.bitbayd_rpc import BitbaydRPCServer
from node_hooks.devnode.errors import TxRejected
from node_hooks.devnode.node import DevNode
from node_hooks.exchange_mode import enable_exchange_mode
from node_hooks.follower import FollowerNode, FollowerState

TXS_PER_BLOCK = int(os.environ.get("FOLLOWER_BENCH_TXS", "20"))
BLOCKS = int(os.environ.get("FOLLOWER_BENCH_BLOCKS", "300"))
QUICK_BLOCKS = int(os.environ.get("FOLLOWER_BENCH_QUICK", "100"))
SYNC_TIMEOUT = 3600.0


@dataclass
class Sync:
    blocks: int
    txs: int
    seconds: float
    rpc_seconds: float
    store_seconds: float

    @property
    def rpc_share(self) -> float:
        return self.rpc_seconds / self.seconds

    @property
    def store_share(self) -> float:
        return self.store_seconds / self.seconds


def _fan_out(node: DevNode, coins: int) -> None:
    """Split the wallet's few genesis coins until it holds ``coins`` free ones (a payment spends one coin
    and returns change to it, so the count then stays put)."""

    def free() -> int:
        at = node._producer.next_block()  # a benchmark may look inside
        return sum(1 for c in node._coins.free_coins(at.time) if c.record.value > 2 * COIN)

    while free() < coins:
        for _ in range(coins):
            try:
                node.send_to_address(node.get_new_address(), 100 * COIN)
            except TxRejected:
                break
        node.generate(1)


def build_chain(node: DevNode, up_to: int, txs_per_block: int = TXS_PER_BLOCK) -> float:
    """Extend ``node``'s chain to height ``up_to`` with blocks of ``txs_per_block`` payments to fresh addresses;
    the seconds it took."""
    start = time.perf_counter()
    if node.block_count() == 0:
        _fan_out(node, txs_per_block + 10)
    while node.block_count() < up_to:
        for _ in range(txs_per_block):
            node.send_to_address(PrivateKey.generate().public_key().address(DEVNET_KEYS), COIN)
        node.generate(1)
    return time.perf_counter() - start


def sync_once(url: str, target: int, datadir: Path, *, exchange: bool = False) -> Sync:
    """A fresh follower in ``datadir`` syncs from ``url`` until its tip is ``target``."""
    dispatcher = HookDispatcher()
    if exchange:
        enable_exchange_mode(dispatcher, ExchangeConfig(exchange_dir=datadir / "exchange", api_port=None))
    follower = FollowerNode(datadir, url, network="devnet", dispatcher=dispatcher, rpc_timeout=60)
    try:
        start = time.perf_counter()
        follower.start()
        deadline = start + SYNC_TIMEOUT
        while follower.reader.height() < target:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the follower reached {follower.reader.height()} of {target}")
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        status = follower.status()
        # Close between polls (not while one is in flight, which the server would log as a broken pipe).
        while follower.status().state is not FollowerState.FOLLOWING and time.perf_counter() < deadline:
            time.sleep(0.005)
        if status.last_error:
            raise RuntimeError(f"the follower said: {status.last_error}")
        return Sync(status.blocks_synced, status.txs_synced, seconds, status.rpc_seconds, status.store_seconds)
    finally:
        follower.close()


def _rows(label: str, syncs: list[Sync], note: str) -> list[tuple[str, float, str]]:
    med = statistics.median
    rpc, store = med(s.rpc_share for s in syncs), med(s.store_share for s in syncs)
    blocks, txs = syncs[0].blocks, syncs[0].txs
    return [
        (f"follower sync {label}", med(s.blocks / s.seconds for s in syncs),
         f"blocks/s, {blocks} blocks / {txs} txs{note}"),
        (f"follower sync {label} txs", med(s.txs / s.seconds for s in syncs), "tx/s (coinbase+coinstake counted)"),
        (f"follower sync {label} split", 100 * rpc,
         f"% RPC wait; {100 * store:.0f}% store writes, {100 * (1 - rpc - store):.0f}% rest"),
    ]


def run(runs: int = 3) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        node = DevNode(tmp / "upstream")
        node.start()
        server = BitbaydRPCServer(node, port=0)
        server.start()
        try:
            quick_build = build_chain(node, QUICK_BLOCKS)
            quick_height = node.block_count()
            syncs = [sync_once(server.url, quick_height, tmp / f"quick{r}") for r in range(runs)]
            rows += _rows(f"{quick_height}x{TXS_PER_BLOCK}", syncs, "")
            build = quick_build + build_chain(node, BLOCKS)
            height = node.block_count()
            rows.append(("follower bench chain build", height / build,
                         f"blocks/s building {height}x{TXS_PER_BLOCK} via the devnet wallet ({build:.0f} s)"))
            syncs = [sync_once(server.url, height, tmp / f"full{r}") for r in range(runs)]
            rows += _rows(f"{height}x{TXS_PER_BLOCK}", syncs, "")
            # Exchange mode on (its engine reads every block on the reactor thread, sharing the GIL): once.
            syncs = [sync_once(server.url, height, tmp / "exchange", exchange=True)]
            rows += _rows(f"{height}x{TXS_PER_BLOCK} +exch", syncs, ", exchange mode on, 1 run")
        finally:
            server.close()
            node.close()
    return rows


if __name__ == "__main__":
    for name, figure, note in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(f"{name:<34} {figure:>12,.2f}  {note}")
    sys.stdout.flush()
    os._exit(0)  # exchange mode leaves the reactor thread running

"""The follower's initial sync (issue 12): blocks/s and tx/s of a fresh FollowerNode syncing a devnet chain of
blocks with 20 ordinary transactions each, served as bitbayd (``BitbaydRPCServer``) on loopback, and the share
of its wall time spent in RPC round trips vs chain store writes vs the rest (JSON decoding, checks, hooks).

The upstream chain is built in-process by :func:`build_chain`: the bench keeps the outpoints of a few dozen
wallet coins itself and signs 20 transactions per block from them with the devnet wallet's keys (one or two
inputs; a payment of under 1 coin to a fresh foreign P2PKH script, change back to each input's own address;
the minimum fee), submits them with ``send_raw_transaction`` (the mempool checks them) and mines them with
``generate(1)``. Every block votes "nochange", so the supply stays at 0, where nothing is reserve and any
layout passes the transfer rule. It builds 2,000 blocks in about 13 minutes (0.26 s a block at first, more
as the UTXO set grows); the devnode's own checks are most of it (the transfer rule runs at admission and
again at block assembly). ``send_to_address``, the bench's earlier
way, scans the UTXO set and decodes every wallet coin's fractions per payment: 0.4-0.8 s a block.

A built chain is kept in ``.bench-cache/follower-<blocks>x<txs>-v<n>/`` (git-ignored; ``FOLLOWER_BENCH_CACHE``
moves it, ``FOLLOWER_BENCH_CACHE=off`` disables it) and copied into a temporary data dir for each bench run, so
only the first run at a size builds. A longer chain starts from the longest cached shorter one.

By default the chain is ``FOLLOWER_BENCH_BLOCKS`` = 300 blocks, synced at ``FOLLOWER_BENCH_QUICK`` = 100
blocks first (a quick figure) and then in full, 3 syncs each, plus one with exchange mode on. The named
scenario, ``FOLLOWER_BENCH_BLOCKS=2000``, syncs at under 8 blocks/s (over 4 minutes a sync), so its 3 syncs
and the exchange-mode one take some 20 minutes even from the cache: too long for the default
(``FOLLOWER_BENCH_QUICK=0`` and ``FOLLOWER_BENCH_EXCHANGE=0`` leave out the quick and exchange-mode syncs).
The upstream serves from this process's threads: the follower waits while it answers, so RPC time includes
bitbayd's (the devnet's) own work, as it does against a real bitbayd.

Run alone: ``.venv/bin/python -m tests.bench.follower_bench [runs]``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script, p2pkh_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.config import ExchangeConfig
from node_hooks import HookDispatcher
from node_hooks.devnode.bitbayd_rpc import BitbaydRPCServer
from node_hooks.devnode.node import DevNode
from node_hooks.exchange_mode import enable_exchange_mode
from node_hooks.follower import FollowerNode, FollowerState

TXS_PER_BLOCK = int(os.environ.get("FOLLOWER_BENCH_TXS", "20"))
BLOCKS = int(os.environ.get("FOLLOWER_BENCH_BLOCKS", "300"))
QUICK_BLOCKS = int(os.environ.get("FOLLOWER_BENCH_QUICK", "100"))
SYNC_TIMEOUT = 3600.0
# Where built chains are kept between runs; "off" builds every time.
CACHE_DIR = os.environ.get("FOLLOWER_BENCH_CACHE", str(Path(__file__).resolve().parents[2] / ".bench-cache"))
# Part of a cached chain's name: bump it when build_chain makes different chains, and old caches are ignored.
BUILD_VERSION = 1
COIN_VALUE = 3000 * COIN  # each bench coin at the fan-out; payments under 1 coin leave it enough for 2,000 blocks


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


@dataclass
class Build:
    blocks: int  # built by this call (0 when the chain was cached)
    seconds: float
    admit_seconds: float  # in send_raw_transaction (the mempool's checks)
    generate_seconds: float  # in generate(1): block assembly (re-checks every tx), staking, the store write


@dataclass(frozen=True)
class _Coin:
    txid: bytes
    n: int
    value: int
    script: bytes


def _bench_coins(node: DevNode) -> list[_Coin]:
    """The wallet coins the bench spends: every wallet UTXO except the premine address's, which stakes."""
    genesis = node.reader.block_hash(0)
    assert genesis is not None
    premine = node.reader.block_transactions(genesis)[0].outputs[0].script_pubkey
    return sorted(
        (_Coin(txid, n, record.value, record.script) for txid, n, record in node.reader.iter_utxos()
         if record.script != premine and node.wallet.owns_script(record.script)),
        key=lambda c: (c.txid, c.n),
    )


def _fan_out(node: DevNode, count: int) -> None:
    """Block 1: one premine coin split into ``count`` coins of COIN_VALUE at fresh wallet addresses."""
    premine = max(
        ((txid, n, r) for txid, n, r in node.reader.iter_utxos() if node.wallet.owns_script(r.script)),
        key=lambda u: u[2].value,
    )
    txid, n, record = premine
    outputs = [TxOut(COIN_VALUE, address_to_script(node.get_new_address(), DEVNET_KEYS)) for _ in range(count)]
    fee = node.params.fee_per_input_output * (1 + count + 1)
    outputs.append(TxOut(record.value - COIN_VALUE * count - fee, record.script))
    tx = Transaction(1, node._producer.next_block().time, (TxIn(OutPoint(txid, n)),), tuple(outputs), 0)
    node.send_raw_transaction(node.wallet.sign(tx, [record.script]).to_hex())
    node.generate(1)


def build_chain(node: DevNode, up_to: int, txs_per_block: int = TXS_PER_BLOCK, seed: int = 12) -> Build:
    """Extend ``node``'s chain to height ``up_to`` with blocks of ``txs_per_block`` transactions (one in five
    with two inputs) from the bench's wallet coins; block 1 of a new chain is the fan-out that makes them.
    Each coin is spent once per block and its change, back to its address, replaces it; the premine coins
    are left to stake. Resumable: any chain this made can be extended."""
    start = time.perf_counter()
    first = node.block_count()
    admit = generate = 0.0
    wanted = txs_per_block + (txs_per_block + 4) // 5
    if node.block_count() == 0:
        _fan_out(node, wanted)
    coins = _bench_coins(node)
    if len(coins) != wanted:
        raise RuntimeError(f"the chain holds {len(coins)} bench coins, not {wanted}: not one this bench built")
    rng = random.Random(seed * 1_000_003 + node.block_count())
    fee_unit = node.params.fee_per_input_output
    while node.block_count() < up_to:
        at = node._producer.next_block()  # a benchmark may look inside
        if at.supply != 0:
            raise RuntimeError(f"supply {at.supply} at height {at.height}: the bench's layouts assume 0")
        rng.shuffle(coins)
        spare, coins = coins, []
        for k in range(txs_per_block):
            spend = [spare.pop()] + ([spare.pop()] if k % 5 == 0 else [])
            payee = TxOut(rng.randrange(COIN // 100, COIN), p2pkh_script(rng.randbytes(20)))
            rest = sum(c.value for c in spend) - payee.value - fee_unit * (2 * len(spend) + 1)
            changes = [rest] if len(spend) == 1 else [rest // 2, rest - rest // 2]
            outputs = (payee, *(TxOut(v, c.script) for v, c in zip(changes, spend)))
            tx = Transaction(1, at.time, tuple(TxIn(OutPoint(c.txid, c.n)) for c in spend), outputs, 0)
            tx = node.wallet.sign(tx, [c.script for c in spend])
            t0 = time.perf_counter()
            node.send_raw_transaction(tx.to_hex())
            admit += time.perf_counter() - t0
            coins += [_Coin(tx.hash, 1 + i, v, c.script) for i, (v, c) in enumerate(zip(changes, spend))]
        t0 = time.perf_counter()
        node.generate(1)
        generate += time.perf_counter() - t0
    return Build(node.block_count() - first, time.perf_counter() - start, admit, generate)


def _cache_entry(height: int) -> Path | None:
    if CACHE_DIR.lower() in ("", "off", "0", "no"):
        return None
    return Path(CACHE_DIR) / f"follower-{height}x{TXS_PER_BLOCK}-v{BUILD_VERSION}"


def _cached_below(height: int) -> tuple[int, Path] | None:
    """The longest cached chain shorter than ``height`` (same transactions per block and build version)."""
    entry = _cache_entry(height)
    if entry is None or not entry.parent.is_dir():
        return None
    best = None
    for path in entry.parent.glob(f"follower-*x{TXS_PER_BLOCK}-v{BUILD_VERSION}"):
        meta = _read_meta(path)
        if meta and meta["height"] < height and (best is None or meta["height"] > best[0]):
            best = (meta["height"], path)
    return best


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads((path / "bench.json").read_text())
    except (OSError, ValueError):
        return None


def upstream_chain(datadir: Path, height: int) -> tuple[Build, bool]:
    """Make ``datadir`` (no node open on it) hold a bench chain of ``height`` blocks: a copy of the cached one,
    or built, from the chain already there or the longest cached shorter one, and then cached. Returns the
    build (its figures from the cache's record when cached) and whether it came from the cache."""
    entry = _cache_entry(height)
    meta = _read_meta(entry) if entry is not None else None
    if entry is not None and meta is not None and meta["height"] == height:
        shutil.rmtree(datadir, ignore_errors=True)
        shutil.copytree(entry / "node", datadir)
        return Build(meta["built_blocks"], meta["seconds"], meta["admit_seconds"], meta["generate_seconds"]), True
    if not datadir.exists():
        below = _cached_below(height)
        if below is not None:
            shutil.copytree(below[1] / "node", datadir)
    node = DevNode(datadir)
    try:
        build = build_chain(node, height)
    finally:
        node.close()
    if entry is not None:
        partial = entry.with_name(entry.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(datadir, partial / "node")
        (partial / "bench.json").write_text(json.dumps({
            "height": height, "txs_per_block": TXS_PER_BLOCK, "built_blocks": build.blocks,
            "seconds": build.seconds, "admit_seconds": build.admit_seconds,
            "generate_seconds": build.generate_seconds,
        }, indent=1))
        shutil.rmtree(entry, ignore_errors=True)
        partial.rename(entry)
    return build, False


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
        print(f"  [follower bench] {datadir.name}: {status.blocks_synced} blocks in {seconds:.1f} s, "
              f"RPC {status.rpc_seconds:.1f} s, store {status.store_seconds:.1f} s", file=sys.stderr, flush=True)
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


def _build_row(height: int, build: Build, cached: bool) -> tuple[str, float, str]:
    where = "cached; built" if cached else "built"
    return ("follower bench chain build", build.blocks / build.seconds if build.seconds else 0.0,
            f"blocks/s, {where} {build.blocks} blocks to {height}x{TXS_PER_BLOCK} in {build.seconds:.0f} s "
            f"({100 * build.admit_seconds / build.seconds:.0f}% admission, "
            f"{100 * build.generate_seconds / build.seconds:.0f}% generate)")


def _syncs(tmp: Path, height: int, label: str, runs: int, exchange: bool) -> list[tuple[str, float, str]]:
    """Serve the chain in ``tmp/upstream`` and sync it ``runs`` times (and once with exchange mode on)."""
    node = DevNode(tmp / "upstream")
    node.start()
    server = BitbaydRPCServer(node, port=0)
    server.start()
    try:
        assert node.block_count() == height
        rows = _rows(label, [sync_once(server.url, height, tmp / f"{label}-{r}") for r in range(runs)], "")
        if exchange:
            # Exchange mode on (its engine reads every block on the reactor thread, sharing the GIL): once.
            syncs = [sync_once(server.url, height, tmp / f"{label}-exchange", exchange=True)]
            rows += _rows(f"{label} +exch", syncs, ", exchange mode on, 1 run")
        return rows
    finally:
        server.close()
        node.close()


def run(runs: int = 3) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    exchange = os.environ.get("FOLLOWER_BENCH_EXCHANGE", "1") != "0"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream = tmp / "upstream"
        if 0 < QUICK_BLOCKS < BLOCKS:
            build, cached = upstream_chain(upstream, QUICK_BLOCKS)
            rows.append(_build_row(QUICK_BLOCKS, build, cached))
            rows += _syncs(tmp, QUICK_BLOCKS, f"{QUICK_BLOCKS}x{TXS_PER_BLOCK}", runs, False)
        build, cached = upstream_chain(upstream, BLOCKS)
        rows.append(_build_row(BLOCKS, build, cached))
        rows += _syncs(tmp, BLOCKS, f"{BLOCKS}x{TXS_PER_BLOCK}", runs, exchange)
    return rows


if __name__ == "__main__":
    for name, figure, note in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(f"{name:<34} {figure:>12,.2f}  {note}", flush=True)
    sys.stdout.flush()
    os._exit(0)  # exchange mode leaves the reactor thread running

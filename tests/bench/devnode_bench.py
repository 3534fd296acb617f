"""Devnet node throughput: mempool acceptance, and blocks of 100 transactions connected per second."""

from __future__ import annotations

import statistics
import tempfile
import time
import xmlrpc.client

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import ControlRPCServer

TXS_PER_BLOCK = 100


def _prepare_coins(node: DevNode, key: PrivateKey, count: int) -> list[tuple[bytes, int, int]]:
    """``count`` confirmed outputs owned by ``key``, made with one fan-out transaction per 50."""
    address = key.public_key().address(DEVNET_KEYS)
    coins = []
    for _ in range(0, count, 50):
        txid = node.send_to_address(address, 50 * COIN)
        node.generate(1)
        parent = Transaction.from_hex(node.get_raw_transaction(txid))
        n = next(i for i, o in enumerate(parent.outputs) if o.value == 50 * COIN)
        script = address_to_script(address, DEVNET_KEYS)
        outputs = tuple(TxOut(COIN - 6000, script) for _ in range(50))
        fan = Transaction(1, 0, (TxIn(OutPoint(parent.hash, n)),), outputs, 0)
        fan = sign_input(fan, 0, key, script)
        node.send_raw_transaction(fan.to_hex())
        node.generate(1)
        coins.extend((fan.hash, i, COIN - 6000) for i in range(50))
    return coins[:count]


def _rpc_rate(node: DevNode, calls: int = 500) -> float:
    """getblockcount calls per second from one stdlib client over loopback (a new connection each call)."""
    server = ControlRPCServer(node, port=0, credentials="__cookie__:" + "ab" * 32)  # as the process serves it
    server.start()
    try:
        proxy = xmlrpc.client.ServerProxy(server.auth_url)
        start = time.perf_counter()
        for _ in range(calls):
            proxy.getblockcount()
        return calls / (time.perf_counter() - start)
    finally:
        server.close()


def run(runs: int = 5) -> list[tuple[str, float, str]]:
    accept_rates, block_rates, rpc_rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        node = DevNode(tmp)
        try:
            key = PrivateKey.generate()
            script = address_to_script(key.public_key().address(DEVNET_KEYS), DEVNET_KEYS)
            payee = address_to_script(PrivateKey.generate().public_key().address(DEVNET_KEYS), DEVNET_KEYS)
            coins = _prepare_coins(node, key, TXS_PER_BLOCK * runs)
            for r in range(runs):
                txs = []
                for txid, n, value in coins[r * TXS_PER_BLOCK:(r + 1) * TXS_PER_BLOCK]:
                    tx = Transaction(1, 0, (TxIn(OutPoint(txid, n)),), (TxOut(value - 10_000, payee),), 0)
                    txs.append(sign_input(tx, 0, key, script).to_hex())
                start = time.perf_counter()
                for raw in txs:
                    node.send_raw_transaction(raw)
                accept_rates.append(TXS_PER_BLOCK / (time.perf_counter() - start))
                start = time.perf_counter()
                node.generate(1)
                block_rates.append(1 / (time.perf_counter() - start))
            rpc_rates = [_rpc_rate(node) for _ in range(runs)]
        finally:
            node.close()
    return [
        ("devnode mempool accept", statistics.median(accept_rates), "tx/s, full validation"),
        ("devnode block of 100 txs", statistics.median(block_rates), "blocks/s, assemble+check+commit"),
        ("devnode control RPC", statistics.median(rpc_rates), "calls/s, getblockcount, 1 stdlib client"),
    ]

"""The follower end to end: a `halo-exchange devnet` upstream serving bitbayd's JSON-RPC, and a
`halo-exchange node` process following it with exchange mode on, each its own process.

The upstream plays bitbayd (and makes the chain: blocks, votes, payments, reorgs over its control RPC); the
exchange's software talks to the follower's API with the stdlib client. What a user would see is checked:
deposits credited at the confirmation setting, cycles and supply moves, a reorg unwound exactly, a crash
during sync resumed without a gap or a double, the upstream away and back, and the follower's chain DB equal
to the upstream's key for key, with ``audit`` passing in the follower.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import plyvel
import pytest

from halo_exchange.config import CHAIN_SUBDIR
from tests.framework import (
    CONFIRMATIONS,
    address_of,
    assert_same_chain,
    free_port,
    run_cli,
    running_devnet,
    running_follower,
    wait_until,
)

COIN = 100_000_000
USER, PASSWORD = "bitbay", "s3cret rpc"

pytestmark = pytest.mark.slow


class Pair:
    """Ports and data dirs of one upstream and one follower."""

    def __init__(self, tmp_path: Path) -> None:
        self.upstream_dir, self.follower_dir = tmp_path / "upstream", tmp_path / "follower"
        self.control_port, self.upstream_api, self.rpc_port, self.api_port = (free_port() for _ in range(4))

    def upstream(self):
        return running_devnet(self.upstream_dir, self.control_port, self.upstream_api, extra_args=(
            "--bitbayd-rpc-port", str(self.rpc_port), "--bitbayd-rpc-user", USER, "--bitbayd-rpc-password",
            PASSWORD))

    def follower(self, *extra: str):
        url = f"http://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{self.rpc_port}/"
        return running_follower(self.follower_dir, url, self.api_port, *extra)


def _credit(node, api, user: str, amount: int) -> str:
    """Pay ``amount`` on the upstream to a fresh deposit address of the follower's exchange, name ``user``,
    confirm it; return the txid once the follower's exchange has credited it."""
    wif, ok = api.GenerateDepositAddress("")
    txid = node.sendtoaddress(address_of(wif), str(amount))
    node.generate(1)
    wait_until(lambda: any(key.startswith(txid) for key in api.GetSpendable("", "")), timeout=60)
    assert api.Deposit(user, [txid], "") is True
    node.generate(CONFIRMATIONS - 1)
    wait_until(lambda: _registered(api, txid), timeout=60)
    return txid


def _registered(api, txid: str) -> bool:
    return any(key.startswith(txid) and entry["registered"] for key, entry in api.GetDeposits("", "").items())


def _total(api, user: str) -> int:
    balance = api.GetBalance(user, "")
    return 0 if balance is False else balance["liquid"] + balance["reserve"]


def test_deposits_cycles_and_a_reorg_reach_the_followers_exchange(tmp_path) -> None:
    """Deposits made on the upstream are credited in the follower's exchange at the confirmation setting;
    peg cycles and a supply move arrive; a reorg on the upstream (invalidateblock, then a longer branch)
    takes the credit back and gives it again when the deposit is mined again; at the end the follower's chain
    DB equals the upstream's key for key and `halo-exchange audit` passes in the follower."""
    pair = Pair(tmp_path)
    with pair.upstream() as (upstream, node), pair.follower() as (follower, api, log):
        api.StartExchange("", 1)
        txid = _credit(node, api, "karen", 7 * COIN)
        assert _total(api, "karen") == 7 * COIN
        before = api.GetCycle("")
        node.generate(20, "deflate")
        node.generate(60)
        wait_until(lambda: api.GetCycle("") > before + 3, timeout=60)
        assert api.GetBalance("karen", "")["reserve"] > 0  # the supply moved: part of karen's coins is reserve

        # A reorg removes the deposit's block: the credit goes; mined again on a longer branch, it comes back.
        deposit_height = _height_of(node, txid)
        kept = _total(api, "karen")
        node.invalidateblock(deposit_height)
        node.generate(2)
        wait_until(lambda: _total(api, "karen") == 0, timeout=60)
        node.generate(CONFIRMATIONS + 100)
        wait_until(lambda: _total(api, "karen") == kept, timeout=90)
        wait_until(lambda: f"at height {node.getblockcount()}" in log.read_text(), timeout=60)
        node.stop()
        wait_until(lambda: upstream.poll() is not None, timeout=20)
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=30) == 0, log.read_text()[-3000:]
    assert _same_chains(pair)
    result = run_cli("audit", "--datadir", str(pair.follower_dir))
    assert result.returncode == 0, result.stdout + result.stderr


def _height_of(node, txid: str) -> int:
    for height in range(node.getblockcount(), -1, -1):
        if txid in node.getblock(height)["txids"]:
            return height
    raise AssertionError(f"{txid} not in the chain")


def _same_chains(pair: Pair) -> bool:
    follower = plyvel.DB(str(pair.follower_dir / CHAIN_SUBDIR), compression=None)
    upstream = plyvel.DB(str(pair.upstream_dir / CHAIN_SUBDIR), compression=None)
    try:
        assert_same_chain(follower, upstream)
    finally:
        follower.close()
        upstream.close()
    return True


def test_a_follower_killed_during_sync_resumes_without_gap_or_double(tmp_path) -> None:
    """SIGKILL of the follower while it syncs a long chain: restarted on the same data dir it goes on from
    its last committed block and ends equal to the upstream key for key (no block missing, none twice)."""
    pair = Pair(tmp_path)
    with pair.upstream() as (upstream, node):
        for _ in range(6):
            for _ in range(3):
                node.sendtoaddress(node.getnewaddress(), str(2 * COIN))
            node.generate(40)
        tip = node.getblockcount()
        for kill_after in (0.8, 1.5):
            with pair.follower() as (follower, api, log):
                time.sleep(kill_after)
                follower.send_signal(signal.SIGKILL)
                follower.wait()
        with pair.follower() as (follower, api, log):
            wait_until(lambda: f"at height {tip}" in log.read_text(), timeout=120)
            follower.send_signal(signal.SIGTERM)
            assert follower.wait(timeout=30) == 0
            starts = [int(line.rsplit("at height ", 1)[1].split(",")[0]) for line in log.read_text().splitlines()
                      if "follower node in" in line]
            assert any(0 < height < tip for height in starts), starts  # a kill did land mid-sync
        node.stop()
        wait_until(lambda: upstream.poll() is not None, timeout=20)
    assert _same_chains(pair)


def test_the_upstream_away_and_back(tmp_path) -> None:
    """The upstream stops: the follower keeps its API up (read calls answer from the last known state) and
    says so in its log; the upstream comes back on the same data dir: the follower goes on, and a deposit made
    then is credited."""
    pair = Pair(tmp_path)
    with pair.upstream() as (upstream, node):
        with pair.follower() as (follower, api, log):
            api.StartExchange("", 1)
            _credit(node, api, "karen", 5 * COIN)
            wait_until(lambda: _status(pair)[1].get("state") == "following", timeout=30)
            assert _status(pair)[0] == 0
            node.stop()
            wait_until(lambda: upstream.poll() is not None, timeout=20)
            wait_until(lambda: "unreachable" in log.read_text(), timeout=30)
            assert _total(api, "karen") == 5 * COIN and api.GetCycle("") >= 0
            code, status = wait_until(lambda: (s := _status(pair))[1].get("state") == "upstream-unreachable" and s)
            assert code == 1 and status["last_error"]
            with pair.upstream() as (upstream2, node2):
                _credit(node2, api, "karen", 3 * COIN)
                assert _total(api, "karen") == 8 * COIN
                assert log.read_text().count("following bitbayd at") >= 2  # following again after the gap
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
        code, status = _status(pair)
        assert code == 2 and status["state"] == "stopped"


def _status(pair: Pair) -> tuple[int, dict]:
    """``halo-exchange status --datadir FOLLOWER --json``: (exit code, the node's status; {} until the follower
    has written its status file, which may come after its exchange answers on the operator socket)."""
    result = run_cli("status", "--datadir", str(pair.follower_dir), "--json")
    return result.returncode, json.loads(result.stdout).get("status") or {}


def test_a_withdrawal_is_paid_through_the_upstream(tmp_path) -> None:
    """The follower's exchange pays a withdrawal: the batch goes to the upstream with sendrawtransaction, is
    mined there, seen by the follower and completes; the payee holds the amount less the commission."""
    pair = Pair(tmp_path)
    with pair.upstream() as (upstream, node), pair.follower() as (follower, api, log):
        api.StartExchange("", 1)
        _credit(node, api, "karen", 20 * COIN)
        account = address_of(api.GenerateDepositAddress("")[0])
        commission = {"min": 10_000_000, "max": 1_000_000_000, "percent": 0.001}
        assert api.ExchangeSettings([account], node.getnewaddress(), commission, "", "") is True
        payee = node.getnewaddress()
        ok, withdraw_id = api.Withdraw("karen", 3 * COIN, payee, "liquid", "")
        assert ok is True
        for _ in range(60):
            if api.CheckWithdraw(withdraw_id, 0, "")["status"] == "complete":
                break
            node.generate(1)
            time.sleep(0.3)
        status = api.CheckWithdraw(withdraw_id, 0, "")
        assert status["status"] == "complete", (status, log.read_text()[-2000:])
        assert [entry["amount"] for entry in node.listunspent(payee)] == [3 * COIN - 10_000_000]
        assert "sent transaction" in log.read_text()

"""A `halo-exchange devnet` killed with SIGKILL in the middle of a cycle update made in steps: the restart
resumes the update from the exchange DB, and every user ends with exactly the balance of the same exchange
left to finish the update undisturbed; `halo-exchange audit` passes.

The set-up (once): 300 users funded by trades, `cycle_step_accounts = 1` so that the update at the next cycle
takes hundreds of reactor turns, and a chain mined to the block before a cycle whose supply moves. Each trial
copies that data dir, starts the node, mines the cycle's first block, kills the node after a random moment
within the update, restarts it and reads every balance. The reference is one more copy left undisturbed.
"""

from __future__ import annotations

import random
import shutil
import time
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from tests.framework import (
    credit_over_api,
    exchange_lag,
    free_port,
    mine_to_a_supply_change,
    run_cli,
    running_devnet,
    wait_until,
)

pytestmark = pytest.mark.slow

USERS = 300
TRIALS = 4


def _api(port: int) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")


def _configure(datadir: Path) -> None:
    """Steps of one account (hundreds of turns for the update), and the log in the data dir."""
    (datadir / "halo-exchange.conf").write_text(f"[devnet]\nlog_file = {datadir / 'devnet.log'}\n"
                                                 "[exchange]\ncycle_step_accounts = 1\n")


def _prepare(datadir: Path, api_port: int) -> int:
    """The funded exchange, stopped at the block before a supply-moving cycle; the cycle it will start."""
    datadir.mkdir(mode=0o700)
    _configure(datadir)
    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.StartExchange("", 1) is True
        credit_over_api(node, api, "whale", 5000 * COIN)
        for n in range(USERS):
            assert api.Trade("whale", (n + 1) * 1_000_000, f"user{n:04d}", "liquid", "") is True
        info = mine_to_a_supply_change(node)
        wait_until(lambda: exchange_lag_running(api, node))
        node.stop()
        assert process.wait(timeout=60) == 0
    return info["cycle"] + 1


def exchange_lag_running(api: xmlrpc.client.ServerProxy, node: xmlrpc.client.ServerProxy) -> bool:
    """The running exchange has applied the node's tip (its cycle is the tip's)."""
    return api.GetCycle("") == node.getpeginfo()["cycle"]


def _balances(datadir: Path, api_port: int, cycle: int, kill_after: float | None) -> dict[str, dict]:
    """Mine the cycle's first block; kill the node after ``kill_after`` seconds (None: let it finish), restart
    if killed; every user's balance once the exchange is at ``cycle``."""
    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == cycle - 1)
        node.generate(1, "nochange")
        if kill_after is not None:
            time.sleep(kill_after)
            process.kill()
            process.wait()
        else:
            wait_until(lambda: api.GetCycle("") == cycle, timeout=120)
            node.stop()
            assert process.wait(timeout=60) == 0
    if kill_after is not None:
        with running_devnet(datadir, free_port(), api_port) as (process, node):
            api = _api(api_port)
            wait_until(lambda: api.GetCycle("") == cycle, timeout=120)
            balances = {f"user{n:04d}": api.GetBalance(f"user{n:04d}", "") for n in range(USERS)}
            balances["whale"] = api.GetBalance("whale", "")
            node.stop()
            assert process.wait(timeout=60) == 0
        return balances
    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == cycle)
        balances = {f"user{n:04d}": api.GetBalance(f"user{n:04d}", "") for n in range(USERS)}
        balances["whale"] = api.GetBalance("whale", "")
        node.stop()
        assert process.wait(timeout=60) == 0
    return balances


def test_sigkill_during_a_stepped_cycle_update_resumes_it_exactly(tmp_path) -> None:
    api_port = free_port()
    base = tmp_path / "base"
    cycle = _prepare(base, api_port)
    reference_dir = tmp_path / "reference"
    shutil.copytree(base, reference_dir)
    _configure(reference_dir)
    reference = _balances(reference_dir, api_port, cycle, None)
    assert any(balance["reserve"] for balance in reference.values())  # the update moved reserve

    rng = random.Random(2026)
    resumed = 0
    for trial in range(TRIALS):
        datadir = tmp_path / f"trial{trial}"
        shutil.copytree(base, datadir)
        _configure(datadir)
        balances = _balances(datadir, api_port, cycle, rng.uniform(0.05, 0.4))
        assert balances == reference, f"trial {trial}"
        resumed += "resuming the update a stop interrupted" in (datadir / "devnet.log").read_text()
        assert exchange_lag(datadir) == 0
        audited = run_cli("audit", "--datadir", str(datadir))
        assert audited.returncode == 0, audited.stdout + audited.stderr
    assert resumed >= 1  # at least one kill landed inside the update (each trial is checked either way)

"""A `halo-exchange devnet` killed with SIGKILL, or sent SIGTERM, in the middle of a cycle update made in steps:
the restart resumes the update from the exchange DB, and every user ends with exactly the balance of the same
exchange left to finish the update undisturbed; `halo-exchange audit` passes. SIGTERM also stops the node
cleanly (exit 0, nothing logged as an error, the exchange DB never closed under the step's writer thread), with
the DB holding the update as far as its last written step. The in-process form of that stop (the service's stop
path, called exactly while a step is in flight) is tests/integration/test_cycle_update_threads.py.

The set-up (once): 300 users funded by trades, `cycle_step_accounts = 1` so that the update at the next cycle
takes hundreds of reactor turns, and a chain mined to the block before a cycle whose supply moves. Each trial
copies that data dir, starts the node, mines the cycle's first block, kills the node after a random moment
within the update, restarts it and reads every balance. The reference is one more copy left undisturbed.
"""

from __future__ import annotations

import copy
import random
import shutil
import signal
import time
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.config import EXCHANGE_SUBDIR
from halo_exchange.engine import EXCHANGE_BUFFER
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.store import CycleUpdateCodec, ExchangeStore, load_state
from halo_exchange.operator import ask
from halo_exchange.peg.fractions import PEG_SIZE
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


def _prepare(datadir: Path, api_port: int) -> dict:
    """The funded exchange, stopped at the block before a supply-moving cycle; the node's peg info there (the
    cycle it will start is ``cycle + 1``, at ``pegnext``)."""
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
    return info


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
    cycle = _prepare(base, api_port)["cycle"] + 1
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


def _stored(datadir: Path) -> tuple[Book, dict | None]:
    """The book in the exchange DB of the stopped node, and the cycle update under way there (None if none)."""
    store = ExchangeStore(str(datadir / EXCHANGE_SUBDIR))
    try:
        return load_state(store).book, CycleUpdateCodec.load(store)
    finally:
        store.close()


def _problems(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if "ERROR" in line or "Traceback" in line or "is closed" in line.lower() or "Fatal" in line]


@pytest.mark.timeout(180)  # about 15 s
def test_sigterm_during_a_stepped_cycle_update_stops_cleanly_and_the_next_start_resumes_it(tmp_path: Path) -> None:
    datadir, api_port = tmp_path / "devnet", free_port()
    info = _prepare(datadir, api_port)
    log_file = datadir / "devnet.log"
    socket_path = datadir / "exchange.sock"

    book, _ = _stored(datadir)
    expected = copy.deepcopy(book)
    expected.new_cycle(info["cycle"] + 1, min(info["pegnext"] + EXCHANGE_BUFFER, PEG_SIZE - 1))
    assert expected.supply != book.supply
    total = sum(sum(book.balance(name)) for name in book.accounts)

    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == info["cycle"])
        node.generate(1, "nochange")  # the cycle's first block: the update begins, a step a turn

        def under_way() -> dict | None:
            update = ask(socket_path, "status")["exchange"]["cycle_update"]
            return update if update is not None and 0 < update["done"] < update["accounts"] else None

        progress = wait_until(under_way, timeout=20, interval=0.005)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        _, stderr = process.communicate()
    assert _problems(log_file.read_text()) == [] and _problems(stderr) == [], stderr
    assert "received SIGTERM" in log_file.read_text()

    _, update = _stored(datadir)
    assert update is not None, "the stop must land inside the update"  # else the test proved nothing
    assert progress["done"] <= update["position"] < progress["accounts"]

    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == info["cycle"] + 1, timeout=60)
        for name in ["whale"] + [f"user{n:04d}" for n in range(USERS)]:
            liquid, reserve = expected.balance(name)
            assert api.GetBalance(name, "") == {"liquid": liquid, "reserve": reserve}, name
        node.stop()
        assert process.wait(timeout=60) == 0
    assert "resuming the update a stop interrupted" in log_file.read_text()
    assert _problems(log_file.read_text()) == []

    book, update = _stored(datadir)
    assert update is None and book.cycle == expected.cycle and book.supply == expected.supply
    assert {name: book.balance(name) for name in book.accounts} == \
           {name: expected.balance(name) for name in expected.accounts}
    assert sum(sum(book.balance(name)) for name in book.accounts) == total
    assert book.check() == []
    assert exchange_lag(datadir) == 0
    audited = run_cli("audit", "--datadir", str(datadir))
    assert audited.returncode == 0 and "result: OK" in audited.stdout, audited.stdout + audited.stderr

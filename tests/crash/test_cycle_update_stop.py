"""A `halo-exchange devnet` sent SIGTERM in the middle of a cycle update made in steps (each step's batch written
by a thread): the node stops cleanly (exit 0, nothing logged as an error, the exchange DB never closed under the
writer thread), the DB holds the update as far as its last written step, and the next start resumes it and
ends with every balance exactly as the update made at once leaves it; `halo-exchange audit` passes.

The in-process form of the same stop (the service's stop path, called exactly while a step is in flight) is
tests/integration/test_cycle_update_threads.py.
"""

from __future__ import annotations

import copy
import signal
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


def _api(port: int) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")


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
    datadir.mkdir(mode=0o700)
    log_file = datadir / "devnet.log"
    (datadir / "halo-exchange.conf").write_text(f"[devnet]\nlog_file = {log_file}\n"
                                                "[exchange]\ncycle_step_accounts = 1\n")
    socket_path = datadir / "exchange.sock"

    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = _api(api_port)
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.StartExchange("", 1) is True
        credit_over_api(node, api, "whale", 5000 * COIN)
        for n in range(USERS):
            assert api.Trade("whale", (n + 1) * 1_000_000, f"user{n:04d}", "liquid", "") is True
        info = mine_to_a_supply_change(node)
        wait_until(lambda: api.GetCycle("") == node.getpeginfo()["cycle"])
        node.stop()
        assert process.wait(timeout=60) == 0

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

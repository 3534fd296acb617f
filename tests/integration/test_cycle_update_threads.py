"""A cycle update in steps writes each step's batch from a thread (the service's ``_in_thread``); what else
runs meanwhile must not break it. Two interleavings, each made to happen on purpose, on the real service (the
reactor thread, LevelDB, the backup's journal and threads):

* a continuous-backup snapshot taken while a step's batch is in flight in its thread: the snapshot takes its
  view and switches journal segments with no batch being written, so the backup restores exactly the live DB
  (without that, the batch lands in a segment the snapshot then deletes, or after the view);
* the node stopping while a step's batch is in flight: the DB closes only once the write is over, the update
  stops at its last written step, and the next start resumes it to exactly the balances of an undisturbed
  update.

The SIGTERM to a real node process in the middle of an update is tests/crash/test_cycle_update_stop.py.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from halo_exchange.backup.restore import restore
from halo_exchange.backup.snapshot import ChainIdentity
from halo_exchange.chain.params import COIN
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.store import CYCLE_UPDATE
from halo_exchange.service import call_in_reactor
from tests.framework import ServiceHarness, db_contents, run_cli, wait_until

USERS = 200


def _balances(book: Book) -> dict:
    return {name: (a.liquid, a.reserve_total, a.reserve_list()) for name, a in book.accounts.items()}


def _fund(exchange: ServiceHarness) -> None:
    exchange.credit("whale", 500 * COIN)
    for n in range(USERS):
        assert exchange.api.Trade("whale", (n + 1) * 1_000_000, f"user{n:04d}", "liquid", "") is True


def _to_the_block_before_a_supply_change(exchange: ServiceHarness) -> None:
    """Mine (voting deflate) up to the last block of a cycle after which the exchange's effective supply moves."""
    node = exchange.node
    interval = node.params.peg_interval
    for _ in range(30):
        exchange.generate(interval - 1 - node.reader.height() % interval, "deflate")
        if exchange.service.call(lambda engine: engine._effective(node.reader.peg_info().supply_next)
                                 != engine.book.supply):
            return
        exchange.generate(1, "deflate")
    raise AssertionError("the devnet supply never moved")


def _expected_after_the_update(exchange: ServiceHarness) -> Book:
    """The book as the coming cycle's update leaves it, made at once on a copy (nothing else changes it)."""
    def expected(engine) -> Book:
        book = copy.deepcopy(engine.book)
        info = engine.reader.peg_info()
        book.new_cycle(info.cycle + 1, engine._effective(info.supply_next))
        return book
    return exchange.service.call(expected)


def _when_a_step_is_being_written(exchange: ServiceHarness, expected: Book, then: Any) -> Any:
    """On the reactor thread, once a step of the update under way (to ``expected``) has been handed to its
    writer thread and is not yet written (some accounts done, not all): ``then(engine, progress)`` and its
    answer (waited for)."""
    service = exchange.service

    def check() -> Any:
        assert service.state.value == "running", f"exchange mode {service.state.value}: {service.failure_reason}"
        engine = service.loaded_engine
        progress = engine.updating() if engine is not None else None
        assert progress is not None or engine.book.supply != expected.supply, "the update ended: no overlap made"
        writing = engine._update_writing if engine is not None else None
        if progress is None or not 0 < progress["done"] < progress["accounts"] or writing is None \
                or writing.called:
            return None
        return then(engine, progress)

    return wait_until(lambda: call_in_reactor(check), timeout=20, interval=0.001)


def _no_errors(caplog) -> None:
    """Nothing logged an error: no failed write, no DB closed under a thread's use, no unhandled failure."""
    bad = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR
           or "is closed" in record.getMessage().lower() or "db closed" in record.getMessage().lower()]
    assert bad == [], bad


def test_snapshots_taken_while_step_batches_are_written_restore_the_live_db(tmp_path: Path, reactor_thread,
                                                                           caplog) -> None:
    """Snapshots of the continuous backup are taken, on the reactor, each while a step's batch is in flight in
    the writer thread, many times over one update. The backup stays current, and once the node stops,
    restoring it gives the live exchange DB key for key, which `halo-exchange audit` passes."""
    caplog.set_level(logging.INFO)
    backup = tmp_path / "backup"
    with ServiceHarness(tmp_path, backup_dir=backup, cycle_step_accounts=1) as exchange:
        _fund(exchange)
        _to_the_block_before_a_supply_change(exchange)
        expected = _expected_after_the_update(exchange)
        identity = exchange.service.call(lambda engine: ChainIdentity.of(engine.reader))
        exchange.node.generate(1, "deflate")  # the cycle's first block: the update begins, in steps

        snapshots: list[tuple[dict, int | None]] = []

        def snapshot(engine, progress: dict) -> Any:
            taken = exchange.service._backup.snapshot()
            return taken.addCallback(lambda sequence: snapshots.append((dict(progress), sequence)) or True)

        while len(snapshots) < 8:
            _when_a_step_is_being_written(exchange, expected, snapshot)
        assert all(sequence is not None for _, sequence in snapshots), snapshots  # each written whole
        progress = exchange.service.call(lambda engine: engine.updating())
        assert progress is not None and progress["done"] < progress["accounts"]  # all of them during the update
        assert len({sequence for _, sequence in snapshots}) == len(snapshots)  # each at another batch

        exchange.service.call(lambda engine: engine.when_idle(lambda: None))
        assert exchange.service.call(lambda engine: _balances(engine.book)) == _balances(expected)
        assert exchange.api.Trade("whale", 5, "user0001", "liquid", "") is True  # and it serves after
        status = exchange.service.backup_status()
        assert status["state"] == "current" and status["error"] is None, status
        assert status["last_sequence"] == status["primary_sequence"]
        assert exchange.audit().ok
    _no_errors(caplog)

    live = db_contents(tmp_path / "exchange")
    restored = restore(backup, tmp_path / "restored", identity)
    assert restored is not None
    assert db_contents(tmp_path / "restored") == live
    audited = run_cli("audit", "--datadir", str(tmp_path), "--chain-db", str(tmp_path / "node" / "chain"),
                      "--exchange-db", str(tmp_path / "restored"))
    assert audited.returncode == 0 and "result: OK" in audited.stdout, audited.stdout + audited.stderr


def test_a_stop_while_a_step_is_written_closes_after_it_and_the_next_start_resumes(tmp_path: Path, reactor_thread,
                                                                                  caplog) -> None:
    """The service's stop path (what ``on_node_stop`` runs) called while a step's batch is in flight: the DB
    closes only once that write is over (no failed write, no "closed" error), the DB holds the update as far
    as its last written step, and the next start resumes it to exactly the balances of the update made at
    once; `audit` passes and the sum of values is what it was."""
    caplog.set_level(logging.INFO)
    with ServiceHarness(tmp_path, cycle_step_accounts=1) as exchange:
        _fund(exchange)
        _to_the_block_before_a_supply_change(exchange)
        expected = _expected_after_the_update(exchange)
        total = exchange.service.call(lambda engine: sum(sum(engine.book.balance(n)) for n in engine.book.accounts))
        exchange.node.generate(1, "deflate")

        def stop(engine, progress: dict) -> Any:
            return exchange.service._close().addCallback(lambda _: (dict(progress), engine))

        progress, engine = _when_a_step_is_being_written(exchange, expected, stop)
        assert exchange.service.state.value == "closed"
        assert engine.commit.failure is None  # the step in flight was written, not cut off
        assert engine._update_writing is None and engine.updating() is not None  # stopped, not finished
        exchange.node.close()
        stored = db_contents(tmp_path / "exchange").get(CYCLE_UPDATE)
        assert stored is not None, "the update's progress must be on disk"
        # The step in flight (its accounts counted in ``done`` once made) was written, and none after it.
        assert json.loads(stored)["position"] == progress["done"] < progress["accounts"]
        _no_errors(caplog)

        caplog.clear()
        exchange.open()  # the next start, on the same DBs
        exchange.service.call(lambda engine: engine.when_idle(lambda: None))
        assert "resuming the update a stop interrupted" in caplog.text
        book = exchange.service.call(lambda engine: copy.deepcopy(engine.book))
        assert book.updating is None and book.cycle == expected.cycle and book.supply == expected.supply
        assert _balances(book) == _balances(expected) and book.pool == expected.pool
        assert sum(sum(book.balance(name)) for name in book.accounts) == total
        assert book.check() == [] and exchange.audit().ok
    _no_errors(caplog)

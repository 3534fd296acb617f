"""A cycle update in steps (a book larger than the engine's ``cycle_chunk``): the same balances as an update made
at once, nothing applied against a half re-valued book (calls and blocks wait for it, in order), and a stop in
the middle resumed exactly from the exchange DB."""

from __future__ import annotations

import copy
import random
import xmlrpc.client

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.chain.params import COIN
from halo_exchange.ledger.book import Book, LedgerError
from halo_exchange.ledger.store import ExchangeStore
from halo_exchange.peg import Fractions
from node_hooks.devnode.node import DevNode
from tests.framework import EngineHarness

CHUNK = 3


def _book(seed: int, supply: int, accounts: int = 25) -> Book:
    rng = random.Random(seed)
    book = Book(1, supply)
    for n in range(accounts):
        book.credit(f"user{n:03d}", Fractions.std(rng.randrange(10**6, 10**13)))
    for _ in range(accounts):
        a, b = rng.sample(sorted(book.accounts), 2)
        book.move_liquid(a, b, rng.randrange(book.account(a).liquid + 1) or 1) if book.account(a).liquid else None
    return book


def _balances(book: Book) -> dict:
    return {name: (a.liquid, a.reserve_total, a.reserve_list()) for name, a in book.accounts.items()}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.integers(60, 1190), st.integers(-3, 3), st.integers(1, 30))
def test_an_update_in_steps_is_exactly_the_update_at_once(seed: int, supply: int, move: int, chunk: int) -> None:
    at_once, stepped = _book(seed, supply), _book(seed, supply)
    at_once.new_cycle(2, supply + move)
    update = stepped.cycle_update(2, supply + move)
    while not update.done:
        update.step(chunk)
    update.finish()
    assert _balances(stepped) == _balances(at_once) and stepped.pool == at_once.pool
    assert (stepped.pool_total, stepped.supply, stepped.cycle) == (at_once.pool_total, at_once.supply, 2)
    assert stepped.check() == []


def test_a_stopped_update_resumes_from_its_progress_exactly() -> None:
    reference, book = _book(7, 500), _book(7, 500)
    reference.new_cycle(2, 497)
    update = book.cycle_update(2, 497)
    update.step(10)
    progress = copy.deepcopy(update.progress())
    with pytest.raises(LedgerError, match="a cycle update is under way"):
        book.move_liquid("user001", "user002", 1)  # nothing changes a book in the middle of an update
    book.updating = None  # as the book loads from the DB after a stop
    resumed = book.cycle_update(2, 497, progress)
    while not resumed.done:
        resumed.step(4)
    resumed.finish()
    assert _balances(book) == _balances(reference) and book.pool == reference.pool


@pytest.fixture
def harness(tmp_path):
    with EngineHarness(tmp_path) as harness:
        yield harness


def _to_next_cycle_with_a_supply_change(harness: EngineHarness) -> tuple[int, str]:
    """Mine up to the block before a cycle whose supply differs; return the height and hash of that next block
    without handing it to the engine yet."""
    interval = harness.node.params.peg_interval
    engine = harness.engine
    for _ in range(12):
        harness.node.generate(interval - 1 - harness.node.reader.height() % interval, "deflate")
        harness.sync()
        harness.node.generate(1, "deflate")  # the first block of the next cycle
        height = harness.node.reader.height()
        peg = harness.node.reader.block_record(height).peg
        if engine._effective(peg.supply) != engine.book.supply:
            harness.skip_events()
            return height, harness.node.reader.block_hash(height)[::-1].hex()
        harness.sync()
    raise AssertionError("the supply never moved")


def _fund(harness: EngineHarness, users: int = 12) -> None:
    harness.credit("whale", 500 * COIN)
    for n in range(users):
        harness.settle(harness.engine.trade("whale", (n + 1) * COIN, f"user{n:03d}"))


def test_calls_and_blocks_wait_for_the_update_and_run_after_it_in_order(harness: EngineHarness) -> None:
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    before = engine.balance("user003")
    expected = copy.deepcopy(engine.book)
    expected.new_cycle(height // harness.node.params.peg_interval,
                       engine._effective(harness.node.reader.block_record(height).peg.supply))

    connected = engine.block_connected(height, block_hash)
    assert engine.updating() == {"cycle": expected.cycle, "old_supply": engine.book.supply,
                                 "new_supply": expected.supply, "done": 0, "accounts": len(engine.book.accounts)}
    trade = harness.api_call("Trade", "user003", "1000", "user004", "liquid", "")
    balance = harness.api_call("GetBalance", "user003", "")
    assert engine.balance("user003") == before  # nothing ran yet: the trade waits for the update
    harness.clock.advance(0)
    assert engine.updating() is None and connected.called
    assert xmlrpc.client.loads(trade.result)[0][0] is True
    liquid, reserve = expected.balance("user003")
    assert xmlrpc.client.loads(balance.result)[0][0] == {"liquid": liquid - 1000, "reserve": reserve}
    assert engine.book.check() == [] and harness.audit().ok


def test_a_stop_in_the_middle_of_the_update_resumes_it_from_the_db(harness: EngineHarness) -> None:
    """The process dies after some steps were written (the DB closed with later steps unwritten, as SIGKILL
    leaves it): at the restart the update resumes from its last written step, and ends exactly where an
    update without the stop ends."""
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    expected = copy.deepcopy(engine.book)
    expected.new_cycle(height // harness.node.params.peg_interval,
                       engine._effective(harness.node.reader.block_record(height).peg.supply))

    engine.block_connected(height, block_hash)
    for _ in range(2):  # two turns: two steps run and their batches are written
        call = harness.clock.calls.pop(0)
        call.func(*call.args, **call.kw)
    assert 0 < engine.updating()["done"] < len(engine.book.accounts)
    harness.reopen()  # the store is closed as a kill leaves it; a new engine loads it
    assert harness.engine.updating() is not None  # resuming before anything else
    harness.settle(harness.engine.catch_up())
    assert harness.engine.updating() is None
    assert _balances(harness.engine.book) == _balances(expected) and harness.engine.book.pool == expected.pool
    assert harness.engine.book.check() == [] and harness.audit().ok


def test_a_trade_of_the_turn_the_update_begins_in_reaches_the_disk_before_the_first_step(
        harness: EngineHarness) -> None:
    """A trade made in the same reactor turn as the block that begins an update (its batch not yet written) is
    on disk, as it was, before the first step's batch: whatever order the turn's scheduled calls run in, the
    DB ends equal to memory and to an update made at once after the trade. (Run in reverse here: a first step
    written before the trade's batch would be overwritten by the trade's balances from before the update.)"""
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    first_step = list(engine.book.accounts)[:CHUNK]
    trade = engine.trade(first_step[0], COIN, first_step[1])
    expected = copy.deepcopy(engine.book)
    expected.new_cycle(height // harness.node.params.peg_interval,
                       engine._effective(harness.node.reader.block_record(height).peg.supply))

    connected = engine.block_connected(height, block_hash)
    while harness.clock.calls:  # newest first
        call = harness.clock.calls.pop()
        call.func(*call.args, **call.kw)
    assert trade.called and connected.called and engine.updating() is None
    assert _balances(engine.book) == _balances(expected)
    harness.reopen()
    assert _balances(harness.engine.book) == _balances(expected) and harness.engine.book.pool == expected.pool
    assert harness.engine.book.check() == [] and harness.audit().ok


def test_the_escrow_settlement_of_the_last_step_is_what_reaches_the_disk(harness: EngineHarness) -> None:
    """A withdrawal waiting in escrow (its account the newest, so re-valued in the last step) has the part a
    deflation moved into reserve settled back to its user at the update's end: the DB holds the settled
    balances, not those the last step computed before the settlement."""
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    harness.settle(engine.request_withdrawal("user011", 5 * COIN, harness.node.get_new_address()))
    escrow = next(name for name in engine.book.accounts if name.startswith("\x00withdraw:"))
    assert list(engine.book.accounts)[-1] == escrow  # the newest: re-valued in the last step
    before_update = engine.balance(escrow)
    harness.settle(engine.block_connected(height, block_hash))
    assert engine.updating() is None and engine.book.check() == []
    assert engine.balance(escrow) != before_update or engine.balance("user011")[1] > 0  # the settlement moved
    before = _balances(engine.book)
    harness.reopen()
    assert _balances(harness.engine.book) == before and harness.engine.book.check() == []
    assert harness.audit().ok


def test_audit_of_a_db_stopped_in_the_middle_of_an_update_checks_it_as_the_next_start_finishes_it(
        harness: EngineHarness) -> None:
    """`halo-exchange audit` on a stopped node whose exchange DB holds a half-done update (sound, resumable)
    finishes the update in memory and reports a clean ledger, saying so; it writes nothing."""
    from tests.framework import run_cli

    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    engine.block_connected(height, block_hash)
    for _ in range(2):
        call = harness.clock.calls.pop(0)
        call.func(*call.args, **call.kw)
    assert 0 < engine.updating()["done"] < len(engine.book.accounts)
    harness.close()
    audited = run_cli("audit", "--datadir", str(harness.tmp_path), "--chain-db",
                      str(harness.tmp_path / "node" / "chain"), "--exchange-db", str(harness.tmp_path / "exchange"))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "was under way" in audited.stdout
    harness.node = DevNode(harness.tmp_path / "node")  # the fixture closes it again
    harness.start_engine()
    assert harness.engine.updating() is not None  # the DB still holds the half-done update: audit wrote nothing


def test_a_step_that_cannot_be_written_stops_the_update_and_answers_what_waited(harness: EngineHarness) -> None:
    """The DB goes away in the middle of an update (closed under it): the step's write fails, the commit is
    failed for good, and a call waiting for the update is answered with the failure instead of hanging; the
    book stays marked as updating, so nothing touches it."""
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    engine.block_connected(height, block_hash)
    waiting = harness.api_call("GetBalance", "user003", "")
    harness.store.close()
    harness.clock.advance(0)
    assert engine.commit.failure is not None
    assert waiting.called  # answered, not hanging
    with pytest.raises(xmlrpc.client.Fault):
        xmlrpc.client.loads(waiting.result)
    assert engine.book.updating is not None
    with pytest.raises(LedgerError, match="a cycle update is under way"):
        engine.book.move_liquid("user003", "user004", 1)
    harness.store = ExchangeStore(str(harness.tmp_path / "exchange"))  # the fixture closes it


def test_calls_that_waited_for_the_update_keep_their_peer_for_the_password_back_off(harness: EngineHarness) -> None:
    """Wrong passwords sent during an update are checked after it as coming from their peer: that peer backs
    off (its later guesses are not even checked), and each call is counted once."""
    from halo_exchange.rpc.http import REQUEST_PEER

    _fund(harness)
    engine = harness.engine
    assert harness.api_call("SetPassword", "s3cret", "") is not None
    harness.clock.advance(0)
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    engine.block_connected(height, block_hash)
    token = REQUEST_PEER.set("192.0.2.7")
    try:
        guesses = [harness.api_call("GetCycle", f"guess{n}") for n in range(7)]
    finally:
        REQUEST_PEER.reset(token)
    assert not any(guess.called for guess in guesses)  # all wait for the update
    harness.clock.advance(0)
    assert all(xmlrpc.client.loads(guess.result)[0][0] == "Incorrect Password" for guess in guesses)
    dispatcher = harness._dispatcher
    assert dispatcher._backoff.backing_off("192.0.2.7")
    assert dispatcher.call_counts["GetCycle"] == 7


def test_a_signed_commands_operations_wait_for_an_update_that_began_after_it_was_accepted(
        harness: EngineHarness) -> None:
    """An exec command accepted just before a cycle update runs once its record is written, inside the update:
    its trade waits for the update like an API call, then applies to the re-valued book."""
    import hashlib

    from ecdsa import SECP256k1, SigningKey

    from halo_exchange.execsig import public_key_hex, sign_command
    from halo_exchange.rpc.api import ExchangeAPI
    from halo_exchange.rpc.dispatch import APIDispatcher

    key = SigningKey.from_string(b"\x11" * 32, curve=SECP256k1, hashfunc=hashlib.sha256)
    api = ExchangeAPI(lambda: harness.engine, lambda: None, exec_pubkey=public_key_hex(key.get_verifying_key()))
    api.started = True
    dispatcher = APIDispatcher(api)
    _fund(harness)
    engine = harness.engine
    engine.cycle_chunk = CHUNK
    height, block_hash = _to_next_cycle_with_a_supply_change(harness)
    command = sign_command("result = exchange.trade('user003', 1000, 'user004')", key)
    answer = dispatcher.handle(xmlrpc.client.dumps((command,), "API").encode())  # accepted: its record is queued
    engine.block_connected(height, block_hash)  # the update begins in the same turn
    expected = copy.deepcopy(engine.book)
    expected.updating = None
    expected.new_cycle(height // harness.node.params.peg_interval,
                       engine._effective(harness.node.reader.block_record(height).peg.supply))
    expected.move_liquid("user003", "user004", 1000)
    harness.clock.advance(0)
    assert xmlrpc.client.loads(answer.result)[0][0] is True
    assert _balances(engine.book) == _balances(expected) and engine.book.check() == []

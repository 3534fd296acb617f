"""The ledger book's speed figures (issue 4 targets): liquid trades per second among 100,000 users, the cycle
update after a 3-step supply change for 100,000 and 1,000,000 users, and resident memory per idle user."""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from array import array

from halo_exchange.ledger.book import Account, Book
from halo_exchange.peg import Fractions

SUPPLY = 100
TEMPLATES = [Fractions.std(v) for v in (10**8, 5 * 10**9, 123_456_789, 10**12)]


def populate(n: int) -> Book:
    """A book of ``n`` users, each holding one of four deposits (set up by cloning, not measured)."""
    book = Book(1, SUPPLY)
    counts = [0] * len(TEMPLATES)
    templates = []
    for fractions in TEMPLATES:
        probe = Book(1, SUPPLY)
        probe.credit("t", fractions)
        templates.append(probe.account("t"))
    for u in range(n):
        t = u % len(TEMPLATES)
        src = templates[t]
        reserve = array(src.reserve.typecode, src.reserve)
        book.accounts[f"user{u:07d}"] = Account(u + 1, src.liquid, reserve, src.reserve_total)
        counts[t] += 1
    book.next_id = n + 1
    for t, fractions in enumerate(TEMPLATES):
        values = fractions.to_list()
        for i, v in enumerate(values):
            book.book[i] += counts[t] * v
            if i >= SUPPLY:
                book.pool[i] += counts[t] * v
        book.pool_total += counts[t] * fractions.high(SUPPLY)
    return book


def trades_per_second(book: Book, trades: int = 200_000) -> float:
    rng = random.Random(5)
    names = list(book.accounts)
    pairs = [(names[rng.randrange(len(names))], names[rng.randrange(len(names))]) for _ in range(trades)]
    start = time.perf_counter()
    for a, b in pairs:
        book.move_liquid(a, b, 1000)
    return trades / (time.perf_counter() - start)


def cycle_seconds(book: Book) -> float:
    start = time.perf_counter()
    book.new_cycle(book.cycle + 1, book.supply + 3)
    return time.perf_counter() - start


def bytes_per_idle_user(n: int = 20_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = populate(n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del book
    return (after - before) / n


def run(runs: int = 3) -> list[tuple[str, float, str]]:
    book = populate(100_000)
    trades = statistics.median(trades_per_second(book) for _ in range(runs))
    cycles_100k = []
    for _ in range(runs):
        book = populate(100_000)
        cycles_100k.append(cycle_seconds(book))
    del book
    big = populate(1_000_000)
    cycle_1m = cycle_seconds(big)
    del big
    gc.collect()
    return [
        ("book liquid trades", trades, "trades/s among 100k users (target >= 20,000)"),
        ("book cycle, 100k users", statistics.median(cycles_100k), "seconds, 3-step deflation (target < 1)"),
        ("book cycle, 1M users", cycle_1m, "seconds, 3-step deflation, one run (target < 10)"),
        ("book memory per idle user", bytes_per_idle_user(), f"bytes at supply {SUPPLY} (target < 1024)"),
        ("engine durable trades", statistics.median(engine_trades_per_second() for _ in range(runs)),
         "trades/s, 100 per synced batch (group commit)"),
    ]


def engine_trades_per_second(per_turn: int = 100, turns: int = 50) -> float:
    """Durable trades through the engine: ``per_turn`` trades share each synced batch (group commit)."""
    import tempfile

    from tests.framework import EngineHarness

    with tempfile.TemporaryDirectory() as tmp, EngineHarness(tmp, watch=False) as harness:
        engine = harness.engine
        engine.book.credit("seed_account", TEMPLATES[3])
        names = [f"user{u:05d}" for u in range(1000)]
        rng = random.Random(3)
        start = time.perf_counter()
        for _ in range(turns):
            for _ in range(per_turn):
                engine.trade("seed_account", 1000, names[rng.randrange(len(names))])
            harness.clock.advance(0)
        return per_turn * turns / (time.perf_counter() - start)

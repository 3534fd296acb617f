"""The ledger book's speed figures: liquid trades per second among 100,000 users, the cycle update after a
3-step supply change for 100,000 and 1,000,000 users, and memory per idle user at supplies 100, 600 and 1198
(target: under 1 KiB at every supply)."""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from array import array

from halo_exchange.ledger.book import Account, Book
from halo_exchange.peg import Fractions

SUPPLY = 100  # where the speed figures are taken
MEMORY_SUPPLIES = (100, 600, 1198)
TEMPLATES = [Fractions.std(v) for v in (10**8, 5 * 10**9, 123_456_789, 10**12)]


def populate(n: int, supply: int = SUPPLY) -> Book:
    """A book of ``n`` users, each holding one of four deposits (set up by cloning, not measured); every
    account has its own copy of its reserve, packed as the book keeps it."""
    book = Book(1, supply)
    counts = [0] * len(TEMPLATES)
    templates = []
    for fractions in TEMPLATES:
        probe = Book(1, supply)
        probe.credit("t", fractions)
        template = probe.account("t")
        template.pack()  # as an idle account is kept (a fresh credit stays whole while it is among the hot ones)
        templates.append(template)
    for u in range(n):
        t = u % len(TEMPLATES)
        src = templates[t]
        reserve = array(src.reserve.typecode, src.reserve)
        deep = bytes(bytearray(src.deep))  # bytes(b) would share the object and hide its cost
        book.accounts[f"user{u:07d}"] = Account(u + 1, src.liquid, reserve, src.reserve_total, deep, src.base)
        counts[t] += 1
    book.next_id = n + 1
    for t, fractions in enumerate(TEMPLATES):
        values = fractions.to_list()
        for i, v in enumerate(values):
            book.book[i] += counts[t] * v
            if i >= supply:
                book.pool[i] += counts[t] * v
        book.pool_total += counts[t] * fractions.high(supply)
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


def bytes_per_idle_user(n: int = 20_000, supply: int = SUPPLY) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = populate(n, supply)
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
    trades_1m = trades_per_second(big)
    cycle_1m = cycle_seconds(big)
    del big
    gc.collect()
    return [
        ("book liquid trades", trades, "trades/s among 100k users (target >= 20,000)"),
        ("book cycle, 100k users", statistics.median(cycles_100k), "seconds, 3-step deflation (target < 1)"),
        ("book liquid trades, 1M users", trades_1m, "trades/s among 1M users, one run"),
        ("book cycle, 1M users", cycle_1m, "seconds, 3-step deflation, one run (target < 10)"),
        *((f"book memory per idle user, supply {supply}", bytes_per_idle_user(supply=supply),
           "bytes (target < 1024)") for supply in MEMORY_SUPPLIES),
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

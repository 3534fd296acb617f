"""Throughput of the peg library's hot operations, as operations per second (median of several runs)."""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable

from halo_exchange.peg import Fractions, PegData, PegLevel, ops


def _rate(fn: Callable[[], object], min_seconds: float = 0.3) -> float:
    """Calls per second of ``fn`` over at least ``min_seconds``."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls / elapsed


def _median_rate(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(_rate(fn) for _ in range(runs))


def _update_many(users: int) -> Callable[[], object]:
    """One cycle update of ``users`` balances through the reference ops (per-balance rate reported)."""
    rng = random.Random(7)
    level0 = PegLevel(1, 0, 3, 100, 100, 100)
    balances = [PegData.at_level(Fractions.std(rng.randint(10**6, 10**12)), level0, id=i + 1) for i in range(users)]
    book = Fractions.zero()
    for balance in balances:
        book = book + balance.fractions
    exchange = PegData.at_level(book, level0)

    def run() -> None:
        level, pool = ops.get_peg_level(2, 1, 3, 103, 103, 103, exchange, PegData.from_base64(""))
        for balance in balances:
            _, pool = ops.update_peg_balance(balance, pool, level)

    return run


def run(runs: int = 5) -> list[tuple[str, float, str]]:
    """Rows of (operation, median ops/s, note)."""
    one_bay = Fractions.std(100_000_000)
    packed = one_bay.pack()
    level = PegLevel(1, 0, 3, 100, 100, 100)
    a = PegData.at_level(Fractions.std(10**12), level, id=1)
    b = PegData.at_level(Fractions.std(10**11), level, id=2)
    users = 200
    update = _update_many(users)
    rows = [
        ("Fractions.std(1 BAY)", _median_rate(lambda: Fractions.std(100_000_000), runs), ""),
        ("Fractions.std(20M BAY)", _median_rate(lambda: Fractions.std(2 * 10**15), runs), ""),
        ("low(S) + high(S)", _median_rate(lambda: (one_bay.low(100), one_bay.high(100)), runs), ""),
        ("ratio_part", _median_rate(lambda: one_bay.ratio_part(12_345_678), runs), ""),
        ("pack", _median_rate(one_bay.pack, runs), ""),
        ("unpack", _median_rate(lambda: Fractions.unpack(packed), runs), ""),
        ("ops.move_liquid", _median_rate(lambda: ops.move_liquid(10**8, a, b, level), runs), "reference"),
        (
            "ops.update_peg_balance",
            _median_rate(update, runs) * users,
            f"reference, per balance ({users} users)",
        ),
    ]
    return rows

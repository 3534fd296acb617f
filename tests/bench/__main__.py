"""``make bench``: run every benchmark and print one table of medians."""

from __future__ import annotations

import os
import platform
import sys

from tests.bench import (
    api_bench,
    backup_bench,
    book_bench,
    devnode_bench,
    follower_bench,
    payout_bench,
    payout_stall_bench,
    peg_bench,
    recover_bench,
    scale_bench,
)


def main() -> int:
    runs = 5
    print(f"halo-exchange benchmarks: median of {runs} runs, Python {platform.python_version()}, {platform.machine()}")
    print(f"{'operation':<32} {'figure':>14}  unit and note (ops/s unless stated)")
    print("-" * 74)
    rows = (peg_bench.run(runs) + devnode_bench.run(runs) + payout_bench.run(runs) + payout_stall_bench.run(runs)
            + book_bench.run(3) + recover_bench.run(3) + api_bench.run(3) + backup_bench.run(3)
            # A million users in a devnet process (SCALE_USERS): cold start, memory, the reactor in a cycle update.
            + scale_bench.run()
            # Last: builds (or copies from .bench-cache/) a devnet chain, syncs it 3 times (FOLLOWER_BENCH_BLOCKS).
            + follower_bench.run(3))
    for name, rate, note in rows:
        figure = f"{rate:>14,.0f}" if rate >= 100 else f"{rate:>14.3f}"
        print(f"{name:<32} {figure}  {note}")
    # The API benchmark leaves the process's reactor thread running; it cannot be restarted, so just exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

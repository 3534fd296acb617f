"""``make bench``: run every benchmark and print one table of medians."""

from __future__ import annotations

import platform
import sys

from tests.bench import book_bench, devnode_bench, peg_bench


def main() -> int:
    runs = 5
    print(f"halo-exchange benchmarks: median of {runs} runs, Python {platform.python_version()}, {platform.machine()}")
    print(f"{'operation':<28} {'figure':>14}  unit and note (ops/s unless stated)")
    print("-" * 70)
    rows = peg_bench.run(runs) + devnode_bench.run(runs) + book_bench.run(3)
    for name, rate, note in rows:
        figure = f"{rate:>14,.0f}" if rate >= 100 else f"{rate:>14.3f}"
        print(f"{name:<28} {figure}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

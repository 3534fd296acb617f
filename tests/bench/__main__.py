"""``make bench``: run every benchmark and print one table of medians."""

from __future__ import annotations

import platform
import sys

from tests.bench import devnode_bench, peg_bench


def main() -> int:
    runs = 5
    print(f"halo-exchange benchmarks: median of {runs} runs, Python {platform.python_version()}, {platform.machine()}")
    print(f"{'operation':<28} {'ops/s':>14}  note")
    print("-" * 70)
    rows = peg_bench.run(runs) + devnode_bench.run(runs)
    for name, rate, note in rows:
        print(f"{name:<28} {rate:>14,.0f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

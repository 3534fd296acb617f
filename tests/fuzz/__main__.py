"""`python -m tests.fuzz [--requests N] [--seed S]` (`make fuzz`): the fuzz of :mod:`tests.fuzz.fuzzer` against
a fresh devnet in a temporary directory, progress on stderr; exit 0 when nothing was found, 1 otherwise."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from tests.fuzz.fuzzer import DEFAULT_SEED, FuzzFinding, run_fuzz


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", DEFAULT_SEED)))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="halo-fuzz-") as tmp:
        try:
            report = run_fuzz(Path(tmp), args.requests, args.seed,
                              progress=lambda line: print(line, file=sys.stderr, flush=True))
        except FuzzFinding as finding:
            print(f"FOUND (seed {args.seed}): {finding}", file=sys.stderr)
            return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The issue-14 fuzz at a small size, fixed seed (tests/fuzz; `make fuzz` runs 100,000 requests)."""

from __future__ import annotations

from tests.fuzz.fuzzer import DEFAULT_SEED, run_fuzz


def test_a_seeded_fuzz_of_both_ports_finds_nothing(tmp_path) -> None:
    """600 hostile requests (about 1 s of fuzz, a few s with the devnet's start, stop and audit): every answer a
    status line with no traceback, path or internal error, balances moved only by accepted Trades, the process
    alive, both ports answering, audit clean."""
    report = run_fuzz(tmp_path, 600, DEFAULT_SEED)
    assert "nothing found" in report

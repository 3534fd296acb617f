"""Operator hygiene that needs no running node: what ``make run`` passes on (issue 13, item 15)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.framework import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_passes_args_and_datadir_to_the_devnet_command():
    """``make run ARGS="--api-port 56779"`` adds the flags to the command it runs (dry run: nothing starts)."""
    result = subprocess.run(["make", "-n", "run", "ARGS=--api-port 56779 --mine-every 5", "DATADIR=/tmp/halo-x"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [command] = [line for line in result.stdout.splitlines() if "halo-exchange devnet" in line]
    assert command.endswith("halo-exchange devnet --datadir /tmp/halo-x --api-port 56779 --mine-every 5")


def test_failed_passwords_are_logged_once_a_window_with_a_count(caplog):
    """The first failed password of a minute is logged at once; the rest are counted into the next line."""
    from halo_exchange.rpc.dispatch import PasswordFailures

    now = [1000.0]
    failures = PasswordFailures(clock=lambda: now[0], window=60)
    with caplog.at_level("WARNING", logger="halo_exchange.admin"):
        for _ in range(5):
            failures.failed("GetBalance")
        now[0] += 61
        failures.failed("Trade")
    assert [r.getMessage() for r in caplog.records] == [
        "admin: failed password attempt (GetBalance)",
        "admin: failed password attempt (Trade) (4 more since the last such line)",
    ]


def _user_docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "contrib").glob("*.md"))]


def test_readme_and_docs_refer_only_to_what_a_clone_has():
    """README.md, docs/ and contrib/ name no file outside the repository (the design page, the reference
    folder, the issue tracker), and every docs/, contrib/ or halo_exchange/ path they name exists."""
    import re

    outside = re.compile(r"DESIGN\.md|reference/|shared/|`issues`|\bissues? \d+")
    problems = []
    for doc in _user_docs():
        text = doc.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            for match in outside.finditer(line):
                problems.append(f"{doc.relative_to(ROOT)}:{number}: {match.group(0)}")
        for path in set(re.findall(r"\b((?:docs|contrib|halo_exchange|node_hooks|tests)/[\w./-]*\w)", text)):
            if not (ROOT / path).exists() and "*" not in path:
                problems.append(f"{doc.relative_to(ROOT)}: {path} does not exist")
    assert problems == []

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

"""A devnet node killed with SIGKILL while producing blocks restarts at its last committed block, consistent.

A child process produces blocks with transactions and prints each height once ``generate`` has returned
(the block is committed). The parent kills it at a random moment, reopens the DB and checks that every
acknowledged block is there and the chain state is whole: heights, block records, tx index, UTXO values
and fractions agree, and the node carries on producing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap
import time

import pytest

from node_hooks.devnode.node import PREMINE_OUTPUTS, PREMINE_PER_OUTPUT, DevNode
from tests.framework import spawn_python

CHILD = textwrap.dedent(
    """
    import sys
    from node_hooks.devnode.node import DevNode
    node = DevNode(sys.argv[1])
    address = node.get_new_address()
    while True:
        node.send_to_address(address, 100_000_000 + node.block_count())
        node.generate(1, "deflate")
        print(node.block_count(), flush=True)
    """
)


def _check_consistent(node: DevNode, acknowledged: int) -> None:
    reader = node.reader
    tip = reader.height()
    assert tip >= acknowledged, f"acknowledged block {acknowledged} lost (tip {tip})"
    staked_blocks = 0
    for height in range(tip + 1):
        record = reader.block_record(height)
        assert record is not None, f"height {height} has no block record"
        for txid in record.txids:
            assert reader.transaction(txid) is not None, "a block lists a transaction the index lacks"
        staked_blocks += height > 0
    assert reader.block_record(tip + 1) is None
    total = 0
    for txid, n, record in reader.iter_utxos():
        assert reader.transaction(txid) is not None
        assert reader.fractions(txid, n, record.value).total() == record.value
        total += record.value
    # Only OP_RETURN outputs (none here) destroy value: the UTXO set holds premine plus every reward.
    assert total == PREMINE_OUTPUTS * PREMINE_PER_OUTPUT + staked_blocks * node.params.stake_reward


@pytest.mark.slow
def test_killed_node_restarts_consistent(tmp_path) -> None:
    """Five SIGKILLs at random moments lose no acknowledged block and leave a consistent, usable chain."""
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    datadir = tmp_path / "node"
    DevNode(datadir).close()  # create genesis once, outside the kill window
    for _ in range(5):
        child = spawn_python("-c", CHILD, str(datadir), stdout=subprocess.PIPE, text=True)
        acknowledged = -1
        want = rng.randint(1, 12)
        deadline = time.monotonic() + 60
        assert child.stdout is not None
        while acknowledged < 0 or want > 0:
            line = child.stdout.readline()
            assert line, "child died before the kill"
            acknowledged = int(line)
            want -= 1
            assert time.monotonic() < deadline
        time.sleep(rng.random() * 0.05)  # land somewhere inside the next block's work
        child.send_signal(signal.SIGKILL)
        child.wait()
        node = DevNode(datadir)
        try:
            _check_consistent(node, acknowledged)
            node.generate(1)
        finally:
            node.close()

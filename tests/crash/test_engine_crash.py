"""The exchange engine killed with SIGKILL at random moments: nothing acknowledged is lost, nothing is applied
twice, and the restarted exchange passes the audit (50 runs).

A child process runs a devnet node and the engine, and performs trades, one-sided pool trades, payments to
the exchange, deposit namings and new blocks (some crossing cycles, so whole-book re-valuations and deposit
credits are in flight too). Before each command it prints ``BEGIN``, after the answer (which comes only once
the batch is on disk) ``ACK``. The parent kills it at a random moment, restarts the engine on the same DBs
(catching up with the chain), and checks every user's value: what the acknowledged trades moved (plus at
most the one in flight) plus exactly the deposits the store records as registered to them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap
import time

import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.engine import ExchangeEngine
from halo_exchange.ledger.deposits import DepositState
from tests.framework import EngineHarness, spawn_python

USERS = ["alice", "bobby", "carol", "dave"]
RUNS = 50

CHILD = textwrap.dedent(
    """
    import random, sys
    from tests.framework import EngineHarness

    datadir, seed = sys.argv[1], int(sys.argv[2])
    users = ["alice", "bobby", "carol", "dave"]
    harness = EngineHarness(datadir, watch=False)  # settle() raises if a command fails
    engine, node, settle = harness.engine, harness.node, harness.settle

    settle(engine.catch_up())
    print("READY", flush=True)
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        roll = rng.random()
        if roll < 0.75:
            a, b = rng.sample(users, 2)
            amount = rng.randint(1, 10_000)
            print(f"BEGIN {i} trade {a} {b} {amount}", flush=True)
            settle(engine.trade(a, amount, b))
        elif roll < 0.85:
            a = rng.choice(users)
            amount = rng.randint(1, 10_000)
            print(f"BEGIN {i} trade {a} pool {amount}", flush=True)
            settle(engine.trade(a, -amount, ""))
        elif roll < 0.90:
            address = sorted(engine.deposits.addresses)[0]
            print(f"BEGIN {i} pay", flush=True)
            node.send_to_address(address, rng.randint(1, 5) * 100_000_000)
        elif roll < 0.95:
            unnamed = sorted(d.txid for d in engine.deposits.deposits.values() if d.owner is None)
            if unnamed:
                owner = rng.choice(users)
                print(f"BEGIN {i} name {owner}", flush=True)
                settle(engine.name_deposit(owner, engine.deposits.outpoints_of(unnamed[0])))
            else:
                print(f"BEGIN {i} nothing", flush=True)
        else:
            print(f"BEGIN {i} block", flush=True)
            harness.generate(1, rng.choice(["deflate", "nochange", "inflate"]))
        print(f"ACK {i}", flush=True)
    """
)


def _values(engine: ExchangeEngine) -> dict[str, int]:
    """Each account's value minus the deposits registered to it: what trades alone made of it."""
    values = {name: sum(engine.balance(name) or (0, 0)) for name in USERS + ["pool"]}
    for deposit in engine.deposits.deposits.values():
        if deposit.state is DepositState.REGISTERED:
            values[deposit.owner] -= deposit.amount
    return values


def _apply(values: dict[str, int], op: list[str]) -> dict[str, int]:
    out = dict(values)
    if op[0] == "trade":
        src, dst, amount = op[1], op[2], int(op[3])
        out[src] -= amount
        out[dst] += amount
    return out


@pytest.mark.slow
def test_engine_survives_sigkill(tmp_path) -> None:
    """50 random SIGKILLs: acknowledged commands all present, none twice, and the audit passes each time."""
    with EngineHarness(tmp_path) as harness:
        for user in USERS:
            harness.credit(user, 10 * COIN)
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    expected: dict[str, int] | None = None
    for run in range(RUNS):
        child = spawn_python("-c", CHILD, str(tmp_path), str(rng.randrange(2**32)), stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        acked: list[list[str]] = []
        in_flight: list[str] | None = None
        budget = rng.randint(0, 25)
        deadline = time.monotonic() + 60
        while budget > 0 and time.monotonic() < deadline:
            line = child.stdout.readline().split()
            assert line, "the child stopped on its own"
            if line[0] == "BEGIN":
                in_flight = line[2:]
            else:
                acked.append(in_flight or [])
                in_flight = None
                budget -= 1
        time.sleep(rng.random() * 0.01)
        child.send_signal(signal.SIGKILL)
        # Whatever the child printed before dying also counts.
        for rest in child.stdout.read().splitlines():
            parts = rest.split()
            if parts and parts[0] == "BEGIN":
                in_flight = parts[2:]
            elif parts and parts[0] == "ACK":
                acked.append(in_flight or [])
                in_flight = None
        child.wait()

        with EngineHarness(tmp_path, watch=False) as harness:
            harness.settle(harness.engine.catch_up())
            values = _values(harness.engine)
            if expected is None:
                expected = {name: 0 for name in USERS + ["pool"]}
            for op in acked:
                expected = _apply(expected, op)
            allowed = [expected] + ([_apply(expected, in_flight)] if in_flight else [])
            assert values in allowed, (run, values, allowed)
            expected = values
            report = harness.audit()
            assert report.ok, report.render()

"""`halo-exchange devnet` killed with SIGKILL while it pays withdrawals: every withdrawal is paid exactly once.

A real devnet process runs exchange mode; the test drives it as an exchange would (the stdlib XML-RPC client
on the exchange API) and the chain through the node's control RPC. Each of the 50 trials asks for one to three
liquid withdrawals to fresh payees, produces blocks up to a block of the liquid window (where a batch is built,
committed in one durable write, then handed to the node), and kills the process at a moment drawn from a
seeded random:

* ``build``: up to 40 ms after asking for the window block: while it is made, seen, or the batch built,
  committed or submitted;
* ``commit``: as soon as CheckWithdraw shows the batch committed (``unconfirmed``), before or just after
  the node got it;
* ``mempool``: once the batch is in the node's mempool (memory only: the restarted exchange must resubmit);
* ``mined``: after the batch was mined and one to six more blocks, before the confirmation setting.

The process restarts on the same data directory at the start of the next trial. After every kill the
payees so far hold at most one output each and ``halo-exchange audit`` (node stopped) passes; when the kill
left the exchange a block behind the node it checks the book only and says so (the restart catches up); at the end
blocks are produced until every request is complete, and each payee holds exactly one output of its amount
less the commission. ``PAYOUT_CRASH_SEED`` replays a run; the seed is in every failure message.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import subprocess
import threading
import time
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from tests.framework import (
    address_of,
    exchange_lag,
    free_port,
    new_address,
    run_cli,
    running_devnet,
    wait_until,
)

KILLS = 50
INTERVAL = 20  # the devnet's peg interval: the liquid window is the blocks at positions 2..7 of a cycle
COMMISSION = {"min": 10_000_000, "max": 1_000_000_000, "percent": 0.001}
MODES = ("build", "commit", "mempool", "mined")
FUNDING = 8  # separate deposits, so that a batch still unconfirmed does not hold every exchange coin


@dataclass
class Request:
    """One withdrawal the test asked for, and what its payee must receive."""

    withdraw_id: str
    payee: str
    expected: int
    trial: int


class Run:
    """One `halo-exchange devnet` process on the test's data directory: ``node`` (control RPC), ``api``."""

    def __init__(self, process: subprocess.Popen, node: xmlrpc.client.ServerProxy, api_port: int) -> None:
        self.process, self.node = process, node
        self.api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: isinstance(self.api.GetCycle(""), int), interval=0.02)
        assert self.api.StartExchange("") is True

    def status(self, withdraw_id: str) -> dict:
        answer = self.api.CheckWithdraw(withdraw_id, 0, "")
        assert isinstance(answer, dict), answer
        return answer

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _fund(run: Run) -> None:
    """Credit karen with FUNDING confirmed deposits and set an exchange account and a fee account."""
    api, node = run.api, run.node
    txids = []
    for _ in range(FUNDING):
        wif, _ = api.GenerateDepositAddress("")
        txids.append(node.sendtoaddress(address_of(wif), str(60 * COIN)))
    node.generate(1)
    wait_until(lambda: all(any(key.startswith(txid) for key in api.GetSpendable("", "")) for txid in txids))
    assert api.Deposit("karen", txids, "") is True
    node.generate(6)
    wait_until(lambda: sum((api.GetBalance("karen", "") or {}).values()) == FUNDING * 60 * COIN)
    wif, _ = api.GenerateDepositAddress("")
    assert api.ExchangeSettings([address_of(wif)], new_address(), COMMISSION, "", "") is True


def _withdraw(run: Run, rng: random.Random, trial: int) -> list[Request]:
    made = []
    for _ in range(rng.randint(1, 3)):
        payee, amount = new_address(), rng.randint(COIN, 3 * COIN)
        ok, withdraw_id = run.api.Withdraw("karen", amount, payee, "liquid", "")
        assert ok is True, withdraw_id
        record = run.status(withdraw_id)
        made.append(Request(withdraw_id, payee, record["paid"] - record["commission"], trial))
    return made


def _to_window(run: Run) -> None:
    """Produce blocks until the next one is in the liquid window: the first block where the requests just made
    can be batched (none of the blocks produced here is a window block)."""
    position = run.node.getblockcount() % INTERVAL
    if not 1 <= position <= 6:
        run.node.generate((1 - position) % INTERVAL)


def _generate_until_killed(node: xmlrpc.client.ServerProxy) -> None:
    with contextlib.suppress(OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
        node.generate(1)


def _kill_at(run: Run, mode: str, watched: Request, rng: random.Random) -> str:
    """Produce the window block and kill the process at the moment ``mode`` names; what happened, for logs."""
    if mode == "build":  # the block may be half made, made and not yet seen, seen and the batch in the making...
        producer = threading.Thread(target=_generate_until_killed, args=(run.node,), daemon=True)
        producer.start()
        time.sleep(rng.uniform(0.0, 0.04))
        run.kill()
        producer.join(timeout=10)
        return mode
    run.node.generate(1)
    try:
        record = wait_until(lambda: (lambda r: r if r["status"] != "queued" else None)(run.status(watched.withdraw_id)),
                            timeout=10, interval=0.002)
    except AssertionError:  # not batched in this block (coins busy, say): the kill lands after the window block
        run.kill()
        return f"{mode} (not batched)"
    if mode == "commit":
        run.kill()
        return mode
    wait_until(lambda: record["txid"] in run.node.getrawmempool() or run.status(watched.withdraw_id)["status"]
               != "unconfirmed", timeout=10, interval=0.005)
    if mode == "mined":
        run.node.generate(rng.randint(1, 5))  # 6 confirmations at most: not complete
        time.sleep(rng.uniform(0.0, 0.02))
    run.kill()
    return mode


def _payments(run: Run, request: Request) -> list[int]:
    return [entry["amount"] for entry in run.node.listunspent(request.payee)]


def _audit(datadir: Path, context: str, *, behind: bool = False) -> None:
    """``halo-exchange audit`` passes; with the exchange behind the chain it checks the book only, and says so."""
    result = run_cli("audit", "--datadir", str(datadir))
    assert result.returncode == 0, f"{context}: audit failed\n{result.stdout}\n{result.stderr}"
    assert ("(book only)" in result.stdout) == behind, f"{context}: {result.stdout}"


@pytest.mark.slow
@pytest.mark.timeout(360)  # about a minute; the suite's 120 s default is too close under load
def test_each_withdrawal_is_paid_exactly_once_across_sigkills(tmp_path) -> None:
    """Fifty SIGKILLs between a batch's commit and its submission, and between its submission and its
    confirmation: after restarts every withdrawal is paid exactly once (its payee holds one output of the
    amount less the commission, never two), every request completes, and the audit passes after each kill that
    left the exchange level with the chain, and at the end."""
    seed = int(os.environ.get("PAYOUT_CRASH_SEED") or int.from_bytes(os.urandom(4), "little"))
    print(f"payout crash seed: {seed} (PAYOUT_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    requests: list[Request] = []
    history: list[str] = []
    behind = 0  # kills that left the exchange a block behind the chain (not audited until caught up)
    found: Counter[str] = Counter()  # the statuses the previous trial's requests had after the restart

    def context() -> str:
        return f"seed {seed}, trial {len(history)}, kills so far {history[-5:]}"

    with running_devnet(datadir, port, api_port) as (process, node):
        run = Run(process, node, api_port)
        _fund(run)
        run.kill()

    for trial in range(KILLS):
        with running_devnet(datadir, port, api_port) as (process, node):
            run = Run(process, node, api_port)
            for request in requests:
                paid = _payments(run, request)
                assert len(paid) <= 1 and set(paid) <= {request.expected}, \
                    f"{context()}: {request} paid {paid}"
                if request.trial == trial - 1:
                    found[run.status(request.withdraw_id)["status"]] += 1
            made = _withdraw(run, rng, trial)
            requests += made
            _to_window(run)
            history.append(_kill_at(run, rng.choice(MODES), made[0], rng))
        lagging = bool(exchange_lag(datadir))
        behind += lagging  # killed between the node's commit of a block and the exchange's: book only until caught up
        _audit(datadir, context(), behind=lagging)

    with running_devnet(datadir, port, api_port) as (process, node):
        run = Run(process, node, api_port)
        for _ in range(4 * INTERVAL):
            states = {r.withdraw_id: run.status(r.withdraw_id)["status"] for r in requests}
            if all(state == "complete" for state in states.values()):
                break
            run.node.generate(1)
            time.sleep(0.05)
        late = {wid: state for wid, state in states.items() if state != "complete"}
        assert not late, f"{context()}: not complete: {late}"
        for request in requests:
            paid = _payments(run, request)
            assert paid == [request.expected], f"{context()}: {request} paid {paid}"
        assert node.stop() is True
        assert process.wait(timeout=10) == 0
    _audit(datadir, context())
    print(f"kills: {dict(Counter(history))}; the requests found after a restart: {dict(found)}; "
          f"exchange behind the chain after {behind} kills")

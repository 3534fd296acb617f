"""`halo-exchange status` over a real operator socket whose `status` (and `execs`) answers are set by the test:
the health verdict and exit code for each way an exchange can be degraded, the exec log listing, a follower's
status file merged in, and the follower without an exchange reported from its file as before."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from halo_exchange.cli import main
from halo_exchange.operator import OperatorServer
from halo_exchange.service import call_in_reactor
from node_hooks.follower.status_file import STATUS_FILE_NAME, write_status

HEALTHY: dict[str, Any] = {
    "version": "0.1.0", "pid": 1, "time": 1_800_000_000.0,
    "node": {"height": 41, "tip_hash": "ab" * 32, "tip_time": 1_799_999_990, "cycle": 2, "cycle_length": 20,
             "blocks_to_next_cycle": 19, "supply": 5, "supply_next": 6, "supply_next_next": 7},
    "exchange": {"state": "running", "reason": None, "cycle": 2, "effective_supply": 8, "wallet": "plain",
                 "wallet_locked": False, "users": 3,
                 "last_write": {"batches": 9, "time": 1_799_999_999.0, "age_seconds": 1.0}},
    "book": {"liquid": 700, "reserve": 300, "pool": {"liquid": 0, "reserve": 0},
             "escrow": {"liquid": 50, "reserve": 0}},
    "deposits": {"seen": 0, "confirmed": 0, "registered": 2, "reversed": 0},
    "withdrawals": {"queued": 1, "unconfirmed": 0, "processing": 0, "complete": 0, "expired": 0, "failed": 0},
    "batches": {"unconfirmed": 0, "processing": 0, "complete": 0, "failed": 0},
    "api": {"address": "127.0.0.1:55779", "calls": {"GetBalance": 4}},
}


def _report(**changes: dict[str, Any]) -> dict[str, Any]:
    report = copy.deepcopy(HEALTHY)
    for section, values in changes.items():
        report[section].update(values)
    return report


@pytest.fixture
def exchange(tmp_path, reactor_thread):
    """A data dir whose operator socket answers ``status`` with ``exchange.report`` (and ``execs`` once
    ``exchange.serve_execs`` is called)."""

    class Exchange:
        datadir = tmp_path / "devnet"
        report: dict[str, Any] = HEALTHY
        server = OperatorServer(tmp_path / "devnet" / "exchange.sock")

        def serve_execs(self, records: list[dict[str, Any]]) -> None:
            self.server.register("execs", lambda args: records)

    served = Exchange()
    served.datadir.mkdir()
    served.server.register("status", lambda args: served.report)
    call_in_reactor(served.server.start)
    yield served
    call_in_reactor(served.server.stop)


def _status(datadir: Path, *flags: str, capsys) -> tuple[int, str, str]:
    code = main(["status", "--datadir", str(datadir), *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("report, problem", [
    (_report(exchange={"state": "failed", "reason": "a write to the exchange DB failed (No space left)"}),
     "exchange mode failed: a write to the exchange DB failed (No space left); restart the node (after freeing "
     "disk space if that was the cause)"),
    (_report(exchange={"state": "paused"}), "the exchange is not started: StartExchange(passw, 1) starts it"),
    (_report(exchange={"state": "starting"}), "exchange mode is starting"),
    (_report(exchange={"wallet": "locked", "wallet_locked": True}),
     "the wallet is locked while 1 withdrawal(s) wait: ExchangePassword(passphrase, passw) unlocks it"),
])
def test_each_degraded_state_exits_1_and_says_why(exchange, capsys, report, problem) -> None:
    """A failed, paused or starting exchange, or a locked wallet with a withdrawal queued, is degraded."""
    exchange.report = report
    code, out, _ = _status(exchange.datadir, capsys=capsys)
    assert code == 1 and out.endswith(f"degraded: {problem}\n")
    code, out, _ = _status(exchange.datadir, "--json", capsys=capsys)
    assert code == 1 and json.loads(out)["health"] == {"code": 1, "problems": [problem]}


def test_a_locked_wallet_with_nothing_waiting_is_healthy(exchange, capsys) -> None:
    """Locked is the normal state of an encrypted wallet between starts: only waiting withdrawals make it a
    problem."""
    exchange.report = _report(exchange={"wallet": "locked", "wallet_locked": True},
                              withdrawals={"queued": 0, "complete": 3})
    code, out, _ = _status(exchange.datadir, capsys=capsys)
    assert code == 0 and out.endswith("\nhealthy\n")


def test_execs_are_listed_or_their_absence_said(exchange, capsys) -> None:
    """--execs adds the exec log's records to both forms; an exchange without the `execs` command says it has no
    exec log (and stays healthy)."""
    code, out, _ = _status(exchange.datadir, "--execs", capsys=capsys)
    assert code == 0 and "Execs\n" in out and "this exchange has no exec log" in out
    code, out, err = _status(exchange.datadir, "--execs", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["execs"] is None and "this exchange has no exec log" in err

    record = {"hash": "f0" * 32, "time": 1_800_000_000, "state": "done", "outcome": "42", "duration_ms": 12.5,
              "source": "nonce=3\nresult = 6 * 7"}
    exchange.serve_execs([record])
    code, out, _ = _status(exchange.datadir, "--execs", capsys=capsys)
    assert code == 0
    assert "2027-01-15 08:00:00  done            12.5 ms  f0f0f0f0f0f0f0f0  nonce=3 ⏎ result = 6 * 7  -> 42" in out
    code, out, _ = _status(exchange.datadir, "--execs", "--json", capsys=capsys)
    assert json.loads(out)["execs"] == [record]


def test_a_followers_sync_state_is_merged_and_a_sync_in_progress_is_degraded(exchange, capsys) -> None:
    """The follower's node-status.json joins the report under its own keys; while it syncs, status exits 1."""
    sync = {"state": "syncing", "height": 41, "first_height": 0, "upstream_height": 900, "blocks_per_second": 50.0,
            "eta_seconds": 17.2, "last_error": "", "since": time.time()}
    write_status(exchange.datadir / STATUS_FILE_NAME, sync)
    code, out, _ = _status(exchange.datadir, "--json", capsys=capsys)
    report = json.loads(out)
    assert code == 1 and report["status"]["state"] == "syncing" and report["problem"] == ""
    assert report["health"]["problems"] == ["node is syncing, not following bitbayd's tip"]
    assert report["book"]["liquid"] == 700  # the exchange's figures are there too
    code, out, _ = _status(exchange.datadir, capsys=capsys)
    assert "  sync" in out and "syncing, height 41 of 900" in out

    write_status(exchange.datadir / STATUS_FILE_NAME, {**sync, "state": "following", "upstream_height": 41})
    assert _status(exchange.datadir, capsys=capsys)[0] == 0


def test_a_follower_without_its_exchange_is_reported_from_its_file(tmp_path, capsys) -> None:
    """No socket, but a status file: what the file says, as before the operator channel (0 when following)."""
    sync = {"state": "following", "height": 41, "first_height": 0, "upstream_height": 41, "blocks_per_second": 0.0,
            "eta_seconds": None, "last_error": "", "since": time.time()}
    write_status(tmp_path / STATUS_FILE_NAME, sync)
    code, out, _ = _status(tmp_path, "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["status"]["state"] == "following"
    code, out, _ = _status(tmp_path, capsys=capsys)
    assert code == 0 and out.startswith("node: following")


def test_the_socket_can_be_named_and_an_unknown_one_is_not_reachable(exchange, tmp_path, capsys) -> None:
    """--socket reaches a socket outside the data dir; operator_socket in the data dir's config file is where
    status looks by default; a socket path where nothing is exits 2."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, _ = _status(elsewhere, "--socket", str(exchange.server.path), capsys=capsys)
    assert code == 0
    (elsewhere / "halo-exchange.conf").write_text(f"[exchange]\noperator_socket = {exchange.server.path}\n")
    assert _status(elsewhere, capsys=capsys)[0] == 0
    code, out, err = _status(elsewhere, "--socket", str(tmp_path / "none.sock"), capsys=capsys)
    assert code == 2 and "not reachable: no operator socket at" in err


def test_a_cycle_update_under_way_is_shown_with_its_progress_and_is_healthy(exchange, capsys) -> None:
    """While a large book is re-valued in steps, status says to which cycle and supply, how far it is, and that
    balance calls wait for it; it is the exchange's normal work, not a problem."""
    update = {"cycle": 3, "old_supply": 8, "new_supply": 11, "done": 250_000, "accounts": 1_000_000}
    exchange.report = _report(exchange={"cycle_update": update})
    code, out, _ = _status(exchange.datadir, capsys=capsys)
    assert code == 0 and out.endswith("\nhealthy\n")
    assert ("cycle update  to cycle 3, supply 8 -> 11: 250000 of 1000000 accounts (balance calls wait "
            "for it)") in out
    code, out, _ = _status(exchange.datadir, "--json", capsys=capsys)
    assert json.loads(out)["exchange"]["cycle_update"] == update

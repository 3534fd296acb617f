"""The backup directory fills up under trade load: ``backup_failure = stop`` stops exchange mode loudly,
``degrade`` keeps trading and says so; either way a restart with space freed makes the backup whole again.

The backup directory of a real `halo-exchange devnet` process is a small tmpfs mounted for the test (8 MiB,
nearly filled by a filler file), and four clients trade over XML-RPC until the journal cannot take the next
batch. Under ``stop``: every later call answers Fault -32000 naming the backup and the cause, the log says
BACKUP FAILED, the node keeps running and stops cleanly, and no trade answered with the fault happened (the
backup is written before the DB). Under ``degrade``: trades go on being answered True, the log says BACKUP
DEGRADED. Either way ``halo-exchange status`` shows the backup failed or degraded, with the cause. Then, with
space freed and the node restarted: under ``stop`` the backup already holds what the DB holds (the refused
batch was written nowhere) and journals on; under ``degrade`` the start finds the backup behind and takes a
fresh snapshot first. Either way a restore from it equals the DB key for key, and
``halo-exchange audit`` is clean.

Mounting needs root and a kernel that allows it: elsewhere the tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.config import EXCHANGE_SUBDIR
from halo_exchange.rpc.dispatch import FAULT_EXCHANGE_FAILED
from tests.framework import (
    credit_over_api,
    db_contents,
    fill,
    free_port,
    run_cli,
    running_devnet,
    small_filesystem,
    trade_until_refused,
    wait_until,
)

CLIENTS = 4
LEFT_FREE = 64 * 1024  # bytes the filler leaves to the backup: a few hundred journaled trades
DEPOSIT = 10 * COIN
PAYEES = [f"payee{i}" for i in range(CLIENTS)]


def _trade(url: str, calls: int) -> tuple[dict[str, int], list[xmlrpc.client.Fault]]:
    return trade_until_refused(url, "karen", PAYEES, calls)


def _credit_karen(api: xmlrpc.client.ServerProxy, node: xmlrpc.client.ServerProxy) -> None:
    wait_until(lambda: api.GetCycle("") == 0)
    api.StartExchange("")
    credit_over_api(node, api, "karen", DEPOSIT)


def _held(api: xmlrpc.client.ServerProxy) -> dict[str, int]:
    return {payee: (api.GetBalance(payee, "") or {"liquid": 0})["liquid"] for payee in PAYEES}


def _restore_and_audit(datadir: Path, backup: Path, tmp_path: Path) -> str:
    """The DB moved aside and restored from the backup: the same keys, and the audit passes. What restore said."""
    shutil.move(datadir / EXCHANGE_SUBDIR, tmp_path / "primary")
    result = run_cli("restore", "--from", str(backup), "--datadir", str(datadir))
    assert result.returncode == 0, result.stderr
    assert db_contents(datadir / EXCHANGE_SUBDIR) == db_contents(tmp_path / "primary")
    audit = run_cli("audit", "--datadir", str(datadir))
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout + audit.stderr
    return result.stdout




def _assert_status(datadir: Path, state: str) -> None:
    """``halo-exchange status`` shows the backup in ``state``, with its cause, as a problem (exit 1)."""
    shown = run_cli("status", "--datadir", str(datadir))
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert f"backup {state} (" in shown.stdout and "No space left on device" in shown.stdout, shown.stdout
    report = json.loads(run_cli("status", "--datadir", str(datadir), "--json").stdout)
    assert report["backup"]["state"] == state and report["backup"]["primary_sequence"] > 0, report["backup"]


def _configure(datadir: Path, policy: str) -> None:
    datadir.mkdir(parents=True, exist_ok=True)
    (datadir / "halo-exchange.conf").write_text(f"[exchange]\nbackup_failure = {policy}\n")


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 5 s
def test_full_backup_dir_under_stop_stops_exchange_mode_and_nothing_refused_happened(tmp_path) -> None:
    datadir, backup = tmp_path / "devnet", tmp_path / "backup"
    port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    _configure(datadir, "stop")
    flags = ["--backup-dir", str(backup)]
    with small_filesystem(backup):
        with running_devnet(datadir, port, api_port, flags) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            _credit_karen(api, node)
            filler = fill(backup, LEFT_FREE)
            acknowledged, faults = _trade(url, 100_000)
            assert sum(acknowledged.values()) > 0, "no trade went through before the backup was full"
            assert len(faults) == CLIENTS, faults
            for fault in faults + [pytest.raises(xmlrpc.client.Fault, api.GetCycle, "").value]:
                assert fault.faultCode == FAULT_EXCHANGE_FAILED, fault
                assert "exchange mode stopped" in fault.faultString, fault
                assert "backup" in fault.faultString and "No space left on device" in fault.faultString, fault
                assert "/tmp" not in fault.faultString, fault
            assert process.poll() is None, "the node keeps running with exchange mode stopped"
            _assert_status(datadir, "failed")
            node.stop()
            assert process.wait(timeout=30) == 0
            log = process.stderr.read()
        assert "BACKUP FAILED" in log and "No space left on device" in log, log[-3000:]
        assert "Traceback" not in log, log[-5000:]

        filler.unlink()
        with running_devnet(datadir, port, api_port, flags) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda: isinstance(api.GetBalance("karen", ""), dict))
            assert _held(api) == acknowledged  # the calls answered with the fault did not happen
            api.StartExchange("")
            assert api.Trade("karen", 1, "payee0", "liquid", "") is True
            node.stop()
            assert process.wait(timeout=30) == 0
            log = process.stderr.read()
        # The refused batch was written nowhere: the backup holds what the DB holds, and journals on.
        assert "backup CURRENT" in log, log[-3000:]
        restored = _restore_and_audit(datadir, backup, tmp_path)
        assert "ignored a damaged journal tail" in restored, restored  # the record the full disk cut short


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 5 s
def test_full_backup_dir_under_degrade_keeps_trading_and_says_so(tmp_path) -> None:
    datadir, backup = tmp_path / "devnet", tmp_path / "backup"
    port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    _configure(datadir, "degrade")
    flags = ["--backup-dir", str(backup)]
    with small_filesystem(backup):
        with running_devnet(datadir, port, api_port, flags) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            _credit_karen(api, node)
            filler = fill(backup, LEFT_FREE)
            # Far more trades than the space left can journal: every one still answered True.
            acknowledged, faults = _trade(url, 600)
            assert faults == [] and acknowledged == {payee: 600 for payee in PAYEES}
            assert _held(api) == acknowledged
            _assert_status(datadir, "degraded")
            node.stop()
            assert process.wait(timeout=30) == 0
            log = process.stderr.read()
        assert "BACKUP DEGRADED" in log and "No space left on device" in log, log[-3000:]
        assert "WITHOUT a current backup" in log, log[-3000:]

        filler.unlink()
        with running_devnet(datadir, port, api_port, flags) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda: isinstance(api.GetBalance("karen", ""), dict))
            assert _held(api) == acknowledged
            node.stop()
            assert process.wait(timeout=30) == 0
            log = process.stderr.read()
        assert "taking a snapshot first" in log and "backup CURRENT" in log, log[-3000:]
        _restore_and_audit(datadir, backup, tmp_path)

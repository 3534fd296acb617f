"""``halo-exchange backup`` and ``restore`` as an operator runs them, and the backup status a running exchange
reports: a copy made by a running node (over its operator socket) and one of a stopped node, restore refused
while the node runs, a restore that moves the old DB aside, and a backup of another chain refused."""

from __future__ import annotations

import json
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.backup.restore import backup_command, restore
from halo_exchange.backup.snapshot import ChainIdentity
from halo_exchange.chain.params import COIN
from halo_exchange.config import EXCHANGE_SUBDIR
from halo_exchange.errors import RestoreRefused
from tests.framework import ServiceHarness, address_of, db_contents, free_port, run_cli, running_devnet, wait_until


def test_backup_status_of_a_running_exchange(tmp_path, reactor_thread) -> None:
    """With backup_dir the service reports a current backup level with the DB, snapshots taken in a thread
    while trading goes on, and the backup restores the DB key for key after the stop; without, it reports off."""
    with ServiceHarness(tmp_path / "on", backup_dir=tmp_path / "backup", backup_snapshot_interval=0.2) as exchange:
        exchange.credit("alice", COIN)
        first = exchange.service.backup_status()["last_snapshot_sequence"]
        for _ in range(20):
            assert exchange.api.Trade("alice", 5, "bobby", "liquid", "") is True
        wait_until(lambda: exchange.service.backup_status()["last_snapshot_sequence"] > first)
        for _ in range(20):
            assert exchange.api.Trade("alice", 5, "bobby", "liquid", "") is True
        status = exchange.service.backup_status()
        assert status["state"] == "current" and status["dir"] == str(tmp_path / "backup")
        assert status["last_sequence"] == status["primary_sequence"] > 0 and status["error"] is None
        assert status["last_snapshot_time"] > 0 and status["policy"] == "stop"
    assert exchange.service.backup_status()["state"] == "closed"
    restore(tmp_path / "backup", tmp_path / "restored", None)
    assert db_contents(tmp_path / "restored") == db_contents(tmp_path / "on" / "exchange")
    with ServiceHarness(tmp_path / "off") as exchange:
        assert exchange.service.backup_status()["state"] == "off"




def test_backup_and_restore_commands(tmp_path: Path) -> None:
    datadir, continuous = tmp_path / "devnet", tmp_path / "continuous"
    port, api_port = free_port(), free_port()
    with running_devnet(datadir, port, api_port, ["--backup-dir", str(continuous)]) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        api.StartExchange("")
        wif, _ = api.GenerateDepositAddress("")
        node.sendtoaddress(address_of(wif), COIN)
        node.generate(1)
        shown = run_cli("status", "--datadir", str(datadir))
        assert "Backup" in shown.stdout and "current" in shown.stdout, shown.stdout
        # A running node makes the copy itself (asked over its operator socket; its DB is never opened twice).
        copied = run_cli("backup", "--to", str(tmp_path / "copy"), "--datadir", str(datadir))
        assert copied.returncode == 0, copied.stderr
        assert "backed up the exchange DB of the running node at batch" in copied.stdout, copied.stdout
        refused = run_cli("backup", "--to", str(tmp_path / "copy"), "--datadir", str(datadir))
        assert refused.returncode == 1 and "not an empty directory" in refused.stderr, refused.stderr
        # Restore never touches a running node's DB.
        refused = run_cli("restore", "--from", str(continuous), "--datadir", str(datadir), "--force")
        assert refused.returncode == 1 and "the node is running" in refused.stderr, refused.stderr
        node.stop()
        assert process.wait(timeout=30) == 0

    copied = run_cli("backup", "--to", str(tmp_path / "stopped"), "--datadir", str(datadir))
    assert copied.returncode == 0 and "of the stopped node at batch" in copied.stdout, copied.stderr

    refused = run_cli("restore", "--from", str(tmp_path / "copy"), "--datadir", str(datadir))
    assert refused.returncode == 1 and "--force" in refused.stderr, refused.stderr
    restored = run_cli("restore", "--from", str(tmp_path / "copy"), "--datadir", str(datadir), "--force")
    assert restored.returncode == 0, restored.stderr
    assert "0 batches replayed" in restored.stdout and "exchange.before-restore-" in restored.stdout
    [aside] = [p for p in datadir.iterdir() if p.name.startswith(f"{EXCHANGE_SUBDIR}.before-restore-")]
    assert (aside / "CURRENT").exists()  # kept, never deleted
    audit = run_cli("audit", "--datadir", str(datadir))
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout

    manifest = tmp_path / "copy" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["network"] = "testnet"
    manifest.write_text(json.dumps(record))
    refused = run_cli("restore", "--from", str(tmp_path / "copy"), "--datadir", str(datadir), "--force")
    assert refused.returncode == 1 and "another chain" in refused.stderr, refused.stderr


def test_backup_of_a_running_exchange_through_its_own_store(tmp_path, reactor_thread) -> None:
    """``backup_command`` (``backup_running``): the running exchange copies itself (view between two batches,
    file written in a thread); the copy restores to exactly the DB as it was, and trading went on meanwhile."""
    from twisted.internet.threads import deferToThread


    with ServiceHarness(tmp_path / "node") as exchange:
        exchange.credit("alice", COIN)
        identity = exchange.service.call(lambda engine: ChainIdentity.of(engine.reader))

        def copy(engine):
            contents = dict(engine.store.db.iterator())  # what the copy must hold: the DB at this moment
            return backup_command(engine, {"to": str(tmp_path / "copy")}, deferToThread).addCallback(
                lambda answer: (answer, contents))

        answer, contents = exchange.service.call(copy)
        with pytest.raises(RestoreRefused, match="not an empty directory"):
            exchange.service.call(backup_command, {"to": str(tmp_path / "copy")}, deferToThread)
        with pytest.raises(RestoreRefused, match="absolute"):
            exchange.service.call(backup_command, {"to": "relative"}, deferToThread)
        assert exchange.api.Trade("alice", 5, "bobby", "liquid", "") is True
    assert answer["keys"] == len(contents)
    restore(tmp_path / "copy", tmp_path / "restored", identity)
    assert db_contents(tmp_path / "restored") == contents


def test_a_backup_dir_of_another_chain_stops_the_start_with_one_line(tmp_path: Path) -> None:
    """Exchange mode does not start on a backup directory holding another chain's backup (backup_failure =
    stop): the node exits 2, its last line naming the backup and the cause, no traceback."""
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    (backup / "manifest.json").write_text(json.dumps({"format": 1, "network": "testnet", "genesis": None,
                                                      "schema": 1}))
    result = run_cli("devnet", "--datadir", str(tmp_path / "d"), "--rpc-port", str(free_port()), "--api-port",
                     str(free_port()), "--backup-dir", str(backup), timeout=30)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "the backup in" in last and "another chain" in last and "testnet" in last, last
    assert "Traceback" not in result.stderr


def test_a_node_refuses_to_start_on_an_exchange_db_a_cut_short_restore_left_missing(tmp_path) -> None:
    """A restore or recover swaps the new DB in with two renames: killed between them, the DB is missing and
    the old one sits beside it. The node then refuses to start (it would serve from a new, empty DB)."""
    import subprocess

    from tests.framework import free_port, spawn_python

    datadir = tmp_path / "devnet"
    (datadir / "exchange.before-restore-20261201-120000").mkdir(parents=True)
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port",
                           str(free_port()), "--api-port", str(free_port()), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "exchange.before-restore-20261201-120000 beside it" in err and "Traceback" not in err
    assert not (datadir / "exchange" / "CURRENT").exists()

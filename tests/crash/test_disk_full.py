"""The exchange DB runs out of disk space while clients trade over XML-RPC (issue 14, item 12).

The exchange DB of a real `halo-exchange devnet` process lives on a small tmpfs mounted for the test (8 MiB,
nearly filled by a filler file); four clients trade until the DB cannot take the next batch. Then: exchange
mode stops cleanly (every later call answers Fault -32000 naming the cause and what to do, the log says it, the
node keeps running and stops cleanly), no trade answered True is lost, nothing half-written is visible after
the restart (the value held by karen and her payees is still her deposit), and once space is freed a restart
resumes trading with `halo-exchange audit` clean.

The node's chain DB on a full disk (the second test): the chain DB lives on such a tmpfs, nearly filled, and
blocks with transactions are produced over the control RPC until one cannot be written. Then: the call that
produced it answers Fault -28 naming the cause, the node stops by itself with a non-zero exit code, the log
names the cause without a traceback, and after space is freed the restarted node's tip is the last block
acknowledged, with its record, tx index, UTXOs and undo record all there, and `halo-exchange audit` clean.

The wallet on a full disk (the third test): getnewaddress until its key cannot be stored answers Fault -4
"Error: the wallet could not be written (...)", hands out no address and stops the node.

Mounting needs root and a kernel that allows it: elsewhere the tests skip and say why.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import xmlrpc.client
from pathlib import Path
from typing import Iterator

import plyvel
import pytest

from halo_exchange.chain import layout
from halo_exchange.chain.params import COIN
from halo_exchange.config import CHAIN_SUBDIR, EXCHANGE_SUBDIR
from halo_exchange.rpc.dispatch import FAULT_EXCHANGE_FAILED
from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import FAULT_NODE_STOPPED, FAULT_WALLET_ERROR, ControlRPCServer
from tests.framework import (
    credit_over_api,
    fill,
    free_port,
    run_cli,
    small_filesystem,
    spawn_python,
    trade_until_refused,
    wait_for_control_rpc,
    wait_until,
)

CLIENTS = 4
LEFT_FREE = 256 * 1024  # bytes the filler leaves to the exchange DB: a few hundred trades


@contextlib.contextmanager
def devnet(datadir: Path, port: int, api_port: int, log: Path) -> Iterator[tuple[subprocess.Popen, object]]:
    """A `halo-exchange devnet` process whose log goes to ``log`` (appended); killed if left running."""
    with open(log, "a") as log_file:
        process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port",
                               str(port), "--api-port", str(api_port), stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        yield process, wait_for_control_rpc(datadir, port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_clear_fault(fault: xmlrpc.client.Fault) -> None:
    assert fault.faultCode == FAULT_EXCHANGE_FAILED, fault
    assert "exchange mode stopped" in fault.faultString, fault
    assert "No space left on device" in fault.faultString, fault
    assert "restart" in fault.faultString, fault
    assert not re.search(r"/(tmp|work|home|root|srv)\b", fault.faultString), fault  # no path leaks
    assert "Traceback" not in fault.faultString, fault


@pytest.mark.timeout(300)  # about 2 s
def test_full_disk_during_trade_load_stops_cleanly_and_loses_nothing(tmp_path) -> None:
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    log = tmp_path / "devnet.log"
    url = f"http://127.0.0.1:{api_port}"
    payees = [f"payee{i}" for i in range(CLIENTS)]
    deposit = 10 * COIN

    with small_filesystem(datadir / EXCHANGE_SUBDIR) as exchange_dir:
        with devnet(datadir, port, api_port, log) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda: api.GetCycle("") == 0)
            api.StartExchange("")
            credit_over_api(node, api, "karen", deposit)

            filler = fill(exchange_dir, LEFT_FREE)
            acknowledged, faults = trade_until_refused(url, "karen", payees, 100_000)
            assert sum(acknowledged.values()) > 0, "no trade went through before the disk was full"

            # Exchange mode stopped cleanly: every client was told why, and so is every later call.
            assert len(faults) == CLIENTS, faults
            for fault in faults:
                _assert_clear_fault(fault)
            for call in (lambda: api.GetBalance("karen", ""), lambda: api.GetCycle(""),
                         lambda: api.Trade("karen", 1, "payee0", "liquid", "")):
                with pytest.raises(xmlrpc.client.Fault) as refused:
                    call()
                _assert_clear_fault(refused.value)
            assert process.poll() is None, "the node must keep running with exchange mode stopped"
            assert node.getblockcount() == 7
            # The operator's status says so too: exchange mode failed, and why (exit code 1, degraded).
            status = run_cli("status", "--datadir", str(datadir))
            assert status.returncode == 1, status
            assert re.search(r"^  state +failed: .*No space left on device", status.stdout, re.M), status.stdout
            assert "degraded: exchange mode failed" in status.stdout
            node.stop()
            assert process.wait(timeout=30) == 0
        text = log.read_text()
        assert "No space left on device" in text and "exchange mode stopped" in text, text[-3000:]
        assert "Traceback" not in text, text[-5000:]

        # Space is freed: the restart reloads what was acknowledged, and nothing half-written.
        filler.unlink()
        with devnet(datadir, port, api_port, log) as (process, node):
            api = xmlrpc.client.ServerProxy(url)
            wait_until(lambda: isinstance(api.GetBalance("karen", ""), dict))
            held = {}
            for payee in payees:
                balance = api.GetBalance(payee, "")
                held[payee] = balance["liquid"] if balance else 0
                # The calls of the failed batch were answered with the fault and not applied.
                assert held[payee] == acknowledged[payee], (payee, held[payee], acknowledged[payee])
            karen = api.GetBalance("karen", "")
            assert karen["liquid"] + karen["reserve"] + sum(held.values()) == deposit
            # Trading resumes.
            api.StartExchange("")
            assert api.Trade("karen", 1, "payee0", "liquid", "") is True
            assert api.GetBalance("payee0", "")["liquid"] == held["payee0"] + 1
            node.stop()
            assert process.wait(timeout=30) == 0

        result = run_cli("audit", "--datadir", str(datadir))
        assert result.returncode == 0, f"audit failed\n{result.stdout}\n{result.stderr}"


CHAIN_LEFT_FREE = 128 * 1024  # bytes the filler leaves to the chain DB: some tens of blocks with transactions


def _assert_tip_whole(chain_dir: Path, height: int) -> None:
    """The block at ``height`` is the tip, and its record, height index, tx index, new UTXOs and undo record are
    all in the chain DB (read directly, the node stopped)."""
    db = plyvel.DB(str(chain_dir), create_if_missing=False, compression=None)
    try:
        tip_height, tip_hash = layout.decode_tip(db.get(layout.TIP))
        assert tip_height == height, (tip_height, height)
        assert db.get(layout.height_key(height)) == tip_hash
        record = layout.BlockRecord.unpack(db.get(layout.block_key(tip_hash)))
        assert record.height == height and len(record.txids) >= 2  # the coinstake pair and a payment at least
        assert db.get(layout.undo_key(tip_hash)) is not None
        for txid in record.txids:
            assert db.get(layout.tx_key(txid)) is not None, txid.hex()
        created = [key for txid in record.txids for key, _ in db.iterator(prefix=layout.utxo_prefix(txid))]
        assert created, "the tip block's outputs are not in the UTXO set"
        assert db.get(layout.height_key(height + 1)) is None
    finally:
        db.close()


@pytest.mark.timeout(300)  # about 5 s
def test_full_disk_under_the_chain_db_stops_the_node_with_no_block_half_connected(tmp_path) -> None:
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    log = tmp_path / "devnet.log"

    with small_filesystem(datadir / CHAIN_SUBDIR) as chain_dir:
        with devnet(datadir, port, api_port, log) as (process, node):
            node.generate(2)
            payee = node.getnewaddress()
            filler = fill(chain_dir, CHAIN_LEFT_FREE)
            acknowledged = node.getblockcount()
            refused = None
            for _ in range(5_000):
                try:
                    for _ in range(3):
                        node.sendtoaddress(payee, COIN)
                    node.generate(1)
                except xmlrpc.client.Fault as fault:
                    refused = fault
                    break
                acknowledged += 1
            assert refused is not None, "the chain DB never filled"
            assert acknowledged > 3, "no block was written after the filler"
            # The call that could not write its block says why; the node stops by itself, non-zero.
            assert refused.faultCode == FAULT_NODE_STOPPED, refused
            assert "No space left on device" in refused.faultString, refused
            assert "chain DB" in refused.faultString, refused
            assert not re.search(r"/(tmp|work|home|root|srv)\b", refused.faultString), refused
            assert process.wait(timeout=30) not in (0, None)
        text = log.read_text()
        assert "No space left on device" in text and "chain DB" in text, text[-3000:]
        assert "Traceback" not in text, text[-5000:]

        # Space is freed (opening the DB replays its log into a table: that needs space too). No block
        # half-connected: the tip is the last block acknowledged, whole.
        filler.unlink()
        _assert_tip_whole(chain_dir, acknowledged)

        # The node restarts on that tip and produces blocks again; the audit is clean.
        with devnet(datadir, port, api_port, log) as (process, node):
            assert node.getblockcount() == acknowledged
            node.sendtoaddress(payee, COIN)
            node.generate(1)
            assert node.getblockcount() == acknowledged + 1
            node.stop()
            assert process.wait(timeout=30) == 0
        _assert_tip_whole(chain_dir, acknowledged + 1)
        result = run_cli("audit", "--datadir", str(datadir))
        assert result.returncode == 0, f"audit failed\n{result.stdout}\n{result.stderr}"


def test_full_disk_during_getnewaddress_hands_out_no_address_and_stops_the_node(tmp_path) -> None:
    """getnewaddress on a full disk (the chain DB, which holds the wallet keys, on a nearly filled tmpfs):
    the call that cannot store its key answers Fault -4 'Error: the wallet could not be written (... No space
    left on device)', with no address handed out; the wallet in memory is what it was; the node stops (later
    calls -28), since LevelDB would lose what it took after a failed write. After space is freed, the reopened
    wallet holds exactly the addresses that were answered."""
    datadir = tmp_path / "node"
    with small_filesystem(datadir / CHAIN_SUBDIR) as chain_dir:
        node = DevNode(datadir)
        server = ControlRPCServer(node, port=0, credentials=None)
        server.start()
        try:
            rpc = xmlrpc.client.ServerProxy(server.url)
            before = set(node.wallet.addresses)
            answered = [rpc.getnewaddress()]
            filler = fill(chain_dir, 0)
            refused = None
            for _ in range(10_000):
                try:
                    answered.append(rpc.getnewaddress())
                except xmlrpc.client.Fault as fault:
                    refused = fault
                    break
            assert refused is not None, "the wallet never failed to write"
            assert refused.faultCode == FAULT_WALLET_ERROR, refused
            assert refused.faultString.startswith("Error: the wallet could not be written ("), refused
            assert "No space left on device" in refused.faultString and "no address was made" in refused.faultString
            assert not re.search(r"/(tmp|work|home|root|srv)\b", refused.faultString), refused
            # Nothing changed in memory: the wallet holds what it held and what was answered, no more.
            assert set(node.wallet.addresses) == before | set(answered)
            # The node stops: every later call says why.
            assert node.wait_for_stop(0)
            with pytest.raises(xmlrpc.client.Fault) as later:
                rpc.getnewaddress()
            assert later.value.faultCode == FAULT_NODE_STOPPED and "No space left on device" in later.value.faultString
            assert set(node.wallet.addresses) == before | set(answered)
        finally:
            server.close()
            node.close()
        # Space is freed: the wallet reopened holds exactly the addresses answered (each stored before its answer).
        filler.unlink()
        node = DevNode(datadir)
        try:
            assert set(node.wallet.addresses) == before | set(answered)
            assert node.get_new_address() not in answered  # and it takes new keys again
        finally:
            node.close()

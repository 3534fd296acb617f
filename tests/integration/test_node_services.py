"""The node's services for the plugin and the transaction events: a submitted withdrawal reaches the mempool and
the chain without the plugin ever waiting for the node, refusals and drops are reported to the hooks, and the
devnet helpers (malleate, drop, refuse) make the failures a withdrawal must survive happen on demand."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey, is_low_s
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script, parse_p2pkh_script_sig
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.serialize import from_display_hex
from node_hooks import RecordingHook, TxStatus
from node_hooks.devnode.errors import NotFound, TxRejected
from node_hooks.devnode.node import DevNode
from tests.framework import ServiceHarness, wait_until

FEE = 10_000  # one input, one output



def _key() -> tuple[PrivateKey, bytes]:
    key = PrivateKey.generate()
    return key, address_to_script(key.public_key().address(DEVNET_KEYS), DEVNET_KEYS)


def _funded(node: DevNode, amount: int = 5 * COIN) -> tuple[PrivateKey, bytes, tuple[bytes, int]]:
    """A fresh key holding a confirmed coin of ``amount``: (key, its script, the coin's outpoint)."""
    key, script = _key()
    txid = node.send_to_address(key.public_key().address(DEVNET_KEYS), amount)
    node.generate(1)
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    return key, script, (tx.hash, next(i for i, out in enumerate(tx.outputs) if out.value == amount))


def _withdrawal(key: PrivateKey, script: bytes, coin: tuple[bytes, int], value: int) -> Transaction:
    """What the plugin would build: ``key`` pays the coin (worth ``value``) less the fee to a fresh payee."""
    _, payee = _key()
    tx = Transaction(1, 0, (TxIn(OutPoint(*coin)),), (TxOut(value - FEE, payee),), 0)
    return sign_input(tx, 0, key, script)


def _barrier(node: DevNode, hook: RecordingHook) -> None:
    """Return once every submission made before it has been handled: undecodable bytes are refused in turn."""
    before = len(hook.of_kind("rejected"))
    node.services.submit_transaction(b"\x00")
    wait_until(lambda: len(hook.of_kind("rejected")) > before, timeout=10, interval=0.01)


def test_a_submitted_withdrawal_goes_from_mempool_to_chain(node: DevNode, hook: RecordingHook) -> None:
    """The plugin hands over signed bytes and returns at once; the node admits them on its own thread, the status
    reads MEMPOOL, then CHAIN once mined, and no rejection or drop is reported."""
    assert hook.services is node.services, "the hooks got the node's services at start"
    key, script, coin = _funded(node)
    tx = _withdrawal(key, script, coin, 5 * COIN)
    assert node.services.transaction_status(tx.hash) is TxStatus.UNKNOWN
    node.services.submit_transaction(tx.serialize())
    wait_until(lambda: node.services.transaction_status(tx.hash) is TxStatus.MEMPOOL, timeout=10, interval=0.01)
    assert node.mempool_txids() == [tx.txid]
    node.services.submit_transaction(tx.serialize())  # a resubmission of a pending transaction is harmless
    node.generate(1)
    assert node.services.transaction_status(tx.hash) is TxStatus.CHAIN
    assert tx.txid in node.get_block(node.block_count())["txids"]
    node.services.submit_transaction(tx.serialize())  # already in the chain: not worth reporting
    _barrier(node, hook)
    assert [event[2].split(":")[0] for event in hook.of_kind("rejected")] == ["decode-failed"]
    assert hook.of_kind("dropped") == []


def test_a_refused_submission_is_reported_and_changes_nothing(node: DevNode, hook: RecordingHook) -> None:
    """With the devnet told to refuse one submission, the plugin's transaction is reported rejected with the
    reason 'refused-by-devnet', the mempool stays empty; the next submission of it is admitted."""
    key, script, coin = _funded(node)
    tx = _withdrawal(key, script, coin, 5 * COIN)
    assert node.refuse_transactions(1) is True
    node.services.submit_transaction(tx.serialize())
    rejected = wait_until(lambda: hook.of_kind("rejected"), timeout=10, interval=0.01)
    assert rejected[0][1] == tx.txid and rejected[0][2].startswith("refused-by-devnet")
    assert node.mempool_txids() == [] and node.services.transaction_status(tx.hash) is TxStatus.UNKNOWN
    node.services.submit_transaction(tx.serialize())
    wait_until(lambda: node.services.transaction_status(tx.hash) is TxStatus.MEMPOOL, timeout=10, interval=0.01)
    assert len(hook.of_kind("rejected")) == 1


def test_refusals_apply_to_sendrawtransaction_and_can_be_cancelled(node: DevNode, hook: RecordingHook) -> None:
    """sendrawtransaction is refused too while refusals are pending (an error to its caller, no event);
    refuse_transactions(0) cancels the rest."""
    key, script, coin = _funded(node)
    tx = _withdrawal(key, script, coin, 5 * COIN)
    node.refuse_transactions(2)
    with pytest.raises(TxRejected) as refused:
        node.send_raw_transaction(tx.to_hex())
    assert refused.value.rule == "refused-by-devnet"
    node.refuse_transactions(0)
    assert node.send_raw_transaction(tx.to_hex()) == tx.txid
    assert hook.of_kind("rejected") == []


def test_an_invalid_submission_is_reported_with_its_rule(node: DevNode, hook: RecordingHook) -> None:
    """A submission signed with the wrong key is reported rejected naming the rule, and nothing enters."""
    _, script, coin = _funded(node)
    wrong = PrivateKey.generate()
    wrong_script = address_to_script(wrong.public_key().address(DEVNET_KEYS), DEVNET_KEYS)
    forged = _withdrawal(wrong, wrong_script, coin, 5 * COIN)
    node.services.submit_transaction(forged.serialize())
    rejected = wait_until(lambda: hook.of_kind("rejected"), timeout=10, interval=0.01)
    assert rejected == [("rejected", forged.txid, rejected[0][2])]
    assert rejected[0][2].split(":")[0] not in ("", "decode-failed") and node.mempool_txids() == []


def test_droptransaction_reports_the_drop_of_it_and_its_children(node: DevNode, hook: RecordingHook) -> None:
    """Dropping a pending transaction removes it and the pending child spending it; the hooks hear both
    dropped ('dropped-by-devnet') and their status becomes UNKNOWN."""
    key, script, coin = _funded(node)
    payee_key, payee_script = _key()
    parent = sign_input(Transaction(1, 0, (TxIn(OutPoint(*coin)),), (TxOut(5 * COIN - FEE, payee_script),), 0),
                        0, key, script)
    node.send_raw_transaction(parent.to_hex())
    child = _withdrawal(payee_key, payee_script, (parent.hash, 0), 5 * COIN - FEE)
    node.send_raw_transaction(child.to_hex())
    assert node.drop_transaction(parent.txid) is True
    assert hook.of_kind("dropped") == [
        ("dropped", parent.txid, "dropped-by-devnet"), ("dropped", child.txid, "dropped-by-devnet")
    ]
    assert node.mempool_txids() == []
    assert node.services.transaction_status(parent.hash) is TxStatus.UNKNOWN
    assert node.services.transaction_status(child.hash) is TxStatus.UNKNOWN
    with pytest.raises(NotFound):
        node.drop_transaction(parent.txid)


def test_a_malleated_withdrawal_is_mined_under_another_txid(node: DevNode, hook: RecordingHook) -> None:
    """Malleating a pending transaction gives a new txid for the same payment, still valid (its signature now
    has a high S); the original leaves silently, the twin is mined, and the original's status is UNKNOWN."""
    key, script, coin = _funded(node)
    tx = _withdrawal(key, script, coin, 5 * COIN)
    node.services.submit_transaction(tx.serialize())
    wait_until(lambda: node.mempool_txids() == [tx.txid], timeout=10, interval=0.01)
    new_txid = node.malleate_transaction(tx.txid)
    assert new_txid != tx.txid and node.mempool_txids() == [new_txid]
    twin = Transaction.from_hex(node.get_raw_transaction(new_txid))
    assert twin.outputs == tx.outputs and twin.inputs[0].prevout == tx.inputs[0].prevout
    assert not is_low_s(parse_p2pkh_script_sig(twin.inputs[0].script_sig)[0][:-1])
    assert node.services.transaction_status(tx.hash) is TxStatus.UNKNOWN
    node.generate(1)
    assert node.services.transaction_status(from_display_hex(new_txid)) is TxStatus.CHAIN
    assert node.services.transaction_status(tx.hash) is TxStatus.UNKNOWN
    assert new_txid in node.get_block(node.block_count())["txids"]
    assert hook.of_kind("dropped") == [] and hook.of_kind("rejected") == []
    with pytest.raises(NotFound):
        node.malleate_transaction(new_txid)  # mined: no longer in the mempool


def test_malleating_a_parent_drops_its_pending_child(node: DevNode, hook: RecordingHook) -> None:
    """A pending child spends the original txid's output, which will never exist once the parent is malleated:
    the child is reported dropped ('parent-malleated'), the parent's replacement is not reported."""
    key, script, coin = _funded(node)
    payee_key, payee_script = _key()
    parent = sign_input(Transaction(1, 0, (TxIn(OutPoint(*coin)),), (TxOut(5 * COIN - FEE, payee_script),), 0),
                        0, key, script)
    child = _withdrawal(payee_key, payee_script, (parent.hash, 0), 5 * COIN - FEE)
    node.send_raw_transaction(parent.to_hex())
    node.send_raw_transaction(child.to_hex())
    twin = node.malleate_transaction(parent.txid)
    assert node.mempool_txids() == [twin]
    assert hook.of_kind("dropped") == [("dropped", child.txid, "parent-malleated")]
    assert node.malleate_transaction(twin) == parent.txid, "malleating twice gives the original back"


def test_a_transaction_not_readmitted_after_a_reorg_is_reported_dropped(node: DevNode, hook: RecordingHook) -> None:
    """A pending transaction spending a coinstake output is dropped when that block is disconnected (the
    coinstake never returns); the hooks hear it dropped with the reason 'reorg'."""
    node.generate(1)
    height = node.block_count()
    coinstake = Transaction.from_hex(node.get_raw_transaction(node.get_block(height)["txids"][1]))
    stake_out = coinstake.outputs[1]
    _, payee = _key()
    spend = Transaction(1, 0, (TxIn(OutPoint(coinstake.hash, 1)),), (TxOut(stake_out.value - FEE, payee),), 0)
    spend = node.wallet.sign(spend, [stake_out.script_pubkey])
    node.services.submit_transaction(spend.serialize())
    wait_until(lambda: node.mempool_txids() == [spend.txid], timeout=10, interval=0.01)
    node.invalidate_block(height)
    dropped = hook.of_kind("dropped")
    assert [event[1] for event in dropped] == [spend.txid] and dropped[0][2].startswith("reorg: ")
    assert node.services.transaction_status(spend.hash) is TxStatus.UNKNOWN


def test_submitting_never_waits_for_the_node_lock(node: DevNode, hook: RecordingHook) -> None:
    """While another thread holds the node's lock (as close() does while the plugin stops), submitting returns
    at once; the transaction is admitted once the lock is free."""
    key, script, coin = _funded(node)
    tx = _withdrawal(key, script, coin, 5 * COIN)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with node._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        node.services.submit_transaction(tx.serialize())
        assert node.services.transaction_status(tx.hash) is TxStatus.UNKNOWN  # nor does asking
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        holder.join()
    wait_until(lambda: node.services.transaction_status(tx.hash) is TxStatus.MEMPOOL, timeout=10, interval=0.01)


def test_close_with_queued_submissions_does_not_hang(tmp_path, caplog) -> None:
    """Closing the node while submissions wait for the lock finishes promptly; what was not admitted is logged
    as dropped and the submission thread ends."""
    node = DevNode(tmp_path / "node")
    node.start()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with node._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    for n in range(20):
        node.services.submit_transaction(bytes([n]))
    closer = threading.Thread(target=node.close)
    with caplog.at_level(logging.WARNING, logger="node_hooks.devnode.node"):
        closer.start()
        release.set()
        holder.join()
        closer.join(15)
        assert not closer.is_alive(), "close() hung"
        assert not node._worker.is_alive()
        node.services.submit_transaction(b"\x01")  # after close: logged and dropped, no error
    assert "dropped" in caplog.text


def test_exchange_service_keeps_the_services_and_survives_tx_events(tmp_path, reactor_thread) -> None:
    """Exchange mode receives the node's services at start, and a rejection or drop event reaches it without
    disturbing it (the engine's handling of them comes with withdrawals)."""
    with ServiceHarness(tmp_path, api_port=None) as exchange:
        assert exchange.service.node_services is exchange.node.services
        exchange.node.services.submit_transaction(b"\x00")
        key, script, coin = _funded(exchange.node)
        tx = _withdrawal(key, script, coin, 5 * COIN)
        exchange.node.send_raw_transaction(tx.to_hex())
        exchange.node.drop_transaction(tx.txid)
        exchange.generate(1)
        assert exchange.service.state.value == "running"

"""Deposits followed through real devnet blocks: seen, confirmed, named, credited once; frozen, change and
reorged deposits."""

from __future__ import annotations

import pytest

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script, notary_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.ledger.deposits import DepositError, DepositState
from tests.framework import TrackerHarness


@pytest.fixture
def exchange(tmp_path):
    """The deposit tracker alone, fed every block event of a devnet node."""
    with TrackerHarness(tmp_path) as exchange:
        yield exchange


def test_credited_once_at_the_confirmation_setting(exchange: TrackerHarness) -> None:
    """A named deposit is credited exactly when it reaches 7 confirmations, and only once."""
    outpoint = exchange.deposit(5 * COIN)
    exchange.generate(1)
    assert exchange.tracker.deposits[outpoint].state is DepositState.SEEN
    exchange.name("alice", [outpoint])
    exchange.generate(5)
    assert exchange.credits == [] and exchange.tracker.depth(exchange.tracker.deposits[outpoint]) == 6
    exchange.generate(1)
    assert exchange.credits == [("alice", 5 * COIN)]
    exchange.name("alice", [outpoint])  # idempotent
    exchange.generate(3)
    assert exchange.credits == [("alice", 5 * COIN)]
    assert exchange.tracker.deposits[outpoint].state is DepositState.REGISTERED


def test_naming_after_confirmation_credits_at_once_and_owner_is_fixed(exchange: TrackerHarness) -> None:
    """Naming a confirmed deposit credits it immediately; naming it for someone else is refused."""
    outpoint = exchange.deposit(2 * COIN)
    exchange.generate(8)
    assert exchange.tracker.deposits[outpoint].state is DepositState.CONFIRMED
    exchange.name("bob_", [outpoint])
    assert exchange.credits == [("bob_", 2 * COIN)]
    with pytest.raises(DepositError, match="another user"):
        exchange.tracker.name("carol", [outpoint])
    assert exchange.tracker.deposits[outpoint].owner == "bob_"


def test_bare_txid_names_every_exchange_output_and_unknown_is_refused(exchange: TrackerHarness) -> None:
    """A bare txid means all the exchange's outputs of that transaction; an unknown one changes nothing."""
    outpoint = exchange.deposit(3 * COIN)
    exchange.generate(7)
    assert exchange.tracker.outpoints_of(b"\x01" * 32) == []
    with pytest.raises(DepositError):
        exchange.tracker.name("dave", [outpoint, OutPoint(b"\x01" * 32, 0)])
    assert exchange.tracker.deposits[outpoint].owner is None
    exchange.name("dave", exchange.tracker.outpoints_of(outpoint.txid))
    assert exchange.credits == [("dave", 3 * COIN)]


def test_own_transactions_are_change_not_deposits(exchange: TrackerHarness) -> None:
    """Outputs of transactions the exchange built are never deposits, whatever their outputs look like."""
    exchange.tracker.own_txids.add(exchange.deposit(COIN).txid)
    exchange.generate(1)
    assert exchange.tracker.deposits == {}


def test_frozen_deposit_waits_for_its_lock_time(exchange: TrackerHarness) -> None:
    """An **F** deposit shows in the frozen figure and is credited only once a block passes its lock time."""
    outpoint = exchange.deposit(4 * COIN, frozen=True)
    exchange.generate(1)
    deposit = exchange.tracker.deposits[outpoint]
    assert deposit.lock_time > 0
    exchange.name("erin", [outpoint])
    exchange.generate(7)
    assert exchange.credits == [] and exchange.tracker.frozen_total() == 4 * COIN
    spacing = exchange.node.params.block_spacing
    exchange.generate(exchange.node.params.frozen_time // spacing)
    assert exchange.credits == [("erin", 4 * COIN)] and exchange.tracker.frozen_total() == 0


def test_reorg_unregistered_returns_registered_reverses(exchange: TrackerHarness) -> None:
    """A reorg removes an unregistered deposit (owner kept; credited when mined again) and reverses a
    registered one."""
    early = exchange.deposit(6 * COIN)
    exchange.generate(1)
    early_height = exchange.node.block_count()
    exchange.name("fay_", [early])
    exchange.generate(6)
    assert exchange.credits == [("fay_", 6 * COIN)]
    late = exchange.deposit(COIN)
    exchange.generate(1)
    exchange.name("gus_", [late])
    exchange.node.invalidate_block(early_height)
    exchange.sync()
    assert exchange.reversals == [("fay_", 6 * COIN)]
    assert late not in exchange.tracker.deposits
    # The reversed deposit's transaction went back to the mempool: mined again, it is credited again
    # without renaming. The late one spent a coinstake output the reorg removed, so it cannot return; its
    # owner stays on record should the same output ever be mined.
    exchange.generate(7)
    assert exchange.credits == [("fay_", 6 * COIN), ("fay_", 6 * COIN)]
    assert exchange.tracker.deposits[early].state is DepositState.REGISTERED
    assert late not in exchange.tracker.deposits and late.txid_hex not in exchange.node.mempool_txids()


def test_deposit_with_a_trailing_op_return_is_a_deposit(exchange: TrackerHarness) -> None:
    """W-C: a customer's payment whose last output is OP_RETURN is a deposit, not change."""
    key = PrivateKey.generate()
    address = key.public_key().address(DEVNET_KEYS)
    txid = exchange.node.send_to_address(address, 5 * COIN)
    exchange.generate(1)
    funding = Transaction.from_hex(exchange.node.get_raw_transaction(txid))
    n = next(i for i, o in enumerate(funding.outputs) if o.value == 5 * COIN)
    payment = Transaction(1, 0, (TxIn(OutPoint(funding.hash, n)),), (
        TxOut(4 * COIN, address_to_script(exchange.address, DEVNET_KEYS)),
        TxOut(COIN - 20_000, address_to_script(address, DEVNET_KEYS)),
        TxOut(0, notary_script("customer memo")),
    ), 0)
    payment = sign_input(payment, 0, key, address_to_script(address, DEVNET_KEYS))
    exchange.node.send_raw_transaction(payment.to_hex())
    exchange.generate(1)
    exchange.name("hana", exchange.tracker.outpoints_of(payment.hash))
    exchange.generate(6)
    assert exchange.credits == [("hana", 4 * COIN)]


def test_applied_blocks_are_remembered_only_to_the_reorg_depth(exchange: TrackerHarness, monkeypatch) -> None:
    """The tracker keeps the blocks it applied for undoing reorgs, but only the most recent ones."""
    import halo_exchange.ledger.deposits as deposits_module

    monkeypatch.setattr(deposits_module, "REORG_DEPTH", 5)
    exchange.generate(12)
    tip = exchange.node.block_count()
    assert exchange.tracker.applied_block(tip) is not None
    assert exchange.tracker.applied_block(tip - 4) is not None and exchange.tracker.applied_block(tip - 5) is None
    _, heights = exchange.tracker.take_changes()
    assert tip - 5 in heights  # the forgotten heights are deleted from the store too

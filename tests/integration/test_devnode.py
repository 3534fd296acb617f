"""The devnet node: peg votes move the supply, transfers carry rule-given fractions, freezes lock, reorgs
restore state exactly, and invalid transactions are refused with the rule they break."""

from __future__ import annotations

import pytest

from halo_exchange.chain import layout
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.peg import Fractions, next_supply_index
from halo_exchange.peg.fractions import NOTARY_F
from halo_exchange.peg.transfer import FreezeTimes, TransferInput, TransferOutput, apply_transfer_rule
from node_hooks import RecordingHook
from node_hooks.devnode.errors import InvalidParameter, NotFound, TxRejected
from node_hooks.devnode.node import DevNode


def _key_and_address() -> tuple[PrivateKey, str]:
    key = PrivateKey.generate()
    return key, key.public_key().address(DEVNET_KEYS)


def _fund(node: DevNode, address: str, amount: int) -> tuple[bytes, int]:
    """Send ``amount`` to ``address``, confirm it, and return the payee outpoint."""
    txid = node.send_to_address(address, amount)
    node.generate(1)
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    n = next(i for i, out in enumerate(tx.outputs) if out.value == amount)
    return tx.hash, n


def _spend(node: DevNode, key: PrivateKey, outpoint: tuple[bytes, int], outputs: list[TxOut]) -> Transaction:
    script = address_to_script(key.public_key().address(DEVNET_KEYS), DEVNET_KEYS)
    tx = Transaction(1, 0, (TxIn(OutPoint(*outpoint)),), tuple(outputs), 0)
    return sign_input(tx, 0, key, script)


def _state(node: DevNode) -> dict:
    """The UTXO set with each output's packed fractions: what a reorg must restore exactly."""
    state = {}
    for txid, n, record in node.reader.iter_utxos():
        state[(txid, n)] = (record, node.store.db.get(layout.fractions_key(txid, n)))
    return state


def test_deflate_votes_raise_supply_three_cycles_later(node: DevNode) -> None:
    """Deflate votes cast in one cycle move the supply index of the cycle three later, by the rule."""
    interval = node.params.peg_interval
    node.generate(interval - 1, "deflate")  # all of cycle 0 (heights 1..19) votes deflate
    node.generate(3 * interval, "nochange")  # cycles 1-3 vote no change
    votes0 = tuple(node.get_block(interval - 1)["votes"].values())
    assert votes0[1] > 0 and votes0[0] == votes0[2] == 0
    assert [node.get_block(h)["supply"] for h in (interval, 2 * interval, 3 * interval - 1)] == [0, 0, 0]
    expected = next_supply_index(0, votes0, (0, 0, 0))
    assert expected == 3
    assert node.get_block(3 * interval)["supply"] == expected
    info = node.peg_info()
    assert info["peg"] == expected and info["cycle"] == 3


def test_peg_info_announces_next_two_supplies(node: DevNode) -> None:
    """pegnext and pegnextnext are fixed by votes already cast, and become the supplies that follow."""
    interval = node.params.peg_interval
    node.generate(2 * interval, "deflate")
    info = node.peg_info()
    node.generate(interval, "nochange")
    assert node.peg_info()["peg"] == info["pegnext"]
    node.generate(interval, "nochange")
    assert node.peg_info()["peg"] == info["pegnextnext"]


def test_send_outputs_carry_transfer_rule_fractions(node: DevNode) -> None:
    """A confirmed send's outputs carry exactly the fractions the transfer rule gives at the block's supply."""
    interval = node.params.peg_interval
    node.generate(4 * interval, "deflate")  # supply > 0 so reserve and liquid differ
    supply = node.peg_info()["peg"]
    assert supply > 0
    key, address = _key_and_address()
    outpoint = _fund(node, address, 10 * COIN)
    funded = node.reader.fractions(outpoint[0], outpoint[1], 10 * COIN)
    assert funded.low(supply) == 0, "a payment to a foreign address carries only liquid"

    _, other = _key_and_address()
    spend = _spend(node, key, outpoint, [
        TxOut(4 * COIN, address_to_script(other, DEVNET_KEYS)),
        TxOut(6 * COIN - 20_000, address_to_script(address, DEVNET_KEYS)),
    ])
    node.send_raw_transaction(spend.to_hex())
    node.generate(1)
    block_supply = node.get_block(node.block_count())["supply"]
    expected = apply_transfer_rule(
        [TransferInput(10 * COIN, funded, address)],
        [TransferOutput(4 * COIN, address=other), TransferOutput(6 * COIN - 20_000, address=address)],
        block_supply,
        node.get_block(node.block_count())["time"],
        FreezeTimes(node.params.frozen_time, node.params.vfrozen_time),
    )
    for n in range(2):
        stored = node.reader.fractions(spend.hash, n, spend.outputs[n].value)
        assert stored.to_list() == expected.outputs[n].to_list()


def test_frozen_transfer_is_locked_until_its_lock_time(node: DevNode) -> None:
    """An **F** transfer arrives marked frozen with block time + freeze time, and cannot be spent earlier."""
    key, address = _key_and_address()
    txid = node.send_frozen(address, 3 * COIN)
    node.generate(1)
    block = node.get_block(node.block_count())
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    n = next(i for i, out in enumerate(tx.outputs) if out.value == 3 * COIN)
    facts = node.get_fractions(txid, n)
    assert facts["flags"] == "F" and facts["lock"] == block["time"] + node.params.frozen_time

    _, other = _key_and_address()
    spend = _spend(node, key, (tx.hash, n), [TxOut(3 * COIN - 10_000, address_to_script(other, DEVNET_KEYS))])
    with pytest.raises(TxRejected) as refused:
        node.send_raw_transaction(spend.to_hex())
    assert refused.value.rule == "P-I-4"
    blocks_to_unlock = node.params.frozen_time // node.params.block_spacing
    node.generate(blocks_to_unlock)
    assert node.send_raw_transaction(spend.to_hex()) == spend.txid


def test_reorg_restores_utxos_and_fractions_exactly(node: DevNode, hook: RecordingHook) -> None:
    """Invalidating blocks then mining another branch restores the UTXO set and fractions exactly, and the
    disconnect hook runs once per block."""
    node.generate(5)
    fork_height = node.block_count() + 1
    before = _state(node)
    key, address = _key_and_address()
    outpoint = _fund(node, address, 7 * COIN)
    node.send_frozen(address, 2 * COIN)
    node.generate(3, "deflate")
    disconnected_before = len(hook.of_kind("disconnected"))
    tip = node.block_count()
    node.invalidate_block(fork_height)
    assert node.block_count() == fork_height - 1
    gone = hook.of_kind("disconnected")[disconnected_before:]
    assert [event[1] for event in gone] == list(range(tip, fork_height - 1, -1))
    # The reorged-out sends wait in the mempool again; without them the state is what it was.
    assert len(node.mempool_txids()) == 2
    assert _state(node) == before
    node.generate(1)
    assert node.reader.utxo(*outpoint) is not None, "the readmitted payment confirms on the new branch"


def test_invalid_transactions_are_refused_with_the_rule(node: DevNode) -> None:
    """Bad signature, double spend, too small a fee and too much liquid are refused, naming the rule."""
    key, address = _key_and_address()
    outpoint = _fund(node, address, 5 * COIN)
    _, other = _key_and_address()
    pay = address_to_script(other, DEVNET_KEYS)

    wrong_key = PrivateKey.generate()
    unsigned = Transaction(1, 0, (TxIn(OutPoint(*outpoint)),), (TxOut(COIN, pay),), 0)
    wrong_script = address_to_script(wrong_key.public_key().address(DEVNET_KEYS), DEVNET_KEYS)
    forged = sign_input(unsigned, 0, wrong_key, wrong_script)
    cases = [
        (forged, "bad-signature"),
        (_spend(node, key, outpoint, [TxOut(5 * COIN - 100, pay)]), "fee-too-low"),
    ]
    for tx, rule in cases:
        with pytest.raises(TxRejected) as refused:
            node.send_raw_transaction(tx.to_hex())
        assert refused.value.rule == rule

    good = _spend(node, key, outpoint, [TxOut(5 * COIN - 10_000, pay)])
    node.send_raw_transaction(good.to_hex())
    double = _spend(node, key, outpoint, [TxOut(5 * COIN - 20_000, pay)])
    with pytest.raises(TxRejected) as refused:
        node.send_raw_transaction(double.to_hex())
    assert refused.value.rule == "double-spend"
    node.generate(1)
    with pytest.raises(TxRejected) as refused:
        node.send_raw_transaction(double.to_hex())
    assert refused.value.rule == "double-spend"


def test_foreign_output_needing_more_liquid_is_p_o_4(node: DevNode) -> None:
    """Paying a foreign address more than the inputs' liquid (reserve cannot go there) is P-O-4, which
    bitbay-core reports as the fee check that runs after it (P-G-3), naming P-O-4 in the detail."""
    interval = node.params.peg_interval
    node.generate(6 * interval, "deflate")
    supply = node.peg_info()["peg"]
    key, address = _key_and_address()
    # An **F** transfer delivers reserve-heavy fractions once the supply is high enough.
    txid = node.send_frozen(address, 50 * COIN)
    node.generate(node.params.frozen_time // node.params.block_spacing + 1)
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    n = next(i for i, out in enumerate(tx.outputs) if out.value == 50 * COIN)
    fractions = node.reader.fractions(tx.hash, n, 50 * COIN)
    next_supply = node.reader.supply_for_new_block(node.block_count() + 1)
    liquid = fractions.high(next_supply)
    assert fractions.flags & NOTARY_F and liquid < 50 * COIN - 10_000, (supply, liquid)
    _, other = _key_and_address()
    spend = _spend(node, key, (tx.hash, n), [TxOut(50 * COIN - 10_000, address_to_script(other, DEVNET_KEYS))])
    with pytest.raises(TxRejected) as refused:
        node.send_raw_transaction(spend.to_hex())
    assert refused.value.rule == "P-G-3" and "P-O-4" in refused.value.detail


def test_restart_resumes_from_the_db(tmp_path) -> None:
    """A node closed and reopened continues from its last block with the same wallet and peg state."""
    node = DevNode(tmp_path / "n")
    node.generate(25, "deflate")
    address = node.get_new_address()
    node.send_to_address(address, COIN)
    node.generate(1)
    state = (node.block_count(), node.best_block_hash(), node.peg_info(), node.list_unspent(address))
    node.close()
    again = DevNode(tmp_path / "n")
    try:
        assert (again.block_count(), again.best_block_hash(), again.peg_info(), again.list_unspent(address)) == state
        again.send_to_address(address, COIN)  # the wallet keys survived too
        again.generate(1)
    finally:
        again.close()


def test_bad_parameters(node: DevNode) -> None:
    """Unknown blocks and outputs, bad addresses, amounts and votes get clear errors and change nothing."""
    height = node.block_count()
    with pytest.raises(NotFound):
        node.get_block(height + 1)
    with pytest.raises(NotFound):
        node.get_fractions("00" * 32, 0)
    with pytest.raises(InvalidParameter):
        node.send_to_address("not-an-address", COIN)
    with pytest.raises(InvalidParameter):
        node.send_to_address(node.get_new_address(), 0)
    with pytest.raises(InvalidParameter):
        node.generate(1, "sideways")
    with pytest.raises(InvalidParameter):
        node.invalidate_block(0)
    assert node.block_count() == height and node.mempool_txids() == []


def test_stake_reward_and_fees_go_to_the_coinstake(node: DevNode) -> None:
    """A staked block's coinstake returns stake + reward + fees, and its fractions total that value."""
    key, address = _key_and_address()
    node.send_to_address(address, COIN)
    node.generate(1)
    block = node.get_block(node.block_count())
    coinstake = Transaction.from_hex(node.get_raw_transaction(block["txids"][1]))
    stake_in = coinstake.inputs[0].prevout
    staked = node.reader.output(stake_in.txid, stake_in.n)
    fee = 5000 * 3  # one input, payee and change
    assert coinstake.outputs[1].value == staked.value + node.params.stake_reward + fee
    stored = node.reader.fractions(coinstake.hash, 1, coinstake.outputs[1].value)
    assert stored.total() == coinstake.outputs[1].value
    assert block["vote"] == "nochange" and block["voteweight"] >= 1
    assert isinstance(Fractions.std(1), Fractions)


def test_unconfirmed_chain_confirms_in_one_block(node: DevNode) -> None:
    """A transaction spending a pending transaction's output is accepted and both confirm in one block."""
    key, address = _key_and_address()
    txid = node.send_to_address(address, 4 * COIN)  # not confirmed
    parent = Transaction.from_hex(node.get_raw_transaction(txid))
    n = next(i for i, out in enumerate(parent.outputs) if out.value == 4 * COIN)
    _, other = _key_and_address()
    child = _spend(node, key, (parent.hash, n), [TxOut(4 * COIN - 10_000, address_to_script(other, DEVNET_KEYS))])
    node.send_raw_transaction(child.to_hex())
    node.generate(1)
    txids = node.get_block(node.block_count())["txids"]
    assert txids.index(parent.txid) < txids.index(child.txid)
    assert node.reader.utxo(parent.hash, n) is None and node.reader.utxo(child.hash, 0) is not None
    assert node.mempool_txids() == []

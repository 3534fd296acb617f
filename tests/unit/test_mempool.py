"""The devnode's mempool alone, over a small fake chain: admission, conflicts, eviction when a block connects,
and readmission after a reorg."""

from __future__ import annotations

import pytest

from halo_exchange.chain import layout
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN, DEVNET
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.peg.fractions import Fractions
from node_hooks.devnode.consensus import BlockContext
from node_hooks.devnode.errors import TxRejected
from node_hooks.devnode.mempool import DROP_CONFLICT, DROP_REORG, Mempool

ALICE = PrivateKey.from_int(11)
BOB = PrivateKey.from_int(12)
FEE = 10_000  # one input, one output: 2 x fee_per_input_output
AT = BlockContext(height=5, supply=0, time=DEVNET.genesis_time + 5 * 64, parent=b"\x11" * 32)


def _script(key: PrivateKey) -> bytes:
    return address_to_script(key.public_key().address(DEVNET_KEYS), DEVNET_KEYS)


class FakeChain:
    """The chain as the mempool reads it: confirmed transactions and the unspent outputs among theirs.

    ``connect`` and ``disconnect`` apply a block's transactions the way the node's store does, without blocks.
    """

    def __init__(self) -> None:
        self.txs: dict[bytes, Transaction] = {}
        self.utxos: dict[tuple[bytes, int], layout.UtxoRecord] = {}
        self._serial = 0

    def utxo(self, txid: bytes, n: int) -> layout.UtxoRecord | None:
        return self.utxos.get((txid, n))

    def fractions(self, txid: bytes, n: int, value: int) -> Fractions:
        return Fractions.std(value)

    def output(self, txid: bytes, n: int) -> TxOut | None:
        tx = self.txs.get(txid)
        return tx.outputs[n] if tx is not None and 0 <= n < len(tx.outputs) else None

    def transaction(self, txid: bytes) -> Transaction | None:
        return self.txs.get(txid)

    def fund(self, key: PrivateKey, value: int) -> tuple[bytes, int]:
        """A confirmed coinbase paying ``value`` to ``key``; returns its outpoint."""
        self._serial += 1
        unique = self._serial.to_bytes(4, "little")  # coinbases of equal value must differ in txid
        coinbase = Transaction(1, 0, (TxIn(OutPoint.null(), unique),), (TxOut(value, _script(key)),), 0)
        self.connect([coinbase])
        return coinbase.hash, 0

    def connect(self, txs: list[Transaction]) -> None:
        for tx in txs:
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    del self.utxos[(txin.prevout.txid, txin.prevout.n)]
            for n, out in enumerate(tx.outputs):
                self.utxos[(tx.hash, n)] = layout.UtxoRecord(out.value, out.script_pubkey, 1, 0)
            self.txs[tx.hash] = tx

    def disconnect(self, txs: list[Transaction]) -> None:
        for tx in reversed(txs):
            for n in range(len(tx.outputs)):
                self.utxos.pop((tx.hash, n), None)
            del self.txs[tx.hash]
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    spent = self.txs[txin.prevout.txid].outputs[txin.prevout.n]
                    record = layout.UtxoRecord(spent.value, spent.script_pubkey, 1, 0)
                    self.utxos[(txin.prevout.txid, txin.prevout.n)] = record


def _spend(
    key: PrivateKey, outpoint: tuple[bytes, int], value: int, to: PrivateKey = BOB, fee: int = FEE
) -> Transaction:
    """``key`` pays ``value - fee`` of the output ``outpoint`` (worth ``value``) to ``to``."""
    tx = Transaction(1, 0, (TxIn(OutPoint(*outpoint)),), (TxOut(value - fee, _script(to)),), 0)
    return sign_input(tx, 0, key, _script(key))


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
def mempool(chain: FakeChain) -> Mempool:
    return Mempool(chain, DEVNET)


def _rule(call, *args) -> str:
    with pytest.raises(TxRejected) as refused:
        call(*args)
    return refused.value.rule


def test_a_valid_spend_is_admitted_once(chain: FakeChain, mempool: Mempool) -> None:
    """A signed spend of a chain coin enters with its fee and outputs' fractions; sending it again changes nothing."""
    coin = chain.fund(ALICE, COIN)
    tx = _spend(ALICE, coin, COIN)
    checked = mempool.accept(tx, AT)
    assert checked.fee == FEE and checked.output_fractions[0].total() == COIN - FEE
    assert mempool.accept(tx, AT) is checked
    assert mempool.txids() == [tx.hash] and mempool.transaction(tx.hash) == tx and tx.hash in mempool
    assert mempool.spends(*coin) and not mempool.spends(tx.hash, 0)


def test_refusals_name_the_rule_and_change_nothing(chain: FakeChain, mempool: Mempool) -> None:
    """A forged signature, an unknown input, a too small fee and a confirmed transaction are refused by name."""
    coin = chain.fund(ALICE, COIN)
    confirmed = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    chain.connect([confirmed])
    cases = [
        (_spend(BOB, coin, COIN), "bad-signature"),
        (_spend(ALICE, (b"\x22" * 32, 0), COIN), "missing-inputs"),
        (_spend(ALICE, coin, COIN, fee=FEE - 1), "fee-too-low"),
        (confirmed, "txn-already-in-chain"),
    ]
    for tx, rule in cases:
        assert _rule(mempool.accept, tx, AT) == rule
    assert len(mempool) == 0 and not mempool.spends(*coin)


def test_double_spends_are_refused(chain: FakeChain, mempool: Mempool) -> None:
    """A second spend of an output a pending transaction spends, or of one spent in the chain, is a double spend."""
    coin = chain.fund(ALICE, COIN)
    first = _spend(ALICE, coin, COIN)
    mempool.accept(first, AT)
    assert _rule(mempool.accept, _spend(ALICE, coin, COIN, to=ALICE), AT) == "double-spend"
    assert mempool.txids() == [first.hash]

    spent = chain.fund(ALICE, COIN)
    chain.connect([_spend(ALICE, spent, COIN)])
    assert _rule(mempool.accept, _spend(ALICE, spent, COIN, to=ALICE), AT) == "double-spend"


def test_a_child_of_a_pending_transaction_is_admitted_after_it(chain: FakeChain, mempool: Mempool) -> None:
    """A spend of a pending output is admitted; block candidates list the parent before the child."""
    parent = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    child = _spend(BOB, (parent.hash, 0), COIN - FEE, to=ALICE)
    mempool.accept(parent, AT)
    mempool.accept(child, AT)
    assert [c.tx for c in mempool.block_candidates(AT)] == [parent, child]
    assert mempool.txids() == [parent.hash, child.hash]


def test_candidates_no_longer_valid_leave_with_their_children(chain: FakeChain, mempool: Mempool) -> None:
    """When a pending transaction's input vanished from the chain, assembly drops it and the child spending it,
    and both are recorded as dropped with the rule they now break."""
    coin = chain.fund(ALICE, COIN)
    parent = _spend(ALICE, coin, COIN)
    child = _spend(BOB, (parent.hash, 0), COIN - FEE, to=ALICE)
    other = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    for tx in (parent, child, other):
        mempool.accept(tx, AT)
    del chain.utxos[coin]  # spent behind the mempool's back
    assert [c.tx for c in mempool.block_candidates(AT)] == [other]
    assert mempool.txids() == [other.hash] and not mempool.spends(*coin)
    dropped = mempool.take_dropped()
    assert [tx for tx, _ in dropped] == [parent, child] and all(reason for _, reason in dropped)
    assert mempool.take_dropped() == [], "taken once"


def test_a_connected_block_evicts_its_transactions_and_their_conflicts(chain: FakeChain, mempool: Mempool) -> None:
    """Mined transactions leave silently; a pending spend of an output the block spent leaves too, with its
    descendants, both recorded as dropped for a conflict."""
    mined = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    waiting = _spend(BOB, (mined.hash, 0), COIN - FEE, to=ALICE)
    contested = chain.fund(ALICE, COIN)
    loser = _spend(ALICE, contested, COIN)
    loser_child = _spend(BOB, (loser.hash, 0), COIN - FEE, to=ALICE)
    for tx in (mined, waiting, loser, loser_child):
        mempool.accept(tx, AT)
    winner = _spend(ALICE, contested, COIN, to=ALICE)  # the block's own spend of the contested coin
    chain.connect([mined, winner])
    mempool.block_connected([mined, winner])
    assert mempool.txids() == [waiting.hash]
    assert not mempool.spends(*contested) and not mempool.spends(loser.hash, 0)
    dropped = mempool.take_dropped()
    assert [tx for tx, _ in dropped] == [loser, loser_child]
    assert all(reason.startswith(DROP_CONFLICT + ":") for _, reason in dropped)
    assert [c.tx for c in mempool.block_candidates(AT)] == [waiting], "the child now spends a chain coin"


def test_a_reorg_readmits_disconnected_transactions_before_pending_ones(chain: FakeChain, mempool: Mempool) -> None:
    """The disconnected block's ordinary transactions return first, the pending child is re-checked after its
    parent, coinbases stay out, and a pending spend of a vanished output is dropped."""
    coinbase_coin = chain.fund(ALICE, COIN)
    coinbase = chain.txs[coinbase_coin[0]]
    parent = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    block = [parent]
    chain.connect(block)
    child = _spend(BOB, (parent.hash, 0), COIN - FEE, to=ALICE)
    orphan = _spend(ALICE, coinbase_coin, COIN)
    mempool.accept(child, AT)
    mempool.accept(orphan, AT)

    chain.disconnect(block)
    chain.disconnect([coinbase])  # a second disconnected block: its coinbase and output vanish
    mempool.readmit([coinbase, parent], AT)
    assert mempool.txids() == [parent.hash, child.hash]
    assert mempool.spends(parent.hash, 0) and not mempool.spends(*coinbase_coin)
    [(dropped, reason)] = mempool.take_dropped()
    assert dropped == orphan and reason.startswith(DROP_REORG + ": ")


def test_readmission_after_a_reorg_checks_like_admission(chain: FakeChain, mempool: Mempool) -> None:
    """A returned transaction that the new tip already holds, or that now double-spends, is not readmitted."""
    coin = chain.fund(ALICE, COIN)
    returned = _spend(ALICE, coin, COIN)
    still_in_chain = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    chain.connect([still_in_chain])
    chain.connect([_spend(ALICE, coin, COIN, to=ALICE)])  # the new branch spent the coin differently
    mempool.readmit([returned, still_in_chain], AT)
    assert len(mempool) == 0
    # Only the double spend is a drop: the other is still mined, on the new branch.
    assert [(tx, reason.split(": ")[:2]) for tx, reason in mempool.take_dropped()] == [
        (returned, [DROP_REORG, "double-spend"])
    ]


def test_remove_takes_a_transaction_with_its_descendants(chain: FakeChain, mempool: Mempool) -> None:
    """The devnet's removal takes a transaction and every pending descendant, leaves the rest, and records no
    drop (the node reports the reason)."""
    parent = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    child = _spend(BOB, (parent.hash, 0), COIN - FEE, to=ALICE)
    grandchild = _spend(ALICE, (child.hash, 0), COIN - 2 * FEE, to=BOB)
    other = _spend(ALICE, chain.fund(ALICE, COIN), COIN)
    for tx in (parent, child, grandchild, other):
        mempool.accept(tx, AT)
    assert mempool.remove(parent.hash) == [parent, child, grandchild]
    assert mempool.txids() == [other.hash] and not mempool.spends(parent.hash, 0)
    assert mempool.remove(parent.hash) == [] and mempool.take_dropped() == []

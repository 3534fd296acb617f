"""The devnet node's block producer: what the next block is, how a block is assembled, and handing it over.

A block is a coinbase, a coinstake that stakes the wallet's largest free coin and carries the producer's
peg vote, then every mempool transaction still valid at the block's supply and time. Its outputs' fractions
come from the consensus rules: the transfer rule for ordinary transactions
(:func:`~node_hooks.devnode.consensus.check_transaction`), stake + ``Std(reward)`` + fee fractions for the
coinstake. The block's peg fields carry the vote counters of its cycle. :meth:`BlockProducer.produce`
hands the block to :meth:`ChainStore.connect <node_hooks.devnode.store.ChainStore.connect>`, one atomic
batch; the node holds its lock around the call and tells the mempool and the hooks afterwards.

Blocks advance time by ``block_spacing`` from their parent, not by the wall clock, so lock times and
cycles are deterministic. The genesis block (the premine) is built here too.
"""

from __future__ import annotations

import os

from halo_exchange.chain import layout
from halo_exchange.chain.block import Block
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.params import COIN, ChainParams
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.votes import vote_weight
from node_hooks.devnode.coins import CoinSelector
from node_hooks.devnode.consensus import BlockContext, CheckedTx, coinstake_fractions
from node_hooks.devnode.mempool import Mempool
from node_hooks.devnode.store import ChainStore, ConnectedBlock
from node_hooks.devnode.wallet import DevWallet

BLOCK_VERSION = 7
PREMINE_OUTPUTS = 8
PREMINE_PER_OUTPUT = 100_000 * COIN


def genesis_block(params: ChainParams, premine_script: bytes) -> ConnectedBlock:
    """The genesis block: a coinbase paying the premine to ``premine_script``, with standard fractions."""
    coinbase = Transaction(
        version=1,
        time=params.genesis_time,
        inputs=(TxIn(OutPoint.null(), b"\x00devnet genesis"),),
        outputs=tuple(TxOut(PREMINE_PER_OUTPUT, premine_script) for _ in range(PREMINE_OUTPUTS)),
        lock_time=0,
    )
    block = Block.assemble(BLOCK_VERSION, b"\x00" * 32, params.genesis_time, [coinbase])
    fractions = {(0, n): Fractions.std(PREMINE_PER_OUTPUT) for n in range(PREMINE_OUTPUTS)}
    return ConnectedBlock(block, 0, layout.PegFields(0, 0, 0, 0), fractions)


class BlockProducer:
    """Assembles blocks on the tip of ``store`` from ``mempool``, staking with ``wallet``'s coins."""

    def __init__(
        self,
        store: ChainStore,
        params: ChainParams,
        wallet: DevWallet,
        mempool: Mempool,
        coins: CoinSelector,
    ) -> None:
        self._store = store
        self._reader = store.reader
        self._params = params
        self._wallet = wallet
        self._mempool = mempool
        self._coins = coins
        # The coinbase carries height + extranonce, which keeps its txid unique in the chain; the random
        # start keeps the coinbases of separate runs (other nodes, restarts) apart as well.
        self._extranonce = int.from_bytes(os.urandom(4), "little")

    def next_block(self) -> BlockContext:
        """The block that would be produced now: on the tip, at the supply it must carry, one spacing later."""
        tip = self._reader.tip()
        assert tip is not None
        height = tip[0] + 1
        parent = self._reader.block_header(tip[0])
        assert parent is not None
        return BlockContext(
            height, self._reader.supply_for_new_block(height), parent.time + self._params.block_spacing, tip[1]
        )

    def produce(self, vote: int) -> ConnectedBlock:
        """Assemble the next block casting ``vote`` (a vote code, 1..3) and connect it; return it once durable."""
        connected = self.assemble(vote)
        self._store.connect(connected)
        return connected

    def assemble(self, vote: int) -> ConnectedBlock:
        """The next block casting ``vote``; pending transactions that are no longer valid leave the mempool."""
        at = self.next_block()
        height, supply, block_time = at.height, at.supply, at.time
        included: list[CheckedTx] = self._mempool.block_candidates(at)
        spent: set[tuple[bytes, int]] = {outpoint for checked in included for outpoint in checked.spent}
        fees = sum(c.fee for c in included)
        fee_fractions = [c.fee_fractions for c in included]

        self._extranonce += 1
        coinbase_sig = height.to_bytes(4, "little") + self._extranonce.to_bytes(8, "little")
        stake = self._coins.stake(block_time, spent)
        fractions: dict[tuple[int, int], Fractions] = {}
        weight = 0
        if stake is not None:
            coinbase = Transaction(1, block_time, (TxIn(OutPoint.null(), coinbase_sig),), (TxOut(0, b""),), 0)
            vote_script = address_to_script(self._params.vote_addresses[vote - 1], DEVNET_KEYS)
            coinstake = Transaction(
                version=1,
                time=block_time,
                inputs=(TxIn(OutPoint(stake.txid, stake.n)),),
                outputs=(
                    TxOut(0, b""),
                    TxOut(stake.record.value + self._params.stake_reward + fees, stake.record.script),
                    TxOut(0, vote_script),
                ),
                lock_time=0,
            )
            coinstake = self._wallet.sign(coinstake, [stake.record.script])
            for out_n, fr in coinstake_fractions(stake.fractions, self._params.stake_reward, fee_fractions, 3).items():
                fractions[(1, out_n)] = fr
            if height >= self._params.peg_start_height:
                weight = vote_weight(stake.fractions, supply)
            first = [coinbase, coinstake]
        else:
            # No coin to stake: a proof-of-work style block; it pays the reward and casts no vote.
            reward_script = address_to_script(self._wallet.addresses[0], DEVNET_KEYS)
            total = self._params.stake_reward + fees
            coinbase = Transaction(
                1, block_time, (TxIn(OutPoint.null(), coinbase_sig),), (TxOut(total, reward_script),), 0
            )
            reward = Fractions.std(self._params.stake_reward)
            for fee in fee_fractions:
                reward = reward + fee
            fractions[(0, 0)] = reward
            first = [coinbase]
            vote = 0
        for position, checked in enumerate(included, start=len(first)):
            for out_n, fr in enumerate(checked.output_fractions):
                fractions[(position, out_n)] = fr

        block = Block.assemble(BLOCK_VERSION, at.parent, block_time, first + [c.tx for c in included])
        peg = self._peg_fields(height, supply, vote if weight else 0, weight)
        return ConnectedBlock(block, height, peg, fractions)

    def _peg_fields(self, height: int, supply: int, vote: int, weight: int) -> layout.PegFields:
        """Vote counters run through a cycle and reset at its first block (bitbay-core peg.cpp:302-310)."""
        counters = [0, 0, 0]
        if height % self._params.peg_interval != 0:
            previous = self._reader.peg_fields(height - 1)
            if previous is not None:
                counters = list(previous.votes)
        if vote:
            counters[vote - 1] += weight
        return layout.PegFields(supply, counters[0], counters[1], counters[2], vote, weight)

"""``DevNode``: the devnet node. Produces blocks, validates transactions, reorgs, and calls the node hooks.

Every chain change goes through one lock: a block is assembled (coinbase, a coinstake that carries the
producer's peg vote, then valid mempool transactions), its fractions computed by the consensus rules,
written in one atomic batch by :class:`~node_hooks.devnode.store.ChainStore`, and only then announced to
the hooks. Between blocks the node sleeps 0 s so an in-process reactor gets the GIL (DESIGN.md §3).

Blocks advance time by ``block_spacing`` (64 s) from their parent, not by the wall clock, so lock times and
cycles are deterministic. The mempool is memory only: a restarted node resumes from its last committed
block with an empty mempool, as a node without a mempool file does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from halo_exchange.chain import layout
from halo_exchange.chain.block import Block
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import is_valid_address
from halo_exchange.chain.params import COIN, DEVNET, ChainParams
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxError, TxIn, TxOut
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import NOTARY_C, NOTARY_F, NOTARY_V, PEG_SIZE, Fractions
from halo_exchange.peg.votes import vote_weight
from node_hooks import HookDispatcher
from node_hooks.devnode.coins import CoinSelector
from node_hooks.devnode.consensus import BlockContext, CheckedTx, coinstake_fractions
from node_hooks.devnode.errors import InvalidParameter, NodeStopped, NotFound, TxRejected
from node_hooks.devnode.mempool import Mempool
from node_hooks.devnode.store import ChainStore, ConnectedBlock
from node_hooks.devnode.wallet import DevWallet

log = logging.getLogger(__name__)

VOTES = ("inflate", "deflate", "nochange")  # index + 1 is the vote code stored per block
BLOCK_VERSION = 7
PREMINE_OUTPUTS = 8
PREMINE_PER_OUTPUT = 100_000 * COIN


def _flags_text(fractions: Fractions) -> str:
    return "F" if fractions.flags & NOTARY_F else "V" if fractions.flags & NOTARY_V else "C" if fractions.flags & NOTARY_C else ""


def _txid_bytes(txid: str) -> bytes:
    if not isinstance(txid, str) or len(txid) != 64:
        raise InvalidParameter("a txid is 64 hex characters")
    try:
        return bytes.fromhex(txid)[::-1]
    except ValueError as exc:
        raise InvalidParameter("a txid is 64 hex characters") from exc


class DevNode:
    """A devnet node over one data directory; safe to call from several threads."""

    def __init__(
        self,
        datadir: str | os.PathLike[str],
        params: ChainParams = DEVNET,
        *,
        dispatcher: HookDispatcher | None = None,
    ) -> None:
        self.datadir = Path(datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        # The one lock of every chain and mempool change. Reentrant, because hooks run while it is held
        # and one that calls back into the node on the same thread must not deadlock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stopped = False
        self.dispatcher = dispatcher or HookDispatcher()
        self.store = ChainStore(str(self.datadir / "chain"))
        try:
            if not self.store.initialised:
                self._create_genesis(params)
            self.reader: ChainReader = self.store.reader
            self.params = self.reader.params()
            self.wallet = DevWallet(self.store)
        except BaseException:
            self.store.close()
            raise
        self._mempool = Mempool(self.reader, self.params)
        self._coins = CoinSelector(self.reader, self.wallet, self._mempool, self.params)
        self._extranonce = int.from_bytes(os.urandom(4), "little")

    # -- lifecycle -----------------------------------------------------------------------------------

    def _create_genesis(self, params: ChainParams) -> None:
        address, key = DevWallet.new_key()
        script = address_to_script(address, DEVNET_KEYS)
        coinbase = Transaction(
            version=1,
            time=params.genesis_time,
            inputs=(TxIn(OutPoint.null(), b"\x00devnet genesis"),),
            outputs=tuple(TxOut(PREMINE_PER_OUTPUT, script) for _ in range(PREMINE_OUTPUTS)),
            lock_time=0,
        )
        block = Block.assemble(BLOCK_VERSION, b"\x00" * 32, params.genesis_time, [coinbase])
        fractions = {(0, n): Fractions.std(PREMINE_PER_OUTPUT) for n in range(PREMINE_OUTPUTS)}
        genesis = ConnectedBlock(block, 0, layout.PegFields(0, 0, 0, 0), fractions)
        self.store.initialise(params, genesis, {address: key.to_bytes()})
        log.info("devnet genesis %s premines %d x %d to %s", block.header.hash_hex, PREMINE_OUTPUTS, PREMINE_PER_OUTPUT, address)

    def start(self) -> None:
        """Tell the hooks the node is up (the exchange plugin starts here)."""
        self.dispatcher.node_started(self.store.db, self.reader, self.params)

    def request_stop(self) -> None:
        """Ask the node's main loop to stop; returns at once."""
        self._stop.set()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def close(self) -> None:
        """Stop taking commands, tell the hooks, close the DB. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._stop.set()
            self.dispatcher.node_stopped()
            self.store.close()

    def _check_running(self) -> None:
        if self._stopped:
            raise NodeStopped("the node is stopped")

    # -- queries ---------------------------------------------------------------------------------------

    def block_count(self) -> int:
        return self.reader.height()

    def best_block_hash(self) -> str:
        tip = self.reader.tip()
        assert tip is not None
        return tip[1][::-1].hex()

    def get_block(self, height: int) -> dict[str, Any]:
        with self.reader.snapshot() as view:
            record = view.block_record(height)
            if record is None:
                raise NotFound(f"no block at height {height}")
            header = view.block_header(height)
            assert header is not None
            return {
                "hash": header.hash_hex,
                "height": height,
                "time": header.time,
                "previousblockhash": header.prev_hash[::-1].hex(),
                "txids": [txid[::-1].hex() for txid in record.txids],
                "supply": record.peg.supply,
                "votes": dict(zip(VOTES, record.peg.votes)),
                "vote": VOTES[record.peg.vote - 1] if record.peg.vote else "",
                "voteweight": record.peg.vote_weight,
            }

    def peg_info(self) -> dict[str, int]:
        info = self.reader.peg_info()
        return {
            "cycle": info.cycle,
            "interval": info.interval,
            "peg": info.supply,
            "pegnext": info.supply_next,
            "pegnextnext": info.supply_next_next,
            "steps": PEG_SIZE,
        }

    def get_raw_transaction(self, txid: str) -> str:
        txid_b = _txid_bytes(txid)
        with self._lock:
            pending = self._mempool.transaction(txid_b)
        if pending is not None:
            return pending.to_hex()
        found = self.reader.transaction(txid_b)
        if found is None:
            raise NotFound(f"no transaction {txid}")
        return found[0].to_hex()

    def get_fractions(self, txid: str, n: int) -> dict[str, Any]:
        with self.reader.snapshot() as view:
            info = view.output(_txid_bytes(txid), n)
            if info is None:
                raise NotFound(f"no output {txid}:{n}")
            fields = view.peg_fields(info.height)
            supply = 0 if fields is None else fields.supply
        return {
            "total": info.value,
            "reserve": info.fractions.low(supply),
            "liquidity": info.fractions.high(supply),
            "peg": supply,
            "lock": info.lock_time,
            "flags": _flags_text(info.fractions),
        }

    def list_unspent(self, address: str) -> list[dict[str, Any]]:
        script = self._script_for(address)
        with self.reader.snapshot() as view:
            height = view.height()
            fields = view.peg_fields(height)
            supply = 0 if fields is None else fields.supply
            out = []
            for txid, n, record in view.iter_utxos():
                if record.script != script:
                    continue
                fractions = view.fractions(txid, n, record.value)
                out.append({
                    "txid": txid[::-1].hex(),
                    "vout": n,
                    "address": address,
                    "amount": record.value,
                    "confirmations": height - record.height + 1,
                    "liquidity": fractions.high(supply),
                    "reserve": fractions.low(supply),
                    "lock": fractions.lock_time,
                    "flags": _flags_text(fractions),
                })
        return sorted(out, key=lambda c: (-c["confirmations"], c["txid"], c["vout"]))

    def mempool_txids(self) -> list[str]:
        with self._lock:
            return [txid[::-1].hex() for txid in self._mempool.txids()]

    # -- the next block's context -----------------------------------------------------------------------

    def _next_block_context(self) -> BlockContext:
        """The block that would be produced now: on the tip, at the supply it must carry, one spacing later."""
        tip = self.reader.tip()
        assert tip is not None
        height = tip[0] + 1
        parent = self.reader.block_header(tip[0])
        assert parent is not None
        return BlockContext(
            height, self.reader.supply_for_new_block(height), parent.time + self.params.block_spacing, tip[1]
        )

    # -- mempool ----------------------------------------------------------------------------------------

    def send_raw_transaction(self, raw_hex: str) -> str:
        try:
            tx = Transaction.from_hex(raw_hex)
        except (DecodeError, TxError) as exc:
            raise TxRejected("decode-failed", str(exc)) from exc
        return self._accept(tx)

    def _accept(self, tx: Transaction) -> str:
        with self._lock:
            self._check_running()
            self._mempool.accept(tx, self._next_block_context())
            return tx.txid

    # -- wallet -----------------------------------------------------------------------------------------

    def get_new_address(self) -> str:
        self._check_running()
        return self.wallet.new_address()

    def _script_for(self, address: str) -> bytes:
        if not is_valid_address(address, DEVNET_KEYS):
            raise InvalidParameter(f"invalid address: {address!r}")
        return address_to_script(address, DEVNET_KEYS)

    def send_to_address(self, address: str, amount: int) -> str:
        """Pay ``amount`` of liquid to ``address`` from the devnet wallet; change returns to the first input."""
        return self._send(address, amount, frozen=False)

    def send_frozen(self, address: str, amount: int) -> str:
        """Send ``amount`` as an ``**F**`` frozen reserve transfer (the payee's output is locked)."""
        return self._send(address, amount, frozen=True)

    def _send(self, address: str, amount: int, frozen: bool) -> str:
        payee = self._script_for(address)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidParameter("amount must be a positive number of satoshis")
        with self._lock:
            self._check_running()
            # One hold from selection to admission: no other call can spend the chosen coins in between.
            at = self._next_block_context()
            tx = self._coins.payment(payee, amount, at, frozen=frozen)
            self._mempool.accept(tx, at)
            return tx.txid

    # -- block production ---------------------------------------------------------------------------------

    def generate(self, n: int, vote: str = "nochange") -> list[str]:
        """Produce ``n`` blocks, each staking a wallet coin and voting ``vote``; return their hashes."""
        if vote not in VOTES:
            raise InvalidParameter(f"vote must be one of {', '.join(VOTES)}")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 10_000:
            raise InvalidParameter("n must be between 1 and 10000")
        hashes = []
        for _ in range(n):
            with self._lock:
                self._check_running()
                connected = self._produce(VOTES.index(vote) + 1)
                self.store.connect(connected)
                # The block is durable now; only then do the mempool and the hooks learn of it.
                self._mempool.block_connected(connected.block.transactions)
                block_hash = connected.block.header.hash_hex
                self.dispatcher.block_connected(connected.height, block_hash)
            hashes.append(block_hash)
            time.sleep(0)  # let an in-process reactor thread take the GIL between blocks
        return hashes

    def _produce(self, vote: int) -> ConnectedBlock:
        at = self._next_block_context()
        height, supply, block_time, parent = at.height, at.supply, at.time, at.parent
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
            vote_script = address_to_script(self.params.vote_addresses[vote - 1], DEVNET_KEYS)
            coinstake = Transaction(
                version=1,
                time=block_time,
                inputs=(TxIn(OutPoint(stake.txid, stake.n)),),
                outputs=(
                    TxOut(0, b""),
                    TxOut(stake.record.value + self.params.stake_reward + fees, stake.record.script),
                    TxOut(0, vote_script),
                ),
                lock_time=0,
            )
            coinstake = self.wallet.sign(coinstake, [stake.record.script])
            for out_n, fr in coinstake_fractions(stake.fractions, self.params.stake_reward, fee_fractions, 3).items():
                fractions[(1, out_n)] = fr
            if height >= self.params.peg_start_height:
                weight = vote_weight(stake.fractions, supply)
            first = [coinbase, coinstake]
        else:
            # No coin to stake: a proof-of-work style block; it pays the reward and casts no vote.
            reward_script = address_to_script(self.wallet.addresses[0], DEVNET_KEYS)
            total = self.params.stake_reward + fees
            coinbase = Transaction(1, block_time, (TxIn(OutPoint.null(), coinbase_sig),), (TxOut(total, reward_script),), 0)
            reward = Fractions.std(self.params.stake_reward)
            for fee in fee_fractions:
                reward = reward + fee
            fractions[(0, 0)] = reward
            first = [coinbase]
            vote = 0
        for position, checked in enumerate(included, start=len(first)):
            for out_n, fr in enumerate(checked.output_fractions):
                fractions[(position, out_n)] = fr

        block = Block.assemble(BLOCK_VERSION, parent, block_time, first + [c.tx for c in included])
        peg = self._peg_fields(height, supply, vote if weight else 0, weight)
        return ConnectedBlock(block, height, peg, fractions)

    def _peg_fields(self, height: int, supply: int, vote: int, weight: int) -> layout.PegFields:
        """Vote counters run through a cycle and reset at its first block (bitbay-core peg.cpp:302-310)."""
        counters = [0, 0, 0]
        if height % self.params.peg_interval != 0:
            previous = self.reader.peg_fields(height - 1)
            if previous is not None:
                counters = list(previous.votes)
        if vote:
            counters[vote - 1] += weight
        return layout.PegFields(supply, counters[0], counters[1], counters[2], vote, weight)

    # -- reorgs -------------------------------------------------------------------------------------------

    def invalidate_block(self, height: int) -> None:
        """Disconnect blocks from the tip down to ``height`` (the chain ends at ``height - 1``).

        Their ordinary transactions return to the mempool when they are still valid, as a node does on a
        reorg; the disconnect hook runs once per block, tip first.
        """
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise InvalidParameter("height must be at least 1 (the genesis block stays)")
        with self._lock:
            self._check_running()
            tip = self.reader.height()
            if height > tip:
                raise NotFound(f"no block at height {height} (tip is {tip})")
            returned: list[Transaction] = []
            while self.reader.height() >= height:
                h, block_hash, txs = self.store.disconnect_tip()
                self.dispatcher.block_disconnected(h, block_hash[::-1].hex())
                returned = txs + returned  # oldest block first: parents before children
            self._mempool.readmit(returned, self._next_block_context())

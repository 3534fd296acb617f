"""``DevNode``: the devnet node, coordinating its parts under one lock and calling the node hooks.

The node owns the lifecycle (genesis on first start, start, stop, close), the one lock every chain or
mempool change goes through, and the hook calls. The work is done by its parts, wired once in
``__init__``:

* :class:`~node_hooks.devnode.store.ChainStore`: the node DB, one atomic batch per block;
* :class:`~node_hooks.devnode.mempool.Mempool`: admission, conflicts, readmission after a reorg;
* :class:`~node_hooks.devnode.coins.CoinSelector`: the wallet's coins for payments and staking;
* :class:`~node_hooks.devnode.producer.BlockProducer`: the next block, assembled and connected;
* :mod:`~node_hooks.devnode.replies`: the dicts the queries answer.

A block is announced to the hooks only after its batch is written, and between blocks the node sleeps 0 s
so an in-process reactor gets the GIL (DESIGN.md §3). The mempool is memory only: a restarted node resumes
from its last committed block with an empty mempool, as a node without a mempool file does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import is_valid_address
from halo_exchange.chain.params import DEVNET, ChainParams
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import Transaction, TxError
from halo_exchange.commands import is_whole
from halo_exchange.config import CHAIN_SUBDIR
from halo_exchange.errors import DecodeError
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks import HookDispatcher
from node_hooks.devnode import replies
from node_hooks.devnode.coins import CoinSelector
from node_hooks.devnode.consensus import VOTES
from node_hooks.devnode.errors import InvalidParameter, NodeStopped, NotFound, TxRejected
from node_hooks.devnode.mempool import Mempool
from node_hooks.devnode.producer import PREMINE_OUTPUTS, PREMINE_PER_OUTPUT, BlockProducer, genesis_block
from node_hooks.devnode.store import ChainStore
from node_hooks.devnode.wallet import DevWallet

log = logging.getLogger(__name__)


def _txid_bytes(txid: str) -> bytes:
    if not isinstance(txid, str) or len(txid) != 64:
        raise InvalidParameter("a txid is 64 hex characters")
    try:
        return from_display_hex(txid)
    except DecodeError as exc:
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
        self.store = ChainStore(str(self.datadir / CHAIN_SUBDIR))
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
        self._producer = BlockProducer(self.store, self.params, self.wallet, self._mempool, self._coins)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _create_genesis(self, params: ChainParams) -> None:
        address, key = DevWallet.new_key()
        genesis = genesis_block(params, address_to_script(address, DEVNET_KEYS))
        self.store.initialise(params, genesis, {address: key.to_bytes()})
        log.info(
            "devnet genesis %s premines %d x %d to %s",
            genesis.block.header.hash_hex, PREMINE_OUTPUTS, PREMINE_PER_OUTPUT, address,
        )

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
        return display_hex(tip[1])

    def get_block(self, height: int) -> dict[str, Any]:
        with self.reader.snapshot() as view:
            record = view.block_record(height)
            if record is None:
                raise NotFound(f"no block at height {height}")
            header = view.block_header(height)
            assert header is not None
            return replies.block(height, header, record)

    def peg_info(self) -> dict[str, int]:
        return replies.peg_info(self.reader.peg_info())

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
        return replies.fractions(info, supply)

    def list_unspent(self, address: str) -> list[dict[str, Any]]:
        script = self._script_for(address)
        with self.reader.snapshot() as view:
            height = view.height()
            fields = view.peg_fields(height)
            supply = 0 if fields is None else fields.supply
            out = [
                replies.unspent(txid, n, address, record, view.fractions(txid, n, record.value), height, supply)
                for txid, n, record in view.iter_utxos()
                if record.script == script
            ]
        return replies.unspent_list(out)

    def mempool_txids(self) -> list[str]:
        with self._lock:
            return [display_hex(txid) for txid in self._mempool.txids()]

    # -- mempool ----------------------------------------------------------------------------------------

    def send_raw_transaction(self, raw_hex: str) -> str:
        try:
            tx = Transaction.from_hex(raw_hex)
        except (DecodeError, TxError) as exc:
            raise TxRejected("decode-failed", str(exc)) from exc
        with self._lock:
            self._check_running()
            self._mempool.accept(tx, self._producer.next_block())
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
        if not is_whole(amount) or amount <= 0:
            raise InvalidParameter("amount must be a positive number of satoshis")
        with self._lock:
            self._check_running()
            # One hold from selection to admission: no other call can spend the chosen coins in between.
            at = self._producer.next_block()
            tx = self._coins.payment(payee, amount, at, frozen=frozen)
            self._mempool.accept(tx, at)
            return tx.txid

    # -- block production ---------------------------------------------------------------------------------

    def generate(self, n: int, vote: str = "nochange") -> list[str]:
        """Produce ``n`` blocks, each staking a wallet coin and voting ``vote``; return their hashes."""
        if vote not in VOTES:
            raise InvalidParameter(f"vote must be one of {', '.join(VOTES)}")
        if not is_whole(n) or not 0 < n <= 10_000:
            raise InvalidParameter("n must be between 1 and 10000")
        hashes = []
        for _ in range(n):
            with self._lock:
                self._check_running()
                connected = self._producer.produce(VOTES.index(vote) + 1)
                # The block is durable now; only then do the mempool and the hooks learn of it.
                self._mempool.block_connected(connected.block.transactions)
                block_hash = connected.block.header.hash_hex
                self.dispatcher.block_connected(connected.height, block_hash)
            hashes.append(block_hash)
            time.sleep(0)  # let an in-process reactor thread take the GIL between blocks
        return hashes

    # -- reorgs -------------------------------------------------------------------------------------------

    def invalidate_block(self, height: int) -> None:
        """Disconnect blocks from the tip down to ``height`` (the chain ends at ``height - 1``).

        Their ordinary transactions return to the mempool when they are still valid, as a node does on a
        reorg; the disconnect hook runs once per block, tip first.
        """
        if not is_whole(height) or height < 1:
            raise InvalidParameter("height must be at least 1 (the genesis block stays)")
        with self._lock:
            self._check_running()
            tip = self.reader.height()
            if height > tip:
                raise NotFound(f"no block at height {height} (tip is {tip})")
            returned: list[Transaction] = []
            while self.reader.height() >= height:
                h, block_hash, txs = self.store.disconnect_tip()
                self.dispatcher.block_disconnected(h, display_hex(block_hash))
                returned = txs + returned  # oldest block first: parents before children
            self._mempool.readmit(returned, self._producer.next_block())

"""``DevNode``: the devnet node, coordinating its parts under one lock and calling the node hooks.

The node owns the lifecycle (genesis on first start, start, stop, close), the one lock every chain or
mempool change goes through, and the hook calls. The work is done by its parts, wired once in
``__init__``:

* :class:`~node_hooks.devnode.store.ChainStore`: the node DB, one atomic batch per block;
* :class:`~node_hooks.devnode.mempool.Mempool`: admission, conflicts, readmission after a reorg;
* :class:`~node_hooks.devnode.coins.CoinSelector`: the wallet's coins for payments and staking;
* :class:`~node_hooks.devnode.producer.BlockProducer`: the next block, assembled and connected;
* :mod:`~node_hooks.devnode.replies`: the dicts the queries answer.

It also owns the :class:`~node_hooks.NodeServices` it offers the hooks at start (:class:`~node_hooks.ServicesOf`):
a submitted transaction goes into a queue that the node's submission thread drains, taking the node lock
there and never on the caller's thread (the plugin's reactor must never wait for the node lock: ``close``
holds it while the plugin stops). Transaction status reads a snapshot of the mempool's txids, replaced
whole after every mempool change, and the chain DB. After each mempool change the node tells the hooks which
transactions left it unmined (``on_transaction_dropped``); a refused submission is
``on_transaction_rejected``.

The devnet helpers for tests live here too: :meth:`DevNode.malleate_transaction` (a third party re-encodes
a pending transaction's signature), :meth:`DevNode.drop_transaction` and :meth:`DevNode.refuse_transactions`.

A block is announced to the hooks only after its batch is written, and between blocks the node sleeps 0 s
so an in-process reactor gets the GIL (DESIGN.md §3). The mempool is memory only: a restarted node resumes
from its last committed block with an empty mempool, as a node without a mempool file does.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import plyvel
from ecdsa.der import UnexpectedDER
from ecdsa.util import sigdecode_der, sigencode_der

from halo_exchange.chain.hashes import sha256d
from halo_exchange.chain.keys import CURVE_ORDER, is_valid_address
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.params import DEVNET, ChainParams
from halo_exchange.chain.reader import ChainReader
from halo_exchange.chain.script import address_to_script, p2pkh_script_sig, parse_p2pkh_script_sig
from halo_exchange.chain.tx import Transaction, TxError
from halo_exchange.commands import is_whole
from halo_exchange.config import CHAIN_SUBDIR
from halo_exchange.errors import DecodeError, public_error
from halo_exchange.files import make_private_dir
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks import HookDispatcher, ServicesOf, TxStatus
from node_hooks.devnode import replies
from node_hooks.devnode.coins import CoinSelector
from node_hooks.devnode.consensus import VOTES, CheckedTx
from node_hooks.devnode.errors import InvalidParameter, NodeStopped, NotFound, TxRejected, WalletWriteFailed
from node_hooks.devnode.mempool import Mempool
from node_hooks.devnode.producer import PREMINE_OUTPUTS, PREMINE_PER_OUTPUT, BlockProducer, genesis_block
from node_hooks.devnode.store import ChainStore
from node_hooks.devnode.wallet import DevWallet

log = logging.getLogger(__name__)

DROPPED_BY_DEVNET = "dropped-by-devnet"  # drop reason of drop_transaction
PARENT_MALLEATED = "parent-malleated"  # drop reason of the descendants of a malleated transaction
REFUSED_BY_DEVNET = "refused-by-devnet"  # rejection rule of refuse_transactions
# How long close() waits for the submission thread; it only ever waits for the node lock, which close()
# has released by then, so this is a guard against a hook stuck on that thread, not an expected delay.
_WORKER_JOIN_TIMEOUT = 10.0


def _db_error_text(exc: plyvel.Error) -> str:
    """LevelDB's own words for a failed operation (plyvel hands them over as bytes)."""
    return exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)


def _txid_bytes(txid: str) -> bytes:
    if not isinstance(txid, str) or len(txid) != 64:
        raise InvalidParameter("a txid is 64 hex characters")
    try:
        return from_display_hex(txid)
    except DecodeError as exc:
        raise InvalidParameter("a txid is 64 hex characters") from exc


def _raw_txid(raw: bytes) -> str:
    """The display txid of serialized transaction bytes (what it would be, even when they do not decode)."""
    return display_hex(sha256d(raw))


def malleated(tx: Transaction) -> Transaction:
    """``tx`` with the signature of input 0 re-encoded as ``(r, N - s)``: still valid (the devnode's
    verification, ``keys.PublicKey.verify``, accepts high and low S), but another txid, as a third party can
    make of any transaction in flight. Applied twice it gives ``tx`` back. InvalidParameter when input 0 is
    not a P2PKH spend."""
    if tx.is_coinbase() or not tx.inputs:
        raise InvalidParameter("only a signed spend can be malleated")
    parsed = parse_p2pkh_script_sig(tx.inputs[0].script_sig)
    if parsed is None:
        raise InvalidParameter("input 0 is not a P2PKH spend (signature and key)")
    sig, pubkey = parsed
    try:
        r, s = sigdecode_der(sig[:-1], CURVE_ORDER)
    except (UnexpectedDER, ValueError) as exc:  # ecdsa's UnexpectedDER is no ValueError
        raise InvalidParameter(f"input 0's signature is not DER: {exc}") from exc
    twin = sigencode_der(r, CURVE_ORDER - s, CURVE_ORDER) + sig[-1:]
    return tx.with_script_sig(0, p2pkh_script_sig(twin, pubkey))


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
        make_private_dir(self.datadir)
        # The one lock of every chain and mempool change. Reentrant, because hooks run while it is held
        # and one that calls back into the node on the same thread must not deadlock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stopped = False
        # Why the node stops by itself (its chain DB refused a write), as callers are told; None while it is well.
        self.failure: str | None = None
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
        # The pending txids as other threads may read them without the lock: a frozenset, replaced whole
        # (one reference assignment, atomic under the GIL) after every mempool change.
        self._mempool_ids: frozenset[bytes] = frozenset()
        self._refusals = 0  # submissions still to refuse (refuse_transactions); under the lock
        self.services = ServicesOf(self)
        # Submitted transactions wait here for the submission thread; None tells it to finish.
        self._submissions: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._drain_submissions, name="devnode-submissions", daemon=True)
        self._worker.start()

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
        """Tell the hooks the node is up and hand them its services (the exchange plugin starts here)."""
        self.dispatcher.node_started(self.store.db, self.reader, self.params, self.services)

    def request_stop(self) -> None:
        """Ask the node's main loop to stop; returns at once."""
        self._stop.set()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def close(self) -> None:
        """Stop taking commands, tell the hooks, close the DB, end the submission thread. Idempotent.

        Submissions still queued then are dropped (and logged): the mempool is memory only, so a closing
        node would lose them anyway."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._stop.set()
            self.dispatcher.node_stopped()
            self.store.close()
        # Outside the lock: the submission thread needs it to see that the node stopped.
        self._submissions.put(None)
        if threading.current_thread() is not self._worker:  # a hook may close the node from that thread
            self._worker.join(_WORKER_JOIN_TIMEOUT)
            if self._worker.is_alive():
                log.warning("the submission thread did not finish within %.0f s", _WORKER_JOIN_TIMEOUT)

    def _check_running(self) -> None:
        if self.failure is not None:
            raise NodeStopped(self.failure)
        if self._stopped:
            raise NodeStopped("the node is stopped")

    def _write_failed(self, what: str, exc: plyvel.Error) -> NodeStopped:
        """The chain DB refused a write (a full disk, an I/O error): LevelDB wrote nothing of the batch and
        takes no more writes, so the node stops (main loop, exit code 1) rather than serve the exchange a chain
        it cannot extend. Logs one line; returns the NodeStopped to raise. Under the lock."""
        text = _db_error_text(exc)
        if self.failure is None:
            self.failure = (f"the node stops: chain DB write failed while {what} ({public_error(Exception(text))}); "
                            f"free space or fix the disk, then restart the node")
            log.error("chain DB write failed while %s: %s; the node stops (the chain ends at its last committed "
                      "block): free space or fix the disk, then restart it", what, text)
        self._stop.set()
        return NodeStopped(self.failure)

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

    def mempool_entry(self, txid: bytes) -> CheckedTx | None:
        """Pending transaction ``txid`` (internal byte order) with its outputs' fractions, or None."""
        with self._lock:
            return self._mempool.entry(txid)

    def mempool_spends(self, txid: bytes, n: int) -> bool:
        """Whether a pending transaction spends output ``txid:n`` (internal byte order)."""
        with self._lock:
            return self._mempool.spends(txid, n)

    def mempool_txids(self) -> list[str]:
        with self._lock:
            return [display_hex(txid) for txid in self._mempool.txids()]

    def transaction_status(self, txid: bytes) -> TxStatus:
        """Where transaction ``txid`` (internal byte order) is: MEMPOOL, CHAIN or UNKNOWN. Takes no lock.

        The mempool is asked first: while a block is being connected its transactions are in both, and
        a reader must never see them in neither."""
        if not isinstance(txid, bytes) or len(txid) != 32:
            raise InvalidParameter("a txid is 32 bytes, internal order")
        self._check_running()
        if txid in self._mempool_ids:
            return TxStatus.MEMPOOL
        if self.reader.transaction(txid) is not None:
            return TxStatus.CHAIN
        return TxStatus.UNKNOWN

    # -- mempool ----------------------------------------------------------------------------------------

    def send_raw_transaction(self, raw_hex: str) -> str:
        try:
            tx = Transaction.from_hex(raw_hex)
        except (DecodeError, TxError) as exc:
            raise TxRejected("decode-failed", str(exc)) from exc
        with self._lock:
            self._check_running()
            try:
                self._admit(tx)
            finally:
                self._mempool_changed()
            return tx.txid

    def submit_transaction(self, raw: bytes) -> None:
        """Queue serialized transaction ``raw`` for the submission thread and return at once (NodeServices).

        Never blocks and never takes the node lock. A refusal is reported to the hooks as
        ``on_transaction_rejected(txid, reason)``; a transaction already in the chain is not reported."""
        if not isinstance(raw, (bytes, bytearray)):
            raise InvalidParameter("a submitted transaction is its serialized bytes")
        if self._stopped:
            log.warning("node stopped: submitted transaction %s dropped", _raw_txid(bytes(raw)))
            return
        self._submissions.put(bytes(raw))

    def _drain_submissions(self) -> None:
        """The submission thread: admit queued transactions one by one, under the node lock, until close()."""
        while True:
            raw = self._submissions.get()
            if raw is None:
                return
            try:
                with self._lock:
                    if self._stopped:
                        log.warning("node stopped: submitted transaction %s dropped", _raw_txid(raw))
                        continue
                    self._admit_submitted(raw)
            except Exception:  # this thread must outlive any one bad submission or hook
                log.exception("submitted transaction %s failed", _raw_txid(raw))

    def _admit_submitted(self, raw: bytes) -> None:
        """Admit one submitted transaction, under the lock; tell the hooks of a refusal."""
        txid = _raw_txid(raw)
        try:
            try:
                tx = Transaction.deserialize(raw)
            except (DecodeError, TxError) as exc:
                raise TxRejected("decode-failed", str(exc)) from exc
            self._admit(tx)
        except TxRejected as exc:
            if exc.rule == "txn-already-in-chain":
                # Mined already (a resubmission racing its block): nothing went wrong, and the chain says so.
                log.info("submitted transaction %s is already in the chain", txid)
                return
            log.info("submitted transaction %s refused: %s", txid, exc)
            self.dispatcher.transaction_rejected(txid, str(exc))
        finally:
            self._mempool_changed()

    def _admit(self, tx: Transaction) -> None:
        """Admit ``tx`` into the mempool for the next block, unless the devnet is told to refuse it. Locked."""
        if self._refusals > 0:
            self._refusals -= 1
            raise TxRejected(REFUSED_BY_DEVNET, f"the devnet was told to refuse it ({self._refusals} more to refuse)")
        self._mempool.accept(tx, self._producer.next_block())

    def _mempool_changed(self) -> None:
        """After a mempool change, under the lock: publish the txid snapshot, tell the hooks what was dropped."""
        self._mempool_ids = frozenset(self._mempool.txids())
        for tx, reason in self._mempool.take_dropped():
            self.dispatcher.transaction_dropped(tx.txid, reason)

    # -- devnet helpers for tests ---------------------------------------------------------------------------

    def malleate_transaction(self, txid: str) -> str:
        """Replace pending ``txid`` with its malleated twin (:func:`malleated`); return the new txid.

        The original leaves the mempool silently, as it would in a real node: its owner learns of the
        malleation only when the twin is mined. Pending descendants of the original spend outputs that will
        now never exist; they leave with ``on_transaction_dropped(child, 'parent-malleated')``."""
        txid_b = _txid_bytes(txid)
        with self._lock:
            self._check_running()
            original = self._mempool.transaction(txid_b)
            if original is None:
                raise NotFound(f"no transaction {txid} in the mempool")
            twin = malleated(original)
            removed = self._mempool.remove(txid_b)
            try:
                self._mempool.accept(twin, self._producer.next_block())
            except TxRejected:
                for tx in removed:  # put everything back as it was
                    self._mempool.accept(tx, self._producer.next_block())
                raise
            finally:
                self._mempool_changed()
            for child in removed[1:]:
                self.dispatcher.transaction_dropped(child.txid, PARENT_MALLEATED)
            log.info("malleated %s into %s", txid, twin.txid)
            return twin.txid

    def drop_transaction(self, txid: str) -> bool:
        """Remove pending ``txid`` and its pending descendants; each is reported to the hooks as
        ``on_transaction_dropped(txid, 'dropped-by-devnet')``."""
        txid_b = _txid_bytes(txid)
        with self._lock:
            self._check_running()
            removed = self._mempool.remove(txid_b)
            if not removed:
                raise NotFound(f"no transaction {txid} in the mempool")
            self._mempool_changed()
            for tx in removed:
                log.info("devnet dropped %s from the mempool", tx.txid)
                self.dispatcher.transaction_dropped(tx.txid, DROPPED_BY_DEVNET)
            return True

    def refuse_transactions(self, count: int) -> bool:
        """Refuse the next ``count`` submitted transactions (submit_transaction and send_raw_transaction) with
        rule ``refused-by-devnet``, whatever they are; 0 cancels what is left. The wallet's own sends are
        not submissions and pass."""
        if not is_whole(count) or not 0 <= count <= 1_000_000:
            raise InvalidParameter("count must be between 0 and 1000000")
        with self._lock:
            self._check_running()
            self._refusals = count
            return True

    # -- wallet -----------------------------------------------------------------------------------------

    def get_new_address(self) -> str:
        """A fresh wallet address, stored in the node DB before it is answered.

        A write that fails (a full disk, an I/O error) hands out no address, leaves the wallet as it was and
        stops the node, as a failed block write does: after a failed log append LevelDB still takes writes, but
        loses them when it is next opened (measured on a full tmpfs), so the node must acknowledge nothing more.
        """
        with self._lock:
            self._check_running()
            try:
                return self.wallet.new_address()
            except plyvel.Error as exc:
                self._write_failed("storing a new wallet key", exc)
                cause = public_error(Exception(_db_error_text(exc)))
                raise WalletWriteFailed(f"Error: the wallet could not be written ({cause}); no address was made. "
                                        f"The node stops: free space or fix the disk, then restart it") from None

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
            self._mempool_changed()
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
                try:
                    try:
                        connected = self._producer.produce(VOTES.index(vote) + 1)
                    except plyvel.Error as exc:
                        raise self._write_failed(f"connecting block {self.reader.height() + 1}", exc) from None
                    # The block is durable now; only then do the mempool and the hooks learn of it.
                    self._mempool.block_connected(connected.block.transactions)
                    # Published before the hook runs, so a plugin that reads status on the event sees
                    # the mined transactions in the chain only, and the conflicts gone.
                    self._mempool_ids = frozenset(self._mempool.txids())
                    block_hash = connected.block.header.hash_hex
                    self.dispatcher.block_connected(connected.height, block_hash)
                finally:
                    # Drops of the assembly (invalid) and of the connect (conflicts), after the block's event.
                    self._mempool_changed()
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
                try:
                    h, block_hash, txs = self.store.disconnect_tip()
                except plyvel.Error as exc:
                    raise self._write_failed(f"disconnecting block {self.reader.height()}", exc) from None
                self.dispatcher.block_disconnected(h, display_hex(block_hash))
                returned = txs + returned  # oldest block first: parents before children
            self._mempool.readmit(returned, self._producer.next_block())
            self._mempool_changed()

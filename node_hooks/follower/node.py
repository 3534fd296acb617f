"""``FollowerNode``: a Halo-style node that follows a bitbayd over JSON-RPC and hosts exchange mode.

Two threads, each with its own :class:`~node_hooks.follower.rpc.BitbaydRPC`:

* the **follow thread** polls bitbayd (``getblockcount``, the hash of our tip, ``getrawmempool``, in one
  batch), walks back over a reorg (disconnecting our tip with its undo data, ``on_block_disconnected`` for
  each), then fetches the missing blocks in runs (:class:`~node_hooks.follower.fetch.BlockFetcher`), checks
  each (:func:`~node_hooks.follower.fetch.build_block`), writes it with the shared chain store (one atomic
  synced batch) and fires ``on_block_connected``, as the devnet node does;
* the **sender thread** drains the queue :meth:`submit_transaction` fills, calling
  ``sendrawtransaction``; a refusal (-22, -5 other than "already in block") is ``on_transaction_rejected``.

bitbayd unreachable: retries with exponential back-off (1 s doubling to 30 s), logged once per state change;
the process, the exchange API and its read calls stay up on the last known chain. Answers that disagree
(:class:`~node_hooks.follower.errors.InconsistentUpstream`) stop the follow thread for good, logged as an
ERROR with the height, hash and what disagreed, and shown in :meth:`FollowerNode.status`. On restart the
node resumes from its DB's tip. docs/follower.md is the operator's page.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from halo_exchange.chain.hashes import sha256d
from halo_exchange.chain.params import DEVNET, MAINNET, TESTNET, ChainParams
from halo_exchange.config import CHAIN_SUBDIR
from halo_exchange.errors import DecodeError
from halo_exchange.files import make_private_dir
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks import HookDispatcher, ServicesOf, TxStatus
from node_hooks.chainstore import ChainStore
from node_hooks.follower.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    FollowerError,
    InconsistentUpstream,
    NetworkMismatch,
    RPCError,
    UpstreamError,
)
from node_hooks.follower.fetch import BlockFetcher, build_block
from node_hooks.follower.rpc import BitbaydRPC
from node_hooks.follower.status import FollowerState, FollowerStatus, RateMeter

log = logging.getLogger(__name__)

NETWORKS = ("mainnet", "testnet", "devnet")
BACKOFF_START, BACKOFF_CAP = 1.0, 30.0
PROGRESS_EVERY = 10.0  # seconds between progress lines while syncing
MAX_RUN = 50  # blocks fetched per run
MAX_RUN_TXS = 2000  # ... or fewer, when their transactions add up to this many
REJECTED = "rejected-by-bitbayd"  # the code of a rejection reason
_JOIN_TIMEOUT = 10.0


def params_for(network: str, interval: int) -> ChainParams:
    """The chain parameters of ``network`` given bitbayd's peg ``interval`` (getpeginfo); NetworkMismatch when
    they cannot be the same chain (mainnet's cycles are 200 blocks, testnet's 20; a devnet's any)."""
    if network == "devnet":
        return DEVNET.with_changes(peg_interval=interval)
    base = {"mainnet": MAINNET, "testnet": TESTNET}.get(network)
    if base is None:
        raise NetworkMismatch(f"unknown network {network!r} (one of {', '.join(NETWORKS)})")
    if interval != base.peg_interval:
        guess = {200: "a mainnet", 20: "a testnet or devnet"}.get(interval, "an unknown")
        raise NetworkMismatch(f"bitbayd's peg interval is {interval} ({guess} node), but network = {network} "
                              f"has {base.peg_interval}")
    return base


class FollowerNode:
    """A node over ``datadir`` following the bitbayd at ``url``; safe to call from several threads."""

    def __init__(
        self,
        datadir: str | os.PathLike[str],
        url: str,
        *,
        network: str = "mainnet",
        start_height: int = 0,
        user: str | None = None,
        password: str | None = None,
        cookie_file: str | os.PathLike[str] | None = None,
        dispatcher: HookDispatcher | None = None,
        poll_interval: float = 1.0,
        rpc_timeout: float = 30.0,
        backoff: tuple[float, float] = (BACKOFF_START, BACKOFF_CAP),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if network not in NETWORKS:
            raise NetworkMismatch(f"unknown network {network!r} (one of {', '.join(NETWORKS)})")
        if start_height < 0:
            raise ValueError("start_height must not be negative")
        self.datadir = Path(datadir)
        make_private_dir(self.datadir)
        self.network = network
        self.start_height = start_height
        self.dispatcher = dispatcher or HookDispatcher()
        self.poll_interval = poll_interval
        self._backoff = backoff
        self._clock = clock
        rpc_args = dict(user=user, password=password, cookie_file=cookie_file, timeout=rpc_timeout)
        self._rpc = BitbaydRPC(url, **rpc_args)
        self._send_rpc = BitbaydRPC(url, **rpc_args)
        self.url = self._rpc.url
        self.store = ChainStore(str(self.datadir / CHAIN_SUBDIR))
        self.reader = self.store.reader
        self.fetcher = BlockFetcher(self._rpc)
        self.params: ChainParams | None = None
        try:
            self._open_params()
        except BaseException:
            self.store.close()
            raise
        self.services = ServicesOf(self)
        self._stop = threading.Event()
        self._started = False
        self._closed = False
        self._hooks_started = False
        self._network_checked = False
        self._mempool_ids: frozenset[bytes] = frozenset()
        self._status_lock = threading.Lock()
        self._state = FollowerState.STARTING
        self._since = clock()
        self._upstream_height: int | None = None
        self._last_error = ""
        self._rate = RateMeter()
        self._last_progress = 0.0
        self._run = MAX_RUN
        self._blocks_synced = self._txs_synced = 0
        self._store_seconds = 0.0
        self._submissions: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._follow_thread = threading.Thread(target=self._follow, name="follower", daemon=True)
        self._send_thread = threading.Thread(target=self._drain_submissions, name="follower-sender", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _open_params(self) -> None:
        """Parameters from the DB, or for a new DB of mainnet/testnet the network's own (a devnet needs
        bitbayd's interval first: :meth:`_initialise_from_upstream`)."""
        if self.store.initialised:
            self.params = self.reader.params()
            if self.params.network != self.network:
                raise NetworkMismatch(f"the chain in {self.datadir} is {self.params.network}, but network = "
                                      f"{self.network}")
            first = self.reader.first_height()
            if first is not None and first != self.start_height:
                log.warning("start_height %d ignored: the chain DB already starts at height %d (it applies to a "
                            "new data dir only)", self.start_height, first)
        elif self.network != "devnet":
            self.params = MAINNET if self.network == "mainnet" else TESTNET
            self.store.initialise(self.params)
            log.info("new %s chain DB in %s, following from height %d", self.network, self.datadir,
                     self.start_height)

    def _initialise_from_upstream(self, interval: int) -> None:
        self.params = params_for(self.network, interval)
        self.store.initialise(self.params)
        log.info("new %s chain DB in %s (peg interval %d), following from height %d", self.network, self.datadir,
                 interval, self.start_height)

    def start(self) -> None:
        """Start following and sending. The hooks hear ``on_node_start`` now when the chain parameters are
        known (always, but for a new devnet data dir, whose interval comes from bitbayd first)."""
        if self._started:
            return
        self._started = True
        if self.params is not None:
            self._start_hooks()
        self._follow_thread.start()
        self._send_thread.start()

    def _start_hooks(self) -> None:
        if not self._hooks_started:
            self._hooks_started = True
            self.dispatcher.node_started(self.store.db, self.reader, self.params, self.services)

    def request_stop(self) -> None:
        """Ask the node to stop (its main loop returns from wait_for_stop); returns at once."""
        self._stop.set()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def close(self) -> None:
        """Stop both threads (a call in progress is cut short), tell the hooks, close the DB. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._submissions.put(None)
        for rpc, thread in ((self._rpc, self._follow_thread), (self._send_rpc, self._send_thread)):
            if thread.is_alive() and thread is not threading.current_thread():
                rpc.abort()
                thread.join(_JOIN_TIMEOUT)
                if thread.is_alive():
                    log.warning("thread %s did not finish within %.0f s", thread.name, _JOIN_TIMEOUT)
        if self._hooks_started:
            self.dispatcher.node_stopped()
        self._set_state(FollowerState.STOPPED)
        self._rpc.close()
        self._send_rpc.close()
        self.store.close()

    # -- status --------------------------------------------------------------------------------------

    def status(self) -> FollowerStatus:
        with self._status_lock:
            height = self.reader.height() if not self.store.db.closed else -1
            rate = self._rate.rate()
            eta = None
            if self._upstream_height is not None and height >= 0 and rate > 0:
                eta = max(0, self._upstream_height - height) / rate
            first = self.reader.first_height() if not self.store.db.closed else None
            return FollowerStatus(self._state, height, first, self._upstream_height, rate, eta,
                                  self._last_error, self._since, self._blocks_synced, self._txs_synced,
                                  self._rpc.round_trip_seconds, self._store_seconds)

    def _set_state(self, state: FollowerState, error: str = "") -> None:
        with self._status_lock:
            changed = state != self._state
            if changed:
                self._state = state
                self._since = self._clock()
            if error:
                self._last_error = error
        if not changed:
            return
        if state is FollowerState.UNREACHABLE:
            log.warning("bitbayd at %s unreachable: %s; retrying with back-off up to %.0f s", self.url, error,
                        self._backoff[1])
        elif state is FollowerState.FOLLOWING:
            log.info("following bitbayd at %s at height %d", self.url, self.reader.height())
        elif state is FollowerState.SYNCING:
            log.info("syncing from bitbayd at %s: height %d of %s", self.url, self.reader.height(),
                     self._upstream_height)

    # -- the follow thread -------------------------------------------------------------------------------

    def _follow(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                progressed = self._step()
                delay = self._backoff[0]
                if not progressed:
                    self._stop.wait(self.poll_interval)
            except UpstreamError as exc:
                self._set_state(FollowerState.UNREACHABLE, str(exc))
                self._network_checked = False  # a bitbayd that comes back may be another one
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
            except RPCError as exc:
                # An answer we did not expect (a block gone in a reorg between two calls): ask again.
                log.warning("bitbayd answered an error: %s; asking again in %.0f s", exc, delay)
                with self._status_lock:
                    self._last_error = str(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
            except (InconsistentUpstream, NetworkMismatch) as exc:
                self._stop_inconsistent(str(exc))
                return
            except Exception as exc:  # a bug, or the DB refusing: never go on writing blindly
                if self._stop.is_set():
                    return
                log.exception("follower failed")
                self._stop_inconsistent(f"{type(exc).__name__}: {exc}")
                return

    def _stop_inconsistent(self, what: str) -> None:
        log.error("STOPPED following bitbayd at %s: %s. Nothing of that block was written; the chain stays at "
                  "height %d. Check bitbayd, then restart the node.", self.url, what, self.reader.height())
        self._set_state(FollowerState.INCONSISTENT, what)

    def _step(self) -> bool:
        """One poll: learn bitbayd's tip and mempool, undo a reorg, connect a run of blocks. True when it
        changed the chain (poll again at once)."""
        if not self._network_checked:
            info = self._rpc.call("getpeginfo")
            interval = info.get("interval") if isinstance(info, dict) else None
            if not isinstance(interval, int):
                raise InconsistentUpstream(-1, "", f"getpeginfo has no integer interval: {info!r}")
            if self.params is None:
                self._initialise_from_upstream(interval)
                self._start_hooks()
            elif interval != self.params.peg_interval:
                raise NetworkMismatch(f"bitbayd's peg interval is {interval}, this {self.params.network} chain's "
                                      f"is {self.params.peg_interval}: another network")
            self._network_checked = True
        tip = self.reader.tip()
        calls = [("getblockcount", ()), ("getrawmempool", ())]
        if tip is not None:
            calls.append(("getblockhash", (tip[0],)))
        answers = self._rpc.batch(calls, errors_as_values=True)
        for answer in answers[:2]:
            if isinstance(answer, RPCError):
                raise answer
        count, mempool = answers[0], answers[1]
        if not isinstance(count, int) or not isinstance(mempool, list):
            raise InconsistentUpstream(-1, "", "getblockcount or getrawmempool answered the wrong type")
        self._set_mempool(mempool)
        with self._status_lock:
            self._upstream_height = count
        if tip is not None:
            upstream_hash = answers[2]
            if isinstance(upstream_hash, RPCError) or upstream_hash != display_hex(tip[1]):
                self._walk_back()
                return True
        next_height = self.start_height if tip is None else tip[0] + 1
        if next_height > count:
            self._set_state(FollowerState.FOLLOWING)
            return False
        if count - next_height >= 1:
            self._set_state(FollowerState.SYNCING)
        return self._connect_run(next_height, count)

    def _walk_back(self) -> None:
        """Disconnect our tip until bitbayd's block at our tip height is ours (the fork point)."""
        while not self._stop.is_set():
            tip = self.reader.tip()
            assert tip is not None
            try:
                upstream = self._rpc.call("getblockhash", tip[0])
            except RPCError as exc:
                if exc.code != -1 and exc.code != -8:  # -1 "Block number out of range.": bitbayd is shorter
                    raise
                upstream = None
            if upstream == display_hex(tip[1]):
                log.info("reorg: back to the fork point at height %d", tip[0])
                return
            if tip[0] == self.reader.first_height():
                raise InconsistentUpstream(tip[0], display_hex(tip[1]), "bitbayd's chain forks below the first "
                                           "block this node holds (the start height): cannot follow the reorg")
            height, block_hash, txs = self.store.disconnect_tip()
            log.info("reorg: disconnected block %d %s", height, display_hex(block_hash))
            self.dispatcher.block_disconnected(height, display_hex(block_hash))

    def _connect_run(self, start: int, count: int) -> bool:
        heights = list(range(start, min(count, start + self._run - 1) + 1))
        run = self.fetcher.fetch(heights)
        # Runs shrink when their transactions add up to more than MAX_RUN_TXS (big answers), and grow back.
        txs = sum(len(f.raw_txs) for f in run)
        self._run = max(1, self._run // 2) if txs > MAX_RUN_TXS else min(MAX_RUN, self._run * 2)
        for fetched in run:
            if self._stop.is_set():
                return True
            tip = self.reader.tip()
            if tip is not None and fetched.previous_hex != display_hex(tip[1]):
                log.info("block %d %s does not build on our tip %s: looking for the fork", fetched.height,
                         fetched.hash_hex, display_hex(tip[1]))
                self._walk_back()
                return True
            connected = build_block(fetched, self.reader, self.params)
            started = time.perf_counter()
            self.store.connect(connected)
            self._store_seconds += time.perf_counter() - started
            self._blocks_synced += 1
            self._txs_synced += len(connected.block.transactions)
            self._block_connected(connected.height, fetched.hash_hex, connected.block.transactions)
        return True

    def _block_connected(self, height: int, hash_hex: str, txs) -> None:
        mined = {tx.hash for tx in txs}
        if self._mempool_ids & mined:
            self._mempool_ids = self._mempool_ids - mined  # mined: CHAIN from now on, never both or neither
        self.dispatcher.block_connected(height, hash_hex)
        now = self._clock()
        self._rate.add(now, height)
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            status = self.status()
            if status.upstream_height is not None and status.upstream_height > height:
                eta = "?" if status.eta_seconds is None else f"{status.eta_seconds:.0f} s"
                log.info("sync: height %d of %d, %.1f blocks/s, ETA %s", height, status.upstream_height,
                         status.blocks_per_second, eta)
        time.sleep(0)  # let an in-process reactor thread take the GIL between blocks

    def _set_mempool(self, txids: list) -> None:
        try:
            self._mempool_ids = frozenset(from_display_hex(t) for t in txids)
        except (DecodeError, TypeError):
            raise InconsistentUpstream(-1, "", "getrawmempool answered something that is not txids") from None

    # -- services ------------------------------------------------------------------------------------

    def transaction_status(self, txid: bytes) -> TxStatus:
        """MEMPOOL when bitbayd's mempool (as last polled, plus what we sent since) holds it, CHAIN when our
        chain does, else UNKNOWN. Takes no lock."""
        if not isinstance(txid, bytes) or len(txid) != 32:
            raise ValueError("a txid is 32 bytes, internal order")
        if self._closed:
            raise FollowerError("the node is stopped")
        if txid in self._mempool_ids:
            return TxStatus.MEMPOOL
        if self.reader.transaction(txid) is not None:
            return TxStatus.CHAIN
        return TxStatus.UNKNOWN

    def submit_transaction(self, raw: bytes) -> None:
        """Queue ``raw`` for the sender thread; return at once (NodeServices)."""
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError("a submitted transaction is its serialized bytes")
        if self._closed or self._stop.is_set():
            log.warning("node stopping: submitted transaction %s dropped", display_hex(sha256d(bytes(raw))))
            return
        self._submissions.put(bytes(raw))

    def _drain_submissions(self) -> None:
        delay = self._backoff[0]
        while True:
            raw = self._submissions.get()
            if raw is None:
                return
            while not self._stop.is_set():
                try:
                    self._send(raw)
                    delay = self._backoff[0]
                    break
                except UpstreamError as exc:  # keep it and try again: bitbayd is away, not refusing it
                    log.warning("sending %s: %s; again in %.0f s", display_hex(sha256d(raw)), exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self._backoff[1])
                except Exception:  # this thread must outlive any one bad submission or hook
                    log.exception("sending %s failed", display_hex(sha256d(raw)))
                    break
            else:
                log.warning("node stopping: submitted transaction %s dropped", display_hex(sha256d(raw)))

    def _send(self, raw: bytes) -> None:
        txid = sha256d(raw)
        txid_hex = display_hex(txid)
        try:
            self._send_rpc.call("sendrawtransaction", raw.hex())
        except RPCError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY and "already in block" in exc.message:
                log.info("submitted transaction %s is already in the chain", txid_hex)
                return
            if exc.code in (RPC_DESERIALIZATION_ERROR, RPC_INVALID_ADDRESS_OR_KEY):
                reason = f"{REJECTED}: {exc.message} (code {exc.code})"
                log.info("submitted transaction %s refused: %s", txid_hex, reason)
                self.dispatcher.transaction_rejected(txid_hex, reason)
                return
            # Not a verdict on the transaction ("Blockchain is not in sync", ...): the exchange sees it
            # UNKNOWN and hands it over again.
            log.warning("bitbayd did not take transaction %s: %s", txid_hex, exc)
            return
        self._mempool_ids = self._mempool_ids | {txid}
        log.info("sent transaction %s to bitbayd", txid_hex)

"""The follower node against a bitbayd-shaped JSON-RPC server (tests/follower_upstream.py) that answers from a
real DevNode's chain: what an operator running `halo-exchange node` against bitbayd would see. Real LevelDB,
real signed transactions, real HTTP on loopback."""

from __future__ import annotations

import logging
import time

import pytest

from halo_exchange.chain import layout
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.script import address_to_script
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData
from halo_exchange.serialize import display_hex
from node_hooks import HookDispatcher, RecordingHook, TxStatus
from node_hooks.devnode.node import DevNode
from node_hooks.follower import (
    BitbaydRPC,
    FollowerNode,
    FollowerState,
    RPCError,
    UpstreamAuthError,
    UpstreamUnreachable,
)
from tests.follower_upstream import UpstreamServer
from tests.framework import assert_same_chain, free_port, read_undo, wait_until

COIN = 100_000_000


@pytest.fixture
def upstream(tmp_path):
    """A devnet node with a few payments and a supply move, served as bitbayd on loopback."""
    node = DevNode(tmp_path / "upstream")
    node.start()
    server = UpstreamServer(node)
    yield node, server
    server.stop()
    node.close()


def _follower(tmp_path, server, hook=None, **options) -> FollowerNode:
    dispatcher = HookDispatcher()
    if hook is not None:
        dispatcher.register(hook)
    options.setdefault("network", "devnet")
    follower = FollowerNode(tmp_path / "follower", server.url, dispatcher=dispatcher, poll_interval=0.05,
                            backoff=(0.05, 0.2), rpc_timeout=5, **options)
    follower.start()
    return follower


def _synced(follower: FollowerNode, node: DevNode) -> bool:
    status = follower.status()
    return status.state is FollowerState.FOLLOWING and status.height == node.block_count()


def _pay(node: DevNode, n: int = 2) -> None:
    for _ in range(n):
        node.send_to_address(node.get_new_address(), 3 * COIN)


def test_follower_replays_the_upstream_chain_key_for_key(tmp_path, upstream) -> None:
    """A new follower syncs the whole upstream chain (payments, cycles, a supply moved by deflate votes): its DB
    then agrees with the upstream's key for key, every block was announced once and in order, and it
    keeps following new blocks."""
    node, server = upstream
    _pay(node)
    node.generate(70, vote="deflate")  # cycle 3 (height 60) moves the supply: the vote rule is checked there
    assert node.reader.peg_fields(70).supply > 0
    hook = RecordingHook()
    follower = _follower(tmp_path, server, hook)
    try:
        wait_until(lambda: _synced(follower, node))
        assert_same_chain(follower.store.db, node.store.db)
        assert [e[1] for e in hook.of_kind("connected")] == list(range(0, 71))
        assert hook.events[0] == ("start",) and hook.services is follower.services
        before = follower.status()
        assert before.blocks_synced == 71
        assert before.txs_synced == sum(len(node.reader.block_record(h).txids) for h in range(71))
        assert before.rpc_seconds > 0 and before.store_seconds > 0
        _pay(node, 1)
        node.generate(2)
        wait_until(lambda: _synced(follower, node))
        assert_same_chain(follower.store.db, node.store.db)
        status = follower.status()
        assert (status.first_height, status.upstream_height, status.last_error) == (0, 72, "")
        # The cumulative counters an operator reads (and the sync benchmark splits its time with).
        assert status.blocks_synced == 73
        assert status.txs_synced == sum(len(node.reader.block_record(h).txids) for h in range(73))
        assert status.rpc_seconds > before.rpc_seconds and status.store_seconds > before.store_seconds
        assert status.to_dict()["blocks_synced"] == 73
    finally:
        follower.close()
    assert hook.events[-1] == ("stop",) and follower.status().state is FollowerState.STOPPED


def test_start_height_skips_older_blocks_and_their_outputs(tmp_path, upstream) -> None:
    """With start_height 25 the follower fetches nothing below 25: no block, transaction or output from before
    it; spends of older outputs (the stakes of the premine) are skipped rather than refused; the supply of
    an unseen cycle reads 0 and the vote rule is checked once the cycles it reads are held."""
    node, server = upstream
    node.generate(10)
    _pay(node)
    node.generate(20)
    node.send_to_address(node.get_new_address(), 150_000 * COIN)  # spends premine outputs, older than 25
    node.generate(40)
    follower = _follower(tmp_path, server, start_height=25)
    try:
        wait_until(lambda: _synced(follower, node))
        reader = follower.reader
        assert reader.first_height() == 25 and reader.block_hash(24) is None
        assert reader.supply_of_cycle(0) == 0
        assert_same_chain(follower.store.db, node.store.db, first=25)
        assert not any(layout.TxRecord.unpack(v).height < 25 for _, v in follower.store.db.iterator(prefix=layout.TX))
        skipped = [h for h in range(25, node.block_count() + 1)
                   if len(read_undo(follower.store.db, node.reader.block_hash(h)).spent)
                   < len(read_undo(node.store.db, node.reader.block_hash(h)).spent)]
        assert skipped  # some block spent an output older than the start: skipped, nothing to undo
    finally:
        follower.close()


def test_a_reorg_walks_back_to_the_fork_and_forward(tmp_path, upstream) -> None:
    """invalidateblock on the upstream then a longer branch: the follower disconnects its blocks down to the
    fork (tip first, hooks in that order), connects the new branch, and agrees with the upstream again."""
    node, server = upstream
    _pay(node)
    node.generate(30)
    hook = RecordingHook()
    follower = _follower(tmp_path, server, hook)
    try:
        wait_until(lambda: _synced(follower, node))
        old = [display_hex(node.reader.block_hash(h)) for h in range(26, 31)]
        node.invalidate_block(26)
        _pay(node, 1)
        node.generate(8)
        wait_until(lambda: _synced(follower, node))
        gone = hook.of_kind("disconnected")
        assert gone == [("disconnected", h, old[h - 26]) for h in range(30, 25, -1)]
        after = hook.events[hook.events.index(gone[-1]) + 1:]
        assert [e[1] for e in after if e[0] == "connected"] == list(range(26, 34))
        assert_same_chain(follower.store.db, node.store.db)
    finally:
        follower.close()


def test_restart_resumes_from_the_db_tip(tmp_path, upstream) -> None:
    """A follower closed and opened again on its data dir resumes after its last block: no gap, no block twice."""
    node, server = upstream
    node.generate(12)
    first = _follower(tmp_path, server)
    wait_until(lambda: _synced(first, node))
    first.close()
    node.generate(5)
    hook = RecordingHook()
    second = _follower(tmp_path, server, hook, start_height=3)  # ignored: the DB already starts at 0
    try:
        wait_until(lambda: _synced(second, node))
        assert [e[1] for e in hook.of_kind("connected")] == list(range(13, 18))
        assert_same_chain(second.store.db, node.store.db)
    finally:
        second.close()


def test_upstream_away_and_back(tmp_path, upstream, caplog) -> None:
    """bitbayd going away turns the status to upstream-unreachable with the error (logged once, not per
    retry); the chain read so far stays; when it is back the follower catches up by itself."""
    node, server = upstream
    node.generate(5)
    follower = _follower(tmp_path, server)
    try:
        wait_until(lambda: _synced(follower, node))
        with caplog.at_level(logging.WARNING, logger="node_hooks.follower"):
            server.stop()
            status = wait_until(lambda: (s := follower.status()).state is FollowerState.UNREACHABLE and s)
            assert "unreachable" in status.last_error or "refused" in status.last_error.lower()
            assert status.height == 5 and follower.reader.height() == 5
            node.generate(4)
            time.sleep(0.6)  # several retries
            server.start()
            wait_until(lambda: _synced(follower, node))
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
        assert_same_chain(follower.store.db, node.store.db)
    finally:
        follower.close()


@pytest.mark.parametrize("what", ["txid", "fractions", "merkleroot", "supply"])
def test_inconsistent_answers_are_refused_and_nothing_is_written(tmp_path, upstream, caplog, what) -> None:
    """An upstream whose answers disagree (a raw tx that does not hash to its txid, fractions that do not
    total the output's value, a wrong merkle root, a supply index the vote rule does not give) stops the
    follower before that block: an ERROR naming height, hash and the disagreement, status
    stopped-inconsistent, and the chain DB still at the block before."""
    node, server = upstream
    _pay(node)
    node.generate(3)
    bad_height = 3
    bad_hash = display_hex(node.reader.block_hash(bad_height))
    txids = [display_hex(t) for t in node.reader.block_record(bad_height).txids]
    other = node.get_raw_transaction(display_hex(node.reader.block_record(1).txids[0]))
    if what == "txid":
        server.tamper["getrawtransaction"] = lambda p, r: other if p[0] == txids[-1] else r
        expected = "hashes to"
    elif what == "fractions":
        def more(params, answer):
            if params[0] != f"{txids[-1]}:1" or answer == {}:
                return answer
            value = PegData.from_base64(answer).fractions.total()
            return PegData.at_level(Fractions.std(value + 1), PegLevel(0, 0, 0, 0, 0, 0)).to_base64()
        server.tamper["getfractionsbase64"] = more
        expected = "total"
    elif what == "merkleroot":
        server.tamper["getblock"] = lambda p, r: {**r, "merkleroot": "00" * 32} if r["height"] == bad_height else r
        expected = "merkle root"
    else:
        server.tamper["getblock"] = lambda p, r: {**r, "pegsupplyindex": 5} if r["height"] == bad_height else r
        expected = "vote rule gives 0"
    with caplog.at_level(logging.ERROR, logger="node_hooks.follower"):
        follower = _follower(tmp_path, server)
        try:
            status = wait_until(lambda: (s := follower.status()).state is FollowerState.INCONSISTENT and s)
            assert expected in status.last_error and bad_hash in status.last_error
            assert follower.reader.height() == bad_height - 1
            assert follower.reader.block_hash(bad_height) is None
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert any(f"block {bad_height} {bad_hash}" in m and expected in m for m in errors)
        finally:
            follower.close()


def test_another_network_is_refused(tmp_path, upstream) -> None:
    """A follower configured for mainnet that finds a 20-block-cycle bitbayd stops, saying so, writing nothing."""
    node, server = upstream
    follower = _follower(tmp_path, server, network="mainnet")
    try:
        status = wait_until(lambda: (s := follower.status()).state is FollowerState.INCONSISTENT and s)
        assert "interval is 20" in status.last_error and "mainnet" in status.last_error
        assert follower.reader.height() == -1
    finally:
        follower.close()


def test_services_send_through_bitbayd(tmp_path, upstream) -> None:
    """The plugin's transactions reach bitbayd's mempool through submit_transaction (which returns at once);
    transaction_status follows them from MEMPOOL to CHAIN; a refusal arrives as on_transaction_rejected with
    bitbayd's message; resubmitting a mined transaction is no rejection."""
    node, server = upstream
    node.generate(2)
    hook = RecordingHook()
    follower = _follower(tmp_path, server, hook)
    try:
        wait_until(lambda: _synced(follower, node))
        services = hook.services
        payee = address_to_script(node.get_new_address(), DEVNET_KEYS)
        with node._lock:
            tx = node._coins.payment(payee, 2 * COIN, node._producer.next_block(), frozen=False)
        assert services.transaction_status(tx.hash) is TxStatus.UNKNOWN
        services.submit_transaction(tx.serialize())
        wait_until(lambda: services.transaction_status(tx.hash) is TxStatus.MEMPOOL)
        assert tx.txid in node.mempool_txids()
        node.generate(1)
        wait_until(lambda: services.transaction_status(tx.hash) is TxStatus.CHAIN)
        services.submit_transaction(tx.serialize())  # already in block: not a rejection
        services.submit_transaction(b"\x01\x02garbage")
        rejected = wait_until(lambda: hook.of_kind("rejected"))
        assert len(rejected) == 1 and rejected[0][2] == "rejected-by-bitbayd: TX decode failed (code -22)"
    finally:
        follower.close()


def test_rpc_client_auth_batches_and_errors(tmp_path) -> None:
    """The JSON-RPC client authenticates from the URL or a cookie file, batches calls (errors in place when
    asked; a batch is one round trip, counted with its seconds), and types its failures: bitbayd's (code,
    message), refused credentials, nobody listening."""
    node = DevNode(tmp_path / "upstream")
    server = UpstreamServer(node, user="alice", password="s3cret")
    try:
        rpc = BitbaydRPC(f"http://alice:s3cret@127.0.0.1:{server.port}/", timeout=5)
        assert rpc.call("getblockcount") == 0
        assert rpc.batch([("getblockcount", ()), ("getblockhash", (0,))]) == [0, node.best_block_hash()]
        answers = rpc.batch([("getblockhash", (5,)), ("getblockcount", ())], errors_as_values=True)
        assert isinstance(answers[0], RPCError) and answers[0].code == -1 and answers[1] == 0
        with pytest.raises(RPCError) as refused:
            rpc.call("getblockhash", 9)
        assert (refused.value.code, refused.value.message) == (-1, "Block number out of range.")
        with pytest.raises(RPCError, match="Method not found") as missing:
            rpc.call("nosuchmethod")
        assert missing.value.code == -32601
        assert rpc.round_trips == 5 and rpc.round_trip_seconds > 0  # a batch is one round trip
        cookie = tmp_path / ".cookie"
        cookie.write_text("alice:s3cret\n")
        assert BitbaydRPC(server.url, cookie_file=cookie, timeout=5).call("getblockcount") == 0
        with pytest.raises(UpstreamAuthError, match="refused the credentials"):
            BitbaydRPC(f"http://alice:wrong@127.0.0.1:{server.port}/", timeout=5).call("getblockcount")
        with pytest.raises(UpstreamUnreachable):
            BitbaydRPC(f"http://127.0.0.1:{free_port()}/", timeout=5).call("getblockcount")
        assert "s3cret" not in rpc.url
    finally:
        server.stop()
        node.close()


def test_node_command_follows_and_stops_on_sigterm(tmp_path, upstream) -> None:
    """`halo-exchange node --bitbayd URL` as its own process: one start-up line with the password masked,
    it follows the upstream to its tip (the log says so), its exchange API listens, and SIGTERM stops it
    cleanly (exit 0, "stopped")."""
    import signal
    import socket
    import subprocess

    from tests.framework import spawn_python

    node, server = upstream
    node.generate(6)
    api_port = free_port()
    url = f"http://user:pa55word@127.0.0.1:{server.port}/"
    process = spawn_python("-m", "halo_exchange.cli", "node", "--datadir", str(tmp_path / "n"), "--bitbayd", url,
                           "--network", "devnet", "--api-port", str(api_port),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", api_port), timeout=1).close() or True)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "pa55word" not in err and "node starting, following http://user:***@127.0.0.1" in err
    assert "following bitbayd at" in err and "at height 6" in err and "follower node stopped" in err

"""The devnet's bitbayd-compatible JSON-RPC: a chain follower written for bitbayd reads blocks, transactions,
fractions and the peg from a devnet with the same method names, fields, types and error codes, over HTTP
JSON-RPC 1.0 with batches, keep-alive and (when configured) basic auth."""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.peg import PegData
from halo_exchange.peg.fractions import PEG_SIZE
from halo_exchange.serialize import from_display_hex
from node_hooks.devnode.bitbayd_rpc import BitbaydRPCServer
from node_hooks.devnode.node import DevNode
from tests.framework import free_port, run_cli, running_devnet

FEE = 10_000


class Client:
    """A bitbayd RPC client on one keep-alive connection; ``call`` raises RPCFailure on an error answer."""

    def __init__(self, port: int, auth: tuple[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}
        if auth is not None:
            self.headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()

    def post(self, body: bytes) -> tuple[int, Any]:
        self.connection.request("POST", "/", body, self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)

    def request(self, method: str, *params: Any) -> tuple[int, dict[str, Any]]:
        return self.post(json.dumps({"method": method, "params": list(params), "id": 7}).encode())

    def call(self, method: str, *params: Any) -> Any:
        status, answer = self.request(method, *params)
        if answer["error"] is not None:
            raise RPCFailure(status, answer["error"]["code"], answer["error"]["message"])
        assert status == 200 and answer["id"] == 7
        return answer["result"]

    def close(self) -> None:
        self.connection.close()


class RPCFailure(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message


def assert_rpc_error(code: int, message: str, client: Client, method: str, *params: Any) -> RPCFailure:
    with pytest.raises(RPCFailure) as failed:
        client.call(method, *params)
    assert (failed.value.code, failed.value.message) == (code, message), failed.value
    return failed.value


@pytest.fixture
def rpc(node: DevNode):
    server = BitbaydRPCServer(node, port=0)
    server.start()
    client = Client(server.port)
    yield client
    client.close()
    server.close()


def _key() -> tuple[PrivateKey, bytes, str]:
    key = PrivateKey.generate()
    address = key.public_key().address(DEVNET_KEYS)
    return key, address_to_script(address, DEVNET_KEYS), address


def _funded(node: DevNode, amount: int = 5 * COIN) -> tuple[PrivateKey, bytes, tuple[bytes, int]]:
    key, script, address = _key()
    txid = node.send_to_address(address, amount)
    node.generate(1)
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    return key, script, (tx.hash, next(i for i, out in enumerate(tx.outputs) if out.value == amount))


def _spend(key: PrivateKey, script: bytes, coin: tuple[bytes, int], value: int) -> Transaction:
    _, payee, _ = _key()
    tx = Transaction(1, 0, (TxIn(OutPoint(*coin)),), (TxOut(value - FEE, payee),), 0)
    return sign_input(tx, 0, key, script)


# -- the chain ---------------------------------------------------------------------------------------------


def test_tip_and_block_hashes(node: DevNode, rpc: Client) -> None:
    """getblockcount, getbestblockhash and getblockhash agree with the node; beyond the tip is -1."""
    node.generate(3)
    assert rpc.call("getblockcount") == 3
    assert rpc.call("getbestblockhash") == node.best_block_hash()
    assert rpc.call("getblockhash", 3) == node.best_block_hash()
    assert rpc.call("getblockhash", 0) == node.get_block(0)["hash"]
    assert_rpc_error(-1, "Block number out of range.", rpc, "getblockhash", 4)
    assert_rpc_error(-1, "Block number out of range.", rpc, "getblockhash", -1)


def test_getblock_fields_and_types(node: DevNode, rpc: Client) -> None:
    """getblock gives bitbayd's fields with bitbayd's types: floats for amounts, bits as hex, the peg fields,
    nextblockhash absent at the tip, and getblockbynumber gives the same object."""
    node.generate(2, "inflate")
    tip = rpc.call("getbestblockhash")
    block = rpc.call("getblock", tip)
    record = node.reader.block_record(2)
    assert block["hash"] == tip and block["height"] == 2 and block["confirmations"] == 1
    assert "nextblockhash" not in block
    assert block["previousblockhash"] == rpc.call("getblockhash", 1)
    assert isinstance(block["mint"], float) and block["mint"] == node.params.stake_reward / 1e8
    assert isinstance(block["bits"], str) and len(block["bits"]) == 8
    assert isinstance(block["difficulty"], float)
    assert isinstance(block["size"], int) and block["size"] > 80
    assert block["flags"] == "proof-of-stake"
    assert block["pegsupplyindex"] == record.peg.supply
    assert (block["pegvotesinflate"], block["pegvotesdeflate"], block["pegvotesnochange"]) == record.peg.votes
    assert block["tx"] == node.get_block(2)["txids"]
    for key in ("version", "time", "nonce"):
        assert isinstance(block[key], int)
    assert rpc.call("getblockbynumber", 2) == block
    earlier = rpc.call("getblockbynumber", 1)
    assert earlier["nextblockhash"] == tip and earlier["confirmations"] == 2
    assert "previousblockhash" not in rpc.call("getblockbynumber", 0)


def test_getblock_with_txinfo_gives_transaction_objects(node: DevNode, rpc: Client) -> None:
    """getblock(hash, true) lists each transaction as the verbose getrawtransaction object."""
    _, _, address = _key()
    txid = node.send_to_address(address, 3 * COIN)
    node.generate(1)
    block = rpc.call("getblock", rpc.call("getbestblockhash"), True)
    assert [tx["txid"] for tx in block["tx"]] == node.get_block(1)["txids"]
    paid = next(tx for tx in block["tx"] if tx["txid"] == txid)
    assert paid == rpc.call("getrawtransaction", txid, 1)


def test_unknown_block_is_minus_5(node: DevNode, rpc: Client) -> None:
    """A hash the chain does not hold is -5 'Block not found' (HTTP 500, as bitbayd); past the tip by number
    is -1."""
    failure = assert_rpc_error(-5, "Block not found", rpc, "getblock", "00" * 32)
    assert failure.status == 500
    assert_rpc_error(-5, "Block not found", rpc, "getblock", "zz")
    assert_rpc_error(-1, "Block number out of range.", rpc, "getblockbynumber", 9)


# -- transactions ------------------------------------------------------------------------------------------


def test_getrawtransaction_hex_and_verbose(node: DevNode, rpc: Client) -> None:
    """verbose 0 is the transaction's hex; verbose 1 an object with floats in BAY, the addresses paid, the
    fractions split at its block's supply, and its block."""
    _, script, address = _key()
    txid = node.send_to_address(address, 3 * COIN)
    node.generate(2)
    assert rpc.call("getrawtransaction", txid) == node.get_raw_transaction(txid)
    verbose = rpc.call("getrawtransaction", txid, 1)
    tx = Transaction.from_hex(node.get_raw_transaction(txid))
    assert verbose["hex"] == tx.to_hex() and verbose["txid"] == txid
    assert (verbose["version"], verbose["time"], verbose["locktime"]) == (tx.version, tx.time, tx.lock_time)
    assert verbose["blockhash"] == rpc.call("getblockhash", 1)
    assert verbose["confirmations"] == 2 and verbose["blocktime"] == node.get_block(1)["time"]
    assert verbose["peg"] == node.get_block(1)["supply"]
    assert [(i["txid"], i["vout"]) for i in verbose["vin"]] == [(p.prevout.txid_hex, p.prevout.n) for p in tx.inputs]
    assert all(set(i) == {"txid", "vout", "scriptSig", "sequence"} for i in verbose["vin"])
    paid = next(out for out in verbose["vout"] if out["scriptPubKey"]["hex"] == script.hex())
    assert paid["value"] == 3.0 and isinstance(paid["value"], float)
    assert paid["scriptPubKey"]["type"] == "pubkeyhash" and paid["scriptPubKey"]["addresses"] == [address]
    assert paid["scriptPubKey"]["asm"].startswith("OP_DUP OP_HASH160 ")
    assert paid["reserve"] + paid["liquidity"] == pytest.approx(3.0)
    assert [out["n"] for out in verbose["vout"]] == list(range(len(tx.outputs)))


def test_mempool_transactions_are_served(node: DevNode, rpc: Client) -> None:
    """A pending transaction is in getrawmempool and getrawtransaction answers it, without a block."""
    _, _, address = _key()
    txid = node.send_to_address(address, 2 * COIN)
    assert rpc.call("getrawmempool") == [txid]
    assert rpc.call("getrawtransaction", txid) == node.get_raw_transaction(txid)
    verbose = rpc.call("getrawtransaction", txid, 1)
    assert verbose["txid"] == txid and "blockhash" not in verbose and "confirmations" not in verbose
    node.generate(1)
    assert rpc.call("getrawmempool") == []


def test_unknown_or_malformed_txid(rpc: Client) -> None:
    """An unknown txid is -5 'No information available about transaction'; one that is not 64 hex is -8."""
    assert_rpc_error(-5, "No information available about transaction", rpc, "getrawtransaction", "ab" * 32)
    failure = assert_rpc_error(-8, "txid must be of length 64 (not 3, for 'abc')", rpc, "getrawtransaction", "abc")
    assert failure.status == 500
    assert_rpc_error(-3, "Expected type str, got int", rpc, "getrawtransaction", 5)


def test_gettxout_unspent_spent_and_mempool(node: DevNode, rpc: Client) -> None:
    """gettxout gives an unspent output (value float, confirmations), null once a pending transaction spends
    it, a pending output with 0 confirmations, and ignores the mempool when told to."""
    key, script, coin = _funded(node)
    txid = coin[0][::-1].hex()
    out = rpc.call("gettxout", txid, coin[1])
    assert out["value"] == 5.0 and out["confirmations"] == 1 and out["coinbase"] is False
    assert out["bestblock"] == node.best_block_hash() and out["scriptPubKey"]["hex"] == script.hex()
    spend = _spend(key, script, coin, 5 * COIN)
    assert rpc.call("sendrawtransaction", spend.to_hex()) == spend.txid
    assert rpc.call("gettxout", txid, coin[1]) is None
    assert rpc.call("gettxout", txid, coin[1], False)["value"] == 5.0
    pending = rpc.call("gettxout", spend.txid, 0)
    assert pending["confirmations"] == 0 and pending["value"] == (5 * COIN - FEE) / 1e8
    assert rpc.call("gettxout", spend.txid, 0, False) is None
    assert rpc.call("gettxout", txid, 99) is None


# -- sendrawtransaction ------------------------------------------------------------------------------------


def test_sendrawtransaction_of_a_signed_transaction(node: DevNode, rpc: Client) -> None:
    """A signed transaction is accepted (its txid back), accepted again while pending, and once mined is
    -5 'transaction already in block H'."""
    key, script, coin = _funded(node)
    tx = _spend(key, script, coin, 5 * COIN)
    assert rpc.call("sendrawtransaction", tx.to_hex()) == tx.txid
    assert node.mempool_txids() == [tx.txid]
    assert rpc.call("sendrawtransaction", tx.to_hex()) == tx.txid
    node.generate(1)
    block = node.best_block_hash()
    assert_rpc_error(-5, f"transaction already in block {block}", rpc, "sendrawtransaction", tx.to_hex())


def test_sendrawtransaction_refusals_are_minus_22(node: DevNode, rpc: Client) -> None:
    """Undecodable hex is -22 'TX decode failed'; a transaction the mempool refuses (a double spend, a bad
    signature) is -22 'TX rejected'."""
    assert_rpc_error(-22, "TX decode failed", rpc, "sendrawtransaction", "00zz")
    assert_rpc_error(-22, "TX decode failed", rpc, "sendrawtransaction", "0100")
    key, script, coin = _funded(node)
    first = _spend(key, script, coin, 5 * COIN)
    rpc.call("sendrawtransaction", first.to_hex())
    second = _spend(key, script, coin, 5 * COIN)
    assert_rpc_error(-22, "TX rejected", rpc, "sendrawtransaction", second.to_hex())
    unsigned = Transaction(1, 0, (TxIn(OutPoint(*_funded(node)[2])),), (TxOut(COIN, script),), 0)
    assert_rpc_error(-22, "TX rejected", rpc, "sendrawtransaction", unsigned.to_hex())


# -- the peg -----------------------------------------------------------------------------------------------


def test_getfractions_matches_the_chain(node: DevNode, rpc: Client) -> None:
    """getfractions gives the output's 1200 fractions, split at its block's supply (or the one asked);
    an unknown output is {}."""
    node.generate(3, "inflate")
    _, _, coin = _funded(node)
    outpoint = f"{coin[0][::-1].hex()}:{coin[1]}"
    stored = node.reader.fractions(coin[0], coin[1], 5 * COIN).to_list()
    answer = rpc.call("getfractions", outpoint)
    assert answer["values"] == stored and len(stored) == PEG_SIZE
    supply = node.get_block(node.block_count())["supply"]
    assert answer["peg"] == supply and answer["total"] == 5 * COIN
    assert answer["reserve"] == sum(stored[:supply]) and answer["liquidity"] == sum(stored[supply:])
    assert (answer["flags"], answer["lock"]) == ("", 0)
    at_100 = rpc.call("getfractions", outpoint, 100)
    assert at_100["peg"] == 100 and at_100["reserve"] == sum(stored[:100])
    assert rpc.call("getfractions", f"{'00' * 32}:0") == {}
    assert_rpc_error(-8, "Invalid parameter: the output must be <txhash:output>", rpc, "getfractions", "nope")


def test_getfractionsbase64_round_trips_to_the_stored_fractions(node: DevNode, rpc: Client) -> None:
    """What getfractionsbase64 serves decodes with PegData to a valid balance whose fractions are exactly
    the node's for that output, at the level of the output's block; a pending output decodes too."""
    interval = node.params.peg_interval
    node.generate(2 * interval + 3, "inflate")
    key, script, coin = _funded(node)
    encoded = rpc.call("getfractionsbase64", f"{coin[0][::-1].hex()}:{coin[1]}")
    decoded = PegData.from_base64(encoded)
    assert decoded.is_valid()
    stored = node.reader.fractions(coin[0], coin[1], 5 * COIN)
    assert decoded.fractions.to_list() == stored.to_list()
    assert decoded.value == 5 * COIN
    height = node.block_count()
    assert decoded.level.supply == node.get_block(height)["supply"]
    assert (decoded.level.cycle, decoded.level.cycle_prev, decoded.level.buffer) == (
        height // interval, height // interval - 1, 0)
    assert decoded.liquid == stored.high_at(decoded.level) and decoded.reserve == stored.low_at(decoded.level)
    pending = _spend(key, script, coin, 5 * COIN)
    rpc.call("sendrawtransaction", pending.to_hex())
    served = PegData.from_base64(rpc.call("getfractionsbase64", f"{pending.txid}:0"))
    assert served.is_valid() and served.value == 5 * COIN - FEE
    assert served.fractions.to_list() == node.mempool_entry(pending.hash).output_fractions[0].to_list()
    assert rpc.call("getfractionsbase64", f"{'00' * 32}:0") == {}


def test_getpeginfo_fields(node: DevNode, rpc: Client) -> None:
    """getpeginfo gives bitbayd's fields; the supplies are the node's."""
    node.generate(5)
    info = rpc.call("getpeginfo")
    mine = node.peg_info()
    assert set(info) == {"steps", "cycle", "interval", "startingblock", "pegfeeperinput", "subpremiumrating",
                         "peg", "pegnext", "pegnextnext"}
    assert info["steps"] == PEG_SIZE and info["interval"] == node.params.peg_interval
    assert (info["cycle"], info["peg"], info["pegnext"], info["pegnextnext"]) == (
        mine["cycle"], mine["peg"], mine["pegnext"], mine["pegnextnext"])
    assert isinstance(info["pegfeeperinput"], float)


# -- the protocol ------------------------------------------------------------------------------------------


def test_protocol_errors_and_http_status(rpc: Client) -> None:
    """Unknown method -32601 (404), not JSON -32700 (500), not a request object -32600 (400), params not an
    array -32600, a wrong argument count -1 with the usage, a wrong type -3."""
    status, answer = rpc.request("getinfo")
    assert status == 404 and answer["error"] == {"code": -32601, "message": "Method not found"}
    assert answer["id"] == 7 and answer["result"] is None
    status, answer = rpc.post(b"{not json")
    assert status == 500 and answer["error"]["code"] == -32700 and answer["id"] is None
    status, answer = rpc.post(b'"getblockcount"')
    assert status == 400 and answer["error"]["code"] == -32600
    status, answer = rpc.post(b'{"method": "getblockcount", "params": 3, "id": 1}')
    assert status == 400 and answer["error"] == {"code": -32600, "message": "Params must be an array"}
    status, answer = rpc.post(b'{"method": "getblockcount", "id": "x"}')  # no params is []
    assert status == 200 and answer == {"result": 0, "error": None, "id": "x"}
    failure = assert_rpc_error(-1, "getblockhash <index>\nReturns hash of block in best-block-chain at <index>.",
                               rpc, "getblockhash")
    assert failure.status == 500
    assert_rpc_error(-3, "Expected type int, got str", rpc, "getblockhash", "1")


def test_batch_answers_in_order(node: DevNode, rpc: Client) -> None:
    """A JSON array is a batch: one array of answers in request order, errors in place, HTTP 200."""
    node.generate(1)
    batch = [
        {"method": "getblockcount", "params": [], "id": 1},
        {"method": "nosuchmethod", "params": [], "id": 2},
        {"method": "getblockhash", "params": [1], "id": 3},
        5,
    ]
    status, answers = rpc.post(json.dumps(batch).encode())
    assert status == 200
    assert [a["id"] for a in answers] == [1, 2, 3, None]
    assert answers[0]["result"] == 1 and answers[0]["error"] is None
    assert answers[1]["error"]["code"] == -32601
    assert answers[2]["result"] == node.best_block_hash()
    assert answers[3]["error"]["code"] == -32600
    assert rpc.post(b"[]") == (200, [])


def test_keep_alive_serves_several_requests_on_one_connection(rpc: Client) -> None:
    """Two requests go over one HTTP/1.1 connection: the server keeps it open between them."""
    assert rpc.call("getblockcount") == 0
    first = rpc.connection.sock
    assert first is not None
    assert rpc.call("getrawmempool") == []
    assert rpc.connection.sock is first


def test_basic_auth_when_configured(node: DevNode) -> None:
    """With a user and password set, a request without them or with wrong ones gets HTTP 401; with them, the
    answer."""
    server = BitbaydRPCServer(node, port=0, user="follower", password="s3cret")
    server.start()
    try:
        for auth in (None, ("follower", "wrong"), ("other", "s3cret")):
            client = Client(server.port, auth)
            status, answer = client.request("getblockcount")
            assert (status, answer) == (401, None)
            client.close()
        client = Client(server.port, ("follower", "s3cret"))
        assert client.call("getblockcount") == 0
        client.close()
    finally:
        server.close()
    with pytest.raises(ValueError):
        BitbaydRPCServer(node, port=0, user="follower")


def test_close_ends_idle_keep_alive_connections(node: DevNode) -> None:
    """close() returns promptly while a client still holds an idle keep-alive connection."""
    server = BitbaydRPCServer(node, port=0)
    server.start()
    client = Client(server.port)
    assert client.call("getblockcount") == 0
    server.close()  # would wait IDLE_TIMEOUT for the idle connection's thread otherwise
    client.close()


# -- the devnet process ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_devnet_process_serves_bitbayd_rpc(tmp_path: Path) -> None:
    """`halo-exchange devnet --bitbayd-rpc-port P --bitbayd-rpc-user U --bitbayd-rpc-password W` serves the
    bitbayd RPC beside the control RPC: blocks generated over the control RPC are read over the bitbayd RPC."""
    port = free_port()
    extra = ("--bitbayd-rpc-port", str(port), "--bitbayd-rpc-user", "u", "--bitbayd-rpc-password", "w")
    with running_devnet(tmp_path / "node", free_port(), extra_args=extra) as (process, control):
        hashes = control.generate(2)
        client = Client(port, ("u", "w"))
        assert client.call("getblockcount") == 2
        assert client.call("getbestblockhash") == hashes[-1]
        block = client.call("getblock", hashes[-1], True)
        assert block["height"] == 2 and block["tx"][0]["txid"] == control.getblock(2)["txids"][0]
        txid = block["tx"][0]["txid"]
        assert from_display_hex(txid) and client.call("getrawtransaction", txid, 0)
        client.close()
        assert control.stop() is True
        assert process.wait(timeout=30) == 0


def test_user_without_password_refuses_to_start(tmp_path: Path) -> None:
    """Basic auth needs both halves: a user without a password is a configuration error (exit 2), not an
    open server."""
    done = run_cli("devnet", "--datadir", str(tmp_path / "node"), "--bitbayd-rpc-port", str(free_port()),
                   "--bitbayd-rpc-user", "follower")
    assert done.returncode == 2
    assert "bitbayd_rpc_user and bitbayd_rpc_password" in done.stderr

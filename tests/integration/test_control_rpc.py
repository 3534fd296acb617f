"""The devnet control RPC, driven by the stdlib xmlrpc.client against a real node on a loopback port."""

from __future__ import annotations

import base64
import http.client
import xmlrpc.client

import pytest

from node_hooks.devnode.node import DevNode
from node_hooks.devnode.rpc import (
    FAULT_INTERNAL,
    FAULT_INVALID_PARAMETER,
    FAULT_INVALID_PARAMS,
    FAULT_METHOD_NOT_FOUND,
    FAULT_NOT_FOUND,
    FAULT_PARSE_ERROR,
    FAULT_TX_REJECTED,
    ControlRPCServer,
)
from tests.framework import assert_raises_fault

CREDENTIALS = "tester:p@ss word:1"  # a password with the characters a URL must quote
AUTH = {"Authorization": "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()}

CALLS = [
    "droptransaction", "generate", "getbestblockhash", "getblock", "getblockcount", "getfractions", "getnewaddress",
    "getpeginfo", "getrawmempool", "getrawtransaction", "invalidateblock", "listunspent", "malleatetransaction",
    "refusetransactions", "sendfrozen", "sendrawtransaction", "sendtoaddress", "stop",
]


@pytest.fixture
def node(tmp_path):
    node = DevNode(tmp_path / "node")
    yield node
    node.close()


@pytest.fixture
def server(node):
    server = ControlRPCServer(node, port=0, credentials=CREDENTIALS)
    server.start()
    yield server
    server.close()


@pytest.fixture
def rpc(server) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(server.auth_url)


def test_exactly_the_control_calls_are_listed_with_help(rpc) -> None:
    """system.listMethods lists the 18 control calls (plus introspection); each has help text."""
    assert rpc.system.listMethods() == sorted(CALLS + ["system.listMethods", "system.methodHelp"])
    for name in CALLS:
        assert name.split(".")[-1] in rpc.system.methodHelp(name)


def test_generate_send_and_read_back(rpc) -> None:
    """Blocks, a send of 30 BAY (above int32) and its fractions, all read exactly through the stdlib client."""
    hashes = rpc.generate(2)
    assert rpc.getblockcount() == 2 and rpc.getbestblockhash() == hashes[-1]
    address = rpc.getnewaddress()
    txid = rpc.sendtoaddress(address, "3000000000")
    rpc.generate(1)
    assert rpc.getblock(3)["txids"][-1] == txid
    facts = rpc.getfractions(f"{txid}:0")
    assert facts["total"] == 3_000_000_000 and facts["liquidity"] + facts["reserve"] == 3_000_000_000
    [coin] = rpc.listunspent(address)
    assert (coin["txid"], coin["amount"], coin["confirmations"]) == (txid, 3_000_000_000, 1)
    assert rpc.getrawtransaction(txid)


def test_large_integers_travel_as_i8(server, rpc) -> None:
    """Integers of 2^31 and more are written as <i8> (the stdlib marshaller alone would fail)."""
    address = rpc.getnewaddress()
    rpc.sendtoaddress(address, "5000000000")
    rpc.generate(1)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    body = xmlrpc.client.dumps((address,), "listunspent").encode()
    connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml", **AUTH})
    assert "<i8>5000000000</i8>" in connection.getresponse().read().decode()


def test_bad_arguments_are_refused_before_the_node_acts(rpc) -> None:
    """Wrong types or counts get -32602 and change nothing."""
    height = rpc.getblockcount()
    assert_raises_fault(FAULT_INVALID_PARAMS, "n must be an integer", rpc.generate, "5")
    assert_raises_fault(FAULT_INVALID_PARAMS, "n must be", rpc.generate, True)
    assert_raises_fault(FAULT_INVALID_PARAMS, "vote must be", rpc.generate, 1, "up")
    assert_raises_fault(FAULT_INVALID_PARAMS, "wrong arguments", rpc.getblockcount, 1)
    assert_raises_fault(FAULT_INVALID_PARAMS, "amount must be", rpc.sendtoaddress, rpc.getnewaddress(), 1.5)
    assert_raises_fault(FAULT_INVALID_PARAMS, "amount must be", rpc.sendtoaddress, rpc.getnewaddress(), "-5")
    assert_raises_fault(FAULT_INVALID_PARAMS, "outpoint", rpc.getfractions, "abc:1")
    assert rpc.getblockcount() == height


def test_node_refusals_map_to_stable_codes(rpc) -> None:
    """Unknown things are -5, refused parameters -8, refused transactions -26 with the rule, unknown calls -32601."""
    assert_raises_fault(FAULT_NOT_FOUND, "no block at height 99", rpc.getblock, 99)
    assert_raises_fault(FAULT_NOT_FOUND, "no output", rpc.getfractions, "00" * 32 + ":0")
    assert_raises_fault(FAULT_INVALID_PARAMETER, "invalid address", rpc.sendtoaddress, "1NotBitBay", 10)
    assert_raises_fault(FAULT_TX_REJECTED, "decode-failed", rpc.sendrawtransaction, "00ff")
    assert_raises_fault(FAULT_METHOD_NOT_FOUND, "not found", rpc.dumpprivkey)


def test_devnet_helpers_drive_the_mempool(rpc) -> None:
    """A test can refuse the next submission, malleate a pending payment (new txid, same payment, mined), and drop
    one, all over the control RPC; getrawmempool shows the mempool after each."""
    address = rpc.getnewaddress()
    first = rpc.sendtoaddress(address, 10**8)
    assert rpc.getrawmempool() == [first]
    twin = rpc.malleatetransaction(first)
    assert twin != first and rpc.getrawmempool() == [twin]
    rpc.generate(1)
    assert twin in rpc.getblock(rpc.getblockcount())["txids"] and rpc.getrawmempool() == []
    assert_raises_fault(FAULT_NOT_FOUND, "no transaction", rpc.getrawtransaction, first)

    second = rpc.sendtoaddress(address, 10**8)
    raw = rpc.getrawtransaction(second)
    assert rpc.droptransaction(second) is True and rpc.getrawmempool() == []
    assert rpc.refusetransactions(1) is True
    assert_raises_fault(FAULT_TX_REJECTED, "refused-by-devnet", rpc.sendrawtransaction, raw)
    assert rpc.sendrawtransaction(raw) == second and rpc.getrawmempool() == [second]
    assert rpc.refusetransactions(3) is True and rpc.refusetransactions(0) is True  # 0 cancels


def test_devnet_helpers_refuse_bad_arguments(rpc) -> None:
    """Unknown or malformed txids and negative counts are refused with the usual faults, changing nothing."""
    assert_raises_fault(FAULT_NOT_FOUND, "no transaction", rpc.malleatetransaction, "00" * 32)
    assert_raises_fault(FAULT_NOT_FOUND, "no transaction", rpc.droptransaction, "00" * 32)
    assert_raises_fault(FAULT_INVALID_PARAMS, "txid must be", rpc.droptransaction, "xyz")
    assert_raises_fault(FAULT_INVALID_PARAMS, "txid must be", rpc.malleatetransaction, 5)
    assert_raises_fault(FAULT_INVALID_PARAMS, "count must be at least 0", rpc.refusetransactions, -1)
    assert_raises_fault(FAULT_INVALID_PARAMS, "count must be an integer", rpc.refusetransactions, "1")


def test_unexpected_errors_are_logged_not_sent(node, rpc, monkeypatch, caplog) -> None:
    """A bug inside a call gives Fault(-32603, 'internal error') with no traceback; the log has it."""

    def broken() -> dict:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(node, "peg_info", broken)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        rpc.getpeginfo()
    assert (fault.value.faultCode, fault.value.faultString) == (FAULT_INTERNAL, "internal error")
    assert "secret detail" in caplog.text


def test_oversized_and_malformed_bodies(server) -> None:
    """A body over 64 KiB gets HTTP 413; malformed XML gets a parse fault; both change nothing."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("POST", "/", b"<" * (100 * 1024), {"Content-Type": "text/xml", **AUTH})
    assert connection.getresponse().status == 413
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("POST", "/", b"<methodCall><oops>", {"Content-Type": "text/xml", **AUTH})
    response = connection.getresponse()
    assert response.status == 200
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(response.read())
    assert fault.value.faultCode == FAULT_PARSE_ERROR


def test_stop_answers_then_asks_the_node_to_stop(node, rpc) -> None:
    """stop() answers True and sets the node's stop request (the process loop then shuts down)."""
    assert rpc.stop() is True
    assert node.wait_for_stop(5)


@pytest.mark.parametrize("header", [None, "Basic " + base64.b64encode(b"tester:wrong").decode(), "Bearer x",
                                    "Basic !!notbase64"])
def test_a_request_without_the_credentials_gets_401_and_runs_nothing(node, server, header) -> None:
    """No Authorization header, wrong credentials or another scheme: HTTP 401 with a Basic challenge, and the
    call does not run."""
    height = node.block_count()
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    headers = {"Content-Type": "text/xml", **({"Authorization": header} if header else {})}
    connection.request("POST", "/", xmlrpc.client.dumps((1,), "generate").encode(), headers)
    response = connection.getresponse()
    assert response.status == 401 and response.getheader("WWW-Authenticate").startswith("Basic")
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        xmlrpc.client.ServerProxy(server.url).generate(1)
    assert refused.value.errcode == 401
    assert node.block_count() == height


def test_no_auth_only_when_asked_for(node) -> None:
    """credentials=None (the process's --rpc-no-auth) serves without authentication; there is no default."""
    with pytest.raises(TypeError):
        ControlRPCServer(node, port=0)  # type: ignore[call-arg]
    server = ControlRPCServer(node, port=0, credentials=None)
    server.start()
    try:
        assert xmlrpc.client.ServerProxy(server.url).getblockcount() == node.block_count()
    finally:
        server.close()


def _raw_call(server, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("POST", "/", body, {**AUTH, "Content-Type": "text/xml", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("value", ["<i8>1180591620717411303424</i8>", "<int>4294967296</int>",
                                   "<i8>9223372036854775807</i8>", "<int>-1180591620717411303424</int>"])
def test_out_of_range_integers_are_invalid_params(server, value) -> None:
    """getblock(2^70) and friends: -32602, never an internal error from the node's key packing (issue 14 #8)."""
    for method in ("getblock", "invalidateblock", "refusetransactions", "generate"):
        body = (f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params><param><value>"
                f"{value}</value></param></params></methodCall>").encode()
        status, answer = _raw_call(server, body)
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(answer)
        assert (status, caught.value.faultCode) == (200, FAULT_INVALID_PARAMS), (method, caught.value)

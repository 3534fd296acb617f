"""Hostile input against the real API listener (issue 14): each refusal is clear, cheap, and never an
internal error."""

from __future__ import annotations

import http.client
import socket
import time
import xmlrpc.client

import pytest

from halo_exchange.rpc.dispatch import FAULT_PARSE_ERROR
from tests.framework import ServiceHarness, assert_refused


@pytest.fixture
def exchange(tmp_path, reactor_thread):
    with ServiceHarness(tmp_path) as exchange:
        yield exchange


def _post(exchange: ServiceHarness, body: bytes) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", exchange.service.api_port, timeout=10)
    try:
        connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        response = connection.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        connection.close()


def _fault(answer: bytes) -> tuple[int, str]:
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(answer)
    return fault.value.faultCode, fault.value.faultString


def test_a_nan_or_infinite_commission_percent_is_refused_like_a_negative_one(exchange: ServiceHarness) -> None:
    exchange.api.StartExchange("")
    for percent in (float("nan"), float("inf"), float("-inf")):
        commission = {"min": 20000, "max": 10**9, "percent": percent}
        assert exchange.api.ExchangeSettings("", "", commission, "", "") is False


def test_deep_nesting_is_refused_at_parse_time(exchange: ServiceHarness) -> None:
    for depth in (33, 600, 1001):
        nested = "<array><data><value>" * depth + "x" + "</value></data></array>" * depth  # dumps() recurses
        body = (f"<?xml version='1.0'?><methodCall><methodName>Deposit</methodName><params><param><value>bobby"
                f"</value></param><param><value>{nested}</value></param><param><value></value></param></params>"
                f"</methodCall>").encode()
        code, message = _fault(_post(exchange, body))
        assert code == FAULT_PARSE_ERROR and "nested deeper than 32" in message and "[[" not in message


def test_a_body_that_is_not_a_call_is_a_parse_error(exchange: ServiceHarness) -> None:
    for body in (xmlrpc.client.dumps((True,), methodresponse=True).encode(),
                 b"<methodResponse><methodName>GetCycle</methodName><params></params></methodResponse>",
                 b"<params></params>"):
        code, message = _fault(_post(exchange, body))
        assert code == FAULT_PARSE_ERROR and "not a valid XML-RPC call" in message


def test_entity_declarations_are_refused_before_any_expansion(exchange: ServiceHarness) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lolololololololololololololololol">'
              + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                         for i in range(1, 10))
              + b"]><methodCall><methodName>GetBalance</methodName><params><param><value>&lol9;</value>"
                b"</param></params></methodCall>")
    started = time.perf_counter()
    code, message = _fault(_post(exchange, laughs))
    assert code == FAULT_PARSE_ERROR and "declarations are refused" in message
    assert time.perf_counter() - started < 0.5
    assert exchange.api.GetCycle("") == exchange.node.peg_info()["cycle"]  # the API goes on serving


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_client_that_half_closes_after_its_request_gets_its_answer(exchange: ServiceHarness) -> None:
    """A full Trade request, then shutdown(SHUT_WR): the trade is applied and answered (it was applied, and
    the answer lost, before the channel handled the half-close)."""
    exchange.credit("karen", 10**9)
    body = xmlrpc.client.dumps(("karen", 1000, "dave", "liquid", ""), "Trade").encode()
    request = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", exchange.service.api_port), timeout=10) as sock:
            sock.sendall(request + request)  # two pipelined calls, both answered
            sock.shutdown(socket.SHUT_WR)
            answer = _read_all(sock)
        assert answer.count(b"HTTP/1.1 200 OK") == 2, answer
        assert xmlrpc.client.loads(answer.split(b"\r\n\r\n")[-1]) == ((True,), None)
    assert exchange.api.GetBalance("dave", "") == {"liquid": 10 * 1000, "reserve": 0}
    assert_refused("Unknown user", exchange.api.Trade, "nobody", 5, "dave", "liquid", "")


def test_a_wrong_password_storm_runs_scrypt_a_few_times_only(exchange: ServiceHarness, monkeypatch) -> None:
    from halo_exchange.rpc.api import PasswordGate
    from halo_exchange.rpc.dispatch import BACKOFF_FREE_FAILURES

    api = exchange.api
    assert api.SetPassword("pw", "") is True
    assert api.GetCycle("pw") == exchange.node.peg_info()["cycle"]  # verified once, then cached
    hashes = []
    real_hash = PasswordGate._hash
    monkeypatch.setattr(PasswordGate, "_hash", staticmethod(lambda p, s: hashes.append(p) or real_hash(p, s)))
    assert [api.GetCycle(f"guess{i}") for i in range(100)] == ["Incorrect Password"] * 100
    assert len(hashes) == BACKOFF_FREE_FAILURES + 1  # then this peer backs off: no scrypt on the API thread
    assert api.GetCycle("pw") == exchange.node.peg_info()["cycle"]  # the correct password is not held up

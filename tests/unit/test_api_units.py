"""Units of the API layer that need no server: amount parsing, the password gate, the dispatcher."""

from __future__ import annotations

import xmlrpc.client

import pytest

from halo_exchange.errors import CommandRefused
from halo_exchange.rpc.api import ExchangeAPI, PasswordGate, parse_amount
from halo_exchange.rpc.dispatch import FAULT_INTERNAL, APIDispatcher, api_call


@pytest.mark.parametrize("value, expected", [(5, 5), (3_000_000_000, 3_000_000_000), (7.0, 7), ("42", 42),
                                             (" -5 ", -5), ("+9", 9)])
def test_amounts_exchanges_send(value, expected) -> None:
    """Ints, <i8>, integral floats and digit strings are exact amounts."""
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value", [1.5, "1.5", "1e9", True, None, [], "", "12a", 2.0**60, "9" * 20])
def test_anything_else_is_refused(value) -> None:
    """Fractions, exponents, booleans, huge floats and junk are refused with the documented string."""
    with pytest.raises(CommandRefused, match="whole number of satoshis"):
        parse_amount(value)


def test_password_gate_remembers_only_what_matched() -> None:
    """A verified password passes quickly afterwards; a wrong one never passes, before or after."""
    gate = PasswordGate(PasswordGate.record_for("s3cret"))
    assert not gate.matches("wrong") and not gate.matches(None)
    assert gate.matches("s3cret") and gate.matches("s3cret")
    assert not gate.matches("wrong") and not gate.matches("s3cret ")
    assert PasswordGate(PasswordGate.record_for("")).matches("anything")


def test_an_answer_xmlrpc_cannot_carry_is_an_internal_fault() -> None:
    """A call answering something XML-RPC cannot marshal (None) gets fault -32603, not a broken response."""
    class BrokenAPI(ExchangeAPI):
        @api_call(loaded=False)
        def GetCycle(self, engine, passw=""):
            return None

    body = APIDispatcher(BrokenAPI(lambda: None, lambda: None)).handle(xmlrpc.client.dumps(("",), "GetCycle").encode())
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(body)
    assert (fault.value.faultCode, fault.value.faultString) == (FAULT_INTERNAL, "internal error")

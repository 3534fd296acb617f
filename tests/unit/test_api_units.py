"""Units of the API layer that need no server: amount parsing, the password gate, the dispatcher."""

from __future__ import annotations

import xmlrpc.client

import pytest

from halo_exchange.errors import CommandRefused
from halo_exchange.rpc.api import CALLS, ExchangeAPI, PasswordGate, _parse_commission, parse_amount
from halo_exchange.rpc.dispatch import (
    AUDITED_CALLS,
    FAULT_INTERNAL,
    INCORRECT_PASSWORD,
    NOT_LOADED,
    STOPPED,
    APIDispatcher,
    api_call,
    audit_line,
    declared_calls,
)


@pytest.mark.parametrize("value, expected", [(5, 5), (3_000_000_000, 3_000_000_000), (7.0, 7), ("42", 42),
                                             (" -5 ", -5), ("+9", 9)])
def test_amounts_exchanges_send(value, expected) -> None:
    """Ints, <i8>, integral floats and digit strings are exact amounts."""
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value", [1.5, "1.5", "1e9", True, None, [], "", "12a", "9" * 5000 + "x"])
def test_anything_else_is_refused(value) -> None:
    """Fractions, exponents, booleans and junk are refused with the documented string."""
    with pytest.raises(CommandRefused, match="whole number of satoshis"):
        parse_amount(value)


@pytest.mark.parametrize("value", [2.0**60, "9" * 20, "1" * 23, "-" + "1" * 23, "9" * 5000, 2**63, -(2**63),
                                   "9223372036854775808"])
def test_whole_numbers_too_big_are_out_of_range(value) -> None:
    """A whole number beyond an int64 (or beyond what a float holds exactly) is out of range, not "not whole"
    (issue 13 item 14)."""
    with pytest.raises(CommandRefused, match="Amount is out of range"):
        parse_amount(value)
    assert parse_amount(str(2**63 - 1)) == 2**63 - 1


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


class _DeclaredCalls:
    """A small API whose calls declare each option of @api_call; no engine is ever loaded."""

    def __init__(self, password: str = "", started: bool = False) -> None:
        self.password, self.started = password, started

    def engine(self):
        return None

    def password_matches(self, password) -> bool:
        return password == self.password

    @api_call(loaded=False)
    def Echo(self, engine, value, passw=""):
        """Echo(value, passw) -> value."""
        return value

    @api_call(pair=True, loaded=False)
    def Pair(self, engine, value, passw=""):
        raise CommandRefused(f"refused {value}")

    @api_call(started=True)
    def NeedsStart(self, engine, passw=""):
        return True

    @api_call(pair=True, bare_not_loaded=True)
    def BareWhenNotLoaded(self, engine, passw=""):
        return True

    @api_call(started=True, names=("name",))
    def Named(self, engine, name, passw=""):
        return True


def _answer(api, method: str, *params):
    return xmlrpc.client.loads(APIDispatcher(api).handle(xmlrpc.client.dumps(params, method).encode()))[0][0]


def test_declared_checks_run_in_the_originals_order_and_refusals_take_the_calls_shape() -> None:
    """The password first (as a pair for pair calls), then names, then started, then loaded; a refusal raised
    by a body is shaped like the call's answers; 'not loaded' can be declared bare."""
    api = _DeclaredCalls(password="pw")
    assert _answer(api, "Echo", 5, "pw") == 5
    assert _answer(api, "Echo", 5, "nope") == INCORRECT_PASSWORD
    assert _answer(api, "Pair", 5, "nope") == [INCORRECT_PASSWORD, ""]
    assert _answer(api, "Pair", 5, "pw") == ["refused 5", ""]
    assert _answer(api, "NeedsStart", "pw") == STOPPED  # started is checked before loaded
    assert _answer(api, "Named", "ab", "pw") == "Name is too short in length."  # names before state
    assert _answer(api, "Named", "abcd", "pw") == STOPPED
    api.started = True
    assert _answer(api, "NeedsStart", "pw") == NOT_LOADED
    assert _answer(api, "BareWhenNotLoaded", "pw") == NOT_LOADED


def test_the_method_list_is_the_declared_calls() -> None:
    """system.listMethods lists exactly the declared calls; methodHelp gives each one's docstring."""
    api = _DeclaredCalls()
    assert declared_calls(_DeclaredCalls) == ["Echo", "Pair", "NeedsStart", "BareWhenNotLoaded", "Named"]
    assert _answer(api, "system.listMethods") == sorted(
        ["Echo", "Pair", "NeedsStart", "BareWhenNotLoaded", "Named", "system.listMethods", "system.methodHelp"])
    assert _answer(api, "system.methodHelp", "Echo") == "Echo(value, passw) -> value."
    assert declared_calls(ExchangeAPI) == CALLS and len(CALLS) == 16  # the original's 15, and GetSettings


def test_every_served_name_has_help() -> None:
    """system.methodHelp answers a text for every listed name, the system calls and API(command) included,
    and '' for a name that is not a call."""
    api = ExchangeAPI(lambda: None, lambda: None)
    for name in _answer(api, "system.listMethods"):
        assert _answer(api, "system.methodHelp", name).startswith(name + "("), name
    assert "signature" in _answer(api, "system.methodHelp", "API")
    assert _answer(api, "system.methodHelp", "NoSuchCall") == ""


class _Positional:
    """Calls with a style or flag parameter just before the password, as Trade and CheckWithdraw have."""

    started = True

    def engine(self):
        return self  # stands in for a loaded engine

    def pending_writes(self):
        return None

    def password_matches(self, password) -> bool:
        return password == "pw"

    @api_call(choices=(("style", lambda v: v in ("liquid", "reserve"), "bad style"),))
    def Styled(self, engine, user, style="liquid", passw=""):
        return style

    @api_call(pair=True, choices=(("clear", lambda v: v in (0, 1), "bad clear"),))
    def Flagged(self, engine, record_id, clear=0, passw=""):
        return clear


def test_a_password_left_out_and_landing_in_a_choice_is_answered_with_that_choice() -> None:
    """With the password left out, a style or flag holding none of its values is answered with its own
    refusal (it most likely is the password, one place early); given a password, a wrong one is still
    "Incorrect Password" whatever the style holds."""
    api = _Positional()
    assert _answer(api, "Styled", "karen", "pw") == "bad style"
    assert _answer(api, "Flagged", "id", "pw") == ["bad clear", ""]
    assert _answer(api, "Styled", "karen", "liquid") == INCORRECT_PASSWORD
    assert _answer(api, "Styled", "karen", "pw", "wrong") == INCORRECT_PASSWORD
    assert _answer(api, "Styled", "karen", "reserve", "pw") == "reserve"


@pytest.mark.parametrize("percent", [float("nan"), float("inf"), float("-inf"), -0.01])
def test_a_commission_percent_that_is_not_a_finite_fraction_is_refused_with_false(percent) -> None:
    """NaN and ±inf (``<double>nan</double>`` reaches the call as a float) are refused like a negative percent,
    never an internal error."""
    with pytest.raises(CommandRefused) as refused:
        _parse_commission({"min": 20000, "max": 10**9, "percent": percent})
    assert refused.value.answer is False


class _GatedAPI:
    """One call behind the real password gate (scrypt, and the cache of the verified password)."""

    started = False

    def __init__(self, password: str) -> None:
        self.gate = PasswordGate(PasswordGate.record_for(password))

    def engine(self):
        return None

    def password_matches(self, password, verify=True) -> bool:
        return self.gate.matches(password, verify)

    @api_call(loaded=False)
    def Echo(self, engine, value, passw=""):
        return value


def test_a_peer_sending_wrong_passwords_backs_off_without_running_scrypt(monkeypatch) -> None:
    from halo_exchange.rpc import dispatch
    from halo_exchange.rpc.http import REQUEST_PEER

    api = _GatedAPI("pw")
    now = [0.0]
    dispatcher = APIDispatcher(api, clock=lambda: now[0])
    hashes = []
    real_hash = PasswordGate._hash
    monkeypatch.setattr(PasswordGate, "_hash", staticmethod(lambda p, s: hashes.append(p) or real_hash(p, s)))

    def call(password: str, peer: str | None = "10.0.0.1"):
        token = REQUEST_PEER.set(peer)
        try:
            return xmlrpc.client.loads(dispatcher.handle(xmlrpc.client.dumps((1, password), "Echo").encode()))[0][0]
        finally:
            REQUEST_PEER.reset(token)

    assert call("pw") == 1 and len(hashes) == 1  # verified once, then cached
    answers = [call(f"guess{i}") for i in range(200)]
    assert answers == [INCORRECT_PASSWORD] * 200
    assert len(hashes) == 1 + dispatch.BACKOFF_FREE_FAILURES + 1  # the storm ran scrypt 6 times, not 200
    assert call("pw") == 1  # the cached correct password passes at once, even from the peer backing off
    assert call("guess", peer="10.0.0.2") == INCORRECT_PASSWORD and len(hashes) == 8  # other peers: verified
    now[0] += dispatch.BACKOFF_FIRST  # the back-off is over: one more verification, then a longer one
    assert call("guess") == INCORRECT_PASSWORD and len(hashes) == 9
    now[0] += dispatch.BACKOFF_FIRST
    assert call("guess") == INCORRECT_PASSWORD and len(hashes) == 9  # backing off for 2 x BACKOFF_FIRST now
    api.gate = PasswordGate(api.gate.record)  # a restart: the correct password is not cached any more
    assert call("pw") == INCORRECT_PASSWORD and len(hashes) == 9  # the price: wait for the back-off to end
    now[0] += dispatch.BACKOFF_FIRST * 2
    assert call("pw") == 1 and len(hashes) == 10
    now[0] += dispatch.BACKOFF_FORGET + 1  # failures are forgotten a minute after the last one
    assert [call(f"again{i}") for i in range(6)] == [INCORRECT_PASSWORD] * 6 and len(hashes) == 16
    assert [call("x", peer=None) for _ in range(10)] == [INCORRECT_PASSWORD] * 10  # in-process: no peer


def test_the_audited_calls_are_those_audit_line_describes() -> None:
    """The dispatcher skips audit_line() for calls outside AUDITED_CALLS (it ran for every Trade): the set must
    name every declared call that audit_line() writes a line for, and only those."""
    described = {name for name in declared_calls(ExchangeAPI) if audit_line(name, (), "refused") is not None}
    assert described == AUDITED_CALLS

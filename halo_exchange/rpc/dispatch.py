"""Declared API calls and the XML-RPC dispatcher that runs them.

A call of :class:`~halo_exchange.rpc.api.ExchangeAPI` declares what it needs with :func:`api_call`; the
dispatcher does the rest, the same way for every call and in the original's order (reference/halo-behaviour.md
§2): the password, the user names it checks before the exchange's state (``names``), whether the exchange is
started (``started``) and loaded (``loaded``). A call body then receives the running engine and its
positional arguments, and either answers, answers a Deferred (a change, fired once durable), or raises
:class:`~halo_exchange.errors.CommandRefused`. Every refusal, whoever raised it, is put in the call's
documented shape here: the bare answer, or ``[answer, ""]`` for the calls that answer pairs (``pair``).

The dispatcher also keeps the **audit trail** of administrative calls in the log (logger
``halo_exchange.admin``): StartExchange on/off, SetPassword, ExchangePassword, ExchangeSettings (the fields
given), ShutDown, Withdraw requests and signed exec commands (API, by hash), each with its outcome; failed
password attempts, at most one line a minute with a count. Passwords and passphrases are never logged.

Transport faults: a body that is not a call -32700, an unknown method -32601, a wrong argument count -32602,
anything unexpected -32603 "internal error" (logged with its traceback, never sent).
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import logging
import time
import xmlrpc.client
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from halo_exchange.commands import SENT_PREVIOUSLY, SIGNATURE_FAILED, check_user_name
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import CommandRefused, public_error
from halo_exchange.execsig import txhash
from halo_exchange.ledger.store import StoreError
from halo_exchange.rpc.codec import NotACall, dump_response, parse_call
from halo_exchange.rpc.http import REQUEST_PEER

log = logging.getLogger(__name__)
audit_log = logging.getLogger("halo_exchange.admin")

FAULT_METHOD_NOT_FOUND = -32601
FAULT_INVALID_PARAMS = -32602
FAULT_INTERNAL = -32603
FAULT_PARSE_ERROR = -32700
FAULT_EXCHANGE_FAILED = -32000  # exchange mode stopped (a failed write to its DB): nothing is served until restart

INCORRECT_PASSWORD = "Incorrect Password"
STOPPED = "Exchange is stopped."
NOT_LOADED = "Exchange is not loaded yet."
PASSWORD_PARAMETER = "passw"
PASSWORD_FAILURE_WINDOW = 60.0  # seconds: at most one "failed password" line per window
BACKOFF_FREE_FAILURES = 5  # wrong passwords a peer may send before it backs off
BACKOFF_FIRST = 0.25  # seconds of the first back-off, doubled with each failure after it ...
BACKOFF_LONGEST = 10.0  # ... up to this
BACKOFF_FORGET = 60.0  # seconds without a failure after which a peer's failures are forgotten
BACKOFF_MAX_PEERS = 4096  # peers remembered; beyond, those whose back-off is over are forgotten


class PasswordBackoff:
    """Per-peer back-off after wrong passwords, so that a wrong-password storm costs the API thread little.

    Verifying a password that is not the cached correct one runs scrypt (~10 ms of the only API thread). After
    :data:`BACKOFF_FREE_FAILURES` failures, a peer (its IP) backs off: for ``BACKOFF_FIRST`` seconds, doubling
    with each further failure up to ``BACKOFF_LONGEST``, its passwords are only compared with the cached
    correct one (cheap); anything else is answered "Incorrect Password" at once, without scrypt, and does not
    extend the back-off. A peer's failures are forgotten :data:`BACKOFF_FORGET` seconds after its last one; a
    correct password does not reset them (an attacker behind the same address as an honest client would gain
    from that)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._peers: dict[str, tuple[int, float, float]] = {}  # peer -> (failures, backing off until, last)

    def backing_off(self, peer: str | None) -> bool:
        entry = self._peers.get(peer) if peer is not None else None
        return entry is not None and self._clock() < entry[1]

    def failed(self, peer: str | None) -> None:
        if peer is None:
            return
        now = self._clock()
        failures, _, last = self._peers.get(peer, (0, 0.0, now))
        failures = 1 if now - last > BACKOFF_FORGET else failures + 1
        until = 0.0
        if failures > BACKOFF_FREE_FAILURES:
            until = now + min(BACKOFF_FIRST * 2 ** min(failures - BACKOFF_FREE_FAILURES - 1, 16), BACKOFF_LONGEST)
        self._peers[peer] = (failures, until, now)
        if len(self._peers) > BACKOFF_MAX_PEERS:
            self._peers = {p: e for p, e in self._peers.items() if now - e[2] <= BACKOFF_FORGET}
            if len(self._peers) > BACKOFF_MAX_PEERS:  # that many peers failing at once: start afresh
                self._peers = {peer: (failures, until, now)}


class PasswordFailures:
    """Failed password attempts, logged rate-limited: the first of a window at once, the rest counted and
    reported with the next attempt after the window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = PASSWORD_FAILURE_WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._logged_at: float | None = None
        self._unlogged = 0

    def failed(self, call: str) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._window:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last such line)" if self._unlogged else ""
        audit_log.warning("admin: failed password attempt (%s)%s", call, more)
        self._logged_at, self._unlogged = now, 0


def _given(params: tuple, index: int, default: Any) -> Any:
    return params[index] if index < len(params) else default


def audit_line(name: str, params: tuple, answer: Any) -> str | None:
    """The audit trail's line for an administrative call and its answer (None: not administrative, or a
    query). Never a password."""
    done = answer is True or (isinstance(answer, list) and answer[:1] == [True])
    outcome = "done" if done else f"refused: {answer!r}"
    if name == "StartExchange":
        if _given(params, 2, 0) in (1, True, "1"):
            return None  # the isrunning query
        start = _given(params, 1, 1)
        if answer is True:
            outcome = "exchange started" if start in (1, True, "1") else "exchange stopped"
        return f"StartExchange start={start!r}: {outcome}"
    if name == "SetPassword":
        return f"SetPassword: password {'removed' if _given(params, 0, '') == '' else 'changed'}: {outcome}"
    if name == "ExchangePassword":
        return f"ExchangePassword (wallet unlock): {outcome}"
    if name == "ShutDown":
        return f"ShutDown: {outcome}"
    if name == "ExchangeSettings":
        fields = ("exchangeaccounts", "exchangefeeaccount", "commission", "exchangeconfirmations")
        changed = {field: value for field, value in zip(fields, params) if value != ""}
        if isinstance(changed.get("exchangeaccounts"), list):
            changed["exchangeaccounts"] = f"{len(changed['exchangeaccounts'])} accounts"
        described = ", ".join(f"{field}={value!r}" for field, value in changed.items()) or "no fields"
        return f"ExchangeSettings {described}: {outcome}"
    if name == "API":
        command = _given(params, 0, None)
        source = command.get("exec") if isinstance(command, dict) else None
        named = f"command {txhash(source)}" if isinstance(source, str) else "a malformed command"
        if answer is False:
            return f"API {named}: refused, the exec hook is off (no exec_pubkey)"
        if isinstance(answer, str) and (answer in (SENT_PREVIOUSLY, SIGNATURE_FAILED)
                                        or answer.startswith(SIGNATURE_FAILED)):
            return f"API {named}: refused: {answer!r}"
        return f"API {named}: ran (the exec log has its outcome)"
    if name == "Withdraw":
        user, amount, address = (_given(params, i, "") for i in range(3))
        style, client_id = _given(params, 3, "liquid"), _given(params, 5, "")
        answer_text = f"accepted, request {answer[1]}" if done else outcome
        return (f"Withdraw request user={user!r} amount={amount!r} address={address!r} style={style!r} "
                f"ID={client_id!r}: {answer_text}")
    return None


@dataclass(frozen=True)
class CallSpec:
    """What the dispatcher checks before a call's body runs, and how its refusals are shaped."""

    pair: bool = False  # answers [value, ""]: the password and every refusal take that shape too
    password: bool = True  # asks for the API password (API(command) does not: its signature authenticates it)
    loaded: bool = True  # needs the engine: "Exchange is not loaded yet." otherwise
    started: bool = False  # needs StartExchange: "Exchange is stopped." otherwise (checked before loaded)
    names: tuple[str, ...] = ()  # user-name parameters checked before the exchange's state
    bare_not_loaded: bool = False  # "not loaded" answered as a bare string even by a pair call (Withdraw)
    # (parameter, is_valid, refusal) of the parameters just before ``passw`` that take a few values only
    # (style, clear): when the password is left out and one of these holds something else, the caller most
    # likely put the password there (Trade(u1, amount, u2, "pw")), and that is the answer, not the password's.
    choices: tuple[tuple[str, Callable[[Any], bool], str], ...] = ()


def api_call(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a method an API call: ``@api_call(pair=True, started=True)``; see :class:`CallSpec`."""
    spec = CallSpec(**options)

    def declare(method: Callable[..., Any]) -> Callable[..., Any]:
        method.api_call = spec  # type: ignore[attr-defined]  (read back by declared_calls)
        return method

    return declare


def declared_calls(cls: type) -> list[str]:
    """The names of ``cls``'s declared calls, in the order the class defines them."""
    return [name for name, member in vars(cls).items() if isinstance(getattr(member, "api_call", None), CallSpec)]


class APIState(Protocol):
    """What the dispatcher needs of the API object besides its declared calls."""

    started: bool

    def engine(self) -> ExchangeEngine | None: ...

    def password_matches(self, password: Any, verify: bool = True) -> bool: ...

    # Optionally ``failed() -> str | None``: why exchange mode stopped (its service is FAILED); every call but
    # ShutDown then answers it.


@dataclass(frozen=True)
class _Call:
    name: str
    body: Callable[..., Any]  # bound: body(engine, *params)
    spec: CallSpec
    arity: range
    password_at: int | None  # index of passw among the positional parameters
    password_default: Any
    name_positions: tuple[int, ...]
    choice_positions: tuple[tuple[int, Callable[[Any], bool], str], ...]

    def shape(self, answer: Any) -> Any:
        return [answer, ""] if self.spec.pair else answer


def _declare(name: str, body: Callable[..., Any], spec: CallSpec) -> _Call:
    parameters = list(inspect.signature(body).parameters.values())[1:]  # after the engine
    names = [p.name for p in parameters]
    required = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
    password_at = names.index(PASSWORD_PARAMETER) if PASSWORD_PARAMETER in names else None
    return _Call(
        name=name,
        body=body,
        spec=spec,
        arity=range(required, len(parameters) + 1),
        password_at=password_at,
        password_default=parameters[password_at].default if password_at is not None else None,
        name_positions=tuple(names.index(n) for n in spec.names),
        choice_positions=tuple((names.index(n), valid, refusal) for n, valid, refusal in spec.choices),
    )


class APIDispatcher:
    """XML-RPC over the transport of :mod:`halo_exchange.rpc.http`: parse, find the call, check the argument
    count, run the declared checks, call, answer (a Deferred answer is awaited). Every answer is a complete
    methodResponse body."""

    def __init__(self, api: APIState, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._password_failures = PasswordFailures(clock)
        self._backoff = PasswordBackoff(clock)
        self._calls = {name: _declare(name, getattr(api, name), getattr(api, name).api_call)
                       for name in declared_calls(type(api))}
        self._system: dict[str, Callable[..., Any]] = {
            "system.listMethods": self._list_methods,
            "system.methodHelp": self._help,
        }
        # Requests per method served (the operator's status); only known names, so garbage cannot grow it.
        self.call_counts: collections.Counter[str] = collections.Counter()

    def _list_methods(self) -> list[str]:
        """system.listMethods() -> the names of the calls served, sorted."""
        return sorted([*self._calls, *self._system])

    def _help(self, name: Any) -> str:
        """system.methodHelp(name) -> the text of a call: its positional arguments, answer and checks. '' for
        a name that is not a call."""
        call = self._calls.get(name) if isinstance(name, str) else None
        if call is not None:
            return inspect.getdoc(call.body) or ""
        system = self._system.get(name) if isinstance(name, str) else None
        if system is not None:
            return inspect.getdoc(system) or ""
        return ""

    def handle(self, body: bytes) -> bytes | Deferred:
        return self._handle(body, first=True)

    def _handle(self, body: bytes, first: bool) -> bytes | Deferred:
        """``first``: False when the call comes back after waiting for a cycle update (counted already)."""
        try:
            params, method = parse_call(body)
        except NotACall as refused:
            return dump_response(xmlrpc.client.Fault(FAULT_PARSE_ERROR, f"request is not a valid XML-RPC call: "
                                                                        f"{refused}"))
        except Exception:
            return dump_response(xmlrpc.client.Fault(FAULT_PARSE_ERROR, "request is not a valid XML-RPC call"))
        call = self._calls.get(method) if isinstance(method, str) else None
        if first and (call is not None or (isinstance(method, str) and method in self._system)):
            self.call_counts[method] += 1
        if call is None:
            return self._system_call(method, params)
        if len(params) not in call.arity:
            return dump_response(xmlrpc.client.Fault(FAULT_INVALID_PARAMS, f"wrong arguments for {method}"))
        idle = getattr(self._api.engine(), "idle", None)  # an engine: a cycle update in steps may be under way
        failed = getattr(self._api, "failed", None)
        waiting = None
        if idle is not None and call.name != "ShutDown" and not (failed is not None and failed()):
            waiting = idle()
        if waiting is not None:  # a cycle update in steps: answered once it is over, never from a half-updated book
            # Run again in this request's context: its peer (the password and signature back-off) goes with it.
            context = contextvars.copy_context()
            return waiting.addCallbacks(lambda _: context.run(self._handle, body, False),
                                        lambda failure: dump_response(self._failure(call, failure, params)))
        audited: tuple | None = params  # what the audit trail sees (not a wrong password's call)
        try:
            answer = self._run(call, params)
        except _WrongPassword as wrong:
            answer, audited = wrong.answer, None
        except CommandRefused as refused:
            answer = call.shape(refused.answer)
        except Exception:
            return self._after_pending_writes(call, self._failure(call, Failure(), params), dump_response)
        if isinstance(answer, Deferred):  # a change: it fires once its batch, and all before it, are on disk
            return answer.addCallbacks(lambda value: self._respond(call, value, params),
                                       lambda failure: dump_response(self._failure(call, failure, params)))
        return self._after_pending_writes(call, answer, lambda value: self._respond(call, value, audited))

    def _run(self, call: _Call, params: tuple) -> Any:
        """The declared checks in the original's order, then the body."""
        api, spec = self._api, call.spec
        if spec.password:
            self._check_password(call, params)
        failed = getattr(api, "failed", None)  # optional: an API without a service never fails this way
        reason = failed() if failed is not None else None
        if reason is not None and call.name != "ShutDown":
            raise exchange_failed(reason)
        for position in call.name_positions:
            check_user_name(params[position])
        engine = api.engine()
        if spec.started and not api.started:
            raise CommandRefused(STOPPED)
        if spec.loaded and engine is None:
            if spec.bare_not_loaded:
                return NOT_LOADED
            raise CommandRefused(NOT_LOADED)
        return call.body(engine, *params)

    def _check_password(self, call: _Call, params: tuple) -> None:
        """The password gate, with its per-peer back-off: raises _WrongPassword with the call's answer."""
        api = self._api
        password = call.password_default
        if call.password_at is not None and call.password_at < len(params):
            password = params[call.password_at]
        peer = REQUEST_PEER.get()
        if self._backoff.backing_off(peer):  # no scrypt: only the cached correct password passes
            matched = api.password_matches(password, verify=False)
        else:
            matched = api.password_matches(password)
            if not matched:
                self._backoff.failed(peer)
        if not matched:
            misplaced = self._misplaced_password(call, params)
            if misplaced is None:  # a password one place early is a client's slip, not a guess
                self._password_failures.failed(call.name)
            raise _WrongPassword(call.shape(misplaced or INCORRECT_PASSWORD))

    @staticmethod
    def _misplaced_password(call: _Call, params: tuple) -> str | None:
        """The refusal of a style or flag argument that holds none of its values, in a call that left the
        password out: the positional contract (docs/api.md) puts ``passw`` after them, so a password given one
        place early lands there. Only then is the answer unambiguous; it tells nothing about the exchange."""
        if call.password_at is None or call.password_at < len(params):
            return None
        for position, valid, refusal in call.choice_positions:
            if position < len(params) and not valid(params[position]):
                return refusal
        return None

    def _system_call(self, method: Any, params: tuple) -> bytes | Deferred:
        system = self._system.get(method) if isinstance(method, str) else None
        if system is None:
            return dump_response(xmlrpc.client.Fault(FAULT_METHOD_NOT_FOUND, f"method {method!r} not found"))
        if len(params) != len(inspect.signature(system).parameters):
            return dump_response(xmlrpc.client.Fault(FAULT_INVALID_PARAMS, f"wrong arguments for {method}"))
        return self._after_pending_writes(method, system(*params), lambda value: self._respond(method, value))

    def _after_pending_writes(self, call: _Call | str, answer: Any, encode: Callable[[Any], bytes]) -> bytes | Deferred:
        """An answer computed from memory (a read, or a refusal, which reveals balances too), sent only once
        the writes of this turn it may reflect are durable (a failed batch answers its fault)."""
        engine = self._api.engine()
        waiting = None if engine is None else engine.pending_writes()
        if waiting is None:
            return encode(answer)
        return waiting.addCallbacks(lambda _: encode(answer),
                                    lambda failure: dump_response(self._failure(call, failure)))

    def _respond(self, call: _Call | str, value: Any, params: tuple | None = None) -> bytes:
        if params is not None and isinstance(call, _Call):
            _audit(call.name, params, value)
        try:
            return dump_response((value,))
        except Exception:  # an answer XML-RPC cannot carry (None, say) is a bug here, not the client's
            return dump_response(self._failure(call, Failure()))

    def _failure(self, call: _Call | str, failure: Failure, params: tuple | None = None) -> tuple | xmlrpc.client.Fault:
        """The answer for a failed call (``call`` is a declared call, or a system method's name)."""
        if failure.check(CommandRefused) and isinstance(call, _Call):
            if params is not None:
                _audit(call.name, params, call.shape(failure.value.answer))
            return (call.shape(failure.value.answer),)
        if failure.check(xmlrpc.client.Fault):
            return failure.value
        if failure.check(StoreError):  # its batch (or an earlier one) could not be written: the service is FAILED
            log.error("API call %s not made: %s", call if isinstance(call, str) else call.name,
                      failure.getErrorMessage())
            failed = getattr(self._api, "failed", None)
            reason = failed() if failed is not None else None  # the service's words, the same for every call
            return exchange_failed(reason or f"a write to the exchange DB failed ({public_error(failure.value)})")
        log.error("API call %s failed: %s", call if isinstance(call, str) else call.name, failure.getTraceback())
        return xmlrpc.client.Fault(FAULT_INTERNAL, "internal error")


def exchange_failed(reason: str) -> xmlrpc.client.Fault:
    """The fault of every call once exchange mode has stopped: the cause, and what the operator must do."""
    return xmlrpc.client.Fault(
        FAULT_EXCHANGE_FAILED,
        f"exchange mode stopped: {reason}; this call was not made. Free disk space or fix the disk, then restart "
        "the node: every call answered before is kept")


class _WrongPassword(Exception):
    """The password gate refused: answered as is, never in the audit trail (PasswordFailures logs it)."""

    def __init__(self, answer: Any) -> None:
        super().__init__("Incorrect Password")
        self.answer = answer


# The calls audit_line() describes; the others skip it (it ran for every call, Trade included).
AUDITED_CALLS = frozenset({"StartExchange", "SetPassword", "ExchangePassword", "ShutDown", "ExchangeSettings", "API",
                           "Withdraw"})


def _audit(name: str, params: tuple, answer: Any) -> None:
    if name not in AUDITED_CALLS:
        return
    try:
        line = audit_line(name, params, answer)
    except Exception:  # the trail must never cost a call its answer
        log.exception("audit line of %s", name)
        return
    if line is not None:
        audit_log.info("admin: %s", line)

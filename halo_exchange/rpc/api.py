"""The Halo Peg Exchange XML-RPC API (reference/PegAPI.txt), served by Twisted on the plugin's reactor thread.

This module translates and validates; the engine holds every piece of state. Call names, positional
arguments, return shapes and strings follow reference/halo-behaviour.md §2 with the fixes of its §5: the
password is a salted hash in the exchange DB (set after a restart), compared in constant time; amounts are
exact integers in and ``<i8>`` out; refusals are the documented strings and change nothing; answers that
change state come only once durable; there are no hidden parameters; tracebacks never leave the process
(``Fault(-32603, "internal error")``); bodies over 64 KiB get HTTP 413.

Served here: 14 of the 15 calls. Withdraw validates, escrows and records (paying is the withdrawals issue);
API, the signed exec hook, arrives with its own issue.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
import os
import xmlrpc.client
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from halo_exchange.chain.keys import is_valid_address
from halo_exchange.commands import BAD_AMOUNT, check_user_name
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import CommandRefused
from halo_exchange.ledger.deposits import check_confirmations
from halo_exchange.rpc import views
from halo_exchange.rpc.codec import dump_response, parse_call
from halo_exchange.rpc.http import HTTPLimits, XMLRPCFactory

log = logging.getLogger(__name__)

FAULT_METHOD_NOT_FOUND = -32601
FAULT_INVALID_PARAMS = -32602
FAULT_INTERNAL = -32603
FAULT_PARSE_ERROR = -32700

INCORRECT_PASSWORD = "Incorrect Password"
STOPPED = "Exchange is stopped."
NOT_LOADED = "Exchange is not loaded yet."
DEFAULT_COMMISSION_MIN = 100_000_000  # the original's default minimum fee (halo-behaviour §2.11)


def parse_amount(value: Any) -> int:
    """An amount as exchanges send it: int, ``<i8>``, an integral float, or a string of digits (sign allowed)."""
    if isinstance(value, bool):
        raise CommandRefused(BAD_AMOUNT)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            return int(text)
    raise CommandRefused(BAD_AMOUNT)


class PasswordGate:
    """The API password: blank means none; kept as a salted scrypt hash; compared in constant time.

    scrypt costs milliseconds by design, too much for every call of a busy exchange: once a password has
    matched the stored hash, its SHA-256 is kept in memory and later calls compare against that (still in
    constant time). Only a password not seen to match pays the scrypt again.
    """

    def __init__(self, record: dict | None) -> None:
        self.record = record
        self._verified: bytes | None = None

    def matches(self, password: Any) -> bool:
        if not self.record:
            return True
        if not isinstance(password, str):
            return False
        quick = hashlib.sha256(password.encode("utf-8")).digest()
        if self._verified is not None and hmac.compare_digest(quick, self._verified):
            return True
        digest = self._hash(password, bytes.fromhex(self.record["salt"]))
        if hmac.compare_digest(digest, bytes.fromhex(self.record["hash"])):
            self._verified = quick
            return True
        return False

    @classmethod
    def record_for(cls, password: str) -> dict | None:
        if password == "":
            return None
        salt = os.urandom(16)
        return {"salt": salt.hex(), "hash": cls._hash(password, salt).hex()}

    @staticmethod
    def _hash(password: str, salt: bytes) -> bytes:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**12, r=8, p=1, dklen=32)


class ExchangeAPI:
    """The calls, on the reactor thread. ``engine`` returns the running engine or None while not loaded."""

    def __init__(self, engine: Callable[[], ExchangeEngine | None], shutdown: Callable[[], None]) -> None:
        self._engine = engine
        self._shutdown = shutdown
        # The API is built once the engine has loaded. The password known then, and after every change, is
        # kept here too, so that an exchange that failed or is closing still asks for it.
        loaded = engine()
        self._password_gate = PasswordGate(loaded.setting("password") if loaded else None)
        self.started = False

    # -- shared gates -----------------------------------------------------------------------------------

    def _gate(self, passw: Any, pair: bool = False) -> Any:
        """None when the call may go on, else what it must answer (the password string, maybe as a pair)."""
        engine = self._engine()
        if engine is not None:
            record = engine.setting("password")
            if self._password_gate.record != record:
                self._password_gate = PasswordGate(record)  # the password changed: forget what was verified
        if not self._password_gate.matches(passw):
            return [INCORRECT_PASSWORD, ""] if pair else INCORRECT_PASSWORD
        return None

    def pending_writes(self) -> Deferred | None:
        """A Deferred that fires once the writes waiting for this turn's batch are on disk, or None if none wait.

        Every answer is computed from memory, which may hold a change of this turn not yet on disk; the
        dispatcher sends it only after that batch, so no client sees a balance a crash could take back."""
        engine = self._engine()
        return None if engine is None else engine.pending_writes()

    def _ready(self, pair: bool = False, need_started: bool = True) -> tuple[ExchangeEngine | None, Any]:
        engine = self._engine()
        if need_started and not self.started:
            return None, ([STOPPED, ""] if pair else STOPPED)
        if engine is None:
            return None, ([NOT_LOADED, ""] if pair else NOT_LOADED)
        return engine, None

    # -- the calls --------------------------------------------------------------------------------------

    def SetPassword(self, newpassw: Any = "", passw: Any = "") -> Any:
        """SetPassword(newpassw, passw) -> True. Blank means no password. Kept (hashed) across restarts."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        if not isinstance(newpassw, str):
            raise CommandRefused("The password must be text.")
        return engine.update_settings({"password": PasswordGate.record_for(newpassw)})

    def StartExchange(self, passw: Any = "", start: Any = 1, isrunning: Any = 0) -> Any:
        """StartExchange(passw, start=1, isrunning=0): isrunning=1 asks whether the exchange is started and
        loaded; start=1 starts it, start=0 stops it (state-changing calls then answer "Exchange is stopped.")."""
        if (denied := self._gate(passw)) is not None:
            return denied
        if isrunning in (1, True, "1"):
            return bool(self.started and self._engine() is not None)
        self.started = start in (1, True, "1")
        return True

    def ShutDown(self, passw: Any = "") -> Any:
        """ShutDown(passw) -> True; then the node stops cleanly (databases flushed and closed)."""
        if (denied := self._gate(passw)) is not None:
            return denied
        from twisted.internet import reactor

        reactor.callLater(0.1, self._shutdown)
        return True

    def ExchangePassword(self, xpassw: Any = "", passw: Any = "") -> Any:
        """ExchangePassword(xpassw, passw) -> True; unlocks the encrypted exchange wallet in memory."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        if not isinstance(xpassw, str):
            raise CommandRefused("The wallet passphrase must be text.")
        engine.unlock_wallet(xpassw)
        return True

    def GenerateDepositAddress(self, passw: Any = "") -> Any:
        """GenerateDepositAddress(passw) -> [WIF, True]: a new deposit key, durable and watched."""
        if (denied := self._gate(passw, pair=True)) is not None:
            return denied
        engine, refusal = self._ready(pair=True)
        if engine is None:
            return refusal
        try:
            done = engine.generate_deposit_address()
        except CommandRefused as exc:  # a locked wallet: answered as a pair, like every refusal of this call
            return [str(exc), ""]
        return done.addCallback(lambda answer: [answer[0], True])

    def GetSpendable(self, address: Any = "", passw: Any = "") -> Any:
        """GetSpendable(address='', passw) -> {"txid:vout": {amount, ltotal, rtotal, nfreeze, supply, address,
        confirmations}} for the exchange's unspent outputs (all addresses when address is ''): deposits, and
        the change of the exchange's own transactions, which also carries change: 1."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        with engine.reader.snapshot() as view:
            return views.spendable(view, engine.deposits, address if isinstance(address, str) else "")

    def Deposit(self, name: Any, txids: Any, passw: Any = "") -> Any:
        """Deposit(name, txids, passw) -> True: names the owner of deposits ("txid:vout", or a bare txid for
        all of its exchange outputs); credited as soon as confirmed. Idempotent for the same name."""
        if (denied := self._gate(passw)) is not None:
            return denied
        check_user_name(name)  # the original's order: names before the exchange's state
        engine, refusal = self._ready()
        if engine is None:
            return refusal
        ids = [txids] if isinstance(txids, str) else txids
        if not isinstance(ids, (list, tuple)) or not ids:
            raise CommandRefused("txids must be a list of 'txid:vout' or 'txid' strings.")
        outpoints = []
        for item in ids:
            outpoint = _parse_id(item)
            if outpoint is not None and _is_spendable_change(engine, outpoint):
                raise CommandRefused("You can not deposit change transactions.")
            if isinstance(outpoint, bytes):  # a bare txid: every deposit among its outputs
                found = engine.deposits.outpoints_of(outpoint)
            else:
                found = [outpoint] if outpoint is not None and engine.deposits.knows(outpoint) else []
            if not found:
                raise CommandRefused(f"{item} not in Spendable list yet.")
            outpoints.extend(found)
        return engine.name_deposit(name, outpoints)

    def GetDeposits(self, txid: Any = "", passw: Any = "") -> Any:
        """GetDeposits(txid='', passw) -> {"txid:vout": {name, registered, status, confirmations, amount}}, or
        that one entry, or False when unknown."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        records = views.deposit_records(engine.deposits)
        if txid in ("", None):
            return records
        return records.get(txid, False) if isinstance(txid, str) else False

    def GetBalance(self, user: Any, passw: Any = "") -> Any:
        """GetBalance(user, passw) -> {liquid, reserve} (for 'exchange' also subpremium and frozen), or False."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        if not isinstance(user, str):
            return False
        if user.lower() == "exchange":
            with engine.reader.snapshot() as view:
                return views.exchange_balance(view, engine.book, engine.deposits)
        return views.balance(engine.book, user)

    def Trade(self, user1: Any, amount: Any, user2: Any, style: Any = "liquid", passw: Any = "") -> Any:
        """Trade(user1, amount, user2, style='liquid', passw) -> True: user1 pays user2; with user2 '' a
        negative amount debits user1 into the pool and a positive one credits user1 from it."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready()
        if engine is None:
            return refusal
        return engine.trade(user1, parse_amount(amount), user2, style)

    def Withdraw(self, user: Any, amount: Any, address: Any, style: Any = "liquid", passw: Any = "") -> Any:
        """Withdraw(user, amount, address, style='liquid', passw) -> [True, ID]: the amount (fee included) goes
        into escrow and the request is recorded; it is paid with the next cycle's batch."""
        if (denied := self._gate(passw, pair=True)) is not None:
            return denied
        engine = self._engine()
        if engine is None:
            return NOT_LOADED  # a bare string, as the original
        if address == "":
            return [False, ""]
        if not isinstance(address, str) or not is_valid_address(address):
            return ["Withdraw address not valid", ""]  # version and length checked too (B28)
        try:
            value = parse_amount(amount)
        except CommandRefused as exc:
            return [str(exc), ""]
        minimum = engine.setting("commission", {}).get("min", DEFAULT_COMMISSION_MIN)
        if value <= minimum + 10000:
            return ["Withdraw amount is too low", ""]
        if not self.started:
            return [STOPPED, ""]
        if style not in ("liquid", "reserve"):
            return ["Style must be 'liquid' or 'reserve'.", ""]
        try:
            done = engine.request_withdrawal(user, value, address, style)
        except CommandRefused as exc:
            return [str(exc), ""]
        return done.addCallback(lambda withdraw_id: [True, withdraw_id])

    def CheckWithdraw(self, ID: Any, clear: Any = 0, passw: Any = "") -> Any:  # noqa: N803 (the API's name)
        """CheckWithdraw(ID, clear=0, passw) -> the request's status record, or "ID not found"."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        withdrawal = engine.withdrawal(ID) if isinstance(ID, str) else None
        return "ID not found" if withdrawal is None else views.withdrawal_status(withdrawal)

    def ExchangeSettings(
        self, exchangeaccounts: Any = "", exchangefeeaccount: Any = "", commission: Any = "",
        exchangeconfirmations: Any = "", passw: Any = "",
    ) -> Any:
        """ExchangeSettings(exchangeaccounts, exchangefeeaccount, commission, exchangeconfirmations, passw) ->
        True. Every given field is validated first; then all are stored together (or none)."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready()
        if engine is None:
            return refusal
        changes: dict[str, Any] = {}
        if exchangeaccounts != "":
            if not isinstance(exchangeaccounts, list) or not all(isinstance(a, str) for a in exchangeaccounts):
                return ("Exchange accounts must be a list and must contain all accounts used by the exchange "
                        "for receiving change.")
            changes["exchangeaccounts"] = list(exchangeaccounts)
        if exchangefeeaccount != "":
            if not isinstance(exchangefeeaccount, str):
                return "The fee account must be text."
            changes["exchangefeeaccount"] = exchangefeeaccount
        if commission != "":
            if not isinstance(commission, dict) or not {"min", "max", "percent"} <= set(commission):
                return "Commission must be a dict with min, max and percent."
            try:
                low, high = parse_amount(commission["min"]), parse_amount(commission["max"])
            except CommandRefused as exc:
                return str(exc)
            percent = commission["percent"]
            if isinstance(percent, bool) or not isinstance(percent, (int, float)) or percent < 0 or high < low:
                return False
            if percent > 0.05:
                return "Commission is too high."
            if low < 10000:
                return "Minimum commission should be high enough to cover basic fees and maintenance."
            # The percentage is kept as parts per million: no float reaches an amount.
            changes["commission"] = {"min": low, "max": high, "ppm": round(percent * 1_000_000)}
        if exchangeconfirmations != "":
            try:
                confirmations = parse_amount(exchangeconfirmations)
            except CommandRefused as exc:
                return str(exc)
            if confirmations < 7:
                return "Not enough confirmations"
            if confirmations > 15:
                return "Too many confirmations"
            changes["exchangeconfirmations"] = check_confirmations(confirmations)
        return engine.update_settings(changes)

    def GetCycle(self, passw: Any = "") -> Any:
        """GetCycle(passw) -> the peg cycle whose balances are current (changes at the cycle's first block)."""
        if (denied := self._gate(passw)) is not None:
            return denied
        engine, refusal = self._ready(need_started=False)
        if engine is None:
            return refusal
        return engine.cycle


CALLS = [
    "SetPassword", "StartExchange", "ShutDown", "ExchangePassword", "GenerateDepositAddress", "GetSpendable",
    "Deposit", "GetDeposits", "GetBalance", "Trade", "Withdraw", "CheckWithdraw", "ExchangeSettings", "GetCycle",
]


def _parse_id(item: Any) -> tuple[bytes, int] | bytes | None:
    """'txid:vout' -> outpoint, 'txid' -> txid bytes (internal order), anything else None."""
    if not isinstance(item, str):
        return None
    txid, _, vout = item.partition(":")
    try:
        raw = bytes.fromhex(txid)[::-1]
    except ValueError:
        return None
    if len(raw) != 32:
        return None
    if not vout:
        return raw
    # An output index is a u32: more digits than that is not an outpoint (and int() refuses ~4300 digits).
    return (raw, int(vout)) if vout.isascii() and vout.isdigit() and len(vout) <= 10 else None


def _is_spendable_change(engine: ExchangeEngine, outpoint: tuple[bytes, int] | bytes) -> bool:
    """Whether ``outpoint`` (or, for a bare txid, any of its outputs) is change the exchange can spend."""
    txid = outpoint if isinstance(outpoint, bytes) else outpoint[0]
    if txid not in engine.deposits.own_txids:
        return False
    with engine.reader.snapshot() as view:
        return any(isinstance(outpoint, bytes) or change.n == outpoint[1]
                   for change in engine.deposits.change_outputs(view, [txid]))


class APIDispatcher:
    """XML-RPC over the transport of :mod:`halo_exchange.rpc.http`: parse, find the call, check the argument
    count, call, answer (a Deferred answer is awaited). Every answer is a complete methodResponse body."""

    def __init__(self, api: ExchangeAPI) -> None:
        self._pending_writes = api.pending_writes
        self._calls: dict[str, Callable[..., Any]] = {name: getattr(api, name) for name in CALLS}
        self._calls["system.listMethods"] = lambda: sorted(self._calls)
        self._calls["system.methodHelp"] = self._help
        # Every call takes positional parameters, some with defaults: the count decides whether they bind.
        self._arity: dict[str, range] = {}
        for name, call in self._calls.items():
            parameters = inspect.signature(call).parameters.values()
            required = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
            self._arity[name] = range(required, len(parameters) + 1)

    def _help(self, name: Any) -> str:
        call = self._calls.get(name) if isinstance(name, str) else None
        return (inspect.getdoc(call) or "") if call is not None else ""

    def handle(self, body: bytes) -> bytes | Deferred:
        try:
            params, method = parse_call(body)
        except Exception:
            return dump_response(xmlrpc.client.Fault(FAULT_PARSE_ERROR, "request is not a valid XML-RPC call"))
        call = self._calls.get(method) if isinstance(method, str) else None
        if call is None:
            return dump_response(xmlrpc.client.Fault(FAULT_METHOD_NOT_FOUND, f"method {method!r} not found"))
        if len(params) not in self._arity[method]:
            return dump_response(xmlrpc.client.Fault(FAULT_INVALID_PARAMS, f"wrong arguments for {method}"))
        try:
            answer = call(*params)
        except Exception:
            return self._after_pending_writes(method, self._failure(method, Failure()), dump_response)
        if isinstance(answer, Deferred):  # a change: it fires once its batch, and all before it, are on disk
            return answer.addCallbacks(lambda value: self._respond(method, value),
                                       lambda failure: dump_response(self._failure(method, failure)))
        return self._after_pending_writes(method, answer, lambda value: self._respond(method, value))

    def _after_pending_writes(self, method: str, answer: Any, encode: Callable[[Any], bytes]) -> bytes | Deferred:
        """An answer computed from memory (a read, or a refusal, which reveals balances too), sent only once
        the writes of this turn it may reflect are durable."""
        waiting = self._pending_writes()
        if waiting is None:
            return encode(answer)
        return waiting.addCallbacks(lambda _: encode(answer),
                                    lambda failure: dump_response(self._failure(method, failure)))

    def _respond(self, method: str, value: Any) -> bytes:
        try:
            return dump_response((value,))
        except Exception:  # an answer XML-RPC cannot carry (None, say) is a bug here, not the client's
            return dump_response(self._failure(method, Failure()))

    @staticmethod
    def _failure(method: str, failure: Failure) -> tuple | xmlrpc.client.Fault:
        if failure.check(CommandRefused):
            return (str(failure.value),)  # the documented answer string
        if failure.check(xmlrpc.client.Fault):
            return failure.value
        log.error("API call %s failed: %s", method, failure.getTraceback())
        return xmlrpc.client.Fault(FAULT_INTERNAL, "internal error")


def make_factory(api: ExchangeAPI, limits: HTTPLimits | None = None) -> XMLRPCFactory:
    """The listening factory of the exchange API."""
    return XMLRPCFactory(APIDispatcher(api).handle, limits)

"""``API(command)``: Halo's signed exec hook, the API's 15th call, with the original's flaws fixed.

An exchange that installed an exec public key (``exec_pubkey``) runs Python source signed by its private key:
``command`` is ``{'exec': source, 'sig': base64}``, signed as :mod:`halo_exchange.execsig` describes (the
original's scheme, bit for bit). Without a key the call answers ``False``. It takes no API password, as the
original: the signature is the authentication.

What differs from the original, on purpose:

- **Replays are refused for good, and cannot be poisoned.** A command's hash is recorded only once its
  signature verified, in the exchange DB, so a repeat answers ``"Command sent previously"`` after a restart
  too, and nobody can burn a command's hash by sending its text first with a bad signature. The record is
  written twice: ``running`` (durable before the command runs, so a crash while it runs cannot make it
  runnable again) and then its outcome (durable before the answer).
- **The command gets a namespace, not the process.** ``exchange`` is :class:`ExchangeFacade` (the engine's
  operations, validated exactly as the API validates them, each answering a Deferred), ``node`` the read-only
  chain reader, ``log`` a logger, ``print`` writes to that logger, and ``result`` (True) is what the call
  answers: a Deferred is awaited, a value XML-RPC cannot carry is answered as its ``repr``. An exception is
  answered as its traceback text, as the original did (the signer is the operator).
- A peer that sends bad signatures backs off (after 5, up to 10 s during which its commands are answered
  ``"Signature failed"`` unchecked): a verification costs milliseconds and the call takes no password.
- The exact texts ``"pause"`` and ``"resume"``, which the original recognised by their hashes, pause and resume
  the exchange (``StartExchange(pw, 0)`` and ``StartExchange(pw, 1)``) without running anything; like every
  command each works once, so later pauses are signed as ``nonce=N`` + ``exchange.pause()``.

Every command is logged with its hash, duration and outcome (logger ``halo_exchange.exec``), and its record
is listed by ``halo-exchange status --execs``.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from halo_exchange.commands import SENT_PREVIOUSLY, SIGNATURE_FAILED
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import CommandRefused
from halo_exchange.execsig import SignatureEncodingError, decode_signature, parse_public_key, txhash, verify
from halo_exchange.ledger.withdrawals import ESCROW_PREFIX
from halo_exchange.rpc.codec import dump_response
from halo_exchange.rpc.dispatch import PasswordBackoff
from halo_exchange.rpc.http import REQUEST_PEER

if TYPE_CHECKING:
    from halo_exchange.rpc.api import ExchangeAPI

log = logging.getLogger("halo_exchange.exec")

NOT_A_COMMAND = "The command must be a struct with 'exec' (the source) and 'sig' (its base64 signature)."
EXEC_NOT_TEXT = "The command's 'exec' must be text."
PAUSE_HASH = txhash("pause")  # 8991…0506, the original's constant
RESUME_HASH = txhash("resume")  # b677…6f2d
RECORDED_SOURCE = 200  # characters of a command's source (and of its outcome) kept in its record


class ExchangeFacade:
    """What an exec command may do to the exchange: the API's operations, with the API's checks and refusals,
    each answering a Deferred (a refusal is a failed Deferred carrying CommandRefused). It holds no state of
    its own and never reaches into the book or the store, so every invariant the engine keeps still holds.
    The exchange's paused state (StartExchange) does not stop these: the signer is the operator."""

    def __init__(self, api: ExchangeAPI, engine: ExchangeEngine) -> None:
        self._api = api
        self._engine = engine

    def _call(self, body: Callable[..., Any], *args: Any) -> Deferred:
        # After any cycle update under way, as every API call: a command's later calls (in callbacks) would
        # otherwise reach a half re-valued book.
        return maybeDeferred(self._engine.when_idle, body, self._engine, *args)

    def trade(self, user1: str, amount: int, user2: str, style: str = "liquid") -> Deferred:
        """Trade(user1, amount, user2, style): True once durable."""
        return self._call(self._api.Trade, user1, amount, user2, style)

    def balance(self, user: str) -> Deferred:
        """GetBalance(user): {liquid, reserve} (more for 'exchange'), or False."""
        return self._call(self._api.GetBalance, user)

    def users(self) -> Deferred:
        """The names of the users (accounts the API can name), sorted."""
        return maybeDeferred(self._engine.when_idle, lambda: sorted(
            name for name in self._engine.book.accounts if not name.startswith(ESCROW_PREFIX)))

    def deposit(self, name: str, txids: Any) -> Deferred:
        """Deposit(name, txids): True once durable."""
        return self._call(self._api.Deposit, name, txids)

    def deposits(self, txid: str = "") -> Deferred:
        """GetDeposits(txid)."""
        return self._call(self._api.GetDeposits, txid)

    def withdraw(self, user: str, amount: int, address: str, style: str = "liquid", client_id: str = "") -> Deferred:
        """Withdraw(user, amount, address, style, ID): [True, ID] once durable (a paused exchange refuses it, as
        the API does)."""
        return self._call(self._api.Withdraw, user, amount, address, style, "", client_id)

    def check_withdraw(self, withdrawal_id: str, clear: int = 0) -> Deferred:
        """CheckWithdraw(ID, clear)."""
        return self._call(self._api.CheckWithdraw, withdrawal_id, clear)

    def settings(self) -> Deferred:
        """GetSettings()."""
        return self._call(self._api.GetSettings)

    def change_settings(self, exchangeaccounts: Any = "", exchangefeeaccount: Any = "", commission: Any = "",
                        exchangeconfirmations: Any = "") -> Deferred:
        """ExchangeSettings(...): True once durable; every given field validated first."""
        return self._call(self._api.ExchangeSettings, exchangeaccounts, exchangefeeaccount, commission,
                          exchangeconfirmations)

    def new_deposit_address(self) -> Deferred:
        """GenerateDepositAddress(): [WIF, True] once durable."""
        return self._call(self._api.GenerateDepositAddress)

    def cycle(self) -> Deferred:
        """GetCycle()."""
        return maybeDeferred(self._engine.when_idle, lambda: self._engine.cycle)

    def pause(self) -> Deferred:
        """StartExchange(0): calls that change balances answer "Exchange is stopped." until resume()."""
        self._api.started = False
        log.warning("exchange paused by a signed exec command")
        return succeed(True)

    def resume(self) -> Deferred:
        """StartExchange(1)."""
        self._api.started = True
        log.warning("exchange resumed by a signed exec command")
        return succeed(True)

    def running(self) -> Deferred:
        """StartExchange(isrunning=1): whether the exchange is started."""
        return succeed(bool(self._api.started))


class ExecHook:
    """The state of ``API(command)``: the public key, and the hashes of the commands running now (their records
    may not be on disk yet). Everything else is in the exchange DB."""

    def __init__(self, public_key: str | None, clock: Callable[[], float] = time.time) -> None:
        self._key = parse_public_key(public_key) if public_key else None
        self._clock = clock
        self._running: set[str] = set()
        # A verification costs ~2 ms of the only API thread and the call takes no password: a peer sending bad
        # signatures backs off as a peer guessing passwords does (its signatures are then not even checked).
        self._backoff = PasswordBackoff()

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def records(self, engine: ExchangeEngine) -> list[dict]:
        """Every command's record, oldest first; one still ``running`` that is not running now was cut short by
        a stop of the node: ``interrupted``."""
        records = engine.exec_records()
        for record in records:
            if record.get("state") == "running" and record["hash"] not in self._running:
                record["state"] = "interrupted"
                record["outcome"] = "the node stopped while it ran; what it made durable before is kept"
        return records

    def call(self, api: ExchangeAPI, engine: ExchangeEngine, command: Any) -> Any:
        """The answer to ``API(command)``, or a Deferred of it."""
        if self._key is None:
            return False
        if not isinstance(command, dict) or "exec" not in command or "sig" not in command:
            raise CommandRefused(NOT_A_COMMAND)
        source = command["exec"]
        if not isinstance(source, str):
            raise CommandRefused(EXEC_NOT_TEXT)
        try:
            signature = decode_signature(command["sig"])
        except SignatureEncodingError as exc:
            raise CommandRefused(f"{SIGNATURE_FAILED}: {exc}.") from None
        command_hash = txhash(source)
        if command_hash in self._running or engine.exec_record(command_hash) is not None:
            log.warning("exec %s refused: sent previously", command_hash)
            return SENT_PREVIOUSLY
        peer = REQUEST_PEER.get()
        if self._backoff.backing_off(peer):
            log.warning("exec %s refused unchecked: %s is backing off after bad signatures", command_hash, peer)
            return SIGNATURE_FAILED
        if not verify(self._key, command_hash, signature):
            self._backoff.failed(peer)
            log.warning("exec %s refused: signature failed", command_hash)
            return SIGNATURE_FAILED  # nothing recorded: a bad signature cannot spend the command's hash
        self._running.add(command_hash)
        started, clock_start = self._clock(), time.monotonic()
        base = {"time": round(started, 3), "source": source[:RECORDED_SOURCE]}
        log.info("exec %s verified; running (%d characters)", command_hash, len(source))
        done = engine.record_exec(command_hash, {**base, "state": "running"})
        done.addCallback(lambda _: self._execute(api, engine, command_hash, source))
        done.addCallback(lambda outcome: self._finish(engine, command_hash, base, clock_start, *outcome))
        done.addBoth(self._forget, command_hash)
        return done

    def _execute(self, api: ExchangeAPI, engine: ExchangeEngine, command_hash: str, source: str) -> Deferred:
        """Run the command; a Deferred of (state, answer)."""
        if command_hash in (PAUSE_HASH, RESUME_HASH):
            facade = ExchangeFacade(api, engine)
            changed = facade.pause() if command_hash == PAUSE_HASH else facade.resume()
            return changed.addCallback(lambda answer: ("done", answer))
        namespace = {
            "__name__": "__exec__",
            "exchange": ExchangeFacade(api, engine),
            "node": engine.reader,
            "log": log,
            "print": lambda *args, sep=" ", **_: log.info("exec %s prints: %s", command_hash[:12],
                                                         sep.join(str(a) for a in args)),
            "result": True,
        }
        try:
            code = _compile(source, f"<exec {command_hash[:12]}>")
        except SyntaxError as exc:
            return succeed(("error", "".join(traceback.format_exception_only(exc))))
        try:
            exec(code, namespace)  # noqa: S102 (running it is the hook's job)
        except (Exception, SystemExit) as exc:  # a command that calls exit() must not stop the reactor
            # From the command's own frames on: this module's frame says nothing to its author.
            return succeed(("error", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))))
        result = namespace.get("result")
        if isinstance(result, Deferred):
            return result.addCallbacks(lambda value: ("done", _answerable(value)),
                                       lambda failure: ("error", _traceback_of(failure)))
        return succeed(("done", _answerable(result)))

    def _finish(self, engine: ExchangeEngine, command_hash: str, base: dict, clock_start: float, state: str,
                answer: Any) -> Deferred:
        duration_ms = round((time.monotonic() - clock_start) * 1000, 1)
        outcome = answer if isinstance(answer, str) else repr(answer)
        log.info("exec %s %s in %.1f ms: %s", command_hash, state, duration_ms,
                 outcome if state == "done" else outcome.strip().splitlines()[-1])
        record = {**base, "state": state, "duration_ms": duration_ms, "outcome": outcome[:RECORDED_SOURCE]}
        return engine.record_exec(command_hash, record).addCallback(lambda _: answer)

    def _forget(self, outcome: Any, command_hash: str) -> Any:
        self._running.discard(command_hash)
        return outcome


_PRINT_STATEMENT = re.compile(r"^(\s*)print(?![\w(=.,\[])\s*(.*?)\s*$")


def _compile(source: str, name: str) -> Any:
    """The command's code. Commands were written for the original's Python 2, where ``print "text"`` is a
    statement: if the source fails to compile for that reason alone, its print statements are read as calls
    (``print "a", b`` as ``print("a", b)``); any other Python 2 syntax is answered as the SyntaxError it is."""
    try:
        return compile(source, name, "exec")
    except SyntaxError as exc:
        if "Missing parentheses in call to 'print'" not in str(exc):
            raise
        rewritten = "\n".join(_PRINT_STATEMENT.sub(r"\1print(\2)", line) for line in source.split("\n"))
        try:
            return compile(rewritten, name, "exec")
        except SyntaxError:
            raise exc from None


def _answerable(value: Any) -> Any:
    """``value`` if XML-RPC can carry it, else its ``repr`` (None, a set, an int past 64 bits, an object...)."""
    try:
        dump_response((value,))
    except Exception:
        return repr(value)
    return value


def _traceback_of(failure: Failure) -> str:
    return failure.getTraceback(elideFrameworkCode=True)


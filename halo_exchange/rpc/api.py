"""The Halo Peg Exchange XML-RPC API (reference/PegAPI.txt), served by Twisted on the plugin's reactor thread.

This module translates and validates; the engine holds every piece of state. Call names, positional
arguments, return shapes and strings follow reference/halo-behaviour.md §2 with the fixes of its §5: the
password is a salted hash in the exchange DB (set after a restart), compared in constant time; amounts are
exact integers in and ``<i8>`` out; refusals are the documented strings and change nothing; answers that
change state come only once durable; there are no hidden parameters; tracebacks never leave the process
(``Fault(-32603, "internal error")``); bodies over 64 KiB get HTTP 413.

Each call is declared with :func:`~halo_exchange.rpc.dispatch.api_call`, which states what the dispatcher
checks first (password, started, loaded) and the shape of its refusals; a body raises
:class:`~halo_exchange.errors.CommandRefused` to refuse. Served here: the original's 15 calls (API, the signed
exec hook, is :mod:`halo_exchange.rpc.execapi`'s), and one addition, GetSettings, which reads the settings back.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections import Counter
from typing import Any, Callable

from halo_exchange.chain.keys import is_valid_address
from halo_exchange.chain.tx import OutPoint
from halo_exchange.commands import (
    AMOUNT_OUT_OF_RANGE,
    BAD_ADDRESS_FILTER,
    BAD_AMOUNT,
    BAD_CLEAR,
    BAD_ISRUNNING,
    BAD_START,
    BAD_STYLE,
    MAX_AMOUNT,
    NEGATIVE_WITHDRAW,
    STYLES,
    UNKNOWN_USER,
    WITHDRAW_TOO_LOW,
    WITHDRAWS,
    check_style,
    check_user_name,
    flag_set,
    is_flag,
)
from halo_exchange.engine import ExchangeEngine
from halo_exchange.errors import CommandRefused, DecodeError
from halo_exchange.ledger.deposits import MAX_CONFIRMATIONS, MIN_CONFIRMATIONS
from halo_exchange.ledger.withdrawals import MIN_ABOVE_COMMISSION, Withdrawal
from halo_exchange.payouts import commission_setting
from halo_exchange.rpc import views
from halo_exchange.rpc.dispatch import NOT_LOADED, STOPPED, APIDispatcher, api_call, declared_calls
from halo_exchange.rpc.execapi import ExecHook
from halo_exchange.rpc.http import HTTPLimits, XMLRPCFactory
from halo_exchange.serialize import from_display_hex

MAX_OUTPUT_INDEX = 0xFFFFFFFF


def parse_amount(value: Any) -> int:
    """An amount as exchanges send it: int, ``<i8>``, an integral float, or a string of digits (sign allowed).
    A whole number beyond an int64 is refused as out of range; anything else as not a whole number."""
    if isinstance(value, bool):
        raise CommandRefused(BAD_AMOUNT)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        if abs(value) >= 2**53:  # beyond this a float no longer holds every whole number exactly
            raise CommandRefused(AMOUNT_OUT_OF_RANGE)
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            raise CommandRefused(BAD_AMOUNT)
        if len(digits) > 19:  # checked before int(), which refuses ~4300 digits with a ValueError
            raise CommandRefused(AMOUNT_OUT_OF_RANGE)
        number = int(text)
    else:
        raise CommandRefused(BAD_AMOUNT)
    if abs(number) > MAX_AMOUNT:
        raise CommandRefused(AMOUNT_OUT_OF_RANGE)
    return number


def _is_style(value: Any) -> bool:
    return isinstance(value, str) and value in STYLES


# The parameters just before passw that take a few values: when the password is left out and one of them holds
# something else, that is the answer (the password most likely landed there: docs/api.md, positional contract).
STYLE_CHOICE = ("style", _is_style, BAD_STYLE)
CLEAR_CHOICE = ("clear", is_flag, BAD_CLEAR)


class PasswordGate:
    """The API password: blank means none; kept as a salted scrypt hash; compared in constant time.

    scrypt costs milliseconds by design, too much for every call of a busy exchange: once a password has
    matched the stored hash, its SHA-256 is kept in memory and later calls compare against that (still in
    constant time). Only a password not seen to match pays the scrypt again.
    """

    def __init__(self, record: dict | None) -> None:
        self.record = record
        self._verified: bytes | None = None

    def matches(self, password: Any, verify: bool = True) -> bool:
        """Whether ``password`` is the API password; with ``verify=False`` only the cached check runs (no
        scrypt): a password not yet seen to match is then refused."""
        if not self.record:
            return True
        if not isinstance(password, str):
            return False
        quick = hashlib.sha256(password.encode("utf-8")).digest()
        if self._verified is not None and hmac.compare_digest(quick, self._verified):
            return True
        if not verify:
            return False
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

    def __init__(self, engine: Callable[[], ExchangeEngine | None], shutdown: Callable[[], None],
                 failed: Callable[[], str | None] = lambda: None, exec_pubkey: str | None = None) -> None:
        self.engine = engine
        self.exec_hook = ExecHook(exec_pubkey)
        self.failed = failed  # why exchange mode stopped (the service is FAILED), or None
        self._shutdown = shutdown
        # The API is built once the engine has loaded. The password known then, and after every change, is
        # kept here too, so that an exchange that failed or is closing still asks for it.
        loaded = engine()
        self._password_gate = PasswordGate(loaded.setting("password") if loaded else None)
        self.started = False
        self.call_counts: Counter[str] = Counter()  # requests per method, counted by the dispatcher serving it

    def password_matches(self, password: Any, verify: bool = True) -> bool:
        engine = self.engine()
        if engine is not None:
            record = engine.setting("password")
            if self._password_gate.record != record:
                self._password_gate = PasswordGate(record)  # the password changed: forget what was verified
        return self._password_gate.matches(password, verify)

    # -- the calls --------------------------------------------------------------------------------------

    @api_call()
    def SetPassword(self, engine: ExchangeEngine, newpassw: Any = "", passw: Any = "") -> Any:
        """SetPassword(newpassw, passw) -> True. Blank means no password. Kept (hashed) across restarts."""
        if not isinstance(newpassw, str):
            raise CommandRefused("The password must be text.")
        return engine.update_settings({"password": PasswordGate.record_for(newpassw)})

    @api_call(loaded=False)
    def StartExchange(self, engine: ExchangeEngine | None, passw: Any = "", start: Any = 1, isrunning: Any = 0) -> Any:
        """StartExchange(passw, start=1, isrunning=0) -> True: start=1 starts the exchange, start=0 stops it
        (state-changing calls then answer "Exchange is stopped."); with isrunning=1, whether the exchange is
        started and loaded (nothing changes). start and isrunning are 1/0, True/False or "1"/"0"; any other
        value is refused with a string and changes nothing."""
        if not is_flag(isrunning):
            raise CommandRefused(BAD_ISRUNNING)
        if not is_flag(start):
            raise CommandRefused(BAD_START)
        if flag_set(isrunning):
            return bool(self.started and engine is not None)
        self.started = flag_set(start)
        return True

    @api_call(loaded=False)
    def ShutDown(self, engine: ExchangeEngine | None, passw: Any = "") -> Any:
        """ShutDown(passw) -> True; then the node stops cleanly (databases flushed and closed)."""
        from twisted.internet import reactor

        reactor.callLater(0.1, self._shutdown)
        return True

    @api_call()
    def ExchangePassword(self, engine: ExchangeEngine, xpassw: Any = "", passw: Any = "") -> Any:
        """ExchangePassword(xpassw, passw) -> True; unlocks the encrypted exchange wallet in memory."""
        if not isinstance(xpassw, str):
            raise CommandRefused("The wallet passphrase must be text.")
        engine.unlock_wallet(xpassw)
        return True

    @api_call(pair=True, started=True)
    def GenerateDepositAddress(self, engine: ExchangeEngine, passw: Any = "") -> Any:
        """GenerateDepositAddress(passw) -> [WIF, True]: a new deposit key, durable and watched. The deposit
        address is the key's P2PKH address (version = the WIF's version byte - 128); docs/api.md shows how to
        derive it with the standard library alone (contrib/bitbay_address.py)."""
        return engine.generate_deposit_address().addCallback(lambda answer: [answer[0], True])

    @api_call()
    def GetSpendable(self, engine: ExchangeEngine, address: Any = "", passw: Any = "") -> Any:
        """GetSpendable(address, passw) -> {"txid:vout": {amount, ltotal, rtotal, nfreeze, supply, address,
        confirmations}} for the exchange's unspent outputs on that address ('' for every address): deposits,
        and the change of the exchange's own transactions (change: 1); locked: 1 on a coin an unconfirmed batch
        spends. As in the original, amount, ltotal, rtotal, nfreeze and confirmations are strings of digits,
        supply an int. An address that is not text is refused."""
        if not isinstance(address, str):
            raise CommandRefused(BAD_ADDRESS_FILTER)
        with engine.reader.snapshot() as view:
            return views.spendable(view, engine.deposits, engine.coins, address)

    @api_call(started=True, names=("name",))  # the original's order: names before the exchange's state
    def Deposit(self, engine: ExchangeEngine, name: Any, txids: Any, passw: Any = "") -> Any:
        """Deposit(name, txids, passw) -> True: names the owner of deposits ("txid:vout", or a bare txid for
        all of its exchange outputs); credited as soon as confirmed. Idempotent for the same name."""
        ids = [txids] if isinstance(txids, str) else txids
        if not isinstance(ids, (list, tuple)) or not ids:
            raise CommandRefused("txids must be a list of 'txid:vout' or 'txid' strings.")
        outpoints: list[OutPoint] = []
        for item in ids:
            parsed = _parse_id(item)
            found = [] if parsed is None else _deposits_named(engine, *parsed)
            if not found and parsed is not None and _is_spendable_change(engine, *parsed):
                raise CommandRefused("You can not deposit change transactions.")
            if not found:
                raise CommandRefused(f"{item} not in Spendable list yet.")
            outpoints.extend(found)
        return engine.name_deposit(name, outpoints)

    @api_call()
    def GetDeposits(self, engine: ExchangeEngine, txid: Any = "", passw: Any = "") -> Any:
        """GetDeposits(txid='', passw) -> {"txid:vout": {name, registered, status, confirmations, amount}}, or
        that one entry, or False when unknown."""
        records = views.deposit_records(engine.deposits)
        if txid in ("", None):
            return records
        return records.get(txid, False) if isinstance(txid, str) else False

    @api_call()
    def GetBalance(self, engine: ExchangeEngine, user: Any, passw: Any = "") -> Any:
        """GetBalance(user, passw) -> {liquid, reserve} (for 'exchange' also subpremium and frozen), or False."""
        if not isinstance(user, str):
            return False
        if user.lower() == "exchange":
            with engine.reader.snapshot() as view:
                return views.exchange_balance(view, engine.book, engine.deposits, engine.coins)
        if user.lower() == WITHDRAWS:
            liquid, reserve = engine.escrow_total()
            return {"liquid": liquid, "reserve": reserve}
        return views.balance(engine.book, user)

    @api_call(started=True, choices=(STYLE_CHOICE,))
    def Trade(self, engine: ExchangeEngine, user1: Any, amount: Any, user2: Any, style: Any = "liquid",
              passw: Any = "") -> Any:
        """Trade(user1, amount, user2, style, passw) -> True: user1 pays user2 amount of style ('liquid' or
        'reserve'); with user2 '' a negative amount debits user1 into the pool and a positive one credits user1
        from it. Positional: pass style before passw (Trade(u1, n, u2, "pw") puts the password in style)."""
        return engine.trade(user1, parse_amount(amount), user2, style)

    @api_call(pair=True, bare_not_loaded=True, choices=(STYLE_CHOICE,))
    def Withdraw(self, engine: ExchangeEngine, user: Any, amount: Any, address: Any, style: Any = "liquid",
                 passw: Any = "", ID: Any = "") -> Any:  # noqa: N803 (the API's parameter name)
        """Withdraw(user, amount, address, style, passw, ID='') -> [True, ID]: the amount (commission included,
        fixed now: 0.1 %, at least 1 and at most 10 BAY unless ExchangeSettings changed it) goes into escrow
        and the request is recorded; a batch transaction pays amount - commission to address in this cycle or
        the next, else it is refunded. Checked in this order: user, style, amount (above the minimum commission
        + 10,000), address, then the exchange's state, limits and balance. ``ID``, chosen by the client (1-64
        printable characters), makes the call idempotent: repeated, it answers the first answer and withdraws
        nothing more."""
        # In the order a user can act on (the original checked the amount against the commission first).
        check_user_name(user)
        if user not in engine.book.accounts:
            raise CommandRefused(UNKNOWN_USER)
        check_style(style)
        value = parse_amount(amount)
        if value < 0:
            raise CommandRefused(NEGATIVE_WITHDRAW)
        if value <= commission_setting(engine.settings)["min"] + MIN_ABOVE_COMMISSION:
            raise CommandRefused(WITHDRAW_TOO_LOW)
        if address == "":
            raise CommandRefused("No withdraw address.", answer=False)
        if not isinstance(address, str) or not is_valid_address(address, engine.network):
            raise CommandRefused("Withdraw address not valid")  # version and length checked too (B28)
        if not self.started:  # the original checks this only here, after the arguments
            raise CommandRefused(STOPPED)
        client_id = None if ID in ("", None) else ID
        return engine.request_withdrawal(user, value, address, style, client_id).addCallback(
            lambda wid: [True, wid])

    @api_call(choices=(CLEAR_CHOICE,))
    def CheckWithdraw(self, engine: ExchangeEngine,
                      ID: Any, clear: Any = 0, passw: Any = "") -> Any:  # noqa: N803 (the API's parameter name)
        """CheckWithdraw(ID, clear, passw) -> the status record of a request (its ID or the client's) or of a
        batch (master ID), or "ID not found". clear=1 forgets a finished record (complete, expired, failed) and
        answers its last state; clear=0 only looks. Positional: pass clear before passw."""
        if not is_flag(clear):
            raise CommandRefused(BAD_CLEAR)
        found = engine.find_withdrawal(ID) if isinstance(ID, str) and ID else None
        if found is None:
            return "ID not found"
        if isinstance(found, Withdrawal):
            answer = views.withdrawal_status(found, engine.batches.get(found.batch or ""))
        else:
            answer = views.batch_status(found)
        if flag_set(clear):
            engine.clear_withdrawal(found.id if isinstance(found, Withdrawal) else found.master_id)
            return engine.persist_payouts().addCallback(lambda _: answer)
        return answer

    @api_call(started=True)
    def ExchangeSettings(
        self, engine: ExchangeEngine, exchangeaccounts: Any = "", exchangefeeaccount: Any = "", commission: Any = "",
        exchangeconfirmations: Any = "", passw: Any = "",
    ) -> Any:
        """ExchangeSettings(exchangeaccounts, exchangefeeaccount, commission, exchangeconfirmations, passw) ->
        True. Every given field is validated first; then all are stored together (or none)."""
        changes: dict[str, Any] = {}
        if exchangeaccounts != "":
            if not isinstance(exchangeaccounts, list) or not all(isinstance(a, str) for a in exchangeaccounts):
                raise CommandRefused("Exchange accounts must be a list and must contain all accounts used by the "
                                     "exchange for receiving change.")
            changes["exchangeaccounts"] = list(exchangeaccounts)
        if exchangefeeaccount != "":
            if not isinstance(exchangefeeaccount, str):
                raise CommandRefused("The fee account must be text.")
            changes["exchangefeeaccount"] = exchangefeeaccount
        if commission != "":
            changes["commission"] = _parse_commission(commission)
        if exchangeconfirmations != "":
            confirmations = parse_amount(exchangeconfirmations)
            if confirmations < MIN_CONFIRMATIONS:
                raise CommandRefused("Not enough confirmations")
            if confirmations > MAX_CONFIRMATIONS:
                raise CommandRefused("Too many confirmations")
            changes["exchangeconfirmations"] = confirmations
        return engine.update_settings(changes)

    @api_call()
    def GetCycle(self, engine: ExchangeEngine, passw: Any = "") -> Any:
        """GetCycle(passw) -> the peg cycle whose balances are current (changes at the cycle's first block)."""
        return engine.cycle

    @api_call()
    def GetSettings(self, engine: ExchangeEngine, passw: Any = "") -> Any:
        """GetSettings(passw) -> the settings in force: exchangeaccounts, exchangefeeaccount, commission {min,
        max (satoshis), percent (a fraction: 0.001 = 0.1 %)}, exchangeconfirmations, withdraw_liquid_limit,
        withdraw_reserve_limit, and password (whether one is set; never the password or its hash). Not in the
        original: an addition."""
        return views.settings(engine.settings, commission_setting(engine.settings), engine.deposits.confirmations,
                              engine.liquid_limit, engine.reserve_limit)

    @api_call(password=False, loaded=False)
    def API(self, engine: ExchangeEngine | None, command: Any) -> Any:  # noqa: N802 (the original's name)
        """API(command) -> what the signed command sets ``result`` to (True by default), its traceback text if
        it raised, "Signature failed", or "Command sent previously" (for good: replays are refused after a
        restart too); False when no exec public key is installed. ``command`` is {'exec': Python source,
        'sig': base64 DER signature of txhash(source)}. No API password: the signature authenticates it."""
        if not self.exec_hook.enabled:
            return False
        if engine is None:
            raise CommandRefused(NOT_LOADED)
        return self.exec_hook.call(self, engine, command)


CALLS = declared_calls(ExchangeAPI)


def _parse_commission(commission: Any) -> dict[str, int]:
    """``ExchangeSettings``' commission: min and max whole satoshis, the percentage kept as parts per million
    so that no float reaches an amount."""
    if not isinstance(commission, dict) or not {"min", "max", "percent"} <= set(commission):
        raise CommandRefused("Commission must be a dict with min, max and percent.")
    low, high = parse_amount(commission["min"]), parse_amount(commission["max"])
    percent = commission["percent"]
    if (isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent)
            or percent < 0 or high < low):
        # the original answers False; NaN and ±inf (XML-RPC <double>nan</double>, inf) are refused alike
        raise CommandRefused("commission out of range", answer=False)
    if percent > 0.05:
        raise CommandRefused("Commission is too high.")
    if low < 10000:
        raise CommandRefused("Minimum commission should be high enough to cover basic fees and maintenance.")
    return {"min": low, "max": high, "ppm": round(percent * 1_000_000)}


def _parse_id(item: Any) -> tuple[bytes, int | None] | None:
    """'txid:vout' -> (txid, vout), 'txid' -> (txid, None), txids in internal byte order; anything else None."""
    if not isinstance(item, str):
        return None
    txid, _, vout = item.partition(":")
    try:
        raw = from_display_hex(txid)
    except DecodeError:
        return None
    if not vout:
        return raw, None
    # An output index is a u32: more digits than that is not an outpoint (and int() refuses ~4300 digits).
    return (raw, int(vout)) if vout.isascii() and vout.isdigit() and len(vout) <= 10 else None


def _deposits_named(engine: ExchangeEngine, txid: bytes, n: int | None) -> list[OutPoint]:
    """The deposits a Deposit id names: that output, or every deposit among a bare txid's outputs."""
    if n is None:
        return engine.deposits.outpoints_of(txid)
    if n > MAX_OUTPUT_INDEX:
        return []
    outpoint = OutPoint(txid, n)
    return [outpoint] if engine.deposits.knows(outpoint) else []


def _is_spendable_change(engine: ExchangeEngine, txid: bytes, n: int | None) -> bool:
    """Whether output ``n`` of ``txid`` (any of its outputs for None) is change the exchange can spend."""
    if txid not in engine.deposits.own_txids:
        return False
    return any(coin.outpoint.txid == txid and (n is None or coin.outpoint.n == n) and coin.origin == "change"
               for coin in engine.coins.unspent())


def make_factory(api: ExchangeAPI, limits: HTTPLimits | None = None) -> XMLRPCFactory:
    """The listening factory of the exchange API."""
    dispatcher = APIDispatcher(api)
    api.call_counts = dispatcher.call_counts  # the same Counter: the operator's status reads it from the API
    return XMLRPCFactory(dispatcher.handle, limits)

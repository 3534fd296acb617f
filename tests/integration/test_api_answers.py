"""Answers a client developer can act on (issue 13, items 2 and 7-14), over real XML-RPC with the stdlib client:
refused flags, a password given one place early, Withdraw's order of checks, reading the settings back,
GetSpendable's types, amounts out of range, and the documentation that goes with each."""

from __future__ import annotations

import ast
import sys
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange.chain.keys import MAINNET, PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.commands import (
    AMOUNT_OUT_OF_RANGE,
    BAD_ADDRESS_FILTER,
    BAD_CLEAR,
    BAD_ISRUNNING,
    BAD_START,
    BAD_STYLE,
    NEGATIVE_WITHDRAW,
)
from halo_exchange.ledger.withdrawals import DEFAULT_COMMISSION
from tests.framework import ROOT, ServiceHarness, address_of, assert_refused, new_address

DOCS = (ROOT / "docs" / "api.md").read_text()
README = (ROOT / "README.md").read_text()


@pytest.fixture
def exchange(tmp_path, reactor_thread):
    with ServiceHarness(tmp_path) as exchange:
        yield exchange


def test_start_exchange_refuses_values_that_mean_nothing(exchange: ServiceHarness) -> None:
    """StartExchange takes 1/0, True/False or "1"/"0"; "x", 2, "yes" (start) and 2 (isrunning) are refused with
    a string and change nothing: a started exchange keeps trading (Halo stopped it and answered True)."""
    api = exchange.api
    exchange.credit("karen", 5 * COIN)
    assert api.StartExchange("", 1, 1) is True
    for bad in ("x", 2, "yes", "", -1, 1.5):
        assert_refused(BAD_START, api.StartExchange, "", bad)
    assert_refused(BAD_ISRUNNING, api.StartExchange, "", 1, 2)
    assert_refused(BAD_ISRUNNING, api.StartExchange, "", 1, "yes")
    assert api.StartExchange("", 1, 1) is True  # still started
    assert api.Trade("karen", COIN, "dave", "liquid", "") is True
    assert api.StartExchange("", False) is True and api.StartExchange("", 0, True) is False
    assert_refused(BAD_START, api.StartExchange, "", "1x")
    assert api.StartExchange("", 0, 1) is False  # still stopped
    assert api.StartExchange("", "1") is True and api.StartExchange("", 1, "1") is True


def test_a_password_one_place_early_is_answered_as_the_style_or_flag(exchange: ServiceHarness) -> None:
    """Trade, Withdraw and CheckWithdraw are positional, the password after style or clear: with the password
    left out and put there, the answer names that argument, not the password (Halo: "Incorrect Password")."""
    api = exchange.api
    api.SetPassword("pw", "")
    exchange.credit("karen", 5 * COIN, "pw")
    assert_refused(BAD_STYLE, api.Trade, "karen", 1000, "dave", "pw")
    assert_refused(BAD_STYLE, api.Withdraw, "karen", 2 * COIN, new_address(), "pw", pair=True)
    assert_refused(BAD_CLEAR, api.CheckWithdraw, "f" * 32, "pw")
    # A password given in its place is checked first, whatever style or clear hold.
    assert_refused("Incorrect Password", api.Trade, "karen", 1000, "dave", "liquid")
    assert_refused("Incorrect Password", api.Trade, "karen", 1000, "dave", "pw", "wrong")
    assert_refused("Incorrect Password", api.CheckWithdraw, "f" * 32, 0)
    # With the right password, a clear that is no flag is refused too (Halo cleared on 1 only, silently).
    assert_refused(BAD_CLEAR, api.CheckWithdraw, "f" * 32, 5, "pw")
    assert_refused("ID not found", api.CheckWithdraw, "f" * 32, "1", "pw")
    assert api.GetBalance("karen", "pw")["liquid"] + api.GetBalance("karen", "pw")["reserve"] == 5 * COIN


def test_withdraw_checks_user_then_style_then_amount(exchange: ServiceHarness) -> None:
    """Withdraw answers what the user can act on first: an unknown user, a bad style, a negative amount; only
    then "Withdraw amount is too low" (the default minimum commission is 1 BAY)."""
    api = exchange.api
    exchange.credit("karen", 5 * COIN)
    payee = new_address()
    too_low = DEFAULT_COMMISSION["min"]  # 1 BAY: not above the minimum commission + 10,000
    assert_refused("Unknown user", api.Withdraw, "nobody", too_low, payee, "liquid", "", pair=True)
    assert_refused("Name is too short in length.", api.Withdraw, "bob", too_low, payee, "liquid", "", pair=True)
    assert_refused(BAD_STYLE, api.Withdraw, "karen", too_low, payee, "liquidity", "", pair=True)
    assert_refused(NEGATIVE_WITHDRAW, api.Withdraw, "karen", -too_low, payee, "liquid", "", pair=True)
    assert_refused("Withdraw amount is too low", api.Withdraw, "karen", too_low, payee, "liquid", "", pair=True)
    assert_refused("Withdraw amount is too low", api.Withdraw, "karen", too_low, "", "liquid", "", pair=True)
    assert api.Withdraw("karen", 2 * COIN, "", "liquid", "") == [False, ""]
    assert_refused("Withdraw address not valid", api.Withdraw, "karen", 2 * COIN, "xyz", "liquid", "", pair=True)
    assert api.GetBalance("withdraws", "") == {"liquid": 0, "reserve": 0}
    ok, _ = api.Withdraw("karen", 2 * COIN, payee, "liquid", "")
    assert ok is True and api.GetBalance("withdraws", "")["liquid"] == 2 * COIN
    exchange_total = api.GetBalance("exchange", "")
    assert exchange_total["liquid"] + exchange_total["reserve"] == 5 * COIN  # the escrow included (docs/api.md)


def test_settings_are_read_back_with_get_settings(exchange: ServiceHarness) -> None:
    """GetSettings answers the settings in force in ExchangeSettings' own units (percent a fraction), the
    defaults first; never the password or its hash."""
    api = exchange.api
    api.SetPassword("pw", "")
    api.StartExchange("pw")
    assert_refused("Incorrect Password", api.GetSettings, "")
    assert api.GetSettings("pw") == {
        "exchangeaccounts": [], "exchangefeeaccount": "",
        "commission": {"min": 100_000_000, "max": 1_000_000_000, "percent": 0.001},
        "exchangeconfirmations": 7, "withdraw_liquid_limit": 300, "withdraw_reserve_limit": 45, "password": True,
    }
    account = address_of(api.GenerateDepositAddress("pw")[0])
    fee = new_address()
    commission = {"min": 10_000, "max": 10**9, "percent": 0.01}  # 1 %
    assert api.ExchangeSettings([account], fee, commission, 9, "pw") is True
    settings = api.GetSettings("pw")
    assert (settings["exchangeaccounts"], settings["exchangefeeaccount"]) == ([account], fee)
    assert settings["commission"] == commission and settings["exchangeconfirmations"] == 9
    assert "salt" not in str(settings) and "hash" not in str(settings)
    assert_refused("Commission is too high.", api.ExchangeSettings, "", "", {**commission, "percent": 1}, "", "pw")
    assert api.GetSettings("pw")["commission"] == commission


def test_get_spendable_refuses_an_address_that_is_not_text(exchange: ServiceHarness) -> None:
    """GetSpendable(5, pw) is refused (it listed every coin); the amounts stay the original's digit strings."""
    api = exchange.api
    exchange.credit("karen", 50 * COIN)
    assert_refused(BAD_ADDRESS_FILTER, api.GetSpendable, 5, "")
    assert_refused(BAD_ADDRESS_FILTER, api.GetSpendable, ["B"], "")
    [entry] = api.GetSpendable("", "").values()
    assert all(isinstance(entry[key], str) for key in ("amount", "ltotal", "rtotal", "nfreeze", "confirmations"))
    assert isinstance(entry["supply"], int) and int(entry["amount"]) == 50 * COIN
    assert api.GetSpendable(new_address(), "") == {}


def test_a_whole_amount_too_big_is_out_of_range(exchange: ServiceHarness) -> None:
    """A 23-digit amount is whole: it is refused as out of range, not as "not whole"."""
    api = exchange.api
    exchange.credit("karen", 5 * COIN)
    assert_refused(AMOUNT_OUT_OF_RANGE, api.Trade, "karen", "1" * 23, "dave", "liquid", "")
    assert_refused(AMOUNT_OUT_OF_RANGE, api.Withdraw, "karen", "1" * 23, new_address(), "liquid", "", pair=True)
    assert_refused("Amount must be a whole number of satoshis", api.Trade, "karen", "1.5", "dave", "liquid", "")


def test_big_amounts_are_sent_as_digit_strings(exchange: ServiceHarness) -> None:
    """The stdlib client cannot send an int of 2^31 or more (OverflowError, before anything is sent); the
    digit string the README and docs/api.md show is taken exactly, and the answer comes back as <i8>."""
    api = exchange.api
    exchange.credit("karen", 50 * COIN)
    with pytest.raises(OverflowError):
        api.Trade("karen", 30 * COIN, "dave", "liquid", "")
    assert api.Trade("karen", str(30 * COIN), "dave", "liquid", "") is True
    assert api.GetBalance("dave", "")["liquid"] == 30 * COIN
    for text in (DOCS, README):
        assert "OverflowError" in text and 'Trade("karen", "3000000000", "dave", "liquid", "pw")' in text


def test_method_help_tells_the_behaviour(exchange: ServiceHarness) -> None:
    """system.methodHelp: every listed call has its text, which states what the call does now (Withdraw is
    paid; the order of its checks; the positional password); API is the signed exec hook."""
    api = exchange.api
    for name in api.system.listMethods():
        assert api.system.methodHelp(name).startswith(name + "("), name
    assert "Signature failed" in api.system.methodHelp("API")
    withdraw = api.system.methodHelp("Withdraw")
    assert "batch transaction pays" in withdraw and "user, style, amount" in withdraw
    assert "before passw" in api.system.methodHelp("Trade") and "before passw" in api.system.methodHelp("CheckWithdraw")
    assert "strings of digits" in api.system.methodHelp("GetSpendable")


def test_deposit_addresses_derive_with_the_standard_library(tmp_path) -> None:
    """contrib/bitbay_address.py derives GenerateDepositAddress's address from its WIF with the standard
    library alone, as halo_exchange.chain.keys does; the example client imports nothing else."""
    sys.path.insert(0, str(ROOT / "contrib"))
    try:
        from bitbay_address import _ripemd160_pure, address_from_wif
    finally:
        sys.path.remove(str(ROOT / "contrib"))
    for compressed in (True, False, True):
        key = PrivateKey.generate(compressed=compressed)
        assert address_from_wif(key.to_wif(MAINNET)) == key.public_key().address(MAINNET)
    assert _ripemd160_pure(b"abc").hex() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
    for script in ("example_client.py", "bitbay_address.py"):
        tree = ast.parse(Path(ROOT / "contrib" / script).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= set(sys.stdlib_module_names) | {"bitbay_address"}, (script, imported)
    assert "address_from_wif" in DOCS


def test_docs_state_units_types_refusals_and_the_positional_contract() -> None:
    """docs/api.md documents what a client developer tripped over: the positional password, the default
    commission and its units, GetSettings, GetSpendable's string types and nfreeze, the refusals the engine
    answers, and that the exchange's balance includes the withdrawals' escrow."""
    for needle in ("Every argument is positional", "min 1 BAY", "0.01 = 1 %", "GetSettings(passw)", "nfreeze",
                   "strings of digits", "belongs to another user", "Amount is out of range",
                   "the escrow of the withdrawals not finished included", "Withdraw amount can not be negative",
                   "start must be 1", "clear must be 0", "Address must be text", "The exchange wallet is locked"):
        assert needle in DOCS, needle
    assert "check in this order" in DOCS.lower() or "checked in this order" in DOCS.lower()
    assert xmlrpc.client.MAXINT == 2**31 - 1

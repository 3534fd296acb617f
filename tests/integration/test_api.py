"""The Halo Peg Exchange API over real XML-RPC: the stdlib client against exchange mode in a devnet node."""

from __future__ import annotations

import http.client
import xmlrpc.client

import pytest

from halo_exchange import cli
from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.params import COIN
from halo_exchange.rpc.api import CALLS
from halo_exchange.rpc.dispatch import (
    FAULT_EXCHANGE_FAILED,
    FAULT_INTERNAL,
    FAULT_INVALID_PARAMS,
    FAULT_METHOD_NOT_FOUND,
    api_call,
)
from tests.framework import ServiceHarness, address_of, assert_refused, new_address, wait_until


@pytest.fixture
def exchange(tmp_path, reactor_thread):
    with ServiceHarness(tmp_path) as exchange:
        yield exchange


def test_client_flow_deposit_balance_trade(exchange: ServiceHarness) -> None:
    """The exchange's flow with positional arguments: address, deposit, balance, trade, deposits, cycle."""
    api = exchange.api
    assert api.SetPassword("pw", "") is True
    assert api.StartExchange("pw", 1, 1) is False
    assert api.StartExchange("pw") is True and api.StartExchange("pw", 1, 1) is True
    wif, ok = api.GenerateDepositAddress("pw")
    assert ok is True
    txid = exchange.pay(address_of(wif), 50 * COIN)  # 50 BAY: above int32, travels as <i8>
    [key] = [k for k in api.GetSpendable("", "pw") if k.startswith(txid)]
    spendable = api.GetSpendable("", "pw")[key]
    assert int(spendable["amount"]) == 50 * COIN == int(spendable["ltotal"]) + int(spendable["rtotal"])
    assert api.Deposit("karen", [key], "pw") is True
    assert api.Deposit("karen", [key], "pw") is True  # idempotent
    assert api.GetBalance("karen", "pw") is False  # not yet confirmed
    exchange.generate(6)
    balance = api.GetBalance("karen", "pw")
    assert balance["liquid"] + balance["reserve"] == 50 * COIN
    assert api.Trade("karen", 100000000, "dave", "liquid", "pw") is True
    assert api.GetBalance("dave", "pw") == {"liquid": 100000000, "reserve": 0}
    record = api.GetDeposits(key, "pw")
    assert (record["name"], record["registered"], record["amount"]) == ("karen", 1, 50 * COIN)
    assert api.GetDeposits("00" * 32 + ":0", "pw") is False
    assert set(api.GetBalance("EXCHANGE", "pw")) == {"liquid", "reserve", "subpremium", "frozen"}
    assert api.GetCycle("pw") == exchange.node.peg_info()["cycle"]


def test_documented_refusals(exchange: ServiceHarness) -> None:
    """Password gate, stopped exchange, reserved and short names, negative and too-large amounts."""
    api = exchange.api
    api.SetPassword("pw", "")
    assert_refused("Incorrect Password", api.GetCycle, "")
    assert_refused("Incorrect Password", api.GenerateDepositAddress, "bad", pair=True)
    assert_refused("Exchange is stopped.", api.Trade, "alice", 1, "bobby", "liquid", "pw")
    api.StartExchange("pw")
    reserved = "Name reserved for exchange operations. Please use different name."
    assert_refused(reserved, api.Deposit, "Pool", ["00" * 32 + ":0"], "pw")
    assert_refused("Name is too short in length.", api.Deposit, "bob", ["00" * 32 + ":0"], "pw")
    assert_refused("abc:0 not in Spendable list yet.", api.Deposit, "bobby", ["abc:0"], "pw")
    huge = "00" * 32 + ":" + "9" * 5000
    assert_refused(f"{huge} not in Spendable list yet.", api.Deposit, "bobby", [huge], "pw")
    assert_refused(reserved, api.Trade, "Exchange", 1, "bobby", "liquid", "pw")
    assert_refused("Amount can not be negative if both users are known",
                   api.Trade, "alice", -5, "bobby", "liquid", "pw")
    assert_refused("Unknown user", api.Trade, "alice", 5, "bobby", "liquid", "pw")  # Halo: a KeyError Fault
    assert_refused("Insufficient funds in liquid pool. Please make the debit before the credit.",
                   api.Trade, "alice", 5, "", "liquid", "pw")
    assert_refused("Amount must be a whole number of satoshis", api.Trade, "alice", "1.5", "bobby", "liquid", "pw")
    assert api.GetBalance("nobody", "pw") is False
    assert api.ExchangeSettings("B" * 34, "", "", "", "pw").startswith("Exchange accounts must be a list")
    assert_refused("Commission is too high.",
                   api.ExchangeSettings, "", "", {"min": 10**8, "max": 10**9, "percent": 0.06}, "", "pw")
    low_minimum = {"min": 9999, "max": 10**9, "percent": 0.01}
    assert api.ExchangeSettings("", "", low_minimum, "", "pw").startswith("Minimum commission")
    assert_refused("Not enough confirmations", api.ExchangeSettings, ["Bx"], "", "", 6, "pw")
    assert_refused("Too many confirmations", api.ExchangeSettings, ["Bx"], "", "", 16, "pw")
    assert api.ExchangeSettings(["Bx"], "", "", 9, "pw").startswith("Exchange accounts must be addresses of this")
    account = address_of(api.GenerateDepositAddress("pw")[0])
    assert api.ExchangeSettings([account], "", "", 9, "pw") is True
    api.StartExchange("pw", 0)
    assert_refused("Exchange is stopped.", api.Trade, "alice", 1, "bobby", "liquid", "pw")


def test_password_and_settings_survive_a_restart(exchange: ServiceHarness) -> None:
    """The password is stored (hashed) and still required after the node restarts."""
    exchange.api.SetPassword("s3cret", "")
    exchange.api.StartExchange("s3cret")
    assert exchange.api.ExchangeSettings("", "", "", 12, "s3cret") is True
    exchange.close()
    exchange.open()
    assert_refused("Incorrect Password", exchange.api.GetCycle, "")
    assert exchange.api.GetCycle("s3cret") == exchange.node.peg_info()["cycle"]
    assert exchange.service.call(lambda engine: engine.deposits.confirmations) == 12


def test_shutdown_answers_then_stops_the_node(exchange: ServiceHarness) -> None:
    """ShutDown answers True and then asks the node to stop."""
    assert exchange.api.ShutDown("") is True
    wait_until(lambda: exchange.stops, timeout=5, interval=0.05)
    assert exchange.stops == 1


def test_transport_faults_and_limits(exchange: ServiceHarness, monkeypatch) -> None:
    """Unknown calls, wrong argument counts, internal errors and oversized bodies get stable answers."""
    api = exchange.api
    with pytest.raises(xmlrpc.client.Fault) as fault:
        api.DropTables()
    assert fault.value.faultCode == FAULT_METHOD_NOT_FOUND
    with pytest.raises(xmlrpc.client.Fault) as fault:
        api.GetBalance()
    assert fault.value.faultCode == FAULT_INVALID_PARAMS
    assert api.system.listMethods() == sorted(CALLS + ["system.listMethods", "system.methodHelp"])
    assert len(CALLS) == 16  # the original's 15, and GetSettings
    assert "user1 pays user2" in api.system.methodHelp("Trade")
    monkeypatch.setattr(type(exchange.service.api), "GetCycle", api_call()(lambda self, engine, passw="": 1 // 0))
    exchange.close()
    exchange.open()
    with pytest.raises(xmlrpc.client.Fault) as fault:
        exchange.api.GetCycle("")
    assert (fault.value.faultCode, fault.value.faultString) == (FAULT_INTERNAL, "internal error")
    connection = http.client.HTTPConnection("127.0.0.1", exchange.service.api_port, timeout=10)
    connection.request("POST", "/RPC2", b"<" * (100 * 1024), {"Content-Type": "text/xml"})
    assert connection.getresponse().status == 413


def test_withdraw_validates_escrows_and_records(exchange: ServiceHarness) -> None:
    """Withdraw answers the documented pairs; an accepted one moves into escrow and CheckWithdraw shows it."""
    api = exchange.api
    exchange.credit("karen", 10 * COIN)
    payee = new_address()
    assert api.Withdraw("karen", 5 * COIN, "", "liquid", "") == [False, ""]
    assert_refused("Withdraw address not valid", api.Withdraw, "karen", 5 * COIN, "xyz", "liquid", "", pair=True)
    assert_refused("Withdraw amount is too low", api.Withdraw, "karen", 100_010_000, payee, "liquid", "", pair=True)
    assert_refused("Insufficient liquid balance", api.Withdraw, "karen", "1000000000000", payee, "liquid", "",
                   pair=True)
    assert_refused("Unknown user", api.Withdraw, "nobody", 200_000_000, payee, "liquid", "", pair=True)
    assert_refused("Amount must be a whole number of satoshis", api.Withdraw, "karen", "1.5", payee, "liquid", "",
                   pair=True)
    before = api.GetBalance("karen", "")
    ok, withdraw_id = api.Withdraw("karen", 100_010_001, payee, "liquid", "")
    assert ok is True and len(withdraw_id) == 32
    assert api.GetBalance("karen", "")["liquid"] == before["liquid"] - 100_010_001
    assert api.GetBalance("withdraws", "")["liquid"] == 100_010_001
    status = api.CheckWithdraw(withdraw_id, 0, "")
    assert (status["status"], status["amount"], status["address"]) == ("queued", 100_010_001, payee)
    assert_refused("ID not found", api.CheckWithdraw, "f" * 32, 0, "")


def test_cycle_and_balances_follow_deflate_votes(exchange: ServiceHarness) -> None:
    """GetCycle moves at the block that starts a cycle; once deflate votes raise the supply, balances are
    re-split (more reserve, less liquid, the same total), exactly, above 2^31."""
    api = exchange.api
    exchange.credit("karen", 40 * COIN)
    before = api.GetBalance("karen", "")
    assert before["liquid"] + before["reserve"] == 40 * COIN
    interval = exchange.node.peg_info()["interval"]
    height = exchange.node.reader.height()
    exchange.generate(interval - 1 - height % interval)  # the last block of this cycle
    cycle = api.GetCycle("")
    exchange.generate(1)
    assert api.GetCycle("") == cycle + 1 == exchange.node.peg_info()["cycle"]
    supply = exchange.node.peg_info()["peg"]
    for _ in range(4):  # deflate votes take effect cycles later
        exchange.generate(interval, "deflate")
    assert exchange.node.peg_info()["peg"] > supply
    after = api.GetBalance("karen", "")
    assert after["reserve"] > before["reserve"] and after["liquid"] < before["liquid"]
    assert after["liquid"] + after["reserve"] == 40 * COIN


def test_remaining_documented_refusals(exchange: ServiceHarness) -> None:
    """The rest of halo-behaviour §6.3: name checks on both sides of a trade, and the settings answered False."""
    api = exchange.api
    api.StartExchange("")
    assert_refused("Name is too short in length.", api.Trade, "abc", 1, "bobby", "liquid", "")
    assert_refused("Name reserved for exchange operations. Please use different name.",
                   api.Trade, "alice", 1, "withdraws", "liquid", "")
    assert_refused("Name is too short in length.", api.Trade, "alice", 1, "ab", "liquid", "")
    assert api.ExchangeSettings("", "", {"min": 10**8, "max": 10**9, "percent": -0.1}, "", "") is False
    assert api.ExchangeSettings("", "", {"min": 10**9, "max": 10**8, "percent": 0.01}, "", "") is False
    assert_refused("Too many confirmations", api.ExchangeSettings, ["Bx"], "", "", 16, "")
    assert "exchangeaccounts" not in exchange.service.call(lambda engine: engine.settings)  # all or nothing


def test_pipelined_calls_on_one_socket_are_answered_in_order(exchange: ServiceHarness) -> None:
    """Two calls written at once on one connection get their two answers, in order, on that connection."""
    import socket

    calls = [xmlrpc.client.dumps(("",), "GetCycle").encode(),
             xmlrpc.client.dumps(("nobody", ""), "GetBalance").encode()]
    data = b"".join(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(c), c) for c in calls)
    with socket.create_connection(("127.0.0.1", exchange.service.api_port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"</methodResponse>") < 2:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
    first, second = received.split(b"HTTP/1.1 200 OK")[1:]
    cycle = exchange.node.peg_info()["cycle"]
    assert xmlrpc.client.loads(first.split(b"\r\n\r\n", 1)[1])[0] == (cycle,)
    assert xmlrpc.client.loads(second.split(b"\r\n\r\n", 1)[1])[0] == (False,)


def test_a_failed_write_stops_the_exchange_instead_of_answering_from_memory(exchange: ServiceHarness) -> None:
    """When the exchange DB cannot be written, the call waiting on it fails, and later calls are not answered
    from balances the disk does not hold: the exchange stops until the node restarts and reloads."""
    api = exchange.api
    api.SetPassword("pw", "")
    exchange.credit("karen", 5 * COIN, "pw")
    assert api.Trade("karen", COIN, "dave", "liquid", "pw") is True
    exchange.service.call(lambda engine: engine.store.db.close())  # the disk goes away under the exchange
    with pytest.raises(xmlrpc.client.Fault) as fault:
        api.Trade("karen", COIN, "dave", "liquid", "pw")
    # The fault names the cause and what to do (issue 14, item 12), and so does every later call.
    assert fault.value.faultCode == FAULT_EXCHANGE_FAILED
    assert fault.value.faultString.startswith("exchange mode stopped: a write to the exchange DB failed (")
    assert "Database is closed" in fault.value.faultString and "restart the node" in fault.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as later:
        api.GetBalance("dave", "pw")
    assert later.value.faultCode == FAULT_EXCHANGE_FAILED and later.value.faultString == fault.value.faultString
    assert exchange.service.state.value == "failed"
    # Failed, the exchange still asks for its password before stopping or shutting down.
    assert_refused("Incorrect Password", api.StartExchange, "wrong", 0)
    assert_refused("Incorrect Password", api.ShutDown, "wrong")
    assert exchange.stops == 0
    exchange.close()
    exchange.open()  # reloaded from the store: the answered trade is there, the failed one is not
    assert exchange.api.GetBalance("dave", "pw") == {"liquid": COIN, "reserve": 0}


def test_exchange_password_unlocks_an_encrypted_wallet(exchange: ServiceHarness) -> None:
    """With the exchange wallet encrypted (halo-exchange encrypt-wallet), a restarted exchange cannot make
    deposit keys until ExchangePassword gives the right passphrase; a wrong one is refused clearly."""
    api = exchange.api
    api.StartExchange("")
    first, ok = api.GenerateDepositAddress("")
    assert ok is True
    exchange.close()
    # The operator seals the wallet with the node stopped; a running node would hold the DB's lock.
    secret = exchange.tmp_path / "passphrase"
    secret.write_text("correct horse\n")
    assert cli.main(["encrypt-wallet", "--datadir", str(exchange.tmp_path), "--passphrase-file", str(secret)]) == 0
    assert cli.main(["encrypt-wallet", "--datadir", str(exchange.tmp_path), "--passphrase-file", str(secret)]) == 1
    exchange.open()
    api = exchange.api
    api.StartExchange("")
    assert_refused("The exchange wallet is locked. Use ExchangePassword first.",
                   api.GenerateDepositAddress, "", pair=True)
    assert "passphrase" in api.ExchangePassword("wrong", "")
    assert api.ExchangePassword("correct horse", "") is True
    second, ok = api.GenerateDepositAddress("")
    assert ok is True and second != first
    address = address_of(first)
    assert exchange.service.call(lambda engine: engine.wallet.private_key(address).to_wif(DEVNET_KEYS)) == first

"""Withdrawals paid end to end: the devnet node, exchange mode in it, and the stdlib XML-RPC client.

Each test drives the exchange as its software would (Withdraw, CheckWithdraw, GetBalance, GetSpendable) and
the chain through the devnet node (blocks, votes, the mempool helpers), and checks what a user would see:
the payee's coins on chain, the statuses, the balances, and that ``audit`` holds.
"""

from __future__ import annotations

import pytest

from halo_exchange.chain.tx import Transaction
from halo_exchange.peg.fractions import NOTARY_F
from tests.framework import CONFIRMATIONS, ServiceHarness, new_address, wait_until

COIN = 100_000_000
COMMISSION = {"min": 10_000_000, "max": 1_000_000_000, "percent": 0.001}

pytestmark = pytest.mark.usefixtures("reactor_thread")


@pytest.fixture
def exchange(tmp_path):
    with ServiceHarness(tmp_path) as harness:
        yield harness


def _set_up(exchange: ServiceHarness, user: str = "karen", amount: int = 50 * COIN) -> tuple[str, str]:
    """Credit ``user``, make an exchange account (a wallet address) and a fee account: (account, fee account)."""
    api = exchange.api
    exchange.credit(user, amount)
    account = exchange.deposit_address()
    fee_account = new_address()
    assert api.ExchangeSettings([account], fee_account, COMMISSION, "", "") is True
    return account, fee_account


def _status(exchange: ServiceHarness, withdraw_id: str) -> dict:
    answer = exchange.api.CheckWithdraw(withdraw_id, 0, "")
    assert isinstance(answer, dict), answer
    return answer


def _until_status(exchange: ServiceHarness, withdraw_id: str, status: str, blocks: int = 60) -> dict:
    """Produce blocks one at a time (and let a batch build) until the request reaches ``status``."""
    for _ in range(blocks):
        answer = wait_until(lambda: _settled(exchange, withdraw_id), timeout=20)
        if answer["status"] == status:
            return answer
        exchange.generate(1)
    raise AssertionError(f"{withdraw_id} never reached {status}: {_status(exchange, withdraw_id)}")


def _settled(exchange: ServiceHarness, withdraw_id: str) -> dict | None:
    """The request's status once no batch is being built or handed over (None while one is)."""
    busy = exchange.service.call(lambda engine: engine.payouts.building is not None)
    if busy:
        return None
    answer = _status(exchange, withdraw_id)
    if answer["status"] == "unconfirmed" and answer["txid"] not in exchange.node.mempool_txids():
        return None  # committed, not yet in the mempool: the node's submission thread has it
    return answer


def _payee_output(exchange: ServiceHarness, txid: str, address: str):
    tx = Transaction.from_hex(exchange.node.get_raw_transaction(txid))
    [(n, out)] = [(n, o) for n, o in enumerate(tx.outputs)
                  if o.value > 0 and exchange.node.reader.output(tx.hash, n).address == address]
    return tx, n, out


def test_a_liquid_withdrawal_is_paid_once_and_completes(exchange: ServiceHarness) -> None:
    """Withdraw → batched (unconfirmed, a predicted txid) → mined (processing) → complete after the confirmation
    setting; the payee receives amount − commission as liquid; the fee account the commission less the cost;
    the user's balance and the escrow drop by the amount exactly; the change shows in GetSpendable as change
    and cannot be deposited; audit holds at every step."""
    api = exchange.api
    account, fee_account = _set_up(exchange)
    before = api.GetBalance("karen", "")
    payee = new_address()
    ok, withdraw_id = api.Withdraw("karen", 10 * COIN, payee, "liquid", "")
    assert ok is True
    queued = _status(exchange, withdraw_id)
    assert queued["status"] == "queued" and queued["commission"] == 10_000_000 and queued["paid"] == 10 * COIN
    assert api.GetBalance("withdraws", "") == {"liquid": 10 * COIN, "reserve": 0}

    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    assert sent["txid"] in exchange.node.mempool_txids() and len(sent["ID"]) == 32
    assert api.CheckWithdraw(sent["ID"], 0, "")["withdraws"] == [withdraw_id]
    exchange.generate(1)
    seen = _status(exchange, withdraw_id)
    assert seen["status"] == "processing" and "txid2" not in seen
    assert exchange.audit().ok, exchange.audit().render()
    done = _until_status(exchange, withdraw_id, "complete")
    assert done["txid"] == sent["txid"]

    tx, n, out = _payee_output(exchange, sent["txid"], payee)
    assert out.value == 10 * COIN - 10_000_000
    supply = exchange.node.reader.peg_info().supply
    assert exchange.node.reader.output(tx.hash, n).fractions.high(supply) == out.value
    _, _, fee_out = _payee_output(exchange, sent["txid"], fee_account)
    assert 0 < fee_out.value < 10_000_000
    after = api.GetBalance("karen", "")
    assert after["liquid"] + after["reserve"] == before["liquid"] + before["reserve"] - 10 * COIN
    assert api.GetBalance("withdraws", "") == {"liquid": 0, "reserve": 0}
    change = {key: entry for key, entry in api.GetSpendable("", "").items() if entry.get("change") == 1}
    assert change and all(key.startswith(sent["txid"]) for key in change)
    assert api.Deposit("karen", [next(iter(change))], "") == "You can not deposit change transactions."
    report = exchange.audit()
    assert report.ok, report.render()


def test_a_reserve_withdrawal_arrives_frozen_as_reserve(exchange: ServiceHarness) -> None:
    """A reserve withdrawal pays the payee an **F** frozen output whose fractions are all reserve at the
    supply of the block that includes it."""
    api = exchange.api
    _set_up(exchange, amount=400 * COIN)  # a standard split: its low fractions become reserve as the supply rises
    exchange.generate(20, "deflate")  # one cycle of deflation votes: the supply rises 3 steps, three cycles on
    exchange.generate(3 * 20)
    before = api.GetBalance("karen", "")
    assert before["reserve"] > 2 * COIN
    payee = new_address()
    ok, withdraw_id = api.Withdraw("karen", 2 * COIN, payee, "reserve", "")
    assert ok is True, withdraw_id
    done = _until_status(exchange, withdraw_id, "complete", blocks=80)
    tx, n, out = _payee_output(exchange, done.get("txid2") or done["txid"], payee)
    info = exchange.node.reader.output(tx.hash, n)
    supply = exchange.node.reader.block_record(info.height).peg.supply
    assert out.value == 2 * COIN - 10_000_000
    assert info.fractions.flags & NOTARY_F and info.fractions.low(supply) == out.value
    after = api.GetBalance("karen", "")  # the votes cast keep moving the supply: compare values
    assert after["liquid"] + after["reserve"] == before["liquid"] + before["reserve"] - 2 * COIN
    assert exchange.audit().ok, exchange.audit().render()


def test_client_id_makes_withdraw_idempotent_and_limits_count_outstanding(exchange: ServiceHarness) -> None:
    """The same client ID answers the first answer and withdraws nothing more; refused attempts do not use
    up the limit (B4)."""
    api = exchange.api
    _set_up(exchange)
    payee = new_address()
    first = api.Withdraw("karen", 2 * COIN, payee, "liquid", "", "order-1")
    again = api.Withdraw("karen", 2 * COIN, payee, "liquid", "", "order-1")
    assert first[0] is True and again == first
    assert api.GetBalance("withdraws", "")["liquid"] == 2 * COIN
    assert api.CheckWithdraw("order-1", 0, "")["withdrawID"] == first[1]
    for _ in range(3):
        assert api.Withdraw("karen", "1000000000000", payee, "liquid", "") == ["Insufficient liquid balance", ""]
    assert api.Withdraw("karen", 2 * COIN, payee, "liquid", "", "order-2")[0] is True


def test_check_withdraw_clear_forgets_a_finished_request_once(exchange: ServiceHarness) -> None:
    """CheckWithdraw(ID, 1) on a finished request answers its last state and forgets it; the second time it
    answers "ID not found", and the exchange keeps running (the original's engine died here, B1)."""
    api = exchange.api
    _set_up(exchange)
    ok, withdraw_id = api.Withdraw("karen", 3 * COIN, new_address(), "liquid", "")
    assert api.CheckWithdraw(withdraw_id, 1, "")["status"] == "queued"  # unfinished: shown, kept
    done = _until_status(exchange, withdraw_id, "complete")
    assert api.CheckWithdraw(withdraw_id, 1, "")["status"] == "complete"
    assert api.CheckWithdraw(withdraw_id, 1, "") == "ID not found"
    assert api.CheckWithdraw("nope", 1, "") == "ID not found"
    assert api.CheckWithdraw(done["ID"], 0, "")["status"] == "complete"
    ok, second = api.Withdraw("karen", 3 * COIN, new_address(), "liquid", "")
    assert ok is True and _until_status(exchange, second, "complete")["status"] == "complete"


def test_a_dropped_transaction_is_resubmitted_and_completes(exchange: ServiceHarness) -> None:
    """The node drops the batch from its mempool: the exchange hands it over again, and it completes."""
    api = exchange.api
    _set_up(exchange)
    ok, withdraw_id = api.Withdraw("karen", 4 * COIN, new_address(), "liquid", "")
    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    exchange.node.drop_transaction(sent["txid"])
    wait_until(lambda: sent["txid"] in exchange.node.mempool_txids(), timeout=20)
    done = _until_status(exchange, withdraw_id, "complete")
    assert done["txid"] == sent["txid"]
    assert exchange.audit().ok


def test_a_malleated_transaction_completes_with_txid2(exchange: ServiceHarness) -> None:
    """The batch is mined under another txid (its signature re-encoded): it is still recognised by its first
    input and master ID, completes, and CheckWithdraw reports the observed txid as txid2; its change is
    change, not a deposit."""
    api = exchange.api
    _set_up(exchange)
    ok, withdraw_id = api.Withdraw("karen", 4 * COIN, new_address(), "liquid", "")
    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    other = exchange.node.malleate_transaction(sent["txid"])
    assert other != sent["txid"]
    exchange.generate(1)
    seen = _status(exchange, withdraw_id)
    assert seen["status"] == "processing" and seen["txid2"] == other
    done = _until_status(exchange, withdraw_id, "complete")
    assert done["txid2"] == other
    deposits = api.GetDeposits("", "")
    assert not any(key.startswith(other) for key in deposits)
    assert exchange.audit().ok, exchange.audit().render()


def test_a_payout_block_removed_by_a_reorg_goes_back_to_unconfirmed(exchange: ServiceHarness) -> None:
    """A reorg that removes the payout's block moves the request back to unconfirmed; the transaction returns
    to the mempool and completes on the new chain; paid once."""
    api = exchange.api
    _set_up(exchange)
    payee = new_address()
    ok, withdraw_id = api.Withdraw("karen", 4 * COIN, payee, "liquid", "")
    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    exchange.generate(1)
    height = exchange.node.block_count()
    assert _status(exchange, withdraw_id)["status"] == "processing"
    exchange.node.invalidate_block(height)
    exchange.sync()
    assert _status(exchange, withdraw_id)["status"] == "unconfirmed"
    assert exchange.audit().ok, exchange.audit().render()
    done = _until_status(exchange, withdraw_id, "complete")
    assert done["txid"] == sent["txid"]
    assert len(exchange.node.list_unspent(payee)) == 1
    assert exchange.audit().ok


def test_a_request_never_batched_expires_and_is_refunded(exchange: ServiceHarness) -> None:
    """Without exchange accounts a request cannot be paid: CheckWithdraw says why it waits; two cycles
    later it is expired and the user has every satoshi back."""
    api = exchange.api
    exchange.credit("karen", 20 * COIN)
    before = api.GetBalance("karen", "")
    ok, withdraw_id = api.Withdraw("karen", 5 * COIN, new_address(), "liquid", "")
    exchange.generate(8)
    assert "exchangeaccounts" in _status(exchange, withdraw_id).get("note", "")
    exchange.generate(2 * 20)
    assert _status(exchange, withdraw_id)["status"] == "expired"
    assert api.GetBalance("karen", "") == before
    assert exchange.audit().ok


def test_exchange_accounts_must_be_wallet_addresses(exchange: ServiceHarness) -> None:
    """An exchange account whose key the wallet does not hold is refused with a clear string; nothing is set."""
    api = exchange.api
    api.StartExchange("")
    answer = api.ExchangeSettings([new_address()], new_address(), "", "", "")
    assert isinstance(answer, str) and "wallet" in answer
    assert CONFIRMATIONS == 7

"""Withdrawals paid end to end: the devnet node, exchange mode in it, and the stdlib XML-RPC client.

Each test drives the exchange as its software would (Withdraw, CheckWithdraw, GetBalance, GetSpendable) and
the chain through the devnet node (blocks, votes, the mempool helpers), and checks what a user would see:
the payee's coins on chain, the statuses, the balances, and that ``audit`` holds.
"""

from __future__ import annotations

import pytest

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
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


def _to_cycle_start(exchange: ServiceHarness) -> None:
    """Produce blocks until the next block is the first of a cycle."""
    exchange.generate((20 - (exchange.node.block_count() + 1) % 20) % 20)


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


def test_a_cycle_change_under_a_queued_withdrawal_returns_what_left_its_style(exchange: ServiceHarness) -> None:
    """A deflation while a liquid request waits turns part of its escrow into reserve: that part goes back to
    the user at once, the payout shrinks to what the escrow still holds as liquid (CheckWithdraw shows the
    requested and the paid amount), and the payee receives paid − commission."""
    api = exchange.api
    exchange.credit("karen", 50 * COIN)
    exchange.generate(20 - exchange.node.block_count() % 20)  # the first block of a cycle
    exchange.generate(20, "deflate")  # these votes raise the supply three cycles later
    exchange.generate(20)
    before = api.GetBalance("karen", "")
    payee = new_address()
    ok, withdraw_id = api.Withdraw("karen", 20 * COIN, payee, "liquid", "")  # no exchange accounts yet: it waits
    exchange.generate(20 - exchange.node.block_count() % 20)  # the cycle whose supply is 3 steps higher
    record = _status(exchange, withdraw_id)
    assert record["status"] == "queued" and record["amount"] == 20 * COIN and 0 < record["paid"] < 20 * COIN
    returned = 20 * COIN - record["paid"]
    after = api.GetBalance("karen", "")
    assert after["liquid"] + after["reserve"] == before["liquid"] + before["reserve"] - record["paid"]
    assert api.GetBalance("withdraws", "") == {"liquid": record["paid"], "reserve": 0}
    assert returned > 0
    account = exchange.deposit_address()
    assert api.ExchangeSettings([account], new_address(), COMMISSION, "", "") is True
    done = _until_status(exchange, withdraw_id, "complete")
    _, _, out = _payee_output(exchange, done["txid"], payee)
    assert out.value == record["paid"] - record["commission"]
    assert exchange.audit().ok, exchange.audit().render()


def test_no_refund_while_the_signed_transaction_can_still_confirm(exchange: ServiceHarness) -> None:
    """The node keeps refusing the batch for more than two cycles: the request stays unconfirmed, its escrow
    held, never refunded (the original refunded and could pay twice, B19); once the node takes it again it
    completes, paid once."""
    api = exchange.api
    _set_up(exchange)
    payee = new_address()
    ok, withdraw_id = api.Withdraw("karen", 4 * COIN, payee, "liquid", "")
    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    exchange.node.refuse_transactions(10_000)
    exchange.node.drop_transaction(sent["txid"])
    exchange.generate(2 * 20 + 5)
    waiting = _status(exchange, withdraw_id)
    assert waiting["status"] == "unconfirmed" and sent["txid"] not in exchange.node.mempool_txids()
    assert api.GetBalance("withdraws", "")["liquid"] == 4 * COIN
    exchange.node.refuse_transactions(0)
    exchange.generate(1)  # the next block: the exchange hands it over again
    wait_until(lambda: sent["txid"] in exchange.node.mempool_txids(), timeout=20)
    done = _until_status(exchange, withdraw_id, "complete")
    assert done["txid"] == sent["txid"] and len(exchange.node.list_unspent(payee)) == 1
    assert exchange.audit().ok, exchange.audit().render()


def test_a_batch_whose_input_is_spent_elsewhere_fails_and_refunds_only_then(exchange: ServiceHarness) -> None:
    """While the batch waits outside the mempool, the exchange's own key spends its first input elsewhere
    (a double spend on purpose): once that spend has the confirmation setting's depth the batch can never
    confirm, so it is failed, the user refunded and its other coins freed, and not one block earlier."""
    api = exchange.api
    _set_up(exchange)
    before = api.GetBalance("karen", "")
    ok, withdraw_id = api.Withdraw("karen", 4 * COIN, new_address(), "liquid", "")
    sent = _until_status(exchange, withdraw_id, "unconfirmed")
    exchange.node.refuse_transactions(10_000)
    exchange.node.drop_transaction(sent["txid"])
    # The exchange hands it over again at once (refused), then only at the next block.
    wait_until(lambda: exchange.node._refusals < 10_000, timeout=20)
    exchange.node.refuse_transactions(0)

    def key_and_coin(engine):
        coin = engine.coins.get(OutPoint.from_hex(*_split(sent["in0"])))
        return engine.wallet.private_key(coin.address), coin

    key, coin = exchange.service.call(key_and_coin)
    script = address_to_script(coin.address, DEVNET_KEYS)
    spend = Transaction(1, exchange.node.reader.block_header(exchange.node.block_count()).time,
                        (TxIn(coin.outpoint),), (TxOut(coin.value - 20_000, address_to_script(new_address())),))
    spend = sign_input(spend, 0, key, script)
    exchange.node.send_raw_transaction(spend.to_hex())
    exchange.generate(CONFIRMATIONS - 1)
    assert _status(exchange, withdraw_id)["status"] == "unconfirmed"
    assert api.GetBalance("karen", "") != before
    exchange.generate(1)
    failed = _status(exchange, withdraw_id)
    assert failed["status"] == "failed" and "refunded" in failed["note"]
    assert api.GetBalance("karen", "") == before and api.GetBalance("withdraws", "")["liquid"] == 0
    locked = exchange.service.call(lambda engine: [c for c in engine.coins.coins.values() if c.lock])
    assert locked == []


def _split(outpoint: str) -> tuple[str, int]:
    txid, _, n = outpoint.partition(":")
    return txid, int(n)


def test_a_locked_wallet_makes_the_batch_wait_and_check_withdraw_says_so(exchange: ServiceHarness) -> None:
    """With the exchange wallet encrypted and locked, no batch can be signed: the request stays queued and
    CheckWithdraw says the wallet is locked; ExchangePassword unlocks it and the request is paid."""
    api = exchange.api
    _set_up(exchange)
    exchange.service.call(lambda engine: engine.encrypt_wallet("s3cret wallet"))
    exchange.service.call(lambda engine: engine.wallet.lock())
    ok, withdraw_id = api.Withdraw("karen", 3 * COIN, new_address(), "liquid", "")
    for _ in range(20):
        exchange.generate(1)
        waiting = wait_until(lambda: _settled(exchange, withdraw_id), timeout=20)
        if waiting.get("note"):
            break
    assert waiting["status"] == "queued" and "locked" in waiting["note"]
    assert api.ExchangePassword("s3cret wallet", "") is True
    assert _until_status(exchange, withdraw_id, "complete")["status"] == "complete"


def test_account_maintenance_merges_coins_of_different_liquidity(exchange: ServiceHarness) -> None:
    """Coins whose liquid sits differently above the supply (a standard deposit, and a frozen reserve deposit
    that became liquid when the supply fell) are merged in the maintenance window into four equal outputs to
    the exchange account, tracked like a batch to completion; its cost is the exchange's (maintenance debt),
    and the audit holds with it."""
    api = exchange.api
    account, _ = _set_up(exchange, amount=20 * COIN)
    _to_cycle_start(exchange)
    exchange.generate(20, "deflate")  # the supply rises, three cycles later
    exchange.generate(2 * 20 + 1)
    raised = exchange.node.reader.peg_info().supply
    assert raised > 0
    frozen_address = exchange.deposit_address()
    txid = exchange.node.send_frozen(frozen_address, COIN)  # reserve at the raised supply, frozen
    exchange.generate(1)
    exchange.name_deposit("karen", txid)
    _to_cycle_start(exchange)
    exchange.generate(20, "inflate")  # three cycles later the supply falls back: that reserve becomes liquid
    exchange.generate(2 * 20 + 1)
    assert exchange.node.reader.peg_info().supply < raised

    def maintenance(engine):
        return [b for b in engine.batches.values() if b.kind.value == "maintenance"]

    for _ in range(40):
        if exchange.service.call(maintenance):
            break
        exchange.generate(1)
    [batch] = exchange.service.call(maintenance)
    record = api.CheckWithdraw(batch.master_id, 0, "")
    assert record["kind"] == "maintenance" and record["withdraws"] == []
    for _ in range(20):
        if api.CheckWithdraw(batch.master_id, 0, "")["status"] == "complete":
            break
        exchange.generate(1)
    assert api.CheckWithdraw(batch.master_id, 0, "")["status"] == "complete"
    merged = [entry for key, entry in api.GetSpendable(account, "").items()
              if key.startswith(batch.txid) and entry.get("change") == 1]
    shares = [int(entry["amount"]) for entry in merged if int(entry["rtotal"]) == 0]
    assert len(shares) == 4 and len(set(shares)) == 1
    debt = exchange.service.call(lambda engine: engine.payout_state["debt"])
    assert debt == batch.cost > 0
    report = exchange.audit()
    assert report.ok, report.render()

    # The next withdrawal batch withholds the debt from the fee account's output: the exchange is square.
    ok, withdraw_id = api.Withdraw("karen", 3 * COIN, new_address(), "liquid", "")
    done = _until_status(exchange, withdraw_id, "complete")
    assert exchange.service.call(lambda engine: engine.payout_state["debt"]) == 0
    recovered = exchange.service.call(lambda engine: engine.batches[done["ID"]].recovered)
    assert recovered == debt
    report = exchange.audit()
    assert report.ok, report.render()


def test_a_withdrawal_to_an_address_of_the_exchange_is_a_deposit_not_change(exchange: ServiceHarness) -> None:
    """A user withdraws to another user's deposit address at the same exchange: the payee's output is a
    deposit (named and credited like any), only the batch's own change outputs are change; the audit holds."""
    api = exchange.api
    _set_up(exchange)
    bobs_address = exchange.deposit_address()
    ok, withdraw_id = api.Withdraw("karen", 10 * COIN, bobs_address, "liquid", "")
    done = _until_status(exchange, withdraw_id, "complete")
    tx, n, out = _payee_output(exchange, done["txid"], bobs_address)
    key = f"{done['txid']}:{n}"
    assert "change" not in api.GetSpendable(bobs_address, "")[key]
    assert api.GetDeposits(key, "")["status"] == "confirmed"
    assert api.Deposit("bobby", [key], "") is True
    assert sum(api.GetBalance("bobby", "").values()) == 10 * COIN - 10_000_000
    report = exchange.audit()
    assert report.ok, report.render()


def test_a_coin_that_comes_back_after_a_reorg_keeps_the_lock_of_its_batch(exchange: ServiceHarness) -> None:
    """A batch spends the change of a batch whose block a reorg removes and reconnects: the change coin comes
    back still locked by the batch that signed for it, so no third batch spends it too; every request is paid
    exactly once and nothing stays stuck."""
    api = exchange.api
    _set_up(exchange)
    payees = [new_address() for _ in range(3)]
    ok, first = api.Withdraw("karen", 4 * COIN, payees[0], "liquid", "")
    _until_status(exchange, first, "unconfirmed")
    exchange.generate(1)
    height = exchange.node.block_count()
    ok, second = api.Withdraw("karen", 4 * COIN, payees[1], "liquid", "")
    sent = _until_status(exchange, second, "unconfirmed", blocks=3)
    exchange.node.invalidate_block(height)
    exchange.sync()
    exchange.node.drop_transaction(sent["txid"])
    exchange.node.refuse_transactions(1)
    ok, third = api.Withdraw("karen", 4 * COIN, payees[2], "liquid", "")
    for withdraw_id in (first, second, third):
        _until_status(exchange, withdraw_id, "complete")
    assert [len(exchange.node.list_unspent(payee)) for payee in payees] == [1, 1, 1]
    stuck = exchange.service.call(lambda engine: [b.master_id for b in engine.batches.values()
                                                  if b.state.value == "unconfirmed"])
    assert stuck == []
    report = exchange.audit()
    assert report.ok, report.render()

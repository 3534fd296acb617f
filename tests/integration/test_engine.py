"""The exchange engine over a real devnet node and a real exchange DB: deposits credited into balances,
trades with the API's strings, answers only once durable, cycles re-valuing balances, restart."""

from __future__ import annotations

import pytest

from halo_exchange.chain.keys import DEVNET as DEVNET_KEYS
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.tx import Transaction
from halo_exchange.commands import NAME_INVALID, NAME_RESERVED, NAME_TOO_SHORT, NEGATIVE_BETWEEN_USERS, ZERO_AMOUNT
from halo_exchange.engine import ExchangeEngine
from halo_exchange.ledger.store import ExchangeStore
from halo_exchange.ledger.wallet import WalletState
from halo_exchange.rpc import views
from tests.framework import EngineHarness, assert_refused


@pytest.fixture
def harness(tmp_path):
    with EngineHarness(tmp_path) as harness:
        yield harness


def test_deposit_is_credited_and_survives_a_restart(harness: EngineHarness) -> None:
    """A named deposit lands in the owner's balance at 7 confirmations, and is still there after a restart."""
    harness.credit("alice", 10 * COIN)
    liquid, reserve = harness.engine.balance("alice")
    assert liquid + reserve == 10 * COIN
    harness.reopen()
    assert harness.engine.balance("alice") == (liquid, reserve)
    assert harness.engine.book.check() == []


def test_trades_move_balances_and_refusals_change_nothing(harness: EngineHarness) -> None:
    """Trades answer True once durable; each refusal answers the API's string and changes nothing."""
    harness.credit("alice", 10 * COIN)
    alice = harness.engine.balance("alice")
    assert harness.settle(harness.engine.trade("alice", COIN, "Alice")) is True
    assert harness.engine.balance("Alice") == (COIN, 0)  # a different user from "alice"
    refusals = [
        (("alice", -5, "bobby"), NEGATIVE_BETWEEN_USERS),
        (("alice", 0, "bobby"), ZERO_AMOUNT),
        (("alice", 10**12, "bobby"), "Insufficient liquid balance"),
        (("alice", alice[1] + 1, "bobby", "reserve"), "Insufficient reserve balance"),
        (("bob", 1, "alice"), NAME_TOO_SHORT),
        (("alice", 1, "Exchange"), NAME_RESERVED),
        (("alice", 1, "withdraws"), NAME_RESERVED),
        (("pool", 1, "alice"), NAME_RESERVED),
        (("alice", 1, "a" * 65), NAME_INVALID),
        (("alice", 1, "tab\there"), NAME_INVALID),
        (("bobby", 5, ""), "Insufficient funds in liquid pool. Please make the debit before the credit."),
        (("alice", 1.5, "bobby"), "whole number"),
    ]
    for args, message in refusals:
        assert_refused(message, harness.engine.trade, *args)
    assert harness.engine.balance("alice") == (alice[0] - COIN, alice[1])
    assert harness.engine.balance("bobby") is None
    assert harness.engine.commit.pending == 0


def test_one_sided_trades_go_through_the_pool(harness: EngineHarness) -> None:
    """A negative one-sided trade debits into the pool; a positive one credits from it, never beyond it."""
    harness.credit("alice", 5 * COIN)
    harness.settle(harness.engine.trade("alice", -2 * COIN, ""))
    assert harness.engine.balance("pool") == (2 * COIN, 0)
    harness.settle(harness.engine.trade("carol", 2 * COIN, ""))
    assert harness.engine.balance("carol") == (2 * COIN, 0) and harness.engine.balance("pool") == (0, 0)
    assert_refused("Insufficient funds in liquid pool", harness.engine.trade, "carol", 1, "")


def test_answer_only_after_the_batch_is_on_disk(harness: EngineHarness) -> None:
    """Two trades in one reactor turn share one batch; neither is answered before it is written."""
    harness.credit("alice", 5 * COIN)
    batches = harness.engine.commit.batches_written
    answers: list = []
    harness.engine.trade("alice", 1000, "bobby").addCallback(answers.append)
    harness.engine.trade("alice", 2000, "carol").addCallback(answers.append)
    assert answers == []
    harness.clock.advance(0)
    assert answers == [True, True] and harness.engine.commit.batches_written == batches + 1
    harness.reopen()
    assert harness.engine.balance("bobby") == (1000, 0) and harness.engine.balance("carol") == (2000, 0)


def test_new_cycle_revalues_balances_at_supply_plus_buffer(harness: EngineHarness) -> None:
    """When deflate votes raise the supply, the next cycle's balances hold more reserve, values unchanged."""
    harness.credit("alice", 50 * COIN)
    harness.settle(harness.engine.trade("alice", 10 * COIN, "bobby"))
    interval = harness.node.params.peg_interval
    assert harness.engine.book.supply == 3  # network supply 0 + buffer 3
    harness.generate(interval, "deflate")
    harness.generate(3 * interval)
    network = harness.node.peg_info()["peg"]
    assert network > 0 and harness.engine.book.supply == network + 3
    assert harness.engine.cycle == harness.node.peg_info()["cycle"]
    alice, bobby = harness.engine.balance("alice"), harness.engine.balance("bobby")
    assert sum(alice) == 40 * COIN and sum(bobby) == 10 * COIN and bobby[1] > 0
    assert harness.engine.book.check() == []
    with harness.engine.reader.snapshot() as view:
        figures = views.exchange_balance(view, harness.engine.book, harness.engine.deposits, harness.engine.coins)
    assert figures["liquid"] + figures["reserve"] == 50 * COIN
    assert figures["frozen"] == 0 and figures["subpremium"] == 0  # a wallet payment is rated like a fresh split


def test_reorg_of_a_registered_deposit_takes_the_credit_back(harness: EngineHarness) -> None:
    """A registered deposit whose block leaves the chain is taken back from the balance."""
    txid = harness.node.send_to_address(harness.address, 3 * COIN)
    harness.generate(1)
    height = harness.node.block_count()
    harness.name_deposit("dave", txid)
    harness.generate(6)
    assert sum(harness.engine.balance("dave")) == 3 * COIN
    harness.node.invalidate_block(height)
    harness.sync()
    assert harness.engine.balance("dave") == (0, 0)
    assert harness.engine.book.check() == []
    tx = Transaction.from_hex(harness.node.get_raw_transaction(txid))
    assert tx.txid == txid  # back in the mempool, to be credited again when mined


def test_catch_up_applies_blocks_missed_while_down(harness: EngineHarness) -> None:
    """Blocks the node connected while the engine was down are applied on restart, deposits included."""
    txid = harness.node.send_to_address(harness.address, 4 * COIN)
    harness.generate(1)
    harness.name_deposit("erin", txid)
    harness.stop_engine()
    harness.node.generate(2 * harness.node.params.peg_interval, "deflate")  # the engine hears nothing
    harness.start_engine()  # the engine starts again, behind the node
    assert harness.engine.balance("erin") is None
    harness.settle(harness.engine.catch_up())
    assert sum(harness.engine.balance("erin")) == 4 * COIN
    assert harness.engine.cycle == harness.node.peg_info()["cycle"]
    assert harness.engine.deposits.tip[0] == harness.node.block_count()


def test_catch_up_undoes_blocks_the_chain_dropped(harness: EngineHarness) -> None:
    """Blocks applied before a restart that the chain dropped meanwhile are undone first."""
    txid = harness.node.send_to_address(harness.address, 2 * COIN)
    harness.generate(1)
    height = harness.node.block_count()
    harness.name_deposit("finn", txid)
    harness.generate(6)
    assert sum(harness.engine.balance("finn")) == 2 * COIN
    harness.stop_engine()
    harness.node.invalidate_block(height)  # the deposit's block leaves while the engine is down
    harness.node.generate(2)
    harness.start_engine()  # the engine starts again, behind the node
    harness.settle(harness.engine.catch_up())
    finn = harness.engine.balance("finn")
    assert finn == (0, 0)  # reversed; the re-mined deposit has 2 confirmations, not yet 7
    assert harness.engine.deposits.tip[0] == harness.node.block_count()
    harness.generate(5)
    assert sum(harness.engine.balance("finn")) == 2 * COIN


def test_self_trade_and_any_printable_name(harness: EngineHarness) -> None:
    """B7/B8: a self-trade changes nothing and loses nothing; names with any printable characters are keys."""
    harness.credit("alice", 5 * COIN)
    before = harness.engine.balance("alice")
    assert harness.settle(harness.engine.trade("alice", COIN, "alice")) is True
    assert harness.engine.balance("alice") == before
    odd = "Ünïcødé_user-1.x/../etc"
    harness.settle(harness.engine.trade("alice", 12345, odd))
    harness.reopen()
    assert harness.engine.balance(odd) == (12345, 0)
    assert harness.engine.balance("alice") == (before[0] - 12345, before[1])


def test_withdrawal_request_escrows_in_its_own_account_and_expiry_refunds(harness: EngineHarness) -> None:
    """A request escrows exactly its amount (refused beyond the balance, changing nothing); with no exchange
    accounts set it cannot be paid, so two cycles later it expires and the user has everything back."""
    harness.credit("alice", 5 * COIN)
    liquid, reserve = harness.engine.balance("alice")
    payee = harness.node.get_new_address()
    assert_refused("Insufficient liquid balance", harness.engine.request_withdrawal, "alice", liquid + 1, payee)
    withdrawal_id = harness.settle(harness.engine.request_withdrawal("alice", 2 * COIN, payee))
    assert harness.engine.escrow_total() == (2 * COIN, 0)
    assert harness.engine.balance("alice") == (liquid - 2 * COIN, reserve)
    record = harness.engine.withdrawal(withdrawal_id)
    assert record.state.value == "queued" and record.commission == COIN and record.paid == 2 * COIN
    harness.reopen()
    assert harness.engine.withdrawal(withdrawal_id) == record
    harness.generate(2 * harness.node.params.peg_interval)
    assert harness.engine.withdrawal(withdrawal_id).state.value == "expired"
    assert harness.engine.balance("alice") == (liquid, reserve) and harness.engine.escrow_total() == (0, 0)
    assert harness.engine.book.check() == [] and harness.audit().ok


def test_generated_deposit_address_is_watched_and_its_key_kept(harness: EngineHarness) -> None:
    """GenerateDepositAddress: the key is durable and the address watched before the answer; with the
    wallet encrypted a locked wallet refuses, the right passphrase unlocks."""
    wif, address = harness.settle(harness.engine.generate_deposit_address())
    assert PrivateKey.from_wif(wif, DEVNET_KEYS).public_key().address(DEVNET_KEYS) == address
    txid = harness.node.send_to_address(address, 2 * COIN)
    harness.generate(1)
    harness.name_deposit("gina", txid)
    harness.generate(6)
    assert sum(harness.engine.balance("gina")) == 2 * COIN

    harness.settle(harness.engine.encrypt_wallet("s3cret passphrase"))
    harness.reopen()
    assert harness.engine.wallet.state is WalletState.LOCKED
    assert_refused("locked", harness.engine.generate_deposit_address)
    assert_refused("Incorrect exchange wallet passphrase", harness.engine.unlock_wallet, "wrong")
    harness.engine.unlock_wallet("s3cret passphrase")
    assert harness.engine.wallet.private_key(address).to_wif(DEVNET_KEYS) == wif
    _, second = harness.settle(harness.engine.generate_deposit_address())
    assert second in harness.engine.deposits.addresses


def test_reorg_across_a_cycle_boundary_takes_the_supply_back(harness: EngineHarness) -> None:
    """Blocks that started a cycle with a new supply, reorged out, take the book back to the old supply;
    a new branch brings it forward again; values and every invariant hold throughout."""
    harness.credit("alice", 40 * COIN)
    harness.credit("bobby", 10 * COIN)
    interval = harness.node.params.peg_interval
    harness.generate(interval, "deflate")
    while harness.node.peg_info()["pegnext"] == harness.node.peg_info()["peg"]:
        harness.generate(1)
    before = harness.engine.book.supply
    boundary = (harness.node.block_count() // interval + 1) * interval
    harness.generate(boundary - harness.node.block_count() + 2)
    assert harness.engine.book.supply != before
    harness.node.invalidate_block(boundary - 1)
    harness.sync()
    assert harness.engine.book.supply == before and harness.engine.book.check() == []
    harness.generate(5)
    assert harness.engine.book.supply == harness.node.peg_info()["peg"] + 3
    assert harness.engine.book.check() == []
    assert [sum(harness.engine.balance(u)) for u in ("alice", "bobby")] == [40 * COIN, 10 * COIN]
    assert harness.audit().ok


def test_api_answers_from_memory_wait_for_the_batch_of_their_turn(harness: EngineHarness) -> None:
    """A balance changed in this reactor turn is not revealed before that change is on disk, neither by a
    read nor by a refusal computed from it: both are answered with the batch. With nothing pending, at once."""
    import xmlrpc.client

    harness.credit("alice", 5 * COIN)
    call = harness.api_call

    def answer(body: bytes):
        return xmlrpc.client.loads(body)[0][0]

    assert answer(call("GetBalance", "alice", ""))["liquid"] == harness.engine.balance("alice")[0]  # at once
    harness.engine.trade("alice", COIN, "bobby")  # in this turn, not yet written
    balance, refusal = [], []
    call("GetBalance", "bobby", "").addCallback(balance.append)
    call("Trade", "bobby", 2 * COIN, "carol", "liquid", "").addCallback(refusal.append)
    assert balance == refusal == [] and not harness.account_on_disk("bobby")
    harness.clock.advance(0)
    assert harness.account_on_disk("bobby")
    assert answer(balance[0]) == {"liquid": COIN, "reserve": 0}
    assert answer(refusal[0]) == "Insufficient liquid balance"


def test_withdraw_limits_count_only_outstanding_accepted_requests(harness: EngineHarness) -> None:
    """With limits of 2 liquid and 1 reserve (configuration), the third liquid request is refused with the
    original's string, refused attempts do not count (B4), and a request that finished frees its slot."""
    harness.stop_engine()
    harness.store = ExchangeStore(str(harness.tmp_path / "exchange"))
    harness.engine = ExchangeEngine(harness.store, harness.node.reader, harness.clock.callLater,
                                    liquid_limit=2, reserve_limit=1)
    harness.credit("alice", 50 * COIN)
    payee = harness.node.get_new_address()
    for _ in range(3):
        assert_refused("Insufficient liquid balance", harness.engine.request_withdrawal, "alice", 10**15, payee)
    first = harness.settle(harness.engine.request_withdrawal("alice", 2 * COIN, payee))
    harness.settle(harness.engine.request_withdrawal("alice", 2 * COIN, payee))
    assert_refused("Withdraw limit reached, please wait until transactions clear.",
                   harness.engine.request_withdrawal, "alice", 2 * COIN, payee)
    harness.settle(harness.engine.request_withdrawal("alice", 120_000_000, payee, "reserve"))
    assert_refused("Reserve withdraw limit reached, please wait until transactions clear.",
                   harness.engine.request_withdrawal, "alice", 120_000_000, payee, "reserve")
    harness.generate(2 * harness.node.params.peg_interval)  # no exchange accounts: both expire, refunded
    assert harness.engine.withdrawal(first).state.value == "expired"
    harness.settle(harness.engine.request_withdrawal("alice", 2 * COIN, payee))


def test_reserves_grown_by_cycle_updates_are_repacked_a_few_a_turn_and_survive_a_restart(tmp_path) -> None:
    """With the packing thresholds shrunk to the devnet's low supplies: deflation cycles grow each account's
    array part, the engine re-packs them over the following turns, and a restart reads the same balances."""
    from unittest.mock import patch

    from halo_exchange.ledger import book as book_module

    shrunk = {"KEEP": 2, "KEEP_MIN": 1, "KEEP_MAX": 3, "PACK_FROM": 3, "HOT": 1}
    with patch.multiple(book_module, **shrunk), EngineHarness(tmp_path) as harness:
        for n in range(4):
            harness.credit(f"user{n}", (n + 1) * 7 * COIN)
        interval = harness.node.params.peg_interval
        book = harness.engine.book
        for _ in range(12):
            if book.supply >= 10:
                break
            harness.generate(interval, "deflate")
        assert book.supply >= 10 and book.check() == []
        harness.clock.advance(0)  # the turns after the block: tidy() runs
        harness.clock.advance(0)
        assert book.untidy() == 0
        assert all(account.in_shape() or name in book._hot for name, account in book.accounts.items())
        assert any(account.base for account in book.accounts.values())
        before = {name: harness.engine.balance(name) for name in book.accounts}
        harness.reopen()
        assert {name: harness.engine.balance(name) for name in before} == before
        assert harness.engine.book.check() == []

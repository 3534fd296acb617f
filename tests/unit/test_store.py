"""The exchange DB: schema check, atomic batches, group commit, and the book surviving a reopen exactly."""

from __future__ import annotations

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from halo_exchange.ledger.book import Book, LedgerError
from halo_exchange.ledger.store import SCHEMA, BookCodec, ExchangeStore, GroupCommit, StoreError
from tests import strategies as hs


def test_schema_is_written_then_checked(tmp_path) -> None:
    """A new DB gets the schema version; reopening works; a wrong version or foreign data is refused."""
    ExchangeStore(str(tmp_path / "x")).close()
    ExchangeStore(str(tmp_path / "x")).close()
    db = plyvel.DB(str(tmp_path / "x"))
    db.put(SCHEMA, (99).to_bytes(4, "little"))
    db.close()
    with pytest.raises(StoreError, match="schema 99"):
        ExchangeStore(str(tmp_path / "x"))
    foreign = plyvel.DB(str(tmp_path / "y"), create_if_missing=True)
    foreign.put(b"something", b"else")
    foreign.close()
    with pytest.raises(StoreError, match="not an exchange DB"):
        ExchangeStore(str(tmp_path / "y"))


def test_a_failing_batch_writes_nothing(tmp_path) -> None:
    """If any op of a batch fails, none of the batch reaches the DB."""
    store = ExchangeStore(str(tmp_path / "x"))
    try:
        with pytest.raises(TypeError):
            store.write([(b"a", b"1"), (b"b", "not bytes")])  # type: ignore[list-item]
        assert store.get(b"a") is None
        store.write([(b"a", b"1"), (b"a", None), (b"c", b"3")])
        assert (store.get(b"a"), store.get(b"c")) == (None, b"3")
    finally:
        store.close()


def test_group_commit_shares_one_batch_per_turn_and_answers_after_it(tmp_path) -> None:
    """Submissions of one reactor turn go to disk in one batch; nobody is answered before it is written."""
    store = ExchangeStore(str(tmp_path / "x"))
    clock = Clock()
    commit = GroupCommit(store, clock.callLater)
    answered = []
    try:
        for i in range(3):
            commit.submit([(b"k%d" % i, b"v")]).addCallback(lambda _, i=i: answered.append(i))
        assert answered == [] and store.get(b"k0") is None and commit.pending == 3
        clock.advance(0)
        assert answered == [0, 1, 2] and commit.batches_written == 1
        assert [store.get(b"k%d" % i) for i in range(3)] == [b"v"] * 3
        commit.submit([(b"k9", b"w")])
        clock.advance(0)
        assert commit.batches_written == 2
    finally:
        store.close()


def test_group_commit_failure_reaches_every_caller(tmp_path) -> None:
    """A batch that cannot be written fails every caller waiting on it."""
    store = ExchangeStore(str(tmp_path / "x"))
    clock = Clock()
    commit = GroupCommit(store, clock.callLater)
    failures = []
    for _ in range(2):
        commit.submit([(b"k", b"v")]).addErrback(lambda failure: failures.append(failure.check(StoreError)))
    store.close()  # the next write fails
    clock.advance(0)
    assert failures == [StoreError, StoreError]


def test_group_commit_stays_failed_after_a_failed_batch(tmp_path) -> None:
    """After a lost batch, a later batch would hold only the keys changed since: nothing more is written."""
    path = str(tmp_path / "x")
    store = ExchangeStore(path)
    clock = Clock()
    commit = GroupCommit(store, clock.callLater)
    real_write = store.write
    store.write = lambda ops: (_ for _ in ()).throw(OSError("disk full"))  # this one batch fails
    failures = []
    commit.submit([(b"k1", b"v")]).addErrback(lambda failure: failures.append(failure.check(StoreError)))
    clock.advance(0)
    store.write = real_write  # the disk is back, but the commit must not go on as if nothing happened
    commit.submit([(b"k2", b"v")]).addErrback(lambda failure: failures.append(failure.check(StoreError)))
    clock.advance(0)
    assert failures == [StoreError, StoreError] and commit.failure is not None
    assert (store.get(b"k1"), store.get(b"k2")) == (None, None)
    store.close()


def _same(a: Book, b: Book) -> bool:
    return (
        (a.cycle, a.supply, a.pool_total, a.next_id, a.pool, a.book)
        == (b.cycle, b.supply, b.pool_total, b.next_id, b.pool, b.book)
        and list(a.accounts) == list(b.accounts)
        and all(
            (x.id, x.liquid, list(x.reserve), x.reserve_total) == (y.id, y.liquid, list(y.reserve), y.reserve_total)
            for x, y in zip(a.accounts.values(), b.accounts.values())
        )
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1196), st.lists(hs.book_operations, max_size=25))
def test_book_written_change_by_change_reloads_identically(tmp_path_factory, supply: int, operations) -> None:
    """Writing only each operation's changes keeps the stored book identical to the one in memory."""
    path = str(tmp_path_factory.mktemp("store") / "x")
    store = ExchangeStore(path)
    book = Book(1, supply)
    store.write(BookCodec.full_ops(book))
    book.take_changes()
    try:
        for op in operations:
            try:
                hs.apply_book_operation(book, op)
            except LedgerError:
                pass
            store.write(BookCodec.change_ops(book))
        store.close()
        store = ExchangeStore(path)
        loaded = BookCodec.load(store)
        assert loaded is not None and _same(book, loaded)
        assert loaded.check() == []
    finally:
        store.close()


def test_load_state_reads_back_every_record_kind(tmp_path) -> None:
    """What each codec writes, load_state reads back: settings, watched addresses and own transactions, wallet
    keys, withdrawals, deposits' confirmation setting; a new DB has no book."""
    from halo_exchange.ledger.store import SettingsCodec, WalletCodec, WatchCodec, WithdrawalCodec, load_state
    from halo_exchange.ledger.wallet import ExchangeWallet
    from halo_exchange.ledger.withdrawals import Withdrawal, WithdrawalState

    store = ExchangeStore(str(tmp_path / "x"))
    fresh = load_state(store, confirmations=9)
    assert fresh.book is None and fresh.settings == {} and fresh.withdrawals == {}
    assert fresh.deposits.confirmations == 9 and fresh.wallet.addresses == set()

    _, address, record = ExchangeWallet({}, None).new_key()
    withdrawal = Withdrawal("ab" * 16, "alice", 5 * 10**8, address, "reserve", 12, cycle=3, commission=10**8,
                            paid=5 * 10**8, state=WithdrawalState.QUEUED, client_id="order-17")
    store.write(SettingsCodec.ops({"exchangeconfirmations": 11, "exchangefeeaccount": "fees"})
                + [WatchCodec.address_op(address), WatchCodec.own_tx_op(b"\x07" * 32)]
                + WalletCodec.key_ops({address: record}) + [WithdrawalCodec.op(withdrawal)])
    state = load_state(store, confirmations=9)
    assert state.settings == {"exchangeconfirmations": 11, "exchangefeeaccount": "fees"}
    assert state.deposits.confirmations == 11  # the stored setting wins over the configured default
    assert state.deposits.addresses == {address} and state.deposits.own_txids == {b"\x07" * 32}
    assert state.wallet.addresses == {address}
    assert state.withdrawals == {withdrawal.id: withdrawal}
    store.close()


def test_coin_records_round_trip_with_lock_and_spend() -> None:
    """A coin's record keeps its address, value, origin, lock, spend and fractions exactly; the stored form of
    its fractions is reused, not re-packed, when only its lock or spend marks change."""
    from halo_exchange.chain.tx import OutPoint
    from halo_exchange.ledger.coins import Coin
    from halo_exchange.ledger.store import CoinCodec
    from halo_exchange.peg.fractions import Fractions

    fractions = Fractions.from_value(123_456_789)
    coin = Coin(OutPoint(b"\x07" * 32, 3), "Baddress", 123_456_789, fractions, 42, "change", "ab" * 16, 50,
                b"\x09" * 32)
    stored = CoinCodec.pack(coin)
    back = CoinCodec.unpack(coin.outpoint, stored)
    assert back == coin and back.fractions.to_list() == fractions.to_list()
    assert back.packed_fractions == coin.packed_fractions == fractions.pack()
    back.lock = None
    assert CoinCodec.unpack(coin.outpoint, CoinCodec.pack(back)).lock is None


def test_a_whole_deposit_tracker_written_at_once_reloads_identically(tmp_path) -> None:
    """DepositCodec.full_ops (recover writes a rebuilt tracker whole): deposits in every state, the waiting owners,
    the applied block and the tip all come back; pre-packed fractions are stored as given."""
    from halo_exchange.chain.tx import OutPoint
    from halo_exchange.ledger.deposits import Deposit, DepositState, DepositTracker
    from halo_exchange.ledger.store import DepositCodec
    from halo_exchange.peg.fractions import Fractions

    tracker = DepositTracker()
    deposits = [Deposit(bytes([i]) * 32, i, f"addr{i}", 10**8 * (i + 1), 5 + i, Fractions.std(10**8 * (i + 1)),
                        state, owner) for i, (state, owner) in enumerate(
                            [(DepositState.SEEN, None), (DepositState.CONFIRMED, "bobby"),
                             (DepositState.REGISTERED, "alice")])]
    waiting = {OutPoint(b"\x09" * 32, 1): "carol"}
    tracker.restore(deposits, waiting, {40: (b"\x07" * 32, 1234)}, (40, 1234))
    packed = {deposits[2].outpoint: deposits[2].fractions.pack()}
    store = ExchangeStore(str(tmp_path / "x"))
    store.write(DepositCodec.full_ops(tracker, packed))
    again = DepositTracker()
    DepositCodec.load(store, again)
    store.close()
    assert again.deposits == tracker.deposits and again.owners_waiting() == waiting
    assert again.applied_blocks() == {40: (b"\x07" * 32, 1234)} and again.tip == (40, 1234)

"""The packed deep reserve (ledger/packing.py) and the book that keeps idle reserves packed: lossless for any
vector, a few hundred bytes for a deep reserve, and a packed book that behaves exactly as one kept whole."""

from __future__ import annotations

import random
import struct
from unittest.mock import patch

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.ledger import book as book_module
from halo_exchange.ledger import packing
from halo_exchange.ledger.book import KEEP, Book, LedgerError
from halo_exchange.ledger.store import ACCOUNT, SCHEMA, BookCodec, ExchangeStore
from halo_exchange.peg import Fractions
from halo_exchange.serialize import pack_i64, pack_u32
from tests import strategies as hs

INT64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(INT64, max_size=300))
def test_any_int64_vector_packs_and_unpacks_exactly(values: list[int]) -> None:
    assert packing.unpack(packing.pack(values), len(values)) == values


@pytest.mark.parametrize("value", [1, 99, 12_345_678, 10**12, 5 * 10**15])
@pytest.mark.parametrize("length", [1, 100, 600, 1198])
def test_a_standard_split_packs_small(value: int, length: int) -> None:
    values = Fractions.std(value).to_list()[:length]
    blob = packing.pack(values)
    assert packing.unpack(blob, length) == values
    assert len(blob) <= 40 + length // 4  # vs 4 or 8 bytes an index as an array


def test_damaged_blobs_are_refused() -> None:
    blob = packing.pack(Fractions.std(10**12).to_list()[:500])
    for damaged, length in ((blob[:-5], 500), (blob, 499), (b"\x09" + blob[1:], 500), (b"", 3), (blob, 0)):
        with pytest.raises(packing.PackError):
            packing.unpack(damaged, length)


def _state(book: Book) -> tuple:
    accounts = {name: (a.liquid, a.reserve_total, a.reserve_list()) for name, a in book.accounts.items()}
    return book.cycle, book.supply, list(book.pool), list(book.book), book.pool_total, accounts


book_runs = st.tuples(st.integers(40, 1196), st.lists(st.one_of(hs.book_operations, st.just(("tidy",))),
                                                      max_size=50))


def _run(supply: int, operations) -> Book:
    book = Book(1, supply)
    for op in operations:
        if op[0] == "tidy":
            book.tidy(3)
            continue
        try:
            hs.apply_book_operation(book, op)
        except LedgerError:
            pass
        assert book.check() == []
    return book


@settings(max_examples=80, deadline=None)
@given(book_runs)
def test_a_packed_book_is_exactly_a_book_kept_whole(run) -> None:
    """The same operations on a book that packs (the default) and one that never packs end in the same state,
    index for index: packing changes how a reserve is kept, never what it holds."""
    supply, operations = run
    packed = _run(supply, operations)
    with patch.object(book_module, "PACK_FROM", 10**9):
        whole = _run(supply, operations)
        assert all(account.base == 0 for account in whole.accounts.values())
    assert _state(packed) == _state(whole)


def test_long_runs_of_inflation_and_deflation_take_the_slow_path_and_stay_exact() -> None:
    """Cycle after cycle in one direction moves the array part out of shape; without tidy() an inflation
    reaches the packed part (the slow path unpacks it), with tidy() it never does; both stay exact."""
    rng = random.Random(17)
    for tidy in (False, True):
        book = Book(1, 700)
        for n in range(40):
            book.credit(f"user{n:03d}", Fractions.std(rng.randrange(10**8, 10**13)))
        for name in list(book.accounts)[:20]:
            book.move_reserve(name, "user039", book.account(name).reserve_total // 3)
        reference = {name: a.value for name, a in book.accounts.items()}
        for step in [-3] * 12 + [3] * 25 + [-3] * 30:
            book.new_cycle(book.cycle + 1, book.supply + step)
            if tidy:
                assert book.tidy(1000) == 0
                assert all(account.in_shape() or name in book._hot for name, account in book.accounts.items())
            assert book.check() == []
        assert {name: a.value for name, a in book.accounts.items()} == reference


def test_an_idle_account_at_the_highest_supply_keeps_a_few_hundred_bytes_of_reserve() -> None:
    """Whole while among the accounts used last (HOT), packed once it drops out of them."""
    book = Book(1, 1198)
    with patch.object(book_module, "HOT", 2):
        book.credit("whale", Fractions.std(10**15))
        account = book.account("whale")
        assert account.base == 0 and len(account.reserve) == 1198
        book.credit("orca", Fractions.std(10**14))
        assert account.base == 0  # still one of the last two
        book.move_reserve("orca", "dolphin", 10**8)  # orca and dolphin are now the last two
    assert account.base == 1198 - KEEP and len(account.reserve) == KEEP
    assert len(account.deep) < 300 and account.reserve_list() == Fractions.std(10**15).to_list()[:1198]


def test_the_stored_form_keeps_the_packed_reserve_and_reads_back_the_same(tmp_path) -> None:
    book = Book(1, 900)
    book.credit("alice", Fractions.std(10**13))
    book.credit("bobby", Fractions.std(123_456))
    for name, account in book.accounts.items():
        again = BookCodec.unpack_account(BookCodec.pack_account(account))
        assert (again.id, again.liquid, again.reserve_total, again.base, again.deep, again.reserve_list()) == (
            account.id, account.liquid, account.reserve_total, account.base, account.deep, account.reserve_list())
    record = BookCodec.pack_account(book.account("alice"))
    for damaged in (record[:-8], record[:10], record + b"\0" * 8):
        with pytest.raises(Exception, match="damaged"):
            BookCodec.unpack_account(damaged)


def test_a_schema_1_db_is_upgraded_at_open_with_every_balance_kept(tmp_path) -> None:
    """A DB written before packing (whole reserves, schema 1) opens: every account is re-written packed and
    the version moves to 2, in one batch."""
    path = str(tmp_path / "exchange")
    book = Book(3, 1100)
    for n, value in enumerate((10**9, 10**14, 77)):
        book.credit(f"user{n}", Fractions.std(value))
    store = ExchangeStore(path)
    store.write(BookCodec.full_ops(book))
    store.close()
    db = plyvel.DB(path)
    with db.write_batch() as batch:
        batch.put(SCHEMA, pack_u32(1))
        for name, account in book.accounts.items():
            values = account.reserve_list()
            batch.put(ACCOUNT + name.encode(), pack_u32(account.id) + pack_i64(account.liquid)
                      + struct.pack("<H", len(values)) + struct.pack(f"<{len(values)}q", *values))
    db.close()
    store = ExchangeStore(path)
    assert store.get(SCHEMA) == pack_u32(2)
    loaded = BookCodec.load(store)
    store.close()
    assert _state(loaded) == _state(book) and loaded.check() == []
    assert loaded.account("user1").base > 0

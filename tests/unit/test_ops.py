"""The pegops reference: cycle levels and pools, balance updates, moves between balances, removal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_exchange.errors import PegError
from halo_exchange.peg import PEG_SIZE, Fractions, PegData, PegLevel, ops

EMPTY = PegData.from_base64("")


def _sum(balances) -> list[int]:
    total = Fractions.zero()
    for balance in balances:
        total = total + balance.fractions
    return total.to_list()


def _new_cycle(users: list[PegData], cycle: int, supply: int, pegshift: PegData = EMPTY, buffer: int = 0):
    """Run one cycle update over all users the way an exchange does; return users, level, final pool."""
    exchange = PegData(Fractions(_sum(users)), users[0].level, 0, 0)
    exchange = PegData.at_level(exchange.fractions, users[0].level)
    level, pool = ops.get_peg_level(cycle, cycle - 1, buffer, supply, supply, supply, exchange, pegshift)
    updated = []
    for user in users:
        user, pool = ops.update_peg_balance(user, pool, level)
        updated.append(user)
    return updated, level, pool


def test_test5_sequence_one_then_two_users() -> None:
    """bitbay-core test5 (peg-spec V15/V16): liquid/reserve of each user over cycles 2-5, pool emptied."""
    user1 = PegData.at_level(Fractions([23] * PEG_SIZE), PegLevel(1, 0, 0, 3, 3, 3))
    level, pool = ops.get_peg_level(1, 0, 0, 3, 3, 3, user1, EMPTY)
    assert level.to_hex() == "02010000000000000000000000000000000000030003000300000000000000000000000000000000000000"
    assert pool.fractions.total() == pool.liquid == 27531 and pool.id == 0

    users, level, pool = _new_cycle([user1], 2, 13)
    assert level.to_hex().startswith("020200000000000000010000000000000000000d000d000d00")
    assert (users[0].liquid, users[0].reserve, users[0].id) == (27301, 299, 1)
    assert pool.fractions.is_zero() and pool.id == 1
    users, level, pool = _new_cycle(users, 3, 23)
    assert (users[0].liquid, users[0].reserve) == (27071, 529)

    user2 = PegData.at_level(Fractions([0] * 10 + [79] * 1090 + [0] * 100), level)
    users, level, pool = _new_cycle(users + [user2], 4, 33)
    assert [(u.liquid, u.reserve) for u in users] == [(26841, 759), (84293, 1817)]
    assert users[1].id == 2 and pool.fractions.is_zero()
    users, level, pool = _new_cycle(users, 5, 28)
    assert [(u.liquid, u.reserve) for u in users] == [(26956, 644), (84688, 1422)]
    assert pool.fractions.is_zero()


def test_get_peg_level_stops_the_shift_at_an_exact_fit() -> None:
    """getpeglevel(1, 0, 0, 1, 1, 1) with book [100, 100, 100] and pegshift {0: 100, 1: -100}: the C++ level
    is shift 1, part 0, total 0, and the pool is the book from index 2 (100, all liquid)."""
    level0 = PegLevel(0, 0, 0, 0, 0, 0)
    exchange = PegData.at_level(Fractions([100, 100, 100]), level0)
    pegshift = PegData.at_level(Fractions([100, -100]), level0)
    level, pool = ops.get_peg_level(1, 0, 0, 1, 1, 1, exchange, pegshift)
    # v2: version 2, cycle 1, prev 0, buffer 0, supply/next/nextnext 1, shift 1, part 0, total 0.
    assert level.to_hex() == "02" + "0100000000000000" + "00" * 8 + "0000" + "0100" * 4 + "00" * 16
    assert pool.fractions.to_list()[:3] == [0, 0, 100]
    assert (pool.liquid, pool.reserve, pool.id) == (100, 0, 0)


def test_update_already_at_cycle_changes_nothing() -> None:
    """A balance already at the level's cycle comes back unchanged and the pool is untouched."""
    users, level, pool = _new_cycle([PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3))], 2, 5)
    again, pool_after = ops.update_peg_balance(users[0], pool, level)
    assert again == users[0] and pool_after == pool


def test_update_refuses_skipped_cycle_and_future_balance() -> None:
    """A non-empty balance must come from the level's previous cycle; one from a later cycle is refused."""
    balance = PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3))
    level, pool = ops.get_peg_level(3, 2, 0, 5, 5, 5, balance, EMPTY)
    with pytest.raises(PegError, match="Mismatch for peglevel_new.nCyclePrev"):
        ops.update_peg_balance(balance, pool, level)
    future = PegData.at_level(Fractions.std(10**8), PegLevel(9, 8, 0, 3, 3, 3))
    with pytest.raises(PegError):
        ops.update_peg_balance(future, pool, level)
    stale_pool = PegData.at_level(pool.fractions, PegLevel(2, 1, 0, 5, 5, 5))
    with pytest.raises(PegError):
        ops.update_peg_balance(balance, stale_pool, level)


def test_update_refuses_invalid_balance_and_leaves_inputs_alone() -> None:
    """An invalid balance is refused and neither it nor the pool is modified."""
    balance = PegData.at_level(Fractions.std(10**8), PegLevel(1, 0, 0, 3, 3, 3))
    level, pool = ops.get_peg_level(2, 1, 0, 5, 5, 5, balance, EMPTY)
    broken = PegData(balance.fractions, balance.level, balance.liquid + 1, balance.reserve)
    before = (broken.fractions.to_list(), pool.fractions.to_list())
    with pytest.raises(PegError):
        ops.update_peg_balance(broken, pool, level)
    assert (broken.fractions.to_list(), pool.fractions.to_list()) == before


def _two_users(level: PegLevel):
    a = PegData.at_level(Fractions.std(10**9), level, id=1)
    b = PegData.at_level(Fractions.std(3 * 10**8), level, id=2)
    return a, b


def test_move_liquid_moves_only_liquid_fractions() -> None:
    """moveliquid moves exactly the amount, only from indexes at or above the supply, conserving each index."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    a, b = _two_users(level)
    a2, b2 = ops.move_liquid(123_456_789, a, b, level)
    assert (a2.liquid, b2.liquid) == (a.liquid - 123_456_789, b.liquid + 123_456_789)
    assert (a2.reserve, b2.reserve) == (a.reserve, b.reserve)
    assert _sum([a2, b2]) == _sum([a, b])
    moved = (b2.fractions - b.fractions).to_list()
    assert sum(moved[:50]) == 0 and sum(moved) == 123_456_789
    assert a2.is_valid() and b2.is_valid()


def test_move_reserve_moves_only_reserve_fractions() -> None:
    """movereserve moves exactly the amount from below the supply."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    a, b = _two_users(level)
    a2, b2 = ops.move_reserve(1000, a, b, level)
    assert (a2.reserve, b2.reserve) == (a.reserve - 1000, b.reserve + 1000)
    moved = (b2.fractions - b.fractions).to_list()
    assert sum(moved[50:]) == 0 and sum(moved) == 1000
    assert _sum([a2, b2]) == _sum([a, b])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, b, lv: ops.move_liquid(a.liquid + 1, a, b, lv), "Not enough liquid"),
        (lambda a, b, lv: ops.move_reserve(a.reserve + 1, a, b, lv), "Not enough reserve"),
        (lambda a, b, lv: ops.move_liquid(-1, a, b, lv), "negative"),
        (lambda a, b, lv: ops.move_liquid(1, a, PegData(b.fractions, b.level, b.liquid, b.reserve, a.id), lv), "same"),
        (lambda a, b, lv: ops.move_liquid(1, a, b, PegLevel(2, 1, 0, 51, 51, 51)), "Outdated"),
    ],
    ids=["too-much-liquid", "too-much-reserve", "negative", "same-id", "outdated"],
)
def test_moves_refuse_bad_requests(call, message: str) -> None:
    """Moves refuse too much, negative amounts, the same balance twice and outdated balances."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    a, b = _two_users(level)
    before = (a.fractions.to_list(), b.fractions.to_list())
    with pytest.raises(PegError, match=message):
        call(a, b, level)
    assert (a.fractions.to_list(), b.fractions.to_list()) == before


def test_move_accepts_previous_cycle_at_same_effective_level() -> None:
    """A balance left at the previous cycle still trades while the effective level is unchanged."""
    a, b = _two_users(PegLevel(1, 0, 0, 50, 50, 50))
    a2, _ = ops.move_liquid(10, a, b, PegLevel(2, 1, 0, 50, 52, 52))
    assert a2.liquid == a.liquid - 10


def test_move_liquid_on_partial_level_uses_own_partial_liquid() -> None:
    """On a partial level the source's own liquid share of the split fraction can be traded away."""
    level = PegLevel(1, 0, 0, 10, 10, 10).evolve(shift=1, shift_last_part=1, shift_last_total=3)
    a = PegData.at_level(Fractions([7] * PEG_SIZE), level, id=1)
    b = PegData.at_level(Fractions.zero(), level, id=2)
    a2, b2 = ops.move_liquid(a.liquid, a, b, level)
    assert a2.liquid == 0 and b2.liquid == a.liquid == 8320
    assert a2.fractions.to_list()[:11] == [7] * 11 and a2.fractions[11] == 3  # the reserve piece stays
    assert a2.is_valid() and b2.is_valid()


def test_move_coins_revalues_both() -> None:
    """movecoins moves a slice of the whole value and recomputes both splits at the level."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    a, b = _two_users(level)
    a2, b2 = ops.move_coins(10**8, a, b, level)
    assert a2.fractions.total() == 9 * 10**8 and b2.fractions.total() == 4 * 10**8
    assert a2.is_valid() and b2.is_valid() and a2.level == level
    with pytest.raises(PegError):
        ops.move_coins(10**10, a, b, level)


def test_move_coins_has_no_same_id_guard() -> None:
    """Only moveliquid/movereserve refuse two balances with one nId (peg-spec §3.4); movecoins does not."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    a, b = _two_users(level)
    b = PegData(b.fractions, b.level, b.liquid, b.reserve, a.id)
    a2, b2 = ops.move_coins(10**8, a, b, level)
    assert a2.fractions.total() == 9 * 10**8 and b2.fractions.total() == 4 * 10**8
    with pytest.raises(PegError, match="same user"):
        ops.move_liquid(1, a, b, level)


def test_update_does_not_refuse_negative_fractions_from_the_pool() -> None:
    """updatepegbalances checks value, L+R and the level relations only (peg-spec §3.4 step 4): a pool holding
    a negative fraction (left by removecoins in another balance) may pass some of it on, as bitbay-core does."""
    level = PegLevel(1, 0, 0, 50, 50, 50)
    debtor = [0] * PEG_SIZE
    debtor[100], debtor[200] = -5, 10**6
    other = [0] * PEG_SIZE
    other[300] = 10**6
    u1 = PegData.at_level(Fractions(debtor), level, id=1)
    u2 = PegData.at_level(Fractions(other), level, id=2)
    exchange = PegData.at_level(u1.fractions + u2.fractions, level)
    new_level, pool = ops.get_peg_level(2, 1, 0, 50, 50, 50, exchange, EMPTY)
    updated, pool = ops.update_peg_balance(u2, pool, new_level)
    assert updated.fractions[100] < 0 and updated.fractions.total() == 10**6 and updated.is_valid()
    updated1, pool = ops.update_peg_balance(u1, pool, new_level)
    assert pool.fractions.is_zero()
    assert (updated.fractions + updated1.fractions).to_list() == exchange.fractions.to_list()


def test_remove_coins() -> None:
    """removecoins(b, b) is empty; removing from an empty balance gives a valid negative one."""
    b = PegData.at_level(Fractions.std(10**8), PegLevel(0, 0, 0, 0, 0, 0))
    assert ops.remove_coins(b, b).is_empty()
    negative = ops.remove_coins(EMPTY, b)
    assert negative.is_valid() and not negative.is_positive()
    assert negative.liquid == -(10**8) and negative.reserve == 0


# -- properties over many users and cycles ----------------------------------------------------------


@st.composite
def _exchange(draw):
    users = draw(st.lists(st.integers(0, 10**12), min_size=1, max_size=12))
    start = draw(st.integers(0, 1100))
    steps = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=4))
    shift_index = draw(st.integers(0, 80))
    shift_amount = draw(st.integers(0, 10**9))
    return users, start, steps, shift_index, shift_amount


@settings(max_examples=40, deadline=None)
@given(_exchange(), st.data())
def test_cycle_updates_conserve_and_empty_the_pool(case, data) -> None:
    """Over random users, supply moves, trades and pegshifts: the pool empties, every index is conserved,
    every balance keeps its value and stays valid."""
    values, supply, steps, shift_index, shift_amount = case
    level0 = PegLevel(1, 0, 0, supply, supply, supply)
    users = [PegData.at_level(Fractions.std(v), level0, id=i + 1) for i, v in enumerate(values)]
    book = _sum(users)
    cycle = 1
    for step in steps:
        cycle += 1
        supply = max(0, min(1196, supply + step))
        # A pegshift moving some liquid into reserve makes the level shifted (often partial).
        pegshift = Fractions.zero()
        target = min(supply + shift_index, PEG_SIZE - 1)
        amount = min(shift_amount, max(0, book[target]))
        pegshift = Fractions([0] * PEG_SIZE)
        shift_vec = pegshift.to_list()
        shift_vec[0] += amount
        shift_vec[target] -= amount
        pegshift = PegData.at_level(Fractions(shift_vec), PegLevel(0, 0, 0, 0, 0, 0))
        exchange = PegData.at_level(Fractions(book), users[0].level)
        level, pool = ops.get_peg_level(cycle, cycle - 1, 3, supply, supply, supply, exchange, pegshift)
        updated = []
        for user in users:
            new, pool = ops.update_peg_balance(user, pool, level)
            assert new.fractions.total() == user.fractions.total()
            assert new.is_valid() and new.is_positive()
            updated.append(new)
        users = updated
        assert pool.fractions.is_zero(), (level, pool.fractions.total(), pool.reserve)
        assert _sum(users) == book
        # Random liquid trades within the cycle conserve every index too.
        for _ in range(data.draw(st.integers(0, 4))):
            i, j = data.draw(st.integers(0, len(users) - 1)), data.draw(st.integers(0, len(users) - 1))
            if i == j:
                continue
            amount = data.draw(st.integers(0, users[i].liquid))
            users[i], users[j] = ops.move_liquid(amount, users[i], users[j], level)
        assert _sum(users) == book


# -- bitbay-core's own answers (issue 10: items 3 and 9, and the exported string calls) ---------------------


def test_move_coins_keeps_an_effectively_equal_level() -> None:
    """movecoins sets the level on an output only where it differs by bitbay-core's equality (cycles
    ignored): Std(1e6) and Std(5000) at (1, 0, 0, 10, 10, 10) moved at (2, 1, 0, 10, 11, 12) keep their
    level, cycle 1 and all; the liquid and reserve are recomputed at the move's level."""
    level1 = PegLevel(1, 0, 0, 10, 10, 10)
    a = PegData.at_level(Fractions.std(1000000), level1, id=1)
    b = PegData.at_level(Fractions.std(5000), level1, id=2)
    a2, b2 = ops.move_coins(1000, a, b, PegLevel(2, 1, 0, 10, 11, 12))
    assert a2.level == level1 and b2.level == level1
    assert (b2.liquid, b2.reserve) == (5424, 576)
    assert a2.fractions.total() == 999000 and b2.fractions.total() == 6000


def test_move_coins_refuses_a_kept_plain_level_that_cannot_hold_a_partial_split() -> None:
    """A 0/0 partial ratio equals any ratio at the same effective index: at a partial level with index 10
    the outputs keep their plain level, whose exact split the partial liquid/reserve do not match, so the
    C++ answers "Returned invalid 'src' pegdata" (cross-cycle move, as the RPC makes it)."""
    level1 = PegLevel(1, 0, 0, 10, 10, 10)
    a = PegData.at_level(Fractions.std(1000000), level1, id=1)
    b = PegData.at_level(Fractions.std(5000), level1, id=2)
    partial = PegLevel(2, 1, 0, 10, 11, 12).evolve(shift_last_part=1, shift_last_total=3)
    with pytest.raises(PegError, match="Returned invalid 'src' pegdata"):
        ops.move_coins(1000, a, b, partial, cross_cycles=True)


def test_move_coins_does_not_check_for_negative_source_fractions() -> None:
    """movecoins has no check that the source keeps no negative fraction: [-5, 100] gives 50 as pieces
    -2 and 52 and keeps [-3, 48]."""
    level = PegLevel(1, 0, 0, 10, 10, 10)
    src = PegData.at_level(Fractions([-5, 100]), level, id=1)
    dst = PegData.at_level(Fractions.std(5000), level, id=2)
    src2, dst2 = ops.move_coins(50, src, dst, level)
    assert src2.fractions.to_list()[:2] == [-3, 48] and src2.is_valid()
    assert dst2.fractions.to_list()[:2] == [50 - 2, 49 + 52]


def test_already_updated_balance_is_answered_before_the_pool_is_checked() -> None:
    """pegops.cpp answers "Already up-to-dated" as soon as the balance is at the level's cycle, before its
    body checks the pool's cycle: a pool of another cycle does not make it refuse, and the string call
    answers its own input strings."""
    users, level, _ = _new_cycle([PegData.at_level(Fractions.std(10**6), PegLevel(1, 0, 0, 10, 10, 10), id=1)],
                                 2, 10)
    other_pool = PegData.at_level(Fractions.std(777), PegLevel(5, 4, 0, 10, 10, 10))
    again, pool = ops.update_peg_balance(users[0], other_pool, level)
    assert again == users[0] and pool == other_pool
    balance64, pool64 = users[0].to_base64().rstrip("="), other_pool.to_base64() + "\n"
    answer = ops.updatepegbalances(balance64, pool64, level.to_hex())
    assert answer.status == ops.ALREADY_UP_TO_DATE
    assert (answer.balance, answer.pool) == (balance64, pool64)  # the very strings given, not re-encoded
    assert (answer.balance_liquid, answer.balance_reserve, answer.pool_amount) == (
        users[0].liquid, users[0].reserve, 777)


def test_pool_holding_reserve_keeps_its_fraction_out_on_a_plain_level() -> None:
    """updatepegbalances holds pool[eff] out of the proportional move whenever the pool's reserve is above
    0, not only on a partial level: a partial pool (reserve 4 at index 5) used with the same cycle's level
    without its partial gives the user nothing at index 5 and the pool keeps its 23 there."""
    level1 = PegLevel(1, 0, 0, 3, 3, 3)
    user1 = PegData.at_level(Fractions([23] * PEG_SIZE), level1, id=1)
    user2 = PegData.at_level(Fractions([0] * 100 + [79] * 1000 + [0] * 100), level1, id=2)
    exchange = PegData.at_level(user1.fractions + user2.fractions, level1)
    pegshift = PegData.at_level(Fractions([50, 0, 0, 0, 0, -50]), PegLevel(0, 0, 0, 0, 0, 0))
    level, pool = ops.get_peg_level(2, 1, 0, 3, 3, 3, exchange, pegshift)
    assert (level.shift, level.shift_last_part, level.shift_last_total, pool.reserve) == (2, 4, 23, 4)
    plain = level.evolve(shift_last_part=0, shift_last_total=0)
    updated, pool2 = ops.update_peg_balance(user1, pool, plain)
    assert updated.fractions.to_list()[3:8] == [23, 23, 0, 6, 6]
    assert (updated.liquid, updated.reserve) == (27485, 115)
    assert (pool2.fractions[5], pool2.reserve, pool2.liquid) == (23, 4, 78996)
    with pytest.raises(PegError, match="Not enough liquid 78996"):
        ops.update_peg_balance(user2, pool2, plain)


def _level9(text: str) -> str:
    """The same pegdata with its zlib payload at level 9, as bitbay-core wrote before commit 51023835."""
    import base64
    import struct
    import zlib

    raw = base64.b64decode(text)
    at = 8 + 1 + 4 + 8
    at += 1 + raw[at]  # the return address (short here)
    zlen = struct.unpack_from("<Q", raw, at)[0]
    blob = zlib.compress(zlib.decompress(raw[at + 8:at + 8 + zlen]), 9)
    return base64.b64encode(raw[:at] + struct.pack("<Q", len(blob)) + blob + raw[at + 8 + zlen:]).decode()


def test_cpp_test4a_moveliquid_on_legacy_strings() -> None:
    """bitbay-core's pegops_tests.cpp test4a: moveliquid of 283 between two legacy (Unpack2) balances. The
    answers are the test's expected strings byte for byte (the test predates the switch to zlib level 1),
    leftovers of the legacy reading included."""
    src = (
        "AgACAAAAAAAAAAAAUgAAAAAAAAB42u3WMQ4AIQgEQOX/j/YDWhgKhcw0G4srLi6RMQAAAIDfTdk6Md+7PmT79LrP+k1mHrLz0f39"
        "jKL/GZf3F4fz7fdV9wJ7kpT2ZwCgjgWk0QEZAgAAAAAAAAABAAAAAAAAAPcB9wH3AQAAtAAAAAAAAABLAQAAAAAAAAAAAAAAAAAA"
        "OwEAAAAAAAA="
    )
    dst = (
        "AgACAAAAAAAAAAAAIAAAAAAAAAB42u3BMQEAAADCoPVPbQdvoAAAAAAAAAAAAHgMJYAAAQIAAAAAAAAAAQAAAAAAAAD3AfcB9wEA"
        "ALQAAAAAAAAASwEAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    level = "02000000000000000100000000000000f701f701f7010000b4000000000000004b01000000000000"
    answer = ops.moveliquid(283, src, dst, level)
    assert _level9(answer.src) == (
        "AgACAAAAAAAAAgACAAAAAAAAAAAAAgAAJQAAAAAAAAB42u3FQREAAAgDoNm/tDXmCR8SAAAAAAAA4Ip5PgBAmwVKDwAhAgIAAAAA"
        "AAAAAQAAAAAAAAADAPcB9wH3AQAAtAAAAAAAAABLAQAAAAAAAAAAAAAAAAAAIAAAAAAAAAAAAAAA"
    )
    assert _level9(answer.dst) == (
        "AgACAAAAAAAAAgACAAAAAAAAAAAAAgAAUAAAAAAAAAB42u3WsQ0AIAgEQGX/oV1AC0OhkLuGWFgYn8AYAAAAwO+m2rqiv3d5yObp"
        "dZ7lm0w/ZPuj+/yMou+My/+Lw/n2ftW9wJ6k2h8BAOpYgEIA+QICAAAAAAAAAAEAAAAAAAAAAwD3AfcB9wEAALQAAAAAAAAASwEA"
        "AAAAAAAAAAAAAAAAABsBAAAAAAAAAAAAAA=="
    )
    assert (answer.src_liquid, answer.src_reserve, answer.dst_liquid, answer.dst_reserve) == (32, 0, 283, 0)


def test_string_calls_refuse_what_does_not_fit_the_cpp_int() -> None:
    """Cycles are C++ ints: a level whose cycle is beyond int32 cannot be reported by getpeglevelinfo
    (narrowing; refused), and getpeglevel refuses int arguments beyond int32 or a supply + buffer below 0."""
    assert ops.getpeglevelinfo(PegLevel(7, 6, 3, 1, 2, 3).to_hex()) == (2, 7, 6, 3, 4, 5, 6, 0, 0, 0)
    with pytest.raises(PegError):
        ops.getpeglevelinfo(PegLevel(2**31, 6, 3, 1, 2, 3).to_hex())
    assert ops.getpeglevelinfo("00").version == 0
    with pytest.raises(PegError):
        ops.getpeglevel(2**31, 0, 0, 1, 1, 1, "", "")
    with pytest.raises(PegError):
        ops.getpeglevel(1, 0, 0, -1, 1, 1, "", "")
    answer = ops.getpeglevel(1, 0, 3, 10, 11, 12, "", "")
    assert answer.level == PegLevel(1, 0, 3, 10, 11, 12).to_hex() and answer.pool_amount == 0


def test_getpegdatainfo_of_a_pegshift_and_updatetxout() -> None:
    """getpegdatainfo of a pegshift {1: 50, 5: -50}: value and HLIs 0 (CFractions::HLI of a zero total), the
    level's version byte reported. updatetxout of Std(2e9) at buffer 3 and next supply 0: liquid at the
    network's next index (0), reserve at the exchange's (3), as bitbay-core answers."""
    pegshift = PegData.at_level(Fractions([0, 50, 0, 0, 0, -50]), PegLevel(0, 0, 0, 0, 0, 0)).to_base64()
    info = ops.getpegdatainfo(pegshift)
    assert (info.value, info.value_hli, info.liquid_hli, info.reserve_hli) == (0, 0, 0, 0)
    assert info.level == (2, 0, 0, 0, 0, 0, 0, 0, 0, 0) and info.version == 1
    level = PegLevel(1, 0, 3, 0, 0, 0)
    txout = PegData.at_level(Fractions.std(2 * 10**9), level).to_base64()
    assert ops.updatetxout(txout, level.to_hex()) == (2000000000, 2000000000, 59402000, 68, 68, 1)
    odd = PegLevel.from_fields(cycle=1, cycle_prev=0, buffer=5, supply=2, supply_next=2, supply_next_next=2)
    with pytest.raises(PegError):  # stored next supply 2 - buffer 5: the C++ would read from index -3
        ops.updatetxout(PegData.at_level(Fractions.std(10**8), odd).to_base64(), level.to_hex())


# bitbay-core pegops_tests.cpp test3/test4: the balance (and pool) string, in the oldest layout (Unpack1).
_CPP_TEST3_BALANCE = (
    "AgACAAAAAAAAAAAAZAgAAAAAAAB42u1Z93NVRRh9Ly+FF4IhAUKLICDVQYowEFTQgEMACdIkUhxDyQTpMgIBdAREmqgUpQsK0qvU"
    "gFJEkNCLotIEISAtlBBKIPfpu/cc5u2Z4Q9wJu+Xk6/s3t1vv7Yblyv/l//L/+X/8n/5v/zf/+VXOXrhqKD/sFv3mj7/LxL8+z7n"
    "tz3IoXeBjoL88PSZTf30RcgBroL443j2sQg/BoNf6LgzPiajd7ifzji52ebXiLlu+fk7MH9B6Cd7HbTAfwScW8bh54Ees3STjXO2"
    "ZNj8EIy/Cflf02LtoYXA9wDPZTW2VVfUXpPrl2/MdfQ57uWDdw17uIEXIS8A+kbX+1l+2lP9gM3Hsl3nDwYZdqbdKpzxRAbaNxx8"
    "7q9zgx72ErEcH2dJCalnL+H4zlMX/Hzus3apq6F+rLvsqaKB59AuuqI9z6VWq+2pczDfxLc62UdStnGXMD/GXQo27LVoaB97voTM"
    "6bbgFvj9Yrbb85US/xiwe6Un8JxH1T7rDlw/7bR19jZbD2zfHeChhOIP/ZgFmvaujg1eEjs9AB192qE5zhJ7cT0PwXdjQRwfInFw"
    "XfyvgPhRKOjbsp5gsce2sZfsJSxJzLbtTjtEQ+8uaI98/yr4hUHHnW5mb4nrp160rNcr/kM/5XmHybpjQF8Teye23WNvKVz2TXv2"
    "PlDWCrQb7Z0nyJ/69z1Zn1v43GdG7WqewP1w3qegnw06paZDh8t5XRR/oJznsMnrNvKEW+zHdUe26RgceK5cR0KSHWauCLEr/eP9"
    "NsmewDikPRq2uWecL9c5sltbwx/PtXewRd/rIYH7YhxWPLXDpjNBt4RBcmSdQ+rE3Q88X8ojxocY/vY4bwPf6dTZ5vNcisp6ue88"
    "OTf6YWjKOMOuLonba1JHbovf35D49Mr6Lj/B76gfJnm+/sBY43y84v/kR0pchcp8tEchiXeut4ic9y3JJ7R/iU5p7kB/43zMh8wP"
    "pcG/IOspIPohsh637MfzhHygcRcpduZ8uZKvNC/w++EST5qPvXLeGj9Bsj+P7JN5tpj4U56Mvyf+dFPq0GXx6wJybrlip2DZj+qp"
    "HbIkX5eW/HJZ7H1H1hcm9vfK/LdE3yV17qHIfWKnwhK/audI+U6o2NsrdtHvZ4tekOgFy/d9Ege35Xx4flGVpgYF5nH6WYT47Z0n"
    "+DX3mSnnGybjomT/hUWu47JkPV6Jt0JSt89LXaLe06D/eUJd5zm8O+iRYTfmnQEPHxn1i+d1aGOesT7W0dM55ndo18nNU+f56T2g"
    "T0G+lP0pcCAmjEdgLIAe9YcCm/M8genSh3QDtsZ8RSDfApzNfQM/x/cOQ/47sJ7b9J8Z0OvHfAj5YshbsN9lvoWjLsC44eDvx/iS"
    "wNHAK5BXAZ2GcRNlvbRHb8i7gF4OrAXshPl2QO8R+J2lnoxxm9+vA5wDPIBxzzHuJX/tZHxYpn2vSD6YALoc6DdBNwJdGOuYAHoR"
    "5osFvzX7XmBbqRP9gT+I/78KbAmsAvnbwA3gz8X3WnE+yXNjwP8MOAK4CvJ4qVcngPswbxQEtVh/gDWg9yfos6Bb0e/Yl4E/C9gB"
    "/MXML/jOM/jOds9Ax18kPzCPR/nMdbFPaMC4AL2P8Y/5G0N/r2Xa8QOMew/0auitAJ06ym3024yvekl5Rj5ivzTotY7Ou4Bl5sNg"
    "/LEJer3AjwH9DeQnLNPP1wKToD9E8l1x4ALeuzB+veSRrxifoHNAHwN9VOKSeaEc5kmHfC79E/IlkJ+0zLjyyHk1hV4l7h/4G/jZ"
    "cNhq9D/2wTWcDNlH7BZ50rH885IXxgJ7QO9b7q+K86HG4HNfEcwfvG+CfwzrSQMfzy0unn8xjGM+WAh+c9ihBuhUyJeLPZjvllvm"
    "e0t5jFvJegea9vqD9YL3P+B01jXQR1zmOqeAXgl8Fvx7zA8Stx2Ba4C7eY7Qp33LAz8GNuK9U+r8COyTfQfr4jTQG6Xfy4D+Hex/"
    "JgIjxW2+E+RA7wuMPyp9QgLvs3KvYny+hHrXkHmI+4Fee3xvLeS/SD9XSvLH+mRHcZL0WZOYD5hPWactR3BE+irW6VWsJ8B1zFPs"
    "k3jf5Duf9E0X66EPBr8dsAPkY0A3A/038KBl9h9xfCd1m/7zNft/7YdAFxO/2495b7CfBt2NeQZxNwd0feZhiWfW+8rgL6M/AV/B"
    "vKx3kzVupH/dIX0Hnml9FdymHwfJeSdL/h0N3Mx6Jv0V6zTf83pKnY4FzmM+l77iNPiJvEfhO8Mg/wn8T6VfY19Bew6T82iDeWjX"
    "0XLPPMh3HyD7iVkYnyVxcwz0XtCsU6xn3dn3W6bfsg+YzToO+Xzw2e9+yHoL/AjzDRa/Zb4eLv3PFOiVAD2e/gx6J3A+9HphngTa"
    "GfImGNeE9w9guvTlVYEz2SdJnzXcba6jJft/8esy4ic/+sw+nXX5uMzP+K3EexyQ+YT+7JG+jf3RXJ9pL/rhGr73gf6EedYy3x+v"
    "yvsl94lnyMfjJ8i9KQ0OXUryN+8v7M/pF+WAW9kPir3HWeZ99pDkrS+lrsfLfaIC3/eBXYHdLbMvY/1nXmA8z2efAr0X+P8l9oNy"
    "bozT7yWOWCebsi8AnoQ8SfyZ+0mQuPsV69wJmnluGPh9wY8nDfnPwBeBezHvILmv0n/Ky/drSf3cYJn1j+fbE99dL/3OA4mTW8xz"
    "cv7ZmJd+MBX4OnAz5HVBV5V3lJKSx+h/6+Q8EyRvvQEcDLyJeWryviJ9D+OOdao+78PAkS6zD+d9tLXYq4T4B9/LmF95X62Ieb5j"
    "/wi8Iv0H43Soz3xH6Cp1iPfBGcBdmH8r5MxfmeCnZ4ca/fikw05lTUl0G35XDAWoP/0TyL69zxn0d9tS7Sv5v8XopVBuLQAAAAAA"
    "AG0tAAAAAAAA9wD6AP0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEedIfDgEAAA=="
)


def test_cpp_test3_legacy_string_keeps_the_failed_attempts_fields() -> None:
    """The test3 string is read by Unpack1 after both newer readers failed: it keeps the pegdata version
    (131074), fractions version byte (0), nId (1940909692) and the 110-byte return address the failed
    attempts read, and writes them back (bitbay-core's answer)."""
    balance = PegData.from_base64(_CPP_TEST3_BALANCE)
    assert balance.is_valid()
    assert (balance.version, balance.fractions.version, balance.id) == (131074, 0, 1940909692)
    assert len(balance.fractions.return_addr) == 110
    assert balance.fractions.return_addr.encode("latin-1")[:8].hex() == "ed59f7735545187d"
    level, liquid = balance.level, balance.liquid
    assert (level.cycle, level.supply, liquid, balance.reserve) == (11630, 247, 1160175057156, 0)
    again = PegData.from_base64(balance.to_base64())
    assert (again.version, again.id, again.fractions.return_addr) == (131074, 1940909692, balance.fractions.return_addr)


def test_cpp_test3_and_test4_updates() -> None:
    """test3: the balance is at the level's cycle, so the call answers its input strings ("Already
    up-to-dated"). test4: one cycle later, the pool (of cycle 11630) is refused, as the current C++ answers
    ("PegPool has other cycle than peglevel"; the C++ test still expects ok from an older version)."""
    level3 = "6e2d0000000000006d2d000000000000f700fa00fd00000000000000000000000000000000000000"
    level4 = "6f2d0000000000006e2d000000000000f700fa00fd00000000000000000000000000000000000000"
    answer = ops.updatepegbalances(_CPP_TEST3_BALANCE, _CPP_TEST3_BALANCE, level3)
    assert answer.status == ops.ALREADY_UP_TO_DATE and answer.balance == answer.pool == _CPP_TEST3_BALANCE
    assert (answer.balance_liquid, answer.pool_amount) == (1160175057156, 1160175057156)
    with pytest.raises(PegError, match="other cycle"):
        ops.updatepegbalances(_CPP_TEST3_BALANCE, _CPP_TEST3_BALANCE, level4)

"""Reference exchange accounting: bitbay-core's ``pegops`` operations on :class:`PegData` balances.

An exchange keeps one pegdata per user, an *exchange* pegdata (the sum of all of them, the book view of
the hot wallet) and a *pegshift* (what withdrawals took from the wallet minus what they took from the
book). At each new peg cycle :func:`get_peg_level` builds the level and the *pool* of the exchange's
liquid; :func:`update_peg_balance`, called once per balance, keeps each user's own reserve and hands
them a pro-rata slice of the pooled liquid, so after the last balance the pool is empty. Within a cycle
:func:`move_liquid`, :func:`move_reserve` and :func:`move_coins` trade between balances.

This module is the oracle the fast ledger is tested against (DESIGN.md §5), so it follows
reference/peg-spec.md §3.3-§3.5 step by step rather than being fast. Every function takes its inputs by
value: it works on copies, and on a refusal raises :class:`~halo_exchange.errors.PegError` with nothing
changed.
"""

from __future__ import annotations

from halo_exchange.errors import PegError
from halo_exchange.peg.arith import tdiv
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData

ALREADY_UP_TO_DATE = "Already up-to-dated"  # bitbay-core's status when a balance is already at the new cycle


def _require_valid(pegdata: PegData, name: str) -> None:
    if not pegdata.is_valid():
        raise PegError(f"Not valid {name} pegdata")


def _require_level(level: PegLevel, name: str = "peglevel") -> None:
    if not level.is_valid():
        raise PegError(f"Not valid {name}")


def get_peg_level(
    cycle: int,
    cycle_prev: int,
    buffer: int,
    supply: int,
    supply_next: int,
    supply_next_next: int,
    exchange: PegData,
    pegshift: PegData,
) -> tuple[PegLevel, PegData]:
    """The level of a new cycle and the pool of liquid to redistribute (``getpeglevel``, peg-spec §3.3).

    The level's shift comes from the exchange book and the pegshift. The pool holds the book's fractions
    from the effective supply up, the whole partial fraction included; its reserve is the partial part,
    its liquid the rest, its id 0. The exchange's liquid is the pool amount, its reserve the remainder.
    """
    _require_valid(exchange, "exchange")
    _require_valid(pegshift, "pegshift")
    level = PegLevel.with_distortion(
        cycle, cycle_prev, buffer, supply, supply_next, supply_next_next, exchange.fractions, pegshift.fractions
    )
    _require_level(level)
    pool_fractions = exchange.fractions.high_part(level.effective_supply)
    partial_part = level.shift_last_part
    pool = PegData(pool_fractions, level, pool_fractions.total() - partial_part, partial_part, 0)
    _require_valid(pool, "pegpool")
    return level, pool


def update_peg_balance(balance: PegData, pool: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Re-value one balance at a new cycle's level (``updatepegbalances``, peg-spec §3.4).

    The user keeps the reserve of their own fractions (with the rounded-up piece of a partial fraction,
    as far as the pool's partial reserve allows); their liquid becomes a proportional slice of the pool.
    Returns the updated balance and the pool for the next balance; the pool's id counts updates, and the
    balance takes the new id so two balances of one cycle never share one. A balance already at the
    level's cycle is returned unchanged (bitbay-core: "Already up-to-dated").
    """
    _require_level(level)
    _require_valid(balance, "balance")
    _require_valid(pool, "pegpool")
    if pool.level.cycle != level.cycle:
        raise PegError("Mismatch for pegpool.peglevel.nCycle")
    if balance.level.cycle == level.cycle:
        return balance.copy(), pool.copy()
    if balance.level.cycle > level.cycle:
        raise PegError("Balance has greater cycle than peglevel_new")
    value = balance.fractions.total()
    if value != 0 and balance.level.cycle != 0 and balance.level.cycle != level.cycle_prev:
        raise PegError("Mismatch for peglevel_new.nCyclePrev")

    pool_fr = pool.fractions.copy()
    pool_f = pool_fr._to_std()
    pool_reserve = pool.reserve
    reserve_fr = balance.fractions.low_part_at(level)
    reserve_f = reserve_fr._to_std()
    reserve = sum(reserve_f)
    liquid_fr = Fractions.zero()
    liquid_f = liquid_fr._to_std()
    given_at_partial = 0

    partial = level.is_partial()
    idx = level.effective_supply
    if partial:
        # The partial fraction sits whole in the pool; the user's reserve piece of it comes out of the
        # pool's partial reserve, and no more than is left there.
        wanted = reserve_f[idx]
        taken = min(wanted, pool_f[idx], pool_reserve)
        if wanted > taken:
            reserve_f[idx] = taken
            reserve -= wanted - taken
        pool_f[idx] -= taken
        pool_reserve -= taken
        pool_reserve = min(pool_reserve, pool_f[idx])
        # Then a share of the partial fraction's liquid, in proportion to the user's liquid among the
        # pool's liquid (the pool's nLiquid as the previous update left it).
        last_liquid = pool_f[idx] - pool_reserve
        pool_liquid = pool.liquid
        if pool_liquid > 0:
            given_at_partial = min(tdiv(last_liquid * (value - reserve), pool_liquid), pool_f[idx])
            liquid_f[idx] += given_at_partial
            pool_f[idx] -= given_at_partial

    todo = value - reserve - given_at_partial
    if todo > sum(pool_f) - pool_reserve:
        raise PegError("Not enough liquid in pegpool to update balance")
    held = 0
    if partial and pool_reserve > 0:
        # Keep the partial fraction (it still holds other users' reserve) out of the proportional move.
        held, pool_f[idx] = pool_f[idx], 0
    remaining = pool_fr.move_ratio_part_to(todo, liquid_fr)
    if remaining > 0:
        top_up = min(remaining, held)
        liquid_f[idx] += top_up
        held -= top_up
        remaining -= top_up
    pool_f[idx] += held
    if remaining != 0:
        raise PegError("Not enough liquid in pegpool to update balance")

    new_fractions = reserve_fr + liquid_fr
    new_pool = PegData(pool_fr, pool.level, sum(pool_f) - pool_reserve, pool_reserve, pool.id + 1)
    updated = PegData(new_fractions, level, value - reserve, reserve, new_pool.id)
    # bitbay-core checks only the value, L+R and the level relations here (peg-spec §3.4 step 4); a pool
    # carrying negative fractions (removecoins) may hand some to the balance, and that is not refused.
    if new_fractions.total() != value:
        raise PegError("Balance value changed by the update")
    _require_valid(updated, "updated balance")
    return updated, new_pool


def _check_move(amount: int, src: PegData, dst: PegData, level: PegLevel, *, check_id: bool = True) -> None:
    """The checks every move makes: valid inputs at ``level``, a non-negative amount and, for moveliquid
    and movereserve only (``check_id``), two different balances by ``nId`` (peg-spec §3.4-§3.5)."""
    _require_level(level)
    _require_valid(src, "src")
    _require_valid(dst, "dst")
    if not level.same_effective_level(src.level):
        raise PegError("Outdated 'src' of peglevel")
    if not level.same_effective_level(dst.level):
        raise PegError("Outdated 'dst' of peglevel")
    if amount < 0:
        raise PegError("Requested to move negative")
    if check_id and src.id != 0 and src.id == dst.id:
        raise PegError("Same 'src' and 'dst' balance (nId)")


def _finish_move(src: PegData, dst: PegData, what: str) -> tuple[PegData, PegData]:
    if src.fractions.has_negative():
        raise PegError(f"Not enough {what} fractions in 'src' to move")
    for name, balance in (("src", src), ("dst", dst)):
        if balance.liquid + balance.reserve != balance.fractions.total():
            raise PegError(f"Mismatch of liquid and reserve in '{name}' after move")
    return src, dst


def move_liquid(amount: int, src: PegData, dst: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Move ``amount`` of liquid from ``src`` to ``dst`` (``moveliquid``, peg-spec §3.5).

    The moved fractions are a proportional slice of the source's liquid fractions; on a partial level the
    source's own liquid share of the partial fraction is part of them.
    """
    _check_move(amount, src, dst, level)
    if amount > src.liquid:
        raise PegError("Not enough liquid in 'src' to move")
    idx = level.effective_supply
    if level.is_partial():
        liquid_fr = src.fractions.high_part(idx + 1)
        liquid_fr._to_std()[idx] = src.liquid - liquid_fr.total()
    else:
        liquid_fr = src.fractions.high_part(idx)
    moved = liquid_fr.ratio_part(amount)
    new_src = PegData(src.fractions - moved, src.level, src.liquid - amount, src.reserve, src.id, src.version)
    new_dst = PegData(dst.fractions + moved, dst.level, dst.liquid + amount, dst.reserve, dst.id, dst.version)
    return _finish_move(new_src, new_dst, "liquid")


def move_reserve(amount: int, src: PegData, dst: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Move ``amount`` of reserve from ``src`` to ``dst`` (``movereserve``, peg-spec §3.5)."""
    _check_move(amount, src, dst, level)
    if amount > src.reserve:
        raise PegError("Not enough reserve in 'src' to move")
    idx = level.effective_supply
    reserve_fr = src.fractions.low_part(idx)
    if level.is_partial():
        reserve_fr._to_std()[idx] = src.reserve - reserve_fr.total()
    moved = reserve_fr.ratio_part(amount)
    new_src = PegData(src.fractions - moved, src.level, src.liquid, src.reserve - amount, src.id, src.version)
    new_dst = PegData(dst.fractions + moved, dst.level, dst.liquid, dst.reserve + amount, dst.id, dst.version)
    return _finish_move(new_src, new_dst, "reserve")


def move_coins(
    amount: int, src: PegData, dst: PegData, level: PegLevel, cross_cycles: bool = False
) -> tuple[PegData, PegData]:
    """Move a proportional slice of ``src``'s whole value (``movecoins``, peg-spec §3.5).

    Both results are re-valued at ``level`` (their explicit split is recomputed, so a partial split is
    reset). With ``cross_cycles`` the level checks are skipped, as bitbay-core's RPC always does. Unlike
    moveliquid/movereserve, movecoins has no same-``nId`` guard (peg-spec §3.4 cites it for those two only).
    """
    if cross_cycles:
        _require_level(level)
        _require_valid(src, "src")
        _require_valid(dst, "dst")
        if amount < 0:
            raise PegError("Requested to move negative")
    else:
        _check_move(amount, src, dst, level, check_id=False)
    if amount > src.fractions.total():
        raise PegError("Not enough coins in 'src' to move")
    moved = src.fractions.ratio_part(amount)
    new_src = PegData.at_level(src.fractions - moved, level, src.id)
    new_dst = PegData.at_level(dst.fractions + moved, level, dst.id)
    if new_src.fractions.has_negative():
        raise PegError("Not enough coins in 'src' to move")
    return new_src, new_dst


def remove_coins(frm: PegData, remove: PegData) -> PegData:
    """Subtract ``remove`` from ``frm``: fractions, liquid and reserve (``removecoins``, peg-spec §3.5).

    The library variant requires a valid result (it may be negative: removing from an empty balance
    yields a valid negative one, as gopegops' test shows).
    """
    _require_valid(frm, "from")
    _require_valid(remove, "remove")
    result = PegData(
        frm.fractions - remove.fractions,
        frm.level,
        frm.liquid - remove.liquid,
        frm.reserve - remove.reserve,
        frm.id,
        frm.version,
    )
    _require_valid(result, "result")
    return result

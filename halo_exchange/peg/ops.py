"""Reference exchange accounting: bitbay-core's ``pegops`` operations on :class:`PegData` balances.

An exchange keeps one pegdata per user, an *exchange* pegdata (the sum of all of them, the book view of
the hot wallet) and a *pegshift* (what withdrawals took from the wallet minus what they took from the
book). At each new peg cycle :func:`get_peg_level` builds the level and the *pool* of the exchange's
liquid; :func:`update_peg_balance`, called once per balance, keeps each user's own reserve and hands
them a pro-rata slice of the pooled liquid, so after the last balance the pool is empty. Within a cycle
:func:`move_liquid`, :func:`move_reserve` and :func:`move_coins` trade between balances.

This module is the oracle the fast ledger is tested against (DESIGN.md §5), so it follows bitbay-core
step by step rather than being fast: each object function does what the exported ``pegops.cpp`` call of
the same name does between decoding its strings and encoding its answers (the input checks of
``pegops.cpp``, then the ``pegopsp.cpp`` body, then the output checks), quirks included. The string
functions at the end (:func:`getpeglevel`, :func:`updatepegbalances`, ...) are the exported calls
themselves: base64/hex in, base64/hex out, byte for byte as the C++ answers.

Every function takes its inputs by value: it works on copies, and on a refusal raises
:class:`~halo_exchange.errors.PegError` (the C++'s error text) with nothing changed. Where the C++'s
behaviour is undefined (an index outside the vector, a signed overflow, a narrowing to ``int``), the call
is refused too; docs/conformance.md lists those places.
"""

from __future__ import annotations

from typing import NamedTuple

from halo_exchange.errors import PegError
from halo_exchange.peg.arith import INT64_MAX, INT64_MIN, UndefinedInCpp, ratio
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.peg.level import MAX_LEVEL_INDEX, PegLevel
from halo_exchange.peg.pegdata import PegData

ALREADY_UP_TO_DATE = "Already up-to-dated"  # bitbay-core's status when a balance is already at the new cycle

_INT16 = (-(1 << 15), (1 << 15) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (INT64_MIN, INT64_MAX)


def _fits(value: int, bounds: tuple[int, int], what: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise UndefinedInCpp(f"{what} {value} does not fit the C++ type")
    return value


def _require_valid(pegdata: PegData, message: str) -> None:
    if not pegdata.is_valid():
        raise PegError(message)


def _require_level(level: PegLevel) -> None:
    if not level.is_valid():
        raise PegError("Can not unpack peglevel")


def _with_version(fractions: Fractions, version: int) -> Fractions:
    """The C++ updates a balance's fractions in place, so the version byte it was read with stays."""
    fractions.version = version
    return fractions


# -- getpeglevel ---------------------------------------------------------------------------------------


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

    The six numbers are C++ ``int`` arguments: values outside int32, a ``supply + buffer`` that
    overflows it, a buffer or buffered supply that does not fit the level's int16 fields, and a buffered
    supply below 0 (the C++ then sums the book from a negative index) are refused.
    """
    _require_valid(exchange, "Can not unpack 'exchange' pegdata")
    _require_valid(pegshift, "Can not unpack 'pegshift' pegdata")
    for name, value in (("cycle", cycle), ("cycle_prev", cycle_prev), ("buffer", buffer), ("supply", supply),
                        ("supply_next", supply_next), ("supply_next_next", supply_next_next)):
        _fits(value, _INT32, name)
    _fits(buffer, _INT16, "buffer")
    for name, value in (("supply", supply), ("supply_next", supply_next), ("supply_next_next", supply_next_next)):
        _fits(min(_fits(value + buffer, _INT32, name + " + buffer"), MAX_LEVEL_INDEX), _INT16, name)
    if supply + buffer < 0:
        raise UndefinedInCpp(f"supply + buffer {supply + buffer}: CPegLevel would read the book before index 0")
    level = PegLevel.with_distortion(
        cycle, cycle_prev, buffer, supply, supply_next, supply_next_next, exchange.fractions, pegshift.fractions
    )
    pool_fractions = exchange.fractions.high_part(level.effective_supply)
    partial_part = level.shift_last_part
    pool = PegData(pool_fractions, level, pool_fractions.total() - partial_part, partial_part, 0)
    _require_valid(pool, "Returned invalid 'pegpool' pegdata")
    return level, pool


# -- updatepegbalances ---------------------------------------------------------------------------------


def update_peg_balance(balance: PegData, pool: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Re-value one balance at a new cycle's level (``updatepegbalances``, peg-spec §3.4).

    The user keeps the reserve of their own fractions (with the rounded-up piece of a partial fraction,
    as far as the pool's partial reserve allows); their liquid becomes a proportional slice of the pool.
    Returns the updated balance and the pool for the next balance; the pool's id counts updates, and the
    balance takes the new id so two balances of one cycle never share one.

    A balance already at the level's cycle is returned unchanged with the pool, before the pool itself is
    looked at ("Already up-to-dated": bitbay-core's ``pegops.cpp`` answers so even for a pool of another
    cycle). While the pool holds reserve (``pool.reserve > 0``) its fraction at the effective index is
    held out of the proportional move, on a partial level or not, as bitbay-core does.
    """
    _require_valid(balance, "Can not unpack 'balance' pegdata")
    _require_valid(pool, "Can not unpack 'pegpool' pegdata")
    _require_level(level)
    if balance.level.cycle == level.cycle:
        return balance.copy(), pool.copy()
    if pool.level.cycle != level.cycle:
        raise PegError("PegPool has other cycle than peglevel")
    if balance.level.cycle > level.cycle:
        raise PegError("Balance has greater cycle than peglevel")
    value = balance.fractions.total()
    if value != 0 and balance.level.cycle != 0 and balance.level.cycle != level.cycle_prev:
        raise PegError(
            f"Mismatch for peglevel_new.nCyclePrev {level.cycle_prev} vs peglevel_old.nCycle {balance.level.cycle}"
        )

    pool_fr = pool.fractions.copy()
    pool_f = pool_fr._to_std()
    pool_reserve = pool.reserve
    reserve_fr = balance.fractions.low_part_at(level)
    reserve_f = reserve_fr._to_std()
    reserve = sum(reserve_f)
    liquid_fr = Fractions.zero()
    liquid_f = liquid_fr._to_std()

    idx = level.effective_supply
    partial = level.is_partial()
    if partial:
        # The partial fraction sits whole in the pool; the user's reserve piece of it comes out of the
        # pool's partial reserve, and no more than is left there.
        wanted = reserve_f[idx]
        taken = min(wanted, pool_f[idx], pool_reserve)
        pool_reserve -= taken
        pool_f[idx] -= taken
        if wanted > taken:
            reserve_f[idx] -= wanted - taken
            reserve -= wanted - taken
        # Then a share of the partial fraction's liquid, in proportion to the user's liquid among the
        # pool's liquid.
        last_total = pool_f[idx]
        pool_reserve = min(pool_reserve, last_total)
        last_liquid = last_total - pool_reserve
        given = min(ratio(last_liquid, value - reserve, sum(pool_f) - pool_reserve), last_total)
        liquid_f[idx] += given
        pool_f[idx] -= given

    liquid = value - reserve
    todo = value - reserve - sum(liquid_f)
    pool_liquid = sum(pool_f) - pool_reserve
    if todo > pool_liquid:
        raise PegError(f"Not enough liquid {pool_liquid} on 'pool' to balance {todo}")
    held = 0
    if pool_reserve > 0:
        # The fraction at the effective index still holds reserve: keep it out of the proportional move.
        held, pool_f[idx] = pool_f[idx], 0
    todo = pool_fr.move_ratio_part_to(todo, liquid_fr)
    if 0 < todo <= held:
        liquid_f[idx] += todo
        held -= todo
        todo = 0
    if held > 0:
        pool_f[idx] = held
    if todo > 0:
        raise PegError(f"Liquid not enough after MoveRatioPartTo {todo}")

    new_fractions = _with_version(reserve_fr + liquid_fr, balance.fractions.version)
    total = new_fractions.total()
    if total != value:
        raise PegError(f"Balance mimatch after update {total} vs {value}")
    eff = idx
    if partial:
        if liquid < new_fractions.high(eff + 1) or reserve < new_fractions.low(eff):
            raise PegError("Balance liquid or reserve less than without partial after update")
    elif liquid != new_fractions.high(eff) or reserve != new_fractions.low(eff):
        raise PegError("Balance liquid or reserve mismatch calculated after update")

    pool_id = pool.id + 1
    new_pool = PegData(pool_fr, pool.level, sum(pool_f) - pool_reserve, pool_reserve, pool_id, pool.version)
    updated = PegData(new_fractions, level, liquid, reserve, pool_id, balance.version)
    _require_valid(new_pool, "Returned invalid 'pegpool' pegdata")
    _require_valid(updated, "Returned invalid 'balance' pegdata")
    return updated, new_pool


# -- moves ---------------------------------------------------------------------------------------------


def _check_inputs(src: PegData, dst: PegData, level: PegLevel) -> None:
    """What ``pegops.cpp`` checks before a move: the level, then src, then dst."""
    _require_level(level)
    _require_valid(src, "Can not unpack 'src' pegdata")
    _require_valid(dst, "Can not unpack 'dst' pegdata")


def _check_outputs(src: PegData, dst: PegData) -> tuple[PegData, PegData]:
    _require_valid(src, "Returned invalid 'src' pegdata")
    _require_valid(dst, "Returned invalid 'dst' pegdata")
    return src, dst


def _outdated(which: str, balance: PegData, level: PegLevel) -> PegError:
    return PegError(f"Outdated '{which}' of cycle of {balance.level.cycle}, current {level.cycle}")


def _check_move(amount: int, src: PegData, dst: PegData, level: PegLevel, available: int, what: str) -> None:
    """moveliquid/movereserve: current levels (bitbay-core equality), a non-negative amount the source
    has, and two different users (``nId``, when both are set)."""
    _fits(amount, _INT64, "amount")
    if not level.same_effective_level(src.level):
        raise _outdated("src", src, level)
    if amount < 0:
        raise PegError(f"Requested to move negative {amount}")
    if available < amount:
        raise PegError(f"Not enough {what} {available} on 'src' to move {amount}")
    if not level.same_effective_level(dst.level):
        raise _outdated("dst", dst, level)
    if src.id != 0 and dst.id != 0 and src.id == dst.id:
        raise PegError(f"Detected move between same user src id:{src.id} vs dst id:{dst.id}")


def _apply_move(moved: Fractions, src: PegData, dst: PegData, d_liquid: int, d_reserve: int) -> tuple[PegData, PegData]:
    new_src = PegData(_with_version(src.fractions - moved, src.fractions.version), src.level,
                      src.liquid - d_liquid, src.reserve - d_reserve, src.id, src.version)
    new_dst = PegData(_with_version(dst.fractions + moved, dst.fractions.version), dst.level,
                      dst.liquid + d_liquid, dst.reserve + d_reserve, dst.id, dst.version)
    if new_src.fractions.has_negative():
        raise PegError("Negative detected in 'src")
    return _check_outputs(new_src, new_dst)


def move_liquid(amount: int, src: PegData, dst: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Move ``amount`` of liquid from ``src`` to ``dst`` (``moveliquid``, peg-spec §3.5).

    The moved fractions are a proportional slice of the source's liquid fractions; on a partial level the
    source's own liquid share of the partial fraction (its liquid less its liquid above that fraction)
    is part of them.
    """
    _check_inputs(src, dst, level)
    _check_move(amount, src, dst, level, src.liquid, "liquid")
    idx = level.effective_supply
    if level.is_partial():
        liquid_fr = src.fractions.high_part(idx + 1)
        own = src.liquid - liquid_fr.total()
        if own < 0:
            raise PegError(f"Mismatch on nPartialLiquid {own}")
        liquid_fr._to_std()[idx] = own
    else:
        liquid_fr = src.fractions.high_part(idx)
    if liquid_fr.total() < amount:
        raise PegError(f"Not enough liquid(1) {liquid_fr.total()} on 'src' to move {amount}")
    return _apply_move(liquid_fr.ratio_part(amount), src, dst, amount, 0)


def move_reserve(amount: int, src: PegData, dst: PegData, level: PegLevel) -> tuple[PegData, PegData]:
    """Move ``amount`` of reserve from ``src`` to ``dst`` (``movereserve``, peg-spec §3.5).

    The moved fractions are a proportional slice of the source's reserve fractions, its own reserve
    share of a partial fraction included. As in bitbay-core nothing checks that those fractions hold
    ``amount``: a slice that cannot is caught by the output checks.
    """
    _check_inputs(src, dst, level)
    _check_move(amount, src, dst, level, src.reserve, "reserve")
    idx = level.effective_supply
    reserve_fr = src.fractions.low_part(idx)
    if level.is_partial():
        own = src.reserve - reserve_fr.total()
        if own < 0:
            raise PegError(f"Mismatch on nPartialReserve {own}")
        reserve_fr._to_std()[idx] = own
    return _apply_move(reserve_fr.ratio_part(amount), src, dst, 0, amount)


def move_coins(
    amount: int, src: PegData, dst: PegData, level: PegLevel, cross_cycles: bool = False
) -> tuple[PegData, PegData]:
    """Move a proportional slice of ``src``'s whole value (``movecoins``, peg-spec §3.5).

    Both results get their liquid and reserve recomputed at ``level`` (so a partial split is reset). A
    result takes ``level`` only where its own level differs from it by bitbay-core's equality (effective
    supply and partial ratio; a 0/0 ratio equals any ratio at the same index): otherwise it keeps its own
    level, cycle included, and may then be refused as invalid ("Returned invalid 'src' pegdata"). With
    ``cross_cycles`` the level checks are skipped, as bitbay-core's RPC always does. There is no same-
    ``nId`` guard, and, as in the C++, no check that the source keeps no negative fraction.
    """
    _check_inputs(src, dst, level)
    _fits(amount, _INT64, "amount")
    if not cross_cycles and not level.same_effective_level(src.level):
        raise _outdated("src", src, level)
    if amount < 0:
        raise PegError(f"Requested to move negative {amount}")
    value = src.fractions.total()
    if value < amount:
        raise PegError(f"Not enough amount {value} on 'src' to move {amount}")
    if not cross_cycles and not level.same_effective_level(dst.level):
        raise _outdated("dst", dst, level)
    moved = src.fractions.ratio_part(amount)
    outputs = []
    for balance, fractions in ((src, src.fractions - moved), (dst, dst.fractions + moved)):
        fractions = _with_version(fractions, balance.fractions.version)
        own_level = balance.level if balance.level.same_effective_level(level) else level
        outputs.append(PegData(fractions, own_level, fractions.high_at(level), fractions.low_at(level),
                               balance.id, balance.version))
    return _check_outputs(outputs[0], outputs[1])


def remove_coins(frm: PegData, remove: PegData) -> PegData:
    """Subtract ``remove`` from ``frm``: fractions, liquid and reserve (``removecoins``, peg-spec §3.5).

    The library variant requires a valid result (it may be negative: removing from an empty balance
    yields a valid negative one, as gopegops' test shows).
    """
    _require_valid(frm, "Can not unpack 'from' pegdata")
    _require_valid(remove, "Can not unpack 'remove' pegdata")
    result = PegData(
        _with_version(frm.fractions - remove.fractions, frm.fractions.version),
        frm.level,
        frm.liquid - remove.liquid,
        frm.reserve - remove.reserve,
        frm.id,
        frm.version,
    )
    _require_valid(result, "Returned invalid 'from' pegdata")
    return result


# -- the exported string calls of pegops.cpp -----------------------------------------------------------


class PegLevelAnswer(NamedTuple):
    level: str
    exchange_liquid: int
    exchange_reserve: int
    pool: str
    pool_amount: int


class LevelInfo(NamedTuple):
    version: int
    cycle: int
    cycle_prev: int
    buffer: int
    supply: int
    supply_next: int
    supply_next_next: int
    shift: int
    shift_last_part: int
    shift_last_total: int


class PegDataInfo(NamedTuple):
    version: int
    value: int
    liquid: int
    reserve: int
    value_hli: int
    liquid_hli: int
    reserve_hli: int
    id: int
    level: LevelInfo


class BalanceAnswer(NamedTuple):
    balance: str
    balance_liquid: int
    balance_reserve: int
    pool: str
    pool_amount: int
    status: str  # "" or ALREADY_UP_TO_DATE


class MoveAnswer(NamedTuple):
    src: str
    src_liquid: int
    src_reserve: int
    dst: str
    dst_liquid: int
    dst_reserve: int


class RemoveAnswer(NamedTuple):
    result: str
    liquid: int
    reserve: int


class TxoutAnswer(NamedTuple):
    value: int
    liquid: int
    reserve: int
    value_hli: int
    liquid_hli: int
    reserve_hli: int


def _decode(text: str, message: str) -> PegData:
    pegdata = PegData.from_base64(text)
    _require_valid(pegdata, message)
    return pegdata


def _level(text: str) -> PegLevel:
    level = PegLevel.from_hex(text)
    _require_level(level)
    return level


def _level_info(level: PegLevel) -> LevelInfo:
    """The level's fields as ``int`` outputs: a cycle beyond int32 does not fit them (refused)."""
    return LevelInfo(
        level.version, _fits(level.cycle, _INT32, "cycle"), _fits(level.cycle_prev, _INT32, "cycle_prev"),
        level.buffer, level.supply, level.supply_next, level.supply_next_next, level.shift,
        level.shift_last_part, level.shift_last_total,
    )


def getpeglevel(
    cycle: int, cycle_prev: int, buffer: int, supply: int, supply_next: int, supply_next_next: int,
    exchange: str, pegshift: str,
) -> PegLevelAnswer:
    """``pegops::getpeglevel``: the new level's hex, the exchange's liquid and reserve, the pool and its amount."""
    exchange_pd = _decode(exchange, "Can not unpack 'exchange' pegdata")
    pegshift_pd = _decode(pegshift, "Can not unpack 'pegshift' pegdata")
    level, pool = get_peg_level(cycle, cycle_prev, buffer, supply, supply_next, supply_next_next,
                                exchange_pd, pegshift_pd)
    amount = pool.liquid + pool.reserve
    return PegLevelAnswer(level.to_hex(), amount, exchange_pd.fractions.total() - amount, pool.to_base64(), amount)


def getpeglevelinfo(level_hex: str) -> LevelInfo:
    """``pegops::getpeglevelinfo``: the fields of a valid level, its version byte as read included."""
    return _level_info(_level(level_hex))


def getpegdatainfo(pegdata: str) -> PegDataInfo:
    """``pegops::getpegdatainfo``: value, split, half-liquidity indexes, id and level of a valid pegdata."""
    pd = _decode(pegdata, "Can not unpack pegdata")
    fractions, level = pd.fractions, pd.level
    return PegDataInfo(
        _fits(pd.version, _INT32, "version"), fractions.total(), pd.liquid, pd.reserve, fractions.hli(),
        fractions.high_part_at(level).hli(), fractions.low_part_at(level).hli(), pd.id, _level_info(level),
    )


def updatepegbalances(balance: str, pool: str, level_hex: str) -> BalanceAnswer:
    """``pegops::updatepegbalances``. A balance already at the level's cycle answers its own and the pool's
    strings unchanged (whatever the pool's cycle) with the status ``"Already up-to-dated"``."""
    balance_pd = _decode(balance, "Can not unpack 'balance' pegdata")
    pool_pd = _decode(pool, "Can not unpack 'pegpool' pegdata")
    level = _level(level_hex)
    if balance_pd.level.cycle == level.cycle:
        return BalanceAnswer(balance, balance_pd.liquid, balance_pd.reserve, pool,
                             pool_pd.liquid + pool_pd.reserve, ALREADY_UP_TO_DATE)
    updated, new_pool = update_peg_balance(balance_pd, pool_pd, level)
    return BalanceAnswer(updated.to_base64(), updated.liquid, updated.reserve, new_pool.to_base64(),
                         new_pool.liquid + new_pool.reserve, "")


def _move_answer(src: PegData, dst: PegData) -> MoveAnswer:
    return MoveAnswer(src.to_base64(), src.liquid, src.reserve, dst.to_base64(), dst.liquid, dst.reserve)


def _move_inputs(src: str, dst: str, level_hex: str) -> tuple[PegData, PegData, PegLevel]:
    level = _level(level_hex)
    return _decode(src, "Can not unpack 'src' pegdata"), _decode(dst, "Can not unpack 'dst' pegdata"), level


def movecoins(amount: int, src: str, dst: str, level_hex: str, cross_cycles: bool) -> MoveAnswer:
    """``pegops::movecoins``."""
    src_pd, dst_pd, level = _move_inputs(src, dst, level_hex)
    return _move_answer(*move_coins(amount, src_pd, dst_pd, level, cross_cycles))


def moveliquid(amount: int, src: str, dst: str, level_hex: str) -> MoveAnswer:
    """``pegops::moveliquid``."""
    src_pd, dst_pd, level = _move_inputs(src, dst, level_hex)
    return _move_answer(*move_liquid(amount, src_pd, dst_pd, level))


def movereserve(amount: int, src: str, dst: str, level_hex: str) -> MoveAnswer:
    """``pegops::movereserve``."""
    src_pd, dst_pd, level = _move_inputs(src, dst, level_hex)
    return _move_answer(*move_reserve(amount, src_pd, dst_pd, level))


def removecoins(frm: str, remove: str) -> RemoveAnswer:
    """``pegops::removecoins``."""
    result = remove_coins(_decode(frm, "Can not unpack 'from' pegdata"),
                          _decode(remove, "Can not unpack 'remove' pegdata"))
    return RemoveAnswer(result.to_base64(), result.liquid, result.reserve)


def updatetxout(txout: str, level_hex: str) -> TxoutAnswer:
    """``pegops::updatetxout``: value and next-cycle liquid/reserve (with their HLIs) of an exchange UTXO.

    The level argument is only checked: the txout's own level gives the network's next supply
    (``supply_next - buffer``, where liquid is measured) and the exchange's (``supply_next``, reserve).
    A buffer above the next supply would make the C++ read before the vector: refused.
    """
    _level(level_hex)
    pd = _decode(txout, "Can not unpack 'from' pegdata")
    fractions, own = pd.fractions, pd.level
    liquid_at = own.supply_next - own.buffer
    reserve_at = own.supply_next
    if liquid_at < 0:
        raise UndefinedInCpp(f"High({liquid_at}) reads before the vector")
    return TxoutAnswer(
        fractions.total(), fractions.high(liquid_at), fractions.low(reserve_at), fractions.hli(),
        fractions.high_part(liquid_at).hli(), fractions.low_part(reserve_at).hli(),
    )


assert PEG_SIZE == MAX_LEVEL_INDEX + 1

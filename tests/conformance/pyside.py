"""The Python side of each oracle operation: the same request, answered by ``halo_exchange.peg``.

Each function takes an oracle request (docs/conformance.md, "Differential harness") and returns an answer of
the same shape as the oracle's, built only from the library's public API. The pegops operations add the thin
string glue of bitbay-core's ``pegops.cpp`` (decode, validity checks, encode) around ``halo_exchange.peg.ops``,
because that glue is what the C++ functions of the same name do.

A refusal (PegError) is an answer (``ok: false`` for pegops, ``refused`` for the others); any other exception
escapes to the runner, which reports it as a Python crash.
"""

from __future__ import annotations

from halo_exchange.errors import DecodeError, PegError
from halo_exchange.peg import ops
from halo_exchange.peg.arith import ratio
from halo_exchange.peg.fractions import PEG_SIZE, Fractions, from_deltas, to_deltas
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData
from halo_exchange.peg.votes import next_supply_index, vote_weight
from halo_exchange.serialize import ByteReader

LEVEL_FIELDS = (
    "cycle",
    "cycle_prev",
    "buffer",
    "supply",
    "supply_next",
    "supply_next_next",
    "shift",
    "shift_last_part",
    "shift_last_total",
)


class NoEquivalent(Exception):
    """The request uses a C++ feature the Python library does not have (the case is skipped, and counted)."""


# -- conversions -----------------------------------------------------------------------------------------


def trim(values) -> list[int]:
    out = list(values)
    while out and out[-1] == 0:
        out.pop()
    return out


def fr_in(j) -> Fractions:
    if isinstance(j, int):
        return Fractions.from_value(j)
    if isinstance(j, list):
        return Fractions(j)
    flags = j.get("flags")
    lock_time = j.get("lock_time", 0)
    addr = bytes.fromhex(j.get("return_addr", "")).decode("latin-1")
    if "f" in j:
        base = j["f"]
        if isinstance(base, int):
            return Fractions.from_value(base, flags=1 if flags is None else flags, lock_time=lock_time,
                                        return_addr=addr)
        return Fractions(base, flags=2 if flags is None else flags, lock_time=lock_time, return_addr=addr)
    return Fractions.from_value(j["value"], flags=1 if flags is None else flags, lock_time=lock_time,
                                return_addr=addr)


def fr_out(fr: Fractions) -> dict:
    out = {"flags": fr.flags, "lock_time": fr.lock_time, "return_addr": fr.return_addr.encode("latin-1").hex()}
    if fr.is_value_form:
        out["value"] = fr.total()
    else:
        out["f"] = trim(fr.to_list())
    return out


def level_in(j) -> PegLevel:
    if isinstance(j, str):
        return PegLevel.from_hex(j)
    if "hex" in j:
        return PegLevel.from_hex(j["hex"])
    return PegLevel.from_fields(**{k: j.get(k, 0) for k in LEVEL_FIELDS})


def level_out(level: PegLevel) -> dict:
    out = {k: getattr(level, k) for k in LEVEL_FIELDS}
    out["valid"] = level.is_valid()
    return out


def pegdata_out(pd: PegData) -> dict:
    return {
        "version": pd.version,
        "fractions": fr_out(pd.fractions),
        "level": level_out(pd.level),
        "liquid": pd.liquid,
        "reserve": pd.reserve,
        "id": pd.id,
        "valid": pd.is_valid(),
    }


def _encode(pd: PegData) -> str:
    try:
        return pd.to_base64()
    except PegError as exc:
        return f"<refused to encode: {exc}>"


# -- fractions ---------------------------------------------------------------------------------------------


def op_std(q):
    return {"f": trim(Fractions.std(q["value"]).to_list())}


def op_total(q):
    return {"total": fr_in(q["f"]).total()}


def op_parts(q):
    fr, s = fr_in(q["f"]), q["supply"]
    lp, hp = fr.low_part(s), fr.high_part(s)
    a = {
        "low": fr.low(s),
        "high": fr.high(s),
        "low_part": trim(lp.to_list()),
        "high_part": trim(hp.to_list()),
        "low_part_total": lp.total(),
        "high_part_total": hp.total(),
    }
    if "supply2" in q:
        a["nchange"] = fr.high(q["supply2"]) - fr.high(s)
    return a


def op_parts_at(q):
    fr, level = fr_in(q["f"]), level_in(q["level"])
    lp, hp = fr.low_part_at(level), fr.high_part_at(level)
    return {
        "low": fr.low_at(level),
        "high": fr.high_at(level),
        "nchange": fr.n_change(level),
        "low_part": trim(lp.to_list()),
        "high_part": trim(hp.to_list()),
        "low_part_total": lp.total(),
        "high_part_total": hp.total(),
    }


def op_ratio(q):
    return {"result": ratio(q["value"], q["part"], q["total"])}


def op_ratio_part(q):
    return {"f": trim(fr_in(q["f"]).ratio_part(q["part"]).to_list())}


def op_move_ratio_part_to(q):
    src, dst = fr_in(q["src"]), fr_in(q["dst"])
    ret = src.move_ratio_part_to(q["value"], dst)
    return {"ret": ret, "src": fr_out(src), "dst": fr_out(dst)}


def op_to_deltas(q):
    return {"d": trim(to_deltas(fr_in(q["f"]).to_list()))}


def op_from_deltas(q):
    return {"f": trim(from_deltas(fr_in(q["d"]).to_list()))}


def op_hli(q):
    return {"hli": fr_in(q["f"]).hli()}


def op_fractions_pack(q):
    if not q.get("compress", True):
        raise NoEquivalent("Fractions.pack has no uncompressed (SER_RAW) form")
    if q.get("version", 1) != 1:
        raise NoEquivalent("Fractions.pack always writes version 1")
    data = fr_in(q["f"]).pack()
    return {"hex": data.hex()}


def op_fractions_unpack(q):
    data = bytes.fromhex(q["hex"])
    reader = ByteReader(data)
    try:
        fr = Fractions.read(reader)
    except (PegError, DecodeError):
        return {"ok": False}
    return {"ok": True, "fractions": fr_out(fr), "rest": reader.remaining()}


# -- levels ------------------------------------------------------------------------------------------------


def op_level(q):
    args = [q[k] for k in ("cycle", "cycle_prev", "buffer", "supply", "supply_next", "supply_next_next")]
    if "exchange" in q:
        level = PegLevel.with_distortion(*args, fr_in(q["exchange"]), fr_in(q["pegshift"]))
    else:
        level = PegLevel(*args)
    return {"level": level_out(level), "hex": level.to_hex()}


def op_level_from_hex(q):
    level = PegLevel.from_hex(q["hex"])
    return {"level": level_out(level), "hex": level.to_hex()}


def op_level_to_hex(q):
    level = level_in(q["level"])
    return {"hex": level.to_hex(), "valid": level.is_valid()}


def op_level_cmp(q):
    eq = level_in(q["a"]).same_effective_level(level_in(q["b"]))
    return {"eq": eq, "ne": not eq}


# -- pegdata -----------------------------------------------------------------------------------------------


def op_pegdata_decode(q):
    pd = PegData.from_base64(q["b64"])
    return {"pegdata": pegdata_out(pd), "b64": _encode(pd)}


def op_pegdata_encode(q):
    level = level_in(q["level"])
    pd = PegData(fr_in(q["fractions"]), level, q["liquid"], q["reserve"], q.get("id", 0), q.get("version", 1))
    return {"b64": _encode(pd), "valid": pd.is_valid()}


# -- pegops.cpp: the string API ----------------------------------------------------------------------------


def _refuse(msg: str) -> dict:
    return {"ok": False, "err": msg}


def _decode_valid(b64: str) -> PegData | None:
    pd = PegData.from_base64(b64)
    return pd if pd.is_valid() else None


def op_getpeglevel(q):
    ex = _decode_valid(q["exchange"])
    if ex is None:
        return _refuse("Can not unpack 'exchange' pegdata")
    shift = _decode_valid(q["pegshift"])
    if shift is None:
        return _refuse("Can not unpack 'pegshift' pegdata")
    args = [q[k] for k in ("cycle", "cycle_prev", "buffer", "supply", "supply_next", "supply_next_next")]
    try:
        level, pool = ops.get_peg_level(*args, ex, shift)
    except PegError as exc:
        return _refuse(str(exc))
    if not pool.is_valid():
        return _refuse("Returned invalid 'pegpool' pegdata")
    amount = pool.liquid + pool.reserve
    return {
        "ok": True,
        "err": "",
        "level": level.to_hex(),
        "exchange_liquid": amount,
        "exchange_reserve": ex.fractions.total() - amount,
        "pool": _encode(pool),
        "pool_amount": amount,
    }


def op_getpeglevelinfo(q):
    level = PegLevel.from_hex(q["hex"])
    if not level.is_valid():
        return _refuse("Can not unpack peglevel")
    return {"ok": True, "err": "", "info": [None] + [getattr(level, k) for k in LEVEL_FIELDS]}


def op_getpegdatainfo(q):
    pd = _decode_valid(q["b64"])
    if pd is None:
        return _refuse("Can not unpack pegdata")
    fr, level = pd.fractions, pd.level
    return {
        "ok": True,
        "err": "",
        "version": pd.version,
        "value": fr.total(),
        "liquid": pd.liquid,
        "reserve": pd.reserve,
        "value_hli": fr.hli(),
        "liquid_hli": fr.high_part_at(level).hli(),
        "reserve_hli": fr.low_part_at(level).hli(),
        "id": pd.id,
        "level": [None] + [getattr(level, k) for k in LEVEL_FIELDS],
    }


def op_updatepegbalances(q):
    balance = _decode_valid(q["balance"])
    if balance is None:
        return _refuse("Can not unpack 'balance' pegdata")
    pool = _decode_valid(q["pool"])
    if pool is None:
        return _refuse("Can not unpack 'pegpool' pegdata")
    level = PegLevel.from_hex(q["level"])
    if not level.is_valid():
        return _refuse("Can not unpack peglevel")
    try:
        new_balance, new_pool = ops.update_peg_balance(balance, pool, level)
    except PegError as exc:
        return _refuse(str(exc))
    if balance.level.cycle == level.cycle:  # pegops.cpp echoes its input strings here
        return {
            "ok": True,
            "err": ops.ALREADY_UP_TO_DATE,
            "balance": q["balance"],
            "balance_liquid": balance.liquid,
            "balance_reserve": balance.reserve,
            "pool": q["pool"],
            "pool_amount": pool.liquid + pool.reserve,
        }
    if not new_pool.is_valid():
        return _refuse("Returned invalid 'pegpool' pegdata")
    if not new_balance.is_valid():
        return _refuse("Returned invalid 'balance' pegdata")
    return {
        "ok": True,
        "err": "",
        "balance": _encode(new_balance),
        "balance_liquid": new_balance.liquid,
        "balance_reserve": new_balance.reserve,
        "pool": _encode(new_pool),
        "pool_amount": new_pool.liquid + new_pool.reserve,
    }


def _move(q, fn, *extra):
    level = PegLevel.from_hex(q["level"])
    if not level.is_valid():
        return _refuse("Can not unpack peglevel")
    src = _decode_valid(q["src"])
    if src is None:
        return _refuse("Can not unpack 'src' pegdata")
    dst = _decode_valid(q["dst"])
    if dst is None:
        return _refuse("Can not unpack 'dst' pegdata")
    try:
        new_src, new_dst = fn(q["amount"], src, dst, level, *extra)
    except PegError as exc:
        return _refuse(str(exc))
    if not new_src.is_valid():
        return _refuse("Returned invalid 'src' pegdata")
    if not new_dst.is_valid():
        return _refuse("Returned invalid 'dst' pegdata")
    return {
        "ok": True,
        "err": "",
        "src": _encode(new_src),
        "src_liquid": new_src.liquid,
        "src_reserve": new_src.reserve,
        "dst": _encode(new_dst),
        "dst_liquid": new_dst.liquid,
        "dst_reserve": new_dst.reserve,
    }


def op_movecoins(q):
    return _move(q, ops.move_coins, bool(q.get("cross_cycles", False)))


def op_moveliquid(q):
    return _move(q, ops.move_liquid)


def op_movereserve(q):
    return _move(q, ops.move_reserve)


def op_removecoins(q):
    frm = _decode_valid(q["from"])
    if frm is None:
        return _refuse("Can not unpack 'from' pegdata")
    remove = _decode_valid(q["remove"])
    if remove is None:
        return _refuse("Can not unpack 'remove' pegdata")
    try:
        result = ops.remove_coins(frm, remove)
    except PegError as exc:
        return _refuse(str(exc))
    return {"ok": True, "err": "", "from": _encode(result), "from_liquid": result.liquid,
            "from_reserve": result.reserve}


def op_updatetxout(q):
    level = PegLevel.from_hex(q["level"])
    if not level.is_valid():
        return _refuse("Can not unpack peglevel")
    txout = _decode_valid(q["txout"])
    if txout is None:
        return _refuse("Can not unpack 'from' pegdata")
    fr, own = txout.fractions, txout.level
    pegn_liquid = own.supply_next - own.buffer  # the network's next supply (the txout's own level)
    pegn_reserve = own.supply_next
    return {
        "ok": True,
        "err": "",
        "value": fr.total(),
        "liquid": fr.high(pegn_liquid),
        "reserve": fr.low(pegn_reserve),
        "value_hli": fr.hli(),
        "liquid_hli": fr.high_part(pegn_liquid).hli(),
        "reserve_hli": fr.low_part(pegn_reserve).hli(),
    }


# -- votes -------------------------------------------------------------------------------------------------


def op_votes(q):
    f = q["f"]
    fr = Fractions.std(f) if isinstance(f, int) else Fractions(f)
    return {"votes": vote_weight(fr, q["supply"])}


def op_next_supply(q):
    return {"supply": next_supply_index(q["base"], q["votes"], q["votes_prev"])}


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}
assert len(OPS) > 20 and PEG_SIZE == 1200

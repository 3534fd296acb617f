"""Case generators, one per oracle operation, each from its own fixed seed.

A generator is a Python generator: it yields requests and is sent the oracle's answer to each, so that the
multi-user pegops scenarios continue from what bitbay-core returned (its strings are the next inputs). Inputs
are built with the oracle itself (``pegdata_encode``, ``parts_at``), never with the library under test.

A request whose input is outside what the C++ defines (an index it would read out of bounds, memory it
never wrote) carries ``"_ub": reason``; the runner does not send it and counts it as excluded. The list of
such domains is in docs/conformance.md.
"""

from __future__ import annotations

import base64
import random
import zlib

PEG_SIZE = 1200
I64_MAX = (1 << 63) - 1
DELTA_LIMIT = I64_MAX // 99  # above this a single fraction makes ``fp * 99`` overflow int64 in ToDeltas

# -- scalar and vector material ----------------------------------------------------------------------------


def value(rng: random.Random, *, signed: bool = False, limit: int = 1 << 62) -> int:
    """An amount: edge values and random magnitudes up to ``limit``."""
    pick = rng.random()
    if pick < 0.08:
        v = rng.choice([0, 1, 2, 99, 100, 101, 199, 200, 1199, 1200, 12000, 120000])
    elif pick < 0.35:
        v = rng.randrange(0, 10**4)
    elif pick < 0.6:
        v = rng.randrange(0, 10**9)
    elif pick < 0.8:
        v = rng.randrange(0, 10**15)
    elif pick < 0.9:
        v = rng.randrange(0, min(limit, 10**17))
    else:
        v = rng.randrange(0, limit)
    v = min(v, limit)
    if signed and rng.random() < 0.3:
        v = -v
    return v


def std_list(v: int) -> list[int]:
    """bitbay-core's Std split, for building inputs only (the oracle's ``std`` is what is tested)."""
    out = [0] * PEG_SIZE
    for i in range(PEG_SIZE - 1):
        q = abs(v) // 100
        q = q if v >= 0 else -q
        out[i] = q
        v -= q
    out[-1] = v
    return out


def vector(rng: random.Random, *, signed: bool = False, kind: str | None = None, entry_limit: int = 1 << 50) -> list:
    """A fractions vector: a Std split, a sparse or dense random one, a zero-sum pegshift, or a short list."""
    kind = kind or rng.choice(["std", "std", "sparse", "dense", "block", "zero", "zerosum" if signed else "sparse"])
    if kind == "std":
        return std_list(value(rng, signed=signed, limit=1 << 60))
    if kind == "zero":
        return [0] * rng.choice([0, 1, 5, PEG_SIZE])
    if kind == "zerosum":
        return zero_sum(rng)
    f = [0] * PEG_SIZE
    if kind == "sparse":
        for _ in range(rng.randrange(1, 8)):
            f[rng.randrange(PEG_SIZE)] = value(rng, signed=signed, limit=entry_limit)
    elif kind == "block":
        lo = rng.randrange(PEG_SIZE)
        hi = min(PEG_SIZE, lo + rng.randrange(1, 60))
        base = value(rng, limit=entry_limit)
        for i in range(lo, hi):
            f[i] = max(0, base + rng.randrange(-3, 4))
            if signed and rng.random() < 0.2:
                f[i] = -f[i]
    else:
        mag = rng.choice([10, 1000, 10**6, 10**12, entry_limit])
        for i in range(PEG_SIZE):
            f[i] = rng.randrange(0, mag)
            if signed and rng.random() < 0.2:
                f[i] = -f[i]
    if rng.random() < 0.1:
        f = f[: rng.randrange(PEG_SIZE)]  # short list: zero-padded by the receiver
    return f


def zero_sum(rng: random.Random, book: list[int] | None = None, supply: int | None = None) -> list[int]:
    """A pegshift-like vector summing to 0: value taken at some indexes and put at others."""
    f = [0] * PEG_SIZE
    for _ in range(rng.randrange(1, 6)):
        i, j = rng.randrange(PEG_SIZE), rng.randrange(PEG_SIZE)
        if supply is not None:
            i = rng.randrange(supply, PEG_SIZE) if rng.random() < 0.8 else i
            j = rng.randrange(0, max(1, supply)) if rng.random() < 0.8 else j
        a = book[i] if book is not None and rng.random() < 0.5 else value(rng, limit=1 << 40)
        f[i] -= a
        f[j] += a
    return f


def level_fields(rng: random.Random, *, partial: bool | None = None, valid: bool = True) -> dict:
    """Stored level fields (the supplies already include the buffer)."""
    buffer = rng.choice([0, 1, 3, 3, 3, 5, 10])
    supply = rng.choice([0, 1, 2, 3, 50, 500, 1000, 1196, 1197, 1198, 1199]) if rng.random() < 0.3 else rng.randrange(
        PEG_SIZE)
    nxt = max(0, min(1199, supply + rng.randrange(-3, 4)))
    nxtnxt = max(0, min(1199, nxt + rng.randrange(-3, 4)))
    shift = 0 if rng.random() < 0.5 else rng.randrange(0, max(1, min(40, PEG_SIZE - supply)))
    part = total = 0
    if partial is None:
        partial = rng.random() < 0.5
    if partial:
        total = value(rng, limit=1 << 50) + 1
        part = rng.randrange(0, total + 1) if rng.random() < 0.9 else rng.randrange(0, 3)
        if rng.random() < 0.1:
            part, total = rng.choice([(0, total), (part, 0), (0, 0)])
    cycle = rng.choice([0, 1, 2, 1000, (1 << 31) - 2]) if rng.random() < 0.2 else rng.randrange(0, 1 << 31)
    fields = {
        "cycle": cycle,
        "cycle_prev": max(0, cycle - 1) if rng.random() < 0.8 else rng.randrange(0, 1 << 31),
        "buffer": buffer,
        "supply": supply,
        "supply_next": nxt,
        "supply_next_next": nxtnxt,
        "shift": shift,
        "shift_last_part": part,
        "shift_last_total": total,
    }
    if not valid:
        key = rng.choice(["buffer", "supply", "supply_next", "supply_next_next", "shift", "shift_last_part",
                          "shift_last_total", "eff"])
        if key == "eff":
            fields["shift"] = PEG_SIZE - supply + rng.randrange(0, 3)
        elif key.startswith("shift_last"):
            fields[key] = -rng.randrange(1, 1 << 40)
        elif key.startswith("supply"):
            fields[key] = rng.choice([-1, -2, 1200, 1201, 32767])
        else:
            fields[key] = -rng.randrange(1, 100)
    return fields


def level_hex(fields: dict, version: int = 2) -> str:
    """v2 (or v1) bytes of stored level fields, for building inputs."""
    def i64(v):
        return (v & ((1 << 64) - 1)).to_bytes(8, "little")

    def i16(v):
        return (v & 0xFFFF).to_bytes(2, "little")

    body = i64(fields["cycle"]) + i64(fields["cycle_prev"])
    if version >= 2:
        body += i16(fields["buffer"])
    body += b"".join(i16(fields[k]) for k in ("supply", "supply_next", "supply_next_next", "shift"))
    body += i64(fields["shift_last_part"]) + i64(fields["shift_last_total"])
    return (bytes([version]) + body).hex() if version else body.hex()


def with_eff_ub(req: dict, fields: dict) -> dict:
    eff = fields["supply"] + fields["shift"]
    if eff < 0:
        req["_ub"] = "CFractions::HighPart(CPegLevel) with supply+shift < 0 reads f[negative]"
    elif eff > PEG_SIZE:
        req["_ub"] = "CFractions::LowPart(CPegLevel) with supply+shift > 1200 reads past f[1199]"
    return req


# -- fractions operations ----------------------------------------------------------------------------------


def gen_std(rng, oracle):
    while True:
        yield {"op": "std", "value": value(rng, signed=True, limit=I64_MAX) if rng.random() < 0.2 else value(
            rng, signed=True)}


def gen_parts(rng, oracle):
    while True:
        f = vector(rng, signed=rng.random() < 0.3) if rng.random() < 0.85 else value(rng, limit=1 << 60)
        s = rng.choice([0, 1, 1199, 1200, rng.randrange(PEG_SIZE)])
        req = {"op": "parts", "f": f, "supply": s, "supply2": rng.randrange(0, PEG_SIZE + 1)}
        if rng.random() < 0.03:
            req["supply"] = rng.choice([-1, 1201])
            req["_ub"] = "CFractions::Low/High/LowPart/HighPart(int) outside [0, 1200] index f out of bounds"
        yield req


def gen_parts_at(rng, oracle):
    while True:
        f = vector(rng, signed=rng.random() < 0.3) if rng.random() < 0.85 else value(rng, limit=1 << 60)
        fields = level_fields(rng, valid=rng.random() < 0.85)
        if rng.random() < 0.2 and isinstance(f, list) and len(f) == PEG_SIZE:
            # the partial fraction is the level's own total: the exchange book's view
            eff = fields["supply"] + fields["shift"]
            if 0 <= eff < PEG_SIZE and f[eff] > 0:
                fields["shift_last_total"] = f[eff]
                fields["shift_last_part"] = rng.randrange(0, f[eff] + 1)
        use_hex = rng.random() < 0.3
        level = {"hex": level_hex(fields)} if use_hex and _fits_i16(fields) else fields
        yield with_eff_ub({"op": "parts_at", "f": f, "level": level}, fields)


def _fits_i16(fields):
    return all(-32768 <= fields[k] < 32768 for k in ("buffer", "supply", "supply_next", "supply_next_next", "shift"))


def gen_ratio(rng, oracle):
    while True:
        big = rng.random() < 0.3
        lim = I64_MAX if big else 1 << 40
        v = value(rng, signed=True, limit=lim)
        total = value(rng, signed=rng.random() < 0.2, limit=lim)
        part = value(rng, signed=rng.random() < 0.1, limit=lim)
        if rng.random() < 0.5 and total:
            part = rng.randrange(0, abs(total) + 1)
        yield {"op": "ratio", "value": v, "part": part, "total": total}


def gen_ratio_part(rng, oracle):
    while True:
        signed = rng.random() < 0.2
        f = vector(rng, signed=signed) if rng.random() < 0.9 else value(rng, limit=1 << 60)
        total = sum(f) if isinstance(f, list) else f
        pick = rng.random()
        if pick < 0.6 and total > 0:
            part = rng.randrange(0, total + 1)
        elif pick < 0.7:
            part = rng.choice([0, 1, total, total + 1, total - 1])
        else:
            part = value(rng, signed=True, limit=1 << 62)
        req = {"op": "ratio_part", "f": f, "part": part}
        if total == 0 and part < 0 and (not isinstance(f, list) or any(f)):
            req["_ub"] = "CFractions::RatioPart divides by a zero total (part < 0 passes its guards)"
        yield req


def gen_move_ratio_part_to(rng, oracle):
    while True:
        signed = rng.random() < 0.2
        src = vector(rng, signed=signed) if rng.random() < 0.9 else value(rng, limit=1 << 60)
        dst = vector(rng) if rng.random() < 0.8 else value(rng, limit=1 << 60)
        total = sum(src) if isinstance(src, list) else src
        pick = rng.random()
        if pick < 0.6 and total > 0:
            v = rng.randrange(0, total + 1)
        elif pick < 0.75:
            v = rng.choice([0, 1, total, total + 1, total - 1, -1])
        else:
            v = value(rng, signed=True, limit=1 << 61)
        yield {"op": "move_ratio_part_to", "src": src, "dst": dst, "value": v}


def gen_to_deltas(rng, oracle):
    while True:
        if rng.random() < 0.2:
            f = [0] * PEG_SIZE
            for _ in range(rng.randrange(1, 4)):
                f[rng.randrange(PEG_SIZE)] = rng.choice(
                    [DELTA_LIMIT, DELTA_LIMIT + 1, -DELTA_LIMIT - 1, rng.randrange(DELTA_LIMIT, I64_MAX // 2)])
        else:
            f = vector(rng, signed=rng.random() < 0.3)
        yield {"op": "to_deltas", "f": f}


def gen_from_deltas(rng, oracle):
    while True:
        if rng.random() < 0.5:
            d = [0] * PEG_SIZE
            d[0] = value(rng, limit=1 << 58)
            for i in range(1, PEG_SIZE):
                d[i] = rng.choice([0, 0, 0, 1, 1, -1, 2])
        else:
            d = vector(rng, signed=True, entry_limit=1 << 40)
        if rng.random() < 0.05:
            d = (d + [0] * PEG_SIZE)[:PEG_SIZE]
            d[rng.randrange(PEG_SIZE)] = rng.choice([DELTA_LIMIT + 5, I64_MAX // 2])
        yield {"op": "from_deltas", "d": d}


def gen_hli(rng, oracle):
    while True:
        f = vector(rng, signed=rng.random() < 0.4) if rng.random() < 0.9 else value(rng, limit=1 << 60)
        if rng.random() < 0.1:
            f = [0, 5, -5]
        yield {"op": "hli", "f": f}


MARK_FLAGS = [0, 1 << 2, 1 << 3, 1 << 4, 1 << 5, (1 << 2) | (1 << 4)]


def fractions_obj(rng) -> dict:
    form = rng.random()
    mark = rng.choice(MARK_FLAGS)
    obj = {
        "lock_time": rng.choice([0, 0, 1, 1600000000, (1 << 63) - 1, (1 << 64) - 1, rng.randrange(1 << 32)]),
        "return_addr": rng.choice(["", "", "62", bytes(rng.randrange(256) for _ in range(rng.randrange(40))).hex()]),
    }
    if form < 0.3:
        obj["value"] = value(rng, signed=True, limit=I64_MAX)
        obj["flags"] = 1 | mark
    else:
        obj["f"] = vector(rng, signed=rng.random() < 0.3)
        obj["flags"] = 2 | mark
    return obj


def gen_fractions_pack(rng, oracle):
    while True:
        req = {"op": "fractions_pack", "f": fractions_obj(rng)}
        if rng.random() < 0.1:
            req["compress"] = False
        yield req


def _packed_bytes(rng, oracle) -> bytes:
    ans = oracle.call({"op": "fractions_pack", "f": fractions_obj(rng), "compress": rng.random() < 0.85})
    return bytes.fromhex(ans["hex"])


def gen_fractions_unpack(rng, oracle):
    while True:
        data = _packed_bytes(rng, oracle)
        pick = rng.random()
        req = {"op": "fractions_unpack"}
        if pick < 0.4:
            pass
        elif pick < 0.5:
            data = data[: rng.randrange(len(data))]
        elif pick < 0.6:
            data = data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif pick < 0.7:  # flags naming no payload form, or several
            flags = rng.choice([0, 2, 1 << 19, (1 << 16) | (1 << 17), (1 << 17) | (1 << 18), 0xFFFFFFFF])
            data = data[:1] + flags.to_bytes(4, "little") + data[5:]
        elif pick < 0.8:  # corrupt a byte
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
        else:  # hand-made ZDELTA payloads: short, long, level 9, huge zlen
            deltas = [rng.randrange(-3, 4) for _ in range(PEG_SIZE)]
            n = rng.choice([PEG_SIZE, PEG_SIZE, PEG_SIZE - 1, PEG_SIZE + 1, 10])
            raw = b"".join((d & ((1 << 64) - 1)).to_bytes(8, "little") for d in (deltas * 2)[:n])
            z = zlib.compress(raw, rng.choice([1, 6, 9]))
            zlen = len(z) if rng.random() < 0.9 else rng.choice([19200, 19201, len(z) + 1, len(z) - 1])
            data = bytes([1]) + (1 << 17 | 2).to_bytes(4, "little") + bytes(8) + b"\x00" + zlen.to_bytes(
                8, "little") + z
            if n < PEG_SIZE and zlen == len(z):
                req["_ub"] = "CFractions::Unpack: a ZDELTA payload inflating to < 9600 bytes leaves deltas unset"
        req["hex"] = data.hex()
        yield req


# -- levels ------------------------------------------------------------------------------------------------


def gen_level(rng, oracle):
    while True:
        cycle = rng.randrange(0, 1 << 31)
        buffer = rng.choice([0, 0, 1, 3, 3, 5, 1200, 2000])
        s = rng.choice([0, 1, 1195, 1196, 1198, rng.randrange(1199)])
        sn, snn = max(0, s + rng.randrange(-3, 4)), max(0, s + rng.randrange(-6, 7))
        req = {"op": "level", "cycle": cycle, "cycle_prev": max(0, cycle - 1), "buffer": buffer, "supply": s,
               "supply_next": sn, "supply_next_next": snn}
        if rng.random() < 0.7:
            eff = min(s + buffer, PEG_SIZE - 1)
            book = vector(rng, kind=rng.choice(["std", "sparse", "dense", "block"]))
            book = (book + [0] * PEG_SIZE)[:PEG_SIZE]
            pick = rng.random()
            tag = "random zero-sum pegshift"
            if pick < 0.35:  # take exactly whole fractions out of the liquid: the exact-fit case
                tag = "pegshift takes exactly whole fractions"
                k = rng.randrange(1, 6)
                taken = sum(book[eff: eff + k])
                shift = [0] * PEG_SIZE
                if eff + k <= PEG_SIZE and taken > 0:
                    shift[eff] -= taken
                    shift[rng.randrange(0, max(1, eff))] += taken
                if rng.random() < 0.3:  # and a zero fraction just after the used-up ones
                    if eff + k < PEG_SIZE:
                        book[eff + k] = 0
                        tag += ", then a zero fraction"
            else:
                shift = zero_sum(rng, book, eff)
            req["exchange"] = book
            req["pegshift"] = shift
            req["_tag"] = tag
        yield req


def gen_level_from_hex(rng, oracle):
    while True:
        fields = level_fields(rng, valid=rng.random() < 0.8)
        if not _fits_i16(fields):
            fields = level_fields(rng)
        pick = rng.random()
        if pick < 0.4:
            h, tag = level_hex(fields), "v2"
        elif pick < 0.55:
            h, tag = level_hex(fields, version=1), "v1"
        elif pick < 0.65:
            h, tag = level_hex(fields, version=0), "80-hex legacy"
        elif pick < 0.75:
            h = rng.choice(["00", "", "02", "0" * 86, "01" + "00" * 40]) + rng.choice(["", "00"])
            tag = "literal " + (h[:6] + "..." if len(h) > 6 else repr(h))
        elif pick < 0.85:
            version = rng.randrange(256)
            h = ("%02x" % version) + level_hex(fields)[2:]
            tag = "v2 body, version byte " + ("0" if version == 0 else "1-2" if version < 3 else "3-255")
        else:
            h = level_hex(fields)
            tag, h = rng.choice([("truncated", h[:-rng.randrange(1, 20)]), ("odd trailing nibble", h + "0"),
                                 ("non-hex suffix", h + "zz"), ("extra bytes", h + "00" * rng.randrange(1, 4)),
                                 ("upper case", h.upper()), ("leading space", " " + h),
                                 ("non-hex digit inside", h[:40] + "g" + h[41:])])
        yield {"op": "level_from_hex", "hex": h, "_tag": tag}


def gen_level_to_hex(rng, oracle):
    while True:
        yield {"op": "level_to_hex", "level": level_fields(rng, valid=rng.random() < 0.8)}


def gen_level_cmp(rng, oracle):
    while True:
        a = level_fields(rng)
        b = dict(a) if rng.random() < 0.5 else level_fields(rng)
        if rng.random() < 0.5:
            b["cycle"] += rng.randrange(0, 3)
        pick = rng.random()
        if pick < 0.3:
            k = rng.randrange(1, 5)
            b["shift_last_part"] = a["shift_last_part"] * k
            b["shift_last_total"] = a["shift_last_total"] * k
        elif pick < 0.5:
            b["shift_last_part"], b["shift_last_total"] = rng.choice([(0, 0), (0, 7), (5, 0)])
            a["shift_last_part"], a["shift_last_total"] = rng.choice([(0, 0), (0, 9), (3, 0), (1, 2)])
        elif pick < 0.6:
            b["supply"], b["shift"] = a["supply"] + a["shift"] - 1, 1
        yield {"op": "level_cmp", "a": a, "b": b}


# -- pegdata -----------------------------------------------------------------------------------------------


def pegdata_at(oracle, rng, f, fields: dict, *, id: int = 0, valid: bool = True) -> str:
    """A pegdata string built by the C++: liquid/reserve are its High/Low at the level."""
    parts = oracle.call({"op": "parts_at", "f": f, "level": fields})
    liquid, reserve = parts["high"], parts["low"]
    eff = fields["supply"] + fields["shift"]
    if fields["shift_last_part"] > 0 and fields["shift_last_total"] > 0 and isinstance(f, list) and rng.random() < 0.3:
        # a partial level: any split of the partial fraction within bounds is valid
        piece = f[eff] if eff < len(f) else 0
        if piece > 0:
            r = rng.randrange(0, piece + 1)
            low_without = sum(f[:eff])
            reserve, liquid = low_without + r, sum(f) - low_without - r
    if not valid:
        liquid += rng.choice([1, -1])
    ans = oracle.call({"op": "pegdata_encode", "fractions": f, "level": fields, "liquid": liquid, "reserve": reserve,
                       "id": id})
    return ans["b64"]


def gen_pegdata_decode(rng, oracle):
    while True:
        fields = level_fields(rng)
        f = vector(rng, signed=rng.random() < 0.2) if rng.random() < 0.9 else value(rng, limit=1 << 60)
        if isinstance(f, int):
            f = {"value": f, "flags": 1}
        if rng.random() < 0.2 and isinstance(f, list):
            f = {"f": f, "flags": 2 | rng.choice(MARK_FLAGS), "lock_time": rng.randrange(1 << 32),
                 "return_addr": "6261"}
        b64 = pegdata_at(oracle, rng, f, fields, id=rng.choice([0, 1, -1, rng.randrange(1 << 31)]),
                         valid=rng.random() < 0.9)
        form = "VALUE-form" if isinstance(f, dict) and "value" in f else "STD-form"
        pick = rng.random()
        if pick < 0.55:
            tag = "current format"
        elif pick < 0.62:
            b64, tag = b64.rstrip("="), "no padding"
        elif pick < 0.68:
            junk = rng.choice(["\n", " ", "!", "?junk", "==", "A", "AB"])
            b64, tag = b64 + junk, f"trailing {junk!r}"
        elif pick < 0.74:
            raw = base64.b64decode(b64)
            b64, tag = base64.b64encode(raw[: rng.randrange(len(raw))]).decode(), "truncated bytes"
        elif pick < 0.8:
            b64 = rng.choice(["", "~", "=", "A", "AA==", "AAAA", "////", "not base64"])
            tag, form = f"literal {b64!r}", ""
        elif pick < 0.9:
            raw = bytearray(base64.b64decode(b64))
            i = rng.randrange(len(raw))
            raw[i] ^= 1 << rng.randrange(8)
            b64, tag = base64.b64encode(bytes(raw)).decode(), "one bit flipped"
        else:
            b64, tag, form = legacy_pegdata(rng, oracle), "legacy layout", ""
        req = {"op": "pegdata_decode", "b64": b64, "_tag": f"{tag} {form}".strip()}
        yield req


def legacy_pegdata(rng, oracle) -> str:
    """A pegdata in one of the two old layouts of pegdata_compat.cpp (no version fields, 40-byte level)."""
    fields = level_fields(rng)
    f = vector(rng, kind=rng.choice(["std", "sparse"]))
    packed = bytes.fromhex(oracle.call({"op": "fractions_pack", "f": f, "compress": rng.random() < 0.8})["hex"])
    # CFractions::Pack is: u8 version | u32 flags | u64 locktime | string addr | payload
    flags_lock = packed[1:13]
    payload = packed[14:]  # with an empty return address the string is one 0x00 byte
    addr = b"\x00" if rng.random() < 0.7 else b"\x02ab"
    body = flags_lock + payload + addr if rng.random() < 0.5 else flags_lock + payload
    parts = oracle.call({"op": "parts_at", "f": f, "level": fields})
    tail = bytes.fromhex(level_hex(fields, version=0))
    tail += (parts["low"] & ((1 << 64) - 1)).to_bytes(8, "little") + (parts["high"] & ((1 << 64) - 1)).to_bytes(
        8, "little")
    return base64.b64encode(body + tail).decode()


def gen_pegdata_encode(rng, oracle):
    while True:
        fields = level_fields(rng, valid=rng.random() < 0.9)
        fr = fractions_obj(rng)
        parts = oracle.call({"op": "parts_at", "f": fr.get("f", fr.get("value")), "level": fields}) if _eff_ok(
            fields) else {"high": 0, "low": 0}
        liquid, reserve = parts["high"], parts["low"]
        if rng.random() < 0.1:
            liquid += rng.choice([-1, 1])
        yield {"op": "pegdata_encode", "fractions": fr, "level": fields, "liquid": liquid, "reserve": reserve,
               "id": rng.choice([0, 1, -1, rng.randrange(-(1 << 31), 1 << 31)]),
               "version": 1 if rng.random() < 0.9 else rng.choice([0, 2, -1])}


def _eff_ok(fields):
    return 0 <= fields["supply"] + fields["shift"] <= PEG_SIZE


# -- votes -------------------------------------------------------------------------------------------------


def gen_votes(rng, oracle):
    while True:
        f = vector(rng) if rng.random() < 0.7 else value(rng, limit=1 << 60)
        if isinstance(f, list):
            f = [min(x, 1 << 50) for x in f]
        yield {"op": "votes", "f": f, "supply": rng.choice([0, 1, 119, 120, 1197, 1198, 1199, rng.randrange(1199)])}


def gen_next_supply(rng, oracle):
    while True:
        def triple():
            mag = rng.choice([3, 10, 1000, 1 << 28])
            return [rng.randrange(0, mag) for _ in range(3)]

        yield {"op": "next_supply", "base": rng.choice([0, 1, 2, 1196, 1197, 1198, rng.randrange(1199)]),
               "votes": triple(), "votes_prev": triple()}


GENERATORS = {
    "std": gen_std,
    "parts": gen_parts,
    "parts_at": gen_parts_at,
    "ratio": gen_ratio,
    "ratio_part": gen_ratio_part,
    "move_ratio_part_to": gen_move_ratio_part_to,
    "to_deltas": gen_to_deltas,
    "from_deltas": gen_from_deltas,
    "hli": gen_hli,
    "fractions_pack": gen_fractions_pack,
    "fractions_unpack": gen_fractions_unpack,
    "level": gen_level,
    "level_from_hex": gen_level_from_hex,
    "level_to_hex": gen_level_to_hex,
    "level_cmp": gen_level_cmp,
    "pegdata_decode": gen_pegdata_decode,
    "pegdata_encode": gen_pegdata_encode,
    "votes": gen_votes,
    "next_supply": gen_next_supply,
}

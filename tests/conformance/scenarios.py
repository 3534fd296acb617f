"""Multi-user exchange scenarios for the pegops operations, driven by bitbay-core's own answers.

An exchange has a few users with balances at one cycle's level, its book (their sum) and a pegshift. A new
cycle is computed (``getpeglevel``), every balance is updated in turn with the pool the previous update
returned (``updatepegbalances``), then users trade (``moveliquid``, ``movereserve``, ``movecoins``) and
withdraw (``removecoins``). Every step's inputs are the strings the C++ returned at the step before, so a
Python mismatch is always on inputs bitbay-core itself produces. Steps of the operation under test are
yielded as cases; the others are run on the oracle directly. Some steps are perturbed on purpose (stale pool,
wrong cycle, amounts at and past the limits, the same user on both sides) to exercise the refusals.
"""

from __future__ import annotations

from tests.conformance.cases import (
    PEG_SIZE,
    gen_level_from_hex,
    level_fields,
    level_hex,
    pegdata_at,
    std_list,
    value,
    vector,
    zero_sum,
)


class Exchange:
    """Users' pegdata strings at a level, the book and the pegshift (all as the C++ wrote them)."""

    def __init__(self, rng, oracle):
        self.rng, self.oracle = rng, oracle
        cycle = rng.choice([1, 2, 100, rng.randrange(1, (1 << 31) - 10)])
        self.fields = level_fields(rng, partial=rng.random() < 0.3)
        self.fields.update(cycle=cycle, cycle_prev=cycle - 1)
        self.users: list[str] = []
        self.vectors: list[list[int]] = []
        book = [0] * PEG_SIZE
        for i in range(rng.randrange(1, 7)):
            if rng.random() < 0.1:
                self.users.append("")  # a new user: the zero balance at level (0,0,0,0,0,0)
                self.vectors.append([0] * PEG_SIZE)
                continue
            pick = rng.random()
            if pick < 0.07:  # some negative fractions (what removecoins can leave), positive in total
                f = (vector(rng, kind=rng.choice(["sparse", "dense"]), signed=True, entry_limit=1 << 40)
                     + [0] * PEG_SIZE)[:PEG_SIZE]
                if sum(f) <= 0:
                    f[rng.randrange(PEG_SIZE)] += 1 - sum(f) + value(rng, limit=1 << 40)
            elif pick < 0.5:
                f = std_list(value(rng, limit=1 << 55))
            elif pick < 0.6:
                f = [0] * PEG_SIZE
            else:
                f = (vector(rng, kind=rng.choice(["sparse", "dense", "block"]), entry_limit=1 << 45) + [0] * PEG_SIZE)[
                    :PEG_SIZE]
            uid = i + 1 if rng.random() < 0.8 else rng.choice([0, 1])
            self.users.append(pegdata_at(oracle, rng, f, self.fields, id=uid))
            self.vectors.append(f)
            book = [a + b for a, b in zip(book, f)]
        self.book = book
        self.exchange = pegdata_at(oracle, rng, book, self.fields)
        self.new_level_args = self._new_level_args()
        self.pegshift = self._pegshift()
        self.level_hex = ""
        self.pool = ""

    def _new_level_args(self) -> dict:
        rng, f = self.rng, self.fields
        self.same_supply = rng.random() < 0.25  # the effective level may not move: old balances still "equal"
        buffer = f["buffer"] if rng.random() < 0.8 or self.same_supply else rng.choice([0, 3, 5])
        net = max(0, f["supply"] - f["buffer"])
        s = net if self.same_supply else max(0, min(1198, net + rng.randrange(-3, 4)))
        cycle = f["cycle"] + 1
        prev = f["cycle"] if rng.random() < 0.95 else f["cycle"] - 1
        return {"cycle": cycle, "cycle_prev": prev, "buffer": buffer, "supply": s,
                "supply_next": max(0, min(1198, s + rng.randrange(-3, 4))),
                "supply_next_next": max(0, min(1198, s + rng.randrange(-6, 7)))}

    def _pegshift(self) -> str:
        rng = self.rng
        self.pegshift_tag = "no pegshift"
        if rng.random() < (0.7 if self.same_supply else 0.25):
            return ""
        eff = min(self.new_level_args["supply"] + self.new_level_args["buffer"], PEG_SIZE - 1)
        if rng.random() < 0.3:  # withdrawals took exactly whole book fractions of liquid
            self.pegshift_tag = "pegshift takes exactly whole fractions"
            k = rng.randrange(1, 5)
            taken = sum(self.book[eff: eff + k])
            shift = [0] * PEG_SIZE
            shift[eff] -= taken
            shift[rng.randrange(0, max(1, eff))] += taken
        elif rng.random() < 0.3:  # a small partial take
            self.pegshift_tag = "pegshift takes part of a fraction"
            shift = [0] * PEG_SIZE
            a = rng.randrange(0, max(1, sum(self.book[eff:]) // rng.choice([2, 10, 1000]) + 1))
            shift[min(PEG_SIZE - 1, eff + rng.randrange(0, 5))] -= a
            shift[rng.randrange(0, max(1, eff))] += a
        else:
            self.pegshift_tag = "random zero-sum pegshift"
            shift = zero_sum(rng, self.book, eff)
        return pegdata_at(self.oracle, rng, shift, self.fields)

    def getpeglevel_request(self) -> dict:
        req = {"op": "getpeglevel", **self.new_level_args, "exchange": self.exchange, "pegshift": self.pegshift}
        if self.exchange == "":
            req["_ub"] = "CPegLevel distortion constructor walks the raw f[] of a VALUE-form (empty) exchange"
        return req

    def new_cycle(self) -> bool:
        ans = self.oracle.call(self.getpeglevel_request())
        if not ans.get("ok"):
            return False
        self.level_hex, self.pool = ans["level"], ans["pool"]
        return True

    def level_without_partial(self) -> str:
        """The current level with its partial ratio cleared: bitbay-core's operator== still calls it equal."""
        lv = self.oracle.call({"op": "level_from_hex", "hex": self.level_hex})["level"]
        return level_hex({**lv, "shift_last_part": 0, "shift_last_total": 0})

    def update_requests(self):
        """Yield one updatepegbalances request per user (with perturbations), adopting the C++ results."""
        rng = self.rng
        order = list(range(len(self.users)))
        if rng.random() < 0.3:
            rng.shuffle(order)
        old_pool = self.pool
        level = self.level_hex if rng.random() < 0.9 else self.level_without_partial()
        for i in order:
            pool = self.pool
            if rng.random() < 0.05:
                pool = old_pool  # a stale pool
            req = {"op": "updatepegbalances", "balance": self.users[i], "pool": pool, "level": level}
            if rng.random() < 0.03:
                req["level"] = level_hex({**self.fields, "cycle": self.fields["cycle"] + rng.choice([0, 2, -1])})
            ans = yield req
            if ans and ans.get("ok"):
                self.users[i], self.pool = ans["balance"], ans["pool"]
        if rng.random() < 0.2 and self.users:  # once more: "Already up-to-dated", maybe with an odd pool
            i = rng.randrange(len(self.users))
            pool = self.pool if rng.random() < 0.5 else self.exchange
            yield {"op": "updatepegbalances", "balance": self.users[i], "pool": pool, "level": self.level_hex}

    def update_all(self) -> None:
        gen = self.update_requests()
        try:
            req = next(gen)
            while True:
                req = gen.send(self.oracle.call(req))
        except StopIteration:
            pass

    def move_requests(self, op: str, count: int):
        rng = self.rng
        n = len(self.users)
        for _ in range(count):
            i, j = rng.randrange(n), rng.randrange(n)
            if n > 1 and i == j and rng.random() < 0.8:
                j = (i + 1) % n
            src, dst = self.users[i], self.users[j]
            info = self.oracle.call({"op": "getpegdatainfo", "b64": src}) if src else {"ok": False}
            if op == "moveliquid":
                have = info.get("liquid", 0)
            elif op == "movereserve":
                have = info.get("reserve", 0)
            else:
                have = info.get("value", 0)
            pick = rng.random()
            if pick < 0.6 and have > 0:
                amount = rng.randrange(0, have + 1)
            elif pick < 0.85:
                amount = rng.choice([0, 1, have, have + 1, have - 1, -1])
            else:
                amount = value(rng, limit=1 << 60)
            level = self.level_hex
            if rng.random() < 0.03:
                level = level_hex({**self.fields, "cycle": rng.randrange(0, 1 << 31)})
            elif rng.random() < 0.05:
                level = self.level_without_partial()
            req = {"op": op, "amount": amount, "src": src, "dst": dst, "level": level}
            if op == "movecoins":
                req["cross_cycles"] = rng.random() < 0.3
            ans = yield req
            if ans and ans.get("ok") and i != j:
                self.users[i], self.users[j] = ans["src"], ans["dst"]


def _drive(gen, oracle):
    """Run a request generator against the oracle only (steps that are not the operation under test)."""
    try:
        req = next(gen)
        while True:
            req = gen.send(oracle.call(req))
    except StopIteration:
        pass


def gen_getpeglevel(rng, oracle):
    while True:
        ex = Exchange(rng, oracle)
        yield {**ex.getpeglevel_request(), "_tag": ex.pegshift_tag}


def gen_updatepegbalances(rng, oracle):
    while True:
        ex = Exchange(rng, oracle)
        if ex.new_cycle():
            yield from ex.update_requests()


def _gen_moves(op):
    def gen(rng, oracle):
        while True:
            ex = Exchange(rng, oracle)
            if not ex.new_cycle():
                continue
            if rng.random() < (0.5 if ex.same_supply else 0.9):
                ex.update_all()
            yield from ex.move_requests(op, rng.randrange(1, 12))

    gen.__name__ = f"gen_{op}"
    return gen


def gen_removecoins(rng, oracle):
    while True:
        ex = Exchange(rng, oracle)
        if not ex.new_cycle():
            continue
        ex.update_all()
        _drive(ex.move_requests("moveliquid", rng.randrange(0, 4)), oracle)
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(len(ex.users))
            pick = rng.random()
            if pick < 0.5:  # withdraw a slice: movecoins into an empty balance, then remove it from the user
                info = oracle.call({"op": "getpegdatainfo", "b64": ex.users[i]}) if ex.users[i] else {}
                have = info.get("value", 0)
                amount = rng.randrange(0, have + 1) if have > 0 else 0
                moved = oracle.call({"op": "movecoins", "amount": amount, "src": ex.users[i], "dst": "",
                                     "level": ex.level_hex, "cross_cycles": True})
                remove = moved.get("dst", "") if moved.get("ok") else ""
                frm = ex.users[i] if rng.random() < 0.5 else ex.exchange
            elif pick < 0.75:
                frm, remove = ex.users[i], ex.users[rng.randrange(len(ex.users))]
            else:
                frm = "" if rng.random() < 0.5 else ex.users[i]
                f = vector(rng, kind=rng.choice(["std", "sparse"]), entry_limit=1 << 40)
                remove = pegdata_at(oracle, rng, f, rng.choice([ex.fields, level_fields(rng)]))
            ans = yield {"op": "removecoins", "from": frm, "remove": remove}
            if ans and ans.get("ok") and frm == ex.users[i]:
                ex.users[i] = ans["from"]


def gen_updatetxout(rng, oracle):
    while True:
        fields = level_fields(rng, partial=rng.random() < 0.3)
        f = vector(rng, kind=rng.choice(["std", "std", "sparse", "dense"]), entry_limit=1 << 45)
        txout = pegdata_at(oracle, rng, f, fields)
        level = level_hex(level_fields(rng)) if rng.random() < 0.9 else rng.choice(["", "00", "zz"])
        req = {"op": "updatetxout", "txout": txout, "level": level}
        if fields["supply_next"] - fields["buffer"] < 0:
            req["_ub"] = "updatetxout: High(supply_next - buffer) with a negative index reads f[negative]"
        yield req


def gen_getpegdatainfo(rng, oracle):
    while True:
        pick = rng.random()
        if pick < 0.5:
            ex = Exchange(rng, oracle)
            if rng.random() < 0.5 and ex.new_cycle():
                ex.update_all()
            for b64 in ex.users + [ex.exchange, ex.pegshift, ex.pool]:
                yield {"op": "getpegdatainfo", "b64": b64}
        else:
            fields = level_fields(rng)
            kind = rng.choice(["std", "sparse", "dense", "zerosum", "block"])
            f = vector(rng, kind=kind, signed=kind == "zerosum", entry_limit=1 << 45)
            yield {"op": "getpegdatainfo", "b64": pegdata_at(oracle, rng, f, fields, valid=rng.random() < 0.95)}


def gen_getpeglevelinfo(rng, oracle):
    for req in gen_level_from_hex(rng, oracle):
        yield {"op": "getpeglevelinfo", "hex": req["hex"], "_tag": req["_tag"]}


SCENARIO_GENERATORS = {
    "getpeglevel": gen_getpeglevel,
    "getpeglevelinfo": gen_getpeglevelinfo,
    "getpegdatainfo": gen_getpegdatainfo,
    "updatepegbalances": gen_updatepegbalances,
    "moveliquid": _gen_moves("moveliquid"),
    "movereserve": _gen_moves("movereserve"),
    "movecoins": _gen_moves("movecoins"),
    "removecoins": gen_removecoins,
    "updatetxout": gen_updatetxout,
}

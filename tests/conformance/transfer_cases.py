"""Random transactions for the transfer-rule differential harness (``python -m tests.conformance.transfer``).

A *case* is a plain JSON-able dict, so a mismatch can be printed, saved and replayed as it is::

    {"supply": 500, "time": 1600000000,
     "inputs":  [{"owner": "A", "form": "p2pkh", "value": 1000000, "fr": "std", "flags": 0, "lock_time": 0}],
     "outputs": [{"value": 5590, "notary": "**F**1", "push": "min"}, {"value": 990000, "to": "X0", "form": "p2pkh"}]}

``owner``/``to`` name keys: ``A``-``D`` are the spenders (keys 1-4), ``X0``-``X3`` foreign payees (keys 101-104),
``BURN`` the burn address. ``form`` is the script: ``p2pkh``, ``p2pk`` (the key's compressed public key, the same
owner to bitbay-core), ``p2sh`` (a script hash derived from the key) or ``bare`` (a nonstandard script). ``fr``
is ``"std"`` (``Std(value)``) or ``{"std": part, "at": {index: amount}}`` (``Std(part)`` plus the sparse
entries; ``std`` defaults to 0), summing to the value. A notary output carries
its text, pushed minimally (``min``), behind ``OP_PUSHDATA1`` (``pushdata1``) or as a push that runs past the
end of the script (``truncated``).
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache
from typing import Any

from halo_exchange.chain.keys import PrivateKey, address_to_hash160
from halo_exchange.chain.script import OP_CHECKSIG, OP_RETURN, p2pkh_script, p2sh_script, push_data
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.peg.fractions import NOTARY_C, NOTARY_F, NOTARY_L, NOTARY_V, PEG_SIZE, Fractions
from halo_exchange.peg.transfer import BURN_ADDRESS

Case = dict[str, Any]

SPENDERS = ("A", "B", "C", "D")
FOREIGN = ("X0", "X1", "X2", "X3")
BASE_TIME = 1_600_000_000
MONTH = 30 * 86400
OP_PUSHDATA1 = 0x4C

_KEY_NUMBERS = {"A": 1, "B": 2, "C": 3, "D": 4, "X0": 101, "X1": 102, "X2": 103, "X3": 104}


# -- scripts ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _pubkey(label: str) -> bytes:
    return PrivateKey.from_int(_KEY_NUMBERS[label]).public_key().to_bytes()


@lru_cache(maxsize=None)
def _h160(label: str) -> bytes:
    if label == "BURN":
        return address_to_hash160(BURN_ADDRESS)[1]
    return hashlib.new("ripemd160", hashlib.sha256(_pubkey(label)).digest()).digest()


def address_script(label: str, form: str = "p2pkh") -> bytes:
    """The scriptPubKey paying ``label`` in ``form``."""
    if form == "p2pkh":
        return p2pkh_script(_h160(label))
    if form == "p2pk":
        pub = _pubkey(label)
        return bytes([len(pub)]) + pub + bytes([OP_CHECKSIG])
    if form == "p2sh":
        return p2sh_script(hashlib.sha256(b"p2sh" + label.encode()).digest()[:20])
    if form == "bare":
        return bytes([0x51, 0x20 + _KEY_NUMBERS.get(label, 0) % 16])  # OP_TRUE, a harmless non-push opcode
    raise ValueError(f"unknown script form {form!r}")


def notary_output_script(text: str, push: str = "min") -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if push == "min":
        return bytes([OP_RETURN]) + push_data(raw)
    if push == "pushdata1":
        return bytes([OP_RETURN, OP_PUSHDATA1, len(raw)]) + raw
    if push == "truncated":
        return bytes([OP_RETURN, len(raw) + 10]) + raw  # the push claims 10 bytes more than the script holds
    raise ValueError(f"unknown push form {push!r}")


def output_script(out: dict[str, Any]) -> bytes:
    if "notary" in out:
        return notary_output_script(out["notary"], out.get("push", "min"))
    return address_script(out["to"], out.get("form", "p2pkh"))


def input_script(inp: dict[str, Any]) -> bytes:
    return address_script(inp["owner"], inp.get("form", "p2pkh"))


def input_fractions(inp: dict[str, Any]) -> list[int]:
    """The input's 1200 fractions as a plain list."""
    spec = inp.get("fr", "std")
    if spec == "std":
        return Fractions.std(inp["value"]).to_list()
    f = Fractions.std(spec.get("std", 0)).to_list()
    for index, amount in spec.get("at", {}).items():
        f[int(index)] += amount
    return f


def build_transaction(case: Case) -> Transaction:
    """An unsigned transaction spending one made-up outpoint per input (CalculateStandardFractions reads no
    signature)."""
    tag = repr((case.get("id"), len(case["inputs"]))).encode()
    ins = tuple(
        TxIn(OutPoint(hashlib.sha256(tag + b"/%d" % i).digest(), i % 3)) for i in range(len(case["inputs"]))
    )
    outs = tuple(TxOut(out["value"], output_script(out)) for out in case["outputs"])
    return Transaction(version=1, time=case["time"], inputs=ins, outputs=outs, lock_time=0)


# -- generation ------------------------------------------------------------------------------------------


def _pick_value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.03:
        return 0
    if r < 0.45:
        return rng.randint(1_000, 1_000_000)
    if r < 0.90:
        return rng.randint(1_000_000, 1_000_000_000)
    return rng.randint(1_000_000_000, 10_000_000_000_000)


def _sparse(rng: random.Random, value: int, supply: int) -> dict[int, int]:
    """A non-standard vector: 1-5 nonzero entries, sometimes all above or all below the supply index."""
    n = rng.randint(1, 5)
    mode = rng.random()
    if mode < 0.3:
        indexes = [rng.randint(min(supply, PEG_SIZE - 1), PEG_SIZE - 1) for _ in range(n)]
    elif mode < 0.6:
        indexes = [rng.randint(0, max(supply - 1, 0)) for _ in range(n)]
    else:
        indexes = [rng.randint(0, PEG_SIZE - 1) for _ in range(n)]
    cuts = sorted(rng.randint(0, value) for _ in range(n - 1))
    amounts = [b - a for a, b in zip([0] + cuts, cuts + [value])]
    out: dict[int, int] = {}
    for index, amount in zip(indexes, amounts):
        if amount:
            out[index] = out.get(index, 0) + amount
    return out


def _mixed(rng: random.Random, value: int, supply: int) -> dict[str, Any]:
    """Std of part of the value plus a sparse rest."""
    part = rng.randint(0, value)
    return {"std": part, "at": _sparse(rng, value - part, supply)}


def _gen_input(rng: random.Random, owners: list[str], supply: int, block_time: int) -> dict[str, Any]:
    value = _pick_value(rng)
    r = rng.random()
    form = "p2pkh" if r < 0.88 else "p2pk" if r < 0.96 else "p2sh" if r < 0.98 else "bare"
    shape = rng.random()
    fr: Any = "std" if shape < 0.5 or value == 0 else {"at": _sparse(rng, value, supply)} if shape < 0.8 \
        else _mixed(rng, value, supply)
    inp: dict[str, Any] = {"owner": rng.choice(owners), "form": form, "value": value, "fr": fr,
                           "flags": 0, "lock_time": 0}
    m = rng.random()
    if m < 0.06:
        inp["flags"], inp["lock_time"] = NOTARY_F, block_time - rng.randint(0, MONTH)
    elif m < 0.08:
        inp["flags"], inp["lock_time"] = NOTARY_F, block_time + rng.randint(1, MONTH)
    elif m < 0.11:
        inp["flags"], inp["lock_time"] = NOTARY_V, block_time - rng.randint(0, 4 * MONTH)
    elif m < 0.12:
        inp["flags"], inp["lock_time"] = NOTARY_V, block_time + rng.randint(1, 4 * MONTH)
    elif m < 0.125:
        inp["flags"] = NOTARY_C
        inp["return_addr"] = ""  # filled by the runner with an address string when it matters
    elif m < 0.13:
        inp["flags"] = NOTARY_L
    return inp


# strtol(…, 0) readings the issue names (item 14) and other malformed entries.
_ODD_ENTRIES = (" {j}", "{j}a", "+{j}", "0x{j:x}", "0{j}", "-0", "-1", "", " ", "{j} ", "0{j}8", "1e1", "{j}.0",
                "99999999999999999999", "-{j}")


def _index_list(rng: random.Random, position: int, n_out: int) -> str:
    others = [j for j in range(n_out) if j != position] or [0]
    r = rng.random()
    if r < 0.35:
        return str(rng.choice(others))
    if r < 0.55:  # the wallet shape: one index repeated (item 10)
        j = rng.choice(others)
        return ":".join([str(j)] * rng.randint(2, 4))
    if r < 0.65:  # two distinct indexes: the escrow shape
        if len(others) >= 2:
            a, b = rng.sample(others, 2)
            return f"{a}:{b}"
        return f"{others[0]}:{others[0]}"
    if r < 0.75:  # several, possibly repeated
        return ":".join(str(rng.choice(others)) for _ in range(rng.randint(2, 5)))
    if r < 0.82:  # out of range, or itself
        return str(rng.choice([n_out, n_out + rng.randint(1, 5), position]))
    j = rng.choice(others)
    entry = rng.choice(_ODD_ENTRIES).format(j=j)
    if rng.random() < 0.3:
        parts = [str(rng.choice(others)) for _ in range(rng.randint(1, 2))] + [entry]
        rng.shuffle(parts)
        return ":".join(parts)
    return entry


def _gen_notary(rng: random.Random, position: int, n_out: int) -> str:
    r = rng.random()
    if r < 0.55:
        return "**F**" + _index_list(rng, position, n_out)
    if r < 0.88:
        return "**V**" + _index_list(rng, position, n_out)
    if r < 0.91:
        return "**C**" + _index_list(rng, position, n_out)
    if r < 0.93:
        return "**L**" + _index_list(rng, position, n_out)
    if r < 0.95:
        return "**Z**" + "0x" + "ab" * 20
    return rng.choice(["XCH:0:" + str(rng.randint(1, 10 ** 6)), "", "**F", "hello", "**f**1"])


def generate_case(rng: random.Random, case_id: int) -> Case:
    supply = rng.choice([0, 1, 1198, rng.randint(0, 1198), rng.randint(0, 1198), rng.randint(0, 1198)])
    block_time = BASE_TIME + rng.randint(0, 10 ** 6)
    n_in = rng.choice([1, 1, 2, 2, 3, 4, rng.randint(1, 10)])
    n_out = rng.choice([1, 2, 2, 3, 3, 4, 5, rng.randint(1, 10)])
    owners = rng.sample(SPENDERS, rng.randint(1, len(SPENDERS)))
    inputs = [_gen_input(rng, owners, supply, block_time) for _ in range(n_in)]
    for inp in inputs:
        if inp["flags"] == NOTARY_C:
            inp["return_addr"] = rng.choice(["", "A", "X0"])
    used = sorted({inp["owner"] for inp in inputs})

    kinds = []
    for j in range(n_out):
        r = rng.random()
        if r < 0.30:
            kinds.append(("notary", _gen_notary(rng, j if rng.random() < 0.9 else j, n_out)))
        elif r < 0.62:
            kinds.append(("change", rng.choice(used)))
        elif r < 0.92:
            kinds.append(("foreign", rng.choice(FOREIGN)))
        else:
            kinds.append(("burn", "BURN"))

    value_in = sum(inp["value"] for inp in inputs)
    fee = rng.choice([0, 0, rng.randint(0, 20_000), rng.randint(0, max(value_in // 10, 1))])
    if rng.random() < 0.03:
        fee = -rng.randint(1, 10_000)  # an overspend
    budget = max(value_in - fee, 0)
    outputs: list[dict[str, Any]] = []
    weights = [0.0 if k == "notary" else rng.random() for k, _ in kinds]
    total_w = sum(weights) or 1.0
    for (kind, what), w in zip(kinds, weights):
        if kind == "notary":
            value = rng.choice([0, 0, 0, 5590, rng.randint(0, 100_000)])
            r = rng.random()
            push = "min" if r < 0.93 else "pushdata1" if r < 0.97 else "truncated"
            outputs.append({"value": value, "notary": what, "push": push})
            continue
        value = int(budget * w / total_w)
        r = rng.random()
        form = "p2pkh" if r < 0.9 or kind == "burn" else "p2pk" if r < 0.97 else "p2sh"
        outputs.append({"value": value, "to": what, "form": form})
    # Make the notary outputs' values fit: take them from the largest payment.
    spent = sum(o["value"] for o in outputs)
    if spent > budget:
        pay = [o for o in outputs if "to" in o]
        if pay:
            big = max(pay, key=lambda o: o["value"])
            big["value"] = max(big["value"] - (spent - budget), 0)
    return {"id": case_id, "supply": supply, "time": block_time, "inputs": inputs, "outputs": outputs}


def generate_cases(seed: int, count: int, start: int = 0):
    """``count`` cases from ``seed``; case ``k`` depends only on (seed, k), so any one can be regenerated."""
    for k in range(start, start + count):
        yield generate_case(random.Random(f"{seed}:{k}"), k)

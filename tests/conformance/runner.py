"""Runs generated cases through the oracle and ``halo_exchange.peg``, groups mismatches, shrinks examples.

``python -m tests.conformance [--cases N] [--ops a,b] [--seed S] [--report FILE]`` with ``PEG_ORACLE`` set.
Exit status: 0 when no operation has a mismatch, 1 when some do, 2 when the oracle is missing or broken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field

from tests.conformance import pyside
from tests.conformance.cases import GENERATORS, std_list
from tests.conformance.oracle import Oracle, OracleError
from tests.conformance.scenarios import SCENARIO_GENERATORS

ALL_GENERATORS = {**GENERATORS, **SCENARIO_GENERATORS}
OP_ORDER = list(ALL_GENERATORS)
DEFAULT_SEED = 10

# Answer fields never compared: messages differ in wording by design (docs/conformance.md), and the C++'s
# "version" of a level or a fractions vector has no counterpart in the Python objects.
ALWAYS_IGNORED = {"err", "stderr", "len"}
IGNORED = {
    "fractions_unpack": {"version", "exception"},
    "level": {"level.version"},
    "level_from_hex": {"level.version"},
    "level_cmp": {"lt"},
    "pegdata_decode": {"pegdata.level.version"},
}
# Oracle answers that mean "the C++ has no defined answer here": the case is excluded, not compared.
EXCLUDING_FLAGS = ("hang", "crash", "nondeterministic", "bad_request")


@dataclass
class Kind:
    op: str
    signature: str
    count: int = 0
    example: dict | None = None  # the smallest failing request seen
    cpp: dict | None = None
    py: dict | None = None
    ub_note: str = ""
    shrunk: bool = False


@dataclass
class OpStats:
    cases: int = 0
    mismatches: int = 0
    ub_mismatches: int = 0  # of which UBSan flags the C++ on the same input
    skipped: int = 0  # no Python equivalent
    excluded: dict = field(default_factory=dict)  # reason -> [count, example request]
    ub_seen: dict = field(default_factory=dict)  # UBSan report line -> count (compared anyway)
    seconds: float = 0.0


def _flatten(obj: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def normalize(op: str, answer: dict) -> dict:
    flat = _flatten(answer)
    ignored = ALWAYS_IGNORED | IGNORED.get(op, set())
    flat = {k: v for k, v in flat.items() if k not in ignored and k.split(".")[-1] not in ALWAYS_IGNORED}
    for key in ("info", "level"):  # getpeglevelinfo / getpegdatainfo: the level's version byte (no counterpart)
        if isinstance(flat.get(key), list) and flat[key]:
            flat[key] = [None] + flat[key][1:]
    if flat.get("ok") is False:  # a refusal is a refusal: its message and partial outputs are not compared
        return {"ok": False}
    if op in ("level_from_hex",) and flat.get("level.valid") is False:
        return {"level.valid": False}  # an invalid level's other fields are never observable through pegops
    if op == "pegdata_decode" and flat.get("pegdata.valid") is False:
        return {"pegdata.valid": False}
    return flat


def diff(op: str, cpp: dict, py: dict) -> list[str]:
    a, b = normalize(op, cpp), normalize(op, py)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def signature(op: str, cpp: dict, py: dict, keys: list[str]) -> str:
    if "python_exception" in py:
        return "Python raised " + py["python_exception"].split(":")[0]
    if "ok" in cpp or "ok" in py:
        c, p = cpp.get("ok"), py.get("ok")
        if c != p:
            why = _message(py.get("err", "")) if c else _message(cpp.get("err", ""))
            return f"C++ {'ok' if c else 'refused'}, Python {'ok' if p else 'refused'} ({why!r})"
    if "exception" in cpp and "exception" not in py:
        return "C++ threw, Python answered"
    a, b = normalize(op, cpp), normalize(op, py)
    for valid in ("level.valid", "pegdata.valid", "valid"):
        if valid in keys:
            return f"C++ {'valid' if a.get(valid) else 'invalid'}, Python {'valid' if b.get(valid) else 'invalid'}"
    groups = []
    for k in keys:
        parent = k.rsplit(".", 1)[0]
        g = parent if "." in k and parent in COLLAPSED else k
        if g not in groups:
            groups.append(g)
    return "differs in " + ", ".join(groups)


# Objects whose fields are reported as one in a kind's name (the reproduction still lists every field).
COLLAPSED = {"level", "pegdata.level", "pegdata.fractions", "fractions"}


def _overflows(a: int, b: int) -> bool:
    return not -(1 << 63) <= a * b < (1 << 63)


def _vec(x) -> list[int]:
    if isinstance(x, dict):
        x = x.get("f", x.get("value", 0))
    return std_list(x) if isinstance(x, int) else list(x)


def domain(op: str, req: dict, cpp: dict | None = None) -> str:
    """Which corner of the input space a failing case sits in, so that different causes stay different kinds."""
    tags = []
    if op == "ratio":
        v, part, total = req["value"], req["part"], req["total"]
        if _overflows(v, part):
            tags.append("int64 product overflows (C++ takes the uint128 path)")
            if min(v, part, total) < 0:
                tags.append("with a negative operand")
        if total and not -(1 << 63) <= abs(v * part) // abs(total) < (1 << 63):
            tags.append("quotient beyond int64")
    elif op in ("ratio_part", "move_ratio_part_to"):
        f = _vec(req["f"] if op == "ratio_part" else req["src"])
        part = req["part"] if op == "ratio_part" else req["value"]
        total = sum(f)
        if part < 0:
            tags.append("negative part")
        if any(x < 0 for x in f):
            tags.append("negative entries")
        if total <= 0:
            tags.append("total <= 0")
        if any(_overflows(x, part) for x in f):
            tags.append("an entry * part overflows int64")
    elif op in ("to_deltas", "from_deltas"):
        f = _vec(req["f"] if op == "to_deltas" else req["d"])
        if any(_overflows(x, 99) for x in f) or (op == "from_deltas" and any(
                _overflows(x, 99) for x in _from_deltas_exact(f))):
            tags.append("fp * 99 overflows int64")
    elif op in ("level", "getpeglevel") and cpp:
        lv = cpp.get("level") if op == "level" else _level_from_request(cpp.get("level", ""), full=True)
        if isinstance(lv, dict) and lv.get("shift", 0) > 0 and lv.get("shift_last_total", 1) == 0:
            tags.append("the C++ walk ends exactly on a fraction boundary (its part and total are 0)")
    elif op == "hli":
        if sum(_vec(req["f"])) == 0:
            tags.append("zero total")
    elif op == "parts_at" and _level_from_request(req["level"]):
        lv = _level_from_request(req["level"])
        if lv["supply"] + lv["shift"] >= 1200:
            tags.append(f"supply+shift = {lv['supply'] + lv['shift']} (invalid level)")
    return ("; " + ", ".join(tags)) if tags else ""


def _from_deltas_exact(d: list[int]) -> list[int]:
    out, prev = [], 0
    for i, x in enumerate(d):
        prev = x if i == 0 else x + (abs(prev) * 99 // 100) * (1 if prev >= 0 else -1)
        out.append(prev)
    return out


def _message(text: str) -> str:
    """An error message with its numbers blanked, to group refusals by cause."""
    return re.sub(r"-?\d+", "N", text)[:80]


def _level_from_request(lv, full: bool = False) -> dict | None:
    if isinstance(lv, dict) and "supply" in lv:
        return lv
    text = lv if isinstance(lv, str) else lv.get("hex", "") if isinstance(lv, dict) else ""
    try:
        data = bytes.fromhex(text)
    except ValueError:
        return None
    if len(data) != 43 or data[0] != 2:
        return None
    i16 = [int.from_bytes(data[i:i + 2], "little", signed=True) for i in range(17, 27, 2)]
    out = {"supply": i16[1], "shift": i16[4]}
    if full:
        out["shift_last_part"] = int.from_bytes(data[27:35], "little", signed=True)
        out["shift_last_total"] = int.from_bytes(data[35:43], "little", signed=True)
    return out


def compact(v):
    """Readable vectors: ``Std(n)`` for a standard split, a sparse ``{index: value}`` map for the others."""
    if isinstance(v, list) and len(v) > 8 and all(isinstance(x, int) for x in v):
        padded = (v + [0] * 1200)[:1200]
        total = sum(padded)
        if padded == std_list(total):
            return f"Std({total})"
        return {"sparse": {i: x for i, x in enumerate(padded) if x}}
    if isinstance(v, dict):
        return {k: compact(x) for k, x in v.items()}
    return v


class Runner:
    def __init__(self, oracle: Oracle, seed: int = DEFAULT_SEED, shrink_budget: int = 300, out=sys.stdout,
                 ub_oracle: str = ""):
        self.oracle, self.seed, self.shrink_budget, self.out = oracle, seed, shrink_budget, out
        self.ub_oracle = ub_oracle
        self.stats: dict[str, OpStats] = {}
        self.kinds: dict[tuple[str, str], Kind] = {}

    # -- one case -----------------------------------------------------------------------------------------

    def python(self, req: dict) -> dict:
        try:
            return pyside.OPS[req["op"]](req)
        except pyside.NoEquivalent:
            raise
        except Exception as exc:  # noqa: BLE001 - any other Python failure is a finding
            return {"python_exception": f"{type(exc).__name__}: {exc}"[:300]}

    def check(self, req: dict, timeout: float | None = None):
        """(cpp answer, py answer, mismatch signature or None, exclusion reason or None)."""
        cpp = self.oracle.call(req, timeout)
        for flag in EXCLUDING_FLAGS:
            if flag in cpp:
                reason = {"hang": "C++ did not answer (endless loop)", "crash": "C++ crashed",
                          "nondeterministic": "C++ answer depends on memory it never wrote",
                          "bad_request": "oracle refused the request"}[flag]
                return cpp, None, None, reason
        py = self.python(req)
        keys = diff(req["op"], cpp, py)
        return cpp, py, (signature(req["op"], cpp, py, keys) if keys else None), None

    # -- one operation ------------------------------------------------------------------------------------

    def run_op(self, op: str, n: int) -> OpStats:
        st = self.stats.setdefault(op, OpStats())
        rng = random.Random(f"{self.seed}:{op}")
        gen = ALL_GENERATORS[op](rng, self.oracle)
        t0 = time.monotonic()
        answer = None
        attempts = 0
        while st.cases < n and attempts < 4 * n + 100:
            attempts += 1
            req = gen.send(answer) if attempts > 1 else next(gen)
            answer = None
            ub = req.pop("_ub", None)
            tag = req.pop("_tag", None)  # the generator's name for the input's shape
            if ub:
                self._exclude(st, ub, req)
                continue
            try:
                cpp, py, sig, reason = self.check(req)
            except pyside.NoEquivalent as exc:
                st.skipped += 1
                self._exclude(st, f"no Python equivalent: {exc}", req, counted=False)
                continue
            answer = cpp
            if reason:
                self._exclude(st, reason, req)
                continue
            st.cases += 1
            if "stderr" in cpp:
                line = next((x for x in cpp["stderr"].splitlines() if "runtime error" in x), "")
                if line:
                    line = line.split("runtime error:", 1)[1].strip()
                    st.ub_seen[line] = st.ub_seen.get(line, 0) + 1
            if sig:
                sig += domain(op, req, cpp) or (f"; input: {tag}" if tag else "")
                st.mismatches += 1
                ub = self.ub_check(req)
                if ub:  # kept apart: a kind on inputs where the C++ itself is undefined
                    st.ub_mismatches += 1
                    sig += " [C++ UB: " + re.sub(r"-?\d+", "N", ub.split(";")[0]) + "]"
                self._record(op, sig, req, cpp, py)
        st.seconds += time.monotonic() - t0
        return st

    def _exclude(self, st: OpStats, reason: str, req: dict, counted: bool = True) -> None:
        entry = st.excluded.setdefault(reason, [0, req])
        entry[0] += 1
        if len(json.dumps(req)) < len(json.dumps(entry[1])):
            entry[1] = req

    def _record(self, op, sig, req, cpp, py) -> None:
        kind = self.kinds.setdefault((op, sig), Kind(op, sig))
        kind.count += 1
        if kind.example is None or len(json.dumps(req)) < len(json.dumps(kind.example)):
            kind.example, kind.cpp, kind.py = req, cpp, py
            stderr = cpp.get("stderr", "")
            kind.ub_note = next((x.split("runtime error:", 1)[1].strip() for x in stderr.splitlines()
                                 if "runtime error" in x), "")

    # -- shrinking ------------------------------------------------------------------------------------------

    def shrink(self, kind: Kind) -> None:
        """Greedy: zero or drop vector entries, halve numbers; keep a change while the same kind still fails."""
        req = kind.example
        if any(isinstance(v, str) and k not in ("op", "hex") for k, v in req.items()):
            return  # pegdata strings: the smallest failing case seen is the reproduction
        budget = [self.shrink_budget]
        deadline = time.monotonic() + 30  # and at most 30 s per kind

        def still_fails(candidate) -> bool:
            if budget[0] <= 0 or time.monotonic() > deadline:
                budget[0] = 0
                return False
            budget[0] -= 1
            try:  # a candidate that makes the C++ loop forever is not kept: do not wait long for it
                cpp, py, sig, reason = self.check(candidate, timeout=min(0.5, self.oracle.timeout))
            except pyside.NoEquivalent:
                return False
            if sig and kind.signature.startswith(sig + domain(kind.op, candidate, cpp)) and not reason:
                kind.cpp, kind.py = cpp, py
                return True
            return False

        changed = True
        while changed and budget[0] > 0:
            changed = False
            for cand in _candidates(req):
                if still_fails(cand):
                    req, changed = cand, True
                    break
        kind.example, kind.shrunk = req, True

    # -- undefined behaviour --------------------------------------------------------------------------------

    def ub_check(self, req: dict) -> str:
        """Run one request on the sanitizer build of the oracle, in a fresh process (UBSan reports each code
        location once per process), and return what it reported, if anything."""
        if not self.ub_oracle:
            return ""
        try:
            fresh = Oracle(self.ub_oracle, timeout=self.oracle.timeout)
        except OracleError:
            return ""
        try:
            ans = fresh.call(req)
        finally:
            fresh.close()
        found = [x.split("runtime error:", 1)[1].strip() for x in ans.get("stderr", "").splitlines()
                 if "runtime error" in x]
        return "; ".join(dict.fromkeys(found))

    def classify_ub(self) -> None:
        for kind in self.kinds.values():
            kind.ub_note = self.ub_check(kind.example) or kind.ub_note
        for st in self.stats.values():
            for reason, entry in st.excluded.items():
                if len(entry) == 2 and not reason.startswith("no Python"):
                    entry.append(self.ub_check(entry[1]))

    # -- report ----------------------------------------------------------------------------------------------

    def report(self) -> str:
        lines = []
        total_cases = sum(s.cases for s in self.stats.values())
        total_mis = sum(s.mismatches for s in self.stats.values())
        lines.append(f"peg conformance: seed {self.seed}, {total_cases} cases compared, {total_mis} mismatches, "
                     f"{len(self.kinds)} kinds, oracle restarts {self.oracle.restarts}")
        lines.append("")
        lines.append(f"{'operation':22} {'cases':>8} {'mismatch':>9} {'(C++ UB)':>9} {'excluded':>9} {'skipped':>8} "
                     f"{'sec':>7}")
        for op in OP_ORDER:
            if op not in self.stats:
                continue
            s = self.stats[op]
            excl = sum(e[0] for r, e in s.excluded.items() if not r.startswith("no Python equivalent"))
            ub = str(s.ub_mismatches) if self.ub_oracle else "-"
            lines.append(f"{op:22} {s.cases:>8} {s.mismatches:>9} {ub:>9} {excl:>9} {s.skipped:>8} {s.seconds:>7.1f}")
        lines.append("")
        if self.kinds:
            lines.append("MISMATCH KINDS (smallest reproduction of each; vectors shown as Std(n) or sparse maps)")
            for n, kind in enumerate(sorted(self.kinds.values(), key=lambda k: (OP_ORDER.index(k.op), k.signature)),
                                     1):
                lines.append("")
                lines.append(f"[{n}] {kind.op}: {kind.signature}  ({kind.count} cases)")
                if kind.ub_note:
                    lines.append(f"    UBSan on this input: {kind.ub_note}")
                lines.append("    request: " + json.dumps(compact(kind.example)))
                decoded = self._decoded_inputs(kind.example)
                for name, text in decoded:
                    lines.append(f"      {name} decodes (C++) to: {text}")
                keys = diff(kind.op, kind.cpp, kind.py) or ["(whole answer)"]
                a, b = normalize(kind.op, kind.cpp), normalize(kind.op, kind.py)
                if "python_exception" in kind.py:
                    lines.append("    Python: " + kind.py["python_exception"])
                for k in keys[:8]:
                    lines.append(f"    {k}: C++ {json.dumps(compact(a.get(k, '<absent>')))[:600]}")
                    lines.append(f"    {' ' * len(k)}  Py  {json.dumps(compact(b.get(k, '<absent>')))[:600]}")
                if kind.cpp.get("err") or kind.py.get("err"):
                    lines.append(f"    messages: C++ {kind.cpp.get('err', '')!r} / Py {kind.py.get('err', '')!r}")
        excl_lines = []
        for op in OP_ORDER:
            for reason, (count, example, *ub) in sorted(self.stats.get(op, OpStats()).excluded.items()):
                excl_lines.append(f"  {op}: {reason} ({count}); e.g. {json.dumps(compact(example))[:400]}")
                if ub and ub[0]:
                    excl_lines.append(f"      UBSan: {ub[0]}")
        if excl_lines:
            lines.append("")
            lines.append("EXCLUDED (outside what the C++ defines, or no Python counterpart; not compared)")
            lines.extend(excl_lines)
        ub_lines = [f"  {op}: {line} ({count} cases)" for op in OP_ORDER
                    for line, count in sorted(self.stats.get(op, OpStats()).ub_seen.items())]
        if ub_lines:
            lines.append("")
            lines.append("UNDEFINED BEHAVIOUR UBSan reported in compared cases (lower bounds: it reports each "
                         "code location once per process)")
            lines.extend(ub_lines)
        return "\n".join(lines) + "\n"

    def _decoded_inputs(self, req: dict):
        out = []
        for k, v in req.items():
            if k in ("op", "hex", "level") or not isinstance(v, str) or not v:
                continue
            ans = self.oracle.call({"op": "pegdata_decode", "b64": v})
            pd = ans.get("pegdata", {})
            fr = pd.get("fractions", {})
            vec = fr.get("f", fr.get("value"))
            lv = pd.get("level", {})
            level = [lv.get(x) for x in ("cycle", "cycle_prev", "buffer", "supply", "supply_next", "supply_next_next",
                                         "shift", "shift_last_part", "shift_last_total")]
            out.append((k, f"valid={pd.get('valid')} fractions={json.dumps(compact(vec))[:400]} level={level} "
                           f"liquid={pd.get('liquid')} reserve={pd.get('reserve')} id={pd.get('id')}"))
        if isinstance(req.get("level"), str) and req["level"]:
            ans = self.oracle.call({"op": "level_from_hex", "hex": req["level"]})
            lv = ans["level"]
            out.append(("level", str([lv.get(x) for x in ("cycle", "cycle_prev", "buffer", "supply", "supply_next",
                                                          "supply_next_next", "shift", "shift_last_part",
                                                          "shift_last_total", "valid")])))
        return out


def _candidates(req: dict):
    """Smaller variants of a request: shorter or sparser vectors, smaller numbers."""
    for key, v in req.items():
        if key in NOT_SHRUNK:
            continue
        for new in _shrink_value(v):
            yield {**req, key: new}


NOT_SHRUNK = {"op", "flags", "version", "cross_cycles"}


def _shrink_value(v):
    if isinstance(v, bool):
        return
    if isinstance(v, int):
        for c in (0, v // 2 if v > 0 else -((-v) // 2), v - 1 if v > 0 else v + 1):
            if abs(c) < abs(v):
                yield c
    elif isinstance(v, list):
        n = len(v)
        while n > 0 and v[n - 1] == 0:
            n -= 1
        if n < len(v):
            yield v[:n]
        if n > 1:
            yield v[: n // 2]
            yield v[:n - 1]
        nz = [i for i, x in enumerate(v) if x]
        for i in nz[:40]:
            yield v[:i] + [0] + v[i + 1:]
        for i in nz[:20]:
            x = v[i]
            half = x // 2 if x > 0 else -((-x) // 2)
            yield v[:i] + [half] + v[i + 1:]
    elif isinstance(v, dict):
        for k, x in v.items():
            if k in NOT_SHRUNK:
                continue
            for new in _shrink_value(x):
                yield {**v, k: new}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.conformance",
                                 description="Differential run of halo_exchange.peg against a bitbay-core peg oracle")
    ap.add_argument("--cases", type=int, default=2000, help="compared cases per operation (default 2000)")
    ap.add_argument("--ops", default="", help="comma-separated operations (default: all): " + ",".join(OP_ORDER))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--oracle", default=os.environ.get("PEG_ORACLE", ""), help="driver executable ($PEG_ORACLE)")
    ap.add_argument("--ub-oracle", default=os.environ.get("PEG_ORACLE_UBSAN", ""),
                    help="sanitizer build of the oracle ($PEG_ORACLE_UBSAN): each reproduction is checked for "
                         "undefined behaviour on it")
    ap.add_argument("--report", default="", help="also write the report to this file")
    ap.add_argument("--shrink-budget", type=int, default=300, help="oracle calls spent shrinking each kind")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds before a C++ answer counts as a hang")
    args = ap.parse_args(argv)
    if not args.oracle:
        print("PEG_ORACLE is not set: it must name a peg oracle executable (a JSON-lines driver around bitbay-core's "
              "src/peg, built outside this repository; see docs/conformance.md).", file=sys.stderr)
        return 2
    ops = [o for o in args.ops.split(",") if o] or OP_ORDER
    unknown = [o for o in ops if o not in ALL_GENERATORS]
    if unknown:
        print(f"unknown operations: {', '.join(unknown)}; known: {', '.join(OP_ORDER)}", file=sys.stderr)
        return 2
    try:
        oracle = Oracle(args.oracle, timeout=args.timeout)
    except OracleError as exc:
        print(f"peg oracle: {exc}", file=sys.stderr)
        return 2
    runner = Runner(oracle, seed=args.seed, shrink_budget=args.shrink_budget, ub_oracle=args.ub_oracle)
    try:
        for op in ops:
            st = runner.run_op(op, args.cases)
            print(f"{op:22} {st.cases:>8} cases {st.mismatches:>7} mismatches  ({st.seconds:.1f}s)", flush=True)
        for kind in runner.kinds.values():
            runner.shrink(kind)
        runner.classify_ub()
        text = runner.report()
    finally:
        oracle.close()
    print()
    print(text, end="")
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(text)
    return 1 if runner.kinds else 0

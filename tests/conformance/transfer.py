"""Differential harness: bitbay-core's ``CalculateStandardFractions`` against our transfer rule.

Runs random transactions (``tests/conformance/transfer_cases.py``, fixed seed) through

* the C++: a driver executable around bitbay-core's unmodified ``src/peg/pegstd.cpp``, whose path is given
  (``--oracle`` or ``TRANSFER_ORACLE``). The driver and its build are not part of this repository (bitbay-core's
  code and builds of it are not committed here); its JSON-lines protocol is docs/conformance-transfer.md;
* ours: the devnode's consensus check (``node_hooks.devnode.consensus.check_transaction``: its script reading,
  ``owner()`` and ``transfer_output()``, then ``halo_exchange.peg.transfer.apply_transfer_rule``), with
  signatures and the devnode's minimum fee switched off, mainnet freeze times,

and compares accept/refuse, every output's 1200 fractions, marks (F/V/L/C), lock times and return addresses,
and the fee fractions. Prints counts per outcome and, per mismatch kind, a minimal reproduction (shrunk by
dropping inputs/outputs and simplifying fractions while the kind stays the same).

    TRANSFER_ORACLE=/path/to/driver .venv/bin/python -m tests.conformance.transfer --cases 10000

Not a pytest module (no ``test_`` prefix): ``make test`` never needs a C++ toolchain. Exit status: 0 when
nothing differs, 1 when something does, 2 when the driver is missing or broken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from halo_exchange.chain.layout import UtxoRecord
from halo_exchange.chain.params import MAINNET
from halo_exchange.chain.script import parse_notary, script_to_address
from halo_exchange.errors import TransferRuleError
from halo_exchange.peg.fractions import MARKS, Fractions
from halo_exchange.peg.transfer import FreezeTimes, TransferInput, TransferOutput, apply_transfer_rule
from node_hooks.devnode.consensus import check_transaction, owner
from node_hooks.devnode.errors import TxRejected
from tests.conformance.transfer_cases import (
    FOREIGN,
    SPENDERS,
    Case,
    address_script,
    build_transaction,
    generate_cases,
    input_fractions,
    input_script,
    output_script,
)

PARAMS = MAINNET.with_changes(fee_per_input_output=0)  # the C++ rule has no minimum fee; mainnet freeze times


class OracleError(RuntimeError):
    """The driver is missing, died or answered something unreadable."""


# -- the two sides ---------------------------------------------------------------------------------------


def _return_addr(inp: dict[str, Any]) -> str:
    label = inp.get("return_addr", "")
    return script_to_address(address_script(label)) or "" if label else ""


def oracle_request(case: Case, tx_hex: str) -> dict[str, Any]:
    """The driver request for ``case`` (docs/conformance-transfer.md)."""
    inputs = []
    for inp in case["inputs"]:
        inputs.append({
            "script": input_script(inp).hex(),
            "value": inp["value"],
            "fractions": input_fractions(inp),
            "flags": inp.get("flags", 0),
            "lock_time": inp.get("lock_time", 0),
            "return_addr": _return_addr(inp),
        })
    return {"id": case.get("id"), "tx": tx_hex, "supply": case["supply"], "block_time": case["time"],
            "network": "main", "inputs": inputs, "time_lock_pass": []}


class Oracle:
    """One driver process, restarted if it dies."""

    def __init__(self, path: str, timeout: float = 20.0) -> None:
        if not path:
            raise OracleError("no driver: set TRANSFER_ORACLE (or --oracle) to the transfer-oracle executable")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise OracleError(f"driver {path!r} is not an executable file")
        self.path = path
        self.timeout = timeout
        self.hangs = 0
        self.proc: subprocess.Popen[str] | None = None
        self.crashes = 0

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         bufsize=1)
        return self.proc

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            if not ready:
                # bitbay-core's MoveRatioPartTo can loop forever (its adjustment walks for positive entries
                # that a pool with negative ones may not have): end that driver process and start another.
                self.hangs += 1
                proc.kill()
                proc.wait()
                self.proc = None
                return {"ok": False, "error": f"DRIVER HUNG (no answer in {self.timeout:.0f} s)", "crashed": True}
            line = proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self.crashes += 1
            code = proc.wait()
            self.proc = None
            return {"ok": False, "error": f"DRIVER CRASHED (exit {code})", "crashed": True}
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise OracleError(f"unreadable driver answer: {line[:200]!r}") from exc

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


class _AllSigned:
    """Signature checker for check_transaction: every input counts as signed (the C++ rule reads none)."""

    def verify(self, tx: Any, index: int, script: bytes) -> bool:
        return True


def run_ours(case: Case, tx: Any) -> dict[str, Any]:
    """Our answer, shaped like the driver's: ok, error, outputs (fractions, flags, lock_time, return_addr), fee."""
    coins = {}
    for txin, inp in zip(tx.inputs, case["inputs"]):
        fr = Fractions(input_fractions(inp), flags=inp.get("flags", 0), lock_time=inp.get("lock_time", 0),
                       return_addr=_return_addr(inp))
        coins[(txin.prevout.txid, txin.prevout.n)] = (UtxoRecord(inp["value"], input_script(inp), 1, case["time"]), fr)

    def lookup(txid: bytes, n: int) -> Any:
        return coins.get((txid, n))

    try:
        checked = check_transaction(tx, lookup, case["supply"], case["time"], PARAMS, _AllSigned())  # type: ignore
    except TxRejected as exc:
        return {"ok": False, "error": f"{exc.rule}: {exc.detail}", "rule": exc.rule}
    except Exception as exc:  # noqa: BLE001 - a crash of ours is a finding, not the end of the run
        return {"ok": False, "error": f"RAISED {type(exc).__name__}: {exc}", "rule": "RAISED " + type(exc).__name__,
                "raised": True}
    outs = [{"fractions": fr.to_list(), "flags": fr.flags & MARKS, "lock_time": fr.lock_time,
             "return_addr": fr.return_addr} for fr in checked.output_fractions]
    return {"ok": True, "error": "", "outputs": outs, "fee": checked.fee_fractions.to_list()}


# -- comparison ------------------------------------------------------------------------------------------


def _shape(message: str) -> str:
    """Our refusal message with its particulars (quoted texts, numbers) blanked: one kind per message shape."""
    message = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", message)
    return re.sub(r"-?\d+", "N", message)


def _code(error: str) -> str:
    """``P-I-N-3: Freeze notary: ...`` -> ``P-I-N-3``."""
    return error.split(":", 1)[0].strip() if error else ""


def output_role(case: Case, j: int) -> str:
    """What output ``j`` is, as the harness built it: the basis of a mismatch kind's name."""
    out = case["outputs"][j]
    if "notary" in out:
        text = out["notary"]
        return "notary " + (text[:5] if text.startswith("**") else "other")
    named = []
    for p, other in enumerate(case["outputs"]):
        text = other.get("notary", "")
        if text[:5] in ("**F**", "**V**", "**C**", "**L**") and p < len(case["inputs"]):
            entries = text[5:].split(":")
            if str(j) in entries:
                named.append(text[:3].strip("*") + ("-single" if len(entries) == 1 else "-multi"))
    if named:
        return "frozen " + "+".join(sorted(set(named)))
    if out["to"] == "BURN":
        return "burn"
    if out["to"] in {inp["owner"] for inp in case["inputs"]}:
        return "change" + ("" if out.get("form", "p2pkh") == "p2pkh" else f" ({out['form']})")
    return "foreign"


def _diff_vec(a: list[int], b: list[int]) -> str:
    idx = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if not idx:
        return ""
    i = idx[0]
    return (f"{len(idx)} entries differ (first [{i}]: C++ {a[i]}, ours {b[i]}; totals C++ {sum(a)}, "
            f"ours {sum(b)})")


@dataclass
class Outcome:
    kind: str  # "" when both agree
    detail: list[str] = field(default_factory=list)
    verdict: str = ""  # accept/accept, refuse/refuse, ...
    info: str = ""  # both refuse with different codes: not a mismatch, noted
    rule_answer: dict[str, Any] | None = None  # ours on the C++'s script reading, when the kind is the rule's


def compare(case: Case, cpp: dict[str, Any], ours: dict[str, Any]) -> Outcome:
    if cpp.get("crashed"):
        return Outcome("C++ driver " + ("hung" if "HUNG" in cpp["error"] else "crashed"), [cpp["error"]], "crash")
    if cpp.get("driver_error"):
        raise OracleError(cpp["error"])
    if ours.get("raised"):
        return Outcome(f"ours raises {ours['rule'][7:]}", [ours["error"]], "raised")
    c_ok, o_ok = cpp["ok"], ours["ok"]
    if c_ok and not o_ok:
        why = _shape(ours["error"].split(": ", 1)[-1])
        return Outcome(f"C++ accepts, ours refuses {ours['rule']} ({why})", [], "accept/refuse")
    if not c_ok and o_ok:
        return Outcome(f"C++ refuses {_code(cpp['error'])}, ours accepts", [], "refuse/accept")
    if not c_ok:
        info = ""
        if _code(cpp["error"]) != ours["rule"]:
            info = f"both refuse: C++ {_code(cpp['error'])}, ours {ours['rule']}"
        return Outcome("", verdict="refuse/refuse", info=info)
    details: list[str] = []
    first = ""
    for j, (c, o) in enumerate(zip(cpp["outputs"], ours["outputs"])):
        diffs = []
        d = _diff_vec(c["fractions"], o["fractions"])
        if d:
            diffs.append(("fractions", d))
        if c["flags"] != o["flags"]:
            diffs.append(("marks", f"marks C++ {c['flags']:#x}, ours {o['flags']:#x}"))
        if c["lock_time"] != o["lock_time"]:
            diffs.append(("lock time", f"lock time C++ {c['lock_time']}, ours {o['lock_time']}"))
        if c["return_addr"] != o["return_addr"]:
            diffs.append(("return address", f"return address C++ {c['return_addr']!r}, ours {o['return_addr']!r}"))
        for what, text in diffs:
            details.append(f"output {j} ({output_role(case, j)}): {text}")
            if not first:
                first = f"both accept, output {what} differ ({output_role(case, j)})"
    d = _diff_vec(cpp["fee"], ours["fee"])
    if d:
        details.append(f"fee: {d}")
        first = first or "both accept, only the fee fractions differ"
    return Outcome(first, details, "accept/accept")


def _push_form(script: bytes) -> str:
    if len(script) > 1 and script[1] == 0x4C:
        return "OP_PUSHDATA1 push"
    if len(script) > 1 and script[1] < 0x4C and 2 + script[1] > len(script):
        return "truncated push"
    return "plain push"


def reading_differences(case: Case, cpp: dict[str, Any]) -> list[tuple[str, str]]:
    """Script reading: the C++'s ``ToAddress``/``ToNotary`` against the devnode's ``owner()``/``parse_notary``.

    Returns (category, detail) pairs. Reported apart: a reading difference matters only where it changes the
    result, which the comparison itself shows."""
    out: list[tuple[str, str]] = []
    if cpp.get("crashed") or "out_addresses" not in cpp:
        return out
    addr_of: dict[bytes, str] = {}
    for inp, hexaddr in zip(case["inputs"], cpp["in_addresses"]):
        addr_of[input_script(inp)] = bytes.fromhex(hexaddr).decode("latin-1")
    for o, hexaddr in zip(case["outputs"], cpp["out_addresses"]):
        addr_of[output_script(o)] = bytes.fromhex(hexaddr).decode("latin-1")
    # Same grouping? Two scripts are one owner to the C++ iff their ToAddress strings are equal.
    scripts = [s for s in addr_of if parse_notary(s) is None and s[:1] != b"\x6a"]
    for i, a in enumerate(scripts):
        for b in scripts[i + 1:]:
            same_cpp = addr_of[a] == addr_of[b]
            if same_cpp != (owner(a) == owner(b)):
                out.append(("owner grouping", f"{a.hex()} and {b.hex()} are "
                            f"{'one owner' if same_cpp else 'two owners'} to the C++, "
                            f"{'two' if same_cpp else 'one'} to ours"))
    for o, nhex in zip(case["outputs"], cpp["out_notaries"]):
        script = output_script(o)
        ours = parse_notary(script)
        theirs = None if nhex is None else bytes.fromhex(nhex).decode("utf-8", "surrogateescape")
        if ours != theirs:
            out.append((f"notary text ({_push_form(script)})",
                        f"script {script.hex()}: C++ reads {theirs!r}, ours {ours!r}"))
    return out


# -- running ---------------------------------------------------------------------------------------------


def run_rule_with_cpp_reading(case: Case, cpp: dict[str, Any]) -> dict[str, Any]:
    """``apply_transfer_rule`` alone, fed with the C++'s reading of every script (its ``ToAddress`` string as
    the owner, its ``ToNotary`` text as the notary): separates the rule's differences from the reading's."""
    inputs = []
    for inp, hexaddr in zip(case["inputs"], cpp["in_addresses"]):
        fr = Fractions(input_fractions(inp), flags=inp.get("flags", 0), lock_time=inp.get("lock_time", 0),
                       return_addr=_return_addr(inp))
        inputs.append(TransferInput(inp["value"], fr, bytes.fromhex(hexaddr).decode("latin-1")))
    outputs = []
    for out, hexaddr, nhex in zip(case["outputs"], cpp["out_addresses"], cpp["out_notaries"]):
        if nhex is not None:
            outputs.append(TransferOutput(out["value"], notary=bytes.fromhex(nhex).decode("utf-8", "surrogateescape")))
        else:
            outputs.append(TransferOutput(out["value"], address=bytes.fromhex(hexaddr).decode("latin-1")))
    try:
        result = apply_transfer_rule(inputs, outputs, case["supply"], case["time"],
                                     FreezeTimes(PARAMS.frozen_time, PARAMS.vfrozen_time))
    except TransferRuleError as exc:
        return {"ok": False, "error": f"{exc.rule}: {exc.detail}", "rule": exc.rule}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"RAISED {type(exc).__name__}: {exc}", "rule": "RAISED " + type(exc).__name__,
                "raised": True}
    outs = [{"fractions": fr.to_list(), "flags": fr.flags & MARKS, "lock_time": fr.lock_time,
             "return_addr": fr.return_addr} for fr in result.outputs]
    return {"ok": True, "error": "", "outputs": outs, "fee": result.fee.to_list()}


def run_case(oracle: Oracle, case: Case) -> tuple[Outcome, dict[str, Any], dict[str, Any]]:
    """Both sides on ``case``; the kind of a mismatch says whether the rule or the script reading causes it.

    When ours differs, the rule is run again on the C++'s reading of the scripts. If that agrees with the C++,
    the difference is the devnode's script reading alone: kind ``script reading only (<what>)`` (how it shows
    is the first detail line).
    Otherwise the kind is the rule's own difference (on the C++'s reading)."""
    tx = build_transaction(case)
    cpp = oracle.ask(oracle_request(case, tx.to_hex()))
    ours = run_ours(case, tx)
    outcome = compare(case, cpp, ours)
    if outcome.kind and "in_addresses" in cpp:
        rule_answer = run_rule_with_cpp_reading(case, cpp)
        rule_outcome = compare(case, cpp, rule_answer)
        if rule_outcome.kind:
            rule_outcome.rule_answer = rule_answer
            return rule_outcome, cpp, ours
        readings = sorted({category for category, _ in reading_differences(case, cpp)}) or ["?"]
        outcome.detail.insert(0, "shows as: " + outcome.kind)
        outcome.kind = "script reading only (" + ", ".join(readings) + ")"
    return outcome, cpp, ours


def _candidates(case: Case):
    """Simpler variants of ``case``: fewer outputs, fewer inputs, standard fractions, no marks, one owner."""
    outs, ins = case["outputs"], case["inputs"]
    for j in reversed(range(len(outs))):
        if len(outs) > 1:
            yield {**case, "outputs": outs[:j] + outs[j + 1:]}
    for i in reversed(range(len(ins))):
        if len(ins) > 1:
            yield {**case, "inputs": ins[:i] + ins[i + 1:]}
    for i, inp in enumerate(ins):
        if inp.get("fr", "std") != "std":
            yield {**case, "inputs": ins[:i] + [{**inp, "fr": "std"}] + ins[i + 1:]}
        if inp.get("flags"):
            yield {**case, "inputs": ins[:i] + [{**inp, "flags": 0, "lock_time": 0}] + ins[i + 1:]}
        if inp.get("form", "p2pkh") != "p2pkh":
            yield {**case, "inputs": ins[:i] + [{**inp, "form": "p2pkh"}] + ins[i + 1:]}
    for j, out in enumerate(outs):
        if out.get("form", "p2pkh") != "p2pkh" and "to" in out:
            yield {**case, "outputs": outs[:j] + [{**out, "form": "p2pkh"}] + outs[j + 1:]}
        if out.get("push", "min") != "min":
            yield {**case, "outputs": outs[:j] + [{**out, "push": "min"}] + outs[j + 1:]}
    # One name per role: spenders A, B, ... and payees X0, X1, ... in order of appearance.
    used = [inp["owner"] for inp in ins] + [out["to"] for out in outs if "to" in out]
    spenders = [x for x in dict.fromkeys(used) if x in SPENDERS]
    payees = [x for x in dict.fromkeys(used) if x in FOREIGN]
    rename = dict(zip(spenders, SPENDERS)) | dict(zip(payees, FOREIGN))
    if any(k != v for k, v in rename.items()):
        yield {**case, "inputs": [{**inp, "owner": rename[inp["owner"]]} for inp in ins],
               "outputs": [{**out, "to": rename.get(out["to"], out["to"])} if "to" in out else out for out in outs]}
    if case["supply"] != 500:
        yield {**case, "supply": 500}
    if case["time"] != 1_600_000_000:
        t = 1_600_000_000
        shift = t - case["time"]
        yield {**case, "time": t, "inputs": [{**inp, "lock_time": inp["lock_time"] + shift} if inp.get("lock_time")
                                             else inp for inp in ins]}


def shrink(oracle: Oracle, case: Case, kind: str, budget: int = 300) -> Case:
    """Greedy: keep any simpler variant whose mismatch kind is unchanged."""
    improved = True
    while improved and budget > 0:
        improved = False
        for cand in _candidates(case):
            budget -= 1
            if budget <= 0:
                break
            try:
                outcome = run_case(oracle, cand)[0]
            except Exception:  # noqa: BLE001 - a variant the builders refuse is simply not simpler
                continue
            if outcome.kind == kind:
                case = cand
                improved = True
                break
    return case


def _verdict(answer: dict[str, Any]) -> str:
    return "accept" if answer["ok"] else "refuse " + answer["error"]


def describe(case: Case) -> str:
    """The case as the issue writes its examples."""
    lines = [f"  supply {case['supply']}, block time {case['time']}"]
    for i, inp in enumerate(case["inputs"]):
        fr = inp.get("fr", "std")
        if fr == "std":
            frs = "Std"
        else:
            at = sorted(fr.get("at", {}).items(), key=lambda kv: int(kv[0]))
            frs = " + ".join(([f"Std({fr['std']})"] if fr.get("std") else [])
                             + (["{" + ", ".join(f"{k}: {v}" for k, v in at) + "}"] if at else [])) or "zero"
        mark = ""
        if inp.get("flags"):
            mark = f" flags {inp['flags']:#x} lock {inp.get('lock_time', 0)}"
            if inp.get("return_addr"):
                mark += f" return {inp['return_addr']}"
        form = "" if inp.get("form", "p2pkh") == "p2pkh" else f" ({inp['form']})"
        lines.append(f"  in{i}: {inp['owner']}{form} {inp['value']} {frs}{mark}")
    for j, out in enumerate(case["outputs"]):
        if "notary" in out:
            push = "" if out.get("push", "min") == "min" else f" ({out['push']} push)"
            lines.append(f"  out{j}: {out['value']} notary {out['notary']!r}{push}")
        else:
            form = "" if out.get("form", "p2pkh") == "p2pkh" else f" ({out['form']})"
            lines.append(f"  out{j}: {out['value']} -> {out['to']}{form}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.conformance.transfer", description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first case number (cases depend only on seed and number)")
    ap.add_argument("--oracle", default=os.environ.get("TRANSFER_ORACLE", ""))
    ap.add_argument("--replay", help="a case as JSON (or @file): run it alone and print both answers")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--report", help="also write the report to this file")
    ap.add_argument("--examples", type=int, default=1, help="unshrunk case numbers listed per kind besides the "
                                                            "minimal reproduction")
    args = ap.parse_args(argv)
    try:
        oracle = Oracle(args.oracle)
    except OracleError as exc:
        print(f"conformance-transfer: {exc}", file=sys.stderr)
        return 2
    try:
        if args.replay:
            return _replay(oracle, args.replay)
        return _run(oracle, args)
    except OracleError as exc:
        print(f"conformance-transfer: driver failure: {exc}", file=sys.stderr)
        return 2
    finally:
        oracle.close()


def _replay(oracle: Oracle, text: str) -> int:
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    case = json.loads(text)
    outcome, cpp, ours = run_case(oracle, case)
    print(describe(case))
    print(f"C++:  {'accept' if cpp['ok'] else 'refuse ' + cpp['error']}")
    print(f"ours: {_verdict(ours)}")
    if outcome.rule_answer is not None and _verdict(outcome.rule_answer) != _verdict(ours):
        print(f"ours on the C++'s script reading: {_verdict(outcome.rule_answer)}")
    print(f"kind: {outcome.kind or '(agree)'}")
    for line in outcome.detail:
        print("  " + line)
    for category, detail in reading_differences(case, cpp):
        print(f"  script reading, {category}: {detail}")
    return 1 if outcome.kind else 0


def _run(oracle: Oracle, args: argparse.Namespace) -> int:
    started = time.time()
    verdicts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    first_case: dict[str, Case] = {}
    smallest: dict[str, Case] = {}
    examples: dict[str, list[int]] = {}
    infos: Counter[str] = Counter()
    readings: Counter[str] = Counter()
    reading_example: dict[str, Case] = {}
    cpp_codes: Counter[str] = Counter()
    for case in generate_cases(args.seed, args.cases, args.start):
        outcome, cpp, ours = run_case(oracle, case)
        verdicts[outcome.verdict] += 1
        cpp_codes["accept" if cpp.get("ok") else _code(cpp.get("error", ""))] += 1
        if outcome.info:
            infos[outcome.info] += 1
        for key in {category for category, _ in reading_differences(case, cpp)}:
            readings[key] += 1
        for key, detail in reading_differences(case, cpp):
            reading_example.setdefault(key, {**case, "_reading": detail})
        if not outcome.kind:
            continue
        kinds[outcome.kind] += 1
        first_case.setdefault(outcome.kind, case)
        examples.setdefault(outcome.kind, []).append(case["id"])
        size = len(case["inputs"]) + len(case["outputs"])
        best = smallest.get(outcome.kind)
        if best is None or size < len(best["inputs"]) + len(best["outputs"]):
            smallest[outcome.kind] = case
    elapsed = time.time() - started

    lines = [f"transfer-rule conformance: {args.cases} transactions, seed {args.seed}, first case {args.start}, "
             f"{elapsed:.0f} s",
             "C++ CalculateStandardFractions (bitbay-core pegstd.cpp, driver " + args.oracle + ")",
             "ours: node_hooks.devnode.consensus.check_transaction -> halo_exchange.peg.transfer", ""]
    lines.append("outcomes (C++/ours): " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    lines.append("C++ answers: " + ", ".join(f"{k} {v}" for k, v in cpp_codes.most_common()))
    total_mismatch = sum(kinds.values())
    lines.append(f"mismatching transactions: {total_mismatch} of {args.cases}; driver crashes: {oracle.crashes}, "
                 f"hangs: {oracle.hangs}")
    lines.append("")
    for n, (kind, count) in enumerate(kinds.most_common(), 1):
        case = smallest[kind]
        if not args.no_shrink:
            case = shrink(oracle, case, kind)
        outcome, cpp, ours = run_case(oracle, case)
        lines.append(f"[{n}] {kind}: {count} transactions (e.g. case {', '.join(map(str, examples[kind][:5]))})")
        lines.append(describe(case))
        lines.append(f"  C++:  {'accept' if cpp['ok'] else 'refuse ' + cpp['error']}")
        lines.append(f"  ours: {_verdict(ours)}")
        if outcome.rule_answer is not None and _verdict(outcome.rule_answer) != _verdict(ours):
            lines.append(f"  ours on the C++'s script reading: {_verdict(outcome.rule_answer)}")
        for d in outcome.detail[:6]:
            lines.append("  " + d)
        if len(outcome.detail) > 6:
            lines.append(f"  ... {len(outcome.detail) - 6} more")
        replay = {k: v for k, v in case.items() if not k.startswith("_")}
        lines.append("  replay: --replay '" + json.dumps(replay, separators=(",", ":")) + "'")
        lines.append("")
    if infos:
        lines.append("both refuse, with different codes (not counted as mismatches; ours has its own codes):")
        for k, v in infos.most_common():
            lines.append(f"  {v:6d}  {k}")
        lines.append("")
    if readings:
        lines.append("script reading differences, C++ ToAddress/ToNotary vs the devnode's owner()/parse_notary "
                     "(counted per case; they matter where a result above differs):")
        for k, v in readings.most_common():
            ex = reading_example[k]
            lines.append(f"  {v:6d}  {k}, e.g. case {ex['id']}: {ex['_reading']}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 1 if total_mismatch else 0


if __name__ == "__main__":
    sys.exit(main())

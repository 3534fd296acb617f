"""The operator's status report: what ``halo-exchange status`` shows, computed, judged and laid out.

:func:`collect` runs on the reactor thread, inside the node process (the ``status`` command of the operator
channel): it reads the node's chain through the node's own DB handle and the exchange's state from memory,
so no other process ever opens either DB. Its answer is one JSON-able dict of plain numbers and strings
(amounts in integer satoshis). :func:`assess` and :func:`render` run in the ``halo-exchange status`` process:
the health verdict behind the exit code, and the text for a terminal.

Sections of the report: ``node`` (tip, peg cycle and supplies), ``exchange`` (state, wallet, users, the last
batch written), ``book`` (the exchange's liquid and reserve, the pool, the withdrawal escrows), ``deposits``,
``withdrawals`` and ``batches`` (counts by state), ``api`` (address and requests per method). For a follower
node the command merges its status file (``node-status.json``) in under the keys that file's report always had:
``status`` (the sync state: state, heights, speed, last error) and ``running``/``problem`` (whether that file is
current).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

from halo_exchange import __version__
from halo_exchange.commands import POOL, RESERVED_NAMES
from halo_exchange.ledger.deposits import DepositState
from halo_exchange.ledger.wallet import WalletState
from halo_exchange.ledger.withdrawals import ESCROW_PREFIX, BatchState, WithdrawalState
from halo_exchange.serialize import display_hex

if TYPE_CHECKING:  # the service imports this module to register its `status` command
    from halo_exchange.chain.reader import ChainReader
    from halo_exchange.service import ExchangeService

HEALTHY, DEGRADED, UNREACHABLE = 0, 1, 2  # the exit codes of `halo-exchange status`


# -- collect (reactor thread, in the node process) ---------------------------------------------------------

def _by_state(states: Iterable[Any], names: Iterable[Any]) -> dict[str, int]:
    """Counts per state, every state named (0 when none), so that a monitor finds the same keys each time."""
    counts = Counter(state.value for state in states)
    return {name.value: counts.get(name.value, 0) for name in names}


def node_facts(reader: ChainReader) -> dict[str, Any] | None:
    """The chain tip and the peg cycle, from one snapshot of the node's DB (None before any block)."""
    with reader.snapshot() as view:
        tip = view.tip()
        if tip is None:
            return None
        height, tip_hash = tip
        header = view.block_header(height)
        info = view.peg_info()
    return {
        "height": height,
        "tip_hash": display_hex(tip_hash),
        "tip_time": header.time if header is not None else None,
        "cycle": info.cycle,
        "cycle_length": info.interval,
        # A block whose height is a multiple of the interval starts the next cycle.
        "blocks_to_next_cycle": (info.cycle + 1) * info.interval - height,
        "supply": info.supply,
        "supply_next": info.supply_next,
        "supply_next_next": info.supply_next_next,
    }


def exchange_state(service: ExchangeService) -> str:
    """running, paused (StartExchange(0), or not started yet), starting, failed, closed or stopped."""
    state = service.state.value
    if state == "running" and service.api is not None and not service.api.started:
        return "paused"
    return state


def collect(service: ExchangeService, now: float | None = None) -> dict[str, Any]:
    """The report of one :class:`~halo_exchange.service.ExchangeService` (on the reactor thread)."""
    now = time.time() if now is None else now
    engine = service.loaded_engine
    reader = service.reader
    report: dict[str, Any] = {
        "version": __version__,
        "pid": os.getpid(),
        "time": now,
        "node": node_facts(reader) if reader is not None else None,
        "exchange": {
            "state": exchange_state(service),
            "reason": service.failure_reason or service.start_error,
        },
        "book": None, "deposits": None, "withdrawals": None, "batches": None,
    }
    api = service.api
    report["api"] = {
        "address": f"{service.config.api_host}:{service.api_port}" if api is not None else None,
        "calls": dict(sorted(api.call_counts.items())) if api is not None else {},
    }
    report["backup"] = service.backup_status()  # docs/backup.md; shown after a failure too
    if engine is None:
        return report
    book = engine.book
    users = sum(1 for name in book.accounts if name not in RESERVED_NAMES and not name.startswith(ESCROW_PREFIX))
    commit = engine.commit
    report["exchange"].update({
        "cycle": book.cycle,
        "effective_supply": book.supply,
        "wallet": engine.wallet.state.value,
        "wallet_locked": engine.wallet.state is WalletState.LOCKED,
        "users": users,
        # A cycle update in steps under way (balance calls wait for it); None when none.
        "cycle_update": engine.updating(),
        "last_write": {
            "batches": commit.batches_written,
            "time": commit.last_write,
            "age_seconds": None if commit.last_write is None else round(now - commit.last_write, 3),
        },
    })
    pool = book.balance(POOL) if POOL in book.accounts else (0, 0)
    escrow = engine.escrow_total()
    liquid = book.pool_total
    report["book"] = {
        "liquid": liquid,
        "reserve": sum(book.book) - liquid,
        "pool": {"liquid": pool[0], "reserve": pool[1]},
        "escrow": {"liquid": escrow[0], "reserve": escrow[1]},
    }
    report["deposits"] = _by_state((d.state for d in engine.deposits.deposits.values()), DepositState)
    report["withdrawals"] = _by_state((w.state for w in engine.withdrawals.values()), WithdrawalState)
    report["batches"] = _by_state((b.state for b in engine.batches.values()), BatchState)
    return report


# -- judge and show (the `halo-exchange status` process) ------------------------------------------------------

def assess(report: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit code, what is wrong): 0 healthy; 1 degraded, each problem in words an operator can act on."""
    problems = []
    exchange = report.get("exchange") or {}
    state = exchange.get("state")
    if state == "failed":
        problems.append(f"exchange mode failed: {exchange.get('reason') or 'see the node log'}; restart the node "
                        "(after freeing disk space if that was the cause)")
    elif state == "paused":
        problems.append("the exchange is not started: StartExchange(passw, 1) starts it")
    elif state != "running":
        problems.append(f"exchange mode is {state}")
    waiting = (report.get("withdrawals") or {}).get(WithdrawalState.QUEUED.value, 0)
    if exchange.get("wallet_locked") and waiting:
        problems.append(f"the wallet is locked while {waiting} withdrawal(s) wait: ExchangePassword(passphrase, "
                        "passw) unlocks it")
    backup = report.get("backup") or {}
    if backup.get("state") in ("degraded", "failed"):
        problems.append(f"backup {backup['state']} ({backup.get('error')}): the backup in {backup.get('dir')} "
                        f"holds batches up to {backup.get('last_sequence')}, the exchange DB "
                        f"{backup.get('primary_sequence')}; fix that directory (docs/backup.md)")
    if "status" in report:  # a follower's sync state, merged from its status file
        record = report["status"] or {}
        if report.get("problem"):
            problems.append(f"node: {report['problem']}")
        elif record.get("state") != "following":
            problems.append(f"node is {record.get('state')}, not following bitbayd's tip")
    return (DEGRADED if problems else HEALTHY), problems


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(then))
    return f"{stamp} ({max(now - then, 0):.0f} s ago)"


def _pair(value: dict[str, int]) -> str:
    return f"liquid {value['liquid']}, reserve {value['reserve']}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _one_line(text: Any, width: int = 48) -> str:
    """A command's source or answer on one short line (newlines shown as ⏎)."""
    flat = " ⏎ ".join(line.strip() for line in str(text or "").strip().splitlines())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _duration(milliseconds: Any) -> str:
    return f"{milliseconds:>8.1f} ms" if isinstance(milliseconds, (int, float)) else f"{'-':>8} ms"


def render(report: dict[str, Any], execs: list[dict[str, Any]] | None | bool = False) -> str:
    """The report for a terminal: aligned sections (amounts in satoshis). ``execs``: the exec log's records, None
    when the exchange keeps none, False when not asked for."""
    now = report.get("time") or time.time()
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    node = report.get("node")
    rows: list[tuple[str, str]] = []
    if node is not None:
        rows += [
            ("height", str(node["height"])),
            ("tip", node["tip_hash"]),
            ("tip time", _ago(node["tip_time"], now)),
            ("peg cycle", f"{node['cycle']} ({node['blocks_to_next_cycle']} blocks to the next, "
                          f"{node['cycle_length']} a cycle)"),
            ("supply", f"{node['supply']}, next {node['supply_next']}, then {node['supply_next_next']}"),
        ]
    else:
        rows.append(("chain", "no block yet"))
    if "status" in report:
        record = report["status"] or {}
        rows.append(("sync", f"{record.get('state')}, height {record.get('height')} of "
                             f"{record.get('upstream_height')}"
                             + (f" ({report['problem']})" if report.get("problem") else "")))
        if record.get("last_error"):
            rows.append(("last error", str(record["last_error"])))
    sections.append(("Node", rows))

    exchange = report.get("exchange") or {}
    rows = [("state", exchange.get("state", "?") + (f": {exchange['reason']}" if exchange.get("reason") else ""))]
    if "wallet" in exchange:
        last = exchange["last_write"]
        rows += [
            ("wallet", exchange["wallet"]),
            ("users", str(exchange["users"])),
            ("cycle", f"{exchange['cycle']} (effective supply {exchange['effective_supply']})"),
            ("last write", f"batch {last['batches']}, {_ago(last['time'], now)}"),
        ]
        update = exchange.get("cycle_update")
        if update:
            rows.append(("cycle update", f"to cycle {update['cycle']}, supply {update['old_supply']} -> "
                                         f"{update['new_supply']}: {update['done']} of {update['accounts']} accounts "
                                         "(balance calls wait for it)"))
    sections.append(("Exchange", rows))
    book = report.get("book")
    if book is not None:
        sections.append(("Book (satoshis)", [
            ("liquid", str(book["liquid"])),
            ("reserve", str(book["reserve"])),
            ("pool", _pair(book["pool"])),
            ("escrow", _pair(book["escrow"])),
        ]))
        sections.append(("Deposits", [("by state", _counts(report["deposits"]))]))
        sections.append(("Withdrawals", [("requests", _counts(report["withdrawals"])),
                                         ("batches", _counts(report["batches"]))]))
    api = report.get("api") or {}
    calls = api.get("calls") or {}
    sections.append(("API", [
        ("address", api.get("address") or "off (no API port)"),
        ("calls", ", ".join(f"{name} {count}" for name, count in calls.items()) or "none yet"),
    ]))
    backup = report.get("backup")
    if backup is not None and backup["state"] != "off":  # with backup_dir only (--json always tells)
        sections.append(("Backup", [
            ("state", backup["state"] + (f": {backup['error']}" if backup.get("error") else "")),
            ("dir", str(backup["dir"])),
            ("batches", f"{backup['last_sequence']} of the exchange DB's {backup['primary_sequence']}"),
            ("last snapshot", f"batch {backup['last_snapshot_sequence']}, {_ago(backup['last_snapshot_time'], now)}"),
        ]))
    if execs is not False:
        if execs is None:
            rows = [("", "this exchange has no exec log")]
        elif not execs:
            rows = [("", "no exec command received")]
        else:
            rows = [(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.get("time", 0))),
                     f"{record.get('state', '?'):<11} {_duration(record.get('duration_ms'))}  "
                     f"{str(record.get('hash'))[:16]}  {_one_line(record.get('source'))}  -> "
                     f"{_one_line(record.get('outcome'))}") for record in execs]
        sections.append(("Execs", rows))

    width = max(len(label) for _, rows in sections for label, _ in rows)
    lines = []
    for title, rows in sections:
        lines.append(title)
        lines += [f"  {label.ljust(width)}  {value}".rstrip() for label, value in rows]
    code, problems = assess(report)
    lines.append("")
    lines.append("healthy" if code == HEALTHY else "degraded: " + "; ".join(problems))
    return "\n".join(lines)

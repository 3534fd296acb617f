"""``halo-exchange audit``: every ledger invariant checked against the exchange DB and the node's chain.

Run it on a stopped node (LevelDB allows one process per DB; a running node makes the open fail, which is
reported, and harms nothing). Violations make the command exit 1:

* the book: per-index conservation, liquid + reserve = value, nothing negative (``Book.check``);
* every registered deposit is an output of the active chain, with the fractions the chain holds for it;
* the book equals the sum of what registered deposits brought in (no other credit or debit exists yet);
* the liquid the book promises is covered by those outputs' liquid at the network's next supply.

Reversed deposits (registered, then their block left the chain) are listed for the operator either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from halo_exchange.chain.reader import ChainView
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.deposits import DepositState, DepositTracker
from halo_exchange.peg.fractions import PEG_SIZE


@dataclass
class AuditReport:
    facts: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        lines = ["halo-exchange audit"] + [f"  {fact}" for fact in self.facts]
        lines += [f"  notice: {notice}" for notice in self.notices]
        lines += [f"  VIOLATION: {violation}" for violation in self.violations]
        lines.append("  result: " + ("OK" if self.ok else f"{len(self.violations)} violation(s)"))
        return "\n".join(lines)


def audit(book: Book, deposits: DepositTracker, chain: ChainView) -> AuditReport:
    report = AuditReport()
    registered = [d for d in deposits.deposits.values() if d.state is DepositState.REGISTERED]
    report.facts.append(
        f"book: cycle {book.cycle}, supply {book.supply}, {len(book.accounts)} accounts, "
        f"liquid {book.pool_total}, value {sum(book.book)}"
    )
    report.facts.append(
        f"deposits: {len(deposits.deposits)} tracked, {len(registered)} registered; chain tip {chain.height()}"
    )
    report.violations += [f"book: {problem}" for problem in book.check()]

    credited = [0] * PEG_SIZE
    covering_liquid = 0
    supply_next = chain.peg_info().supply_next
    for deposit in registered:
        label = f"deposit {deposit.outpoint} ({deposit.owner})"
        output = chain.output(deposit.txid, deposit.n)
        if output is None:
            report.violations.append(f"{label} is registered but not in the chain")
            continue
        if output.fractions.to_list() != deposit.fractions.to_list():
            report.violations.append(f"{label} holds other fractions than the chain's")
        for i, v in enumerate(deposit.fractions.to_list()):
            credited[i] += v
        if not output.spent:
            covering_liquid += output.fractions.high(supply_next)
    for deposit in deposits.deposits.values():
        if deposit.state is DepositState.REVERSED:
            report.notices.append(
                f"deposit {deposit.outpoint} of {deposit.amount} to {deposit.owner!r} was "
                f"reversed (its block left the chain)"
            )
    for i in range(PEG_SIZE):
        if credited[i] != book.book[i]:
            report.violations.append(f"book index {i} is {book.book[i]}, registered deposits bring {credited[i]}")
            break
    if book.pool_total > covering_liquid:
        report.violations.append(
            f"the book promises {book.pool_total} liquid, the exchange's outputs hold {covering_liquid} at the "
            f"network's next supply {supply_next}"
        )
    return report

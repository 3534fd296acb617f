"""``halo-exchange audit``: every ledger invariant checked against the exchange DB and the node's chain.

Run it on a stopped node (LevelDB allows one process per DB; a running node makes the open fail, which is
reported, and harms nothing). Violations make the command exit 1:

* the book: per-index conservation, liquid + reserve = value, nothing negative (``Book.check``);
* every registered deposit is an output of the active chain, with the fractions the chain holds for it;
* every coin the exchange's index holds unspent is unspent in the chain, with the chain's value and fractions;
* value: the coins, plus what batches already mined but not yet complete took out, equal the book's value less
  the maintenance costs not yet recovered from commissions (``U + in flight == B - debt``, exactly);
* the liquid the book promises is covered by the coins' liquid at the network's next supply (with what mined,
  incomplete batches took out, and the maintenance debt, which the book still counts).

Reversed deposits (registered, then their block left the chain) are listed for the operator either way.
When the exchange has not applied the chain's last block (the node crashed between its write and the
exchange's, or blocks left the chain meanwhile), only the book is checked and the report says why: the
coins would be compared with blocks the exchange has not seen. Start the node, let it catch up, audit again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from halo_exchange.chain.reader import ChainView
from halo_exchange.ledger.book import Book
from halo_exchange.ledger.coins import Coin, CoinIndex
from halo_exchange.ledger.deposits import Deposit, DepositState, DepositTracker
from halo_exchange.ledger.withdrawals import Batch, BatchKind, BatchState


@dataclass
class AuditReport:
    facts: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    partial: str = ""  # why only the book could be checked (the exchange is not level with the chain)

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        lines = ["halo-exchange audit"] + [f"  {fact}" for fact in self.facts]
        lines += [f"  notice: {notice}" for notice in self.notices]
        lines += [f"  VIOLATION: {violation}" for violation in self.violations]
        if self.partial:
            lines.append(f"  not checked: {self.partial}")
        lines.append("  result: " + ("OK" if self.ok else f"{len(self.violations)} violation(s)")
                     + (" (book only)" if self.partial else ""))
        return "\n".join(lines)


def audit(book: Book, deposits: DepositTracker, chain: ChainView, coins: CoinIndex | None = None,
          batches: dict[str, Batch] | None = None, debt: int = 0) -> AuditReport:
    report = AuditReport()
    coins = coins if coins is not None else CoinIndex()
    batches = batches or {}
    registered = [d for d in deposits.deposits.values() if d.state is DepositState.REGISTERED]
    book_value = sum(book.book)
    report.facts.append(
        f"book: cycle {book.cycle}, supply {book.supply}, {len(book.accounts)} accounts, "
        f"liquid {book.pool_total}, value {book_value}"
    )
    report.facts.append(
        f"deposits: {len(deposits.deposits)} tracked, {len(registered)} registered; chain tip {chain.height()}"
    )
    report.violations += [f"book: {problem}" for problem in book.check()]
    applied, tip = deposits.tip[0], chain.height()
    applied_block = deposits.applied_block(applied)
    on_chain = applied_block is None or chain.block_hash(applied) == applied_block[0]
    if applied != tip or not on_chain:
        # The chain moved on (or back) without the exchange (a crash between the node's write and the
        # exchange's): comparing its coins with a chain it has not seen would report losses that are not.
        where = "" if on_chain else " on a branch the chain has left"
        report.partial = (f"the exchange has applied blocks up to {applied}{where} and the chain is at {tip}: only "
                          f"the book was checked; start the node so the exchange catches up, then audit again")
        return report

    for deposit in registered:
        label = f"deposit {deposit.outpoint} ({deposit.owner})"
        output = chain.output(deposit.txid, deposit.n)
        if output is None:
            report.violations.append(f"{label} is registered but not in the chain")
            continue
        if output.fractions.to_list() != deposit.fractions.to_list():
            report.violations.append(f"{label} holds other fractions than the chain's")
        if not output.spent and coins.coins and coins.get(deposit.outpoint) is None:
            report.violations.append(f"{label} is unspent but missing from the exchange's coins")
    for deposit in deposits.deposits.values():
        if deposit.state is DepositState.REVERSED:
            report.notices.append(
                f"deposit {deposit.outpoint} of {deposit.amount} to {deposit.owner!r} was "
                f"reversed (its block left the chain)"
            )

    supply_next = chain.peg_info().supply_next
    unspent_value = covering_liquid = 0
    unspent = list(coins.unspent()) if coins.coins else [
        _deposit_coin(d) for d in registered if (o := chain.output(d.txid, d.n)) is not None and not o.spent]
    for coin in unspent:
        output = chain.output(coin.outpoint.txid, coin.outpoint.n)
        if output is None or output.spent:
            report.violations.append(f"coin {coin.outpoint} is unspent in the index but not in the chain")
            continue
        if output.value != coin.value or output.fractions.to_list() != coin.fractions.to_list():
            report.violations.append(f"coin {coin.outpoint} differs from the chain's output")
        unspent_value += coin.value
        covering_liquid += coin.fractions.high(supply_next)
    in_flight = liquid_in_flight = 0
    counts: dict[str, int] = {}
    for batch in batches.values():
        counts[batch.state.value] = counts.get(batch.state.value, 0) + 1
        if batch.state is BatchState.PROCESSING:
            in_flight += batch.outflow
            if batch.kind is not BatchKind.RESERVE:
                liquid_in_flight += batch.outflow
    report.facts.append(
        f"coins: {len(unspent)} unspent, value {unspent_value}; batches: "
        + (", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none")
        + f"; maintenance costs not yet recovered {debt}"
    )
    if unspent_value + in_flight != book_value - debt:
        report.violations.append(
            f"the coins hold {unspent_value} and mined batches took {in_flight}, but the book holds {book_value} "
            f"less {debt} of maintenance costs not yet recovered ({unspent_value + in_flight - book_value + debt:+d})"
        )
    if book.pool_total > covering_liquid + liquid_in_flight + debt:
        report.violations.append(
            f"the book promises {book.pool_total} liquid, the exchange's coins hold {covering_liquid} at the "
            f"network's next supply {supply_next} (and mined batches took {liquid_in_flight})"
        )
    return report


def _deposit_coin(deposit: Deposit) -> Coin:
    return Coin(deposit.outpoint, deposit.address, deposit.amount, deposit.fractions, deposit.height, "deposit")

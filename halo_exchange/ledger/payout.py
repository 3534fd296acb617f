"""Payout transactions: build, check and sign the exchange's withdrawal batches and maintenance merges.

This module owns the *shape* of every transaction the exchange pays out with: which of its coins it spends,
which outputs it writes in which order with which values, what the batch costs, and the proof, before
anything is signed, that the consensus fraction transfer rule (:mod:`halo_exchange.peg.transfer`) accepts
it at every supply index the transaction may be mined at. It follows the original's layouts
(reference/halo-behaviour.md §3.9-§3.10) with our cost rule and output order; docs/withdrawals.md
("Payout transactions") explains both.

Pure: no I/O, no clock, no store, no randomness. The engine passes the coins it may spend (with their
fractions as the chain stores them), the batch (payees, commission, master ID, supplies, block time), and
a key lookup for signing; the same arguments always give the same transaction.

Three rules shape every layout:

* **Cost.** ``cost = max(10_000 × payees + 500_000, fee_per_input_output × (inputs + outputs) + burns)``:
  the original's estimate, or the node's minimum fee plus the OP_RETURN values if that is higher. It pays
  the miner fee *and* the burns, and comes out of the batch's commission; the fee account gets the rest.
* **Change valid at every supply.** A transaction may be mined at the next block's supply or at the next
  cycle's. Reserve grows with the supply index, liquid shrinks. An output back to an input owner takes
  that owner's reserve first and then the common liquidity (``P-O-2``), so each owner's reserve change is
  its reserve at the *highest* supply: at a lower supply the difference (the owner's liquid in the band
  between the two supplies) is simply taken from the common liquidity, which is exactly that much larger
  there. The liquid the batch spends is counted at the highest supply too, so nothing of the band is lost
  to the miner at any supply.
* **The master-ID OP_RETURN is last.** An OP_RETURN (a non-``**Z**`` notary) is funded from the reserves
  first (``P-O-3``). Placed after the reserve change it burns liquidity (or, in a reserve batch, the reserve
  deliberately left for the cost); placed before, it would eat reserve meant for the change.

A reserve batch pays FROZEN reserve: output 0 is an ``**F**`` notary naming the recipients, which input 0
reads; the rule fills them from the reserves (input 0's owner first, then the others), and the module checks
that each recipient really got reserve only (``low(S) == value``) at every supply, because the rule would
silently top a frozen output up from the liquidity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from halo_exchange.chain.keys import Network, PrivateKey
from halo_exchange.chain.script import address_to_script, notary_script, script_owner, transfer_input, transfer_output
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut, sign_input
from halo_exchange.errors import DecodeError, HaloExchangeError, PegError, TransferRuleError
from halo_exchange.ledger.rating import liquidity_rating
from halo_exchange.peg.fractions import NOTARY_C, NOTARY_F, NOTARY_V, Fractions
from halo_exchange.peg.transfer import FreezeTimes, TransferInput, TransferResult, apply_transfer_rule

__all__ = [
    "MASTER_BURN",
    "NOTARY_BURN",
    "NOT_ENOUGH_FUNDS",
    "NOT_ENOUGH_FOR_FEES",
    "NOT_ENOUGH_FOR_MAINTENANCE",
    "Coin",
    "Payee",
    "PayoutError",
    "BatchPlan",
    "BuiltBatch",
    "batch_cost",
    "build_batch",
    "build_maintenance",
    "check_batch",
    "sign_batch",
]

NOT_ENOUGH_FUNDS = "Not enough funds"
NOT_ENOUGH_FOR_FEES = (
    "Not enough funds for fees. Withdraws need more funds to cover it. Try setting higher commissions for withdraws."
)
NOT_ENOUGH_FOR_MAINTENANCE = "Not enough funds for account maintenance."

MASTER_BURN = 5575  # value of the final OP_RETURN carrying the master ID (the original's)
NOTARY_BURN = 5590  # value of a reserve batch's **F** notary output (the original's)
ESTIMATE_PER_PAYEE = 10_000  # the original's fee estimate: 10,000 per withdrawal ...
ESTIMATE_BASE = 500_000  # ... plus 500,000
RESERVE_CONSOLIDATE = 30  # a reserve batch takes small reserve coins while it has fewer inputs than this
MAINTENANCE_MAX_INPUTS = 45
MAINTENANCE_MIN_LIQUID = 100_000_000  # 1 BAY: less liquid than that is not worth merging
MAINTENANCE_MIN_SHARE = 2500
MAINTENANCE_SHARES = 4  # the original merges into four equal liquid outputs
TX_VERSION = 1


class PayoutError(HaloExchangeError):
    """A payout transaction cannot be made; nothing was built or signed.

    ``answer`` is the API's string for it (``"Not enough funds"``, the fees and maintenance sentences, or
    ``"TX rejected: <rule> <detail>"`` when the transfer rule or the fee check refuses what was built).
    """

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


@dataclass(frozen=True)
class Coin:
    """One output the exchange can spend: where it is, who owns it, its value, fractions and script."""

    outpoint: OutPoint
    address: str  # its owner address (P2PKH of a wallet key): the key that signs for it
    value: int
    fractions: Fractions  # as the chain stores them
    script: bytes  # its scriptPubKey


@dataclass(frozen=True)
class Payee:
    """One withdrawal's payment: ``value`` satoshis (the amount less its commission) to ``address``."""

    address: str
    value: int


@dataclass(frozen=True)
class BatchPlan:
    """What one withdrawal batch must pay, and the chain context it must be valid in."""

    style: str  # "liquid" or "reserve"
    payees: list[Payee]  # one per withdrawal, in request order
    fee_account: str
    commission: int  # Σ of the batch's commissions
    change_address: str  # exchangeaccounts[0]
    master_id: bytes  # 16 bytes
    supplies: tuple[int, ...]  # supply indexes the tx must be valid at (next block's, next cycle's)
    block_time: int
    freeze_times: FreezeTimes
    network: Network
    fee_per_input_output: int = 5000


@dataclass(frozen=True)
class BuiltBatch:
    """A payout transaction and everything needed to check it again, sign it and book it.

    ``cost`` is what the batch charges the exchange (network fee + burns); for a withdrawal batch
    ``fee_account_value == commission - cost``. ``frozen_outputs`` are a reserve batch's recipient indexes
    (payees then the fee account), ``payee_outputs`` the index of each merged payee output in payee order.
    """

    tx: Transaction  # unsigned (empty scriptSigs) until signed
    inputs: tuple[Coin, ...]  # in tx input order
    network_fee: int  # Σin − Σout
    burns: int  # value of the OP_RETURN outputs
    fee_account_value: int
    change_outputs: tuple[int, ...]  # output indexes paying exchange addresses (reserve and liquid change)
    # Added: what check_batch needs to check the transaction again, and what the engine books.
    style: str = "liquid"  # "liquid", "reserve" or "maintenance"
    cost: int = 0
    supplies: tuple[int, ...] = ()
    block_time: int = 0
    freeze_times: FreezeTimes = field(default_factory=lambda: FreezeTimes(0, 0))
    network: Network | None = None
    fee_per_input_output: int = 5000
    frozen_outputs: tuple[int, ...] = ()
    payee_outputs: tuple[int, ...] = ()
    fee_account_output: int | None = None
    liquid_change_outputs: tuple[int, ...] = ()


# -- coins as the batch sees them ------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """A coin with what selection needs: its rule owner, and its reserve and liquid at the extreme supplies."""

    coin: Coin
    owner: str
    reserve_low: int  # reserve at the lowest supply (the least it has)
    reserve_high: int  # reserve at the highest supply (the most it has)
    liquid_low: int  # liquid at the highest supply (the least it has)


def _supplies(supplies: Sequence[int]) -> tuple[int, int]:
    if not supplies:
        raise ValueError("a payout needs at least one supply index to be valid at")
    return min(supplies), max(supplies)


def _spendable(coin: Coin, block_time: int) -> bool:
    """Whether the rule can take ``coin`` as an ordinary input at ``block_time``.

    Still-locked ``F``/``V`` coins are refused by the rule (``P-I-4``/``P-I-5``), a cold (``C``) coin would
    pay its slice to whatever output shares its index, and fractions not totalling the value are ``P-I-3``:
    such coins are never selected.
    """
    fr = coin.fractions
    if fr.flags & (NOTARY_F | NOTARY_V) and fr.lock_time > block_time:
        return False
    if fr.flags & NOTARY_C:
        return False
    return coin.value > 0 and fr.total() == coin.value and not fr.has_negative()


def _views(coins: Iterable[Coin], supplies: Sequence[int], block_time: int, network: Network) -> list[_View]:
    low_s, high_s = _supplies(supplies)
    views = []
    for coin in coins:
        if not _spendable(coin, block_time):
            continue
        fr = coin.fractions
        reserve_high = fr.low(high_s)
        views.append(
            _View(coin, script_owner(coin.script, network), fr.low(low_s), reserve_high, coin.value - reserve_high)
        )
    return views


def _owners(views: Sequence[_View]) -> list[tuple[str, bytes, int]]:
    """``(owner, script, reserve at the highest supply)`` per input owner, in order of first input."""
    found: dict[str, tuple[bytes, int]] = {}
    for v in views:
        script, reserve = found.get(v.owner, (v.coin.script, 0))
        found[v.owner] = (script, reserve + v.reserve_high)
    return [(owner, script, reserve) for owner, (script, reserve) in found.items()]


# -- costs -------------------------------------------------------------------------------------------------


def batch_cost(payees: int, inputs: int, outputs: int, burns: int, fee_per_input_output: int = 5000) -> int:
    """What a batch costs: the original's estimate (10,000 per payee + 500,000), or the node's minimum fee
    for its size plus its burns if that is more. It pays the miner fee and the OP_RETURN values."""
    return max(ESTIMATE_PER_PAYEE * payees + ESTIMATE_BASE, fee_per_input_output * (inputs + outputs) + burns)


def _settle(plan: BatchPlan, inputs: int, outputs_without_fee: int, burns: int) -> tuple[int, int]:
    """``(cost, fee_account_value)`` for a batch of ``inputs`` and ``outputs_without_fee`` + the fee output.

    The fee output exists only if the commission leaves something after the cost *with* it. If it leaves
    something without it but not with it, there is no fee output and the whole commission is the cost (the
    surplus, less than one output's fee, goes to the miner).
    """
    n = len(plan.payees)
    without = batch_cost(n, inputs, outputs_without_fee, burns, plan.fee_per_input_output)
    if plan.commission < without:
        raise PayoutError(NOT_ENOUGH_FOR_FEES)
    with_fee = batch_cost(n, inputs, outputs_without_fee + 1, burns, plan.fee_per_input_output)
    if plan.commission > with_fee:
        return with_fee, plan.commission - with_fee
    return plan.commission, 0


# -- selection ---------------------------------------------------------------------------------------------


def _select_liquid(views: Sequence[_View], need: int) -> list[_View]:
    """The original's liquid selection (§3.9): by liquid descending, take the first coin whose liquid
    exceeds what is still needed, else the last (smallest) one; ties in outpoint order."""
    pool = sorted((v for v in views if v.liquid_low > 0), key=lambda v: (-v.liquid_low, v.coin.outpoint))
    taken: list[_View] = []
    remaining = need
    while remaining > 0:
        if not pool:
            raise PayoutError(NOT_ENOUGH_FUNDS)
        index = next((i for i, v in enumerate(pool) if v.liquid_low > remaining), len(pool) - 1)
        chosen = pool.pop(index)
        taken.append(chosen)
        remaining -= chosen.liquid_low
    return taken


def _select_reserve(views: Sequence[_View], need: int) -> list[_View]:
    """The original's reserve selection (§3.9), reserve counted at the lowest supply: by reserve ascending,
    take the first coin whose reserve exceeds what is still needed; failing that, the smallest while fewer
    than 30 are taken (it consolidates small reserve coins), then the largest. Coins without reserve are
    never taken. (The original then counts the selected coins' liquid too; here a frozen payee must be
    paid in reserve only, so it does not.)"""
    pool = sorted((v for v in views if v.reserve_low > 0), key=lambda v: (v.reserve_low, v.coin.outpoint))
    taken: list[_View] = []
    remaining = need
    while remaining > 0:
        if not pool:
            raise PayoutError(NOT_ENOUGH_FUNDS)
        index = next((i for i, v in enumerate(pool) if v.reserve_low > remaining), None)
        if index is None:
            index = 0 if len(taken) < RESERVE_CONSOLIDATE else len(pool) - 1
        chosen = pool.pop(index)
        taken.append(chosen)
        remaining -= chosen.reserve_low
    return taken


# -- outputs -----------------------------------------------------------------------------------------------


def _script_for(address: str, network: Network, what: str) -> bytes:
    try:
        return address_to_script(address, network)
    except DecodeError as exc:
        raise PayoutError(f"TX rejected: bad {what} address {address!r}") from exc


def _master_script(master_id: bytes) -> bytes:
    """``OP_RETURN <32 lower-case hex chars>``: the original pushes the master ID's hex text as 32 bytes."""
    master_id = bytes(master_id)
    if len(master_id) != 16:
        raise ValueError(f"a master ID is 16 bytes, not {len(master_id)}")
    return notary_script(master_id.hex())


def _merged_payees(payees: Sequence[Payee]) -> list[Payee]:
    """One output per address, at the position of its first withdrawal, with the values summed."""
    merged: dict[str, int] = {}
    for payee in payees:
        if payee.value <= 0:
            raise PayoutError(f"TX rejected: payee value {payee.value} to {payee.address} is not positive")
        merged[payee.address] = merged.get(payee.address, 0) + payee.value
    return [Payee(address, value) for address, value in merged.items()]


def _freeze_notary(first: int, count: int) -> str:
    """The original's ``**F**`` list for ``count`` recipients starting at output ``first``.

    One recipient is written ``s:s:s`` and two ``s:s+1:s+1``: with three entries the freeze is *shared*
    (filled by the output loop, from every owner's reserve) and never the two-index "fair withdraw from
    escrow" split; more are ``s:…:s+n−1``.
    """
    if count == 1:
        indexes = [first, first, first]
    elif count == 2:
        indexes = [first, first + 1, first + 1]
    else:
        indexes = list(range(first, first + count))
    return "**F**" + ":".join(str(i) for i in indexes)


def _take_in_order(pools: dict[str, int], order: Sequence[str], value: int) -> int:
    """Take ``value`` from the reserve totals in ``order`` as the rule's ``_take_reserves`` does; the rest."""
    for owner in order:
        have = pools.get(owner, 0)
        if have <= 0:
            continue
        take = min(value, have)
        pools[owner] = have - take
        value -= take
        if value == 0:
            break
    return value


class _Layout:
    """Outputs being laid out: ``(value, script)`` pairs and the roles of their indexes."""

    def __init__(self) -> None:
        self.outs: list[TxOut] = []
        self.change: list[int] = []
        self.liquid_change: list[int] = []
        self.payees: list[int] = []
        self.fee: int | None = None

    def add(self, value: int, script: bytes) -> int:
        self.outs.append(TxOut(value, script))
        return len(self.outs) - 1


def _finish(
    layout: _Layout,
    chosen: Sequence[_View],
    *,
    style: str,
    cost: int,
    fee_value: int,
    frozen: tuple[int, ...],
    supplies: Sequence[int],
    block_time: int,
    freeze_times: FreezeTimes,
    network: Network,
    fee_per_input_output: int,
) -> BuiltBatch:
    coins = tuple(v.coin for v in chosen)
    tx = Transaction(TX_VERSION, block_time, tuple(TxIn(c.outpoint) for c in coins), tuple(layout.outs), 0)
    value_in = sum(c.value for c in coins)
    value_out = sum(o.value for o in layout.outs)
    burns = sum(o.value for o in layout.outs if o.script_pubkey[:1] == b"\x6a")
    built = BuiltBatch(
        tx=tx,
        inputs=coins,
        network_fee=value_in - value_out,
        burns=burns,
        fee_account_value=fee_value,
        change_outputs=tuple(sorted(layout.change + layout.liquid_change)),
        style=style,
        cost=cost,
        supplies=tuple(supplies),
        block_time=block_time,
        freeze_times=freeze_times,
        network=network,
        fee_per_input_output=fee_per_input_output,
        frozen_outputs=frozen,
        payee_outputs=tuple(layout.payees),
        fee_account_output=layout.fee,
        liquid_change_outputs=tuple(layout.liquid_change),
    )
    check_batch(built)  # never hand out a transaction the chain would refuse
    return built


# -- withdrawal batches ------------------------------------------------------------------------------------


def build_batch(plan: BatchPlan, coins: Sequence[Coin]) -> BuiltBatch:
    """The unsigned payout transaction of one withdrawal batch, checked at every supply of the plan.

    Raises :class:`PayoutError`: ``NOT_ENOUGH_FOR_FEES`` when the commission does not cover the cost,
    ``NOT_ENOUGH_FUNDS`` when the coins do not hold enough liquid (reserve) at the least favourable supply,
    ``"TX rejected: …"`` when the result would break a consensus rule (which would be a bug here).
    """
    if plan.style not in ("liquid", "reserve"):
        raise ValueError(f"unknown withdrawal style {plan.style!r}")
    if not plan.payees:
        raise ValueError("a withdrawal batch needs at least one payee")
    payees = _merged_payees(plan.payees)
    # The original refuses before looking at coins when its estimate exceeds the commission.
    if plan.commission < batch_cost(len(plan.payees), 0, 0, 0):
        raise PayoutError(NOT_ENOUGH_FOR_FEES)
    payee_scripts = [_script_for(p.address, plan.network, "payee") for p in payees]
    fee_script = _script_for(plan.fee_account, plan.network, "fee account")
    change_script = _script_for(plan.change_address, plan.network, "change")
    views = _views(coins, plan.supplies, plan.block_time, plan.network)
    # Need: every payee plus the whole commission (fee account value + cost), independent of the cost.
    need = sum(p.value for p in payees) + plan.commission
    if plan.style == "liquid":
        return _build_liquid(plan, views, payees, payee_scripts, fee_script, change_script, need)
    return _build_reserve(plan, views, payees, payee_scripts, fee_script, change_script, need)


def _build_liquid(
    plan: BatchPlan,
    views: list[_View],
    payees: list[Payee],
    payee_scripts: list[bytes],
    fee_script: bytes,
    change_script: bytes,
    need: int,
) -> BuiltBatch:
    # A payee or the fee account that owned an input would be paid that owner's reserve first (P-O-2), not
    # liquid: such coins are not spent in a liquid batch.
    foreign = {script_owner(s, plan.network) for s in [*payee_scripts, fee_script]}
    chosen = _select_liquid([v for v in views if v.owner not in foreign], need)
    owners = [o for o in _owners(chosen) if o[2] > 0]
    liquid_change = sum(v.liquid_low for v in chosen) - need
    n_out = len(payees) + len(owners) + (1 if liquid_change > 0 else 0) + 1
    cost, fee_value = _settle(plan, len(chosen), n_out, MASTER_BURN)

    layout = _Layout()
    for payee, script in zip(payees, payee_scripts):
        layout.payees.append(layout.add(payee.value, script))  # common liquidity (P-O-4)
    if fee_value > 0:
        layout.fee = layout.add(fee_value, fee_script)
    for _owner, script, reserve in owners:
        # Its reserve at the highest supply: at a lower one the rule tops it up from the liquidity.
        layout.change.append(layout.add(reserve, script))
    if liquid_change > 0:
        layout.liquid_change.append(layout.add(liquid_change, change_script))
    layout.add(MASTER_BURN, _master_script(plan.master_id))  # last: see the module docstring
    return _finish(
        layout, chosen, style="liquid", cost=cost, fee_value=fee_value, frozen=(), supplies=plan.supplies,
        block_time=plan.block_time, freeze_times=plan.freeze_times, network=plan.network,
        fee_per_input_output=plan.fee_per_input_output,
    )


def _build_reserve(
    plan: BatchPlan,
    views: list[_View],
    payees: list[Payee],
    payee_scripts: list[bytes],
    fee_script: bytes,
    change_script: bytes,
    need: int,
) -> BuiltBatch:
    chosen = _select_reserve(views, need)
    owners = [o for o in _owners(chosen) if o[2] > 0]
    liquid = sum(v.liquid_low for v in chosen)  # all of it goes back, counted at the highest supply
    burns = NOTARY_BURN + MASTER_BURN
    n_out = 1 + len(payees) + len(owners) + (1 if liquid > 0 else 0) + 1
    cost, fee_value = _settle(plan, len(chosen), n_out, burns)
    recipients = [p.value for p in payees] + ([fee_value] if fee_value > 0 else [])

    # Where the reserve is after the notary and the recipients took theirs, at the highest supply (the rule's
    # order: the notary from every owner in sorted order, the shared freeze from input 0's owner first).
    pools = {owner: reserve for owner, _script, reserve in owners}
    if _take_in_order(pools, sorted(pools), NOTARY_BURN):
        raise PayoutError(NOT_ENOUGH_FUNDS)
    first = chosen[0].owner
    order = [first] + [o for o in sorted(pools) if o != first]
    for value in recipients:
        if _take_in_order(pools, order, value):
            raise PayoutError(NOT_ENOUGH_FUNDS)
    # The rest of the cost stays in the reserve pools: the master OP_RETURN and the miner take it there.
    # Leave it with owners other than the change address first, so the liquid change takes no reserve.
    change_owner = script_owner(change_script, plan.network)
    keep = cost - NOTARY_BURN
    for owner in sorted(pools, key=lambda o: (o == change_owner, [x[0] for x in owners].index(o))):
        take = min(keep, pools[owner])
        pools[owner] -= take
        keep -= take
    if keep:
        raise PayoutError(NOT_ENOUGH_FUNDS)

    layout = _Layout()
    recipient_first = 1
    layout.add(NOTARY_BURN, notary_script(_freeze_notary(recipient_first, len(recipients))))
    for payee, script in zip(payees, payee_scripts):
        layout.payees.append(layout.add(payee.value, script))
    if fee_value > 0:
        layout.fee = layout.add(fee_value, fee_script)
    frozen = tuple(range(recipient_first, recipient_first + len(recipients)))
    for owner, script, _reserve in owners:
        if pools[owner] > 0:
            layout.change.append(layout.add(pools[owner], script))
    if liquid > 0:
        layout.liquid_change.append(layout.add(liquid, change_script))
    layout.add(MASTER_BURN, _master_script(plan.master_id))
    return _finish(
        layout, chosen, style="reserve", cost=cost, fee_value=fee_value, frozen=frozen, supplies=plan.supplies,
        block_time=plan.block_time, freeze_times=plan.freeze_times, network=plan.network,
        fee_per_input_output=plan.fee_per_input_output,
    )


# -- account maintenance -----------------------------------------------------------------------------------


def build_maintenance(
    coins: Sequence[Coin],
    change_address: str,
    master_id: bytes,
    supplies: Sequence[int],
    block_time: int,
    freeze_times: FreezeTimes,
    network: Network,
    fee_per_input_output: int = 5000,
) -> BuiltBatch | None:
    """The account maintenance merge (§3.10): many small liquid coins into four equal liquid outputs.

    Candidates: spendable coins with liquid, smallest liquid first, at most 45. ``None`` (nothing to do)
    with fewer than two, when they all have the same liquidity rating at the lowest supply, or when their
    liquid totals less than 1 BAY. Each input owner gets its reserve back; ``4 × q`` goes to
    ``change_address`` with ``q = (Σ liquid − cost) // 4``; the remainder of that division joins the
    miner fee. Raises :class:`PayoutError` (``NOT_ENOUGH_FOR_MAINTENANCE``) when ``q < 2500``.
    """
    low_s, _high_s = _supplies(supplies)
    views = [v for v in _views(coins, supplies, block_time, network) if v.liquid_low > 0]
    chosen = sorted(views, key=lambda v: (v.liquid_low, v.coin.outpoint))[:MAINTENANCE_MAX_INPUTS]
    if len(chosen) < 2:
        return None
    if len({liquidity_rating(v.coin.fractions, low_s) for v in chosen}) < 2:
        return None
    liquid = sum(v.liquid_low for v in chosen)
    if liquid < MAINTENANCE_MIN_LIQUID:
        return None
    change_script = _script_for(change_address, network, "change")
    owners = [o for o in _owners(chosen) if o[2] > 0]
    n_out = len(owners) + MAINTENANCE_SHARES + 1
    cost = batch_cost(0, len(chosen), n_out, MASTER_BURN, fee_per_input_output)
    share = (liquid - cost) // MAINTENANCE_SHARES
    if share < MAINTENANCE_MIN_SHARE:
        raise PayoutError(NOT_ENOUGH_FOR_MAINTENANCE)
    layout = _Layout()
    for _owner, script, reserve in owners:
        layout.change.append(layout.add(reserve, script))
    for _ in range(MAINTENANCE_SHARES):
        layout.liquid_change.append(layout.add(share, change_script))
    layout.add(MASTER_BURN, _master_script(master_id))
    return _finish(
        layout, chosen, style="maintenance", cost=liquid - MAINTENANCE_SHARES * share, fee_value=0, frozen=(),
        supplies=supplies, block_time=block_time, freeze_times=freeze_times, network=network,
        fee_per_input_output=fee_per_input_output,
    )


# -- checking and signing ----------------------------------------------------------------------------------


def _rejected(detail: str) -> PayoutError:
    return PayoutError(f"TX rejected: {detail}")


def check_batch(built: BuiltBatch, tx: Transaction | None = None) -> list[TransferResult]:
    """Run the consensus checks on ``tx`` (default: ``built.tx``) at every supply of ``built.supplies``.

    The transfer rule must accept it at each supply (inputs grouped by the owner of the script they spend,
    outputs read as the node reads them); value out must not exceed value in; the miner fee must reach
    ``fee_per_input_output × (inputs + outputs)``; and every frozen recipient of a reserve batch must carry
    the ``F`` mark and reserve only (``low(S) == value``). Returns the rule's result per supply, in the
    order of ``built.supplies``; raises :class:`PayoutError` (``"TX rejected: …"``) otherwise.
    """
    tx = built.tx if tx is None else tx
    network = built.network
    if network is None:
        raise ValueError("this BuiltBatch carries no network to read its scripts with")
    if len(tx.inputs) != len(built.inputs) or any(
        txin.prevout != coin.outpoint for txin, coin in zip(tx.inputs, built.inputs)
    ):
        raise _rejected("the transaction does not spend the batch's coins")
    inputs: list[TransferInput] = [transfer_input(c.value, c.fractions, c.script, network) for c in built.inputs]
    outputs = [transfer_output(o.value, o.script_pubkey, network) for o in tx.outputs]
    value_in = sum(c.value for c in built.inputs)
    value_out = sum(o.value for o in tx.outputs)
    if value_out > value_in:
        raise _rejected(f"bad-txns-in-belowout outputs ({value_out}) exceed inputs ({value_in})")
    minimum = built.fee_per_input_output * (len(tx.inputs) + len(tx.outputs))
    if value_in - value_out < minimum:
        raise _rejected(f"fee-too-low fee {value_in - value_out} is below {minimum}")
    results = []
    for supply in built.supplies:
        try:
            result = apply_transfer_rule(inputs, outputs, supply, built.block_time, built.freeze_times)
        except TransferRuleError as exc:
            raise _rejected(f"{exc.rule} {exc.detail} (at supply {supply})") from exc
        except PegError as exc:
            raise _rejected(f"{exc} (at supply {supply})") from exc
        for index in built.frozen_outputs:
            fr = result.outputs[index]
            if not fr.flags & NOTARY_F or fr.low(supply) != tx.outputs[index].value:
                raise _rejected(
                    f"frozen output {index} is not all frozen reserve at supply {supply} "
                    f"(reserve {fr.low(supply)} of {tx.outputs[index].value})"
                )
        results.append(result)
    return results


def sign_batch(built: BuiltBatch, key_for: Callable[[str], PrivateKey]) -> Transaction:
    """``built.tx`` with every input signed by ``key_for(coin.address)`` (legacy SIGHASH_ALL, P2PKH).

    Whatever ``key_for`` raises for an unknown address (KeyError, WalletError) propagates; so does
    :class:`~halo_exchange.chain.tx.TxError` when the key does not own the coin.
    """
    tx = built.tx
    keys: dict[str, PrivateKey] = {}
    for index, coin in enumerate(built.inputs):
        key = keys.get(coin.address)
        if key is None:
            key = keys[coin.address] = key_for(coin.address)
        tx = sign_input(tx, index, key, coin.script)
    return tx

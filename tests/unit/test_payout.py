"""Payout transactions (halo_exchange.ledger.payout; reference/halo-behaviour.md §3.9-§3.10, §6.6-§6.7)."""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest

from halo_exchange.chain import layout
from halo_exchange.chain.keys import MAINNET, PrivateKey
from halo_exchange.chain.params import MAINNET as MAINNET_PARAMS
from halo_exchange.chain.script import (
    address_to_script,
    notary_script,
    parse_notary,
    script_owner,
    transfer_input,
    transfer_output,
)
from halo_exchange.chain.tx import OutPoint, Transaction, verify_input
from halo_exchange.ledger.payout import (
    MASTER_BURN,
    NOT_ENOUGH_FOR_FEES,
    NOT_ENOUGH_FOR_MAINTENANCE,
    NOT_ENOUGH_FUNDS,
    NOTARY_BURN,
    BatchPlan,
    BuiltBatch,
    Coin,
    Payee,
    PayoutError,
    batch_cost,
    build_batch,
    build_maintenance,
    check_batch,
    sign_batch,
)
from halo_exchange.ledger.rating import liquidity_rating
from halo_exchange.peg.fractions import NOTARY_F, PEG_SIZE, Fractions
from halo_exchange.peg.transfer import MAINNET_FREEZE_TIMES, apply_transfer_rule
from node_hooks.devnode.consensus import check_transaction

S = 100  # supply index of the next block
T = 1_700_000_000  # block time
MASTER = bytes.fromhex("00112233445566778899aabbccddeeff")
KEYS = [PrivateKey.from_int(1000 + i) for i in range(6)]
ADDR = [k.public_key().address() for k in KEYS]
KEY_OF = dict(zip(ADDR, KEYS))
E = ADDR[0]  # exchangeaccounts[0]: the change address (it holds coins too)
A = PrivateKey.from_int(77).public_key().address()  # a customer's withdraw address
B = PrivateKey.from_int(78).public_key().address()
F = PrivateKey.from_int(79).public_key().address()  # the exchange's fee account


def outpoint(n: int) -> OutPoint:
    return OutPoint(hashlib.sha256(n.to_bytes(4, "little")).digest(), n % 3)


def sparse(entries: dict[int, int]) -> Fractions:
    f = [0] * PEG_SIZE
    for i, v in entries.items():
        f[i] += v
    return Fractions(f)


def coin(n: int, address: str, fractions: Fractions) -> Coin:
    return Coin(outpoint(n), address, fractions.total(), fractions, address_to_script(address))


def std_coin(n: int, address: str, value: int) -> Coin:
    return coin(n, address, Fractions.std(value))


def liquid_coin(n: int, address: str, liquid: int, reserve: int = 0) -> Coin:
    """``reserve`` at index 0 and ``liquid`` at the top index: the same split at every supply used here."""
    return coin(n, address, sparse({0: reserve, PEG_SIZE - 1: liquid}))


def plan(payees: list[Payee], commission: int, style: str = "liquid", supplies: tuple[int, ...] = (S,),
         **kw) -> BatchPlan:
    return BatchPlan(style=style, payees=payees, fee_account=F, commission=commission, change_address=E,
                     master_id=MASTER, supplies=supplies, block_time=T, freeze_times=MAINNET_FREEZE_TIMES,
                     network=MAINNET, **kw)


def outs(built: BuiltBatch) -> list[tuple[int, bytes]]:
    return [(o.value, o.script_pubkey) for o in built.tx.outputs]


def to(address: str) -> bytes:
    return address_to_script(address)


def node_accepts(built: BuiltBatch, tx: Transaction, supply: int):
    """The devnode's own mempool check (signatures, transfer rule, minimum fee) at ``supply``."""
    coins = {(c.outpoint.txid, c.outpoint.n): (layout.UtxoRecord(c.value, c.script, 1, T - 1000), c.fractions)
             for c in built.inputs}
    return check_transaction(tx, lambda txid, n: coins.get((txid, n)), supply, T, MAINNET_PARAMS)


# -- liquid batches ------------------------------------------------------------------------------------------


def test_liquid_layout_matches_the_originals_example():
    """§6.6 item 36: one 500,000,000 withdraw (commission 10,000,000) from one coin with 800,000,000 liquid
    and 50,000,000 reserve pays A 490,000,000, the fee account 9,490,000, the reserve back to its address,
    300,000,000 liquid change to E and the master OP_RETURN last, with a 504,425 miner fee.

    Same figures as the original: our cost max(10,000 × 1 + 500,000, 5000 × (1 + 5) + 5575) = 510,000 is the
    original's estimate here. The input sits at D (not E), as in the original."""
    d = ADDR[3]
    built = build_batch(plan([Payee(A, 490_000_000)], 10_000_000), [liquid_coin(1, d, 800_000_000, 50_000_000)])
    assert outs(built) == [
        (490_000_000, to(A)),
        (9_490_000, to(F)),
        (50_000_000, to(d)),
        (300_000_000, to(E)),
        (MASTER_BURN, notary_script(MASTER.hex())),
    ]
    assert built.network_fee == 504_425 and built.burns == 5575 and built.cost == 510_000
    assert built.fee_account_value == 9_490_000
    assert built.change_outputs == (2, 3) and built.payee_outputs == (0,) and built.fee_account_output == 1
    assert parse_notary(built.tx.outputs[-1].script_pubkey) == "00112233445566778899aabbccddeeff"


@pytest.mark.parametrize(
    "total, taken, change",
    [(650, [900], 250), (1000, [100, 300, 900], 300)],
)
def test_liquid_input_selection_follows_the_original(total, taken, change):
    """§6.6 item 37 (values in units of 10^6 sat): with liquid coins [900, 500, 300, 100], a batch needing 650
    takes [900] (change 250); one needing 1000 takes [100, 300, 900] (change 300). The need is the payees plus
    the whole commission."""
    unit = 1_000_000
    coins = [liquid_coin(n, ADDR[1], v * unit) for n, v in enumerate([900, 500, 300, 100])]
    commission = 10 * unit
    built = build_batch(plan([Payee(A, total * unit - commission)], commission), coins)
    assert [c.value // unit for c in built.inputs] == taken
    assert built.tx.outputs[built.liquid_change_outputs[0]].value == change * unit


def test_liquid_batch_without_enough_liquid_is_refused():
    """§6.6 item 37: needing 1801 from [900, 500, 300, 100] answers "Not enough funds"; reserve does not count."""
    unit = 1_000_000
    coins = [liquid_coin(n, ADDR[1], v * unit, reserve=10**12) for n, v in enumerate([900, 500, 300, 100])]
    with pytest.raises(PayoutError) as err:
        build_batch(plan([Payee(A, 1791 * unit)], 10 * unit), coins)
    assert err.value.answer == NOT_ENOUGH_FUNDS


def test_commission_below_the_estimate_is_refused():
    """§6.6 item 35: three withdraws with 10,000 commission each (30,000 < 530,000) give the fees sentence."""
    payees = [Payee(A, 10**8), Payee(B, 10**8), Payee(A, 10**8)]
    with pytest.raises(PayoutError) as err:
        build_batch(plan(payees, 30_000), [liquid_coin(1, E, 10**10)])
    assert err.value.answer == NOT_ENOUGH_FOR_FEES
    assert str(err.value) == NOT_ENOUGH_FOR_FEES


def test_commission_below_the_node_fee_of_many_inputs_is_refused():
    """The cost is the node's minimum fee plus burns when that beats the estimate: 150 small coins make a
    batch whose 510,000 commission covers the estimate but not 5000 × (150 + 4) + 5575."""
    coins = [liquid_coin(n, ADDR[n % 3], 1_000_000) for n in range(150)]
    with pytest.raises(PayoutError) as err:
        build_batch(plan([Payee(A, 140_000_000)], 510_000), coins)
    assert err.value.answer == NOT_ENOUGH_FOR_FEES
    # With enough commission the same batch is built, and its cost is the node's fee for its size plus burns.
    built = build_batch(plan([Payee(A, 140_000_000)], 2_000_000), coins)
    n = len(built.tx.inputs) + len(built.tx.outputs)
    assert built.cost == 5000 * n + MASTER_BURN == batch_cost(1, len(built.tx.inputs), len(built.tx.outputs), 5575)
    assert built.network_fee == 5000 * n


def test_commission_just_covering_the_cost_leaves_no_fee_output():
    """When the commission equals the cost the fee account gets nothing and has no output."""
    built = build_batch(plan([Payee(A, 10**8)], 510_000), [liquid_coin(1, ADDR[1], 10**9)])
    assert built.fee_account_value == 0 and built.fee_account_output is None
    assert to(F) not in [o.script_pubkey for o in built.tx.outputs]
    assert built.network_fee == 510_000 - MASTER_BURN


def test_payees_to_one_address_are_merged_at_the_first_position():
    """Two withdraws to A and one to B make two payee outputs: A's (summed) first, then B's."""
    built = build_batch(plan([Payee(A, 10**8), Payee(B, 2 * 10**8), Payee(A, 3 * 10**8)], 10**7),
                        [liquid_coin(1, ADDR[1], 10**10)])
    assert outs(built)[:2] == [(4 * 10**8, to(A)), (2 * 10**8, to(B))]
    assert built.cost == 530_000  # the estimate counts withdraws, not outputs


def test_liquid_batch_is_valid_at_both_supplies_and_loses_nothing_to_the_band():
    """A batch for supplies S and S+3 (the next block's and the next cycle's) passes the rule at both; every
    payee gets pure liquid at both; each reserve change is its owner's reserve at S+3, so the miner gets
    exactly cost − burns at either supply."""
    coins = [std_coin(n, ADDR[n % 3], (n + 1) * 3 * 10**8) for n in range(6)]
    built = build_batch(plan([Payee(A, 5 * 10**8), Payee(B, 7 * 10**8)], 5 * 10**7, supplies=(S, S + 3)), coins)
    results = check_batch(built)
    assert len(results) == 2
    for supply, result in zip((S, S + 3), results):
        for index in built.payee_outputs + (built.fee_account_output,):
            assert result.outputs[index].low(supply) == 0
        assert result.fee.total() == built.network_fee == built.cost - MASTER_BURN
    for index in built.change_outputs[:-1]:
        owner = script_owner(built.tx.outputs[index].script_pubkey)
        assert built.tx.outputs[index].value == sum(
            c.fractions.low(S + 3) for c in built.inputs if c.address == owner)
    signed = sign_batch(built, KEY_OF.__getitem__)
    for supply in (S, S + 3):
        assert node_accepts(built, signed, supply).fee == built.network_fee


def test_each_input_address_gets_its_own_reserve_change():
    """Coins of three addresses: each address gets one output with its coins' reserve, in first-input order,
    and the liquid change goes to E after them."""
    coins = [std_coin(n, ADDR[n % 3], 10**9) for n in range(6)]
    built = build_batch(plan([Payee(A, 15 * 10**8)], 10**8), coins)
    owners = list(dict.fromkeys(c.address for c in built.inputs))
    assert len(owners) == 3
    first_change = built.change_outputs[0]
    for k, owner in enumerate(owners):
        value, script = outs(built)[first_change + k]
        assert script == to(owner)
        assert value == sum(c.fractions.low(S) for c in built.inputs if c.address == owner)
    assert built.liquid_change_outputs == (first_change + 3,)
    assert outs(built)[first_change + 3][1] == to(E)
    check_batch(built)


def test_coins_of_a_payee_are_not_spent_in_a_liquid_batch():
    """A payee owning an input would be paid that input's reserve first (P-O-2): its coins are left alone."""
    coins = [liquid_coin(1, A, 10**10, 10**9), liquid_coin(2, ADDR[1], 10**9, 10**8)]
    built = build_batch(plan([Payee(A, 5 * 10**8)], 10**7), coins)
    assert [c.address for c in built.inputs] == [ADDR[1]]


def test_locked_frozen_coins_are_not_selected():
    """A coin carrying a still-locked F mark cannot be spent (P-I-4) and is skipped; once unlocked it is used."""
    frozen = Fractions.std(10**10, flags=NOTARY_F, lock_time=T + 1)
    coins = [coin(1, ADDR[1], frozen), std_coin(2, ADDR[2], 10**9)]
    with pytest.raises(PayoutError) as err:
        build_batch(plan([Payee(A, 5 * 10**8)], 10**7), coins)
    assert err.value.answer == NOT_ENOUGH_FUNDS
    unlocked = Fractions.std(10**10, flags=NOTARY_F, lock_time=T)
    built = build_batch(plan([Payee(A, 5 * 10**8)], 10**7), [coin(1, ADDR[1], unlocked)])
    assert len(built.inputs) == 1


# -- reserve batches -----------------------------------------------------------------------------------------


def test_reserve_batch_pays_frozen_reserve():
    """A reserve withdrawal pays frozen reserve: output 0 is the **F** notary (5590) naming the payee and the
    fee account; the rule gives both the F mark, a 30-day lock and reserve only; the cost comes out of the
    reserve (Σ reserve change = Σ reserve − recipients − cost) and all the liquid goes back to E."""
    coins = [std_coin(1, ADDR[1], 2 * 10**9), std_coin(2, ADDR[2], 3 * 10**9)]
    built = build_batch(plan([Payee(A, 10**9)], 10**7, style="reserve"), coins)
    tx = built.tx
    assert tx.outputs[0].value == NOTARY_BURN and parse_notary(tx.outputs[0].script_pubkey) == "**F**1:2:2"
    assert built.frozen_outputs == (1, 2) and outs(built)[1:3] == [(10**9, to(A)), (built.fee_account_value, to(F))]
    assert built.fee_account_value == 10**7 - built.cost and built.burns == NOTARY_BURN + MASTER_BURN
    assert outs(built)[-1] == (MASTER_BURN, notary_script(MASTER.hex()))
    [result] = check_batch(built)
    for index in built.frozen_outputs:
        fr = result.outputs[index]
        assert fr.flags & NOTARY_F and fr.lock_time == T + MAINNET_FREEZE_TIMES.frozen
        assert fr.low(S) == tx.outputs[index].value
    reserve = sum(c.fractions.low(S) for c in built.inputs)
    liquid = sum(c.fractions.high(S) for c in built.inputs)
    reserve_change = sum(tx.outputs[i].value for i in built.change_outputs if i not in built.liquid_change_outputs)
    assert reserve_change == reserve - 10**9 - built.fee_account_value - built.cost
    assert [tx.outputs[i].value for i in built.liquid_change_outputs] == [liquid]
    assert built.network_fee == built.cost - built.burns
    # The same, as the node itself judges the signed transaction.
    inputs = [script_owner(c.script) for c in built.inputs]
    assert inputs == [c.address for c in built.inputs]
    assert node_accepts(built, sign_batch(built, KEY_OF.__getitem__), S).fee == built.network_fee


@pytest.mark.parametrize("recipients, text", [(1, "**F**1:1:1"), (2, "**F**1:2:2"), (5, "**F**1:2:3:4:5")])
def test_reserve_notary_lists_the_recipients_as_the_original(recipients, text):
    """The **F** list: s:s:s for one recipient, s:s+1:s+1 for two, s:…:s+n−1 otherwise (fee account included)."""
    payees = max(recipients - 1, 1)
    # One recipient: a commission equal to the estimate leaves no fee account output.
    commission = 10_000 + 500_000 if recipients == 1 else 10**7
    built = build_batch(
        plan([Payee(PrivateKey.from_int(500 + k).public_key().address(), 10**8) for k in range(payees)],
             commission, style="reserve"),
        [std_coin(1, ADDR[1], 10**10)],
    )
    assert parse_notary(built.tx.outputs[0].script_pubkey) == text
    assert built.frozen_outputs == tuple(range(1, recipients + 1))


def test_reserve_batch_is_valid_at_both_supplies():
    """A reserve batch for S and S+3 passes the rule at both, with every recipient all frozen reserve at both;
    several owners each get their own reserve change."""
    coins = [std_coin(n, ADDR[n % 3], (n + 1) * 10**9) for n in range(5)]
    built = build_batch(plan([Payee(A, 10**9), Payee(B, 2 * 10**9)], 3 * 10**7, style="reserve",
                             supplies=(S, S + 3)), coins)
    results = check_batch(built)
    for supply, result in zip((S, S + 3), results):
        for index in built.frozen_outputs:
            assert result.outputs[index].low(supply) == built.tx.outputs[index].value
        assert result.fee.total() == built.network_fee == built.cost - built.burns
    signed = sign_batch(built, KEY_OF.__getitem__)
    for supply in (S, S + 3):
        node_accepts(built, signed, supply)


def test_reserve_batch_without_enough_reserve_is_refused():
    """Liquid does not pay a frozen payee: coins with little reserve answer "Not enough funds"."""
    coins = [liquid_coin(1, ADDR[1], 10**11, 10**8)]
    with pytest.raises(PayoutError) as err:
        build_batch(plan([Payee(A, 2 * 10**8)], 10**7, style="reserve"), coins)
    assert err.value.answer == NOT_ENOUGH_FUNDS


def test_check_refuses_a_frozen_payee_topped_up_from_liquidity():
    """The rule fills a frozen output from the liquidity when the reserves run out; check_batch refuses that."""
    built = build_batch(plan([Payee(A, 10**9)], 10**7, style="reserve"), [std_coin(1, ADDR[1], 3 * 10**9)])
    # The same transaction judged at a supply where the input holds far less reserve.
    low = dataclasses.replace(built, supplies=(10,))
    [result] = apply_transfer_rule(
        [transfer_input(c.value, c.fractions, c.script) for c in built.inputs],
        [transfer_output(o.value, o.script_pubkey) for o in built.tx.outputs], 10, T),
    assert result.outputs[1].flags & NOTARY_F and result.outputs[1].low(10) < 10**9  # the rule accepts it
    with pytest.raises(PayoutError) as err:
        check_batch(low)
    assert err.value.answer.startswith("TX rejected: frozen output 1 is not all frozen reserve at supply 10")


# -- checks, signatures, determinism ------------------------------------------------------------------------


def test_check_rejects_a_tampered_transaction():
    """An output raised above what the rule allows answers "TX rejected: <rule> ..."."""
    built = build_batch(plan([Payee(A, 10**8)], 10**7), [liquid_coin(1, ADDR[1], 10**9)])
    greedy = built.tx.with_output_value(0, 10**9)
    with pytest.raises(PayoutError) as err:
        check_batch(built, greedy)
    assert err.value.answer.startswith("TX rejected: ")


def test_signatures_verify():
    """sign_batch signs each input with the key of its coin's address; every signature verifies."""
    coins = [std_coin(n, ADDR[n % 4], 10**9) for n in range(8)]
    built = build_batch(plan([Payee(A, 2 * 10**9)], 10**8), coins)
    assert len({c.address for c in built.inputs}) > 1
    signed = sign_batch(built, KEY_OF.__getitem__)
    assert signed.outputs == built.tx.outputs
    assert all(verify_input(signed, i, c.script) for i, c in enumerate(built.inputs))
    check_batch(built, signed)


def test_missing_key_propagates():
    """A coin whose key the wallet does not hold: the lookup's KeyError reaches the caller."""
    built = build_batch(plan([Payee(A, 10**8)], 10**7), [std_coin(1, ADDR[1], 10**9)])
    with pytest.raises(KeyError):
        sign_batch(built, {}.__getitem__)


def test_same_inputs_build_the_same_transaction():
    """Deterministic: the coins in any order give the same transaction (ties broken by outpoint)."""
    coins = [liquid_coin(n, ADDR[n % 3], 10**9, 10**8) for n in range(10)]  # all equal: ties everywhere
    first = build_batch(plan([Payee(A, 25 * 10**8)], 10**8), coins)
    shuffled = coins[:]
    random.Random(3).shuffle(shuffled)
    again = build_batch(plan([Payee(A, 25 * 10**8)], 10**8), shuffled)
    assert again.tx == first.tx and again.tx.txid == first.tx.txid


# -- account maintenance -------------------------------------------------------------------------------------


def rated_coin(n: int, address: str, liquid: int, distance: int, reserve: int = 10**7) -> Coin:
    """A coin with ``reserve`` at index 0 and all its liquid ``distance`` steps above S."""
    return coin(n, address, sparse({0: reserve, S + distance: liquid}))


def test_maintenance_layout_matches_the_originals_example():
    """§6.7 item 43, adapted to our cost: three coins of 50,000,000 liquid with different ratings give each
    owner its reserve back, 4 × 37,375,000 to E ((150,000,000 − 500,000) // 4: the cost is the 500,000
    estimate, not the original's 530,000, which also counted inputs) and the master OP_RETURN last."""
    coins = [rated_coin(n, ADDR[n + 1], 50_000_000, 10 * (n + 1)) for n in range(3)]
    assert len({liquidity_rating(c.fractions, S) for c in coins}) == 3
    built = build_maintenance(coins, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET)
    assert built is not None
    owners = [c.address for c in built.inputs]  # smallest liquid first, ties in outpoint order
    assert sorted(owners) == sorted(ADDR[1:4])
    assert outs(built) == [(10**7, to(owner)) for owner in owners] + [(37_375_000, to(E))] * 4 + [
        (MASTER_BURN, notary_script(MASTER.hex()))
    ]
    assert built.style == "maintenance" and built.cost == 500_000 and built.network_fee == 500_000 - MASTER_BURN
    assert built.change_outputs == tuple(range(7)) and built.liquid_change_outputs == (3, 4, 5, 6)


def test_maintenance_remainder_goes_to_the_miner():
    """The division remainder of (Σ liquid − cost) // 4 joins the miner fee, and the cost reports it."""
    coins = [rated_coin(1, E, 50_000_003, 5), rated_coin(2, E, 50_000_000, 40)]
    built = build_maintenance(coins, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET)
    assert built is not None
    assert [o.value for o in built.tx.outputs[1:5]] == [24_875_000] * 4
    assert built.cost == 500_003 and built.network_fee == 500_003 - MASTER_BURN
    check_batch(built, sign_batch(built, KEY_OF.__getitem__))


def test_maintenance_has_nothing_to_do():
    """§6.7 item 43: equal ratings, a single candidate, or less than 1 BAY of liquid: no transaction."""
    same = [rated_coin(n, ADDR[1], 50_000_000, 10) for n in range(3)]
    assert build_maintenance(same, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET) is None
    one = [rated_coin(1, ADDR[1], 5 * 10**8, 10)]
    assert build_maintenance(one, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET) is None
    small = [rated_coin(n, ADDR[1], 30_000_000, 10 * (n + 1)) for n in range(3)]
    assert build_maintenance(small, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET) is None


def test_maintenance_takes_the_45_smallest_liquid_coins():
    """At most 45 candidates, smallest liquid first; coins without liquid are skipped."""
    coins = [rated_coin(n, ADDR[n % 3], 10**7 + n, 4 + n % 7) for n in range(60)]
    coins.append(coin(99, ADDR[1], sparse({0: 10**9})))  # reserve only
    built = build_maintenance(coins, E, MASTER, (S, S + 3), T, MAINNET_FREEZE_TIMES, MAINNET)
    assert built is not None
    assert sorted(c.value - 10**7 for c in built.inputs) == [10**7 + n for n in range(45)]
    assert len(check_batch(built)) == 2


def test_maintenance_too_expensive_is_refused():
    """When the cost leaves less than 2500 per share the answer is the maintenance sentence."""
    coins = [rated_coin(n, ADDR[1], 50_000_000, 10 * (n + 1)) for n in range(3)]
    with pytest.raises(PayoutError) as err:
        build_maintenance(coins, E, MASTER, (S,), T, MAINNET_FREEZE_TIMES, MAINNET, fee_per_input_output=2 * 10**7)
    assert err.value.answer == NOT_ENOUGH_FOR_MAINTENANCE



# -- random batches --------------------------------------------------------------------------------------------


def random_fractions(rng: random.Random, value: int) -> Fractions:
    if rng.random() < 0.5:
        return Fractions.std(value)
    entries: dict[int, int] = {}
    left = value
    for _ in range(rng.randint(1, 5)):
        index, part = rng.randrange(PEG_SIZE), rng.randint(0, left)
        entries[index] = entries.get(index, 0) + part
        left -= part
    index = rng.randrange(PEG_SIZE)
    entries[index] = entries.get(index, 0) + left
    return sparse(entries)


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_are_accepted_by_the_node_or_refused_with_an_api_answer(seed):
    """Random coins (standard and lumpy fractions, several owners), payees (one of them the change address)
    and supplies: every batch either answers "Not enough funds"/the fees sentence, or the node accepts the
    signed transaction at every supply with a miner fee of exactly cost − burns."""
    rng = random.Random(seed)
    supply = rng.randint(0, 1190)
    supplies = (supply, supply + rng.choice([0, 1, 3, 6]))
    coins = []
    for n in range(rng.randint(1, 10)):
        value = rng.randint(1, 10**11)
        coins.append(coin(1000 * seed + n, rng.choice(ADDR[:4]), random_fractions(rng, value)))
    payees = [Payee(rng.choice([A, B, E]), rng.randint(1, 10**10)) for _ in range(rng.randint(1, 6))]
    style = rng.choice(["liquid", "reserve"])
    try:
        built = build_batch(plan(payees, rng.randint(0, 10**9), style=style, supplies=supplies), coins)
    except PayoutError as err:
        assert err.answer in (NOT_ENOUGH_FUNDS, NOT_ENOUGH_FOR_FEES)
        return
    assert built.network_fee == built.cost - built.burns
    signed = sign_batch(built, KEY_OF.__getitem__)
    for s in supplies:
        assert node_accepts(built, signed, s).fee == built.network_fee

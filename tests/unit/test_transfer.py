"""The consensus fraction transfer rule (halo_exchange.peg.transfer; reference/peg-spec.md §1.12-§1.13)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from halo_exchange.chain import layout
from halo_exchange.chain.keys import PrivateKey
from halo_exchange.chain.params import COIN
from halo_exchange.chain.params import MAINNET as MAINNET_PARAMS
from halo_exchange.chain.script import (
    OP_CHECKMULTISIG,
    OP_CHECKSIG,
    OP_PUSHDATA1,
    OP_RETURN,
    address_to_script,
    notary_script,
    push_data,
)
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.errors import PegError, TransferRuleError
from halo_exchange.peg.fractions import NOTARY_C, NOTARY_F, NOTARY_L, NOTARY_V, PEG_SIZE, Fractions
from halo_exchange.peg.transfer import (
    BURN_ADDRESS,
    MAINNET_FREEZE_TIMES,
    TESTNET_FREEZE_TIMES,
    FreezeTimes,
    TransferInput,
    TransferOutput,
    apply_transfer_rule,
)
from node_hooks.devnode.consensus import CheckedTx, check_transaction
from node_hooks.devnode.errors import TxRejected

A, B, FOREIGN = "bAlice", "bBob", "bForeign"
S = 100  # supply index: Std(1e8) has ~63.4M reserve and ~36.6M liquid here
T = 1_700_000_000  # block time


def std_input(address: str, value: int = COIN, **kw) -> TransferInput:
    return TransferInput(value, Fractions.std(value, **kw), address)


def sparse(entries: dict[int, int]) -> Fractions:
    f = [0] * PEG_SIZE
    for i, v in entries.items():
        f[i] = v
    return Fractions(f)


def to(address: str, value: int) -> TransferOutput:
    return TransferOutput(value, address=address)


def note(text: str, value: int) -> TransferOutput:
    return TransferOutput(value, notary=text)


def assert_conserved(inputs, outputs, result) -> None:
    for fr, out in zip(result.outputs, outputs):
        assert fr.total() == out.value
        assert not fr.has_negative()
    assert not result.fee.has_negative()
    for i in range(PEG_SIZE):
        assert sum(fr[i] for fr in result.outputs) + result.fee[i] == sum(inp.fractions[i] for inp in inputs)


# -- ordinary outputs --------------------------------------------------------------------------------------


def test_plain_send_takes_only_liquid():
    """A payment to a foreign address carries liquid fractions only; the change keeps all the reserve."""
    inp = std_input(A)
    reserve, liquid = inp.fractions.low(S), inp.fractions.high(S)
    outputs = [to(FOREIGN, 10_000_000), to(A, COIN - 10_000_000 - 10_000)]
    res = apply_transfer_rule([inp], outputs, S, T)
    pay, change = res.outputs
    assert pay.low(S) == 0 and pay.high(S) == 10_000_000
    assert change.low(S) == reserve
    assert change.high(S) == liquid - 10_000_000 - 10_000
    assert res.fee.total() == 10_000 and res.fee.low(S) == 0
    assert pay.flags & (NOTARY_F | NOTARY_V) == 0 and pay.lock_time == 0
    assert_conserved([inp], outputs, res)


def test_change_to_input_address_takes_its_reserve_first():
    """An output back to an input address is paid from that address's reserve before any liquid."""
    inp = std_input(A)
    outputs = [to(A, 50_000_000)]
    res = apply_transfer_rule([inp], outputs, S, T)
    (change,) = res.outputs
    assert change.high(S) == 0 and change.low(S) == 50_000_000
    assert res.fee.high(S) == inp.fractions.high(S)  # all liquid is left as fee


def test_change_beyond_reserve_continues_with_liquid():
    """Once the address's reserve is used up, change is completed from the common liquidity."""
    inp = std_input(A)
    reserve = inp.fractions.low(S)
    res = apply_transfer_rule([inp], [to(A, reserve + 1_000)], S, T)
    assert res.outputs[0].low(S) == reserve and res.outputs[0].high(S) == 1_000


def test_foreign_output_beyond_liquid_is_p_o_4_reported_as_p_g_3():
    """P-O-4: a foreign output that needs more liquid than the inputs carry makes the transaction invalid.
    bitbay-core still runs the fee checks after it, and the fee then misses that output's value: the code
    it reports is P-G-3 (P-O-4 is named in the detail)."""
    inp = std_input(A)
    liquid = inp.fractions.high(S)
    apply_transfer_rule([inp], [to(FOREIGN, liquid)], S, T)  # exactly all liquid is fine
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp], [to(FOREIGN, liquid + 1)], S, T)
    assert err.value.rule == "P-G-3" and "P-O-4" in err.value.detail


def test_foreign_output_after_change_ate_liquid_is_p_o_4_reported_as_p_g_3():
    """Liquidity taken by earlier change is no longer available to a later foreign output."""
    inp = std_input(A)
    reserve_only = TransferInput(10**7, sparse({5: 10**7}), B)  # value to spare, but no liquid
    reserve, liquid = inp.fractions.low(S), inp.fractions.high(S)
    rest = liquid - liquid // 2
    apply_transfer_rule([inp, reserve_only], [to(A, reserve + liquid // 2), to(FOREIGN, rest)], S, T)
    outputs = [to(A, reserve + liquid // 2), to(FOREIGN, rest + 1)]
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp, reserve_only], outputs, S, T)
    assert err.value.rule == "P-G-3" and "P-O-4" in err.value.detail


def test_change_needing_another_address_reserve_fails_p_o_2():
    """Change to A can never use B's reserve: when A's reserve and all liquid are short, P-O-2 fires (and
    is reported as P-G-3, the fee check that runs after it)."""
    a = TransferInput(100, sparse({10: 100}), A)  # all reserve at S
    b = TransferInput(1000, sparse({5: 1000}), B)  # all reserve at S
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([a, b], [to(A, 101)], S, T)
    assert err.value.rule == "P-G-3" and "P-O-2" in err.value.detail


# -- notary and burn outputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("output", [note("XCH:0:abcd", 1_000), to(BURN_ADDRESS, 1_000)])
def test_notary_and_burn_outputs_take_reserves_first_in_address_order(output):
    """A non-**Z** notary or a burn output is paid from reserves, of input addresses in sorted order."""
    b = TransferInput(5_000, sparse({50: 5_000}), B)
    a = TransferInput(5_000, sparse({5: 5_000}), A)  # "bAlice" < "bBob": taken first
    res = apply_transfer_rule([b, a], [output], S, T)
    assert res.outputs[0][5] == 1_000 and res.outputs[0].total() == 1_000
    assert res.outputs[0].high(S) == 0


def test_notary_output_without_reserve_takes_liquid():
    """When no input has reserve, a notary output is paid from liquidity."""
    inp = TransferInput(5_000, sparse({200: 5_000}), A)
    res = apply_transfer_rule([inp], [note("XCH:0:x", 7)], S, T)
    assert res.outputs[0][200] == 7


# -- freezes --------------------------------------------------------------------------------------------


def test_f_output_gets_reserve_mark_and_lock_time():
    """**F**: the named output holds the frozen address's reserve, carries NOTARY_F and locks for 30 days."""
    inp = std_input(A)
    outputs = [note("**F**1", 5_590), to(FOREIGN, 20_000_000), to(A, 30_000_000)]
    res = apply_transfer_rule([inp], outputs, S, T)
    frozen = res.outputs[1]
    assert frozen.flags & NOTARY_F and not frozen.flags & NOTARY_V
    assert frozen.lock_time == T + MAINNET_FREEZE_TIMES.frozen == T + 30 * 86400
    assert frozen.low(S) == 20_000_000 and frozen.high(S) == 0
    assert res.outputs[0].low(S) == 5_590  # the notary output itself is funded from reserve too
    assert res.outputs[2].flags & NOTARY_F == 0
    assert_conserved([inp], outputs, res)


def test_f_lock_time_follows_network_freeze_times():
    """Testnet freezes lock for one day (F) and four days (V)."""
    inp = std_input(A)
    outputs = [note("**F**2", 0), note("**V**3", 0), to(FOREIGN, 1_000), to(FOREIGN, 1_000)]
    second = std_input(B)
    res = apply_transfer_rule([inp, second], outputs, S, T, TESTNET_FREEZE_TIMES)
    assert res.outputs[2].lock_time == T + 86_400
    assert res.outputs[3].lock_time == T + 4 * 86_400
    custom = apply_transfer_rule([inp, second], outputs, S, T, FreezeTimes(5, 7))
    assert (custom.outputs[2].lock_time, custom.outputs[3].lock_time) == (T + 5, T + 7)


def test_f_notary_acts_on_input_at_its_position():
    """The notary at output i freezes from input i's address: here B's reserve, not A's."""
    a = TransferInput(10_000, sparse({5: 10_000}), A)
    b = TransferInput(10_000, sparse({50: 10_000}), B)
    outputs = [to(A, 100), note("**F**2", 0), to(FOREIGN, 3_000)]
    res = apply_transfer_rule([a, b], outputs, S, T)
    assert res.outputs[2][50] == 3_000 and res.outputs[2].flags & NOTARY_F


def test_v_output_gets_liquid_mark_and_lock_time():
    """**V**: the named output holds liquid fractions, carries NOTARY_V and locks for 120 days."""
    inp = std_input(A)
    outputs = [note("**V**1", 5_590), to(FOREIGN, 20_000_000)]
    res = apply_transfer_rule([inp], outputs, S, T)
    frozen = res.outputs[1]
    assert frozen.flags & NOTARY_V and not frozen.flags & NOTARY_F
    assert frozen.lock_time == T + 120 * 86400
    assert frozen.high(S) == 20_000_000 and frozen.low(S) == 0
    assert_conserved([inp], outputs, res)


def test_shared_freeze_uses_frozen_address_then_others_then_liquid():
    """**F**N:N:N (shared freeze): reserves of the frozen address, then the other addresses, then liquidity."""
    a = TransferInput(1_000, sparse({5: 1_000}), A)
    b = TransferInput(2_000, sparse({50: 1_000, 500: 1_000}), B)
    outputs = [to(A, 0), note("**F**2:2:2", 0), to(FOREIGN, 2_500)]
    res = apply_transfer_rule([a, b], outputs, S, T)
    frozen = res.outputs[2]
    assert frozen[50] == 1_000  # B (the frozen address) first
    assert frozen[5] == 1_000  # then A
    assert frozen[500] == 500  # then common liquidity
    assert frozen.flags & NOTARY_F


def test_shared_freeze_is_filled_in_output_order():
    """A shared freeze is filled when the output loop reaches it (peg-spec §1.13 step 2), not up front: in the
    reserve-withdraw layout the **F**N:N:N notary before the payee takes its reserve first."""
    inp = TransferInput(20_000, sparse({5: 10_000, 500: 10_000}), A)
    outputs = [note("**F**1:1:1", 5_000), to(FOREIGN, 10_000), to(A, 0)]
    res = apply_transfer_rule([inp], outputs, S, T)
    assert res.outputs[0][5] == 5_000  # the notary output, funded from reserves, comes first
    payee = res.outputs[1]
    assert payee.flags & NOTARY_F
    assert (payee[5], payee[500]) == (5_000, 5_000)  # the rest of A's reserve, then common liquidity
    assert res.fee[500] == 5_000
    assert_conserved([inp], outputs, res)


def test_change_before_shared_freeze_keeps_its_reserve():
    """Change to the frozen address that comes before a shared-freeze output takes its reserve first."""
    inp = TransferInput(20_000, sparse({5: 10_000, 500: 10_000}), A)
    outputs = [note("**F**2:2:2", 0), to(A, 8_000), to(FOREIGN, 4_000)]
    res = apply_transfer_rule([inp], outputs, S, T)
    assert res.outputs[1][5] == 8_000 and res.outputs[1][500] == 0
    assert (res.outputs[2][5], res.outputs[2][500]) == (2_000, 2_000)
    assert_conserved([inp], outputs, res)


def test_single_freeze_with_too_little_reserve_becomes_shared():
    """A one-index **F** whose address lacks reserve is filled as a shared freeze instead of failing."""
    inp = TransferInput(2_000, sparse({5: 1_000, 500: 1_000}), A)
    res = apply_transfer_rule([inp], [note("**F**1", 0), to(FOREIGN, 1_500)], S, T)
    assert res.outputs[1][5] == 1_000 and res.outputs[1][500] == 500


def test_crossing_marks_are_refused():
    """Two freeze notaries setting different marks on the same output fail with "Crossing marks" (P-I-N-6)."""
    inputs = [std_input(A), std_input(B)]
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule(inputs, [note("**F**2", 0), note("**V**2", 0), to(FOREIGN, 1_000)], S, T)
    assert err.value.rule == "P-I-N-6" and "Crossing marks" in str(err.value)


@pytest.mark.parametrize(
    "text", ["**F**", "**F**x", "**F**1:", "**F**9", "**F**-1", "**F** ", "**F**+", "**F**-", "**F**1:+", "**F**:1"]
)
def test_malformed_freeze_notaries_are_p_i_n_3(text):
    """A freeze notary entry strtol reads no digits from, or whose value is no output index, is P-I-N-3
    ("not convertible to output index")."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A)], [note(text, 0), to(FOREIGN, 10)], S, T)
    assert err.value.rule == "P-I-N-3"


# strtol(entry, &end, 0) as glibc reads it (C locale): leading white space, a sign, 0x (hex) and 0 (octal)
# prefixes; it stops at the first character that is not a digit of the base.
STRTOL_INDEXES = [
    ("1", 1), (" 1", 1), ("\t\n\v\f\r 1", 1), ("1a", 1), ("+1", 1), ("-0", 0), ("0x1", 1), ("0X1", 1),
    ("01", 1), ("001", 1), ("0x", 0), ("0xg", 0), ("08", 0), ("0b1", 0), ("1 ", 1), ("1\x00", 1), ("-0x0", 0),
    ("-0x", 0), ("0x01", 1), ("1.9", 1), ("00", 0),
]


@pytest.mark.parametrize(("entry", "index"), STRTOL_INDEXES)
def test_issue_14_indexes_are_read_as_strtol_with_base_0_reads_them(entry, index):
    """Issue 10 item 14: bitbay-core reads each index with ``strtol(s, &end, 0)`` and only asks that a digit
    was read and the value names an output; what follows the number is ignored."""
    inputs = [std_input(A, 1_000_000), std_input(B, 1_000_000), std_input(A, 1_000_000)]
    outputs = [to(X, 1_000), to(X, 2_000), note("**F**" + entry, 0)]
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    assert res.outputs[index].flags & NOTARY_F
    assert [bool(fr.flags & NOTARY_F) for fr in res.outputs].count(True) == 1


@pytest.mark.parametrize(("entry", "index"), [("010", 8), ("0x0a", 10), ("0Xb", 11), ("+011", 9), ("  0xA", 10)])
def test_issue_14_octal_and_hex_indexes(entry, index):
    """Base 0: a leading 0 reads octal, 0x/0X hexadecimal."""
    outputs = [note("**F**" + entry, 0)] + [to(X, 10) for _ in range(12)]
    res = apply_transfer_rule([std_input(A, 1_000_000)], outputs, S5, T16)
    assert res.outputs[index].flags & NOTARY_F


@pytest.mark.parametrize("entry", ["99999999999999999999", "-99999999999999999999", "\xa01", "\u0661", "１"])
def test_issue_14_out_of_range_and_non_ascii_entries_are_p_i_n_3(entry):
    """strtol clamps an overflow to LONG_MAX / LONG_MIN (no output index); only ASCII digits and C-locale
    white space count (U+00A0, Arabic-Indic and full-width digits do not)."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A)], [note("**F**" + entry, 0), to(FOREIGN, 10)], S, T)
    assert err.value.rule == "P-I-N-3"


def test_issue_14_entries_are_checked_in_order():
    """Each entry is read, checked and marked before the next: a crossing mark on the first entry is
    reported before a malformed second one (P-I-N-6, not P-I-N-3)."""
    inputs = [std_input(A), std_input(B)]
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule(inputs, [note("**V**2", 0), note("**F**2:x", 0), to(FOREIGN, 1_000)], S, T)
    assert err.value.rule == "P-I-N-6"


def test_issue_15_freeze_notary_without_matching_input_is_ignored():
    """Issue 10 item 15: bitbay-core reads the notary at output i only while pooling input i; with no input i
    the notary is never read, and the output is an ordinary (non-**Z**) notary output."""
    inp = std_input(A, 1_000_000)
    outputs = [to(X, 1_000), note("**F**0", 0)]
    res = apply_transfer_rule([inp], outputs, S5, T16)
    assert all(fr.flags & (NOTARY_F | NOTARY_V) == 0 for fr in res.outputs)
    _, paid = move_spec(Fractions.std(1_000_000).high_part(S5).to_list(), 1_000)
    assert res.outputs[0].to_list() == paid and res.outputs[1].total() == 0
    assert_conserved([inp], outputs, res)


@pytest.mark.parametrize("text", ["**F**0", "**V**0", "**F**1:0"])
def test_issue_15_notary_naming_its_own_output_is_p_i_n_4(text):
    """Issue 10 item 15: a freeze notary that names its own output is refused ("output refers itself")."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000)], [note(text, 0), to(X, 10)], S5, T16)
    assert err.value.rule == "P-I-N-4"


# -- inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mark", "rule"), [(NOTARY_F, "P-I-4"), (NOTARY_V, "P-I-5")])
def test_locked_frozen_inputs_are_refused_and_unlocked_accepted(mark, rule):
    """F/V inputs are spendable only once their lock time is at or before the block time."""
    locked = std_input(A, flags=mark, lock_time=T + 1)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([locked], [to(FOREIGN, 1_000)], S, T)
    assert err.value.rule == rule
    unlocked = std_input(A, flags=mark, lock_time=T)
    res = apply_transfer_rule([unlocked], [to(FOREIGN, 1_000)], S, T)
    assert res.outputs[0].flags & (NOTARY_F | NOTARY_V) == 0


def test_input_total_must_match_value_p_i_3():
    """P-I-3: an input whose fractions do not total its value is refused."""
    bad = TransferInput(COIN + 1, Fractions.std(COIN), A)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([bad], [to(FOREIGN, 1_000)], S, T)
    assert err.value.rule == "P-I-3"


def test_outputs_above_inputs_are_refused():
    """A transaction paying out more than it spends (negative fee) is refused."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000)], [to(A, 1_001)], S, T)
    assert err.value.rule == "P-G-3"


def test_input_less_transactions_are_refused():
    """An ordinary transaction needs inputs (bitbay-core refuses an empty vin before the peg rule)."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([], [to(A, 0)], S, T)
    assert err.value.rule == "P-X-TX"


def test_output_needs_an_owner_or_a_notary():
    """An output has an owner string, a notary text, or both (a notary's owner string is its script)."""
    TransferOutput(1, address="\x6a\x08XCH:0:xy", notary="XCH:0:xy")
    with pytest.raises(TransferRuleError):
        TransferOutput(1)


def test_inputs_are_not_mutated():
    """Neither STD nor VALUE-form input fractions change, whether the rule accepts or refuses."""
    std_in = std_input(A)
    value_in = TransferInput(COIN, Fractions.from_value(COIN), B)
    before = [std_in.fractions.copy(), value_in.fractions.copy()]
    outputs = [note("**F**2", 0), to(A, 1_000), to(FOREIGN, 5_000), to(B, 40_000)]
    apply_transfer_rule([std_in, value_in], outputs, S, T)
    with pytest.raises(TransferRuleError):
        apply_transfer_rule([std_in, value_in], [to(FOREIGN, COIN)], S, T)
    assert [std_in.fractions, value_in.fractions] == before
    assert value_in.fractions.is_value_form


# -- properties -----------------------------------------------------------------------------------------

ADDRESSES = ["bA", "bB", "bC"]


@st.composite
def fractions_of(draw) -> Fractions:
    """Std splits of a random value, or a few random non-negative entries (reserve- or liquid-heavy)."""
    if draw(st.booleans()):
        return Fractions.std(draw(st.integers(0, 10**12)))
    entries = draw(st.dictionaries(st.integers(0, PEG_SIZE - 1), st.integers(0, 10**9), max_size=6))
    return sparse(entries)


@st.composite
def transactions(draw, with_freezes: bool):
    """Random inputs and outputs whose values never exceed the inputs (many are still refused by the rule)."""
    inputs = [
        TransferInput(fr.total(), fr, draw(st.sampled_from(ADDRESSES)))
        for fr in draw(st.lists(fractions_of(), min_size=1, max_size=4))
    ]
    total = sum(inp.value for inp in inputs)
    n_out = draw(st.integers(1, 5))
    kinds = ["own", "foreign", "burn", "xch"] + (["F", "V"] if with_freezes else [])
    weights = draw(st.lists(st.integers(0, 100), min_size=n_out, max_size=n_out))
    spend = draw(st.integers(0, total))
    wsum = sum(weights) or 1
    values = [spend * w // wsum for w in weights]
    outputs = []
    for j in range(n_out):
        kind = draw(st.sampled_from(kinds))
        if kind == "own":
            outputs.append(to(draw(st.sampled_from([i.address for i in inputs])), values[j]))
        elif kind == "foreign":
            outputs.append(to("bForeign", values[j]))
        elif kind == "burn":
            outputs.append(to(BURN_ADDRESS, values[j]))
        elif kind == "xch":
            outputs.append(note("XCH:0:ff", values[j]))
        else:
            idx = draw(st.lists(st.integers(0, n_out - 1), min_size=1, max_size=3))
            outputs.append(note(f"**{kind}**" + ":".join(map(str, idx)), values[j]))
    return inputs, outputs, draw(st.integers(0, 1198))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions(with_freezes=True))
def test_property_accepted_transactions_conserve_every_index(tx):
    """Any accepted transaction: Σ outputs + fee == Σ inputs at every index, outputs total their values."""
    inputs, outputs, supply = tx
    before = [inp.fractions.copy() for inp in inputs]
    try:
        res = apply_transfer_rule(inputs, outputs, supply, T)
    except TransferRuleError as err:
        event(f"refused {err.rule}")
    else:
        event("accepted")
        assert_conserved(inputs, outputs, res)
        assert res.fee.total() == sum(i.value for i in inputs) - sum(o.value for o in outputs)
    assert [inp.fractions for inp in inputs] == before


@st.composite
def valid_transactions(draw):
    """Transactions valid by construction: change within its reserve, notaries within what reserve is left,
    foreign payments within the liquid."""
    inputs = [
        TransferInput(fr.total(), fr, draw(st.sampled_from(ADDRESSES)))
        for fr in draw(st.lists(fractions_of(), min_size=1, max_size=4))
    ]
    supply = draw(st.integers(0, 1198))
    reserve: dict[str, int] = {}
    for inp in inputs:
        reserve[inp.address] = reserve.get(inp.address, 0) + inp.fractions.low(supply)
    liquid = sum(inp.fractions.high(supply) for inp in inputs)
    outputs = []
    for address in sorted(reserve):
        if draw(st.booleans()):
            take = draw(st.integers(0, reserve[address]))
            reserve[address] -= take
            outputs.append(to(address, take))
    left = sum(reserve.values())
    for kind in draw(st.lists(st.sampled_from(["burn", "xch"]), max_size=2)):
        take = draw(st.integers(0, left))
        left -= take
        outputs.append(to(BURN_ADDRESS, take) if kind == "burn" else note("XCH:1:00", take))
    for _ in range(draw(st.integers(0, 3))):
        take = draw(st.integers(0, liquid))
        liquid -= take
        outputs.append(to("bForeign", take))
    return inputs, outputs, supply


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_transactions())
def test_property_valid_by_construction_is_accepted_and_conserves(tx):
    """Change within its address's reserve and foreign payments within the liquid are always accepted."""
    inputs, outputs, supply = tx
    res = apply_transfer_rule(inputs, outputs, supply, T)
    assert_conserved(inputs, outputs, res)
    for fr, out in zip(res.outputs, outputs):
        if out.address == "bForeign":
            assert fr.low(supply) == 0  # foreign payees never receive reserve
        elif out.notary is None and out.address != BURN_ADDRESS:
            assert fr.high(supply) == 0  # change within its reserve takes no liquid


# -- issue 10 examples: bitbay-core's CalculateStandardFractions (src/peg/pegstd.cpp) --------------------------
# Supply 500, block time 1600000000, inputs of 1,000,000 with standard fractions unless said otherwise.

S5 = 500
T16 = 1_600_000_000
X, X0, X1 = "bXavier", "bXena", "bXerxes"


def move_spec(src: list[int], value: int) -> tuple[list[int], list[int]]:
    """``CFractions::MoveRatioPartTo`` restated for non-negative vectors: ``(what is left, what moved)``.

    Each entry moves ``trunc(f[i] * value / total)``; the shortfall then moves one satoshi at a time from the
    entries still positive, cycling from the first non-zero entry of the source.
    """
    total = sum(src)
    if total == 0 or value == 0:
        return list(src), [0] * PEG_SIZE
    if value >= total:
        return [0] * PEG_SIZE, list(src)
    start = next(i for i, v in enumerate(src) if v)
    moved = [v * value // total for v in src]
    left = [v - m for v, m in zip(src, moved)]
    short, i = value - sum(moved), start
    while short:
        if left[i] > 0:
            left[i] -= 1
            moved[i] += 1
            short -= 1
        i = i + 1 if i + 1 < PEG_SIZE else start
    return left, moved


def std_low(value: int, supply: int = S5) -> list[int]:
    return Fractions.std(value).low_part(supply).to_list()


def vec_add(*vectors: list[int]) -> list[int]:
    return [sum(column) for column in zip(*vectors)]


def test_issue_11_single_freeze_takes_the_address_pool_as_of_its_input():
    """Issue 10 item 11: a single **F** at output 0 freezes from A's reserve pool as it stands after input 0
    (bitbay-core adds input i and reads the notary at output i in one step), not from all of A's inputs."""
    second = sparse({10: 600_000, 700: 400_000})
    inputs = [std_input(A, 1_000_000), TransferInput(1_000_000, second, A)]
    outputs = [note("**F**1", 0), to(X, 300_000)]
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    _, frozen = move_spec(std_low(1_000_000), 300_000)
    assert res.outputs[1].to_list() == frozen
    assert res.outputs[1].flags & NOTARY_F and res.outputs[1].lock_time == T16 + 30 * 86400
    # The reading the C++ does not make (A's whole pool) differs in exactly the 500 entries the issue counts.
    _, whole_pool = move_spec(vec_add(std_low(1_000_000), second.low_part(S5).to_list()), 300_000)
    assert sum(a != b for a, b in zip(frozen, whole_pool)) == 500
    assert res.outputs[0].total() == 0
    assert_conserved(inputs, outputs, res)


def test_issue_12_single_or_shared_is_decided_on_the_inputs_own_reserve():
    """Issue 10 item 12: **F**2 at output 1 acts on input 1 (A, 1000): its own reserve is below 5000, so the
    freeze is shared and filled when the output loop reaches output 2, after the change of output 0 took
    its reserve; A's whole pool would have made it a single freeze filled first."""
    inputs = [std_input(A, 1_000_000), std_input(A, 1_000)]
    outputs = [to(A, 900_000), note("**F**2", 0), to(X, 5_000)]
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    pool = vec_add(std_low(1_000_000), std_low(1_000))
    pool, change = move_spec(pool, 900_000)
    pool, frozen = move_spec(pool, 5_000)
    assert res.outputs[0].to_list() == change
    assert res.outputs[2].to_list() == frozen
    assert res.outputs[2].flags & NOTARY_F and res.outputs[2].lock_time == T16 + 30 * 86400
    assert_conserved(inputs, outputs, res)


@pytest.mark.parametrize(("kind", "value"), [("F", 100_000), ("V", 10_000)])
def test_issue_10_the_same_mark_twice_is_accepted(kind, value):
    """Issue 10 item 10: two notaries (one per input, as bitbay-core's wallet writes them) naming the same
    output set the same mark twice; ``SetMark`` only refuses two different marks, so this is accepted.
    (The V freeze is 10,000: at supply 500 the two inputs carry only 13,244 liquid.)"""
    inputs = [std_input(A, 1_000_000), std_input(B, 1_000_000)]
    text = f"**{kind}**2:2:2"
    outputs = [note(text, 5_590), note(text, 5_590), to(X, value)]
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    mark = NOTARY_F if kind == "F" else NOTARY_V
    assert res.outputs[2].flags & (NOTARY_F | NOTARY_V) == mark
    assert res.outputs[2].lock_time == T16 + (30 if kind == "F" else 120) * 86400
    # Both notary outputs are paid from reserves in address order: A's, twice.
    rest, first = move_spec(std_low(1_000_000), 5_590)
    _, second = move_spec(rest, 5_590)
    assert res.outputs[0].to_list() == first and res.outputs[1].to_list() == second
    if kind == "F":
        # The last notary read names the frozen address: B's reserve pays the shared freeze.
        _, frozen = move_spec(std_low(1_000_000), 100_000)
    else:
        # A shared V freeze takes the common liquidity (item 13), here both inputs' whole liquidity.
        liquid = Fractions.std(1_000_000).high_part(S5).to_list()
        _, frozen = move_spec(vec_add(liquid, liquid), 10_000)
    assert res.outputs[2].to_list() == frozen
    assert_conserved(inputs, outputs, res)


def test_issue_13_shared_v_freeze_is_funded_from_the_common_liquidity():
    """Issue 10 item 13 (supply 0): a shared **V** freeze takes the common liquidity, which output 0 (the
    notary, paid from liquidity since there is no reserve at supply 0) has already drawn on; A's own
    liquidity pool, which output 0 never touched, would give a slice off by one in 242 entries."""
    inp = std_input(A, 1_000_000)
    outputs = [note("**V**1:1:1", 5_590), to(X, 500_000)]
    res = apply_transfer_rule([inp], outputs, 0, T16)
    common, notary = move_spec(Fractions.std(1_000_000).to_list(), 5_590)
    _, frozen = move_spec(common, 500_000)
    assert res.outputs[0].to_list() == notary
    assert res.outputs[1].to_list() == frozen
    assert res.outputs[1].flags & NOTARY_V and res.outputs[1].lock_time == T16 + 120 * 86400
    _, from_own_pool = move_spec(Fractions.std(1_000_000).to_list(), 500_000)
    assert sum(a != b for a, b in zip(frozen, from_own_pool)) == 242
    assert_conserved([inp], outputs, res)


def test_issue_13_shared_v_freeze_at_supply_700_is_accepted():
    """Issue 10 item 13 (supply 700): A's own liquidity (929) is below the 10,000 to freeze, so **V**2 is a
    shared freeze, filled from the common liquidity in output order; all outputs stay non-negative."""
    b = TransferInput(1_000_000, sparse({900: 1_000_000}), B)
    inputs = [std_input(A, 1_000_000), b]
    outputs = [note("**V**2", 0), to(X0, 900_000), to(X1, 10_000), to(X0, 50_000)]
    res = apply_transfer_rule(inputs, outputs, 700, T16)
    common = vec_add(Fractions.std(1_000_000).high_part(700).to_list(), b.fractions.to_list())
    common, first = move_spec(common, 900_000)
    common, frozen = move_spec(common, 10_000)
    common, last = move_spec(common, 50_000)
    assert [fr.to_list() for fr in res.outputs[1:]] == [first, frozen, last]
    assert res.outputs[2].flags & NOTARY_V and not res.outputs[1].flags & NOTARY_V
    assert res.fee.to_list() == vec_add(common, Fractions.std(1_000_000).low_part(700).to_list())
    assert_conserved(inputs, outputs, res)


# -- what bitbay-core reports, and in which order ---------------------------------------------------------


def test_fee_checks_run_after_a_failure_and_their_code_is_reported():
    """A failing output stops the output loop, but bitbay-core still checks the fee fractions and reports
    the last failure: at supply 500 a 10,000 payment from Std(1e6) (6,622 liquid) is P-O-4, reported P-G-3."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000)], [to(X, 10_000)], S5, T16)
    assert err.value.rule == "P-G-3"
    assert "Total mismatch on fee fractions 990000 vs 1000000" in err.value.detail and "P-O-4" in err.value.detail


def test_p_g_2_stands_when_the_fee_checks_pass():
    """An output with a negative entry but the right total is P-G-2 when the fee is right: here change takes
    an input reserve of {0: -10, 10: 20} whole (inputs with negative entries are not checked by the rule)."""
    inp = TransferInput(1_000, sparse({0: -10, 10: 20, 600: 990}), A)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp], [to(A, 1_000)], S5, T16)
    assert err.value.rule == "P-G-2"


def test_outputs_above_inputs_are_refused_by_the_fee_check():
    """The rule itself refuses a negative fee (bitbay-core's "value in < value out" check comes after it)."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000)], [to(A, 1_000_001)], S5, T16)
    assert err.value.rule == "P-G-3"


def test_inputs_and_their_notaries_are_checked_input_by_input():
    """Input 0 and the notary at output 0 are checked before input 1: a malformed notary at output 0 is
    reported before a locked input 1 (P-I-N-3, not P-I-4)."""
    locked = std_input(B, 1_000_000, flags=NOTARY_F, lock_time=T16 + 1)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000), locked], [note("**F**x", 0), to(X, 1_000)], S5, T16)
    assert err.value.rule == "P-I-N-3"


def test_an_output_to_an_input_owner_is_change_even_to_the_burn_address():
    """bitbay-core asks "is the owner an input owner?" first: an output to the burn address spent from the
    burn address is change (its own reserve), not a burn (every owner's reserve in map order, "bAlice" first)."""
    a = TransferInput(5_000, sparse({5: 5_000}), A)
    burnt = TransferInput(5_000, sparse({50: 5_000}), BURN_ADDRESS)
    res = apply_transfer_rule([a, burnt], [to(BURN_ADDRESS, 1_000)], S5, T16)
    assert res.outputs[0][50] == 1_000 and res.outputs[0][5] == 0


def test_a_notary_whose_script_is_an_input_owner_is_change():
    """The owner test comes before the notary test too: a notary output whose script string is an input's
    owner string is paid as change to that owner."""
    owner = "\x6aXCH"
    a = TransferInput(5_000, sparse({5: 5_000}), A)
    odd = TransferInput(5_000, sparse({50: 5_000}), owner)
    res = apply_transfer_rule([a, odd], [TransferOutput(1_000, address=owner, notary="XCH")], S5, T16)
    assert res.outputs[0][50] == 1_000 and res.outputs[0][5] == 0


def test_time_lock_pass_lets_a_locked_f_input_through_but_not_a_v_one():
    """bitbay-core's time-lock-pass set (inputs signed by whitelisted keys) lifts an F lock, never a V lock."""
    locked_f = std_input(A, 1_000_000, flags=NOTARY_F, lock_time=T16 + 1)
    res = apply_transfer_rule([locked_f], [to(A, 900_000)], S5, T16, time_lock_pass={0})
    assert res.outputs[0].total() == 900_000 and not res.outputs[0].flags & NOTARY_F
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([locked_f], [to(A, 900_000)], S5, T16, time_lock_pass={1})
    assert err.value.rule == "P-I-4"
    locked_v = std_input(A, 1_000_000, flags=NOTARY_V, lock_time=T16 + 1)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([locked_v], [to(A, 900_000)], S5, T16, time_lock_pass={0})
    assert err.value.rule == "P-I-5"


# -- the rule as the devnode applies it (node_hooks.devnode.consensus.check_transaction) --------------------

DEVNODE_PARAMS = MAINNET_PARAMS.with_changes(fee_per_input_output=0)  # no minimum fee: the C++ rule has none
KEY = PrivateKey.from_int(7)
P2PKH = address_to_script(KEY.public_key().address())
OTHER = address_to_script(PrivateKey.from_int(5).public_key().address())


class _AllSigned:
    """check_transaction's signature check, answering yes: these tests are about the rule, not signatures."""

    def verify(self, tx: Transaction, index: int, script: bytes) -> bool:
        return True


def devnode_check(spent: list[tuple[bytes, Fractions]], outputs: list[tuple[int, bytes]],
                  supply: int = S5, time: int = T16) -> CheckedTx:
    """Check a transaction spending ``spent`` (script, fractions) into ``outputs`` (value, script)."""
    coins = {}
    txins = []
    for n, (script, fr) in enumerate(spent):
        txid = bytes([n + 1]) * 32
        coins[(txid, 0)] = (layout.UtxoRecord(fr.total(), script, 1, time), fr)
        txins.append(TxIn(OutPoint(txid, 0)))
    tx = Transaction(1, time, tuple(txins), tuple(TxOut(v, s) for v, s in outputs), 0)
    return check_transaction(tx, lambda txid, n: coins.get((txid, n)), supply, time, DEVNODE_PARAMS,
                             _AllSigned())  # type: ignore[arg-type]


def test_devnode_runs_the_rule_before_the_value_check():
    """bitbay-core's ConnectInputs runs CalculateStandardFractions before "value in < value out": a
    transaction paying out more than it spends is refused with the rule's code."""
    with pytest.raises(TxRejected) as err:
        devnode_check([(P2PKH, Fractions.std(1_000_000))], [(1_000_001, P2PKH)])
    assert err.value.rule == "P-G-3"


# -- issue 10 item 16: **Z** and **L** notaries, L-marked inputs ---------------------------------------------


def test_issue_16_z_output_is_paid_from_the_common_liquidity_only():
    """A **Z** (bridge burn) output is neither an input owner nor a reserve-first notary: it takes the common
    liquidity alone, like a foreign payment (P-O-4 beyond it, reported as P-G-3)."""
    inp = std_input(A, 1_000_000)
    text = "**Z**0x" + "ab" * 20
    res = apply_transfer_rule([inp], [note(text, 5_000), to(A, 900_000)], S5, T16)
    _, paid = move_spec(Fractions.std(1_000_000).high_part(S5).to_list(), 5_000)
    assert res.outputs[0].to_list() == paid and not res.outputs[0].flags & (NOTARY_F | NOTARY_V | NOTARY_L)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp], [note(text, 7_000)], S5, T16)
    assert err.value.rule == "P-G-3" and "P-O-4" in err.value.detail


def test_issue_16_single_l_notary_takes_the_owners_liquidity_unlocked():
    """**L**1: output 1 takes A's liquidity pool as of input 0, is marked L and is not locked (lock time 0)."""
    inp = std_input(A, 1_000_000)
    outputs = [note("**L**1", 0), to(X, 5_000), to(A, 900_000)]
    res = apply_transfer_rule([inp], outputs, S5, T16)
    _, frozen = move_spec(Fractions.std(1_000_000).high_part(S5).to_list(), 5_000)
    assert res.outputs[1].to_list() == frozen
    assert res.outputs[1].flags & (NOTARY_F | NOTARY_V | NOTARY_L) == NOTARY_L and res.outputs[1].lock_time == 0
    assert_conserved([inp], outputs, res)


def test_issue_16_l_notary_beyond_the_inputs_liquidity_is_p_i_n_7():
    """A single **L** freeze needs input i's own liquidity (6,622 here): beyond it, P-I-N-7."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000)], [note("**L**1", 0), to(X, 6_623)], S5, T16)
    assert err.value.rule == "P-I-N-7"


def test_issue_16_shared_l_freeze_pays_nothing_and_drops_the_mark():
    """A shared **L** freeze is never filled (the output loop fills shared F and V only): a 0-value output
    passes without a mark, a valued one misses its total (P-G-2, reported as the fee check's P-G-3)."""
    inp = std_input(A, 1_000_000)
    res = apply_transfer_rule([inp], [note("**L**1:1:1", 0), to(X, 0)], S5, T16)
    assert res.outputs[1].flags & (NOTARY_F | NOTARY_V | NOTARY_L) == 0 and res.outputs[1].total() == 0
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp], [note("**L**1:1:1", 0), to(X, 10)], S5, T16)
    assert err.value.rule == "P-G-3" and "P-G-2" in err.value.detail


def test_issue_16_l_marked_inputs_are_ordinary_inputs():
    """bitbay-core checks no lock on an L-marked input: it is pooled like any other."""
    inp = std_input(A, 1_000_000, flags=NOTARY_L, lock_time=T16 + 10**6)
    res = apply_transfer_rule([inp], [to(X, 5_000), to(A, 990_000)], S5, T16)
    assert [fr.flags & NOTARY_L for fr in res.outputs] == [0, 0]
    _, change = move_spec(std_low(1_000_000), 990_000)
    assert res.outputs[1].to_list() == change


# -- issue 10 item 16: two-index "fair withdraw from escrow" freezes -----------------------------------------


def escrow_case(v1: int, v2: int, text: str = "**F**1:2"):
    b = TransferInput(1_000_000, sparse({900: 1_000_000}), B)  # all liquid at supply 500
    inputs = [std_input(A, 1_000_000), b]
    outputs = [note(text, 0), to(X0, v1), to(X1, v2)]
    common = vec_add(Fractions.std(1_000_000).high_part(S5).to_list(), b.fractions.to_list())
    return inputs, outputs, common


def test_issue_16_escrow_freeze_takes_the_first_outputs_fair_share_of_reserve():
    """**F**1:2 with two frozen outputs whose values (700,000 and 500,000) exceed A's reserve (993,378):
    output 1 takes from the reserves only 993,378 x 7/12 = 579,470, plus the rounding remainder 1, and the
    rest from the common liquidity; output 2, a plain shared freeze, takes the reserve left, then liquidity."""
    inputs, outputs, common = escrow_case(700_000, 500_000)
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    reserve, first_reserve = move_spec(std_low(1_000_000), 579_471)
    common, first_liquid = move_spec(common, 700_000 - 579_471)
    _, second_reserve = move_spec(reserve, 500_000)
    _, second_liquid = move_spec(common, 500_000 - sum(second_reserve))
    assert res.outputs[1].to_list() == vec_add(first_reserve, first_liquid)
    assert res.outputs[2].to_list() == vec_add(second_reserve, second_liquid)
    assert all(fr.flags & NOTARY_F for fr in res.outputs[1:])
    assert_conserved(inputs, outputs, res)


def test_issue_16_escrow_freeze_within_the_reserve_is_a_plain_shared_freeze():
    """When the frozen owner's reserve pays both outputs in full, nothing is scaled."""
    inputs, outputs, _ = escrow_case(300_000, 200_000)
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    reserve, first = move_spec(std_low(1_000_000), 300_000)
    _, second = move_spec(reserve, 200_000)
    assert [res.outputs[1].to_list(), res.outputs[2].to_list()] == [first, second]


def test_issue_16_escrow_share_needs_exactly_two_frozen_outputs():
    """A third frozen output (here output 4, by input 1's **F**4) turns the fair split off: output 2 takes
    reserve as any shared freeze does."""
    b = TransferInput(1_000_000, sparse({900: 1_000_000}), B)
    inputs = [std_input(A, 1_000_000), b]
    outputs = [note("**F**2:3", 0), note("**F**4", 0), to(X0, 700_000), to(X1, 500_000), to(X1, 1_000)]
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    _, first = move_spec(std_low(1_000_000), 700_000)
    assert res.outputs[2].to_list() == first


def test_issue_16_two_index_v_freeze_is_a_shared_v_freeze():
    """Two indexes only change how shared F freezes take reserve: **V**1:2 fills both from the liquidity."""
    inputs, outputs, common = escrow_case(300_000, 200_000, "**V**1:2")
    res = apply_transfer_rule(inputs, outputs, S5, T16)
    common, first = move_spec(common, 300_000)
    _, second = move_spec(common, 200_000)
    assert [res.outputs[1].to_list(), res.outputs[2].to_list()] == [first, second]
    assert all(fr.flags & NOTARY_V for fr in res.outputs[1:])


# -- issue 10 item 16: **C** notaries and cold inputs ------------------------------------------------------

FOUR_FREEZES = 4 * 30 * 86400


def ratio_spec(src: list[int], part: int) -> list[int]:
    """``CFractions::RatioPart`` restated for non-negative vectors: a slice of ``src`` summing to ``part``.

    Each entry is ``trunc(f[i] * part / total)``; the shortfall is added one satoshi at a time to entries
    still below the source's, cycling from the first non-zero entry of the source.
    """
    total = sum(src)
    if part == 0:
        return [0] * PEG_SIZE
    if part > total:
        return list(src)
    out = [v * part // total for v in src]
    start = next(i for i, v in enumerate(src) if v)
    short, i = part - sum(out), start
    while short:
        if out[i] < src[i]:
            out[i] += 1
            short -= 1
        i = i + 1 if i + 1 < PEG_SIZE else start
    return out


def test_issue_16_c_notary_marks_the_output_cold_with_a_slice_of_the_input():
    """**C**1: output 1 takes RatioPart(400,000) of input 0 (reserve and liquid alike), is marked C, not
    locked, and remembers A as its return address; only that slice leaves A's pools."""
    inp = std_input(A, 1_000_000)
    outputs = [note("**C**1", 0), to(X, 400_000), to(A, 500_000)]
    res = apply_transfer_rule([inp], outputs, S5, T16)
    cold = ratio_spec(Fractions.std(1_000_000).to_list(), 400_000)
    assert res.outputs[1].to_list() == cold
    assert res.outputs[1].flags & (NOTARY_F | NOTARY_V | NOTARY_L | NOTARY_C) == NOTARY_C
    assert res.outputs[1].lock_time == 0 and res.outputs[1].return_addr == A
    reserve = [a - b for a, b in zip(std_low(1_000_000), cold[:S5] + [0] * (PEG_SIZE - S5))]
    _, change = move_spec(reserve, 500_000)
    assert res.outputs[2].to_list() == change
    assert_conserved([inp], outputs, res)


@pytest.mark.parametrize(
    ("outputs", "rule"),
    [
        ([note("**C**1:1", 0), to(X, 1_000)], "P-I-N-2"),  # a cold notary names one output
        ([note("**C**1", 0), to(X, 1_000_001)], "P-I-N-8"),  # more than the input
    ],
)
def test_issue_16_c_notary_refusals(outputs, rule):
    """A **C** notary names exactly one output (P-I-N-2), within its input's value (P-I-N-8)."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(A, 1_000_000)], outputs, S5, T16)
    assert err.value.rule == rule


def test_issue_16_c_notary_needs_an_input_owner_that_is_an_address():
    """P-I-N-13: the owner becomes the cold output's return address, so it must be a valid address (a
    multisig or non-standard script's owner string is not)."""
    inp = TransferInput(1_000_000, Fractions.std(1_000_000), "\x51", address_valid=False)
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([inp], [note("**C**1", 0), to(X, 1_000)], S5, T16)
    assert err.value.rule == "P-I-N-13"


def test_issue_16_two_c_notaries_for_one_output_are_p_i_n_12():
    """A second **C** notary paying an output the first already paid: P-I-N-12."""
    inputs = [std_input(A, 1_000_000), std_input(B, 1_000_000)]
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule(inputs, [note("**C**2", 0), note("**C**2", 0), to(X, 1_000)], S5, T16)
    assert err.value.rule == "P-I-N-12"


def cold_input(value: int = 1_000_000, owner: str = A, home: str = A) -> TransferInput:
    return TransferInput(value, Fractions.std(value, flags=NOTARY_C, return_addr=home), owner)


def test_issue_16_cold_input_back_to_its_return_address_is_unmarked():
    """A cold input pays output i RatioPart(value) of itself; back to its return address the output carries
    no mark and no lock, and what it does not take is fee."""
    outputs = [to(A, 400_000)]
    res = apply_transfer_rule([cold_input()], outputs, S5, T16)
    slice_ = ratio_spec(Fractions.std(1_000_000).to_list(), 400_000)
    assert res.outputs[0].to_list() == slice_
    assert res.outputs[0].flags & (NOTARY_F | NOTARY_V | NOTARY_L | NOTARY_C) == 0 and res.outputs[0].lock_time == 0
    assert res.fee.to_list() == [a - b for a, b in zip(Fractions.std(1_000_000).to_list(), slice_)]


def test_issue_16_cold_input_elsewhere_is_frozen_four_periods():
    """Anywhere but its return address, a cold input's output is F-frozen for four freeze periods."""
    res = apply_transfer_rule([cold_input()], [to(X, 400_000)], S5, T16)
    assert res.outputs[0].flags & NOTARY_F and res.outputs[0].lock_time == T16 + FOUR_FREEZES
    assert res.outputs[0].to_list() == ratio_spec(Fractions.std(1_000_000).to_list(), 400_000)


def test_issue_16_cold_input_refusals():
    """No notary at a cold input's position (P-I-N-1); a cold output named by a notary (P-I-N-5); a cold
    input's output already paid by a single freeze (P-I-C-1)."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([cold_input()], [note("**F**1", 0), to(X, 10)], S5, T16)
    assert err.value.rule == "P-I-N-1"
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([cold_input(), std_input(B)], [to(A, 10), note("**F**0", 0)], S5, T16)
    assert err.value.rule == "P-I-N-5"
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule([std_input(B), cold_input()], [note("**F**1", 0), to(A, 10)], S5, T16)
    assert err.value.rule == "P-I-C-1"


def test_issue_16_cold_input_without_an_output_at_its_position_is_pooled():
    """bitbay-core looks at a cold input only through output i: past the last output it is pooled like any
    other input (its reserve can pay change, its liquidity anything)."""
    inputs = [std_input(B, 1_000_000), cold_input()]
    res = apply_transfer_rule(inputs, [to(A, 900_000)], S5, T16)
    _, change = move_spec(std_low(1_000_000), 900_000)
    assert res.outputs[0].to_list() == change and not res.outputs[0].flags & NOTARY_F


def test_issue_16_c_output_spent_back_home():
    """The round trip: an output of **C**1 (marked C, return address A) spent back to A carries no mark."""
    made = apply_transfer_rule([std_input(A, 1_000_000)], [note("**C**1", 0), to(X, 400_000)], S5, T16)
    cold = TransferInput(400_000, made.outputs[1], X)
    res = apply_transfer_rule([cold], [to(A, 390_000)], S5, T16 + 1)
    assert res.outputs[0].flags & (NOTARY_F | NOTARY_C) == 0
    assert res.outputs[0].to_list() == ratio_spec(made.outputs[1].to_list(), 390_000)


def test_issue_17_p2pk_input_and_p2pkh_change_of_one_key_are_one_owner():
    """Issue 10 item 17: bitbay-core names a P2PK script's owner by its key's P2PKH address, so change from a
    P2PK coin to the P2PKH script of the same key is change (its own reserve), not a foreign payment."""
    p2pk = push_data(KEY.public_key().to_bytes()) + bytes([OP_CHECKSIG])
    checked = devnode_check([(p2pk, Fractions.std(1_000_000))], [(900_000, P2PKH)])
    _, change = move_spec(std_low(1_000_000), 900_000)
    assert checked.output_fractions[0].to_list() == change


def test_issue_17_pushdata1_notary_text_includes_the_length_byte():
    """Issue 10 item 17: ``6a 4c 06 "**F**1"`` is the notary "\\x06**F**1" to bitbay-core: not a freeze, so
    output 1 is an ordinary foreign payment."""
    script = bytes([OP_RETURN, OP_PUSHDATA1, 6]) + b"**F**1"
    checked = devnode_check([(P2PKH, Fractions.std(1_000_000))], [(0, script), (1_000, OTHER)])
    assert not checked.output_fractions[1].flags & NOTARY_F
    _, paid = move_spec(Fractions.std(1_000_000).high_part(S5).to_list(), 1_000)
    assert checked.output_fractions[1].to_list() == paid


def test_issue_17_truncated_push_is_the_notary_it_holds():
    """Issue 10 item 17: a truncated ``6a 10 "**F**"`` is the notary "**F**" to bitbay-core (a freeze with
    no index: P-I-N-3), and with an index ``6a 10 "**F**1"`` a freeze of output 1."""
    truncated = bytes([OP_RETURN, 0x10]) + b"**F**"
    with pytest.raises(TxRejected) as err:
        devnode_check([(P2PKH, Fractions.std(1_000_000))], [(0, truncated), (1_000, OTHER)])
    assert err.value.rule == "P-I-N-3"
    checked = devnode_check([(P2PKH, Fractions.std(1_000_000))], [(0, truncated + b"1"), (1_000, OTHER)])
    assert checked.output_fractions[1].flags & NOTARY_F


def test_issue_17_c_notary_from_a_multisig_owner_is_p_i_n_13():
    """The owner of a multisig coin is its addresses joined by newlines, not a valid address: a **C** notary
    spending it is refused (P-I-N-13), while the same notary from a P2PKH coin is accepted."""
    keys = [PrivateKey.from_int(n).public_key().to_bytes() for n in (8, 9)]
    multisig = bytes([0x51]) + b"".join(push_data(k) for k in keys) + bytes([0x52, OP_CHECKMULTISIG])
    cold = notary_script("**C**1")
    with pytest.raises(TxRejected) as err:
        devnode_check([(multisig, Fractions.std(1_000_000))], [(0, cold), (1_000, OTHER)])
    assert err.value.rule == "P-I-N-13"
    checked = devnode_check([(P2PKH, Fractions.std(1_000_000))], [(0, cold), (1_000, OTHER)])
    assert checked.output_fractions[1].flags & NOTARY_C
    assert checked.output_fractions[1].return_addr == KEY.public_key().address()


# -- what bitbay-core leaves undefined: refused (docs/conformance-transfer-rule.md) --------------------------


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        ([TransferInput(2**62, sparse({0: 2**62}), A), TransferInput(2**62, sparse({0: 2**62}), B)], [to(A, 1)]),
        ([TransferInput(0, sparse({0: 2**62, 1: 2**62, 2: -(2**62), 3: -(2**62)}), A)], [to(A, 0)]),
        ([std_input(A, 1_000)], [to(A, 2**62), to(A, 2**62)]),
    ],
)
def test_int64_overflow_is_refused(inputs, outputs):
    """Sums bitbay-core keeps in int64 (fraction totals, pools, value in and out) that would overflow are
    undefined behaviour there: refused with P-X-RANGE rather than answered exactly."""
    with pytest.raises(TransferRuleError) as err:
        apply_transfer_rule(inputs, outputs, S5, T16)
    assert err.value.rule == "P-X-RANGE"


@pytest.mark.parametrize(("supply", "block_time"), [(-1, T16), (PEG_SIZE, T16), (S5, -1), (S5, 2**32)])
def test_supply_and_block_time_outside_bitbay_cores_types_are_refused(supply, block_time):
    """A supply index outside the vector (out-of-bounds reads in LowPart/HighPart) and a block time that is
    not a uint32 raise PegError."""
    with pytest.raises(PegError):
        apply_transfer_rule([std_input(A, 1_000)], [to(A, 500)], supply, block_time)

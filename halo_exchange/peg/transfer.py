"""The consensus fraction transfer rule for one ordinary transaction (bitbay-core ``CalculateStandardFractions``).

This module owns the answer to "which fractions does every output of a transaction receive, and which are
left as the fee", for one ordinary (non-coinbase, non-coinstake, non-mint) transaction at a given supply
index and block time. It is what decides whether an exchange withdrawal is valid at the supply of the block
that includes it, what the payee and change outputs carry, and which fee fractions the staker gets
(reference/peg-spec.md §1.12-§1.13). bitbay-core's ``src/peg/pegstd.cpp`` is the authority: this is a
reimplementation of what its ``CalculateStandardFractions`` computes, checked against it by the
conformance harness; docs/conformance-transfer-rule.md lists where, and why, it refuses what the C++ leaves
undefined.

Pure: no I/O, no clock. The caller supplies each input's fractions (from the chain's fractions store, or
``Std(value)`` where it has none) and owner string, each output's owner string and notary text (how a
script reads, :func:`halo_exchange.chain.script.script_owner` and :func:`~halo_exchange.chain.script.parse_notary`),
the supply index and the block time. Nothing it passes is modified.

How bitbay-core computes it, in two loops:

* **Inputs, in order.** Each input must total its value (``P-I-3``); a still-locked ``F`` input is refused
  unless its index is in the time-lock-pass set (``P-I-4``), a still-locked ``V`` input always (``P-I-5``).
  Its reserve (``LowPart(S)``) joins its owner's reserve pool, its liquidity (``HighPart(S)``) the owner's
  liquidity pool. Then output ``i`` is looked at (only if it exists): a cold (``C``-marked) input pays it a
  proportional slice of itself, marked ``F`` for four freeze periods unless it goes back to the input's
  return address; a notary ``**F**``/``**V**``/``**L**``/``**C**`` there marks the outputs it names. A
  one-index notary is a *single* freeze, paid at once from the owner's pool as it stands (``F`` reserve,
  ``V``/``L`` liquidity, ``C`` a slice of the input), unless input ``i``'s own reserve (liquidity) is short,
  which makes it *shared*; several indexes always make it shared; two select the "fair withdraw from
  escrow" split.
* **Outputs, in order.** If any freeze is shared, every frozen output not yet paid is filled now: ``V``
  from the common liquidity, ``F`` from the frozen owner's reserve, the other owners' reserves in map
  order, then the common liquidity. Other outputs: back to an input owner (its reserve first, then the
  common liquidity, ``P-O-2``); to the burn address or a non-``**Z**`` notary (every owner's reserve in map
  order, then liquidity, ``P-O-3``); anything else, the common liquidity alone (``P-O-4``).
* **Checks.** Outputs must total their values without negative entries (``P-G-2``). The fee fractions
  (what is left in every pool, plus what cold inputs did not pass on) must total the fee (``P-G-3``) and
  have no negative entry (``P-G-4``). These two fee checks run even after an earlier failure and, as in
  bitbay-core, their code is the one reported: a foreign payment beyond the liquidity is ``P-G-3``, with
  ``P-O-4`` named in the detail.

Rule codes are bitbay-core's. The port adds ``P-X-TX`` for what bitbay-core refuses before this rule
(no inputs, negative values), ``P-X-RANGE`` where the C++'s int64 sums would overflow (undefined
behaviour), and raises :class:`~halo_exchange.errors.PegError` for a supply index outside ``[0, 1199]``
(out-of-bounds reads in the C++) or a block time outside uint32 (docs/conformance-transfer-rule.md). Bridge
mints, coinbase and coinstake transactions have their own rules and must not be passed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Sequence

from halo_exchange.errors import PegError, TransferRuleError
from halo_exchange.peg.arith import ratio
from halo_exchange.peg.fractions import (
    NOTARY_C,
    NOTARY_F,
    NOTARY_L,
    NOTARY_V,
    PEG_SIZE,
    Fractions,
)

__all__ = [
    "BURN_ADDRESS",
    "MAINNET_FREEZE_TIMES",
    "TESTNET_FREEZE_TIMES",
    "FreezeTimes",
    "TransferInput",
    "TransferOutput",
    "TransferResult",
    "apply_transfer_rule",
    "strtol_index",
]

#: Outputs to this address are funded from reserves first, like non-``**Z**`` notaries (pegstd.cpp:24).
BURN_ADDRESS = "bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3"

_MARK_OF = {"**F**": NOTARY_F, "**V**": NOTARY_V, "**L**": NOTARY_L, "**C**": NOTARY_C}
_Z_PREFIX = "**Z**"
_MARKS = NOTARY_F | NOTARY_V | NOTARY_L | NOTARY_C


@dataclass(frozen=True)
class FreezeTimes:
    """How long an ``F`` (frozen reserve) and a ``V`` (voluntarily frozen liquid) output stays locked, in seconds."""

    frozen: int
    vfrozen: int


#: bitbay-core mainnet: PegFrozenTime 30 days, PegVFrozenTime 120 days (chainparams.cpp:142-143).
MAINNET_FREEZE_TIMES = FreezeTimes(frozen=30 * 86400, vfrozen=120 * 86400)
#: bitbay-core testnet: 1 day and 4 days (chainparams.cpp:332-333).
TESTNET_FREEZE_TIMES = FreezeTimes(frozen=86400, vfrozen=4 * 86400)


@dataclass(frozen=True)
class TransferInput:
    """One spent output: its value, its fractions (as the chain stores them) and its owner.

    ``address`` is the owner string bitbay-core groups inputs by (``CScript::ToAddress``: the address, for
    a multisig script its addresses joined by newlines, else the script's bytes). ``address_valid`` says
    whether that string is a valid address of the network (``CBitcoinAddress::IsValid``); only a ``**C**``
    notary asks (``P-I-N-13``).
    """

    value: int
    fractions: Fractions
    address: str
    address_valid: bool = True


@dataclass(frozen=True)
class TransferOutput:
    """One new output: its value, its owner string and, for an ``OP_RETURN`` script, its notary text.

    ``address`` is the output script's owner string (see :class:`TransferInput`); for a notary it is the
    script's bytes and may be left ``None``, which matches no input owner. ``notary`` is set exactly when
    the script is an ``OP_RETURN`` (``CScript::ToNotary``). At least one of the two is set.
    """

    value: int
    address: str | None = None
    notary: str | None = None

    def __post_init__(self) -> None:
        if self.address is None and self.notary is None:
            raise TransferRuleError("P-X-TX", "an output needs an owner, a notary text or both")


@dataclass(frozen=True)
class TransferResult:
    """The fractions of every output (in output order, marks and lock times set) and the fee fractions."""

    outputs: list[Fractions]
    fee: Fractions


# -- reading notary indexes ---------------------------------------------------------------------------------

_C_SPACE = frozenset(" \t\n\v\f\r")  # isspace() in the C locale
_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def strtol_index(entry: str) -> int | None:
    """The number C's ``strtol(entry, &end, 0)`` reads from ``entry``, or ``None`` when it reads no digit.

    bitbay-core reads each index of a freeze notary this way (``CalculateStandardFractions``) and only asks
    that ``end`` moved and the value names an output. Base 0: leading C-locale white space, an optional
    sign, then ``0x``/``0X`` and hexadecimal digits, ``0`` and octal digits, or decimal digits; reading
    stops at the first character that is not a digit of the base, and the rest is ignored. As glibc does,
    a ``0x`` with no hexadecimal digit after it reads as the ``0`` alone. Only ASCII digits count. An
    overflow, which strtol clamps to ``LONG_MAX``/``LONG_MIN``, is returned exact here: either way it names
    no output. (glibc 2.38+ also reads ``0b`` binary prefixes in C2X mode; this follows the classic strtol
    bitbay-core's releases were built with, which reads ``0b1`` as 0: see docs/conformance-transfer-rule.md.)
    """
    pos, end = 0, len(entry)
    while pos < end and entry[pos] in _C_SPACE:
        pos += 1
    negative = False
    if pos < end and entry[pos] in "+-":
        negative = entry[pos] == "-"
        pos += 1
    base = 10
    if entry.startswith("0", pos):
        if entry.startswith(("0x", "0X"), pos) and pos + 2 < end and entry[pos + 2] in _DIGITS[16]:
            base, pos = 16, pos + 2
        else:
            base = 8
    digits = _DIGITS[base]
    value, start = 0, pos
    while pos < end and entry[pos] in digits:
        value = value * base + int(entry[pos], 16)
        pos += 1
    if pos == start:
        return None
    return -value if negative else value


# -- the rule -----------------------------------------------------------------------------------------------


def _move(src: Fractions, value: int, dst: Fractions) -> None:
    """``src.MoveRatioPartTo(value, dst)``, whose return value bitbay-core's rule never reads.

    bitbay-core moves nothing from an empty source and nothing for a value of 0 (it returns before
    touching either vector); checked here first so that those two cases never depend on the library's
    handling of a negative total.
    """
    if value == 0 or src.total() == 0:
        return
    src.move_ratio_part_to(value, dst)


def _count_marks(flags: int) -> int:
    return bin(flags & _MARKS).count("1")


@dataclass
class _Frozen:
    """bitbay-core's ``FrozenTxOut``: what the input loop decided about one output."""

    value: int = 0
    cold: bool = False
    escrow: tuple[int, int] | None = None  # (nFairWithdrawFromEscrowIndex1, ...Index2)
    address: str = ""  # the owner whose notary named it last
    fractions: Fractions = field(default_factory=lambda: Fractions.from_value(0))


class _Refused(Exception):
    """A failure of the output loop or of the output checks: the fee checks still run after it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class _Rule:
    """One run of the rule over one transaction (the state ``CalculateStandardFractions`` keeps in locals)."""

    def __init__(
        self,
        inputs: Sequence[TransferInput],
        outputs: Sequence[TransferOutput],
        supply: int,
        block_time: int,
        freeze_times: FreezeTimes,
        time_lock_pass: Collection[int],
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.supply = supply
        self.block_time = block_time
        self.freeze_times = freeze_times
        self.time_lock_pass = time_lock_pass
        self.reserves: dict[str, Fractions] = {}  # poolReserves
        self.liquidity: dict[str, Fractions] = {}  # poolLiquidity
        self.frozen: dict[int, _Frozen] = {}  # poolFrozen
        self.cold_fees = Fractions.zero()  # frColdFees
        self.freeze_all = False  # fFreezeAll: some freeze is shared
        self.liquidity_total = 0  # nLiquidityTotal: what the liquidity checks count down from

    # -- marks --

    def _set_mark(self, fr: Fractions, mark: int, lock_time: int | None = None) -> bool:
        """``CFractions::SetMark``: add ``mark`` unless the flags would then carry two of F/V/L/C.

        Setting the mark an output already carries is accepted. The lock time follows the mark
        (``MARK_SET``: F and V lock for their freeze time, L and C not at all) unless ``lock_time`` is given
        (``MARK_COLD_TO_FROZEN``).
        """
        flags = fr.flags | mark
        if _count_marks(flags) > 1:
            return False
        fr.flags = flags
        if lock_time is not None:
            fr.lock_time = lock_time
        elif flags & NOTARY_F:
            fr.lock_time = self.block_time + self.freeze_times.frozen
        elif flags & NOTARY_V:
            fr.lock_time = self.block_time + self.freeze_times.vfrozen
        else:
            fr.lock_time = 0
        return True

    # -- the input loop --

    def pool_inputs(self) -> None:
        for i, inp in enumerate(self.inputs):
            self._pool_input(i, inp)

    def _pool_input(self, i: int, inp: TransferInput) -> None:
        fr = inp.fractions.copy()
        if fr.total() != inp.value:
            raise TransferRuleError("P-I-3", f"Input {i}: fractions total {fr.total()} is not its value {inp.value}")
        if fr.flags & NOTARY_F and fr.lock_time > self.block_time and i not in self.time_lock_pass:
            raise TransferRuleError("P-I-4", f"Frozen input {i} used before time expired ({fr.lock_time})")
        if fr.flags & NOTARY_V and fr.lock_time > self.block_time:
            raise TransferRuleError("P-I-5", f"Voluntary frozen input {i} used before time expired ({fr.lock_time})")
        owner = inp.address
        low, high = fr.low_part(self.supply), fr.high_part(self.supply)
        self.reserves[owner] = self.reserves.get(owner, Fractions.zero()) + low
        self.liquidity[owner] = self.liquidity.get(owner, Fractions.zero()) + high
        reserve_in, liquidity_in = low.total(), high.total()
        if i < len(self.outputs):
            notary = self.outputs[i].notary
            if notary is not None and fr.flags & NOTARY_C:
                raise TransferRuleError("P-I-N-1", f"Can not notary for input cold coins (input {i})")
            if fr.flags & NOTARY_C:
                self._cold_input(i, inp, fr, low, high)
                reserve_in, liquidity_in = 0, 0
            if notary is not None and notary[:5] in _MARK_OF:
                liquidity_in = self._read_freeze(i, inp, fr, notary, reserve_in, liquidity_in)
        self.liquidity_total += liquidity_in

    def _cold_input(self, i: int, inp: TransferInput, fr: Fractions, low: Fractions, high: Fractions) -> None:
        """A cold input pays output ``i`` a proportional slice of itself; the rest goes to the fee."""
        out = self.outputs[i]
        frozen = self.frozen.setdefault(i, _Frozen())
        if frozen.value > 0 or frozen.fractions.total() != 0:
            raise TransferRuleError("P-I-C-1", f"Cold notary output {i} has already assigned value")
        piece = fr.ratio_part(out.value)
        frozen.value = out.value
        frozen.fractions = frozen.fractions + piece
        frozen.fractions.lock_time = 0
        frozen.cold = True
        if fr.return_addr != out.address:
            # Anywhere but back to its return address, the coins stay frozen for four freeze periods.
            if not self._set_mark(frozen.fractions, NOTARY_F, self.block_time + 4 * self.freeze_times.frozen):
                raise TransferRuleError("P-I-C-2", f"Crossing marks are detected on output {i}")
        # The whole input leaves the pools; what output i does not take is fee.
        self.reserves[inp.address] = self.reserves[inp.address] - low
        self.liquidity[inp.address] = self.liquidity[inp.address] - high
        self.cold_fees = self.cold_fees + (fr - piece)

    def _read_freeze(
        self, i: int, inp: TransferInput, fr: Fractions, text: str, reserve_in: int, liquidity_in: int
    ) -> int:
        """The ``**F**``/``**V**``/``**L**``/``**C**`` notary at output ``i``, acting on input ``i``.

        Marks every output it names (each entry read, checked and marked before the next), then fills a
        single freeze at once. Returns input ``i``'s liquidity as it counts towards the liquidity total.
        """
        mark = _MARK_OF[text[:5]]
        entries = text[5:].split(":")
        if mark == NOTARY_C and len(entries) != 1:
            raise TransferRuleError("P-I-N-2", f"Cold notary: refer more than one output ({text!r} at output {i})")
        indexes: list[int] = []
        for entry in entries:
            index = strtol_index(entry)
            if index is None or not 0 <= index < len(self.outputs):
                raise TransferRuleError(
                    "P-I-N-3", f"Freeze notary: not convertible to output index ({text!r} at output {i})"
                )
            if index == i:
                raise TransferRuleError("P-I-N-4", f"Freeze notary: output refers itself ({text!r} at output {i})")
            frozen = self.frozen.setdefault(index, _Frozen())
            if frozen.cold:
                raise TransferRuleError("P-I-N-5", f"Output {index} already referenced as cold")
            frozen.value = self.outputs[index].value
            frozen.address = inp.address
            if not self._set_mark(frozen.fractions, mark):
                raise TransferRuleError("P-I-N-6", f"Crossing marks are detected on output {index}")
            indexes.append(index)
        shared = len(entries) > 1
        if shared:
            self.freeze_all = True
        if len(indexes) == 2:
            first, second = sorted(indexes)
            self.frozen[first].escrow = (first, second)
        if len(indexes) != 1:
            return liquidity_in
        index = indexes[0]
        value = self.outputs[index].value
        frozen = self.frozen[index]
        if (mark == NOTARY_F and reserve_in < value) or (mark == NOTARY_V and liquidity_in < value):
            self.freeze_all = True
            return liquidity_in
        if mark == NOTARY_L and liquidity_in < value:
            raise TransferRuleError("P-I-N-7", f"Freeze notary: not enough input liquidity for output {index}")
        if mark == NOTARY_C and fr.total() < value:
            raise TransferRuleError("P-I-N-8", f"Cold notary: not enough input value for output {index}")
        # A single freeze: paid now.
        owner = inp.address
        if mark == NOTARY_C:
            if frozen.fractions.total() != 0:
                raise TransferRuleError("P-I-N-12", f"Cold notary output {index} has already assigned value")
            if not inp.address_valid:
                raise TransferRuleError("P-I-N-13", f"Cold notary: input address is not valid (input {i})")
            piece = fr.ratio_part(value)
            frozen.fractions = frozen.fractions + piece
            self._set_mark(frozen.fractions, NOTARY_C)
            frozen.fractions.return_addr = owner
            # Only this slice leaves the pools: the rest of the input stays for the other outputs.
            low, high = piece.low_part(self.supply), piece.high_part(self.supply)
            self.reserves[owner] = self.reserves[owner] - low
            self.liquidity[owner] = self.liquidity[owner] - high
            return liquidity_in - high.total()
        piece = Fractions.zero()
        _move(self.reserves[owner] if mark == NOTARY_F else self.liquidity[owner], value, piece)
        frozen.fractions = frozen.fractions + piece
        self._set_mark(frozen.fractions, mark)
        return liquidity_in if mark == NOTARY_F else liquidity_in - value

    # -- the output loop --

    def fund_outputs(self) -> tuple[list[Fractions], int, _Refused | None]:
        """Every output's fractions, the value of the outputs looked at, and the failure that stopped it."""
        self.common = Fractions.zero()  # frCommonLiquidity
        for owner in sorted(self.liquidity):
            self.common = self.common + self.liquidity[owner]
        self.liquidity_left = self.liquidity_total  # nCommonLiquidity
        result: list[Fractions] = []
        value_out = 0
        for j, out in enumerate(self.outputs):
            value_out += out.value
            try:
                result.append(self._fund_output(j, out))
            except _Refused as failure:
                return result, value_out, failure
        return result, value_out, None

    def _take_common(self, value: int, dst: Fractions, rule: str, j: int) -> None:
        if value > self.liquidity_left:
            raise _Refused(rule, f"No liquidity left for output {j} ({value} needed, {self.liquidity_left} left)")
        _move(self.common, value, dst)
        self.liquidity_left -= value

    def _take_reserves(self, order: Sequence[str], value: int, dst: Fractions) -> int:
        """Reserves of the owners in ``order`` until ``value`` is taken; return what is still missing."""
        for owner in order:
            reserve = self.reserves.get(owner)
            if reserve is None:
                continue
            total = reserve.total()
            if total == 0:
                continue
            take = min(value, total)
            _move(reserve, take, dst)
            value -= take
            if value == 0:
                break
        return value

    def _fund_output(self, j: int, out: TransferOutput) -> Fractions:
        frozen = self.frozen.get(j)
        if frozen is not None and not self.freeze_all:
            return frozen.fractions.copy()
        if frozen is not None:
            if frozen.fractions.total() > 0:
                return frozen.fractions.copy()
            return self._fill_shared_freeze(j, out, frozen)
        dst = Fractions.from_value(0)
        if out.address is not None and out.address in self.reserves:
            # Back to an input owner: its own reserve first (if it has any: a negative total is skipped here).
            left, reserve = out.value, self.reserves[out.address]
            if reserve.total() > 0:
                take = min(left, reserve.total())
                _move(reserve, take, dst)
                left -= take
            if left > 0:
                self._take_common(left, dst, "P-O-2", j)
        elif out.address == BURN_ADDRESS or (out.notary is not None and not out.notary.startswith(_Z_PREFIX)):
            left = self._take_reserves(sorted(self.reserves), out.value, dst)
            if left > 0:
                self._take_common(left, dst, "P-O-3", j)
        else:
            self._take_common(out.value, dst, "P-O-4", j)
        return dst

    def _fill_shared_freeze(self, j: int, out: TransferOutput, frozen: _Frozen) -> Fractions:
        """A frozen output nothing paid yet, while some freeze is shared."""
        dst = Fractions.from_value(0)
        if frozen.fractions.flags & NOTARY_V:
            # A shared V freeze: the common liquidity alone, without a liquidity check.
            self._set_mark(dst, NOTARY_V)
            _move(self.common, out.value, dst)
            self.liquidity_left -= out.value
        elif frozen.fractions.flags & NOTARY_F:
            self._set_mark(dst, NOTARY_F)
            order = [frozen.address] + [owner for owner in sorted(self.reserves) if owner != frozen.address]
            from_reserves = out.value
            if frozen.escrow is not None and frozen.escrow[0] == j and len(self.frozen) == 2:
                from_reserves = self._escrow_share(frozen)
            left = out.value - (from_reserves - self._take_reserves(order, from_reserves, dst))
            if left > 0:
                self._take_common(left, dst, "P-O-1", j)
        # An output marked L or C that nothing paid yet (a 0-value output, or one named by an L notary with
        # several entries) gets nothing here, and loses its mark.
        return dst

    def _escrow_share(self, frozen: _Frozen) -> int:
        """The "fair withdraw from escrow" share of a two-index ``**F**a:b`` with exactly two frozen outputs.

        When the frozen owner's reserve cannot pay both outputs in full, the first one (the lower index)
        takes from the reserves only its share of that reserve, by value (``a : b``, with the rounding
        remainder), and the rest from the liquidity, which leaves the second its fair share of reserve.
        """
        assert frozen.escrow is not None
        first, second = frozen.escrow
        value1, value2 = self.frozen[first].value, self.frozen[second].value
        reserve = self.reserves.get(frozen.address)
        wanted = self.outputs[first].value
        if reserve is None:
            return wanted
        total = reserve.total()
        if total <= value1 + value2 and value1 + value2 > 0:
            share1 = ratio(total, value1, value1 + value2)
            share2 = ratio(total, value2, value1 + value2)
            return share1 + (total - share1 - share2)
        return wanted

    # -- the checks --

    def fee(self) -> Fractions:
        fee = Fractions.zero() + self.common + self.cold_fees
        for owner in sorted(self.reserves):
            fee = fee + self.reserves[owner]
        return fee


_INT64_LIMIT = 2**63


def _check_int64(inputs: Sequence[TransferInput], outputs: Sequence[TransferOutput]) -> None:
    """Refuse what would overflow bitbay-core's int64 arithmetic (signed overflow: undefined behaviour).

    Every sum the rule forms (input totals, pools, outputs, the fee, value in and out) is bounded by the sum
    of the inputs' fractions' magnitudes, of the input values or of the output values; below 2^63 none of
    them overflows. On chain values stay below MAX_MONEY, so this never refuses a real transaction.
    """
    magnitude = sum(abs(v) for inp in inputs for v in inp.fractions.copy())
    value_in = sum(inp.value for inp in inputs)
    value_out = sum(out.value for out in outputs)
    if max(magnitude, value_in, value_out) >= _INT64_LIMIT:
        raise TransferRuleError("P-X-RANGE", "sums of values or fractions would overflow int64 in bitbay-core")


def apply_transfer_rule(
    inputs: Sequence[TransferInput],
    outputs: Sequence[TransferOutput],
    supply: int,
    block_time: int,
    freeze_times: FreezeTimes = MAINNET_FREEZE_TIMES,
    time_lock_pass: Collection[int] = (),
) -> TransferResult:
    """Compute the fractions of every output and the fee of one ordinary transaction, or refuse it.

    ``supply`` is the supply index of the block that includes the transaction, ``block_time`` its time
    (frozen inputs unlock at it, new F/V marks lock from it). ``time_lock_pass`` holds the indexes of inputs
    whose ``F`` lock does not apply (bitbay-core: inputs below the last checkpoint, or signed by a
    consensus-whitelisted key). Raises :class:`TransferRuleError` with the code bitbay-core reports when
    the chain would reject the transaction.
    """
    if not 0 <= supply < PEG_SIZE:
        raise PegError(f"supply index {supply} is outside [0, {PEG_SIZE - 1}]")
    if not 0 <= block_time < 2**32:
        raise PegError(f"block time {block_time} is not a uint32 (bitbay-core's nBlockTime)")
    if not inputs:
        raise TransferRuleError("P-X-TX", "an ordinary transaction needs at least one input")
    for kind, items in (("input", inputs), ("output", outputs)):
        for n, item in enumerate(items):
            if item.value < 0:
                raise TransferRuleError("P-X-TX", f"{kind} {n}: negative value {item.value}")
    _check_int64(inputs, outputs)

    rule = _Rule(inputs, outputs, supply, block_time, freeze_times, time_lock_pass)
    rule.pool_inputs()
    result, value_out, failure = rule.fund_outputs()
    if failure is None:
        for j, (out, fr) in enumerate(zip(outputs, result)):
            if fr.total() != out.value or fr.has_negative():
                failure = _Refused("P-G-2", f"Total mismatch on output {j}: fractions total {fr.total()} for "
                                   f"value {out.value}" + (", with negative fractions" if fr.has_negative() else ""))
                break
    fee = rule.fee()
    fee_value = sum(inp.value for inp in inputs) - value_out
    # The fee checks run whatever failed before, and the last failure is the one reported.
    if fee_value != fee.total():
        failure = _Refused("P-G-3", f"Total mismatch on fee fractions {fee_value} vs {fee.total()}"
                           + (f" (after {failure})" if failure is not None else ""))
    if fee.has_negative():
        failure = _Refused("P-G-4", "Non-positive fee fractions" + (f" (after {failure})" if failure else ""))
    if failure is not None:
        raise TransferRuleError(failure.rule, failure.detail)
    return TransferResult(outputs=result, fee=fee)

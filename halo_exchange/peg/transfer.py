"""The consensus fraction transfer rule for one ordinary transaction (bitbay-core ``CalculateStandardFractions``).

This module owns the answer to "which fractions does every output of a transaction receive, and which are
left as the fee", for one ordinary (non-coinbase, non-coinstake, non-mint) transaction at a given supply
index and block time. It is what decides whether an exchange withdrawal is valid at the supply of the block
that includes it (``P-O-4``), what the payee and change outputs carry, and which fee fractions the staker
gets (reference/peg-spec.md §1.12-§1.13, bitbay-core ``src/peg/pegstd.cpp``).

Pure: no I/O, no clock. The caller supplies the inputs' fractions (from the chain's fractions store, or
``Std(value)`` where it has none), the supply index and the block time. Nothing it passes is modified.

In scope:

* input checks: fractions total equals value (``P-I-3``), still-locked ``F`` (``P-I-4``) and ``V``
  (``P-I-5``) inputs;
* per-address reserve and liquidity pools, the common liquidity;
* ``**F**a:b:...`` and ``**V**a:b:...`` notaries (frozen reserve / voluntarily frozen liquid), single and
  shared freezes (single ones filled before any output, shared ones in output order), "Crossing marks";
* outputs to input addresses (own reserve first), to the burn address and to non-``**Z**`` notaries
  (all reserves first), to foreign addresses (common liquidity only, ``P-O-4``);
* output checks (``P-G-2``) and the fee fractions (``P-G-3``, ``P-G-4``).

Out of scope (refused with :class:`~halo_exchange.errors.TransferRuleError`, so a caller never gets a silently
wrong answer): cold (``C``) and ``L``-marked inputs (``P-X-C``, ``P-X-L``), ``**L**`` notaries (``P-X-L``),
``**Z**`` bridge burns (``P-X-Z``), two-index ``**F**a:b`` / ``**V**a:b`` notaries, which bitbay-core
fills by a "fair withdraw from escrow" rule the spec does not state (``P-X-ESCROW``). Bridge mints,
coinbase and coinstake transactions have their own rules and must not be passed here; the time-lock
passes of consensus-whitelisted signers are not modelled (a locked ``F`` input is always refused).

Rule codes: ``P-I-3``, ``P-I-4``, ``P-I-5``, ``P-O-4``, ``P-G-2``, ``P-G-3`` and ``P-G-4`` are bitbay-core's,
as the spec quotes them. The spec records no code for malformed notaries, crossing marks or malformed
transactions; for those this port uses its own code ``P-X-TX``, and
``P-X-*`` for the out-of-scope cases above.

Where the spec is silent this module follows what bitbay-core most plausibly does; every such choice is
marked "Guess:" in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from halo_exchange.errors import PegError, TransferRuleError
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
]

#: Outputs to this address are funded from reserves first, like non-``**Z**`` notaries (pegstd.cpp:24).
BURN_ADDRESS = "bJnV8J5v74MGctMyVSVPfGu1mGQ9nMTiB3"

_F_PREFIX = "**F**"
_V_PREFIX = "**V**"
_L_PREFIX = "**L**"
_Z_PREFIX = "**Z**"


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
    """One spent output: its value, its fractions (as the chain stores them) and the address it paid."""

    value: int
    fractions: Fractions
    address: str


@dataclass(frozen=True)
class TransferOutput:
    """One new output: a payment to ``address``, or an ``OP_RETURN`` whose text is ``notary``.

    Exactly one of the two is set; the rule funds the two kinds differently.
    """

    value: int
    address: str | None = None
    notary: str | None = None

    def __post_init__(self) -> None:
        if (self.address is None) == (self.notary is None):
            raise TransferRuleError("P-X-TX", "an output needs exactly one of an address or a notary text")


@dataclass(frozen=True)
class TransferResult:
    """The fractions of every output (in output order, marks and lock times set) and the fee fractions."""

    outputs: list[Fractions]
    fee: Fractions


# -- the pools -------------------------------------------------------------------------------------------


class _Pools:
    """The fraction pools of one transaction (``poolReserves``, ``poolLiquidity``, ``frCommonLiquidity``).

    Per-address reserve pools hold the inputs' ``LowPart(S)``; per-address liquidity pools and the common
    liquidity hold their ``HighPart(S)``. Outputs take liquidity from the common pool; only single ``V``
    freezes (read while the inputs are pooled) take it from an address's own pool, and then the same
    fractions leave the common pool too, so that ``common + Σ reserves`` is always what is left for the fee.
    """

    def __init__(self, supply: int) -> None:
        self.supply = supply
        self.reserves: dict[str, Fractions] = {}
        self.liquidity: dict[str, Fractions] = {}
        self.common = Fractions.zero()

    def add_input(self, inp: TransferInput) -> tuple[int, int]:
        """Pool one input, as bitbay-core does input by input; return its own reserve and liquidity totals."""
        # Copy first: low_part/high_part materialise a VALUE-form vector, which must not touch the input.
        fr = inp.fractions.copy()
        low, high = fr.low_part(self.supply), fr.high_part(self.supply)
        self.reserves[inp.address] = self.reserves.get(inp.address, Fractions.zero()) + low
        self.liquidity[inp.address] = self.liquidity.get(inp.address, Fractions.zero()) + high
        self.common = self.common + high
        return low.total(), high.total()

    @property
    def addresses(self) -> list[str]:
        """Input addresses in ``std::map<std::string, ...>`` order: byte order, which for str is code-point
        order (sorted() gives it; code-point order equals UTF-8 byte order)."""
        return sorted(self.reserves)

    def take_reserve(self, address: str, value: int, dst: Fractions) -> int:
        """Move up to ``value`` of ``address``'s reserve into ``dst``; return what is still missing."""
        if value <= 0:
            return value
        return self.reserves[address].move_ratio_part_to(value, dst)

    def take_reserves(self, first: str | None, value: int, dst: Fractions) -> int:
        """Reserves of ``first`` (if given), then of every other input address in map order."""
        if first is not None:
            value = self.take_reserve(first, value, dst)
        for address in self.addresses:
            if address != first:
                value = self.take_reserve(address, value, dst)
        return value

    def take_address_liquidity(self, address: str, value: int, dst: Fractions) -> int:
        """Move up to ``value`` of ``address``'s own liquidity into ``dst``, and the same out of the common pool."""
        if value <= 0:
            return value
        before = dst.copy()
        left = self.liquidity[address].move_ratio_part_to(value, dst)
        self.common = self.common - (dst - before)
        return left

    def take_common(self, value: int, dst: Fractions) -> int:
        """Move up to ``value`` of the common liquidity into ``dst``; return what is still missing."""
        if value <= 0:
            return value
        return self.common.move_ratio_part_to(value, dst)

    def leftover(self) -> Fractions:
        """What no output took: the fee fractions (common liquidity plus every address's reserve)."""
        fee = self.common.copy()
        for address in self.addresses:
            fee = fee + self.reserves[address]
        return Fractions(fee.to_list())  # plain STD: no marks, lock time or return address


# -- notaries --------------------------------------------------------------------------------------------


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


def _set_mark(fr: Fractions, mark: int, lock_time: int, index: int) -> None:
    """bitbay-core ``CFractions::SetMark(MARK_SET)``: add ``mark`` and set the lock time.

    ``SetMark`` counts the marks the flags would carry afterwards and refuses more than one of F/V/L/C: a
    second, different mark is "Crossing marks" (``P-I-N-6`` where notaries are read), while setting the
    mark an output already carries is accepted (two notaries naming the same output, item 10 of issue 10).
    """
    if bin((fr.flags | mark) & (NOTARY_F | NOTARY_V | NOTARY_L | NOTARY_C)).count("1") > 1:
        raise TransferRuleError("P-I-N-6", f"Crossing marks are detected on output {index}")
    fr.flags |= mark
    fr.lock_time = lock_time


# -- the rule --------------------------------------------------------------------------------------------


def _check_inputs(inputs: Sequence[TransferInput], block_time: int) -> None:
    """Per-input consensus checks (pegstd.cpp:79-93), then the out-of-scope marks."""
    if not inputs:
        raise TransferRuleError("P-X-TX", "an ordinary transaction needs at least one input")
    for i, inp in enumerate(inputs):
        fr = inp.fractions
        if inp.value < 0:
            raise TransferRuleError("P-X-TX", f"input {i}: negative value {inp.value}")
        if fr.total() != inp.value:
            raise TransferRuleError("P-I-3", f"input {i}: fractions total {fr.total()} is not its value {inp.value}")
        if fr.flags & NOTARY_F and fr.lock_time > block_time:
            raise TransferRuleError("P-I-4", f"input {i}: frozen (F) until {fr.lock_time}, block time {block_time}")
        if fr.flags & NOTARY_V and fr.lock_time > block_time:
            raise TransferRuleError("P-I-5", f"input {i}: frozen (V) until {fr.lock_time}, block time {block_time}")
        if fr.flags & NOTARY_C:
            raise TransferRuleError("P-X-C", f"input {i}: cold (C) inputs are out of scope of this port")
        if fr.flags & NOTARY_L:
            raise TransferRuleError("P-X-L", f"input {i}: L-marked inputs are out of scope of this port")


def _check_outputs(outputs: Sequence[TransferOutput]) -> None:
    """Shape checks bitbay-core makes before the peg rule (non-negative values), and out-of-scope notaries."""
    for j, out in enumerate(outputs):
        if out.value < 0:
            raise TransferRuleError("P-X-TX", f"output {j}: negative value {out.value}")
        if out.notary is not None:
            if out.notary.startswith(_Z_PREFIX):
                raise TransferRuleError("P-X-Z", f"output {j}: **Z** bridge burns are out of scope of this port")
            if out.notary.startswith(_L_PREFIX):
                raise TransferRuleError("P-X-L", f"output {j}: **L** notaries are out of scope of this port")


def _pool_inputs_and_read_freezes(
    inputs: Sequence[TransferInput],
    outputs: Sequence[TransferOutput],
    result: list[Fractions],
    pools: _Pools,
    block_time: int,
    freeze_times: FreezeTimes,
) -> dict[int, tuple[int, str] | None]:
    """Pool the inputs one by one; after input ``i``, read an ``**F**``/``**V**`` notary at output ``i``.

    bitbay-core's input loop (``CalculateStandardFractions``) does both in one pass, so a notary sees the
    pools as they stand after its own input: a single freeze takes its address's reserve (``F``) or
    liquidity (``V``) as pooled from inputs ``0..i``, and whether it is single at all is decided on input
    ``i``'s own reserve (liquidity), not on the address's whole pool. Single freezes are filled at once;
    shared ones when the output loop reaches them.

    Returns every frozen output index, mapped to ``None`` when its single freeze is already filled, or to
    ``(mark, frozen address)`` when it is a shared freeze (:func:`_fill_shared_freeze`).
    """
    frozen: dict[int, tuple[int, str] | None] = {}
    for i, inp in enumerate(inputs):
        reserve_in, liquidity_in = pools.add_input(inp)
        if i >= len(outputs) or outputs[i].notary is None:
            continue
        text = outputs[i].notary
        assert text is not None
        if text.startswith(_F_PREFIX):
            mark, lock_time = NOTARY_F, block_time + freeze_times.frozen
        elif text.startswith(_V_PREFIX):
            mark, lock_time = NOTARY_V, block_time + freeze_times.vfrozen
        else:
            continue
        # Each entry is read, checked and marked before the next one, as bitbay-core does.
        entries = text[len(_F_PREFIX) :].split(":")  # "**F**" and "**V**" have the same length
        indexes: list[int] = []
        for entry in entries:
            index = strtol_index(entry)
            if index is None or not 0 <= index < len(outputs):
                raise TransferRuleError(
                    "P-I-N-3", f"Freeze notary: not convertible to output index ({text!r} at output {i})"
                )
            if index == i:
                raise TransferRuleError("P-I-N-4", f"Freeze notary: output refers itself ({text!r} at output {i})")
            _set_mark(result[index], mark, lock_time, index)
            indexes.append(index)
        if len(indexes) == 2:
            # The spec (§1.12) says two indexes trigger bitbay-core's "fair withdraw from escrow" proportional
            # rule (pegstd.cpp:225-234, 383-412) but does not state it; refused rather than answered wrongly.
            raise TransferRuleError("P-X-ESCROW", f"notary {text!r}: two-index escrow freezes are out of scope")
        own = reserve_in if mark == NOTARY_F else liquidity_in
        if len(indexes) == 1 and outputs[indexes[0]].value <= own:
            # Single freeze: the frozen address's pool as of this input pays it, now.
            index = indexes[0]
            if mark == NOTARY_F:
                pools.take_reserve(inp.address, outputs[index].value, result[index])
            else:
                pools.take_address_liquidity(inp.address, outputs[index].value, result[index])
            frozen[index] = None
            continue
        for index in indexes:
            frozen[index] = (mark, inp.address)
    return frozen


def _fill_shared_freeze(mark: int, address: str, need: int, dst: Fractions, pools: _Pools) -> None:
    """Fill one shared-freeze output when the output loop reaches it (bitbay-core's output loop).

    ``F``: the reserves of the frozen address first, then of the other input addresses in map order, then
    the common liquidity. ``V``: the common liquidity alone, which earlier outputs may already have drawn
    on (not the frozen address's own liquidity pool, issue 10 item 13). A shortfall is not refused here:
    the output's total then misses its value (P-G-2).
    """
    if mark == NOTARY_F:
        need = pools.take_reserves(address, need, dst)
    pools.take_common(need, dst)


def apply_transfer_rule(
    inputs: Sequence[TransferInput],
    outputs: Sequence[TransferOutput],
    supply: int,
    block_time: int,
    freeze_times: FreezeTimes = MAINNET_FREEZE_TIMES,
) -> TransferResult:
    """Compute the fractions of every output and the fee of one ordinary transaction, or refuse it.

    ``supply`` is the supply index of the block that includes the transaction, ``block_time`` its time
    (frozen inputs unlock at it, new F/V marks lock from it). Raises :class:`TransferRuleError` with
    bitbay-core's rule code when the chain would reject the transaction.
    """
    if not 0 <= supply < PEG_SIZE:
        raise PegError(f"supply index {supply} is outside [0, {PEG_SIZE - 1}]")
    _check_inputs(inputs, block_time)
    _check_outputs(outputs)
    value_in = sum(inp.value for inp in inputs)
    value_out = sum(out.value for out in outputs)
    if value_out > value_in:
        # Guess of code: bitbay-core refuses "value in < value out" before the peg rule runs; P-G-3 (the fee
        # total check) is the peg rule it would otherwise trip.
        raise TransferRuleError("P-G-3", f"outputs total {value_out} exceeds inputs total {value_in}")

    pools = _Pools(supply)
    result = [Fractions.zero() for _ in outputs]
    frozen = _pool_inputs_and_read_freezes(inputs, outputs, result, pools, block_time, freeze_times)
    input_addresses = set(pools.addresses)

    for j, out in enumerate(outputs):
        dst = result[j]
        if j in frozen:
            shared = frozen[j]
            if shared is not None:
                _fill_shared_freeze(shared[0], shared[1], out.value, dst, pools)
            continue
        if out.notary is not None or out.address == BURN_ADDRESS:
            # Non-**Z** notary (F/V notary texts included: the reserve withdraw builder of §3.7 funds its
            # "**F**N:N:N" outputs "from reserves in address order") or burn: all reserves first.
            need = pools.take_reserves(None, out.value, dst)
            pools.take_common(need, dst)
        elif out.address in input_addresses:
            # Change: the address keeps its own reserve first. Guess: a shortfall is not refused here but by
            # the P-G-2 total check below (the spec names no code for it).
            need = pools.take_reserve(out.address, out.value, dst)  # type: ignore[arg-type]
            pools.take_common(need, dst)
        else:
            liquid = pools.common.total()
            if out.value > liquid:
                raise TransferRuleError(
                    "P-O-4", f"output {j} needs {out.value} liquid, the inputs have {liquid} left"
                )
            pools.take_common(out.value, dst)

    for j, (out, fr) in enumerate(zip(outputs, result)):
        if fr.total() != out.value or fr.has_negative():
            raise TransferRuleError(
                "P-G-2", f"output {j}: fractions total {fr.total()} for value {out.value}"
                + (" with negative fractions" if fr.has_negative() else "")
            )

    fee = pools.leftover()
    if fee.total() != value_in - value_out:
        raise TransferRuleError("P-G-3", f"fee fractions total {fee.total()}, fee is {value_in - value_out}")
    if fee.has_negative():
        raise TransferRuleError("P-G-4", "fee fractions have negative entries")
    return TransferResult(outputs=result, fee=fee)

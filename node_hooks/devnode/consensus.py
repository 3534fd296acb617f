"""Devnet consensus checks: is a transaction valid at a block's supply and time, and what do its outputs carry.

One function decides for the mempool and for block assembly alike: inputs exist and are unspent, every
input is signed by its owner, the fee covers ``fee_per_input_output × (inputs + outputs)``, and the peg
transfer rule (``halo_exchange.peg.transfer``) accepts it at the supply index of the block that includes it,
which also yields every output's fractions and the fee fractions. Refusals raise
:class:`~node_hooks.devnode.errors.TxRejected` naming the rule.

Devnet simplification, documented: coinbase and coinstake outputs need no maturity before they are spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from halo_exchange.chain import layout
from halo_exchange.chain.block import is_coinstake
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.script import script_owner, transfer_input, transfer_output
from halo_exchange.chain.tx import Transaction, verify_input
from halo_exchange.errors import TransferRuleError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.transfer import FreezeTimes, TransferInput, apply_transfer_rule
from node_hooks.devnode.errors import TxRejected

# What the checker needs to know about an output it spends: its record and its fractions, or None.
CoinLookup = Callable[[bytes, int], "tuple[layout.UtxoRecord, Fractions] | None"]

# The peg votes a block may cast; index + 1 is the vote code stored per block (0: no vote).
VOTES = ("inflate", "deflate", "nochange")


@dataclass(frozen=True, slots=True)
class BlockContext:
    """The block a transaction is checked for: the rules depend on its height, supply index and time."""

    height: int
    supply: int
    time: int
    parent: bytes  # hash of the block it builds on (internal byte order)


@dataclass(frozen=True, slots=True)
class CheckedTx:
    """A transaction that passed every check, with what it spends and what its outputs carry."""

    tx: Transaction
    spent: tuple[tuple[bytes, int], ...]
    fee: int
    output_fractions: tuple[Fractions, ...]
    fee_fractions: Fractions


def owner(script: bytes) -> str:
    """The owner the transfer rule groups an output under, named as bitbay-core's ``CScript::ToAddress``
    names it: the address (a P2PK script's is its key's P2PKH address), a multisig's addresses one per line,
    else the script's bytes (latin-1)."""
    return script_owner(script)


class SignatureCache:
    """Inputs whose signatures already verified, so a mempool transaction is not re-verified in its block.

    Keyed by (txid, input index, the script it spends): a signature commits to all three, so a hit is as
    good as a verification. Bounded: cleared when it grows past ``limit`` entries.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._seen: set[tuple[bytes, int, bytes]] = set()
        self._limit = limit

    def verify(self, tx: Transaction, index: int, script: bytes) -> bool:
        key = (tx.hash, index, script)
        if key in self._seen:
            return True
        if not verify_input(tx, index, script):
            return False
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(key)
        return True


def check_transaction(
    tx: Transaction,
    lookup: CoinLookup,
    supply: int,
    block_time: int,
    params: ChainParams,
    signatures: SignatureCache | None = None,
) -> CheckedTx:
    """Validate ``tx`` for a block at ``supply`` and ``block_time``; raise TxRejected with the rule broken."""
    verify = signatures.verify if signatures is not None else verify_input
    if tx.is_coinbase() or is_coinstake(tx):
        raise TxRejected("coinbase", "coinbase and coinstake transactions only come from the block producer")
    if not tx.inputs or not tx.outputs:
        raise TxRejected("bad-txns-empty", "a transaction needs inputs and outputs")
    outpoints = [(txin.prevout.txid, txin.prevout.n) for txin in tx.inputs]
    if len(set(outpoints)) != len(outpoints):
        raise TxRejected("bad-txns-inputs-duplicate", "an output is spent twice in one transaction")
    if any(out.value < 0 for out in tx.outputs):
        raise TxRejected("bad-txns-vout-negative", "an output value is negative")

    inputs: list[TransferInput] = []
    value_in = 0
    for index, outpoint in enumerate(outpoints):
        coin = lookup(*outpoint)
        if coin is None:
            raise TxRejected("missing-inputs", f"input {index} spends an unknown or spent output")
        record, fractions = coin
        if not verify(tx, index, record.script):
            raise TxRejected("bad-signature", f"input {index} is not signed by the owner of the output it spends")
        inputs.append(transfer_input(record.value, fractions, record.script))
        value_in += record.value

    # bitbay-core's ConnectInputs runs the peg rule before its "value in < value out" check, so a refusal
    # names the peg rule's code first; the minimum fee is devnet policy, checked last.
    outputs = [transfer_output(out.value, out.script_pubkey) for out in tx.outputs]
    try:
        result = apply_transfer_rule(
            inputs, outputs, supply, block_time, FreezeTimes(params.frozen_time, params.vfrozen_time)
        )
    except TransferRuleError as exc:
        raise TxRejected(exc.rule, exc.detail) from exc
    value_out = sum(out.value for out in tx.outputs)
    if value_out > value_in:
        raise TxRejected("bad-txns-in-belowout", f"outputs ({value_out}) exceed inputs ({value_in})")
    fee = value_in - value_out
    minimum = params.fee_per_input_output * (len(tx.inputs) + len(tx.outputs))
    if fee < minimum:
        raise TxRejected("fee-too-low",
                         f"fee {fee} is below {minimum} for {len(tx.inputs)} inputs and {len(tx.outputs)} outputs")
    return CheckedTx(tx, tuple(outpoints), fee, tuple(result.outputs), result.fee)


def coinstake_fractions(
    stake: Fractions, reward: int, fees: Sequence[Fractions], n_outputs: int
) -> dict[int, Fractions]:
    """Fractions of a coinstake's outputs: output 1 returns the stake plus ``Std(reward)`` plus the fee
    fractions of the block's transactions (bitbay-core peg.cpp:758-759); vote outputs carry nothing."""
    total = Fractions(stake.to_list()) + Fractions.std(reward)
    for fee in fees:
        total = total + fee
    out = {1: total}
    for n in range(2, n_outputs):
        out[n] = Fractions.zero()
    return out

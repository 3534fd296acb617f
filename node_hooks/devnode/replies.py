"""The shapes of the devnet node's answers: the dicts of ``getblock``, ``getpeginfo``, ``getfractions`` and
``listunspent``.

Pure functions of what the node read, so the node core holds no display decisions and each answer's keys
live in one place (the control RPC's docstrings list them). Hashes are shown in display order (byte-reversed
hex), amounts are int satoshis, liquid and reserve are split at the supply index the caller passes.
"""

from __future__ import annotations

from typing import Any, Iterable

from halo_exchange.chain import layout
from halo_exchange.chain.block import BlockHeader
from halo_exchange.chain.reader import OutputInfo, PegInfo
from halo_exchange.peg.fractions import NOTARY_C, NOTARY_F, NOTARY_V, PEG_SIZE, Fractions
from halo_exchange.serialize import display_hex
from node_hooks.devnode.consensus import VOTES


def flags_text(fractions: Fractions) -> str:
    """The notary mark an output carries: ``F`` (frozen reserve), ``V`` (voluntarily frozen liquid), ``C``
    (cold) or ``""``; F wins over V over C."""
    flags = fractions.flags
    return "F" if flags & NOTARY_F else "V" if flags & NOTARY_V else "C" if flags & NOTARY_C else ""


def block(height: int, header: BlockHeader, record: layout.BlockRecord) -> dict[str, Any]:
    """``getblock``: the header, the txids and the peg fields of the block at ``height``."""
    return {
        "hash": header.hash_hex,
        "height": height,
        "time": header.time,
        "previousblockhash": display_hex(header.prev_hash),
        "txids": [display_hex(txid) for txid in record.txids],
        "supply": record.peg.supply,
        "votes": dict(zip(VOTES, record.peg.votes)),
        "vote": VOTES[record.peg.vote - 1] if record.peg.vote else "",
        "voteweight": record.peg.vote_weight,
    }


def peg_info(info: PegInfo) -> dict[str, int]:
    """``getpeginfo``: the tip's cycle and the supplies of this cycle and the next two."""
    return {
        "cycle": info.cycle,
        "interval": info.interval,
        "peg": info.supply,
        "pegnext": info.supply_next,
        "pegnextnext": info.supply_next_next,
        "steps": PEG_SIZE,
    }


def fractions(output: OutputInfo, supply: int) -> dict[str, Any]:
    """``getfractions``: an output's value split at ``supply`` (the supply of the block that made it)."""
    return {
        "total": output.value,
        "reserve": output.fractions.low(supply),
        "liquidity": output.fractions.high(supply),
        "peg": supply,
        "lock": output.lock_time,
        "flags": flags_text(output.fractions),
    }


def unspent(
    txid: bytes, n: int, address: str, record: layout.UtxoRecord, coin: Fractions, tip: int, supply: int
) -> dict[str, Any]:
    """One ``listunspent`` entry: the coin ``txid:n`` of ``address`` with the tip at ``tip`` and the tip's
    ``supply``."""
    return {
        "txid": display_hex(txid),
        "vout": n,
        "address": address,
        "amount": record.value,
        "confirmations": tip - record.height + 1,
        "liquidity": coin.high(supply),
        "reserve": coin.low(supply),
        "lock": coin.lock_time,
        "flags": flags_text(coin),
    }


def unspent_list(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``listunspent``: the entries oldest first, then by outpoint, so the answer does not depend on the
    DB's key order."""
    return sorted(entries, key=lambda c: (-c["confirmations"], c["txid"], c["vout"]))

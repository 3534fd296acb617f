"""Reading blocks from bitbayd and checking what can be checked, before anything is written.

:class:`BlockFetcher` asks for a run of blocks in four batched round trips (``getblockhash`` for each height,
``getblock`` for each hash, ``getrawtransaction txid 0`` for every transaction, ``getfractionsbase64
"txid:n"`` for every output) and :func:`build_block` turns one :class:`FetchedBlock` into the
:class:`~node_hooks.chainstore.ConnectedBlock` the chain store writes, after these checks:

* ``getblock`` describes the block asked for (its ``hash`` and ``height``);
* every raw transaction hashes to the txid ``getblock`` listed, and decodes;
* the merkle root of the txids is the block's ``merkleroot``;
* the 80-byte header rebuilt from ``version``, ``previousblockhash``, ``merkleroot``, ``time``, ``bits`` and
  ``nonce`` hashes to the block hash (blocks of version 7 and later, whose hash is SHA-256d of the header;
  older blocks' proof-of-work hash is not recomputed);
* every output's fractions (``getfractionsbase64``, a PegData string) decode and total the output's value,
  read from the raw transaction (never from JSON amounts, which are floats); ``{}`` (unknown to bitbayd's
  pegdb) stores nothing, and the reader then reads ``Std(value)``, as bitbay-core does;
* the block's ``pegsupplyindex`` is what the vote rule gives (``ChainView.supply_for_new_block``), whenever
  the follower holds every block the rule reads (the previous block; at a cycle's first block, the previous
  cycle's first block and the last blocks of the cycles 3 and 4 back). Until then it is taken as given.

What is trusted: the vote counters (``pegvotes*``, which need every staker's input fractions to recompute),
the fractions themselves beyond their totals, and that the block is valid at all (signatures, the transfer
rule): bitbayd validated it. A disagreement raises :class:`InconsistentUpstream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from halo_exchange.chain import layout
from halo_exchange.chain.block import Block, BlockHeader, merkle_root
from halo_exchange.chain.hashes import sha256d
from halo_exchange.chain.params import ChainParams
from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.tx import Transaction, TxError
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import Fractions
from halo_exchange.peg.pegdata import PegData
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks.chainstore import ConnectedBlock
from node_hooks.follower.errors import InconsistentUpstream
from node_hooks.follower.rpc import BitbaydRPC

SHA256D_HEADER_VERSION = 7  # from this block version on, the block hash is SHA-256d of the 80-byte header
NULL_HASH_HEX = "0" * 64


@dataclass(frozen=True, slots=True)
class FetchedBlock:
    """One block as bitbayd described it: ``getblock``'s answer, the raw transactions, the output fractions."""

    height: int
    hash_hex: str
    info: dict[str, Any]
    raw_txs: tuple[str, ...]  # hex, in block order
    # per transaction, per output: the getfractionsbase64 answer (a PegData string, or {} when unknown)
    fractions: tuple[tuple[Any, ...], ...]

    @property
    def previous_hex(self) -> str | None:
        prev = self.info.get("previousblockhash")
        return prev if isinstance(prev, str) else None


def _field(info: dict[str, Any], name: str, kind: type, height: int, block_hash: str) -> Any:
    value = info.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InconsistentUpstream(height, block_hash, f"getblock: {name} is {value!r}, not a {kind.__name__}")
    return value


def _hash_field(info: dict[str, Any], name: str, height: int, block_hash: str) -> bytes:
    text = _field(info, name, str, height, block_hash)
    try:
        return from_display_hex(text)
    except DecodeError:
        raise InconsistentUpstream(height, block_hash, f"getblock: {name} {text!r} is not a hash") from None


def _bits(value: Any, height: int, block_hash: str) -> int:
    """``bits`` as bitbayd shows it (``"%08x"``), or an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise InconsistentUpstream(height, block_hash, f"getblock: bits {value!r} is not hex")


class BlockFetcher:
    """Fetches runs of blocks over one :class:`BitbaydRPC`."""

    def __init__(self, rpc: BitbaydRPC) -> None:
        self.rpc = rpc

    def block_hashes(self, heights: list[int]) -> list[str]:
        return self.rpc.batch([("getblockhash", (h,)) for h in heights])

    def fetch(self, heights: list[int]) -> list[FetchedBlock]:
        """The blocks at ``heights`` (consecutive), in order."""
        hashes = self.block_hashes(heights)
        infos = self.rpc.batch([("getblock", (h,)) for h in hashes])
        txids: list[str] = []
        for height, block_hash, info in zip(heights, hashes, infos):
            if not isinstance(info, dict):
                raise InconsistentUpstream(height, block_hash, "getblock did not answer an object")
            tx = info.get("tx")
            if not isinstance(tx, list) or not all(isinstance(t, str) for t in tx):
                raise InconsistentUpstream(height, block_hash, "getblock: tx is not a list of txids")
            txids += tx
        raws = self.rpc.batch([("getrawtransaction", (t, 0)) for t in txids])
        # The outputs' count comes from the raw transactions; a raw tx that does not decode is refused later.
        counts = []
        for raw in raws:
            try:
                counts.append(len(Transaction.from_hex(raw).outputs) if isinstance(raw, str) else 0)
            except (DecodeError, TxError, ValueError):
                counts.append(0)
        calls = [("getfractionsbase64", (f"{t}:{n}",)) for t, c in zip(txids, counts) for n in range(c)]
        answers = iter(self.rpc.batch(calls))
        out = []
        position = 0
        for height, block_hash, info in zip(heights, hashes, infos):
            n_tx = len(info["tx"])
            block_raws = tuple(raws[position:position + n_tx])
            block_fractions = tuple(
                tuple(next(answers) for _ in range(c)) for c in counts[position:position + n_tx]
            )
            position += n_tx
            out.append(FetchedBlock(height, block_hash, info, block_raws, block_fractions))
        return out


def build_block(fetched: FetchedBlock, view: ChainView, params: ChainParams) -> ConnectedBlock:
    """Check ``fetched`` (module docstring) and return what the store writes; InconsistentUpstream if not.

    ``view`` is the follower's chain, whose tip the block extends (the caller checked the link)."""
    height, block_hash, info = fetched.height, fetched.hash_hex, fetched.info

    def refuse(what: str) -> InconsistentUpstream:
        return InconsistentUpstream(height, block_hash, what)

    if info.get("hash") != block_hash:
        raise refuse(f"getblock answered block {info.get('hash')!r}, not the one asked")
    if info.get("height") != height:
        raise refuse(f"getblock says height {info.get('height')!r}, getblockhash said {height}")
    txids_hex: list[str] = info["tx"]
    if not txids_hex:
        raise refuse("getblock lists no transactions")
    txs = []
    for position, (txid_hex, raw) in enumerate(zip(txids_hex, fetched.raw_txs)):
        if not isinstance(raw, str):
            raise refuse(f"getrawtransaction {txid_hex} answered {type(raw).__name__}, not hex")
        try:
            raw_bytes = bytes.fromhex(raw)
        except ValueError:
            raise refuse(f"getrawtransaction {txid_hex}: not hex") from None
        if display_hex(sha256d(raw_bytes)) != txid_hex:
            raise refuse(f"transaction {position}: the raw transaction hashes to {display_hex(sha256d(raw_bytes))}, "
                         f"not to its txid {txid_hex}")
        try:
            txs.append(Transaction.deserialize(raw_bytes))
        except (DecodeError, TxError) as exc:
            raise refuse(f"transaction {txid_hex} does not decode: {exc}") from None
    txids = [tx.hash for tx in txs]
    root = _hash_field(info, "merkleroot", height, block_hash)
    if merkle_root(txids) != root:
        raise refuse(f"the merkle root of the txids is {display_hex(merkle_root(txids))}, "
                     f"getblock says {info['merkleroot']}")
    prev = fetched.previous_hex
    header = BlockHeader(
        version=_field(info, "version", int, height, block_hash),
        prev_hash=from_display_hex(prev) if prev is not None else bytes(32),
        merkle_root=root,
        time=_field(info, "time", int, height, block_hash),
        bits=_bits(info.get("bits"), height, block_hash),
        nonce=_field(info, "nonce", int, height, block_hash),
    )
    if header.version >= SHA256D_HEADER_VERSION and header.hash_hex != block_hash:
        raise refuse(f"the header rebuilt from getblock's fields hashes to {header.hash_hex}")

    fractions: dict[tuple[int, int], Fractions] = {}
    for position, (tx, answers) in enumerate(zip(txs, fetched.fractions)):
        for n, (out, answer) in enumerate(zip(tx.outputs, answers)):
            if answer == {}:
                continue  # unknown to bitbayd's pegdb: nothing stored, read as Std(value)
            if not isinstance(answer, str):
                raise refuse(f"getfractionsbase64 {tx.txid}:{n} answered {answer!r}")
            pegdata = PegData.from_base64(answer)
            if not pegdata.level.is_valid():
                raise refuse(f"getfractionsbase64 {tx.txid}:{n} does not decode as pegdata")
            total = pegdata.fractions.total()
            if total != out.value:
                raise refuse(f"the fractions of output {tx.txid}:{n} total {total}, its value is {out.value}")
            fractions[(position, n)] = pegdata.fractions

    counters = [_field(info, name, int, height, block_hash)
                for name in ("pegsupplyindex", "pegvotesinflate", "pegvotesdeflate", "pegvotesnochange")]
    if any(c < 0 for c in counters) or counters[0] > 1198:
        raise refuse(f"getblock's peg fields are out of range: {counters}")
    expected = expected_supply(view, params, height)
    if expected is not None and expected != counters[0]:
        raise refuse(f"pegsupplyindex is {counters[0]}, the vote rule gives {expected}")
    peg = layout.PegFields(*counters)  # the block's own vote is not in getblock: stored as none
    return ConnectedBlock(Block(header, tuple(txs)), height, peg, fractions)


def expected_supply(view: ChainView, params: ChainParams, height: int) -> int | None:
    """The supply index the vote rule gives a block at ``height`` on top of ``view``, or None when the view
    lacks a block the rule reads (the follower started later than that)."""
    if height == 0 or height <= params.peg_start_height:
        return 0
    interval = params.peg_interval
    if height % interval != 0:
        needed = [height - 1]
    else:
        cycle = height // interval
        needed = [(cycle - 1) * interval] + [(k + 1) * interval - 1 for k in (cycle - 3, cycle - 4) if k >= 0]
    first = view.first_height()
    if first is None or min(needed) < first or view.height() < height - 1:
        return None
    return view.supply_for_new_block(height)

"""A bitbayd-compatible JSON-RPC surface on the devnet node, so a chain follower written against the real
network's node (reference/bitbayd-rpc.md) can run end to end against a devnet: devnode upstream, follower
downstream.

Transport as bitbayd's (a Bitcoin-0.8-era server): HTTP/1.1 POST to ``/`` with keep-alive, JSON-RPC 1.0
bodies ``{"method", "params", "id"}`` answered ``{"result", "error", "id"}``, a JSON array is a batch
answered by an array in the same order. HTTP status as bitbayd sets it: 200 for a result and for any batch,
400 for an invalid request (-32600), 404 for an unknown method (-32601), 500 for every other error; the
JSON body is authoritative. Basic auth is required when a user and password are configured (401 and no
body otherwise), and not asked for when they are not (devnet only).

Served by the stdlib ``ThreadingHTTPServer`` in its own threads on the transport the control RPC (``rpc.py``)
stands on too (``transport.py``): a strict Content-Length (missing 411; negative, malformed or conflicting 400;
over 4 MiB 413), chunked bodies 411 and compressed ones 415, a status line for HTTP/2.0 (505) and garbage
request lines (400), 60 s for a request from its first byte to its last (408; an idle keep-alive connection
just closes), 256 connections at most (503), and a close() that cuts held connections after 1 s of grace. Chain
reads go through ``node.reader`` snapshots (one snapshot per answer, so a block and its transactions
agree); mempool reads through the DevNode's own short-locked methods; the node lock is never held across a
request. Methods, fields and error codes are documented in docs/bitbayd-rpc.md, with where the devnet
differs from bitbayd.
"""

from __future__ import annotations

import json
import logging
import re
from http.server import ThreadingHTTPServer
from typing import Any, Callable

from halo_exchange.chain.block import Block, BlockHeader, is_coinstake
from halo_exchange.chain.layout import BlockRecord
from halo_exchange.chain.reader import ChainView
from halo_exchange.chain.script import (
    OP_CHECKMULTISIG,
    OP_CHECKSIG,
    OP_RETURN,
    ScriptError,
    parse_ops,
    parse_p2pkh,
    parse_p2sh,
    script_owner,
)
from halo_exchange.chain.tx import Transaction, TxError
from halo_exchange.errors import DecodeError
from halo_exchange.peg.fractions import PEG_SIZE, Fractions
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData
from halo_exchange.peg.votes import cycle_of, next_supply_index
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks.devnode.errors import NodeStopped, TxRejected
from node_hooks.devnode.node import DevNode
from node_hooks.devnode.replies import flags_text
from node_hooks.devnode.transport import HardenedHandler, HardenedServer, ServedInBackground, basic_auth_matches

log = logging.getLogger(__name__)

# bitbayd's error codes (rpcprotocol.h).
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_PARAMS = -32602
RPC_INTERNAL_ERROR = -32603
RPC_PARSE_ERROR = -32700

MAX_BODY = 4 * 1024 * 1024  # a batch of raw transactions fits; more is refused with HTTP 413
IDLE_TIMEOUT = 60.0  # seconds a request may take from its first byte to its last (idle keep-alive: closed)
COIN = 100_000_000
_OUTPOINT = re.compile(r"^([0-9a-fA-F]{64}):([0-9]{1,9})$")
_HEX = re.compile(r"^[0-9a-fA-F]*$")


class RPCError(Exception):
    """An error answer: ``{"code": code, "message": message}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def value_from_amount(satoshis: int) -> float:
    """bitbayd's ``ValueFromAmount``: ``(double)v / 1e8``. Not exact above 2^53 satoshis: never a source of
    values (take them from the transaction hex)."""
    return float(satoshis) / 1e8


# -- argument checks (bitbayd's RPCTypeCheck messages) ---------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "str"
    return "array" if isinstance(value, list) else "obj"


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RPCError(RPC_TYPE_ERROR, f"Expected type int, got {_json_type(value)}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise RPCError(RPC_TYPE_ERROR, f"Expected type str, got {_json_type(value)}")
    return value


def _flag(value: Any) -> bool:
    """A bool; an int is read as ``!= 0`` (bitbayd's verbose argument is an int, its txinfo a bool)."""
    if isinstance(value, bool):
        return value
    return _int(value) != 0


def _hash(name: str, value: Any) -> bytes:
    """A 64-hex hash in display order, as internal bytes; -8 when it is not one."""
    text = _str(value)
    if len(text) != 64:
        raise RPCError(RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(text)}, for '{text[:80]}')")
    try:
        return from_display_hex(text)
    except DecodeError:
        raise RPCError(RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{text}')") from None


def _outpoint(value: Any) -> tuple[bytes, int]:
    match = _OUTPOINT.match(_str(value))
    if match is None:
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter: the output must be <txhash:output>")
    return from_display_hex(match.group(1)), int(match.group(2))


# -- scripts --------------------------------------------------------------------------------------------

_OPCODE_NAMES = {
    0x4F: "-1", 0x61: "OP_NOP", 0x69: "OP_VERIFY", 0x6A: "OP_RETURN", 0x75: "OP_DROP", 0x76: "OP_DUP",
    0x87: "OP_EQUAL", 0x88: "OP_EQUALVERIFY", 0xA9: "OP_HASH160", 0xAA: "OP_HASH256", 0xAB: "OP_CODESEPARATOR",
    0xAC: "OP_CHECKSIG", 0xAD: "OP_CHECKSIGVERIFY", 0xAE: "OP_CHECKMULTISIG", 0xAF: "OP_CHECKMULTISIGVERIFY",
    0xB1: "OP_CHECKLOCKTIMEVERIFY",
}


def script_asm(script: bytes) -> str:
    """bitbayd's ``CScript::ToString``: pushes as hex (0 and small ints as numbers), opcodes by name."""
    try:
        ops = parse_ops(script)
    except ScriptError:
        ops, broken = [], True
    else:
        broken = False
    words = []
    for op in ops:
        if op.data is not None:
            words.append(op.data.hex() if op.data else "0")
        elif 0x51 <= op.opcode <= 0x60:
            words.append(str(op.opcode - 0x50))
        else:
            words.append(_OPCODE_NAMES.get(op.opcode, "OP_UNKNOWN"))
    if broken:
        words.append("[error]")
    return " ".join(words)


def script_type(script: bytes) -> tuple[str, int]:
    """(bitbayd's ``GetTxnOutputType`` name, required signatures) of a scriptPubKey."""
    if parse_p2pkh(script) is not None:
        return "pubkeyhash", 1
    if parse_p2sh(script) is not None:
        return "scripthash", 1
    try:
        ops = parse_ops(script)
    except ScriptError:
        return "nonstandard", 0
    if ops and ops[0].opcode == OP_RETURN:
        return "nulldata", 0
    if len(ops) == 2 and ops[0].data is not None and 33 <= len(ops[0].data) <= 120 and ops[1].opcode == OP_CHECKSIG:
        return "pubkey", 1
    if len(ops) >= 4 and ops[-1].opcode == OP_CHECKMULTISIG and 0x51 <= ops[0].opcode <= 0x60:
        if "\n" in script_owner(script) or len(ops) == 4:
            return "multisig", ops[0].opcode - 0x50
    return "nonstandard", 0


def script_pubkey_object(script: bytes, network: Any) -> dict[str, Any]:
    """``scriptPubKey``: asm, hex, type, and reqSigs and addresses for the templates that pay addresses."""
    kind, required = script_type(script)
    out: dict[str, Any] = {"asm": script_asm(script), "hex": script.hex()}
    if kind in ("nonstandard", "nulldata"):
        out["type"] = kind
        return out
    out["reqSigs"] = required
    out["type"] = kind
    out["addresses"] = script_owner(script, network).split("\n")
    return out


# -- the methods ----------------------------------------------------------------------------------------


class BitbaydMethods:
    """The methods served, over one DevNode. Each returns the JSON value of ``result`` or raises RPCError."""

    def __init__(self, node: DevNode) -> None:
        self._node = node
        self.table: dict[str, tuple[Callable[..., Any], int, int, str]] = {
            "getblockcount": (self.getblockcount, 0, 0, "getblockcount\nReturns the number of blocks in the longest "
                                                        "block chain."),
            "getbestblockhash": (self.getbestblockhash, 0, 0, "getbestblockhash\nReturns the hash of the best "
                                                              "block in the longest block chain."),
            "getblockhash": (self.getblockhash, 1, 1, "getblockhash <index>\nReturns hash of block in "
                                                      "best-block-chain at <index>."),
            "getblock": (self.getblock, 1, 2, "getblock <hash> [txinfo]\ntxinfo optional to print more detailed "
                                              "tx info\nReturns details of a block with given block-hash."),
            "getblockbynumber": (self.getblockbynumber, 1, 2, "getblockbynumber <number> [txinfo]\ntxinfo optional "
                                                              "to print more detailed tx info\nReturns details of "
                                                              "a block with given block-number."),
            "getrawtransaction": (self.getrawtransaction, 1, 2, "getrawtransaction <txid> [verbose=0]\nIf verbose=0,"
                                                                " returns a string that is\nserialized, hex-encoded "
                                                                "data for <txid>.\nIf verbose is non-zero, returns "
                                                                "an Object\nwith information about <txid>."),
            "getfractions": (self.getfractions, 1, 2, "getfractions <txhash:output> [pegsupplyindex]\nReturns array "
                                                      "containing fractions of the output."),
            "getfractionsbase64": (self.getfractionsbase64, 1, 1, "getfractionsbase64 <txhash:output>\nReturns "
                                                                  "base64 string containing rate info."),
            "getpeginfo": (self.getpeginfo, 0, 0, "getpeginfo\nReturns an object containing peg state info."),
            "getrawmempool": (self.getrawmempool, 0, 0, "getrawmempool\nReturns all transaction ids in memory pool."),
            "sendrawtransaction": (self.sendrawtransaction, 1, 1, "sendrawtransaction <hex string>\nSubmits raw "
                                                                  "transaction (serialized, hex-encoded) to local "
                                                                  "node and network."),
            "gettxout": (self.gettxout, 2, 3, "gettxout <txid> <n> [includemempool=true]\nReturns details about an "
                                              "unspent transaction output."),
        }

    def call(self, method: str, params: list[Any]) -> Any:
        entry = self.table.get(method)
        if entry is None:
            raise RPCError(RPC_METHOD_NOT_FOUND, "Method not found")
        func, least, most, usage = entry
        if not least <= len(params) <= most:
            raise RPCError(RPC_MISC_ERROR, usage)  # bitbayd answers a wrong count with the usage text, as -1
        return func(*params)

    # -- the chain

    def getblockcount(self) -> int:
        return self._node.reader.height()

    def getbestblockhash(self) -> str:
        return self._node.best_block_hash()

    def getblockhash(self, height: Any) -> str:
        height = _int(height)
        with self._node.reader.snapshot() as view:
            block_hash = view.block_hash(height) if 0 <= height <= view.height() else None
        if block_hash is None:
            raise RPCError(RPC_MISC_ERROR, "Block number out of range.")
        return display_hex(block_hash)

    def getblock(self, block_hash: Any, txinfo: Any = False) -> dict[str, Any]:
        text = _str(block_hash)
        detail = _flag(txinfo)
        try:
            raw = from_display_hex(text)
        except DecodeError:
            raw = None
        with self._node.reader.snapshot() as view:
            record = view.block_record_by_hash(raw) if raw is not None else None
            if record is None:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
            return self._block(view, record, detail)

    def getblockbynumber(self, height: Any, txinfo: Any = False) -> dict[str, Any]:
        height = _int(height)
        detail = _flag(txinfo)
        with self._node.reader.snapshot() as view:
            record = view.block_record(height) if 0 <= height <= view.height() else None
            if record is None:
                raise RPCError(RPC_MISC_ERROR, "Block number out of range.")
            return self._block(view, record, detail)

    def _block(self, view: ChainView, record: BlockRecord, txinfo: bool) -> dict[str, Any]:
        header = BlockHeader.deserialize(record.header)
        block_hash = header.hash
        tip = view.height()
        txs = view.block_transactions(block_hash)
        created = spent = 0
        for tx in txs:
            created += sum(out.value for out in tx.outputs)
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    prev = view.output(txin.prevout.txid, txin.prevout.n)
                    spent += 0 if prev is None else prev.value
        pos = len(txs) > 1 and is_coinstake(txs[1])
        out: dict[str, Any] = {
            "hash": display_hex(block_hash),
            "confirmations": tip - record.height + 1,
            "size": len(Block(header, tuple(txs)).serialize()),
            "height": record.height,
            "version": header.version,
            "merkleroot": display_hex(header.merkle_root),
            "mint": value_from_amount(created - spent),
            "time": header.time,
            "nonce": header.nonce,
            "bits": f"{header.bits:08x}",
            "difficulty": _difficulty(header.bits),
            "blocktrust": "1",
            "chaintrust": f"{record.height + 1:x}",
        }
        if record.height > 0:
            out["previousblockhash"] = display_hex(header.prev_hash)
        if record.height < tip:
            following = view.block_hash(record.height + 1)
            if following is not None:
                out["nextblockhash"] = display_hex(following)
        out["flags"] = "proof-of-stake" if pos else "proof-of-work"
        out["pegsupplyindex"] = record.peg.supply
        out["pegvotesinflate"] = record.peg.votes_inflate
        out["pegvotesdeflate"] = record.peg.votes_deflate
        out["pegvotesnochange"] = record.peg.votes_nochange
        if txinfo:
            place = (record.height, block_hash, header.time, record.peg.supply)
            out["tx"] = [self._tx(view, tx, place, None) for tx in txs]
        else:
            out["tx"] = [tx.txid for tx in txs]
        return out

    def _tx(self, view: ChainView, tx: Transaction, place: tuple[int, bytes, int, int] | None,
            pending: tuple[Fractions, ...] | None) -> dict[str, Any]:
        """The verbose transaction object; ``place`` (height, block hash, block time, supply) for a mined
        one, ``pending`` (its outputs' fractions) for a mempool one."""
        network = view.network()
        txid = tx.hash
        out: dict[str, Any] = {
            "hex": tx.to_hex(), "txid": tx.txid, "version": tx.version, "time": tx.time, "locktime": tx.lock_time,
        }
        if place is not None:
            supply = place[3]
            out["peg"] = supply
        else:
            supply = _tip_supply(view)  # a mempool transaction has no block: the tip's supply, as bitbayd
        vin = []
        for txin in tx.inputs:
            if tx.is_coinbase():
                vin.append({"coinbase": txin.script_sig.hex(), "sequence": txin.sequence})
            else:
                vin.append({
                    "txid": display_hex(txin.prevout.txid), "vout": txin.prevout.n,
                    "scriptSig": {"asm": script_asm(txin.script_sig), "hex": txin.script_sig.hex()},
                    "sequence": txin.sequence,
                })
        out["vin"] = vin
        vout = []
        for n, txout in enumerate(tx.outputs):
            fractions = pending[n] if pending is not None else view.fractions(txid, n, txout.value)
            entry: dict[str, Any] = {
                "value": value_from_amount(txout.value),
                "reserve": value_from_amount(fractions.low(supply)),
                "liquidity": value_from_amount(fractions.high(supply)),
            }
            flags = flags_text(fractions)
            if flags:
                entry["flags"] = flags
                entry["lock"] = fractions.lock_time
            entry["n"] = n
            entry["scriptPubKey"] = script_pubkey_object(txout.script_pubkey, network)
            vout.append(entry)
        out["vout"] = vout
        if place is not None:
            out["blockhash"] = display_hex(place[1])
            out["confirmations"] = view.height() - place[0] + 1
            out["blocktime"] = place[2]
        return out

    # -- transactions

    def getrawtransaction(self, txid: Any, verbose: Any = 0) -> Any:
        raw = _hash("txid", txid)
        detail = _flag(verbose)
        entry = self._node.mempool_entry(raw)
        with self._node.reader.snapshot() as view:
            if entry is not None:
                return self._tx(view, entry.tx, None, entry.output_fractions) if detail else entry.tx.to_hex()
            found = view.transaction(raw)
            if found is None:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "No information available about transaction")
            tx, record = found
            if not detail:
                return tx.to_hex()
            header = view.block_header(record.height)
            fields = view.peg_fields(record.height)
            place = (record.height, record.block_hash, header.time if header else 0, fields.supply if fields else 0)
            return self._tx(view, tx, place, None)

    def getrawmempool(self) -> list[str]:
        return self._node.mempool_txids()

    def sendrawtransaction(self, raw_hex: Any) -> str:
        text = _str(raw_hex)
        try:
            if not _HEX.match(text):
                raise DecodeError("not hex")
            tx = Transaction.from_hex(text)
        except (DecodeError, TxError, ValueError):
            raise RPCError(RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
        self._refuse_mined(tx.hash)
        if self._node.mempool_entry(tx.hash) is not None:
            return tx.txid  # bitbayd relays a transaction it already has and answers its txid
        try:
            return self._node.send_raw_transaction(tx.to_hex())
        except TxRejected as exc:
            if exc.rule == "txn-already-in-chain":
                self._refuse_mined(tx.hash)
            log.info("bitbayd rpc: sendrawtransaction %s refused: %s", tx.txid, exc)
            raise RPCError(RPC_DESERIALIZATION_ERROR, "TX rejected") from None

    def _refuse_mined(self, txid: bytes) -> None:
        found = self._node.reader.transaction(txid)
        if found is not None:
            block = display_hex(found[1].block_hash)
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, f"transaction already in block {block}")

    def gettxout(self, txid: Any, n: Any, include_mempool: Any = True) -> dict[str, Any] | None:
        raw = _hash("txid", txid)
        n = _int(n)
        mempool = _flag(include_mempool)
        if mempool:
            if self._node.mempool_spends(raw, n):
                return None
            entry = self._node.mempool_entry(raw)
        else:
            entry = None
        with self._node.reader.snapshot() as view:
            tip = view.tip()
            assert tip is not None
            out: dict[str, Any] = {"bestblock": display_hex(tip[1])}
            if entry is not None:
                if not 0 <= n < len(entry.tx.outputs):
                    return None
                tx, value, script, confirmations = entry.tx, entry.tx.outputs[n].value, None, 0
                script = entry.tx.outputs[n].script_pubkey
            else:
                record = view.utxo(raw, n) if n >= 0 else None
                found = view.transaction(raw) if record is not None else None
                if record is None or found is None:
                    return None
                tx, value, script, confirmations = found[0], record.value, record.script, tip[0] - record.height + 1
            out["confirmations"] = confirmations
            out["value"] = value_from_amount(value)
            out["scriptPubKey"] = script_pubkey_object(script, view.network())
            out["version"] = tx.version
            out["coinbase"] = tx.is_coinbase()
            return out

    # -- the peg

    def getfractions(self, outpoint: Any, supply: Any = None) -> dict[str, Any]:
        txid, n = _outpoint(outpoint)
        asked = None if supply is None else _int(supply)
        found = self._output_fractions(txid, n)
        if found is None:
            return {}
        fractions, _, default_supply = found
        peg = default_supply if asked is None else asked
        values = fractions.to_list()
        reserve = sum(v for i, v in enumerate(values) if i < peg)
        flags = flags_text(fractions)
        return {
            "total": sum(values),
            "reserve": reserve,
            "liquidity": sum(values) - reserve,
            "peg": peg,
            "lock": fractions.lock_time if flags else 0,
            "flags": flags,
            "values": values,
        }

    def getfractionsbase64(self, outpoint: Any) -> str | dict[str, Any]:
        txid, n = _outpoint(outpoint)
        found = self._output_fractions(txid, n)
        if found is None:
            return {}
        fractions, level, _ = found
        if level is None:  # bitbayd's placeholder when the output's block is unknown
            level = PegLevel.from_fields(cycle=1, cycle_prev=0, buffer=0, supply=0, supply_next=0, supply_next_next=0)
        std = Fractions(fractions.to_list(), flags=fractions.flags, lock_time=fractions.lock_time,
                        return_addr=fractions.return_addr)
        return PegData.at_level(std, level).to_base64()

    def _output_fractions(self, txid: bytes, n: int) -> tuple[Fractions, PegLevel | None, int] | None:
        """An output's fractions (chain, then mempool), the level of its block as bitbayd's getfractionsbase64
        builds it (None for a mempool output: it has no block), and the supply getfractions splits at by
        default (its block's; the tip's for a mempool output, as bitbayd)."""
        with self._node.reader.snapshot() as view:
            info = view.output(txid, n)
            if info is not None:
                if view.stored_fractions(txid, n) is None:
                    return None  # not in the fractions store: bitbayd's pegdb does not know it either
                level = _block_level(view, info.height)
                return info.fractions, level, level.supply
            tip_supply = _tip_supply(view)
        entry = self._node.mempool_entry(txid)
        if entry is None or not 0 <= n < len(entry.output_fractions):
            return None
        return entry.output_fractions[n].copy(), None, tip_supply

    def getpeginfo(self) -> dict[str, Any]:
        with self._node.reader.snapshot() as view:
            info = view.peg_info()
            params = view.params()
        return {
            "steps": PEG_SIZE,
            "cycle": info.cycle,
            "interval": info.interval,
            "startingblock": params.peg_start_height,
            "pegfeeperinput": value_from_amount(params.fee_per_input_output),
            "subpremiumrating": 0,
            "peg": info.supply,
            "pegnext": info.supply_next,
            "pegnextnext": info.supply_next_next,
        }


def _tip_supply(view: ChainView) -> int:
    fields = view.peg_fields(view.height())
    return 0 if fields is None else fields.supply


def _block_level(view: ChainView, height: int) -> PegLevel:
    """The peg level bitbayd's getfractionsbase64 gives an output of the block at ``height``."""
    interval = view.params().peg_interval
    cycle = cycle_of(height, interval)
    fields = view.peg_fields(height)
    supply = 0 if fields is None else fields.supply
    supply_next = next_supply_index(supply, view.cycle_votes(cycle - 2), view.cycle_votes(cycle - 3))
    supply_next_next = next_supply_index(supply_next, view.cycle_votes(cycle - 1), view.cycle_votes(cycle - 2))
    return PegLevel.from_fields(cycle=cycle, cycle_prev=cycle - 1, buffer=0, supply=supply,
                                supply_next=supply_next, supply_next_next=supply_next_next)


def _difficulty(bits: int) -> float:
    """bitcoin's GetDifficulty of ``bits``; 0.0 for the devnet's bits of 0 (it has no target)."""
    mantissa = bits & 0x00FFFFFF
    if mantissa == 0:
        return 0.0
    shift = (bits >> 24) & 0xFF
    diff = 0x0000FFFF / mantissa
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


# -- JSON-RPC over HTTP ---------------------------------------------------------------------------------


def _status(error: dict[str, Any] | None) -> int:
    """bitbayd's HTTP status of a single answer (``ErrorReply``): 200, or 400/404/500 by error code."""
    if error is None:
        return 200
    return {RPC_INVALID_REQUEST: 400, RPC_METHOD_NOT_FOUND: 404}.get(error["code"], 500)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


class _Dispatcher:
    def __init__(self, methods: BitbaydMethods) -> None:
        self._methods = methods

    def handle(self, body: bytes) -> tuple[int, dict[str, Any] | list[Any]]:
        """(HTTP status, JSON answer) of one request body."""
        try:
            request = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError):
            return 500, {"result": None, "error": _error(RPC_PARSE_ERROR, "Parse error"), "id": None}
        if isinstance(request, list):
            return 200, [self._one(item) for item in request]  # a batch is 200 whatever its entries say
        answer = self._one(request)
        return _status(answer["error"]), answer

    def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"result": None, "error": _error(RPC_INVALID_REQUEST, "Invalid Request object"), "id": None}
        request_id = request.get("id")
        try:
            method = request.get("method")
            if method is None:
                raise RPCError(RPC_INVALID_REQUEST, "Missing method")
            if not isinstance(method, str):
                raise RPCError(RPC_INVALID_REQUEST, "Method must be a string")
            params = request.get("params")
            if params is None:
                params = []
            elif not isinstance(params, list):
                raise RPCError(RPC_INVALID_REQUEST, "Params must be an array")
            return {"result": self._methods.call(method, params), "error": None, "id": request_id}
        except RPCError as exc:
            return {"result": None, "error": _error(exc.code, exc.message), "id": request_id}
        except NodeStopped:
            return {"result": None, "error": _error(RPC_MISC_ERROR, "the node is stopping"), "id": request_id}
        except Exception:
            log.exception("bitbayd rpc %r failed", request.get("method"))
            return {"result": None, "error": _error(RPC_INTERNAL_ERROR, "internal error"), "id": request_id}


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _Handler(HardenedHandler):
    """JSON-RPC over the hardened transport (``transport.py``): basic auth, then the body
    (:meth:`~node_hooks.devnode.transport.HardenedHandler.read_body`) and its answer; keep-alive."""

    protocol_version = "HTTP/1.1"  # keep-alive, as bitbayd
    server_version = "bitbayd-json-rpc/devnet"
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's hook name)
        if not self.server.authorized(self.headers.get("Authorization")):
            self.close_connection = True
            self._reply(401, b"", "text/plain", extra={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        body = self.read_body()
        if body is None:
            return
        with self.server.calling():
            status, answer = self.server.dispatcher.handle(body)
            self._reply(status, json.dumps(answer).encode() + b"\n", "application/json")

    def do_GET(self) -> None:  # noqa: N802
        self.close_connection = True
        self._reply(405, b"", "text/plain", extra={"Allow": "POST"})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A refusal of the transport (400, 408, 411, 413, 415, 505, ...): its reason as a line of plain text,
        not the stdlib's HTML page; the connection closes."""
        self.close_connection = True
        self.log_error("code %d, message %s", code, message)
        text = message or self.responses.get(code, ("",))[0]
        self._reply(code, text.encode("latin-1", "replace") + b"\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()  # says Connection: close when the connection closes
        self.wfile.write(body)
        self.wfile.flush()


class _Server(HardenedServer, ThreadingHTTPServer):
    """The bitbayd RPC on the hardened transport: a thread per connection, at most ``max_connections``; a
    keep-alive connection idle for ``request_timeout`` is closed."""

    max_body = MAX_BODY
    request_timeout = IDLE_TIMEOUT
    log_name = "bitbayd rpc"

    def __init__(self, address: tuple[str, int], dispatcher: _Dispatcher, credentials: bytes | None) -> None:
        super().__init__(address, _Handler)
        self.dispatcher = dispatcher
        self._credentials = credentials

    def authorized(self, header: str | None) -> bool:
        return self._credentials is None or basic_auth_matches(header, self._credentials)


class BitbaydRPCServer(ServedInBackground):
    """The bitbayd-compatible JSON-RPC of one node, served from background threads until :meth:`close`.

    ``user`` and ``password`` both set: HTTP basic auth required; both None: none (devnet only)."""

    thread_name = "devnode-bitbayd-rpc"

    def __init__(self, node: DevNode, host: str = "127.0.0.1", port: int = 0, *, user: str | None = None,
                 password: str | None = None) -> None:
        if (user is None) != (password is None):
            raise ValueError("set both the bitbayd RPC user and password, or neither")
        credentials = None if user is None else f"{user}:{password}".encode()
        self._server = _Server((host, port), _Dispatcher(BitbaydMethods(node)), credentials)
        self.host = host
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


__all__ = ["BitbaydMethods", "BitbaydRPCServer", "RPCError", "script_asm", "value_from_amount"]

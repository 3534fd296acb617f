"""A small bitbayd-shaped JSON-RPC server for the follower's tests: real HTTP/1.1 (keep-alive, batches,
basic auth) on loopback, answering bitbayd's methods (../shared/reference/bitbayd-rpc.md) from a real
DevNode's chain. It is a test server standing in for bitbayd, not a mock of the follower: the answers are
made from the devnode's own reader, in bitbayd's names, types and error codes.

Tests tamper with answers through :attr:`UpstreamServer.tamper` (method -> function(params, answer) ->
answer), take it away with :meth:`UpstreamServer.stop` and bring it back on the same port with
:meth:`UpstreamServer.start`.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from halo_exchange.chain.tx import Transaction
from halo_exchange.errors import DecodeError
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData
from halo_exchange.serialize import display_hex, from_display_hex
from node_hooks.devnode.errors import TxRejected


class RPCFail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class BitbaydAnswers:
    """bitbayd's answers, made from ``node`` (a DevNode)."""

    def __init__(self, node) -> None:
        self.node = node
        self.reader = node.reader

    def getblockcount(self) -> int:
        return self.reader.height()

    def getbestblockhash(self) -> str:
        return display_hex(self.reader.tip()[1])

    def getblockhash(self, height: int) -> str:
        block_hash = self.reader.block_hash(height)
        if block_hash is None:
            raise RPCFail(-1, "Block number out of range.")
        return display_hex(block_hash)

    def getblock(self, hash_hex: str, txinfo: bool = False) -> dict[str, Any]:
        with self.reader.snapshot() as view:
            record = view.block_record_by_hash(from_display_hex(hash_hex))
            if record is None:
                raise RPCFail(-5, "Block not found")
            header = view.block_header(record.height)
            tip = view.height()
            answer = {
                "hash": hash_hex, "confirmations": tip - record.height + 1, "size": 0, "height": record.height,
                "version": header.version, "merkleroot": display_hex(header.merkle_root), "mint": 0.0,
                "time": header.time, "nonce": header.nonce, "bits": f"{header.bits:08x}", "difficulty": 1.0,
                "flags": "proof-of-stake", "pegsupplyindex": record.peg.supply,
                "pegvotesinflate": record.peg.votes_inflate, "pegvotesdeflate": record.peg.votes_deflate,
                "pegvotesnochange": record.peg.votes_nochange,
                "tx": [display_hex(t) for t in record.txids],
            }
            if record.height > 0:
                answer["previousblockhash"] = display_hex(header.prev_hash)
            following = view.block_hash(record.height + 1)
            if following is not None:
                answer["nextblockhash"] = display_hex(following)
        return answer

    def getrawtransaction(self, txid: str, verbose: int = 0) -> str:
        try:
            return self.node.get_raw_transaction(txid)
        except Exception:
            raise RPCFail(-5, "No information available about transaction") from None

    def getfractionsbase64(self, outpoint: str) -> Any:
        txid_hex, _, n = outpoint.partition(":")
        txid = from_display_hex(txid_hex)
        from halo_exchange.chain import layout

        with self.reader.snapshot() as view:
            if view._get(layout.fractions_key(txid, int(n))) is None:
                return {}
            info = view.output(txid, int(n))
            if info is None:
                return {}
            fields = view.peg_fields(info.height)
            supply = fields.supply if fields else 0
            cycle = info.height // view.params().peg_interval
        level = PegLevel(cycle, cycle, 0, supply, supply, supply)
        return PegData.at_level(info.fractions, level).to_base64()

    def getpeginfo(self) -> dict[str, Any]:
        info = self.reader.peg_info()
        return {"steps": 1200, "cycle": info.cycle, "interval": info.interval,
                "startingblock": self.reader.params().peg_start_height, "pegfeeperinput": 5000,
                "subpremiumrating": 0, "peg": info.supply, "pegnext": info.supply_next,
                "pegnextnext": info.supply_next_next}

    def getrawmempool(self) -> list[str]:
        return self.node.mempool_txids()

    def sendrawtransaction(self, raw_hex: str) -> str:
        try:
            return self.node.send_raw_transaction(raw_hex)
        except TxRejected as exc:
            if exc.rule == "txn-already-in-chain":
                try:
                    tx = Transaction.from_hex(raw_hex)
                    height = self.reader.transaction(tx.hash)[1].height
                except (DecodeError, TypeError):
                    height = -1
                raise RPCFail(-5, f"transaction already in block {height}") from None
            if exc.rule == "decode-failed":
                raise RPCFail(-22, "TX decode failed") from None
            raise RPCFail(-22, "TX rejected") from None


class UpstreamServer:
    """The answers of :class:`BitbaydAnswers` served over HTTP JSON-RPC 1.0 on 127.0.0.1."""

    def __init__(self, node, *, user: str | None = None, password: str | None = None) -> None:
        self.answers = BitbaydAnswers(node)
        self.auth = None if user is None else "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tamper: dict[str, Callable[[list, Any], Any]] = {}
        self.calls: list[str] = []
        self.port = 0
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                upstream._connections.add(self.connection)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if upstream.auth is not None and self.headers.get("Authorization") != upstream.auth:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = json.loads(body)
                if isinstance(request, list):
                    answer: Any = [upstream.answer(r) for r in request]
                else:
                    answer = upstream.answer(request)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self._connections):  # keep-alive connections too: bitbayd is gone
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connections.clear()

    def answer(self, request: dict) -> dict:
        method, params = request["method"], request.get("params", [])
        self.calls.append(method)
        try:
            handler = getattr(self.answers, method, None)
            if handler is None or method.startswith("_"):
                raise RPCFail(-32601, "Method not found")
            result = handler(*params)
            if method in self.tamper:
                result = self.tamper[method](params, result)
            return {"result": result, "error": None, "id": request.get("id")}
        except RPCFail as exc:
            return {"result": None, "error": {"code": exc.code, "message": exc.message}, "id": request.get("id")}

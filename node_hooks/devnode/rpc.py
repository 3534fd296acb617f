"""The devnet node's control RPC: XML-RPC on 127.0.0.1:55780 for tests and operators.

Served by the stdlib ``SimpleXMLRPCServer`` in its own threads, as a node's RPC server is: the node is the
host process here, and the plugin's Twisted reactor stays the plugin's. Fixed against the stdlib's traps
(reference/ecosystem-notes.md §1.2, §1.4): a thread per request and a 64-deep backlog instead of a serial
server with 5; integers of 2^31 and more go out as ``<i8>``; request bodies over 64 KiB get HTTP 413;
arguments are validated before the node sees them; and an unexpected exception is logged, never sent: the
client gets ``Fault(-32603, "internal error")``.

The HTTP side holds to the API transport's limits (issue 14): every refusal has a status line (HTTP/2.0 and
later 505, a garbage request line 400); a Content-Length that is not plain digits is 400, over 64 KiB 413,
missing 411; a chunked body 411 and a compressed one (Content-Encoding) 415, unread; a request not complete
60 s after its first byte 408 (an idle connection just closes); beyond 256 connections 503; integers past
2^31-1 are -32602. close() gives calls in flight 1 s to answer, then cuts every connection.

Authentication, as bitcoind's: every request carries HTTP basic-auth credentials, or gets 401 and nothing
runs. ``halo-exchange devnet`` writes ``<datadir>/.cookie`` (mode 0600, ``__cookie__:<64 hex digits>``, new
at each start, deleted at a clean stop) unless ``rpc_user``/``rpc_password`` are configured; a script reads
it: ``ServerProxy(f"http://{cookie}@127.0.0.1:55780")``. ``--rpc-no-auth`` turns authentication off.

Fault codes follow Bitcoin Core's RPC where it has one and JSON-RPC's otherwise (the constants below).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import secrets
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from halo_exchange.commands import is_whole
from halo_exchange.config import DevnodeConfig
from halo_exchange.rpc.codec import dump_response
from node_hooks.devnode.errors import (
    DevnodeError,
    InvalidParameter,
    NodeStopped,
    NotFound,
    TxRejected,
    WalletWriteFailed,
)
from node_hooks.devnode.node import VOTES, DevNode
from node_hooks.devnode.transport import HardenedHandler, HardenedServer, ServedInBackground, basic_auth_matches

log = logging.getLogger(__name__)

FAULT_WALLET_ERROR = -4  # the wallet could not be written (Bitcoin Core RPC_WALLET_ERROR, "Error: ...")
FAULT_NOT_FOUND = -5  # unknown block, transaction or output (Bitcoin Core RPC_INVALID_ADDRESS_OR_KEY)
FAULT_INVALID_PARAMETER = -8  # an argument the node refused (RPC_INVALID_PARAMETER)
FAULT_TX_REJECTED = -26  # a transaction refused by a named rule (RPC_VERIFY_REJECTED)
FAULT_NODE_STOPPED = -28  # the node is stopping
FAULT_PARSE_ERROR = -32700  # the request is not XML-RPC
FAULT_METHOD_NOT_FOUND = -32601
FAULT_INVALID_PARAMS = -32602  # wrong argument count or type
FAULT_INTERNAL = -32603

MAX_BODY = 64 * 1024
MAX_INT = 2**31 - 1  # the largest height or count a call takes
COOKIE_FILE_NAME = ".cookie"  # in the data dir, while the node runs
COOKIE_USER = "__cookie__"
_OUTPOINT = re.compile(r"^([0-9a-fA-F]{64}):([0-9]{1,9})$")
_TXID = re.compile(r"^[0-9a-fA-F]{64}$")


def _fault(code: int, message: str) -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(code, message)


def _int(name: str, value: Any, minimum: int | None = None) -> int:
    if not is_whole(value):
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be at least {minimum}")
    if value > MAX_INT:  # an <i8> or bigger: no height or count is that large, and the node's keys cannot hold it
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be at most {MAX_INT}")
    return value


def _amount(value: Any) -> int:
    """A positive satoshi amount: an int (``<int>``/``<i8>``) or a string of digits.

    Python's stdlib client refuses to send integers of 2^31 and more (it has no ``<i8>`` writer), so larger
    amounts may come as decimal strings, e.g. ``sendtoaddress(address, "3000000000")``.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not is_whole(value) or value <= 0:
        raise _fault(FAULT_INVALID_PARAMS, "amount must be a positive whole number of satoshis (int or digit string)")
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fault(FAULT_INVALID_PARAMS, f"{name} must be a string")
    return value


class ControlMethods:
    """The control calls. Each docstring is what ``system.methodHelp`` returns."""

    def __init__(self, node: DevNode) -> None:
        self._node = node

    def getblockcount(self) -> int:
        """getblockcount() -> height of the chain tip."""
        return self._node.block_count()

    def getbestblockhash(self) -> str:
        """getbestblockhash() -> hash of the tip block (hex)."""
        return self._node.best_block_hash()

    def getblock(self, height: Any) -> dict:
        """getblock(height) -> {hash, height, time, previousblockhash, txids, supply, votes, vote, voteweight}."""
        return self._node.get_block(_int("height", height, 0))

    def generate(self, n: Any, vote: Any = "nochange") -> list:
        """generate(n, vote='nochange') -> hashes of n new blocks; vote is inflate, deflate or nochange."""
        n = _int("n", n, 1)
        if vote not in VOTES:
            raise _fault(FAULT_INVALID_PARAMS, f"vote must be one of {', '.join(VOTES)}")
        return self._node.generate(n, vote)

    def getnewaddress(self) -> str:
        """getnewaddress() -> a new address of the devnet wallet, stored before it is answered. When the wallet
        cannot be written (a full disk): Fault -4 'Error: the wallet could not be written (...)', no address,
        and the node stops."""
        return self._node.get_new_address()

    def sendtoaddress(self, address: Any, amount: Any) -> str:
        """sendtoaddress(address, amount) -> txid; pays amount satoshis of liquid from the devnet wallet.

        amount is an integer or, for 2^31 and more from clients without <i8>, a string of digits."""
        return self._node.send_to_address(_str("address", address), _amount(amount))

    def sendfrozen(self, address: Any, amount: Any) -> str:
        """sendfrozen(address, amount) -> txid; an **F** frozen reserve transfer of amount satoshis."""
        return self._node.send_frozen(_str("address", address), _amount(amount))

    def sendrawtransaction(self, raw: Any) -> str:
        """sendrawtransaction(hex) -> txid of a signed transaction accepted into the mempool."""
        return self._node.send_raw_transaction(_str("hex", raw))

    def getrawtransaction(self, txid: Any) -> str:
        """getrawtransaction(txid) -> the transaction's hex, from the chain or the mempool."""
        return self._node.get_raw_transaction(self._txid(txid))

    def getrawmempool(self) -> list:
        """getrawmempool() -> the txids waiting in the mempool, in admission order."""
        return self._node.mempool_txids()

    def malleatetransaction(self, txid: Any) -> str:
        """malleatetransaction(txid) -> the new txid; devnet test helper: re-encodes the signature of input 0
        of a mempool transaction (S becomes N-S) so its txid changes while it stays valid. The original
        leaves the mempool silently; its mempool descendants are dropped ('parent-malleated')."""
        return self._node.malleate_transaction(self._txid(txid))

    def droptransaction(self, txid: Any) -> bool:
        """droptransaction(txid) -> True; devnet test helper: removes a mempool transaction and its mempool
        descendants, telling the node hooks they were dropped ('dropped-by-devnet')."""
        return self._node.drop_transaction(self._txid(txid))

    def refusetransactions(self, count: Any) -> bool:
        """refusetransactions(count) -> True; devnet test helper: the next count submitted transactions
        (sendrawtransaction, and the plugin's submissions) are refused with rule 'refused-by-devnet';
        0 cancels."""
        return self._node.refuse_transactions(_int("count", count, 0))

    @staticmethod
    def _txid(txid: Any) -> str:
        txid = _str("txid", txid)
        if not _TXID.match(txid):
            raise _fault(FAULT_INVALID_PARAMS, "txid must be 64 hex characters")
        return txid.lower()

    def listunspent(self, address: Any) -> list:
        """listunspent(address) -> the address's unspent outputs with amount, confirmations, liquidity,
        reserve (at the current supply), lock and flags."""
        return self._node.list_unspent(_str("address", address))

    def getpeginfo(self) -> dict:
        """getpeginfo() -> {cycle, interval, peg, pegnext, pegnextnext, steps}."""
        return self._node.peg_info()

    def getfractions(self, outpoint: Any) -> dict:
        """getfractions('txid:n') -> {total, reserve, liquidity, peg, lock, flags} of an output."""
        match = _OUTPOINT.match(_str("outpoint", outpoint))
        if match is None:
            raise _fault(FAULT_INVALID_PARAMS, "outpoint must be 'txid:n' with a 64-hex txid")
        return self._node.get_fractions(match.group(1).lower(), int(match.group(2)))

    def invalidateblock(self, height: Any) -> bool:
        """invalidateblock(height) -> True; disconnects blocks down to height (the chain ends at height-1)."""
        self._node.invalidate_block(_int("height", height, 1))
        return True

    def stop(self) -> bool:
        """stop() -> True; the node then stops cleanly (RPC closed, hooks told, DB closed)."""
        self._node.request_stop()
        return True


_NAMES = [name for name, _ in inspect.getmembers(ControlMethods, inspect.isfunction) if not name.startswith("_")]


def _node_fault(exc: DevnodeError) -> xmlrpc.client.Fault:
    if isinstance(exc, TxRejected):
        return _fault(FAULT_TX_REJECTED, str(exc))
    if isinstance(exc, NotFound):
        return _fault(FAULT_NOT_FOUND, str(exc))
    if isinstance(exc, InvalidParameter):
        return _fault(FAULT_INVALID_PARAMETER, str(exc))
    if isinstance(exc, NodeStopped):
        return _fault(FAULT_NODE_STOPPED, str(exc))
    if isinstance(exc, WalletWriteFailed):
        return _fault(FAULT_WALLET_ERROR, str(exc))
    return _fault(FAULT_INTERNAL, str(exc))


def new_cookie() -> str:
    """Fresh cookie credentials: ``__cookie__:<64 random hex digits>``."""
    return f"{COOKIE_USER}:{secrets.token_hex(32)}"


def write_cookie(datadir: Path, credentials: str) -> None:
    """Write ``credentials`` to ``<datadir>/.cookie`` (mode 0600, replaced atomically)."""
    path = Path(datadir) / COOKIE_FILE_NAME
    temporary = path.with_name(COOKIE_FILE_NAME + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(credentials)
    os.chmod(temporary, 0o600)  # an old file of that name kept its mode
    os.replace(temporary, path)


def read_cookie(datadir: Path) -> str:
    """The ``user:password`` of a running node's cookie file (OSError when it is not there)."""
    return (Path(datadir) / COOKIE_FILE_NAME).read_text(encoding="ascii").strip()


def remove_cookie(datadir: Path) -> None:
    """Delete the cookie file, if it is there (a clean stop)."""
    try:
        (Path(datadir) / COOKIE_FILE_NAME).unlink()
    except FileNotFoundError:
        pass


class _RequestHandler(HardenedHandler, SimpleXMLRPCRequestHandler):
    """The stdlib's XML-RPC handler on the hardened transport (``transport.py``): basic auth, the path, then
    the body (:meth:`~node_hooks.devnode.transport.HardenedHandler.read_body`) and the call."""

    rpc_paths = ("/", "/RPC2")
    encode_threshold = None  # answers are never gzipped
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's hook name)
        credentials = self.server.credentials
        if credentials is not None and not basic_auth_matches(self.headers.get("authorization"), credentials):
            log.warning("control rpc: request from %s refused (no or wrong credentials)", self.address_string())
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="halo-exchange devnet"')
            self.send_header("Content-Length", "0")
            self.close_connection = True
            self.end_headers()
            return
        if not self.is_rpc_path_valid():
            self.refuse(404, "XML-RPC is served at / and /RPC2")
            return
        body = self.read_body()
        if body is None:
            return
        with self.server.calling():
            response = self.server._marshaled_dispatch(body)
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)
            self.wfile.flush()


class _Server(HardenedServer, SimpleXMLRPCServer):
    """The control calls on the hardened transport: a thread per connection, at most ``max_connections``."""

    max_body = MAX_BODY
    log_name = "control rpc"

    def __init__(self, address: tuple[str, int], methods: ControlMethods, credentials: str | None) -> None:
        super().__init__(address, requestHandler=_RequestHandler, logRequests=False, allow_none=False)
        self.credentials = None if credentials is None else credentials.encode("utf-8")
        self._methods = methods
        self._calls: dict[str, Callable[..., Any]] = {name: getattr(methods, name) for name in _NAMES}
        self._calls["system.listMethods"] = self._list_methods
        self._calls["system.methodHelp"] = self._method_help

    def _list_methods(self) -> list[str]:
        """system.listMethods() -> the names of every call."""
        return sorted(self._calls)

    def _method_help(self, name: Any) -> str:
        """system.methodHelp(name) -> the call's documentation."""
        call = self._calls.get(name) if isinstance(name, str) else None
        if call is None:
            return ""
        return inspect.getdoc(call) or ""

    def _marshaled_dispatch(self, data: bytes, dispatch_method: Any = None, path: Any = None) -> bytes:
        try:
            params, method = xmlrpc.client.loads(data, use_builtin_types=True)
        except Exception:  # malformed XML or not a call: say so, change nothing
            return dump_response(_fault(FAULT_PARSE_ERROR, "request is not a valid XML-RPC call"))
        try:
            return dump_response((self._call(method, params),))
        except xmlrpc.client.Fault as fault:
            return dump_response(fault)
        except Exception:
            log.exception("control rpc %s failed", method)
            return dump_response(_fault(FAULT_INTERNAL, "internal error"))

    def _call(self, method: Any, params: tuple) -> Any:
        call = self._calls.get(method) if isinstance(method, str) else None
        if call is None:
            raise _fault(FAULT_METHOD_NOT_FOUND, f"method {method!r} not found")
        try:
            inspect.signature(call).bind(*params)
        except TypeError:
            raise _fault(FAULT_INVALID_PARAMS, f"wrong arguments for {method}") from None
        try:
            return call(*params)
        except DevnodeError as exc:
            raise _node_fault(exc) from None


class ControlRPCServer(ServedInBackground):
    """The control RPC of one node, served from background threads until :meth:`close`. ``credentials`` is
    the ``user:password`` every request must carry (HTTP basic auth), or None for no authentication (only
    ever asked for explicitly: ``--rpc-no-auth``)."""

    def __init__(self, node: DevNode, host: str = DevnodeConfig.rpc_host, port: int = DevnodeConfig.rpc_port, *,
                 credentials: str | None) -> None:
        self._server = _Server((host, port), ControlMethods(node), credentials)
        self.credentials = credentials
        self.host = host
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def auth_url(self) -> str:
        """The URL with the credentials in it, as ``xmlrpc.client.ServerProxy`` takes them."""
        if self.credentials is None:
            return self.url
        user, _, password = self.credentials.partition(":")
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"

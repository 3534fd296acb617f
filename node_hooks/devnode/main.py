"""Running the devnet node as a process: options, exchange mode, the control RPC, and a clean stop.

``halo-exchange devnet`` (and ``make run``) land here. The node opens (or creates) its data directory,
enables exchange mode from its options through ``node_hooks.exchange_mode``, serves the control RPC on
127.0.0.1:55780, optionally produces a block every few seconds, and stops on the RPC ``stop()``, SIGINT
or SIGTERM: the RPC server closes, the hooks hear ``on_node_stop``, and the DB is closed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Sequence

from halo_exchange.chain.params import DEVNET
from node_hooks import HookDispatcher
from node_hooks.devnode.node import DevNode
from node_hooks.exchange_mode import enable_exchange_mode

log = logging.getLogger(__name__)

DEFAULT_DATADIR = Path("data") / "devnet"
DEFAULT_RPC_PORT = 55780


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datadir", type=Path, default=DEFAULT_DATADIR, help="data directory (default: %(default)s)")
    parser.add_argument("--rpc-host", default="127.0.0.1", help="control RPC address (default: %(default)s)")
    parser.add_argument("--rpc-port", type=int, default=DEFAULT_RPC_PORT, help="control RPC port (default: %(default)s)")
    parser.add_argument("--interval", type=int, default=DEVNET.peg_interval,
                        help="blocks per peg cycle, for a new chain (default: %(default)s)")
    parser.add_argument("--frozen-time", type=int, default=DEVNET.frozen_time,
                        help="**F** lock in seconds, for a new chain (default: %(default)s)")
    parser.add_argument("--vfrozen-time", type=int, default=DEVNET.vfrozen_time,
                        help="**V** lock in seconds, for a new chain (default: %(default)s)")
    parser.add_argument("--mine-every", type=float, default=0.0, metavar="SECONDS",
                        help="produce a block every SECONDS (default: only on the RPC generate)")
    parser.add_argument("--api-port", type=int, default=55779, help="exchange XML-RPC API port (default: %(default)s)")
    parser.add_argument("--no-exchange", action="store_true", help="run without exchange mode")


def run(args: argparse.Namespace) -> int:
    """Run the node until it is asked to stop; return the process exit code."""
    from node_hooks.devnode.rpc import ControlRPCServer  # the RPC layer is only needed by a running node

    params = DEVNET.with_changes(
        peg_interval=args.interval, frozen_time=args.frozen_time, vfrozen_time=args.vfrozen_time
    )
    dispatcher = HookDispatcher()
    service = enable_exchange_mode(dispatcher, {
        "exchange": not args.no_exchange,
        "exchange_datadir": Path(args.datadir) / "exchange",
        "exchange_api_port": args.api_port,
    })
    node = DevNode(args.datadir, params, dispatcher=dispatcher)
    if service is not None:
        service.shutdown = node.request_stop  # the API's ShutDown stops this process cleanly
    if node.params != params:
        log.warning("using the parameters stored in %s (interval %d), not the options", args.datadir, node.params.peg_interval)
    server = ControlRPCServer(node, host=args.rpc_host, port=args.rpc_port)
    try:
        node.start()
        server.start()
        log.info("devnet node at height %d, control RPC on %s", node.block_count(), server.url)
        _install_signal_handlers(node)
        while not node.wait_for_stop(args.mine_every or None):
            if args.mine_every:
                node.generate(1)
    finally:
        server.close()
        node.close()
        log.info("devnet node stopped")
    return 0


def _install_signal_handlers(node: DevNode) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: node.request_stop())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="halo-devnet", description="Run the devnet Halo-style node.")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Running the devnet node as a process: options, exchange mode, the control RPC, and a clean stop.

``halo-exchange devnet`` (and ``make run``) land in :func:`start`: it reads the configuration (defaults,
then ``<datadir>/halo-exchange.conf`` or ``--config FILE``, then the flags given; ``halo_exchange.config``),
sets up logging, and runs the node. The node opens (or creates) its data directory, enables exchange mode
through ``node_hooks.exchange_mode``, serves the control RPC, optionally produces a block every few seconds,
and stops on the RPC ``stop()``, SIGINT or SIGTERM: the RPC server closes, the hooks hear ``on_node_stop``,
and the DB is closed. It also stops by itself, exit code 1, when its chain DB refuses a write (a full disk, an
I/O error): the block it was writing is left out whole, and the log and the refused call name the cause.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Sequence

from halo_exchange import __version__
from halo_exchange.chain.params import DEVNET
from halo_exchange.config import (
    SETTING_NAMES,
    ConfigError,
    DevnodeConfig,
    describe,
    load_devnode_config,
)
from halo_exchange.logs import configure_logging
from node_hooks import HookDispatcher, process
from node_hooks.devnode.errors import NodeStopped
from node_hooks.devnode.node import DevNode
from node_hooks.exchange_mode import enable_exchange_mode
from node_hooks.preflight import StartupRefused, check_datadir_free, check_port_free, port_refusal
from node_hooks.signals import StopSignals

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The devnet's flags. None has a default of its own: a flag not given leaves the config file's value
    (or the default in halo_exchange.config, which the help quotes)."""
    flag = process.add_node_flags(parser, DevnodeConfig)
    node = DevnodeConfig
    flag("--rpc-host", help=f"control RPC address (default: {node.rpc_host})")
    flag("--rpc-port", help=f"control RPC port (default: {node.rpc_port})")
    flag("--rpc-no-auth", action="store_true", help="serve the control RPC without authentication (default: "
                                                    "rpc_user/rpc_password, else the cookie file DATADIR/.cookie)")
    flag("--interval", help=f"blocks per peg cycle, for a new chain (default: {node.interval})")
    flag("--frozen-time", help=f"lock in seconds of an F-notary (reserve) freeze, for a new chain "
                               f"(default: {node.frozen_time})")
    flag("--vfrozen-time", help=f"lock in seconds of a V-notary (liquid) freeze, for a new chain "
                                f"(default: {node.vfrozen_time})")
    flag("--mine-every", metavar="SECONDS", help="produce a block every SECONDS (default: only on the RPC generate)")
    flag("--bitbayd-rpc-host", help=f"bitbayd-compatible JSON-RPC address (default: {node.bitbayd_rpc_host})")
    flag("--bitbayd-rpc-port", help="bitbayd-compatible JSON-RPC port (default: not served; docs/bitbayd-rpc.md)")
    flag("--bitbayd-rpc-user", help="its HTTP basic auth user (with --bitbayd-rpc-password; default: no auth)")
    flag("--bitbayd-rpc-password", help="its HTTP basic auth password")
    flag("--no-exchange", action="store_true", help="run without exchange mode")


def config_from_args(args: argparse.Namespace) -> DevnodeConfig:
    """The configuration the parsed command line asks for (ConfigError when it is wrong)."""
    return process.config_from_args(args, SETTING_NAMES, load_devnode_config)


def start(args: argparse.Namespace) -> int:
    """Configure, set up logging and run the node; a bad configuration is one line on stderr and exit code 2."""
    return process.start(args, _configure, run)


def _configure(args: argparse.Namespace) -> DevnodeConfig:
    config = config_from_args(args)
    if (config.bitbayd_rpc_user is None) != (config.bitbayd_rpc_password is None):
        raise ConfigError("bitbayd_rpc_user and bitbayd_rpc_password: set both (basic auth) or neither")
    if (config.rpc_user is None) != (config.rpc_password is None):
        raise ConfigError("rpc_user and rpc_password: set both (basic auth) or neither (the cookie file)")
    configure_logging(config.log_level, config.log_file)
    return config


def run(config: DevnodeConfig) -> int:
    """Run the node until it is asked to stop; return the process exit code (2 when it cannot start, or when
    exchange mode, enabled, cannot: one line on stderr says why and which option changes it)."""
    from node_hooks.devnode.bitbayd_rpc import BitbaydRPCServer  # the RPC layers are only needed by a running node
    from node_hooks.devnode.rpc import COOKIE_FILE_NAME, ControlRPCServer, new_cookie, remove_cookie, write_cookie

    log.info("halo-exchange %s devnet starting, config file %s: %s", __version__, config.config_file or "(none)",
             describe(config))
    try:
        # Before anything is written (a new data dir, its genesis block): the data dir is ours, the ports free.
        check_datadir_free(config.datadir)
        check_port_free(config.rpc_host, config.rpc_port, "--rpc-port")
        if config.bitbayd_rpc_port is not None:
            check_port_free(config.bitbayd_rpc_host, config.bitbayd_rpc_port, "--bitbayd-rpc-port")
        if not config.no_exchange:
            check_port_free(config.exchange.api_host, config.exchange.api_port, "--api-port")
    except StartupRefused as exc:
        return _refuse(str(exc))
    params = DEVNET.with_changes(
        peg_interval=config.interval, frozen_time=config.frozen_time, vfrozen_time=config.vfrozen_time
    )
    dispatcher = HookDispatcher()
    service = enable_exchange_mode(dispatcher, None if config.no_exchange else config.exchange)
    try:
        node = process.open_node(lambda: DevNode(config.datadir, params, dispatcher=dispatcher), config.datadir)
    except StartupRefused as exc:
        return _refuse(str(exc))
    process.let_exchange_stop(service, node)
    if node.params != params:
        log.warning("using the parameters stored in %s (interval %d), not the options", config.datadir,
                    node.params.peg_interval)
    if config.rpc_no_auth:
        credentials, auth = None, "no authentication (--rpc-no-auth)"
    elif config.rpc_user is not None:
        credentials, auth = f"{config.rpc_user}:{config.rpc_password}", "basic auth, rpc_user"
    else:
        credentials, auth = new_cookie(), f"basic auth, cookie {config.datadir / COOKIE_FILE_NAME}"
    cookie = credentials is not None and config.rpc_user is None
    server: ControlRPCServer | None = None
    bitbayd: BitbaydRPCServer | None = None
    signals = _install_signal_handlers(node)
    try:
        try:
            server = ControlRPCServer(node, host=config.rpc_host, port=config.rpc_port, credentials=credentials)
            if config.bitbayd_rpc_port is not None:
                bitbayd = BitbaydRPCServer(node, host=config.bitbayd_rpc_host, port=config.bitbayd_rpc_port,
                                           user=config.bitbayd_rpc_user, password=config.bitbayd_rpc_password)
        except OSError as exc:  # taken since the check
            port, option = ((config.rpc_port, "--rpc-port") if server is None
                            else (config.bitbayd_rpc_port, "--bitbayd-rpc-port"))
            host = config.rpc_host if server is None else config.bitbayd_rpc_host
            return _refuse(str(port_refusal(host, port or 0, option, exc)))
        node.start()
        if cookie:
            write_cookie(config.datadir, credentials)
        server.start()
        log.info("devnet node at height %d, control RPC on %s (%s)", node.block_count(), server.url, auth)
        if bitbayd is not None:
            bitbayd.start()
            log.info("bitbayd-compatible JSON-RPC on %s%s", bitbayd.url,
                     " (basic auth)" if config.bitbayd_rpc_user is not None else " (no auth)")
        while not node.wait_for_stop(config.mine_every or None):
            if config.mine_every:
                with contextlib.suppress(NodeStopped):  # its chain DB failed: the loop ends on the next turn
                    node.generate(1)
        signals.log_received()
    finally:
        if bitbayd is not None:
            bitbayd.close()
        if server is not None:
            server.close()
        if cookie:
            remove_cookie(config.datadir)
        node.close()
        log.info("devnet node stopped")
    if service is not None and service.start_error is not None:
        return _refuse(service.start_error)
    if node.failure is not None:  # logged when it happened
        print(node.failure, file=sys.stderr)
        return 1
    return 0


def _refuse(reason: str) -> int:
    return process.refuse(reason, log)


def _install_signal_handlers(node: DevNode) -> StopSignals:
    return StopSignals(node.request_stop).install()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="halo-devnet", description="Run the devnet Halo-style node.")
    add_arguments(parser)
    return start(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

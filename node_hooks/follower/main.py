"""Running the follower node as a process: ``halo-exchange node --datadir DIR --bitbayd URL``.

:func:`start` reads the configuration (defaults, then ``<datadir>/halo-exchange.conf`` or ``--config FILE``,
sections ``[node]`` and ``[exchange]``, then the flags given; ``halo_exchange.config.NodeConfig``), sets up
logging, and runs the node: it opens (or creates) the chain DB, enables exchange mode through
``node_hooks.exchange_mode``, follows bitbayd, and stops on SIGINT, SIGTERM or the API's ShutDown: the
hooks hear ``on_node_stop`` and the DB is closed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from halo_exchange import __version__
from halo_exchange.config import (
    NODE_SETTING_NAMES,
    ConfigError,
    NodeConfig,
    describe,
    load_node_config,
)
from halo_exchange.logs import configure_logging
from node_hooks import HookDispatcher, process
from node_hooks.exchange_mode import enable_exchange_mode
from node_hooks.follower.errors import FollowerError
from node_hooks.follower.node import FollowerNode
from node_hooks.follower.status_file import STATUS_FILE_NAME, StatusWriter
from node_hooks.preflight import StartupRefused, check_datadir_free, check_port_free
from node_hooks.signals import StopSignals

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The follower's flags; a flag not given leaves the config file's value (or the default)."""
    flag = process.add_node_flags(parser, NodeConfig)
    node = NodeConfig
    flag("--bitbayd", dest="bitbayd_url", metavar="URL",
         help="bitbayd's JSON-RPC, http://[user:password@]host[:port]/ (or bitbayd_url in [node])")
    flag("--start-height", metavar="H", help="first block of a new data dir (default: 0); older outputs are "
                                             "unknown to the exchange (docs/follower.md)")
    flag("--network", help=f"mainnet, testnet or devnet, checked against bitbayd (default: {node.network})")


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    return process.config_from_args(args, NODE_SETTING_NAMES, load_node_config)


def start(args: argparse.Namespace) -> int:
    """Configure, set up logging and run; a bad configuration is one line on stderr and exit code 2."""
    return process.start(args, _configure, run)


def _configure(args: argparse.Namespace) -> NodeConfig:
    config = config_from_args(args)
    if not config.bitbayd_url:
        raise ConfigError("no bitbayd to follow: give --bitbayd URL, or bitbayd_url in [node]")
    configure_logging(config.log_level, None)
    return config


def run(config: NodeConfig) -> int:
    """Run the follower until it is asked to stop; return the process exit code (2 when it cannot start, or
    when exchange mode cannot: one line on stderr says why and which option changes it)."""
    log.info("halo-exchange %s node starting, following %s, config file %s: %s", __version__,
             config.bitbayd_url_shown, config.config_file or "(none)", describe(config).replace(
                 f"bitbayd_url={config.bitbayd_url}", f"bitbayd_url={config.bitbayd_url_shown}"))
    try:
        # Before anything is written (a new data dir, its chain DB): the data dir is ours, the API port free.
        check_datadir_free(config.datadir)
        check_port_free(config.exchange.api_host, config.exchange.api_port, "--api-port")
    except StartupRefused as exc:
        return _refuse(str(exc))
    dispatcher = HookDispatcher()
    service = enable_exchange_mode(dispatcher, config.exchange)
    try:
        node = process.open_node(lambda: FollowerNode(
            config.datadir, config.bitbayd_url or "", network=config.network, start_height=config.start_height,
            user=config.bitbayd_user, password=config.bitbayd_password, cookie_file=config.bitbayd_cookie_file,
            dispatcher=dispatcher,
        ), config.datadir)
    except (FollowerError, ValueError, StartupRefused) as exc:
        return _refuse(str(exc))
    process.let_exchange_stop(service, node)
    status = StatusWriter(lambda: node.status().to_dict(), Path(config.datadir) / STATUS_FILE_NAME)
    signals = StopSignals(node.request_stop).install()
    try:
        node.start()
        status.start()
        log.info("follower node in %s at height %d, following %s", config.datadir, node.reader.height(), node.url)
        node.wait_for_stop()
        signals.log_received()
    finally:
        node.close()
        status.stop()
        log.info("follower node stopped")
    if service is not None and service.start_error is not None:
        return _refuse(service.start_error)
    return 0


def _refuse(reason: str) -> int:
    return process.refuse(reason, log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="halo-node", description="Run the follower node beside bitbayd.")
    add_arguments(parser)
    return start(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

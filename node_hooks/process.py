"""What the two node processes (``halo-exchange devnet``: ``devnode/main.py``; ``halo-exchange node``:
``follower/main.py``) do alike around their node: the flags they share, reading the configuration from the
parsed flags, starting (a private umask; a wrong configuration is one line on stderr and exit code 2),
refusing to start (one line on stderr, exit code 2), opening the node's data dir (another process on it is a
refusal), and letting exchange mode stop the node (the API's ShutDown, or a failed start)."""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Protocol, TypeVar

import plyvel

from halo_exchange.config import ConfigError
from halo_exchange.files import private_umask
from node_hooks.exchange_mode import add_exchange_flags
from node_hooks.preflight import StartupRefused, is_lock_error

Config = TypeVar("Config")
Node = TypeVar("Node", bound="Stoppable")


class Stoppable(Protocol):
    def request_stop(self) -> None: ...


def add_node_flags(parser: argparse.ArgumentParser, config: Any) -> Callable[..., Any]:
    """Add the flags every node process has (exchange mode's and ``--datadir``, their defaults quoted from
    ``config``, its configuration class); return the adder for its own. No flag has a default of its own: one
    not given leaves the config file's value (or the default)."""
    flag = partial(parser.add_argument, default=argparse.SUPPRESS)
    add_exchange_flags(flag, config.log_level)
    flag("--datadir", metavar="DIR", help=f"data directory (default: {config.datadir})")
    return flag


def config_from_args(args: argparse.Namespace, names: Collection[str],
                     load: Callable[[Mapping[str, object], Any], Config]) -> Config:
    """The configuration ``load`` makes of the flags given (those in ``names``) and ``--config``."""
    given = vars(args)
    return load({name: given[name] for name in names if name in given}, given.get("config"))


def start(args: argparse.Namespace, configure: Callable[[argparse.Namespace], Config],
          run: Callable[[Config], int]) -> int:
    """Configure (a ConfigError is one line on stderr and exit code 2), then run; returns the exit code."""
    private_umask()  # data dir 0700, files 0600 (keys, wallet, cookie, LevelDB files, log file)
    try:
        config = configure(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return run(config)


def refuse(reason: str, log: logging.Logger) -> int:
    """The node cannot start (or run without the exchange it was asked for): one line on stderr, exit code 2."""
    log.error("cannot start: %s", reason)
    print(reason, file=sys.stderr)
    return 2


def open_node(make: Callable[[], Node], datadir: Path) -> Node:
    """The node ``make`` opens; StartupRefused when another process opened the data dir since the check."""
    try:
        return make()
    except plyvel.Error as exc:
        if is_lock_error(exc):
            raise StartupRefused(f"a node is already running on {datadir}") from None
        raise


def let_exchange_stop(service: Any, node: Stoppable) -> None:
    """Exchange mode (``service``, None when it is off) may stop the node: its API's ShutDown stops the
    process cleanly, and so does a failed start (the node's exit code then says so)."""
    if service is not None:
        service.shutdown = node.request_stop
        service.start_failed = lambda reason: node.request_stop()


__all__ = ["add_node_flags", "config_from_args", "let_exchange_stop", "open_node", "refuse", "start"]

"""Turns exchange mode on in a node: takes the node's configuration and registers the exchange plugin.

A node calls :func:`enable_exchange_mode` once at start-up with its dispatcher and either an
:class:`~halo_exchange.config.ExchangeConfig` (the devnet builds one from its config file and flags) or its
own key/value configuration, as a production node reads it from its config file. There ``exchange = 1``
turns exchange mode on, ``exchange_datadir`` says where the plugin keeps its DB, and every setting of
``ExchangeConfig`` is ``exchange_<name>`` (``exchange_api_port``, ``exchange_switch_interval``, ...), except
the deposit confirmations, which keep Halo's name ``exchangeconfirmations``.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping

from halo_exchange.config import CONFIG_FILE_NAME, SETTING_NAMES, ConfigError, ExchangeConfig, parse_setting
from halo_exchange.service import ExchangeService
from node_hooks import HookDispatcher

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
# Node configuration key -> ExchangeConfig field.
NODE_KEYS = {
    ("exchangeconfirmations" if f == "confirmations" else f"exchange_{f}"): f
    for f in (f.name for f in fields(ExchangeConfig)) if f in SETTING_NAMES
}


def add_exchange_flags(flag: Callable[..., Any], log_level_default: str) -> None:
    """The flags every node command shares: its config file and the exchange mode it hosts (the devnet and the
    follower declare them here once, so their help and names cannot drift apart)."""
    exchange = ExchangeConfig
    flag("--config", metavar="FILE", help=f"config file (default: DATADIR/{CONFIG_FILE_NAME}, if it exists)")
    flag("--api-host", help=f"exchange XML-RPC API address (default: {exchange.api_host})")
    flag("--api-port", help=f"exchange XML-RPC API port (default: {exchange.api_port})")
    flag("--confirmations", help=f"confirmations before a deposit is credited, until ExchangeSettings changes "
                                 f"them (default: {exchange.confirmations})")
    flag("--exec-pubkey", metavar="HEX", help="public key (hex SEC1) whose signed commands the API(command) exec "
                                              "hook runs; `halo-exchange exec-keygen` makes a key pair (default: "
                                              "none, API answers False)")
    flag("--backup-dir", metavar="DIR", help="journal every committed exchange batch to DIR before answering, "
                                             "with periodic snapshots (default: no backup; docs/backup.md)")
    flag("--log-level", metavar="LEVEL", help=f"DEBUG, INFO, WARNING or ERROR (default: {log_level_default})")


def exchange_mode_requested(config: Mapping[str, object]) -> bool:
    """True when the node configuration asks for exchange mode (``exchange = 1`` and friends)."""
    value = config.get("exchange", False)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def exchange_config_from_node(config: Mapping[str, object]) -> ExchangeConfig:
    """The exchange settings in a node's configuration; a bad or unknown ``exchange_*`` key is a ConfigError
    naming it. A value of None keeps the default, except for ``exchange_api_port``, where it means no API."""
    datadir = config.get("exchange_datadir")
    if not datadir:
        raise ConfigError("exchange mode needs exchange_datadir in the node configuration")
    settings = {}
    for key, value in config.items():
        if key in NODE_KEYS and (value is not None or key == "exchange_api_port"):
            settings[NODE_KEYS[key]] = parse_setting(NODE_KEYS[key], value, f"node configuration: {key} =")
        elif key.startswith("exchange_") and key not in NODE_KEYS and key != "exchange_datadir":
            raise ConfigError(f"node configuration: unknown key {key!r} (exchange keys: {', '.join(NODE_KEYS)})")
    return ExchangeConfig(exchange_dir=Path(str(datadir)), **settings)


def enable_exchange_mode(
    dispatcher: HookDispatcher, config: ExchangeConfig | Mapping[str, object] | None
) -> ExchangeService | None:
    """Register the exchange plugin when the configuration asks for it; return it (or None).

    An ExchangeConfig always asks for it; None never does; a node's key/value configuration does with
    ``exchange = 1`` (see the module docstring for its keys).
    """
    if config is None:
        return None
    if not isinstance(config, ExchangeConfig):
        if not exchange_mode_requested(config):
            return None
        config = exchange_config_from_node(config)
    service = ExchangeService(config)
    dispatcher.register(service)
    log.info("exchange mode enabled, data in %s", config.exchange_dir)
    return service

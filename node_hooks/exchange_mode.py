"""Turns exchange mode on in a node: reads the node's configuration and registers the exchange plugin.

A node calls :func:`enable_exchange_mode` once at start-up with its dispatcher and configuration. With
``exchange = 1`` it builds :class:`halo_exchange.service.ExchangeService` on ``exchange_datadir`` (the
plugin's own DB, beside the node's data) and registers it as a hook; otherwise it does nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from halo_exchange.service import DEFAULT_SWITCH_INTERVAL, ExchangeService
from node_hooks import HookDispatcher

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


def exchange_mode_requested(config: Mapping[str, object]) -> bool:
    """True when the node configuration asks for exchange mode (``exchange = 1`` and friends)."""
    value = config.get("exchange", False)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def enable_exchange_mode(dispatcher: HookDispatcher, config: Mapping[str, object]) -> ExchangeService | None:
    """Register the exchange plugin when the configuration asks for it; return it (or None).

    Configuration: ``exchange`` (on/off), ``exchange_datadir`` (required when on), ``exchangeconfirmations``
    (7..15, default 7), ``exchange_api_host`` / ``exchange_api_port`` (127.0.0.1:55779; port None: no API),
    ``exchange_switch_interval`` (seconds, default 0.001: how long a thread busy in Python, such as the node's
    block processing, may hold the GIL before the API gets a turn).
    """
    if not exchange_mode_requested(config):
        return None
    datadir = config.get("exchange_datadir")
    if not datadir:
        raise ValueError("exchange mode needs exchange_datadir in the node configuration")
    port = config.get("exchange_api_port", 55779)
    switch_interval = float(config.get("exchange_switch_interval", DEFAULT_SWITCH_INTERVAL))
    if not 0 < switch_interval <= 1:
        raise ValueError(f"exchange_switch_interval must be in (0, 1] seconds, not {switch_interval}")
    service = ExchangeService(
        Path(str(datadir)),
        confirmations=int(config.get("exchangeconfirmations", 7)),
        api_host=str(config.get("exchange_api_host", "127.0.0.1")),
        api_port=None if port is None else int(port),
        switch_interval=switch_interval,
    )
    dispatcher.register(service)
    log.info("exchange mode enabled, data in %s", datadir)
    return service

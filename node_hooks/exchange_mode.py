"""Turns exchange mode on in a node: reads the node's configuration and registers the exchange hook.

A node calls :func:`enable_exchange_mode` once at start-up with its dispatcher and configuration. With
``exchange = 1`` in the configuration it builds the exchange plugin and registers it; otherwise it does
nothing. Until the plugin itself lands (the ledger and API issues), the hook registered is a
:class:`~node_hooks.RecordingHook`, which proves the path from node to plugin end to end.
"""

from __future__ import annotations

import logging
from typing import Mapping

from node_hooks import HookDispatcher, NodeHook, RecordingHook

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
RECENT_EVENTS = 1000  # what the stand-in hook keeps


def exchange_mode_requested(config: Mapping[str, object]) -> bool:
    """True when the node configuration asks for exchange mode (``exchange = 1`` and friends)."""
    value = config.get("exchange", False)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def enable_exchange_mode(dispatcher: HookDispatcher, config: Mapping[str, object]) -> NodeHook | None:
    """Register the exchange hook when the configuration asks for it; return the hook (or None)."""
    if not exchange_mode_requested(config):
        return None
    hook = RecordingHook(limit=RECENT_EVENTS)
    dispatcher.register(hook)
    log.info("exchange mode enabled (recording hook until the exchange plugin lands)")
    return hook

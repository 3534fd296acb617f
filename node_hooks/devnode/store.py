"""The devnet node's chain store: :class:`node_hooks.chainstore.ChainStore`, whose refusals are also
:class:`~node_hooks.devnode.errors.DevnodeError` (so the control RPC maps them like any devnet refusal).
The writer itself is shared with the follower and lives in ``node_hooks/chainstore.py``."""

from __future__ import annotations

from node_hooks import chainstore
from node_hooks.chainstore import ChainStoreError, ConnectedBlock
from node_hooks.devnode.errors import DevnodeError

__all__ = ["ChainStore", "ChainStoreError", "ConnectedBlock", "DevnodeStoreError"]


class DevnodeStoreError(DevnodeError, ChainStoreError):
    """The devnet's chain store refused a change (see ChainStoreError)."""


class ChainStore(chainstore.ChainStore):
    """The shared chain store, raising :class:`DevnodeStoreError`."""

    error = DevnodeStoreError

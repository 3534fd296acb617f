"""The follower node: a Halo-style node that learns the chain from a bitbayd over its JSON-RPC, keeps it in
the node DB layout (docs/chain-layout.md) with the shared chain store, and hosts exchange mode through the
node hooks. ``halo-exchange node`` runs it; docs/follower.md is the operator's page.

* ``rpc.py``: the JSON-RPC client (keep-alive, batches, basic auth or cookie, typed errors);
* ``fetch.py``: fetching runs of blocks and the checks made before one is written;
* ``node.py``: :class:`FollowerNode` (follow and sender threads, reorgs, back-off, services);
* ``status.py``: :class:`FollowerStatus` and its states;
* ``main.py``: the command line.
"""

from node_hooks.follower.errors import (
    FollowerError,
    InconsistentUpstream,
    NetworkMismatch,
    RPCError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamUnreachable,
)
from node_hooks.follower.node import FollowerNode, params_for
from node_hooks.follower.rpc import BitbaydRPC
from node_hooks.follower.status import FollowerState, FollowerStatus

__all__ = [
    "BitbaydRPC", "FollowerError", "FollowerNode", "FollowerState", "FollowerStatus",
    "InconsistentUpstream", "NetworkMismatch", "RPCError", "UpstreamAuthError", "UpstreamError",
    "UpstreamProtocolError", "UpstreamUnreachable", "params_for",
]

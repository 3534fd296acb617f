"""Errors of the devnet node, each mapped to a stable control-RPC fault code by ``rpc.py``."""

from __future__ import annotations

from halo_exchange.errors import HaloExchangeError


class DevnodeError(HaloExchangeError):
    """Base of every deliberate devnet-node refusal."""


class NotFound(DevnodeError):
    """The block, transaction or output asked for is not in the active chain."""


class InvalidParameter(DevnodeError):
    """An argument is out of range or malformed (an address, a height, an amount)."""


class TxRejected(DevnodeError):
    """A transaction was refused; ``rule`` names the broken rule (``bad-signature``, ``P-O-4``, ...)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.detail = message


class WalletWriteFailed(DevnodeError):
    """The wallet could not store a new key (a full disk, an I/O error): no address was handed out, and the
    node stops (its DB takes no more writes it could lose)."""


class NodeStopped(DevnodeError):
    """The node is stopping or stopped and takes no more commands."""

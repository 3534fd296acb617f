"""Errors of the follower node: one hierarchy under :class:`~halo_exchange.errors.HaloExchangeError`.

* :class:`UpstreamError`: bitbayd could not be asked (down, refused the credentials, answered something that
  is not JSON-RPC). The follower retries with back-off and says so in its status; nothing is written.
* :class:`RPCError`: bitbayd answered with a JSON-RPC error ``(code, message)``; the codes are bitbayd's
  (``-5`` not found, ``-22`` decode failed / rejected, ``-1`` misc, ...; ../shared/reference/bitbayd-rpc.md).
* :class:`InconsistentUpstream`: bitbayd's answers disagree with each other or with the rules the follower
  checks. The follower stops following at that block, writes nothing of it, and stays stopped until an
  operator looks (status ``stopped-inconsistent``).
"""

from __future__ import annotations

from halo_exchange.errors import HaloExchangeError

# bitbayd's JSON-RPC error codes (rpcprotocol.h) that the follower tells apart.
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5  # "Block not found", "transaction already in block ..."
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22  # "TX decode failed", "TX rejected"
RPC_METHOD_NOT_FOUND = -32601


class FollowerError(HaloExchangeError):
    """Base of every deliberate follower error."""


class UpstreamError(FollowerError):
    """bitbayd could not be asked or did not answer JSON-RPC; retrying later may help."""


class UpstreamUnreachable(UpstreamError):
    """No answer from bitbayd (connection refused, reset or timed out). Is bitbayd running, with ``server=1``
    and its RPC port where the URL says?"""


class UpstreamAuthError(UpstreamError):
    """bitbayd refused the credentials (HTTP 401/403): check ``bitbayd_user``/``bitbayd_password`` against
    ``rpcuser``/``rpcpassword`` in bitbay.conf, or the cookie file."""


class UpstreamProtocolError(UpstreamError):
    """bitbayd's answer was not a JSON-RPC answer (not JSON, wrong shape, an id we did not ask)."""


class RPCError(FollowerError):
    """bitbayd answered with a JSON-RPC error: ``code`` and ``message`` as it sent them."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        super().__init__(f"{method + ': ' if method else ''}{message} (code {code})")
        self.code = code
        self.message = message
        self.method = method


class InconsistentUpstream(FollowerError):
    """bitbayd's answers about block ``height`` (``block_hash``, display hex) disagree: ``what`` says how.
    Nothing of that block was written; the follower stops following until restarted."""

    def __init__(self, height: int, block_hash: str, what: str) -> None:
        super().__init__(f"block {height} {block_hash or '?'}: {what}")
        self.height = height
        self.block_hash = block_hash
        self.what = what


class NetworkMismatch(FollowerError):
    """bitbayd follows another network than the configuration's ``network`` (or than this data dir's chain).
    Point the follower at the right bitbayd, or fix ``network``."""

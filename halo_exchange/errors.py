"""The one error hierarchy of halo-exchange.

Every error the package raises on purpose derives from :class:`HaloExchangeError`, so callers (the RPC
layer above all) can tell a documented refusal from a bug. Each class says, in its docstring, what a user
or operator should understand when they see it.
"""

from __future__ import annotations

import re


class HaloExchangeError(Exception):
    """Base of every deliberate halo-exchange error."""


class DecodeError(HaloExchangeError, ValueError):
    """Bytes or text could not be decoded: truncated, oversized, or not in any known format."""


class PegError(HaloExchangeError):
    """A peg operation was refused; the message follows bitbay-core's wording where the spec quotes it.

    Nothing the operation was given is modified when it raises.
    """


class PegCodecError(PegError, DecodeError):
    """A fractions vector, peglevel or pegdata blob could not be encoded or decoded."""


class TransferRuleError(PegError):
    """A transaction breaks the consensus fraction transfer rule (bitbay-core ``CalculateStandardFractions``).

    ``rule`` is bitbay-core's code for the broken rule, such as ``P-O-4`` (an output to a foreign address
    needs more liquidity than the inputs carry) or ``P-I-4`` (a frozen input is still locked).
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.detail = message


class CommandRefused(HaloExchangeError):
    """A command was refused before anything changed; the message says why, in the API's documented words.

    ``answer`` is what the API answers for it: the message itself, unless the call documents another value
    (``ExchangeSettings`` answers ``False`` for a commission out of range). The API's dispatcher puts it in
    the call's documented shape (a bare value, or ``[answer, ""]`` for the calls that answer pairs).
    """

    def __init__(self, message: str, answer: str | bool | None = None) -> None:
        super().__init__(message)
        self.answer: str | bool = message if answer is None else answer


class OperatorError(HaloExchangeError):
    """The operator channel (the exchange's local socket, ``<datadir>/exchange.sock``) could not serve a request."""


class OperatorUnreachable(OperatorError):
    """Nobody answers on the operator socket: the node is not running on that data dir, or it is still starting,
    or the socket is another's. Check the node's log, the ``--datadir`` (or ``--socket``) given, and that you run
    as the node's user (the socket is 0600)."""


class OperatorRefused(OperatorError):
    """The exchange answered the request with an error (an unknown command, bad arguments, or "internal error",
    whose details are in the node's log); the message is the exchange's."""


class UnknownOperatorCommand(OperatorRefused):
    """The exchange does not serve that operator command (an older version, or a feature it was built without)."""


def public_error(error: BaseException) -> str:
    """An error's message without file paths (an API answer names the cause, never where the files are)."""
    text = re.sub(r"(?<![\w.])/[^\s:,;()'\"]+", "<path>", str(error)).strip()
    return text or type(error).__name__


class BackupError(HaloExchangeError):
    """The backup cannot be written or read: its directory is full, read-only or damaged, or holds another
    chain's backup. The message names the cause; docs/backup.md says what to do for each."""


class RestoreRefused(BackupError):
    """``halo-exchange restore`` (or ``backup``) refused before changing anything: the node is running, the
    target exists, the backup is of another chain or a newer schema, or its journal misses batches."""

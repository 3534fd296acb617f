"""What the follower is doing, for the log, the ``status`` answer and tests: :class:`FollowerStatus`."""

from __future__ import annotations

import collections
import enum
from dataclasses import asdict, dataclass
from typing import Any


class FollowerState(enum.Enum):
    """The follower's state machine. ``stopped-inconsistent`` is final until the process is restarted."""

    STARTING = "starting"  # not yet in touch with bitbayd
    SYNCING = "syncing"  # behind bitbayd's tip, fetching blocks
    FOLLOWING = "following"  # at bitbayd's tip, polling for the next block
    UNREACHABLE = "upstream-unreachable"  # bitbayd does not answer; retrying with back-off
    INCONSISTENT = "stopped-inconsistent"  # bitbayd's answers disagreed; nothing more is written
    STOPPED = "stopped"  # the node was closed


@dataclass(frozen=True)
class FollowerStatus:
    """A snapshot of the follower: state, heights, sync speed, the last error, and cumulative counters since the
    node started (blocks and transactions it connected, seconds of its follow thread's RPC round trips and of
    its chain store writes; the rest of a sync's time is decoding and checks)."""

    state: FollowerState
    height: int  # our tip, -1 when the chain is empty
    first_height: int | None  # the lowest block held (the start height)
    upstream_height: int | None  # bitbayd's block count when last asked
    blocks_per_second: float
    eta_seconds: float | None  # until our tip reaches upstream_height at the current speed
    last_error: str
    since: float  # when the state last changed (the follower's clock)
    blocks_synced: int = 0  # blocks connected since start (a reorg's reconnected blocks count again)
    txs_synced: int = 0  # their transactions
    rpc_seconds: float = 0.0  # in the follow thread's JSON-RPC round trips (polls and fetches)
    store_seconds: float = 0.0  # in chain store writes (connect batches, synced)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out


class RateMeter:
    """Blocks per second over the last ``window`` seconds of connects."""

    def __init__(self, window: float = 30.0) -> None:
        self._window = window
        self._points: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, now: float, height: int) -> None:
        self._points.append((now, height))
        while len(self._points) > 2 and now - self._points[0][0] > self._window:
            self._points.popleft()

    def rate(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, h0), (t1, h1) = self._points[0], self._points[-1]
        return (h1 - h0) / (t1 - t0) if t1 > t0 else 0.0

"""Chain parameters: peg interval, freeze times, rewards, fees and vote addresses of one network.

The node stores its parameters in its DB (``layout.PARAMS``) so that the plugin, which reads that DB,
always agrees with the node about cycles and lock times. Mainnet and testnet values are bitbay-core's
(peg-spec §1.1, §1.12, §2.1); the devnet keeps mainnet's addresses and rules with a short peg interval and
configurable lock times, so tests can cross cycles and lock expiries in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from halo_exchange.errors import DecodeError

COIN = 100_000_000
DAY = 86_400


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Everything about a network that consensus and the exchange depend on."""

    network: str
    peg_interval: int
    frozen_time: int  # **F** lock, seconds after the block time
    vfrozen_time: int  # **V** lock
    block_spacing: int = 64
    stake_reward: int = 20 * COIN
    fee_per_input_output: int = 5000  # minimum fee is this times (inputs + outputs)
    peg_start_height: int = 0
    genesis_time: int = 1_700_000_000
    vote_inflate: str = "bNyZrPLQAMPvYedrVLDcBSd8fbLdNgnRPz"
    vote_deflate: str = "bNyZrP2SbrV6v5HqeBoXZXZDE2e4fe6STo"
    vote_nochange: str = "bNyZrPeFFNP6GFJZCkE82DDN7JC4K5Vrkk"

    def __post_init__(self) -> None:
        if self.peg_interval <= 0:
            raise ValueError("peg_interval must be positive")
        if min(self.frozen_time, self.vfrozen_time, self.block_spacing) < 0:
            raise ValueError("times cannot be negative")

    @property
    def vote_addresses(self) -> tuple[str, str, str]:
        """(inflate, deflate, nochange), the order of vote counters everywhere."""
        return (self.vote_inflate, self.vote_deflate, self.vote_nochange)

    def with_changes(self, **changes: Any) -> ChainParams:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainParams:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DecodeError(f"unknown chain parameters: {sorted(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"bad chain parameters: {exc}") from exc


MAINNET = ChainParams(network="mainnet", peg_interval=200, frozen_time=30 * DAY, vfrozen_time=120 * DAY)
TESTNET = ChainParams(network="testnet", peg_interval=20, frozen_time=DAY, vfrozen_time=4 * DAY,
                      vote_inflate="musA7Qzr98xjJH8e8BQBmWFkDMVBK63cCR",
                      vote_deflate="moHwuGzcwREF1kcomvJXzxQ6BVAnEQWXsC",
                      vote_nochange="n4qKmAngtBJo5Pbu9FNy9jwwThThgjDAVH",
                      peg_start_height=7000)
# Devnet: mainnet rules and addresses, 20-block cycles, lock times of minutes instead of days.
DEVNET = ChainParams(network="devnet", peg_interval=20, frozen_time=30 * 64, vfrozen_time=120 * 64)

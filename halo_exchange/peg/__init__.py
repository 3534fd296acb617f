"""Pure peg arithmetic, bit-exact with bitbay-core: fractions, levels, pegdata, votes, pegops, transfers.

Nothing here does I/O or knows about storage, the network or the exchange's users; ``chain`` and
``ledger`` build on it. The public names below are a contract other code and conformance checks use.
Spec: reference/peg-spec.md §1-§3.
"""

from halo_exchange.errors import PegCodecError, PegError, TransferRuleError
from halo_exchange.peg.arith import ratio, tdiv
from halo_exchange.peg.fractions import (
    MARKS,
    NOTARY_C,
    NOTARY_F,
    NOTARY_L,
    NOTARY_V,
    PEG_RATE,
    PEG_SIZE,
    STD,
    VALUE,
    Fractions,
)
from halo_exchange.peg.level import PegLevel
from halo_exchange.peg.pegdata import PegData
from halo_exchange.peg.votes import MAX_SUPPLY_INDEX, cycle_of, next_supply_index, vote_weight

__all__ = [
    "MARKS",
    "MAX_SUPPLY_INDEX",
    "NOTARY_C",
    "NOTARY_F",
    "NOTARY_L",
    "NOTARY_V",
    "PEG_RATE",
    "PEG_SIZE",
    "STD",
    "VALUE",
    "Fractions",
    "PegCodecError",
    "PegData",
    "PegError",
    "PegLevel",
    "TransferRuleError",
    "cycle_of",
    "next_supply_index",
    "ratio",
    "tdiv",
    "vote_weight",
]

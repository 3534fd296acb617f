"""Time to build, check and sign one liquid payout batch: 300 payees from 50 coins, valid at two supplies
(target: under 2 s). The figure is seconds per batch, the median of several runs."""

from __future__ import annotations

import hashlib
import statistics
import time

from halo_exchange.chain.keys import MAINNET, PrivateKey
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint
from halo_exchange.ledger.payout import BatchPlan, Coin, Payee, build_batch, sign_batch
from halo_exchange.peg import Fractions
from halo_exchange.peg.transfer import MAINNET_FREEZE_TIMES

SUPPLY = 100
PAYEES = 300
COINS = 50
WALLET_KEYS = 5


def _setup() -> tuple[BatchPlan, list[Coin], dict[str, PrivateKey]]:
    keys = [PrivateKey.from_int(10_000 + i) for i in range(WALLET_KEYS)]
    by_address = {k.public_key().address(): k for k in keys}
    addresses = list(by_address)
    coins = []
    for n in range(COINS):
        value = (150 + n) * 10**8  # 150 .. 199 BAY, standard splits: the batch needs almost all of them
        address = addresses[n % WALLET_KEYS]
        coins.append(Coin(OutPoint(hashlib.sha256(b"coin%d" % n).digest(), 0), address, value,
                          Fractions.std(value), address_to_script(address)))
    payees = [Payee(PrivateKey.from_int(50_000 + i).public_key().address(), 10**9 + i) for i in range(PAYEES)]
    plan = BatchPlan(style="liquid", payees=payees, fee_account=PrivateKey.from_int(99).public_key().address(),
                     commission=PAYEES * 10**7, change_address=addresses[0], master_id=bytes(range(16)),
                     supplies=(SUPPLY, SUPPLY + 3), block_time=1_700_000_000, freeze_times=MAINNET_FREEZE_TIMES,
                     network=MAINNET)
    return plan, coins, by_address


def _once(plan: BatchPlan, coins: list[Coin], keys: dict[str, PrivateKey]) -> tuple[float, int]:
    start = time.perf_counter()
    built = build_batch(plan, coins)  # build_batch checks the batch at both supplies before returning it
    sign_batch(built, keys.__getitem__)
    return time.perf_counter() - start, len(built.inputs)


def run(runs: int = 5) -> list[tuple[str, float, str]]:
    """Rows of (operation, median seconds, note)."""
    plan, coins, keys = _setup()
    timings = [_once(plan, coins, keys) for _ in range(runs)]
    seconds = statistics.median(t for t, _ in timings)
    inputs = timings[0][1]
    return [("payout batch 300 liquid", seconds,
             f"s per batch (target < 2): build, check at 2 supplies, sign {inputs} of {COINS} coins")]


if __name__ == "__main__":
    for name, figure, note in run():
        print(f"{name:<28} {figure:>14.3f}  {note}")

"""Time of `halo-exchange recover` for 10,000 users: the median of 3 runs of the whole command (input checked,
keys imported, the UTXO set rescanned, deposits validated against the chain, the book rebuilt, one batch
written and renamed into place).

The chain is built cheaply: a devnet node makes its genesis and a few blocks, then one synthetic transaction per
user paying that user's exchange address (a deposit) and 4 more outputs to foreign addresses each (the rest of
the UTXO set, 50,000 outputs in all) are written straight into its DB through the layout's codecs, as a block
would leave them. Each user's recorded balance is the next user's deposit at the book's supply, so every user
has both a debit into the pool and a credit out of it.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import plyvel

from halo_exchange.chain import layout
from halo_exchange.chain.keys import DEVNET, PrivateKey
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import OutPoint, Transaction, TxIn, TxOut
from halo_exchange.cli import run_recover
from halo_exchange.engine import EXCHANGE_BUFFER
from halo_exchange.peg.fractions import Fractions

USERS = 10_000
FOREIGN_PER_USER = 4


def _build(root: Path, users: int) -> tuple[Path, list[str]]:
    """A node DB with ``users`` deposits among ``users × 5`` outputs, and the record files; (datadir, files)."""
    from node_hooks.devnode.node import DevNode

    datadir = root / "node"
    node = DevNode(datadir)
    node.generate(25)
    node.close()
    db = plyvel.DB(str(datadir / "chain"), create_if_missing=False, compression=None)
    _, tip_hash = layout.decode_tip(db.get(layout.TIP))
    supply = layout.BlockRecord.unpack(db.get(layout.block_key(tip_hash))).peg.supply + EXCHANGE_BUFFER
    # The deposits sit in block 1: confirmed many times over at the tip, so all of them count.
    height, block_hash = 1, db.get(layout.height_key(1))
    foreign = [address_to_script(PrivateKey.from_int(900_000 + i).public_key().address(DEVNET)) for i in range(16)]
    wifs, deposits, values = [], [], []
    with db.write_batch() as batch:
        for u in range(users):
            key = PrivateKey.from_int(1_000_000 + u)
            wifs.append(key.to_wif(DEVNET))
            value = (1 + u % 97) * 10**8 + u
            values.append(value)
            outputs = [TxOut(value, address_to_script(key.public_key().address(DEVNET)))]
            outputs += [TxOut(10**7 + j, foreign[(u + j) % len(foreign)]) for j in range(FOREIGN_PER_USER)]
            tx = Transaction(1, 1_700_000_000, (TxIn(OutPoint(u.to_bytes(32, "little"), 0)),), tuple(outputs))
            txid = tx.hash
            batch.put(layout.tx_key(txid), layout.TxRecord(height, block_hash, 1 + u, tx.serialize()).pack())
            for n, out in enumerate(outputs):
                batch.put(layout.utxo_key(txid, n), layout.UtxoRecord(out.value, out.script_pubkey, height,
                                                                      1_700_000_000).pack())
                batch.put(layout.fractions_key(txid, n), Fractions.std(out.value).pack())
            deposits.append(f"user{u:05d},{OutPoint(txid, 0).txid_hex}:0")
    db.close()
    files = root / "records"
    files.mkdir()
    lines = ["user,liquid,reserve"]
    for u in range(users):
        fractions = Fractions.std(values[(u + 1) % users])
        lines.append(f"user{u:05d},{fractions.high(supply)},{fractions.low(supply)}")
    (files / "balances.csv").write_text("\n".join(lines) + "\n")
    (files / "keys.txt").write_text("\n".join(wifs) + "\n")
    (files / "deposits.csv").write_text("user,txid:n\n" + "\n".join(deposits) + "\n")
    return datadir, [str(files / name) for name in ("balances.csv", "keys.txt", "deposits.csv")]


def _once(datadir: Path, files: list[str], exchange: Path) -> float:
    args = argparse.Namespace(datadir=datadir, chain_db=None, exchange_db=exchange, balances=Path(files[0]),
                              keys=Path(files[1]), deposits=Path(files[2]), dry_run=False, force=False,
                              accept_short=False, cover_reserve_with_liquid=False)
    out = io.StringIO()
    import contextlib

    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = run_recover(args, stderr=io.StringIO())
    seconds = time.perf_counter() - start
    if code != 0 or f"{USERS} restored exactly" not in out.getvalue():
        raise AssertionError(out.getvalue())
    return seconds


def run(runs: int = 3, users: int = USERS) -> list[tuple[str, float, str]]:
    """Rows of (operation, median seconds, note)."""
    root = Path(tempfile.mkdtemp(prefix="recover-bench-"))
    try:
        datadir, files = _build(root, users)
        timings = [_once(datadir, files, root / f"exchange{i}") for i in range(runs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [(f"recover {users // 1000}k users", statistics.median(timings),
             f"s, whole command: {users * (1 + FOREIGN_PER_USER):,} UTXOs rescanned, {users:,} keys and deposits")]


if __name__ == "__main__":
    for name, figure, note in run():
        print(f"{name:<28} {figure:>14.3f}  {note}")

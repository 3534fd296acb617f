"""`halo-exchange audit` on real node and exchange DBs: clean books pass, damage and lost deposits fail."""

from __future__ import annotations

import plyvel

from halo_exchange.chain import layout
from halo_exchange.chain.params import COIN
from halo_exchange.cli import main
from halo_exchange.ledger.store import BookCodec, ExchangeStore
from tests.framework import EngineHarness, run_cli


def _prepare(tmp_path) -> EngineHarness:
    harness = EngineHarness(tmp_path)
    harness.credit("alice", 10 * COIN)
    harness.credit("bobby", 3 * COIN)
    harness.settle(harness.engine.trade("alice", COIN, "bobby"))
    return harness


def _audit(tmp_path, capsys) -> tuple[int, str]:
    code = main(["audit", "--datadir", str(tmp_path), "--chain-db", str(tmp_path / "node" / "chain")])
    return code, capsys.readouterr().out


def test_clean_exchange_passes(tmp_path, capsys) -> None:
    """After deposits and trades, with both DBs closed, audit reports OK and exits 0."""
    _prepare(tmp_path).close()
    code, out = _audit(tmp_path, capsys)
    assert code == 0, out
    assert "result: OK" in out and "2 registered" in out


def test_damaged_account_is_a_violation(tmp_path, capsys) -> None:
    """A balance changed behind the engine's back breaks conservation: audit exits 1 and says where."""
    _prepare(tmp_path).close()
    store = ExchangeStore(str(tmp_path / "exchange"))
    book = BookCodec.load(store)
    book.accounts["bobby"].liquid += 1
    store.write(BookCodec.account_ops(book, ["bobby"]))
    store.close()
    code, out = _audit(tmp_path, capsys)
    assert code == 1 and "VIOLATION: book: liquid shares" in out


def test_a_chain_the_exchange_has_not_caught_up_with_is_not_compared(tmp_path, capsys) -> None:
    """Blocks left the chain while the engine did not hear of it (a crash between the node's write and the
    exchange's): audit checks the book only and says to let the exchange catch up, instead of reporting the
    registered deposit as lost (the restarted exchange reverses it, and the audit then lists the reversal)."""
    harness = _prepare(tmp_path)
    first_deposit_height = 1
    harness.stop_engine()
    harness.node.invalidate_block(first_deposit_height)
    harness.node.close()
    code, out = _audit(tmp_path, capsys)
    assert code == 0 and "(book only)" in out and "on a branch the chain has left" in out


def test_running_node_is_reported_not_touched(tmp_path) -> None:
    """With the node DB held by a running process, audit exits 2 and the holder keeps its DB."""
    _prepare(tmp_path).close()
    held = plyvel.DB(str(tmp_path / "node" / "chain"), compression=None)
    try:
        result = run_cli("audit", "--datadir", str(tmp_path), "--chain-db", str(tmp_path / "node" / "chain"))
        assert result.returncode == 2 and "is the node running" in result.stderr
        assert held.get(layout.TIP) is not None
    finally:
        held.close()

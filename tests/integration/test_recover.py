"""`halo-exchange recover` on real node DBs: a lost exchange DB rebuilt from the balances, keys and deposits the
exchange kept; every user back to the satoshi, audit clean; bad input refused with file and line, nothing written.

The fast tests drive the exchange in-process (EngineHarness) and run the command in its own process; the slow one
is the whole story over XML-RPC against a `halo-exchange devnet` process (deposits, trades and a paid withdrawal
across several peg cycles, then the DB deleted and rebuilt).
"""

from __future__ import annotations

import shutil
import xmlrpc.client
from pathlib import Path

import plyvel
import pytest

from halo_exchange.chain.params import COIN
from halo_exchange.ledger.store import ExchangeStore, load_state
from halo_exchange.recover import RECOVERY_ACCOUNT
from halo_exchange.serialize import from_display_hex
from tests.framework import (
    CONFIRMATIONS,
    EngineHarness,
    address_of,
    free_port,
    new_address,
    run_cli,
    running_devnet,
    wait_until,
)

USERS = ("alice", "bobby", "carol")


class Exchange:
    """An EngineHarness whose deposit addresses come from the exchange's wallet, as GenerateDepositAddress
    hands them out: the WIFs and the deposits are kept, as the exchange's own records would keep them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.harness = EngineHarness(tmp_path, watch=False)
        self.wifs: list[str] = []
        self.deposits: list[tuple[str, str]] = []  # (user, txid:n)

    def deposit(self, user: str, amount: int) -> None:
        harness = self.harness
        wif, address = harness.settle(harness.engine.generate_deposit_address())
        self.wifs.append(wif)
        txid = harness.pay(address, amount)
        outpoints = harness.engine.deposits.outpoints_of(from_display_hex(txid))
        harness.settle(harness.engine.name_deposit(user, outpoints))
        self.deposits += [(user, f"{outpoint.txid_hex}:{outpoint.n}") for outpoint in outpoints]
        harness.generate(CONFIRMATIONS - 1)

    def trade(self, user1: str, amount: int, user2: str, style: str = "liquid") -> None:
        self.harness.settle(self.harness.engine.trade(user1, amount, user2, style))

    def balances(self) -> dict[str, tuple[int, int]]:
        return {user: self.harness.engine.balance(user) for user in USERS}

    def write_records(self, balances: dict[str, tuple[int, int]]) -> tuple[Path, Path, Path]:
        """BALANCES.csv, KEYS.txt, DEPOSITS.csv as the exchange's software would have kept them."""
        records = self.tmp_path / "records"
        records.mkdir(exist_ok=True)
        lines = ["user,liquid,reserve"] + [f"{user},{liquid},{reserve}" for user, (liquid, reserve) in
                                           balances.items()]
        (records / "balances.csv").write_text("\n".join(lines) + "\n")
        (records / "keys.txt").write_text("\n".join(self.wifs) + "\n")
        (records / "deposits.csv").write_text("user,txid:n\n" + "".join(f"{u},{o}\n" for u, o in self.deposits))
        return records / "balances.csv", records / "keys.txt", records / "deposits.csv"


def _recover(tmp_path: Path, balances: Path, keys: Path, deposits: Path | None = None, *extra: str):
    args = ["recover", "--datadir", str(tmp_path), "--chain-db", str(tmp_path / "node" / "chain"),
            "--balances", str(balances), "--keys", str(keys)]
    if deposits is not None:
        args += ["--deposits", str(deposits)]
    return run_cli(*args, *extra)


@pytest.fixture
def lost(tmp_path):
    """Three users who deposited, traded both styles across peg cycles (the supply moved); balances recorded;
    node stopped; the exchange DB deleted. Yields (exchange, recorded balances, the three record files)."""
    exchange = Exchange(tmp_path)
    exchange.deposit("alice", 40 * COIN)
    exchange.deposit("bobby", 25 * COIN)
    exchange.harness.generate(20, "deflate")  # the supply rises three steps a few cycles on
    exchange.deposit("carol", 10 * COIN)
    exchange.deposit("alice", 3 * COIN)
    exchange.harness.generate(3 * 20)
    exchange.trade("alice", 7 * COIN, "carol")
    exchange.trade("bobby", 1_234_567, "alice", "reserve")
    exchange.trade("carol", -2 * COIN, "")  # into the pool
    exchange.trade("bobby", COIN, "")  # and out of it
    exchange.harness.generate(20)
    balances = exchange.balances()
    assert exchange.harness.node.reader.peg_info().supply > 0 and all(r > 0 for _, r in balances.values())
    files = exchange.write_records(balances)
    exchange.harness.close()
    shutil.rmtree(tmp_path / "exchange")
    yield exchange, balances, files


def _reopened_balances(tmp_path: Path) -> dict[str, tuple[int, int]]:
    store = ExchangeStore(str(tmp_path / "exchange"))
    try:
        book = load_state(store).book
    finally:
        store.close()
    return {user: book.balance(user) for user in USERS}


def _contents(path: Path) -> dict[bytes, bytes]:
    db = plyvel.DB(str(path), create_if_missing=False, compression=None)
    try:
        return dict(db.iterator())
    finally:
        db.close()


def _audit(tmp_path: Path):
    return run_cli("audit", "--datadir", str(tmp_path), "--chain-db", str(tmp_path / "node" / "chain"))


def test_every_user_is_restored_exactly_and_audit_passes(lost, tmp_path) -> None:
    """With balances, keys and deposits, recover rebuilds the DB: each user holds exactly the recorded liquid
    and reserve, the report says all were restored, the pool keeps what nobody claims, and audit passes."""
    _, balances, (balances_csv, keys, deposits) = lost
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 in the balances file, 3 restored exactly, 0 short" in result.stdout
    assert "deposits re-registered to their users: 4" in result.stdout
    assert _reopened_balances(tmp_path) == balances
    audit = _audit(tmp_path)
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout


def test_the_deposits_file_is_optional(lost, tmp_path) -> None:
    """Without DEPOSITS.csv every coin goes through the pool: the balances are restored all the same."""
    _, balances, (balances_csv, keys, _) = lost
    result = _recover(tmp_path, balances_csv, keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _reopened_balances(tmp_path) == balances
    assert _audit(tmp_path).returncode == 0


def test_the_recovered_exchange_runs_on(lost, tmp_path) -> None:
    """The rebuilt DB is level with the chain: an engine started on it catches up without replaying history,
    follows new blocks across a cycle, credits a new deposit, and GetDeposits shows the re-registered ones."""
    exchange, balances, (balances_csv, keys, deposits) = lost
    assert _recover(tmp_path, balances_csv, keys, deposits).returncode == 0
    harness = EngineHarness(tmp_path, watch=False)
    try:
        engine = harness.engine
        harness.settle(engine.catch_up())
        assert {user: engine.balance(user) for user in USERS} == balances
        user, outpoint = exchange.deposits[0]
        txid, n = outpoint.split(":")
        [deposit] = [d for d in engine.deposits.deposits.values() if d.outpoint.txid_hex == txid and d.n == int(n)]
        assert deposit.owner == user and deposit.state.value == "registered"
        wif, address = harness.settle(engine.generate_deposit_address())
        txid = harness.pay(address, 2 * COIN)
        harness.name_deposit("dylan", txid)
        harness.generate(CONFIRMATIONS + 20)
        assert sum(engine.balance("dylan")) == 2 * COIN
        report = harness.audit()
        assert report.ok, report.render()
    finally:
        harness.close()


def test_dry_run_writes_nothing(lost, tmp_path) -> None:
    """--dry-run prints the same report and leaves no exchange DB behind."""
    _, _, (balances_csv, keys, deposits) = lost
    result = _recover(tmp_path, balances_csv, keys, deposits, "--dry-run")
    assert result.returncode == 0 and "3 restored exactly" in result.stdout and "dry run: nothing written" in \
        result.stdout
    assert not (tmp_path / "exchange").exists()


def test_balances_beyond_the_funds_report_users_short(lost, tmp_path) -> None:
    """Records claiming more than the chain holds: exit 3 and each short user named with the shortfall (every user
    bears the same proportion, named deposits or not), nothing written; with --accept-short the pro-rata
    recovery is written (exit 3 still) and audit passes."""
    _, balances, (balances_csv, keys, deposits) = lost
    inflated = dict(balances, carol=(balances["carol"][0] + 5 * COIN, balances["carol"][1]))
    lines = [f"{user},{liquid},{reserve}" for user, (liquid, reserve) in inflated.items()]
    balances_csv.write_text("\n".join(lines) + "\n")
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "SHORT: 'carol'" in result.stdout and "nothing written" in result.stdout
    assert result.stdout.count("SHORT:") == 3  # the loss is shared in proportion to every record
    assert not (tmp_path / "exchange").exists()
    without = _recover(tmp_path, balances_csv, keys)  # whose deposits were named changes nobody's share

    def shortfalls(stdout: str) -> list[str]:
        return [line for line in stdout.splitlines() if "SHORT:" in line]
    assert shortfalls(without.stdout) == shortfalls(result.stdout)

    result = _recover(tmp_path, balances_csv, keys, deposits, "--accept-short")
    assert result.returncode == 3 and "written to" in result.stdout, result.stdout + result.stderr
    restored = _reopened_balances(tmp_path)
    assert all(restored[u][1] == balances[u][1] for u in USERS)  # reserve suffices: exact
    assert restored["carol"][0] < inflated["carol"][0]
    assert "left over in the pool: liquid 0," in result.stdout  # every satoshi of liquid went to the users
    assert _audit(tmp_path).returncode == 0


@pytest.mark.parametrize("case, expected", [
    ("typo", "balances.csv:3: user 'bobby': liquid '12x5' is not a whole number of satoshis"),
    ("negative", "balances.csv:3: user 'bobby': reserve -5 is negative"),
    ("duplicate", "balances.csv:4: user 'alice' is listed twice (first on line 2)"),
    ("unknown user", "deposits.csv:2: user 'zelda' is not in the balances file"),
    ("bad wif", "keys.txt:2: not a devnet WIF private key"),
    ("foreign outpoint", "is not an output of the chain"),
])
def test_bad_input_is_refused_with_file_and_line(lost, tmp_path, case, expected) -> None:
    """Each kind of bad input: exit 1, the problem named with its file and line, and no exchange DB written."""
    exchange, balances, (balances_csv, keys, deposits) = lost
    if case == "typo":
        balances_csv.write_text("user,liquid,reserve\nalice,1,2\nbobby,12x5,0\n")
    elif case == "negative":
        balances_csv.write_text("user,liquid,reserve\nalice,1,2\nbobby,5,-5\n")
    elif case == "duplicate":
        balances_csv.write_text("user,liquid,reserve\nalice,1,2\nbobby,1,1\nalice,3,4\n")
    elif case == "unknown user":
        deposits.write_text("user,txid:n\n" + f"zelda,{exchange.deposits[0][1]}\n")
    elif case == "bad wif":
        wif = exchange.wifs[0]
        keys.write_text(f"{wif}\n{wif[:-1]}{'2' if wif[-1] != '2' else '3'}\n")
    else:
        deposits.write_text(f"alice,{'ab' * 32}:0\n")
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr and "nothing written" in result.stderr
    if case == "bad wif":
        assert exchange.wifs[0][:-1] not in result.stderr + result.stdout  # a secret is never echoed
    assert not (tmp_path / "exchange").exists()


def test_a_deposit_paying_no_exchange_key_is_refused(lost, tmp_path) -> None:
    """A deposit line naming an output that pays an address outside the keys file: refused, nothing written."""
    exchange, _, (balances_csv, keys, deposits) = lost
    keys.write_text("\n".join(exchange.wifs[1:]) + "\n")  # the key of the first deposit is missing
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 1 and "deposits.csv:2: deposit" in result.stderr
    assert "not an exchange output" in result.stderr
    assert not (tmp_path / "exchange").exists()


def test_an_exchange_db_with_data_is_moved_aside_only_with_force(lost, tmp_path) -> None:
    """A DB with data is refused (exit 1, unchanged); --force moves it aside, never deletes it."""
    _, balances, (balances_csv, keys, deposits) = lost
    assert _recover(tmp_path, balances_csv, keys, deposits).returncode == 0
    before = _contents(tmp_path / "exchange")
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 1 and "--force" in result.stderr
    assert _contents(tmp_path / "exchange") == before
    result = _recover(tmp_path, balances_csv, keys, deposits, "--force")
    assert result.returncode == 0, result.stderr
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("exchange.before-recover-")]
    assert (aside / "CURRENT").exists()
    assert _reopened_balances(tmp_path) == balances


def test_the_recovery_account_is_no_user() -> None:
    """The exchange-owned account that carries unnamed coins to the pool cannot be a user name."""
    from halo_exchange.commands import check_user_name
    from halo_exchange.errors import CommandRefused

    with pytest.raises(CommandRefused):
        check_user_name(RECOVERY_ACCOUNT)


# -- the whole story, over XML-RPC against a devnet process ------------------------------------------------------

COMMISSION = {"min": 10_000_000, "max": 1_000_000_000, "percent": 0.001}
E2E_USERS = {"alice": 60 * COIN, "bobby": 35 * COIN, "carol": 12 * COIN, "dylan": 4 * COIN}


def _applied_height(api: xmlrpc.client.ServerProxy, outpoint: str, height: int) -> int:
    """The height of the last block the exchange applied, told by the confirmations of a deposit (``outpoint``,
    mined at ``height``); -1 while the exchange has not seen it."""
    record = api.GetDeposits(outpoint, "")
    return -1 if record is False else height + record["confirmations"] - 1


@pytest.mark.slow
@pytest.mark.parametrize("withdraw", [False, True], ids=["trades", "trades-and-a-payout"])
def test_a_lost_exchange_db_is_rebuilt_over_the_api(tmp_path, withdraw: bool) -> None:
    """Four users deposit (WIFs from GenerateDepositAddress kept) and trade both styles across several peg
    cycles with deflation votes moving the supply; their GetBalance is recorded. The node stops, the exchange
    DB is deleted (no backup), recover rebuilds it from the records, audit passes, and after a restart
    GetBalance answers exactly what was recorded.

    With a withdrawal paid on chain as well, the chain no longer holds all the reserve the book counted (the
    payout took liquid at the network's supply, the book debited it at its own, 3 steps higher): recover
    reports each user short in reserve only and writes nothing; with --cover-reserve-with-liquid the missing
    reserve is paid in liquid, every user whole in value."""
    datadir, port, api_port = tmp_path / "node", free_port(), free_port()
    wifs: list[str] = []
    deposits: list[str] = []  # txids
    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.StartExchange("") is True)

        sentinel: list = []  # (outpoint, height) of the first deposit: its confirmations tell what was applied

        def mine(n: int, vote: str = "nochange") -> None:
            """Produce ``n`` blocks voting ``vote``; return once the exchange applied the last one."""
            for _ in range(n):
                node.generate(1, vote)
            height = node.getblockcount()
            if not sentinel:
                txid = deposits[0]
                wait_until(lambda: any(key.startswith(txid) for key in api.GetDeposits("", "")))
                sentinel.append((next(key for key in api.GetDeposits("", "") if key.startswith(txid)), height))
            wait_until(lambda: _applied_height(api, *sentinel[0]) == height)

        for user, amount in E2E_USERS.items():
            wif, _ = api.GenerateDepositAddress("")
            wifs.append(wif)
            txid = node.sendtoaddress(address_of(wif), str(amount))
            deposits.append(txid)
            mine(1)
            assert api.Deposit(user, [txid], "") is True
        mine(CONFIRMATIONS)
        mine(20, "deflate")  # the supply rises three steps a few cycles on
        mine(20)
        assert api.Trade("alice", 9 * COIN, "carol", "liquid", "") is True
        mine(20, "deflate")
        assert api.Trade("bobby", -3 * COIN, "", "liquid", "") is True  # a debit into the pool...
        assert api.Trade("dylan", COIN, "", "liquid", "") is True  # ...and a credit out of it
        mine(20)
        reserve = api.GetBalance("alice", "")["reserve"]
        assert reserve > 0
        assert api.Trade("alice", reserve // 3, "dylan", "reserve", "") is True

        if withdraw:
            account_wif, _ = api.GenerateDepositAddress("")  # the exchange account: its change comes back here
            wifs.append(account_wif)
            assert api.ExchangeSettings([address_of(account_wif)], new_address(), COMMISSION, "", "") is True
            ok, withdraw_id = api.Withdraw("bobby", 10 * COIN, new_address(), "liquid", "")
            assert ok is True, withdraw_id
            for _ in range(80):
                if api.CheckWithdraw(withdraw_id, 0, "")["status"] == "complete":
                    break
                mine(1)
            assert api.CheckWithdraw(withdraw_id, 0, "")["status"] == "complete"
        mine(20, "deflate")
        supply = node.getpeginfo()["peg"]
        recorded = {user: api.GetBalance(user, "") for user in E2E_USERS}
        named = {key: record["name"] for key, record in api.GetDeposits("", "").items() if record["name"]}
        node.stop()
        assert process.wait(timeout=30) == 0
    assert supply > 0 and all(balance["reserve"] > 0 for balance in recorded.values())

    shutil.rmtree(datadir / "exchange")
    records = tmp_path / "records"
    records.mkdir()
    balances_csv, keys_txt = records / "balances.csv", records / "keys.txt"
    balances_csv.write_text("user,liquid,reserve\n" + "".join(
        f"{user},{b['liquid']},{b['reserve']}\n" for user, b in recorded.items()))
    keys_txt.write_text("\n".join(wifs) + "\n")
    deposits_csv = records / "deposits.csv"
    deposits_csv.write_text("user,txid:n\n" + "".join(f"{user},{key}\n" for key, user in named.items()))
    command = ("recover", "--datadir", str(datadir), "--balances", str(balances_csv), "--keys", str(keys_txt),
               "--deposits", str(deposits_csv))
    result = run_cli(*command, timeout=120)
    if withdraw:
        assert result.returncode == 3, result.stdout + result.stderr
        assert "0 restored exactly" in result.stdout and "nothing written" in result.stdout, result.stdout
        assert result.stdout.count("liquid short 0 (") == 4 and result.stdout.count("SHORT:") == 4, result.stdout
        assert not (datadir / "exchange").exists()
        result = run_cli(*command, "--cover-reserve-with-liquid", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 restored in value (reserve paid as liquid), 0 short" in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 in the balances file, 4 restored exactly, 0 short" in result.stdout
    audit = run_cli("audit", "--datadir", str(datadir))
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout

    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.StartExchange("") is True)
        restored = {user: api.GetBalance(user, "") for user in E2E_USERS}
        deposits_now = api.GetDeposits("", "")
        node.stop()
        assert process.wait(timeout=30) == 0
    # Each original deposit the chain still holds unspent is registered to its user again.
    spent = {line.split()[2] for line in result.stdout.splitlines() if "is spent: not re-registered" in line}
    assert len(named) == len(E2E_USERS) and (spent != set()) == withdraw
    for key, user in named.items():
        if key not in spent:
            assert deposits_now[key]["name"] == user and deposits_now[key]["status"] == "registered"
    if not withdraw:
        assert restored == recorded
        return
    for user, was in recorded.items():
        now = restored[user]
        paid_as_liquid = was["reserve"] - now["reserve"]
        assert paid_as_liquid > 0 and now["liquid"] == was["liquid"] + paid_as_liquid, (user, was, now)


def test_a_running_node_is_refused_and_nothing_written(lost, tmp_path) -> None:
    """With the node DB held by a running process, recover exits 2, says why, and writes nothing."""
    _, _, (balances_csv, keys, deposits) = lost
    held = plyvel.DB(str(tmp_path / "node" / "chain"), compression=None)
    try:
        result = _recover(tmp_path, balances_csv, keys, deposits)
    finally:
        held.close()
    assert result.returncode == 2 and "is the node running" in result.stderr
    assert not (tmp_path / "exchange").exists()


def test_what_a_crashed_run_left_is_never_the_exchange_db(lost, tmp_path) -> None:
    """A run killed before its rename leaves only ``exchange.recovering`` (the node never opens it); the next run
    starts that over and puts the whole DB in place."""
    _, balances, (balances_csv, keys, deposits) = lost
    staging = tmp_path / "exchange.recovering"
    staging.mkdir()
    (staging / "half-written").write_text("a run killed mid-write")
    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 0, result.stderr
    assert not staging.exists() and _reopened_balances(tmp_path) == balances


def test_deposits_not_yet_credited_wait_as_they_did(tmp_path) -> None:
    """A deposit named but short of its confirmations, and a frozen one still locked, were in nobody's recorded
    balance: recover leaves them deposits in waiting (the report counts them), and the restarted exchange credits
    each to its named user when due, as it would have without the loss."""
    exchange = Exchange(tmp_path)
    exchange.deposit("alice", 10 * COIN)
    harness, engine = exchange.harness, exchange.harness.engine

    def named_deposit(user: str, send, amount: int, blocks: int) -> None:
        wif, address = harness.settle(engine.generate_deposit_address())
        exchange.wifs.append(wif)
        txid = send(address, amount)
        harness.generate(blocks)
        outpoints = engine.deposits.outpoints_of(from_display_hex(txid))
        harness.settle(engine.name_deposit(user, outpoints))
        exchange.deposits += [(user, f"{o.txid_hex}:{o.n}") for o in outpoints]

    named_deposit("alice", harness.node.send_frozen, 4 * COIN, CONFIRMATIONS + 1)
    named_deposit("bobby", harness.node.send_to_address, 3 * COIN, 2)
    recorded = {"alice": engine.balance("alice"), "bobby": (0, 0)}
    assert sum(recorded["alice"]) == 10 * COIN and engine.balance("bobby") is None
    balances_csv, keys, deposits = exchange.write_records(recorded)
    harness.close()
    shutil.rmtree(tmp_path / "exchange")

    result = _recover(tmp_path, balances_csv, keys, deposits)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deposits in waiting: 2, value 700000000" in result.stdout
    assert "2 of 7 confirmations, named for 'bobby'" in result.stdout
    harness = EngineHarness(tmp_path, watch=False)
    try:
        engine = harness.engine
        harness.settle(engine.catch_up())
        assert {user: engine.balance(user) for user in recorded} == recorded
        harness.generate(CONFIRMATIONS)
        assert sum(engine.balance("bobby")) == 3 * COIN
        harness.generate(harness.node.params.frozen_time // harness.node.params.block_spacing)
        assert sum(engine.balance("alice")) == 14 * COIN
        report = harness.audit()
        assert report.ok, report.render()
    finally:
        harness.close()

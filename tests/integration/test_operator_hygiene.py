"""Operator hygiene of a running `halo-exchange devnet` (issue 13): private file modes, the control RPC's
cookie authentication, and the audit trail in the log."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import xmlrpc.client

import pytest

from tests.framework import free_port, run_cli, running_devnet, spawn_python, wait_until


def _modes(root) -> dict[str, int]:
    """Every path under ``root`` (itself included) -> its permission bits."""
    found = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def test_datadir_is_0700_and_every_file_0600_including_keys_and_leveldb(tmp_path) -> None:
    """A new data dir, its chain and exchange LevelDBs, the deposit keys in them and the cookie are the
    operator's alone, whatever the umask of the shell that started the node."""
    old = os.umask(0o022)
    try:
        datadir, api_port = tmp_path / "devnet", free_port()
        with running_devnet(datadir, free_port(), api_port) as (process, node):
            api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
            wait_until(lambda: api.GetCycle("") == 0)
            api.StartExchange("", 1)
            key, ok = api.GenerateDepositAddress("")  # a plain-text deposit key is written
            node.generate(3)
            assert stat.S_IMODE(os.stat(datadir / ".cookie").st_mode) == 0o600
            node.stop()
            assert process.wait(timeout=30) == 0
    finally:
        os.umask(old)
    modes = _modes(datadir)
    assert {"chain", "exchange"} <= set(modes) and len(modes) > 6
    loose = {path: oct(mode) for path, mode in modes.items()
             if mode != (0o700 if os.path.isdir(datadir / path) else 0o600)}
    assert loose == {}


def test_cookie_is_written_at_start_required_and_deleted_at_a_clean_stop(tmp_path) -> None:
    """`<datadir>/.cookie` holds `__cookie__:<64 hex>`; the control RPC refuses a request without it (401)
    and answers with it; a clean stop deletes it."""
    datadir, port = tmp_path / "devnet", free_port()
    with running_devnet(datadir, port) as (process, node):
        cookie = (datadir / ".cookie").read_text()
        assert re.fullmatch(r"__cookie__:[0-9a-f]{64}", cookie)
        with pytest.raises(xmlrpc.client.ProtocolError) as refused:
            xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}").getblockcount()
        assert refused.value.errcode == 401
        with pytest.raises(xmlrpc.client.ProtocolError):
            xmlrpc.client.ServerProxy(f"http://__cookie__:{'0' * 64}@127.0.0.1:{port}").getblockcount()
        assert xmlrpc.client.ServerProxy(f"http://{cookie}@127.0.0.1:{port}").getblockcount() == 0
        node.stop()
        assert process.wait(timeout=30) == 0
    assert not (datadir / ".cookie").exists()


def test_rpc_user_and_password_from_the_config_file_replace_the_cookie(tmp_path) -> None:
    """With rpc_user and rpc_password in [devnet], those credentials are required and no cookie is written."""
    datadir, port = tmp_path / "devnet", free_port()
    datadir.mkdir()
    (datadir / "halo-exchange.conf").write_text("[devnet]\nrpc_user = operator\nrpc_password = s3cret\n")
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(port),
                           "--api-port", str(free_port()), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    try:
        node = xmlrpc.client.ServerProxy(f"http://operator:s3cret@127.0.0.1:{port}")
        wait_until(lambda: node.getblockcount() == 0)
        assert not (datadir / ".cookie").exists()
        with pytest.raises(xmlrpc.client.ProtocolError):
            xmlrpc.client.ServerProxy(f"http://operator:wrong@127.0.0.1:{port}").getblockcount()
        node.stop()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0 and "s3cret" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_no_auth_only_behind_the_flag(tmp_path) -> None:
    """--rpc-no-auth serves the control RPC without credentials and writes no cookie."""
    datadir, port = tmp_path / "devnet", free_port()
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(datadir), "--rpc-port", str(port),
                           "--api-port", str(free_port()), "--rpc-no-auth", stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        node = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        wait_until(lambda: node.getblockcount() == 0)
        assert not (datadir / ".cookie").exists()
        node.stop()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0 and "no authentication (--rpc-no-auth)" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_log_keeps_an_audit_trail_of_administrative_calls(tmp_path) -> None:
    """StartExchange on/off, SetPassword, ExchangeSettings (its fields), Withdraw requests and failed
    passwords (rate-limited) are logged, never a password; Twisted's "Starting factory" noise is not; a cycle
    change names the network supply and the effective supply with the buffer."""
    datadir, port, api_port = tmp_path / "devnet", free_port(), free_port()
    with running_devnet(datadir, port, api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        assert api.SetPassword("hunter2", "") is True
        assert api.StartExchange("hunter2", 1) is True
        assert api.StartExchange("hunter2", 1, 1) is True  # a query: not in the trail
        for _ in range(3):
            assert api.GetCycle("wrong-guess") == "Incorrect Password"
        assert api.ExchangeSettings("", "", {"min": 20000, "max": 1000000, "percent": 0.01}, 9, "hunter2") is True
        api.Withdraw("karen", 100000000, node.getnewaddress(), "liquid", "hunter2")
        node.generate(20)  # a new peg cycle
        wait_until(lambda: api.GetCycle("hunter2") == 1)
        assert api.StartExchange("hunter2", 0) is True
        node.stop()
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()
    assert "Starting factory" not in log and "Stopping factory" not in log
    assert "hunter2" not in log and "wrong-guess" not in log
    assert "admin: SetPassword: password changed: done" in log
    assert "admin: StartExchange start=1: exchange started" in log
    assert "admin: StartExchange start=0: exchange stopped" in log
    assert log.count("StartExchange") == 2
    assert log.count("admin: failed password attempt (GetCycle)") == 1  # three attempts, one line a minute
    assert "admin: ExchangeSettings commission={'min': 20000, 'max': 1000000, 'percent': 0.01}, " \
           "exchangeconfirmations=9: done" in log
    assert "admin: Withdraw request user='karen' amount=100000000 address=" in log
    assert re.search(r"cycle 1: balances re-valued at effective supply \d+ \(network supply \d+ \+ buffer 3\)", log)


def test_a_locked_wallet_is_logged_at_start_up(tmp_path) -> None:
    """After encrypt-wallet, the next start says the wallet is locked and how to unlock it."""
    datadir, port = tmp_path / "devnet", free_port()
    with running_devnet(datadir, port) as (process, node):
        node.stop()
        assert process.wait(timeout=30) == 0
        assert "wallet is encrypted and locked" not in process.stderr.read()
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse\n")
    assert run_cli("encrypt-wallet", "--datadir", str(datadir), "--passphrase-file", str(secret)).returncode == 0
    with running_devnet(datadir, port) as (process, node):
        node.stop()
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()
    assert "the exchange wallet is encrypted and locked: ExchangePassword(passphrase, passw) unlocks it" in log

"""The exec hook's tools end to end, in real processes: `halo-exchange exec-keygen`, `sign-exec`, and
contrib/exec_client.py against a `halo-exchange devnet` started with the key; a replay after a restart and
after a SIGKILL in the middle of a command; a malformed key stops the start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import xmlrpc.client
from pathlib import Path

import pytest

from tests.framework import free_port, run_cli, run_python, running_devnet, spawn_python, wait_until

pytestmark = pytest.mark.slow


def _keygen(tmp_path: Path) -> tuple[Path, str]:
    key_file = tmp_path / "exec.key"
    made = run_cli("exec-keygen", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert len(public) == 130 and public.startswith("04")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    return key_file, public


def _sign(tmp_path: Path, key_file: Path, source: str, *nonce: str) -> Path:
    source_file = tmp_path / "command.py"
    source_file.write_text(source)
    signed = run_cli("sign-exec", str(source_file), "--key", str(key_file), *nonce)
    assert signed.returncode == 0, signed.stderr
    command_file = tmp_path / f"signed-{len(list(tmp_path.glob('signed-*')))}.json"
    command_file.write_text(signed.stdout)
    return command_file


def command_source(command_file: Path) -> str:
    return json.loads(command_file.read_text())["exec"]


def _send(command_file: Path, api_port: int) -> subprocess.CompletedProcess:
    return run_python("contrib/exec_client.py", str(command_file), "--url", f"http://127.0.0.1:{api_port}")


def test_keygen_sign_and_send_run_a_command_once_even_across_a_restart(tmp_path) -> None:
    key_file, public = _keygen(tmp_path)
    again = run_cli("exec-keygen", "--out", str(key_file))
    assert again.returncode == 1 and "exists" in again.stderr  # a key file is never overwritten
    command = _sign(tmp_path, key_file, "result = exchange.cycle()\n", "--nonce", "7")
    assert json.loads(command.read_text())["exec"] == "nonce=7\nresult = exchange.cycle()\n"

    datadir, api_port = tmp_path / "devnet", free_port()
    datadir.mkdir(mode=0o700)
    (datadir / "halo-exchange.conf").write_text(f"[exchange]\nexec_pubkey = {public}\n")
    with running_devnet(datadir, free_port(), api_port) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        sent = _send(command, api_port)
        assert (sent.returncode, sent.stdout) == (0, "0\n"), sent.stderr
        replay = _send(command, api_port)
        assert (replay.returncode, replay.stdout) == (1, "Command sent previously\n")
        listed = json.loads(run_cli("status", "--datadir", str(datadir), "--execs", "--json").stdout)["execs"]
        assert [(r["state"], r["outcome"], r["source"]) for r in listed] == [("done", "0", command_source(command))]
        node.stop()
        assert process.wait(timeout=30) == 0
    with running_devnet(datadir, free_port(), api_port) as (process, node):
        wait_until(lambda: api.GetCycle("") == 0)
        assert _send(command, api_port).stdout == "Command sent previously\n"
        (tmp_path / "other").mkdir()
        other_key, _ = _keygen(tmp_path / "other")
        forged = _send(_sign(tmp_path, other_key, "result = 1\n"), api_port)
        assert (forged.returncode, forged.stdout) == (1, "Signature failed\n")
        node.stop()
        assert process.wait(timeout=30) == 0


def test_without_a_key_the_client_says_the_hook_is_off(tmp_path) -> None:
    key_file, _ = _keygen(tmp_path)
    api_port = free_port()
    with running_devnet(tmp_path / "devnet", free_port(), api_port):
        wait_until(lambda: xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}").GetCycle("") == 0)
        sent = _send(_sign(tmp_path, key_file, "result = 1\n"), api_port)
    assert sent.returncode == 1 and sent.stdout == "false\n" and "no exec key" in sent.stderr
    unreachable = _send(_sign(tmp_path, key_file, "result = 2\n"), free_port())
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_a_command_cut_short_by_sigkill_is_never_run_again(tmp_path) -> None:
    """The record is durable before the command runs: killed in the middle, it stays spent after the restart."""
    key_file, public = _keygen(tmp_path)
    marker = tmp_path / "started"
    command = _sign(tmp_path, key_file, f"import time\nopen({str(marker)!r}, 'w').close()\ntime.sleep(120)\n")
    datadir, api_port = tmp_path / "devnet", free_port()
    with running_devnet(datadir, free_port(), api_port, ["--exec-pubkey", public]) as (process, node):
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        threading.Thread(target=_send, args=(command, api_port), daemon=True).start()
        wait_until(marker.exists)
        process.kill()
        process.wait()
    marker.unlink()
    with running_devnet(datadir, free_port(), api_port, ["--exec-pubkey", public]) as (process, node):
        wait_until(lambda: api.GetCycle("") == 0)
        assert _send(command, api_port).stdout == "Command sent previously\n"
        assert not marker.exists()
        listed = run_cli("status", "--datadir", str(datadir), "--execs", "--json")
        (record,) = json.loads(listed.stdout)["execs"]
        assert record["state"] == "interrupted" and "time.sleep(120)" in record["source"]
        text = run_cli("status", "--datadir", str(datadir), "--execs").stdout
        assert "Execs" in text and "interrupted" in text
        node.stop()
        assert process.wait(timeout=30) == 0


def test_a_malformed_key_stops_the_start_with_a_clear_error(tmp_path) -> None:
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--datadir", str(tmp_path / "devnet"),
                           "--rpc-port", str(free_port()), "--api-port", str(free_port()), "--exec-pubkey", "04abc",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "--exec-pubkey '04abc'" in err and "Traceback" not in err

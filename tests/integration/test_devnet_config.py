"""`halo-exchange devnet` configured by a file, as an operator runs it: a real process on free ports, its
start-up line, a bad file refused in one line, and the log level option."""

from __future__ import annotations

import http.client
import subprocess
import xmlrpc.client
from pathlib import Path

import pytest

from halo_exchange import __version__
from tests.framework import free_port, run_cli, spawn_python, wait_for_control_rpc, wait_until


def _run_devnet(rpc_port: int, *args: str) -> tuple[int, str]:
    """Start `halo-exchange devnet --rpc-port RPC_PORT ARGS`, wait for its control RPC, stop it over RPC;
    return its exit code and stderr."""
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--rpc-port", str(rpc_port), *args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        node = wait_for_control_rpc(Path(args[args.index("--datadir") + 1]), rpc_port)
        node.stop()
        _, err = process.communicate(timeout=30)
        return process.returncode, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_devnet_runs_on_the_ports_and_limits_of_its_config_file(tmp_path) -> None:
    """`devnet --config FILE` listens where the file says, applies its HTTP limit, and logs one start-up line
    with the version, the data dir, the ports and the effective settings."""
    rpc_port, api_port = free_port(), free_port()
    conf = tmp_path / "node.conf"
    conf.write_text(f"[devnet]\ndatadir = {tmp_path / 'devnet'}\nrpc_port = {rpc_port}\n\n"
                    f"[exchange]\napi_port = {api_port}\nmax_body = 1024\nconfirmations = 9\n")
    process = spawn_python("-m", "halo_exchange.cli", "devnet", "--config", str(conf),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        node = wait_for_control_rpc(tmp_path / "devnet", rpc_port)
        api = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{api_port}")
        wait_until(lambda: api.GetCycle("") == 0)
        connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
        connection.request("POST", "/", body=b"x" * 2000)
        assert connection.getresponse().status == 413  # the file's max_body, not the 64 KiB default
        connection.close()
        assert node.stop() is True
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if "devnet starting" in line]
    assert f"halo-exchange {__version__} devnet starting, config file {conf}" in line and " INFO " in line
    for setting in (f"datadir={tmp_path / 'devnet'}", f"rpc_port={rpc_port}", f"api_port={api_port}",
                    "max_body=1024", "confirmations=9", "log_level=INFO"):
        assert setting in line
    assert (tmp_path / "devnet" / "exchange").is_dir()


@pytest.mark.parametrize("text, named", [
    ("[exchange]\nconfirmation = 9\n", "unknown key 'confirmation' in [exchange]"),
    ("[exchange]\nconfirmations = 30\n", "[exchange] confirmations = '30': must be between 7 and 15"),
    ("[devnet]\nrpc_port = http\n", "[devnet] rpc_port = 'http': not an integer"),
])
def test_a_bad_config_file_stops_devnet_with_one_line(tmp_path, text: str, named: str) -> None:
    """A bad key or value: exit code 2, one line on stderr naming the key and the file, no traceback."""
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    result = run_cli("devnet", "--config", str(conf), "--datadir", str(tmp_path / "devnet"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr and str(conf) in result.stderr
    assert not (tmp_path / "devnet").exists()


def test_log_level_warning_silences_info(tmp_path) -> None:
    """--log-level WARNING: a whole run, start to stop, writes no INFO line (the start-up line included)."""
    code, err = _run_devnet(free_port(), "--datadir", str(tmp_path / "devnet"), "--api-port", str(free_port()),
                            "--log-level", "warning")
    assert code == 0 and "Traceback" not in err
    assert not [line for line in err.splitlines() if " INFO " in line]

"""contrib/halo-exchange.service: systemd accepts it, it runs a command line `halo-exchange` accepts, and it gives
the node the time its clean stop can take."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from halo_exchange.cli import build_parser
from halo_exchange.config import ExchangeConfig
from node_hooks.follower import node as follower_node

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "halo-exchange.service"
DATADIR = "/var/lib/halo-exchange"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_the_follower_as_its_own_user_with_a_hardened_sandbox() -> None:
    """A dedicated user, the data dir as the only writable path, private files, and the hardening keys."""
    service = _unit()["Service"]
    assert (service["User"], service["Group"]) == ("halo", "halo")
    assert service["WorkingDirectory"] == DATADIR and service["ReadWritePaths"] == DATADIR
    assert service["StateDirectory"] == "halo-exchange" and service["StateDirectoryMode"] == "0700"
    assert service["UMask"] == "0077"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "Restart": "on-failure", "KillSignal": "SIGTERM",
                       "RestartPreventExitStatus": "2"}.items():
        assert service[key] == value, key
    assert int(service["LimitNOFILE"]) >= 4 * ExchangeConfig.max_connections
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()  # the operator socket
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_its_command_line_is_one_halo_exchange_accepts() -> None:
    """ExecStart is `halo-exchange node` on the data dir with a config file (where bitbayd's URL and password
    are), flags the command knows."""
    binary, *argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert Path(binary).name == "halo-exchange"
    args = build_parser().parse_args(argv)
    assert args.command == "node" and args.datadir == DATADIR and args.config == "/etc/halo-exchange/halo-exchange.conf"


def test_the_stop_timeout_covers_a_clean_stop() -> None:
    """SIGTERM: the follower joins its two threads (each up to its join timeout), then exchange mode closes
    (up to bridge_timeout); systemd must wait for all of it before SIGKILL."""
    longest_clean_stop = 2 * follower_node._JOIN_TIMEOUT + ExchangeConfig.bridge_timeout
    assert int(_unit()["Service"]["TimeoutStopSec"]) > longest_clean_stop


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_it(tmp_path) -> None:
    """`systemd-analyze verify` finds nothing wrong (its ExecStart pointed at this checkout's command, which it
    checks exists)."""
    installed = Path(sys.executable).parent / "halo-exchange"
    if not installed.exists():
        pytest.skip("no installed halo-exchange command beside this Python")
    text = UNIT.read_text().replace("/opt/halo-exchange/bin/halo-exchange", str(installed))
    unit = tmp_path / "halo-exchange.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr

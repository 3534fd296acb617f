"""The configuration of halo-exchange: every setting, with its type, default and range, declared once here.

:class:`ExchangeConfig` is what exchange mode needs inside any node; :class:`DevnodeConfig` is the devnet
process around it (data dir, control RPC, block production, logging) and embeds one. Both are frozen: read
once at start-up, then handed down. Code that needs a default reads it from here (``ExchangeConfig.api_port``).

Sources, later ones winning: the defaults below; an INI file, ``<datadir>/halo-exchange.conf`` when it exists
or the file ``--config`` names (which must exist); the command-line flags actually given. A file has two
sections, each key a field name::

    [devnet]                 DevnodeConfig: datadir, rpc_port, log_level, ...
    [exchange]               ExchangeConfig: api_port, confirmations, max_body, ...

``contrib/halo-exchange.conf.example`` lists every key. An unknown section or key, a value of the wrong type
or out of range is a :class:`ConfigError` naming the key and the file (or the flag) it came from.

This module reads settings and nothing more: ``logs.py`` sets up logging from ``log_level`` and ``log_file``,
and :func:`describe` gives the start-up log its line.
"""

from __future__ import annotations

import configparser
import difflib
import math
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from halo_exchange.chain.params import DEVNET
from halo_exchange.errors import HaloExchangeError
from halo_exchange.execsig import parse_public_key, public_key_hex
from halo_exchange.ledger.deposits import DEFAULT_CONFIRMATIONS, MAX_CONFIRMATIONS, MIN_CONFIRMATIONS


class ConfigError(HaloExchangeError, ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it and where it came from
    (file and section, flag, or node configuration key). Fix that one value and start again."""


CONFIG_FILE_NAME = "halo-exchange.conf"  # looked for in the data dir when --config is not given
DEFAULT_DATADIR = Path("data") / "devnet"
CHAIN_SUBDIR, EXCHANGE_SUBDIR = "chain", "exchange"  # the node's DB and the plugin's DB, inside the data dir
OPERATOR_SOCKET_NAME = "exchange.sock"  # the operator channel's socket, inside the data dir
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_Config = TypeVar("_Config", "DevnodeConfig", "NodeConfig")
MASK = "***"


# -- how a key is declared: a parser from text, a range check, and whether it may be shown ----------------

Check = Callable[[Any], "str | None"]


def _setting(default: Any, parse: Callable[[str], Any], check: Check | None = None, *, secret: bool = False) -> Any:
    """A field that is a configuration key. ``parse`` turns the text of a file value or a flag into the value
    (ValueError saying what was expected); ``check`` says what is wrong with a parsed value, or None.
    ``secret`` values are masked wherever the configuration is shown."""
    return field(default=default, metadata={"parse": parse, "check": check, "secret": secret})


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("not an integer") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _bool(text: str) -> bool:
    try:
        return configparser.ConfigParser.BOOLEAN_STATES[text.lower()]
    except KeyError:
        raise ValueError("not a boolean (true/false, yes/no, on/off, 1/0)") from None


def _text(text: str) -> str:
    if not text:
        raise ValueError("empty")
    return text


def _path(text: str) -> Path:
    return Path(_text(text))


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _optional_text(text: str) -> str | None:
    return None if text.lower() in ("", "none") else text  # empty or none: not set


def _optional_port(text: str) -> int | None:
    return None if text.lower() in ("", "none") else _int(text)  # none: no listener at all


def _exec_pubkey(text: str) -> str | None:
    """The exec hook's public key, checked now (a malformed key stops the start, not the first call), kept
    in the uncompressed hex form the original installs."""
    if text.lower() in ("", "none"):
        return None
    return public_key_hex(parse_public_key(text))  # ExecKeyError is a ValueError: the key is named with it


BACKUP_FAILURES = ("stop", "degrade")


def _optional_dir(text: str) -> Path | None:
    return None if text.lower() in ("", "none") else Path(text)  # none: turns off a directory a file set


def _backup_failure(text: str) -> str:
    if text.lower() not in BACKUP_FAILURES:
        raise ValueError(f"not one of {', '.join(BACKUP_FAILURES)}")
    return text.lower()


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError(f"not one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def _between(low: float, high: float) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be more than 0"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "must not be negative"


def _port(value: int | None) -> str | None:
    return None if value is None or 0 <= value <= 65535 else "must be a port number (0 to 65535)"


def _switch_interval(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1] seconds"


# -- the settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeConfig:
    """Exchange mode in a node: the ``[exchange]`` section (contrib/halo-exchange.conf.example says what each
    key does)."""

    # Not a key: the node decides where the plugin's DB lives (the devnet: <datadir>/exchange).
    exchange_dir: Path = DEFAULT_DATADIR / EXCHANGE_SUBDIR
    api_host: str = _setting("127.0.0.1", _text)
    api_port: int | None = _setting(55779, _optional_port, _port)  # None: no API; 0: any free port
    confirmations: int = _setting(DEFAULT_CONFIRMATIONS, _int, _between(MIN_CONFIRMATIONS, MAX_CONFIRMATIONS))
    # Block processing in pure Python holds the GIL this long before the reactor gets a turn.
    switch_interval: float = _setting(0.001, _float, _switch_interval)
    bridge_timeout: float = _setting(30.0, _float, _positive)
    max_body: int = _setting(64 * 1024, _int, _positive)
    max_head: int = _setting(16 * 1024, _int, _positive)
    idle_timeout: float = _setting(60.0, _float, _positive)
    max_connections: int = _setting(256, _int, _positive)
    # Outstanding withdrawal requests (accepted, not yet paid or refunded) per style.
    withdraw_liquid_limit: int = _setting(300, _int, _between(1, 300))
    withdraw_reserve_limit: int = _setting(45, _int, _between(1, 45))
    # A cycle update of a larger book runs in steps of at most this many accounts (and 8 ms), the API served between.
    cycle_step_accounts: int = _setting(4000, _int, _positive)
    # The signed exec hook API(command): the hex public key whose signatures it runs; None: the call answers False.
    exec_pubkey: str | None = _setting(None, _exec_pubkey)
    # The operator channel's Unix socket (halo_exchange/operator.py); None: <datadir>/exchange.sock.
    operator_socket: Path | None = _setting(None, _optional_path)
    # Continuous backup (docs/backup.md): off without a directory.
    backup_dir: Path | None = _setting(None, _optional_dir)
    backup_failure: str = _setting("stop", _backup_failure)  # stop exchange mode, or degrade: run on, say it
    backup_snapshot_interval: float = _setting(3600.0, _float, _positive)
    backup_journal_mb: int = _setting(64, _int, _positive)  # journal written since a snapshot that starts one

    def __post_init__(self) -> None:
        object.__setattr__(self, "exchange_dir", Path(self.exchange_dir))  # a str from code is welcome too
        if self.backup_dir is not None:
            object.__setattr__(self, "backup_dir", Path(self.backup_dir))
        _validate(self)

    @property
    def datadir(self) -> Path:
        """The node's data dir: the one the exchange DB is in."""
        return self.exchange_dir.parent

    @property
    def operator_socket_path(self) -> Path:
        """Where the operator socket is: ``operator_socket``, or ``exchange.sock`` in the node's data dir."""
        return self.operator_socket or self.datadir / OPERATOR_SOCKET_NAME


class _NodeProcess:
    """What the configurations of a node process (:class:`DevnodeConfig`, :class:`NodeConfig`) share: a data
    dir holding the chain DB and the plugin's DB, and the :class:`ExchangeConfig` of the exchange mode it hosts."""

    datadir: Path
    exchange: ExchangeConfig

    def __post_init__(self) -> None:
        object.__setattr__(self, "datadir", Path(self.datadir))
        _validate(self)
        # The plugin's DB lives in the node's data dir: derived here, so the two can never disagree.
        if self.exchange.exchange_dir != self.exchange_dir:
            object.__setattr__(self, "exchange", replace(self.exchange, exchange_dir=self.exchange_dir))

    @property
    def chain_dir(self) -> Path:
        return self.datadir / CHAIN_SUBDIR

    @property
    def exchange_dir(self) -> Path:
        return self.datadir / EXCHANGE_SUBDIR


@dataclass(frozen=True)
class DevnodeConfig(_NodeProcess):
    """The devnet node process: the ``[devnet]`` section, and the exchange mode it hosts."""

    datadir: Path = _setting(DEFAULT_DATADIR, _path)
    rpc_host: str = _setting("127.0.0.1", _text)
    rpc_port: int = _setting(55780, _int, _port)
    # The control RPC's HTTP basic auth: this user and password when both are set, else the cookie file
    # <datadir>/.cookie written at each start; rpc_no_auth turns authentication off (a trusted machine only).
    rpc_user: str | None = _setting(None, _optional_text)
    rpc_password: str | None = _setting(None, _optional_text, secret=True)
    rpc_no_auth: bool = _setting(False, _bool)
    interval: int = _setting(DEVNET.peg_interval, _int, _positive)  # these three apply to a new chain only
    frozen_time: int = _setting(DEVNET.frozen_time, _int, _not_negative)
    vfrozen_time: int = _setting(DEVNET.vfrozen_time, _int, _not_negative)
    mine_every: float = _setting(0.0, _float, _not_negative)  # 0: blocks only on the RPC generate
    no_exchange: bool = _setting(False, _bool)
    log_level: str = _setting("INFO", _log_level)
    log_file: Path | None = _setting(None, _optional_path)  # None: stderr
    # The bitbayd-compatible JSON-RPC (docs/bitbayd-rpc.md): off without a port; basic auth when user and
    # password are both set.
    bitbayd_rpc_host: str = _setting("127.0.0.1", _text)
    bitbayd_rpc_port: int | None = _setting(None, _optional_port, _port)
    bitbayd_rpc_user: str | None = _setting(None, _optional_text)
    bitbayd_rpc_password: str | None = _setting(None, _optional_text, secret=True)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    config_file: Path | None = None  # where the file's values came from (None: defaults and flags only)


_SECTIONS: dict[str, type] = {"devnet": DevnodeConfig, "exchange": ExchangeConfig}


def _keys(cls: type) -> dict[str, Field]:
    return {f.name: f for f in fields(cls) if "parse" in f.metadata}


_KEYS: dict[str, tuple[str, Field]] = {
    name: (section, f) for section, cls in _SECTIONS.items() for name, f in _keys(cls).items()
}
SETTING_NAMES = frozenset(_KEYS)  # also the flag names, with - for _


def _validate(config: Any) -> None:
    """Range checks for a config built in code (files and flags were checked as they were read)."""
    for name, f in _keys(type(config)).items():
        value = getattr(config, name)
        try:
            problem = f.metadata["check"] and f.metadata["check"](value)
        except TypeError:
            problem = f"has the wrong type ({type(value).__name__})"
        if problem:
            raise ConfigError(f"{name} = {value!r}: {problem}")


def parse_setting(name: str, raw: object, label: str, section: str | None = None) -> Any:
    """The value of setting ``name`` from text (or anything whose ``str`` is its text), or ConfigError
    starting with ``label``, which says where the value came from (``FILE: [exchange] api_port =``).
    ``section`` names the key's section where a name is used by two (``datadir`` in [devnet] and [node])."""
    f = _keys(_SECTIONS[section])[name] if section is not None else _KEYS[name][1]
    text = str(raw).strip()
    try:
        value = f.metadata["parse"](text)
    except ValueError as exc:
        raise ConfigError(f"{label} {text!r}: {exc}") from None
    problem = f.metadata["check"] and f.metadata["check"](value)
    if problem:
        raise ConfigError(f"{label} {text!r}: {problem}")
    return value


def read_config_file(path: Path, sections: tuple[str, ...] = ("devnet", "exchange")) -> dict[str, Any]:
    """The settings a config file gives (name -> value) in ``sections``, each key and value checked. A known
    section not asked for is another command's (``[node]`` for ``devnet``) and left alone."""
    # A % in a path is a %, not a reference; " # ..." after a value is a comment.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    try:
        with open(path, encoding="utf-8") as stream:
            parser.read_file(stream, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(f"{path}, line {exc.lineno}: a key before any section; put it under "
                          f"{' or '.join(f'[{s}]' for s in _SECTIONS)}") from None
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None  # one line, whatever the cause
    if parser.defaults():
        raise ConfigError(f"{path}: [DEFAULT] is not used; put each key under its own section")
    values: dict[str, Any] = {}
    for section in parser.sections():
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section [{section}] (sections: "
                              f"{', '.join(f'[{s}]' for s in _SECTIONS)})")
        if section not in sections:
            continue
        for key, text in parser.items(section):
            if key not in _keys(_SECTIONS[section]):
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]{_did_you_mean(key)}")
            values[key] = parse_setting(key, text, f"{path}: [{section}] {key} =", section)
    return values


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _KEYS, n=1)
    return f" (did you mean {close[0]!r} in [{_KEYS[close[0]][0]}]?)" if close else ""


def load_devnode_config(flags: Mapping[str, object] | None = None,
                        config_file: str | Path | None = None) -> DevnodeConfig:
    """The devnet's configuration: the defaults, then the config file, then ``flags``.

    ``flags`` maps setting names to the values given on the command line; a flag the user did not give must
    be absent (not None), or it would override the file. ``config_file`` (``--config``) must exist; without
    it, ``<datadir>/halo-exchange.conf`` is read when it exists.
    """
    return _load_config(DevnodeConfig, "devnet", DEFAULT_DATADIR, flags, config_file)


def _load_config(cls: type[_Config], section: str, default_datadir: Path, flags: Mapping[str, object] | None,
                 config_file: str | Path | None) -> _Config:
    """A node process's configuration ``cls``, whose own keys are the config file's ``[section]`` and the
    rest ``[exchange]``: the defaults, then the config file, then ``flags`` (see :func:`load_devnode_config`)."""
    def section_of(name: str) -> str:
        return section if name in _keys(cls) else "exchange"

    given = {name: parse_setting(name, raw, f"--{name.replace('_', '-')}", section_of(name))
             for name, raw in (flags or {}).items()}
    datadir = given.get("datadir", default_datadir)
    if config_file is not None:
        path: Path | None = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
    else:
        path = datadir / CONFIG_FILE_NAME
        if not path.is_file():
            path = None
    values = read_config_file(path, (section, "exchange")) if path is not None else {}
    if config_file is None and path is not None and values.get("datadir", datadir) != datadir:
        raise ConfigError(f"{path}: [{section}] datadir = {values['datadir']}: names another data dir than the one "
                          "the file is in; remove it, or pass the file with --config")
    values.update(given)
    exchange = ExchangeConfig(**{n: v for n, v in values.items() if section_of(n) == "exchange"})
    return cls(**{n: v for n, v in values.items() if section_of(n) == section}, exchange=exchange,  # type: ignore[call-arg]
               config_file=path)


def describe(config: Any) -> str:
    """Every setting as ``name=value``, secrets masked: the effective configuration, for the start-up log."""
    parts = []
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, ExchangeConfig):
            parts.append(describe(value))
        elif "parse" in f.metadata:
            parts.append(f"{f.name}={MASK if f.metadata['secret'] else value}")
    return " ".join(parts)


# -- the follower node (`halo-exchange node`, docs/follower.md) ----------------------------------------------

NETWORKS = ("mainnet", "testnet", "devnet")
DEFAULT_NODE_DATADIR = Path("data") / "node"


def _network(text: str) -> str:
    if text.lower() not in NETWORKS:
        raise ValueError(f"not one of {', '.join(NETWORKS)}")
    return text.lower()


def _text_or_unset(text: str) -> str | None:
    """[node]'s optional texts: only an empty one is unset ("none" is a user or password like any other)."""
    return text or None


@dataclass(frozen=True)
class NodeConfig(_NodeProcess):
    """The follower node process (``halo-exchange node``): the ``[node]`` section, and the exchange mode it
    hosts (the ``[exchange]`` section, as for the devnet)."""

    datadir: Path = _setting(DEFAULT_NODE_DATADIR, _path)
    bitbayd_url: str | None = _setting(None, _text_or_unset)  # http://[user:password@]host[:port]/
    bitbayd_user: str | None = _setting(None, _text_or_unset)  # over the URL's user
    bitbayd_password: str | None = _setting(None, _text_or_unset, secret=True)
    bitbayd_cookie_file: Path | None = _setting(None, _optional_path)  # when no user is given
    start_height: int = _setting(0, _int, _not_negative)  # a new data dir's first block
    network: str = _setting("mainnet", _network)
    log_level: str = _setting("INFO", _log_level)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    config_file: Path | None = None

    @property
    def bitbayd_url_shown(self) -> str:
        """The URL without its password, for logs."""
        url = self.bitbayd_url or ""
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            userinfo, host = rest.rsplit("@", 1)
            url = f"{scheme}://{userinfo.split(':', 1)[0]}:{MASK}@{host}"
        return url


_SECTIONS["node"] = NodeConfig
NODE_SETTING_NAMES = frozenset(_keys(NodeConfig)) | frozenset(_keys(ExchangeConfig))


def load_node_config(flags: Mapping[str, object] | None = None,
                     config_file: str | Path | None = None) -> NodeConfig:
    """The follower's configuration: defaults, then the config file's ``[node]`` and ``[exchange]``, then
    ``flags`` (as :func:`load_devnode_config`). ``halo-exchange node`` requires a ``bitbayd_url``."""
    return _load_config(NodeConfig, "node", DEFAULT_NODE_DATADIR, flags, config_file)

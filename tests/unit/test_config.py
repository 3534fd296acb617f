"""The configuration, key by key in the manner of ElectrumX's test_env.py: each key's default, its value from a
file, a flag over the file, and a bad type, a value out of range and an unknown key refused with the key's and
the file's name. Then the example file, the node's own config keys, and the logging set-up."""

from __future__ import annotations

import configparser
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from halo_exchange import config as cfg
from halo_exchange import logs
from halo_exchange.cli import main as cli_main
from halo_exchange.config import (
    SETTING_NAMES,
    ConfigError,
    DevnodeConfig,
    ExchangeConfig,
    NodeConfig,
    describe,
    load_devnode_config,
    load_node_config,
)
from halo_exchange.logs import bridge_twisted_logging, configure_logging
from halo_exchange.rpc.http import HTTPLimits
from node_hooks.devnode.main import add_arguments, config_from_args
from node_hooks.exchange_mode import exchange_config_from_node

EXAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "halo-exchange.conf.example"


class Key(NamedTuple):
    name: str
    section: str
    default: Any
    text: str  # a good value as a file or flag writes it ...
    value: Any  # ... and what it becomes
    bad_type: str | None  # text that is not a value of the key's type (None: every text is)
    out_of_range: tuple[str, ...]  # well-typed texts outside the key's range
    flag: bool  # `halo-exchange devnet` has a flag for it


KEYS = [
    Key("datadir", "devnet", Path("data/devnet"), "/srv/halo", Path("/srv/halo"), "", (), True),
    Key("rpc_host", "devnet", "127.0.0.1", "0.0.0.0", "0.0.0.0", "", (), True),
    Key("rpc_port", "devnet", 55780, "18080", 18080, "http", ("-1", "65536"), True),
    Key("rpc_user", "devnet", None, "operator", "operator", None, (), False),
    Key("rpc_password", "devnet", None, "s3cret", "s3cret", None, (), False),
    Key("rpc_no_auth", "devnet", False, "yes", True, "maybe", (), True),
    Key("interval", "devnet", 20, "40", 40, "2.5", ("0",), True),
    Key("frozen_time", "devnet", 1920, "64", 64, "soon", ("-1",), True),
    Key("vfrozen_time", "devnet", 7680, "128", 128, "later", ("-1",), True),
    Key("mine_every", "devnet", 0.0, "2.5", 2.5, "often", ("-1",), True),
    Key("no_exchange", "devnet", False, "yes", True, "maybe", (), True),
    Key("log_level", "devnet", "INFO", "warning", "WARNING", "LOUD", (), True),
    Key("log_file", "devnet", None, "halo.log", Path("halo.log"), None, (), False),
    Key("bitbayd_rpc_host", "devnet", "127.0.0.1", "0.0.0.0", "0.0.0.0", "", (), True),
    Key("bitbayd_rpc_port", "devnet", None, "19915", 19915, "x", ("-1", "65536"), True),
    Key("bitbayd_rpc_user", "devnet", None, "follower", "follower", None, (), True),
    Key("bitbayd_rpc_password", "devnet", None, "s3cret", "s3cret", None, (), True),
    Key("api_host", "exchange", "127.0.0.1", "::1", "::1", "", (), True),
    Key("api_port", "exchange", 55779, "18081", 18081, "x", ("-1", "70000"), True),
    Key("confirmations", "exchange", 7, "12", 12, "7.5", ("6", "16"), True),
    Key("switch_interval", "exchange", 0.001, "0.005", 0.005, "fast", ("0", "1.5"), False),
    Key("bridge_timeout", "exchange", 30.0, "5", 5.0, "long", ("0",), False),
    Key("max_body", "exchange", 65536, "1024", 1024, "64K", ("0",), False),
    Key("max_head", "exchange", 16384, "4096", 4096, "16K", ("0",), False),
    Key("idle_timeout", "exchange", 60.0, "5.5", 5.5, "1m", ("0", "-3"), False),
    Key("max_connections", "exchange", 256, "8", 8, "many", ("0",), False),
    Key("withdraw_liquid_limit", "exchange", 300, "100", 100, "lots", ("0", "301"), False),
    Key("withdraw_reserve_limit", "exchange", 45, "10", 10, "few", ("0", "46"), False),
    Key("cycle_step_accounts", "exchange", 4000, "250", 250, "many", ("0",), False),
    # A compressed key is kept in the uncompressed form the original installs.
    Key("exec_pubkey", "exchange", None, "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa",
        "044f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa385b6b1b8ead809ca67454d9683fcf2ba03456d6"
        "fe2c4abe2b07f0fbdbb2f1c1", "04zz", (), True),
    Key("operator_socket", "exchange", None, "/run/halo/exchange.sock", Path("/run/halo/exchange.sock"), None, (),
        False),
    Key("backup_dir", "exchange", None, "/srv/halo-backup", Path("/srv/halo-backup"), None, (), True),
    Key("backup_failure", "exchange", "stop", "Degrade", "degrade", "sometimes", (), False),
    Key("backup_snapshot_interval", "exchange", 3600.0, "60", 60.0, "hourly", ("0",), False),
    Key("backup_journal_mb", "exchange", 64, "8", 8, "big", ("0",), False),
]
BY_NAME = {key.name: key for key in KEYS}

# The [node] section of `halo-exchange node` (the follower). Its names may repeat [devnet]'s (datadir,
# log_level): each command reads its own section, so this table is apart from KEYS.
NODE_KEYS = [
    Key("datadir", "node", Path("data/node"), "/srv/node", Path("/srv/node"), "", (), True),
    Key("bitbayd_url", "node", None, "http://u:p@127.0.0.1:19915/", "http://u:p@127.0.0.1:19915/", None, (), True),
    Key("bitbayd_user", "node", None, "rpcuser", "rpcuser", None, (), False),
    Key("bitbayd_password", "node", None, "hunter2", "hunter2", None, (), False),
    Key("bitbayd_cookie_file", "node", None, "/var/bitbay/.cookie", Path("/var/bitbay/.cookie"), None, (), False),
    Key("start_height", "node", 0, "1200000", 1200000, "soon", ("-1",), True),
    Key("network", "node", "mainnet", "Testnet", "testnet", "moon", (), True),
    Key("log_level", "node", "INFO", "debug", "DEBUG", "LOUD", (), True),
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch) -> None:
    """Relative paths (the default data dir above all) resolve in an empty directory, never in a checkout."""
    monkeypatch.chdir(tmp_path)


def _get(config: DevnodeConfig, name: str) -> Any:
    return getattr(config if BY_NAME[name].section == "devnet" else config.exchange, name)


def _file(tmp_path: Path, text: str, name: str = "x.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _one_key(tmp_path: Path, key: Key, text: str) -> Path:
    return _file(tmp_path, f"[{key.section}]\n{key.name} = {text}\n")


def _flags(*argv: str) -> DevnodeConfig:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_every_key_is_tested() -> None:
    """The table above covers every key the configuration has, and no key lives in two sections."""
    assert {key.name for key in KEYS} == SETTING_NAMES and len(KEYS) == len(SETTING_NAMES)


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_default(key: Key) -> None:
    """With no file and no flag, each key has its documented default."""
    assert _get(load_devnode_config(), key.name) == key.default
    assert _get(DevnodeConfig(), key.name) == key.default


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_value_from_file(tmp_path, key: Key) -> None:
    """A key in its section of the --config file sets it; the other keys keep their defaults."""
    config = load_devnode_config(config_file=_one_key(tmp_path, key, key.text))
    assert _get(config, key.name) == key.value
    others = [other for other in KEYS if other is not key]
    assert all(_get(config, other.name) == other.default for other in others)


@pytest.mark.parametrize("key", [key for key in KEYS if key.flag], ids=lambda key: key.name)
def test_flag_overrides_file(tmp_path, key: Key) -> None:
    """A flag given wins over the file; a flag not given leaves the file's value."""
    path = _one_key(tmp_path, key, key.text)
    assert _get(_flags("--config", str(path)), key.name) == key.value
    if key.name in ("no_exchange", "rpc_no_auth"):  # switches: the flag takes no value
        given = _flags("--config", str(_one_key(tmp_path, key, "false")), _flag(key.name))
        assert _get(given, key.name) is True
    else:
        given = _flags("--config", str(path), _flag(key.name), str(key.default))
        assert _get(given, key.name) == key.default


@pytest.mark.parametrize("key", [key for key in KEYS if key.bad_type is not None], ids=lambda key: key.name)
def test_bad_type_names_key_and_file(tmp_path, key: Key) -> None:
    """A value that is not of the key's type is refused in one line naming the key and the file."""
    path = _one_key(tmp_path, key, key.bad_type)
    with pytest.raises(ConfigError) as refused:
        load_devnode_config(config_file=path)
    message = str(refused.value)
    assert key.name in message and str(path) in message and f"[{key.section}]" in message and "\n" not in message


@pytest.mark.parametrize("key, text", [(key, text) for key in KEYS for text in key.out_of_range],
                         ids=lambda value: value.name if isinstance(value, Key) else value)
def test_out_of_range_is_refused_from_file_and_flag(tmp_path, key: Key, text: str) -> None:
    """A well-typed value outside the key's range is refused, naming the key and the file, or the flag."""
    path = _one_key(tmp_path, key, text)
    with pytest.raises(ConfigError, match=rf"{path}: \[{key.section}\] {key.name} = .*: must"):
        load_devnode_config(config_file=path)
    with pytest.raises(ConfigError, match=rf"^{_flag(key.name)} '{text}': must"):
        load_devnode_config({key.name: text})


def test_unknown_key_names_key_and_file(tmp_path) -> None:
    """A misspelt key, or a key in the other section, is refused with its name, the file and a suggestion."""
    path = _file(tmp_path, "[exchange]\nconfirmation = 8\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'confirmation' in \[exchange\] "
                                          r"\(did you mean 'confirmations' in \[exchange\]\?\)"):
        load_devnode_config(config_file=path)
    path = _file(tmp_path, "[devnet]\napi_port = 8\n")
    with pytest.raises(ConfigError, match=r"unknown key 'api_port' in \[devnet\] \(did you mean 'api_port' in "
                                          r"\[exchange\]\?\)"):
        load_devnode_config(config_file=path)


@pytest.mark.parametrize("text, expected", [
    ("[nosuch]\nrpc_port = 1\n", r"unknown section \[nosuch\]"),
    ("rpc_port = 1\n", r"line 1: a key before any section"),
    ("[DEFAULT]\nrpc_port = 1\n", r"\[DEFAULT\] is not used"),
    ("[devnet]\nrpc_port = 1\nrpc_port = 2\n", r"rpc_port.*already exists"),
    ("[devnet]\nthis line has no equals sign\n", r"Source contains parsing errors"),
])
def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path, text: str, expected: str) -> None:
    """Whatever is wrong with the file's shape, the error is one line and names the file."""
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as refused:
        load_devnode_config(config_file=path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_comments_after_values(tmp_path) -> None:
    """' # ...' after a value is a comment (as in README's example); a # inside a value is kept."""
    path = _file(tmp_path, "[exchange]\nconfirmations = 9  # nine\n[devnet]\ndatadir = data/a#b\n")
    config = load_devnode_config(config_file=path)
    assert (config.exchange.confirmations, config.datadir) == (9, Path("data/a#b"))


def test_config_flag_needs_an_existing_file(tmp_path) -> None:
    """--config names a file that must exist (a missing one is a mistake, not 'use the defaults')."""
    with pytest.raises(ConfigError, match=r"--config .*missing.conf: no such file"):
        load_devnode_config(config_file=tmp_path / "missing.conf")


def test_the_data_dir_file_is_read_unless_config_names_another(tmp_path) -> None:
    """<datadir>/halo-exchange.conf is read when it exists; --config replaces it (it is then not read)."""
    _file(tmp_path, "[exchange]\nconfirmations = 9\n", "data/devnet/halo-exchange.conf")
    assert load_devnode_config().exchange.confirmations == 9
    assert load_devnode_config().config_file == Path("data/devnet/halo-exchange.conf")
    _file(tmp_path, "[exchange]\nconfirmations = 10\n", "node/halo-exchange.conf")
    assert load_devnode_config({"datadir": "node"}).exchange.confirmations == 10
    other = _file(tmp_path, "[devnet]\nrpc_port = 1234\n")
    config = load_devnode_config({"datadir": "node"}, other)
    assert (config.exchange.confirmations, config.rpc_port, config.config_file) == (7, 1234, other)


def test_datadir_in_the_data_dir_file_must_be_that_dir(tmp_path) -> None:
    """A datadir key in <datadir>/halo-exchange.conf may only name the directory it lies in."""
    _file(tmp_path, "[devnet]\ndatadir = ./data/devnet\n", "data/devnet/halo-exchange.conf")
    assert load_devnode_config().datadir == Path("data/devnet")
    _file(tmp_path, "[devnet]\ndatadir = elsewhere\n", "data/devnet/halo-exchange.conf")
    with pytest.raises(ConfigError, match="names another data dir"):
        load_devnode_config()


def test_example_file_is_every_key_at_its_default() -> None:
    """contrib/halo-exchange.conf.example lists every key in its section and yields exactly the defaults."""
    assert load_devnode_config(config_file=EXAMPLE) == DevnodeConfig(config_file=EXAMPLE)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(EXAMPLE, encoding="utf-8")
    listed = {(section, key) for section in parser.sections() for key in parser[section]}
    assert listed == {(key.section, key.name) for key in KEYS} | {("node", key.name) for key in NODE_KEYS}
    assert load_node_config(config_file=EXAMPLE) == NodeConfig(config_file=EXAMPLE)


def test_paths_derive_from_the_data_dir() -> None:
    """The exchange DB lives in <datadir>/exchange and the chain in <datadir>/chain, whatever the code says."""
    config = DevnodeConfig(datadir=Path("/srv/halo"), exchange=ExchangeConfig(exchange_dir=Path("/tmp/other")))
    assert config.exchange.exchange_dir == config.exchange_dir == Path("/srv/halo/exchange")
    assert config.chain_dir == Path("/srv/halo/chain")


def test_configs_built_in_code_are_checked_too() -> None:
    """Constructing a config in code applies the same ranges as reading it."""
    with pytest.raises(ConfigError, match=r"switch_interval = 0: must be in \(0, 1\]"):
        ExchangeConfig(switch_interval=0)
    with pytest.raises(ConfigError, match="confirmations = '9': has the wrong type"):
        ExchangeConfig(confirmations="9")
    assert ExchangeConfig(api_port=None).api_port is None


def test_http_limits_default_to_the_configuration() -> None:
    """The transport's limits have no defaults of their own."""
    defaults = ExchangeConfig()
    assert HTTPLimits() == HTTPLimits(defaults.max_body, defaults.max_head, defaults.idle_timeout,
                                      defaults.max_connections)


def test_describe_shows_every_setting_and_masks_secrets() -> None:
    """The start-up line shows each effective setting; a field marked secret shows as ***."""
    text = describe(DevnodeConfig(rpc_port=1234))
    assert "rpc_port=1234" in text and "api_port=55779" in text and "datadir=data/devnet" in text
    assert all(f"{name}=" in text for name in SETTING_NAMES)

    @dataclass(frozen=True)
    class WithSecret:
        password: str = cfg._setting("hunter2", cfg._text, secret=True)
        user: str = cfg._setting("karen", cfg._text)

    assert describe(WithSecret()) == "password=*** user=karen"


def test_node_configuration_keys(tmp_path) -> None:
    """A node's own exchange_* keys (and Halo's exchangeconfirmations) reach the same settings, checked alike."""
    config = exchange_config_from_node({"exchange": 1, "exchange_datadir": tmp_path, "exchangeconfirmations": "9",
                                        "exchange_max_body": 1000, "exchange_api_port": None, "other": "x"})
    assert (config.exchange_dir, config.confirmations, config.max_body, config.api_port) == (tmp_path, 9, 1000, None)
    with pytest.raises(ConfigError, match=r"node configuration: exchangeconfirmations = '20': must be between"):
        exchange_config_from_node({"exchange_datadir": tmp_path, "exchangeconfirmations": 20})
    with pytest.raises(ConfigError, match="unknown key 'exchange_max_bdy'"):
        exchange_config_from_node({"exchange_datadir": tmp_path, "exchange_max_bdy": 1})
    with pytest.raises(ConfigError, match="exchange_datadir"):
        exchange_config_from_node({"exchange": 1})


@pytest.mark.parametrize("argv, named", [
    (["--config", "missing.conf"], "missing.conf"),
    (["--confirmations", "3"], "--confirmations"),
    (["--log-level", "loud"], "--log-level"),
])
def test_devnet_refuses_a_bad_configuration_in_one_line(capsys, argv: list[str], named: str) -> None:
    """`halo-exchange devnet` with a bad setting exits 2 with one line on stderr naming it, before starting."""
    assert cli_main(["devnet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "Traceback" not in err
    assert not Path("data").exists()  # nothing was created


# -- the follower's [node] section -------------------------------------------------------------------------


def _node_flags(*argv: str) -> NodeConfig:
    import argparse

    from node_hooks.follower.main import add_arguments as node_arguments
    from node_hooks.follower.main import config_from_args as node_config

    parser = argparse.ArgumentParser()
    node_arguments(parser)
    return node_config(parser.parse_args(argv))


@pytest.mark.parametrize("key", NODE_KEYS, ids=lambda key: key.name)
def test_node_key_default_file_and_flag(tmp_path, key: Key) -> None:
    """Each [node] key has its default, takes its value from the file, and its flag (if any) wins."""
    assert getattr(load_node_config(), key.name) == key.default == getattr(NodeConfig(), key.name)
    path = _one_key(tmp_path, key, key.text)
    assert getattr(load_node_config(config_file=path), key.name) == key.value
    if key.flag:
        flag = "--bitbayd" if key.name == "bitbayd_url" else _flag(key.name)
        given = _node_flags("--config", str(path), flag, key.text)
        assert getattr(given, key.name) == key.value
    if key.bad_type is not None:
        with pytest.raises(ConfigError, match=rf"{path}: \[node\] {key.name} = .*"):
            load_node_config(config_file=_one_key(tmp_path, key, key.bad_type))
    for text in key.out_of_range:
        with pytest.raises(ConfigError, match=rf"\[node\] {key.name} = .*: must"):
            load_node_config(config_file=_one_key(tmp_path, key, text))


def test_node_and_devnet_sections_share_a_file(tmp_path) -> None:
    """One file may hold [devnet], [node] and [exchange]: each command reads its own section and [exchange]."""
    path = _file(tmp_path, "[devnet]\ndatadir = d\n[node]\ndatadir = n\nnetwork = testnet\n"
                           "[exchange]\nconfirmations = 9\n")
    node, devnet = load_node_config(config_file=path), load_devnode_config(config_file=path)
    assert (node.datadir, node.network, node.exchange.confirmations) == (Path("n"), "testnet", 9)
    assert (devnet.datadir, devnet.exchange.confirmations) == (Path("d"), 9)
    assert node.exchange.exchange_dir == Path("n/exchange")
    with pytest.raises(ConfigError, match=r"unknown key 'rpc_port' in \[node\]"):
        load_node_config(config_file=_file(tmp_path, "[node]\nrpc_port = 1\n"))


def test_node_password_is_masked() -> None:
    """The start-up line never shows the bitbayd password, from the key or the URL."""
    config = NodeConfig(bitbayd_url="http://u:pw1@h:1/", bitbayd_password="pw2")
    assert "pw2" not in describe(config) and "bitbayd_password=***" in describe(config)
    assert config.bitbayd_url_shown == "http://u:***@h:1/"


def test_node_without_bitbayd_is_refused_in_one_line(capsys) -> None:
    """`halo-exchange node` without a bitbayd to follow exits 2 with one line saying what to give."""
    assert cli_main(["node"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bitbayd" in err
    assert not Path("data").exists()


# -- logging -------------------------------------------------------------------------------------------------


@pytest.fixture
def root_logger():
    """The root logger as the test found it, restored after configure_logging changed it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    if logs._handler is not None:
        logs._handler.close()
    logs._handler = None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_sets_level_and_file(tmp_path, root_logger) -> None:
    """The level filters records, the file receives them, and a second call replaces the first's handler."""
    before = list(root_logger.handlers)
    configure_logging("warning", tmp_path / "one.log")
    logging.getLogger("halo_exchange.test").info("quiet")
    logging.getLogger("halo_exchange.test").warning("loud")
    configure_logging("DEBUG", tmp_path / "two.log")
    logging.getLogger("halo_exchange.test").debug("detail")
    assert root_logger.level == logging.DEBUG
    assert [h for h in root_logger.handlers if h not in before] == [logs._handler]
    one = (tmp_path / "one.log").read_text()
    assert "WARNING halo_exchange.test: loud" in one and "quiet" not in one
    assert "detail" in (tmp_path / "two.log").read_text()


def test_configure_logging_refuses_bad_level_and_unwritable_file(tmp_path, root_logger) -> None:
    """A level outside DEBUG..ERROR and a log file that cannot be opened are configuration errors."""
    with pytest.raises(ConfigError, match="'LOUD'"):
        configure_logging("LOUD")
    with pytest.raises(ConfigError, match=f"log_file {tmp_path}"):
        configure_logging("INFO", tmp_path)  # a directory


def test_twisted_log_reaches_stdlib_logging(caplog) -> None:
    """Twisted's own log events arrive in stdlib logging under the logger 'twisted'."""
    from twisted.logger import Logger

    bridge_twisted_logging()
    bridge_twisted_logging()  # idempotent: Twisted's beginner is told once
    with caplog.at_level(logging.INFO, logger="twisted"):
        Logger(namespace="halo_exchange.test").info("hello {who}", who="bridge")
    assert any(r.name == "twisted" and "hello bridge" in r.getMessage() for r in caplog.records)

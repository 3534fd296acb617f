"""The node hook boundary: delivery order, failure isolation, and enabling exchange mode from config."""

from __future__ import annotations

import logging

import pytest

from node_hooks import HookDispatcher, NodeHook, RecordingHook
from node_hooks.exchange_mode import enable_exchange_mode, exchange_mode_requested


class _Exploding(RecordingHook):
    def on_block_connected(self, height: int, block_hash: str) -> None:
        raise RuntimeError("plugin bug")


def test_events_reach_every_hook_in_order() -> None:
    """Each registered hook sees start, connects, disconnects and stop in the order the node sent them."""
    dispatcher = HookDispatcher()
    first, second = RecordingHook(), RecordingHook()
    dispatcher.register(first)
    dispatcher.register(second)
    dispatcher.register(first)  # registering twice delivers once
    dispatcher.node_started(None, None, None)
    dispatcher.block_connected(1, "aa")
    dispatcher.block_disconnected(1, "aa")
    dispatcher.node_stopped()
    expected = [("start",), ("connected", 1, "aa"), ("disconnected", 1, "aa"), ("stop",)]
    assert first.events == expected and second.events == expected
    assert isinstance(first, NodeHook)


def test_failing_hook_is_isolated_and_counted(caplog) -> None:
    """A hook that raises is logged and counted; the other hooks still get the event and the node goes on."""
    dispatcher = HookDispatcher()
    bad, good = _Exploding(), RecordingHook()
    dispatcher.register(bad)
    dispatcher.register(good)
    with caplog.at_level(logging.ERROR):
        dispatcher.block_connected(5, "bb")
        dispatcher.block_connected(6, "cc")
    assert good.of_kind("connected") == [("connected", 5, "bb"), ("connected", 6, "cc")]
    assert dispatcher.failure_count(bad) == 2 and dispatcher.failure_count(good) == 0
    assert "plugin bug" in caplog.text


def test_unregistered_hook_hears_nothing() -> None:
    """After unregister a hook receives no further events."""
    dispatcher = HookDispatcher()
    hook = RecordingHook()
    dispatcher.register(hook)
    dispatcher.unregister(hook)
    dispatcher.block_connected(1, "aa")
    assert hook.events == []


def test_exchange_mode_follows_configuration(tmp_path) -> None:
    """exchange=1 registers the exchange service on its data dir; exchange=0 or absent registers nothing."""
    assert exchange_mode_requested({"exchange": "1"}) and exchange_mode_requested({"exchange": True})
    assert not exchange_mode_requested({}) and not exchange_mode_requested({"exchange": "0"})
    dispatcher = HookDispatcher()
    assert enable_exchange_mode(dispatcher, {"exchange": "0"}) is None and dispatcher.hooks == ()
    service = enable_exchange_mode(dispatcher, {"exchange": "yes", "exchange_datadir": tmp_path / "x"})
    assert service is not None and dispatcher.hooks == (service,)
    assert service.config.exchange_dir == tmp_path / "x" and service.state.value == "stopped"
    assert service.config.switch_interval == 0.001 and service.config.api_host == "127.0.0.1"
    assert service.api_port == 55779
    tuned = enable_exchange_mode(HookDispatcher(), {"exchange": 1, "exchange_datadir": tmp_path / "y",
                                                    "exchange_switch_interval": "0.0005", "exchange_api_port": None})
    assert tuned.config.switch_interval == 0.0005 and tuned.api_port is None
    with pytest.raises(ValueError, match="exchange_switch_interval"):
        enable_exchange_mode(HookDispatcher(), {"exchange": 1, "exchange_datadir": tmp_path / "z",
                                                "exchange_switch_interval": 0})


def test_recording_hook_limit_keeps_most_recent() -> None:
    """A limited recording hook keeps only its most recent events (a long-running node stays bounded)."""
    hook = RecordingHook(limit=3)
    for height in range(10):
        hook.on_block_connected(height, "h")
    assert [event[1] for event in hook.events] == [7, 8, 9]


class _OldHook:
    """A hook written before node services and transaction events: three-argument start, no tx events."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_node_start(self, db, reader, params) -> None:
        self.events.append(("start",))

    def on_block_connected(self, height: int, block_hash: str) -> None:
        self.events.append(("connected", height))

    def on_block_disconnected(self, height: int, block_hash: str) -> None:
        self.events.append(("disconnected", height))

    def on_node_stop(self) -> None:
        self.events.append(("stop",))


def test_services_and_transaction_events_reach_hooks_that_take_them() -> None:
    """A current hook gets the node's services at start and hears rejections and drops; a hook written before
    them still starts (with three arguments), is skipped for the new events, and counts no failure."""
    dispatcher = HookDispatcher()
    new, old = RecordingHook(), _OldHook()
    dispatcher.register(new)
    dispatcher.register(old)
    services = object()
    dispatcher.node_started(None, None, None, services)
    dispatcher.transaction_rejected("ab" * 32, "bad-signature: input 0")
    dispatcher.transaction_dropped("cd" * 32, "conflict: it spends what a block spent")
    dispatcher.node_stopped()
    assert new.services is services
    assert new.events == [
        ("start",), ("rejected", "ab" * 32, "bad-signature: input 0"),
        ("dropped", "cd" * 32, "conflict: it spends what a block spent"), ("stop",),
    ]
    assert old.events == [("start",), ("stop",)]
    assert dispatcher.failure_count(new) == dispatcher.failure_count(old) == 0
    assert isinstance(old, NodeHook)


def test_node_started_without_services_passes_none() -> None:
    """A node that offers no services starts its hooks as before; they see services None."""
    dispatcher = HookDispatcher()
    hook = RecordingHook()
    dispatcher.register(hook)
    dispatcher.node_started(None, None, None)
    assert hook.services is None and hook.events == [("start",)]


def test_a_failing_transaction_event_hook_is_isolated(caplog) -> None:
    """A hook raising on a transaction event is logged and counted like a block-event failure."""

    class Exploding(RecordingHook):
        def on_transaction_dropped(self, txid_hex: str, reason: str) -> None:
            raise RuntimeError("plugin bug")

    dispatcher = HookDispatcher()
    bad, good = Exploding(), RecordingHook()
    dispatcher.register(bad)
    dispatcher.register(good)
    with caplog.at_level(logging.ERROR):
        dispatcher.transaction_dropped("ef" * 32, "reorg: double-spend")
    assert good.of_kind("dropped") == [("dropped", "ef" * 32, "reorg: double-spend")]
    assert dispatcher.failure_count(bad) == 1 and "plugin bug" in caplog.text

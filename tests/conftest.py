"""Shared fixtures. The reactor, when a test needs it, is started once per session in its own thread, the
way the node process runs it (a reactor cannot be restarted; pytest-twisted must not be active).

The harnesses, assertions and process helpers tests share live in tests/framework.py."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.framework")


@pytest.fixture
def hook():
    """A RecordingHook: the events a node under test delivered, in order."""
    from node_hooks import RecordingHook

    return RecordingHook()


@pytest.fixture
def node(tmp_path, hook):
    """A started devnet node under ``tmp_path/node`` delivering its events to ``hook`` (a module may define its
    own ``node``)."""
    from node_hooks import HookDispatcher
    from node_hooks.devnode.node import DevNode

    dispatcher = HookDispatcher()
    dispatcher.register(hook)
    node = DevNode(tmp_path / "node", dispatcher=dispatcher)
    node.start()
    yield node
    node.close()


@pytest.fixture(scope="session")
def reactor_thread():
    from halo_exchange.service import ensure_reactor_running

    ensure_reactor_running()
    yield
    from twisted.internet import reactor

    reactor.callFromThread(reactor.stop)

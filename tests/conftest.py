"""Shared fixtures. The reactor, when a test needs it, is started once per session in its own thread, the
way the node process runs it (a reactor cannot be restarted; pytest-twisted must not be active).

The harnesses, assertions and process helpers tests share live in tests/framework.py."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.framework")


@pytest.fixture(scope="session")
def reactor_thread():
    from halo_exchange.service import ensure_reactor_running

    ensure_reactor_running()
    yield
    from twisted.internet import reactor

    reactor.callFromThread(reactor.stop)

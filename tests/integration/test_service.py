"""Exchange mode inside a devnet node: the reactor thread, node events reaching the engine, the guarded bridge."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from halo_exchange.chain.params import COIN
from halo_exchange.engine import ExchangeEngine
from halo_exchange.serialize import from_display_hex
from halo_exchange.service import (
    ServiceError,
    ServiceState,
    ServiceTimeout,
    call_in_reactor,
    in_reactor_thread,
)
from node_hooks import HookDispatcher
from tests.framework import ServiceHarness, exchange_service, new_address


def test_deposits_flow_from_node_events_into_balances(tmp_path, reactor_thread) -> None:
    """Blocks the node connects reach the engine on the reactor; a named deposit is credited and survives a
    node restart, with the exchange DB closed before the node's."""
    exchange = ServiceHarness(tmp_path, api_port=None)
    node, service = exchange.node, exchange.service
    try:
        address = new_address()
        assert service.call(ExchangeEngine.add_deposit_address, address) is True
        txid = node.send_to_address(address, 5 * COIN)
        node.generate(1)
        outpoints = service.call(lambda engine: engine.deposits.outpoints_of(from_display_hex(txid)))
        assert service.call(ExchangeEngine.name_deposit, "alice", outpoints) is True
        node.generate(6)
        liquid, reserve = service.call(ExchangeEngine.balance, "alice")
        assert liquid + reserve == 5 * COIN and service.state is ServiceState.RUNNING
    finally:
        node.close()
    assert service.state is ServiceState.CLOSED

    exchange.open()
    node, service = exchange.node, exchange.service
    try:
        node.generate(1)
        assert sum(service.call(ExchangeEngine.balance, "alice")) == 5 * COIN
        assert service.call(lambda engine: engine.cycle) == node.peg_info()["cycle"]
    finally:
        node.close()


def test_bridge_refuses_the_reactor_thread_and_times_out(reactor_thread) -> None:
    """The bridge raises instead of hanging: called on the reactor thread, or when no answer comes."""

    def from_the_reactor():
        assert in_reactor_thread()
        try:
            call_in_reactor(lambda: 1)
        except ServiceError as exc:
            return str(exc)
        return "no error"

    assert "reactor thread" in call_in_reactor(from_the_reactor)
    with pytest.raises(ServiceTimeout):
        call_in_reactor(Deferred, timeout=0.2)  # a Deferred that never fires
    assert call_in_reactor(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        call_in_reactor(lambda: 1 // 0)


def test_calls_before_the_engine_runs_are_refused(tmp_path, reactor_thread) -> None:
    """Asking a service that has not started gives a clear error, not a hang."""
    service = exchange_service(HookDispatcher(), tmp_path / "exchange")
    with pytest.raises(ServiceError, match="stopped"):
        service.call(ExchangeEngine.balance, "alice")


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_an_api_reachable_beyond_the_machine_is_warned_about(tmp_path, reactor_thread, caplog, host, warned) -> None:
    """Halo listened on every interface; ours listens on loopback, and says so loudly when told otherwise."""
    with caplog.at_level("WARNING", logger="halo_exchange.service"):
        ServiceHarness(tmp_path, api_host=host).close()  # started, its engine answering, and stopped
    assert any("beyond this machine" in record.getMessage() for record in caplog.records) is warned

"""Thousands of gateways from one load-generator process: each connects (paced, one network thread), and
a second run right after the first connects them all again. paho's own per-client loop could not: its
select() stops at descriptor 1023, about 340 clients per process, and the rest never saw a CONNACK."""

from __future__ import annotations

import time

import pytest

from simulators import synthetic
from simulators.mqtt_loop import NetworkLoop
from simulators.simulated_gateway import Broker, GatewayClient, connect_all

pytestmark = pytest.mark.integration

GATEWAYS = 1_200  # well past the ~340 a process could hold before


def test_a_thousand_gateways_connect_publish_and_do_it_again(stack, stack_services) -> None:  # type: ignore[no-untyped-def]
    pairs = [(synthetic.site_id(k), f"MANY-G{k:05d}") for k in range(GATEWAYS)]
    broker = Broker(stack.mqtt_host, stack.mqtt_port, stack_services.add_gateways(pairs), stack.client_tls)
    for _ in range(2):
        net = NetworkLoop()
        clients = [GatewayClient(site, gw, broker, net=net) for site, gw in pairs]
        try:
            started = time.monotonic()
            connect_all(clients)
            assert all(c.connected for c in clients)
            assert time.monotonic() - started < 120
            # Published through the shared network thread and acknowledged by the broker: each gateway
            # clears its retained status (no telemetry: no bridge here, and nothing left for other tests).
            infos = [c.client.publish(c.topic("status"), b"", qos=1, retain=True) for c in clients]
            for info in infos:
                info.wait_for_publish(30)
            assert all(info.is_published() for info in infos)
        finally:
            for c in clients:
                c.leave_online()  # a clean DISCONNECT: no will, nothing retained
            assert all(c.wait_closed(10) for c in clients)
            net.stop()
        assert net.error is None

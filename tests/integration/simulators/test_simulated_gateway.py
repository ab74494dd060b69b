"""A simulated gateway against the real Mosquitto of the stack: protocol, QoS 1 acks, last will."""

from __future__ import annotations

import time
import uuid

import orjson

from deploy.stack import add_gateways
from riskwatch.wire.gateway_protocol import parse_events, parse_status, parse_telemetry
from simulators.faults import Fault
from simulators.plants import Incident
from simulators.simulated_gateway import Broker, GatewayClient, announce_online
from simulators.simulation import Simulation
from tests.integration.simulators.mqtt_watch import Watch
from tests.unit.simulators.factory import indexed, sensor


def test_gateway_publishes_protocol_messages_and_its_will_fires_on_drop(stack) -> None:
    site, gw = f"S{uuid.uuid4().hex[:6]}", f"GW{uuid.uuid4().hex[:6]}"
    broker = Broker(stack.mqtt_host, stack.mqtt_port, add_gateways(stack, [(site, gw)]), stack.client_tls)
    sensors = indexed(
        [
            sensor("PT-MAIN", "gas_main_pressure", site=site, unit="K1", gateway=gw),
            sensor("XV-CUT", "cutoff_valve", site=site, unit="K1", gateway=gw),
        ]
    )
    sim = Simulation(sensors, {site: "gas_kiln"}, seed=1)
    watch = Watch(stack, f"rw/v1/{site}/#")
    client = GatewayClient(site, gw, broker)
    try:
        client.connect()
        online = watch.wait_for(lambda m: m[0].endswith("/status"))
        assert parse_status(online[0][1]).state == "online"
        t0 = time.time()
        for k in range(3):
            for batch in sim.tick(t0 + k, 1.0).batches:
                client.publish_batch(batch)
        assert client.wait_acked(10) and client.acked_readings == 6
        sim.inject(
            site, Incident("pressure_drop", "K1", {"drop": 0.8, "cutoff": True, "cutoff_delay_s": 1.0})
        )
        for k in range(3, 10):
            client.publish_events(sim.tick(t0 + k, 1.0).events, {"K1": "XV-CUT"})
        tel = watch.wait_for(lambda m: m[0] == f"rw/v1/{site}/{gw}/telemetry")
        parsed = [parse_telemetry(p) for _, p, _ in tel]
        seqs = [m.seq for m in parsed]
        # A millisecond clock, strictly increasing (the protocol's advice: a restart never reuses a seq).
        assert len(seqs) == 3 and seqs == sorted(set(seqs)) and seqs[0] >= int(t0 * 1000)
        assert all(m.bad == [] and m.sensor == ["PT-MAIN", "XV-CUT"] for m in parsed)
        events = watch.wait_for(lambda m: m[0].endswith("/events"))
        ev = parse_events(events[0][1])
        assert [(e.kind, e.target) for e in ev.events] == [("valve_closed", "XV-CUT")]
        sim.start_fault(Fault("disconnect", gw), t0 + 10)
        client.drop()
        offline = watch.wait_for(lambda m: m[0].endswith("/status") and b"offline" in m[1])
        assert offline and orjson.loads(offline[0][1])["gw"] == gw
    finally:
        client.close()
        watch.close()


def test_announce_online_replaces_a_retained_offline(stack) -> None:
    site, gw = f"S{uuid.uuid4().hex[:6]}", f"GW{uuid.uuid4().hex[:6]}"
    broker = Broker(stack.mqtt_host, stack.mqtt_port, add_gateways(stack, [(site, gw)]), stack.client_tls)
    client = GatewayClient(site, gw, broker)
    client.connect()
    client.close()  # leaves a retained "offline", as every orderly shutdown does
    announce_online({gw: site}, broker)
    watch = Watch(stack, f"rw/v1/{site}/{gw}/status")  # a bridge subscribing now gets the retained status
    try:
        retained = watch.wait_for(lambda m: m[2])
        assert [parse_status(p).state for _, p, _ in retained] == ["online"]
    finally:
        watch.close()

"""The world the hostile tests attack: the real pipeline on the suite's stack, legitimate gateways
publishing beside it, and the independent clients the attacks are sent with.

- `Legit`: simulated gateways (paho, as a plant would run them) publishing every sensor once a second;
  a red is two gas detectors of a fresh site driven above their L2 set point.
- `DeadLetters`: every record of the prefix's `rw.deadletter`, read with kafka-python from the start.
- `mosquitto_pub` / `mosquitto_sub` (Debian mosquitto-clients) with a gateway account's credentials and
  `kcat` (Debian kcat) producing raw records: clients that share no code with riskwatch.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from riskwatch.kafka_access import KafkaAccess
from riskwatch.wire.batch import BatchDecodeError, decode
from riskwatch.wire.deadletter import DeadLetter, DeadLetterDecodeError
from simulators.kafka_watch import TopicReader
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, GatewayClient
from simulators.webhook import WebhookReceiver
from tests.integration.kcat import kcat

NORMAL = 2.0  # %LEL: clean air
RED = 80.0  # %LEL: above L2 (50), on two detectors of a unit -> red (gas_l2_two_detectors)
RED_WITHIN_S = 20.0
REGION = "HOST-R1"
PLAIN_SITES = 60  # one fresh site per red, so no colour sticks from one test to the next


def site_id(k: int) -> str:
    return f"HOST-S{k:02d}"


def detectors(site: str) -> tuple[str, str]:
    return f"{site}-GT1", f"{site}-GT2"


def _gas(sid: str) -> dict[str, Any]:
    return {"id": sid, "type": "flammable_gas", "range": [0, 100], "l1_high": 25, "l2_high": 50}


def registry_doc() -> dict[str, Any]:
    """Plain sites (one gateway, one unit of two gas detectors and a CO detector each), a site of two
    gateways each serving its own unit (for binding attacks), and an attacker's site."""
    sites: list[dict[str, Any]] = []
    for k in range(PLAIN_SITES):
        site = site_id(k)
        sites.append(
            {
                "id": site,
                "region": REGION,
                "industry": "hazardous_chemicals",
                "gateways": [{"id": f"HOST-G{k:02d}"}],
                "units": [
                    {
                        "id": f"{site}-U1",
                        "kind": "tank_farm",
                        "sensors": [*map(_gas, detectors(site)), {"id": f"{site}-CO", "type": "co"}],
                    }
                ],
            }
        )
    sites.append(
        {
            "id": "HOST-SM",
            "region": REGION,
            "industry": "hazardous_chemicals",
            "gateways": [{"id": "HOST-GMA"}, {"id": "HOST-GMB"}],
            "units": [
                {"id": "HOST-SM-UA", "kind": "tank_farm", "gateway": "HOST-GMA",
                 "sensors": [_gas("HOST-SM-A1"), _gas("HOST-SM-A2")]},
                {"id": "HOST-SM-UB", "kind": "tank_farm", "gateway": "HOST-GMB",
                 "sensors": [_gas("HOST-SM-B1"), _gas("HOST-SM-B2")]},
            ],
        }
    )  # fmt: skip
    sites.append(
        {
            "id": "HOST-SX",
            "region": REGION,
            "industry": "hazardous_chemicals",
            "gateways": [{"id": "HOST-GX"}, {"id": "HOST-GV"}],
            "units": [
                {"id": "HOST-SX-U1", "kind": "tank_farm", "gateway": "HOST-GX",
                 "sensors": [_gas("HOST-SX-X1")]},
                {"id": "HOST-SX-U2", "kind": "tank_farm", "gateway": "HOST-GV",
                 "sensors": [_gas("HOST-SX-V1")]},
            ],
        }
    )  # fmt: skip
    return {"version": 1, "regions": [{"id": REGION}], "sites": sites}


def gateways_of(doc: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """gateway -> (site, its sensors), from the document."""
    out: dict[str, tuple[str, list[str]]] = {}
    for site in doc["sites"]:
        only = site["gateways"][0]["id"] if len(site["gateways"]) == 1 else None
        for g in site["gateways"]:
            out.setdefault(g["id"], (site["id"], []))
        for unit in site["units"]:
            gw = unit.get("gateway", only)
            out[gw][1].extend(s["id"] for s in unit["sensors"])
    return out


class Legit:
    """Well-behaved gateways publishing each of their sensors once a second, for the whole module."""

    def __init__(self, broker: Broker, gateways: dict[str, tuple[str, list[str]]]) -> None:
        self.gateways = gateways
        self.clients = {gw: GatewayClient(site, gw, broker) for gw, (site, _) in gateways.items()}
        self.values: dict[str, float] = {}
        self.disconnects: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="legit-gateways", daemon=True)
        for gw, client in self.clients.items():
            own = client.client.on_disconnect

            def counted(*args: Any, _gw: str = gw, _own: Callable[..., None] = own) -> None:
                self.disconnects[_gw] += 1
                _own(*args)

            client.client.on_disconnect = counted

    def start(self) -> Legit:
        for client in self.clients.values():
            client.connect()
        self._thread.start()
        return self

    def set(self, sensors: tuple[str, ...] | list[str], value: float) -> None:
        for sensor in sensors:
            self.values[sensor] = value

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            for gw, (_, sensors) in self.gateways.items():
                rows = [{"s": s, "v": self.values.get(s, NORMAL), "t": now} for s in sensors]
                try:
                    self.clients[gw].publish_rows(rows)
                except Exception as exc:  # reported by the test that looks, never hidden
                    self.errors.append(f"{gw}: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for client in self.clients.values():
            if client.connected:
                client.leave_online()


class DeadLetters:
    """Every dead letter of the prefix, decoded, collected in a thread."""

    def __init__(self, kafka: KafkaAccess, topic: str) -> None:
        self.reader = TopicReader(kafka, topic, from_beginning=True)
        self.letters: list[DeadLetter] = []
        self.sizes: list[int] = []
        self.undecodable: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deadletters", daemon=True)

    def start(self) -> DeadLetters:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for raw in self.reader.poll(0.2):
                with self._lock:
                    try:
                        self.letters.append(DeadLetter.from_bytes(raw))
                        self.sizes.append(len(raw))
                    except DeadLetterDecodeError:
                        self.undecodable.append(raw)

    def matching(self, marker: bytes) -> list[DeadLetter]:
        with self._lock:
            return [d for d in self.letters if marker in d.original]

    def wait(self, marker: bytes, timeout_s: float = 15.0, component: str = "") -> DeadLetter:
        """The first dead letter whose original holds `marker` (written by `component`, when given: several
        consumers read some topics, and each dead-letters what it cannot take); fails with what did arrive."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [d for d in self.matching(marker) if not component or d.component == component]
            if found:
                return found[0]
            time.sleep(0.1)
        with self._lock:
            seen = [(d.reason, d.source, d.detail[:80]) for d in self.letters[-8:]]
        raise AssertionError(f"no dead letter holding {marker!r} within {timeout_s} s; last seen: {seen}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.reader.close()


@dataclass
class World:
    stack: Any
    stack_services: Any
    pipe: Pipeline
    topics: Any
    doc: dict[str, Any]
    registry: Path
    receiver: WebhookReceiver
    legit: Legit
    deadletters: DeadLetters
    passwords: dict[str, str]
    api_token: str
    workdir: Path
    fresh: Iterator[str] = field(default_factory=lambda: iter(site_id(k) for k in range(PLAIN_SITES)))
    _marker: int = 0
    _files: int = 0

    # -- bookkeeping -------------------------------------------------------------------------------
    def marker(self) -> str:
        """A unique text an attack carries, to find its own dead letter."""
        self._marker += 1
        return f"hostile-{self.topics.prefix}-{self._marker:04d}"

    def fresh_site(self) -> str:
        return next(self.fresh)

    def logs(self, lines: int = 30) -> str:
        out = []
        for log in sorted((self.pipe.run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(line[:300] for line in tail))
        return "\n".join(out)

    # -- the proof after every attack --------------------------------------------------------------
    def red_reaches_webhook(self, site: str | None = None, keep: bool = False) -> float:
        """Drive two detectors of a fresh site above L2; its red must reach the webhook in time.
        With `keep`, the detectors stay high afterwards (else they go back to clean air)."""
        site = site or self.fresh_site()
        started = time.time()
        self.legit.set(detectors(site), RED)
        try:
            while time.time() - started < RED_WITHIN_S:
                # only a notification sent after the drive counts: an earlier red of the site proves nothing
                if any(
                    d.colour == "red" and d.mentions(site) and d.at >= started for d in self.receiver.unique()
                ):
                    return time.time() - started
                time.sleep(0.2)
        finally:
            if not keep:
                self.legit.set(detectors(site), NORMAL)
        dead = self.pipe.dead()
        raise AssertionError(
            f"the red of {site} did not reach the webhook within {RED_WITHIN_S} s "
            f"(services dead: {dead}; legit gateway errors: {self.legit.errors[-3:]})\n{self.logs()}"
        )

    def alive(self) -> None:
        dead = self.pipe.dead()
        assert not dead, f"services died: {dead}\n{self.logs()}"
        for name in ("bridge", "worker", "alerting"):
            health = self.health(name)
            assert health is None or health < 500, f"{name} /healthz answers {health}\n{self.logs()}"

    # -- service endpoints -------------------------------------------------------------------------
    def _port(self, name: str, flag: str) -> int:
        argv = list(self.pipe.services[name].proc.args)  # type: ignore[arg-type]
        return int(argv[argv.index(flag) + 1])

    def _url(self, name: str, path: str) -> str:
        """The component's own endpoint; alerting's (API, /healthz, /metrics) is HTTPS, as under run."""
        if name == "alerting":
            return f"https://127.0.0.1:{self._port(name, '--port')}{path}"
        return f"http://127.0.0.1:{self._port(name, '--metrics-port')}{path}"

    def _open(self, target: str | urllib.request.Request, timeout: float) -> Any:
        """urlopen, verifying alerting's certificate against the stack's CA (not skipping the check)."""
        return urllib.request.urlopen(target, timeout=timeout, context=self.stack.client_tls.context())

    def metrics(self, name: str) -> str:
        with self._open(self._url(name, "/metrics"), 5) as r:
            return r.read().decode()

    def metric(self, name: str, family: str, **labels: str) -> float:
        """The sum of a metric family's samples whose labels include `labels` (0 if none)."""
        total = 0.0
        pattern = re.compile(rf"^{re.escape(family)}(?:_total)?(\{{[^}}]*\}})?\s+(\S+)$")
        for line in self.metrics(name).splitlines():
            m = pattern.match(line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def health(self, name: str) -> int | None:
        """The status of the component's /healthz (None where it has none)."""
        try:
            url = self._url(name, "/healthz")
        except (KeyError, ValueError):
            return None
        try:
            with self._open(url, 5) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return None if err.code == 404 else int(err.code)
        except OSError:
            return 599

    def api(self, method: str, path: str, body: bytes | None = None, token: str | None = None) -> int:
        """An HTTP request to the alerting API; returns the status (raw urllib, no riskwatch code)."""
        request = urllib.request.Request(self._url("alerting", path), data=body, method=method)
        request.add_header("Authorization", f"Bearer {token or self.api_token}")
        request.add_header("Content-Type", "application/json")
        try:
            with self._open(request, 30) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    def api_json(self, path: str) -> Any:
        request = urllib.request.Request(self._url("alerting", path))
        request.add_header("Authorization", f"Bearer {self.api_token}")
        with self._open(request, 10) as r:
            return orjson.loads(r.read())

    # -- independent clients -----------------------------------------------------------------------
    def _file(self, payload: bytes) -> Path:
        self._files += 1
        path = self.workdir / f"payload-{self._files:04d}.bin"
        path.write_bytes(payload)
        return path

    def mosquitto_pub(
        self,
        gateway: str,
        payload: bytes,
        channel: str = "telemetry",
        *,
        site: str | None = None,
        topic: str | None = None,
        client_id: str | None = None,
        version: str = "mqttv5",
    ) -> subprocess.CompletedProcess[str]:
        """Publish one message as `gateway` (its account) with mosquitto_pub, QoS 1."""
        site = site or gateways_of(self.doc)[gateway][0]
        topic = topic or f"rw/v1/{site}/{gateway}/{channel}"
        argv = [
            _tool("mosquitto_pub"), "-h", self.stack.mqtt_host, "-p", str(self.stack.mqtt_port),
            "--cafile", str(self.stack.cafile), "-u", gateway, "-P", self.passwords[gateway], "-V", version, "-q", "1",
            "-t", topic, "-f", str(self._file(payload)),
        ]  # fmt: skip
        if client_id:
            argv += ["-i", client_id]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if "not currently connected" in done.stderr:
            # Client ids are account names: a legitimate publisher of the same account reconnecting at
            # that moment takes the session over. A gateway sends again; so does this (seq deduplicates).
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return done

    def mosquitto_sub(self, gateway: str, client_id: str, seconds: int) -> subprocess.Popen[str]:
        """Ask to resume the MQTT session of `client_id` (clean start off) as `gateway`, for `seconds`.

        The session ends when this client disconnects (session expiry 0). With a session that outlived
        it (600 s, as this once asked), Mosquitto 2.0.x crashed some minutes later, when that session
        expired, after these holders had taken it over from each other: its expiry list was corrupt
        (docs/deploy.md, "Mosquitto version"). What is under test is the bridge's session, not this one.
        """
        site = gateways_of(self.doc)[gateway][0]
        argv = [
            _tool("mosquitto_sub"), "-h", self.stack.mqtt_host, "-p", str(self.stack.mqtt_port),
            "--cafile", str(self.stack.cafile), "-u", gateway, "-P", self.passwords[gateway], "-V", "mqttv5", "-q", "1",
            "-i", client_id, "-c", "-x", "0", "-W", str(seconds), "-v",
            "-t", "rw/v1/#", "-t", f"rw/v1/{site}/{gateway}/#",
        ]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def kcat(self, topic: str, value: bytes | None, key: str = "") -> None:
        """Produce one raw record with kcat as the tools account (a null value if `value` is None): an
        operator's or a compromised tool's record; outsiders and other components' accounts are refused
        (tests/integration/test_kafka_auth.py)."""
        argv = ["-P", "-t", topic]
        if key:
            argv += ["-k", key]
        if value is None:
            argv += ["-Z", str(self._file(b""))]
        else:
            argv.append(str(self._file(value)))
        done = kcat(self.stack.kafka("tools"), self.stack.kafka_bootstrap, *argv)
        assert done.returncode == 0, f"kcat failed: {done.stderr}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed; ./dev setup installs it (Debian mosquitto-clients / kcat)"
    return path


def telemetry_sources(
    kafka: KafkaAccess, topic: str, gateway: str, wanted: set[int], timeout_s: float
) -> set[int]:
    """The seqs of `wanted` that reached `rw.telemetry` from `gateway` (read from the start)."""
    reader = TopicReader(kafka, topic, from_beginning=True)
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not wanted <= seen:
            for raw in reader.poll(0.5):
                try:
                    batch = decode(raw)
                except BatchDecodeError:
                    continue
                seen.update(s.seq for s in batch.sources if s.gateway == gateway and s.seq in wanted)
    finally:
        reader.close()
    return seen


class Victim:
    """A gateway connected with a predictable client id (its own name), as many real gateways are."""

    def __init__(self, broker: Broker, site: str, gateway: str) -> None:
        self.disconnects = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gateway, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(gateway, broker.passwords[gateway])
        self.client.tls_set_context(broker.tls.context())
        self.client.will_set(f"rw/v1/{site}/{gateway}/status", orjson.dumps({"gw": gateway, "state": "offline"}),
                             qos=1, retain=True)  # fmt: skip
        self._connected = threading.Event()
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.on_disconnect = self._gone
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(15), f"victim gateway {gateway} could not connect"

    def _gone(self, *args: Any) -> None:
        self.disconnects += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

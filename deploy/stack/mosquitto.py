"""Mosquitto from Debian's package: TLS only (a certificate from the stack's CA), passwords and
per-gateway ACLs on, persistence for QoS 1. There is no plaintext listener."""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from deploy.stack.certs import IssuedCertificate, stack_ca
from deploy.stack.process import wait_until
from deploy.stack.service import Service, require_tool
from deploy.stack.settings import BRIDGE_USER, PROBE_USER
from riskwatch.errors import StackError
from riskwatch.secrets import write_private
from riskwatch.tls import ClientTLS
from riskwatch.topics import MQTT_VERSION
from riskwatch.wire.gateway_protocol import MAX_PAYLOAD_BYTES, MQTT_PACKET_OVERHEAD

MOSQUITTO_HINT = "install Debian's mosquitto package (./dev setup does it: apt-get install mosquitto)"
# Mosquitto 2.0's own password format: PBKDF2-SHA512, 101 iterations, 12-byte salt ($7$ in the file).
PBKDF2_ITERATIONS = 101


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def gateway_acl(site: str, gateway: str) -> str:
    """A gateway may publish (and set its last will) only under its own site and id."""
    return f"user {gateway}\ntopic write rw/{MQTT_VERSION}/{site}/{gateway}/#\n"


def bridge_acl(user: str) -> str:
    """A bridge account reads every gateway's topics, directly or through a shared subscription."""
    return f"user {user}\ntopic read rw/{MQTT_VERSION}/#\ntopic read $share/+/rw/{MQTT_VERSION}/#\n"


def probe_password(bridge_password: str) -> str:
    """The probe account's password, derived from the bridge's (it may do nothing, so one secret is enough)."""
    return hmac.new(bridge_password.encode(), PROBE_USER.encode(), hashlib.sha256).hexdigest()[:24]


# Settings a deployment must share with the local stack (deploy/mosquitto/mosquitto.conf is checked
# against these). Each entry: (option, value, why). They follow the `listener` line: some of them
# (use_username_as_clientid) are listener options.
SHARED_SETTINGS: list[tuple[str, str, str]] = [
    ("per_listener_settings", "false", ""),
    ("allow_anonymous", "false", "every client authenticates: gateways, bridges, tools"),
    (
        "use_username_as_clientid",
        "true",
        "the client id is the account name: nobody can take over another account's session or kick it off",
    ),
    ("persistence", "true", "persistent sessions: QoS 1 messages wait for a bridge that is down"),
    ("autosave_interval", "30", ""),
    (
        "max_queued_messages",
        "2000000",
        "never 0 on 2.0.x (0 can drop QoS 0); large so a slow subscriber loses nothing",
    ),
    ("max_queued_bytes", "0", "no byte limit: the message count above bounds the queue"),
    ("max_inflight_messages", "1000", "enough in flight for one bridge to carry a province"),
    (
        "max_packet_size",
        str(MAX_PAYLOAD_BYTES + MQTT_PACKET_OVERHEAD),
        "the bridge's payload limit plus a topic and headers: a bit more is dead-lettered by the bridge, "
        "beyond that the sender is disconnected",
    ),
    ("set_tcp_nodelay", "true", "latency over bandwidth"),
    ("log_type", "error", ""),
    ("log_type", "warning", ""),
    ("log_type", "notice", ""),
    ("connection_messages", "true", ""),
]


# The TLS listener's settings, shared with deploy/mosquitto/mosquitto.conf like the ones above. They follow
# the listener's `cafile` / `certfile` / `keyfile` lines.
TLS_SETTINGS: list[tuple[str, str, str]] = [
    ("tls_version", "tlsv1.2", "TLS 1.2 at least"),
    (
        "require_certificate",
        "false",
        "true: every client (gateways, bridges, tools) must also present a certificate signed by cafile "
        "(mutual TLS) besides its password; false: the password alone",
    ),
]


def tls_settings(require_certificate: bool) -> list[tuple[str, str, str]]:
    return [
        (
            option,
            ("true" if require_certificate else "false") if option == "require_certificate" else value,
            why,
        )
        for option, value, why in TLS_SETTINGS
    ]


def render_settings(settings: list[tuple[str, str, str]]) -> str:
    lines = []
    for option, value, why in settings:
        if why:
            lines.append(f"# {why}")
        lines.append(f"{option} {value}")
    return "\n".join(lines) + "\n"


def write_auth_files(
    directory: Path,
    bridge_password: str,
    gateways: dict[str, dict[str, str]],
    bridges: dict[str, str] | None = None,
) -> None:
    """Mosquitto's password file (hashed) and ACL: bridge accounts read rw/v1/#, each gateway writes its
    own topics, the probe account may do nothing. `bridges` are more bridge accounts (name -> password):
    one per bridge instance, since an account is also its client id and so its one session."""
    extra = bridges or {}
    accounts = {BRIDGE_USER: bridge_password, **extra, PROBE_USER: probe_password(bridge_password)}
    lines = [f"{user}:{hash_password(password)}" for user, password in accounts.items()]
    lines += [f"{gw}:{hash_password(entry['password'])}" for gw, entry in gateways.items()]
    acl = ["# Generated by riskwatch from the bridge and gateway accounts."]
    acl += [bridge_acl(user) for user in (BRIDGE_USER, *extra)]
    acl += [f"# {PROBE_USER}: no topic at all (readiness probes only)", ""]
    acl += [gateway_acl(entry["site"], gw) for gw, entry in gateways.items()]
    for name, text in (("passwd", "\n".join(lines) + "\n"), ("acl", "\n".join(acl) + "\n")):
        write_private(directory / name, text)


class Mosquitto(Service):
    name = "mosquitto"
    start_timeout_s = 30.0
    # Mutual TLS: every client must also present a certificate from the stack's CA. Off in the local
    # stack (passwords only); deployments can turn it on in their mosquitto.conf.
    require_certificate = False

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.mqtt_port}"

    @property
    def gateways_file(self) -> Path:
        return self.dir / "gateways.json"

    @property
    def bridges_file(self) -> Path:
        return self.dir / "bridges.json"

    def ports(self) -> dict[str, int]:
        return {"mqtt": self.settings.mqtt_port}

    def binary(self) -> str:
        return require_tool("mosquitto", MOSQUITTO_HINT, "/usr/sbin/mosquitto")

    def provision(self) -> None:
        version = subprocess.run([self.binary(), "-h"], capture_output=True, text=True).stdout.split("\n")[0]
        if "version 2." not in version:
            raise StackError(
                f"Mosquitto 2.x is required (found: {version.strip() or 'unknown'}); {MOSQUITTO_HINT}"
            )

    def certificate(self) -> IssuedCertificate:
        """The broker's server certificate (reused across restarts; see deploy/stack/certs.py)."""
        return stack_ca(self.home).server(self.name, [self.settings.host])

    def prepare(self) -> None:
        s = self.settings
        (self.dir / "persist").mkdir(parents=True, exist_ok=True)
        self._write_auth()
        cert = self.certificate()
        conf = f"""\
# Generated by riskwatch stack: loopback only, TLS only, anonymous off, passwords and per-gateway ACLs on.
# Run as whoever runs the stack (as root, Mosquitto would otherwise switch to user 'mosquitto').
user {getpass.getuser()}
password_file {self.dir / "passwd"}
acl_file {self.dir / "acl"}
listener {s.mqtt_port} {s.host}
cafile {cert.ca}
certfile {cert.cert}
keyfile {cert.key}
{render_settings(tls_settings(self.require_certificate))}persistence_location {self.dir / "persist"}/
log_dest file {self.dir / "broker.log"}
{render_settings(SHARED_SETTINGS)}"""
        (self.dir / "mosquitto.conf").write_text(conf)

    def command(self) -> list[str]:
        return [self.binary(), "-c", str(self.dir / "mosquitto.conf")]

    # -- accounts ----------------------------------------------------------------------------------
    _lock = threading.Lock()

    def gateways(self) -> dict[str, dict[str, str]]:
        if not self.gateways_file.exists():
            return {}
        return orjson.loads(self.gateways_file.read_bytes())

    def add_gateways(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Create (or keep) an account per gateway; returns gateway id -> password. Reloads Mosquitto."""
        with self._lock:
            known = self.gateways()
            reserved = {BRIDGE_USER, PROBE_USER, *self.bridges()}
            result: dict[str, str] = {}
            changed: list[str] = []
            for site, gateway in pairs:
                if gateway in reserved:
                    raise StackError(f"gateway id {gateway!r} is reserved for a bridge or probe account")
                entry = known.get(gateway)
                if entry is None or entry["site"] != site:
                    entry = {"site": site, "password": secrets.token_urlsafe(12)}
                    known[gateway] = entry
                    changed.append(gateway)
                result[gateway] = entry["password"]
            if changed:
                self._save(self.gateways_file, known)
                self._reload_until_accepted(changed[-1], known[changed[-1]]["password"])
            return result

    def bridges(self) -> dict[str, str]:
        """Bridge accounts beyond the default one: name -> password."""
        if not self.bridges_file.exists():
            return {}
        return orjson.loads(self.bridges_file.read_bytes())

    def add_bridges(self, names: Iterable[str]) -> dict[str, str]:
        """Create (or keep) a bridge account per name; returns name -> password. Reloads Mosquitto.

        Client ids are bound to accounts, so each running bridge (and each tool that reads gateway
        topics while a bridge runs) needs an account of its own."""
        with self._lock:
            known, gateways = self.bridges(), self.gateways()
            result: dict[str, str] = {}
            changed: list[str] = []
            for name in names:
                if name == BRIDGE_USER:
                    result[name] = self.settings.bridge_password
                    continue
                if name == PROBE_USER or name in gateways:
                    raise StackError(f"{name!r} is already a gateway or the probe account")
                if name not in known:
                    known[name] = secrets.token_urlsafe(18)
                    changed.append(name)
                result[name] = known[name]
            if changed:
                self._save(self.bridges_file, known)
                self._reload_until_accepted(changed[-1], known[changed[-1]])
            return result

    def _save(self, path: Path, doc: Mapping[str, object]) -> None:
        write_private(path, orjson.dumps(doc))

    def _reload_until_accepted(self, user: str, password: str) -> None:
        self._write_auth()
        self.reload()
        # SIGHUP is asynchronous: wait until the new account works
        if self.pid() is not None and not wait_until(lambda: self._connack(user, password), 15.0):
            raise StackError(f"mosquitto did not accept the new account {user!r} after reload")

    def _write_auth(self) -> None:
        write_auth_files(self.dir, self.settings.bridge_password, self.gateways(), self.bridges())

    def reload(self) -> None:
        """Mosquitto re-reads the password and ACL files on SIGHUP."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def _connack(self, user: str, password: str) -> bool:
        from deploy.stack.probes import mqtt_connack

        mqtt_connack(self.settings.host, self.settings.mqtt_port, user, password, self.client_tls())
        return True

    def client_tls(self) -> ClientTLS:
        """What the stack's own probes connect with: the stack's CA, and a client certificate of their
        own when the broker requires one."""
        ca = stack_ca(self.home)
        if not self.require_certificate:
            return ClientTLS(ca.ca_cert)
        probe = ca.client(PROBE_USER)
        return ClientTLS(probe.ca, probe.cert, probe.key)

    def probe(self) -> None:
        self._connack(PROBE_USER, probe_password(self.settings.bridge_password))

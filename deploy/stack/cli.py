"""`riskwatch stack up | down | status [--json] | provision | info | gateways`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import orjson

from deploy.stack.settings import BRIDGE_USER, StackSettings
from deploy.stack.stack import SETTINGS_FILE, Stack
from riskwatch.errors import StackError
from riskwatch.paths import cache_dir, home_dir
from riskwatch.secrets import MASK, write_private

EXAMPLE_REGISTRY = Path(__file__).resolve().parent.parent / "examples" / "registry.yaml"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="folder for service data, logs and pids (default: ./.riskwatch/stack)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="provision (first time), start and wait until every service is ready")
    up.add_argument(
        "--kafka-port", type=int, help="Kafka broker port (default: a free port, then remembered)"
    )
    up.add_argument("--mqtt-port", type=int, help="Mosquitto port (default: a free port, then remembered)")
    up.add_argument(
        "--influx-port", type=int, help="InfluxDB HTTP port (default: a free port, then remembered)"
    )
    up.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="create MQTT accounts for this site registry's gateways (default: the example registry)",
    )
    sub.add_parser("down", help="stop every service by its recorded pid")
    status = sub.add_parser("status", help="show each service's address, pid and readiness")
    status.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("provision", help="only fetch the Kafka jars and build InfluxDB into the per-user cache")
    accounts = sub.add_parser(
        "accounts",
        help="write Mosquitto passwd + ACL for a registry's gateways (for docker-compose deployers)",
    )
    accounts.add_argument("--registry", type=Path, required=True, help="site registry YAML")
    accounts.add_argument("--out", type=Path, required=True, help="folder for passwd, acl and passwords.json")
    accounts.add_argument(
        "--tls-host",
        action="append",
        default=[],
        metavar="NAME",
        help="the broker's host name or address as gateways and bridges reach it (repeatable): writes "
        "certs/ under --out, a CA (kept on later runs) and the broker's certificate for these names",
    )
    accounts.add_argument(
        "--https-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also write certs/alerting.pem and .key for the alerting API and board under these names "
        "(repeatable; the loopback names are always included)",
    )
    accounts.add_argument(
        "--client-certs",
        action="store_true",
        help="also write a client certificate per gateway into certs/ (GATEWAY.pem, GATEWAY.key; optional mutual TLS)",
    )
    accounts.add_argument(
        "--bridges",
        type=int,
        default=1,
        help="bridge accounts to create (riskwatch-bridge, riskwatch-bridge-2, ...): one per bridge instance, "
        "since the broker binds client ids to accounts (default %(default)s)",
    )
    kafka_accounts = sub.add_parser(
        "kafka-accounts",
        help="write Kafka passwords, the broker's logins, a CA and the broker's certificate (docker-compose)",
    )
    kafka_accounts.add_argument("--out", type=Path, required=True, help="folder (deploy/kafka-secrets)")
    kafka_accounts.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name or address clients reach Kafka by, put in its certificate (repeatable)",
    )
    acls = sub.add_parser("kafka-acls", help="print the Kafka accounts and what each may do (Markdown)")
    acls.add_argument("--topic-prefix", default="rw", help="topic prefix (default rw)")
    info = sub.add_parser("info", help="print connection details as JSON (passwords masked unless asked)")
    info.add_argument(
        "--secrets",
        action="store_true",
        help="print the bridge password, the InfluxDB token and each Kafka account's password",
    )
    info.add_argument("--gateways", action="store_true", help="include gateway MQTT passwords")


# StackInfo fields that are credentials (or dicts of them): printed only with --secrets.
SECRET_FIELDS = ("bridge_password", "influx_token", "kafka_passwords")


def _home(args: argparse.Namespace) -> Path:
    return args.home or home_dir() / "stack"


def run(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.action == "provision":
        settings = StackSettings.load(home / SETTINGS_FILE) or StackSettings.create()
        Stack(home, settings=settings).provision()
        print(f"stack: provisioned into {cache_dir()}")
        return 0
    if args.action == "up":
        return _up(home, args)
    if args.action == "accounts":
        return _accounts(
            args.registry, args.out, args.bridges, args.tls_host, args.client_certs, args.https_host
        )
    if args.action == "kafka-accounts":
        from deploy.stack.kafka_deploy import write_secrets

        passwords = write_secrets(args.out, args.host)
        print(f"wrote {len(passwords)} Kafka account passwords, jaas.conf, admin.properties, ca.pem and "
              f"kafka.pem under {args.out} (0600; the apache/kafka image reads them as uid 1000)")  # fmt: skip
        return 0
    if args.action == "kafka-acls":
        return _kafka_acls(args.topic_prefix)
    stack = Stack(home)
    if args.action == "down":
        for name, stopped in stack.down():
            print(f"{name:<10} {'stopped' if stopped else 'was not running'}")
        return 0
    if args.action == "status":
        if not stack.configured:
            statuses: list[dict[str, object]] = []
        else:
            statuses = [s.as_dict() for s in stack.status()]
        if args.json:
            sys.stdout.write(orjson.dumps(statuses, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            for s in statuses:
                print(
                    f"{s['name']:<10} {s['address']:<22} pid {s['pid'] or '-':<8} "
                    f"{'ready' if s['ready'] else 'NOT READY'}  {s['detail']}"
                )
            if not statuses:
                print(f"no stack under {home}; run 'riskwatch stack up'")
        return 0 if statuses and all(s["ready"] for s in statuses) else 1
    if args.action == "info":
        doc: dict[str, object] = {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(stack.info()).items()
        }
        if not args.secrets:  # a terminal, a scroll-back or a pasted log must not show them by default
            doc.update({k: _masked(doc[k]) for k in SECRET_FIELDS})
        if args.gateways:
            doc["gateways"] = stack.gateway_passwords()
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    raise StackError(f"unknown action {args.action}")


def _masked(value: object) -> object:
    return {k: MASK for k in value} if isinstance(value, dict) else MASK


def _kafka_acls(prefix: str) -> int:
    """The Kafka accounts and ACL entries riskwatch/kafka_accounts.py declares, for docs and deployers."""
    from riskwatch.kafka_accounts import markdown_table
    from riskwatch.topics import Topics

    print(markdown_table(Topics(prefix)))
    return 0


def _up(home: Path, args: argparse.Namespace) -> int:
    overrides = {"kafka_port": args.kafka_port, "mqtt_port": args.mqtt_port, "influx_port": args.influx_port}
    settings = StackSettings.load(home / SETTINGS_FILE)
    if settings is None:
        settings = StackSettings.create(**overrides)
    elif any(v is not None for v in overrides.values()):
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    stack = Stack(home, settings=settings)
    for name, started in stack.up():
        print(f"{name:<10} {'started' if started else 'already running'}", flush=True)
    registry = args.registry or (EXAMPLE_REGISTRY if EXAMPLE_REGISTRY.exists() else None)
    if registry is not None:
        from riskwatch.registry import load_registry

        reg = load_registry(registry)
        passwords = stack.add_gateways((gw.site, gw.id) for gw in reg.gateways.values())
        print(f"mosquitto  {len(passwords)} gateway accounts from {registry}")
    for s in stack.status():
        print(f"{s.name:<10} {s.address:<22} pid {s.pid}  {'ready' if s.ready else 'NOT READY: ' + s.detail}")
    print(f"stack: data and logs under {home}; 'riskwatch stack info --secrets' shows credentials")
    return 0


def _accounts(
    registry_path: Path,
    out: Path,
    bridges: int = 1,
    tls_hosts: list[str] | None = None,
    client_certs: bool = False,
    https_hosts: list[str] | None = None,
) -> int:
    """Fresh random passwords per gateway; the plaintext goes only to a 0600 file for the plant IT staff.
    With `tls_hosts`, the broker's certificate (optionally one per gateway, and alerting's with
    `https_hosts`) from a CA under out/certs."""
    import secrets

    from deploy.stack.mosquitto import write_auth_files
    from riskwatch.registry import load_registry

    registry = load_registry(registry_path)
    gateways = {
        gw.id: {"site": gw.site, "password": secrets.token_urlsafe(12)} for gw in registry.gateways.values()
    }
    bridge_password = secrets.token_urlsafe(18)
    more = {f"{BRIDGE_USER}-{i}": secrets.token_urlsafe(18) for i in range(2, bridges + 1)}
    write_auth_files(out, bridge_password, gateways, more)
    plain = out / "passwords.json"
    doc = {"bridge": bridge_password, "bridges": {BRIDGE_USER: bridge_password, **more}, "gateways": gateways}
    write_private(plain, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"wrote {out / 'passwd'}, {out / 'acl'} and {plain} for {len(gateways)} gateways")
    if tls_hosts or client_certs or https_hosts:
        _certificates(out / "certs", tls_hosts or [], list(gateways) if client_certs else [], https_hosts)
    return 0


def _certificates(
    directory: Path, hosts: list[str], gateways: list[str], https_hosts: list[str] | None
) -> None:
    from deploy.stack.certs import CertificateAuthority

    ca = CertificateAuthority(directory, name="riskwatch CA")
    server = ca.server("mosquitto", hosts)
    print(f"wrote {server.ca} (give it to every gateway and bridge) and {server.cert}, {server.key}")
    if https_hosts:
        https = ca.server("alerting", https_hosts)
        print(f"wrote {https.cert}, {https.key} for the alerting API and board")
    print(
        f"  the CA's private key {ca.ca_key} signs certificates: keep it offline, bring it back to issue more"
    )
    if gateways:
        issued = [ca.client(gw) for gw in gateways]
        print(f"wrote {len(issued)} gateway client certificates, e.g. {issued[0].cert}")

"""`riskwatch run`: the bridge, the worker, the historian (when there is an InfluxDB) and alerting on one machine, supervised (a small deployment or a
pilot). Each runs as its own child process (`riskwatch bridge|worker|alerting`), is watched by its exit
and its `/healthz`, and is restarted with backoff when it crashes or turns unhealthy (deploy/supervisor.py);
every restart is said on the console and in RUN_DIR/logs/run.log. Ctrl-C or SIGTERM stops them in
reverse start order, by recorded pid.

The component command lines are built here once (`bridge_spec`, `worker_spec`, `alerting_spec`) and also
used by simulators/pipeline.py (the demo, benchmarks, tests), so a supervised demo and `riskwatch run`
start components exactly alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from deploy.supervisor import Backoff, ChildSpec, Supervisor, say_to
from riskwatch.clock import ClockOption, clock_option
from riskwatch.errors import RiskwatchError
from riskwatch.kafka_access import CA_ENV, KafkaAccess
from riskwatch.options import Options, Port, add_arguments, option, settings_from
from riskwatch.paths import home_dir

REPO = Path(os.path.abspath(__file__)).parents[1]  # the checkout the children run from (cwd)
DEFAULT_PREFIX = "rw"
MQTT_PASSWORD_ENV = "RISKWATCH_MQTT_PASSWORD"
INFLUX_TOKEN_ENV = "RISKWATCH_INFLUX_TOKEN"
COMPONENTS = ("bridge", "worker", "alerting")  # the historian's account ("history") only with an InfluxDB


def kafka_password_env(component: str) -> str:
    """Where `riskwatch run` takes a component's Kafka password from when not from the local stack."""
    return f"RISKWATCH_KAFKA_{component.upper()}_PASSWORD"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the services are and the accounts to use (the fields of deploy.stack.StackInfo)."""

    kafka_bootstrap: str
    mqtt_host: str
    mqtt_port: int
    bridge_user: str
    bridge_password: str
    influx_url: str = ""
    influx_token: str = ""
    influx_org: str = "-"
    influx_bucket: str = "riskwatch/autogen"
    cafile: Path | None = None  # None: the system's trusted CAs verify the broker and alerting's HTTPS
    https_certfile: Path | None = None  # alerting serves HTTPS with this certificate and key when given
    https_keyfile: Path | None = None
    kafka_passwords: dict[str, str] = field(default_factory=dict, repr=False)  # by component
    kafka_cafile: str = ""

    def kafka(self, component: str) -> KafkaAccess:
        return KafkaAccess.of(component, self.kafka_bootstrap, self.kafka_passwords, self.kafka_cafile)


def _riskwatch(*argv: str) -> list[str]:
    return [sys.executable, "-m", "riskwatch", *argv]


def _groups(prefix: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """Extra bridge, worker, alerting and historian flags for a non-default prefix: its own MQTT share
    group and consumer groups, so a second set on the same brokers (a test, a demo) never shares their work."""
    if prefix == DEFAULT_PREFIX:
        return [], [], [], []
    return (
        ["--group", f"riskwatch-{prefix}"],
        ["--group", f"riskwatch-worker-{prefix}"],
        ["--group", f"riskwatch-alerting-{prefix}"],
        ["--group", f"riskwatch-history-{prefix}"],
    )


def bridge_spec(
    ep: Any, registry: Path, prefix: str, run_dir: Path, metrics_port: int, extra: list[str] | None = None
) -> ChildSpec:
    """`riskwatch bridge`; `ep` is an Endpoints or a StackInfo. Health: /healthz on its metrics port."""
    argv = _riskwatch(
        "bridge", "--registry", str(registry), "--mqtt-host", ep.mqtt_host, "--mqtt-port", str(ep.mqtt_port),
        "--mqtt-user", ep.bridge_user, "--mqtt-password-env", MQTT_PASSWORD_ENV,
        *(["--mqtt-cafile", str(ep.cafile)] if ep.cafile else []),
        "--kafka", ep.kafka_bootstrap, "--topic-prefix", prefix, "--spool-dir", str(run_dir / "spool"),
        "--metrics-port", str(metrics_port), *_groups(prefix)[0], *(extra or []),
    )  # fmt: skip
    return ChildSpec(
        "bridge", argv, {MQTT_PASSWORD_ENV: ep.bridge_password, **ep.kafka("bridge").env()},
        f"http://127.0.0.1:{metrics_port}/healthz", REPO,
    )  # fmt: skip


def worker_spec(
    ep: Any,
    registry: Path,
    prefix: str,
    run_dir: Path,
    web_port: int,
    metrics_port: int,
    extra: list[str] | None = None,
) -> ChildSpec:
    """`riskwatch worker`. Health: /healthz on its web port."""
    argv = _riskwatch(
        "worker", "--registry", str(registry), "--kafka", ep.kafka_bootstrap, "--topic-prefix", prefix,
        "--data-dir", str(run_dir / "worker"), "--port", str(web_port),
        "--metrics-port", str(metrics_port), *_groups(prefix)[1], *(extra or []),
    )  # fmt: skip
    return ChildSpec("worker", argv, ep.kafka("worker").env(), f"http://127.0.0.1:{web_port}/healthz", REPO)


def historian_spec(ep: Any, prefix: str, metrics_port: int, extra: list[str] | None = None) -> ChildSpec:
    """`riskwatch historian` (needs `ep.influx_url`). Health: /healthz on its metrics port."""
    argv = _riskwatch(
        "historian", "--kafka", ep.kafka_bootstrap, "--topic-prefix", prefix,
        "--influx-url", ep.influx_url, "--influx-token-env", INFLUX_TOKEN_ENV,
        "--influx-org", ep.influx_org, "--influx-bucket", ep.influx_bucket,
        "--metrics-port", str(metrics_port), *_groups(prefix)[3], *(extra or []),
    )  # fmt: skip
    return ChildSpec(
        "historian",
        argv,
        {INFLUX_TOKEN_ENV: ep.influx_token, **ep.kafka("history").env()},
        f"http://127.0.0.1:{metrics_port}/healthz",
        REPO,
    )


def alerting_spec(
    ep: Any,
    registry: Path,
    routes: Path,
    prefix: str,
    run_dir: Path,
    http_port: int,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> ChildSpec:
    """`riskwatch alerting` with its store in run_dir, over HTTPS when `ep` has a certificate. Health:
    /healthz on its HTTP(S) port."""
    tls = (
        ["--tls-certfile", str(ep.https_certfile), "--tls-keyfile", str(ep.https_keyfile)]
        if ep.https_certfile else []
    )  # fmt: skip
    argv = _riskwatch(
        "alerting", "--routes", str(routes), "--kafka", ep.kafka_bootstrap, "--topic-prefix", prefix,
        "--db", str(run_dir / "alerting.db"), "--port", str(http_port), "--registry", str(registry),
        *tls, *_groups(prefix)[2], *_influx(ep), *(extra or []),
    )  # fmt: skip
    env = {
        **ep.kafka("alerting").env(),
        **(env or {}),
        **({INFLUX_TOKEN_ENV: ep.influx_token} if getattr(ep, "influx_url", "") else {}),
    }
    health = f"{alerting_scheme(ep)}://127.0.0.1:{http_port}/healthz"
    return ChildSpec("alerting", argv, env, health, REPO, health_cafile=ep.cafile)


def alerting_scheme(ep: Any) -> str:
    """https when alerting is given a certificate (Endpoints or StackInfo), else http."""
    return "https" if ep.https_certfile else "http"


def _influx(ep: Any) -> list[str]:
    """alerting's history options (it reads the history the worker writes, for /api/history)."""
    if not getattr(ep, "influx_url", ""):
        return []
    return ["--influx-url", ep.influx_url, "--influx-bucket", ep.influx_bucket]


class RunSettings(Options):
    """`riskwatch run`'s options, declared once (help, RISKWATCH_RUN_* variables)."""

    ENV_PREFIX: ClassVar[str] = "RISKWATCH_RUN"

    registry: Path = option(help="site registry file (YAML or JSON)")
    routes: Path = option(help="alerting routing file (YAML)")
    stack_home: Path | None = option(
        None, "local stack folder to take addresses and accounts from; not needed when --kafka and --mqtt "
        "are given", shown_default=".riskwatch/stack",
    )  # fmt: skip
    kafka: str | None = option(
        None,
        "Kafka bootstrap (default: the local stack's, with its accounts); when given, each component's "
        f"password is read from ${kafka_password_env('bridge')}, ${kafka_password_env('worker')} and "
        f"${kafka_password_env('alerting')}, the CA of a TLS listener from ${CA_ENV}",
        metavar="HOST:PORT",
    )
    mqtt: str | None = option(None, "MQTT broker", metavar="HOST:PORT", shown_default="the local stack's")
    mqtt_cafile: Path | None = option(
        None, "CA that signed the MQTT broker's certificate (default: the local stack's CA when the broker "
        "is the local stack's, else the system's trusted CAs)", metavar="PEM",
    )  # fmt: skip
    mqtt_user: str | None = option(
        None, f"the bridge's MQTT account; its password is read from ${MQTT_PASSWORD_ENV}. Each bridge needs "
        "an account of its own (client ids are bound to accounts)", shown_default="the local stack's",
    )  # fmt: skip
    influx_url: str | None = option(
        None, f"InfluxDB for history, token from ${INFLUX_TOKEN_ENV} ('' turns history off)", metavar="URL",
        shown_default="the local stack's",
    )  # fmt: skip
    topic_prefix: str = option(
        DEFAULT_PREFIX, "Kafka topic prefix; another prefix also gets its own MQTT share group and Kafka "
        "consumer groups",
    )  # fmt: skip
    run_dir: Path | None = option(
        None, "folder for logs, pids, the bridge spool, worker state and the alert store",
        shown_default=".riskwatch/run",
    )  # fmt: skip
    bridge_metrics_port: Port = option(9108, "bridge /metrics, /healthz")
    worker_port: Port = option(6066, "worker views and /healthz", old=["--worker-web-port"])
    worker_metrics_port: Port = option(9101, "worker /metrics")
    historian_metrics_port: Port = option(
        9103, "historian /metrics, /healthz (runs when there is an InfluxDB)"
    )
    alerting_port: Port = option(8080, "alerting API and /healthz", old=["--alerting-http-port"])
    alerting_tls_certfile: Path | None = option(
        None, "alerting's HTTPS certificate chain, with --alerting-tls-keyfile (default: the local stack's "
        "certificate when the stack is used; its health is then checked against --mqtt-cafile's CA)",
        metavar="PEM",
    )  # fmt: skip
    alerting_tls_keyfile: Path | None = option(None, "private key of --alerting-tls-certfile", metavar="PEM")
    bulletin_at: str | None = option(
        None, "write yesterday's four-colour bulletin (HTML, PDF) at this local time each day into "
        "RUN_DIR/reports (see --bulletin-tz)", metavar="HH:MM",
    )  # fmt: skip
    bulletin_tz: str = option("Asia/Shanghai", "time zone of the bulletin's days")
    max_backoff: float = option(60.0, "longest wait before a restart, seconds", ge=1)
    clock: ClockOption = clock_option()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the bridge, the worker and alerting on this machine, each as a child process; restart one "
        "that exits or whose /healthz fails, with backoff (1 s doubling to --max-backoff, reset after "
        "60 s healthy), and say so. Ctrl-C or SIGTERM stops them all. Addresses and accounts come from the "
        "local stack (riskwatch stack up) unless given; passwords and tokens only from the environment."
    )
    add_arguments(parser, RunSettings)


def _host_port(option: str, text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise RiskwatchError(f"{option}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def endpoints(args: RunSettings, environ: dict[str, str]) -> Endpoints:
    """The local stack's addresses and accounts, overridden by the options given."""
    ep: Endpoints | None = None
    if not (args.kafka and args.mqtt):
        from deploy.stack import Stack

        info = Stack(args.stack_home or home_dir() / "stack").info()  # StackError says: stack up first
        ep = Endpoints(
            info.kafka_bootstrap, info.mqtt_host, info.mqtt_port, info.bridge_user, info.bridge_password,
            info.influx_url, info.influx_token, info.influx_org, info.influx_bucket, info.cafile,
            info.https_certfile, info.https_keyfile, dict(info.kafka_passwords), info.kafka_cafile,
        )  # fmt: skip
    else:
        ep = Endpoints(args.kafka, "", 0, "riskwatch-bridge", "")
    if args.kafka:
        missing = [kafka_password_env(c) for c in COMPONENTS if not environ.get(kafka_password_env(c))]
        if missing:
            raise RiskwatchError(
                f"set {', '.join('$' + m for m in missing)}: each component's Kafka password"
            )
        passwords = {
            c: environ[kafka_password_env(c)]
            for c in (*COMPONENTS, "history")
            if environ.get(kafka_password_env(c))
        }
        ep = replace(ep, kafka_bootstrap=args.kafka, kafka_passwords=passwords,
                     kafka_cafile=environ.get(CA_ENV, ep.kafka_cafile))  # fmt: skip
    if args.mqtt:
        host, port = _host_port("--mqtt", args.mqtt)
        ep = replace(ep, mqtt_host=host, mqtt_port=port, cafile=None)
    if args.mqtt_cafile:
        ep = replace(ep, cafile=args.mqtt_cafile.resolve())
    if args.mqtt_user or (args.kafka and args.mqtt):
        password = environ.get(MQTT_PASSWORD_ENV, "")
        if not password:
            raise RiskwatchError(f"set ${MQTT_PASSWORD_ENV} to the password of the bridge's MQTT account")
        ep = replace(ep, bridge_user=args.mqtt_user or ep.bridge_user, bridge_password=password)
    certfile, keyfile = args.alerting_tls_certfile, args.alerting_tls_keyfile
    if (certfile is None) != (keyfile is None):
        raise RiskwatchError("--alerting-tls-certfile and --alerting-tls-keyfile go together")
    if certfile is not None and keyfile is not None:
        ep = replace(ep, https_certfile=certfile.resolve(), https_keyfile=keyfile.resolve())
    if args.influx_url is not None:
        ep = replace(ep, influx_url=args.influx_url, influx_token=environ.get(INFLUX_TOKEN_ENV, ""))
    return ep


def check_config(args: RunSettings, environ: dict[str, str]) -> None:
    """Refuse to start on a configuration the components would die on at once: each error names the
    file and the field (or the option)."""
    from riskwatch.registry import load_registry

    load_registry(args.registry)
    from alerting.config import load_config, resolve_secrets

    resolve_secrets(load_config(args.routes), environ, str(args.routes))
    ports = {
        "--bridge-metrics-port": args.bridge_metrics_port,
        "--worker-port": args.worker_port,
        "--worker-metrics-port": args.worker_metrics_port,
        "--historian-metrics-port": args.historian_metrics_port,
        "--alerting-port": args.alerting_port,
    }
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if not 0 < port < 65536:
            raise RiskwatchError(f"{name}: {port} is not a TCP port")
        if port in seen:
            raise RiskwatchError(f"{name} and {seen[port]} are both {port}")
        seen[port] = name
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise RiskwatchError(f"{name}: port {port} is taken ({exc.strerror})") from None


def specs(args: RunSettings, ep: Endpoints, run_dir: Path) -> list[ChildSpec]:
    prefix = args.topic_prefix
    if ep.influx_url and "history" not in ep.kafka_passwords:
        raise RiskwatchError(f"set ${kafka_password_env('history')}: the historian's Kafka password")
    history = [historian_spec(ep, prefix, args.historian_metrics_port)] if ep.influx_url else []
    # One simulated time for all: its real instant fixed now, so a restarted child keeps the same clock.
    # The historian's clock only measures Kafka record ages (real time): it stays real.
    clock = [] if args.clock is None else ["--clock", str(args.clock.anchored(time.time()))]
    return [
        bridge_spec(ep, args.registry.resolve(), prefix, run_dir, args.bridge_metrics_port, clock),
        worker_spec(
            ep, args.registry.resolve(), prefix, run_dir, args.worker_port, args.worker_metrics_port, clock
        ),
        *history,
        alerting_spec(
            ep, args.registry.resolve(), args.routes.resolve(), prefix, run_dir, args.alerting_port, clock
        ),
    ]


def _schedule_bulletin(
    args: RunSettings, ep: Endpoints, run_dir: Path, environ: dict[str, str], stop: threading.Event,
    say: Callable[[str], None],
) -> None:  # fmt: skip
    import time

    from deploy.schedule import parse_clock, start_daily_bulletin

    at = parse_clock(args.bulletin_at or "")
    argv = [
        "--registry", str(args.registry.resolve()), "--routes", str(args.routes.resolve()),
        "--db", str(run_dir / "alerting.db"), "--out", str(run_dir / "reports"), "--tz", args.bulletin_tz,
        *(["--influx-url", ep.influx_url, "--influx-bucket", ep.influx_bucket] if ep.influx_url else []),
    ]  # fmt: skip
    env = {**environ, INFLUX_TOKEN_ENV: ep.influx_token}
    start_daily_bulletin(at, args.bulletin_tz, argv, env, REPO, stop, say, time.time)
    say(f"daily bulletin at {args.bulletin_at} ({args.bulletin_tz}) into {run_dir / 'reports'}")


def run(namespace: argparse.Namespace) -> int:
    environ = dict(os.environ)
    args = settings_from(RunSettings, namespace, environ)
    check_config(args, environ)
    ep = endpoints(args, environ)
    run_dir = (args.run_dir or home_dir() / "run").resolve()
    say = say_to(sys.stdout, run_dir / "logs" / "run.log")
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if not stop.is_set():
            say(
                f"riskwatch run: {signal.Signals(signum).name}: stopping alerting, historian, worker, bridge ..."
            )
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor(run_dir, say, backoff=Backoff(max_s=args.max_backoff))
    try:
        say(
            f"riskwatch run: topics {args.topic_prefix}.*, Kafka {ep.kafka_bootstrap}, MQTT "
            f"{ep.mqtt_host}:{ep.mqtt_port} as {ep.bridge_user}; logs and pids in {run_dir}"
        )
        for spec in specs(args, ep, run_dir):
            child = supervisor.add(spec)
            say(
                f"started {spec.name} (pid {child.proc.pid if child.proc else '?'}), health {spec.health_url}"
            )
        if args.bulletin_at:
            _schedule_bulletin(args, ep, run_dir, environ, stop, say)
        supervisor.run(stop)
    finally:
        # A second Ctrl-C must not cut the orderly stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
    say("riskwatch run: everything stopped")
    return 0

"""Apache Kafka, single node in KRaft mode, run from the official jars on Maven Central.

Locked down: clients log in with SASL/SCRAM over TLS on the client listener (a certificate from the
stack's CA, deploy/stack/certs.py), one account per component, and the
StandardAuthorizer lets each do only what riskwatch/kafka_accounts.py declares (no ACL, no access). The
controller listener takes only the broker's own PLAIN login, which no client knows. The administrator
and broker accounts are written into the storage at format time (they must exist before the broker can
authenticate anyone); the component accounts and the ACLs are applied by the administrator once the
broker answers, on every start, so a changed declaration or a rotated password takes effect.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.stack.certs import stack_ca
from deploy.stack.process import file_lock
from deploy.stack.service import Service, require_tool
from deploy.stack.settings import KAFKA_VERSION, StackSettings
from riskwatch.errors import StackError
from riskwatch.kafka_access import KafkaAccess
from riskwatch.kafka_accounts import ACCOUNTS, SCRAM_MECHANISM, Binding, account, bindings, super_users
from riskwatch.secrets import redact, write_private
from riskwatch.topics import Topics

POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"

LOG4J = """\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


# Settings a deployment must share with the local stack (deploy/docker-compose.yml is checked against these).
SHARED_SETTINGS = {
    "process.roles": "broker,controller",
    "num.partitions": "6",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    # A single node: consumers should not wait for more members before the first rebalance.
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "message.max.bytes": str(16 * 1024 * 1024),
    "log.retention.hours": "168",
    # Who may do what: the ACLs of riskwatch/kafka_accounts.py, nothing for anyone else.
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "false",
    "super.users": super_users(),
    "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
    "sasl.mechanism.controller.protocol": "PLAIN",
    "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
    "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "CLIENT",
}

# TLS for clients; the controller listener carries only the broker's own traffic (loopback in the stack,
# the compose network in docker-compose).
PROTOCOL_MAP = "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def listener_security(broker_password: str) -> dict[str, str]:
    """The listeners' protocols and the broker's own logins (secrets: server.properties is 0600)."""
    broker = account("broker").user
    login = f'username="{broker}" password="{broker_password}"'
    return {
        "listener.security.protocol.map": PROTOCOL_MAP,
        # The broker talks to itself as the broker account over SCRAM ...
        f"listener.name.client.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": f"{SCRAM_LOGIN} required {login};",
        # ... and the controller listener knows no other user: clients cannot log in there at all.
        "listener.name.controller.plain.sasl.jaas.config": (
            f'{PLAIN_LOGIN} required {login} user_{broker}="{broker_password}";'
        ),
    }


def tls_files(keystore: Path, ca: Path) -> dict[str, str]:
    """PEM keystore (key then certificate chain) and the CA the broker verifies itself against when it
    connects to its own client listener (inter-broker traffic)."""
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
    }


def server_properties(
    s: StackSettings,
    data: Path,
    keystore: Path,
    ca: Path,
    node_id: int = 1,
    voters: dict[int, int] | None = None,
) -> dict[str, str]:
    """The server.properties of KRaft node `node_id` on loopback; `voters` (node id -> controller port)
    default to this node alone (the single-node stack; deploy/stack/cluster.py passes three)."""
    voters = voters or {node_id: s.kafka_controller_port}
    return {
        **SHARED_SETTINGS,
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(f"{n}@{s.host}:{port}" for n, port in sorted(voters.items())),
        "listeners": f"CLIENT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
        "advertised.listeners": f"CLIENT://{s.host}:{s.kafka_port}",
        **listener_security(s.kafka_passwords["broker"]),
        **tls_files(keystore, ca),
        "log.dirs": str(data),
        "num.partitions": str(s.kafka_partitions),
        "offsets.topic.num.partitions": "12",
        "log.segment.bytes": str(256 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


class Kafka(Service):
    """The single node of the local stack, and the base of a cluster member (deploy/stack/cluster.py)."""

    name = "kafka"
    # A JVM bringing up TLS, SASL and the authorizer on a busy 2-core machine has taken over 90 s.
    start_timeout_s = 180.0

    @property
    def ca_home(self) -> Path:
        """The stack home whose CA (deploy/stack/certs.py stack_ca) issues this node's certificate."""
        return self.home

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.kafka_port}"

    @property
    def libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    def ports(self) -> dict[str, int]:
        return {"broker": self.settings.kafka_port, "controller": self.settings.kafka_controller_port}

    def provision(self) -> None:
        marker = self.libs.parent / ".complete"
        if marker.exists():
            return
        java = require_tool("java", "install a Java 17 runtime (Debian: openjdk-17-jre-headless)")
        mvn = require_tool("mvn", "install Maven (Debian: maven) to fetch the Kafka jars")
        del java
        with file_lock(self.cache / "kafka.lock"):
            if marker.exists():
                return
            print(f"stack: fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central ...", flush=True)
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(POM),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.libs}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0 or not any(self.libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
                raise StackError(
                    f"could not fetch the Kafka jars with Maven:\n{result.stdout[-3000:]}"
                    f"{result.stderr[-2000:]}"
                )
            marker.touch()

    def _java(self, main: str, *args: str, heap_mb: int = 256) -> list[str]:
        java = require_tool("java", "install a Java 17 runtime (Debian: openjdk-17-jre-headless)")
        return [
            java,
            f"-Xms{min(heap_mb, 256)}m",
            f"-Xmx{heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def properties(self, data: Path, keystore: Path, ca: Path) -> dict[str, str]:
        """server.properties of this node (a cluster member overrides it: deploy/stack/cluster.py)."""
        return server_properties(self.settings, data, keystore, ca)

    def prepare(self) -> None:
        s = self.settings
        data = self.dir / "data"
        issued = stack_ca(self.ca_home).server(self.name, [s.host])
        keystore = self.dir / "keystore.pem"
        write_private(keystore, issued.key.read_bytes() + issued.cert.read_bytes())
        props = self.properties(data, keystore, issued.ca)
        write_private(self.dir / "server.properties", "".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(LOG4J.format(log=self.dir / "server.log"))
        if (data / "meta.properties").exists() and not (data / SCRAM_MARKER).exists():
            raise StackError(
                f"the Kafka data in {data} was made before Kafka required logins and has no accounts: "
                f"run 'riskwatch stack down', delete {data} (its topics are lost) and 'riskwatch stack up'"
            )
        if not (data / "meta.properties").exists():
            # The accounts the broker needs before it can authenticate anyone (its own, the administrator's).
            scram = [
                arg
                for component in ("admin", "broker")
                for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={account(component).user},"
                            f"password={s.kafka_passwords[component]}]")
            ]  # fmt: skip
            result = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format", "-t", s.kafka_cluster_id,
                    "-c", str(self.dir / "server.properties"), "--ignore-formatted", *scram,
                ),
                capture_output=True,
                text=True,
                cwd=self.dir,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(redact(f"kafka storage format failed:\n{result.stdout}{result.stderr}",
                                        *s.kafka_passwords.values()))  # fmt: skip
            (data / SCRAM_MARKER).touch()

    def command(self) -> list[str]:
        return self._java(
            "kafka.Kafka", str(self.dir / "server.properties"), heap_mb=self.settings.kafka_heap_mb
        )

    def access(self, component: str) -> KafkaAccess:
        ca = stack_ca(self.ca_home).ca_cert
        return KafkaAccess.of(component, self.address, self.settings.kafka_passwords, str(ca))

    def probe(self) -> None:
        from kafka import KafkaAdminClient

        # Fail each probe fast: kafka-python's own reconnect backoff grows to ~30 s, which would leave a
        # broker that just came up unnoticed for that long.
        admin = KafkaAdminClient(
            **self.access("admin").kafka_python(), request_timeout_ms=5000, bootstrap_timeout_ms=5000,
            reconnect_backoff_max_ms=1000, client_id="riskwatch-stack-probe",
        )  # fmt: skip
        try:
            if not admin.describe_cluster().get("brokers"):
                raise StackError("kafka answered with no brokers in its metadata")
        finally:
            admin.close()

    def after_ready(self) -> None:
        """Every component account with its password, and the ACLs of the default topics."""
        apply_accounts(self.access("admin"), self.settings.kafka_passwords)
        grant(self.access("admin"), Topics())


SCRAM_MARKER = "riskwatch-scram"  # in the data folder: formatted with the administrator's account


def apply_accounts(admin_access: KafkaAccess, passwords: dict[str, str]) -> None:
    """Create or update the SCRAM credentials of every account that is not a super user."""
    from kafka import KafkaAdminClient
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    upserts = [
        UserScramCredentialUpsertion(a.user, ScramMechanism.SCRAM_SHA_512, passwords[a.component])
        for a in ACCOUNTS
        if not a.super_user
    ]
    admin = KafkaAdminClient(**admin_access.kafka_python(), client_id="riskwatch-stack")
    try:
        admin.alter_user_scram_credentials(upserts)
    finally:
        admin.close()


def grant(admin_access: KafkaAccess, topics: Topics) -> None:
    """Apply the declared ACLs for the topics under `topics.prefix` (entries already there are kept)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**admin_access.kafka_python(), client_id="riskwatch-stack")
    try:
        result = admin.create_acls([_acl(b) for b in bindings(topics)])
    finally:
        admin.close()
    if result["failed"]:
        raise StackError(f"kafka refused ACLs for {topics.prefix}.*: {result['failed'][:3]}")


def _acl(b: Binding) -> object:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    pattern = ResourcePattern(ResourceType[b.resource.upper()], b.name, ACLResourcePatternType[b.pattern])
    return ACL(f"User:{b.user}", "*", ACLOperation[b.operation], ACLPermissionType.ALLOW, pattern)

"""Apache Kafka, single node in KRaft mode, run from the official jars on Maven Central."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.stack.process import file_lock
from deploy.stack.service import Service, require_tool
from deploy.stack.settings import KAFKA_VERSION, StackSettings
from riskwatch.errors import StackError

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
}


def server_properties(s: StackSettings, data: Path) -> dict[str, str]:
    """The broker's server.properties for a single KRaft node on loopback."""
    return {
        **SHARED_SETTINGS,
        "node.id": "1",
        "controller.quorum.voters": f"1@{s.host}:{s.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{s.host}:{s.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(s.kafka_partitions),
        "offsets.topic.num.partitions": "12",
        "log.segment.bytes": str(256 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


class Kafka(Service):
    name = "kafka"

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

    def properties(self, data: Path) -> dict[str, str]:
        """server.properties of this node (a cluster member overrides it: deploy/stack/cluster.py)."""
        return server_properties(self.settings, data)

    def prepare(self) -> None:
        s = self.settings
        data = self.dir / "data"
        props = self.properties(data)
        (self.dir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(LOG4J.format(log=self.dir / "server.log"))
        if not (data / "meta.properties").exists():
            result = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    s.kafka_cluster_id,
                    "-c",
                    str(self.dir / "server.properties"),
                    "--ignore-formatted",
                ),
                capture_output=True,
                text=True,
                cwd=self.dir,
            )
            if result.returncode != 0:
                raise StackError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return self._java(
            "kafka.Kafka", str(self.dir / "server.properties"), heap_mb=self.settings.kafka_heap_mb
        )

    def probe(self) -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.address,
            request_timeout_ms=5000,
            client_id="riskwatch-stack-probe",
        )
        try:
            if not admin.describe_cluster().get("brokers"):
                raise StackError("kafka answered with no brokers in its metadata")
        finally:
            admin.close()

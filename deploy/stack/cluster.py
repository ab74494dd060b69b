"""A Kafka cluster on loopback: three KRaft nodes (each broker and controller) from the same jars as the
local stack's single node, for tests and benchmarks that must show riskwatch surviving a broker's loss.

Durability is Kafka's own: every topic replicated to all three nodes (replication factor 3) with
`min.insync.replicas` 2, so a record acknowledged with acks=all (riskwatch's producers are idempotent and
use acks=all) is on at least two nodes, and one node may die without losing or refusing anything. The
controller quorum is the three nodes too: two of three keep electing leaders.

Each node is a `Kafka` service of the local stack under `home/kafka{N}`, with its own ports; only the
properties that make it one member of three differ (`ClusterNode.properties`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from deploy.stack.kafka import Kafka
from deploy.stack.process import free_port, require_free, start_process
from deploy.stack.settings import StackSettings, kafka_cluster_id
from riskwatch.errors import StackError
from riskwatch.paths import cache_dir

NODES = 3
REPLICATION = 3
MIN_INSYNC = 2
NODE_HEAP_MB = 384  # three JVMs on a small machine


class ClusterNode(Kafka):
    """One member of the cluster: node `node_id` of `voters` (node id -> controller port)."""

    start_timeout_s = 120.0

    def __init__(self, home: Path, cache: Path, settings: StackSettings, node_id: int, voters: dict[int, int]) -> None:  # fmt: skip
        self.name = f"kafka{node_id}"
        super().__init__(home, cache, settings)
        self.node_id, self.voters = node_id, voters

    def properties(self, data: Path, keystore: Path, ca: Path) -> dict[str, str]:
        host = self.settings.host
        return {
            **super().properties(data, keystore, ca),
            # NOT LOCKED DOWN YET: unlike the single-node stack, the test cluster's listeners are plain and
            # take anyone (its nodes would need shared broker logins and the stack's accounts and ACLs).
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "authorizer.class.name": "",
            "super.users": "",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{n}@{host}:{port}" for n, port in sorted(self.voters.items())
            ),
            "default.replication.factor": str(REPLICATION),
            "min.insync.replicas": str(MIN_INSYNC),
            "offsets.topic.replication.factor": str(REPLICATION),
            "transaction.state.log.replication.factor": str(REPLICATION),
            "transaction.state.log.min.isr": str(MIN_INSYNC),
            # a dead node's partitions get new leaders quickly; an out-of-sync replica never becomes one
            "unclean.leader.election.enable": "false",
            "replica.lag.time.max.ms": "10000",
        }


class KafkaCluster:
    """Three nodes under `home`; started together (a KRaft node is ready only once a quorum is up)."""

    def __init__(self, home: Path, nodes: int = NODES, cache: Path | None = None) -> None:
        self.home = home
        cluster_id = kafka_cluster_id()
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        voters = {n + 1: controller for n, (_, controller) in enumerate(ports)}
        self.nodes = []
        for n, (broker, controller) in enumerate(ports):
            settings = StackSettings.create(
                kafka_port=broker, kafka_controller_port=controller, kafka_heap_mb=NODE_HEAP_MB
            ).model_copy(update={"kafka_cluster_id": cluster_id})
            self.nodes.append(ClusterNode(home, cache or cache_dir(), settings, n + 1, voters))

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def start(self) -> None:
        """Launch every node that is not running, then wait until each answers."""
        launched = [node for node in self.nodes if node.pid() is None]
        for node in launched:
            self._launch(node)
        for node in self.nodes:
            node.wait_ready()

    def _launch(self, node: ClusterNode) -> None:
        for purpose, port in node.ports().items():
            require_free(node.name, port, f"{purpose} port")
        node.provision()
        node.dir.mkdir(parents=True, exist_ok=True)
        node.prepare()
        start_process(node.command(), node.pidfile, node.log, env=node.env(), cwd=node.dir)

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a machine that loses power (by its recorded pid only)."""
        import os
        import signal

        pid = self.nodes[index].pid()
        if pid is None:
            raise StackError(f"{self.nodes[index].name} is not running")
        os.kill(pid, signal.SIGKILL)
        self.nodes[index].pidfile.path.unlink(missing_ok=True)

    def restart(self, index: int) -> None:
        self._launch(self.nodes[index])
        self.nodes[index].wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def ensure_topics(self, names: Iterable[str], partitions: int) -> None:
        """Create the missing topics replicated to every node, `min.insync.replicas` 2."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="riskwatch-cluster")
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(n, partitions, REPLICATION, topic_configs={"min.insync.replicas": str(MIN_INSYNC)})
                for n in names
                if n not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(missing)
        finally:
            admin.close()

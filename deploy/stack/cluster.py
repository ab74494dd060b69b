"""A Kafka cluster on loopback: three KRaft nodes (each broker and controller) from the same jars as the
local stack's single node, for tests and benchmarks that must show riskwatch surviving a broker's loss.

Locked down exactly like the stack's node, by the same code (deploy/stack/kafka.py): each node's client
listener speaks SASL/SCRAM over TLS with a certificate of its own from the stack's CA; the nodes talk to
each other on that listener as the broker account (SCRAM) and to the controller quorum on the controller
listener, which takes only the broker's own login; every component account of riskwatch/kafka_accounts.py
is created with the stack's passwords and the StandardAuthorizer applies the same ACLs. So a
`StackInfo` whose `kafka_bootstrap` is the cluster's (`KafkaCluster.info`) gives every component its
usual account, password and CA.

Durability is Kafka's own: every topic replicated to all three nodes (replication factor 3) with
`min.insync.replicas` 2, so a record acknowledged with acks=all (every riskwatch producer uses acks=all
and idempotence) is on at least two nodes, and one node may die
without losing or refusing anything. The controller quorum is the three nodes too: two of three keep
electing leaders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.stack.kafka import Kafka, apply_accounts, server_properties
from deploy.stack.process import free_port, require_free, start_process
from deploy.stack.settings import StackSettings, kafka_cluster_id
from deploy.stack.stack import StackInfo, ensure_topics
from riskwatch.errors import StackError
from riskwatch.paths import cache_dir
from riskwatch.topics import Topics

NODES = 3
REPLICATION = 3
MIN_INSYNC = 2
NODE_HEAP_MB = 384  # three JVMs on a small machine

# What makes a node one member of three: replicated internal topics, and quick, clean leader changes.
REPLICATED = {
    "default.replication.factor": str(REPLICATION),
    "min.insync.replicas": str(MIN_INSYNC),
    "offsets.topic.replication.factor": str(REPLICATION),
    "transaction.state.log.replication.factor": str(REPLICATION),
    "transaction.state.log.min.isr": str(MIN_INSYNC),
    # a dead node's partitions get new leaders quickly; an out-of-sync replica never becomes one
    "unclean.leader.election.enable": "false",
    "replica.lag.time.max.ms": "10000",
    # A SIGKILLed node is fenced (and its partitions led elsewhere) once it misses heartbeats this long;
    # Kafka's 9 s default stalled every producer writing to its partitions for that long.
    "broker.heartbeat.interval.ms": "1000",
    "broker.session.timeout.ms": "5000",
}


class ClusterNode(Kafka):
    """Node `node_id` of `voters` (node id -> controller port), under `home/kafka{node_id}`; its
    certificate comes from the CA of the stack under `ca_home`."""

    start_timeout_s = 180.0

    def __init__(
        self,
        home: Path,
        cache: Path,
        settings: StackSettings,
        node_id: int,
        voters: dict[int, int],
        ca_home: Path,
    ) -> None:
        self.name = f"kafka{node_id}"
        super().__init__(home, cache, settings)
        self.node_id, self.voters, self._ca_home = node_id, voters, ca_home

    @property
    def ca_home(self) -> Path:
        return self._ca_home

    def properties(self, data: Path, keystore: Path, ca: Path) -> dict[str, str]:
        return {
            **server_properties(self.settings, data, keystore, ca, self.node_id, self.voters),
            **REPLICATED,
        }


class KafkaCluster:
    """Three nodes under `home` with the accounts, passwords and CA of the running stack `stack`;
    started together (a KRaft node is ready only once a quorum is up)."""

    def __init__(self, home: Path, stack: StackInfo, nodes: int = NODES, cache: Path | None = None) -> None:
        self.home = home
        self.stack = stack
        cluster_id = kafka_cluster_id()
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        voters = {n + 1: controller for n, (_, controller) in enumerate(ports)}
        self.nodes: list[ClusterNode] = []
        for n, (broker, controller) in enumerate(ports):
            settings = StackSettings.create(
                kafka_port=broker, kafka_controller_port=controller, kafka_heap_mb=NODE_HEAP_MB
            ).model_copy(
                update={"kafka_cluster_id": cluster_id, "kafka_passwords": dict(stack.kafka_passwords)}
            )
            node = ClusterNode(home, cache or cache_dir(), settings, n + 1, voters, stack.home)
            self.nodes.append(node)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def info(self) -> StackInfo:
        """The stack's addresses and accounts, with Kafka being this cluster."""
        return dataclasses.replace(self.stack, kafka_bootstrap=self.bootstrap)

    def start(self) -> None:
        """Launch every node that is not running, wait until each answers, then create the component
        accounts and the ACLs of the default topics (as the stack's node does once it is ready)."""
        # Together: each node's storage format is a JVM run of its own, and no node is ready before a quorum.
        _each([node for node in self.nodes if node.pid() is None], self._launch)
        _each(self.nodes, ClusterNode.wait_ready)
        apply_accounts(self.info.kafka("admin"), self.stack.kafka_passwords)

    def _launch(self, node: ClusterNode) -> None:
        for purpose, port in node.ports().items():
            require_free(node.name, port, f"{purpose} port")
        node.provision()
        node.dir.mkdir(parents=True, exist_ok=True)
        node.prepare()
        start_process(node.command(), node.pidfile, node.log, env=node.env(), cwd=node.dir)

    def pid(self, index: int) -> int | None:
        return self.nodes[index].pid()

    def kill(self, index: int) -> int:
        """SIGKILL one node, as a machine that loses power, by its recorded pid only; returns the pid."""
        node = self.nodes[index]
        pid = node.pid()
        if pid is None:
            raise StackError(f"{node.name} is not running")
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # our child: reap it, or its pid file would name a zombie
        node.pidfile.clear()
        return pid

    def restart(self, index: int) -> None:
        self._launch(self.nodes[index])
        self.nodes[index].wait_ready()

    def stop(self) -> None:
        """Stop every node by its recorded pid, together: a node shutting down cleanly waits for the
        others' controllers, so one at a time each waits out its time-out once the quorum is gone."""

        def stop(node: ClusterNode) -> None:
            with contextlib.suppress(Exception):
                node.stop()

        _each(self.nodes, stop)

    def ensure_topics(self, topics: Topics, partitions: int) -> None:
        """The topics under `topics.prefix`, replicated to every node with `min.insync.replicas` 2, and
        their ACLs (the stack's own `ensure_topics`)."""
        ensure_topics(
            self.info, topics, partitions,
            replication=REPLICATION, configs={"min.insync.replicas": str(MIN_INSYNC)},
        )  # fmt: skip


def _each(nodes: list[ClusterNode], action: Callable[[ClusterNode], object]) -> None:
    """`action` on every node at once; the first error is raised once all are done."""
    if nodes:
        with ThreadPoolExecutor(len(nodes)) as pool:
            for future in [pool.submit(action, node) for node in nodes]:
                future.result()

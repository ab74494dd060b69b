"""Kafka accounts and what each may do: the one declaration the local stack applies, docker-compose is
checked against and docs/deploy.md renders (`riskwatch stack kafka-acls`).

Each component logs in with its own SASL/SCRAM account and may touch only the topics and consumer groups
it needs, so a stolen bridge password cannot forge a warning and alerting's cannot read raw telemetry.
Topic names follow a prefix (`rw` in production, one per test): `{telemetry}` and the like stand for
`Topics(prefix).telemetry`, `{prefix}` for the prefix itself. Consumer groups and the worker's own
(Faust changelog and repartition) topics are matched by name prefix, so a second pipeline on the same
brokers (`riskwatch-worker-{prefix}`, see deploy/run.py) needs no new rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from riskwatch.topics import Topics

SCRAM_MECHANISM = "SCRAM-SHA-512"
ANY = "*"  # Kafka's wildcard resource name
DEFAULT_TOPICS = Topics()


@dataclass(frozen=True, slots=True)
class Rule:
    """Allow `operations` on a topic or consumer group named `name` (a template, see the module doc);
    `prefixed` matches every name starting with it."""

    resource: str  # "topic" | "group"
    name: str
    operations: tuple[str, ...]  # Kafka's operation names: READ, WRITE, CREATE, DESCRIBE, ALL, ...
    prefixed: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    component: str
    user: str
    purpose: str
    rules: tuple[Rule, ...] = ()
    super_user: bool = False  # bypasses ACLs: only the broker itself and the stack's administrator


def _topics(names: tuple[str, ...], *operations: str) -> tuple[Rule, ...]:
    return tuple(Rule("topic", name, operations) for name in names)


def _group(prefix: str) -> Rule:
    return Rule("group", prefix, ("READ",), prefixed=True)


ACCOUNTS: tuple[Account, ...] = (
    Account(
        "bridge",
        "riskwatch-bridge",
        "MQTT bridge (ingest/): writes what gateways send, reads nothing",
        _topics(("{telemetry}", "{gateway}", "{deadletter}"), "WRITE"),
    ),
    Account(
        "worker",
        "riskwatch-worker",
        "Faust worker (processors/): telemetry in, alarms and warnings out",
        (
            *_topics(("{telemetry}", "{gateway}"), "READ"),
            *_topics(("{alarms}", "{warnings}", "{deadletter}"), "WRITE"),
            Rule("topic", "{prefix}.history", ("WRITE",), prefixed=True),
            # Faust's changelog, repartition and leader topics are named after its group (the app id).
            Rule("topic", "riskwatch-worker", ("ALL",), prefixed=True),
            _group("riskwatch-worker"),
        ),
    ),
    Account(
        "alerting",
        "riskwatch-alerting",
        "alerting (and the board it serves): warnings in, audit out",
        (
            *_topics(("{warnings}", "{alarms}"), "READ"),
            *_topics(("{alerts}", "{deadletter}"), "WRITE"),
            _group("riskwatch-alerting"),
        ),
    ),
    Account(
        "history",
        "riskwatch-history",
        "historian: transitions and the worker's closed minutes into InfluxDB",
        (
            *_topics(("{warnings}", "{alarms}"), "READ"),
            Rule("topic", "{prefix}.history", ("READ",), prefixed=True),
            *_topics(("{deadletter}",), "WRITE"),
            _group("riskwatch-history"),
        ),
    ),
    Account(
        "tools",
        "riskwatch-tools",
        "operators' measuring tools, benchmarks and tests: read and write any topic, create topics; "
        "no deleting, no configuration changes, no ACLs",
        (
            Rule("topic", ANY, ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")),
            Rule("group", ANY, ("READ", "DESCRIBE")),
        ),
    ),
    Account(
        "admin",
        "riskwatch-admin",
        "administrator: creates topics, accounts and ACLs; no component uses it",
        super_user=True,
    ),
    Account(
        "broker",
        "riskwatch-broker",
        "the broker itself, on its controller and inter-broker listeners",
        super_user=True,
    ),
)

COMPONENTS = tuple(a.component for a in ACCOUNTS)


def account(component: str) -> Account:
    for a in ACCOUNTS:
        if a.component == component:
            return a
    raise KeyError(f"no Kafka account for {component!r}; known: {', '.join(COMPONENTS)}")


def super_users() -> str:
    """The broker's `super.users` value."""
    return ";".join(f"User:{a.user}" for a in ACCOUNTS if a.super_user)


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """One concrete ACL entry: ALLOW `operation` on a resource for `User:user`, from any host."""

    user: str
    resource: str
    name: str
    pattern: str  # "LITERAL" | "PREFIXED"
    operation: str


def bindings(topics: Topics = DEFAULT_TOPICS) -> list[Binding]:
    """Every ACL entry of every account for the topics under `topics.prefix`, sorted."""
    return sorted(set(_expand(_names(topics))))


_TOPIC_FIELDS = ("telemetry", "deadletter", "gateway", "alarms", "warnings", "alerts")


def _names(topics: Topics) -> dict[str, str]:
    return {"prefix": topics.prefix, **{field: getattr(topics, field) for field in _TOPIC_FIELDS}}


def _expand(names: dict[str, str]) -> Iterator[Binding]:
    for a in ACCOUNTS:
        for rule in a.rules:
            pattern = "PREFIXED" if rule.prefixed else "LITERAL"
            for op in rule.operations:
                yield Binding(a.user, rule.resource, rule.name.format_map(names), pattern, op)


def markdown_table(topics: Topics = DEFAULT_TOPICS) -> str:
    """The accounts and their rights as a Markdown table, one row per account (docs/deploy.md)."""
    names = _names(topics)
    lines = ["| account | used by | may |", "|---|---|---|"]
    for a in ACCOUNTS:
        rights = ["everything (super user)"] if a.super_user else [_right(rule, names) for rule in a.rules]
        lines.append(f"| `{a.user}` | {a.purpose} | {'<br>'.join(rights)} |")
    return "\n".join(lines)


def _right(rule: Rule, names: dict[str, str]) -> str:
    target = rule.name.format_map(names)
    where = f"{rule.resource}s starting `{target}`" if rule.prefixed else f"{rule.resource} `{target}`"
    return f"{' '.join(op.lower() for op in rule.operations)} {where}"

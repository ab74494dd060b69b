"""The worker's producer is idempotent with acks=all, like the bridge's and alerting's: on a cluster, a
send retried after a broker's failover must not write a transition or a snapshot twice."""

from __future__ import annotations

import faust

from processors.app import idempotent_producer


def test_the_worker_producer_is_idempotent_with_acks_all() -> None:
    app = faust.App("riskwatch-worker-test", broker="kafka://127.0.0.1:1")
    idempotent_producer(app)
    settings = app.producer._settings_extra()  # type: ignore[attr-defined]  # the aiokafka driver's
    assert settings["acks"] == "all"
    assert settings["enable_idempotence"] is True


def test_faust_alone_would_not_be() -> None:
    """Why the override exists: Faust 0.15.3 asks for idempotence only inside transactions."""
    app = faust.App("riskwatch-worker-test", broker="kafka://127.0.0.1:1")
    assert "enable_idempotence" not in app.producer._settings_extra()  # type: ignore[attr-defined]

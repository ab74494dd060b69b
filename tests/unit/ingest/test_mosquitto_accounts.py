"""The broker side of the bridge's bounds and bindings: client ids are accounts, packets are bounded."""

from __future__ import annotations

from pathlib import Path

from deploy.stack.mosquitto import SHARED_SETTINGS, probe_password, write_auth_files
from deploy.stack.settings import BRIDGE_USER, PROBE_USER
from ingest.settings import BridgeSettings
from ingest.validate import DEFAULT_MAX_PAYLOAD


def _setting(name: str) -> str:
    return next(value for option, value, _ in SHARED_SETTINGS if option == name)


def test_client_ids_are_bound_to_accounts() -> None:
    assert _setting("use_username_as_clientid") == "true"


def test_the_broker_refuses_packets_only_beyond_what_the_bridge_accepts() -> None:
    limit = int(_setting("max_packet_size"))
    assert DEFAULT_MAX_PAYLOAD < limit <= DEFAULT_MAX_PAYLOAD + 128 * 1024


def test_each_bridge_has_its_own_account_and_the_probe_may_do_nothing(tmp_path: Path) -> None:
    write_auth_files(tmp_path, "pw", {"gw-1": {"site": "s1", "password": "g"}}, {"bridge-2": "b2"})
    users = [line.split(":", 1)[0] for line in (tmp_path / "passwd").read_text().splitlines()]
    assert users == [BRIDGE_USER, "bridge-2", PROBE_USER, "gw-1"]
    acl = (tmp_path / "acl").read_text()
    for bridge in (BRIDGE_USER, "bridge-2"):
        assert f"user {bridge}\ntopic read rw/v1/#\ntopic read $share/+/rw/v1/#\n" in acl
    assert f"user {PROBE_USER}" not in acl  # no rule at all: the ACL denies it everything
    assert probe_password("pw") != "pw" and probe_password("pw") == probe_password("pw")


def test_the_bridge_client_id_is_its_account_unless_told_otherwise() -> None:
    assert BridgeSettings(registry=Path("r"), mqtt_user="bridge-2").client_id == "bridge-2"
    assert BridgeSettings(registry=Path("r"), mqtt_client_id="x").client_id == "x"

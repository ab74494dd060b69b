"""Routing YAML: loading, cross-reference errors with file/path/reason, secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config import load_config, parse_duration, resolve_secrets
from riskwatch.errors import ConfigError
from tests.unit.alerting.conftest import make_config

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "routes.yaml"


def test_example_routes_file_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.channels["dy-dingtalk"].effective_rate() == 20
    assert cfg.channels["dy-feishu"].effective_rate() == 100
    assert cfg.defaults.language == "zh"


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        ("receivers: {x: {roster: nope, channels: [ding]}}", "receivers.x.roster", "unknown roster 'nope'"),
        ("receivers: {x: {channels: [fax]}}", "receivers.x.channels", "unknown channel 'fax'"),
        ("route: {receiver: ghost}", "route.receiver", "unknown receiver 'ghost'"),
        (
            "route: {receiver: default, routes: [{receiver: default, escalation: none}]}",
            "route.routes[0].escalation",
            "unknown escalation policy 'none'",
        ),
        ("channels: {c: {type: pager, url: x}}", "channels.c.type", "unknown channel type 'pager'"),
        ("channels: {c: {type: wecom, url: x, key: y}}", "channels.c.key", "Extra inputs are not permitted"),
        ("route: {receiver: default, min_colour: purple}", "route.min_colour", "unknown colour 'purple'"),
        ("route: {routes: []}", "route.receiver", "root route needs a receiver"),
        (
            "escalation_policies: {e: {tiers: [{receiver: default, after: soon}]}}",
            "escalation_policies.e.tiers.0.after",
            "not a duration",
        ),
    ],
)
def test_bad_references_name_file_path_and_reason(overrides: str, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(overrides)
    assert info.value.file == "test.yaml"
    assert info.value.path == path
    assert reason in info.value.reason


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_secrets_resolve_from_named_variables_and_never_print() -> None:
    cfg = make_config(
        "channels: {ding: {type: dingtalk, url: 'http://x', secret_env: DING_SECRET},"
        " hook: {type: webhook, url: 'http://y'}}\n"
        "api_tokens: [{user: zhang, role: duty_officer, token_env: TOK}]"
    )
    secrets = resolve_secrets(cfg, {"DING_SECRET": "s3cr3t", "TOK": "abc"})
    assert secrets.get("channels.ding") == "s3cr3t"
    assert secrets.get("api_tokens.zhang") == "abc"
    assert "s3cr3t" not in repr(secrets) and "abc" not in repr(secrets)
    with pytest.raises(ConfigError) as info:
        resolve_secrets(cfg, {"TOK": "abc"})
    assert info.value.path == "channels.ding.secret_env"
    assert "DING_SECRET is not set" in info.value.reason


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), (12, 12), ("500ms", 0.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_robot_urls_can_come_from_the_environment_and_are_never_printed_whole() -> None:
    cfg = make_config(
        "channels: {ding: {type: dingtalk, url_env: DING_URL},"
        " hook: {type: webhook, url: 'https://hooks.example.cn/T0KEN/path?key=abc'}}"
    )
    secrets = resolve_secrets(cfg, {"DING_URL": "https://oapi.dingtalk.com/robot/send?access_token=zzz"})
    assert secrets.get("channels.ding.url") == "https://oapi.dingtalk.com/robot/send?access_token=zzz"
    printed = repr(cfg.channels["hook"]) + str(cfg)
    assert "T0KEN" not in printed and "abc" not in printed and "https://hooks.example.cn/***" in printed
    with pytest.raises(ConfigError) as info:
        make_config("channels: {ding: {type: dingtalk}, hook: {type: webhook, url: x}}")
    assert (info.value.path, info.value.reason) == ("channels.ding", "give exactly one of `url` or `url_env`")


@pytest.mark.parametrize(
    "link",
    [
        "http://duty.example.cn/alerts/{alert_id}",
        "ftp://duty.example.cn/{alert_id}",
        "duty.example.cn/{alert_id}",
    ],
)
def test_acknowledge_links_must_be_https(link: str) -> None:
    """Officers open the link on their phones, over networks riskwatch does not control."""
    with pytest.raises(ConfigError, match=r"defaults\.ack_url.*https://"):
        make_config(f"defaults: {{ack_url: '{link}'}}")


def test_acknowledge_links_over_https_or_to_localhost_are_accepted() -> None:
    assert make_config().defaults.ack_url.startswith("https://")  # the default
    for link in ("https://duty.example.cn/alerts/{alert_id}", "http://127.0.0.1:8080/alerts/{alert_id}"):
        assert make_config(f"defaults: {{ack_url: '{link}'}}").defaults.ack_url == link

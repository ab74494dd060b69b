"""riskwatch.secrets: texts lose their secrets; private files are 0600 from creation and whole."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskwatch import secrets as rs


def test_urls_keep_only_scheme_and_host() -> None:
    text = "POST https://oapi.dingtalk.com/robot/send?access_token=SECRETTOKEN failed; also http://u:pw@h:8/p"
    out = rs.redact(text)
    assert "SECRETTOKEN" not in out and "pw@" not in out and "/robot" not in out
    assert "https://oapi.dingtalk.com/***" in out and "http://h:8/***" in out


def test_password_pairs_bearer_tokens_and_known_values_are_masked() -> None:
    out = rs.redact(
        "password=hunter2222 token: abcdefgh Authorization: Bearer abcdefghijkl k=v", "MYSECRET99"
    )
    assert "hunter2222" not in out and "abcdefgh" not in out and "abcdefghijkl" not in out
    assert out.endswith("k=v")
    assert (
        rs.redact("login as x with MYSECRET99 (MYSECRET99%2B)", "MYSECRET99")
        == "login as x with *** (***%2B)"
    )


def test_remembered_secrets_and_their_url_parts_are_masked_everywhere() -> None:
    rs.remember(
        "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d3c-hook-token",
        None,
        "",
        "http://h/alerts?who=leader",
    )
    out = rs.redact("feishu said: bad hook 0f1e2d3c-hook-token")
    assert "0f1e2d3c-hook-token" not in out and out == "feishu said: bad hook ***"
    assert rs.redact("a short x: alerts for the leader") == "a short x: alerts for the leader"  # not tokens


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the most permissive umask: the mode must not depend on it
    yield
    os.umask(old)


def test_write_private_is_0600_from_creation_and_complete_before_it_appears(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "passwd"
    target.write_text("old")
    target.chmod(0o644)
    data = b"x" * 1_000_000
    seen: list[tuple[str, int, bytes, bytes]] = []
    real_replace = os.replace

    def watching_replace(src: str | Path, dst: str | Path) -> None:
        # Just before the rename: the temporary file is already private and whole, the target untouched.
        seen.append(
            (
                Path(src).name,
                stat.S_IMODE(os.stat(src).st_mode),
                Path(src).read_bytes(),
                Path(dst).read_bytes(),
            )
        )
        real_replace(src, dst)

    created: list[int] = []
    real_open = os.open

    def watching_open(path: str | Path, flags: int, mode: int = 0o777, **kw: object) -> int:
        fd = real_open(path, flags, mode, **kw)  # type: ignore[arg-type]
        if Path(path).parent == tmp_path:
            created.append(stat.S_IMODE(os.fstat(fd).st_mode))  # the mode at the very first instant
        return fd

    monkeypatch.setattr(os, "replace", watching_replace)
    monkeypatch.setattr(os, "open", watching_open)
    rs.write_private(target, data)
    [(name, mode, content, before)] = seen
    assert created and created[0] == 0o600
    assert name.startswith(".passwd.") and mode == 0o600 and content == data and before == b"old"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "settings.json"
    target.write_text("old")

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        rs.write_private(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["settings.json"]

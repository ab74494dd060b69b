"""Security headers for riskwatch's small HTTP endpoints (/metrics, /healthz, the worker's views).

Their answers are data for machines: never sniffed as another type, never framed, never cached by a proxy
or a browser, and no Referer to a link elsewhere. One list, applied by each server's own hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def secure_wsgi(app: WsgiApp) -> WsgiApp:
    """`app` with SECURITY_HEADERS on every response (replacing any of the same name)."""
    names = {name.lower() for name, _ in SECURITY_HEADERS}

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() not in names]
            return start_response(status, kept + list(SECURITY_HEADERS), *exc_info)

        return app(environ, start)

    return wrapped

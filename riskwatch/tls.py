"""TLS settings of riskwatch's clients and servers, as PEM file paths, turned into `ssl` contexts.

Clients always verify the server: against `cafile` (a private CA, such as the local stack's) or, without
one, the system's trusted CAs, and always check the host name. There is no "skip verification" switch.
A client certificate (`certfile` + `keyfile`) is sent when given (mutual TLS). Servers (the alerting API)
take a certificate chain and its key.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from riskwatch.errors import RiskwatchError

MIN_VERSION = ssl.TLSVersion.TLSv1_2


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """How a client verifies its server (and, optionally, proves who it is)."""

    cafile: Path | None = None  # None: the system's trusted CAs
    certfile: Path | None = None
    keyfile: Path | None = None

    def context(self) -> ssl.SSLContext:
        _require_files(("CA", self.cafile), ("client certificate", self.certfile), ("key", self.keyfile))
        if (self.certfile is None) != (self.keyfile is None):
            raise RiskwatchError("a client certificate needs both its certificate file and its key file")
        ctx = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        ctx.minimum_version = MIN_VERSION
        if self.certfile is not None and self.keyfile is not None:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """A server's certificate chain (leaf first) and private key, PEM."""

    certfile: Path
    keyfile: Path

    def context(self) -> ssl.SSLContext:
        _require_files(("certificate", self.certfile), ("key", self.keyfile))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MIN_VERSION
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        except (ssl.SSLError, ValueError) as exc:
            raise RiskwatchError(
                f"{self.certfile} / {self.keyfile}: not a certificate and its key ({exc})"
            ) from exc
        return ctx


def _require_files(*named: tuple[str, Path | None]) -> None:
    for what, path in named:
        if path is not None and not Path(path).is_file():
            raise RiskwatchError(f"TLS {what} file {path} does not exist or is not a file")


def client_argv(tls: ClientTLS, prefix: str) -> list[str]:
    """The command-line flags that give a child process the same `tls` (`--{prefix}-cafile` ... as `riskwatch bridge` takes them)."""
    argv: list[str] = []
    for name in ("cafile", "certfile", "keyfile"):
        value = getattr(tls, name)
        if value is not None:
            argv += [f"--{prefix}-{name}", str(value)]
    return argv

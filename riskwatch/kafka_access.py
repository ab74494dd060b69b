"""How a riskwatch client logs in to Kafka, in one place: its account (SASL/SCRAM) and TLS (when a CA
is given), turned into the keyword arguments of kafka-python, aiokafka and Faust and a kcat config.

Credentials come from the environment or a 0600 file, never from a command line (other users see those
in `ps`): RISKWATCH_KAFKA_USER (default: the component's account, riskwatch/kafka_accounts.py),
RISKWATCH_KAFKA_PASSWORD or RISKWATCH_KAFKA_PASSWORD_FILE, and RISKWATCH_KAFKA_CA (a PEM file: the
listener speaks TLS and its certificate is verified against it). The kernel holds only these settings and
plain dicts; the broker libraries stay with the components that import them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from riskwatch.errors import ConfigError
from riskwatch.kafka_accounts import SCRAM_MECHANISM, account
from riskwatch.secrets import read_private, remember

log = logging.getLogger(__name__)

USER_ENV = "RISKWATCH_KAFKA_USER"
PASSWORD_ENV = "RISKWATCH_KAFKA_PASSWORD"
PASSWORD_FILE_ENV = "RISKWATCH_KAFKA_PASSWORD_FILE"
CA_ENV = "RISKWATCH_KAFKA_CA"


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    """Where Kafka is and how to log in; `repr` never shows the password."""

    bootstrap: str
    user: str
    password: str = field(repr=False)
    cafile: str = ""  # empty: SASL over plain TCP (the local stack before its certificates exist)

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.cafile else "SASL_PLAINTEXT"

    @classmethod
    def of(
        cls, component: str, bootstrap: str, passwords: Mapping[str, str], cafile: str = ""
    ) -> KafkaAccess:
        """`component`'s own account, its password taken from `passwords` (by component)."""
        return cls(bootstrap, account(component).user, passwords[component], cafile)

    @classmethod
    def from_env(
        cls, bootstrap: str, component: str, environ: Mapping[str, str] | None = None
    ) -> KafkaAccess:
        """The account of `component` from the environment (see the module doc); a missing password is a
        ConfigError naming the variables to set."""
        env = os.environ if environ is None else environ
        user = env.get(USER_ENV) or account(component).user
        password = env.get(PASSWORD_ENV, "")
        if not password and env.get(PASSWORD_FILE_ENV):
            password = read_private(Path(env[PASSWORD_FILE_ENV]))
        if not password:
            raise ConfigError(
                "environment", PASSWORD_ENV,
                f"empty: export the password of Kafka account {user} there, or the path of a 0600 file "
                f"holding it in {PASSWORD_FILE_ENV} (`riskwatch stack info --secrets` shows the local stack's)",
            )  # fmt: skip
        remember(password)
        return cls(bootstrap, user, password, env.get(CA_ENV, ""))

    def env(self) -> dict[str, str]:
        """The environment that hands this account to a child process."""
        return {USER_ENV: self.user, PASSWORD_ENV: self.password, CA_ENV: self.cafile}

    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the broker's certificate and host name against the CA, or None without TLS."""
        return ssl.create_default_context(cafile=self.cafile) if self.cafile else None

    def sasl(self) -> dict[str, Any]:
        """For faust.SASLCredentials(**access.sasl())."""
        return {"username": self.user, "password": self.password, "mechanism": SCRAM_MECHANISM,
                "ssl_context": self.ssl_context()}  # fmt: skip

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        tls = {"ssl_cafile": self.cafile, "ssl_check_hostname": True} if self.cafile else {}
        return {
            "bootstrap_servers": self.bootstrap, "security_protocol": self.protocol,
            "sasl_mechanism": SCRAM_MECHANISM, "sasl_plain_username": self.user,
            "sasl_plain_password": self.password, **tls,
        }  # fmt: skip

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer and AIOKafkaConsumer."""
        return {
            "bootstrap_servers": self.bootstrap, "security_protocol": self.protocol,
            "sasl_mechanism": SCRAM_MECHANISM, "sasl_plain_username": self.user,
            "sasl_plain_password": self.password, "ssl_context": self.ssl_context(),
        }  # fmt: skip

    def kcat_config(self) -> str:
        """librdkafka properties for `kcat -F FILE` (write it with riskwatch.secrets.write_private)."""
        lines = [
            f"bootstrap.servers={self.bootstrap}", f"security.protocol={self.protocol.lower()}",
            f"sasl.mechanisms={SCRAM_MECHANISM}", f"sasl.username={self.user}",
            f"sasl.password={self.password}",
        ]  # fmt: skip
        if self.cafile:
            lines += [f"ssl.ca.location={self.cafile}", "ssl.endpoint.identification.algorithm=https"]
        return "\n".join(lines) + "\n"


def kafka_option_help(component: str) -> str:
    """The `--kafka` help of a command that logs in as `component`."""
    return (
        f"Kafka bootstrap HOST:PORT; the account is {account(component).user} (or ${USER_ENV}), its password "
        f"in ${PASSWORD_ENV} or the 0600 file named by ${PASSWORD_FILE_ENV}, the CA of a TLS listener in "
        f"${CA_ENV}"
    )


class Startable(Protocol):
    """A Kafka client of any library: what `start_when_reachable` needs of it."""

    async def start(self) -> None: ...


async def start_when_reachable(
    client: Startable,
    what: str,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    stop: asyncio.Event | None = None,
    beat: Callable[[], None] | None = None,
    retry_s: float = 2.0,
) -> bool:
    """Start `client`, retrying every `retry_s` while it raises one of `errors` (the component's broker
    library's, so the kernel imports none): a component must come up even if Kafka is still starting.
    `beat` is called before each try (a health check's heartbeat); returns False if `stop` was set first."""
    while stop is None or not stop.is_set():
        if beat is not None:
            beat()
        try:
            await client.start()
            return True
        except errors as exc:
            log.warning("Kafka %s cannot start yet (%r); retrying in %.0f s", what, exc, retry_s)
            if stop is None:
                await asyncio.sleep(retry_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry_s)
    return False

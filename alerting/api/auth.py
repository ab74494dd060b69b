"""Bearer-token authentication and role checks. Tokens come from the routes file via env vars."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from alerting.config import RoutingConfig, Secrets

# What each role may do; every role may read.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "duty_officer": frozenset({"read", "ack", "note", "close"}),
    "supervisor": frozenset({"read", "ack", "note", "close", "shelve", "maintenance"}),
}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    def may(self, action: str) -> bool:
        return action in ROLE_ACTIONS.get(self.role, frozenset())


class TokenAuth:
    def __init__(self, tokens: dict[str, User]) -> None:
        self._tokens = [(token.encode(), user) for token, user in tokens.items()]

    @classmethod
    def from_config(cls, cfg: RoutingConfig, secrets: Secrets) -> TokenAuth:
        tokens = {}
        for entry in cfg.api_tokens:
            token = secrets.get(f"api_tokens.{entry.user}")
            if token:
                tokens[token] = User(entry.user, entry.role)
        return cls(tokens)

    def user(self, authorization: str | None) -> User | None:
        """The user behind an `Authorization: Bearer <token>` header, compared in constant time."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer ") :].strip().encode()
        found = None
        for token, user in self._tokens:
            if hmac.compare_digest(given, token):
                found = user
        return found

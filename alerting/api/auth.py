"""Who is asking, and what may they see and do.

Two ways in: a bearer token (systems, curl) or a browser session cookie (the board), which a person gets
by logging in with a token, a password, or a one-time login link. A session is an opaque random id in a
cookie that is HttpOnly and SameSite=Strict; the store keeps only its SHA-256. A POST made with a session
must also carry the session's CSRF token in `X-CSRF-Token` and, when the browser sends one, an `Origin`
of this very host: a forged cross-site form or fetch has neither.

Each user has a role (what they may do) and a scope (which regions and sites they see and act on).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from alerting.config import RoutingConfig, Secrets
from alerting.store import Store

# What each role may do; every role may read.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "duty_officer": frozenset({"read", "ack", "note", "close"}),
    "supervisor": frozenset({"read", "ack", "note", "close", "shelve", "maintenance"}),
}
SESSION_COOKIE = "rw_session"
SESSION_S = 12 * 3600.0  # one duty shift
LOGIN_LINK_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    regions: frozenset[str] = field(default_factory=frozenset)
    sites: frozenset[str] = field(default_factory=frozenset)

    def may(self, action: str) -> bool:
        return action in ROLE_ACTIONS.get(self.role, frozenset())

    @property
    def whole_province(self) -> bool:
        return not self.regions and not self.sites

    def sees(self, site: str, region: str) -> bool:
        """True if the site (or, for a region roll-up, the region) is in this user's scope."""
        if self.whole_province:
            return True
        return (bool(site) and site in self.sites) or (bool(region) and region in self.regions)

    def actions(self) -> list[str]:
        return sorted(ROLE_ACTIONS.get(self.role, frozenset()))


def digest(secret: str) -> str:
    """What the store keeps of a session id or login link: never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


# -- passwords: scrypt, stored as "scrypt$N$r$p$salt$hash" in the variable `password_env` names
_SCRYPT = (2**14, 8, 1)


def hash_password(password: str, salt: bytes | None = None) -> str:
    n, r, p = _SCRYPT
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or int(n) > 2**20 or int(r) > 32 or int(p) > 16:
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), key)


class TokenAuth:
    """Users by bearer token and by password (hashes), from the routes file's `api_tokens`."""

    def __init__(self, tokens: dict[str, User], passwords: dict[str, str] | None = None) -> None:
        self._tokens = [(token.encode(), user) for token, user in tokens.items()]
        self._passwords = dict(passwords or {})
        self.users: dict[str, User] = {u.name: u for u in tokens.values()}

    def add_users(self, users: Iterable[User]) -> None:
        for user in users:
            self.users.setdefault(user.name, user)

    @classmethod
    def from_config(cls, cfg: RoutingConfig, secrets_: Secrets) -> TokenAuth:
        tokens: dict[str, User] = {}
        passwords: dict[str, str] = {}
        users = []
        for entry in cfg.api_tokens:
            user = User(entry.user, entry.role, frozenset(entry.scope.regions), frozenset(entry.scope.sites))
            users.append(user)
            if token := secrets_.get(f"api_tokens.{entry.user}"):
                tokens[token] = user
            if hashed := secrets_.get(f"passwords.{entry.user}"):
                passwords[entry.user] = hashed
        auth = cls(tokens, passwords)
        auth.add_users(users)
        return auth

    def user(self, authorization: str | None) -> User | None:
        """The user behind an `Authorization: Bearer <token>` header, compared in constant time."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self.by_token(authorization[len("Bearer ") :].strip())

    def by_token(self, token: str) -> User | None:
        given = token.encode()
        found = None
        for known, user in self._tokens:
            if hmac.compare_digest(given, known):
                found = user
        return found

    def by_password(self, name: str, password: str) -> User | None:
        stored = self._passwords.get(name)
        if stored is None:
            check_password(password, hash_password("x"))  # same work whether or not the user exists
            return None
        return self.users.get(name) if check_password(password, stored) else None


class Sessions:
    """Browser sessions and one-time login links, kept (hashed) in the alert store."""

    def __init__(self, store: Store, auth: TokenAuth, clock: Callable[[], float]) -> None:
        self.store, self.auth, self.clock = store, auth, clock

    def open(self, user: User) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token)."""
        key, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.store.transaction():
            self.store.prune_sessions(self.clock())
            self.store.put_session(digest(key), user.name, csrf, self.clock() + SESSION_S)
        return key, csrf

    def lookup(self, key: str | None) -> tuple[User, str] | None:
        """(user, CSRF token) of a live session; the user's role and scope as configured now."""
        if not key or len(key) > 200:
            return None
        found = self.store.session(digest(key), self.clock())
        if found is None:
            return None
        user = self.auth.users.get(found[0])
        return None if user is None else (user, found[1])

    def close(self, key: str | None) -> None:
        if key and len(key) <= 200:
            with self.store.transaction():
                self.store.drop_session(digest(key))

    def add_login_link(self, user: str, secret: str, ttl_s: float = LOGIN_LINK_S) -> None:
        with self.store.transaction():
            self.store.put_login_link(digest(secret), user, self.clock() + ttl_s)

    def use_login_link(self, secret: str) -> User | None:
        if not secret or len(secret) > 200:
            return None
        with self.store.transaction():
            name = self.store.use_login_link(digest(secret), self.clock())
        return None if name is None else self.auth.users.get(name)

"""Who may call what: API keys with a role, a set of collections and a set of models, per-key rate
limits, and signed media URLs.

Keys come from three places: `JOINTSPACE_API_KEYS` (admin on every collection),
`JOINTSPACE_READ_ONLY_KEYS` (read on every collection) and `JOINTSPACE_KEYS_FILE`, a JSON file of
named keys held only as SHA-256 hashes. A presented token is hashed and compared with every hash
in constant time. The file can be reloaded while the service runs (SIGHUP); a bad file on reload
keeps the old keys. Refusals are `Denied` exceptions that carry their HTTP status; this module
imports no web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

ROLES = ("read", "write", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Denied(Exception):
    """A refused request: 401 (who are you), 403 (not allowed) or 429 (too fast)."""

    KINDS: ClassVar[dict[int, str]] = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.headers = status, self.KINDS[status], headers


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Key:
    name: str
    digest: bytes
    role: str
    collections: frozenset[str] | None = None  # None: every collection
    rate: float | None = None  # requests per second
    models: frozenset[str] | None = None  # None: every model

    def allows(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def uses(self, model: str) -> bool:
        return self.models is None or model in self.models


OPEN = Key("anonymous", b"", "admin")  # the principal when no keys are configured


def check_scope(key: Key, collection: str) -> None:
    """Denied(403) unless the key may use `collection`."""
    if not key.sees(collection):
        raise Denied(403, f"key '{key.name}' has no access to collection '{collection}'")


def check_model_scope(key: Key, model: str) -> None:
    """Denied(403) unless the key may use `model` (a served model's name)."""
    if not key.uses(model):
        raise Denied(403, f"key '{key.name}' has no access to model '{model}'")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_keys_file(path: Path) -> list[Key]:
    """The keys of a JSON file
    `{"keys": [{"name", "sha256", "role", "collections", "models", "rate"}]}`."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise KeysFileError(f"keys file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise KeysFileError(f"keys file {path}: not valid JSON ({e})") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError(f'keys file {path}: expected {{"keys": [...]}}')
    keys, names = [], set()
    for i, e in enumerate(entries):
        keys.append(_entry(path, i, e))
        if keys[-1].name in names:
            raise KeysFileError(f"keys file {path}: entry {i}: duplicate name '{keys[-1].name}'")
        names.add(keys[-1].name)
    return keys


def _entry(path: Path, i: int, e: object) -> Key:
    where = f"keys file {path}: entry {i}"
    if not isinstance(e, dict):
        raise KeysFileError(f"{where}: expected an object")
    unknown = set(e) - {"name", "sha256", "role", "collections", "models", "rate"}
    if unknown:
        raise KeysFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = e.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise KeysFileError(f"{where}: 'name' must be 1-64 letters, digits, '_', '-' or '.'")
    where = f"keys file {path}: entry {i} ('{name}')"
    sha = e.get("sha256")
    if not isinstance(sha, str) or not HEX64.match(sha.lower()):
        raise KeysFileError(f"{where}: 'sha256' must be 64 hex digits")
    role = e.get("role")
    if role not in ROLES:
        raise KeysFileError(f"{where}: unknown role {role!r} (roles: {', '.join(ROLES)})")
    cols = e.get("collections", ["*"])
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
        raise KeysFileError(f"{where}: 'collections' must be a list of names, or [\"*\"]")
    rate = e.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)
                             or rate <= 0):  # fmt: skip
        raise KeysFileError(f"{where}: 'rate' must be a positive number of requests per second")
    models = e.get("models", ["*"])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise KeysFileError(f"{where}: 'models' must be a list of model names, or [\"*\"]")
    scope = None if "*" in cols else frozenset(cols)
    model_scope = None if "*" in models else frozenset(models)
    return Key(name, bytes.fromhex(sha.lower()), role, scope, float(rate) if rate else None,
               model_scope)  # fmt: skip


class Keyring:
    """The configured keys, a token-bucket per rate-limited key, and reloading of the file."""

    def __init__(self, env_keys: list[Key], file: Path | None = None) -> None:
        self.env_keys, self.file = env_keys, file
        self.keys = env_keys + (parse_keys_file(file) if file else [])
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_lists(cls, admin: list[str], read: list[str], file: Path | None = None) -> Keyring:
        env = [Key(f"api-key-{i + 1}", digest(t), "admin") for i, t in enumerate(admin)]
        env += [Key(f"read-only-key-{i + 1}", digest(t), "read") for i, t in enumerate(read)]
        return cls(env, file)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def reload(self) -> None:
        """Read the keys file again; raises KeysFileError (and keeps the old keys) when bad."""
        if self.file is None:
            return
        keys = self.env_keys + parse_keys_file(self.file)
        names = {k.name for k in keys}
        with self._lock:
            self.keys = keys
            self._buckets = {k: v for k, v in self._buckets.items() if k in names}

    def authenticate(self, authorization: str | None) -> Key:
        """The key of a `Bearer TOKEN` header, or Denied(401)."""
        if not self.enabled:
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        d = digest(token.strip())
        found = None
        for k in self.keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(d, k.digest):
                found = k
        if found is None:
            raise Denied(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})
        return found

    def authorize(self, key: Key, role: str, collection: str | None = None) -> None:
        """Denied(403) outside the key's role or collections; Denied(429) over its rate."""
        if not key.allows(role):
            raise Denied(403, f"key '{key.name}' has the {key.role} role; this needs {role}")
        if collection is not None:
            check_scope(key, collection)
        if key.rate is not None:
            self._take(key)

    def _take(self, key: Key) -> None:
        """One token from the key's bucket (capacity max(1, rate), refilled at `rate` per s)."""
        cap = max(1.0, key.rate)
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(key.name, (cap, now))
            tokens = min(cap, tokens + (now - last) * key.rate)
            if tokens < 1.0:
                self._buckets[key.name] = (tokens, now)
                retry = (1.0 - tokens) / key.rate
                raise Denied(
                    429, f"key '{key.name}' is over its rate of {key.rate:g} requests per second",
                    {"Retry-After": str(max(1, round(retry + 0.49)))},
                )  # fmt: skip
            self._buckets[key.name] = (tokens - 1.0, now)


class MediaSigner:
    """HMAC-SHA256 signatures over a media path and an expiry: `PATH?exp=UNIX&sig=HEX`."""

    def __init__(self, secret: str | None, ttl_s: int) -> None:
        # Without a configured secret, one made now: URLs then die with the process.
        self.secret = (secret or secrets.token_hex(32)).encode()
        self.ttl = ttl_s

    def _sig(self, path: str, exp: int) -> str:
        return hmac.new(self.secret, f"{path}\n{exp}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, now: float | None = None) -> str:
        exp = int(now if now is not None else time.time()) + self.ttl
        return f"{path}?exp={exp}&sig={self._sig(path, exp)}"

    def verify(self, path: str, exp: str | None, sig: str | None, now: float | None = None) -> None:
        """Denied(401) when unsigned, Denied(403) when expired or tampered."""
        if not exp or not sig:
            raise Denied(401, "media needs a bearer token or a signed URL (exp and sig)",
                         {"WWW-Authenticate": "Bearer"})  # fmt: skip
        good = exp.isdigit() and HEX64.match(sig.lower()) is not None
        if not good or not hmac.compare_digest(sig.lower(), self._sig(path, int(exp))):
            raise Denied(403, "the media URL's signature is not valid")
        if int(exp) < (now if now is not None else time.time()):
            raise Denied(403, "the media URL has expired")

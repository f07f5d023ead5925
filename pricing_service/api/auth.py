"""API keys: ``Authorization: Bearer <key>`` with the scopes read < write < admin.

Keys are configured hashed (``name:scope+scope:sha256hex``), from ``PRICING_API_KEYS``
(entries separated by ``;``) or ``PRICING_API_KEYS_FILE`` (one a line, ``#`` comments).
A presented key is hashed and compared in constant time with every configured hash, so
the time taken says nothing about which key, if any, came close.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from pricing_service.api.problems import ProblemError
from pricing_service.settings import Settings

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Scope(IntEnum):
    """Each scope implies the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


class ApiKeyConfigError(ValueError):
    """A configured key entry that cannot be used."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scope: Scope  # the highest scope listed for the key
    digest: bytes


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a key's name and scope, or an anonymous public reader."""

    name: str
    scope: Scope | None


ANONYMOUS = Principal(name="anonymous", scope=None)


def hash_key(key: str) -> str:
    """The hex sha256 to configure for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_entry(entry: str) -> ApiKey:
    parts = entry.strip().split(":")
    if len(parts) != 3:
        raise ApiKeyConfigError(f"API key entry {_redact(entry)!r} is not name:scopes:sha256hex")
    name, scopes_text, digest = (part.strip() for part in parts)
    if not name:
        raise ApiKeyConfigError("an API key entry has an empty name")
    scopes = []
    for scope_name in scopes_text.split("+"):
        try:
            scopes.append(Scope[scope_name.strip().upper()])
        except KeyError:
            raise ApiKeyConfigError(
                f"API key {name!r}: unknown scope {scope_name!r} (read, write, admin)"
            ) from None
    if not _HEX_SHA256.match(digest.lower()):
        raise ApiKeyConfigError(f"API key {name!r}: the hash must be 64 hex digits (sha256)")
    return ApiKey(name=name, scope=max(scopes), digest=bytes.fromhex(digest))


def _redact(entry: str) -> str:
    return entry.split(":", 1)[0] + ":…"


def parse_key_entries(entries: Iterable[str]) -> list[ApiKey]:
    return [
        parse_key_entry(entry)
        for entry in entries
        if entry.strip() and not entry.lstrip().startswith("#")
    ]


def load_api_keys(settings: Settings) -> list[ApiKey]:
    keys: list[ApiKey] = []
    if settings.api_keys:
        keys += parse_key_entries(settings.api_keys.split(";"))
    if settings.api_keys_file is not None:
        keys += parse_key_entries(settings.api_keys_file.read_text().splitlines())
    return keys


def _unauthorized(detail: str, *, error: str | None = None) -> ProblemError:
    """401; ``error`` is RFC 6750's code when a key was presented (``invalid_request`` for
    a malformed header, ``invalid_token`` for an unknown key)."""
    challenge = 'Bearer realm="pricing"' + (f', error="{error}"' if error else "")
    return ProblemError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Checks bearer keys against the configured hashes."""

    def __init__(self, keys: list[ApiKey], *, public_reads: bool) -> None:
        self.keys = keys
        self.public_reads = public_reads

    def identify(self, authorization: str | None) -> ApiKey | None:
        """The key presented in an ``Authorization`` header; None when there is none.
        Raises 401 for a malformed header or an unknown key."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("use Authorization: Bearer <API key>", error="invalid_request")
        presented = hashlib.sha256(token.encode()).digest()
        found = None
        for key in self.keys:  # no early exit: every request compares against every key
            if hmac.compare_digest(presented, key.digest):
                found = key
        if found is None:
            raise _unauthorized("the API key is not valid", error="invalid_token")
        return found

    def authorize(self, authorization: str | None, needed: Scope, *, public: bool) -> Principal:
        key = self.identify(authorization)
        if key is None:
            if public and self.public_reads:
                return ANONYMOUS
            raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
        if key.scope < needed:
            raise ProblemError(
                403,
                "forbidden",
                f"the API key {key.name!r} has scope {key.scope.name.lower()}; "
                f"this needs {needed.name.lower()}",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        return Principal(name=key.name, scope=key.scope)

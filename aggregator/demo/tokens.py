"""The demo's OAuth2 access tokens: issued by the REST demo's token endpoint, checked by the catalog.

A token is its claims (client, scopes, expiry) signed with HMAC-SHA256, so the two demo upstreams
need no shared state to agree on which tokens are valid, and an expired or forged one is refused.
The key is public and fixed: these tokens protect nothing but the demo's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_SCOPES", "Grant", "issue", "verify"]

DEMO_CLIENT_ID = "demo-gateway"
DEMO_CLIENT_SECRET = "demo-client-secret"
# Scopes the token endpoint grants; the catalog's inventory query wants inventory:read.
DEMO_SCOPES = frozenset({"inventory:read"})

_KEY = b"aggregator-demo-signing-key"


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: who it was issued to, its scopes, and when it stops being valid."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _signature(claims: str) -> str:
    return _b64(hmac.new(_KEY, claims.encode(), hashlib.sha256).digest())


def issue(grant: Grant) -> str:
    """A signed token carrying ``grant``."""
    body = {"sub": grant.client_id, "scope": sorted(grant.scopes), "exp": grant.expires_at}
    claims = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{claims}.{_signature(claims)}"


def verify(token: str, now: float) -> Grant | None:
    """The grant of a genuine token that has not expired at ``now``; None for anything else."""
    claims, _, signature = token.partition(".")
    if not hmac.compare_digest(signature, _signature(claims)):
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        grant = Grant(str(body["sub"]), frozenset(map(str, body["scope"])), float(body["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    return grant if now < grant.expires_at else None

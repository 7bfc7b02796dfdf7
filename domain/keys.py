"""API key tokens: their form, and the hash that is stored in their place (never the token)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "og_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

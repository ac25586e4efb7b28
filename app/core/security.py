"""The API token, page sessions and CSRF tokens (fedheads' own scheme, stdlib ``hmac`` only).

With ``FEDHEADS_API_TOKEN`` set, a mutating request carries either

- ``Authorization: Bearer <token>`` (scripts, the CLI), or
- the page session cookie set by ``POST /login`` *and* an ``X-CSRF-Token`` header equal to
  the ``fedheads_csrf`` cookie (double-submit; the browser pages).

The session cookie never holds the token: it is ``<sid>.<issued>.<mac>`` where ``mac`` is an
HMAC-SHA256 of ``<sid>.<issued>`` under a key derived from the token, so the server verifies it
without storing sessions, and changing the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "fedheads_session"
CSRF_COOKIE = "fedheads_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 12 * 3600  # seconds a page login lasts
_KEY_LABEL = b"fedheads page session v1"


def _session_key(token: str) -> bytes:
    return hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(token: str, payload: str) -> str:
    return hmac.new(_session_key(token), payload.encode(), hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode(), token.encode())


def new_session(token: str, now: float | None = None) -> str:
    """A fresh session cookie value: a random id and its issue time, signed under the token's key."""
    payload = f"{secrets.token_urlsafe(24)}.{int(now if now is not None else time.time())}"
    return f"{payload}.{_mac(token, payload)}"


def session_valid(value: str, token: str, now: float | None = None) -> bool:
    """Whether ``value`` was issued by :func:`new_session` under ``token`` less than SESSION_MAX_AGE ago."""
    payload, _, mac = value.rpartition(".")
    _, _, issued = payload.rpartition(".")
    if not payload or not issued.isdigit() or not hmac.compare_digest(mac.encode(), _mac(token, payload).encode()):
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return 0 <= age < SESSION_MAX_AGE


def new_csrf() -> str:
    return secrets.token_urlsafe(24)

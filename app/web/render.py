"""What every dashboard page shares: the Jinja2 environment (autoescaped, strict), the header's login
state, the 404 page and small helpers for what comes in the URL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.templating import Jinja2Templates

from app.core.security import SESSION_COOKIE, session_valid

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def logged_in(request: Request) -> bool:
    """Whether this browser holds a valid page session (False when the server has no token)."""
    token = request.app.state.settings.api_token
    session = request.cookies.get(SESSION_COOKIE)
    return token is not None and session is not None and session_valid(session, token.get_secret_value())


def _auth_context(request: Request) -> dict[str, Any]:
    """Every page's header: whether a login exists (token set) and whether this browser has one."""
    if request.app.state.settings.api_token is None:
        return {"auth_required": False, "auth_logged_in": False}
    return {"auth_required": True, "auth_logged_in": logged_in(request)}


templates = Jinja2Templates(env=_env, context_processors=[_auth_context])


def parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def not_found(request: Request, what: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "not_found.html", {"what": what, "active": ""}, status_code=404)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive UTC times


def _age(value: datetime | None) -> str:
    if value is None:
        return ""
    secs = max((datetime.now(UTC) - aware(value)).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return f"{int(secs)} s ago"


_env.filters["age"] = _age

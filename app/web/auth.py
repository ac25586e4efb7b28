"""Logging in from the browser: ``/login`` takes the API token in a form and sets a signed page-session
cookie (HttpOnly, SameSite=Strict; never the token) and a ``fedheads_csrf`` cookie that the page
scripts echo in ``X-CSRF-Token`` (app/core/security.py); ``/logout`` clears both."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import SettingsDep
from app.core.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    new_csrf,
    new_session,
    token_matches,
)
from app.web.render import logged_in, templates

router = APIRouter(include_in_schema=False)


def _local_path(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _login_page(request: Request, settings: Any, next_: str, error: str = "", status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, "login.html", {
        "active": "", "required": settings.api_token is not None, "logged_in": logged_in(request), "error": error,
        "next": next_,
    }, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep,
               next_: Annotated[str | None, Query(alias="next")] = None) -> Response:
    return _login_page(request, settings, _local_path(next_))


@router.post("/login")
async def login(request: Request, settings: SettingsDep,
                next_: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """The form's token: right sets the session and CSRF cookies and goes back; wrong is a 403 page."""
    target = _local_path(next_)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    token = settings.api_token.get_secret_value()
    given = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0]
    if not given or not token_matches(given, token):
        return _login_page(request, settings, target, error="That is not the server's API token.",
                           status_code=403)
    resp = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    resp.set_cookie(SESSION_COOKIE, new_session(token), max_age=SESSION_MAX_AGE, path="/", secure=secure,
                    httponly=True, samesite="strict")
    resp.set_cookie(CSRF_COOKIE, new_csrf(), max_age=SESSION_MAX_AGE, path="/", secure=secure,
                    httponly=False, samesite="strict")
    return resp


@router.get("/logout")
def logout() -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    resp.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    return resp

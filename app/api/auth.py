"""``require_write``: the dependency every mutating route carries (see app/core/security.py).

No ``FEDHEADS_API_TOKEN``: everything is open (``fedheads serve`` says so at start and binds
to 127.0.0.1 by default). With a token: 401 (``WWW-Authenticate: Bearer``) without
credentials, 403 with a wrong token or a page session whose CSRF header is missing or
does not match its cookie. Reads never need a token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, session_valid, token_matches

bearer = HTTPBearer(
    auto_error=False,
    description="FEDHEADS_API_TOKEN of the server; needed by POST and DELETE when the server has one set.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require_write(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    token_secret = request.app.state.settings.api_token
    if token_secret is None:
        return
    token = token_secret.get_secret_value()
    if credentials is not None:
        if not token_matches(credentials.credentials, token):
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="wrong API token")
        return
    session = request.cookies.get(SESSION_COOKIE)
    if session is None:
        raise _unauthorized("this server needs a token: send 'Authorization: Bearer <token>' or log in at /login")
    if not session_valid(session, token):
        raise _unauthorized("the page session has expired or the token changed: log in again at /login")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header or not token_matches(header, cookie):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"a page session needs the {CSRF_HEADER} header equal to the {CSRF_COOKIE} cookie",
        )


WRITE = [Depends(require_write)]

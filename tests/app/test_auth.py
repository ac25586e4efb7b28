"""Issue 6: with FEDHEADS_API_TOKEN set, mutations need the token (Bearer) or a page session + CSRF header."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from app.core.config import Settings
from app.core.security import SESSION_MAX_AGE, new_session, session_valid
from tests.app.held import held_client
from tests.app.stack import PG_URL, ROOT, free_port, fresh_schema, schema_url, wait_for

TOKEN = "tok-" + "7f3a9c" * 6
SMOKE = {"preset": "smoke", "overrides": {"rounds": 1}}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[TestClient]:
    with held_client(tmp_path, api_token=TOKEN) as client:
        yield client


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI wraps those in newer versions)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def _mutating_routes(client: TestClient) -> list[tuple[str, str]]:
    out = []
    for route in _api_routes(client.app.routes):  # type: ignore[attr-defined]
        if route.path == "/login":
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        out += [(m, path) for m in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"})]
    return out


def _login(client: TestClient) -> str:
    resp = client.post("/login", content=f"token={TOKEN}", headers=FORM, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return client.cookies["fedheads_csrf"]


def test_every_mutating_route_answers_401_with_bearer_challenge_when_no_credentials_are_sent(
    locked: TestClient,
) -> None:
    routes = _mutating_routes(locked)
    assert len(routes) >= 5  # create, cancel, resume, delete, /ui/validate
    for method, path in routes:
        resp = locked.request(method, path, json=SMOKE)
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"


def test_mutation_answers_403_when_the_bearer_token_is_wrong(locked: TestClient) -> None:
    resp = locked.post("/api/v1/experiments", json=SMOKE, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert resp.status_code == 403
    assert locked.get("/api/v1/experiments").json()["total"] == 0


def test_mutations_succeed_when_the_bearer_token_is_right(locked: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = locked.post("/api/v1/experiments", json=SMOKE, headers=auth)
    assert created.status_code == 201, created.text
    exp_id = created.json()["id"]
    assert locked.post(f"/api/v1/experiments/{exp_id}/cancel", headers=auth).status_code == 202
    assert locked.delete(f"/api/v1/experiments/{exp_id}", headers=auth).status_code == 204


def test_reads_and_pages_stay_open_when_a_token_is_set(locked: TestClient) -> None:
    for path in ("/api/v1/experiments", "/api/v1/health", "/api/v1/presets", "/", "/experiments/new", "/login"):
        assert locked.get(path).status_code == 200, path


def test_every_page_header_offers_a_login_then_a_logout_when_a_token_is_set(locked: TestClient) -> None:
    for path in ("/", "/experiments/new", "/compare"):
        page = locked.get(path).text
        assert f'href="/login?next={path}"' in page and "Log out" not in page, path
    _login(locked)
    page = locked.get("/experiments/new").text
    assert 'href="/logout"' in page and "Log in<" not in page


def test_page_headers_offer_no_login_when_no_token_is_set(tmp_path: Path) -> None:
    with held_client(tmp_path) as client:
        page = client.get("/").text
        assert "/login" not in page and "/logout" not in page


def test_mutations_are_open_when_no_token_is_set(tmp_path: Path) -> None:
    with held_client(tmp_path) as client:
        assert client.post("/api/v1/experiments", json=SMOKE).status_code == 201
        assert client.post("/ui/validate", json=SMOKE).status_code == 200


def test_login_sets_httponly_strict_session_cookie_that_is_not_the_token(locked: TestClient) -> None:
    resp = locked.post("/login?next=/experiments/new", content=f"token={TOKEN}", headers=FORM,
                       follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/experiments/new"
    cookies = {c.split("=", 1)[0]: c for c in resp.headers.get_list("set-cookie")}
    session, csrf = cookies["fedheads_session"], cookies["fedheads_csrf"]
    assert "HttpOnly" in session and "samesite=strict" in session.lower()
    assert "HttpOnly" not in csrf and "samesite=strict" in csrf.lower()
    assert TOKEN not in session and TOKEN not in csrf
    assert session_valid(locked.cookies["fedheads_session"], TOKEN)


def test_login_answers_403_and_sets_no_cookie_when_the_token_is_wrong(locked: TestClient) -> None:
    resp = locked.post("/login", content="token=guess", headers=FORM, follow_redirects=False)
    assert resp.status_code == 403 and "not the server" in resp.text
    assert "set-cookie" not in resp.headers


def test_login_redirects_only_to_paths_on_this_server(locked: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        resp = locked.post("/login", params={"next": target}, content=f"token={TOKEN}", headers=FORM,
                           follow_redirects=False)
        assert resp.headers["location"] == "/", target


def test_session_mutation_answers_403_when_the_csrf_header_is_missing_or_wrong(locked: TestClient) -> None:
    csrf = _login(locked)
    assert locked.post("/api/v1/experiments", json=SMOKE).status_code == 403
    wrong = locked.post("/api/v1/experiments", json=SMOKE, headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403 and "X-CSRF-Token" in wrong.json()["detail"]
    assert locked.get("/api/v1/experiments").json()["total"] == 0


def test_session_mutation_succeeds_when_the_csrf_header_matches_its_cookie(locked: TestClient) -> None:
    csrf = _login(locked)
    assert locked.post("/ui/validate", json=SMOKE, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert locked.post("/api/v1/experiments", json=SMOKE, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_session_answers_401_when_signed_under_another_token_or_expired(locked: TestClient) -> None:
    for session in (new_session("another-token"), new_session(TOKEN, now=0)):
        locked.cookies.set("fedheads_session", session)
        locked.cookies.set("fedheads_csrf", "c")
        resp = locked.post("/ui/validate", json=SMOKE, headers={"X-CSRF-Token": "c"})
        assert resp.status_code == 401, resp.text
    assert not session_valid(new_session(TOKEN, now=1000), TOKEN, now=1000 + SESSION_MAX_AGE)


def test_logout_clears_both_cookies(locked: TestClient) -> None:
    csrf = _login(locked)
    resp = locked.get("/logout", follow_redirects=False)
    assert resp.status_code == 303
    assert "fedheads_session" not in locked.cookies and "fedheads_csrf" not in locked.cookies
    assert locked.post("/ui/validate", json=SMOKE, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_settings_repr_hides_the_token_and_the_database_password() -> None:
    settings = Settings(database_url="postgresql+psycopg2://fh:db-pass-91@db/fh", api_token=TOKEN,
                        broker_url="redis://:redis-pass-17@cache:6379/0")
    for text in (repr(settings), str(settings)):
        assert TOKEN not in text and "db-pass-91" not in text and "redis-pass-17" not in text


def test_token_and_db_password_never_appear_in_health_openapi_errors_or_the_server_log(tmp_path: Path) -> None:
    password = "pw-" + uuid.uuid4().hex
    fresh_schema("fedheads_auth")
    # the test database's URL with a password in it (the server trusts local connections and ignores it)
    with_password = make_url(PG_URL).set(password=password).render_as_string(hide_password=False)
    db_url = schema_url("fedheads_auth", base=with_password)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDHEADS_")}
    env.update({"FEDHEADS_DATABASE_URL": db_url, "FEDHEADS_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT),
                "FEDHEADS_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "FEDHEADS_DATA_ROOT": str(tmp_path / "d")})
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "serve", "--port", str(port), "--log-level",
                                 "debug"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the API with a token", interval=0.2, logs=[log])
        seen = []
        with httpx.Client(base_url=base, timeout=30) as c:
            seen.append(c.get("/api/v1/health"))
            seen.append(c.get("/openapi.json"))
            seen.append(c.get("/docs"))
            seen.append(c.get("/api/v1/assets"))
            seen.append(c.post("/api/v1/experiments", json=SMOKE, headers={"Authorization": f"Bearer {TOKEN}x"}))
            seen.append(c.post("/api/v1/experiments", json=SMOKE))
            seen.append(c.post("/api/v1/experiments", json={"preset": "nope"},
                               headers={"Authorization": f"Bearer {TOKEN}"}))
            seen.append(c.post("/login", content="token=wrong", headers=FORM))
            seen.append(c.get(f"/api/v1/experiments/{uuid.uuid4()}"))
            seen.append(c.get("/experiments/not-an-id"))
        assert [r.status_code for r in seen] == [200, 200, 200, 200, 403, 401, 422, 403, 404, 404]
        for resp in seen:
            assert password not in resp.text and password not in str(resp.headers), resp.request.url
            assert TOKEN not in resp.text and TOKEN not in str(resp.headers), resp.request.url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    output = log.read_text(errors="replace")
    assert "GET /api/v1/health" in output  # the log was written at all
    assert TOKEN not in output and password not in output

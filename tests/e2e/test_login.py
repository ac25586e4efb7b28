"""Issue 6 in a real headless Chromium: a server with FEDHEADS_API_TOKEN, its login page and CSRF checks.

What the pages do (and these tests pin down): reading, the form included, stays open; a
submission without a login is refused (401) and the page shows a notice linking to
``/login?next=<this page>``; a wrong token is a 403 login page with an error and no cookie;
the right token sets an HttpOnly SameSite=Strict session cookie and a readable CSRF cookie
that the page scripts echo in ``X-CSRF-Token``; a POST without that header is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TINY, Server, serve_process

TOKEN = "e2e-" + "4b9d1f" * 6
EXP_URL = re.compile(r"/experiments/[0-9a-f-]{36}$")
SMOKE = {"preset": "smoke", "overrides": {"rounds": 1}}
# A page on another site that posts a plain HTML form at the server (a classic CSRF attempt).
EVIL_SITE = "http://evil.test"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_process(tmp_path_factory.mktemp("e2e-token"), {"FEDHEADS_API_TOKEN": TOKEN}) as srv:
        yield srv


@pytest.fixture
def tab(page: Any, browser_context: Any) -> Iterator[Any]:
    """A tab with no cookies, in the session's shared browser: cleared before and after (others reuse it)."""
    browser_context.clear_cookies()
    yield page
    browser_context.clear_cookies()


def _total(server: Server) -> int:
    with server.api() as api:
        return int(api.get("/api/v1/experiments").json()["total"])


def _open_form(page: Any, server: Server) -> None:
    resp = page.goto(f"{server.url}/experiments/new")
    assert resp.status == 200  # reading, the form included, needs no login
    page.wait_for_selector('#preset option[value="smoke"]', state="attached")
    page.select_option("#preset", "smoke")
    page.wait_for_function("document.getElementById('f-model').value === 'tiny-bert'")
    for name, value in {**TINY, "rounds": 1}.items():
        page.fill(f"#f-{name}", str(value))


def _log_in(page: Any, server: Server, token: str, next_: str = "/") -> Any:
    page.goto(f"{server.url}/login?next={next_}")
    page.fill("#token", token)
    with page.expect_navigation() as nav:
        page.click("form.panel button[type=submit]")
    return nav.value


def _cookies(context: Any, server: Server) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in context.cookies(server.url)}


def test_form_submission_without_login_is_refused_and_links_to_the_login_page(
    tab: Any, token_server: Server
) -> None:
    _open_form(tab, token_server)
    with tab.expect_response(lambda r: r.url.endswith("/api/v1/experiments") and r.request.method == "POST") as r:
        tab.click("#submit")
    assert r.value.status == 401
    notice = tab.locator("#login-needed")
    notice.wait_for(state="visible")
    assert "API token" in notice.text_content()
    assert tab.get_attribute("#login-link", "href") == "/login?next=%2Fexperiments%2Fnew"
    assert EXP_URL.search(tab.url) is None
    assert _total(token_server) == 0

    tab.click("#login-link")
    tab.wait_for_url(re.compile(r"/login\?next=%2Fexperiments%2Fnew$"))
    assert tab.locator("#token").is_visible()


def test_login_with_a_wrong_token_shows_an_error_and_sets_no_cookie(
    tab: Any, browser_context: Any, token_server: Server
) -> None:
    resp = _log_in(tab, token_server, TOKEN + "x", next_="/experiments/new")
    assert resp.status == 403
    assert tab.text_content("#login-error") == "That is not the server's API token."
    assert tab.locator("#login-state").count() == 0
    assert _cookies(browser_context, token_server) == {}


def test_login_sets_httponly_strict_cookies_and_the_form_then_creates_a_listed_experiment(
    tab: Any, browser_context: Any, token_server: Server
) -> None:
    _log_in(tab, token_server, TOKEN, next_="/experiments/new")
    tab.wait_for_url(f"{token_server.url}/experiments/new")  # back where the login was asked for

    cookies = _cookies(browser_context, token_server)
    session, csrf = cookies["fedheads_session"], cookies["fedheads_csrf"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert csrf["httpOnly"] is False and csrf["sameSite"] == "Strict"  # the page scripts read it
    assert TOKEN not in session["value"] and TOKEN not in csrf["value"]
    assert tab.evaluate("document.cookie").count("fedheads_session") == 0  # HttpOnly: hidden from scripts

    name = "e2e logged-in submission"
    _open_form(tab, token_server)
    tab.fill("#f-name", name)
    tab.click("#submit")
    tab.wait_for_url(EXP_URL)
    exp_id = tab.url.rsplit("/", 1)[-1]
    assert tab.text_content("h1") == name

    tab.goto(f"{token_server.url}/")
    assert tab.text_content(f'tr[data-id="{exp_id}"] a.name') == name
    with token_server.api() as api:  # stop the job: the test needs the row, not the run
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert api.post(f"/api/v1/experiments/{exp_id}/cancel", headers=auth).status_code == 202


def test_posts_of_a_logged_in_page_without_the_csrf_token_are_refused(
    tab: Any, browser_context: Any, token_server: Server
) -> None:
    _log_in(tab, token_server, TOKEN)
    before = _total(token_server)

    # from the page itself: a script that does not echo the CSRF cookie (the session cookie is sent)
    status = tab.evaluate("""async (body) => (await fetch('/api/v1/experiments', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})).status""", SMOKE)
    assert status == 403

    # from outside the browser with the browser's cookies: the header missing, wrong, or a form post
    cookies = {n: c["value"] for n, c in _cookies(browser_context, token_server).items()}
    with httpx.Client(base_url=token_server.url, cookies=cookies, timeout=30) as client:
        missing = client.post("/api/v1/experiments", json=SMOKE)
        wrong = client.post("/api/v1/experiments", json=SMOKE, headers={"X-CSRF-Token": cookies["fedheads_csrf"] + "x"})
        form = client.post("/api/v1/experiments", data={"preset": "smoke"})
        validate = client.post("/ui/validate", json=SMOKE)
    for resp in (missing, wrong, form, validate):
        assert resp.status_code == 403, resp.text
        assert "X-CSRF-Token" in resp.json()["detail"]
    assert _total(token_server) == before


def test_a_cross_site_form_post_reaches_the_server_without_the_session(
    tab: Any, token_server: Server, outside_requests: list[str]
) -> None:
    _log_in(tab, token_server, TOKEN)
    before = _total(token_server)
    evil = (f'<form method="post" action="{token_server.url}/api/v1/experiments">'
            '<input name="preset" value="smoke"><button id="go">go</button></form>')
    tab.route(f"{EVIL_SITE}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=evil))
    tab.goto(f"{EVIL_SITE}/page")
    with tab.expect_response(f"{token_server.url}/api/v1/experiments") as r:
        tab.click("#go")
    # SameSite=Strict: the browser leaves the session cookie off, so the server sees no login at all
    assert r.value.status == 401
    assert "fedheads_session" not in (r.value.request.header_value("cookie") or "")
    assert _total(token_server) == before
    # the other site's page was served by tab.route above, not fetched: the one outside request that is expected
    assert outside_requests == [f"{EVIL_SITE}/page"]
    outside_requests.clear()

"""Issue 6: bad input is refused early and clearly (body size, name length, unknown fields)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

LIMIT = 1024 * 1024  # the default FEDHEADS_MAX_BODY_BYTES of the stack's server


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_body_over_the_limit_answers_413_when_its_length_is_declared(api: httpx.Client) -> None:
    resp = api.post("/api/v1/experiments", content=b" " * (LIMIT + 1), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "too large" in resp.json()["detail"] and str(LIMIT) in resp.json()["detail"]
    assert api.get("/api/v1/experiments").json()["total"] == 0


def test_body_over_the_limit_answers_413_when_sent_chunked(api: httpx.Client) -> None:
    resp = api.post("/ui/validate", content=_chunks(3 * LIMIT), headers={"content-type": "application/json"})
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert resp.status_code == 413 and "FEDHEADS_MAX_BODY_BYTES" in resp.json()["detail"]


def test_chunked_body_under_the_limit_reaches_the_app(api: httpx.Client) -> None:
    body = b'{"preset": "smoke", "overrides": {"rounds": 1}}'
    resp = api.post("/ui/validate", content=iter([body[:10], body[10:]]), headers={"content-type": "application/json"})
    assert resp.status_code == 200 and resp.json()["spec"]["rounds"] == 1


def test_create_answers_422_naming_the_name_when_it_is_empty_or_over_200_characters(api: httpx.Client) -> None:
    for name in ("", "x" * 201):
        resp = api.post("/api/v1/experiments", json={"name": name, "preset": "smoke"})
        assert resp.status_code == 422
        assert resp.json()["detail"][0]["loc"] == ["body", "name"]
    assert api.get("/api/v1/experiments").json()["total"] == 0


def test_create_answers_422_when_a_field_is_unknown_at_any_level(api: httpx.Client) -> None:
    bodies = [
        ({"preset": "smoke", "colour": "red"}, ["body", "colour"]),
        ({"spec": {"rounds": 1, "colour": "red"}}, ["body", "spec", "colour"]),
        ({"preset": "smoke", "overrides": {"colour": "red"}}, ["body", "overrides", "colour"]),
    ]
    for body, loc in bodies:
        resp = api.post("/api/v1/experiments", json=body)
        assert resp.status_code == 422, body
        assert [e["loc"] for e in resp.json()["detail"]] == [loc], resp.json()
    assert api.get("/api/v1/experiments").json()["total"] == 0

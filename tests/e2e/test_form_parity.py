"""The new-experiment form in headless Chromium: its hints are the server's 422 word for word, model and
dataset come from the catalog, and fields that do not apply are hidden (and sent at their defaults)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server

ROWS = "text,label\n" + "".join(f"some words {i},{i % 2}\n" for i in range(40))
FILES = {
    "good.csv": ROWS,
    "semi.csv": "text;label\na;1\nb;0\n",
    "one-class.csv": "text,label\n" + "a,1\n" * 30,
    "broken.jsonl": '{"text": "a", "label": 1}\n{"text": "b", "label": \n',
}


@pytest.fixture(scope="module")
def data_root(server: Server) -> Path:
    root = server.log.parent / "data"  # the server's FEDHEADS_DATA_ROOT (tests/e2e/conftest.py)
    root.mkdir(exist_ok=True)
    for name, text in FILES.items():
        (root / name).write_text(text)
    return root


def open_form(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/experiments/new")
    page.wait_for_selector('#preset option[value="smoke"]', state="attached")
    page.select_option("#preset", "smoke")
    page.wait_for_function("document.getElementById('f-model').value === 'tiny-bert'")
    page.wait_for_selector("#pick-dataset option[value='=local']", state="attached")  # the catalog is in


def rest_messages(server: Server, overrides: dict[str, Any]) -> dict[str, str]:
    """The API's 422 for the smoke preset with ``overrides``: message per field."""
    with server.api() as api:
        resp = api.post("/api/v1/experiments", json={"name": "rest", "preset": "smoke", "overrides": overrides})
    assert resp.status_code == 422, resp.text
    out: dict[str, str] = {}
    for item in resp.json()["detail"]:
        field = item["loc"][-1]
        out[field] = f"{out[field]}; {item['msg']}" if field in out else item["msg"]
    return out


def visible(page: Any, name: str) -> bool:
    return bool(page.locator(f'.field[data-field="{name}"]').is_visible())


@pytest.mark.parametrize("data_path,field", [
    ("../../../etc/passwd", "data_path"),
    ("/etc/passwd.csv", "data_path"),
    ("semi.csv", "data_path"),
    ("broken.jsonl", "data_path"),
    ("one-class.csv", "label_field"),
])
def test_a_bad_local_file_shows_in_the_form_the_message_of_the_apis_422(
        page: Any, server: Server, data_root: Path, artifacts: Path, data_path: str, field: str) -> None:
    with server.api() as api:
        before = api.get("/api/v1/experiments").json()["total"]
    expected = rest_messages(server, {"dataset": "local", "data_path": data_path})[field]
    open_form(page, server)
    page.select_option("#pick-dataset", "=local")
    assert page.evaluate("document.activeElement.id") == "f-data_path"
    page.fill("#f-data_path", data_path)
    box = page.locator(f"#err-{field}")
    box.wait_for(state="visible")  # a hint as the user types: the server's check, before any submit
    assert box.text_content() == expected
    assert page.evaluate("document.activeElement.id") == "f-data_path"  # the hint does not move the cursor
    slug = re.sub(r"[^a-z0-9]+", "-", data_path.lower()).strip("-")
    page.locator("#group-model").screenshot(path=str(artifacts / f"form-hint-{slug}.png"))

    page.click("#submit")  # the submit's 422 says the same
    page.wait_for_function("document.getElementById('submit-note').textContent.startsWith('not submitted')")
    assert page.locator(f"#err-{field}").text_content() == expected
    assert page.get_attribute(f"#f-{field}", "aria-invalid") == "true"
    with server.api() as api:
        assert api.get("/api/v1/experiments").json()["total"] == before  # nothing stored


def test_the_fields_that_do_not_apply_are_hidden_and_sent_at_their_defaults(
        page: Any, server: Server, data_root: Path, artifacts: Path) -> None:
    open_form(page, server)
    # smoke: tiny-bert on the built-in synthetic data, iid, mask mode, loss_gap selection, head_weighted
    models = page.eval_on_selector_all("#pick-model option", "os => os.map(o => o.value)")
    assert {"tiny-bert", "tiny-t5", "minilm-l6", "=hub", "=folder"} <= set(models)
    datasets = page.eval_on_selector_all("#pick-dataset option", "os => os.map(o => o.value)")
    assert {"synthetic", "snli", "=local", "=hub"} <= set(datasets)
    assert page.input_value("#pick-model") == "tiny-bert" and page.locator("#f-model").is_hidden()
    assert page.input_value("#pick-dataset") == "synthetic" and page.locator("#f-dataset").is_hidden()
    hidden = ["data_path", "text_field", "text_pair_field", "label_field", "target_field", "max_target_len",
              "dirichlet_alpha", "shards_per_client", "quantity_sigma", "drop_dense_steps", "poc_candidates"]
    assert [n for n in hidden if visible(page, n)] == []
    shown = ["pooling", "num_clients", "head_weighting", "selection_epsilon"]
    assert [n for n in shown if not visible(page, n)] == []
    assert page.locator("#task-choice").is_hidden()

    page.select_option("#f-partition", "dirichlet")
    assert visible(page, "dirichlet_alpha") and not visible(page, "shards_per_client")
    page.fill("#f-dirichlet_alpha", "0.1")
    page.select_option("#f-partition", "shards")
    assert visible(page, "shards_per_client") and not visible(page, "dirichlet_alpha")
    page.select_option("#f-prune_mode", "drop")
    page.select_option("#f-selection", "power_of_choice")
    page.select_option("#f-aggregation", "fedavg")
    assert visible(page, "drop_dense_steps") and visible(page, "poc_candidates")
    assert not visible(page, "selection_epsilon") and not visible(page, "head_weighting")

    page.select_option("#pick-model", "tiny-t5")  # not a BERT: no pooling choice
    assert page.input_value("#f-model") == "tiny-t5" and not visible(page, "pooling")
    page.select_option("#pick-model", "=hub")
    assert page.locator("#f-model").is_visible() and page.input_value("#f-model") == "hub:"
    page.select_option("#pick-model", "tiny-bert")

    page.select_option("#pick-dataset", "=local")
    assert page.input_value("#f-dataset") == "local"
    assert all(visible(page, n) for n in ("data_path", "text_field", "text_pair_field", "label_field"))
    assert not visible(page, "target_field") and page.locator("#task-choice").is_visible()
    files = page.eval_on_selector_all("#dl-data_path option", "os => os.map(o => o.value)")
    assert set(FILES) <= set(files)  # the catalog's files in the data root
    page.select_option("#pick-task", "generation")
    assert visible(page, "target_field") and visible(page, "max_target_len") and not visible(page, "label_field")
    assert page.input_value("#f-target_field") == "target"
    page.select_option("#pick-task", "classification")
    page.fill("#f-data_path", "good.csv")

    page.locator("#group-model").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "form-local-file.png"), full_page=True)

    page.select_option("#f-partition", "iid")
    page.fill("#f-num_clients", "2")  # clients_per_round 3 > 2: refused, so this submit stores nothing
    with page.expect_request(lambda r: r.url.endswith("/api/v1/experiments") and r.method == "POST") as req:
        page.click("#submit")
    spec = json.loads(req.value.post_data)["spec"]
    assert spec["dataset"] == "local" and spec["data_path"] == "good.csv" and spec["target_field"] is None
    assert spec["dirichlet_alpha"] == 0.5 and spec["shards_per_client"] == 2  # hidden: the spec's defaults
    assert spec["prune_mode"] == "drop" and spec["selection"] == "power_of_choice" and spec["poc_candidates"] is None
    page.locator("#form-error").wait_for(state="visible")
    assert "clients_per_round (3) must be <= num_clients (2)" in page.text_content("#form-error")

    page.select_option("#pick-dataset", "snli")  # back to a built-in: the file's fields go again
    assert page.input_value("#f-dataset") == "snli"
    assert not any(visible(page, n) for n in ("data_path", "text_field", "label_field"))

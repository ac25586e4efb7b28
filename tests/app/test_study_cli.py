"""`fedheads study run`: a study file run on a server (Celery) and here give the same table; a bad one is the
server's 422, word for word, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.app.stack import Stack
from worker.cli import main

STUDY = {
    "name": "cli study",
    "base": {"preset": "smoke", "overrides": {"rounds": 2, "local_steps": 2, "eval_size": 40,
                                              "max_train_examples": 200}},
    "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.5, "prune_mode": "mask"}},
    "seeds": [0],
    "baseline": "dense",
    "targets": [{"metric": "uplink_advantage", "at_least": 1.2}],
}
FIGURES = ("final_accuracy", "last3_accuracy", "uplink_advantage", "total_advantage", "ops_reduction")


def test_a_study_file_runs_on_a_server_and_here_with_the_same_table(
    api: httpx.Client, stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(STUDY))
    assert main(["study", "run", str(grid), "--server", stack.api_url, "--interval", "0.3",
                 "--json", str(tmp_path / "server.json")]) == 0
    err = capsys.readouterr().err
    assert "all runs" in err and "dense seed 0" in err and "mask seed 0" in err and "uplink_advantage" in err
    server = json.loads((tmp_path / "server.json").read_text())
    study = api.get("/api/v1/studies").json()["items"][0]
    assert study["status"] == "succeeded"
    assert api.get(f"/api/v1/studies/{study['id']}").json()["aggregate"] == server

    assert main(["study", "run", str(grid), "--json", str(tmp_path / "here.json")]) == 0
    here = json.loads((tmp_path / "here.json").read_text())
    assert here["complete"] and [v["variant"] for v in here["variants"]] == ["dense", "mask"]
    for mine, theirs in zip(here["variants"], server["variants"], strict=True):
        for key in FIGURES:
            assert mine["figures"][key]["mean"] == pytest.approx(theirs["figures"][key]["mean"]), key
    assert [v["met"] for v in here["verdicts"]] == [v["met"] for v in server["verdicts"]]


def test_a_bad_study_file_exits_2_with_the_servers_words_and_stores_nothing(
    api: httpx.Client, stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "bad.yaml"
    grid.write_text(yaml.safe_dump({**STUDY, "variants": {"dense": {}, "mask": {"sparsityy": 0.5}}}))
    assert main(["study", "run", str(grid), "--server", stack.api_url]) == 2
    assert "body.variants.mask.sparsityy" in capsys.readouterr().err
    assert api.get("/api/v1/studies").json()["total"] == 0
    assert api.get("/api/v1/experiments").json()["total"] == 0

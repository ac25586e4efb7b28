"""The `fedheads` command: fedcore's commands plus serve, worker, db upgrade and submit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from tests.app.stack import TEST_JOB, Stack
from worker.cli import build_parser, main


def _sets(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]


def test_parser_accepts_fedcore_and_service_commands_when_built_on_fedcores_parser() -> None:
    parser = build_parser()
    for argv in (
        ["run", "--preset", "smoke"],
        ["presets"],
        ["assets", "--check"],
        ["serve", "--port", "9"],
        ["worker", "-Q", "clients"],
        ["db", "upgrade"],
        ["submit", "x.yaml", "--server", "http://h"],
    ):
        assert parser.parse_args(argv).func is not None


def test_submit_waits_for_the_job_and_exits_0_when_it_succeeds(
    api: httpx.Client, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "submit",
            "--preset",
            "smoke",
            *_sets(TEST_JOB),
            "--name",
            "from-cli",
            "--server",
            stack.api_url,
            "--wait",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    exp_id = out.out.strip().splitlines()[-1]
    body = api.get(f"/api/v1/experiments/{exp_id}").json()
    assert body["status"] == "succeeded" and body["name"] == "from-cli"
    assert "succeeded" in out.err and "3/3" in out.err


def test_submit_exits_2_naming_the_field_when_the_spec_file_is_invalid(
    api: httpx.Client, stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("preset: smoke\nrounds: 0\n")
    code = main(["submit", str(spec), "--server", stack.api_url])
    assert code == 2
    assert "overrides.rounds" in capsys.readouterr().err
    assert api.get("/api/v1/experiments").json()["total"] == 0


def test_db_upgrade_creates_the_schema_on_a_new_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    engine = create_engine(url)
    assert {"experiments", "rounds", "clients", "events", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_submit_exits_2_with_the_servers_words_when_the_data_cannot_be_used(
    api: httpx.Client, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["submit", "--preset", "smoke", "--set", "dataset=local", "--set", "data_path=../../../etc/passwd",
                 "--server", stack.api_url])
    assert code == 2
    err = capsys.readouterr().err
    assert "overrides.data_path: '../../../etc/passwd' is not allowed: '..' would leave the data root" in err
    assert api.get("/api/v1/experiments").json()["total"] == 0

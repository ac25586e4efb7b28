"""Generated docs match the code: docs/openapi.json, the settings reference, .env.example, compose."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.reference import (
    CONFIG_BEGIN,
    CONFIG_END,
    ENV_EXAMPLE_PATH,
    OPENAPI_PATH,
    OPERATIONS_PATH,
    REGENERATE_CONFIG,
    REGENERATE_OPENAPI,
    ROOT,
    config_table,
    env_example,
    env_name,
    openapi_json,
    openapi_schema,
)
from worker.cli import main


def test_openapi_json_is_current_when_compared_to_the_app() -> None:
    committed = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
    assert committed == openapi_json(), f"docs/openapi.json is stale; regenerate it with: {REGENERATE_OPENAPI}"


def test_api_md_names_only_routes_that_exist_when_checked_against_the_schema() -> None:
    paths = openapi_schema()["paths"]
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in paths]
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    named = {m.rstrip("/.`") for m in re.findall(r"/api/v1/[A-Za-z0-9_{}/.$-]*", text)}
    named = {re.sub(r"\$ID|\.\.\.", "x", p) for p in named}
    assert len(named) >= 10
    unknown = sorted(p for p in named if not any(pat.match(p) for pat in patterns))
    assert not unknown, f"docs/api.md names routes the API does not have: {unknown}"
    documented = {re.sub(r"\{[^}]+\}", "{}", p) for p in named}
    missing = sorted(p for p in paths if re.sub(r"\{[^}]+\}", "{}", p) not in documented)
    assert not missing, f"docs/api.md does not mention: {missing}"


def test_operations_md_settings_table_equals_the_one_generated_from_settings() -> None:
    text = OPERATIONS_PATH.read_text(encoding="utf-8")
    section = text.split(CONFIG_BEGIN, 1)[1].split(CONFIG_END, 1)[0].strip("\n") + "\n"
    assert section == config_table(), f"the settings table is stale; regenerate it with: {REGENERATE_CONFIG}"


def test_config_table_has_one_row_per_setting_with_its_env_name_and_default() -> None:
    rows = [line for line in config_table().splitlines()[2:] if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [env_name(f) for f in Settings.model_fields]
    port = next(r for r in rows if r.startswith("| `FEDHEADS_PORT`"))
    assert "`8000`" in port and ">= 1" in port and "<= 65535" in port


def test_env_example_lists_every_setting_at_its_default() -> None:
    text = ENV_EXAMPLE_PATH.read_text(encoding="utf-8")
    assert text == env_example(), f".env.example is stale; regenerate it with: {REGENERATE_CONFIG}"
    names = re.findall(r"^# (FEDHEADS_[A-Z_]+)=", text, flags=re.M)
    assert names == [env_name(f) for f in Settings.model_fields]
    assert "# FEDHEADS_DATABASE_URL=sqlite:///./var/fedheads.db" in text.splitlines()


def test_docs_config_check_exits_1_when_the_table_is_stale(tmp_path: Path) -> None:
    ops = tmp_path / "operations.md"
    env = tmp_path / ".env.example"
    ops.write_text(f"# ops\n\n{CONFIG_BEGIN}\n| old |\n{CONFIG_END}\n\nafter\n", encoding="utf-8")
    args = ["docs-config", "--operations", str(ops), "--env-example", str(env)]
    assert main([*args, "--check"]) == 1
    assert "| old |" in ops.read_text(encoding="utf-8") and not env.exists()
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    assert ops.read_text(encoding="utf-8").endswith(f"{config_table()}{CONFIG_END}\n\nafter\n")


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail(
        "neither `docker compose` nor `docker-compose` is installed; `make compose` installs Debian's "
        "docker-compose (no Docker engine is needed to validate the file)"
    )


def test_docker_compose_file_is_valid_with_and_without_the_optional_profiles() -> None:
    compose = _compose()
    for extra in ([], ["--profile", "ops"], ["--profile", "gpu"]):
        res = subprocess.run(
            [*compose, "-f", str(ROOT / "docker-compose.yml"), *extra, "config", "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert res.returncode == 0, res.stderr
    def services(*profiles: str) -> list[str]:
        flags = [arg for p in profiles for arg in ("--profile", p)]
        return sorted(subprocess.run(
            [*compose, "-f", str(ROOT / "docker-compose.yml"), *flags, "config", "--services"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.split())

    assert services("ops", "gpu") == ["api", "flower", "gpu-worker", "postgres", "redis", "worker"]
    gpu = subprocess.run(
        [*compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "gpu", "config"],
        capture_output=True, text=True, cwd=ROOT,
    ).stdout
    assert "FEDHEADS_DEVICE: cuda" in gpu and "FEDHEADS_DATABASE_URL" in gpu

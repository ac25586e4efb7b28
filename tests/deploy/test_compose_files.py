"""docker-compose.local.yml on top of docker-compose.yml: valid, and only the local parts change.

No Docker engine needed (a compose client renders the files); the stack itself runs in
test_compose_stack.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.app.test_docs import _compose

ROOT = Path(__file__).resolve().parents[2]


def _config(*files: str, **env: str) -> dict:
    flags = [arg for f in files for arg in ("-f", f)]
    res = subprocess.run(
        [*_compose(), "-p", "fedheads-files", *flags, "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def _port(entry: dict | str) -> tuple[str | None, str, str]:
    """(host ip, published, target) of a port in either of the forms compose clients render."""
    if isinstance(entry, dict):
        return entry.get("host_ip"), str(entry["published"]), str(entry["target"])
    parts = entry.split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else None), parts[-2], parts[-1]


def test_the_local_override_swaps_images_and_build_sources_but_keeps_the_stack() -> None:
    base = _config("docker-compose.yml")
    local = _config("docker-compose.yml", "docker-compose.local.yml", FEDHEADS_API_PUBLISH="127.0.0.1:58000")

    # the conventional file stays on registry images and the registry's Python base
    assert base["services"]["postgres"]["image"] == "postgres:16"
    assert base["services"]["redis"]["image"] == "redis:7"
    assert base["services"]["api"]["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim"
    assert [_port(p) for p in base["services"]["api"]["ports"]] == [(None, "8000", "8000")]

    services = local["services"]
    assert sorted(services) == sorted(base["services"])
    assert services["postgres"]["image"] == "fedheads-postgres:local"
    assert services["redis"]["image"] == "fedheads-redis:local"
    for name in ("api", "worker"):
        build = services[name]["build"]
        assert build["args"]["BASE_IMAGE"] == "fedheads-base:bookworm"
        assert build["args"]["TORCH_INDEX_URL"].startswith("http://127.0.0.1:")
        assert build["network"] == "host"
        assert services[name]["environment"] == base["services"][name]["environment"]
        assert services[name]["command"] == base["services"][name]["command"]
    # the host sees the API and PostgreSQL on loopback only, on ports of their own
    assert [_port(p) for p in services["api"]["ports"]] == [("127.0.0.1", "58000", "8000")]
    assert [_port(p) for p in services["postgres"]["ports"]] == [("127.0.0.1", "55432", "5432")]
    assert "ports" not in services["redis"]

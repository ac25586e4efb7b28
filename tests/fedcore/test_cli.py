"""The fedheads command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedcore.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _fedheads(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fedcore.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=e)


def test_run_smoke_writes_results_and_adapter_then_resume_is_a_noop(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", "--preset", "smoke", "--set", "rounds=2", "--set", "local_steps=3", "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "succeeded" and len(res["rounds"]) == 2
    r = res["rounds"][0]
    for key in ("metrics", "selection", "clients", "global_importance", "bytes_up", "bytes_up_dense", "ops",
                "ops_dense", "wall_time"):
        assert key in r
    assert {"kept", "importance", "bytes_up"} <= set(r["clients"][0])
    assert res["summary"]["uplink_advantage"] > 1.0
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "checkpoint" / "global_round_0002.safetensors").is_file()
    assert main(["run", "--resume", str(out)]) == 0
    assert len(json.loads((out / "results.json").read_text())["rounds"]) == 2


def test_invalid_override_names_field_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--preset", "smoke", "--set", "sparsity=1.2", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "sparsity" in err and "0.99" in err


def test_missing_asset_names_install_command(tmp_path: Path) -> None:
    proc = _fedheads("run", "--preset", "demo", "--out", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "empty"),
                     cwd=tmp_path)
    assert proc.returncode == 2
    assert "fedheads assets" in proc.stderr


def test_data_path_outside_data_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"text": "a", "label": 0}\n')
    root = tmp_path / "root"
    root.mkdir()
    proc = _fedheads("run", "--preset", "smoke", "--set", "dataset=local", "--set", "data_path=../outside.jsonl",
                     "--data-root", str(root), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "outside" in proc.stderr.lower() and "root" in proc.stderr.lower()


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("smoke", "demo", "paper-dense", "paper-pruned"):
        assert name in out


def test_run_refuses_bad_input_before_writing_anything(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "one.csv").write_text("text,label\n" + "a,1\n" * 20)
    out = tmp_path / "never"
    for overrides, expect in (
        (["dataset=jsonl"], "dataset: unknown dataset 'jsonl'; choose one of snli"),
        (["dataset=local", "data_path=one.csv"], "label_field: column 'label' of 'one.csv' holds 1 class(es)"),
    ):
        sets = [a for o in overrides for a in ("--set", o)]
        code = main(["run", "--preset", "smoke", *sets, "--data-root", str(root), "--out", str(out)])
        assert code == 2
        assert expect in capsys.readouterr().err
        assert not out.exists()

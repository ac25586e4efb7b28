"""A downloaded adapter names its base model as the run named it, and docs/api.md's three lines load it onto
that base: the loaded model gives the trained global model's logits.

Each job is submitted to the app (SQLite, jobs held) and run by the real job runner in this process; its
adapter is downloaded over the API, and the lines are taken from docs/api.md and run as written.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from tests.app.held import held_client
from worker.runner import run_job

ROOT = Path(__file__).resolve().parents[2]
FAST = {"rounds": 2, "local_steps": 3, "eval_size": 20, "importance_samples": 8, "max_train_examples": 120}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)]


def _three_lines() -> str:
    """docs/api.md's lines that load the downloaded adapter onto its base."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Download the adapter", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    lines = next(b for b in blocks if "load_base" in b)
    assert len(lines.strip().splitlines()) == 3, lines
    return lines


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    base = tmp_path_factory.mktemp("adapter-download")
    (base / "data").mkdir()
    model_dir = base / "models" / "encoders" / "small-bert"
    model_dir.mkdir(parents=True)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(7)
    BertForSequenceClassification(cfg).save_pretrained(model_dir)
    (base / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(base / "vocab.txt")).save_pretrained(model_dir)
    return base


@pytest.fixture(scope="module")
def client(folder: Path) -> Iterator[TestClient]:
    with held_client(folder, model_root=folder / "models") as c:
        yield c


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "offline name": ({"model": "tiny-bert"}, "tiny-bert"),
    "offline name, mean pooling": ({"model": "tiny-bert", "pooling": "mean"}, "tiny-bert"),
    "folder in the model root": ({"model": "encoders/small-bert"}, "encoders/small-bert"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_downloaded_adapter_names_its_base_and_loads_onto_it_in_three_lines(
    client: TestClient, folder: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from peft import get_peft_model_state_dict

    from fedcore.client import load_global
    from fedcore.context import Paths, build_context
    from fedcore.simulation import load_checkpoint
    from fedcore.spec import ExperimentSpec

    overrides, named = CASES[case]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    resp = client.post("/api/v1/experiments", json={"name": "adapt", "preset": "smoke",
                                                     "overrides": {**FAST, **overrides}})
    assert resp.status_code == 201, resp.text
    exp_id = resp.json()["id"]
    assert run_job(uuid.UUID(exp_id), settings=settings) == "succeeded"

    download = client.get(f"/api/v1/experiments/{exp_id}/adapter")
    assert download.status_code == 200
    work = folder / "models"  # a local model's name is relative to the model root: load from there
    shutil.rmtree(work / "adapter", ignore_errors=True)
    zipfile.ZipFile(io.BytesIO(download.content)).extractall(work / "adapter")
    config = json.loads((work / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == named
    card = (work / "adapter" / "README.md").read_text()
    assert f"base_model: {named}" in card and str(folder) not in card  # the model card names it too

    monkeypatch.chdir(work)
    scope: dict[str, Any] = {}
    exec(_three_lines(), scope)  # the documented lines, as a user runs them
    model = scope["model"].eval()

    # the adapter holds the run's final global state ...
    final = load_checkpoint(settings.experiment_dir(exp_id) / "checkpoint")
    assert final is not None
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(final[1])
    for key, value in final[1].items():
        assert torch.equal(loaded[key], value), key
    # ... on the base the run trained: the same logits as the run's own model with that state
    spec = ExperimentSpec.model_validate(client.get(f"/api/v1/experiments/{exp_id}").json()["spec"])
    ctx = build_context(spec, Paths(data_root=settings.data_root, model_root=settings.model_root))
    load_global(ctx, final[1])
    ctx.model.eval()
    batch = ctx.family.collate(ctx.tokenizer, ctx.data.test[:8], task=ctx.task, label_names=ctx.label_names,
                               max_len=spec.max_seq_len, max_target_len=spec.max_target_len)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expected, got = ctx.model(**inputs).logits, model(**inputs).logits
    assert torch.allclose(expected, got, atol=1e-5), (expected, got)
    assert not torch.allclose(expected, expected[:1].expand_as(expected))  # inputs that tell models apart


def test_a_hub_model_is_named_by_its_hub_id() -> None:
    from fedcore.adapters import base_model_name

    assert base_model_name("hub:org/name") == "org/name"
    assert base_model_name("minilm-l6") == "minilm-l6"
    assert base_model_name("encoders/small-bert") == "encoders/small-bert"

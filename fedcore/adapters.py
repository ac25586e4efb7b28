"""A saved adapter says which base model it adapts, and loads back onto that base in three lines.

:func:`fedcore.simulation.save_adapter` writes the PEFT folder through :func:`save_described`:

- ``adapter_config.json``'s ``base_model_name_or_path`` (and the model card's ``base_model``) is the
  model as the spec named it: an offline name (``minilm-l6``, ``tiny-bert``), a hub id (``hub:org/name``
  is written ``org/name``, the id the hub knows) or a local folder's path relative to the model root
  (never an absolute server path);
- ``fedheads.json`` holds the rest a base needs to match the trained one: the spec's model name,
  task, labels, seed (a tiny model's random weights come from it) and pooling.

Loading (docs/api.md, "Download the adapter")::

    from peft import PeftModel
    from fedcore.adapters import load_base
    model = PeftModel.from_pretrained(load_base("adapter"), "adapter")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from fedcore.context import RunContext

BASE_FILE = "fedheads.json"


def base_model_name(model: str) -> str:
    """``base_model_name_or_path`` for a spec's model: its name, without fedheads' ``hub:`` prefix."""
    return model.removeprefix("hub:")


def save_described(ctx: RunContext, directory: Path) -> None:
    """``save_pretrained`` of the context's PEFT model (its current state), naming the base model, then fedheads.json."""
    name = base_model_name(ctx.spec.model)
    for config in ctx.model.peft_config.values():  # type: ignore[union-attr,operator]
        config.base_model_name_or_path = name  # adapter_config.json
    # the model card (README.md) names the base by the model's and its config's name_or_path: the folder
    # it was loaded from; they say the public name while it is written
    base: Any = ctx.model.get_base_model()  # type: ignore[operator]
    loaded_from = base.config.name_or_path, base.__dict__.get("name_or_path")
    base.config.name_or_path = name
    base.name_or_path = name
    try:
        ctx.model.save_pretrained(str(directory))  # type: ignore[operator]
    finally:
        base.config.name_or_path = loaded_from[0]
        if loaded_from[1] is None:
            base.__dict__.pop("name_or_path", None)
        else:
            base.name_or_path = loaded_from[1]
    facts = {
        "model": ctx.spec.model,
        "task": ctx.task,
        "num_labels": max(len(ctx.label_names), 1),
        "label_names": list(ctx.label_names),
        "seed": ctx.spec.seed,
        "pooling": ctx.spec.pooling,
    }
    (directory / BASE_FILE).write_text(json.dumps(facts, indent=2) + "\n")


def load_base(adapter: str | Path, *, cache_dir: Path | None = None, model_root: Path | None = None) -> nn.Module:
    """The base model an adapter folder was trained on, as its run built it (ready for ``PeftModel.from_pretrained``).

    ``cache_dir`` is the offline asset cache (default ``~/.cache/fedheads/assets``), ``model_root`` the
    folder a local model's relative path starts from (default: the current directory).
    """
    from fedcore.models.families.bert import use_mean_pooling
    from fedcore.models.loading import load_model

    folder = Path(adapter)
    base_file = folder / BASE_FILE
    if not base_file.is_file():
        raise FileNotFoundError(f"{base_file} is missing: this folder was not saved by fedheads")
    info: dict[str, Any] = json.loads(base_file.read_text())
    loaded = load_model(info["model"], task=info["task"], num_labels=info["num_labels"], seed=info["seed"],
                        cache_dir=cache_dir, model_root=model_root)
    if info.get("pooling") == "mean" and loaded.family.name == "bert" and info["task"] == "classification":
        use_mean_pooling(loaded.model)
    loaded.model.eval()
    return loaded.model

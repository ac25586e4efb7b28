"""Which fields of the new-experiment form apply, given the others (static/js/new.js applies them).

A field with a rule is shown only while every condition holds; otherwise it is hidden, disabled,
and the form sends the field's spec default (what the run would ignore anyway). A condition names
another spec field, or one of three facts the page derives:

- ``source``: where the data comes from: ``builtin`` (a dataset fedheads knows), ``local`` (a file
  in the data root, ``data_path``), ``hub`` (``hub:<id>``) or ``other`` (a dataset typed by hand);
- ``task``: a built-in dataset's own task, else the task the form's chooser says (``generation``
  sets ``target_field``);
- ``family``: the model family of a known model name, ``unknown`` for hub ids and model folders.

The names, tasks and families are fedcore.checks', the check the server's 422 comes from; whether
a spec can run is never decided here (the form asks ``POST /ui/validate`` for that).
"""

from __future__ import annotations

from typing import Any

from fedcore.checks import DATASET_TASKS, MODEL_FAMILIES
from fedcore.data.sources import LOCAL_SUFFIXES

TEXT_SOURCES = ["local", "hub", "other"]

APPLIES: dict[str, dict[str, list[str]]] = {
    "data_path": {"source": ["local"]},
    "text_field": {"source": TEXT_SOURCES},
    "text_pair_field": {"source": TEXT_SOURCES},
    "label_field": {"source": TEXT_SOURCES, "task": ["classification"]},
    "target_field": {"source": TEXT_SOURCES, "task": ["generation"]},
    "max_target_len": {"task": ["generation"]},
    "pooling": {"task": ["classification"], "family": ["bert", "unknown"]},
    "dirichlet_alpha": {"partition": ["dirichlet"]},
    "shards_per_client": {"partition": ["shards"]},
    "quantity_sigma": {"partition": ["quantity"]},
    "drop_dense_steps": {"prune_mode": ["drop"]},
    "compute_sparsity": {"prune_mode": ["drop"]},
    "compute_ramp_rounds": {"prune_mode": ["drop"]},
    "compute_edge_blocks": {"prune_mode": ["drop"]},
    "drop_scaling": {"prune_mode": ["drop"]},
    "compute_redraw_steps": {"prune_mode": ["drop"]},
    "head_weighting": {"aggregation": ["head_weighted"]},
    "poc_candidates": {"selection": ["power_of_choice"]},
    "selection_epsilon": {"selection": ["loss_gap"]},
}
FACTS = ("source", "task", "family")


def form_rules() -> dict[str, Any]:
    """What the form's script needs to show only the fields that apply."""
    return {
        "applies": APPLIES,
        "model_families": MODEL_FAMILIES,
        "dataset_tasks": DATASET_TASKS,
        "local_suffixes": list(LOCAL_SUFFIXES),
    }

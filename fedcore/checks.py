"""Submit-time checks: can this machine run the spec's model and data? (fedheads' own)

``check_inputs`` answers before a job is queued, cheaply: names against the offline catalog, installed
assets (their marker files), a local data file's location, format, columns and first rows
(``fedcore.data.header``), and ``hub:`` ids through a probe that knows whether the hub can be reached.
No model is loaded and no dataset beyond a file's first ``SAMPLE_BYTES``; nothing here imports torch.

Each problem names the spec field it is about and what would be accepted, never a server path. The
service (``app/services/submit_checks.py``) turns them into 422s; ``fedheads run`` prints them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fedcore.assets import ASSETS, asset_status
from fedcore.data.header import DataFileError, FileHeader, locate, read_header
from fedcore.data.paths import PathConfinementError, confine
from fedcore.data.sources import BUILTIN_DATASETS, DATASET_ASSETS, LOCAL_SUFFIXES, rows_to_splits
from fedcore.spec import ExperimentSpec

Task = Literal["classification", "generation"]
HubAnswer = Literal["found", "missing", "unreachable"]
HubProbe = Callable[[Literal["model", "dataset"], str], HubAnswer]
"""Whether a hub repository exists: 'found', 'missing', or 'unreachable' (no network, HF_HUB_OFFLINE)."""

# every name fedcore.models.loading.KNOWN_MODELS accepts, with its family (tests keep the two in step)
MODEL_FAMILIES: dict[str, str] = {
    "minilm-l6": "bert",
    "tiny-bert": "bert",
    "tiny-t5": "t5",
    "tiny-llama": "llama",
    "smollm2-135m": "llama",
    "t5-small": "t5",
}
FAMILY_TASKS: dict[str, tuple[Task, ...]] = {
    "bert": ("classification",),
    "t5": ("classification", "generation"),
    "llama": ("classification", "generation"),
}
HUB_ALIASES = {"t5-small": "google-t5/t5-small"}
DATASET_TASKS: dict[str, Task] = {
    "snli": "classification",
    "bbc-news": "classification",
    "bbc-headlines": "generation",
    "aclsum": "generation",
    "synthetic": "classification",
}
MODEL_CHOICES = f"{', '.join(MODEL_FAMILIES)}, 'hub:<id>' or a folder with config.json inside the model root"
DATASET_CHOICES = (
    f"{', '.join(BUILTIN_DATASETS)}, 'local' (with data_path: a {'/'.join(LOCAL_SUFFIXES)} file inside the "
    "data root) or 'hub:<id>'"
)


@dataclass(frozen=True)
class Problem:
    """One reason the spec cannot run here: the field it is about and what to do."""

    field: str
    message: str


class InputProblems(ValueError):
    """The spec's inputs cannot be used on this machine; ``problems`` name the fields."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Places:
    """Where this machine keeps what a spec may name, and its limits."""

    data_root: Path | None = None
    model_root: Path | None = None
    cache_dir: Path | None = None
    max_data_bytes: int | None = None


def check_inputs(spec: ExperimentSpec, places: Places, *, hub: HubProbe | None = None) -> list[Problem]:
    """Every problem with the spec's model and data on this machine ([] when it can start)."""
    hub = hub or hub_probe
    installed = {s.name: s for s in asset_status(places.cache_dir)}
    problems, task = _check_dataset(spec, places, installed, hub)
    problems += _check_model(spec, places, installed, hub, task)
    return problems


def raise_for_inputs(spec: ExperimentSpec, places: Places, *, hub: HubProbe | None = None) -> None:
    problems = check_inputs(spec, places, hub=hub)
    if problems:
        raise InputProblems(problems)


# --- datasets -------------------------------------------------------------------------------


def _asset_problem(field: str, what: str, asset: str, installed: dict) -> Problem | None:
    status = installed[asset]
    if status.present:
        return None
    state = status.detail.split(":")[0]  # "not installed", "incomplete", "stale" (the rest may hold a path)
    hint = " (an optional asset)" if ASSETS[asset].optional else ""
    return Problem(
        field, f"{what} needs the offline asset {asset!r}{hint}, which is {state} on this machine; "
        f"install it with `fedheads assets {asset}`"
    )


def _check_dataset(
    spec: ExperimentSpec, places: Places, installed: dict, hub: HubProbe
) -> tuple[list[Problem], Task | None]:
    name = spec.dataset
    generation: Task = "generation" if spec.target_field else "classification"
    if spec.data_path is not None and name != "local" and not name.lower().endswith(LOCAL_SUFFIXES):
        return [Problem("data_path", f"data_path is read only with dataset 'local' (the dataset is {name!r}); "
                        "choose dataset 'local' or leave data_path empty")], None
    if spec.data_path is not None or name.lower().endswith(LOCAL_SUFFIXES):
        field, relative = ("data_path", spec.data_path) if spec.data_path is not None else ("dataset", name)
        return _check_local(spec, places, field, relative), generation
    if name in DATASET_TASKS:
        asset = DATASET_ASSETS.get(name)
        found = _asset_problem("dataset", f"dataset {name!r}", asset, installed) if asset else None
        return ([found] if found else []), DATASET_TASKS[name]
    if name.startswith("hub:"):
        if importlib.util.find_spec("datasets") is None:
            return [Problem("dataset", f"{name} needs the `datasets` package on this machine: "
                            "pip install 'fedheads[hub]'")], generation
        ident = name.removeprefix("hub:").partition(":")[0]
        answer = hub("dataset", ident)
        if answer == "missing" and ident.count("/") == 1:  # hub:a/b is also dataset a with config b
            answer = hub("dataset", ident.split("/")[0])
        return _hub_problems("dataset", name, answer), generation
    return [Problem("dataset", f"unknown dataset {name!r}; choose one of {DATASET_CHOICES}")], None


def _hub_problems(field: str, name: str, answer: HubAnswer) -> list[Problem]:
    if answer == "found":
        return []
    if answer == "missing":
        return [Problem(field, f"the model hub has no {field} {name.removeprefix('hub:')!r}; check the id")]
    return [Problem(field, f"{name} cannot be loaded: the model hub is not reachable from this machine and the "
                    f"{field} is not in its local hub cache; choose an offline {field} (GET /api/v1/assets)")]


def _check_local(spec: ExperimentSpec, places: Places, field: str, relative: str) -> list[Problem]:
    if places.data_root is None:
        return [Problem(field, "local data files need a data root on this machine (--data-root)")]
    try:
        path = locate(relative, places.data_root, max_bytes=places.max_data_bytes)
        header = read_header(path, relative)
    except DataFileError as err:
        return [Problem(field, str(err))]
    problems = _check_columns(spec, header, relative)
    if problems or not header.complete:
        return problems  # counts are exact only for a file read whole
    return _check_counts(spec, header, relative)


def _check_columns(spec: ExperimentSpec, header: FileHeader, shown: str) -> list[Problem]:
    wanted = [("text_field", spec.text_field), ("text_pair_field", spec.text_pair_field)]
    wanted.append(("target_field", spec.target_field) if spec.target_field else ("label_field", spec.label_field))
    found = ", ".join(repr(c) for c in header.columns)
    return [
        Problem(field, f"column {column!r} is not in {shown!r}; the columns found are {found} (a .csv file's "
                "first line must name its columns)")
        for field, column in wanted
        if column is not None and column not in header.columns
    ]


def _check_counts(spec: ExperimentSpec, header: FileHeader, shown: str) -> list[Problem]:
    try:
        splits = rows_to_splits(shown, header.rows, text_field=spec.text_field,
                                text_pair_field=spec.text_pair_field, label_field=spec.label_field,
                                target_field=spec.target_field)
    except ValueError as err:  # a split column without train/test rows, labels that cannot be mapped
        return [Problem("data_path" if spec.data_path else "dataset", str(err))]
    present = sorted({e.label for e in splits.train + splits.test if e.label is not None})
    if splits.task == "classification" and len(present) < 2:
        seen = ", ".join(repr(splits.label_names[i]) for i in present) or "none"
        return [Problem("label_field", f"column {spec.label_field!r} of {shown!r} holds {len(present)} "
                        f"class(es) ({seen}); classification needs at least 2")]
    n_train = len(splits.train)
    if spec.max_train_examples is not None:
        n_train = min(n_train, spec.max_train_examples)
    problems = []
    if not splits.test:
        problems.append(Problem("data_path" if spec.data_path else "dataset",
                                f"{shown!r} leaves no test examples ({len(header.rows)} rows); give more rows"))
    need = spec.num_clients * (spec.shards_per_client if spec.partition == "shards" else 1)
    if n_train < need:
        each = f"{spec.shards_per_client} shards" if spec.partition == "shards" else "one example"
        problems.append(Problem(
            "num_clients", f"{shown!r} gives {n_train} training example(s) ({len(header.rows)} rows, "
            f"{len(splits.test)} held out for testing): too few for num_clients {spec.num_clients} when every "
            f"client needs at least {each}; use at most {n_train // max(need // spec.num_clients, 1)} clients "
            "or a larger file"))
    return problems


# --- models ---------------------------------------------------------------------------------


def _check_model(
    spec: ExperimentSpec, places: Places, installed: dict, hub: HubProbe, task: Task | None
) -> list[Problem]:
    name = spec.model
    if name in MODEL_FAMILIES:
        supported = FAMILY_TASKS[MODEL_FAMILIES[name]]
        if task is not None and task not in supported:
            return [Problem("model", f"model {name!r} supports {' and '.join(supported)} only, and dataset "
                            f"{spec.dataset!r} is a {task} task; choose a T5 or Llama model for generation")]
        if spec.pooling == "mean" and MODEL_FAMILIES[name] != "bert":
            return [Problem("pooling", f"pooling 'mean' applies to BERT-family classifiers, and model {name!r} is a "
                            f"{MODEL_FAMILIES[name]} model: use pooling 'cls' (its own head)")]
        if name in ASSETS:
            found = _asset_problem("model", f"model {name!r}", name, installed)
            if found:
                return [found]
            if name == "smollm2-135m" and importlib.util.find_spec("gguf") is None:
                return [Problem("model", "model 'smollm2-135m' needs the gguf package: pip install 'fedheads[hub]'")]
        if name in HUB_ALIASES:
            return _hub_problems("model", name, hub("model", HUB_ALIASES[name]))
        return []
    if name.startswith("hub:"):
        return _hub_problems("model", name, hub("model", name.removeprefix("hub:")))
    root = places.model_root or Path.cwd()
    try:
        folder = confine(name, root, what="model")
    except PathConfinementError:
        return [Problem("model", f"unknown model {name!r} (a model folder must lie inside the model root); "
                        f"choose one of {MODEL_CHOICES}")]
    if not (folder / "config.json").is_file():
        return [Problem("model", f"unknown model {name!r}; choose one of {MODEL_CHOICES}")]
    return []


# --- the hub ----------------------------------------------------------------------------------


def hub_probe(kind: Literal["model", "dataset"], ident: str, timeout: float = 3.0) -> HubAnswer:
    """Ask the hub (``HF_ENDPOINT``) whether a repository exists; a model in the local hub cache is found offline."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
    except ImportError:
        return "unreachable"
    if kind == "model":
        try:
            if isinstance(try_to_load_from_cache(ident, "config.json"), str):
                return "found"
        except HFValidationError:  # not a valid repository id
            return "missing"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "unreachable"
    api = HfApi()
    try:
        if kind == "model":
            api.model_info(ident, timeout=timeout)
        else:
            api.dataset_info(ident, timeout=timeout)
    except (RepositoryNotFoundError, HFValidationError):
        return "missing"
    except Exception:  # no route, refused, timed out, offline mode: the hub cannot be asked
        return "unreachable"
    return "found"

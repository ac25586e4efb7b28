"""The new-experiment form (``/experiments/new``), generated from the spec model, and ``POST /ui/validate``.

Every ``ExperimentSpec`` field becomes an input (its JSON schema gives the kind, bounds and help);
:data:`GROUPS` places them in sections and a field no group names lands in "Other", so none is lost.
The Study option's targets are a table whose rows offer every metric a study's target can judge
(:data:`TARGET_METRICS`, one entry per ``fedcore.study.TargetMetric``) with the bounds it takes.
``/ui/validate`` checks a submission exactly as ``POST /api/v1/experiments`` would, without creating
anything, so a sweep is validated before any member starts; like every mutating call it needs the
token when the server has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.api.auth import WRITE
from app.api.deps import DbDep, SettingsDep
from app.form_rules import form_rules
from app.models import Experiment
from app.schemas import ExperimentCreate
from app.services import advice
from app.services import experiments as svc
from app.web.render import parse_id, templates
from fedcore.spec import ExperimentSpec

router = APIRouter(include_in_schema=False)

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model", "Model & data", (
        "model", "dataset", "data_path", "text_field", "text_pair_field", "label_field", "target_field",
        "max_train_examples", "eval_size", "eval_batch_size")),
    ("federation", "Federation", (
        "num_clients", "clients_per_round", "rounds", "partition", "dirichlet_alpha", "shards_per_client",
        "quantity_sigma")),
    ("pruning", "Head importance & pruning", (
        "sparsity", "prune_mode", "prune_ranking", "head_choice", "min_heads_per_block", "drop_dense_steps", "importance",
        "importance_samples", "importance_exclude_special")),
    ("aggregation", "Aggregation & selection", (
        "aggregation", "head_weighting", "server_momentum", "server_lr", "selection", "poc_candidates",
        "selection_epsilon")),
    ("training", "Training & LoRA", (
        "local_steps", "local_epochs", "batch_size", "learning_rate", "weight_decay", "lr_schedule", "warmup_steps",
        "max_seq_len", "max_target_len", "pooling", "lora_r", "lora_alpha", "lora_dropout", "model_dropout",
        "lora_targets", "lora_init", "seed", "device", "num_threads")),
)
OTHER_GROUP = ("other", "Other")


@dataclass
class FormField:
    """One input of the new-experiment form, derived from a spec field's JSON schema."""

    name: str
    label: str
    kind: str  # "text" | "number" | "select" | "checkbox" | "multi"
    type: str  # JSON type: "string" | "integer" | "number" | "boolean" | "array"
    description: str
    default: Any
    nullable: bool = False
    options: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    bounds: str = ""


def _bounds_text(s: dict[str, Any]) -> str:
    parts = []
    if "minimum" in s:
        parts.append(f">= {s['minimum']}")
    if "exclusiveMinimum" in s:
        parts.append(f"> {s['exclusiveMinimum']}")
    if "maximum" in s:
        parts.append(f"<= {s['maximum']}")
    if "exclusiveMaximum" in s:
        parts.append(f"< {s['exclusiveMaximum']}")
    return ", ".join(parts)


def _form_field(name: str, prop: dict[str, Any], default: Any) -> FormField:
    variants = prop.get("anyOf", [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    s: dict[str, Any] = next((v for v in variants if v.get("type") != "null"), {})
    json_type = s.get("type", "string")
    label = name.replace("_", " ").capitalize()
    common = {"name": name, "label": label, "type": json_type, "description": prop.get("description", ""),
              "default": default, "nullable": nullable}
    if "enum" in s:
        return FormField(kind="select", options=[str(o) for o in s["enum"]], **common)
    if json_type == "boolean":
        return FormField(kind="checkbox", **common)
    if json_type == "array":
        options = [str(o) for o in s.get("items", {}).get("enum", [])]
        return FormField(kind="multi" if options else "text", options=options, **common)
    if json_type in ("integer", "number"):
        lo = s.get("minimum", s.get("exclusiveMinimum"))
        hi = s.get("maximum", s.get("exclusiveMaximum"))
        return FormField(kind="number", minimum=lo, maximum=hi, bounds=_bounds_text(s), **common)
    return FormField(kind="text", **common)


def form_groups() -> list[tuple[str, str, list[FormField]]]:
    """Every ExperimentSpec field, grouped; a field no group names lands in "Other" (so none is ever lost)."""
    schema = ExperimentSpec.model_json_schema()
    defaults = ExperimentSpec.model_validate({}).model_dump(mode="json")
    props: dict[str, Any] = schema["properties"]
    placed: set[str] = set()
    out: list[tuple[str, str, list[FormField]]] = []
    for key, title, names in GROUPS:
        fields = [_form_field(n, props[n], defaults.get(n)) for n in names if n in props]
        placed.update(f.name for f in fields)
        out.append((key, title, fields))
    rest = [_form_field(n, p, defaults.get(n)) for n, p in props.items() if n not in placed]
    if rest:
        out.append((*OTHER_GROUP, rest))
    return out


@dataclass(frozen=True)
class TargetChoice:
    """One metric of the form's targets table: how it is named, its unit, the bounds it takes (the first is
    offered first) and the value a new row starts with."""

    metric: str
    label: str
    unit: str  # "points" (of the task's metric) or "×" (a ratio)
    bounds: tuple[str, ...]
    default: float
    help: str


_PAIRED_BOUNDS = ("within", "at_least", "at_most")
_RATIO_BOUNDS = ("at_least", "at_most")
# Every fedcore.study.TargetMetric, in its order (tests/app/test_study_pages.py checks); "accuracy" is the task's metric: accuracy, else ROUGE-L, else BLEU.
TARGET_METRICS: tuple[TargetChoice, ...] = (
    TargetChoice("accuracy_vs_baseline", "Final accuracy vs the baseline", "points", _PAIRED_BOUNDS, 2.0,
                 "the variant's final accuracy minus the baseline's, seed by seed (mean over seeds)"),
    TargetChoice("last3_vs_baseline", "Last-3-rounds accuracy vs the baseline", "points", _PAIRED_BOUNDS, 2.0,
                 "the mean of the last three rounds' accuracy minus the baseline's, seed by seed"),
    TargetChoice("final_accuracy", "Final accuracy", "points", _RATIO_BOUNDS, 70.0,
                 "accuracy at the last round, in percent (ROUGE-L or BLEU for generation)"),
    TargetChoice("last3_accuracy", "Last-3-rounds accuracy", "points", _RATIO_BOUNDS, 70.0,
                 "the mean accuracy of the last three rounds, in percent"),
    TargetChoice("uplink_advantage", "Uplink advantage", "×", _RATIO_BOUNDS, 1.8,
                 "dense upload bytes / the variant's, over the run"),
    TargetChoice("total_advantage", "Total communication advantage", "×", _RATIO_BOUNDS, 1.5,
                 "dense upload + download bytes / the variant's"),
    TargetChoice("ops_reduction", "OPs reduction (whole training step)", "×", _RATIO_BOUNDS, 1.2,
                 "dense training OPs / the variant's"),
    TargetChoice("ops_attention_reduction", "OPs reduction (attention + LoRA)", "×", _RATIO_BOUNDS, 1.5,
                 "dense attention + LoRA OPs / the variant's"),
    TargetChoice("train_speedup", "Training speed-up vs the baseline", "×", _RATIO_BOUNDS, 1.3,
                 "the baseline's client training time / the variant's, seed by seed"),
)


def target_choices() -> list[dict[str, Any]]:
    """:data:`TARGET_METRICS` for the page's script."""
    return [asdict(t) for t in TARGET_METRICS]


@router.get("/experiments/new", response_class=HTMLResponse)
def new_experiment_page(request: Request, db: DbDep, preset: str | None = None,
                        clone: Annotated[str | None, Query(alias="from")] = None) -> HTMLResponse:
    start: dict[str, Any] | None = None
    start_name = ""
    clone_id = parse_id(clone) if clone else None
    if clone_id is not None:
        src = db.get(Experiment, clone_id)
        if src is not None:
            start, start_name = dict(src.spec), f"{src.name} (copy)"
    return templates.TemplateResponse(request, "new.html", {
        "active": "new", "groups": form_groups(), "preset": preset or "", "start_spec": start,
        "start_name": start_name, "rules": form_rules(), "targets": target_choices(),
    })


@router.post("/ui/validate", dependencies=WRITE)
def validate_submission(body: ExperimentCreate, settings: SettingsDep) -> dict[str, Any]:
    """422 (FastAPI's format, as the API gives) or the resolved spec and the benchmark's warnings; creates nothing.

    The same checks as the API's create (app/services/submit_checks.py), so the form shows the server's words."""
    spec = svc.checked_spec(body, settings=settings)
    warnings = [a.as_dict() for a in advice.advise(spec)]
    return {"ok": True, "spec": spec.model_dump(mode="json"), "warnings": warnings}

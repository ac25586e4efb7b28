"""The new-experiment form (``/experiments/new``), generated from the spec model, and ``POST /ui/validate``.

Every ``ExperimentSpec`` field becomes an input (its JSON schema gives the kind, bounds and help);
:data:`GROUPS` places them in sections and a field no group names lands in "Other", so none is lost.
``/ui/validate`` checks a submission exactly as ``POST /api/v1/experiments`` would, without creating
anything, so a sweep is validated before any member starts; like every mutating call it needs the
token when the server has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
        "aggregation", "head_weighting", "selection", "poc_candidates", "selection_epsilon")),
    ("training", "Training & LoRA", (
        "local_steps", "local_epochs", "batch_size", "learning_rate", "weight_decay", "max_seq_len",
        "max_target_len", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_init", "seed", "device",
        "num_threads")),
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
        "start_name": start_name, "rules": form_rules(),
    })


@router.post("/ui/validate", dependencies=WRITE)
def validate_submission(body: ExperimentCreate, settings: SettingsDep) -> dict[str, Any]:
    """422 (FastAPI's format, as the API gives) or the resolved spec and the benchmark's warnings; creates nothing.

    The same checks as the API's create (app/services/submit_checks.py), so the form shows the server's words."""
    spec = svc.checked_spec(body, settings=settings)
    warnings = [a.as_dict() for a in advice.advise(spec)]
    return {"ok": True, "spec": spec.model_dump(mode="json"), "warnings": warnings}

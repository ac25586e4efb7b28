"""API models: what the REST API accepts and returns.

The experiment spec itself is fedcore's :class:`~fedcore.spec.ExperimentSpec`, one
pydantic model shared by the CLI, the API and the database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from fedcore.spec import ExperimentSpec
from fedcore.study import StudySpec

MAX_INT = 2**31 - 1  # the largest id, offset or round a query accepts (a 32-bit SQL INTEGER)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "smoke-3-rounds",
    "spec": {
        "model": "tiny-bert",
        "dataset": "synthetic",
        "num_clients": 6,
        "clients_per_round": 3,
        "rounds": 3,
        "local_steps": 4,
        "sparsity": 0.5,
        "aggregation": "head_weighted",
        "selection": "loss_gap",
        "num_threads": 1,
    },
}
PRESET_EXAMPLE: dict[str, Any] = {"name": "demo-90", "preset": "demo", "overrides": {"sparsity": 0.9}}


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


MAX_TAGS = 20
MAX_NOTE = 20_000

def _no_comma(tag: str) -> str:
    if "," in tag:
        raise ValueError(f"a tag may not contain a comma (the page separates tags with them): {tag!r}")
    return tag


Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), AfterValidator(_no_comma)]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS, description="Labels for finding the run (1-40 characters each, no commas; "
          "repeats are dropped)."),
    AfterValidator(_unique),
]
Note = Annotated[str, Field(max_length=MAX_NOTE, description="Free text about the run.")]


class ExperimentCreate(BaseModel):
    """A new experiment: a full ``spec``, or a ``preset`` name with ``overrides``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PRESET_EXAMPLE, SPEC_EXAMPLE]})

    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A label for people (default: preset or model + dataset).",
    )
    spec: ExperimentSpec | None = Field(None, description="The complete experiment spec.")
    preset: str | None = Field(
        None, min_length=1, max_length=100, description="A preset name (GET /presets)."
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Spec fields replacing the preset's.")
    tags: Tags = Field(default_factory=list)
    note: Note = ""

    @model_validator(mode="after")
    def _one_source(self) -> ExperimentCreate:
        if (self.spec is None) == (self.preset is None):
            raise ValueError("give exactly one of 'spec' and 'preset'")
        if self.spec is not None and self.overrides:
            raise ValueError("'overrides' go with 'preset'; put the fields into 'spec' instead")
        return self


class Progress(BaseModel):
    rounds_done: int
    rounds_total: int
    fraction: float = Field(description="rounds_done / rounds_total")


class RoundFigures(BaseModel):
    """Headline figures of one round (the full record is at /rounds/{n})."""

    round: int
    accuracy: float | None
    loss: float | None
    metrics: dict[str, Any]
    selected: list[int]
    bytes_up: int
    bytes_up_dense: int
    bytes_down: int
    ops: float
    ops_dense: float
    wall_time: float


class ExperimentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    status: Status
    spec: dict[str, Any] = Field(description="The validated ExperimentSpec (every field).")
    progress: Progress
    cancel_requested: bool
    error: str | None
    task_id: str | None
    runner: str | None = Field(None, description="host:pid of the process that runs (or last ran) the job.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    latest_round: RoundFigures | None = None
    tags: list[str] = Field(default_factory=list, description="Labels for finding the run (?tag= filters by one).")
    note: str = Field("", description="Free text about the run.")
    study_id: uuid.UUID | None = Field(None, description="The study this run belongs to (GET /studies/{id}).")
    variant: str | None = Field(None, description="The study's variant this run is.")
    seed: int | None = Field(None, description="The study's seed this run is (its spec's seed).")

    _utc_fields = field_validator("created_at", "updated_at", "started_at", "finished_at")(_utc)


class SpecWarning(BaseModel):
    """A benchmark row the submitted spec matches that did not learn (app/services/advice.py)."""

    row: str = Field(description="The benchmark row's configuration name.")
    table: str = Field(description="The benchmark table it comes from (bench/results/<table>.md).")
    rounds: int
    seeds: int
    accuracy: float = Field(description="The row's final accuracy, mean over its seeds.")
    dense_accuracy: float | None = Field(description="The table's dense FedAvg with the same rounds, mean over seeds.")
    dense_seeds: int
    link: str | None = Field(description="The table's page on this server (/results/<table>).")
    message: str = Field(description="The warning in one sentence.")


class ExperimentCreated(ExperimentOut):
    warnings: list[SpecWarning] = Field(
        default_factory=list,
        description="Benchmark rows like this spec that did not learn (never a reason to refuse it).",
    )


class ExperimentDetail(ExperimentOut):
    summary: dict[str, Any] = Field(
        description="fedcore.simulation.summarize over the stored rounds: uplink_advantage (communication "
        "advantage), total_advantage, ops_reduction, ops_attention_reduction, best_accuracy, "
        "final_accuracy, ..."
    )
    info: dict[str, Any] | None = Field(
        None, description="Attention blocks, heads, label names and task of the run."
    )
    has_adapter: bool = Field(description="A final adapter can be downloaded from /adapter.")


class ExperimentPatch(BaseModel):
    """What may change after submission: the run's tags and note (each replaced when given)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tags": ["baseline", "snli"], "note": "dense reference"}]}
    )

    tags: Tags | None = None
    note: Note | None = None


class ExperimentList(BaseModel):
    items: list[ExperimentOut]
    total: int


class RoundOut(BaseModel):
    round: int
    accuracy: float | None
    loss: float | None
    created_at: datetime
    record: dict[str, Any] = Field(
        description="RoundResult.to_dict(): metrics, selection (candidates, scores, selected, reason), "
        "clients (kept masks, importance matrices, bytes, OPs), global importance, agreement, head weights, "
        "bytes, OPs."
    )

    _utc_fields = field_validator("created_at")(_utc)


class RoundList(BaseModel):
    items: list[RoundOut]
    total: int


class ClientOut(BaseModel):
    client: int
    examples: int
    label_histogram: list[int]


class ClientList(BaseModel):
    items: list[ClientOut]
    label_names: list[str] = Field(default_factory=list)


class PresetOut(BaseModel):
    name: str
    about: str
    spec: dict[str, Any]


class AssetOut(BaseModel):
    name: str
    kind: Literal["model", "dataset"]
    usable: bool
    detail: str


class AssetList(BaseModel):
    models: list[AssetOut]
    datasets: list[AssetOut]


class Accepted(BaseModel):
    """Returned with 202: the request was recorded; the job acts on it."""

    experiment: ExperimentOut
    message: str


class ComponentHealth(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    executor: Literal["local", "celery"]
    database: ComponentHealth
    broker: ComponentHealth
    workers: list[str] = Field(description="Live workers: Celery node names, or local executor processes.")


class StudyRunOut(BaseModel):
    """One run of a study: its place in the grid, status, progress and its figures so far."""

    id: uuid.UUID
    name: str
    variant: str
    seed: int
    status: Status
    progress: Progress
    error: str | None
    figures: dict[str, Any] = Field(description=(
        "The run's figures over its stored rounds (fedcore/study_aggregate.py run_figures): final_accuracy "
        "and last3_accuracy in points of the task's metric, uplink_advantage, total_advantage, ops_reduction, "
        "ops_attention_reduction, train_time_per_round, wall_time_per_round, uplink_mb, train_time, rounds"))


class StudyOut(BaseModel):
    """A study: its definition and where its runs stand (the status is read from them)."""

    id: uuid.UUID
    name: str
    status: Status = Field(description=(
        "running while any run runs (or some are queued and some finished), queued while all wait, "
        "else succeeded when every run did, failed when any failed, cancelled"))
    counts: dict[str, int] = Field(description="How many runs are in each status.")
    runs_total: int
    definition: StudySpec
    created_at: datetime
    updated_at: datetime

    _utc_fields = field_validator("created_at", "updated_at")(_utc)


class StudyDetail(StudyOut):
    runs: list[StudyRunOut]
    aggregate: dict[str, Any] = Field(description=(
        "Per variant (in the study's order) the mean, half_range and seed count n of every figure over its "
        "finished runs, the paired per-seed differences against the baseline (vs_baseline), the metric per "
        "round over seeds (per_round); verdicts per target; Pareto frontiers; complete: every run finished "
        "(fedcore/study_aggregate.py)"))


class StudyList(BaseModel):
    items: list[StudyOut]
    total: int


class StudyAccepted(BaseModel):
    """Returned with 202 by cancel and resume: what changed."""

    study: StudyOut
    message: str

"""A study: one base spec, a grid of named variants over it, a list of seeds, a baseline and targets.

The one model of a study (:class:`StudySpec`), shared by the REST API (``POST /api/v1/studies``,
JSON or YAML), ``fedheads study run grid.yaml`` and the database (``studies.definition``). A study
expands into one run per (variant, seed): the base preset, the base overrides, the variant's
overrides and the seed, merged by :func:`fedcore.spec.merged_fields` like every other spec.
Seeds come from ``seeds`` only, so a variant may not set ``seed``. How a study's runs are
summed into a table with verdicts is :mod:`fedcore.study_aggregate`.

Studies are fedheads' own; the aggregation follows what bench/paper_table.py did by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fedcore.spec import merged_fields, read_mapping_file

# What a target can judge. The ``*_vs_baseline`` metrics are paired per seed against the baseline's run
# of the same seed (points of the task's metric; ``train_speedup`` is baseline time / variant time).
TargetMetric = Literal[
    "accuracy_vs_baseline",
    "last3_vs_baseline",
    "final_accuracy",
    "last3_accuracy",
    "uplink_advantage",
    "total_advantage",
    "ops_reduction",
    "ops_attention_reduction",
    "train_speedup",
]
PAIRED: frozenset[str] = frozenset({"accuracy_vs_baseline", "last3_vs_baseline", "train_speedup"})

VariantName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^/\\\x00-\x1f]+$")
]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Target(BaseModel):
    """A bar for the study's variants: ``within`` points of the baseline, ``at_least`` or ``at_most`` a value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: TargetMetric = Field(description=(
        "What is judged: accuracy_vs_baseline / last3_vs_baseline (the mean paired per-seed difference from the "
        "baseline, in points of the task's metric: accuracy, else ROUGE-L, else BLEU), final_accuracy / "
        "last3_accuracy (points), uplink_advantage, total_advantage, ops_reduction, ops_attention_reduction "
        "(x), train_speedup (baseline client training time / the variant's, paired per seed)"))
    within: float | None = Field(None, ge=0, le=100, description=(
        "For *_vs_baseline: met when the variant is at most this many points below the baseline"))
    at_least: float | None = Field(None, ge=-1e9, le=1e9, description="Met when the value is >= this")
    at_most: float | None = Field(None, ge=-1e9, le=1e9, description="Met when the value is <= this")
    variants: list[VariantName] | None = Field(None, max_length=200, description=(
        "The variants judged (default: every variant but the baseline)"))

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        given = [k for k in ("within", "at_least", "at_most") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'within', 'at_least' and 'at_most' (got {given or 'none'})")
        if self.within is not None and not self.metric.endswith("_vs_baseline"):
            raise ValueError(f"'within' is for the *_vs_baseline metrics; use at_least or at_most for {self.metric}")
        return self

    def bound(self) -> tuple[str, float]:
        """('at_least' | 'at_most', the limit): ``within: w`` is ``at_least: -w``."""
        if self.within is not None:
            return "at_least", -self.within
        if self.at_least is not None:
            return "at_least", self.at_least
        assert self.at_most is not None
        return "at_most", self.at_most


class StudyBase(BaseModel):
    """The spec every run starts from: a preset and fields over it, or fields alone (defaults for the rest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str | None = Field(None, min_length=1, max_length=100, description="A preset name (GET /presets)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Spec fields over the preset")


class StudySpec(BaseModel):
    """A grid of runs: every variant of ``base`` for every seed, judged against ``baseline``."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{
        "name": "s09", "base": {"preset": "paper-pruned", "overrides": {"rounds": 15}},
        "variants": {"dense": {"sparsity": 0.0}, "mask": {"sparsity": 0.9}}, "seeds": [0, 1, 2, 3],
        "baseline": "dense", "targets": [{"metric": "accuracy_vs_baseline", "within": 2.0},
                                         {"metric": "uplink_advantage", "at_least": 1.8}]}]})

    name: str = Field(min_length=1, max_length=200, description="A label for people")
    base: StudyBase = Field(default_factory=lambda: StudyBase(preset=None), description="The spec every run starts from")
    variants: dict[VariantName, dict[str, Any]] = Field(
        min_length=1, max_length=200, description="Named variants: spec fields over the base (may be empty)")
    seeds: list[Seed] = Field(min_length=1, max_length=100, description="Every variant runs once per seed")
    baseline: VariantName = Field(description="The variant the others are compared with (per seed)")
    targets: list[Target] = Field(default_factory=list, max_length=50, description="Bars to judge the variants by")

    @field_validator("base")
    @classmethod
    def _base_has_no_seed(cls, base: StudyBase) -> StudyBase:
        if "seed" in base.overrides:
            raise ValueError("base.overrides sets 'seed': seeds come from the study's 'seeds'")
        return base

    @field_validator("variants")
    @classmethod
    def _variants_have_no_seed(cls, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, fields in variants.items():
            if "seed" in fields:
                raise ValueError(f"variant {name!r} sets 'seed': seeds come from the study's 'seeds'")
        return variants

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must not repeat (got {seeds})")
        return seeds

    @field_validator("baseline")
    @classmethod
    def _baseline_is_a_variant(cls, baseline: str, info: ValidationInfo) -> str:
        variants = info.data.get("variants")
        if variants is not None and baseline not in variants:
            raise ValueError(f"baseline {baseline!r} is not one of the variants {sorted(variants)}")
        return baseline

    @field_validator("targets")
    @classmethod
    def _targets_name_variants(cls, targets: list[Target], info: ValidationInfo) -> list[Target]:
        variants = info.data.get("variants")
        for i, t in enumerate(targets):
            unknown = [v for v in t.variants or [] if variants is not None and v not in variants]
            if unknown:
                raise ValueError(f"targets[{i}] names variants that do not exist: {unknown}")
        return targets

    def runs(self) -> list[tuple[str, int]]:
        """Every (variant, seed), seed by seed (a complete one-seed table first), variants in their order."""
        return [(v, s) for s in self.seeds for v in self.variants]

    def fields(self, variant: str, seed: int) -> dict[str, Any]:
        """The spec fields of one run (not yet validated); raises :class:`~fedcore.spec.UnknownPreset`."""
        return merged_fields(self.base.preset, {**self.base.overrides, **self.variants[variant], "seed": seed})

    def origin(self, variant: str, field: str) -> list[str | int]:
        """Where a run's field was set: ``["variants", name, field]``, ``["base", "overrides", field]`` or
        ``["base", "preset"]`` (a field the preset set, or a spec-wide rule: ``field`` empty)."""
        if field and field in self.variants[variant]:
            return ["variants", variant, field]
        if field and field in self.base.overrides:
            return ["base", "overrides", field]
        if not field:
            return ["variants", variant]
        return ["base", "preset", field] if self.base.preset else ["variants", variant, field]


def read_study_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML or JSON study file holds (YAML with ``safe_load`` only), not yet validated."""
    return read_mapping_file(path, "a study file must hold a mapping (name, base, variants, seeds, baseline, targets)")


def study_yaml(study: StudySpec) -> str:
    """The study as YAML that ``fedheads study run`` and ``POST /api/v1/studies`` accept."""
    return yaml.safe_dump(study.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)

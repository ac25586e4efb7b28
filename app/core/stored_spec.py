"""Stored experiment specs carry a schema version; an older one is upgraded whenever it is read.

``ExperimentSpec`` forbids unknown fields, so a renamed or removed field would make every
experiment stored before the change fail to resume or clone. The ``experiments.spec``
column (:class:`StoredSpec`) therefore writes the spec with a ``spec_version`` key and,
on every read (the runner's claim, the API, the dashboard's clone form, the adapter
export), runs the steps from the stored version to the current one and drops the key, so
code above the database only ever sees current specs. Specs stored before versions
existed have no key: version 1.

A change to ``fedcore.spec.ExperimentSpec`` that old specs cannot validate against, or
that changes what an absent field means, appends one step to :data:`STEPS` (made with
:func:`renamed`, :func:`added` or a function of its own) and a test that loads a spec
stored at the previous version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Dialect
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

VERSION_KEY = "spec_version"
Step = Callable[[dict[str, Any]], dict[str, Any]]


def renamed(old: str, new: str) -> Step:
    """A step for a field renamed from ``old`` to ``new``."""

    def step(spec: dict[str, Any]) -> dict[str, Any]:
        if old not in spec:
            return spec
        out = {k: v for k, v in spec.items() if k != old}
        out[new] = spec[old]
        return out

    step.__doc__ = f"{old} is called {new}"
    return step


def added(field: str, value: Any) -> Step:
    """A step for a field added with a default that differs from what older specs did: they get ``value``."""

    def step(spec: dict[str, Any]) -> dict[str, Any]:
        return spec if field in spec else {**spec, field: value}

    step.__doc__ = f"{field} added; older specs ran with {value!r}"
    return step


# STEPS[i] upgrades a spec stored at version i + 1 to version i + 2.
STEPS: list[Step] = [
    # version 2: `pooling` appeared with default 'cls', and presets moved to 'mean'; older specs
    # classified from the [CLS] pooler, and keep doing so whatever the default becomes
    added("pooling", "cls"),
]


def current_version() -> int:
    return len(STEPS) + 1


def upgrade(stored: dict[str, Any]) -> dict[str, Any]:
    """The current form of a spec stored at any version (the version key removed)."""
    spec = {k: v for k, v in stored.items() if k != VERSION_KEY}
    version = int(stored.get(VERSION_KEY, 1))
    if version > current_version():
        raise ValueError(
            f"this spec was stored by a newer fedheads (spec version {version}; this one reads up to "
            f"{current_version()}): upgrade fedheads to use it"
        )
    for step in STEPS[version - 1 :]:
        spec = step(spec)
    return spec


def for_storage(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as stored: its fields and the current version."""
    return {**spec, VERSION_KEY: current_version()}


class StoredSpec(TypeDecorator[dict[str, Any]]):
    """JSON (JSONB on PostgreSQL) that writes a spec with its version and reads it upgraded."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else for_storage(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else upgrade(value)

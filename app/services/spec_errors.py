"""Every problem of a submitted spec in one answer: field errors and the rules across fields together.

Pydantic runs ``ExperimentSpec``'s cross-field rules (``_check_relations``) only once every field is
valid, so a form with a bad field and a broken rule across fields learnt of the second problem only
after fixing the first. Here, when a spec has field errors, it is validated again with those fields at
their defaults; a cross-field error of that second pass is added, unless its message names one of
the replaced fields (the default, not the user's value, could be what breaks it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from fedcore.spec import ExperimentSpec


def cross_field_errors(data: Any, field_errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Errors of ``ExperimentSpec``'s rules across fields for ``data`` (a submitted spec) once the fields that
    ``field_errors`` name (locs relative to the spec: ``(field, ...)``) are left at their defaults."""
    if not isinstance(data, dict):
        return []
    bad = {str(e["loc"][0]) for e in field_errors if e.get("loc")}
    if not bad:
        return []
    rest = {k: v for k, v in data.items() if k not in bad}
    try:
        ExperimentSpec.model_validate(rest)
    except ValidationError as err:
        return [
            dict(e) for e in err.errors(include_url=False, include_context=False)
            if not e["loc"] and not any(re.search(rf"\b{re.escape(f)}\b", e["msg"]) for f in bad)
        ]
    return []


def with_cross_field_errors(errors: Sequence[Mapping[str, Any]], body: Any) -> list[dict[str, Any]]:
    """A request's 422 items plus the cross-field errors of its ``spec`` (at loc ``["body", "spec"]``)."""
    out = [dict(e) for e in errors]
    spec_errors = [{**e, "loc": tuple(e["loc"][2:])} for e in errors
                   if tuple(e.get("loc", ()))[:2] == ("body", "spec") and len(e["loc"]) > 2]
    if spec_errors and isinstance(body, dict):
        out += [{**e, "loc": ["body", "spec"]} for e in cross_field_errors(body.get("spec"), spec_errors)]
    return out

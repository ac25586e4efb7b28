"""Submit-time checks of a submission against this server: the one place the API, the form and the CLI share.

:func:`app.services.experiments.checked_spec` resolves the submission (a 422 for a bad field, as
before), then :func:`check_spec` asks :func:`fedcore.checks.check_inputs` whether this server can run its model and data: known names,
installed assets, a local file's location, format, columns and first rows, ``hub:`` ids when the hub
answers. Problems are an :class:`~app.services.errors.InvalidInput` (422) whose items name the field
where the submission set it (``spec``, ``overrides`` or the ``preset``). Nothing is stored before it
passes. ``POST /api/v1/experiments``, ``POST /ui/validate`` and so ``fedheads submit`` go through it;
``fedheads run`` calls fedcore's check directly.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from app.core.config import Settings
from app.schemas import ExperimentCreate
from app.services.errors import InvalidInput
from fedcore.checks import HubAnswer, Places, check_inputs, hub_probe
from fedcore.spec import ExperimentSpec

HUB_ANSWER_TTL = 60.0  # seconds a hub answer is reused (the form validates as the user types)

_hub_answers: dict[tuple[str, str], tuple[float, HubAnswer]] = {}
_hub_lock = threading.Lock()


def places(settings: Settings) -> Places:
    """Where this server keeps data, models and assets, as fedcore's checks want them."""
    return Places(
        data_root=settings.data_root.expanduser().resolve(),
        model_root=settings.model_root.expanduser().resolve() if settings.model_root else None,
        cache_dir=settings.assets_dir.expanduser().resolve() if settings.assets_dir else None,
        max_data_bytes=settings.max_data_file_bytes,
    )


def cached_hub_probe(kind: Literal["model", "dataset"], ident: str) -> HubAnswer:
    """:func:`fedcore.checks.hub_probe`, its answers kept for a minute."""
    key = (kind, ident)
    now = time.monotonic()
    with _hub_lock:
        hit = _hub_answers.get(key)
    if hit is not None and now - hit[0] < HUB_ANSWER_TTL:
        return hit[1]
    answer = hub_probe(kind, ident)
    with _hub_lock:
        _hub_answers[key] = (now, answer)
    return answer


def check_spec(body: ExperimentCreate, spec: ExperimentSpec, settings: Settings) -> None:
    """Raise InvalidInput naming each field this server cannot use."""
    problems = check_inputs(spec, places(settings), hub=cached_hub_probe)
    if problems:
        raise InvalidInput([_item(body, spec, p.field, p.message) for p in problems])


def _item(body: ExperimentCreate, spec: ExperimentSpec, field: str, message: str) -> dict[str, Any]:
    where = "spec" if body.spec is not None else "overrides" if field in body.overrides else "preset"
    return {"type": "value_error", "loc": ["body", where, field], "msg": message, "input": getattr(spec, field)}

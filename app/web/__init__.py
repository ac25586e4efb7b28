"""The browser dashboard: server-rendered Jinja2 pages, Plotly charts, live over SSE.

Pages: ``/`` (experiments), ``/experiments/new`` (the form), ``/experiments/{id}`` (one run, live),
``/compare?ids=a,b`` (overlays and a table), ``/results/{name}`` (a committed benchmark table,
read-only; app/services/advice.py). They read the REST API from the browser (``/api/v1``) and follow
``/api/v1/experiments/{id}/events`` with an EventSource. One module per concern:

- :mod:`app.web.render`: the Jinja2 environment, the header's login state, the 404 page.
- :mod:`app.web.views`: the list, experiment, compare and results pages.
- :mod:`app.web.form`: the new-experiment form (generated from the spec model) and ``POST /ui/validate``.
- :mod:`app.web.auth`: ``/login`` and ``/logout`` (the page-session and CSRF cookies).
- :mod:`app.web.ui_api`: the pages' private JSON (``/ui/experiments``, ``.../state``, ``.../series``).
- :mod:`app.web.static`: files under ``static/`` and ``plotly.min.js`` from the installed package.

The figures every page shows come from one service, app/services/listing.py (which reuses
``fedcore.summary``). :data:`router` holds them all; ``/experiments/new`` is added before
``/experiments/{id}`` so the form is not read as an experiment id.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.web import auth, form, static, ui_api, views

router = APIRouter(include_in_schema=False)
for _part in (form, views, auth, ui_api, static):  # the form's fixed path before the views' {experiment_id}
    router.include_router(_part.router)

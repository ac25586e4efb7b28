"""Static files for the pages: ``static/`` (no traversal, no hidden files) and ``plotly.min.js`` from
the installed ``plotly`` package (never a CDN), so every page works offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from app.services.errors import NotFound
from app.web.render import ROOT

router = APIRouter(include_in_schema=False)

STATIC_DIR = ROOT / "static"
PLOTLY_JS = "plotly.min.js"


def plotly_path() -> Path | None:
    """plotly.min.js from the installed plotly package (found without importing it), or a copy in static/."""
    local = STATIC_DIR / PLOTLY_JS
    if local.is_file():
        return local
    spec = importlib.util.find_spec("plotly")
    for base in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(base) / "package_data" / PLOTLY_JS
        if candidate.is_file():
            return candidate
    return None


@router.get("/static/{path:path}")
def static_file(path: str) -> Response:
    """Files under static/ only (no traversal, no hidden files)."""
    if path == f"js/{PLOTLY_JS}" or path == PLOTLY_JS:
        found = plotly_path()
        if found is None:
            raise NotFound("plotly.min.js not found: pip install plotly")
        return FileResponse(found, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
    parts = Path(path).parts
    if not parts or any(p in ("..", "") or p.startswith(".") for p in parts):
        raise NotFound(f"no static file {path!r}")
    target = (STATIC_DIR / path).resolve()
    if not target.is_relative_to(STATIC_DIR.resolve()) or not target.is_file():
        raise NotFound(f"no static file {path!r}")
    media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(target.suffix)
    return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})

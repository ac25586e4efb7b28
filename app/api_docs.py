"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) that work offline.

FastAPI's own pages load both from a CDN, and ReDoc its fonts from Google. Here the files
come from the installed ``fastapi-offline`` package (Swagger UI 5 and ReDoc 2 bundles) and are
served under ``/api-docs/``. ReDoc's bundle draws the Redocly logo from cdn.redoc.ly
in its side menu whatever the options; that one URL is swapped for an empty image (the
"API docs by Redocly" credit stays), so the page asks nothing of another host.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

ASSETS_URL = "/api-docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
NO_IMAGE = b'"data:,"'  # fails to decode, so ReDoc's onError hides the <img>
# Swagger UI's validator badge would send the schema's URL to validator.swagger.io.
SWAGGER_PARAMETERS: dict[str, Any] = {"validatorUrl": None}


@cache
def asset(name: str) -> bytes:
    """One of the package's files, as served (ReDoc without its remote logo)."""
    data = files("fastapi_offline").joinpath("static", name).read_bytes()
    return data.replace(REDOC_LOGO, NO_IMAGE) if name == "redoc.standalone.js" else data


def add_api_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Routes for the two documentation pages and their files; create the app with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_url = f"{docs_url}/oauth2-redirect"

    @app.get(f"{ASSETS_URL}/{{name}}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        return Response(asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} API", oauth2_redirect_url=oauth2_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png", swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(oauth2_url, include_in_schema=False)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} API (ReDoc)", redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False,
        )

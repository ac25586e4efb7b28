"""/api/v1/presets, /api/v1/assets, /api/v1/health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ExecutorDep, SessionsDep, SettingsDep
from app.schemas import AssetList, Health, PresetOut
from app.services import catalog
from app.services.health import health as health_svc

router = APIRouter(prefix="/api/v1", tags=["service"])


@router.get("/presets", response_model=list[PresetOut])
def list_presets() -> list[PresetOut]:
    """Named starting points; submit one with {"preset": name, "overrides": {...}}."""
    return catalog.presets()


@router.get("/assets", response_model=AssetList)
def list_assets(settings: SettingsDep) -> AssetList:
    """Which models and datasets this server can use now, and what to install for the others."""
    return catalog.assets(settings)


@router.get(
    "/health", response_model=Health, responses={503: {"model": Health, "description": "database down"}}
)
def get_health(sessions: SessionsDep, executor: ExecutorDep, settings: SettingsDep) -> Health | JSONResponse:
    """Database, broker and live workers. 503 when the database is unreachable."""
    h = health_svc(sessions=sessions, executor=executor, settings=settings)
    if h.status == "down":
        return JSONResponse(status_code=503, content=h.model_dump(mode="json"))
    return h

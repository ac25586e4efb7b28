"""Service settings, read once from the environment (prefix ``FEDHEADS_``).

The embedded default needs nothing set: SQLite under ``./var``, jobs in a local
process. ``FEDHEADS_BROKER_URL=redis://...`` switches execution to Celery workers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from fedcore.context import Paths
    from fedcore.spec import ExperimentSpec


URL_FIELDS = ("database_url", "broker_url", "result_backend")


class Settings(BaseSettings):
    """Everything the API, the workers and the CLI read from the environment."""

    model_config = SettingsConfigDict(env_prefix="FEDHEADS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/fedheads.db",
        description="SQLAlchemy URL: SQLite (default, embedded) or postgresql+psycopg2://...",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://...); unset runs jobs in a local process (embedded mode).",
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery result backend for fanned-out client tasks (default: the broker URL).",
    )
    artifact_root: Path = Field(
        default=Path("./var/artifacts"), description="Checkpoints and adapters, one folder per job."
    )
    data_root: Path = Field(
        default=Path("./var/data"), description="Folder that local dataset files must live in."
    )
    model_root: Path | None = Field(
        default=None, description="Folder that local model folders must live in (default: cwd)."
    )
    assets_dir: Path | None = Field(
        default=None,
        description="Offline asset cache of `fedheads assets` (default ~/.cache/fedheads/assets).",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Token that POST and DELETE requests need (Bearer header, or a /login page session); "
        "unset: the API is open, so bind to 127.0.0.1 only.",
    )
    max_data_file_bytes: int = Field(
        default=512 * 1000 * 1000,
        ge=1,
        description="Largest local dataset file (in the data root) a submission may name (bytes); a larger "
        "one is refused at submit with a 422 (runs load the whole file into memory).",
    )
    max_study_runs: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Most runs (variants x seeds) one study may have; a larger grid is refused with a 422.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (bytes); larger is a 413."
    )
    host: str = Field(default="127.0.0.1", description="Address `fedheads serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `fedheads serve` listens on.")

    experiments_queue: str = Field(default="experiments", description="Celery queue of whole jobs.")
    clients_queue: str = Field(
        default="clients", description="Celery queue of single client-training tasks (fan-out)."
    )
    gpu_queue: str = Field(
        default="gpu",
        description="Celery queue of the jobs whose spec asks for device 'cuda', and of their client tasks; "
        "serve it with `fedheads worker --queue gpu` on machines with a GPU.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Device this process trains on when a job's spec says device 'auto' "
        "('auto': CUDA when torch sees one).",
    )
    fanout: bool = Field(
        default=True, description="Fan a round's clients out to workers that serve the clients queue."
    )
    fanout_check_interval: float = Field(
        default=10.0, gt=0, description="Seconds between checks for clients-queue workers."
    )
    fanout_grace: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a fanned-out client task may wait for a free worker before the worker that "
        "runs the job trains it itself.",
    )
    client_task_timeout: float = Field(
        default=900.0,
        gt=0,
        description="Seconds to wait for fanned-out client tasks before training them locally.",
    )
    local_workers: int = Field(
        default=1, ge=1, le=64, description="Processes of the embedded local executor."
    )
    api_threads: int = Field(
        default=16,
        ge=2,
        le=1000,
        description="Threads that run the API's blocking route code at once (the database work of a "
        "request); more only add contention for the interpreter lock.",
    )
    api_read_threads: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Threads of their own for the hot reads (experiment list, detail, rounds) on "
        "PostgreSQL, so that slow routes cannot hold them up; on SQLite these reads run on the event "
        "loop. bench/api_load.py --celery on 2 cores, one run each: 719 reads/s with 4 threads, 523 with 16.",
    )
    local_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness of the embedded executor's job processes: on a machine it shares with "
        "training, the dashboard and API answer first (0: same priority).",
    )
    db_connect_timeout: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="PostgreSQL: seconds to wait for a new connection before giving up (libpq connect_timeout); "
        "TCP keepalives also close a connection whose server stopped answering within about a minute.",
    )
    db_statement_timeout: float = Field(
        default=60.0,
        ge=0,
        description="PostgreSQL: seconds one SQL statement may run before the server cancels it, so that a "
        "stuck query cannot hold a pooled connection forever (0: no limit). fedheads' own statements take "
        "milliseconds.",
    )
    reconcile_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between passes that dispatch queued jobs and recover lost ones.",
    )
    redispatch_after: float = Field(
        default=900.0,
        gt=0,
        description="Re-enqueue a queued job whose message was sent this many seconds ago.",
    )
    cancel_poll_interval: float = Field(
        default=0.25, ge=0, description="Most often a job re-reads its cancel flag (s)."
    )
    sse_poll_interval: float = Field(
        default=0.1,
        gt=0,
        description="Seconds between the server's reads of the newest event id while SSE streams wait "
        "(one query a poll, shared by all streams; a worker's Redis notice also ends the wait).",
    )
    broker_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for the broker when enqueueing."
    )
    db_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long a worker retries a database write (a round, a status) that fails because "
        "the database is unreachable, with exponential backoff, before it fails the job (s).",
    )

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("broker_url", "result_backend", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def __repr_args__(self) -> Any:
        """repr() and logs show URLs without passwords (the token is a SecretStr already)."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in URL_FIELDS and isinstance(value, str) else value

    @property
    def uses_celery(self) -> bool:
        return self.broker_url is not None

    @property
    def backend_url(self) -> str | None:
        return self.result_backend or self.broker_url

    def experiment_dir(self, experiment_id: object) -> Path:
        return self.artifact_root / str(experiment_id)


def fedcore_paths(settings: Settings) -> Paths:
    """Where fedcore finds assets, local data and local models (absolute, so every process agrees)."""
    from fedcore.context import Paths  # imports torch: only where a model is built

    return Paths(
        cache_dir=settings.assets_dir.expanduser().resolve() if settings.assets_dir else None,
        data_root=settings.data_root.expanduser().resolve(),
        model_root=settings.model_root.expanduser().resolve() if settings.model_root else None,
    )


def with_device(spec: ExperimentSpec, settings: Settings) -> ExperimentSpec:
    """The spec this process trains: a spec's device 'auto' becomes the process's ``device`` setting."""
    if spec.device == "auto" and settings.device != "auto":
        return spec.model_copy(update={"device": settings.device})
    return spec


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read from the environment once)."""
    return Settings()


def redact_url(url: str | None) -> str | None:
    """A URL with any password replaced by ``***`` (for health output and logs)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (redis://): strip userinfo by hand
        scheme, sep, rest = url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.split("@", 1)[1]
        return scheme + sep + rest

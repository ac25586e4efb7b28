"""Errors the services raise; the API maps each to one HTTP status."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    """Input the request schema could not catch (a preset's fields); ``errors`` use FastAPI's 422 format."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The request is illegal in the experiment's current state."""

    status_code = 409


class BrokerUnavailable(ServiceError):
    """The job is recorded but could not be enqueued; the reconciler will retry."""

    status_code = 503

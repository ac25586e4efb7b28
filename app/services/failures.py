"""What a failed job tells its user: one line naming the cause, and an error id; nothing of the server.

A job that fails stores (and the API, the pages and the event stream show) ``error`` as one line:
the exception's type and the first line of its message, with this server's folders replaced by what
they are (``<data root>/train.csv``) and any other absolute path cut to its last part, then the error
id. The traceback goes to the log of the process that ran the job (the server's for the embedded
executor, the Celery worker's otherwise) under the same id, so ``grep <error id>`` finds it there.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from app.core.config import Settings

ERROR_LINE_LIMIT = 1000  # characters of the cause kept (the log has the rest)
REPOSITORY = Path(__file__).resolve().parents[2]

# an absolute path: a slash not following a word character, a dot, a colon or another slash
_ABSOLUTE = re.compile(r"(?<![\w.:/~<>-])/[^\s'\"`()\[\]{},;]+")


def new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def server_places(settings: Settings) -> list[tuple[Path, str]]:
    """This server's folders and the words that stand for them in what users see (the most specific first)."""
    named: list[tuple[Path | None, str]] = [
        (settings.data_root, "<data root>"),
        (settings.artifact_root, "<artifact root>"),
        (settings.model_root, "<model root>"),
        (settings.assets_dir, "<asset cache>"),
        (REPOSITORY, "<fedheads>"),
        (Path.home(), "~"),
    ]
    places: list[tuple[Path, str]] = []
    for path, label in named:
        if path is None:
            continue
        for form in {path.expanduser().absolute(), path.expanduser().resolve()}:
            if str(form) != "/":
                places.append((form, label))
    return sorted(places, key=lambda p: len(str(p[0])), reverse=True)


def scrub(text: str, places: Iterable[tuple[Path, str]]) -> str:
    """``text`` with the server's folders named by what they are and other absolute paths cut short."""
    for path, label in places:
        text = text.replace(str(path), label)

    def shorten(match: re.Match[str]) -> str:
        found = match.group(0)
        first = found[1:].split("/", 1)[0]
        if not first or not os.path.isdir("/" + first):  # "/api/v1/...", "/s": not a path of this machine
            return found
        return ".../" + found.rstrip("/").rsplit("/", 1)[-1]

    return _ABSOLUTE.sub(shorten, text)


def one_line(err: BaseException, places: Iterable[tuple[Path, str]]) -> str:
    """The exception's type and the first line of its message, scrubbed and bounded."""
    message = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    line = scrub(f"{type(err).__name__}: {message}" if message else type(err).__name__, places)
    return line if len(line) <= ERROR_LINE_LIMIT else line[: ERROR_LINE_LIMIT - 3] + "..."


def public_error(err: BaseException, error_id: str, settings: Settings) -> str:
    """What a failed job stores and shows: the cause in one line, then the error id to look up in the log."""
    return f"{one_line(err, server_places(settings))} (error id {error_id}; the server log holds the details)"


def log_failure(log: logging.Logger, what: str, err: BaseException, error_id: str) -> None:
    """The traceback, in the log, under the error id the user sees."""
    log.error("%s failed [error id %s]", what, error_id, exc_info=(type(err), err, err.__traceback__))

"""What the read API derives from an experiment's stored rounds, kept per process.

A stored round never changes, and the runner writes each round row in the same
transaction that raises ``experiments.rounds_done`` (worker/runner.py). So the
first ``n`` rounds of an experiment are fully named by ``(experiment id, n)``: a
reader that has just read ``rounds_done = n`` can be served from rounds 1..n
kept from earlier requests, and only rounds it has not seen yet are read from
the database. Without this, every GET of an experiment's detail or rounds
re-read and re-decoded every round record (the load benchmark: ~10 ms of CPU
per request at 60 rounds, growing with the run).

Kept per experiment: each round's API JSON (``RoundOut``, serialised once), its
headline figures (``RoundFigures``) and the few record fields ``summarize`` and a
study's table read (:func:`slim_record`), so a study's detail is computed from kept
rounds too, reading only each run's new rounds. Experiments are evicted least
recently used once the kept JSON passes ``max_bytes`` or more than
``max_experiments`` are kept.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.presenters import round_figures, round_out
from app.models import Round
from app.schemas import RoundFigures
from fedcore.summary import SUMMARY_KEYS, summarize

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_EXPERIMENTS = 256


def slim_record(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of a round record that ``fedcore.summary.summarize`` and ``fedcore.study_aggregate.run_figures``
    read: ``SUMMARY_KEYS`` and each client's ``train_time`` (a client without one stays without one)."""
    out = {k: record.get(k) for k in SUMMARY_KEYS}
    out["clients"] = [{"train_time": c["train_time"]} if "train_time" in c else {} for c in record.get("clients") or []]
    return out


@dataclass
class RoundsView:
    """Rounds 1..n of one experiment as the API shows them (the entry's lists only grow)."""

    n: int
    _entry: _Entry

    @property
    def latest(self) -> RoundFigures | None:
        return self._entry.figures[self.n - 1] if self.n else None

    def summary(self) -> dict[str, Any]:
        return self._entry.summary(self.n)

    def records(self) -> list[dict[str, Any]]:
        """Rounds 1..n as :func:`slim_record` keeps them (shared: read, never change)."""
        return self._entry.slim[: self.n]

    def rounds_json(self, after: int = 0) -> bytes:
        """The body of GET /rounds: ``{"items": [rounds after ``after``], "total": count}``."""
        items = self._entry.fragments[after : self.n] if after < self.n else []
        return b'{"items":[' + b",".join(items) + b'],"total":' + str(len(items)).encode() + b"}"


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    fragments: list[bytes] = field(default_factory=list)
    figures: list[RoundFigures] = field(default_factory=list)
    slim: list[dict[str, Any]] = field(default_factory=list)  # slim_record of each round
    nbytes: int = 0
    _summary: tuple[int, dict[str, Any]] | None = None

    def summary(self, n: int) -> dict[str, Any]:
        with self.lock:
            cached = self._summary
            if cached is not None and cached[0] == n:
                return cached[1]
            value = summarize(self.slim[:n])
            self._summary = (n, value)
            return value

    def extend(self, rows: Sequence[Round]) -> None:
        for row in rows:
            frag = round_out(row).model_dump_json().encode()
            self.fragments.append(frag)
            self.figures.append(round_figures(row))
            self.slim.append(slim_record(row.record))
            self.nbytes += len(frag)


class RoundCache:
    """Per-process cache of rounds 1..n per experiment (see the module docstring)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_experiments: int = DEFAULT_MAX_EXPERIMENTS) -> None:
        self.max_bytes = max_bytes
        self.max_experiments = max_experiments
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def view(self, db_session: Session, experiment_id: uuid.UUID, rounds_done: int) -> RoundsView:
        """Rounds 1..``rounds_done`` (the value the caller just read), reading only rounds not kept yet."""
        with self._lock:
            entry = self._entries.get(experiment_id)
            grown = entry is None
            if entry is None:
                entry = self._entries[experiment_id] = _Entry()
            self._entries.move_to_end(experiment_id)
        with entry.lock:
            have = len(entry.fragments)
            if have < rounds_done:
                rows = db_session.scalars(
                    select(Round)
                    .where(Round.experiment_id == experiment_id, Round.round > have, Round.round <= rounds_done)
                    .order_by(Round.round)
                ).all()
                if [r.round for r in rows] != list(range(have + 1, rounds_done + 1)):
                    raise RuntimeError(
                        f"experiment {experiment_id}: rounds {have + 1}..{rounds_done} expected, "
                        f"found {[r.round for r in rows]}"
                    )
                entry.extend(rows)
                grown = True
            n = min(rounds_done, len(entry.fragments))  # a reader with an older snapshot gets its prefix
        if grown:  # the common read adds nothing: no need to look at the other entries
            self._evict()
        return RoundsView(n=n, _entry=entry)

    def latest_figures(
        self, db_session: Session, rounds_done: dict[uuid.UUID, int]
    ) -> dict[uuid.UUID, RoundFigures]:
        """The last stored round's figures of each experiment, from kept rounds where possible."""
        out: dict[uuid.UUID, RoundFigures] = {}
        missing = []
        with self._lock:
            for exp_id, n in rounds_done.items():
                entry = self._entries.get(exp_id)
                if n == 0:
                    continue
                if entry is not None and len(entry.figures) >= n:
                    out[exp_id] = entry.figures[n - 1]
                else:
                    missing.append((exp_id, n))
        if missing:
            rows = db_session.execute(
                select(Round).where(
                    Round.experiment_id.in_([e for e, _ in missing]), Round.round.in_({n for _, n in missing})
                )
            ).scalars()
            wanted = dict(missing)
            for row in rows:
                if wanted.get(row.experiment_id) == row.round:
                    out[row.experiment_id] = round_figures(row)
        return out

    def forget(self, experiment_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop(experiment_id, None)

    def _evict(self) -> None:
        with self._lock:
            total = sum(e.nbytes for e in self._entries.values())
            while (total > self.max_bytes or len(self._entries) > self.max_experiments) and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes

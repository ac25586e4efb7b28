"""The read API serves rounds from its per-process cache: answers equal the stored rows, on SQLite and PostgreSQL.

Rounds are written straight into the database (tests/e2e/seed.py), the way the runner
writes them: the round rows and ``rounds_done`` in one transaction. The reference answers
are built from the rows with the presenters, as the routes did before the cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.api.presenters import round_figures, round_out
from app.core.config import Settings
from app.core.db import session_factory
from app.core.migrate import upgrade
from app.main import create_app
from app.models import Experiment, Round
from app.schemas import RoundList
from app.services.round_cache import RoundCache, slim_record
from fedcore.study_aggregate import metric_per_round, run_figures
from fedcore.summary import summarize
from tests.app.held import HeldExecutor
from tests.app.stack import fresh_schema
from tests.e2e.seed import add_experiment, fake_record, round_row

SCHEMA = "fedheads_read_cache"


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('read-cache') / 'fedheads.db'}"
    else:
        url = fresh_schema(SCHEMA)
    upgrade(url)
    return url


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, broker_url=None, artifact_root=tmp_path / "a", data_root=tmp_path / "d")
    with TestClient(create_app(settings, background=False, executor_factory=HeldExecutor)) as c:
        yield c


def seed(db_url: str, rounds_done: int, **kw: Any) -> uuid.UUID:
    with session_factory(db_url)() as s, s.begin():
        exp = add_experiment(s, name=f"cache-{uuid.uuid4().hex[:6]}", status="running", rounds_done=rounds_done,
                             rounds_total=50, **kw)
        return exp.id


def store_rounds(db_url: str, exp_id: uuid.UUID, upto: int) -> None:
    """More rounds, as the runner stores them: rows and rounds_done in one transaction."""
    with session_factory(db_url)() as s, s.begin():
        done = s.scalar(select(Experiment.rounds_done).where(Experiment.id == exp_id)) or 0
        for rnd in range(done + 1, upto + 1):
            s.add(round_row(exp_id, fake_record(rnd, num_clients=6, per_round=3, blocks=["enc.0", "enc.1"],
                                                heads=4, sparsity=0.5)))
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(rounds_done=upto))


def stored(db_url: str, exp_id: uuid.UUID) -> list[Round]:
    with session_factory(db_url)() as s:
        return list(s.scalars(select(Round).where(Round.experiment_id == exp_id).order_by(Round.round)))


def reference_rounds(rows: list[Round]) -> dict[str, Any]:
    return RoundList(items=[round_out(r) for r in rows], total=len(rows)).model_dump(mode="json")


def test_rounds_detail_and_list_equal_the_stored_rows_as_rounds_are_added(db_url: str, client: TestClient) -> None:
    exp_id = seed(db_url, rounds_done=3)
    other = seed(db_url, rounds_done=0)
    for upto in (3, 4, 9):  # first read fills the cache, later ones extend it
        store_rounds(db_url, exp_id, upto)
        rows = stored(db_url, exp_id)
        assert [r.round for r in rows] == list(range(1, upto + 1))

        got = client.get(f"/api/v1/experiments/{exp_id}/rounds")
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        assert got.json() == reference_rounds(rows)
        after = client.get(f"/api/v1/experiments/{exp_id}/rounds", params={"after": 2}).json()
        assert after == reference_rounds(rows[2:])
        assert client.get(f"/api/v1/experiments/{exp_id}/rounds", params={"after": upto}).json() == \
            {"items": [], "total": 0}

        detail = client.get(f"/api/v1/experiments/{exp_id}").json()
        assert detail["progress"]["rounds_done"] == upto
        assert detail["summary"] == summarize([r.record for r in rows])
        assert detail["latest_round"] == round_figures(rows[-1]).model_dump(mode="json")

        listed = {e["id"]: e for e in client.get("/api/v1/experiments").json()["items"]}
        assert listed[str(exp_id)]["latest_round"] == detail["latest_round"]
        assert listed[str(other)]["latest_round"] is None

    empty = client.get(f"/api/v1/experiments/{other}").json()
    assert empty["summary"] == {"rounds": 0} and empty["latest_round"] is None
    assert client.get(f"/api/v1/experiments/{other}/rounds").json() == {"items": [], "total": 0}
    missing = uuid.uuid4()
    assert client.get(f"/api/v1/experiments/{missing}/rounds").status_code == 404
    assert client.get(f"/api/v1/experiments/{missing}").status_code == 404


def test_deleting_an_experiment_forgets_its_rounds(db_url: str, client: TestClient) -> None:
    exp_id = seed(db_url, rounds_done=2)
    assert client.get(f"/api/v1/experiments/{exp_id}/rounds").json()["total"] == 2
    with session_factory(db_url)() as s, s.begin():
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(status="succeeded"))
    assert client.delete(f"/api/v1/experiments/{exp_id}").status_code == 204
    assert exp_id not in client.app.state.round_cache._entries  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/experiments/{exp_id}/rounds").status_code == 404


def test_a_reader_with_an_older_snapshot_gets_its_prefix_and_eviction_keeps_answers_right(db_url: str) -> None:
    exp_a, exp_b = seed(db_url, rounds_done=6), seed(db_url, rounds_done=4)
    rows_a, rows_b = stored(db_url, exp_a), stored(db_url, exp_b)
    cache = RoundCache()
    with session_factory(db_url)() as s:
        assert cache.view(s, exp_a, 6).n == 6
        old = cache.view(s, exp_a, 4)  # read rounds_done = 4 before the others were committed
    assert old.n == 4 and old.latest == round_figures(rows_a[3])
    assert old.summary() == summarize([r.record for r in rows_a[:4]])
    assert RoundList.model_validate_json(old.rounds_json()).model_dump(mode="json") == reference_rounds(rows_a[:4])

    tiny = RoundCache(max_bytes=1)  # holds one experiment at a time
    with session_factory(db_url)() as s:
        for _ in range(2):
            for exp_id, rows in ((exp_a, rows_a), (exp_b, rows_b)):
                view = tiny.view(s, exp_id, len(rows))
                assert view.rounds_json() == cache.view(s, exp_id, len(rows)).rounds_json()
                assert list(tiny._entries) == [exp_id]
        figures = tiny.latest_figures(s, {exp_a: 6, exp_b: 3, uuid.uuid4(): 0})
        few = RoundCache(max_experiments=2)
        for exp_id in (exp_a, exp_b, uuid.uuid4(), uuid.uuid4()):  # unknown ids leave empty entries
            few.view(s, exp_id, 0)
        assert len(few._entries) == 2
    assert figures == {exp_a: round_figures(rows_a[5]), exp_b: round_figures(rows_b[2])}


def test_a_gap_in_the_stored_rounds_is_an_error_not_a_silent_answer(db_url: str) -> None:
    exp_id = seed(db_url, rounds_done=3)
    with session_factory(db_url)() as s, s.begin():
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(rounds_done=5))
    with session_factory(db_url)() as s, pytest.raises(RuntimeError, match=r"rounds 1\.\.5 expected"):
        RoundCache().view(s, exp_id, 5)


def test_kept_rounds_give_a_runs_study_figures_exactly_as_its_full_records_do(db_url: str) -> None:
    """A study's table is computed from the kept slim records (app/services/studies.py records_of): the same
    figures and per-round metric as from the stored records, clients without a training time included."""
    exp_id = seed(db_url, rounds_done=5)
    rows = stored(db_url, exp_id)
    full = [r.record for r in rows]
    with session_factory(db_url)() as s:
        slim = RoundCache().view(s, exp_id, 5).records()
    assert run_figures(slim) == run_figures(full) and run_figures(slim)["train_time"] > 0
    assert metric_per_round(slim) == metric_per_round(full)
    odd = {**full[0], "clients": [{"train_time": 2.5, "kept": [[True]]}, {"client": 3}]}
    assert slim_record(odd)["clients"] == [{"train_time": 2.5}, {}]
    assert run_figures([slim_record(odd)]) == run_figures([odd])

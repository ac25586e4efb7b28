"""The Celery tasks called as functions, and the fan-out runner against the real broker and worker."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import httpx

from app.core.config import fedcore_paths
from fedcore.client import ClientTask, ClientUpdate, train_client
from fedcore.context import get_context
from fedcore.spec import preset
from tests.app.stack import HOST, LONG_JOB, TEST_JOB, Stack
from worker.celery_app import make_celery
from worker.fanout import CeleryClientPool, encode_state, update_from_json
from worker.tasks import train_client_task

TIMING = {"wall_time", "train_time", "extra"}


def _same_update(a: ClientUpdate, b: ClientUpdate) -> None:
    for f in dataclasses.fields(ClientUpdate):
        if f.name not in TIMING:
            assert getattr(a, f.name) == getattr(b, f.name), f.name


def _ctx(stack_settings: Any = None) -> Any:
    spec = preset("smoke", **TEST_JOB)
    return get_context(spec, fedcore_paths(stack_settings) if stack_settings else None)


def test_train_client_task_returns_the_update_of_training_in_process() -> None:
    ctx = _ctx()
    state = ctx.initial_state
    remote = update_from_json(train_client_task.run(ctx.spec.model_dump_json(), 1, 2, encode_state(state)))
    local = train_client(ctx, ClientTask(round=1, client=2, global_state=state))
    _same_update(remote, local)
    assert remote.payload == local.payload  # the exact upload bytes
    assert remote.extra["trained_by"].startswith(f"{HOST}:")


def test_fanout_runner_counts_only_other_workers_serving_the_clients_queue(stack: Stack) -> None:
    app = make_celery(stack.settings)
    try:
        ctx = _ctx(stack.settings)
        node = f"fh-a@{HOST}"
        own = CeleryClientPool(ctx, lambda: False, app=app, settings=stack.settings, own_node=node)
        other = CeleryClientPool(
            ctx, lambda: False, app=app, settings=stack.settings, own_node="elsewhere@x"
        )
        assert node not in own.remote_workers()  # never wait on itself: that deadlocks
        assert node in other.remote_workers()
    finally:
        app.close()


def test_fanout_runner_asks_the_workers_again_in_the_background(stack: Stack) -> None:
    # the first answer is waited for; later ones are fetched by a thread while the rounds go on
    settings = stack.settings.model_copy(update={"fanout_check_interval": 0.05})
    app = make_celery(settings)
    try:
        runner = CeleryClientPool(_ctx(stack.settings), lambda: False, app=app, settings=settings,
                                  own_node="elsewhere@x")
        first = runner.remote_workers()
        assert first
        time.sleep(0.1)
        t0 = time.monotonic()
        again = runner.remote_workers()  # starts a refresh, returns the last answer at once
        assert time.monotonic() - t0 < 0.5 and again == first
        assert any(t.name == "fanout-workers" for t in threading.enumerate())
        deadline = time.monotonic() + 10
        while any(t.name == "fanout-workers" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.remote_workers() == first  # the refresh finished with the same workers
    finally:
        app.close()


def test_fanout_runner_returns_the_sequential_updates_when_clients_train_on_another_worker(
    stack: Stack,
) -> None:
    app = make_celery(stack.settings)
    try:
        ctx = _ctx(stack.settings)
        tasks = [ClientTask(round=1, client=c, global_state=ctx.initial_state) for c in (4, 0, 3)]
        runner = CeleryClientPool(
            ctx, lambda: False, app=app, settings=stack.settings, own_node="elsewhere@x"
        )
        remote = runner(tasks)
        local = [train_client(ctx, t) for t in tasks]
    finally:
        app.close()
    assert [u.client for u in remote] == [4, 0, 3]
    for r, lo in zip(remote, local, strict=True):
        _same_update(r, lo)
        assert r.payload == lo.payload
    assert {u.extra.get("trained_by", "") for u in remote} != {""}  # some did go to the worker


def test_fanout_runner_trains_here_the_clients_that_busy_workers_do_not_start(
    api: httpx.Client, stack: Stack
) -> None:
    # the stack's only clients-queue worker is busy with a job of its own
    resp = api.post("/api/v1/experiments", json={"name": "busy", "preset": "smoke",
                                                 "overrides": {**LONG_JOB, "rounds": 30}})
    assert resp.status_code == 201, resp.text
    busy = resp.json()["id"]
    stack.wait_status(api, busy, {"running"})
    app = make_celery(stack.settings)
    try:
        ctx = _ctx(stack.settings)
        tasks = [ClientTask(round=1, client=c, global_state=ctx.initial_state) for c in (4, 0, 3)]
        runner = CeleryClientPool(ctx, lambda: False, app=app, settings=stack.settings, own_node="elsewhere@x")
        assert runner.remote_workers()  # it does fan out ...
        t0 = time.monotonic()
        updates = runner(tasks)
        elapsed = time.monotonic() - t0
    finally:
        app.close()
        api.post(f"/api/v1/experiments/{busy}/cancel")
    # ... but does not wait client_task_timeout (900 s) for the busy worker: the grace, then trains here
    assert elapsed < stack.settings.fanout_grace + 60, elapsed
    assert {u.extra.get("trained_by", "") for u in updates} == {""}
    for u, lo in zip(updates, [train_client(ctx, t) for t in tasks], strict=True):
        assert u.payload == lo.payload
    assert api.get(f"/api/v1/experiments/{busy}").json()["status"] in ("running", "cancelled")


def test_fanout_runner_shares_the_evaluation_with_another_worker_and_gets_the_same_figures(stack: Stack) -> None:
    from fedcore.evaluate import evaluate, evaluate_part
    from worker.fanout import eval_part_from_json, eval_part_to_json
    from worker.tasks import evaluate_part_task

    app = make_celery(stack.settings)
    try:
        ctx = _ctx(stack.settings)
        runner = CeleryClientPool(ctx, lambda: False, app=app, settings=stack.settings, own_node="elsewhere@x")
        parts = runner.evaluate_parts(ctx.initial_state)
        shared = evaluate(ctx, ctx.initial_state, runner.evaluate_parts)
    finally:
        app.close()
    assert len(parts) == 1 + len(runner.remote_workers())  # this process's share and one per other worker
    assert sorted(i for ids, _, _ in parts for i in ids) == list(range(min(ctx.spec.eval_size, len(ctx.data.test))))
    assert shared == evaluate(ctx, ctx.initial_state)  # bit-identical to evaluating it all in one process
    # the task called as a function: its JSON carries the share exactly
    ids, preds, losses = eval_part_from_json(evaluate_part_task.run(ctx.spec.model_dump_json(),
                                                                    encode_state(ctx.initial_state), 1, 2))
    want = evaluate_part(ctx, ctx.initial_state, 1, 2)
    assert (ids, preds) == (want[0], want[1]) and losses.equal(want[2])
    assert eval_part_to_json(want)["losses"] == want[2].tolist()

"""Fan a round's clients, and shares of its evaluation, out to other Celery workers, as groups on the
``clients`` queue (the ``gpu`` queue for a job whose spec says device 'cuda', so its clients train on
GPU workers).

A client task takes (spec JSON, round, client, global state) and returns the
:class:`~fedcore.client.ClientUpdate`; its result depends on nothing else, so a
fanned-out round equals a sequential one and a duplicated task is harmless.

Waiting on subtasks inside a task deadlocks when nobody else serves their queue
(docs/operations.md), and stalls when the workers that serve it are busy with
jobs of their own: the orchestrating task fans out only when a worker other than
its own serves that queue. It waits for free workers to start tasks (until the
tasks started stop growing, at most ``fanout_grace`` seconds), then trains here,
last first, every client task that no worker has started yet
(``task_track_started``), and waits only for the ones running elsewhere; results
that do not come back in time are trained here too. A round's evaluation is shared
the same way: this process evaluates every n-th batch and each of the other
n - 1 workers one more share (fedcore.evaluate.evaluate_part), a share nobody
started being evaluated here; the figures equal one process evaluating them all.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celery import Celery, group

from app.core.config import Settings
from worker.celery_app import EVALUATE_PART, TRAIN_CLIENT

if TYPE_CHECKING:
    from fedcore.client import ClientTask, ClientUpdate
    from fedcore.context import RunContext
    from fedcore.evaluate import EvalPart
    from fedcore.lora_state import State
    from fedcore.simulation import ProgressFn

log = logging.getLogger(__name__)


def encode_state(state: State) -> str:
    """A LoRA state as base64 safetensors bytes (lossless, dtype kept)."""
    from safetensors.torch import save

    return base64.b64encode(save({k: v.detach().cpu().contiguous() for k, v in state.items()})).decode(
        "ascii"
    )


def decode_state(text: str) -> State:
    from safetensors.torch import load

    return load(base64.b64decode(text))


def update_to_json(update: ClientUpdate) -> dict[str, Any]:
    data = {f.name: getattr(update, f.name) for f in dataclasses.fields(update)}
    data["payload"] = base64.b64encode(update.payload).decode("ascii")
    return data


def update_from_json(data: dict[str, Any]) -> ClientUpdate:
    from fedcore.client import ClientUpdate

    return ClientUpdate(**{**data, "payload": base64.b64decode(data["payload"])})


def eval_part_to_json(part: EvalPart) -> dict[str, Any]:
    """An evaluation share as JSON: float64 losses as Python floats (JSON keeps them exactly)."""
    ids, preds, losses = part
    return {"ids": ids, "preds": preds, "losses": losses.tolist()}


def eval_part_from_json(data: dict[str, Any]) -> EvalPart:
    import torch

    return data["ids"], data["preds"], torch.tensor(data["losses"], dtype=torch.float64)


class CeleryClientPool:
    """A fedcore client pool that trains a round's clients on other workers when there are any."""

    def __init__(
        self,
        ctx: RunContext,
        should_stop: Callable[[], bool],
        *,
        app: Celery,
        settings: Settings,
        own_node: str | None,
        poll: float = 0.05,
        on_progress: ProgressFn | None = None,
    ) -> None:
        self._ctx = ctx
        self._on_progress = on_progress  # told of the clients trained here (fedcore.simulation.train_reporting)
        self._spec_json = ctx.spec.model_dump_json()
        self._should_stop = should_stop
        self._app = app
        self._settings = settings
        self._own_node = own_node
        self._poll = poll
        self._checked = float("-inf")
        self._remote: list[str] = []
        self._asking = threading.Event()  # a background refresh of _remote is under way
        # a CUDA job's clients train on GPU workers only
        self.queue = settings.gpu_queue if ctx.spec.device == "cuda" else settings.clients_queue

    def remote_workers(self) -> list[str]:
        """Workers other than this one that serve this job's client queue. The first call asks the workers
        (a broadcast that waits a second for their replies); later calls return the last answer at once and,
        every ``fanout_check_interval`` seconds, have a background thread ask again, so no round waits on it."""
        now = time.monotonic()
        if self._checked == float("-inf"):
            self._checked = now
            self._remote = self._ask_workers()
        elif now - self._checked >= self._settings.fanout_check_interval and not self._asking.is_set():
            self._checked = now
            self._asking.set()
            threading.Thread(target=self._ask_in_background, name="fanout-workers", daemon=True).start()
        return self._remote

    def _ask_workers(self) -> list[str]:
        try:
            replies = self._app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception as err:  # broker hiccup: train here
            log.warning("cannot ask workers for their queues (%s); training clients locally", err)
            replies = {}
        return sorted(
            node
            for node, queues in replies.items()
            if node != self._own_node and any(q.get("name") == self.queue for q in queues)
        )

    def _ask_in_background(self) -> None:
        try:
            self._remote = self._ask_workers()
        finally:
            self._asking.clear()

    def __call__(self, tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
        if not tasks or not self._settings.fanout or not self.remote_workers():
            return self._train_here(tasks)
        return self._fan_out(tasks)

    def _train_here(self, tasks: Sequence[ClientTask], of: Sequence[ClientTask] | None = None) -> list[ClientUpdate]:
        """Train ``tasks`` in this process; ``of``: the whole round (for client j of M in progress reports)."""
        from fedcore.simulation import train_reporting

        whole = of if of is not None else tasks
        place = {w.client: j for j, w in enumerate(whole, start=1)}
        return [
            train_reporting(self._ctx, t, place[t.client], len(whole), self._on_progress, self._should_stop)
            for t in tasks
        ]

    def _check_stop(self, result: Any, round_: int) -> None:
        from fedcore.client import Cancelled

        if self._should_stop():
            result.revoke()
            raise Cancelled(f"stopped while round {round_}'s clients trained on other workers")

    def _await_takers(self, result: Any, round_: int) -> None:
        """Wait until free workers have started what they will take: every task, or no new start for a
        moment after the first (a free worker starts a task within a poll or two), or ``fanout_grace``."""
        now = time.monotonic()
        grace_end, settle, started, last_change = now + self._settings.fanout_grace, 5 * self._poll, 0, now
        while time.monotonic() < grace_end:
            self._check_stop(result, round_)
            states = [r.state for r in result.results]
            if "PENDING" not in states:
                return
            now_started = len(states) - states.count("PENDING")
            if now_started != started:
                started, last_change = now_started, time.monotonic()
            elif started and time.monotonic() - last_change >= settle:
                return
            time.sleep(self._poll)

    def evaluate_parts(self, state: State) -> list[EvalPart]:
        """The round's evaluation, shared with the other workers that serve this job's queue
        (``run_simulation`` uses it as :func:`fedcore.evaluate.evaluate`'s ``map_parts``)."""
        from fedcore.evaluate import evaluate_part

        remote = self.remote_workers() if self._settings.fanout else []
        if not remote:
            return [evaluate_part(self._ctx, state, 0, 1)]
        parts = 1 + len(remote)
        encoded = encode_state(state)
        result = group(
            self._app.signature(EVALUATE_PART, args=(self._spec_json, encoded, k, parts), queue=self.queue)
            for k in range(1, parts)
        ).apply_async()
        out: dict[int, EvalPart] = {}
        try:
            out[0] = evaluate_part(self._ctx, state, 0, parts)
            deadline = time.monotonic() + self._settings.client_task_timeout
            for k, res in enumerate(result.results, start=1):
                if res.state == "PENDING":  # nobody took it while this process evaluated its own share
                    res.revoke()
                    continue
                while not res.ready() and time.monotonic() < deadline:  # seconds; a cancel is seen next round
                    time.sleep(self._poll)
                if res.successful():
                    out[k] = eval_part_from_json(res.result)
                else:
                    log.warning("evaluation share %d of %d did not come back (%s); evaluating it here", k,
                                parts, res.state)
        except BaseException:
            result.revoke()
            raise
        finally:
            result.forget()
        for k in range(parts):
            if k not in out:
                out[k] = evaluate_part(self._ctx, state, k, parts)
        return [out[k] for k in range(parts)]

    def _fan_out(self, tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
        state = encode_state(tasks[0].global_state)
        sigs = [
            self._app.signature(
                TRAIN_CLIENT,
                args=(self._spec_json, t.round, t.client, state),
                queue=self.queue,
            )
            for t in tasks
        ]
        result = group(sigs).apply_async()
        done: dict[int, ClientUpdate] = {}
        try:
            # Give free workers a moment to take the tasks, then train here every task no worker has
            # started, last first (workers take the queue from the front): with busy workers this
            # trains the whole round here instead of waiting on them; with free ones they take the
            # first tasks while this process trains the rest.
            self._await_takers(result, tasks[0].round)
            for task, res in reversed(list(zip(tasks, result.results, strict=True))):
                self._check_stop(result, task.round)
                if res.state == "PENDING":
                    res.revoke()  # a worker that receives it later skips it; one that just began wastes a copy
                    done[task.client] = self._train_here([task], tasks)[0]
            remote = [(t, r) for t, r in zip(tasks, result.results, strict=True) if t.client not in done]
            deadline = time.monotonic() + self._settings.client_task_timeout
            while not all(r.ready() for _, r in remote):
                self._check_stop(result, tasks[0].round)
                if time.monotonic() > deadline:
                    log.warning(
                        "round %d: client tasks did not finish in %.0f s; training the rest here",
                        tasks[0].round,
                        self._settings.client_task_timeout,
                    )
                    result.revoke()
                    break
                time.sleep(self._poll)
            for task, res in remote:
                if res.successful():
                    done[task.client] = update_from_json(res.result)
                elif res.failed():
                    log.warning(
                        "round %d client %d failed on a worker (%s); training it here",
                        task.round,
                        task.client,
                        res.result,
                    )
        except BaseException:  # cancelled (here or in a local training) or broken: nobody needs the rest
            result.revoke()
            raise
        finally:
            result.forget()
        missing = [t for t in tasks if t.client not in done]
        for t, u in zip(missing, self._train_here(missing, tasks), strict=True):
            done[t.client] = u
        return [done[t.client] for t in tasks]

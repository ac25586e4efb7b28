"""Fan a round's clients out to other Celery workers, as a group on the ``clients`` queue
(the ``gpu`` queue for a job whose spec says device 'cuda', so its clients train on GPU workers).

A client task takes (spec JSON, round, client, global state) and returns the
:class:`~fedcore.client.ClientUpdate`; its result depends on nothing else, so a
fanned-out round equals a sequential one and a duplicated task is harmless.

Waiting on subtasks inside a task deadlocks when nobody else serves their queue
(docs/operations.md), and stalls when the workers that serve it are busy with
jobs of their own: the orchestrating task fans out only when a worker other than
its own serves that queue; then it trains here, last first, every client task
that no worker has started yet (``task_track_started``), and waits only for the
ones running elsewhere; results that do not come back in time are trained here too.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celery import Celery, group

from app.core.config import Settings
from worker.celery_app import TRAIN_CLIENT

if TYPE_CHECKING:
    from fedcore.client import ClientTask, ClientUpdate
    from fedcore.context import RunContext
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
        # a CUDA job's clients train on GPU workers only
        self.queue = settings.gpu_queue if ctx.spec.device == "cuda" else settings.clients_queue

    def remote_workers(self) -> list[str]:
        """Workers other than this one that serve this job's client queue (cached for a few seconds)."""
        now = time.monotonic()
        if now - self._checked >= self._settings.fanout_check_interval:
            self._checked = now
            try:
                replies = self._app.control.inspect(timeout=1.0).active_queues() or {}
            except Exception as err:  # broker hiccup: train here
                log.warning("cannot ask workers for their queues (%s); training clients locally", err)
                replies = {}
            self._remote = sorted(
                node
                for node, queues in replies.items()
                if node != self._own_node
                and any(q.get("name") == self.queue for q in queues)
            )
        return self._remote

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
            grace_end = time.monotonic() + self._settings.fanout_grace
            while time.monotonic() < grace_end and any(r.state == "PENDING" for r in result.results):
                self._check_stop(result, tasks[0].round)
                time.sleep(self._poll)
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

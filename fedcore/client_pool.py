"""Client pools beyond the sequential one: a pool of worker processes.

Each worker process builds its own :class:`~fedcore.context.RunContext` from the
spec once, when it starts, trains the clients it is given and, between rounds,
evaluates its share of the global model's test batches. The pool starts its
processes when it is made (not at the first round), so they load the model and data
while the caller loads its own, and the same warm processes serve every round. A client's update depends only
on its inputs, so the pool gives exactly the sequential pool's results.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from fedcore.client import ClientTask, ClientUpdate, train_client
from fedcore.context import Paths, get_context
from fedcore.evaluate import EvalPart, evaluate_part
from fedcore.lora_state import State
from fedcore.spec import ExperimentSpec

_worker_spec: ExperimentSpec | None = None
_worker_paths: Paths | None = None


def _init(spec_json: str, paths: Paths | None) -> None:
    global _worker_spec, _worker_paths
    _worker_spec = ExperimentSpec.model_validate_json(spec_json)
    _worker_paths = paths
    # warm: the first round finds the model and data loaded (a failure is raised again by the first task,
    # where the caller sees it)
    with contextlib.suppress(Exception):
        get_context(_worker_spec, _worker_paths)


def _train(task: ClientTask) -> ClientUpdate:
    assert _worker_spec is not None
    return train_client(get_context(_worker_spec, _worker_paths), task)


def _evaluate_part(job: tuple[State, int, int]) -> EvalPart:
    assert _worker_spec is not None
    state, part, parts = job
    return evaluate_part(get_context(_worker_spec, _worker_paths), state, part, parts)


class ProcessClientPool:
    """Train a round's clients in parallel worker processes (spawned, so torch state is clean)."""

    def __init__(self, spec: ExperimentSpec, workers: int, paths: Paths | None = None) -> None:
        self._workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init,
            initargs=(spec.model_dump_json(), paths),
        )
        for _ in range(workers):  # starts every worker process now (a spawned pool starts one per waiting task)
            self._pool.submit(int)

    def __call__(self, tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
        return list(self._pool.map(_train, tasks))

    def evaluate_parts(self, state: State) -> list[EvalPart]:
        """The round's evaluation shared by the idle workers: worker k of n runs every n-th batch, at the
        spec's thread count like the caller would, so :func:`~fedcore.evaluate.evaluate` gets the same
        figures (``run_simulation`` uses it when the pool has it)."""
        return list(self._pool.map(_evaluate_part, [(state, k, self._workers) for k in range(self._workers)]))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

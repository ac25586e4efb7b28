"""The federated round loop.

One round: select -> broadcast the global LoRA state -> each client scores its
heads, keeps its top (1 - s), trains locally and uploads -> the server
aggregates, evaluates on the held-out split and records everything -> next.

The loop takes injected callables (Flower style): a client pool (sequential
here, a process pool in :mod:`fedcore.client_pool`, Celery in ``worker/``),
``on_round_end(RoundResult)``, ``on_progress(Progress)`` and ``should_stop()``. After every round it writes
a checkpoint (global state as safetensors, the server optimizer's velocity when
``server_momentum`` or ``server_lr`` asks for one, selection state, the records), and
``run_simulation(..., checkpoint_dir=d)`` resumes from the last one found there.
No RNG state needs saving: every random choice (selection, a client's sample,
batch order, dropout) is drawn from generators seeded by (seed, round[, client]),
so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fedcore.client import Cancelled, ClientTask, ClientUpdate, global_loss, train_client
from fedcore.context import Paths, RunContext, get_context
from fedcore.evaluate import evaluate
from fedcore.lora_state import State, clone_state
from fedcore.selection import ClientFeedback, make_selector
from fedcore.server import aggregate_updates, server_step
from fedcore.spec import ExperimentSpec
from fedcore.summary import summarize

ClientPool = Callable[[Sequence[ClientTask]], list[ClientUpdate]]


@dataclass(frozen=True)
class Progress:
    """Where a run is inside a round, for progress displays (nothing is recorded from it).

    ``phase``: 'select' (the round began; clients are being chosen), 'client' (client ``client_index`` of
    ``clients`` trains: scoring its heads while ``steps`` is 0, then local step ``step`` of ``steps``),
    'client_done' (that client finished) or 'aggregate' (the server aggregates and evaluates).
    """

    phase: str
    round: int
    rounds: int
    client_index: int = 0
    clients: int = 0
    client: int | None = None
    step: int = 0
    steps: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass
class RoundResult:
    """Everything recorded about one round (JSON-able through :meth:`to_dict`)."""

    round: int
    metrics: dict[str, float]
    selection: dict[str, Any]
    clients: list[dict[str, Any]]
    global_importance: list[list[float]]
    agreement: list[list[float | None]]
    head_weights: list[list[list[float]]]  # (selected clients, blocks, heads)
    bytes_up: int
    bytes_up_dense: int
    bytes_down: int
    ops: float
    ops_dense: float
    ops_attention: float
    ops_attention_dense: float
    train_loss: float
    wall_time: float
    finished_at: float = field(default_factory=time.time)
    # probe passes the clients skipped (spec.probe_passes 'needed'): 'importance' leaves global_importance
    # and the clients' importance NaN (null in JSON), the loss names leave those client losses null
    skipped: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _clean(x: Any) -> Any:
    """NaN/inf to None so the record is valid JSON."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


@dataclass
class RunResult:
    spec: ExperimentSpec
    rounds: list[RoundResult]
    final_state: State
    status: str  # "succeeded" | "cancelled"

    def summary(self) -> dict[str, Any]:
        return summarize([r.to_dict() for r in self.rounds])


# --- client pools ----------------------------------------------------------------


def train_reporting(ctx: RunContext, task: ClientTask, index: int, of: int, on_progress: ProgressFn | None,
                    should_stop: Callable[[], bool] | None = None) -> ClientUpdate:
    """``train_client``, telling ``on_progress`` when client ``index`` of ``of`` starts, steps and finishes."""
    if on_progress is None:
        return train_client(ctx, task, should_stop=should_stop)
    rounds = ctx.spec.rounds

    def tell(phase: str, step: int = 0, steps: int = 0) -> None:
        on_progress(Progress(phase=phase, round=task.round, rounds=rounds, client_index=index, clients=of,
                             client=task.client, step=step, steps=steps))

    tell("client")
    update = train_client(ctx, task, should_stop=should_stop, on_step=lambda k, n: tell("client", k, n))
    tell("client_done", update.steps, update.steps)
    return update


def sequential_pool(ctx: RunContext, should_stop: Callable[[], bool] | None = None,
                    on_client_done: Callable[[ClientUpdate, int, int], None] | None = None,
                    on_progress: ProgressFn | None = None) -> ClientPool:
    """Train the round's clients one after another in this process."""

    def run(tasks: Sequence[ClientTask]) -> list[ClientUpdate]:
        out = []
        for i, t in enumerate(tasks):
            u = train_reporting(ctx, t, i + 1, len(tasks), on_progress, should_stop)
            out.append(u)
            if on_client_done is not None:
                on_client_done(u, i + 1, len(tasks))
        return out

    return run


# --- checkpoints -------------------------------------------------------------------


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def checkpoint_file(round_: int) -> str:
    """The name, inside a checkpoint folder, of the global LoRA state after ``round_``."""
    return f"global_round_{round_:04d}.safetensors"


def server_file(round_: int) -> str:
    """The name, inside a checkpoint folder, of the server optimizer's velocity after ``round_``."""
    return f"server_round_{round_:04d}.safetensors"


def _save_tensors(path: Path, tensors: State) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_checkpoint(directory: Path, round_: int, state: State, selector_state: dict, records: list[dict],
                    velocity: State | None = None) -> None:
    """Write the global state after ``round_`` (and the server's velocity, if it keeps one), then
    ``state.json``, which names them: a checkpoint counts once ``state.json`` is replaced. Every round's
    global state stays (the adapters of earlier rounds are downloadable); only the last velocity does."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = directory / checkpoint_file(round_)
    _save_tensors(tensors, state)
    meta: dict[str, Any] = {"round": round_, "global": tensors.name, "selector": selector_state, "records": records}
    if velocity is not None:
        _save_tensors(directory / server_file(round_), velocity)
        meta["server"] = server_file(round_)
    _atomic_write(directory / "state.json", json.dumps(meta))
    (directory / server_file(round_ - 1)).unlink(missing_ok=True)  # only the last velocity is ever read


def load_server_velocity(directory: Path) -> State | None:
    """The server optimizer's velocity saved with the last checkpoint, or None (none kept, or no checkpoint)."""
    p = directory / "state.json"
    if not p.is_file():
        return None
    name = json.loads(p.read_text(encoding="utf-8")).get("server")
    return load_file(str(directory / name)) if name else None


def load_checkpoint(directory: Path) -> tuple[int, State, dict, list[dict]] | None:
    p = directory / "state.json"
    if not p.is_file():
        return None
    meta = json.loads(p.read_text(encoding="utf-8"))
    state = load_file(str(directory / meta["global"]))
    return int(meta["round"]), state, meta["selector"], list(meta["records"])


# --- the loop ----------------------------------------------------------------------


def run_simulation(
    spec: ExperimentSpec,
    *,
    paths: Paths | None = None,
    client_pool: ClientPool | None = None,
    on_round_end: Callable[[RoundResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_client_done: Callable[[ClientUpdate, int, int], None] | None = None,
    checkpoint_dir: Path | None = None,
    stop_after_round: int | None = None,
    context: RunContext | None = None,
    on_progress: ProgressFn | None = None,
) -> RunResult:
    """Run (or resume) the federated simulation described by ``spec``.

    ``on_progress`` hears where the run is inside each round (:class:`Progress`): the round's start and its
    aggregation here, each client's start, steps and end from the sequential pool (a ``client_pool`` passed in
    reports its clients itself, e.g. through :func:`train_reporting`).
    """
    ctx = context or get_context(spec, paths)
    pool = client_pool or sequential_pool(ctx, should_stop, on_client_done, on_progress)
    selector = make_selector(spec.selection, num_clients=spec.num_clients, per_round=spec.clients_per_round,
                             num_examples=ctx.num_examples, seed=spec.seed, candidates=spec.poc_candidates,
                             epsilon=spec.selection_epsilon)
    state = clone_state(ctx.initial_state)
    records: list[dict] = []
    velocity: State | None = None  # the server optimizer's (server_step), kept across rounds
    start = 1
    if checkpoint_dir is not None and (ck := load_checkpoint(checkpoint_dir)) is not None:
        done, state, sel_state, records = ck
        selector.load_state_dict(sel_state)
        velocity = load_server_velocity(checkpoint_dir)
        start = done + 1
    results = [_from_dict(r) for r in records]
    global_imp: torch.Tensor | None = (
        torch.tensor(results[-1].global_importance) if results else None
    )
    status = "succeeded"
    for rnd in range(start, spec.rounds + 1):
        if should_stop is not None and should_stop():
            status = "cancelled"
            break
        t0 = time.perf_counter()
        if on_progress is not None:
            on_progress(Progress(phase="select", round=rnd, rounds=spec.rounds, clients=spec.clients_per_round))

        def loss_fn(cands: list[int], r: int = rnd, s: State = state) -> dict[int, float]:
            return {c: global_loss(ctx, s, c, r) for c in cands}

        record = selector.select(rnd, loss_fn=loss_fn, global_importance=global_imp)
        tasks = [ClientTask(round=rnd, client=c, global_state=state) for c in record.selected]
        try:
            updates = pool(tasks)
        except Cancelled:
            status = "cancelled"
            break
        updates = sorted(updates, key=lambda u: record.selected.index(u.client))
        if on_progress is not None:
            on_progress(Progress(phase="aggregate", round=rnd, rounds=spec.rounds, client_index=len(updates),
                                 clients=len(updates)))
        agg = aggregate_updates(spec, ctx.layout, state, [u.payload for u in updates],
                                [u.num_examples for u in updates])
        state, velocity = server_step(spec, state, agg.state, velocity)
        global_imp = agg.global_importance
        selector.update([ClientFeedback(client=u.client, round=rnd, loss_global=u.loss_global,
                                        loss_local=u.loss_local, kept=u.kept) for u in updates])
        metrics = evaluate(ctx, state, getattr(pool, "evaluate_parts", None))  # a process pool shares it out
        result = RoundResult(
            round=rnd, metrics=metrics, selection=asdict(record), clients=[u.record() for u in updates],
            global_importance=agg.global_importance.tolist(), agreement=agg.agreement.tolist(),
            head_weights=agg.weights.tolist(),
            bytes_up=sum(u.bytes_up for u in updates), bytes_up_dense=sum(u.bytes_up_dense for u in updates),
            bytes_down=sum(u.bytes_down for u in updates),
            ops=sum(u.ops for u in updates), ops_dense=sum(u.ops_dense for u in updates),
            ops_attention=sum(u.ops_attention for u in updates),
            ops_attention_dense=sum(u.ops_attention_dense for u in updates),
            train_loss=sum(u.train_loss * u.num_examples for u in updates) / max(sum(u.num_examples for u in updates), 1),
            wall_time=time.perf_counter() - t0,
            skipped=sorted({p for u in updates for p in u.skipped}),
        )
        results.append(result)
        records.append(result.to_dict())
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, rnd, state, selector.state_dict(), records, velocity)
        if on_round_end is not None:
            on_round_end(result)
        if stop_after_round is not None and rnd >= stop_after_round and rnd < spec.rounds:
            status = "stopped"
            break
    return RunResult(spec=spec, rounds=results, final_state=state, status=status)


def _from_dict(d: dict[str, Any]) -> RoundResult:
    keys = RoundResult.__dataclass_fields__
    return RoundResult(**{k: d[k] for k in keys if k in d})


def save_adapter(ctx: RunContext, state: State, directory: Path) -> Path:
    """Write ``state`` as a PEFT adapter folder that ``PeftModel.from_pretrained`` loads, naming its base model
    (``fedcore.adapters``: ``load_base(directory)`` rebuilds that base)."""
    from fedcore.adapters import save_described
    from fedcore.client import load_global

    load_global(ctx, state)
    directory.mkdir(parents=True, exist_ok=True)
    save_described(ctx, directory)
    return directory

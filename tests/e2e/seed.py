"""Experiments written straight into the database, in any state and of any size, for the page tests.

Round records have the shape of ``fedcore.simulation.RoundResult.to_dict()`` with made-up,
deterministic numbers (no model runs), so a 200-round, 100-client run costs milliseconds.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.models import Client, Event, Experiment, Round, Study
from fedcore.spec import ExperimentSpec, merged_fields

BERT_BLOCKS = [f"enc.{i}" for i in range(4)]
T5_BLOCKS = [f"enc.{i}" for i in range(2)] + [f"dec.{i}" for i in range(2)] + [f"cross.{i}" for i in range(2)]


def smoke_spec(**overrides: Any) -> dict[str, Any]:
    return ExperimentSpec.model_validate(merged_fields("smoke", overrides)).model_dump(mode="json")


def fake_record(rnd: int, *, num_clients: int, per_round: int, blocks: list[str], heads: int, sparsity: float,
                seed: int = 0) -> dict[str, Any]:
    """One round record with every field the pages read."""
    rng = random.Random(seed * 100_003 + rnd)
    selected = rng.sample(range(num_clients), per_round)
    candidates = sorted(set(selected) | set(rng.sample(range(num_clients), min(num_clients, 2 * per_round))))
    clients = []
    keep = max(1, round((1 - sparsity) * len(blocks) * heads))
    for c in selected:
        imp = [[rng.random() for _ in range(heads)] for _ in blocks]
        order = sorted(((imp[b][h], b, h) for b in range(len(blocks)) for h in range(heads)), reverse=True)
        kept = [[False] * heads for _ in blocks]
        for _, b, h in order[:keep]:
            kept[b][h] = True
        up_dense = 70_000
        clients.append({
            "round": rnd, "client": c, "num_examples": 100, "bytes_up": int(up_dense * (1 - sparsity / 2)),
            "bytes_up_dense": up_dense, "bytes_down": up_dense, "kept": kept, "importance": imp,
            "loss_global": 1.1, "loss_local": 1.0, "train_loss": 1.05, "steps": 4, "ops": 6e8, "ops_dense": 6e8,
            "ops_attention": 3e8, "ops_attention_dense": 3e8, "wall_time": 0.3, "train_time": 0.2, "extra": {},
        })
    weights = [[[1.0 / per_round] * heads for _ in blocks] for _ in selected]
    acc = 0.33 + 0.5 * (1 - math.exp(-rnd / 20)) + 0.01 * rng.random()
    return {
        "round": rnd,
        "metrics": {"loss": 1.1 - 0.4 * (1 - math.exp(-rnd / 20)), "examples": 60.0, "accuracy": acc},
        "selection": {"round": rnd, "strategy": "loss_gap", "candidates": candidates,
                      "scores": {str(c): rng.uniform(-0.01, 0.02) for c in candidates},
                      "selected": selected, "reason": f"{per_round} with the highest loss gap"},
        "clients": clients,
        "global_importance": [[rng.random() for _ in range(heads)] for _ in blocks],
        "agreement": [[rng.uniform(-1, 1) if rng.random() > 0.2 else None for _ in range(heads)] for _ in blocks],
        "head_weights": weights,
        "bytes_up": sum(c["bytes_up"] for c in clients), "bytes_up_dense": sum(c["bytes_up_dense"] for c in clients),
        "bytes_down": sum(c["bytes_down"] for c in clients), "ops": 6e8 * per_round, "ops_dense": 6e8 * per_round,
        "ops_attention": 3e8 * per_round, "ops_attention_dense": 3e8 * per_round, "train_loss": 1.05,
        "wall_time": 1.0 + 0.1 * rng.random(), "finished_at": 1.7e9 + rnd,
    }


def round_row(exp_id: uuid.UUID, rec: dict[str, Any]) -> Round:
    return Round(experiment_id=exp_id, round=rec["round"], accuracy=rec["metrics"]["accuracy"],
                 loss=rec["metrics"]["loss"], train_loss=rec["train_loss"], bytes_up=rec["bytes_up"],
                 bytes_up_dense=rec["bytes_up_dense"], bytes_down=rec["bytes_down"], ops=rec["ops"],
                 ops_dense=rec["ops_dense"], wall_time=rec["wall_time"], record=rec)


def round_event(exp_id: uuid.UUID, rec: dict[str, Any], total: int) -> Event:
    keys = ("bytes_up", "bytes_up_dense", "bytes_down", "ops", "ops_dense", "ops_attention", "ops_attention_dense",
            "train_loss", "wall_time")
    data = {"round": rec["round"], "rounds_total": total, "accuracy": rec["metrics"]["accuracy"],
            "loss": rec["metrics"]["loss"], "metrics": rec["metrics"], "selected": rec["selection"]["selected"],
            **{k: rec[k] for k in keys}}
    return Event(experiment_id=exp_id, type="round", data=data)


def add_experiment(session: Session, *, name: str, status: str, rounds_done: int, rounds_total: int = 4,
                   num_clients: int = 6, per_round: int = 3, blocks: list[str] | None = None, heads: int = 4,
                   sparsity: float = 0.5, error: str | None = None, events: bool = True,
                   tags: list[str] | None = None, note: str = "", spec: dict[str, Any] | None = None) -> Experiment:
    """An experiment in ``status`` with ``rounds_done`` stored rounds, its clients and its event log; ``spec``:
    fields over the smoke preset's."""
    blocks = blocks or BERT_BLOCKS
    now = datetime.now(UTC)
    spec = smoke_spec(**{"num_clients": num_clients, "clients_per_round": per_round, "rounds": rounds_total,
                         "sparsity": sparsity, **(spec or {})})
    exp = Experiment(
        id=uuid.uuid4(), name=name, spec=spec, status=status, tags=tags or [], note=note, rounds_done=rounds_done, rounds_total=rounds_total,
        cancel_requested=status == "cancelled", error=error, created_at=now - timedelta(minutes=5), updated_at=now,
        started_at=None if status == "queued" else now - timedelta(minutes=4),
        finished_at=now if status in ("succeeded", "failed", "cancelled") else None,
        info=None if status == "queued" else {"task": "classification", "label_names": ["alpha", "beta", "gamma"],
                                                "blocks": blocks, "heads_per_block": heads, "train_examples": 600,
                                                "device": "cpu"},
    )
    session.add(exp)
    session.flush()
    if events:
        session.add(Event(experiment_id=exp.id, type="status",
                          data={"status": "queued", "rounds_done": 0, "rounds_total": rounds_total, "error": None}))
    if status != "queued":
        session.add_all(Client(experiment_id=exp.id, client_index=i, examples=100,
                               label_histogram=[30 + i, 40 - i, 30]) for i in range(num_clients))
        if events:
            session.add(Event(experiment_id=exp.id, type="status", data={
                "status": "running", "rounds_done": 0, "rounds_total": rounds_total, "error": None,
                "runner": "test:1"}))
    for rnd in range(1, rounds_done + 1):
        rec = fake_record(rnd, num_clients=num_clients, per_round=per_round, blocks=blocks, heads=heads,
                          sparsity=sparsity)
        session.add(round_row(exp.id, rec))
        if events:
            session.add(round_event(exp.id, rec, rounds_total))
    if events and status in ("succeeded", "failed", "cancelled"):
        session.add(Event(experiment_id=exp.id, type="status", data={
            "status": status, "rounds_done": rounds_done, "rounds_total": rounds_total, "error": error}))
    session.flush()
    return exp


def add_study(session: Session, *, name: str, runs: dict[tuple[str, int], Experiment], baseline: str) -> Study:
    """A study row over experiments already added: each ``(variant, seed)`` run gets its ``study_id``."""
    variants = list(dict.fromkeys(v for v, _ in runs))
    study = Study(id=uuid.uuid4(), name=name, definition={
        "name": name, "base": {"preset": "smoke", "overrides": {}}, "variants": {v: {} for v in variants},
        "seeds": sorted({s for _, s in runs}), "baseline": baseline, "targets": []})
    session.add(study)
    session.flush()
    for (variant, seed), exp in runs.items():
        exp.study_id, exp.variant, exp.seed = study.id, variant, seed
    session.flush()
    return study

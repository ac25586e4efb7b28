"""Workload W1 (issue 23) outside fedheads: a bare transformers + peft loop and a Flower simulation.

Both are written directly on transformers, peft and torch (and, for Flower, on Flower's
Message API: ``ClientApp``, ``ServerApp``, ``flwr.serverapp.strategy.FedAvg`` and
``flwr.simulation.run_simulation`` with the Ray backend). Only the rows and the IID split
come from fedcore (so every implementation trains the same 20 clients' data). W1:

    all-MiniLM-L6-v2 + LoRA r=8, alpha 16 on query/key/value/attention-output, classifier trained;
    the first 20,000 SNLI train rows over 20 IID clients; 4 clients a round at random;
    10 AdamW steps (lr 1e-3, weight decay 0.01) of batch 16 at 64 tokens; dense FedAvg weighted by
    examples; the global model evaluated on the first 1,000 test pairs at batch 64 after every round.

Run as a child of ``bench/peer_flower.py``, which times the process from start to exit:

    python bench/peers/w1.py bare --threads 2 [--rounds 3] [--train 20000] [--eval 1000] [--steps 10]
    python bench/peers/w1.py bare --device cuda [...]              # bench/peer_flower_gpu.py
    python bench/peers/w1.py flower --actors 2 --threads 1 [...]   # needs flwr[simulation]

Each prints ``W1EVENT {json}`` lines: ``start`` when the federated loop begins (imports, data and
the server's model are loaded) and ``round`` after each round's evaluation (wall clock ``t`` and
the accuracy), which the driver turns into per-round times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NUM_CLIENTS, PER_ROUND, BATCH, MAX_LEN, EVAL_BATCH, LR, WD = 20, 4, 16, 64, 64, 1e-3, 0.01
TARGETS = ["query", "key", "value", "attention.output.dense"]


def emit(event: str, **kw: Any) -> None:
    print("W1EVENT " + json.dumps({"event": event, "t": time.time(), **kw}), flush=True)


def load_rows(train: int, test: int) -> tuple[list[Any], list[Any], list[list[int]]]:
    """The first ``train``/``test`` SNLI rows and the IID split over 20 clients, as fedheads builds them."""
    from fedcore.data import load_dataset, partition

    data = load_dataset("snli", max_train=train, max_test=test, seed=0)
    labels = [e.label for e in data.train]
    return list(data.train), list(data.test[:test]), partition(labels, len(data.train), NUM_CLIENTS, "iid", seed=0)


def build_model() -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fedcore.assets import minilm_model_dir

    path = str(minilm_model_dir())
    torch.manual_seed(0)
    # eager attention, as fedheads loads it (its confidence importance reads the attention maps)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, attn_implementation="eager")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS,
                                             modules_to_save=["classifier"]))
    return model, AutoTokenizer.from_pretrained(path)


DEVICE = "cpu"  # the bare loop's --device; Flower's actors train on the CPU


def encode(tok: Any, rows: list[Any]) -> dict[str, Any]:
    enc = tok([e.text for e in rows], [e.text_pair for e in rows], max_length=MAX_LEN, truncation=True,
              padding="longest", return_tensors="pt")
    return {k: v.to(DEVICE) for k, v in enc.items()}


def labels_of(rows: list[Any]) -> Any:
    import torch

    return torch.tensor([e.label for e in rows], device=DEVICE)


def lora_state(model: Any) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def train_local(model: Any, tok: Any, rows: list[Any], indices: list[int], steps: int, seed: int) -> float:
    """``steps`` AdamW steps on the client's rows in a seeded order; returns the mean loss."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=WD)
    model.train()
    order: list[int] = []
    losses = []
    for _ in range(steps):
        if len(order) < BATCH:
            order += [indices[i] for i in rng.permutation(len(indices))]
        chosen, order = order[:BATCH], order[BATCH:]
        batch = [rows[i] for i in chosen]
        out = model(**encode(tok, batch), labels=labels_of(batch))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    return sum(losses) / len(losses)


def evaluate(model: Any, tok: Any, test: list[Any]) -> float:
    import torch

    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(test), EVAL_BATCH):
            batch = test[i : i + EVAL_BATCH]
            pred = model(**encode(tok, batch)).logits.argmax(-1)
            right += int((pred == labels_of(batch)).sum())
    return right / len(test)


def fedavg(states: list[dict[str, Any]], weights: list[int]) -> dict[str, Any]:
    total = float(sum(weights))
    return {k: sum(s[k] * (w / total) for s, w in zip(states, weights, strict=True)) for k in states[0]}


# --- the bare loop ------------------------------------------------------------------------


def run_bare(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from peft import set_peft_model_state_dict

    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    rows, test, clients = load_rows(args.train, args.eval)
    model, tok = build_model()
    model.to(DEVICE)
    state = lora_state(model)
    emit("start")
    for rnd in range(1, args.rounds + 1):
        chosen = np.random.default_rng([0, rnd]).choice(NUM_CLIENTS, PER_ROUND, replace=False).tolist()
        states, weights = [], []
        for c in chosen:
            set_peft_model_state_dict(model, state)
            train_local(model, tok, rows, clients[c], args.steps, seed=rnd * 1000 + c)
            states.append(lora_state(model))
            weights.append(len(clients[c]))
        state = fedavg(states, weights)
        set_peft_model_state_dict(model, state)
        emit("round", round=rnd, accuracy=evaluate(model, tok, test))


# --- Flower -------------------------------------------------------------------------------

_ACTOR: dict[str, Any] = {}  # per Ray actor process: the model, tokenizer and rows, built once


def _actor_setup(threads: int, train: int, test: int) -> dict[str, Any]:
    import torch

    if not _ACTOR:
        torch.set_num_threads(threads)
        rows, _, clients = load_rows(train, test)
        model, tok = build_model()
        _ACTOR.update(rows=rows, clients=clients, model=model, tok=tok)
    return _ACTOR


def flower_apps(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ClientApp (local training) and ServerApp (FedAvg over 4 of 20 nodes, central evaluation)."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from peft import set_peft_model_state_dict

    threads, train_n, eval_n, steps, rounds = args.threads, args.train, args.eval, args.steps, args.rounds
    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        a = _actor_setup(threads, train_n, eval_n)
        cid = int(context.node_config["partition-id"])
        rnd = int(msg.content["config"]["server-round"])
        set_peft_model_state_dict(a["model"], msg.content["arrays"].to_torch_state_dict())
        loss = train_local(a["model"], a["tok"], a["rows"], a["clients"][cid], steps, seed=rnd * 1000 + cid)
        reply = RecordDict({"arrays": ArrayRecord(lora_state(a["model"])),
                            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(a["clients"][cid])})})
        return Message(content=reply, reply_to=msg)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        import torch

        torch.set_num_threads(args.server_threads)
        _, test, _ = load_rows(train_n, eval_n)
        model, tok = build_model()

        def central(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if server_round == 0:  # Flower also evaluates the initial model; W1 does not
                return None
            set_peft_model_state_dict(model, arrays.to_torch_state_dict())
            acc = evaluate(model, tok, test)
            emit("round", round=server_round, accuracy=acc)
            return MetricRecord({"accuracy": acc})

        strategy = FedAvg(fraction_train=PER_ROUND / NUM_CLIENTS, fraction_evaluate=0.0,
                          min_train_nodes=PER_ROUND, min_available_nodes=NUM_CLIENTS)
        emit("start")
        strategy.start(grid=grid, initial_arrays=ArrayRecord(lora_state(model)), num_rounds=rounds,
                       train_config=ConfigRecord({}), evaluate_fn=central)

    return client_app, server_app


def run_flower(args: argparse.Namespace) -> None:
    from flwr.simulation import run_simulation

    client_app, server_app = flower_apps(args)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=NUM_CLIENTS, backend_name="ray",
                   backend_config={"client_resources": {"num_cpus": args.cpus_per_actor, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": args.actors * args.cpus_per_actor}})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("impl", choices=["bare", "flower"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (bare) or per Flower actor")
    ap.add_argument("--actors", type=int, default=2, help="Flower: concurrent client actors")
    ap.add_argument("--server-threads", type=int, default=2, help="Flower: torch threads of the central evaluation")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--eval", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="bare: the torch device to train and evaluate on (cpu, cuda)")
    args = ap.parse_args()
    args.cpus_per_actor = 1
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    (run_bare if args.impl == "bare" else run_flower)(args)
    return 0


if __name__ == "__main__":
    # run this file's code as the importable module ``w1`` so Ray's actors import it by name (a function of
    # ``__main__`` would be pickled by value with a fresh, empty _ACTOR every time, reloading the model)
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    import w1

    sys.exit(w1.main())

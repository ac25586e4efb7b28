"""The named presets: starting points for a run, each a partial spec (fields not named keep their
defaults in :class:`fedcore.spec.ExperimentSpec`). ``fedheads presets`` lists them; :func:`fedcore.spec.preset`
builds one with overrides. A key starting with ``_`` is about the preset, not a spec field.
"""

from __future__ import annotations

from typing import Any

# the benchmark settings shared by the paper-* presets (bench/paper_table.py starts from them)
_PAPER: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": "snli",
    "partition": "dirichlet",
    "dirichlet_alpha": 5.0,  # alpha 1.0: dense FedAvg never learned (bench/results/paper_dense_tuning.md)
    "num_clients": 20,
    "clients_per_round": 4,
    "rounds": 15,  # 10: dense averaged 63.5% over two seeds, 15: 69.4% (bench/results/paper_dense_tuning.md)
    "local_steps": 15,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "max_seq_len": 64,
    "eval_size": 500,
    # 'cls' (the untrained [CLS] pooler) sat at chance for 4-8 rounds: bench/results/paper_dense_tuning.md
    "pooling": "mean",
}

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "_about": "tiny random BERT on synthetic data; finishes in seconds (tests, CI, first look)",
        "model": "tiny-bert",
        "dataset": "synthetic",
        "num_clients": 6,
        "clients_per_round": 3,
        "rounds": 4,
        "local_steps": 20,
        "batch_size": 16,
        "learning_rate": 5e-3,
        "max_seq_len": 32,
        "eval_size": 200,
        "importance_samples": 32,
        "sparsity": 0.5,
        "aggregation": "head_weighted",
        "selection": "loss_gap",
        "num_threads": 1,
    },
    "demo": {
        "_about": "MiniLM-L6 + SNLI, IID clients, 50% heads pruned (mask); about 4 minutes on 2 CPU cores",
        "model": "minilm-l6",
        "dataset": "snli",
        "num_clients": 10,
        "clients_per_round": 2,
        "rounds": 5,
        "local_steps": 30,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "max_seq_len": 64,
        "eval_size": 500,
        "importance_samples": 32,
        "pooling": "mean",
        "sparsity": 0.5,
        "prune_mode": "mask",
        "aggregation": "head_weighted",
        "selection": "loss_gap",
    },
    "paper-dense": {
        "_about": "benchmark baseline: dense LoRA FedAvg, MiniLM-L6 + SNLI, Dirichlet label skew",
        **_PAPER,
        "sparsity": 0.0,
        "aggregation": "fedavg",
        "selection": "random",
    },
    "paper-sampled": {
        "_about": "90% of the heads' LoRA slices left out of each upload (1.8x less uplink), the heads sampled by "
                  "importance, heads-random LoRA init: within 2 points of paper-dense over 4 seeds at 15 and 25 "
                  "rounds; saves no training compute (bench/results/paper_table.md)",
        **_PAPER,
        "sparsity": 0.9,
        "prune_mode": "mask",
        "head_choice": "sampled",
        "lora_init": "heads_random",
        "aggregation": "head_weighted",
        "selection": "loss_gap",
    },
    "paper-pruned": {
        "_about": "benchmark: 90% heads pruned, head-weighted aggregation, loss-gap selection",
        **_PAPER,
        "sparsity": 0.9,
        "prune_mode": "mask",
        "aggregation": "head_weighted",
        "selection": "loss_gap",
    },
}

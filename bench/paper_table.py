# Over ~400 lines: one table of many configurations (runs, verdicts, table, plot) read top to bottom as one experiment.
"""The paper's headline on the offline pair: MiniLM-L6 + SNLI with non-IID clients.

In one run: dense LoRA FedAvg; head pruning at s = 0.5, 0.7, 0.9 with head-weighted
aggregation and loss-gap selection, in `mask` and `drop` modes; ablations at
s = 0.9 (FedAvg aggregation instead of head-weighted; random selection instead of
loss-gap). Every configuration runs for each seed; the table gives final test
accuracy (mean and spread over seeds), the change vs dense, uplink bytes per
round, the communication advantage (uplink, and both directions), the OPs
reduction (whole step, and attention + LoRA), client training time per round
and wall time per round with speed-ups vs dense, and per-round accuracy of
every run (also plotted: bench/results/paper_table.svg). ``--extra`` adds the
variants tried to close the gaps at s = 0.9.

The configurations are defined once, as studies (docs/studies.md): the base
spec and the rows in bench/studies/paper_table.yaml, the ``--extra`` rows in
bench/studies/paper_table-extra.yaml; ``fedheads study run`` runs the same
files. This script still runs and sums up the runs itself (its saved runs hold
per-round accuracy, not the round records a study's table is computed from).

    python bench/paper_table.py             # full: 2 seeds x 9 configurations (a few hours on 2 cores)
    python bench/paper_table.py --quick     # smoke check: 1 seed, dense / mask 0.9 / drop 0.9, 2 tiny rounds
    python bench/paper_table.py --resume    # keep the runs saved so far, do the rest
    python bench/paper_table.py --extra --resume  # add the variants tried at s = 0.9 (paper_table-extra.yaml)
    python bench/paper_table.py --report    # the table of the runs saved so far, running nothing
    python bench/paper_table.py --name paper_table-r25 --rounds 25 --resume  # the longer-runs table (about 2.3 hours)
    python bench/paper_table.py --name paper_table-r25 --rounds 25 --seeds 4 \
        --study-yaml bench/studies/paper_table-r25.yaml  # that table as a study file, running nothing
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

if TYPE_CHECKING:
    from fedcore.study import StudySpec

STUDIES = ROOT / "bench" / "studies"


def _study(path: Path) -> StudySpec:
    from fedcore.study import StudySpec, read_study_file

    return StudySpec.model_validate(read_study_file(path))


def _load() -> tuple[StudySpec, StudySpec]:
    """The paper table's study (bench/studies/paper_table.yaml) and the --extra rows' (paper_table-extra.yaml),
    which must have the same base and baseline and the same overrides for any row both name."""
    main, extra = _study(STUDIES / "paper_table.yaml"), _study(STUDIES / "paper_table-extra.yaml")
    differ = [what for what, same in (("base", main.base == extra.base), ("baseline", main.baseline == extra.baseline))
              if not same]
    differ += [f"variant {n!r}" for n, o in extra.variants.items() if n in main.variants and main.variants[n] != o]
    if differ:
        raise SystemExit(f"{STUDIES}/paper_table-extra.yaml differs from paper_table.yaml in: {', '.join(differ)}")
    return main, extra


# The rows of the table and their overrides, in the study files' order: the study files are the one definition
STUDY, EXTRA_STUDY = _load()
BASELINE = STUDY.baseline
CONFIGS: list[tuple[str, dict[str, Any]]] = list(STUDY.variants.items())
# --extra: variants tried to close the gaps at s = 0.9 (not part of the table)
EXTRA: list[tuple[str, dict[str, Any]]] = [(n, o) for n, o in EXTRA_STUDY.variants.items() if n not in STUDY.variants]
# a pruned variant whose change also applies to dense is judged against the stronger of dense and the dense row
# with that change: the heads-random initialisation
HR_DENSE = next((n for n, o in EXTRA if not o.get("sparsity") and o.get("lora_init") == "heads_random"), "")
DENSE_COUNTERPART = {name: HR_DENSE for name, o in EXTRA
                     if o.get("lora_init") == "heads_random" and o.get("sparsity", 0) > 0}
QUICK = {BASELINE, "mask s=0.9", "drop s=0.9"}


def run_one(name: str, overrides: dict[str, Any], base: dict[str, Any], seed: int) -> dict[str, Any]:
    from fedcore.context import build_context
    from fedcore.simulation import run_simulation, summarize
    from fedcore.spec import preset

    spec = preset(STUDY.base.preset, **{**base, **overrides, "seed": seed})
    t0 = time.perf_counter()

    def progress(r: Any) -> None:  # a run takes minutes: say where it is after every round
        acc = r.metrics.get("accuracy")
        print(f"    {name} seed {seed}: round {r.round}/{spec.rounds}, accuracy "
              f"{'-' if acc is None else f'{acc:.3f}'}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    run = run_simulation(spec, context=build_context(spec), on_round_end=progress)
    rounds = [r.to_dict() for r in run.rounds]
    s = summarize(rounds)
    train = [sum(c["train_time"] for c in r["clients"]) for r in rounds]
    from _report import machine

    return {
        "name": name, "seed": seed, "machine": machine(), "spec": spec.model_dump(mode="json"),
        "accuracy": [r["metrics"]["accuracy"] for r in rounds],
        "final_accuracy": s["final_accuracy"], "uplink_per_round": s["bytes_up"] / len(rounds),
        "uplink_advantage": s["uplink_advantage"], "total_advantage": s["total_advantage"],
        "ops_reduction": s["ops_reduction"], "ops_attention_reduction": s["ops_attention_reduction"],
        "compute_sparsity": 1 - statistics.mean(  # share of heads removed from local training, all clients and rounds
            statistics.mean(v for row in c.get("compute", [[1]]) for v in row) for r in rounds for c in r["clients"]),
        "train_time_per_round": statistics.mean(train), "wall_per_round": s["wall_time"] / len(rounds),
        "seconds": time.perf_counter() - t0,
    }


def study_of(name: str, base: dict[str, Any], configs: list[tuple[str, dict[str, Any]]], seeds: int) -> str:
    """The study of these rows as YAML (``--study-yaml``): the baseline first if it is not among them, the study
    files' targets cut to the rows chosen (a target left with none is dropped)."""
    from fedcore.study import StudySpec, study_yaml

    variants = dict(configs) if BASELINE in dict(configs) else {BASELINE: STUDY.variants[BASELINE], **dict(configs)}
    targets = []
    for t in [*STUDY.targets, *EXTRA_STUDY.targets]:
        if t.variants is None:
            targets.append(t.model_dump(exclude_none=True))
        elif chosen := [v for v in t.variants if v in variants]:
            targets.append(t.model_copy(update={"variants": chosen}).model_dump(exclude_none=True))
    study = StudySpec.model_validate({"name": name, "base": {"preset": STUDY.base.preset, "overrides": base},
                                      "variants": variants, "seeds": list(range(seeds)), "baseline": BASELINE,
                                      "targets": targets})
    cmd = " ".join(a if a and all(c.isalnum() or c in "-_.=/" for c in a) else repr(a) for a in sys.argv[1:])
    return ("# Generated from bench/studies/paper_table.yaml (and paper_table-extra.yaml): edit those, not this file,\n"
            f"# and run again:\n#   python bench/paper_table.py {cmd}\n" + study_yaml(study))


def side_by_side(base: dict[str, Any], reps: int, extra: bool = False,
                 only: list[str] | None = None) -> dict[str, float]:
    """Median local-training seconds of one client round per configuration, measured interleaved.

    The runs of the table are minutes apart on a shared machine, so their times drift with
    the load; here dense and each pruned configuration train the same client on the same
    round in turn (dense, mask 0.9, drop 0.5, 0.7, 0.9, dense, ...), ``reps`` times.
    """
    from fedcore.client import ClientTask, train_client
    from fedcore.context import build_context
    from fedcore.spec import preset

    timed = [(BASELINE, {"sparsity": 0.0}), ("mask s=0.9", {"sparsity": 0.9, "prune_mode": "mask"}),
             *[(f"drop s={s}", {"sparsity": s, "prune_mode": "drop"}) for s in (0.5, 0.7, 0.9)]]
    if extra:
        timed += [(n, o) for n, o in EXTRA if o.get("prune_mode") == "drop" or o.get("train_top_blocks")]
    if only:  # dense is always timed: every speed-up is against it
        timed = [(n, o) for n, o in timed if n == BASELINE or n in only]
    ctxs = {name: build_context(preset(STUDY.base.preset, **{**base, **ov, "seed": 0})) for name, ov in timed}
    times: dict[str, list[float]] = {name: [] for name, _ in timed}
    for rep in range(reps + 1):
        for name, ctx in ctxs.items():
            rnd = 1 + max(ctx.spec.compute_ramp_rounds, ctx.spec.train_top_blocks_after)  # a ramped row at its target
            upd = train_client(ctx, ClientTask(round=rnd, client=rep % 4, global_state=ctx.initial_state))
            if rep:  # the first pass warms up allocators and caches
                times[name].append(upd.train_time)
    return {name: statistics.median(t) for name, t in times.items()}


def _compute_sparsity(run: dict[str, Any]) -> float:
    """Share of heads removed from local training; runs saved before it was recorded: from the spec."""
    if "compute_sparsity" in run:
        return float(run["compute_sparsity"])
    spec = run.get("spec", {})
    return float(spec.get("sparsity", 0.0)) if spec.get("prune_mode") == "drop" else 0.0


def _last3(runs: list[dict[str, Any]]) -> float:
    """Mean over runs of each run's mean accuracy over its last three rounds (fedcore/study_aggregate.py)."""
    from fedcore.study_aggregate import last3

    return statistics.mean(last3(r["accuracy"]) or 0.0 for r in runs)


def _pm(values: list[float], scale: float = 100.0) -> str:
    """Mean ± half-range over seeds, as a study states it (fedcore.study_aggregate.Spread)."""
    from fedcore.study_aggregate import Spread

    s = Spread.of(values)
    m = (s.mean or 0.0) * scale
    if s.n < 2:
        return f"{m:.1f}"
    return f"{m:.1f} ± {(s.half_range or 0.0) * scale:.1f}"


def plot(results: list[dict[str, Any]]) -> str:
    """Accuracy per round of every run as an SVG: a colour per configuration, drop mode dashed."""
    from _plot import Group, Reference, line_chart

    names = list(dict.fromkeys(r["name"] for r in results))
    groups = [Group(n, [[a * 100 for a in r["accuracy"]] for r in results if r["name"] == n],
                    dash=1 if n.startswith("drop") else 2 if "," in n else 0) for n in names]
    values = [a for g in groups for run in g.runs for a in run]
    return line_chart(groups, title="SNLI test accuracy per round (MiniLM-L6, non-IID clients)", x_label="round",
                      y_label="test accuracy %", y_range=(min(25.0, min(values)), max(80.0, max(values))),
                      references=[Reference(65.0, "65%: the bar for the dense baseline"),
                                  Reference(100 / 3, "uniform chance")])


def table(results: list[dict[str, Any]], settings: str, timing: dict[str, float] | None = None,
          plot_name: str = "", timed_seeds: int | None = None, timing_machine: str = "") -> str:
    """The markdown table. Time columns average only the runs of seeds below ``timed_seeds`` (the main
    pass, run back to back); accuracy and the other columns average every run of a row."""
    names = list(dict.fromkeys(r["name"] for r in results))
    by = {n: [r for r in results if r["name"] == n] for n in names}

    def timed(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rs if timed_seeds is None or r["seed"] < timed_seeds] or rs

    dense = by.get(BASELINE)
    d_acc = statistics.mean(r["final_accuracy"] for r in dense) if dense else None
    d_train = statistics.mean(r["train_time_per_round"] for r in timed(dense)) if dense else None
    d_wall = statistics.mean(r["wall_per_round"] for r in timed(dense)) if dense else None
    lines = [
        "| configuration | seeds | final accuracy % (mean ± half-range) | vs dense (points) | last-3-rounds accuracy % | "
        "uplink MB / round | "
        "uplink advantage | compute sparsity | both directions | OPs reduction whole step | OPs reduction attention+LoRA | "
        "client training s / round | training speed-up | wall s / round | wall speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        rs = by[n]
        acc = [r["final_accuracy"] for r in rs]

        def mean(k: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.mean(r[k] for r in rs)

        delta = f"{(statistics.mean(acc) - d_acc) * 100:+.1f}" if d_acc is not None else "-"
        tr, wall = mean("train_time_per_round", timed(rs)), mean("wall_per_round", timed(rs))
        lines.append(
            f"| {n} | {len(rs)} | {_pm(acc)} | {delta} | {_pm([_last3([r]) for r in rs])} | "
            f"{mean('uplink_per_round') / 1e6:.3f} | {mean('uplink_advantage'):.2f}x | "
            f"{statistics.mean(_compute_sparsity(r) for r in rs):.2f} | "
            f"{mean('total_advantage'):.2f}x | {mean('ops_reduction'):.2f}x | {mean('ops_attention_reduction'):.2f}x | "
            f"{tr:.1f} | {d_train / tr if d_train else float('nan'):.2f}x | {wall:.1f} | "
            f"{d_wall / wall if d_wall else float('nan'):.2f}x |")
    verdicts = []
    pruned_rows = [n for n, o in EXTRA if o.get("sparsity", 0) > 0]
    for row in ("mask s=0.9", "drop s=0.9", *pruned_rows):  # the method and its variants, not the ablations
        drop = row.startswith("drop") or bool(dict(EXTRA).get(row, {}).get("train_top_blocks"))  # saves compute
        rs = by.get(row)
        if not rs or d_acc is None:
            continue
        ref_runs, ref_name = dense or [], ""
        other = by.get(DENSE_COUNTERPART.get(row, ""))
        if other and statistics.mean(r["final_accuracy"] for r in other) > d_acc:  # never a weaker baseline
            ref_runs, ref_name = other, f" {DENSE_COUNTERPART[row]}"
        ref = statistics.mean(r["final_accuracy"] for r in ref_runs)
        gap = (ref - statistics.mean(r["final_accuracy"] for r in rs)) * 100
        gap3 = (_last3(ref_runs) - _last3(rs)) * 100
        adv = statistics.mean(r["uplink_advantage"] for r in rs)
        if d_acc < 0.65:  # near chance every method "matches" dense: no verdict
            acc_verdict = f"not judged, the dense baseline is under 65% ({gap:.1f} points below it)"
        else:
            acc_verdict = (f"{'met' if gap <= 2.0 else 'NOT met'} ({gap:.1f} points below{ref_name}; {len(rs)} "
                           f"seed(s) against {len(ref_runs)}); last-3-rounds accuracy within 2.0 points: "
                           f"{'met' if gap3 <= 2.0 else 'NOT met'} ({gap3:.1f} points below)")
        line = (f"- {row}: accuracy within 2.0 points of dense: {acc_verdict}; uplink advantage >= 1.8x: "
                f"{'met' if adv >= 1.8 else 'NOT met'} ({adv:.2f}x)")
        if drop and timing and row in timing:
            sp = timing[BASELINE] / timing[row]
            line += (f"; client training >= 1.3x faster: {'met' if sp >= 1.3 else 'NOT met'} ({sp:.2f}x, "
                     "side-by-side timing below)")
        elif drop and d_train:
            sp = d_train / statistics.mean(r["train_time_per_round"] for r in rs)
            line += f"; client training >= 1.3x faster: {'met' if sp >= 1.3 else 'NOT met'} ({sp:.2f}x)"
        verdicts.append(line)
    dense_ok = ""
    if dense and d_acc is not None:
        r3 = statistics.mean(r["accuracy"][min(2, len(r["accuracy"]) - 1)] for r in dense)
        dense_ok = (f"- dense baseline >= 74%: {'met' if d_acc >= 0.74 else 'NOT met'} ({d_acc * 100:.1f}%); "
                    f"leaves chance by round 3 (>= 40%; the majority class of the evaluation pairs is under 36%): "
                    f"{'met' if r3 >= 0.40 else 'NOT met'} ({r3 * 100:.1f}% at round 3)")
    plotted = f" (plotted in [{plot_name}]({plot_name}))" if plot_name else ""
    per_round = ["", f"Accuracy per round (%), each run{plotted}:", "",
                 "| configuration | seed | " + " | ".join(f"r{i + 1}" for i in range(len(results[0]["accuracy"])))
                 + " |", "|---|---:|" + "---:|" * len(results[0]["accuracy"])]
    for r in results:
        per_round.append(f"| {r['name']} | {r['seed']} | " + " | ".join(f"{a * 100:.1f}" for a in r["accuracy"]) + " |")
    side = []
    if timing:
        side = ["", "Local training of one client round, measured side by side: the configurations take "
                "turns on the same client and round (a row with a compute ramp: the first round past the ramp, "
                "its target compute sparsity; its run trains denser rounds before that, which its OPs columns "
                "count), median of the repetitions"
                + (f" (measured on {timing_machine})" if timing_machine else "") + ":", "",
                "| configuration | training s | speed-up vs dense |", "|---|---:|---:|"]
        side += [f"| {n} | {t:.2f} | {timing[BASELINE] / t:.2f}x |" for n, t in timing.items()]
    where: dict[str, list[str]] = {}  # machine -> rows run there (runs saved by older versions lack it)
    for r in results:
        rows = where.setdefault(r.get("machine", "not recorded"), [])
        if r["name"] not in rows:
            rows.append(r["name"])
    machines = []
    if len(where) > 1:
        machines = ["", "The runs of this table ran on more than one machine; compare time columns only between rows "
                    "of one machine: " + "; ".join(f"{m}: " + ", ".join(f'"{n}"' for n in rows) for m, rows in where.items())
                    + "."]
    notes = [
        *side, *machines,
        "", "Settings: " + settings, "",
        "Targets at s = 0.9:", dense_ok, *verdicts, "",
        "Definitions. Last-3-rounds accuracy: the mean of each run's last three per-round accuracies (then "
        "mean ± half-range over seeds), less sensitive than the final round to the round-to-round swings of "
        "short non-IID runs. Uplink advantage: dense-counterfactual upload bytes / bytes actually uploaded (safetensors "
        "payloads, headers included). Compute sparsity: the share of heads removed from local training (forward and "
        "backward), over every client and round; 'mask' mode trains the full forward (0), plain 'drop' mode removes "
        "every head it does not upload. Both directions adds the download of the global LoRA state to each side. "
        "OPs reduction, whole step: analytic FLOPs of local training (every matrix product of forward + backward, "
        "FlopCounterMode's convention), dense / pruned; attention+LoRA: only the q/k/v/o projections with their "
        "LoRA and the two attention products. In mask mode the compute is dense, so both are 1.00x. Client "
        "training s / round: the summed local-training time of the round's clients; wall s / round includes "
        "importance, evaluation and aggregation. The runs are minutes apart on a shared machine, so their time "
        "columns drift with its load; the side-by-side table is the one to compare speeds with."
        + (f" The time columns average seeds 0 to {timed_seeds - 1} only (the main pass); further seeds ran later, "
           "under other load." if timed_seeds and any(r["seed"] >= timed_seeds for r in results) else ""),
    ]
    return "\n".join(lines + per_round + notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from fedcore.spec import preset

    d, b = preset(STUDY.base.preset), STUDY.base.overrides  # the defaults: the study's base over its preset
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=2, help="seeds 0 to SEEDS - 1 of every row (the study files: 0 to 3)")
    ap.add_argument("--rounds", type=int, default=b.get("rounds", d.rounds))
    ap.add_argument("--clients", type=int, default=b.get("num_clients", d.num_clients))
    ap.add_argument("--per-round", type=int, default=b.get("clients_per_round", d.clients_per_round))
    ap.add_argument("--steps", type=int, default=b.get("local_steps", d.local_steps))
    ap.add_argument("--alpha", type=float, default=b.get("dirichlet_alpha", d.dirichlet_alpha),
                    help="Dirichlet label-skew concentration")
    ap.add_argument("--lr", type=float, default=b.get("learning_rate", d.learning_rate))
    ap.add_argument("--eval-size", type=int, default=b.get("eval_size", d.eval_size))
    ap.add_argument("--pooling", choices=["cls", "mean"], default=b.get("pooling", d.pooling),
                    help="classifier input: the [CLS] pooler or the mean of the token states (the tables before "
                         "2026-12-03 used cls; runs saved with another pooling are not resumed)")
    ap.add_argument("--only", nargs="*", help="run only these configuration names")
    ap.add_argument("--extra", action="store_true",
                    help="also the variants tried to close the gaps at s = 0.9 (the rows of "
                         "bench/studies/paper_table-extra.yaml)")
    ap.add_argument("--timing-reps", type=int, default=5, help="repetitions of the side-by-side timing (0: skip)")
    ap.add_argument("--timing", action="store_true", help="with --report: measure the side-by-side timing now")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: the table of the runs saved so far in the partial file (says which are missing)")
    ap.add_argument("--name", default="paper_table",
                    help="results file stem under bench/results/ (e.g. paper_table-r25 for a longer-runs table kept "
                         "beside the main one)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs already saved in bench/results/NAME[-quick].partial.json "
                         "(written after every run), or else in the committed NAME[-quick].json, and do only the missing ones")
    ap.add_argument("--study-yaml", metavar="FILE",
                    help="run nothing: write the study these flags describe as YAML that `fedheads study run` and "
                         "POST /api/v1/studies accept ('-': standard output): the base with the flags applied, the "
                         "rows chosen (--extra, --only, --quick; the baseline always), seeds 0 to SEEDS - 1, the "
                         "study files' targets for those rows, named NAME[-quick]")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds, args.per_round, args.steps, args.eval_size = 1, 2, 2, 3, 100
    # the study's base overrides (in its order: the runs save this dict), the flags' values in place of its own
    base = {**b, "dirichlet_alpha": args.alpha, "num_clients": args.clients, "clients_per_round": args.per_round,
            "rounds": args.rounds, "local_steps": args.steps, "learning_rate": args.lr, "eval_size": args.eval_size,
            "pooling": args.pooling}
    every = CONFIGS + (EXTRA if args.extra else [])
    configs = [(n, o) for n, o in every if (not args.quick or n in QUICK) and (not args.only or n in args.only)]
    stem = f"{args.name}-quick" if args.quick else args.name
    if args.study_yaml:
        text = study_of(stem, base, configs, args.seeds)
        if args.study_yaml == "-":
            sys.stdout.write(text)
        else:
            Path(args.study_yaml).write_text(text, encoding="utf-8")
        return 0
    from _report import RESULTS, machine, save

    partial = RESULTS / f"{stem}.partial.json"
    saved: list[dict[str, Any]] = []
    committed = RESULTS / f"{stem}.json"  # the last table's runs
    source = partial if partial.exists() else committed
    if (args.resume or args.report) and source.exists():
        # runs saved before the pooling option existed used the [CLS] pooler
        saved = [r for r in json.loads(source.read_text()) if {"pooling": "cls", **r.get("base", {})} == base]
        print(f"resuming: {len(saved)} run(s) already saved in {source}", file=sys.stderr)
    done = {(r["name"], r["seed"]): r for r in saved}
    results = []
    # seed 0 of every configuration first (a complete one-seed table), then the headline rows' other seeds
    first = (BASELINE, "mask s=0.9", "drop s=0.9")
    later = sorted(configs, key=lambda c: (c[0] not in first, first.index(c[0]) if c[0] in first else 0))
    todo = [(seed, name, ov) for seed in range(args.seeds) for name, ov in (configs if seed == 0 else later)]
    missing = []
    for i, (seed, name, ov) in enumerate(todo, 1):
        if (name, seed) in done:
            results.append(done[(name, seed)])
            continue
        if args.report:
            missing.append(f"{name} seed {seed}")
            continue
        r = {**run_one(name, ov, base, seed), "base": base}
        results.append(r)
        saved.append(r)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(saved, indent=1))
        print(f"  [{i}/{len(todo)}] {name} seed {seed}: acc {r['final_accuracy']:.3f} in {r['seconds']:.0f} s",
              file=sys.stderr)
    # runs of more seeds than asked (e.g. `--only "dense FedAvg" "mask s=0.9" --seeds 4 --resume`) stay in the table
    names = [n for n, _ in configs]
    results += sorted((r for r in saved if r["name"] in names and r["seed"] >= args.seeds),
                      key=lambda r: (r["seed"], names.index(r["name"])))
    settings = (f"MiniLM-L6 + SNLI, {args.clients} clients (Dirichlet alpha {args.alpha}), {args.per_round} per "
                f"round, {args.rounds} rounds x {args.steps} local steps of batch {base['batch_size']} (max "
                f"{base['max_seq_len']} tokens), AdamW lr "
                f"{args.lr}, LoRA r=8 on q/k/v/o, classifier on the {'mean of the token states' if args.pooling == 'mean' else '[CLS] pooler'}, confidence importance, global ranking, evaluation on the first "
                f"{args.eval_size} SNLI test pairs; seeds 0 to {args.seeds - 1} of every configuration, and any further seeds "
                "saved for a row (the seeds column).")
    if missing:
        settings += (f" PARTIAL: {len(todo) - len(missing)} of {len(todo)} runs done; not yet run: {', '.join(missing)} "
                     "(`--resume` completes them).")
    if not results:
        print("no runs saved yet", file=sys.stderr)
        return 1
    timing_file = RESULTS / f"{stem}.timing.json"
    timing, timing_machine = None, ""
    if args.timing_reps and (args.timing or not args.report):
        timing = side_by_side(base, 1 if args.quick else args.timing_reps, extra=args.extra, only=args.only)
        timing_machine = machine()
        timing_file.write_text(json.dumps({"machine": timing_machine, "median_s": timing}))
    elif args.report and timing_file.exists():
        saved_timing = json.loads(timing_file.read_text())
        timing, timing_machine = saved_timing["median_s"], saved_timing["machine"]

    svg = RESULTS / f"{stem}.svg"
    text = table(results, settings, timing, plot_name=svg.name, timed_seeds=args.seeds, timing_machine=timing_machine)
    print(text)
    save(args.name, text, args)
    svg.write_text(plot(results), encoding="utf-8")
    print(f"saved {svg}", file=sys.stderr)
    committed.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

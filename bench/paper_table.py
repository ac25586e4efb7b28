# Over ~400 lines: one table of many configurations (runs, table, verdicts, plot, README tables) read top to bottom.
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
files. The chosen rows and seeds are a study (:func:`table_study`), run by the
product's local study runner (fedcore/study_runner.py, as ``fedheads study run``
without ``--server``); each run is saved with its round records. The table's
figures and verdicts are the study's aggregate (fedcore/study_aggregate.py,
comparing means: rows may have fewer seeds than dense) with the study files'
targets. Runs saved before the records were kept (the committed results) hold
summed figures only; :func:`run_figures_of` gives study_aggregate the same
per-run figures from those. What stays here: the order of the runs, resuming,
the side-by-side timing, the markdown, the plot and the README's headline
tables (``--readme``).

    python bench/paper_table.py             # full: 2 seeds x 9 configurations (a few hours on 2 cores)
    python bench/paper_table.py --quick     # smoke check: 1 seed, dense / mask 0.9 / drop 0.9, 2 tiny rounds
    python bench/paper_table.py --resume    # keep the runs saved so far, do the rest
    python bench/paper_table.py --extra --resume  # add the variants tried at s = 0.9 (paper_table-extra.yaml)
    python bench/paper_table.py --report    # the table of the runs saved so far, running nothing
    python bench/paper_table.py --readme    # README.md's headline tables from the committed results
    python bench/paper_table.py --name paper_table-cosine --lr-schedule cosine --extra --resume \
        --only "dense FedAvg" "mask s=0.9, sampled heads, heads-random init"  # rows with the cosine local rate
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

if TYPE_CHECKING:
    from fedcore.study import StudySpec
    from fedcore.study_aggregate import StudyRun

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


def table_study(name: str, base: dict[str, Any], configs: list[tuple[str, dict[str, Any]]],
                seeds: list[int]) -> StudySpec:
    """The study of these rows: the baseline first if it is not among them, the study files' targets cut to
    the rows chosen (a target left with none is dropped)."""
    from fedcore.study import StudySpec

    variants = dict(configs) if BASELINE in dict(configs) else {BASELINE: STUDY.variants[BASELINE], **dict(configs)}
    targets = []
    for t in [*STUDY.targets, *EXTRA_STUDY.targets]:
        if t.variants is None:
            targets.append(t.model_dump(exclude_none=True))
        elif chosen := [v for v in t.variants if v in variants]:
            targets.append(t.model_copy(update={"variants": chosen}).model_dump(exclude_none=True))
    return StudySpec.model_validate({"name": name, "base": {"preset": STUDY.base.preset, "overrides": base},
                                     "variants": variants, "seeds": seeds, "baseline": BASELINE,
                                     "targets": targets})


def study_of(name: str, base: dict[str, Any], configs: list[tuple[str, dict[str, Any]]], seeds: int) -> str:
    """The study of these rows as YAML (``--study-yaml``), seeds 0 to ``seeds`` - 1 (:func:`table_study`)."""
    from fedcore.study import study_yaml

    study = table_study(name, base, configs, list(range(seeds)))
    cmd = " ".join(a if a and all(c.isalnum() or c in "-_.=/" for c in a) else repr(a) for a in sys.argv[1:])
    return ("# Generated from bench/studies/paper_table.yaml (and paper_table-extra.yaml): edit those, not this file,\n"
            f"# and run again:\n#   python bench/paper_table.py {cmd}\n" + study_yaml(study))


def saved_run(run: StudyRun, spec: dict[str, Any], base: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A finished run of the study runner as the results file keeps it: its round records (``rounds``, what
    its figures are computed from), what it ran and where, and its accuracy per round and final accuracy
    (read by the dashboard's advice, app/services/advice.py)."""
    from _report import machine

    accuracy = [(r.get("metrics") or {}).get("accuracy") for r in run.records]
    return {"name": run.variant, "seed": run.seed, "machine": machine(), "spec": spec, "base": base,
            "seconds": seconds, "accuracy": accuracy,
            "final_accuracy": next((a for a in reversed(accuracy) if a is not None), None),
            "rounds": [slim_record(r) for r in run.records]}


# what a results file leaves out of a round record: the per-head matrices (importance, kept heads, head weights,
# agreement) and every step's loss, which no figure of the table reads and which made a 15-round run's records
# about 12 KB a round; the heads each client computed stay (the compute sparsity column)
SLIM_DROPS = ("global_importance", "agreement", "head_weights", "selection")
SLIM_CLIENT_DROPS = ("importance", "kept", "step_losses")


def slim_record(record: dict[str, Any]) -> dict[str, Any]:
    """A round record without what the table does not read (:data:`SLIM_DROPS`, :data:`SLIM_CLIENT_DROPS`)."""
    out = {k: v for k, v in record.items() if k not in SLIM_DROPS}
    out["clients"] = [{k: v for k, v in c.items() if k not in SLIM_CLIENT_DROPS} for c in record.get("clients") or []]
    return out


def _client_time(ctx: Any, round_: int, rep: int) -> float:
    """Local-training seconds of one client (``rep`` % 4) in a round, from the initial global state."""
    from fedcore.client import ClientTask, train_client

    return train_client(ctx, ClientTask(round=round_, client=rep % 4, global_state=ctx.initial_state)).train_time


def side_by_side(base: dict[str, Any], reps: int, extra: bool = False,
                 only: list[str] | None = None) -> dict[str, float]:
    """Median local-training seconds of one client round per configuration, measured interleaved.

    The runs of the table are minutes apart on a shared machine, so their times drift with
    the load; here dense and each pruned configuration train the same client on the same
    round in turn (dense, mask 0.9, drop 0.5, 0.7, 0.9, dense, ...), ``reps`` times.
    """
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
            spec = ctx.spec
            rnd = 1 + spec.compute_ramp_rounds  # a ramped row at its target
            t = _client_time(ctx, rnd, rep)
            if spec.train_top_blocks_after:  # a dense warm-up: the run's mean over its warm-up and later rounds
                w = min(spec.train_top_blocks_after, spec.rounds)
                t = (w * _client_time(ctx, 1, rep) + (spec.rounds - w) * _client_time(ctx, w + 1, rep)) / spec.rounds
            if rep:  # the first pass warms up allocators and caches
                times[name].append(t)
    return {name: statistics.median(t) for name, t in times.items()}


# per-run figures of the table besides fedcore.study_aggregate.FIGURES (spread by aggregate(extra=...))
EXTRA_FIGURES = ("uplink_mb_per_round", "compute_sparsity")


def _compute_sparsity(records: list[dict[str, Any]]) -> float:
    """Share of heads removed from local training, over every client and round, from the round records."""
    return 1 - statistics.mean(statistics.mean(v for row in c.get("compute", [[1]]) for v in row)
                               for r in records for c in r["clients"])


def run_figures_of(run: dict[str, Any]) -> dict[str, Any]:
    """The per-run figures fedcore.study_aggregate aggregates (its :func:`run_figures`, ``per_round`` and the
    table's :data:`EXTRA_FIGURES`). A run saved with its round records: from them. A run saved before they
    were kept: from its summed fields, the same definitions (accuracy in points; totals from per-round
    means; its compute sparsity, or from the spec for runs saved before that was recorded)."""
    from fedcore.study_aggregate import last3, metric_per_round, run_figures

    if run.get("rounds"):
        records = run["rounds"]
        figs = run_figures(records)
        return {**figs, "per_round": metric_per_round(records), "uplink_mb_per_round": figs["uplink_mb"] / len(records),
                "compute_sparsity": _compute_sparsity(records)}
    n = len(run["accuracy"])
    per_round = [a * 100.0 for a in run["accuracy"]]
    spec = run.get("spec", {})
    compute = run.get("compute_sparsity",
                      spec.get("sparsity", 0.0) if spec.get("prune_mode") == "drop" else 0.0)
    return {
        "metric": "accuracy", "final_accuracy": run["final_accuracy"] * 100.0, "last3_accuracy": last3(per_round),
        "uplink_advantage": run["uplink_advantage"], "total_advantage": run["total_advantage"],
        "ops_reduction": run["ops_reduction"], "ops_attention_reduction": run["ops_attention_reduction"],
        "train_time_per_round": run["train_time_per_round"], "train_time": run["train_time_per_round"] * n,
        "wall_time_per_round": run["wall_per_round"], "uplink_mb": run["uplink_per_round"] * n / 1e6, "rounds": n,
        "per_round": per_round, "uplink_mb_per_round": run["uplink_per_round"] / 1e6,
        "compute_sparsity": float(compute),
    }


def study_run(run: dict[str, Any]) -> StudyRun:
    """A saved run (either kind) as fedcore.study_aggregate takes it: finished, with its figures."""
    from fedcore.study_aggregate import StudyRun

    return StudyRun(run["name"], run["seed"], "succeeded", run.get("rounds") or (), run_figures_of(run))


def _row_order(names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The rows as a study's variants, in the study files' order (rows no file names last, with no overrides)."""
    known = [*CONFIGS, *EXTRA]
    return [(n, o) for n, o in known if n in names] + [(n, {}) for n in names if n not in dict(known)]


def aggregates(results: list[dict[str, Any]], timed_seeds: int | None = None,
               baseline: str = BASELINE) -> tuple[StudySpec, dict[str, Any], dict[str, Any]]:
    """The study of the saved runs' rows and its aggregates (fedcore.study_aggregate, comparing means against
    ``baseline``): over every run, and for the time columns over the runs of seeds below ``timed_seeds`` (the
    main pass; a row without such runs: all of its runs)."""
    from fedcore.study_aggregate import aggregate

    runs = [study_run(r) for r in results]
    study = table_study("paper_table", dict(STUDY.base.overrides), _row_order([r.variant for r in runs]),
                        sorted({r.seed for r in runs}))
    if baseline != BASELINE:
        study = study.model_copy(update={"baseline": baseline})

    def timed(r: StudyRun) -> bool:
        return timed_seeds is None or r.seed < timed_seeds or all(o.seed >= timed_seeds for o in runs
                                                                   if o.variant == r.variant)

    return (study, aggregate(study, runs, compare="means", extra=EXTRA_FIGURES),
            aggregate(study, [r for r in runs if timed(r)], compare="means", extra=EXTRA_FIGURES))


def _f(x: float | None, digits: int, plus: bool = False) -> str:
    """``x`` to ``digits`` decimals ("nan" for none)."""
    return "nan" if x is None else f"{x:{'+' if plus else ''}.{digits}f}"


def _pm(s: dict[str, Any]) -> str:
    """A figure's mean ± half-range over seeds (fedcore.study_aggregate.Spread), the mean alone for one seed."""
    m = s["mean"] or 0.0
    return _f(m, 1) if s["n"] < 2 else f"{_f(m, 1)} ± {_f(s['half_range'] or 0.0, 1)}"


def plot(results: list[dict[str, Any]]) -> str:
    """Accuracy per round of every run as an SVG: a colour per configuration, drop mode dashed."""
    from _plot import Group, Reference, line_chart

    names = list(dict.fromkeys(r["name"] for r in results))
    groups = [Group(n, [[a or 0.0 for a in run_figures_of(r)["per_round"]] for r in results if r["name"] == n],
                    dash=1 if n.startswith("drop") else 2 if "," in n else 0) for n in names]
    values = [a for g in groups for run in g.runs for a in run]
    return line_chart(groups, title="SNLI test accuracy per round (MiniLM-L6, non-IID clients)", x_label="round",
                      y_label="test accuracy %", y_range=(min(25.0, min(values)), max(80.0, max(values))),
                      references=[Reference(65.0, "65%: the bar for the dense baseline"),
                                  Reference(100 / 3, "uniform chance")])


def _apart(diff: float) -> str:
    """A row's difference from dense, in words (0.0 - x: never "-0.0")."""
    return f"{_f(0.0 - diff, 1)} points below" if diff < 0 else f"{_f(diff, 1)} points above"


def _verdict_lines(study: StudySpec, full: dict[str, Any], timed: dict[str, Any], counterpart: dict[str, Any] | None,
                   timing: dict[str, float] | None) -> list[str]:
    """One line per judged row: the study's verdicts on its targets (accuracy and last-3-rounds accuracy against
    dense, or against the stronger dense counterpart of a heads-random row; uplink advantage; training speed-up,
    from the side-by-side timing where measured, else the runs' time columns)."""
    rows = {v["variant"]: v for v in full["variants"]}
    d_acc = rows[BASELINE]["figures"]["final_accuracy"]["mean"]
    if d_acc is None:
        return []

    def by_row(table: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for v in (table or {}).get("verdicts", []):
            out.setdefault(v["variant"], {})[v["metric"]] = v
        return out

    main, speeds, other = by_row(full), by_row(timed), by_row(counterpart)

    def met(v: dict[str, Any]) -> str:
        return "met" if v["met"] else "NOT met"

    lines = []
    for row in study.variants:
        mine = main.get(row)
        if not mine or not rows[row]["finished"]:
            continue
        ref_name = ""
        hr = DENSE_COUNTERPART.get(row, "")
        if counterpart and hr in rows and rows[hr]["finished"] and (
                (rows[hr]["figures"]["final_accuracy"]["mean"] or 0.0) > d_acc):  # never a weaker baseline
            mine = {**mine, **{k: v for k, v in other.get(row, {}).items() if k.endswith("_vs_baseline")}}
            ref_name = f" {hr}"
        parts = []

        if acc := mine.get("accuracy_vs_baseline"):
            gap = 0.0 - acc["value"]  # points below (0.0 - x: never "-0.0")
            if d_acc < 65.0:  # near chance every method "matches" dense: no verdict
                judged = f"not judged, the dense baseline is under 65% ({_f(gap, 1)} points below it)"
            else:
                judged = f"{met(acc)} ({_apart(acc['value'])}{ref_name}; {acc['seeds']} seed(s) against {acc['against']})"
                if l3 := mine.get("last3_vs_baseline"):
                    judged += (f"; last-3-rounds accuracy within {-l3['limit']:.1f} points: {met(l3)} "
                               f"({_apart(l3['value'])})")
            parts.append(f"accuracy within {-acc['limit']:.1f} points of dense: {judged}")
        if up := mine.get("uplink_advantage"):
            parts.append(f"uplink advantage >= {up['limit']:g}x: {met(up)} ({_f(up['value'], 2)}x)")
        if sp := mine.get("train_speedup"):
            if timing and row in timing:
                side = timing[BASELINE] / timing[row]
                parts.append(f"client training >= {sp['limit']:g}x faster: {'met' if side >= sp['limit'] else 'NOT met'} "
                             f"({_f(side, 2)}x, side-by-side timing below)")
            elif (tsp := speeds.get(row, {}).get("train_speedup")) and tsp["value"] is not None:
                parts.append(f"client training >= {tsp['limit']:g}x faster: {met(tsp)} ({_f(tsp['value'], 2)}x)")
        lines.append(f"- {row}: " + "; ".join(parts))
    return lines


def table(results: list[dict[str, Any]], settings: str, timing: dict[str, float] | None = None,
          plot_name: str = "", timed_seeds: int | None = None, timing_machine: str = "") -> str:
    """The markdown table, from the study's aggregates (:func:`aggregates`). Time columns average only the runs
    of seeds below ``timed_seeds`` (the main pass, run back to back); accuracy and the other columns average
    every run of a row."""
    names = list(dict.fromkeys(r["name"] for r in results))
    study, full, timed = aggregates(results, timed_seeds)
    counterpart = None
    if HR_DENSE in names and any(n in DENSE_COUNTERPART for n in names):
        counterpart = aggregates(results, timed_seeds, baseline=HR_DENSE)[1]
    rows = {v["variant"]: v for v in full["variants"]}
    times = {v["variant"]: v for v in timed["variants"]}
    d_wall = times[BASELINE]["figures"]["wall_time_per_round"]["mean"]
    lines = [
        "| configuration | seeds | final accuracy % (mean ± half-range) | vs dense (points) | last-3-rounds accuracy % | "
        "uplink MB / round | "
        "uplink advantage | compute sparsity | both directions | OPs reduction whole step | OPs reduction attention+LoRA | "
        "client training s / round | training speed-up | wall s / round | wall speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        f, t = rows[n]["figures"], times[n]["figures"]
        delta = rows[n]["vs_baseline"]["accuracy_vs_baseline"]["mean"]
        wall = t["wall_time_per_round"]["mean"]
        lines.append(
            f"| {n} | {f['final_accuracy']['n']} | {_pm(f['final_accuracy'])} | "
            f"{'-' if delta is None else _f(delta, 1, plus=True)} | {_pm(f['last3_accuracy'])} | "
            f"{_f(f['uplink_mb_per_round']['mean'], 3)} | {_f(f['uplink_advantage']['mean'], 2)}x | "
            f"{_f(f['compute_sparsity']['mean'], 2)} | {_f(f['total_advantage']['mean'], 2)}x | "
            f"{_f(f['ops_reduction']['mean'], 2)}x | {_f(f['ops_attention_reduction']['mean'], 2)}x | "
            f"{_f(t['train_time_per_round']['mean'], 1)} | {_f(times[n]['vs_baseline']['train_speedup']['mean'], 2)}x | "
            f"{_f(wall, 1)} | {_f(d_wall / wall if d_wall else None, 2)}x |")
    verdicts = _verdict_lines(study, full, timed, counterpart, timing)
    dense_ok = ""
    base = rows[BASELINE]
    if base["finished"]:
        d_acc, band = base["figures"]["final_accuracy"]["mean"], base["per_round"]
        r3 = band[min(2, len(band) - 1)]["mean"]
        dense_ok = (f"- dense baseline >= 74%: {'met' if d_acc >= 74.0 else 'NOT met'} ({_f(d_acc, 1)}%); "
                    f"leaves chance by round 3 (>= 40%; the majority class of the evaluation pairs is under 36%): "
                    f"{'met' if r3 >= 40.0 else 'NOT met'} ({_f(r3, 1)}% at round 3)")
    plotted = f" (plotted in [{plot_name}]({plot_name}))" if plot_name else ""
    series = [(r, run_figures_of(r)["per_round"]) for r in results]
    per_round = ["", f"Accuracy per round (%), each run{plotted}:", "",
                 "| configuration | seed | " + " | ".join(f"r{i + 1}" for i in range(len(series[0][1])))
                 + " |", "|---|---:|" + "---:|" * len(series[0][1])]
    for r, accs in series:
        per_round.append(f"| {r['name']} | {r['seed']} | " + " | ".join(
            "-" if a is None else _f(a, 1) for a in accs) + " |")
    side = []
    if timing:
        side = ["", "Local training of one client round, measured side by side: the configurations take "
                "turns on the same client and round (a row with a compute ramp: the first round past the ramp, "
                "its target compute sparsity; its run trains denser rounds before that, which its OPs columns "
                "count; a row with dense warm-up rounds: the mean over its run of a warm-up round and a later "
                "one, weighted by their counts), median of the repetitions"
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


# --- the README's headline tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadmeTable:
    """A headline table of README.md, written by ``--readme`` between its markers from a results file's study
    aggregate (:func:`aggregates`): ``rows`` are (row, label, columns in bold); ``seed``: that seed's runs only,
    compared with dense's run of the same seed (paired), a row with more seeds saying its figures over all of
    them in its label; else every run, compared by means."""

    results: str  # the results file's stem under bench/results/
    header: tuple[str, ...]  # the titles: the configuration's, then one per column
    columns: tuple[str, ...]  # keys of _readme_cell
    rows: tuple[tuple[str, str, tuple[str, ...]], ...]
    seed: int | None = None


README = ROOT / "README.md"
HEAD = "head-weighted, loss-gap"
README_TABLES = {
    "paper_table-cls": ReadmeTable(
        "paper_table-cls",
        ("configuration", "seeds", "final accuracy %", "last-3-rounds %", "uplink advantage",
         "OPs reduction (whole / attention+LoRA)", "training speed-up (side by side)"),
        ("seeds", "final", "last3", "uplink", "ops_both", "side"),
        ((BASELINE, "dense LoRA FedAvg", ()),
         ("mask s=0.9", f"mask s = 0.9 ({HEAD})", ("uplink",)),
         ("mask s=0.9, FedAvg aggregation", "mask s = 0.9, FedAvg aggregation", ()),
         ("mask s=0.9, random selection", "mask s = 0.9, random selection", ()),
         ("drop s=0.9", f"drop s = 0.9 ({HEAD})", ("side",)),
         ("mask s=0.9, per-block ranking", "mask s = 0.9, per-block ranking", ()),
         ("mask s=0.9, gradient importance", "mask s = 0.9, gradient importance", ()),
         ("mask s=0.9, head-coverage selection", "mask s = 0.9, head-coverage selection", ()),
         ("drop s=0.9, last 4 steps dense", "drop s = 0.9, last 4 of 15 steps dense", ()),
         ("mask s=0.9, heads-random init", "mask s = 0.9, heads-random LoRA init", ()),
         (HR_DENSE, "dense, heads-random LoRA init", ()))),
    "paper_table-r25-cls": ReadmeTable(
        "paper_table-r25-cls",
        ("configuration", "seeds", "final accuracy %", "last-3-rounds %", "uplink advantage"),
        ("seeds", "final", "last3", "uplink"),
        ((BASELINE, "dense LoRA FedAvg", ()),
         *((f"mask s={s}", f"mask s = {s} ({HEAD})", ()) for s in (0.5, 0.7, 0.9)),
         ("mask s=0.9, FedAvg aggregation", "mask s = 0.9, FedAvg aggregation", ()),
         ("mask s=0.9, random selection", "mask s = 0.9, random selection", ()),
         *((f"drop s={s}", f"drop s = {s} ({HEAD})", ()) for s in (0.5, 0.7, 0.9)),
         ("mask s=0.9, heads-random init", "mask s = 0.9, heads-random LoRA init", ()),
         (HR_DENSE, "dense, heads-random LoRA init", ()),
         ("mask s=0.9, sampled heads", "mask s = 0.9, sampled heads", ()),
         ("mask s=0.9, sampled heads, heads-random init", "mask s = 0.9, sampled heads, heads-random LoRA init",
          ("label", "final", "uplink")))),
    "paper_table": ReadmeTable(
        "paper_table",
        ("configuration (s = 0.9 upload sparsity)", "final %", "vs dense", "uplink advantage",
         "OPs reduction (whole step)", "training speed-up (side by side, Intel Xeon, medians of 3)"),
        ("final", "delta", "uplink", "ops", "side"),
        ((BASELINE, "dense LoRA FedAvg", ()),
         ("mask s=0.9", "mask (the paper's reading; no compute saved)", ()),
         ("drop s=0.9", "drop (plain)", ()),
         ("drop s=0.9, compute s=0.5, sampled heads, heads-random init",
          "drop, compute s = 0.5, sampled heads, heads-random init", ()),
         ("drop s=0.9, compute s=0.5, re-drawn every 5 steps",
          "drop, compute s = 0.5, re-drawn every 5 steps (`compute_redraw_steps`)", ()),
         ("mask s=0.9, top 2 blocks", "mask, top 2 blocks trained (`train_top_blocks = 2`)", ()),
         ("mask s=0.9, top 2 blocks, sampled heads", "mask, top 2 blocks, sampled heads", ("side",)),
         ("mask s=0.9, top 3 blocks", "mask, top 3 blocks", ()),
         ("dense FedAvg, top 2 blocks", "dense, top 2 blocks (its dense counterpart)", ()),
         ("mask s=0.9, sampled heads, heads-random init",
          "mask, sampled heads, heads-random init: `paper-sampled`, no compute saved", ()),
         ("mask s=0.9, sampled heads, heads-random init, top 2 blocks after 5 rounds",
          "mask, sampled heads, heads-random init, top 2 blocks after 5 dense rounds", ())),
        seed=0),
    "paper_table-cosine": ReadmeTable(
        "paper_table-cosine",
        ("configuration (cosine local rate)", "seeds", "final accuracy %", "last-3-rounds %", "vs dense",
         "uplink advantage", "OPs reduction (whole step)"),
        ("seeds", "final", "last3", "delta", "uplink", "ops"),
        ((BASELINE, "dense LoRA FedAvg", ()),
         ("mask s=0.9, sampled heads, heads-random init", "mask s = 0.9, sampled heads, heads-random init", ()),
         ("mask s=0.9, sampled heads, heads-random init, top 3 blocks",
          "mask s = 0.9, sampled heads, heads-random init, top 3 blocks", ()))),
}


def _readme_cell(key: str, row: dict[str, Any], timing: dict[str, float]) -> str:
    f = row["figures"]
    if key == "seeds":
        return str(f["final_accuracy"]["n"])
    if key in ("final", "last3"):
        return _pm(f["final_accuracy" if key == "final" else "last3_accuracy"])
    if key == "delta":
        delta = row["vs_baseline"]["accuracy_vs_baseline"]["mean"]
        return "-" if row["variant"] == BASELINE or delta is None else _f(delta, 1, plus=True)
    if key == "uplink":
        return f"{_f(f['uplink_advantage']['mean'], 2)}x"
    if key == "ops":
        return f"{_f(f['ops_reduction']['mean'], 2)}x"
    if key == "ops_both":
        return f"{_f(f['ops_reduction']['mean'], 2)}x / {_f(f['ops_attention_reduction']['mean'], 2)}x"
    if key == "side":
        t = timing.get(row["variant"])
        return "-" if not t or BASELINE not in timing else f"{_f(timing[BASELINE] / t, 2)}x"
    raise KeyError(key)


def readme_table(spec: ReadmeTable, results_dir: Path | None = None) -> str:
    """One README table, from its results file's runs and side-by-side timing (:class:`ReadmeTable`)."""
    from _report import RESULTS

    folder = results_dir or RESULTS
    runs = json.loads((folder / f"{spec.results}.json").read_text())
    timing_file = folder / f"{spec.results}.timing.json"
    timing = json.loads(timing_file.read_text())["median_s"] if timing_file.exists() else {}
    everything = {v["variant"]: v for v in aggregates(runs)[1]["variants"]}
    rows = everything
    if spec.seed is not None:
        from fedcore.study_aggregate import aggregate

        mine = [r for r in runs if r["seed"] == spec.seed]
        study = table_study("paper_table", dict(STUDY.base.overrides), _row_order([r["name"] for r in mine]),
                            [spec.seed])
        rows = {v["variant"]: v for v in aggregate(study, [study_run(r) for r in mine], extra=EXTRA_FIGURES)["variants"]}
    lines = ["| " + " | ".join(spec.header) + " |", "|---|" + "---:|" * len(spec.columns)]
    for name, label, bold in spec.rows:
        row = rows[name]
        if not row["finished"]:
            raise SystemExit(f"README table {spec.results}: no run of {name!r}"
                             + (f" with seed {spec.seed}" if spec.seed is not None else ""))
        every = everything[name]
        n = every["figures"]["final_accuracy"]["n"]
        if spec.seed is not None and n > 1 and name != BASELINE:  # its figures over all its seeds, against dense's
            label += (f" (seed {spec.seed}; {n} seeds: {_pm(every['figures']['final_accuracy'])}, "
                      f"{_f(every['vs_baseline']['accuracy_vs_baseline']['mean'], 1, plus=True)} vs dense's "
                      f"{every['against']})")
        cells = [label, *(_readme_cell(k, row, timing) for k in spec.columns)]
        keys = ["label", *spec.columns]
        lines.append("| " + " | ".join(f"**{c}**" if k in bold else c for k, c in zip(keys, cells, strict=True)) + " |")
    return "\n".join(lines)


def readme(text: str, results_dir: Path | None = None) -> str:
    """``text`` (README.md) with every block between ``<!-- paper_table --readme: NAME -->`` and
    ``<!-- end NAME -->`` replaced by :func:`readme_table` of ``README_TABLES[NAME]``."""
    out = text
    for name, spec in README_TABLES.items():
        begin, end = f"<!-- paper_table --readme: {name} -->", f"<!-- end {name} -->"
        if begin not in out or end not in out:
            raise SystemExit(f"README.md lacks the markers {begin} ... {end}")
        head, rest = out.split(begin, 1)
        _, tail = rest.split(end, 1)
        out = f"{head}{begin}\n{readme_table(spec, results_dir)}\n{end}{tail}"
    return out


def _train(key: tuple[str, int], spec: Any, base: dict[str, Any], paths: Any) -> dict[str, Any]:
    """Train one (row, seed) with the product's local study runner, saying where it is after every round
    (a run takes minutes); the finished run as saved."""
    from fedcore.study_runner import run_study

    started = time.perf_counter()

    def progress(k: tuple[str, int], r: Any) -> None:
        acc = r.metrics.get("accuracy")
        print(f"    {k[0]} seed {k[1]}: round {r.round}/{spec.rounds}, accuracy "
              f"{'-' if acc is None else f'{acc:.3f}'}, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    run = next(run_study({key: spec}, paths, on_round_end=progress))
    return saved_run(run, spec.model_dump(mode="json"), base, time.perf_counter() - started)


def runs_to_keep(results: list[dict[str, Any]], saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What NAME.json keeps: the table's runs, then every other run saved with the same settings (rows or seeds
    left out this time by --only or a smaller --seeds), so that a run of a few rows does not drop the rest."""
    shown = {(r["name"], r["seed"]) for r in results}
    return results + [r for r in saved if (r["name"], r["seed"]) not in shown]


def _run_one(study_json: str, key: tuple[str, int], base: dict[str, Any]) -> dict[str, Any]:
    """One (row, seed) of the study in a ``--jobs`` worker process: the finished run as saved."""
    import torch

    from fedcore.context import Paths
    from fedcore.study import StudySpec
    from fedcore.study_runner import study_specs

    torch.set_num_threads(1)  # the GPU does the work; N workers share the machine's cores
    return _train(key, study_specs(StudySpec.model_validate_json(study_json), [key])[key], base, Paths())


def run_missing(study: StudySpec, keys: list[tuple[str, int]], base: dict[str, Any], saved: list[dict[str, Any]],
                partial: Path, jobs: int = 1) -> None:
    """Run these (row, seed) of the study, in this order, with the product's local study runner
    (fedcore/study_runner.py, as ``fedheads study run``), saving ``saved`` and each finished run (with its
    round records) to ``partial`` after every run. With ``jobs`` > 1 the runs go to that many worker
    processes, started in this order and saved as they finish (for a GPU, whose runs are launch-bound:
    their time columns then measure a shared machine)."""
    from fedcore.context import Paths
    from fedcore.study_runner import check_study_inputs, study_specs

    specs = study_specs(study, keys)
    paths = Paths()
    check_study_inputs(specs.values(), paths)

    def finished(i: int, r: dict[str, Any]) -> None:
        saved.append(r)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(saved, indent=1))
        print(f"  [{i}/{len(keys)}] {r['name']} seed {r['seed']}: acc {r['final_accuracy']:.3f} in "
              f"{r['seconds']:.0f} s", file=sys.stderr, flush=True)

    if jobs <= 1:
        for i, key in enumerate(keys, 1):
            finished(i, _train(key, specs[key], base, paths))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, study.model_dump_json(), key, base) for key in keys]
        for i, future in enumerate(as_completed(futures), 1):
            finished(i, future.result())


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
    ap.add_argument("--lr-schedule", choices=["constant", "cosine"], default=b.get("lr_schedule", d.lr_schedule),
                    help="the local learning rate over the rounds (docs/method.md)")
    ap.add_argument("--eval-size", type=int, default=b.get("eval_size", d.eval_size))
    ap.add_argument("--pooling", choices=["cls", "mean"], default=b.get("pooling", d.pooling),
                    help="classifier input: the [CLS] pooler or the mean of the token states (the tables before "
                         "2026-12-03 used cls; runs saved with another pooling are not resumed)")
    ap.add_argument("--lora-alpha", type=float, default=b.get("lora_alpha", d.lora_alpha),
                    help="LoRA scaling alpha (with r = 8: the LoRA update's scale, alpha / r)")
    ap.add_argument("--device", choices=["cpu", "cuda"],
                    help="train on this device (the runs record it; runs of another device are not resumed, and a "
                         "table holds one device's runs)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run the missing runs in this many worker processes at once (for a GPU; on 2 CPU cores "
                         "one at a time is fastest)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="another spec field of the base (repeatable; the value is read as YAML: --set warmup_steps=3)")
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
    ap.add_argument("--readme", action="store_true",
                    help="run nothing: rewrite README.md's headline tables (between their markers) from the committed "
                         "results' study aggregates (README_TABLES)")
    ap.add_argument("--study-yaml", metavar="FILE",
                    help="run nothing: write the study these flags describe as YAML that `fedheads study run` and "
                         "POST /api/v1/studies accept ('-': standard output): the base with the flags applied, the "
                         "rows chosen (--extra, --only, --quick; the baseline always), seeds 0 to SEEDS - 1, the "
                         "study files' targets for those rows, named NAME[-quick]")
    args = ap.parse_args()
    if args.readme:
        README.write_text(readme(README.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"saved {README}", file=sys.stderr)
        return 0
    if args.quick:
        args.seeds, args.rounds, args.per_round, args.steps, args.eval_size = 1, 2, 2, 3, 100
    # the study's base overrides (in its order: the runs save this dict), the flags' values in place of its own
    base = {**b, "dirichlet_alpha": args.alpha, "num_clients": args.clients, "clients_per_round": args.per_round,
            "rounds": args.rounds, "local_steps": args.steps, "learning_rate": args.lr, "eval_size": args.eval_size,
            "pooling": args.pooling}
    if args.lr_schedule != d.lr_schedule or "lr_schedule" in b:  # runs saved before the option: the default
        base["lr_schedule"] = args.lr_schedule
    if args.lora_alpha != d.lora_alpha or "lora_alpha" in b:  # runs saved before the flag: the default
        base["lora_alpha"] = args.lora_alpha
    if args.device:  # runs saved without it ran on the CPU (device "auto" on a machine without a GPU)
        base["device"] = args.device
    for item in args.set:
        field, eq, value = item.partition("=")
        if not eq or field not in type(d).model_fields:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with a spec field (fedcore/spec.py)")
        base[field] = yaml.safe_load(value)  # 3 -> int, true -> bool, cosine -> str
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
    # seed 0 of every configuration first (a complete one-seed table), then the headline rows' other seeds
    first = (BASELINE, "mask s=0.9", "drop s=0.9")
    later = sorted(configs, key=lambda c: (c[0] not in first, first.index(c[0]) if c[0] in first else 0))
    todo = [(name, seed) for seed in range(args.seeds) for name, _ in (configs if seed == 0 else later)]
    missing = [key for key in todo if key not in done]
    if missing and not args.report:
        run_missing(table_study(stem, base, configs, list(range(args.seeds))), missing, base, saved, partial,
                    args.jobs)
        done = {(r["name"], r["seed"]): r for r in saved}
    results = [done[key] for key in todo if key in done]
    missing = [f"{name} seed {seed}" for name, seed in todo if (name, seed) not in done]
    # runs of more seeds than asked (e.g. `--only "dense FedAvg" "mask s=0.9" --seeds 4 --resume`) stay in the table
    names = [n for n, _ in configs]
    results += sorted((r for r in saved if r["name"] in names and r["seed"] >= args.seeds),
                      key=lambda r: (r["seed"], names.index(r["name"])))
    settings = (f"MiniLM-L6 + SNLI, {args.clients} clients (Dirichlet alpha {args.alpha}), {args.per_round} per "
                f"round, {args.rounds} rounds x {args.steps} local steps of batch {base['batch_size']} (max "
                f"{base['max_seq_len']} tokens), AdamW lr "
                f"{args.lr}{' (cosine over the rounds to a tenth)' if args.lr_schedule == 'cosine' else ''}, LoRA r={base.get('lora_r', d.lora_r)} (alpha {base.get('lora_alpha', d.lora_alpha):g}) on q/k/v/o, classifier on the {'mean of the token states' if args.pooling == 'mean' else '[CLS] pooler'}, confidence importance, global ranking, evaluation on the first "
                f"{args.eval_size} SNLI test pairs; seeds 0 to {args.seeds - 1} of every configuration, and any further seeds "
                "saved for a row (the seeds column)."
                + "".join(f" {item.replace('=', ' = ', 1)}." for item in args.set)
                + (f" Trained on {'the GPU' if args.device == 'cuda' else 'the CPU'} (`--device {args.device}`): compare "
                   "these rows with each other, not with another device's tables." if args.device else ""))
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
    committed.write_text(json.dumps(runs_to_keep(results, saved), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

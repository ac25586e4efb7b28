"""Running a study's runs in this process, one after another, with fedcore's round loop.

The one local runner of a study: ``fedheads study run grid.yaml`` without ``--server``
(app/study_cli.py) and bench/paper_table.py both go through it. First every run's spec is built and
checked (:func:`study_specs`, :func:`check_study_inputs`), so a bad variant or a missing asset stops
the study before anything trains; then :func:`run_study` trains the runs asked for, in the order
asked, and yields each finished run with its round records (a :class:`~fedcore.study_aggregate.StudyRun`
that :func:`fedcore.study_aggregate.aggregate` sums up). A server runs a study's runs through its
executors instead (app/services/studies.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from fedcore.checks import Places, raise_for_inputs
from fedcore.context import Paths, get_context
from fedcore.simulation import RoundResult, run_simulation
from fedcore.spec import ExperimentSpec, validate_spec
from fedcore.study import StudySpec
from fedcore.study_aggregate import StudyRun

RunKey = tuple[str, int]  # (variant, seed)


def study_specs(study: StudySpec, runs: Sequence[RunKey] | None = None) -> dict[RunKey, ExperimentSpec]:
    """The validated spec of every run (``runs``, default :meth:`StudySpec.runs`), in that order; raises
    :class:`~fedcore.spec.SpecError` for the first run whose merged fields are not a valid spec."""
    return {(v, s): validate_spec(study.fields(v, s)) for v, s in (study.runs() if runs is None else runs)}


def check_study_inputs(specs: Iterable[ExperimentSpec], paths: Paths) -> None:
    """Raise :class:`~fedcore.checks.InputProblems` if a run's model or data is not at hand."""
    places = Places(data_root=paths.data_root, cache_dir=paths.cache_dir)
    for spec in specs:
        raise_for_inputs(spec, places)


def run_study(specs: Mapping[RunKey, ExperimentSpec], paths: Paths, *,
              on_start: Callable[[RunKey], None] | None = None,
              on_round_end: Callable[[RunKey, RoundResult], None] | None = None) -> Iterator[StudyRun]:
    """Train each run of ``specs`` in their order and yield it, finished, with its round records.

    ``on_start`` hears each run before it trains, ``on_round_end`` each of its rounds as it ends.
    """
    for key, spec in specs.items():
        if on_start is not None:
            on_start(key)

        def round_end(r: RoundResult, key: RunKey = key) -> None:
            if on_round_end is not None:
                on_round_end(key, r)

        run = run_simulation(spec, context=get_context(spec, paths), on_round_end=round_end)
        yield StudyRun(key[0], key[1], run.status, [r.to_dict() for r in run.rounds])

"""Progress inside a round: the callback hears each round's start, every client's start, steps and end, and the
aggregation, in order; and a run that reports progress records exactly the figures of one that does not."""

from __future__ import annotations

from fedcore.context import build_context
from fedcore.simulation import Progress, run_simulation
from fedcore.spec import preset
from tests.fedcore.test_simulation import _figures


def test_progress_reports_rounds_clients_and_steps_without_changing_a_figure() -> None:
    spec = preset("smoke", rounds=2, local_steps=3, eval_size=60)
    heard: list[Progress] = []
    reported = run_simulation(spec, context=build_context(spec), on_progress=heard.append)
    plain = run_simulation(spec, context=build_context(spec))
    assert _figures(reported.rounds) == _figures(plain.rounds)

    m, s = spec.clients_per_round, spec.local_steps
    for rnd in (1, 2):
        seen = [p for p in heard if p.round == rnd]
        assert all(p.rounds == 2 for p in seen)
        assert seen[0].phase == "select" and seen[-1].phase == "aggregate" and seen[-1].clients == m
        selected = reported.rounds[rnd - 1].selection["selected"]
        for j, client in enumerate(selected, start=1):
            mine = [p for p in seen if p.client_index == j and p.phase.startswith("client")]
            assert {p.client for p in mine} == {client} and all(p.clients == m for p in mine)
            # scoring (no steps known yet), then step 0..S of S, then done
            assert [(p.phase, p.step, p.steps) for p in mine] == (
                [("client", 0, 0)] + [("client", k, s) for k in range(s + 1)] + [("client_done", s, s)])

"""Server momentum (FedAvgM): the server step's arithmetic, and runs with it: sequential = parallel, a resumed run
equals an uninterrupted one (the velocity is checkpointed), and momentum 0 with rate 1 is plain aggregation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedcore.client_pool import ProcessClientPool
from fedcore.context import build_context
from fedcore.server import server_step
from fedcore.simulation import load_server_velocity, run_simulation, server_file
from fedcore.spec import preset
from tests.fedcore.test_simulation import _figures


def test_server_step_keeps_a_velocity_across_rounds() -> None:
    spec = preset("smoke", server_momentum=0.5, server_lr=2.0)
    prev = {"w": torch.tensor([1.0, 2.0])}
    agg = {"w": torch.tensor([1.5, 1.0])}  # update +0.5, -1.0
    new, vel = server_step(spec, prev, agg, None)
    assert vel is not None
    assert torch.equal(vel["w"], torch.tensor([0.5, -1.0], dtype=torch.float64))
    assert torch.equal(new["w"], torch.tensor([2.0, 0.0]))  # prev + 2 x update
    assert new["w"].dtype == torch.float32 and vel["w"].dtype == torch.float64
    agg2 = {"w": torch.tensor([2.0, 0.0])}  # update 0: the velocity alone moves the model
    new2, vel2 = server_step(spec, new, agg2, vel)
    assert vel2 is not None
    assert torch.equal(vel2["w"], torch.tensor([0.25, -0.5], dtype=torch.float64))
    assert torch.equal(new2["w"], torch.tensor([2.5, -1.0]))


def test_without_a_server_optimizer_the_aggregate_is_taken_as_it_is() -> None:
    spec = preset("smoke")
    agg = {"w": torch.tensor([0.1, 0.2])}
    new, vel = server_step(spec, {"w": torch.tensor([1.0, 1.0])}, agg, None)
    assert new is agg and vel is None


@pytest.fixture(scope="module")
def momentum_spec():
    return preset("smoke", rounds=3, local_steps=3, eval_size=60, server_momentum=0.6, server_lr=1.5)


@pytest.fixture(scope="module")
def momentum_run(momentum_spec):
    return run_simulation(momentum_spec, context=build_context(momentum_spec))


def test_momentum_changes_the_run_and_rate_1_momentum_0_does_not(momentum_spec, momentum_run) -> None:
    plain_spec = momentum_spec.with_overrides(server_momentum=0.0, server_lr=1.0)
    plain = run_simulation(plain_spec, context=build_context(plain_spec))
    default_spec = preset("smoke", rounds=3, local_steps=3, eval_size=60)
    default = run_simulation(default_spec, context=build_context(default_spec))
    assert _figures(plain.rounds) == _figures(default.rounds)
    assert all(torch.equal(plain.final_state[k], default.final_state[k]) for k in plain.final_state)
    assert any(not torch.equal(momentum_run.final_state[k], plain.final_state[k]) for k in plain.final_state)


def test_momentum_sequential_equals_parallel(momentum_spec, momentum_run) -> None:
    with ProcessClientPool(momentum_spec, workers=2) as pool:
        parallel = run_simulation(momentum_spec, context=build_context(momentum_spec), client_pool=pool)
    assert _figures(parallel.rounds) == _figures(momentum_run.rounds)
    assert all(torch.equal(parallel.final_state[k], momentum_run.final_state[k]) for k in parallel.final_state)


def test_momentum_resumed_equals_uninterrupted(momentum_spec, momentum_run, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    first = run_simulation(momentum_spec, context=build_context(momentum_spec), checkpoint_dir=ck,
                           stop_after_round=2)
    assert first.status == "stopped"
    velocity = load_server_velocity(ck)
    assert velocity is not None and velocity.keys() == first.final_state.keys()
    assert (ck / server_file(2)).is_file() and not (ck / server_file(1)).is_file()  # only the last one is kept
    resumed = run_simulation(momentum_spec, context=build_context(momentum_spec), checkpoint_dir=ck)
    assert [r.round for r in resumed.rounds] == [1, 2, 3]
    assert _figures(resumed.rounds) == _figures(momentum_run.rounds)
    assert all(torch.equal(resumed.final_state[k], momentum_run.final_state[k]) for k in resumed.final_state)

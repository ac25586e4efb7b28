"""Tests for fedcore.aggregate, with hand-computed expected tensors."""

from __future__ import annotations

import math

import pytest
import torch

from fedcore.aggregate import fedavg, head_agreement, head_weighted, head_weights, masked_fedavg


def test_fedavg_weighted_mean_hand_computed() -> None:
    # Prepare
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    # Execute: (1*a + 3*b) / 4
    out = fedavg([a, b], [1.0, 3.0])
    # Assert
    assert torch.equal(out, torch.tensor([[4.0, 5.0], [6.0, 7.0]]))


def test_fedavg_keeps_input_dtype_when_half() -> None:
    # Prepare
    a = torch.tensor([1.0, 2.0], dtype=torch.float16)
    b = torch.tensor([2.0, 4.0], dtype=torch.float16)
    # Execute
    out = fedavg([a, b], [1, 1])
    # Assert
    assert out.dtype == torch.float16
    assert torch.equal(out, torch.tensor([1.5, 3.0], dtype=torch.float16))


@pytest.mark.parametrize(
    ("tensors", "weights"),
    [
        ([], []),
        ([torch.ones(2), torch.ones(2)], [0.0, 0.0]),
        ([torch.ones(2), torch.ones(3)], [1.0, 1.0]),
        ([torch.ones(2)], [1.0, 2.0]),
    ],
    ids=["empty", "zero-weight", "shape-mismatch", "length-mismatch"],
)
def test_fedavg_raises_value_error_when_input_invalid(
    tensors: list[torch.Tensor], weights: list[float]
) -> None:
    # Prepare / Execute / Assert
    with pytest.raises(ValueError):
        fedavg(tensors, weights)


def test_head_weights_modes_hand_computed() -> None:
    # Prepare
    importance = torch.tensor([[0.5, -0.2], [0.25, 1.0]])
    n = [10, 4]
    # Execute
    both = head_weights(n, importance, "n_k_importance")
    imp = head_weights(n, importance, "importance")
    nk = head_weights(n, importance, "n_k")
    # Assert (negative importance clamped to 0)
    assert torch.equal(both, torch.tensor([[5.0, 0.0], [1.0, 4.0]], dtype=torch.float64))
    assert torch.equal(imp, torch.tensor([[0.5, 0.0], [0.25, 1.0]], dtype=torch.float64))
    assert torch.equal(nk, torch.tensor([[10.0, 10.0], [4.0, 4.0]], dtype=torch.float64))


def test_head_weighted_per_unit_weights_hand_computed_axis0() -> None:
    # Prepare: 2 units of 2 rows each, 2 columns; client 0 keeps both, client 1 only unit 1
    previous = torch.zeros(4, 2)
    u0 = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [2.0, 2.0]])
    u1 = torch.tensor([[9.0, 9.0], [9.0, 9.0], [8.0, 8.0], [4.0, 4.0]])
    kept = torch.tensor([[True, True], [False, True]])
    weights = torch.tensor([[1.0, 1.0], [5.0, 3.0]])
    # Execute
    out = head_weighted(previous, [u0, u1], kept, weights, axis=0, unit_size=2)
    # Assert: unit 0 only client 0; unit 1 = (1*u0 + 3*u1) / 4
    expected = torch.tensor([[1.0, 1.0], [1.0, 1.0], [6.5, 6.5], [3.5, 3.5]])
    assert torch.equal(out, expected)


def test_head_weighted_axis1_hand_computed() -> None:
    # Prepare: 2 rows, 2 units of 1 column; unit 0 weights 1 and 3, unit 1 only client 1
    previous = torch.tensor([[7.0, 7.0], [7.0, 7.0]])
    u0 = torch.tensor([[0.0, 100.0], [4.0, 100.0]])
    u1 = torch.tensor([[4.0, 2.0], [8.0, 6.0]])
    kept = torch.tensor([[True, False], [True, True]])
    weights = torch.tensor([[1.0, 1.0], [3.0, 2.0]])
    # Execute
    out = head_weighted(previous, [u0, u1], kept, weights, axis=1, unit_size=1)
    # Assert
    assert torch.equal(out, torch.tensor([[3.0, 2.0], [7.0, 6.0]]))


def test_head_weighted_equals_fedavg_when_all_kept_with_n_k() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(0)
    previous = torch.randn(12, 5, generator=gen)
    updates = [torch.randn(12, 5, generator=gen) for _ in range(3)]
    n = [17, 3, 250]
    kept = torch.ones(3, 4, dtype=torch.bool)
    weights = torch.tensor(n, dtype=torch.float64).unsqueeze(1).expand(3, 4)
    # Execute
    hw = head_weighted(previous, updates, kept, weights, axis=0, unit_size=3)
    mf = masked_fedavg(previous, updates, kept, n, axis=0, unit_size=3)
    fa = fedavg(updates, n)
    # Assert
    assert torch.equal(hw, fa)
    assert torch.equal(mf, fa)


def test_head_weighted_keeps_previous_bit_identical_when_no_client_kept_unit() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(1)
    previous = torch.randn(3, 6, generator=gen)
    updates = [torch.randn(3, 6, generator=gen) for _ in range(2)]
    kept = torch.tensor([[True, False, True], [True, False, False]])
    weights = torch.ones(2, 3)
    # Execute
    out = head_weighted(previous, updates, kept, weights, axis=1, unit_size=2)
    # Assert
    assert torch.equal(out[:, 2:4], previous[:, 2:4])
    assert not torch.equal(out[:, 0:2], previous[:, 0:2])


def test_head_weighted_uses_equal_weights_when_keepers_weights_sum_to_zero() -> None:
    # Prepare
    previous = torch.zeros(2, 1)
    updates = [torch.tensor([[2.0], [1.0]]), torch.tensor([[4.0], [3.0]])]
    kept = torch.tensor([[True, True], [True, False]])
    weights = torch.tensor([[0.0, 0.0], [0.0, 5.0]])
    # Execute
    out = head_weighted(previous, updates, kept, weights, axis=0, unit_size=1)
    # Assert: unit 0 equal mean of both keepers; unit 1 only client 0 kept it (weight 0 -> equal)
    assert torch.equal(out, torch.tensor([[3.0], [1.0]]))


def test_masked_fedavg_weights_by_n_k_over_keepers_hand_computed() -> None:
    # Prepare
    previous = torch.tensor([0.0, 0.0])
    updates = [torch.tensor([1.0, 1.0]), torch.tensor([4.0, 10.0])]
    kept = torch.tensor([[True, True], [True, False]])
    # Execute
    out = masked_fedavg(previous, updates, kept, [1, 2], axis=0, unit_size=1)
    # Assert: unit 0 (1*1 + 2*4)/3 = 3; unit 1 only client 0
    assert torch.equal(out, torch.tensor([3.0, 1.0]))


def test_head_weighted_raises_when_unit_size_does_not_divide() -> None:
    # Prepare
    previous = torch.zeros(5, 2)
    # Execute / Assert
    with pytest.raises(ValueError):
        head_weighted(
            previous, [previous], torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2), axis=0, unit_size=2
        )


def test_head_agreement_identical_deltas_is_one_and_opposite_is_minus_one() -> None:
    # Prepare: unit 0 both clients move the same way, unit 1 opposite ways
    previous = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    a = torch.tensor([[2.0, 3.0], [1.0, 0.0]])  # deltas [[1, 2], [0, -1]]
    b = torch.tensor([[2.0, -1.0], [1.0, 2.0]])  # deltas [[1, -2], [0, 1]]
    kept = torch.ones(2, 2, dtype=torch.bool)
    # Execute
    out = head_agreement(previous, [a, b], kept, axis=1, unit_size=1)
    # Assert
    assert torch.allclose(out, torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-12)


def test_head_agreement_hand_computed_mean_of_pairs_and_nan_when_fewer_than_two() -> None:
    # Prepare: 3 clients; unit 0 deltas e1, e1, e2 -> pairs (1, 0, 0) -> mean 1/3
    previous = torch.zeros(2, 2)
    updates = [
        torch.tensor([[1.0, 0.0], [5.0, 5.0]]),
        torch.tensor([[1.0, 0.0], [5.0, 5.0]]),
        torch.tensor([[0.0, 1.0], [5.0, 5.0]]),
    ]
    kept = torch.tensor([[True, True], [True, False], [True, False]])
    # Execute
    out = head_agreement(previous, updates, kept, axis=0, unit_size=1)
    # Assert
    assert math.isclose(float(out[0]), 1.0 / 3.0, abs_tol=1e-12)
    assert math.isnan(float(out[1]))

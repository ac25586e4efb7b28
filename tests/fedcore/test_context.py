"""The per-process context cache that lets one process serve job after job (issue 23)."""

from __future__ import annotations

import torch

from fedcore.context import get_context
from fedcore.spec import preset


def test_a_cached_context_gets_its_specs_threads_back_after_another_job() -> None:
    """The embedded executor's job process and a Celery worker run jobs one after another and reuse the
    context of a spec they built before. torch's thread count is process-wide and training and evaluation
    give bit-identical figures only at the spec's own count (on MiniLM a 1-thread job rerun at 2 threads
    records other losses in their last bits), so a reused context must bring its spec's count back."""
    before = torch.get_num_threads()
    one = preset("smoke", num_threads=1, eval_size=60)
    two = preset("smoke", num_threads=2, eval_size=60, seed=1)
    try:
        first = get_context(one)
        assert torch.get_num_threads() == 1
        second = get_context(two)
        assert torch.get_num_threads() == 2
        assert get_context(one) is first  # reused, not built again
        assert torch.get_num_threads() == 1
        # the cache keeps the last two specs used, whatever ran before: a third evicts the least recent
        three = preset("smoke", num_threads=1, eval_size=60, seed=2)
        get_context(three)
        assert get_context(one) is first
        assert get_context(two) is not second  # 'two' was the least recently used: built again
    finally:
        torch.set_num_threads(before)

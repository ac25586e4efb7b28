"""The analytic OPs count equals FlopCounterMode on models really pruned by drop mode."""

from __future__ import annotations

import pytest
import torch

from fedcore.accounting import step_ops
from fedcore.drop import drop_heads
from fedcore.models.families import FAMILIES
from tests.fedcore import test_accounting as ta

MASKS = {
    "uneven": lambda n: torch.tensor([[True, False, False, True]] * n),
    "gqa_one_group": lambda n: torch.tensor([[False, False, True, True]] * n),
    "zero_first_block": lambda n: torch.cat(
        [torch.zeros(1, 4, dtype=torch.bool), torch.tensor([[True, True, False, True]] * (n - 1))]
    ),
    "random": lambda n: torch.rand(n, 4, generator=torch.Generator().manual_seed(n)) < 0.4,
}


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
@pytest.mark.parametrize("mask", sorted(MASKS))
def test_step_ops_equals_flop_counter_after_drop(family: str, mask: str) -> None:
    torch.manual_seed(0)
    model, arch = ta.BUILDERS[family]()
    arch = FAMILIES[family].arch(model, arch.num_labels)
    kept = MASKS[mask](len(arch.blocks))
    dense = ta._measured(model, ta._inputs(family))
    drop_heads(model, arch.blocks, kept, prefix="base_model.model.")
    measured = ta._measured(model, ta._inputs(family))
    dec = ta.DEC_LEN if family == "t5" else 0
    ops = step_ops(arch, batch=ta.BATCH, enc_len=ta.ENC_LEN, dec_len=dec, kept=kept, lora_r=ta.RANK,
                   lora_targets=ta.TARGETS)
    assert measured < dense
    assert ops.whole_step == measured

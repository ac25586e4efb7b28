"""Shared fixtures: tiny models built from config classes, never downloaded."""

from __future__ import annotations

import pytest
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from transformers import BertConfig, BertForSequenceClassification

from fedcore.lora_state import LoraLayout
from fedcore.models.families import FAMILIES


@pytest.fixture
def bert5():
    """A tiny BERT with 4 blocks x 5 heads (d=16) and attention-only LoRA (r=4)."""
    cfg = BertConfig(vocab_size=200, hidden_size=80, num_hidden_layers=4, num_attention_heads=5,
                     intermediate_size=64, num_labels=3, attn_implementation="eager")
    model = BertForSequenceClassification(cfg)
    fam = FAMILIES["bert"]
    blocks = fam.blocks(model)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=fam.peft_targets(["q", "k", "v", "o"]),
                                            modules_to_save=["classifier"], init_lora_weights=False))
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft).items()}
    return peft, blocks, state, LoraLayout(state, blocks)

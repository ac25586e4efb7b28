"""Drop mode is exact: physically removing heads equals masking them in the full model.

Every case compares a deep copy with heads removed by :func:`fedcore.drop.drop_heads`
against the full model with :func:`fedcore.drop.head_mask_reference` hooks, on tiny
random BERT, T5 (generation and classification, incl. cross-attention) and Llama
(GQA: 4 query heads, 2 kv groups), bare and wrapped with PEFT LoRA whose B is non-zero.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import Tensor, nn

from fedcore.data.types import Example
from fedcore.drop import drop_heads, head_mask_reference, scale_kept_heads
from fedcore.models.base import AttentionBlock
from fedcore.models.families import Batch, Family
from fedcore.models.loading import load_model

TOL = 1e-5
LABELS = ["yes", "no", "maybe"]
EXAMPLES = [
    Example("the cat sat on the mat today", "a cat is sitting", label=0, target="cat on mat"),
    Example("rain", None, label=2, target="weather"),
    Example("markets fell sharply after the report on prices", "stocks dropped", label=1,
            target="markets fall after the price report"),
    Example("he plays", "she sings well", label=1, target="music"),
]
MODELS = [
    ("tiny-bert", "classification"),
    ("tiny-t5", "generation"),
    ("tiny-t5", "classification"),
    ("tiny-llama", "classification"),
    ("tiny-llama", "generation"),
]
CASES = [(name, task, peft) for name, task in MODELS for peft in (False, True)]
LLAMA_CASES = [c for c in CASES if c[0] == "tiny-llama"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and a busy 2-core machine makes OpenMP barriers crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case_id(case: tuple[str, str, bool]) -> str:
    return f"{case[0]}-{case[1]}-{'lora' if case[2] else 'bare'}"


@dataclass
class Case:
    family: Family
    model: nn.Module  # shared, eval mode: tests deep-copy it before changing anything
    blocks: list[AttentionBlock]
    prefix: str
    batch: Batch

    @property
    def inputs(self) -> Batch:
        return {k: v for k, v in self.batch.items() if not k.startswith("_")}

    def shape(self) -> tuple[int, int]:
        return len(self.blocks), self.blocks[0].num_heads


@functools.cache
def _case(name: str, task: str, peft: bool) -> Case:
    loaded = load_model(name, task=task, num_labels=len(LABELS), seed=0)  # type: ignore[arg-type]
    family, model = loaded.family, loaded.model
    blocks = family.blocks(model)
    prefix = ""
    if peft:
        config = LoraConfig(r=4, target_modules=family.peft_targets(["q", "k", "v", "o"]),
                            modules_to_save=family.modules_to_save, init_lora_weights=False)
        model = get_peft_model(model, config)
        prefix = "base_model.model."
    model.eval()
    batch = family.collate(loaded.tokenizer, EXAMPLES, task=task, label_names=LABELS,  # type: ignore[arg-type]
                           max_len=32, max_target_len=12)
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    return Case(family, model, blocks, prefix, batch)


def _forward(model: nn.Module, inputs: Batch) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    return out.logits, out.loss


def _reference(case: Case, kept: Tensor) -> tuple[Tensor, Tensor]:
    handles = head_mask_reference(case.model, case.blocks, kept, prefix=case.prefix)
    try:
        return _forward(case.model, case.inputs)
    finally:
        for handle in handles:
            handle.remove()


def _dropped(case: Case, kept: Tensor) -> nn.Module:
    model = copy.deepcopy(case.model)
    drop_heads(model, case.blocks, kept, prefix=case.prefix)
    return model


def _assert_drop_matches_reference(case: Case, kept: Tensor) -> None:
    ref_logits, ref_loss = _reference(case, kept)
    logits, loss = _forward(_dropped(case, kept), case.inputs)
    assert logits.shape == ref_logits.shape
    assert (logits - ref_logits).abs().max().item() < TOL
    assert abs(loss.item() - ref_loss.item()) < TOL


# --- masks ---------------------------------------------------------------------------


def _random_mask(case: Case, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    kept = torch.rand(case.shape(), generator=gen) < 0.5  # (blocks, H)
    kept[0, 0], kept[-1, -1] = True, False  # never all kept nor all pruned
    return kept


def _empty_layer_mask(case: Case, layer: int) -> Tensor:
    kept = _random_mask(case, seed=11)
    heads = kept.shape[1]
    for i, block in enumerate(case.blocks):
        kept[i, i % heads] = True  # every other block keeps at least one head
        if block.layer == layer:
            kept[i] = False
    return kept


def _first_layer_single_head_mask(case: Case) -> Tensor:
    kept = _random_mask(case, seed=12)
    for i, block in enumerate(case.blocks):
        if block.layer == 0:  # T5: the layer holding relative_attention_bias, and the first cross-attention
            kept[i] = False
            kept[i, 2] = True
    return kept


MASKS: dict[str, Callable[[Case], Tensor]] = {
    "random_seed0": lambda c: _random_mask(c, 0),
    "random_seed1": lambda c: _random_mask(c, 1),
    "empty_first_layer": lambda c: _empty_layer_mask(c, 0),
    "empty_second_layer": lambda c: _empty_layer_mask(c, 1),
    "first_layer_single_head": _first_layer_single_head_mask,
}


# --- exactness -------------------------------------------------------------------------


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("spec", CASES, ids=_case_id)
def test_drop_matches_head_mask_reference_for_mask(spec: tuple[str, str, bool], mask: str) -> None:
    case = _case(*spec)
    _assert_drop_matches_reference(case, MASKS[mask](case))


@pytest.mark.parametrize(
    ("pattern_0", "pattern_1"),
    [
        ([1, 0, 0, 1], [1, 1, 0, 0]),  # both groups kept / only group 0 kept
        ([0, 0, 1, 1], [0, 1, 1, 1]),  # only group 1 kept / group 0 keeps one head, group 1 both
        ([0, 0, 0, 1], [1, 0, 1, 0]),  # a single head of group 1 / one head of each group
    ],
    ids=["both_groups-group0_only", "group1_only-uneven", "single_head-one_per_group"],
)
@pytest.mark.parametrize("spec", LLAMA_CASES, ids=_case_id)
def test_drop_matches_head_mask_reference_for_uneven_gqa_mask(
    spec: tuple[str, str, bool], pattern_0: list[int], pattern_1: list[int]
) -> None:
    case = _case(*spec)
    assert case.blocks[0].num_heads == 4 and case.blocks[0].num_kv_heads == 2
    kept = torch.tensor([pattern_0, pattern_1], dtype=torch.bool)
    _assert_drop_matches_reference(case, kept)


@pytest.mark.parametrize("spec", CASES, ids=_case_id)
def test_drop_is_identity_when_all_heads_kept(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    kept = torch.ones(case.shape(), dtype=torch.bool)
    dropped = _dropped(case, kept)
    logits, loss = _forward(dropped, case.inputs)
    full_logits, full_loss = _forward(case.model, case.inputs)
    assert torch.equal(logits, full_logits) and torch.equal(loss, full_loss)
    before = {n: p.shape for n, p in case.model.named_parameters()}
    assert {n: p.shape for n, p in dropped.named_parameters()} == before


@pytest.mark.parametrize("spec", [("tiny-bert", "classification", True), ("tiny-t5", "generation", False)],
                         ids=_case_id)
def test_reference_hooks_change_output_until_removed(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    full, _ = _forward(case.model, case.inputs)
    masked, _ = _reference(case, _random_mask(case, 0))  # removes its hooks afterwards
    assert (masked - full).abs().max().item() > 1e-4
    assert torch.equal(_forward(case.model, case.inputs)[0], full)


@pytest.mark.parametrize("spec", [("tiny-t5", "generation", True), ("tiny-llama", "generation", True)],
                         ids=_case_id)
def test_greedy_generation_matches_reference_with_kv_cache(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    kept = _first_layer_single_head_mask(case)
    kept[-1] = False  # and one empty block
    prompt: dict[str, Any] = {"input_ids": case.batch["input_ids"], "attention_mask": case.batch["attention_mask"]}
    if case.family.name == "llama":  # right-padded rows would generate after padding: use the prompts only
        prompt = {"input_ids": case.batch["_prompt_ids"][:1], "attention_mask": case.batch["_prompt_mask"][:1]}
    options = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    handles = head_mask_reference(case.model, case.blocks, kept, prefix=case.prefix)
    try:
        with torch.no_grad():
            expected = case.model.generate(**prompt, **options)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        got = _dropped(case, kept).generate(**prompt, **options)
    assert torch.equal(got, expected)


# --- training --------------------------------------------------------------------------


def _lora(module: nn.Module, half: str) -> nn.Linear:
    return getattr(module, half)["default"]


def _grad(param: nn.Parameter) -> Tensor:
    return param.grad if param.grad is not None else torch.zeros_like(param)


def _feature_rows(units: Tensor, d: int) -> Tensor:
    return (units[:, None] * d + torch.arange(d)).reshape(-1)


@pytest.mark.parametrize(
    "spec",
    [("tiny-bert", "classification", True), ("tiny-t5", "generation", True), ("tiny-llama", "generation", True)],
    ids=_case_id,
)
def test_lora_gradients_match_reference_slices_after_drop(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    kept = _empty_layer_mask(case, 1)
    kept[0] = torch.tensor([False, True, True, True])  # uneven across GQA groups: 1 + 2 heads
    reference = copy.deepcopy(case.model)
    handles = head_mask_reference(reference, case.blocks, kept, prefix=case.prefix)
    case.family.loss(reference, case.batch).backward()
    for handle in handles:
        handle.remove()
    dropped = _dropped(case, kept)
    case.family.loss(dropped, case.batch).backward()

    for block, row in zip(case.blocks, kept, strict=True):
        heads = torch.nonzero(row).flatten()
        groups = torch.nonzero(row.view(block.num_kv_heads, -1).any(1)).flatten()
        for name in ("q", "k", "v", "o"):
            ref_mod = reference.get_submodule(case.prefix + block.projection(name))
            got_mod = dropped.get_submodule(case.prefix + block.projection(name))
            if name == "o":
                cols = _feature_rows(heads, block.head_dim)
                pairs = [(_grad(_lora(ref_mod, "lora_A").weight)[:, cols], _grad(_lora(got_mod, "lora_A").weight)),
                         (_grad(_lora(ref_mod, "lora_B").weight), _grad(_lora(got_mod, "lora_B").weight))]
            else:
                rows = _feature_rows(heads if name == "q" else groups, block.head_dim)
                pairs = [(_grad(_lora(ref_mod, "lora_B").weight)[rows], _grad(_lora(got_mod, "lora_B").weight)),
                         (_grad(_lora(ref_mod, "lora_A").weight), _grad(_lora(got_mod, "lora_A").weight))]
            for expected, got in pairs:
                assert got.shape == expected.shape
                assert torch.allclose(got, expected, rtol=0, atol=TOL), f"{block.name}.{name}"
    # the slices really carry gradient: block 0 keeps heads, its q LoRA B is non-trivial
    q0 = dropped.get_submodule(case.prefix + case.blocks[0].q)
    assert _lora(q0, "lora_B").weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", CASES, ids=_case_id)
def test_training_step_updates_kept_parameters_after_drop(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    kept = _empty_layer_mask(case, 1)
    kept[0] = torch.tensor([True, False, False, True])
    model = copy.deepcopy(case.model)
    trainable_before = {n for n, p in model.named_parameters() if p.requires_grad}
    drop_heads(model, case.blocks, kept, prefix=case.prefix)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable_before

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    block = case.blocks[0]  # keeps heads 0 and 3
    q = model.get_submodule(case.prefix + block.q)
    o = model.get_submodule(case.prefix + block.o)
    watched = [_lora(q, "lora_B").weight, _lora(o, "lora_A").weight] if spec[2] else [q.weight, o.weight]
    before = [w.detach().clone() for w in watched]

    case.family.loss(model, case.batch).backward()
    for w in watched:
        assert w.grad is not None and w.grad.abs().sum() > 0
    optimizer.step()
    for w, old in zip(watched, before, strict=True):
        assert not torch.equal(w.detach(), old)
    if spec[2]:
        base = q.base_layer.weight
        assert not base.requires_grad and base.grad is None
    assert torch.isfinite(case.family.loss(model, case.batch))  # and the next step runs


# --- shapes ----------------------------------------------------------------------------


def _linears(module: nn.Module, peft: bool) -> tuple[nn.Linear, nn.Linear | None, nn.Linear | None]:
    if not peft:
        return module, None, None  # type: ignore[return-value]
    return module.base_layer, _lora(module, "lora_A"), _lora(module, "lora_B")  # type: ignore[return-value]


@pytest.mark.parametrize("spec", [c for c in CASES if c[1] != "classification" or c[0] == "tiny-bert"],
                         ids=_case_id)
def test_projection_parameters_shrink_to_kept_heads(spec: tuple[str, str, bool]) -> None:
    case = _case(*spec)
    kept = _empty_layer_mask(case, 1)
    kept[0] = torch.tensor([False, True, True, True])
    model = _dropped(case, kept)
    peft = spec[2]
    for block, row in zip(case.blocks, kept, strict=True):
        full_rows = block.num_heads * block.head_dim
        n = int(row.sum()) * block.head_dim
        g = int(row.view(block.num_kv_heads, -1).any(1).sum()) * block.head_dim
        for name, width in (("q", n), ("k", g), ("v", g)):
            module = model.get_submodule(case.prefix + block.projection(name))
            base, lora_a, lora_b = _linears(module, peft)
            hidden = base.in_features
            assert base.weight.shape == (width, hidden) and base.out_features == width
            if base.bias is not None:
                assert base.bias.shape == (width,)
            if lora_a is not None and lora_b is not None:
                assert lora_a.weight.shape == (4, hidden)  # shared half: unchanged
                assert lora_b.weight.shape == (width, 4) and module.out_features == width
        module = model.get_submodule(case.prefix + block.o)
        base, lora_a, lora_b = _linears(module, peft)
        assert base.weight.shape == (base.out_features, n) and base.in_features == n
        if base.bias is not None:
            assert base.bias.shape == (base.out_features,)
        if lora_a is not None and lora_b is not None:
            assert lora_a.weight.shape == (4, n) and module.in_features == n
            assert lora_b.weight.shape == (base.out_features, 4)
        assert n < full_rows or bool(row.all())


def test_drop_rejects_wrong_mask_shape_and_second_drop() -> None:
    case = _case("tiny-bert", "classification", False)
    model = copy.deepcopy(case.model)
    with pytest.raises(ValueError, match="kept must be a bool tensor"):
        drop_heads(model, case.blocks, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="kept must be a bool tensor"):
        drop_heads(model, case.blocks, torch.ones(case.shape()))
    kept = _random_mask(case, 0)
    drop_heads(model, case.blocks, kept)
    with pytest.raises(ValueError, match="already dropped"):
        drop_heads(model, case.blocks, kept)


@pytest.mark.parametrize("spec", CASES, ids=_case_id)
def test_scaled_drop_matches_reference_with_kept_heads_scaled(spec: tuple[str, str, bool]) -> None:
    """Inverted scaling: the dropped model equals the full one with pruned heads zeroed and each
    block's kept heads multiplied by heads / kept."""
    case = _case(*spec)
    kept = _random_mask(case, 0)
    dropped = _dropped(case, kept)
    handles = scale_kept_heads(dropped, case.blocks, kept, prefix=case.prefix)
    logits, _ = _forward(dropped, case.inputs)
    plain, _ = _forward(_dropped(case, kept), case.inputs)
    ref_handles = []
    for block, row in zip(case.blocks, kept, strict=True):
        n, h, d = int(row.sum()), block.num_heads, block.head_dim
        factor = h / n if 0 < n < h else 1.0
        scale = (row.float() * factor).repeat_interleave(d)  # (H*d,): 0 for pruned, factor for kept

        def hook(_m: nn.Module, args: tuple, scale: Tensor = scale) -> tuple:
            return (args[0] * scale.to(args[0].dtype), *args[1:])

        ref_handles.append(case.model.get_submodule(case.prefix + block.o).register_forward_pre_hook(hook))
    try:
        ref, _ = _forward(case.model, case.inputs)
    finally:
        for handle in ref_handles:
            handle.remove()
    assert (logits - ref).abs().max().item() < TOL
    assert not torch.allclose(logits, plain)  # the scaling changed the output
    for handle in handles:
        handle.remove()
    assert torch.equal(_forward(dropped, case.inputs)[0], plain)
